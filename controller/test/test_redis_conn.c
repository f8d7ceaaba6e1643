/* test_redis_conn.c — redis:// and rediss:// URL parsing, and connection
 * failures that must come back fast with a clear message (closed port,
 * a listener that never speaks). Talking to a real server is e2e's job
 * (e2e/test_trust_storage.c). */
#include <arpa/inet.h>
#include <check.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/test/check_run.h"
#include "controller/redis_conn.h"
#include "controller/trust_store.h"

START_TEST(url_parsing)
{
    struct redis_url u;
    char err[256];
    ck_assert_int_eq(redis_url_parse("redis://localhost", &u, err, sizeof err), 0);
    ck_assert_str_eq(u.host, "localhost");
    ck_assert_int_eq(u.port, 6379);
    ck_assert_int_eq(u.tls, 0);
    ck_assert_int_eq(u.db, 0);
    ck_assert_str_eq(u.password, "");
    ck_assert_int_eq(redis_url_parse("rediss://app:s%40cr%3At@cache.example.com:6380/3", &u, err, sizeof err), 0);
    ck_assert_int_eq(u.tls, 1);
    ck_assert_str_eq(u.user, "app");
    ck_assert_str_eq(u.password, "s@cr:t");
    ck_assert_str_eq(u.host, "cache.example.com");
    ck_assert_int_eq(u.port, 6380);
    ck_assert_int_eq(u.db, 3);
    ck_assert_int_eq(redis_url_parse("redis://:onlypass@10.0.0.1", &u, err, sizeof err), 0);
    ck_assert_str_eq(u.user, "");
    ck_assert_str_eq(u.password, "onlypass");
    ck_assert_int_eq(redis_url_parse("redis://[::1]:7000/", &u, err, sizeof err), 0);
    ck_assert_str_eq(u.host, "::1");
    ck_assert_int_eq(u.port, 7000);
    ck_assert_int_eq(u.db, 0);
    /* a password may contain '@' when percent-encoded, and the last '@' ends the userinfo */
    ck_assert_int_eq(redis_url_parse("redis://u:a@b@h:1", &u, err, sizeof err), 0);
    ck_assert_str_eq(u.password, "a@b");
    ck_assert_str_eq(u.host, "h");

    const char *bad[][2] = {
        {"http://x", "redis:// or rediss://"},
        {"redis://", "host"},
        {"redis://h:0", "port"},
        {"redis://h:70000", "port"},
        {"redis://h:12x", "port"},
        {"redis://h/abc", "database"},
        {"redis://[::1", "["},
        {"redis://u:%zz@h", "user/password"},
        {NULL, "redis://"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        ck_assert_int_eq(redis_url_parse(bad[i][0], &u, err, sizeof err), -1);
        ck_assert_msg(strstr(err, bad[i][1]) != NULL, "%s: %s", bad[i][0] ? bad[i][0] : "NULL", err);
    }
}
END_TEST

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A loopback port that was just free (bound then closed). */
static int free_port(int keep_listening, int *fd_out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    if (keep_listening)
        *fd_out = fd;
    else
        close(fd);
    return ntohs(a.sin_port);
}

START_TEST(dead_server_fails_fast)
{
    char url[64], err[256];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", free_port(0, NULL));
    struct redis_options o = {.url = url};
    double t = now_s();
    ck_assert_ptr_null(redis_pool_open(&o, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "Connection refused"));
    ck_assert_ptr_null(trust_store_redis_new(&o, err, sizeof err));
    ck_assert(now_s() - t < 1.0);
}
END_TEST

START_TEST(silent_server_times_out)
{
    char url[64], err[256];
    int lfd = -1;
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", free_port(1, &lfd));
    struct redis_options o = {.url = url, .io_timeout_ms = 300, .connect_timeout_ms = 300};
    double t = now_s();
    ck_assert_ptr_null(redis_pool_open(&o, err, sizeof err));   /* connects (backlog), PING never answered */
    double took = now_s() - t;
    ck_assert_msg(took >= 0.25 && took < 1.0, "took %.3f", took);
    ck_assert_ptr_nonnull(strstr(err, "no reply within 300 ms"));
    /* a TLS handshake with the same silent listener is bounded by the connect timeout */
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    snprintf(url, sizeof url, "rediss://127.0.0.1:%d", ntohs(a.sin_port));
    t = now_s();
    ck_assert_ptr_null(redis_pool_open(&o, err, sizeof err));
    took = now_s() - t;
    ck_assert_msg(took >= 0.25 && took < 1.0, "took %.3f", took);
    ck_assert_msg(strstr(err, "handshake") != NULL, "%s", err);
    close(lfd);
}
END_TEST

/* redis_format_command is hiredis's encoding, byte for byte: binary
 * arguments with explicit lengths, empty ones, long ones, none at all. */
START_TEST(format_is_hiredis)
{
    static char big[100000];
    memset(big, 'x', sizeof big);
    const char *argv[] = {"EVALSHA", "0123456789abcdef0123456789abcdef01234567", "2", "", "a\0b\r\n", big};
    const size_t lens[] = {7, 40, 1, 0, 5, sizeof big};
    for (int argc = 0; argc <= 6; argc++)
        for (int explicit = 0; explicit < 2; explicit++) {
            if (!explicit && argc >= 5)
                continue;   /* strlen would stop at the NUL / has no end */
            char *mine = NULL, *want = NULL;
            int n = redis_format_command(&mine, argc, argv, explicit ? lens : NULL);
            int w = redisFormatCommandArgv(&want, argc, argv, explicit ? lens : NULL);
            ck_assert_int_eq(n, w);
            ck_assert_int_eq(memcmp(mine, want, (size_t)n), 0);
            free(mine);
            redisFreeCommand(want);
        }
}
END_TEST

/* ---- redis_async against a fake server ------------------------------------- */

/* A RESP server on its own thread: it answers each command with its
 * sequence number on the connection (":0", ":1", ...), or never answers
 * (silent), or closes the connection after close_after replies. */
struct fake {
    int lfd, port, silent, close_after;
    int received;               /* commands read so far (atomic) */
    pthread_t thread;
};

static void fake_serve(struct fake *f, int fd)
{
    redisReader *rd = redisReaderCreate();
    char buf[4096];
    long seq = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        ck_assert_int_eq(redisReaderFeed(rd, buf, (size_t)n), REDIS_OK);
        void *cmd = NULL;
        while (redisReaderGetReply(rd, &cmd) == REDIS_OK && cmd) {
            freeReplyObject(cmd);
            __atomic_add_fetch(&f->received, 1, __ATOMIC_RELAXED);
            if (f->silent)
                continue;
            char out[32];
            int len = snprintf(out, sizeof out, ":%ld\r\n", seq++);
            ck_assert_int_eq(write(fd, out, (size_t)len), len);
            if (f->close_after && seq == f->close_after) {
                redisReaderFree(rd);
                return;
            }
        }
    }
    redisReaderFree(rd);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    int fd;
    while ((fd = accept(f->lfd, NULL, NULL)) >= 0) {
        fake_serve(f, fd);
        close(fd);
    }
    return NULL;
}

