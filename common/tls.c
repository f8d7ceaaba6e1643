/* tls.c — SSL_CTX construction with one policy: TLS 1.2+, forward-secret
 * AEAD suites only for 1.2 (1.3 suites are all strong), no renegotiation,
 * no compression, no session tickets across key changes. */
#include "common/tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>

static const char *tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

void tls_error(const char *what, char *err, size_t errlen) {
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    if (err && errlen) snprintf(err, errlen, "%s: %s", what, buf);
    ERR_clear_error();
}

static SSL_CTX *new_ctx(const SSL_METHOD *method, char *err, size_t errlen) {
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (!ctx) {
        tls_error("SSL_CTX_new", err, errlen);
        return NULL;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) {
        tls_error("TLS policy", err, errlen);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    return ctx;
}

SSL_CTX *tls_server_ctx_from_files(const char *cert_file, const char *key_file, char *err,
                                   size_t errlen) {
    SSL_CTX *ctx = new_ctx(TLS_server_method(), err, errlen);
    if (!ctx) return NULL;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        tls_error(cert_file, err, errlen);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        tls_error(key_file, err, errlen);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL_CTX *tls_server_ctx_from_pem(const char *cert_pem, size_t cert_len, const char *key_pem,
                                 size_t key_len, char *err, size_t errlen) {
    SSL_CTX *ctx = new_ctx(TLS_server_method(), err, errlen);
    if (!ctx) return NULL;
    BIO *cb = BIO_new_mem_buf(cert_pem, (int)cert_len);
    BIO *kb = BIO_new_mem_buf(key_pem, (int)key_len);
    X509 *cert = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *key = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    int ok = cert && key && SSL_CTX_use_certificate(ctx, cert) == 1 &&
             SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    /* The rest of the chain (intermediates), if any, follows the leaf. */
    X509 *extra;
    while (ok && cb && (extra = PEM_read_bio_X509(cb, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1) {
            X509_free(extra);
            ok = 0;
        }
    }
    ERR_clear_error(); /* the loop ends on an expected "no start line" */
    if (!ok) tls_error("server certificate/key", err, errlen);
    X509_free(cert);
    EVP_PKEY_free(key);
    BIO_free(cb);
    BIO_free(kb);
    if (!ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL_CTX *tls_client_ctx(const char *ca_file, char *err, size_t errlen) {
    SSL_CTX *ctx = new_ctx(TLS_client_method(), err, errlen);
    if (!ctx) return NULL;
    int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        tls_error(ca_file ? ca_file : "system CA store", err, errlen);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}
