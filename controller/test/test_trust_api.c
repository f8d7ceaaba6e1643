/* test_trust_api.c — the trust API over real HTTP on 127.0.0.1:<ephemeral>,
 * with a memory trust store and a registry filled by hand, spoken to with
 * libcurl: a full handshake between two agents, each way a handshake or a
 * request can fail (and the reason given), signals scored exactly as the
 * engine scores them, the registry views, audit events, metrics, key
 * rotation grace, and a store that is down (503). */
#include <check.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/json.h"
#include "common/metrics.h"
#include "common/test/check_run.h"
#include "common/test/curl_collect.h"
#include "controller/test/agent_fixture.h"
#include "controller/trust_api.h"
#include "e2e/signed_client.h"

static struct identity alice, bob, carol, rex, eve;   /* carol quarantined, rex revoked */
static struct agent_registry *reg;
static struct trust_store *store;
static struct trust_api *api;
static int port;

/* Audit events seen by the callback (called on the API's thread). */
static pthread_mutex_t audit_mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *audit_seen;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_audit(void *arg, const char *type, const char *did, int64_t ts_ms, json_t *data) {
    (void)arg;
    pthread_mutex_lock(&audit_mu);
    /* data is ours (stolen), so "o" hands it on to the array without a copy. */
    json_array_append_new(audit_seen, json_pack("{s:s, s:s, s:I, s:o}", "type", type, "agent_did", did,
                                                "ts", (json_int_t)ts_ms, "data", data));
    pthread_mutex_unlock(&audit_mu);
}

static size_t audit_count(void) {
    pthread_mutex_lock(&audit_mu);
    size_t n = json_array_size(audit_seen);
    pthread_mutex_unlock(&audit_mu);
    return n;
}

/* The n-th audit event, counted from 1 (new reference). A verify is
 * answered before it is audited, so the client can have its reply first:
 * this waits up to 2 s for the event. */
static json_t *audit_event(size_t n) {
    json_t *e = NULL;
    for (int i = 0; i < 200 && !e; i++) {
        pthread_mutex_lock(&audit_mu);
        e = json_array_size(audit_seen) >= n ? json_incref(json_array_get(audit_seen, n - 1)) : NULL;
        pthread_mutex_unlock(&audit_mu);
        if (!e) usleep(10000);
    }
    ck_assert_msg(e != NULL, "audit event %zu never came (%zu seen)", n, audit_count());
    return e;
}

/* Gives did a stored state with these dimensions (weight order), last positive now. */
static void put_state(const char *did, double d0, double d1, double d2, double d3, double d4) {
    struct trust_state st;
    char err[128];
    ck_assert_int_eq(trust_state_init(&st, 500, NULL, now_ms(), err, sizeof err), 0);
    double dims[TRUST_DIM_COUNT] = {d0, d1, d2, d3, d4};
    memcpy(st.dims, dims, sizeof dims);
    ck_assert_int_eq(store->put(store, did, &st, err, sizeof err), TS_OK);
}

static void start_api(struct trust_store *s, int64_t ttl_ms, int with_audit_verify);

static void setup(void) {
    ck_assert_int_eq(identity_init(), 0);
    ck_assert_int_eq(identity_generate(&alice), 0);
    ck_assert_int_eq(identity_generate(&bob), 0);
    ck_assert_int_eq(identity_generate(&carol), 0);
    ck_assert_int_eq(identity_generate(&rex), 0);
    ck_assert_int_eq(identity_generate(&eve), 0);
    reg = agent_registry_new();
    store = trust_store_memory_new(NULL);
    audit_seen = json_array();
    ck_assert_int_eq(fixture_put_agent(reg, &alice, "team", "alice", "Active", 500, 0, "[\"read:data\"]"), 0);
    ck_assert_int_eq(fixture_put_agent(reg, &bob, "team", "bob", "Active", 500, 0, "[\"read:data\", \"write:reports\"]"), 0);
    ck_assert_int_eq(fixture_put_agent(reg, &carol, "team", "carol", "Quarantined", 500, 0, "[]"), 0);
    ck_assert_int_eq(fixture_put_agent(reg, &rex, "team", "rex", "Revoked", 500, 0, "[]"), 0);
    put_state(bob.did, 92, 88, 85, 60, 78);   /* DESIGN §4's example: 827 trusted */
}

/* Tests start the API themselves, with the options they need. */
static void stop_api(void) {
    trust_api_free(api);
    api = NULL;
}

static void teardown(void) {
    stop_api();
    trust_store_destroy(store);
    agent_registry_free(reg);
    json_decref(audit_seen);
    identity_wipe(&alice);
    identity_wipe(&bob);
    identity_wipe(&carol);
    identity_wipe(&rex);
    identity_wipe(&eve);
}

static int audit_verify_stub(void *arg, struct audit_verify_result *out, char *err, size_t errlen) {
    (void)arg;
    (void)err;
    (void)errlen;
    out->chain_valid = 1;
    out->entries = 42;
    out->first_bad_seq = -1;
    return 0;
}

static void start_api(struct trust_store *s, int64_t ttl_ms, int with_audit_verify) {
    char err[256];
    struct trust_api_options o = {.address = "127.0.0.1", .port = 0, .threads = 2, .registry = reg,
                                  .store = s, .challenge_ttl_ms = ttl_ms, .audit = on_audit,
                                  .audit_verify = with_audit_verify ? audit_verify_stub : NULL};
    api = trust_api_new(&o, err, sizeof err);
    ck_assert_msg(api != NULL, "trust_api_new: %s", err);
    ck_assert_msg(trust_api_start(api, err, sizeof err) == 0, "trust_api_start: %s", err);
    port = trust_api_port(api);
    ck_assert_int_gt(port, 0);
}

/* ---- HTTP ------------------------------------------------------------------ */

/* One request; auth is the whole Authorization value or NULL. Returns the
 * status; *out (when non-NULL) gets the parsed JSON body or NULL. */
static long http(const char *method, const char *path, const char *body, size_t len, const char *auth,
                 json_t **out) {
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    char url[256], hdr[AUTH_HEADER_MAX + 32];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    if (auth) {
        snprintf(hdr, sizeof hdr, "Authorization: %s", auth);
        h = curl_slist_append(h, hdr);
    }
    struct buf b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    CURLcode rc = curl_easy_perform(c);
    ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (out) {
        char err[128];
        *out = b.n ? json_parse(b.p, b.n, err, sizeof err) : NULL;
    }
    free(b.p);
    return code;
}

/* An Authorization value by `as` at t + frac_ns, time written with nine
 * fraction digits. auth_build_header writes whole seconds, so two identical
 * requests in one second carry the same signature — a replay by
 * definition; a fraction per request keeps legitimate repeats distinct. */
static void sign_at(const struct identity *as, time_t t, long frac_ns, const char *method, const char *path,
                    const char *body, size_t len, char *out, size_t outlen) {
    char when[AUTH_TIME_BUFSZ], msg[AUTH_PATH_MAX + 256], sig_b64[ID_SIG_B64_BUFSZ];
    unsigned char hash[crypto_hash_sha256_BYTES], sig[ID_SIG_LEN];
    char hex[2 * sizeof hash + 1];
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + strlen(when), sizeof when - strlen(when), ".%09ldZ", frac_ns);
    crypto_hash_sha256(hash, (const unsigned char *)(body ? body : ""), len);
    sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
    int n = snprintf(msg, sizeof msg, "%s %s %s %s", method, path, when, hex);
    ck_assert_int_eq(identity_sign(as, msg, (size_t)n, sig), 0);
    ck_assert_int_eq(b64_encode(sig, sizeof sig, sig_b64, sizeof sig_b64), 0);
    snprintf(out, outlen, "%s %s %s %s", AUTH_SCHEME, as->did, when, sig_b64);
}