static void fake_start(struct fake *f)
{
    f->port = free_port(1, &f->lfd);
    ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
    shutdown(f->lfd, SHUT_RDWR);   /* ends accept(); a served connection ends when the client closes */
    pthread_join(f->thread, NULL);
    close(f->lfd);
}

/* What the callbacks saw. */
struct seen {
    struct event_base *base;
    int calls, want;
    long values[64];
    char err[256];
};

static void on_reply(redisReply *r, const char *err, void *arg)
{
    struct seen *s = arg;
    ck_assert_int_lt(s->calls, 64);
    s->values[s->calls] = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (!r)
        snprintf(s->err, sizeof s->err, "%s", err);
    if (++s->calls == s->want)
        event_base_loopbreak(s->base);
}

/* Runs the loop until s->want callbacks ran (or 5 s). */
static void run_until_done(struct seen *s)
{
    struct timeval limit = {5, 0};
    event_base_loopexit(s->base, &limit);
    event_base_dispatch(s->base);
    ck_assert_int_eq(s->calls, s->want);
}

static struct redis_async *async_to(struct event_base *base, int port, int io_timeout_ms)
{
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    struct redis_options o = {.url = url, .io_timeout_ms = io_timeout_ms, .connect_timeout_ms = 500};
    struct redis_async *a = redis_async_new(base, &o);
    ck_assert_ptr_nonnull(a);
    return a;
}

