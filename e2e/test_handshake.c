/* test_handshake.c — the trust API over a real redis-server: two API
 * replicas sharing one Redis-backed trust store, as two controller pods
 * would. A challenge issued by one replica is verified by the other, is
 * single-use across both, an Authorization replayed to the other replica is
 * refused, and a signal applied through one is read back through the other
 * with the engine's exact score.
 *
 * The Redis URL comes from AGENTMESH_TEST_REDIS_URL, else from
 * $AGENTMESH_CLUSTER_DIR/env (hack/kube-up.sh). Without it the test prints
 * why and passes without checking anything. */
#include <check.h>
#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/json.h"
#include "common/test/check_run.h"
#include "common/test/curl_collect.h"
#include "controller/redis_conn.h"
#include "controller/test/agent_fixture.h"
#include "controller/trust_api.h"
#include "e2e/cluster_env.h"

static const char *redis_url;
static struct identity alice, bob;
static struct agent_registry *reg;
static struct trust_store *store;
static struct trust_api *replica[2];

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void setup(void) {
    char err[512];
    ck_assert_int_eq(identity_generate(&alice), 0);
    ck_assert_int_eq(identity_generate(&bob), 0);
    reg = agent_registry_new();
    struct redis_options ro = {.url = redis_url};
    store = trust_store_redis_new(&ro, err, sizeof err);
    ck_assert_msg(store != NULL, "redis store at %s: %s", redis_url, err);
    ck_assert_int_eq(fixture_put_agent(reg, &alice, "e2e-handshake", "alice", "Active", 500, 0, "[\"read:data\"]"), 0);
    ck_assert_int_eq(fixture_put_agent(reg, &bob, "e2e-handshake", "bob", "Active", 500, 0, "[\"read:data\", \"write:reports\"]"), 0);
    /* bob: DESIGN §4's worked example, 827 trusted. */
    struct trust_state st;
    ck_assert_int_eq(trust_state_init(&st, 500, NULL, now_ms(), err, sizeof err), 0);
    double dims[TRUST_DIM_COUNT] = {92, 88, 85, 60, 78};
    memcpy(st.dims, dims, sizeof dims);
    ck_assert_int_eq(store->put(store, bob.did, &st, err, sizeof err), TS_OK);
    for (int i = 0; i < 2; i++) {
        struct trust_api_options o = {.address = "127.0.0.1", .threads = 2, .registry = reg, .store = store};
        replica[i] = trust_api_new(&o, err, sizeof err);
        ck_assert_msg(replica[i] != NULL, "%s", err);
        ck_assert_msg(trust_api_start(replica[i], err, sizeof err) == 0, "%s", err);
    }
}

static void teardown(void) {
    char err[256];
    for (int i = 0; i < 2; i++) trust_api_free(replica[i]);
    store->remove(store, alice.did, err, sizeof err);
    store->remove(store, bob.did, err, sizeof err);
    trust_store_destroy(store);
    agent_registry_free(reg);
    identity_wipe(&alice);
    identity_wipe(&bob);
}

/* ---- HTTP ------------------------------------------------------------------ */

/* Signs like a client: nine fraction digits per request, so two identical
 * requests in one second are not one signature (see test_trust_api.c). */
static void sign(const struct identity *as, const char *method, const char *path, const char *body,
                 char *out, size_t outlen) {
    static long seq;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char when[AUTH_TIME_BUFSZ], msg[AUTH_PATH_MAX + 256], sig_b64[ID_SIG_B64_BUFSZ], hex[65];
    unsigned char hash[32], sig[ID_SIG_LEN];
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + strlen(when), sizeof when - strlen(when), ".%09ldZ", (now.tv_nsec + ++seq) % 1000000000L);
    crypto_hash_sha256(hash, (const unsigned char *)(body ? body : ""), body ? strlen(body) : 0);
    sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
    int n = snprintf(msg, sizeof msg, "%s %s %s %s", method, path, when, hex);
    ck_assert_int_eq(identity_sign(as, msg, (size_t)n, sig), 0);
    ck_assert_int_eq(b64_encode(sig, sizeof sig, sig_b64, sizeof sig_b64), 0);
    snprintf(out, outlen, "%s %s %s %s", AUTH_SCHEME, as->did, when, sig_b64);
}

/* One request to replica r with a ready Authorization value. Returns the
 * status and the parsed body in *out. */
static long http(int r, const char *method, const char *path, const char *body, const char *auth, json_t **out) {
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    char url[256], hdr[AUTH_HEADER_MAX + 32];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", trust_api_port(replica[r]), path);
    snprintf(hdr, sizeof hdr, "Authorization: %s", auth);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, hdr);
    struct buf b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(c);
    ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    char err[128];
    *out = b.n ? json_parse(b.p, b.n, err, sizeof err) : NULL;
    free(b.p);
    return code;
}

static long call(int r, const struct identity *as, const char *method, const char *path, const char *body,
                 json_t **out) {
    char auth[AUTH_HEADER_MAX];
    sign(as, method, path, body, auth, sizeof auth);
    return http(r, method, path, body, auth, out);
}

struct challenge {
    char id[64], nonce[128];
};

static void ask_challenge(int r, const char *did, struct challenge *ch) {
    char body[128];
    json_t *out;
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\"}", did);
    ck_assert_int_eq(call(r, &alice, "POST", "/api/v1/handshake/challenge", body, &out), 200);
    snprintf(ch->id, sizeof ch->id, "%s", json_str_at(out, "challenge_id"));
    snprintf(ch->nonce, sizeof ch->nonce, "%s", json_str_at(out, "nonce"));
    json_decref(out);
}

