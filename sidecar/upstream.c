/* upstream.c — signed POSTs to the controller over libevent's evhttp client
 * (see upstream.h).
 *
 * Connections are kept alive and reused: a new connection per call costs a
 * TCP and, with https, a TLS handshake (OpenSSL 3 spends ~1-2 ms of CPU on
 * one even when the session is resumed), which capped forwarded calls at
 * ~500-700/s. A finished call puts its connection in a small idle pool; the
 * next call on the same event loop takes the newest one. A connection is
 * only ever used by one call at a time and is never reconnected by evhttp:
 * once it closes (the controller's idle timeout, "Connection: close", an
 * error) it is freed and a new one is opened, so a TLS connection never
 * reuses a spent SSL object. A call that fails on a reused connection
 * before any answer (the controller closed it just as we sent) is retried
 * once on a fresh connection, signed anew.
 *
 * At most UPSTREAM_MAX_BUSY calls per loop are in flight; later ones wait
 * in order. Without the bound, a controller slower than the offered load
 * made every waiting call open its own connection (each TLS one another
 * handshake for the already busy controller): measured 285 MiB RSS and
 * 90% failures at 500 handshakes/s on a saturated machine. A call that
 * waited longer than the timeout fails as timed out when its turn comes. */
#include "sidecar/upstream.h"

#include "common/auth.h"
#include "common/log.h"
#include "common/tls.h"

#include <pthread.h>
#include <sys/socket.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define UPSTREAM_MAX_REPLY (1 << 20)
#define UPSTREAM_IDLE_MAX 8        /* idle connections kept, over all loops */
#define UPSTREAM_MAX_BUSY 8        /* calls in flight per loop */
#define UPSTREAM_MAX_LOOPS 8       /* event loops one upstream serves */

struct call;

/* One event loop's calls: touched only from that loop's thread. */
struct lane {
    struct event_base *base;
    int busy;                      /* calls in flight */
    struct call *head, *tail;      /* calls waiting for a slot, oldest first */
};

/* One connection to the controller, used by one call at a time. */
struct conn {
    struct upstream *u;
    struct evhttp_connection *evcon;
    struct event_base *base;
    int closed;              /* evhttp closed it: never to be used again */
    int pooled;              /* in u->idle */
    int draining;            /* counted in u->draining (upstream_close_idle) */
};

struct upstream {
    struct upstream_url url;
    char connect_host[256];  /* host without IPv6 brackets */
    char host_header[300];
    int timeout;
    SSL_CTX *tls;
    struct keystore *ks;
    pthread_mutex_t lock;    /* the session, the idle pool and the drain count */
    pthread_cond_t drained;
    /* TLS session resumption for new connections (measured without it: 345
     * calls/s when every call was its own connection). */
    SSL_SESSION *session;    /* the newest resumable session, or NULL */
    struct conn *idle[UPSTREAM_IDLE_MAX];
    int nidle;
    int closing;             /* upstream_close_idle ran: pool nothing more */
    int draining;            /* idle connections being freed on their loops */
    struct lane lanes[UPSTREAM_MAX_LOOPS];
    int nlanes;
};

struct call {
    struct upstream *u;
    struct event_base *base;
    struct lane *lane;
    struct call *next;       /* in lane's wait queue */
    struct timespec queued;  /* when it started waiting for a slot */
    upstream_done done;
    void *arg;
    struct conn *conn;
    int reused;              /* conn came from the pool */
    int retried;
    int have_error;
    enum evhttp_request_error error;
    char tls_error[160];     /* OpenSSL's reason, when TLS failed */
    char path[512];          /* prefix + path */
    size_t len;
    char body[];             /* len bytes, kept for a retry */
};

