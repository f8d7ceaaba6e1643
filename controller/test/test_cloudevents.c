/* test_cloudevents.c — CloudEvents 1.0 structured-mode encoding of audit
 * events, and the HTTP sink against a small local server: headers and body
 * as sent, status mapping (2xx / retryable / rejected), a closed port and a
 * server that never answers (bounded by the timeout). */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/test/check_run.h"
#include "controller/cloudevents.h"

START_TEST(structured_mode_json)
{
    struct audit_event ev;
    char err[256];
    json_t *data = json_pack("{s:i, s:s}", "score", 827, "tier", "trusted");
    ck_assert_int_eq(audit_event_init(&ev, "evt_1", "trust.score_changed", "did:mesh:0123456789abcdef0123456789abcdef",
                                      1714564800123LL, data, err, sizeof err),
                     0);
    json_t *ce = cloudevent_from_audit(&ev);
    ck_assert_ptr_nonnull(ce);
    ck_assert_str_eq(json_str_at(ce, "specversion"), "1.0");
    ck_assert_str_eq(json_str_at(ce, "id"), "evt_1");
    ck_assert_str_eq(json_str_at(ce, "source"), "did:mesh:0123456789abcdef0123456789abcdef");
    ck_assert_str_eq(json_str_at(ce, "type"), "ai.agentmesh.trust.score_changed");
    ck_assert_str_eq(json_str_at(ce, "time"), "2024-05-01T12:00:00.123Z");
    ck_assert_str_eq(json_str_at(ce, "datacontenttype"), "application/json");
    ck_assert_int_eq(json_int_at(ce, "data.score", 0), 827);
    json_decref(ce);
    audit_event_clear(&ev);
    /* no DID: the controller is the source */
    ck_assert_int_eq(audit_event_init(&ev, NULL, "policy.changed", NULL, 0, NULL, err, sizeof err), 0);
    ck_assert_int_eq(strncmp(ev.id, "evt_", 4), 0);
    ck_assert_uint_eq(strlen(ev.id), 36);
    ce = cloudevent_from_audit(&ev);
    ck_assert_str_eq(json_str_at(ce, "source"), "agentmesh-controller");
    ck_assert_str_eq(json_str_at(ce, "time"), "1970-01-01T00:00:00.000Z");
    json_decref(ce);
    audit_event_clear(&ev);
    ck_assert_int_eq(audit_event_init(&ev, NULL, "Bad Type", NULL, 0, NULL, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "type"));
}
END_TEST

START_TEST(canonical_round_trip)
{
    struct audit_event ev, back;
    char err[256];
    json_t *data = json_pack("{s:f, s:[i,s]}", "v", 0.1, "l", 1, "x");
    ck_assert_int_eq(audit_event_init(&ev, "id-9", "trust.signal", "did:mesh:ab", 42, data, err, sizeof err), 0);
    char *c = audit_event_canonical(&ev);
    ck_assert_str_eq(c, "{\"agent_did\":\"did:mesh:ab\",\"data\":{\"l\":[1,\"x\"],\"v\":0.10000000000000001},"
                        "\"id\":\"id-9\",\"ts\":42,\"type\":\"trust.signal\"}");
    ck_assert_int_eq(audit_event_parse(c, strlen(c), &back, err, sizeof err), 0);
    char *c2 = audit_event_canonical(&back);
    ck_assert_str_eq(c, c2);
    free(c);
    free(c2);
    audit_event_clear(&ev);
    audit_event_clear(&back);
    ck_assert_int_eq(audit_event_parse("{\"id\":\"x\"}", 10, &back, err, sizeof err), -1);
    ck_assert_int_eq(audit_event_parse("{", 1, &back, err, sizeof err), -1);
}
END_TEST

/* ---- a one-request-per-connection HTTP server ---------------------------- */

struct server {
    int fd, port;
    int status;          /* reply status; 0 = never answer */
    int requests;
    char head[2048];
    char body[2048];
};

