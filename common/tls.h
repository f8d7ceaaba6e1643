/* tls.h — OpenSSL contexts with the project's one TLS policy.
 *
 * Servers (webhook 9443, API 8080, metrics) and clients (sidecar → API,
 * Redis over TLS) get their SSL_CTX here, so "TLS 1.2 minimum, no weak
 * ciphers" is decided in one place. */
#ifndef AGENTMESH_TLS_H
#define AGENTMESH_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/* Server context from PEM files (cert chain + key). NULL with a reason in err. */
SSL_CTX *tls_server_ctx_from_files(const char *cert_file, const char *key_file, char *err,
                                   size_t errlen);
/* Server context from PEM bytes held in memory (self-managed certificates). */
SSL_CTX *tls_server_ctx_from_pem(const char *cert_pem, size_t cert_len, const char *key_pem,
                                 size_t key_len, char *err, size_t errlen);
/* Client context verifying the peer against `ca_file` (NULL = system store). */
SSL_CTX *tls_client_ctx(const char *ca_file, char *err, size_t errlen);

/* Describes the newest OpenSSL error queue entry into err (and clears the queue). */
void tls_error(const char *what, char *err, size_t errlen);

#endif