/* A request signed by `as` with header time t (plus a fraction unique in this process). */
static long call_at(const struct identity *as, time_t t, const char *method, const char *path,
                    const char *body, json_t **out) {
    static long seq;
    char auth[AUTH_HEADER_MAX];
    size_t len = body ? strlen(body) : 0;
    sign_at(as, t, __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED) % 1000000000L, method, path, body, len, auth,
            sizeof auth);
    return http(method, path, body, len, auth, out);
}

static long call(const struct identity *as, const char *method, const char *path, const char *body,
                 json_t **out) {
    return call_at(as, time(NULL), method, path, body, out);
}

/* Asserts an error reply: code, `error` reason, and a message containing `needle`. */
static void expect_error(long code, json_t **bodyp, long want_code, const char *reason, const char *needle) {
    json_t *body = *bodyp;
    ck_assert_int_eq(code, want_code);
    ck_assert_ptr_nonnull(body);
    ck_assert_str_eq(json_str_at(body, "error"), reason);
    const char *msg = json_str_at(body, "message");
    ck_assert_ptr_nonnull(msg);
    ck_assert_msg(strstr(msg, needle) != NULL, "message \"%s\" lacks \"%s\"", msg, needle);
    json_decref(body);
}

/* ---- handshake helpers -------------------------------------------------------- */

struct challenge {
    char id[64], nonce[128];
};

static void ask_challenge(const struct identity *asker, const char *did, struct challenge *ch) {
    char body[128];
    json_t *out;
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\"}", did);
    ck_assert_int_eq(call(asker, "POST", "/api/v1/handshake/challenge", body, &out), 200);
    snprintf(ch->id, sizeof ch->id, "%s", json_str_at(out, "challenge_id"));
    snprintf(ch->nonce, sizeof ch->nonce, "%s", json_str_at(out, "nonce"));
    json_decref(out);
}

/* The verify body for `signer` answering ch as `did`, plus `extra` fields ("" or ",\"k\":v"). */
static char *verify_body(const struct identity *signer, const char *did, const struct challenge *ch,
                         const char *extra) {
    unsigned char rnd[32], sig[ID_SIG_LEN];
    char rnonce[65], sig_b64[ID_SIG_B64_BUFSZ], msg[512];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(rnonce, sizeof rnonce, rnd, sizeof rnd);
    int n = snprintf(msg, sizeof msg, "%s:%s:%s:%s", ch->id, ch->nonce, rnonce, did);
    ck_assert_int_eq(identity_sign(signer, msg, (size_t)n, sig), 0);
    ck_assert_int_eq(b64_encode(sig, sizeof sig, sig_b64, sizeof sig_b64), 0);
    char *body = malloc(2048);
    snprintf(body, 2048,
             "{\"challenge_id\":\"%s\",\"agent_did\":\"%s\",\"response_nonce\":\"%s\",\"signature\":\"%s\"%s}",
             ch->id, did, rnonce, sig_b64, extra);
    return body;
}

/* alice verifies `body`; returns the reply (asserting 200). */
static json_t *verify_as(const struct identity *verifier, char *body) {
    json_t *out;
    long code = call(verifier, "POST", "/api/v1/handshake/verify", body, &out);
    free(body);
    ck_assert_int_eq(code, 200);
    ck_assert_ptr_nonnull(out);
    return out;
}

static void expect_rejected(json_t *out, const char *needle) {
    ck_assert(json_is_false(json_object_get(out, "verified")));
    const char *why = json_str_at(out, "rejection_reason");
    ck_assert_ptr_nonnull(why);
    ck_assert_msg(strstr(why, needle) != NULL, "reason \"%s\" lacks \"%s\"", why, needle);
    json_decref(out);
}

static double counter(const char *name, const char *labels, const char *value) {
    struct metric *m = metrics_counter(name, "", labels);
    return value ? metric_value(m, value) : metric_value(m);
}

/* ---- tests ------------------------------------------------------------------- */

START_TEST(full_handshake) {
    start_api(store, 0, 0);
    double verified0 = counter("agentmesh_handshakes_total", "result", "verified");
    struct challenge ch;
    ask_challenge(&alice, bob.did, &ch);
    ck_assert_int_eq(strlen(ch.id), 26);
    ck_assert_int_eq(strncmp(ch.id, "challenge_", 10), 0);
    ck_assert_int_eq(strlen(ch.nonce), 64);
    /* bob signs; alice verifies, asking for a score and a capability bob has. */
    size_t audited = audit_count();
    json_t *out = verify_as(&alice, verify_body(&bob, bob.did, &ch,
                                                ",\"required_score\":800,\"required_capabilities\":[\"write:reports\"]"));
    ck_assert(json_is_true(json_object_get(out, "verified")));
    ck_assert_int_eq(json_int_at(out, "trust_score", -1), 827);
    ck_assert_str_eq(json_str_at(out, "tier"), "trusted");
    ck_assert_int_eq(json_array_size(json_object_get(out, "capabilities")), 2);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(out, "capabilities"), 1)), "write:reports");
    ck_assert(json_is_null(json_object_get(out, "rejection_reason")));
    json_decref(out);
    ck_assert(counter("agentmesh_handshakes_total", "result", "verified") == verified0 + 1);
    json_t *ev = audit_event(audited + 1);
    ck_assert_str_eq(json_str_at(ev, "type"), "handshake.verified");
    ck_assert_str_eq(json_str_at(ev, "agent_did"), bob.did);
    ck_assert_str_eq(json_str_at(ev, "data.verifier"), alice.did);
    ck_assert_int_eq(json_int_at(ev, "data.trust_score", -1), 827);
    json_decref(ev);
}
END_TEST

START_TEST(challenge_expires_in_30s) {
    start_api(store, 0, 0);
    json_t *out;
    char body[128];
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\"}", bob.did);
    ck_assert_int_eq(call(&alice, "POST", "/api/v1/handshake/challenge", body, &out), 200);
    ck_assert_int_eq(json_int_at(out, "expires_in_seconds", -1), 30);
    json_decref(out);
    /* Unknown agent: nothing to challenge. */
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\"}", eve.did);
    expect_error(call(&alice, "POST", "/api/v1/handshake/challenge", body, &out), &out, 404, "NotFound", eve.did);
}
END_TEST

START_TEST(malformed_bodies) {
    start_api(store, 0, 0);
    struct metric *errors = metrics_counter("agentmesh_api_errors_total", "", "route,reason");
    const char *path = "/api/v1/handshake/challenge";
    double errors0 = metric_value(errors, path, "BadRequest");
    json_t *out;
    expect_error(call(&alice, "POST", path, "{\"agent_did\":", &out), &out, 400, "BadRequest", "not valid JSON");
    expect_error(call(&alice, "POST", path, "[1,2]", &out), &out, 400, "BadRequest", "must be a JSON object");
    expect_error(call(&alice, "POST", path, "{}", &out), &out, 400, "BadRequest", "\"agent_did\" is required");
    expect_error(call(&alice, "POST", path, "{\"agent_did\":\"did:mesh:XYZ\"}", &out), &out, 400, "BadRequest",
                 "\"agent_did\" must be a DID");
    expect_error(call(&alice, "POST", path, "{\"agent_did\":7}", &out), &out, 400, "BadRequest", "must be a DID");
    char body[256];
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\",\"peerDid\":1}", bob.did);
    expect_error(call(&alice, "POST", path, body, &out), &out, 400, "BadRequest", "unknown field \"peerDid\"");
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\",\"agent_did\":\"%s\"}", bob.did, bob.did);
    expect_error(call(&alice, "POST", path, body, &out), &out, 400, "BadRequest", "not valid JSON");
    /* verify: a bad signature encoding and an out-of-range required_score. */
    struct challenge ch = {.id = "challenge_0123456789abcdef", .nonce = "00"};
    char *vb = verify_body(&bob, bob.did, &ch, ",\"required_score\":1001");
    expect_error(call(&alice, "POST", "/api/v1/handshake/verify", vb, &out), &out, 400, "BadRequest",
                 "\"required_score\" must be an integer in 0..1000");
    free(vb);
    snprintf(body, sizeof body,
             "{\"challenge_id\":\"%s\",\"agent_did\":\"%s\",\"response_nonce\":\"abcdabcdabcdabcd\",\"signature\":\"AAAA\"}",
             ch.id, bob.did);
    expect_error(call(&alice, "POST", "/api/v1/handshake/verify", body, &out), &out, 400, "BadRequest",
                 "\"signature\" must be the std base64");
    ck_assert(metric_value(errors, path, "BadRequest") == errors0 + 7);   /* each one counted */
}
END_TEST

