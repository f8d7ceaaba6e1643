/* upstream.c — signed POSTs to the controller over libevent's evhttp client
 * (see upstream.h). One connection per call, freed by libevent when the call
 * completes; the only state kept between calls is the parsed URL and the
 * TLS context. "Connection: close" makes libevent free each connection as
 * soon as its one request completes (a kept-alive idle one would linger). */
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

#define UPSTREAM_MAX_REPLY (1 << 20)

struct upstream {
    struct upstream_url url;
    char connect_host[256];  /* host without IPv6 brackets */
    char host_header[300];
    int timeout;
    SSL_CTX *tls;
    struct keystore *ks;
    /* TLS session resumption: every call is its own connection, so without
     * this each one would pay a full handshake (measured: 345 calls/s). */
    pthread_mutex_t session_lock;
    SSL_SESSION *session;    /* the newest resumable session, or NULL */
};

struct call {
    upstream_done done;
    void *arg;
    struct evhttp_connection *conn;
    int have_error;
    enum evhttp_request_error error;
    char tls_error[160];     /* OpenSSL's reason, when TLS failed */
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
    pthread_mutex_lock(&u->session_lock);
    SSL_SESSION *old = u->session;
    u->session = session;
    pthread_mutex_unlock(&u->session_lock);
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
    if (u) pthread_mutex_init(&u->session_lock, NULL);
    if (!u) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (upstream_parse_url(url, &u->url, err, errlen) != 0) {
        free(u);
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
            SSL_CTX_free(u->tls);
            pthread_mutex_destroy(&u->session_lock);
            free(u);
            if (!*err) snprintf(err, errlen, "cannot set up TLS session resumption");
            return NULL;
        }
    }
    u->timeout = timeout_seconds > 0 ? timeout_seconds : 10;
    u->ks = ks;
    return u;
}

void upstream_free(struct upstream *u) {
    if (!u) return;
    SSL_SESSION_free(u->session);
    pthread_mutex_destroy(&u->session_lock);
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
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->conn);
    unsigned long ssl_err = bev ? bufferevent_get_openssl_error(bev) : 0;
    if (ssl_err) ERR_error_string_n(ssl_err, c->tls_error, sizeof c->tls_error);
}

static void free_conn(evutil_socket_t fd, short what, void *arg) {
    evhttp_connection_free(arg);
}

/* Runs once per call. A failure comes one of two ways in libevent 2.1: after
 * on_error with req NULL (the connection frees itself, being marked
 * free-on-completion), or, when the connect itself fails, with a req that
 * has no status and no error callback; that path never frees the
 * connection, so we do, from the next loop turn (it is still on the stack). */
static void on_done(struct evhttp_request *req, void *arg) {
    struct call *c = arg;
    int status = req ? evhttp_request_get_response_code(req) : 0;
    if (status == 0) {
        const char *why = c->tls_error[0]    ? c->tls_error
                          : c->have_error ? error_text(c->error)
                                          : "connection refused or reset";
        if (req && !c->have_error) {
            struct event_base *base = evhttp_connection_get_base(c->conn);
            if (event_base_once(base, -1, EV_TIMEOUT, free_conn, c->conn, NULL) != 0)
                log_warn("upstream", "cannot schedule freeing a failed connection");
        }
        c->done(c->arg, 0, "", 0, why, c->have_error && c->error == EVREQ_HTTP_TIMEOUT);
        free(c);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    char *body = malloc(n + 1);
    if (!body || evbuffer_copyout(in, body, n) != (ev_ssize_t)n) {
        c->done(c->arg, 0, "", 0, "out of memory reading the response", 0);
    } else {
        body[n] = '\0';
        c->done(c->arg, status, body, n, NULL, 0);
    }
    free(body);
    free(c);
}

/* A TLS bufferevent checking the controller's certificate and name. */
static struct bufferevent *tls_bev(struct upstream *u, struct event_base *base) {
    SSL *ssl = SSL_new(u->tls);
    if (!ssl) return NULL;
    pthread_mutex_lock(&u->session_lock);
    int resumed = !u->session || SSL_set_session(ssl, u->session) == 1;
    pthread_mutex_unlock(&u->session_lock);
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

int upstream_post(struct upstream *u, struct event_base *base, const char *path, const char *body,
                  size_t len, upstream_done done, void *arg) {
    char target[512], auth[AUTH_HEADER_MAX];
    if (snprintf(target, sizeof target, "%s%s", u->url.prefix, path) >= (int)sizeof target) return -1;
    if (keystore_auth_header(u->ks, "POST", target, body, len, auth, sizeof auth) != 0)
        return -1;

    /* Deferred callbacks: a failure (say, an unresolvable name) is reported
     * from the loop, never from inside evhttp_make_request. */
    struct bufferevent *bev = u->tls ? tls_bev(u, base)
                                     : bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE |
                                                                            BEV_OPT_DEFER_CALLBACKS);
    if (!bev) return -1;
    struct evhttp_connection *conn =
        evhttp_connection_base_bufferevent_new(base, NULL, bev, u->connect_host, (unsigned short)u->url.port);
    if (!conn) {
        bufferevent_free(bev);
        return -1;
    }
    evhttp_connection_set_timeout(conn, u->timeout);
    evhttp_connection_set_max_body_size(conn, UPSTREAM_MAX_REPLY);

    struct call *c = calloc(1, sizeof *c);
    struct evhttp_request *req = c ? evhttp_request_new(on_done, c) : NULL;
    if (!req) {
        free(c);
        evhttp_connection_free(conn);
        return -1;
    }
    evhttp_request_set_error_cb(req, on_error);
    c->conn = conn;
    c->done = done;
    c->arg = arg;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    int bad = evhttp_add_header(h, "Host", u->host_header) != 0 ||
              evhttp_add_header(h, "Content-Type", "application/json") != 0 ||
              evhttp_add_header(h, "Accept", "application/json") != 0 ||
              evhttp_add_header(h, "Connection", "close") != 0 ||
              evhttp_add_header(h, "Authorization", auth) != 0 ||
              evbuffer_add(evhttp_request_get_output_buffer(req), body, len) != 0;
    if (bad) {
        evhttp_request_free(req);
        free(c);
        evhttp_connection_free(conn);
        return -1;
    }
    if (evhttp_make_request(conn, req, EVHTTP_REQ_POST, target) != 0) {
        free(c);                          /* libevent freed req */
        evhttp_connection_free(conn);
        return -1;
    }
    evhttp_connection_free_on_completion(conn);
    /* No Nagle: over TLS the request follows the handshake's last flight and
     * would otherwise wait for the server's delayed ACK (~20-40 ms a call).
     * The socket exists once connect() started, at once for a numeric host. */
    int one = 1;
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        log_debug("upstream", "TCP_NODELAY: %s", strerror(errno));
    log_debug("upstream", "POST %s%s", u->host_header, target);
    return 0;
}
