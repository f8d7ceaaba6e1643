/* fuzz_sidecar_routes.c — libFuzzer target: the sidecar's request handling
 * (sidecar/routes.h), the code every local agent process can reach.
 *
 * The first byte picks the route (challenge, respond, verify, signals); the
 * rest is the body. The keystore holds a real key generated at start-up in a
 * temporary identity directory. Checks, beyond "no crash, no leak, no UB":
 *   - a local error reply (400/413/500/503) has no upstream and carries
 *     "error" and a non-empty "message";
 *   - a forwarded call names the route's controller path and its body holds
 *     the fields the controller requires (a valid DID, a dimension, ...);
 *   - /v1/respond's 200 carries a signature that verifies under our public
 *     key over "{challenge_id}:{nonce}:{response_nonce}:{agent_did}", and
 *     never the secret key.
 * Seeds: fuzz/corpus/sidecar_routes/ (one byte 0..3, then JSON). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "sidecar/keystore.h"
#include "sidecar/routes.h"

static char dir[64];
static struct identity id;
static struct keystore *ks;

/* The identity directory lives in /tmp; remove it when the fuzzer exits. */
static void remove_dir(void) {
    const char *names[] = {"ed25519.key", "ed25519.pub", "did", "key-id", "rotation-proof"};
    char p[128];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
    keystore_free(ks);
    identity_wipe(&id);
}

static void init(void) {
    char err[256];
    log_set_level(LOG_ERROR);
    snprintf(dir, sizeof dir, "/tmp/fuzz_sidecar_routes.XXXXXX");
    if (identity_init() != 0 || !mkdtemp(dir) || identity_generate(&id) != 0 ||
        identity_save_dir(dir, &id, NULL, err, sizeof err) != 0 || !(ks = keystore_new(dir)) ||
        keystore_reload(ks, err, sizeof err) != 1 || atexit(remove_dir) != 0)
        abort();
}

static void check_error(const struct route_result *r) {
    const char *msg = json_str_at(r->body, "message");
    if (r->upstream || !json_str_at(r->body, "error") || !msg || !msg[0]) abort();
    if (r->code != 400 && r->code != 413 && r->code != 500 && r->code != 503) abort();
}

/* The 200 of /v1/respond: our DID, and a signature the verifier will accept. */
static void check_respond(const struct route_result *r, const char *body, size_t len) {
    char msg[512];
    unsigned char sig[ID_SIG_LEN];
    const char *did = json_str_at(r->body, "agent_did"), *rn = json_str_at(r->body, "response_nonce");
    const char *b64 = json_str_at(r->body, "signature");
    if (!did || strcmp(did, id.did) != 0 || !rn || !b64 || json_object_get(r->body, "secret_key")) abort();
    /* The route accepted the body, so it parses to challenge_id and nonce. */
    json_error_t jerr;
    json_t *in = json_loadb(body, len, 0, &jerr);
    if (!in) abort();
    int n = snprintf(msg, sizeof msg, "%s:%s:%s:%s", json_str_at(in, "challenge_id"), json_str_at(in, "nonce"),
                     rn, did);
    json_decref(in);
    if (n < 0 || (size_t)n >= sizeof msg || b64_decode_exact(b64, strlen(b64), sig, sizeof sig) != 0 ||
        identity_verify(id.pk, msg, (size_t)n, sig) != 0)
        abort();
}

/* A forwarded body holds what the controller's matching route requires. */
static void check_forward(const struct route_result *r, const char *want_path, const char *did_field) {
    if (r->code != 0 || !r->upstream || strcmp(r->upstream, want_path) != 0 || !json_is_object(r->body)) abort();
    if (!identity_did_valid(json_str_at(r->body, did_field))) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!ks) init();
    if (size < 1) return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    struct route_result r;
    switch (data[0] % 4) {
    case 0:
        route_challenge(body, len, &r);
        if (r.upstream) check_forward(&r, ROUTE_CHALLENGE_PATH, "agent_did");
        break;
    case 1:
        route_respond(ks, body, len, &r);
        if (r.code == 200) check_respond(&r, body, len);
        break;
    case 2:
        route_verify(body, len, &r);
        if (r.upstream) {
            check_forward(&r, ROUTE_VERIFY_PATH, "agent_did");
            if (!json_str_at(r.body, "challenge_id") || !json_str_at(r.body, "signature")) abort();
        }
        break;
    default:
        route_signals(ks, body, len, &r);
        if (r.upstream) {
            check_forward(&r, ROUTE_SIGNALS_PATH, "agent_did");
            if (!json_str_at(r.body, "dimension") || !json_str_at(r.body, "source")) abort();
        }
        break;
    }
    if (!r.upstream && r.code != 200) check_error(&r);
    json_decref(r.body);
    return 0;
}
