/* redis_conn.c — Redis over our own socket (plain or OpenSSL TLS), with
 * hiredis 0.14 used only as the RESP encoder and decoder.
 *
 * Why not hiredis' own I/O: Debian's hiredis 0.14 cannot do TLS, and
 * managed Redis (Azure 6380, ElastiCache in-transit encryption) is TLS-only.
 * Every wait is bounded: connect, TLS handshake and each command run against
 * a deadline, with the socket non-blocking and poll(2) doing the waiting, so
 * a dead or hung server costs a caller at most the timeout. */
#include "controller/redis_conn.h"

#include "common/bev_write.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 2000
#define DEFAULT_POOL_SIZE 4

struct redis_conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    redisReader *reader;
    int io_timeout_ms;
    size_t rx;               /* bytes received since the last send */
};

/* ---- URL ---------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Copies [s, s+n) percent-decoded into out (cap bytes with NUL). */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1, lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

int redis_url_parse(const char *url, struct redis_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    const char *p;
    if (url && strncmp(url, "redis://", 8) == 0) {
        p = url + 8;
    } else if (url && strncmp(url, "rediss://", 9) == 0) {
        p = url + 9;
        out->tls = 1;
    } else {
        snprintf(err, errlen, "redis url: must start with redis:// or rediss://");
        return -1;
    }
    const char *end = p + strcspn(p, "/?#");
    const char *at = memrchr(p, '@', (size_t)(end - p));
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *uend = colon ? colon : at;
        if (pct_decode(p, (size_t)(uend - p), out->user, sizeof out->user) < 0 ||
            (colon && pct_decode(colon + 1, (size_t)(at - colon - 1), out->password, sizeof out->password) < 0)) {
            snprintf(err, errlen, "redis url: bad or too long user/password");
            return -1;
        }
        p = at + 1;
    }
    const char *hend;
    if (*p == '[') {
        hend = memchr(p, ']', (size_t)(end - p));
        if (!hend) {
            snprintf(err, errlen, "redis url: unterminated [ in host");
            return -1;
        }
        p++;
    } else {
        hend = memchr(p, ':', (size_t)(end - p));
        if (!hend)
            hend = end;
    }
    if (hend == p || (size_t)(hend - p) >= sizeof out->host) {
        snprintf(err, errlen, "redis url: missing or too long host");
        return -1;
    }
    memcpy(out->host, p, (size_t)(hend - p));
    const char *q = hend + (*hend == ']');
    if (q < end && *q == ':') {
        char *e;
        long port = strtol(q + 1, &e, 10);
        if (e == q + 1 || e != end || port < 1 || port > 65535) {
            snprintf(err, errlen, "redis url: bad port");
            return -1;
        }
        out->port = (int)port;
    } else if (q != end) {
        snprintf(err, errlen, "redis url: unexpected text after host");
        return -1;
    }
    if (*end == '/' && end[1] && end[1] != '?') {
        char *e;
        long db = strtol(end + 1, &e, 10);
        if (e == end + 1 || (*e && *e != '?') || db < 0 || db > 1000000) {
            snprintf(err, errlen, "redis url: bad database number");
            return -1;
        }
        out->db = (int)db;
    }
    return 0;
}

/* ---- time and waiting ---------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for `events` or the deadline: 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {fd, events, 0};
        int rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        return rc < 0 ? -1 : rc > 0;
    }
}

static void set_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    if (e) {
        char buf[200];
        ERR_error_string_n(e, buf, sizeof buf);
        snprintf(err, errlen, "%s: %s", what, buf);
        ERR_clear_error();
    } else {
        snprintf(err, errlen, "%s: %s", what, errno ? strerror(errno) : "connection closed");
    }
}

/* ---- connecting ---------------------------------------------------------- */