START_TEST(oversized_body) {
    start_api(store, 0, 0);
    size_t n = TRUST_API_MAX_BODY + 100;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = '\0';
    ck_assert_int_eq(call(&alice, "POST", "/api/v1/signals", big, NULL), 413);
    free(big);
}
END_TEST

START_TEST(authentication_failures) {
    start_api(store, 0, 0);
    json_t *out;
    const char *path = "/api/v1/agents";
    expect_error(http("GET", path, NULL, 0, NULL, &out), &out, 401, "Unauthorized", "missing Authorization");
    expect_error(http("GET", path, NULL, 0, "Bearer abc", &out), &out, 401, "Unauthorized", "bad Authorization");
    /* eve is not in the registry; rex is revoked. */
    expect_error(call(&eve, "GET", path, NULL, &out), &out, 401, "Unauthorized", "unknown agent");
    expect_error(call(&rex, "GET", path, NULL, &out), &out, 401, "Unauthorized", "revoked");
    /* A header in alice's name signed with eve's key. */
    char auth[AUTH_HEADER_MAX];
    ck_assert_int_eq(auth_build_header(eve.sk, alice.did, "GET", path, NULL, 0, time(NULL), auth, sizeof auth), 0);
    expect_error(http("GET", path, NULL, 0, auth, &out), &out, 401, "Unauthorized", "does not verify");
    /* Signed for another path, another body, another method. */
    ck_assert_int_eq(auth_build_header(alice.sk, alice.did, "GET", "/api/v1/audit/verify", NULL, 0, time(NULL),
                                       auth, sizeof auth), 0);
    expect_error(http("GET", path, NULL, 0, auth, &out), &out, 401, "Unauthorized", "does not verify");
    ck_assert_int_eq(auth_build_header(alice.sk, alice.did, "POST", "/api/v1/signals", "{}", 2, time(NULL),
                                       auth, sizeof auth), 0);
    expect_error(http("POST", "/api/v1/signals", "{ }", 3, auth, &out), &out, 401, "Unauthorized", "does not verify");
    /* The signature covers the target as sent, query string included. */
    ck_assert_int_eq(call(&alice, "GET", "/api/v1/agents?limit=5", NULL, &out), 200);
    json_decref(out);
    ck_assert_int_eq(auth_build_header(alice.sk, alice.did, "GET", path, NULL, 0, time(NULL), auth, sizeof auth), 0);
    expect_error(http("GET", "/api/v1/agents?limit=5", NULL, 0, auth, &out), &out, 401, "Unauthorized",
                 "does not verify");
    /* 301 s old: refused (the server's clock can only be later than ours). A
     * future time gets a second of slack, as the server's second may tick first. */
    expect_error(call_at(&alice, time(NULL) - 301, "GET", path, NULL, &out), &out, 401, "Unauthorized", "in the past");
    expect_error(call_at(&alice, time(NULL) + 302, "GET", path, NULL, &out), &out, 401, "Unauthorized", "in the future");
    /* 299 s old is still fine. */
    ck_assert_int_eq(call_at(&alice, time(NULL) - 299, "GET", path, NULL, &out), 200);
    json_decref(out);
}
END_TEST

START_TEST(replayed_authorization) {
    start_api(store, 0, 0);
    char auth[AUTH_HEADER_MAX];
    char b[128];
    snprintf(b, sizeof b, "{\"agent_did\":\"%s\"}", bob.did);
    ck_assert_int_eq(auth_build_header(alice.sk, alice.did, "POST", "/api/v1/handshake/challenge", b, strlen(b),
                                       time(NULL), auth, sizeof auth), 0);
    json_t *out;
    ck_assert_int_eq(http("POST", "/api/v1/handshake/challenge", b, strlen(b), auth, &out), 200);
    json_decref(out);
    expect_error(http("POST", "/api/v1/handshake/challenge", b, strlen(b), auth, &out), &out, 401, "Unauthorized",
                 "already used");
}
END_TEST

START_TEST(bad_signature_and_wrong_agent) {
    start_api(store, 0, 0);
    struct challenge ch;
    ask_challenge(&alice, bob.did, &ch);
    /* carol signs bob's challenge in bob's name. */
    expect_rejected(verify_as(&alice, verify_body(&carol, bob.did, &ch, "")), "signature does not verify");
    /* The challenge was consumed by that failed attempt. */
    expect_rejected(verify_as(&alice, verify_body(&bob, bob.did, &ch, "")), "already used");
    /* A challenge issued for bob, answered as alice (who signs correctly). */
    ask_challenge(&alice, bob.did, &ch);
    size_t audited = audit_count();
    expect_rejected(verify_as(&alice, verify_body(&alice, alice.did, &ch, "")), "issued for another agent");
    json_t *ev = audit_event(audited + 1);
    ck_assert_str_eq(json_str_at(ev, "type"), "handshake.failed");
    ck_assert_ptr_nonnull(strstr(json_str_at(ev, "data.reason"), "another agent"));
    json_decref(ev);
}
END_TEST

START_TEST(unknown_agent) {
    start_api(store, 0, 0);
    /* eve is registered when the challenge is issued and gone at verify time. */
    ck_assert_int_eq(fixture_put_agent(reg, &eve, "team", "eve", "Active", 500, 0, "[]"), 0);
    struct challenge ch;
    ask_challenge(&alice, eve.did, &ch);
    ck_assert_int_eq(agent_registry_remove(reg, eve.did), 0);
    json_t *out = verify_as(&alice, verify_body(&eve, eve.did, &ch, ""));
    ck_assert(json_is_null(json_object_get(out, "trust_score")));
    ck_assert(json_is_null(json_object_get(out, "tier")));
    ck_assert_int_eq(json_array_size(json_object_get(out, "capabilities")), 0);
    expect_rejected(out, "unknown agent");
}
END_TEST

START_TEST(reused_challenge) {
    start_api(store, 0, 0);
    struct challenge ch;
    ask_challenge(&alice, bob.did, &ch);
    json_t *out = verify_as(&alice, verify_body(&bob, bob.did, &ch, ""));
    ck_assert(json_is_true(json_object_get(out, "verified")));
    json_decref(out);
    expect_rejected(verify_as(&alice, verify_body(&bob, bob.did, &ch, "")), "unknown, expired or already used");
}
END_TEST

START_TEST(expired_challenge) {
    start_api(store, 100, 0);
    json_t *out;
    char body[128];
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\"}", bob.did);
    ck_assert_int_eq(call(&alice, "POST", "/api/v1/handshake/challenge", body, &out), 200);
    ck_assert_int_eq(json_int_at(out, "expires_in_seconds", -1), 1);
    struct challenge ch;
    snprintf(ch.id, sizeof ch.id, "%s", json_str_at(out, "challenge_id"));
    snprintf(ch.nonce, sizeof ch.nonce, "%s", json_str_at(out, "nonce"));
    json_decref(out);
    usleep(250 * 1000);
    out = verify_as(&alice, verify_body(&bob, bob.did, &ch, ""));
    ck_assert_int_eq(json_int_at(out, "trust_score", -1), 827);   /* the agent's view still comes back */
    expect_rejected(out, "expired");
}
END_TEST