static void queue(struct redis_async *a, struct seen *s, int n)
{
    char err[256];
    const char *argv[] = {"PING"};
    for (int i = 0; i < n; i++)
        ck_assert_msg(redis_async_command(a, 1, argv, NULL, on_reply, s, err, sizeof err) == 0, "%s", err);
}

START_TEST(async_pipelines_in_order)
{
    struct fake f = {0};
    fake_start(&f);
    struct seen s = {.base = event_base_new(), .want = 50};
    struct redis_async *a = async_to(s.base, f.port, 0);
    queue(a, &s, 50);          /* all written before the first reply is read: pipelined */
    run_until_done(&s);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(s.values[i], i);
    redis_async_free(a);
    ck_assert_int_eq(s.calls, 50);   /* nothing left to fail */
    event_base_free(s.base);   /* closes the socket: libevent finalizes a freed bufferevent there */
    fake_stop(&f);
}
END_TEST

/* A loop callback that queues three commands, looking at what the server
 * has received in between. */
struct batch {
    struct redis_async *a;
    struct seen *s;
    struct fake *f;
    int received_inside;   /* what the server had while the callback ran */
};

static void queue_three(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct batch *b = arg;
    queue(b->a, b->s, 1);
    usleep(100000);            /* time enough for a write to reach the server */
    b->received_inside = __atomic_load_n(&b->f->received, __ATOMIC_RELAXED);
    queue(b->a, b->s, 2);
}

/* Over plain TCP the commands a callback queues are written together once
 * it returns, in the same loop turn: not one write per command, and not
 * when the loop next polls for writability. */
START_TEST(async_writes_after_the_callback)
{
    struct fake f = {0};
    fake_start(&f);
    struct seen s = {.base = event_base_new(), .want = 3};
    struct redis_async *a = async_to(s.base, f.port, 0);
    struct batch b = {.a = a, .s = &s, .f = &f, .received_inside = -1};
    struct event *ev = event_new(s.base, -1, 0, queue_three, &b);
    event_active(ev, EV_TIMEOUT, 0);
    ck_assert_int_eq(event_base_loop(s.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), 0);   /* one turn */
    ck_assert_int_eq(b.received_inside, 0);
    for (int i = 0; i < 200 && __atomic_load_n(&f.received, __ATOMIC_RELAXED) < 3; i++)
        usleep(10000);         /* the loop does not run meanwhile */
    ck_assert_int_eq(__atomic_load_n(&f.received, __ATOMIC_RELAXED), 3);
    run_until_done(&s);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(s.values[i], i);
    event_free(ev);
    redis_async_free(a);
    event_base_free(s.base);
    fake_stop(&f);
}
END_TEST

START_TEST(async_silent_server_fails_in_flight)
{
    struct fake f = {.silent = 1};
    fake_start(&f);
    struct seen s = {.base = event_base_new(), .want = 3};
    struct redis_async *a = async_to(s.base, f.port, 300);
    double t = now_s();
    queue(a, &s, 3);
    run_until_done(&s);
    double took = now_s() - t;
    ck_assert_msg(took >= 0.25 && took < 2.0, "took %.3f", took);
    ck_assert_msg(strstr(s.err, "no reply within 300 ms") != NULL, "%s", s.err);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(s.values[i], -1);
    redis_async_free(a);
    event_base_free(s.base);   /* closes the socket: libevent finalizes a freed bufferevent there */
    fake_stop(&f);
}
END_TEST