static int tcp_connect(const struct redis_url *u, int64_t deadline, char *err, size_t errlen)
{
    char port[8];
    snprintf(port, sizeof port, "%d", u->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(u->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "redis %s:%d: resolve: %s", u->host, u->port, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        int soerr = errno;
        if (soerr == EINPROGRESS) {
            socklen_t len = sizeof soerr;
            int w = wait_fd(fd, POLLOUT, deadline);
            if (w == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0)
                break;
            if (w == 0)
                soerr = ETIMEDOUT;
        }
        snprintf(err, errlen, "redis %s:%d: connect: %s", u->host, u->port, strerror(soerr));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

static int is_ip_literal(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static int tls_setup(struct redis_conn *c, const struct redis_url *u, const struct redis_options *opt,
                     int64_t deadline, char *err, size_t errlen)
{
    if (!(c->ctx = SSL_CTX_new(TLS_client_method()))) {
        set_error(err, errlen, "redis tls: context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    if (!opt->insecure_skip_verify) {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
        int ok = opt->ca_file ? SSL_CTX_load_verify_locations(c->ctx, opt->ca_file, NULL)
                              : SSL_CTX_set_default_verify_paths(c->ctx);
        if (ok != 1) {
            set_error(err, errlen, opt->ca_file ? "redis tls: loading CA file" : "redis tls: default CAs");
            return -1;
        }
    }
    if (!(c->ssl = SSL_new(c->ctx)) || SSL_set_fd(c->ssl, c->fd) != 1) {
        set_error(err, errlen, "redis tls: session");
        return -1;
    }
    int ip = is_ip_literal(u->host);
    if (!ip)
        SSL_set_tlsext_host_name(c->ssl, u->host);
    if (!opt->insecure_skip_verify) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
        if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, u->host) : X509_VERIFY_PARAM_set1_host(vp, u->host, 0)) != 1) {
            set_error(err, errlen, "redis tls: hostname check");
            return -1;
        }
    }
    for (;;) {
        ERR_clear_error();
        int rc = SSL_connect(c->ssl);
        if (rc == 1)
            return 0;
        int e = SSL_get_error(c->ssl, rc);
        int w = e == SSL_ERROR_WANT_READ ? wait_fd(c->fd, POLLIN, deadline)
              : e == SSL_ERROR_WANT_WRITE ? wait_fd(c->fd, POLLOUT, deadline) : -1;
        if (w == 1)
            continue;
        if (w == 0) {
            snprintf(err, errlen, "redis tls: handshake with %s:%d timed out", u->host, u->port);
        } else {
            long vr = SSL_get_verify_result(c->ssl);
            if (vr != X509_V_OK)
                snprintf(err, errlen, "redis tls: certificate of %s: %s", u->host, X509_verify_cert_error_string(vr));
            else
                set_error(err, errlen, "redis tls: handshake");
        }
        return -1;
    }
}

/* Runs one setup command (AUTH, SELECT) and insists on +OK. */
static int setup_command(struct redis_conn *c, int argc, const char **argv, char *err, size_t errlen)
{
    redisReply *r = redis_conn_command(c, argc, argv, NULL, err, errlen);
    if (!r)
        return -1;
    int ok = r->type == REDIS_REPLY_STATUS;
    if (!ok)
        snprintf(err, errlen, "redis %s: %s", argv[0], r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return ok ? 0 : -1;
}

struct redis_conn *redis_conn_open(const struct redis_options *opt, char *err, size_t errlen)
{
    struct redis_url u;
    if (redis_url_parse(opt->url, &u, err, errlen) < 0)
        return NULL;
    struct redis_conn *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "redis: out of memory");
        return NULL;
    }
    c->io_timeout_ms = opt->io_timeout_ms > 0 ? opt->io_timeout_ms : DEFAULT_TIMEOUT_MS;
    int64_t deadline = now_ms() + (opt->connect_timeout_ms > 0 ? opt->connect_timeout_ms : DEFAULT_TIMEOUT_MS);
    if ((c->fd = tcp_connect(&u, deadline, err, errlen)) < 0)
        goto fail;
    if (u.tls && tls_setup(c, &u, opt, deadline, err, errlen) < 0)
        goto fail;
    if (!(c->reader = redisReaderCreate())) {
        snprintf(err, errlen, "redis: out of memory");
        goto fail;
    }
    if (u.password[0]) {
        const char *auth_user[] = {"AUTH", u.user, u.password};
        const char *auth[] = {"AUTH", u.password};
        if (setup_command(c, u.user[0] ? 3 : 2, u.user[0] ? auth_user : auth, err, errlen) < 0)
            goto fail;
    }
    if (u.db) {
        char db[16];
        snprintf(db, sizeof db, "%d", u.db);
        const char *sel[] = {"SELECT", db};
        if (setup_command(c, 2, sel, err, errlen) < 0)
            goto fail;
    }
    memset(&u, 0, sizeof u);   /* do not leave the password on the stack */
    return c;
fail:
    memset(&u, 0, sizeof u);
    redis_conn_close(c);
    return NULL;
}

