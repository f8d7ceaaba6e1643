/* server.c — wires the sidecar's routes (routes.h) to its two listeners and
 * to the controller client (see server.h).
 *
 * A route either answers at once or forwards a body to the controller; the
 * client request is then held until the controller answers and gets its
 * status and body unchanged, or 502/504 when the controller cannot be
 * reached. Every answer is counted in agentmesh_sidecar_requests_total. */
#include "sidecar/server.h"

#include "common/httpd.h"
#include "common/json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "sidecar/keystore.h"
#include "sidecar/routes.h"
#include "sidecar/upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum which { R_IDENTITY, R_CHALLENGE, R_RESPOND, R_VERIFY, R_SIGNALS, NROUTES };

struct binding {
    struct sidecar *s;
    enum which which;
    const char *method, *path, *name;
};

struct sidecar {
    struct sidecar_config cfg;
    struct keystore *ks;
    struct upstream *up;
    struct httpd *api, *metrics;
    struct binding bindings[NROUTES];
    struct metric *requests, *upstream_seconds, *reloads, *loaded;
};

/* A client request waiting for the controller. */
struct pending {
    struct sidecar *s;
    struct httpd_req *req;
    const char *name, *upstream;
    double start;
};

static void count(struct sidecar *s, const char *route, int code) {
    char c[8];
    snprintf(c, sizeof c, "%d", code);
    metric_add(s->requests, 1, route, c);
}

static void on_upstream(void *arg, int status, const char *body, size_t len, const char *error,
                        int timed_out) {
    struct pending *p = arg;
    metric_observe(p->s->upstream_seconds, metrics_now() - p->start, p->upstream);
    if (status == 0) {
        int code = timed_out ? 504 : 502;
        log_warn("sidecar", "controller %s: %s", p->upstream, error);
        httpd_reply_error(p->req, code, timed_out ? "GatewayTimeout" : "BadGateway",
                          "controller %s: %s", p->upstream, error);
        count(p->s, p->name, code);
    } else {
        httpd_reply(p->req, status, "application/json", body, len);
        count(p->s, p->name, status);
    }
    free(p);
}

/* Sends r's local reply, or forwards r's body to the controller. */
static void finish(struct sidecar *s, struct httpd_req *req, const char *name,
                   struct route_result *r) {
    if (!r->upstream) {
        int code = r->code;
        httpd_reply_json(req, code, r->body);
        count(s, name, code);
        return;
    }
    char *text = json_compact(r->body);
    json_decref(r->body);
    struct pending *p = text ? calloc(1, sizeof *p) : NULL;
    if (p) {
        *p = (struct pending){s, req, name, r->upstream, metrics_now()};
        if (upstream_post(s->up, httpd_req_base(req), r->upstream, text, strlen(text), on_upstream, p) == 0) {
            free(text);
            return;
        }
    }
    free(p);
    free(text);
    httpd_reply_error(req, 503, "ServiceUnavailable", "cannot call the controller (no identity loaded?)");
    count(s, name, 503);
}

static void handle(struct httpd_req *req, void *arg) {
    struct binding *b = arg;
    struct sidecar *s = b->s;
    size_t len;
    const char *body = httpd_body(req, &len);
    struct route_result r;
    switch (b->which) {
    case R_IDENTITY: route_identity(s->ks, s->cfg.agent, &r); break;
    case R_CHALLENGE: route_challenge(body, len, &r); break;
    case R_RESPOND: route_respond(s->ks, body, len, &r); break;
    case R_VERIFY: route_verify(body, len, &r); break;
    case R_SIGNALS: route_signals(s->ks, body, len, &r); break;
    default:
        httpd_reply_error(req, 500, "InternalError", "unbound route");
        return;
    }
    finish(s, req, b->name, &r);
}

static void handle_metrics(struct httpd_req *req, void *arg) {
    size_t len = 0;
    char *text = metrics_render(&len);
    if (!text) {
        httpd_reply_error(req, 500, "InternalError", "out of memory");
        return;
    }
    httpd_reply(req, 200, "text/plain; version=0.0.4", text, len);
    free(text);
}

