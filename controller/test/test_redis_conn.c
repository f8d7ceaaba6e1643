/* test_redis_conn.c — redis:// and rediss:// URL parsing, and connection
 * failures that must come back fast with a clear message (closed port,
 * a listener that never speaks). Talking to a real server is e2e's job
 * (e2e/test_trust_storage.c). */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

int main(void)
{
    Suite *s = suite_create("redis_conn");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, url_parsing);
    tcase_add_test(tc, dead_server_fails_fast);
    tcase_add_test(tc, silent_server_times_out);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