void redis_conn_close(struct redis_conn *c)
{
    if (!c)
        return;
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->ctx)
        SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    if (c->reader)
        redisReaderFree(c->reader);
    free(c);
}

/* ---- bytes --------------------------------------------------------------- */

/* SSL_write uses write(2), which raises SIGPIPE on a reset peer: keep the
 * signal blocked around it and swallow one that became pending. */
static int tls_write(SSL *ssl, const char *buf, int len)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    int rc = SSL_write(ssl, buf, len);
    int e = rc > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl, rc);
    sigset_t pending;
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) && !sigismember(&old, SIGPIPE)) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc > 0)
        return rc;
    return e == SSL_ERROR_WANT_WRITE ? -2 : e == SSL_ERROR_WANT_READ ? -3 : -1;
}

/* Writes all of buf before the deadline. 0 or -1. */
static int write_all(struct redis_conn *c, const char *buf, size_t len, int64_t deadline, char *err, size_t errlen)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n;
        short wait_for = POLLOUT;
        errno = 0;
        if (c->ssl) {
            ERR_clear_error();
            n = tls_write(c->ssl, buf + off, (int)(len - off));
            if (n == -3)
                wait_for = POLLIN;
            if (n < -1)
                n = -1, errno = EAGAIN;
        } else {
            n = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);
        }
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            int w = wait_fd(c->fd, wait_for, deadline);
            if (w == 1)
                continue;
            snprintf(err, errlen, "redis: write %s", w == 0 ? "timed out" : strerror(errno));
            return -1;
        }
        set_error(err, errlen, "redis: write");
        return -1;
    }
    return 0;
}

/* Reads what is available (waiting until the deadline for something).
 * >0 bytes, 0 timeout, -1 error or EOF. */
static ssize_t read_some(struct redis_conn *c, char *buf, size_t cap, int64_t deadline, char *err, size_t errlen)
{
    for (;;) {
        ssize_t n;
        short wait_for = POLLIN;
        errno = 0;
        if (c->ssl) {
            ERR_clear_error();
            int rc = SSL_read(c->ssl, buf, (int)cap);
            int e = rc > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, rc);
            if (rc > 0)
                return rc;
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                wait_for = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
                n = -1;
                errno = EAGAIN;
            } else {
                if (e == SSL_ERROR_ZERO_RETURN)
                    errno = 0;
                set_error(err, errlen, "redis: read");
                return -1;
            }
        } else {
            n = recv(c->fd, buf, cap, 0);
            if (n > 0)
                return n;
            if (n == 0) {
                snprintf(err, errlen, "redis: connection closed by server");
                return -1;
            }
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            int w = wait_fd(c->fd, wait_for, deadline);
            if (w == 1)
                continue;
            if (w == 0)
                return 0;
        }
        snprintf(err, errlen, "redis: read: %s", strerror(errno));
        return -1;
    }
}

/* ---- commands ------------------------------------------------------------ */

