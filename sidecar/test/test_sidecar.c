/* test_sidecar.c — a whole sidecar in process, on ephemeral ports, against a
 * fake controller (an httpd that checks each call's Ed25519-Timestamp header
 * with the real verifier and replay cache, then echoes what it got).
 *
 * Covers: forwarding and the exact forwarded bodies, the auth header on
 * every controller call, key rotation picked up without restart, 413/400/
 * 404/405 on the loopback API, 502 when the controller is down, 504 when it
 * is slow, /healthz and /metrics, kept-alive connections to the controller
 * and the one retry when a kept-alive connection dies under a call, the
 * bound on calls in flight to the controller. */
#include <pthread.h>
#include <arpa/inet.h>
#include <check.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/httpd.h"
#include "common/json.h"
#include "common/replay_cache.h"
#include "common/test/check_run.h"
#include "common/tls.h"
#include "sidecar/server.h"

static char dir[64];
static struct identity id;       /* the sidecar's key as the controller knows it */
static struct httpd *fake;
static struct replay_cache *replays;
static struct sidecar *sc;

struct reply {
    int status;
    char body[8192];
};

static void http(int port, const char *method, const char *path, const char *body, size_t len,
                 struct reply *out);

/* ---- fake controller ---- */

/* Echoes {path, body, auth: "ok"|reason} after checking the Authorization header. */
static void fake_handle(struct httpd_req *req, void *arg) {
    size_t len;
    const char *body = httpd_body(req, &len);
    const char *hdr = httpd_header(req, "Authorization");
    const char *why = "missing Authorization";
    struct auth_header h;
    if (hdr && auth_parse_header(hdr, strlen(hdr), &h, &why) == 0 &&
        strcmp(h.did, id.did) == 0 &&
        auth_verify(&h, id.pk, NULL, httpd_method(req), httpd_path(req), body, len, time(NULL),
                    NULL, &why) == 0) {
        enum replay_result r = replay_cache_add(replays, h.sig, sizeof h.sig, h.ts, time(NULL));
        why = r == REPLAY_OK ? NULL : replay_result_str(r);
    } else if (hdr && why == NULL) {
        why = "unknown DID";
    }
    json_t *got = json_parse(body, len, NULL, 0);
    httpd_reply_json(req, why ? 401 : 200,
                     json_pack("{s:s, s:o, s:s}", "path", httpd_path(req), "body",
                               got ? got : json_null(), "auth", why ? why : "ok"));
}


static void late_reply(evutil_socket_t fd, short what, void *arg) {
    struct httpd_req *req = arg;
    httpd_reply_json(req, 200, json_pack("{s:s}", "late", "yes"));
}

/* Answers after 2 s: longer than the sidecar's 1 s timeout. */
static void fake_slow(struct httpd_req *req, void *arg) {
    struct timeval two = {2, 0};
    ck_assert_int_eq(event_base_once(httpd_req_base(req), -1, EV_TIMEOUT, late_reply, req, &two), 0);
}

static void start_fake(void) {
    struct httpd_options o = {.name = "fake-controller", .address = "127.0.0.1", .port = 0};
    char err[256];
    fake = httpd_new(&o);
    ck_assert_ptr_nonnull(fake);
    ck_assert_int_eq(httpd_route(fake, "POST", "/ctl/api/v1/handshake/verify", 0, fake_slow, NULL), 0);
    ck_assert_int_eq(httpd_route(fake, NULL, "/", 1, fake_handle, NULL), 0);
    ck_assert_msg(httpd_start(fake, err, sizeof err) == 0, "%s", err);
    struct reply r;                          /* its loop is running from here on */
    http(httpd_port(fake), "GET", "/ping", "", 0, &r);
    ck_assert_int_eq(r.status, 401);
}

/* ---- a tiny blocking HTTP/1.0 client ---- */

