/* certs.h — the webhook's own PKI: a CA and the serving certificate it signs.
 *
 * Used in self-managed mode (DESIGN §7): CA valid 10 years, serving
 * certificate 1 year, renewed 30 days before expiry. Keys are ECDSA P-256
 * (small, fast handshakes; accepted by every API server since 1.0). All
 * input and output is PEM, so it goes straight into a kubernetes.io/tls
 * Secret and the webhook configurations' caBundle. Validity is a parameter
 * so tests can use seconds instead of years. */
#ifndef AGENTMESH_WEBHOOK_CERTS_H
#define AGENTMESH_WEBHOOK_CERTS_H

#include <stddef.h>
#include <time.h>

#define CERTS_CA_VALIDITY (10L * 365 * 24 * 3600)
#define CERTS_SERVING_VALIDITY (365L * 24 * 3600)
#define CERTS_RENEW_BEFORE (30L * 24 * 3600)

/* A certificate and its private key, PEM, owned (free with certs_pair_free,
 * which wipes the key). */
struct cert_pair {
    char *cert_pem;
    char *key_pem;
};

/* Self-signed CA (basicConstraints CA:TRUE, keyCertSign) named `cn`. */
int certs_make_ca(const char *cn, long validity_seconds, struct cert_pair *out, char *err,
                  size_t errlen);

/* A serverAuth certificate signed by `ca`, CN = dns[0], with every name of
 * `dns` and every address of `ips` ("127.0.0.1", "::1") as SANs. */
int certs_make_serving(const struct cert_pair *ca, const char *const *dns, size_t ndns,
                       const char *const *ips, size_t nips, long validity_seconds,
                       struct cert_pair *out, char *err, size_t errlen);

/* The in-cluster names of Service `svc` in namespace `ns`: svc, svc.ns,
 * svc.ns.svc, svc.ns.svc.cluster.local (truncated to 255 bytes each). */
void certs_service_names(const char *svc, const char *ns, char out[4][256]);

/* notAfter of the first certificate in `pem`. 0, or -1 if it does not parse. */
int certs_not_after(const char *pem, time_t *out);

/* 1 when the certificate expires within `before` seconds of `now` (or does
 * not parse, or is not yet valid), else 0. */
int certs_needs_renewal(const char *pem, time_t now, long before);

/* 0 when `pair` is usable: the key matches the certificate, it is signed by
 * `ca_pem` and valid at `now`. Else -1 with the reason. */
int certs_check(const struct cert_pair *pair, const char *ca_pem, time_t now, char *err,
                size_t errlen);

void certs_pair_free(struct cert_pair *p);

#endif