START_TEST(quarantined_and_revoked_peers) {
    start_api(store, 0, 0);
    double violations0 = counter("agentmesh_policy_violations_total", NULL, NULL);
    struct challenge ch;
    ask_challenge(&alice, carol.did, &ch);
    expect_rejected(verify_as(&alice, verify_body(&carol, carol.did, &ch, "")), "is Quarantined");
    ask_challenge(&alice, rex.did, &ch);
    expect_rejected(verify_as(&alice, verify_body(&rex, rex.did, &ch, "")), "is Revoked");
    ck_assert(counter("agentmesh_policy_violations_total", NULL, NULL) == violations0 + 2);
}
END_TEST

START_TEST(score_bar) {
    start_api(store, 0, 0);
    struct challenge ch;
    ask_challenge(&alice, bob.did, &ch);
    json_t *out = verify_as(&alice, verify_body(&bob, bob.did, &ch, ",\"required_score\":828"));
    ck_assert_int_eq(json_int_at(out, "trust_score", -1), 827);
    ck_assert_str_eq(json_str_at(out, "tier"), "trusted");
    expect_rejected(out, "trust score 827 is below the required 828");
    /* The caller's own policy bar cannot be lowered by the request. */
    ck_assert_int_eq(fixture_put_agent(reg, &alice, "team", "alice", "Active", 500, 900, "[\"read:data\"]"), 0);
    ask_challenge(&alice, bob.did, &ch);
    expect_rejected(verify_as(&alice, verify_body(&bob, bob.did, &ch, ",\"required_score\":100")),
                    "below the required 900");
    /* ... but it is the caller's bar, not the peer's: bob verifying alice (500) is fine. */
    ask_challenge(&bob, alice.did, &ch);
    out = verify_as(&bob, verify_body(&alice, alice.did, &ch, ""));
    ck_assert(json_is_true(json_object_get(out, "verified")));
    ck_assert_int_eq(json_int_at(out, "trust_score", -1), 500);
    ck_assert_str_eq(json_str_at(out, "tier"), "standard");
    json_decref(out);
}
END_TEST

START_TEST(missing_capability) {
    start_api(store, 0, 0);
    struct challenge ch;
    ask_challenge(&alice, bob.did, &ch);
    expect_rejected(verify_as(&alice, verify_body(&bob, bob.did, &ch,
                                                  ",\"required_capabilities\":[\"read:data\",\"delete:data\"]")),
                    "lacks the required capability \"delete:data\"");
}
END_TEST

START_TEST(previous_key_grace) {
    start_api(store, 0, 0);
    struct identity next;
    char proof[ID_SIG_B64_BUFSZ];
    ck_assert_int_eq(identity_rotate(&bob, &next, proof, sizeof proof), 0);
    struct agent_record rec;
    ck_assert_int_eq(agent_registry_get(reg, bob.did, &rec), 0);
    memcpy(rec.prev_pub, bob.pk, ID_PUB_LEN);
    memcpy(rec.pub, next.pk, ID_PUB_LEN);
    rec.has_prev = 1;
    rec.prev_valid_until_ms = now_ms() + AGENT_KEY_GRACE_MS;
    ck_assert_int_eq(agent_registry_put(reg, &rec), 0);
    /* Within the grace both keys work, for requests and for handshakes. */
    json_t *out;
    ck_assert_int_eq(call(&bob, "GET", "/api/v1/agents", NULL, &out), 200);
    json_decref(out);
    ck_assert_int_eq(call(&next, "GET", "/api/v1/agents", NULL, &out), 200);
    json_decref(out);
    struct challenge ch;
    ask_challenge(&alice, bob.did, &ch);
    out = verify_as(&alice, verify_body(&bob, bob.did, &ch, ""));
    ck_assert(json_is_true(json_object_get(out, "verified")));
    json_decref(out);
    /* After it, only the new key. */
    rec.prev_valid_until_ms = now_ms() - 1;
    ck_assert_int_eq(agent_registry_put(reg, &rec), 0);
    agent_record_clear(&rec);
    expect_error(call(&bob, "GET", "/api/v1/agents", NULL, &out), &out, 401, "Unauthorized", "does not verify");
    ask_challenge(&alice, bob.did, &ch);
    expect_rejected(verify_as(&alice, verify_body(&bob, bob.did, &ch, "")), "signature does not verify");
    ask_challenge(&alice, bob.did, &ch);
    out = verify_as(&alice, verify_body(&next, bob.did, &ch, ""));
    ck_assert(json_is_true(json_object_get(out, "verified")));
    json_decref(out);
    identity_wipe(&next);
}
END_TEST

/* Posts one signal as alice and checks the reply against the engine applied to `expect`. */
static void signal_matches(const char *did, enum trust_dim dim, double value, double weight,
                           struct trust_state *expect) {
    char body[256], err[128];
    json_t *out;
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\",\"dimension\":\"%s\",\"value\":%.17g,\"weight\":%.17g,"
             "\"source\":\"unit-test\"}", did, trust_dim_name(dim), value, weight);
    ck_assert_int_eq(call(&alice, "POST", "/api/v1/signals", body, &out), 200);
    struct trust_signal sig = {.dim = dim, .value = value, .weight = weight, .at_ms = now_ms()};
    ck_assert_int_eq(trust_apply_signal(expect, &sig, err, sizeof err), 0);
    int score = trust_score(expect, now_ms());
    ck_assert_str_eq(json_str_at(out, "agent_did"), did);
    ck_assert_int_eq(json_int_at(out, "trust_score", -1), score);
    ck_assert_str_eq(json_str_at(out, "tier"), trust_tier_name(trust_tier_of(score)));
    for (int d = 0; d < TRUST_DIM_COUNT; d++) {
        char path[64];
        snprintf(path, sizeof path, "dimensions.%s", trust_dim_name((enum trust_dim)d));
        ck_assert_double_eq(json_num_at(out, path, -1), expect->dims[d]);
    }
    json_decref(out);
}

START_TEST(signals_score_like_the_engine) {
    start_api(store, 0, 0);
    char err[128];
    struct trust_state expect;
    ck_assert_int_eq(store->get(store, bob.did, &expect, err, sizeof err), TS_OK);
    signal_matches(bob.did, TRUST_DIM_POLICY_COMPLIANCE, 0.0, 3, &expect);
    signal_matches(bob.did, TRUST_DIM_SECURITY_POSTURE, 0.05, 10, &expect);
    signal_matches(bob.did, TRUST_DIM_OUTPUT_QUALITY, 1.0, 0.5, &expect);
    ck_assert_int_lt(trust_score(&expect, now_ms()), 700);   /* bob fell out of "trusted" */
    /* alice has no stored state yet: she starts from her record (500). */
    ck_assert_int_eq(store->get(store, alice.did, &expect, err, sizeof err), TS_NOT_FOUND);
    ck_assert_int_eq(trust_state_init(&expect, 500, NULL, now_ms(), err, sizeof err), 0);
    signal_matches(alice.did, TRUST_DIM_COLLABORATION_HEALTH, 0.9, 1, &expect);
    ck_assert_int_eq(store->get(store, alice.did, &expect, err, sizeof err), TS_OK);
    /* weight defaults to 1 */
    json_t *out;
    char body[256];
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\",\"dimension\":\"resourceEfficiency\",\"value\":1,"
             "\"source\":\"unit-test\"}", alice.did);
    size_t audited = audit_count();
    ck_assert_int_eq(call(&alice, "POST", "/api/v1/signals", body, &out), 200);
    ck_assert_double_eq(json_num_at(out, "dimensions.resourceEfficiency", -1), 50 * 0.9 + 100 * 0.1);
    json_decref(out);
    json_t *ev = audit_event(audited + 1);
    ck_assert_str_eq(json_str_at(ev, "type"), "trust.signal");
    ck_assert_str_eq(json_str_at(ev, "agent_did"), alice.did);
    ck_assert_str_eq(json_str_at(ev, "data.reporter"), alice.did);
    ck_assert_str_eq(json_str_at(ev, "data.source"), "unit-test");
    json_decref(ev);
}
END_TEST