/* "<mark><n>\r\n" at out (when non-NULL). Its length. */
static size_t resp_count(char *out, char mark, size_t n)
{
    char digits[24];
    size_t nd = 0;
    do
        digits[nd++] = (char)('0' + n % 10);
    while ((n /= 10) > 0);
    if (out) {
        out[0] = mark;
        for (size_t i = 0; i < nd; i++)
            out[1 + i] = digits[nd - 1 - i];
        memcpy(out + 1 + nd, "\r\n", 2);
    }
    return nd + 3;
}

/* Writes the command at out when non-NULL; its length either way. */
static size_t resp_write(char *out, int argc, const char **argv, const size_t *argvlen)
{
    size_t n = resp_count(out, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
        n += resp_count(out ? out + n : NULL, '$', len);
        if (out) {
            memcpy(out + n, argv[i], len);
            memcpy(out + n + len, "\r\n", 2);
        }
        n += len + 2;
    }
    return n;
}

int redis_format_command(char **out, int argc, const char **argv, const size_t *argvlen)
{
    size_t n = resp_write(NULL, argc, argv, argvlen);
    *out = n <= INT_MAX ? malloc(n + 1) : NULL;
    if (!*out)
        return -1;
    resp_write(*out, argc, argv, argvlen);
    (*out)[n] = '\0';
    return (int)n;
}

int redis_conn_send(struct redis_conn *c, int argc, const char **argv, const size_t *argvlen, char *err,
                    size_t errlen)
{
    char *cmd = NULL;
    int len = redis_format_command(&cmd, argc, argv, argvlen);
    if (len < 0) {
        snprintf(err, errlen, "redis: out of memory formatting %s", argc ? argv[0] : "command");
        return -1;
    }
    c->rx = 0;
    int rc = write_all(c, cmd, (size_t)len, now_ms() + c->io_timeout_ms, err, errlen);
    free(cmd);
    return rc;
}

redisReply *redis_conn_read(struct redis_conn *c, int timeout_ms, int *timed_out, char *err, size_t errlen)
{
    int64_t deadline = now_ms() + (timeout_ms >= 0 ? timeout_ms : c->io_timeout_ms);
    if (timed_out)
        *timed_out = 0;
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            snprintf(err, errlen, "redis: protocol error: %s", c->reader->errstr);
            return NULL;
        }
        if (reply)
            return reply;
        char buf[16384];
        ssize_t n = read_some(c, buf, sizeof buf, deadline, err, errlen);
        if (n == 0) {
            if (timed_out)
                *timed_out = 1;
            snprintf(err, errlen, "redis: no reply within %d ms", timeout_ms >= 0 ? timeout_ms : c->io_timeout_ms);
            return NULL;
        }
        if (n < 0)
            return NULL;
        c->rx += (size_t)n;
        if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
            snprintf(err, errlen, "redis: protocol error: %s", c->reader->errstr);
            return NULL;
        }
    }
}

redisReply *redis_conn_command(struct redis_conn *c, int argc, const char **argv, const size_t *argvlen,
                               char *err, size_t errlen)
{
    if (redis_conn_send(c, argc, argv, argvlen, err, errlen) < 0)
        return NULL;
    return redis_conn_read(c, -1, NULL, err, errlen);
}

/* ---- pool ---------------------------------------------------------------- */

struct redis_pool {
    struct redis_options opt;     /* strings below are owned copies */
    char *url, *ca_file;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct redis_conn **idle;
    int nidle, open, size;
};