int upstream_parse_url(const char *url, struct upstream_url *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, 0);
    const char *why = NULL;
    if (!u) {
        why = "not a URL";
    } else {
        const char *scheme = evhttp_uri_get_scheme(u), *host = evhttp_uri_get_host(u);
        const char *path = evhttp_uri_get_path(u);
        if (!scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
            why = "scheme must be http or https";
        else if (!host || !*host || strlen(host) >= sizeof out->host)
            why = "missing or overlong host";
        else if (evhttp_uri_get_userinfo(u) || evhttp_uri_get_query(u) || evhttp_uri_get_fragment(u))
            why = "no user info, query or fragment allowed";
        else if (path && strlen(path) >= sizeof out->prefix)
            why = "path prefix too long";
        else {
            out->tls = strcmp(scheme, "https") == 0;
            snprintf(out->host, sizeof out->host, "%s", host);
            out->port = evhttp_uri_get_port(u);
            if (out->port < 0) out->port = out->tls ? 443 : 80;
            if (out->port == 0) why = "port must be 1..65535";
            snprintf(out->prefix, sizeof out->prefix, "%s", path ? path : "");
            size_t n = strlen(out->prefix);
            while (n > 0 && out->prefix[n - 1] == '/') out->prefix[--n] = '\0';
        }
    }
    if (u) evhttp_uri_free(u);
    if (why) {
        snprintf(err, errlen, "controller URL \"%.200s\": %s", url, why);
        return -1;
    }
    return 0;
}

/* OpenSSL hands every new session (a TLS 1.3 ticket) to this callback; the
 * newest one is offered on the next connection. */
static int session_ex_index = -1;
static pthread_once_t session_ex_once = PTHREAD_ONCE_INIT;
static void make_session_ex_index(void) { session_ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL); }

static int on_new_session(SSL *ssl, SSL_SESSION *session) {
    struct upstream *u = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), session_ex_index);
    if (!u || !SSL_SESSION_is_resumable(session)) return 0; /* 0: OpenSSL keeps ownership */
    pthread_mutex_lock(&u->lock);
    SSL_SESSION *old = u->session;
    u->session = session;
    pthread_mutex_unlock(&u->lock);
    SSL_SESSION_free(old);
    return 1; /* we own it now */
}

