/* httpd.c — evhttp listeners with routes, limits and optional TLS (httpd.h).
 *
 * Each thread owns an event_base and an evhttp bound to its own
 * SO_REUSEPORT listener on the shared port; the route table is written
 * before start and read-only afterwards, so the request path takes no lock
 * except the rate limiter's and the TLS context swap. */
#include "common/httpd.h"

#include "common/bev_write.h"
#include "common/json.h"
#include "common/log.h"
#include "common/sched_slice.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/queue.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_ROUTES 32
#define MAX_THREADS 16
#define FLUSH_MAX 64     /* plain replies written per callback; more wait for the loop's next turn */

struct route {
    char *method;
    char *path;
    size_t path_len;
    int prefix;
    httpd_handler fn;
    void *arg;
};

struct loop {
    struct httpd *owner;
    struct event_base *base;
    struct evhttp *http;
    struct evconnlistener *listener;
    struct event *stop_event;   /* activated to stop: unlike loopbreak, never lost before the loop runs */
    struct event *flush_event;  /* writes the replies below once the callback that made them returns */
    struct bufferevent *to_flush[FLUSH_MAX];   /* each holds a reference */
    int nflush;
    pthread_t thread;
    int running;
};

struct httpd {
    struct httpd_options opts;
    char *name, *address;
    struct route routes[MAX_ROUTES];
    int nroutes;
    struct loop loops[MAX_THREADS];
    int nloops;
    int port;
    pthread_mutex_t lock;    /* guards tls and the rate bucket */
    SSL_CTX *tls;
    double tokens, last_refill;
    void (*on_stop)(struct event_base *base, void *arg);
    void *on_stop_arg;
};

struct httpd_req {
    struct evhttp_request *ev;
    struct loop *loop;
    char *path;
    char *body;
    size_t body_len;
    struct evkeyvalq query;
    int query_parsed;
};

static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
static void enable_libevent_threads(void) {
    if (evthread_use_pthreads() != 0) log_error("httpd", "evthread_use_pthreads failed");
}

struct httpd *httpd_new(const struct httpd_options *opts) {
    pthread_once(&threads_once, enable_libevent_threads);
    struct httpd *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->opts = *opts;
    h->name = strdup(opts->name ? opts->name : "http");
    h->address = strdup(opts->address ? opts->address : "127.0.0.1");
    if (!h->name || !h->address) {
        free(h->name);
        free(h->address);
        free(h);
        return NULL;
    }
    if (h->opts.threads <= 0) h->opts.threads = 1;
    if (h->opts.threads > MAX_THREADS) h->opts.threads = MAX_THREADS;
    if (h->opts.max_body == 0) h->opts.max_body = 1 << 20;
    if (h->opts.timeout_seconds <= 0) h->opts.timeout_seconds = 30;
    h->tokens = h->opts.max_requests_per_second;
    pthread_mutex_init(&h->lock, NULL);
    return h;
}

int httpd_route(struct httpd *h, const char *method, const char *path, int prefix,
                httpd_handler fn, void *arg) {
    if (h->nroutes == MAX_ROUTES) return -1;
    struct route *r = &h->routes[h->nroutes];
    r->method = method ? strdup(method) : NULL;
    r->path = strdup(path);
    if ((method && !r->method) || !r->path) {
        free(r->method);
        free(r->path);
        return -1;
    }
    r->path_len = strlen(path);
    r->prefix = prefix;
    r->fn = fn;
    r->arg = arg;
    h->nroutes++;
    return 0;
}

int httpd_set_tls(struct httpd *h, SSL_CTX *ctx) {
    if (!ctx || SSL_CTX_up_ref(ctx) != 1) return -1;
    pthread_mutex_lock(&h->lock);
    SSL_CTX *old = h->tls;
    h->tls = ctx;
    pthread_mutex_unlock(&h->lock);
    SSL_CTX_free(old);
    return 0;
}

int httpd_port(const struct httpd *h) { return h->port; }

/* Token bucket per listener; refilled from the monotonic clock. */
static int rate_allow(struct httpd *h) {
    if (h->opts.max_requests_per_second <= 0) return 1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    pthread_mutex_lock(&h->lock);
    double rate = h->opts.max_requests_per_second;
    h->tokens += (now - h->last_refill) * rate;
    if (h->tokens > rate) h->tokens = rate;
    h->last_refill = now;
    int ok = h->tokens >= 1.0;
    if (ok) h->tokens -= 1.0;
    pthread_mutex_unlock(&h->lock);
    return ok;
}

static const char *method_name(enum evhttp_cmd_type t) {
    switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    }
    return "UNKNOWN";
}