START_TEST(signal_errors) {
    start_api(store, 0, 0);
    json_t *out;
    char body[256];
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\",\"dimension\":\"speed\",\"value\":1,\"source\":\"t\"}", bob.did);
    expect_error(call(&alice, "POST", "/api/v1/signals", body, &out), &out, 400, "BadRequest", "\"dimension\" must be one of");
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\",\"dimension\":\"outputQuality\",\"value\":1.5,\"source\":\"t\"}",
             bob.did);
    expect_error(call(&alice, "POST", "/api/v1/signals", body, &out), &out, 400, "BadRequest", "\"value\" must be a number in [0, 1]");
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\",\"dimension\":\"outputQuality\",\"value\":1,\"weight\":-1,\"source\":\"t\"}",
             bob.did);
    expect_error(call(&alice, "POST", "/api/v1/signals", body, &out), &out, 400, "BadRequest", "\"weight\"");
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\",\"dimension\":\"outputQuality\",\"value\":1}", bob.did);
    expect_error(call(&alice, "POST", "/api/v1/signals", body, &out), &out, 400, "BadRequest", "\"source\" is required");
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\",\"dimension\":\"outputQuality\",\"value\":1,\"source\":\"t\"}",
             eve.did);
    expect_error(call(&alice, "POST", "/api/v1/signals", body, &out), &out, 404, "NotFound", eve.did);
}
END_TEST

START_TEST(agent_views) {
    start_api(store, 0, 0);
    json_t *out;
    ck_assert_int_eq(call(&alice, "GET", "/api/v1/agents", NULL, &out), 200);
    json_t *agents = json_object_get(out, "agents");
    ck_assert_int_eq(json_array_size(agents), 4);
    ck_assert_str_eq(json_str_at(json_array_get(agents, 0), "name"), "alice");   /* sorted by name */
    json_decref(out);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/agents/%s", bob.did);
    ck_assert_int_eq(call(&carol, "GET", path, NULL, &out), 200);   /* quarantined agents may still ask */
    ck_assert_str_eq(json_str_at(out, "did"), bob.did);
    ck_assert_str_eq(json_str_at(out, "name"), "bob");
    ck_assert_str_eq(json_str_at(out, "namespace"), "team");
    ck_assert_str_eq(json_str_at(out, "public_key"), bob.pub_b64);
    ck_assert_str_eq(json_str_at(out, "key_id"), bob.key_id);
    ck_assert_int_eq(json_int_at(out, "trust_score", -1), 827);
    ck_assert_str_eq(json_str_at(out, "tier"), "trusted");
    ck_assert_double_eq(json_num_at(out, "dimensions.resourceEfficiency", -1), 60);
    ck_assert_int_eq(json_array_size(json_object_get(out, "capabilities")), 2);
    ck_assert_str_eq(json_str_at(out, "phase"), "Active");
    json_decref(out);
    snprintf(path, sizeof path, "/api/v1/agents/%s", eve.did);
    expect_error(call(&alice, "GET", path, NULL, &out), &out, 404, "NotFound", eve.did);
    expect_error(call(&alice, "GET", "/api/v1/agents/nobody", NULL, &out), &out, 400, "BadRequest", "not a DID");
    ck_assert_int_eq(http("GET", "/healthz", NULL, 0, NULL, &out), 200);   /* the one open route */
    ck_assert_str_eq(json_str_at(out, "status"), "ok");
    json_decref(out);
    ck_assert_int_eq(call(&alice, "DELETE", "/api/v1/agents", NULL, NULL), 405);
}
END_TEST

START_TEST(audit_verify_route) {
    start_api(store, 0, 0);
    json_t *out;
    expect_error(call(&alice, "GET", "/api/v1/audit/verify", NULL, &out), &out, 503, "AuditUnavailable", "--postgres-url");
    stop_api();
    start_api(store, 0, 1);
    ck_assert_int_eq(call(&alice, "GET", "/api/v1/audit/verify", NULL, &out), 200);
    ck_assert(json_is_true(json_object_get(out, "chain_valid")));
    ck_assert_int_eq(json_int_at(out, "entries", -1), 42);
    json_decref(out);
}
END_TEST

/* The signals route records its signature together with the signal: a
 * replay is still a 401 and applies nothing; a rejected body uses it up too. */
START_TEST(replayed_signal) {
    start_api(store, 0, 0);
    char auth[AUTH_HEADER_MAX], b[256], err[256];
    snprintf(b, sizeof b, "{\"agent_did\":\"%s\",\"dimension\":\"outputQuality\",\"value\":0.1,\"source\":\"t\"}",
             bob.did);
    ck_assert_int_eq(auth_build_header(alice.sk, alice.did, "POST", "/api/v1/signals", b, strlen(b), time(NULL), auth,
                                       sizeof auth), 0);
    json_t *out;
    ck_assert_int_eq(http("POST", "/api/v1/signals", b, strlen(b), auth, &out), 200);
    json_decref(out);
    struct trust_state once;
    ck_assert_int_eq(store->get(store, bob.did, &once, err, sizeof err), TS_OK);
    expect_error(http("POST", "/api/v1/signals", b, strlen(b), auth, &out), &out, 401, "Unauthorized", "already used");
    struct trust_state after;
    ck_assert_int_eq(store->get(store, bob.did, &after, err, sizeof err), TS_OK);
    ck_assert(memcmp(once.dims, after.dims, sizeof once.dims) == 0);
    const char *bad = "{\"agent_did\":\"nope\"}";
    ck_assert_int_eq(auth_build_header(alice.sk, alice.did, "POST", "/api/v1/signals", bad, strlen(bad), time(NULL),
                                       auth, sizeof auth), 0);
    expect_error(http("POST", "/api/v1/signals", bad, strlen(bad), auth, &out), &out, 400, "BadRequest", "agent_did");
    expect_error(http("POST", "/api/v1/signals", bad, strlen(bad), auth, &out), &out, 401, "Unauthorized", "already used");
}
END_TEST

/* ---- a store that is down -------------------------------------------------------- */

/* Answers TS_UNAVAILABLE to everything except, when `replay_up`, the replay cache. */
struct down_store {
    struct trust_store base;
    struct trust_store *inner;
    int replay_up;
};

static int down(char *err, size_t errlen) {
    snprintf(err, errlen, "redis 127.0.0.1:6379: connection refused");
    return TS_UNAVAILABLE;
}
static int d_get(struct trust_store *s, const char *d, struct trust_state *o, char *e, size_t n) {
    (void)s, (void)d, (void)o;
    return down(e, n);
}
static int d_state(struct trust_store *s, const char *d, const struct trust_state *st, char *e, size_t n) {
    (void)s, (void)d, (void)st;
    return down(e, n);
}
static int d_params(struct trust_store *s, const char *d, const struct trust_params *p, char *e, size_t n) {
    (void)s, (void)d, (void)p;
    return down(e, n);
}
static int d_apply(struct trust_store *s, const char *d, const struct trust_signal *g, struct trust_state *o,
                   char *e, size_t n) {
    (void)s, (void)d, (void)g, (void)o;
    return down(e, n);
}
static int d_remove(struct trust_store *s, const char *d, char *e, size_t n) {
    (void)s, (void)d;
    return down(e, n);
}
static int d_put_ch(struct trust_store *s, const char *i, const char *v, int64_t t, char *e, size_t n) {
    (void)s, (void)i, (void)v, (void)t;
    return down(e, n);
}
static int d_take_ch(struct trust_store *s, const char *i, char *v, size_t vl, char *e, size_t n) {
    (void)s, (void)i, (void)v, (void)vl;
    return down(e, n);
}
static int d_remember(struct trust_store *s, const char *k, int64_t t, char *e, size_t n) {
    struct down_store *d = (struct down_store *)s;
    return d->replay_up ? d->inner->remember(d->inner, k, t, e, n) : down(e, n);
}
static int d_listener(struct trust_store *s, trust_store_listener fn, void *arg) {
    (void)s, (void)fn, (void)arg;
    return 0;
}
static void d_destroy(struct trust_store *s) { (void)s; }

