/* test_routes.c — the sidecar's route logic without sockets: every bad input
 * gets its 400/413/503 with a reason; good input forwards the right body or
 * signs the documented handshake string. Also config parsing, controller URL
 * parsing, and the keystore's reload on rotation. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/json.h"
#include "common/test/check_run.h"
#include "sidecar/config.h"
#include "sidecar/keystore.h"
#include "sidecar/routes.h"
#include "sidecar/upstream.h"

static char dir[64];
static struct identity id;
static struct keystore *ks;

static void remove_dir(const char *d) {
    const char *names[] = {"ed25519.key", "ed25519.pub", "did", "key-id", "rotation-proof"};
    char p[128];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", d, names[i]);
        unlink(p);
    }
    rmdir(d);
}

static void setup(void) {
    char err[256];
    strcpy(dir, "/tmp/test_routes.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(identity_generate(&id), 0);
    ck_assert_int_eq(identity_save_dir(dir, &id, NULL, err, sizeof err), 0);
    ks = keystore_new(dir);
    ck_assert_ptr_nonnull(ks);
    ck_assert_int_eq(keystore_reload(ks, err, sizeof err), 1);
}

static void teardown(void) {
    keystore_free(ks);
    identity_wipe(&id);
    remove_dir(dir);
}

/* Asserts a local error reply with `code` whose message contains `needle`. */
static void expect_error(struct route_result *r, int code, const char *needle) {
    ck_assert_ptr_null(r->upstream);
    ck_assert_int_eq(r->code, code);
    const char *msg = json_str_at(r->body, "message");
    ck_assert_ptr_nonnull(msg);
    ck_assert_ptr_nonnull(json_str_at(r->body, "error"));
    ck_assert_msg(strstr(msg, needle) != NULL, "message '%s' lacks '%s'", msg, needle);
    json_decref(r->body);
}

#define S(lit) lit, strlen(lit)