static void req_free(struct httpd_req *r) {
    if (r->query_parsed) evhttp_clear_headers(&r->query);
    free(r->path);
    free(r->body);
    free(r);
}

/* Builds our request view: decoded path and a NUL-terminated copy of the body. */
static struct httpd_req *req_new(struct evhttp_request *ev, struct loop *loop) {
    struct httpd_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->ev = ev;
    r->loop = loop;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
    const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
    r->path = raw ? evhttp_uridecode(raw, 0, NULL) : strdup("/");
    struct evbuffer *in = evhttp_request_get_input_buffer(ev);
    r->body_len = evbuffer_get_length(in);
    r->body = malloc(r->body_len + 1);
    if (!r->path || !r->body) {
        req_free(r);
        return NULL;
    }
    if (evbuffer_remove(in, r->body, r->body_len) != (int)r->body_len) {
        req_free(r);
        return NULL;
    }
    r->body[r->body_len] = '\0';
    return r;
}

static const struct route *find_route(const struct httpd *h, const char *method,
                                      const char *path, int *path_known) {
    const struct route *prefix_match = NULL;
    *path_known = 0;
    for (int i = 0; i < h->nroutes; i++) {
        const struct route *rt = &h->routes[i];
        int hit = rt->prefix ? strncmp(path, rt->path, rt->path_len) == 0
                             : strcmp(path, rt->path) == 0;
        if (!hit) continue;
        *path_known = 1;
        if (rt->method && strcmp(rt->method, method) != 0) continue;
        if (!rt->prefix) return rt;
        if (!prefix_match) prefix_match = rt;
    }
    return prefix_match;
}

static void dispatch(struct evhttp_request *ev, void *arg) {
    struct loop *loop = arg;
    struct httpd *h = loop->owner;
    struct httpd_req *r = req_new(ev, loop);
    if (!r) {
        evhttp_send_error(ev, 500, "out of memory");
        return;
    }
    if (!rate_allow(h)) {
        httpd_reply_error(r, 429, "TooManyRequests", "rate limit of %d requests/s exceeded",
                          h->opts.max_requests_per_second);
        return;
    }
    const char *method = method_name(evhttp_request_get_command(ev));
    int known = 0;
    const struct route *rt = find_route(h, method, r->path, &known);
    if (!rt) {
        if (known) httpd_reply_error(r, 405, "MethodNotAllowed", "%s not allowed on %s", method, r->path);
        else httpd_reply_error(r, 404, "NotFound", "no route for %s", r->path);
        return;
    }
    rt->fn(r, rt->arg);
}

/* evhttp asks for a bufferevent per connection: plain, or OpenSSL over the current context. */
static struct bufferevent *make_bev(struct event_base *base, void *arg) {
    struct httpd *h = arg;
    pthread_mutex_lock(&h->lock);
    SSL *ssl = h->tls ? SSL_new(h->tls) : NULL;
    pthread_mutex_unlock(&h->lock);
    if (!ssl) return NULL; /* evhttp drops the connection */
    return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE | BEV_OPT_THREADSAFE);
}

/* Plain connections: a reply goes out in the loop turn that made it, once
 * the callback that made it returns, instead of on the next turn. Left to
 * the bufferevent, every reply cost a turn of its own (an epoll_wait for
 * writability, and two epoll_ctl to watch for it and stop; strace of the
 * trust API showed it per request). Not from inside httpd_reply: handlers
 * count and audit after replying, and a client must not see its reply
 * before that is done. The flush event is made active, so libevent runs it
 * after the current callback in the same turn. The reference keeps each
 * bufferevent alive even if evhttp frees its connection meanwhile. */
static void flush_after_callback(struct loop *loop, struct bufferevent *bev) {
    if (loop->nflush == FLUSH_MAX) return;   /* the bufferevent writes it next turn, as it would anyway */
    bufferevent_incref(bev);
    loop->to_flush[loop->nflush++] = bev;
    if (loop->nflush == 1) event_active(loop->flush_event, EV_TIMEOUT, 0);
}

/* Writes one reply now. When all of it is written, the write callback is
 * run as the bufferevent would run it: evhttp then finishes the request and
 * starts reading the next one (or frees the connection). A partial write or
 * an error is left to the bufferevent, which still watches for writability
 * and reports errors as before. */
static void write_now(struct bufferevent *bev) {
    if (bev_write_now(bev)) bufferevent_trigger(bev, EV_WRITE, 0);
}

