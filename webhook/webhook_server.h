/* webhook_server.h — the admission endpoints on an httpd (DESIGN §7, §9).
 *
 *   POST /mutate-pods         sidecar injection (inject.h)
 *   POST /validate-agentmesh  AgentIdentity / TrustPolicy checks (validate.h)
 *
 * A malformed or oversized AdmissionReview gets HTTP 400 with the reason;
 * everything else gets 200 with a review. Counts
 * controller_runtime_webhook_requests_total{webhook,code},
 * controller_runtime_webhook_latency_seconds{webhook} (webhook = the path,
 * as controller-runtime labels it) and
 * agentmesh_sidecar_injections_total{result,reason}.
 *
 * The webhook owns no cache: the process hands in two lookups. Both are
 * called on httpd event-loop threads, concurrently, so they must be
 * thread-safe and quick — answer from the informer cache and, on a miss,
 * ask the API server once with a short budget (a pod created right after
 * its AgentIdentity must not slip through uninjected). */
#ifndef AGENTMESH_WEBHOOK_SERVER_H
#define AGENTMESH_WEBHOOK_SERVER_H

#include <jansson.h>

#include "common/httpd.h"
#include "webhook/admission.h"
#include "webhook/inject.h"

/* The AgentIdentity in namespace `ns` named `key` (by_service_account 0), or
 * the one whose spec.serviceAccountName — defaulting to its own name — is
 * `key` (by_service_account 1; inject_identity_sa gives that name). A new
 * reference, or NULL when there is none. */
typedef json_t *(*webhook_identity_fn)(const char *ns, const char *key, int by_service_account,
                                       void *arg);
/* The labels object of namespace `ns` (new reference), or NULL if unknown. */
typedef json_t *(*webhook_ns_labels_fn)(const char *ns, void *arg);

struct webhook_config {
    struct inject_options inject;    /* strings must outlive the webhook */
    webhook_identity_fn identity;
    void *identity_arg;
    webhook_ns_labels_fn ns_labels;
    void *ns_labels_arg;
};

/* httpd max_body for the webhook listener: one byte over the decoder's
 * limit, so a review just too big still gets the decoder's 400 with a
 * reason, and anything larger the httpd's 413 without being read. */
#define WEBHOOK_MAX_BODY (ADMISSION_MAX_BYTES + 1u)

#define WEBHOOK_MUTATE_PATH "/mutate-pods"
#define WEBHOOK_VALIDATE_PATH "/validate-agentmesh"

struct webhook;

/* Registers both routes on `h` (before httpd_start). The returned handle
 * must outlive the httpd; free it after httpd_free. NULL on error. */
struct webhook *webhook_register(struct httpd *h, const struct webhook_config *cfg);
void webhook_free(struct webhook *w);

#endif