static void http(int port, const char *method, const char *path, const char *body, size_t len,
                 struct reply *out) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char head[512];
    int n = snprintf(head, sizeof head, "%s %s HTTP/1.0\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n", method, path, len);
    ck_assert_int_eq(write(fd, head, (size_t)n), n);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, body + off, len - off);
        if (w <= 0) break;              /* the server may close early on an oversized body */
        off += (size_t)w;
    }
    char buf[1 << 17];
    size_t got = 0;
    ssize_t r;
    while ((r = read(fd, buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
    close(fd);
    buf[got] = '\0';
    out->status = 0;
    ck_assert_int_eq(sscanf(buf, "HTTP/1.%*d %d", &out->status), 1);
    const char *b = strstr(buf, "\r\n\r\n");
    snprintf(out->body, sizeof out->body, "%s", b ? b + 4 : "");
}

static void post(const char *path, const char *body, struct reply *out) {
    http(sidecar_api_port(sc), "POST", path, body, strlen(body), out);
}

static json_t *body_json(const struct reply *r) {
    json_t *j = json_parse(r->body, strlen(r->body), NULL, 0);
    ck_assert_msg(j != NULL, "reply is not JSON: %s", r->body);
    return j;
}

/* ---- fixture ---- */

static void start_sidecar_ca(const char *controller_url, int timeout, const char *ca_file) {
    struct sidecar_config c;
    char err[512];
    char *argv[] = {"sidecar", NULL};
    ck_assert_int_eq(sidecar_config_load(&c, 1, argv, err, sizeof err), CONFIG_OK);
    snprintf(c.controller_url, sizeof c.controller_url, "%s", controller_url);
    snprintf(c.identity_dir, sizeof c.identity_dir, "%s", dir);
    snprintf(c.agent, sizeof c.agent, "alpha");
    c.listen_port = 0;
    snprintf(c.metrics_addr, sizeof c.metrics_addr, "127.0.0.1");
    c.metrics_port = 0;
    c.timeout_seconds = timeout;
    snprintf(c.ca_file, sizeof c.ca_file, "%s", ca_file ? ca_file : "");
    sc = sidecar_start(&c, err, sizeof err);
    ck_assert_msg(sc != NULL, "%s", err);
    /* One request to each listener: both loops are running from here on.
     * (httpd_free's loopbreak is lost if it lands before the loop thread
     * enters event_base_loop; see the report to common/httpd.c's owner.) */
    struct reply r;
    http(sidecar_api_port(sc), "GET", "/v1/identity", "", 0, &r);
    http(sidecar_metrics_port(sc), "GET", "/healthz", "", 0, &r);
}

static void start_sidecar(const char *controller_url, int timeout) {
    start_sidecar_ca(controller_url, timeout, NULL);
}

static void setup(void) {
    char err[256], url[128];
    strcpy(dir, "/tmp/test_sidecar.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(identity_generate(&id), 0);
    ck_assert_int_eq(identity_save_dir(dir, &id, NULL, err, sizeof err), 0);
    replays = replay_cache_new(1024, AUTH_WINDOW_SECONDS);
    start_fake();
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ctl/", httpd_port(fake));
    start_sidecar(url, 1);
}

static void teardown(void) {
    sidecar_stop(sc);
    httpd_free(fake);
    replay_cache_free(replays);
    identity_wipe(&id);
    const char *names[] = {"ed25519.key", "ed25519.pub", "did", "key-id", "rotation-proof"};
    char p[128];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* ---- tests ---- */

START_TEST(identity_and_health) {
    struct reply r;
    http(sidecar_api_port(sc), "GET", "/v1/identity", "", 0, &r);
    ck_assert_int_eq(r.status, 200);
    json_t *j = body_json(&r);
    ck_assert_str_eq(json_str_at(j, "did"), id.did);
    ck_assert_str_eq(json_str_at(j, "key_id"), id.key_id);
    ck_assert_str_eq(json_str_at(j, "agent"), "alpha");
    json_decref(j);
    http(sidecar_metrics_port(sc), "GET", "/healthz", "", 0, &r);
    ck_assert_int_eq(r.status, 200);
    http(sidecar_metrics_port(sc), "GET", "/metrics", "", 0, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "agentmesh_sidecar_requests_total{route=\"identity\",code=\"200\"}"));
    ck_assert_ptr_nonnull(strstr(r.body, "agentmesh_sidecar_identity_loaded 1"));
}
END_TEST

START_TEST(challenge_forwarded_with_auth) {
    struct reply r;
    const char *peer = "did:mesh:0123456789abcdef0123456789abcdef";
    char body[128];
    snprintf(body, sizeof body, "{\"peer_did\":\"%s\"}", peer);
    for (int i = 0; i < 3; i++) {          /* three calls: three distinct signatures */
        post("/v1/challenge", body, &r);
        ck_assert_msg(r.status == 200, "status %d: %s", r.status, r.body);
        json_t *j = body_json(&r);
        ck_assert_str_eq(json_str_at(j, "auth"), "ok");
        ck_assert_str_eq(json_str_at(j, "path"), "/ctl/api/v1/handshake/challenge");
        ck_assert_str_eq(json_str_at(j, "body.agent_did"), peer);
        json_decref(j);
    }
}
END_TEST

START_TEST(signals_forwarded_with_own_did) {
    struct reply r;
    post("/v1/signals", "{\"dimension\":\"policyCompliance\",\"value\":0.9}", &r);
    ck_assert_int_eq(r.status, 200);
    json_t *j = body_json(&r);
    ck_assert_str_eq(json_str_at(j, "auth"), "ok");
    ck_assert_str_eq(json_str_at(j, "path"), "/ctl/api/v1/signals");
    ck_assert_str_eq(json_str_at(j, "body.agent_did"), id.did);
    ck_assert_str_eq(json_str_at(j, "body.dimension"), "policyCompliance");
    json_decref(j);
}
END_TEST

START_TEST(rotated_key_used_without_restart) {
    char err[256], proof[ID_SIG_B64_BUFSZ];
    struct identity next;
    struct reply r;
    ck_assert_int_eq(identity_rotate(&id, &next, proof, sizeof proof), 0);
    ck_assert_int_eq(identity_save_dir(dir, &next, proof, err, sizeof err), 0);
    /* Before the poll the sidecar still signs with the old key. */
    post("/v1/signals", "{\"dimension\":\"outputQuality\",\"value\":0.5}", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(sidecar_poll_identity(sc), 1);
    /* The controller now knows only the new key. */
    struct identity old = id;
    id = next;
    post("/v1/signals", "{\"dimension\":\"outputQuality\",\"value\":0.5}", &r);
    ck_assert_msg(r.status == 200, "status %d: %s", r.status, r.body);
    http(sidecar_api_port(sc), "GET", "/v1/identity", "", 0, &r);
    json_t *j = body_json(&r);
    ck_assert_str_eq(json_str_at(j, "key_id"), next.key_id);
    ck_assert_str_eq(json_str_at(j, "did"), old.did);
    json_decref(j);
    identity_wipe(&old);
}
END_TEST

START_TEST(bad_requests) {
    struct reply r;
    post("/v1/challenge", "{not json", &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "not valid JSON"));
    post("/v1/respond", "{\"challenge_id\":\"c\"}", &r);
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "nonce"));
    http(sidecar_api_port(sc), "GET", "/v1/challenge", "", 0, &r);
    ck_assert_int_eq(r.status, 405);
    http(sidecar_api_port(sc), "GET", "/v1/nope", "", 0, &r);
    ck_assert_int_eq(r.status, 404);
    size_t big = SIDECAR_MAX_BODY + 100;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    http(sidecar_api_port(sc), "POST", "/v1/verify", huge, big, &r);
    ck_assert_int_eq(r.status, 413);
    free(huge);
}
END_TEST

START_TEST(respond_signs_locally) {
    struct reply r;
    post("/v1/respond", "{\"challenge_id\":\"challenge_0011223344556677\",\"nonce\":"
                        "\"aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899\"}", &r);
    ck_assert_int_eq(r.status, 200);
    json_t *j = body_json(&r);
    char msg[300];
    snprintf(msg, sizeof msg, "challenge_0011223344556677:%s:%s:%s",
             "aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899",
             json_str_at(j, "response_nonce"), id.did);
    unsigned char sig[ID_SIG_LEN];
    const char *s = json_str_at(j, "signature");
    ck_assert_int_eq(b64_decode_exact(s, strlen(s), sig, sizeof sig), 0);
    ck_assert_int_eq(identity_verify(id.pk, msg, strlen(msg), sig), 0);
    json_decref(j);
}
END_TEST

START_TEST(slow_controller_gives_504) {
    struct reply r;
    char body[512];
    unsigned char sig[ID_SIG_LEN] = {0};
    char sig_b64[ID_SIG_B64_BUFSZ];
    ck_assert_int_eq(b64_encode(sig, sizeof sig, sig_b64, sizeof sig_b64), 0);
    snprintf(body, sizeof body, "{\"challenge_id\":\"challenge_0011223344556677\",\"agent_did\":\"%s\","
             "\"response_nonce\":\"00112233445566778899aabbccddeeff\",\"signature\":\"%s\"}",
             id.did, sig_b64);
    post("/v1/verify", body, &r);
    ck_assert_msg(r.status == 504, "status %d: %s", r.status, r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "timed out"));
    sleep(2);                               /* let the fake's late reply run before teardown */
}
END_TEST

