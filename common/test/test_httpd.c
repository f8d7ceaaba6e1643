/* test_httpd.c — the evhttp listener: routing, limits, errors, TLS swap, stop.
 * Real sockets on 127.0.0.1 and libcurl as the client. */
#include "common/httpd.h"
#include "common/sched_slice.h"
#include "common/test/check_run.h"
#include "common/test/curl_collect.h"
#include "common/tls.h"

#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct reply {
    long code;
    char body[4096];   /* the reply body's first 4095 bytes */
};

/* One request; `ca` non-NULL means https with that CA file. */
static struct reply request(const char *scheme, int port, const char *method, const char *path,
                            const char *body, size_t body_len, const char *ca) {
    struct reply r = {0};
    struct buf b = {0};
    char url[256];
    snprintf(url, sizeof url, "%s://127.0.0.1:%d%s", scheme, port, path);
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    if (ca) curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.code);
    curl_easy_cleanup(c);
    snprintf(r.body, sizeof r.body, "%s", b.p ? b.p : "");
    free(b.p);
    return r;
}

static void echo(struct httpd_req *r, void *arg) {
    size_t len;
    const char *body = httpd_body(r, &len);
    const char *q = httpd_query(r, "x");
    json_t *out = json_pack("{s:s, s:s, s:s, s:i, s:s?, s:s}", "route", (const char *)arg, "method",
                            httpd_method(r), "path", httpd_path(r), "len", (int)len, "x", q, "uri",
                            httpd_uri(r));
    (void)body;
    httpd_reply_json(r, 200, out);
}

static struct httpd *start(struct httpd_options *o) {
    struct httpd *h = httpd_new(o);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(httpd_route(h, "GET", "/exact", 0, echo, "exact"), 0);
    ck_assert_int_eq(httpd_route(h, "POST", "/exact", 0, echo, "exact-post"), 0);
    ck_assert_int_eq(httpd_route(h, NULL, "/prefix/", 1, echo, "prefix"), 0);
    if (!o->tls) {
        char err[256];
        ck_assert_msg(httpd_start(h, err, sizeof err) == 0, "%s", err);
    }
    return h;
}

START_TEST(routes_and_errors) {
    struct httpd_options o = {.name = "t", .address = "127.0.0.1", .port = 0, .max_body = 1024};
    struct httpd *h = start(&o);
    int port = httpd_port(h);
    ck_assert_int_gt(port, 0);

    struct reply r = request("http", port, "GET", "/exact?x=a%20b", NULL, 0, NULL);
    ck_assert_int_eq(r.code, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"route\":\"exact\""));
    ck_assert_ptr_nonnull(strstr(r.body, "\"x\":\"a b\""));
    ck_assert_ptr_nonnull(strstr(r.body, "\"uri\":\"/exact?x=a%20b\""));

    r = request("http", port, "POST", "/exact", "hello", 5, NULL);
    ck_assert_int_eq(r.code, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"route\":\"exact-post\""));
    ck_assert_ptr_nonnull(strstr(r.body, "\"len\":5"));

    r = request("http", port, "DELETE", "/prefix/a/b", NULL, 0, NULL);
    ck_assert_int_eq(r.code, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"path\":\"/prefix/a/b\""));

    r = request("http", port, "PUT", "/exact", "x", 1, NULL);
    ck_assert_int_eq(r.code, 405);
    ck_assert_ptr_nonnull(strstr(r.body, "\"error\":\"MethodNotAllowed\""));

    r = request("http", port, "GET", "/nowhere", NULL, 0, NULL);
    ck_assert_int_eq(r.code, 404);
    ck_assert_ptr_nonnull(strstr(r.body, "no route for /nowhere"));

    char big[2048];
    memset(big, 'a', sizeof big);
    r = request("http", port, "POST", "/exact", big, sizeof big, NULL);
    ck_assert_int_eq(r.code, 413);
    httpd_free(h);
}
END_TEST

START_TEST(rate_limit) {
    struct httpd_options o = {.name = "t", .address = "127.0.0.1", .max_requests_per_second = 5};
    struct httpd *h = start(&o);
    int ok = 0, limited = 0;
    for (int i = 0; i < 20; i++) {
        struct reply r = request("http", httpd_port(h), "GET", "/exact", NULL, 0, NULL);
        if (r.code == 200) ok++;
        if (r.code == 429) limited++;
    }
    ck_assert_int_ge(ok, 5);
    ck_assert_int_le(ok, 8);
    ck_assert_int_eq(ok + limited, 20);
    httpd_free(h);
}
END_TEST