/* bob answers ch; alice verifies on replica r. */
static json_t *verify_on(int r, const struct challenge *ch) {
    unsigned char rnd[32], sig[ID_SIG_LEN];
    char rnonce[65], sig_b64[ID_SIG_B64_BUFSZ], msg[512], body[1024];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(rnonce, sizeof rnonce, rnd, sizeof rnd);
    int n = snprintf(msg, sizeof msg, "%s:%s:%s:%s", ch->id, ch->nonce, rnonce, bob.did);
    ck_assert_int_eq(identity_sign(&bob, msg, (size_t)n, sig), 0);
    ck_assert_int_eq(b64_encode(sig, sizeof sig, sig_b64, sizeof sig_b64), 0);
    snprintf(body, sizeof body,
             "{\"challenge_id\":\"%s\",\"agent_did\":\"%s\",\"response_nonce\":\"%s\",\"signature\":\"%s\","
             "\"required_score\":800,\"required_capabilities\":[\"write:reports\"]}",
             ch->id, bob.did, rnonce, sig_b64);
    json_t *out;
    ck_assert_int_eq(call(r, &alice, "POST", "/api/v1/handshake/verify", body, &out), 200);
    return out;
}

#define SKIP_WITHOUT_REDIS()                                                                   \
    do {                                                                                       \
        if (!redis_url) {                                                                      \
            printf("SKIP %s: AGENTMESH_TEST_REDIS_URL not set (run hack/kube-up.sh)\n", __func__); \
            return;                                                                            \
        }                                                                                      \
    } while (0)

START_TEST(handshake_across_replicas) {
    SKIP_WITHOUT_REDIS();
    struct challenge ch;
    ask_challenge(0, bob.did, &ch);
    json_t *out = verify_on(1, &ch);
    ck_assert(json_is_true(json_object_get(out, "verified")));
    ck_assert_int_eq(json_int_at(out, "trust_score", -1), 827);
    ck_assert_str_eq(json_str_at(out, "tier"), "trusted");
    ck_assert_int_eq(json_array_size(json_object_get(out, "capabilities")), 2);
    json_decref(out);
    /* The challenge is gone for both replicas. */
    for (int r = 0; r < 2; r++) {
        out = verify_on(r, &ch);
        ck_assert(json_is_false(json_object_get(out, "verified")));
        ck_assert_ptr_nonnull(strstr(json_str_at(out, "rejection_reason"), "already used"));
        json_decref(out);
    }
}
END_TEST

START_TEST(replay_refused_by_the_other_replica) {
    SKIP_WITHOUT_REDIS();
    char auth[AUTH_HEADER_MAX];
    json_t *out;
    sign(&alice, "GET", "/api/v1/agents", NULL, auth, sizeof auth);
    ck_assert_int_eq(http(0, "GET", "/api/v1/agents", NULL, auth, &out), 200);
    ck_assert_int_eq(json_array_size(json_object_get(out, "agents")), 2);
    json_decref(out);
    ck_assert_int_eq(http(1, "GET", "/api/v1/agents", NULL, auth, &out), 401);
    ck_assert_str_eq(json_str_at(out, "message"), "authorization signature already used");
    json_decref(out);
}
END_TEST

START_TEST(signal_through_one_replica_read_through_the_other) {
    SKIP_WITHOUT_REDIS();
    char err[256], body[256], path[128];
    struct trust_state expect;
    ck_assert_int_eq(store->get(store, bob.did, &expect, err, sizeof err), TS_OK);
    json_t *out;
    snprintf(body, sizeof body,
             "{\"agent_did\":\"%s\",\"dimension\":\"securityPosture\",\"value\":0.05,\"weight\":7,\"source\":\"e2e\"}",
             bob.did);
    ck_assert_int_eq(call(0, &alice, "POST", "/api/v1/signals", body, &out), 200);
    struct trust_signal sig = {.dim = TRUST_DIM_SECURITY_POSTURE, .value = 0.05, .weight = 7, .at_ms = now_ms()};
    ck_assert_int_eq(trust_apply_signal(&expect, &sig, err, sizeof err), 0);
    int score = trust_score(&expect, now_ms());
    ck_assert_int_eq(json_int_at(out, "trust_score", -1), score);
    json_decref(out);
    snprintf(path, sizeof path, "/api/v1/agents/%s", bob.did);
    ck_assert_int_eq(call(1, &alice, "GET", path, NULL, &out), 200);
    ck_assert_int_eq(json_int_at(out, "trust_score", -1), score);
    ck_assert_str_eq(json_str_at(out, "tier"), trust_tier_name(trust_tier_of(score)));
    ck_assert_double_eq(json_num_at(out, "dimensions.securityPosture", -1), expect.dims[TRUST_DIM_SECURITY_POSTURE]);
    json_decref(out);
}
END_TEST

int main(void) {
    load_cluster_env();
    redis_url = getenv("AGENTMESH_TEST_REDIS_URL");
    if (redis_url && !*redis_url) redis_url = NULL;
    if (identity_init() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0) return EXIT_FAILURE;
    Suite *s = suite_create("handshake_e2e");
    TCase *tc = tcase_create("redis");
    if (redis_url) tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, handshake_across_replicas);
    tcase_add_test(tc, replay_refused_by_the_other_replica);
    tcase_add_test(tc, signal_through_one_replica_read_through_the_other);
    suite_add_tcase(s, tc);
    int rc = check_run(s, CK_FORK_GETENV);
    curl_global_cleanup();
    return rc;
}
