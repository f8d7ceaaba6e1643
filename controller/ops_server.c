/* ops_server.c — metrics and probes on one small listener (ops_server.h). */
#include "controller/ops_server.h"

#include "common/httpd.h"
#include "common/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHECKS 8

struct check {
    char name[32];
    ops_check_fn fn;
    void *arg;
};

struct ops_server {
    struct httpd *http;
    struct check checks[MAX_CHECKS];
    int nchecks;
    void (*scrape_fn)(void *);
    void *scrape_arg;
};

static void handle_metrics(struct httpd_req *r, void *arg) {
    struct ops_server *s = arg;
    if (s->scrape_fn) s->scrape_fn(s->scrape_arg);
    size_t len;
    char *text = metrics_render(&len);
    if (!text) {
        httpd_reply_error(r, 500, "InternalError", "cannot render metrics");
        return;
    }
    httpd_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

static void handle_healthz(struct httpd_req *r, void *arg) {
    (void)arg;
    httpd_reply(r, 200, "text/plain", "ok", 2);
}

static void handle_readyz(struct httpd_req *r, void *arg) {
    struct ops_server *s = arg;
    char body[2048];
    size_t n = 0;
    int ready = 1;
    for (int i = 0; i < s->nchecks; i++) {
        char why[256] = "";
        int ok = s->checks[i].fn(s->checks[i].arg, why, sizeof why);
        ready &= ok;
        int w = snprintf(body + n, sizeof body - n, "[%s] %s%s%s\n", ok ? "+" : "-", s->checks[i].name,
                         ok ? " ok" : " failed: ", ok ? "" : why);
        if (w > 0 && (size_t)w < sizeof body - n) n += (size_t)w;
    }
    int w = snprintf(body + n, sizeof body - n, ready ? "readyz check passed\n" : "readyz check failed\n");
    if (w > 0 && (size_t)w < sizeof body - n) n += (size_t)w;
    httpd_reply(r, ready ? 200 : 503, "text/plain", body, n);
}

struct ops_server *ops_server_new(const char *address, int port) {
    struct ops_server *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    struct httpd_options o = {.name = "metrics", .address = address, .port = port, .threads = 1,
                              .max_body = 4096, .timeout_seconds = 10};
    s->http = httpd_new(&o);
    if (!s->http || httpd_route(s->http, "GET", "/metrics", 0, handle_metrics, s) != 0 ||
        httpd_route(s->http, "GET", "/healthz", 0, handle_healthz, s) != 0 ||
        httpd_route(s->http, "GET", "/readyz", 0, handle_readyz, s) != 0) {
        ops_server_free(s);
        return NULL;
    }
    return s;
}

int ops_server_add_check(struct ops_server *s, const char *name, ops_check_fn fn, void *arg) {
    if (s->nchecks == MAX_CHECKS) return -1;
    struct check *c = &s->checks[s->nchecks++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->fn = fn;
    c->arg = arg;
    return 0;
}

void ops_server_on_scrape(struct ops_server *s, void (*fn)(void *arg), void *arg) {
    s->scrape_fn = fn;
    s->scrape_arg = arg;
}

int ops_server_start(struct ops_server *s, char *err, size_t errlen) { return httpd_start(s->http, err, errlen); }
int ops_server_port(struct ops_server *s) { return httpd_port(s->http); }

void ops_server_free(struct ops_server *s) {
    if (!s) return;
    httpd_free(s->http);
    free(s);
}
