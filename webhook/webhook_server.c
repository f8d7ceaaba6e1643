/* webhook_server.c — HTTP handlers for the admission webhooks (see webhook_server.h).
 *
 * Each handler is decode → decide → encode, with the metrics around it. The
 * decision functions are pure (inject.c, validate.c); this file only does
 * the lookups they need and turns errors into HTTP status codes.
 *
 * The patch, its parts and the reply are written into buffers that each
 * event-loop thread keeps for all its requests (a thread-specific
 * `scratch`, freed when the thread ends): allocating and freeing ~10 KiB of
 * them per request cost a malloc_consolidate each time, and their pages
 * stay warm in the cache from one request to the next. */
#include "webhook/webhook_server.h"

#include "common/log.h"
#include "common/metrics.h"
#include "webhook/admission.h"
#include "webhook/review_scan.h"
#include "webhook/validate.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct webhook {
    struct webhook_config cfg;
    struct metric *requests, *latency, *injections;
};

/* One event-loop thread's buffers, reused by each of its requests. */
struct scratch {
    struct inject_result inject;
    struct json_text reply;
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_free(void *arg) {
    struct scratch *s = arg;
    inject_result_free(&s->inject);
    json_text_free(&s->reply);
    free(s);
}

static void scratch_key_make(void) {
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0;
}

/* Buffers a huge review grew are let go, so a loop thread keeps only what
 * ordinary pods need (the controller's RSS budget is 20 MiB). */
#define SCRATCH_KEEP_BYTES (64u * 1024u)

static void trim(struct json_text *t) {
    if (t->cap > SCRATCH_KEEP_BYTES) json_text_free(t);
}

static void scratch_trim(struct scratch *s) {
    trim(&s->inject.text);
    trim(&s->inject.plan);
    trim(&s->inject.record);
    trim(&s->reply);
}

/* This thread's scratch, made on its first request; NULL when out of memory. */
static struct scratch *scratch_get(void) {
    pthread_once(&scratch_once, scratch_key_make);
    if (!scratch_key_ok) return NULL;
    struct scratch *s = pthread_getspecific(scratch_key);
    if (s) return s;
    s = calloc(1, sizeof *s);
    if (s && pthread_setspecific(scratch_key, s) != 0) {
        free(s);
        s = NULL;
    }
    return s;
}

/* Sends `body` (or a 400/500 error) and records the request metrics. */
static void finish(struct webhook *w, struct httpd_req *r, const char *path, double t0, int code,
                   const struct json_text *body, const char *reason) {
    if (code == 200)
        httpd_reply(r, 200, "application/json", body->p, body->n);
    else
        httpd_reply_error(r, code, code == 400 ? "BadRequest" : "InternalError", "%s", reason);
    metric_add(w->requests, 1, path, code == 200 ? "200" : code == 400 ? "400" : "500");
    metric_observe(w->latency, metrics_now() - t0, path);
}

/* Decodes the request body; on failure replies 400 and returns -1.
 * /mutate-pods reads only some pod fields: it uses the fast review_scan_pod. */
static int decode(struct webhook *w, struct httpd_req *r, const char *path, double t0,
                  struct admission_request *ar) {
    size_t len;
    const char *body = httpd_body(r, &len);
    char err[256];
    int rc = strcmp(path, WEBHOOK_MUTATE_PATH) == 0 ? review_scan_pod(body, len, ar, err, sizeof err)
                                         : admission_decode(body, len, ar, err, sizeof err);
    if (rc == 0) return 0;
    log_warn("webhook", "%s: bad AdmissionReview: %s", path, err);
    finish(w, r, path, t0, 400, NULL, err);
    return -1;
}

static void reply(struct webhook *w, struct httpd_req *r, const char *path, double t0,
                  struct scratch *s, const struct admission_request *ar,
                  const struct admission_response *resp) {
    int rc = admission_encode(&s->reply, ar, resp);
    finish(w, r, path, t0, rc == 0 ? 200 : 500, &s->reply, "encoding the AdmissionReview failed");
}

/* Runs the lookups and the injection decision for a pod CREATE. */
static int decide_pod(struct webhook *w, const struct admission_request *ar,
                      struct inject_result *res) {
    const struct webhook_config *c = &w->cfg;
    json_t *labels = c->ns_labels ? c->ns_labels(ar->namespace, c->ns_labels_arg) : NULL;
    struct inject_input in = {.pod = ar->object, .namespace = ar->namespace,
                              .namespace_labels = labels};
    json_t *identity = NULL;
    if (!inject_precheck(&in, &c->inject) && c->identity) {
        int by_sa;
        const char *key = inject_agent_key(ar->object, &by_sa);
        identity = c->identity(ar->namespace, key, by_sa, c->identity_arg);
        in.identity = identity;
    }
    int rc = inject_pod(&in, &c->inject, res);
    json_decref(identity);
    json_decref(labels);
    return rc;
}

/* The thread's scratch, or a 500 reply and NULL. */
static struct scratch *scratch_or_fail(struct webhook *w, struct httpd_req *r, const char *path,
                                       double t0) {
    struct scratch *s = scratch_get();
    if (!s) finish(w, r, path, t0, 500, NULL, "out of memory");
    return s;
}

static void mutate(struct httpd_req *r, void *arg) {
    struct webhook *w = arg;
    double t0 = metrics_now();
    struct scratch *s = scratch_or_fail(w, r, WEBHOOK_MUTATE_PATH, t0);
    struct admission_request ar;
    if (!s || decode(w, r, WEBHOOK_MUTATE_PATH, t0, &ar) != 0) return;
    struct admission_response resp = {.allowed = 1};
    struct inject_result *res = &s->inject;
    int is_pod_create = strcmp(ar.kind, "Pod") == 0 && ar.group[0] == '\0' &&
                        strcmp(ar.operation, "CREATE") == 0;
    if (is_pod_create) {
        if (decide_pod(w, &ar, res) != 0) {
            admission_request_free(&ar);
            finish(w, r, WEBHOOK_MUTATE_PATH, t0, 500, NULL, "building the patch failed");
            metric_add(w->injections, 1, "error", "internal");
            return;
        }
        resp.patch = res->ops ? res->patch : NULL;
        resp.patch_len = res->patch_len;
        resp.warnings = res->warnings;
        metric_add(w->injections, 1, res->skip ? "skipped" : "injected", res->skip ? res->skip : "");
        if (!res->skip) log_debug("webhook", "injecting a pod in %s", ar.namespace);
    }
    reply(w, r, WEBHOOK_MUTATE_PATH, t0, s, &ar, &resp);
    admission_request_free(&ar);
    scratch_trim(s);
}

static void validate(struct httpd_req *r, void *arg) {
    struct webhook *w = arg;
    double t0 = metrics_now();
    struct scratch *s = scratch_or_fail(w, r, WEBHOOK_VALIDATE_PATH, t0);
    struct admission_request ar;
    if (!s || decode(w, r, WEBHOOK_VALIDATE_PATH, t0, &ar) != 0) return;
    char msg[512] = "";
    struct admission_response resp = {
        .allowed = validate_request(ar.kind, ar.operation, ar.object, ar.old_object, msg, sizeof msg),
        .message = msg,
    };
    if (!resp.allowed)
        log_info("webhook", "denied %s %s/%s: %s", ar.kind, ar.namespace, ar.name, msg);
    reply(w, r, WEBHOOK_VALIDATE_PATH, t0, s, &ar, &resp);
    admission_request_free(&ar);
    scratch_trim(s);
}

struct webhook *webhook_register(struct httpd *h, const struct webhook_config *cfg) {
    struct webhook *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->cfg = *cfg;
    w->requests = metrics_counter("controller_runtime_webhook_requests_total",
                                  "Admission requests served, by webhook path and HTTP code.",
                                  "webhook,code");
    w->latency = metrics_histogram("controller_runtime_webhook_latency_seconds",
                                   "Admission request latency, by webhook path.", "webhook", NULL, 0);
    w->injections = metrics_counter("agentmesh_sidecar_injections_total",
                                    "Sidecar injection decisions, by result and skip reason.",
                                    "result,reason");
    if (!w->requests || !w->latency || !w->injections ||
        httpd_route(h, "POST", WEBHOOK_MUTATE_PATH, 0, mutate, w) != 0 ||
        httpd_route(h, "POST", WEBHOOK_VALIDATE_PATH, 0, validate, w) != 0) {
        free(w);
        return NULL;
    }
    return w;
}

void webhook_free(struct webhook *w) {
    free(w);
}