struct redis_pool *redis_pool_open(const struct redis_options *opt, char *err, size_t errlen)
{
    struct redis_pool *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "redis: out of memory");
        return NULL;
    }
    p->opt = *opt;
    p->size = opt->pool_size > 0 ? opt->pool_size : DEFAULT_POOL_SIZE;
    p->url = strdup(opt->url ? opt->url : "");
    p->ca_file = opt->ca_file ? strdup(opt->ca_file) : NULL;
    p->idle = calloc((size_t)p->size, sizeof *p->idle);
    if (!p->url || (opt->ca_file && !p->ca_file) || !p->idle) {
        snprintf(err, errlen, "redis: out of memory");
        goto fail;
    }
    p->opt.url = p->url;
    p->opt.ca_file = p->ca_file;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    struct redis_conn *c = redis_conn_open(&p->opt, err, errlen);
    const char *ping[] = {"PING"};
    redisReply *r = c ? redis_conn_command(c, 1, ping, NULL, err, errlen) : NULL;
    int ok = r && r->type == REDIS_REPLY_STATUS;   /* proves the far end speaks RESP, with our credentials */
    if (r && !ok)
        snprintf(err, errlen, "redis PING: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    if (r)
        freeReplyObject(r);
    if (!ok) {
        redis_conn_close(c);
        redis_pool_close(p);
        return NULL;
    }
    p->idle[p->nidle++] = c;
    p->open = 1;
    return p;
fail:
    free(p->url);
    free(p->ca_file);
    free(p->idle);
    free(p);
    return NULL;
}

void redis_pool_close(struct redis_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nidle; i++)
        redis_conn_close(p->idle[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->idle);
    free(p->url);
    free(p->ca_file);
    free(p);
}

const struct redis_options *redis_pool_options(const struct redis_pool *p)
{
    return &p->opt;
}

/* An idle connection (*reused = 1) or a new one; NULL when none can be had in time. */
static struct redis_conn *pool_get(struct redis_pool *p, int *reused, char *err, size_t errlen)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    int wait_ms = p->opt.io_timeout_ms > 0 ? p->opt.io_timeout_ms : DEFAULT_TIMEOUT_MS;
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    while (p->nidle == 0 && p->open >= p->size) {
        if (pthread_cond_timedwait(&p->cv, &p->mu, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&p->mu);
            snprintf(err, errlen, "redis: all %d connections busy for %d ms", p->size, wait_ms);
            return NULL;
        }
    }
    if (p->nidle > 0) {
        struct redis_conn *c = p->idle[--p->nidle];
        pthread_mutex_unlock(&p->mu);
        *reused = 1;
        return c;
    }
    p->open++;
    pthread_mutex_unlock(&p->mu);
    *reused = 0;
    struct redis_conn *c = redis_conn_open(&p->opt, err, errlen);
    if (!c) {
        pthread_mutex_lock(&p->mu);
        p->open--;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return c;
}

/* Returns a connection to the pool, or closes it when it failed. */
static void pool_put(struct redis_pool *p, struct redis_conn *c, int ok)
{
    pthread_mutex_lock(&p->mu);
    if (ok) {
        p->idle[p->nidle++] = c;
    } else {
        p->open--;
        redis_conn_close(c);
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

redisReply *redis_pool_command(struct redis_pool *p, int argc, const char **argv, const size_t *argvlen,
                               char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused = 0, timed_out = 0;
        struct redis_conn *c = pool_get(p, &reused, err, errlen);
        if (!c)
            return NULL;
        redisReply *r = NULL;
        if (redis_conn_send(c, argc, argv, argvlen, err, errlen) == 0)
            r = redis_conn_read(c, -1, &timed_out, err, errlen);
        size_t rx = c->rx;
        pool_put(p, c, r != NULL);
        if (r)
            return r;
        /* A pooled connection the server dropped while it sat idle fails
         * fast with no reply byte: try once more on a fresh one. A timeout
         * is not retried (the server is slow or hung, not gone). */
        if (!reused || rx != 0 || timed_out)
            return NULL;
    }
    return NULL;
}

/* ---- async: one pipelined connection on an event loop -------------------- */

#define ASYNC_RETRY_MS 1000

struct pending {
    redis_async_fn fn;
    void *arg;
    struct pending *next;
};

struct redis_async {
    struct event_base *base;
    struct redis_options opt;        /* strings below are owned copies */
    char *url, *ca_file;
    struct bufferevent *bev;         /* NULL while disconnected */
    int plain;                       /* bev is a plain socket (no TLS): commands are written by flush */
    struct event *flush;             /* writes the commands queued this turn, after the callbacks that queued them */
    redisReader *reader;
    struct pending *head, *tail;     /* commands in flight, oldest first */
    int64_t retry_at;                /* no connect attempt before (monotonic ms) */
    struct timeval io_timeout;
};

/* Plain sockets: the commands queued in this turn leave together, in one
 * write, once the callbacks that queued them have returned — in the same
 * turn, not when the loop next polls for writability. One write per turn
 * instead of one per command: on loopback each write also pays Redis's
 * TCP receive and wake-up on our core (perf: a third of the API loop's
 * kernel time). bufferevent_write switched writability on this turn;
 * switching it off in the same turn lets the loop's changelist cancel the
 * pair, so no epoll_ctl either. What does not fit stays with the bufferevent. */
static void async_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct redis_async *a = arg;
    if (!a->bev || !a->plain)
        return;
    bev_write_now(a->bev);
    if (evbuffer_get_length(bufferevent_get_output(a->bev)) == 0)
        bufferevent_disable(a->bev, EV_WRITE);
}