static void *serve(void *arg)
{
    struct server *s = arg;
    int c = accept(s->fd, NULL, NULL);
    if (c < 0)
        return NULL;
    char buf[4096];
    size_t have = 0;
    char *end = NULL;
    while (have < sizeof buf - 1 && !end) {
        ssize_t n = read(c, buf + have, sizeof buf - 1 - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (end) {
        size_t hlen = (size_t)(end - buf);
        snprintf(s->head, sizeof s->head, "%.*s", (int)hlen, buf);
        const char *cl = strcasestr(s->head, "content-length:");
        size_t want = cl ? (size_t)atol(cl + 15) : 0;
        while (have - hlen - 4 < want && have < sizeof buf - 1) {
            ssize_t n = read(c, buf + have, sizeof buf - 1 - have);
            if (n <= 0)
                break;
            have += (size_t)n;
        }
        snprintf(s->body, sizeof s->body, "%.*s", (int)(have - hlen - 4), end + 4);
        s->requests++;
    }
    if (s->status) {
        char reply[128];
        int n = snprintf(reply, sizeof reply, "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                         s->status);
        ck_assert_int_eq(write(c, reply, (size_t)n), n);
    } else {
        usleep(800 * 1000);
    }
    close(c);
    return NULL;
}

static void server_start(struct server *s, int status, pthread_t *th)
{
    memset(s, 0, sizeof *s);
    s->status = status;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(s->fd, 4), 0);
    ck_assert_int_eq(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(th, NULL, serve, s), 0);
}

static int post_to(struct server *s, int timeout_ms, const char *body, char *err, size_t errlen)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/events", s->port);
    struct cloudevents_sink *sink = cloudevents_sink_new(url, NULL, timeout_ms, err, errlen);
    ck_assert_ptr_nonnull(sink);
    int rc = cloudevents_spool_sink(body, strlen(body), sink, err, errlen);
    cloudevents_sink_free(sink);
    return rc;
}

START_TEST(post_headers_and_body)
{
    struct server s;
    pthread_t th;
    char err[256];
    server_start(&s, 202, &th);
    const char *body = "{\"specversion\":\"1.0\",\"id\":\"e1\"}";
    ck_assert_int_eq(post_to(&s, 2000, body, err, sizeof err), 0);
    pthread_join(th, NULL);
    close(s.fd);
    ck_assert_int_eq(s.requests, 1);
    ck_assert_int_eq(strncmp(s.head, "POST /events HTTP/1.1", 21), 0);
    ck_assert_ptr_nonnull(strcasestr(s.head, "content-type: application/cloudevents+json"));
    ck_assert_str_eq(s.body, body);
}
END_TEST

START_TEST(status_mapping)
{
    struct { int status, want; } cases[] = {{200, 0}, {503, -1}, {429, -1}, {400, -2}, {404, -2}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct server s;
        pthread_t th;
        char err[256] = "";
        server_start(&s, cases[i].status, &th);
        ck_assert_int_eq(post_to(&s, 2000, "{}", err, sizeof err), cases[i].want);
        if (cases[i].want)
            ck_assert_ptr_nonnull(strstr(err, "HTTP"));
        pthread_join(th, NULL);
        close(s.fd);
    }
}
END_TEST

START_TEST(down_and_hung_sinks_fail_in_time)
{
    char err[256];
    struct server s;
    pthread_t th;
    server_start(&s, 0, &th);   /* accepts, never answers */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(post_to(&s, 300, "{}", err, sizeof err), -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_msg(took < 0.75, "took %.3fs", took);
    ck_assert_ptr_nonnull(strstr(err, "audit sink"));
    pthread_join(th, NULL);
    int port = s.port;
    close(s.fd);
    /* nothing listening any more */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    struct cloudevents_sink *sink = cloudevents_sink_new(url, NULL, 0, err, sizeof err);
    ck_assert_int_eq(cloudevents_sink_post(sink, "{}", 2, err, sizeof err), -1);
    cloudevents_sink_free(sink);
    ck_assert_ptr_null(cloudevents_sink_new("ftp://x/", NULL, 0, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "http://"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cloudevents");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, structured_mode_json);
    tcase_add_test(tc, canonical_round_trip);
    tcase_add_test(tc, post_headers_and_body);
    tcase_add_test(tc, status_mapping);
    tcase_add_test(tc, down_and_hung_sinks_fail_in_time);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