START_TEST(store_down_is_503) {
    struct down_store ds = {
        .base = {.get = d_get, .create = d_state, .put = d_state, .set_params = d_params, .apply_signal = d_apply,
                 .remove = d_remove, .put_challenge = d_put_ch, .take_challenge = d_take_ch,
                 .remember = d_remember, .set_listener = d_listener, .destroy = d_destroy, .kind = "down"},
        .inner = store, .replay_up = 0};
    start_api(&ds.base, 0, 0);
    json_t *out;
    char body[256];
    /* Even authentication needs the shared replay cache. */
    expect_error(call(&alice, "GET", "/api/v1/agents", NULL, &out), &out, 503, "StoreUnavailable", "connection refused");
    ds.replay_up = 1;
    expect_error(call(&alice, "GET", "/api/v1/agents", NULL, &out), &out, 503, "StoreUnavailable", "connection refused");
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\"}", bob.did);
    expect_error(call(&alice, "POST", "/api/v1/handshake/challenge", body, &out), &out, 503, "StoreUnavailable",
                 "connection refused");
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\",\"dimension\":\"outputQuality\",\"value\":1,\"source\":\"t\"}",
             bob.did);
    expect_error(call(&alice, "POST", "/api/v1/signals", body, &out), &out, 503, "StoreUnavailable", "connection refused");
    double errors0 = counter("agentmesh_handshakes_total", "result", "error");
    struct challenge ch = {.id = "challenge_0123456789abcdef", .nonce = "00"};
    char *vb = verify_body(&bob, bob.did, &ch, "");
    expect_error(call(&alice, "POST", "/api/v1/handshake/verify", vb, &out), &out, 503, "StoreUnavailable",
                 "connection refused");
    free(vb);
    ck_assert(counter("agentmesh_handshakes_total", "result", "error") == errors0 + 1);
    stop_api();   /* before ds leaves scope */
}
END_TEST

/* ---- a store with an asynchronous step ---------------------------------------- */

/* The memory store, plus the asynchronous steps: each step finishes on the
 * loop in a later turn (like a Redis reply), or is refused at once, or is
 * held until the loop closes. */
struct async_store {
    struct trust_store base;
    struct trust_store *inner;
    int refuse, hold;
    int opened, closed, held, ended;   /* updated under mu */
    pthread_mutex_t mu;
};

struct trust_store_loop {
    struct async_store *as;
    struct event_base *base;
    struct step *held;
};

enum step_kind { STEP_SIGNAL, STEP_CHALLENGE, STEP_TAKE };

struct step {
    struct trust_store_loop *l;
    enum step_kind kind;
    char key[TRUST_STORE_MAX_KEY + 1], did[ID_DID_BUFSZ], id[TRUST_STORE_MAX_KEY + 1], value[TRUST_STORE_MAX_VALUE];
    int64_t ttl_ms;                    /* the challenge's */
    struct trust_signal sig;
    trust_store_done done;
    void *arg;
    struct step *next;
};

static void a_count(struct async_store *as, int *field) {
    pthread_mutex_lock(&as->mu);
    (*field)++;
    pthread_mutex_unlock(&as->mu);
}

static struct trust_store_loop *a_open(struct trust_store *s, struct event_base *base) {
    struct trust_store_loop *l = calloc(1, sizeof *l);
    l->as = (struct async_store *)s;
    l->base = base;
    a_count(l->as, &l->as->opened);
    return l;
}

/* Does a step with the memory store's synchronous calls, as Redis' scripts would. */
static void a_finish(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct step *st = arg;
    struct trust_store *in = st->l->as->inner;
    struct trust_state state;
    char err[256] = "", value[TRUST_STORE_MAX_VALUE];
    struct trust_store_reply r = {.err = err};
    if (st->kind == STEP_SIGNAL) {
        r.rc = trust_store_remember_apply(in, st->key, TRUST_API_REPLAY_TTL_MS, st->did, &st->sig, &state, err,
                                          sizeof err);
        r.state = r.rc == TS_OK ? &state : NULL;
    } else if ((r.rc = in->remember(in, st->key, TRUST_API_REPLAY_TTL_MS, err, sizeof err)) != TS_OK) {
        /* replayed: nothing else done */
    } else if (st->kind == STEP_CHALLENGE) {
        r.rc = in->put_challenge(in, st->id, st->value, st->ttl_ms, err, sizeof err);
    } else {
        r.challenge = in->take_challenge(in, st->id, value, sizeof value, err, sizeof err) == TS_OK ? value : NULL;
        r.state = in->get(in, st->did, &state, err, sizeof err) == TS_OK ? &state : NULL;
    }
    a_count(st->l->as, &st->l->as->ended);
    st->done(&r, st->arg);
    free(st);
}

/* Queues st (or holds it, or refuses it). */
static int a_queue(struct trust_store_loop *l, struct step *st, char *err, size_t errlen) {
    if (l->as->refuse) {
        free(st);
        return down(err, errlen);
    }
    st->l = l;
    if (l->as->hold) {
        st->next = l->held;
        l->held = st;
        a_count(l->as, &l->as->held);
        return TS_OK;
    }
    struct timeval soon = {0, 1000};
    ck_assert_int_eq(event_base_once(l->base, -1, EV_TIMEOUT, a_finish, st, &soon), 0);
    return TS_OK;
}

static struct step *a_step(enum step_kind kind, const char *key, int64_t ttl_ms, trust_store_done done, void *arg) {
    ck_assert_int_eq(ttl_ms, TRUST_API_REPLAY_TTL_MS);
    struct step *st = calloc(1, sizeof *st);
    *st = (struct step){.kind = kind, .done = done, .arg = arg};
    snprintf(st->key, sizeof st->key, "%s", key);
    return st;
}

static int a_signal(struct trust_store_loop *l, const char *key, int64_t ttl_ms, const char *did,
                    const struct trust_signal *sig, trust_store_done done, void *arg, char *err, size_t errlen) {
    struct step *st = a_step(STEP_SIGNAL, key, ttl_ms, done, arg);
    st->sig = *sig;
    snprintf(st->did, sizeof st->did, "%s", did);
    return a_queue(l, st, err, errlen);
}

static int a_challenge(struct trust_store_loop *l, const char *key, int64_t ttl_ms, const char *id,
                       const char *value, int64_t challenge_ttl_ms, trust_store_done done, void *arg, char *err,
                       size_t errlen) {
    struct step *st = a_step(STEP_CHALLENGE, key, ttl_ms, done, arg);
    snprintf(st->id, sizeof st->id, "%s", id);
    snprintf(st->value, sizeof st->value, "%s", value);
    st->ttl_ms = challenge_ttl_ms;
    return a_queue(l, st, err, errlen);
}

static int a_take(struct trust_store_loop *l, const char *key, int64_t ttl_ms, const char *id, const char *did,
                  trust_store_done done, void *arg, char *err, size_t errlen) {
    struct step *st = a_step(STEP_TAKE, key, ttl_ms, done, arg);
    snprintf(st->id, sizeof st->id, "%s", id);
    snprintf(st->did, sizeof st->did, "%s", did);
    return a_queue(l, st, err, errlen);
}

static void a_close(struct trust_store_loop *l) {
    while (l->held) {
        struct step *st = l->held;
        l->held = st->next;
        a_count(l->as, &l->as->ended);
        st->done(&(struct trust_store_reply){.rc = TS_UNAVAILABLE, .err = "closing"}, st->arg);
        free(st);
    }
    a_count(l->as, &l->as->closed);
    free(l);
}

/* The synchronous calls go to the memory store. */
#define INNER(s) (((struct async_store *)(s))->inner)
static int a_get(struct trust_store *s, const char *d, struct trust_state *o, char *e, size_t n) {
    return INNER(s)->get(INNER(s), d, o, e, n);
}
static int a_create(struct trust_store *s, const char *d, const struct trust_state *st, char *e, size_t n) {
    return INNER(s)->create(INNER(s), d, st, e, n);
}
static int a_apply(struct trust_store *s, const char *d, const struct trust_signal *g, struct trust_state *o,
                   char *e, size_t n) {
    return INNER(s)->apply_signal(INNER(s), d, g, o, e, n);
}
static int a_remember(struct trust_store *s, const char *k, int64_t t, char *e, size_t n) {
    return INNER(s)->remember(INNER(s), k, t, e, n);
}