struct redis_async *redis_async_new(struct event_base *base, const struct redis_options *opt)
{
    struct redis_async *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->base = base;
    a->opt = *opt;
    a->url = strdup(opt->url ? opt->url : "");
    a->ca_file = opt->ca_file ? strdup(opt->ca_file) : NULL;
    a->flush = event_new(base, -1, 0, async_flush, a);
    if (!a->url || (opt->ca_file && !a->ca_file) || !a->flush) {
        if (a->flush)
            event_free(a->flush);
        free(a->url);
        free(a->ca_file);
        free(a);
        return NULL;
    }
    a->opt.url = a->url;
    a->opt.ca_file = a->ca_file;
    int ms = opt->io_timeout_ms > 0 ? opt->io_timeout_ms : DEFAULT_TIMEOUT_MS;
    a->io_timeout = (struct timeval){ms / 1000, (ms % 1000) * 1000};
    return a;
}

/* Drops the connection and fails every command in flight with err. The
 * queue is detached first: a callback may queue a new command (which
 * reconnects). */
static void async_fail(struct redis_async *a, const char *err)
{
    struct pending *p = a->head;
    a->head = a->tail = NULL;
    if (a->bev) {
        bufferevent_free(a->bev);
        a->bev = NULL;
    }
    if (a->reader) {
        redisReaderFree(a->reader);
        a->reader = NULL;
    }
    while (p) {
        struct pending *next = p->next;
        p->fn(NULL, err, p->arg);
        free(p);
        p = next;
    }
}

/* Feeds what arrived to the reader and completes commands in order. */
static void async_read(struct bufferevent *bev, void *arg)
{
    struct redis_async *a = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char buf[16384];
    int n;
    while ((n = evbuffer_remove(in, buf, sizeof buf)) > 0) {
        if (redisReaderFeed(a->reader, buf, (size_t)n) != REDIS_OK) {
            async_fail(a, "redis: protocol error");
            return;
        }
    }
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(a->reader, &reply) != REDIS_OK || (reply && !a->head)) {
            if (reply)
                freeReplyObject(reply);
            async_fail(a, "redis: protocol error or unexpected reply");
            return;
        }
        if (!reply)
            return;
        struct pending *p = a->head;
        a->head = p->next;
        if (!a->head)
            a->tail = NULL;
        p->fn(reply, NULL, p->arg);
        freeReplyObject(reply);
        free(p);
    }
}

/* EOF, errors and the read timeout. An idle connection times out too:
 * then reading is simply switched back on. */