static void handle_healthz(struct httpd_req *req, void *arg) {
    struct sidecar *s = arg;
    struct keystore_public pub;
    if (keystore_public(s->ks, &pub) == 0) httpd_reply(req, 200, "text/plain", "ok\n", 3);
    else httpd_reply(req, 503, "text/plain", "no identity loaded\n", 19);
}

int sidecar_poll_identity(struct sidecar *s) {
    char err[512];
    int rc = keystore_reload(s->ks, err, sizeof err);
    struct keystore_public pub;
    if (rc == 1 && keystore_public(s->ks, &pub) == 0) {
        log_info("sidecar", "identity loaded: did=%s key_id=%s", pub.did, pub.key_id);
        metric_add(s->reloads, 1, "success");
    } else if (rc < 0) {
        log_warn("sidecar", "%s (keeping the previous key, if any)", err);
        metric_add(s->reloads, 1, "error");
    }
    metric_set(s->loaded, keystore_public(s->ks, &pub) == 0 ? 1 : 0);
    return rc == 1;
}

static void declare_metrics(struct sidecar *s) {
    s->requests = metrics_counter("agentmesh_sidecar_requests_total",
                                  "Sidecar API requests by route and status code.", "route,code");
    s->upstream_seconds = metrics_histogram("agentmesh_sidecar_upstream_duration_seconds",
                                            "Latency of the sidecar's calls to the controller.",
                                            "path", NULL, 0);
    s->reloads = metrics_counter("agentmesh_sidecar_identity_reloads_total",
                                 "Identity (re)loads from the mounted Secret, by result.", "result");
    s->loaded = metrics_gauge("agentmesh_sidecar_identity_loaded",
                              "1 when the sidecar holds a valid identity.", NULL);
}

static struct httpd *listener(const char *name, const char *addr, int port) {
    struct httpd_options o = {.name = name, .address = addr, .port = port, .threads = 1,
                              .max_body = SIDECAR_MAX_BODY, .timeout_seconds = 30};
    return httpd_new(&o);
}

struct sidecar *sidecar_start(const struct sidecar_config *cfg, char *err, size_t errlen) {
    static const struct binding table[NROUTES] = {
        {NULL, R_IDENTITY, "GET", "/v1/identity", "identity"},
        {NULL, R_CHALLENGE, "POST", "/v1/challenge", "challenge"},
        {NULL, R_RESPOND, "POST", "/v1/respond", "respond"},
        {NULL, R_VERIFY, "POST", "/v1/verify", "verify"},
        {NULL, R_SIGNALS, "POST", "/v1/signals", "signals"},
    };
    struct sidecar *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    declare_metrics(s);
    s->ks = keystore_new(cfg->identity_dir);
    if (!s->ks) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    s->up = upstream_new(cfg->controller_url, cfg->ca_file, cfg->timeout_seconds, s->ks, err, errlen);
    if (!s->up) goto fail;
    sidecar_poll_identity(s);

    s->api = listener("sidecar-api", cfg->listen_addr, cfg->listen_port);
    s->metrics = listener("sidecar-metrics", cfg->metrics_addr, cfg->metrics_port);
    if (!s->api || !s->metrics) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    int bad = 0;
    for (int i = 0; i < NROUTES; i++) {
        s->bindings[i] = table[i];
        s->bindings[i].s = s;
        bad |= httpd_route(s->api, table[i].method, table[i].path, 0, handle, &s->bindings[i]);
    }
    bad |= httpd_route(s->metrics, "GET", "/metrics", 0, handle_metrics, s);
    bad |= httpd_route(s->metrics, "GET", "/healthz", 0, handle_healthz, s);
    if (bad) {
        snprintf(err, errlen, "cannot register routes");
        goto fail;
    }
    if (httpd_start(s->api, err, errlen) != 0 || httpd_start(s->metrics, err, errlen) != 0) goto fail;
    return s;
fail:
    sidecar_stop(s);
    return NULL;
}

int sidecar_api_port(const struct sidecar *s) { return httpd_port(s->api); }
int sidecar_metrics_port(const struct sidecar *s) { return httpd_port(s->metrics); }

void sidecar_stop(struct sidecar *s) {
    if (!s) return;
    upstream_close_idle(s->up);   /* on the API loop, so before it stops */
    httpd_free(s->api);
    httpd_free(s->metrics);
    upstream_free(s->up);
    keystore_free(s->ks);
    free(s);
}