START_TEST(controller_down_gives_502) {
    sidecar_stop(sc);
    /* A port nobody listens on: bind one, note it, close it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    start_sidecar(url, 1);
    struct reply r;
    post("/v1/challenge", "{\"peer_did\":\"did:mesh:0123456789abcdef0123456789abcdef\"}", &r);
    ck_assert_msg(r.status == 502, "status %d: %s", r.status, r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "BadGateway"));
    /* And an unresolvable name. */
    sidecar_stop(sc);
    start_sidecar("http://no-such-host.invalid:8080", 1);
    post("/v1/challenge", "{\"peer_did\":\"did:mesh:0123456789abcdef0123456789abcdef\"}", &r);
    ck_assert_msg(r.status == 502, "status %d: %s", r.status, r.body);
}
END_TEST

/* https controller: verified against --ca-file (by IP SAN and by name); without it, 502. */
START_TEST(tls_controller) {
    char err[256], url[128];
    struct httpd_options o = {.name = "fake-tls", .address = "127.0.0.1", .port = 0, .tls = 1};
    struct httpd *tls = httpd_new(&o);
    SSL_CTX *ctx = tls_server_ctx_from_files(TESTDATA_DIR "/server.crt", TESTDATA_DIR "/server.key",
                                             err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    ck_assert_int_eq(httpd_set_tls(tls, ctx), 0);
    SSL_CTX_free(ctx);
    ck_assert_int_eq(httpd_route(tls, NULL, "/", 1, fake_handle, NULL), 0);
    ck_assert_msg(httpd_start(tls, err, sizeof err) == 0, "%s", err);
    const char *hosts[] = {"127.0.0.1", "localhost"};
    struct reply r;
    for (int i = 0; i < 2; i++) {
        sidecar_stop(sc);
        snprintf(url, sizeof url, "https://%s:%d", hosts[i], httpd_port(tls));
        start_sidecar_ca(url, 5, TESTDATA_DIR "/ca.crt");
        post("/v1/challenge", "{\"peer_did\":\"did:mesh:0123456789abcdef0123456789abcdef\"}", &r);
        ck_assert_msg(r.status == 200, "%s: status %d: %s", url, r.status, r.body);
        json_t *j = body_json(&r);
        ck_assert_str_eq(json_str_at(j, "auth"), "ok");
        json_decref(j);
    }
    sidecar_stop(sc);
    start_sidecar_ca(url, 5, NULL);          /* system CAs do not know our test CA */
    post("/v1/challenge", "{\"peer_did\":\"did:mesh:0123456789abcdef0123456789abcdef\"}", &r);
    ck_assert_msg(r.status == 502, "status %d: %s", r.status, r.body);
    ck_assert_msg(strstr(r.body, "certificate verify failed") != NULL, "%s", r.body);
    sidecar_stop(sc);
    sc = NULL;
    httpd_free(tls);
}
END_TEST

/* ---- a raw keep-alive controller: counts connections, can drop a request ---- */

#define RAW_MAX_CONNS 64

struct raw {
    int fd, port;
    int connections, requests, open, max_open;
    int drop_nth;          /* close without answering the nth request on a connection; 0 = never */
    int delay_ms;          /* before each answer */
    pthread_t thread, conn_threads[RAW_MAX_CONNS];
};

struct raw_conn {
    struct raw *w;
    int fd;
};

/* Reads one request (headers + Content-Length body) into buf; 0 at EOF. */
static size_t raw_read_request(int fd, char *buf, size_t size) {
    size_t got = 0;
    char *end = NULL;
    while (!(end = strstr(buf, "\r\n\r\n"))) {
        ssize_t r = read(fd, buf + got, size - 1 - got);
        if (r <= 0) return 0;
        got += (size_t)r;
        buf[got] = '\0';
    }
    const char *cl = strstr(buf, "Content-Length: ");
    size_t want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 16, NULL, 10) : 0);
    while (got < want) {
        ssize_t r = read(fd, buf + got, size - 1 - got);
        if (r <= 0) return 0;
        got += (size_t)r;
    }
    return got;
}

