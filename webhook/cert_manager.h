/* cert_manager.h — the webhook serving certificate, from files or self-managed (DESIGN §7).
 *
 * File mode (cert_dir set, e.g. cert-manager or a mounted Secret): tls.crt
 * and tls.key are loaded at start and reloaded when they change (a thread
 * stats both every check interval; stat follows the `..data` symlink a
 * Secret volume swaps, so an atomic swap is seen). A new pair that does not
 * load is logged and the old one stays in use.
 *
 * Self-managed mode (cert_dir NULL): Secret `agentmesh-webhook-tls` in
 * `namespace`, type kubernetes.io/tls, holds tls.crt, tls.key, ca.crt and
 * ca.key. The CA key lives in the Secret so that every replica shares one
 * CA: whichever replica renews, the caBundle stays valid for all of them.
 * ca.crt is the CA bundle: the signing CA first, then an older CA still
 * valid after a CA renewal (overlap). Every check interval each replica
 * reads the Secret, creates it when absent (AlreadyExists: another replica
 * won, use theirs), replaces it when invalid, renews the serving
 * certificate `renew_before_seconds` before it expires (the CA when a new
 * serving certificate would outlive it; updates carry resourceVersion, so
 * of two replicas renewing at once one wins and the other adopts its
 * result), sets caBundle on every webhook of the two webhook configurations
 * where it differs (a missing configuration is logged and retried on the
 * next check; a bundle wiped by re-applying manifests comes back), and then
 * loads whatever the Secret holds now. Bundle first: when the CA changed,
 * the switch to a certificate of the new CA waits 2 s so the API server
 * trusts it before it is served (a serving-only renewal keeps the bundle
 * and switches at once).
 *
 * Why ca.key is in the Secret: replicas need the same CA, and the only
 * shared, access-controlled store they have is the API. The exposure is
 * that of tls.key: the CA is trusted nowhere but in these two caBundles.
 *
 * Every new certificate goes to every server with httpd_set_tls (new
 * connections get it at once, no restart), and its notAfter to the gauge
 * agentmesh_webhook_certificate_expiry_timestamp_seconds. Key material is
 * never logged. */
#ifndef AGENTMESH_WEBHOOK_CERT_MANAGER_H
#define AGENTMESH_WEBHOOK_CERT_MANAGER_H

#include <stddef.h>

#include "common/httpd.h"
#include "controller/kube_client.h"

#define CERT_MANAGER_SECRET "agentmesh-webhook-tls"
#define CERT_MANAGER_SERVICE "agentmesh-webhook"
#define CERT_MANAGER_MUTATING "agentmesh-sidecar-injector"
#define CERT_MANAGER_VALIDATING "agentmesh-validator"

/* Strings must outlive the manager; the arrays are copied. */
struct cert_manager_options {
    const char *cert_dir;              /* file mode when set; NULL = self-managed */
    struct kube_client *client;        /* self-managed mode only (may be NULL in file mode) */
    const char *namespace;             /* operator namespace: the Secret and the Service */
    const char *secret_name;           /* NULL = CERT_MANAGER_SECRET */
    const char *service_name;          /* NULL = CERT_MANAGER_SERVICE (DNS SANs) */
    const char *mutating_webhook;      /* NULL = CERT_MANAGER_MUTATING, "" = none */
    const char *validating_webhook;    /* NULL = CERT_MANAGER_VALIDATING, "" = none */
    struct httpd *const *servers;      /* each gets httpd_set_tls on every new certificate */
    size_t nservers;
    const char *const *dns_sans;       /* extra DNS names besides the Service's */
    size_t ndns_sans;
    const char *const *ip_sans;        /* e.g. "127.0.0.1" */
    size_t nip_sans;
    long ca_validity_seconds;          /* 0 = CERTS_CA_VALIDITY (10 y) */
    long cert_validity_seconds;        /* 0 = CERTS_SERVING_VALIDITY (1 y) */
    long renew_before_seconds;         /* 0 = CERTS_RENEW_BEFORE (30 d) */
    double check_interval_seconds;     /* 0 = 30 */
    /* Called with every new certificate's context (borrowed: SSL_CTX_up_ref
     * to keep it), after it is on every server; `first` is 1 the first time.
     * Runs inside cert_manager_start when a certificate is available at once,
     * else on the manager's thread. Start the TLS httpds on `first`
     * (httpd_start refuses TLS without a certificate) and hand the context
     * to listeners that are not in `servers` (trust_api_set_tls). May be NULL. */
    void (*on_certificate)(SSL_CTX *ctx, int first, void *arg);
    void *on_certificate_arg;
};

struct cert_manager;

/* Validates the options, makes the first attempt (so a usable certificate
 * is normally on the servers when this returns) and starts the thread that
 * keeps retrying, reloading and renewing. Failing to get a certificate is
 * not an error here: readiness stays false with the reason. NULL with a
 * reason in err only for bad options or no thread. */
struct cert_manager *cert_manager_start(const struct cert_manager_options *o, char *err,
                                        size_t errlen);
/* 1 when a certificate is in use, else 0 with the reason in why (for /readyz). */
int cert_manager_ready(struct cert_manager *cm, char *why, size_t whylen);
/* notAfter (unix seconds) of the certificate in use, 0 if none. */
long long cert_manager_not_after(struct cert_manager *cm);
/* Stops and joins the thread. Call before freeing the servers. NULL is fine. */
void cert_manager_stop(struct cert_manager *cm);

#endif
