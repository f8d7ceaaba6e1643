/* httpd.h — HTTP(S) listeners on libevent's evhttp.
 *
 * Every port the project serves (API 8080, metrics 9090, webhooks 9443,
 * sidecar 8081/9091) is one httpd: a route table, body and header limits,
 * idle timeouts, and optionally TLS through OpenSSL bufferevents. `threads`
 * event loops share the port with SO_REUSEPORT, so the kernel spreads
 * connections over cores without a lock in the request path.
 *
 * Handlers run on an event-loop thread and must not block for long. A
 * handler either replies before returning, or keeps the request and replies
 * later from the same loop (httpd_req_base gives the loop, for async work
 * like the sidecar's calls to the controller). Every request gets exactly
 * one reply; the reply frees the request.
 *
 * sched_slice_us is applied by each loop thread to itself, whichever thread
 * calls httpd_start (the controller starts the webhook listener from its
 * certificate manager's thread): only the listeners get the short slice,
 * not the threads around them. */
#ifndef AGENTMESH_HTTPD_H
#define AGENTMESH_HTTPD_H

#include <jansson.h>
#include <openssl/ssl.h>
#include <stddef.h>

struct httpd;
struct httpd_req;
struct event_base;

typedef void (*httpd_handler)(struct httpd_req *req, void *arg);

struct httpd_options {
    const char *name;        /* for logs: "api", "webhook", "metrics" */
    const char *address;     /* "127.0.0.1", "0.0.0.0", "::" */
    int port;                /* 0 = any free port; httpd_port() tells which */
    int threads;             /* event loops on the port; 0 = 1 */
    size_t max_body;         /* larger bodies get 413; 0 = 1 MiB */
    int timeout_seconds;     /* per-connection read/write timeout; 0 = 30 */
    int tls;                 /* HTTPS: needs httpd_set_tls before start */
    int max_requests_per_second; /* per listener, token bucket; over → 429. 0 = unlimited */
    int sched_slice_us;      /* scheduler slice of the loop threads (sched_slice.h); 0 = kernel's */
};

struct httpd *httpd_new(const struct httpd_options *opts);
/* `method` NULL matches any method. `prefix` non-zero: `path` is a prefix
 * ("/api/v1/agents/"). Exact routes win over prefixes; unknown paths 404,
 * known paths with another method 405. Call before httpd_start. */
int httpd_route(struct httpd *h, const char *method, const char *path, int prefix,
                httpd_handler fn, void *arg);
/* Installs or swaps the TLS context (takes its own reference). New
 * connections use the new context at once: certificate reload without restart. */
int httpd_set_tls(struct httpd *h, SSL_CTX *ctx);
/* fn runs on each loop's thread once the loop has stopped, before anything
 * is freed: state a handler bound to a loop (an async client holding
 * requests) replies to what it holds and lets go. Call before httpd_start. */
void httpd_on_loop_stop(struct httpd *h, void (*fn)(struct event_base *base, void *arg), void *arg);
int httpd_start(struct httpd *h, char *err, size_t errlen);
int httpd_port(const struct httpd *h);
/* Stops the loops, joins their threads and frees everything. */
void httpd_free(struct httpd *h);

const char *httpd_method(const struct httpd_req *r);
const char *httpd_path(const struct httpd_req *r);      /* decoded, no query string */
/* The request target exactly as sent ("/api/v1/agents?x=1"): what a signature covers. */
const char *httpd_uri(const struct httpd_req *r);
/* Value of query parameter `key` (decoded), or NULL. */
const char *httpd_query(struct httpd_req *r, const char *key);
const char *httpd_header(const struct httpd_req *r, const char *name);
/* The body, NUL-terminated (the NUL is not counted in *len). Never NULL. */
const char *httpd_body(struct httpd_req *r, size_t *len);
struct event_base *httpd_req_base(const struct httpd_req *r);

void httpd_set_header(struct httpd_req *r, const char *name, const char *value);
void httpd_reply(struct httpd_req *r, int code, const char *content_type, const void *body,
                 size_t len);
/* Replies with `body` serialised (steals the reference). */
void httpd_reply_json(struct httpd_req *r, int code, json_t *body);
/* {"error": reason, "message": "..."} — the shape of every 4xx/5xx we send. */
void httpd_reply_error(struct httpd_req *r, int code, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