static void async_event(struct bufferevent *bev, short what, void *arg)
{
    struct redis_async *a = arg;
    char err[160];
    if ((what & BEV_EVENT_TIMEOUT) && !a->head) {
        bufferevent_enable(bev, EV_READ);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        snprintf(err, sizeof err, "redis: no reply within %ld ms", (long)a->io_timeout.tv_sec * 1000 +
                                                                       a->io_timeout.tv_usec / 1000);
    else if (what & BEV_EVENT_EOF)
        snprintf(err, sizeof err, "redis: connection closed by server");
    else
        snprintf(err, sizeof err, "redis: connection error: %s",
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    a->retry_at = 0;   /* a restarted server is reachable at once */
    async_fail(a, err);
}

/* Connects with the blocking code (bounded by the timeouts), then hands the
 * socket and TLS session to a bufferevent on the loop. A failed attempt is
 * not repeated for a second, or for four times as long as it took: a
 * server that drops packets (each attempt waits the whole connect timeout)
 * holds the loop a fifth of the time at most. */
static int async_connect(struct redis_async *a, char *err, size_t errlen)
{
    int64_t start = now_ms();
    if (start < a->retry_at) {
        snprintf(err, errlen, "redis: unavailable (reconnecting)");
        return -1;
    }
    struct redis_conn *c = redis_conn_open(&a->opt, err, errlen);
    int64_t end = now_ms();
    a->retry_at = end + (4 * (end - start) > ASYNC_RETRY_MS ? 4 * (end - start) : ASYNC_RETRY_MS);
    if (!c)
        return -1;
    a->bev = c->ssl ? bufferevent_openssl_socket_new(a->base, c->fd, c->ssl, BUFFEREVENT_SSL_OPEN,
                                                      BEV_OPT_CLOSE_ON_FREE)
                    : bufferevent_socket_new(a->base, c->fd, BEV_OPT_CLOSE_ON_FREE);
    if (!a->bev) {
        redis_conn_close(c);
        snprintf(err, errlen, "redis: cannot set up an event-loop connection");
        return -1;
    }
    if (c->ssl)
        bufferevent_openssl_set_allow_dirty_shutdown(a->bev, 1);
    a->plain = !c->ssl;
    a->reader = c->reader;    /* the bufferevent owns fd and session now; we keep the reader */
    c->reader = NULL;
    c->fd = -1;
    c->ssl = NULL;
    redis_conn_close(c);
    bufferevent_setcb(a->bev, async_read, NULL, async_event, a);
    bufferevent_set_timeouts(a->bev, &a->io_timeout, NULL);
    if (bufferevent_enable(a->bev, EV_READ | EV_WRITE) != 0) {
        async_fail(a, "redis: cannot watch the connection");
        snprintf(err, errlen, "redis: cannot watch the connection");
        return -1;
    }
    return 0;
}

int redis_async_command(struct redis_async *a, int argc, const char **argv, const size_t *argvlen,
                        redis_async_fn fn, void *arg, char *err, size_t errlen)
{
    if (!a->bev && async_connect(a, err, errlen) < 0)
        return -1;
    struct pending *p = malloc(sizeof *p);
    char *cmd = NULL;
    int len = p ? redis_format_command(&cmd, argc, argv, argvlen) : -1;
    if (len < 0 || bufferevent_enable(a->bev, EV_WRITE) != 0 ||
        bufferevent_write(a->bev, cmd, (size_t)len) != 0) {
        free(p);
        free(cmd);
        snprintf(err, errlen, "redis: cannot queue %s (out of memory)", argc ? argv[0] : "command");
        return -1;
    }
    free(cmd);
    if (a->plain)
        event_active(a->flush, EV_TIMEOUT, 0);
    *p = (struct pending){fn, arg, NULL};
    if (!a->head)    /* the reply timer counts from now, not from the last idle read */
        bufferevent_set_timeouts(a->bev, &a->io_timeout, NULL);
    if (a->tail)
        a->tail->next = p;
    else
        a->head = p;
    a->tail = p;
    return 0;
}

void redis_async_free(struct redis_async *a)
{
    if (!a)
        return;
    async_fail(a, "redis: connection closed");
    event_free(a->flush);
    free(a->url);
    free(a->ca_file);
    free(a);
}