START_TEST(identity_route) {
    struct route_result r;
    route_identity(ks, "alpha", &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert_str_eq(json_str_at(r.body, "did"), id.did);
    ck_assert_str_eq(json_str_at(r.body, "key_id"), id.key_id);
    ck_assert_str_eq(json_str_at(r.body, "public_key"), id.pub_b64);
    ck_assert_str_eq(json_str_at(r.body, "agent"), "alpha");
    ck_assert_ptr_null(json_object_get(r.body, "secret_key"));
    json_decref(r.body);

    struct keystore *empty = keystore_new("/nonexistent-dir");
    route_identity(empty, "alpha", &r);
    expect_error(&r, 503, "no identity");
    keystore_free(empty);
}
END_TEST

START_TEST(challenge_route) {
    struct route_result r;
    char body[256];
    snprintf(body, sizeof body, "{\"peer_did\":\"%s\"}", id.did);
    route_challenge(S(body), &r);
    ck_assert_int_eq(r.code, 0);
    ck_assert_str_eq(r.upstream, "/api/v1/handshake/challenge");
    ck_assert_str_eq(json_str_at(r.body, "agent_did"), id.did);
    ck_assert_int_eq(json_object_size(r.body), 1);
    json_decref(r.body);

    route_challenge(S("{\"peer_did\":"), &r);
    expect_error(&r, 400, "not valid JSON");
    route_challenge(S(""), &r);
    expect_error(&r, 400, "not valid JSON");
    route_challenge(S("[1,2]"), &r);
    expect_error(&r, 400, "JSON object");
    route_challenge(S("{}"), &r);
    expect_error(&r, 400, "field \"peer_did\" is required");
    route_challenge(S("{\"peer_did\":\"did:mesh:abc\"}"), &r);
    expect_error(&r, 400, "field \"peer_did\" must be a DID");
    route_challenge(S("{\"peer_did\":42}"), &r);
    expect_error(&r, 400, "field \"peer_did\" must be a DID");
    snprintf(body, sizeof body, "{\"peer_did\":\"%s\",\"peerDid\":\"x\"}", id.did);
    route_challenge(S(body), &r);
    expect_error(&r, 400, "unknown field \"peerDid\"");
    snprintf(body, sizeof body, "{\"peer_did\":\"%s\",\"peer_did\":\"%s\"}", id.did, id.did);
    route_challenge(S(body), &r);
    expect_error(&r, 400, "duplicate");

    size_t big = SIDECAR_MAX_BODY + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    route_challenge(huge, big, &r);
    expect_error(&r, 413, "limit");
    free(huge);
}
END_TEST

START_TEST(respond_route_signs_documented_string) {
    struct route_result r;
    const char *cid = "challenge_0123456789abcdef";
    const char *nonce = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    char body[256], msg[512], first_nonce[80];
    snprintf(body, sizeof body, "{\"challenge_id\":\"%s\",\"nonce\":\"%s\"}", cid, nonce);
    for (int i = 0; i < 2; i++) {
        route_respond(ks, S(body), &r);
        ck_assert_int_eq(r.code, 200);
        ck_assert_ptr_null(r.upstream);
        ck_assert_str_eq(json_str_at(r.body, "agent_did"), id.did);
        ck_assert_str_eq(json_str_at(r.body, "key_id"), id.key_id);
        const char *rn = json_str_at(r.body, "response_nonce");
        ck_assert_uint_eq(strlen(rn), 64);
        if (i == 0) snprintf(first_nonce, sizeof first_nonce, "%s", rn);
        else ck_assert_str_ne(rn, first_nonce);          /* fresh randomness each time */
        const char *sig_b64 = json_str_at(r.body, "signature");
        unsigned char sig[ID_SIG_LEN];
        ck_assert_int_eq(b64_decode_exact(sig_b64, strlen(sig_b64), sig, sizeof sig), 0);
        snprintf(msg, sizeof msg, "%s:%s:%s:%s", cid, nonce, rn, id.did);
        ck_assert_int_eq(identity_verify(id.pk, msg, strlen(msg), sig), 0);
        snprintf(msg, sizeof msg, "%s:%s:%s:%s", cid, nonce, first_nonce, "did:mesh:00000000000000000000000000000000");
        ck_assert_int_eq(identity_verify(id.pk, msg, strlen(msg), sig), -1);
        json_decref(r.body);
    }

    route_respond(ks, S("{\"challenge_id\":\"challenge_1\"}"), &r);
    expect_error(&r, 400, "field \"nonce\" is required");
    snprintf(body, sizeof body, "{\"nonce\":\"%s\"}", nonce);
    route_respond(ks, S(body), &r);
    expect_error(&r, 400, "field \"challenge_id\" is required");
    snprintf(body, sizeof body, "{\"challenge_id\":\"a:b\",\"nonce\":\"%s\"}", nonce);
    route_respond(ks, S(body), &r);
    expect_error(&r, 400, "field \"challenge_id\" must be");
    route_respond(ks, S("{\"challenge_id\":\"c\",\"nonce\":\"zz112233445566778899\"}"), &r);
    expect_error(&r, 400, "field \"nonce\" must be a string of 16..128 hex digits");
    route_respond(ks, S("{\"challenge_id\":\"c\",\"nonce\":\"0011\"}"), &r);
    expect_error(&r, 400, "field \"nonce\"");
    route_respond(ks, S("{\"challenge_id\":\"c\",\"nonce\":null}"), &r);
    expect_error(&r, 400, "field \"nonce\"");

    struct keystore *empty = keystore_new("/nonexistent-dir");
    snprintf(body, sizeof body, "{\"challenge_id\":\"%s\",\"nonce\":\"%s\"}", cid, nonce);
    route_respond(empty, S(body), &r);
    expect_error(&r, 503, "no identity");
    keystore_free(empty);
}
END_TEST

START_TEST(verify_route) {
    struct route_result r;
    unsigned char sig[ID_SIG_LEN] = {1, 2, 3};
    char sig_b64[ID_SIG_B64_BUFSZ], body[512];
    ck_assert_int_eq(b64_encode(sig, sizeof sig, sig_b64, sizeof sig_b64), 0);
#define VERIFY_FIELDS "\"challenge_id\":\"challenge_0123456789abcdef\",\"agent_did\":\"%s\"," \
                      "\"response_nonce\":\"00112233445566778899aabbccddeeff\",\"signature\":\"%s\""
    char fields[400];
    snprintf(fields, sizeof fields, VERIFY_FIELDS, id.did, sig_b64);

    snprintf(body, sizeof body, "{%s,\"required_score\":700,\"required_capabilities\":[\"read:data\"]}", fields);
    route_verify(S(body), &r);
    ck_assert_str_eq(r.upstream, "/api/v1/handshake/verify");
    ck_assert_int_eq(json_int_at(r.body, "required_score", -1), 700);
    ck_assert_str_eq(json_str_at(r.body, "signature"), sig_b64);
    ck_assert_int_eq(json_object_size(r.body), 6);
    json_decref(r.body);

    snprintf(body, sizeof body, "{%s}", fields);
    route_verify(S(body), &r);
    ck_assert_str_eq(r.upstream, "/api/v1/handshake/verify");
    json_decref(r.body);

    snprintf(body, sizeof body, "{%s,\"required_score\":1001}", fields);
    route_verify(S(body), &r);
    expect_error(&r, 400, "field \"required_score\" must be an integer in 0..1000");
    snprintf(body, sizeof body, "{%s,\"required_score\":\"700\"}", fields);
    route_verify(S(body), &r);
    expect_error(&r, 400, "required_score");
    snprintf(body, sizeof body, "{%s,\"required_capabilities\":\"read:data\"}", fields);
    route_verify(S(body), &r);
    expect_error(&r, 400, "field \"required_capabilities\" must be an array");
    snprintf(body, sizeof body, "{%s,\"required_capabilities\":[1]}", fields);
    route_verify(S(body), &r);
    expect_error(&r, 400, "required_capabilities");

    snprintf(fields, sizeof fields, VERIFY_FIELDS, id.did, "c2lnbmF0dXJl");
    snprintf(body, sizeof body, "{%s}", fields);
    route_verify(S(body), &r);
    expect_error(&r, 400, "field \"signature\" must be the std base64 of a 64-byte");
    snprintf(fields, sizeof fields, VERIFY_FIELDS, "did:mesh:nope", sig_b64);
    snprintf(body, sizeof body, "{%s}", fields);
    route_verify(S(body), &r);
    expect_error(&r, 400, "field \"agent_did\"");
    route_verify(S("{\"challenge_id\":\"c\"}"), &r);
    expect_error(&r, 400, "field \"agent_did\" is required");
}
END_TEST

START_TEST(signals_route) {
    struct route_result r;
    route_signals(ks, S("{\"dimension\":\"outputQuality\",\"value\":0.75}"), &r);
    ck_assert_str_eq(r.upstream, "/api/v1/signals");
    ck_assert_str_eq(json_str_at(r.body, "agent_did"), id.did);       /* defaults to ours */
    ck_assert_str_eq(json_str_at(r.body, "source"), "agentmesh-sidecar");
    ck_assert_double_eq(json_num_at(r.body, "value", -1), 0.75);
    json_decref(r.body);

    const char *other = "did:mesh:0123456789abcdef0123456789abcdef";
    char body[256];
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\",\"dimension\":\"securityPosture\",\"value\":1,"
             "\"weight\":2.5,\"source\":\"scanner\"}", other);
    route_signals(ks, S(body), &r);
    ck_assert_str_eq(json_str_at(r.body, "agent_did"), other);
    ck_assert_str_eq(json_str_at(r.body, "source"), "scanner");
    ck_assert_double_eq(json_num_at(r.body, "weight", -1), 2.5);
    json_decref(r.body);

    route_signals(ks, S("{\"dimension\":\"speed\",\"value\":0.5}"), &r);
    expect_error(&r, 400, "field \"dimension\" must be one of policyCompliance");
    route_signals(ks, S("{\"dimension\":\"outputQuality\",\"value\":1.5}"), &r);
    expect_error(&r, 400, "field \"value\" must be a number in [0, 1]");
    route_signals(ks, S("{\"dimension\":\"outputQuality\",\"value\":\"high\"}"), &r);
    expect_error(&r, 400, "field \"value\"");
    route_signals(ks, S("{\"dimension\":\"outputQuality\",\"value\":0.5,\"weight\":-1}"), &r);
    expect_error(&r, 400, "field \"weight\"");
    route_signals(ks, S("{\"dimension\":\"outputQuality\"}"), &r);
    expect_error(&r, 400, "field \"value\" is required");
    route_signals(ks, S("{\"dimension\":\"outputQuality\",\"value\":0.5,\"source\":\"\"}"), &r);
    expect_error(&r, 400, "field \"source\"");
}
END_TEST