static void async_store_init(struct async_store *as) {
    *as = (struct async_store){.base = {.get = a_get, .create = a_create, .apply_signal = a_apply,
                                        .remember = a_remember, .destroy = d_destroy, .kind = "async"},
                               .inner = store};
    as->base.loop_open = a_open;
    as->base.remember_apply_async = a_signal;
    as->base.remember_put_challenge_async = a_challenge;
    as->base.remember_take_async = a_take;
    as->base.loop_close = a_close;
    pthread_mutex_init(&as->mu, NULL);
}

/* Signals whose store step finishes later on the loop: the same replies as
 * the synchronous path (scores, first signal, replay, errors), and the
 * loop's connection opened once per loop and closed with the API. */
START_TEST(async_store_signals) {
    struct async_store as;
    async_store_init(&as);
    start_api(&as.base, 0, 0);
    char err[128], body[256];
    struct trust_state expect;
    ck_assert_int_eq(store->get(store, bob.did, &expect, err, sizeof err), TS_OK);
    for (int i = 0; i < 6; i++)   /* curl's new connection each time: both loops serve some */
        signal_matches(bob.did, (enum trust_dim)(i % TRUST_DIM_COUNT), 0.1 * i, 1 + i, &expect);
    ck_assert_int_eq(trust_state_init(&expect, 500, NULL, now_ms(), err, sizeof err), 0);
    signal_matches(alice.did, TRUST_DIM_OUTPUT_QUALITY, 0.7, 2, &expect);   /* no state yet: created first */
    ck_assert_int_eq(as.ended, 7);
    char auth[AUTH_HEADER_MAX];
    json_t *out;
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\",\"dimension\":\"outputQuality\",\"value\":1,\"source\":\"t\"}",
             bob.did);
    ck_assert_int_eq(auth_build_header(alice.sk, alice.did, "POST", "/api/v1/signals", body, strlen(body), time(NULL),
                                       auth, sizeof auth), 0);
    ck_assert_int_eq(http("POST", "/api/v1/signals", body, strlen(body), auth, &out), 200);
    json_decref(out);
    expect_error(http("POST", "/api/v1/signals", body, strlen(body), auth, &out), &out, 401, "Unauthorized",
                 "already used");
    as.refuse = 1;
    expect_error(call(&alice, "POST", "/api/v1/signals", body, &out), &out, 503, "StoreUnavailable",
                 "connection refused");
    ck_assert_int_ge(as.opened, 1);
    ck_assert_int_le(as.opened, 2);   /* one per event loop at most */
    stop_api();
    ck_assert_int_eq(as.closed, as.opened);
    pthread_mutex_destroy(&as.mu);
}
END_TEST

/* The signal reply formatted in place is what json_compact makes of the
 * same object, for dimensions at the edges of what doubles print as. */
START_TEST(signal_reply_is_jansson_text) {
    static const double edge[] = {0, 100, 50, 0.1, 1e-5, 1.5e-7, 99.999999999999986, 12345678901234567.0,
                                  4.9406564584124654e-324, 2.2250738585072014e-308, 1e20, 33.333333333333336};
    unsigned seed = 5;
    char err[128], mine[512];
    for (int i = 0; i < 20000; i++) {
        struct trust_state st;
        ck_assert_int_eq(trust_state_init(&st, 500, NULL, now_ms(), err, sizeof err), 0);
        for (int d = 0; d < TRUST_DIM_COUNT; d++) {
            /* 53 random mantissa bits, so every digit of "%.17g" is exercised */
            uint64_t bits = ((uint64_t)rand_r(&seed) << 31 ^ (uint64_t)rand_r(&seed)) & ((1ULL << 53) - 1);
            double full = ldexp((double)bits, -53 + (int)(rand_r(&seed) % 60) - 12);
            st.dims[d] = i < 200    ? edge[(size_t)(i + d) % (sizeof edge / sizeof *edge)]
                         : i < 2000 ? 100.0 * rand_r(&seed) / RAND_MAX / (double)(1ULL << (rand_r(&seed) % 40))
                         : i < 4000 ? (double)(rand_r(&seed) % 100001) / 1000.0   /* short decimals */
                                    : full;
        }
        int score = i % 1001;
        const char *tier = trust_tier_name(trust_tier_of(score));
        json_t *dims = json_object();
        for (int d = 0; d < TRUST_DIM_COUNT; d++)
            json_object_set_new(dims, trust_dim_name((enum trust_dim)d), json_real(st.dims[d]));
        json_t *o = json_pack("{s:s, s:i, s:s, s:o}", "agent_did", bob.did, "trust_score", score, "tier", tier,
                              "dimensions", dims);
        char *want = json_compact(o);
        int n = trust_api_signal_reply(mine, sizeof mine, bob.did, score, tier, &st);
        ck_assert_int_eq(n, (int)strlen(want));
        ck_assert_str_eq(mine, want);
        free(want);
        json_decref(o);
    }
    ck_assert_int_eq(trust_api_signal_reply(mine, 40, bob.did, 1, "trusted", &(struct trust_state){0}), -1);
}
END_TEST

/* The challenge and verify replies formatted in place are what
 * json_compact makes of the objects the API used to build: known and
 * unknown agents, verified and rejected, capabilities and reasons that need
 * escaping. */