/* A self-signed certificate for 127.0.0.1 with `cn` as subject, written to dir. */
static void make_cert(const char *dir, const char *cn) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=%s "
             "-addext subjectAltName=IP:127.0.0.1 -keyout %s/tls.key -out %s/tls.crt 2>/dev/null",
             cn, dir, dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(tls_and_swap) {
    char dir[] = "/tmp/httpd-test-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char crt[256], key[256], err[256];
    snprintf(crt, sizeof crt, "%s/tls.crt", dir);
    snprintf(key, sizeof key, "%s/tls.key", dir);
    make_cert(dir, "first");
    struct httpd_options o = {.name = "t", .address = "127.0.0.1", .tls = 1};
    struct httpd *h = start(&o);
    ck_assert_int_eq(httpd_start(h, err, sizeof err), -1); /* TLS without a certificate refuses to start */
    SSL_CTX *ctx = tls_server_ctx_from_files(crt, key, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    ck_assert_int_eq(httpd_set_tls(h, ctx), 0);
    SSL_CTX_free(ctx);
    ck_assert_msg(httpd_start(h, err, sizeof err) == 0, "%s", err);
    int port = httpd_port(h);
    char first_ca[300];
    snprintf(first_ca, sizeof first_ca, "%s/first.pem", dir);
    ck_assert_int_eq(rename(crt, first_ca), 0);
    ck_assert_int_eq(request("https", port, "GET", "/exact", NULL, 0, first_ca).code, 200);

    make_cert(dir, "second"); /* a new pair: new connections must get it */
    ctx = tls_server_ctx_from_files(crt, key, err, sizeof err);
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(httpd_set_tls(h, ctx), 0);
    SSL_CTX_free(ctx);
    ck_assert_int_eq(request("https", port, "GET", "/exact", NULL, 0, crt).code, 200);
    ck_assert_int_eq(request("https", port, "GET", "/exact", NULL, 0, first_ca).code, 0); /* old CA no longer fits */
    httpd_free(h);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Regression: freeing right after start, before the loop threads ran, must not hang. */
START_TEST(stop_right_after_start) {
    for (int i = 0; i < 50; i++) {
        struct httpd_options o = {.name = "t", .address = "127.0.0.1", .threads = 2};
        struct httpd *h = start(&o);
        httpd_free(h);
    }
}
END_TEST

/* Replies with the scheduler slice of the loop thread that runs it. */
static void slice_of_loop(struct httpd_req *r, void *arg) {
    (void)arg;
    httpd_reply_json(r, 200, json_pack("{s:i}", "slice", sched_slice_get()));
}

/* Each loop thread takes sched_slice_us for itself; the thread that
 * started the listener keeps its own. */
START_TEST(loops_take_the_slice) {
    int def = sched_slice_get();
    ck_assert_int_ge(def, 0);
    if (def == 0) return; /* kernel < 6.12 reports no slice */
    int cases[] = {300, 0};
    for (int c = 0; c < 2; c++) {
        struct httpd_options o = {.name = "t", .address = "127.0.0.1", .threads = 2,
                                  .sched_slice_us = cases[c]};
        struct httpd *h = httpd_new(&o);
        ck_assert_ptr_nonnull(h);
        ck_assert_int_eq(httpd_route(h, "GET", "/slice", 0, slice_of_loop, NULL), 0);
        char err[256];
        ck_assert_msg(httpd_start(h, err, sizeof err) == 0, "%s", err);
        for (int i = 0; i < 8; i++) {   /* new connections: both loops answer some */
            struct reply r = request("http", httpd_port(h), "GET", "/slice", NULL, 0, NULL);
            ck_assert_int_eq(r.code, 200);
            json_t *j = json_loads(r.body, 0, NULL);
            ck_assert_ptr_nonnull(j);
            ck_assert_int_eq(json_integer_value(json_object_get(j, "slice")), cases[c] ? cases[c] : def);
            json_decref(j);
        }
        httpd_free(h);
        ck_assert_int_eq(sched_slice_get(), def);
    }
}
END_TEST

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    Suite *s = suite_create("httpd");
    TCase *tc = tcase_create("listener");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, routes_and_errors);
    tcase_add_test(tc, rate_limit);
    tcase_add_test(tc, tls_and_swap);
    tcase_add_test(tc, stop_right_after_start);
    tcase_add_test(tc, loops_take_the_slice);
    suite_add_tcase(s, tc);
    int rc = check_run(s, CK_FORK_GETENV);
    curl_global_cleanup();
    return rc;
}