/* ---- keystore ---- */

START_TEST(keystore_picks_up_rotation) {
    char err[256], proof[ID_SIG_B64_BUFSZ];
    struct keystore_public pub;
    ck_assert_int_eq(keystore_reload(ks, err, sizeof err), 0);        /* unchanged */
    struct identity next;
    ck_assert_int_eq(identity_rotate(&id, &next, proof, sizeof proof), 0);
    ck_assert_int_eq(identity_save_dir(dir, &next, proof, err, sizeof err), 0);
    ck_assert_int_eq(keystore_reload(ks, err, sizeof err), 1);
    ck_assert_int_eq(keystore_public(ks, &pub), 0);
    ck_assert_str_eq(pub.key_id, next.key_id);
    ck_assert_str_eq(pub.did, id.did);
    unsigned char sig[ID_SIG_LEN];
    ck_assert_int_eq(keystore_sign(ks, "m", 1, sig), 0);
    ck_assert_int_eq(identity_verify(next.pk, "m", 1, sig), 0);
    ck_assert_int_eq(identity_verify(id.pk, "m", 1, sig), -1);

    /* A broken update (key-id of another key) is refused; the good key stays. */
    /* Replaced the way a Secret volume does it: a new file renamed over. */
    char p[128], tmp[128];
    snprintf(p, sizeof p, "%s/key-id", dir);
    snprintf(tmp, sizeof tmp, "%s/key-id.new", dir);
    FILE *f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    fputs(id.key_id, f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(rename(tmp, p), 0);
    ck_assert_int_eq(keystore_reload(ks, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "key-id"));
    ck_assert_int_eq(keystore_reload(ks, err, sizeof err), 0);        /* not retried until it changes */
    ck_assert_int_eq(keystore_public(ks, &pub), 0);
    ck_assert_str_eq(pub.key_id, next.key_id);
    ck_assert_int_eq(keystore_sign(ks, "m", 1, sig), 0);
    ck_assert_int_eq(identity_verify(next.pk, "m", 1, sig), 0);
    identity_wipe(&next);
}
END_TEST

START_TEST(keystore_headers_never_repeat) {
    char a[AUTH_HEADER_MAX], b[AUTH_HEADER_MAX];
    struct auth_header ha, hb;
    const char *why = NULL;
    ck_assert_int_eq(keystore_auth_header(ks, "POST", "/api/v1/signals", "{}", 2, a, sizeof a), 0);
    ck_assert_int_eq(keystore_auth_header(ks, "POST", "/api/v1/signals", "{}", 2, b, sizeof b), 0);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(auth_parse_header(a, strlen(a), &ha, &why), 0);
    ck_assert_int_eq(auth_parse_header(b, strlen(b), &hb, &why), 0);
    ck_assert_str_lt(ha.time, hb.time);
    ck_assert_int_eq(auth_verify(&hb, id.pk, NULL, "POST", "/api/v1/signals", "{}", 2, time(NULL),
                                 NULL, &why), 0);
}
END_TEST

START_TEST(keystore_without_files) {
    char err[256];
    struct keystore *k = keystore_new("/nonexistent-dir");
    struct keystore_public pub;
    unsigned char sig[ID_SIG_LEN];
    char hdr[256];
    ck_assert_int_eq(keystore_reload(k, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "No such file"));
    ck_assert_int_eq(keystore_public(k, &pub), -1);
    ck_assert_int_eq(keystore_sign(k, "m", 1, sig), -1);
    ck_assert_int_eq(keystore_auth_header(k, "POST", "/x", "", 0, hdr, sizeof hdr), -1);
    keystore_free(k);
}
END_TEST

/* ---- config and URL ---- */

START_TEST(config_precedence) {
    struct sidecar_config c;
    char err[512];
    char *none[] = {"sidecar", NULL};
    unsetenv("AGENTMESH_CONTROLLER_URL");
    unsetenv("AGENTMESH_LISTEN");
    ck_assert_int_eq(sidecar_config_load(&c, 1, none, err, sizeof err), CONFIG_OK);
    ck_assert_str_eq(c.listen_addr, "127.0.0.1");
    ck_assert_int_eq(c.listen_port, 8081);
    ck_assert_int_eq(c.metrics_port, 9091);
    ck_assert_str_eq(c.identity_dir, "/var/run/agentmesh/identity");
    ck_assert_str_eq(c.exit_file, "");
    ck_assert_int_eq(c.sched_slice_us, 100);

    setenv("AGENTMESH_CONTROLLER_URL", "http://env:1", 1);
    setenv("AGENTMESH_LISTEN", "127.0.0.2:9000", 1);
    ck_assert_int_eq(sidecar_config_load(&c, 1, none, err, sizeof err), CONFIG_OK);
    ck_assert_str_eq(c.controller_url, "http://env:1");
    ck_assert_str_eq(c.listen_addr, "127.0.0.2");
    ck_assert_int_eq(c.listen_port, 9000);

    char *flags[] = {"sidecar", "--controller-url", "https://flag:2", "--listen=[::1]:8082",
                     "--exit-when-file-exists", "/var/run/agentmesh/exit", "--reload-seconds=5",
                     "--sched-slice-us=0", NULL};
    ck_assert_int_eq(sidecar_config_load(&c, 8, flags, err, sizeof err), CONFIG_OK);
    ck_assert_int_eq(c.sched_slice_us, 0);
    ck_assert_str_eq(c.controller_url, "https://flag:2");
    ck_assert_str_eq(c.listen_addr, "::1");
    ck_assert_int_eq(c.listen_port, 8082);
    ck_assert_str_eq(c.exit_file, "/var/run/agentmesh/exit");
    ck_assert_int_eq(c.reload_seconds, 5);
    unsetenv("AGENTMESH_CONTROLLER_URL");
    unsetenv("AGENTMESH_LISTEN");
}
END_TEST

/* Loads argv {"sidecar", a, b} and expects CONFIG_ERROR naming `needle`. */
static void expect_config_error(const char *a, const char *b, const char *needle) {
    struct sidecar_config c;
    char err[512] = "";
    char *argv[] = {"sidecar", (char *)a, (char *)b, NULL};
    int argc = a ? (b ? 3 : 2) : 1;
    ck_assert_int_eq(sidecar_config_load(&c, argc, argv, err, sizeof err), CONFIG_ERROR);
    ck_assert_msg(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
}

START_TEST(config_errors) {
    expect_config_error("--listen", "0.0.0.0:8081", "not a loopback address");
    expect_config_error("--listen", "10.0.0.1:8081", "not a loopback address");
    expect_config_error("--listen", "localhost:8081", "is not <ip>:<port>");
    expect_config_error("--listen", "127.0.0.1:99999", "is not <ip>:<port>");
    expect_config_error("--metrics-listen", "0.0.0.0", "is not <ip>:<port>");
    expect_config_error("--bogus", "1", "unknown flag \"--bogus\"");
    expect_config_error("--identity-dir", NULL, "needs a value");
    expect_config_error("--timeout-seconds", "0", "1..3600");
    expect_config_error("--timeout-seconds", "5s", "1..3600");
    expect_config_error("--sched-slice-us", "50", "100..100000");
    expect_config_error("--sched-slice-us", "1ms", "100..100000");
    expect_config_error("--log-level", "loud", "debug, info");
    expect_config_error("positional", NULL, "unexpected argument");
    setenv("AGENTMESH_LISTEN", "0.0.0.0:8081", 1);
    expect_config_error(NULL, NULL, "AGENTMESH_LISTEN");
    unsetenv("AGENTMESH_LISTEN");
    struct sidecar_config c;
    char err[2048];
    char *help[] = {"sidecar", "--help", NULL};
    ck_assert_int_eq(sidecar_config_load(&c, 2, help, err, sizeof err), CONFIG_HELP);
    ck_assert_ptr_nonnull(strstr(err, "--exit-when-file-exists"));
}
END_TEST

START_TEST(controller_urls) {
    struct upstream_url u;
    char err[256];
    ck_assert_int_eq(upstream_parse_url("http://agentmesh-controller.agentmesh-system.svc:8080", &u, err, sizeof err), 0);
    ck_assert_int_eq(u.tls, 0);
    ck_assert_str_eq(u.host, "agentmesh-controller.agentmesh-system.svc");
    ck_assert_int_eq(u.port, 8080);
    ck_assert_str_eq(u.prefix, "");
    ck_assert_int_eq(upstream_parse_url("https://ctl/trust/", &u, err, sizeof err), 0);
    ck_assert_int_eq(u.tls, 1);
    ck_assert_int_eq(u.port, 443);
    ck_assert_str_eq(u.prefix, "/trust");
    ck_assert_int_eq(upstream_parse_url("http://ctl", &u, err, sizeof err), 0);
    ck_assert_int_eq(u.port, 80);
    ck_assert_int_eq(upstream_parse_url("ftp://ctl", &u, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "scheme"));
    ck_assert_int_eq(upstream_parse_url("http://ctl/?a=b", &u, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "query"));
    ck_assert_int_eq(upstream_parse_url("http://user@ctl", &u, err, sizeof err), -1);
    ck_assert_int_eq(upstream_parse_url("ctl:8080", &u, err, sizeof err), -1);
    ck_assert_int_eq(upstream_parse_url("http://:8080", &u, err, sizeof err), -1);
    ck_assert_int_eq(upstream_parse_url("http://ctl:0", &u, err, sizeof err), -1);
}
END_TEST

int main(void) {
    if (identity_init() != 0) return EXIT_FAILURE;
    Suite *s = suite_create("sidecar_routes");
    TCase *tc = tcase_create("routes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, identity_route);
    tcase_add_test(tc, challenge_route);
    tcase_add_test(tc, respond_route_signs_documented_string);
    tcase_add_test(tc, verify_route);
    tcase_add_test(tc, signals_route);
    tcase_add_test(tc, keystore_picks_up_rotation);
    tcase_add_test(tc, keystore_headers_never_repeat);
    tcase_add_test(tc, keystore_without_files);
    tcase_add_test(tc, config_precedence);
    tcase_add_test(tc, config_errors);
    tcase_add_test(tc, controller_urls);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