static void flush_replies(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct loop *loop = arg;
    struct bufferevent *bevs[FLUSH_MAX];
    int n = loop->nflush;
    memcpy(bevs, loop->to_flush, (size_t)n * sizeof bevs[0]);   /* a write callback may queue more */
    loop->nflush = 0;
    for (int i = 0; i < n; i++) {
        write_now(bevs[i]);
        bufferevent_decref(bevs[i]);
    }
}

static void stop_loop(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void *loop_main(void *arg) {
    struct loop *loop = arg;
    int slice = loop->owner->opts.sched_slice_us;
    char err[128];
    if (slice > 0 && sched_slice_set(slice, err, sizeof err) != 0)
        log_warn("httpd", "%s: %s (keeping the kernel's slice)", loop->owner->name, err);
    event_base_dispatch(loop->base);
    if (loop->owner->on_stop) loop->owner->on_stop(loop->base, loop->owner->on_stop_arg);
    flush_replies(-1, 0, loop);   /* what on_stop answered, and what a stop cut short */
    return NULL;
}

void httpd_on_loop_stop(struct httpd *h, void (*fn)(struct event_base *base, void *arg), void *arg) {
    h->on_stop = fn;
    h->on_stop_arg = arg;
}

static int resolve(const char *address, int port, struct sockaddr_storage *ss, socklen_t *len) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, address, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *len = sizeof *in4;
        return 0;
    }
    if (inet_pton(AF_INET6, address, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof *in6;
        return 0;
    }
    return -1;
}