/* One connection: answers its requests in order until it closes. */
static void *raw_serve_conn(void *arg) {
    struct raw_conn *rc = arg;
    struct raw *w = rc->w;
    int open = __atomic_add_fetch(&w->open, 1, __ATOMIC_SEQ_CST), max;
    while ((max = __atomic_load_n(&w->max_open, __ATOMIC_SEQ_CST)) < open &&
           !__atomic_compare_exchange_n(&w->max_open, &max, open, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    char buf[8192];
    for (int n = 1;; n++) {
        buf[0] = '\0';
        if (raw_read_request(rc->fd, buf, sizeof buf) == 0 || n == w->drop_nth) break;
        __atomic_add_fetch(&w->requests, 1, __ATOMIC_SEQ_CST);
        if (w->delay_ms) usleep((useconds_t)w->delay_ms * 1000);
        static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 "Content-Length: 11\r\n\r\n{\"ok\":true}";
        if (write(rc->fd, ok, sizeof ok - 1) != (ssize_t)(sizeof ok - 1)) break;
    }
    __atomic_sub_fetch(&w->open, 1, __ATOMIC_SEQ_CST);
    close(rc->fd);
    free(rc);
    return NULL;
}

static void *raw_serve(void *arg) {
    struct raw *w = arg;
    int c;
    while ((c = accept(w->fd, NULL, NULL)) >= 0) {
        struct raw_conn *rc = malloc(sizeof *rc);
        ck_assert_ptr_nonnull(rc);
        *rc = (struct raw_conn){w, c};
        ck_assert_int_lt(w->connections, RAW_MAX_CONNS);
        ck_assert_int_eq(pthread_create(&w->conn_threads[w->connections], NULL, raw_serve_conn, rc), 0);
        __atomic_add_fetch(&w->connections, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

static void raw_start(struct raw *w, int drop_nth, int delay_ms) {
    memset(w, 0, sizeof *w);
    w->drop_nth = drop_nth;
    w->delay_ms = delay_ms;
    w->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    ck_assert_int_eq(bind(w->fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(w->fd, 16), 0);
    ck_assert_int_eq(getsockname(w->fd, (struct sockaddr *)&a, &alen), 0);
    w->port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&w->thread, NULL, raw_serve, w), 0);
    char url[64];
    sidecar_stop(sc);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", w->port);
    start_sidecar(url, 5);
}

static void raw_stop(struct raw *w) {
    sidecar_stop(sc);                     /* closes its idle connection: the server's read ends */
    sc = NULL;
    shutdown(w->fd, SHUT_RDWR);           /* wakes accept() */
    pthread_join(w->thread, NULL);
    for (int i = 0; i < w->connections; i++) pthread_join(w->conn_threads[i], NULL);
    close(w->fd);
}

static const char peer_body[] = "{\"peer_did\":\"did:mesh:0123456789abcdef0123456789abcdef\"}";

START_TEST(controller_connection_kept_alive) {
    struct raw w;
    raw_start(&w, 0, 0);
    struct reply r;
    for (int i = 0; i < 5; i++) {
        post("/v1/challenge", peer_body, &r);
        ck_assert_msg(r.status == 200, "call %d: status %d: %s", i, r.status, r.body);
    }
    raw_stop(&w);
    ck_assert_int_eq(w.requests, 5);
    ck_assert_int_eq(w.connections, 1);
}
END_TEST

START_TEST(closed_kept_alive_connection_retried_once) {
    struct raw w;
    raw_start(&w, 2, 0);                     /* every connection dies at its second request */
    struct reply r;
    for (int i = 0; i < 3; i++) {
        post("/v1/challenge", peer_body, &r);
        ck_assert_msg(r.status == 200, "call %d: status %d: %s", i, r.status, r.body);
    }
    raw_stop(&w);
    ck_assert_int_eq(w.requests, 3);
    ck_assert_int_eq(w.connections, 3);   /* calls 2 and 3 each retried once on a fresh one */
}
END_TEST

static void *post_challenge(void *arg) {
    post("/v1/challenge", peer_body, arg);
    return NULL;
}

/* 20 calls at once to a controller answering in 100 ms: all answered, over
 * at most 8 connections (the bound on calls in flight; the rest waited). */
START_TEST(calls_in_flight_bounded) {
    struct raw w;
    raw_start(&w, 0, 100);
    enum { N = 20 };
    pthread_t th[N];
    struct reply *r = calloc(N, sizeof *r);
    ck_assert_ptr_nonnull(r);
    for (int i = 0; i < N; i++) ck_assert_int_eq(pthread_create(&th[i], NULL, post_challenge, &r[i]), 0);
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) ck_assert_msg(r[i].status == 200, "call %d: status %d: %s", i, r[i].status, r[i].body);
    free(r);
    raw_stop(&w);
    ck_assert_int_eq(w.requests, N);
    ck_assert_msg(w.max_open >= 2 && w.max_open <= 8, "%d connections open at once", w.max_open);
    ck_assert_msg(w.connections <= 8, "%d connections made", w.connections);
}
END_TEST

START_TEST(no_identity_yet) {
    sidecar_stop(sc);
    char saved[64];
    snprintf(saved, sizeof saved, "%s", dir);
    snprintf(dir, sizeof dir, "/nonexistent-identity");
    start_sidecar("http://127.0.0.1:1", 1);
    snprintf(dir, sizeof dir, "%s", saved);
    struct reply r;
    http(sidecar_metrics_port(sc), "GET", "/healthz", "", 0, &r);
    ck_assert_int_eq(r.status, 503);
    http(sidecar_api_port(sc), "GET", "/v1/identity", "", 0, &r);
    ck_assert_int_eq(r.status, 503);
    post("/v1/challenge", "{\"peer_did\":\"did:mesh:0123456789abcdef0123456789abcdef\"}", &r);
    ck_assert_int_eq(r.status, 503);
}
END_TEST

int main(void) {
    if (identity_init() != 0) return EXIT_FAILURE;
    Suite *s = suite_create("sidecar");
    TCase *tc = tcase_create("sidecar");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, identity_and_health);
    tcase_add_test(tc, challenge_forwarded_with_auth);
    tcase_add_test(tc, signals_forwarded_with_own_did);
    tcase_add_test(tc, rotated_key_used_without_restart);
    tcase_add_test(tc, bad_requests);
    tcase_add_test(tc, respond_signs_locally);
    tcase_add_test(tc, slow_controller_gives_504);
    tcase_add_test(tc, controller_down_gives_502);
    tcase_add_test(tc, tls_controller);
    tcase_add_test(tc, no_identity_yet);
    tcase_add_test(tc, controller_connection_kept_alive);
    tcase_add_test(tc, closed_kept_alive_connection_retried_once);
    tcase_add_test(tc, calls_in_flight_bounded);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