START_TEST(async_dead_server_fails_fast)
{
    struct seen s = {.base = event_base_new()};
    struct redis_async *a = async_to(s.base, free_port(0, NULL), 0);
    char err[256];
    const char *argv[] = {"PING"};
    double t = now_s();
    ck_assert_int_eq(redis_async_command(a, 1, argv, NULL, on_reply, &s, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "Connection refused") != NULL, "%s", err);
    /* within the next second no new connect is tried */
    ck_assert_int_eq(redis_async_command(a, 1, argv, NULL, on_reply, &s, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "reconnecting") != NULL, "%s", err);
    ck_assert(now_s() - t < 0.5);
    redis_async_free(a);
    ck_assert_int_eq(s.calls, 0);   /* a refused command never calls back */
    event_base_free(s.base);
}
END_TEST

/* A server that never finishes the TLS handshake costs the loop one connect
 * timeout, then nothing for four times as long. */
START_TEST(async_slow_connect_backs_off)
{
    int lfd = -1;
    char url[64], err[256];
    snprintf(url, sizeof url, "rediss://127.0.0.1:%d", free_port(1, &lfd));
    struct redis_options o = {.url = url, .connect_timeout_ms = 600, .insecure_skip_verify = 1};
    struct seen s = {.base = event_base_new()};
    struct redis_async *a = redis_async_new(s.base, &o);
    const char *argv[] = {"PING"};
    double t = now_s();
    ck_assert_int_eq(redis_async_command(a, 1, argv, NULL, on_reply, &s, err, sizeof err), -1);
    double took = now_s() - t;
    ck_assert_msg(took >= 0.55 && took < 2.0, "took %.3f", took);
    ck_assert_msg(strstr(err, "handshake") != NULL, "%s", err);
    usleep(1100 * 1000);   /* past the plain one-second pause, well within 4 x 600 ms of the attempt */
    t = now_s();
    ck_assert_int_eq(redis_async_command(a, 1, argv, NULL, on_reply, &s, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "reconnecting") != NULL, "%s", err);
    ck_assert(now_s() - t < 0.1);
    redis_async_free(a);
    event_base_free(s.base);
    close(lfd);
}
END_TEST

START_TEST(async_reconnects_after_close)
{
    struct fake f = {.close_after = 1};
    fake_start(&f);
    struct seen s = {.base = event_base_new(), .want = 2};
    struct redis_async *a = async_to(s.base, f.port, 0);
    queue(a, &s, 2);           /* the server answers one, then hangs up */
    run_until_done(&s);
    ck_assert_int_eq(s.values[0], 0);
    ck_assert_int_eq(s.values[1], -1);
    /* FIN, or RST when the second command was still unread in the server's
     * socket as it closed (commands are written as soon as they are queued) */
    ck_assert_msg(strstr(s.err, "closed by server") != NULL || strstr(s.err, "reset by peer") != NULL, "%s",
                  s.err);
    s.want = 3;
    queue(a, &s, 1);           /* a new connection, so its sequence starts again */
    run_until_done(&s);
    ck_assert_int_eq(s.values[2], 0);
    redis_async_free(a);
    event_base_free(s.base);   /* closes the socket: libevent finalizes a freed bufferevent there */
    fake_stop(&f);
}
END_TEST

START_TEST(async_free_ends_pending)
{
    struct fake f = {.silent = 1};
    fake_start(&f);
    struct seen s = {.base = event_base_new(), .want = 2};
    struct redis_async *a = async_to(s.base, f.port, 0);
    queue(a, &s, 2);
    redis_async_free(a);
    ck_assert_int_eq(s.calls, 2);
    ck_assert_msg(strstr(s.err, "connection closed") != NULL, "%s", s.err);
    event_base_free(s.base);   /* closes the socket: libevent finalizes a freed bufferevent there */
    fake_stop(&f);
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("redis_conn");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, url_parsing);
    tcase_add_test(tc, format_is_hiredis);
    tcase_add_test(tc, dead_server_fails_fast);
    tcase_add_test(tc, silent_server_times_out);
    tcase_add_test(tc, async_pipelines_in_order);
    tcase_add_test(tc, async_writes_after_the_callback);
    tcase_add_test(tc, async_silent_server_fails_in_flight);
    tcase_add_test(tc, async_dead_server_fails_fast);
    tcase_add_test(tc, async_slow_connect_backs_off);
    tcase_add_test(tc, async_reconnects_after_close);
    tcase_add_test(tc, async_free_ends_pending);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
