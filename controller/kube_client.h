/* kube_client.h — the Kubernetes API client: configuration and verbs.
 *
 * One client per process, safe to share between threads: each call takes a
 * libcurl easy handle from a small pool (connection reuse, HTTP keep-alive)
 * and returns it. Errors from the API server come back as its own Status
 * object (code, reason, message), so callers can branch on reason
 * ("NotFound", "Conflict", "AlreadyExists", "Gone", ...). */
#ifndef AGENTMESH_KUBE_CLIENT_H
#define AGENTMESH_KUBE_CLIENT_H

#include <jansson.h>
#include <stddef.h>

/* Where and how to reach the API server. Strings are owned (free with
 * kube_config_free). Exactly one credential is set, or none. */
struct kube_config {
    char *server;          /* https://host:port, no trailing slash */
    char *ca_file;         /* CA bundle path, or NULL */
    char *ca_data;         /* PEM bytes (decoded certificate-authority-data), or NULL */
    int insecure_skip_tls_verify;
    char *token;           /* bearer token, or NULL */
    char *token_file;      /* re-read at least every 60 s (bound tokens rotate), or NULL */
    char *client_cert_file, *client_key_file;   /* or NULL */
    char *client_cert_data, *client_key_data;   /* decoded PEM, or NULL */
    char *namespace;       /* context namespace / in-cluster namespace, or NULL */
};

/* Loads a kubeconfig file (current-context, or `context` when non-NULL).
 * On error returns -1 and writes a message naming the offending field
 * ("contexts[1].context.cluster: cluster \"x\" not found") into err. */
int kube_config_load_file(const char *path, const char *context, struct kube_config *out,
                          char *err, size_t errlen);
/* In-cluster: KUBERNETES_SERVICE_HOST/PORT, the service-account token file,
 * CA and namespace under `sa_dir` (NULL = /var/run/secrets/kubernetes.io/serviceaccount). */
int kube_config_in_cluster(const char *sa_dir, struct kube_config *out, char *err, size_t errlen);
/* The usual order: `explicit_path` (--kubeconfig), else $KUBECONFIG, else in-cluster. */
int kube_config_resolve(const char *explicit_path, struct kube_config *out, char *err, size_t errlen);
void kube_config_free(struct kube_config *cfg);

struct kube_client;

struct kube_client *kube_client_new(const struct kube_config *cfg, char *err, size_t errlen);
void kube_client_free(struct kube_client *c);

/* A resource type. `group` "" means the core group ("/api/v1"). */
struct kube_gvr {
    const char *group;     /* "", "apps", "agentmesh.io" */
    const char *version;   /* "v1", "v1alpha1" */
    const char *resource;  /* plural: "configmaps", "agentidentities" */
    int namespaced;
};

/* The outcome of one call. `status` is the HTTP code (0 on a transport error).
 * On success `body` holds the decoded reply. On failure `reason` and
 * `message` come from the API's Status object when it sent one, else they
 * describe the transport/decoding problem. Free with kube_result_free. */
struct kube_result {
    int status;
    json_t *body;
    char reason[64];
    char message[512];
};
void kube_result_free(struct kube_result *r);
int kube_ok(const struct kube_result *r);               /* 2xx */
int kube_is_reason(const struct kube_result *r, const char *reason);

enum kube_patch_type {
    KUBE_PATCH_MERGE,        /* application/merge-patch+json */
    KUBE_PATCH_JSON,         /* application/json-patch+json */
    KUBE_PATCH_STRATEGIC,    /* application/strategic-merge-patch+json */
    KUBE_PATCH_APPLY,        /* application/apply-patch+yaml (server-side apply) */
};

/* Options for list: label/field selectors, page size, continue token. */
struct kube_list_opts {
    const char *label_selector;
    const char *field_selector;
    int limit;                 /* 0 = server default */
    const char *continue_token;
    const char *resource_version;
};

/* `ns` is ignored for cluster-scoped resources; NULL/"" on a namespaced
 * resource means all namespaces (list/watch only). `subresource` may be
 * NULL or "status". Every verb fills `out` and returns 0 on 2xx, -1 otherwise. */
int kube_get(struct kube_client *c, const struct kube_gvr *gvr, const char *ns, const char *name,
             const char *subresource, struct kube_result *out);
/* One page. For every page use kube_list_pages. */
int kube_list(struct kube_client *c, const struct kube_gvr *gvr, const char *ns,
              const struct kube_list_opts *opts, struct kube_result *out);
/* Lists page by page (opts->limit per page), following `continue`, and
 * hands each page's List body to on_page (which may take its items apart)
 * before fetching the next, so only one page is ever in memory. A non-zero
 * return from on_page stops the walk. The first page's
 * metadata.resourceVersion is the list's: later pages are read from that
 * snapshot. 0: out holds the last page. -1: out holds the failing reply
 * (e.g. 410 when the continue token expired: list again). */
typedef int (*kube_page_fn)(json_t *page, void *arg);
int kube_list_pages(struct kube_client *c, const struct kube_gvr *gvr, const char *ns,
                    const struct kube_list_opts *opts, kube_page_fn on_page, void *arg,
                    struct kube_result *out);
int kube_create(struct kube_client *c, const struct kube_gvr *gvr, const char *ns, const json_t *obj,
                struct kube_result *out);
/* PUT; on "status" subresource this is UpdateStatus. */
int kube_update(struct kube_client *c, const struct kube_gvr *gvr, const char *ns, const char *name,
                const char *subresource, const json_t *obj, struct kube_result *out);
/* `body` is JSON (apply patches are JSON too, YAML being a superset).
 * `field_manager` is required for KUBE_PATCH_APPLY; `force` only applies there. */
int kube_patch(struct kube_client *c, const struct kube_gvr *gvr, const char *ns, const char *name,
               const char *subresource, enum kube_patch_type type, const json_t *body,
               const char *field_manager, int force, struct kube_result *out);
/* `propagation` NULL, "Background", "Foreground" or "Orphan". 404 is an error (check the reason). */
int kube_delete(struct kube_client *c, const struct kube_gvr *gvr, const char *ns, const char *name,
                const char *propagation, struct kube_result *out);
/* Raw GET of an absolute API path ("/version", "/apis/agentmesh.io/v1alpha1"). */
int kube_get_path(struct kube_client *c, const char *path, struct kube_result *out);

/* Streaming GET: calls `on_line` for each complete newline-terminated line
 * of the reply body (watch streams are newline-delimited JSON). Lines of any
 * length up to `max_line` bytes are reassembled across reads; a longer line
 * aborts the stream with status -1 and reason "LineTooLong". `on_line`
 * returns 0 to go on, non-zero to stop. `*stop` (may be NULL) is polled at
 * least once a second so another thread can end the stream. Returns like
 * the verbs; a clean end of stream by the server is 0 with out->status 200. */
typedef int (*kube_line_fn)(const char *line, size_t len, void *arg);
int kube_stream(struct kube_client *c, const char *path_and_query, size_t max_line,
                kube_line_fn on_line, void *arg, volatile int *stop, struct kube_result *out);

/* Path helper: "/apis/G/V[/namespaces/NS]/RESOURCE[/NAME][/SUB]" into buf. -1 if it doesn't fit. */
int kube_path(char *buf, size_t buflen, const struct kube_gvr *gvr, const char *ns, const char *name,
              const char *subresource);

/* Counts for rest_client_requests_total{code,method}; the client calls this
 * hook after every request when set (metrics live elsewhere). */
typedef void (*kube_request_hook)(const char *method, int code, double seconds);
void kube_client_set_request_hook(struct kube_client *c, kube_request_hook hook);

#endif