static int bound_port(evutil_socket_t fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int loop_init(struct httpd *h, struct loop *loop, char *err, size_t errlen) {
    loop->owner = h;
    /* The changelist folds the epoll_ctl add/del pairs libevent makes for
     * each keep-alive request into one change per loop turn (strace: 4
     * epoll_ctl calls per request without it). We never dup() our fds, the
     * one case where it misbehaves. */
    struct event_config *cfg = event_config_new();
    if (cfg && event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) == 0)
        loop->base = event_base_new_with_config(cfg);
    if (cfg) event_config_free(cfg);
    loop->http = loop->base ? evhttp_new(loop->base) : NULL;
    loop->stop_event = loop->base ? event_new(loop->base, -1, 0, stop_loop, loop->base) : NULL;
    loop->flush_event = loop->base ? event_new(loop->base, -1, 0, flush_replies, loop) : NULL;
    if (!loop->http || !loop->stop_event || !loop->flush_event) {
        snprintf(err, errlen, "%s: cannot create event loop", h->name);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (resolve(h->address, h->port, &ss, &sslen) != 0) {
        snprintf(err, errlen, "%s: bad listen address \"%s\"", h->name, h->address);
        return -1;
    }
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;
    if (h->opts.threads > 1) flags |= LEV_OPT_REUSEABLE_PORT;
    loop->listener = evconnlistener_new_bind(loop->base, NULL, NULL, flags, 1024,
                                             (struct sockaddr *)&ss, (int)sslen);
    if (!loop->listener) {
        snprintf(err, errlen, "%s: cannot listen on %s:%d: %s", h->name, h->address, h->port,
                 strerror(errno));
        return -1;
    }
    /* Linux copies TCP_NODELAY from the listener to accepted sockets: without
     * it, small replies wait ~40 ms for Nagle + delayed ACK. */
    int one = 1;
    if (setsockopt(evconnlistener_get_fd(loop->listener), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        log_warn("httpd", "%s: TCP_NODELAY: %s", h->name, strerror(errno));
    if (h->port == 0) h->port = bound_port(evconnlistener_get_fd(loop->listener));
    if (!evhttp_bind_listener(loop->http, loop->listener)) {
        snprintf(err, errlen, "%s: evhttp_bind_listener failed", h->name);
        return -1;
    }
    evhttp_set_max_body_size(loop->http, (ev_ssize_t)h->opts.max_body);
    evhttp_set_max_headers_size(loop->http, 16384);
    evhttp_set_timeout(loop->http, h->opts.timeout_seconds);
    evhttp_set_allowed_methods(loop->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                               EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                               EVHTTP_REQ_PATCH);
    if (h->opts.tls) evhttp_set_bevcb(loop->http, make_bev, h);
    evhttp_set_gencb(loop->http, dispatch, loop);
    return 0;
}

int httpd_start(struct httpd *h, char *err, size_t errlen) {
    if (h->opts.tls && !h->tls) {
        snprintf(err, errlen, "%s: TLS requested but no certificate loaded", h->name);
        return -1;
    }
    h->port = h->opts.port;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    h->last_refill = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    for (int i = 0; i < h->opts.threads; i++) {
        struct loop *loop = &h->loops[i];
        h->nloops++;
        if (loop_init(h, loop, err, errlen) != 0) return -1;
    }
    for (int i = 0; i < h->nloops; i++) {
        if (pthread_create(&h->loops[i].thread, NULL, loop_main, &h->loops[i]) != 0) {
            snprintf(err, errlen, "%s: cannot start thread", h->name);
            return -1;
        }
        h->loops[i].running = 1;
    }
    log_info("httpd", "%s listening on %s:%d%s (%d thread%s)", h->name, h->address, h->port,
             h->opts.tls ? " with TLS" : "", h->nloops, h->nloops == 1 ? "" : "s");
    return 0;
}

void httpd_free(struct httpd *h) {
    if (!h) return;
    for (int i = 0; i < h->nloops; i++) {
        struct loop *loop = &h->loops[i];
        if (loop->running) {
            event_active(loop->stop_event, EV_READ, 0);
            pthread_join(loop->thread, NULL);
        }
        if (loop->stop_event) event_free(loop->stop_event);
        if (loop->flush_event) event_free(loop->flush_event);
        if (loop->http) evhttp_free(loop->http); /* frees the bound listener too */
        else if (loop->listener) evconnlistener_free(loop->listener);
        if (loop->base) event_base_free(loop->base);
    }
    for (int i = 0; i < h->nroutes; i++) {
        free(h->routes[i].method);
        free(h->routes[i].path);
    }
    SSL_CTX_free(h->tls);
    pthread_mutex_destroy(&h->lock);
    free(h->name);
    free(h->address);
    free(h);
}

const char *httpd_method(const struct httpd_req *r) {
    return method_name(evhttp_request_get_command(r->ev));
}

const char *httpd_path(const struct httpd_req *r) { return r->path; }

const char *httpd_uri(const struct httpd_req *r) { return evhttp_request_get_uri(r->ev); }

const char *httpd_query(struct httpd_req *r, const char *key) {
    if (!r->query_parsed) {
        TAILQ_INIT(&r->query);
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->ev);
        const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
        if (q && evhttp_parse_query_str(q, &r->query) != 0) evhttp_clear_headers(&r->query);
        r->query_parsed = 1;
    }
    return evhttp_find_header(&r->query, key);
}

const char *httpd_header(const struct httpd_req *r, const char *name) {
    return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}

const char *httpd_body(struct httpd_req *r, size_t *len) {
    if (len) *len = r->body_len;
    return r->body;
}

struct event_base *httpd_req_base(const struct httpd_req *r) { return r->loop->base; }

void httpd_set_header(struct httpd_req *r, const char *name, const char *value) {
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->ev);
    evhttp_remove_header(out, name);
    if (evhttp_add_header(out, name, value) != 0)
        log_warn("httpd", "cannot set response header %s", name);
}

void httpd_reply(struct httpd_req *r, int code, const char *content_type, const void *body,
                 size_t len) {
    struct evbuffer *buf = evbuffer_new();
    if (buf && len && evbuffer_add(buf, body, len) != 0) {
        evbuffer_free(buf);
        buf = NULL;
    }
    if (!buf) {
        evhttp_send_error(r->ev, 500, "out of memory");
        req_free(r);
        return;
    }
    if (content_type) httpd_set_header(r, "Content-Type", content_type);
    struct evhttp_connection *conn = evhttp_request_get_connection(r->ev);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    struct loop *loop = r->loop;
    evhttp_send_reply(r->ev, code, NULL, buf);
    evbuffer_free(buf);
    req_free(r);
    if (!bev) return;
    if (loop->owner->opts.tls) {
        /* evhttp queues the head and the body as two chains, and OpenSSL
         * would make each a TLS record and a write(2); one chain goes out as
         * one. The write itself happens later in the loop, so the
         * connection is still there. Big replies (several records anyway)
         * are not copied again. */
        struct evbuffer *out = bufferevent_get_output(bev);
        if (evbuffer_get_length(out) <= 16384) evbuffer_pullup(out, -1);
    } else {
        flush_after_callback(loop, bev);
    }
}

void httpd_reply_json(struct httpd_req *r, int code, json_t *body) {
    char *text = body ? json_compact(body) : NULL;
    json_decref(body);
    if (!text) {
        httpd_reply(r, 500, "application/json", "{\"error\":\"InternalError\"}", 25);
        return;
    }
    httpd_reply(r, code, "application/json", text, strlen(text));
    free(text);
}

void httpd_reply_error(struct httpd_req *r, int code, const char *reason, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    httpd_reply_json(r, code, json_pack("{s:s, s:s}", "error", reason, "message", msg));
}