START_TEST(handshake_replies_are_jansson_text) {
    struct handshake_challenge ch = {.id = "challenge_0123456789abcdef",
                                     .nonce = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"};
    char mine[256];
    json_t *o = json_pack("{s:s, s:s, s:I}", "challenge_id", ch.id, "nonce", ch.nonce, "expires_in_seconds",
                          (json_int_t)30);
    char *want = json_compact(o);
    ck_assert_int_eq(trust_api_challenge_reply(mine, sizeof mine, &ch, 30), (int)strlen(want));
    ck_assert_str_eq(mine, want);
    ck_assert_int_eq(trust_api_challenge_reply(mine, 40, &ch, 30), -1);
    free(want);
    json_decref(o);
    json_t *caps[] = {NULL, json_array(), json_pack("[s, s]", "read:data", "write:reports"),
                      json_pack("[s, s]", "a\"b\\c", "\xc3\xa9\t\x01")};
    const char *reasons[] = {"", "score 263 is under the bar of 500", "agent \"x\" \\ has\ta \x01 control",
                             "caf\xc3\xa9"};
    for (int i = 0; i < 64; i++) {
        struct handshake_result res = {.verified = i & 1, .known = (i >> 1) & 1, .score = 827, .tier = TRUST_TIER_TRUSTED,
                                       .capabilities = caps[(i >> 2) & 3]};
        snprintf(res.reason, sizeof res.reason, "%s", res.verified ? "" : reasons[(i >> 4) & 3]);
        o = json_pack("{s:b, s:o, s:o, s:o, s:o}", "verified", res.verified, "trust_score",
                      res.known ? json_integer(res.score) : json_null(), "tier",
                      res.known ? json_string(trust_tier_name(res.tier)) : json_null(), "capabilities",
                      json_is_array(res.capabilities) ? json_incref(res.capabilities) : json_array(),
                      "rejection_reason", res.verified ? json_null() : json_string(res.reason));
        want = json_compact(o);
        size_t len = 0;
        char *text = trust_api_verify_reply(&res, &len);
        ck_assert_ptr_nonnull(text);
        ck_assert_str_eq(text, want);
        ck_assert_uint_eq(len, strlen(want));
        free(text);
        free(want);
        json_decref(o);
    }
    struct handshake_result bad = {.verified = 0, .known = 1};
    snprintf(bad.reason, sizeof bad.reason, "\xff not UTF-8");
    size_t len;
    ck_assert_ptr_null(trust_api_verify_reply(&bad, &len));
    for (int i = 1; i < 4; i++) json_decref(caps[i]);
}
END_TEST

/* The same request twice with one Authorization: 200 (or code1) first, then 401 "already used". */
static void send_twice(const char *path, const char *body, long code1) {
    char auth[AUTH_HEADER_MAX];
    json_t *out;
    ck_assert_int_eq(auth_build_header(alice.sk, alice.did, "POST", path, body, strlen(body), time(NULL), auth,
                                       sizeof auth), 0);
    ck_assert_int_eq(http("POST", path, body, strlen(body), auth, &out), code1);
    json_decref(out);
    expect_error(http("POST", path, body, strlen(body), auth, &out), &out, 401, "Unauthorized", "already used");
}

/* Handshakes whose store steps finish later on the loop: the same decisions
 * as the synchronous path (verified with the stored score, single-use
 * challenges, another agent's challenge, unknown agents), replays refused,
 * a refused step is a 503 counted as an error, and every step ends. */
START_TEST(async_store_handshakes) {
    struct async_store as;
    async_store_init(&as);
    start_api(&as.base, 0, 0);
    double errors0 = counter("agentmesh_handshakes_total", "result", "error");
    struct challenge ch, other;
    ask_challenge(&alice, bob.did, &ch);
    ck_assert_int_eq(strlen(ch.id), 26);
    ck_assert_int_eq(strlen(ch.nonce), 64);
    char *vb = verify_body(&bob, bob.did, &ch, ",\"required_capabilities\":[\"write:reports\"]");
    json_t *out = verify_as(&alice, strdup(vb));
    ck_assert(json_is_true(json_object_get(out, "verified")));
    ck_assert_int_eq(json_int_at(out, "trust_score", -1), 827);   /* bob's stored state, read in the step */
    json_decref(out);
    expect_rejected(verify_as(&alice, vb), "unknown, expired or already used");
    ask_challenge(&alice, alice.did, &other);   /* alice has no stored state: her record's 500 */
    out = verify_as(&alice, verify_body(&bob, bob.did, &other, ""));
    ck_assert_int_eq(json_int_at(out, "trust_score", -1), 827);
    expect_rejected(out, "issued for another agent");
    ask_challenge(&alice, alice.did, &other);
    out = verify_as(&bob, verify_body(&alice, alice.did, &other, ""));
    ck_assert(json_is_true(json_object_get(out, "verified")));
    ck_assert_int_eq(json_int_at(out, "trust_score", -1), 500);
    json_decref(out);
    ask_challenge(&alice, bob.did, &ch);
    out = verify_as(&alice, verify_body(&eve, eve.did, &ch, ""));   /* eve is not registered */
    ck_assert(json_is_null(json_object_get(out, "trust_score")));
    expect_rejected(out, "issued for another agent");

    char body[128];
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\"}", bob.did);
    send_twice("/api/v1/handshake/challenge", body, 200);
    ask_challenge(&alice, bob.did, &ch);
    vb = verify_body(&bob, bob.did, &ch, "");
    send_twice("/api/v1/handshake/verify", vb, 200);
    free(vb);
    pthread_mutex_lock(&as.mu);
    int ended = as.ended;
    pthread_mutex_unlock(&as.mu);
    ck_assert_int_eq(ended, 14);   /* 7 challenges and 7 verifies, the two replays included */

    as.refuse = 1;
    expect_error(call(&alice, "POST", "/api/v1/handshake/challenge", body, &out), &out, 503, "StoreUnavailable",
                 "connection refused");
    vb = verify_body(&bob, bob.did, &ch, "");
    expect_error(call(&alice, "POST", "/api/v1/handshake/verify", vb, &out), &out, 503, "StoreUnavailable",
                 "connection refused");
    free(vb);
    ck_assert(counter("agentmesh_handshakes_total", "result", "error") == errors0 + 2);   /* the replay and the 503 */
    stop_api();
    ck_assert_int_eq(as.closed, as.opened);
    pthread_mutex_destroy(&as.mu);
}
END_TEST

/* A signal still waiting on the store when the API stops is ended (the
 * store's loop_close runs on the loop), its client is told 503 rather than
 * left with a closed connection, and nothing leaks. */
START_TEST(async_store_shutdown_ends_held) {
    struct async_store as;
    async_store_init(&as);
    as.hold = 1;
    start_api(&as.base, 0, 0);
    char req[2048], body[256], reply[512];
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\",\"dimension\":\"outputQuality\",\"value\":1,\"source\":\"t\"}",
             bob.did);
    int len = sc_build(req, sizeof req, alice.sk, alice.did, "POST", "/api/v1/signals", body);
    ck_assert_int_gt(len, 0);
    int fd = sc_dial(port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, req, (size_t)len), len);
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&as.mu);
        int held = as.held;
        pthread_mutex_unlock(&as.mu);
        if (held) break;
        usleep(10000);
    }
    ck_assert_int_eq(as.held, 1);
    stop_api();
    ck_assert_int_eq(as.ended, 1);
    ck_assert_int_eq(as.closed, as.opened);
    ssize_t n = read(fd, reply, sizeof reply - 1);
    ck_assert_int_gt(n, 0);
    reply[n] = '\0';
    ck_assert_msg(strncmp(reply, "HTTP/1.1 503", 12) == 0 && strstr(reply, "closing"), "reply: %s", reply);
    close(fd);
    pthread_mutex_destroy(&as.mu);
}
END_TEST

START_TEST(handshake_metrics_rendered) {
    start_api(store, 0, 0);
    struct challenge ch;
    ask_challenge(&alice, bob.did, &ch);
    json_decref(verify_as(&alice, verify_body(&bob, bob.did, &ch, "")));
    size_t len;
    char *text = metrics_render(&len);
    ck_assert_ptr_nonnull(strstr(text, "agentmesh_handshake_duration_seconds_bucket{le=\"0.0001\"}"));
    ck_assert_ptr_nonnull(strstr(text, "agentmesh_handshakes_total{result=\"verified\"}"));
    ck_assert_ptr_nonnull(strstr(text, "agentmesh_api_requests_total{route=\"/api/v1/handshake/verify\",code=\"200\"}"));
    free(text);
}
END_TEST

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    Suite *s = suite_create("trust_api");
    TCase *tc = tcase_create("api");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, full_handshake);
    tcase_add_test(tc, challenge_expires_in_30s);
    tcase_add_test(tc, malformed_bodies);
    tcase_add_test(tc, oversized_body);
    tcase_add_test(tc, authentication_failures);
    tcase_add_test(tc, replayed_authorization);
    tcase_add_test(tc, replayed_signal);
    tcase_add_test(tc, bad_signature_and_wrong_agent);
    tcase_add_test(tc, unknown_agent);
    tcase_add_test(tc, reused_challenge);
    tcase_add_test(tc, expired_challenge);
    tcase_add_test(tc, quarantined_and_revoked_peers);
    tcase_add_test(tc, score_bar);
    tcase_add_test(tc, missing_capability);
    tcase_add_test(tc, previous_key_grace);
    tcase_add_test(tc, signals_score_like_the_engine);
    tcase_add_test(tc, signal_errors);
    tcase_add_test(tc, agent_views);
    tcase_add_test(tc, audit_verify_route);
    tcase_add_test(tc, store_down_is_503);
    tcase_add_test(tc, handshake_metrics_rendered);
    tcase_add_test(tc, async_store_signals);
    tcase_add_test(tc, async_store_shutdown_ends_held);
    tcase_add_test(tc, async_store_handshakes);
    tcase_add_test(tc, signal_reply_is_jansson_text);
    tcase_add_test(tc, handshake_replies_are_jansson_text);
    suite_add_tcase(s, tc);
    int rc = check_run(s, CK_FORK_GETENV);
    curl_global_cleanup();
    return rc;
}