static int enable_resumption(struct upstream *u) {
    pthread_once(&session_ex_once, make_session_ex_index);
    if (session_ex_index < 0 || SSL_CTX_set_ex_data(u->tls, session_ex_index, u) != 1) return -1;
    SSL_CTX_set_session_cache_mode(u->tls, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(u->tls, on_new_session);
    return 0;
}

struct upstream *upstream_new(const char *url, const char *ca_file, int timeout_seconds,
                              struct keystore *ks, char *err, size_t errlen) {
    struct upstream *u = calloc(1, sizeof *u);
    if (u) {
        pthread_mutex_init(&u->lock, NULL);
        pthread_cond_init(&u->drained, NULL);
    }
    if (!u) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (upstream_parse_url(url, &u->url, err, errlen) != 0) {
        upstream_free(u);
        return NULL;
    }
    const char *h = u->url.host;
    size_t hl = strlen(h);
    if (h[0] == '[' && hl > 2 && h[hl - 1] == ']') snprintf(u->connect_host, sizeof u->connect_host, "%.*s", (int)hl - 2, h + 1);
    else snprintf(u->connect_host, sizeof u->connect_host, "%s", h);
    int default_port = u->url.port == (u->url.tls ? 443 : 80);
    if (default_port) snprintf(u->host_header, sizeof u->host_header, "%s", h);
    else snprintf(u->host_header, sizeof u->host_header, "%s:%d", h, u->url.port);
    if (u->url.tls) {
        u->tls = tls_client_ctx(ca_file && *ca_file ? ca_file : NULL, err, errlen);
        if (!u->tls || enable_resumption(u) != 0) {
            if (!*err) snprintf(err, errlen, "cannot set up TLS session resumption");
            upstream_free(u);
            return NULL;
        }
    }
    u->timeout = timeout_seconds > 0 ? timeout_seconds : 10;
    u->ks = ks;
    return u;
}

/* Frees a connection from its loop's next turn: never from inside one of
 * evhttp's callbacks, which still use it after calling us. */
static void conn_free_now(evutil_socket_t fd, short what, void *arg) {
    struct conn *k = arg;
    struct upstream *u = k->u;
    evhttp_connection_free(k->evcon);
    if (k->draining) {
        pthread_mutex_lock(&u->lock);
        if (--u->draining == 0) pthread_cond_broadcast(&u->drained);
        pthread_mutex_unlock(&u->lock);
    }
    free(k);
}

static void conn_free_later(struct conn *k) {
    if (event_base_once(k->base, -1, EV_TIMEOUT, conn_free_now, k, NULL) != 0)
        log_warn("upstream", "cannot schedule freeing a connection");
}

/* Takes k out of the idle pool; 1 if it was there. Caller holds u->lock. */
static int unpool(struct upstream *u, struct conn *k) {
    for (int i = 0; i < u->nidle; i++) {
        if (u->idle[i] != k) continue;
        u->idle[i] = u->idle[--u->nidle];
        k->pooled = 0;
        return 1;
    }
    return 0;
}

/* evhttp closed the connection (idle timeout, Connection: close, error).
 * An idle one is freed here; one in use is freed when its call ends. */
static void on_conn_close(struct evhttp_connection *evcon, void *arg) {
    struct conn *k = arg;
    struct upstream *u = k->u;
    k->closed = 1;
    pthread_mutex_lock(&u->lock);
    int was_idle = k->pooled && unpool(u, k);
    pthread_mutex_unlock(&u->lock);
    if (was_idle) conn_free_later(k);
}

/* A call is done with k: back to the pool if it can serve another, else freed. */
static void conn_release(struct conn *k, int reusable) {
    struct upstream *u = k->u;
    pthread_mutex_lock(&u->lock);
    int keep = reusable && !k->closed && !u->closing && u->nidle < UPSTREAM_IDLE_MAX;
    if (keep) {
        k->pooled = 1;
        u->idle[u->nidle++] = k;
    }
    pthread_mutex_unlock(&u->lock);
    if (!keep) conn_free_later(k);
}

void upstream_close_idle(struct upstream *u) {
    if (!u) return;
    pthread_mutex_lock(&u->lock);
    u->closing = 1;
    while (u->nidle > 0) {
        struct conn *k = u->idle[--u->nidle];
        k->pooled = 0;
        k->draining = 1;
        u->draining++;
        conn_free_later(k);
    }
    /* Bounded: a loop that no longer runs would never free its share. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    while (u->draining > 0 && pthread_cond_timedwait(&u->drained, &u->lock, &until) == 0) {
    }
    if (u->draining > 0) log_warn("upstream", "%d idle connections not closed", u->draining);
    pthread_mutex_unlock(&u->lock);
}

void upstream_free(struct upstream *u) {
    if (!u) return;
    SSL_SESSION_free(u->session);
    pthread_cond_destroy(&u->drained);
    pthread_mutex_destroy(&u->lock);
    SSL_CTX_free(u->tls);
    free(u);
}

static const char *error_text(enum evhttp_request_error e) {
    switch (e) {
    case EVREQ_HTTP_TIMEOUT: return "timed out";
    case EVREQ_HTTP_EOF: return "connection failed or closed early";
    case EVREQ_HTTP_INVALID_HEADER: return "invalid response header";
    case EVREQ_HTTP_BUFFER_ERROR: return "connection error";
    case EVREQ_HTTP_REQUEST_CANCEL: return "cancelled";
    case EVREQ_HTTP_DATA_TOO_LONG: return "response too large";
    }
    return "unknown error";
}

static void on_error(enum evhttp_request_error e, void *arg) {
    struct call *c = arg;
    c->have_error = 1;
    c->error = e;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->conn->evcon);
    unsigned long ssl_err = bev ? bufferevent_get_openssl_error(bev) : 0;
    if (ssl_err) ERR_error_string_n(ssl_err, c->tls_error, sizeof c->tls_error);
}

static int call_start(struct call *c);
static void call_finish(struct call *c, int status, const char *body, size_t len,
                        const char *error, int timed_out);

/* Runs once per request. With no status the request failed: after
 * on_error (req NULL), or with a req that has no status when the connect
 * itself failed. The connection is spent either way. */
static void on_done(struct evhttp_request *req, void *arg) {
    struct call *c = arg;
    int status = req ? evhttp_request_get_response_code(req) : 0;
    if (status == 0) {
        int timed_out = c->have_error && c->error == EVREQ_HTTP_TIMEOUT;
        conn_release(c->conn, 0);
        c->conn = NULL;
        if (c->reused && !c->retried && !timed_out) {
            log_debug("upstream", "kept-alive connection closed under %s: retrying once", c->path);
            c->retried = 1;
            if (call_start(c) == 0) return;
        }
        const char *why = c->tls_error[0]    ? c->tls_error
                          : c->have_error ? error_text(c->error)
                                          : "connection refused or reset";
        call_finish(c, 0, "", 0, why, timed_out);
        return;
    }
    conn_release(c->conn, 1);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    char *body = malloc(n + 1);
    if (!body || evbuffer_copyout(in, body, n) != (ev_ssize_t)n) {
        call_finish(c, 0, "", 0, "out of memory reading the response", 0);
    } else {
        body[n] = '\0';
        call_finish(c, status, body, n, NULL, 0);
    }
    free(body);
}

/* A TLS bufferevent checking the controller's certificate and name. */
static struct bufferevent *tls_bev(struct upstream *u, struct event_base *base) {
    SSL *ssl = SSL_new(u->tls);
    if (!ssl) return NULL;
    pthread_mutex_lock(&u->lock);
    int resumed = !u->session || SSL_set_session(ssl, u->session) == 1;
    pthread_mutex_unlock(&u->lock);
    if (!resumed) ERR_clear_error(); /* a stale session: a full handshake it is */
    unsigned char ip[16];
    int is_ip = evutil_inet_pton(AF_INET, u->connect_host, ip) == 1 ||
                evutil_inet_pton(AF_INET6, u->connect_host, ip) == 1;
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), u->connect_host) == 1
                   : SSL_set_tlsext_host_name(ssl, u->connect_host) == 1 &&
                         SSL_set1_host(ssl, u->connect_host) == 1;
    if (!ok) {
        SSL_free(ssl);
        return NULL;
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* A new, not yet connected connection on `base` (it connects on its first request). */
static struct conn *conn_new(struct upstream *u, struct event_base *base) {
    struct conn *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    /* Deferred callbacks: a failure (say, an unresolvable name) is reported
     * from the loop, never from inside evhttp_make_request. */
    struct bufferevent *bev = u->tls ? tls_bev(u, base)
                                     : bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE |
                                                                            BEV_OPT_DEFER_CALLBACKS);
    k->evcon = bev ? evhttp_connection_base_bufferevent_new(base, NULL, bev, u->connect_host,
                                                            (unsigned short)u->url.port)
                   : NULL;
    if (!k->evcon) {
        if (bev) bufferevent_free(bev);
        free(k);
        return NULL;
    }
    k->u = u;
    k->base = base;
    evhttp_connection_set_timeout(k->evcon, u->timeout);
    evhttp_connection_set_max_body_size(k->evcon, UPSTREAM_MAX_REPLY);
    evhttp_connection_set_closecb(k->evcon, on_conn_close, k);
    return k;
}

/* The newest idle connection on `base`, or NULL. */
static struct conn *conn_take(struct upstream *u, struct event_base *base) {
    struct conn *k = NULL;
    pthread_mutex_lock(&u->lock);
    for (int i = u->nidle - 1; i >= 0 && !k; i--) {
        if (u->idle[i]->base != base || u->idle[i]->closed) continue;
        k = u->idle[i];
        unpool(u, k);
    }
    pthread_mutex_unlock(&u->lock);
    return k;
}

/* evhttp queues the request's head and body as two chains, and
 * bufferevent_openssl makes each chain its own TLS record and write(2): the
 * controller then woke for the head, read, and woke again for the body.
 * Joined, a request is one record and one segment. The output is written
 * later in the loop, so this only rearranges bytes still queued. A new
 * connection queues its first request only once connected, so that one
 * still goes as two; kept-alive connections carry nearly every call. */
static void one_chain(struct conn *k) {
    struct bufferevent *bev = evhttp_connection_get_bufferevent(k->evcon);
    struct evbuffer *out = bev ? bufferevent_get_output(bev) : NULL;
    if (out && evbuffer_get_length(out) <= 16384) evbuffer_pullup(out, -1);
}

/* Signs c and sends it on a pooled connection (a fresh one on a retry). 0 / -1. */
static int call_start(struct call *c) {
    struct upstream *u = c->u;
    char auth[AUTH_HEADER_MAX];
    if (keystore_auth_header(u->ks, "POST", c->path, c->body, c->len, auth, sizeof auth) != 0)
        return -1;
    struct conn *k = c->retried ? NULL : conn_take(u, c->base);
    c->reused = k != NULL;
    if (!k && !(k = conn_new(u, c->base))) return -1;
    c->have_error = 0;
    c->tls_error[0] = '\0';
    c->conn = k;
    struct evhttp_request *req = evhttp_request_new(on_done, c);
    if (!req) {
        conn_release(k, 1);
        return -1;
    }
    evhttp_request_set_error_cb(req, on_error);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    int bad = evhttp_add_header(h, "Host", u->host_header) != 0 ||
              evhttp_add_header(h, "Content-Type", "application/json") != 0 ||
              evhttp_add_header(h, "Accept", "application/json") != 0 ||
              evhttp_add_header(h, "Authorization", auth) != 0 ||
              evbuffer_add(evhttp_request_get_output_buffer(req), c->body, c->len) != 0;
    if (bad) {
        evhttp_request_free(req);
        conn_release(k, 1);
        return -1;
    }
    if (evhttp_make_request(k->evcon, req, EVHTTP_REQ_POST, c->path) != 0) {
        conn_release(k, 0);               /* libevent freed req */
        return -1;
    }
    one_chain(k);
    if (!c->reused) {
        /* No Nagle: over TLS the request follows the handshake's last
         * flight and would otherwise wait for the server's delayed ACK
         * (~20-40 ms a call). The socket exists once connect() started, at
         * once for a numeric host. */
        int one = 1;
        evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(k->evcon));
        if (fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
            log_debug("upstream", "TCP_NODELAY: %s", strerror(errno));
    }
    log_debug("upstream", "POST %s%s%s", u->host_header, c->path, c->reused ? " (kept alive)" : "");
    return 0;
}

/* The lane of `base`, made on first use; NULL when all are taken. */
static struct lane *lane_of(struct upstream *u, struct event_base *base) {
    struct lane *l = NULL;
    pthread_mutex_lock(&u->lock);
    for (int i = 0; i < u->nlanes && !l; i++)
        if (u->lanes[i].base == base) l = &u->lanes[i];
    if (!l && u->nlanes < UPSTREAM_MAX_LOOPS) {
        l = &u->lanes[u->nlanes++];
        l->base = base;
    }
    pthread_mutex_unlock(&u->lock);
    return l;
}

static double since(const struct timespec *t) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* Reports c's outcome, frees it and gives its slot to the oldest waiting
 * call: started, or failed as timed out if it waited past the timeout. */
static void call_finish(struct call *c, int status, const char *body, size_t len,
                        const char *error, int timed_out) {
    struct lane *l = c->lane;
    c->done(c->arg, status, body, len, error, timed_out);
    free(c);
    l->busy--;
    struct call *w;
    while (l->busy < UPSTREAM_MAX_BUSY && (w = l->head)) {
        l->head = w->next;
        if (!l->head) l->tail = NULL;
        int expired = since(&w->queued) >= w->u->timeout;
        if (!expired && call_start(w) == 0) {
            l->busy++;
            continue;
        }
        w->done(w->arg, 0, "", 0, expired ? "timed out waiting for a free connection"
                                          : "cannot start the call (no identity loaded?)", expired);
        free(w);
    }
}

int upstream_post(struct upstream *u, struct event_base *base, const char *path, const char *body,
                  size_t len, upstream_done done, void *arg) {
    struct lane *l = lane_of(u, base);
    struct call *c = l ? calloc(1, sizeof *c + len) : NULL;
    if (!c) return -1;
    if (snprintf(c->path, sizeof c->path, "%s%s", u->url.prefix, path) >= (int)sizeof c->path) {
        free(c);
        return -1;
    }
    memcpy(c->body, body, len);
    c->len = len;
    c->u = u;
    c->base = base;
    c->lane = l;
    c->done = done;
    c->arg = arg;
    if (l->busy >= UPSTREAM_MAX_BUSY) {
        clock_gettime(CLOCK_MONOTONIC, &c->queued);
        if (l->tail) l->tail->next = c;
        else l->head = c;
        l->tail = c;
        return 0;
    }
    if (call_start(c) != 0) {
        free(c);
        return -1;
    }
    l->busy++;
    return 0;
}
