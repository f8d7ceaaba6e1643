/* fuzz_trust_api.c — libFuzzer target for the trust API's request bodies and
 * what runs on them, without sockets.
 *
 * The first byte picks the route (challenge, verify, signal); the rest is
 * the body. Checks, beyond "no crash": a refused body always gets a reason
 * that can itself go into a JSON reply (valid UTF-8);
 * an accepted one holds every required field; a verify decided against a
 * live challenge is never "verified" (the fuzzer cannot forge Ed25519) and
 * always says why; a signal that the store accepts leaves every dimension
 * within 0..100 and the score within 0..1000. Seeds: fuzz/corpus/trust_api/
 * (one byte 0/1/2, then JSON). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "controller/trust_api.h"

/* The agent every seed names, and the challenge id the verify seeds use. */
#define FUZZ_DID "did:mesh:00112233445566778899aabbccddeeff"
#define FUZZ_CHALLENGE "challenge_0123456789abcdef"

static struct agent_registry *reg;
static struct trust_store *store;

static void init(void) {
    struct agent_record rec;
    memset(&rec, 0, sizeof rec);
    snprintf(rec.ns, sizeof rec.ns, "fuzz");
    snprintf(rec.name, sizeof rec.name, "target");
    snprintf(rec.did, sizeof rec.did, FUZZ_DID);
    memset(rec.pub, 0x42, sizeof rec.pub);
    snprintf(rec.phase, sizeof rec.phase, "Active");
    rec.initial_score = 500;
    trust_params_default(&rec.params);
    rec.capabilities = json_pack("[s]", "read:data");
    log_set_level(LOG_ERROR);
    reg = agent_registry_new();
    store = trust_store_memory_new(NULL);
    if (identity_init() != 0 || !reg || !store || !rec.capabilities || agent_registry_put(reg, &rec) != 0) abort();
    agent_record_clear(&rec);
}

static void run_verify(const json_t *in) {
    char err[256];
    const char *sig = json_str_at(in, "signature");
    struct handshake_request req = {
        .challenge_id = json_str_at(in, "challenge_id"),
        .agent_did = json_str_at(in, "agent_did"),
        .response_nonce = json_str_at(in, "response_nonce"),
        .bar = (int)json_int_at(in, "required_score", 0),
        .required_capabilities = json_object_get(in, "required_capabilities"),
    };
    if (!req.challenge_id || !req.agent_did || !req.response_nonce || !sig ||
        b64_decode_exact(sig, strlen(sig), req.signature, sizeof req.signature) != 0)
        abort();   /* the parser promised all of these */
    /* A live challenge for the fuzz agent, so the decision runs to the signature check. */
    int rc = store->put_challenge(store, FUZZ_CHALLENGE,
                                  FUZZ_DID " 0000000000000000000000000000000000000000000000000000000000000000",
                                  60000, err, sizeof err);
    if (rc != TS_OK && rc != TS_EXISTS) abort();
    struct handshake_result res;
    if (handshake_verify(store, reg, &req, 1700000000000LL, &res, err, sizeof err) != 0) abort();
    if (res.verified || !res.reason[0]) abort();
    if (res.known && (res.score < 0 || res.score > 1000 || !json_is_array(res.capabilities))) abort();
    handshake_result_clear(&res);
}

static void run_signal(const json_t *in) {
    char err[256];
    struct trust_state st;
    struct trust_signal sig = {.value = json_num_at(in, "value", -1), .weight = json_num_at(in, "weight", 1),
                               .at_ms = 1700000000000LL};
    if (trust_dim_parse(json_str_at(in, "dimension"), &sig.dim) != 0 || !json_str_at(in, "source")) abort();
    if (strcmp(json_str_at(in, "agent_did"), FUZZ_DID) != 0) return;
    if (store->get(store, FUZZ_DID, &st, err, sizeof err) == TS_NOT_FOUND &&
        (trust_state_init(&st, 500, NULL, sig.at_ms, err, sizeof err) != 0 ||
         store->create(store, FUZZ_DID, &st, err, sizeof err) != TS_OK))
        abort();
    if (trust_store_apply(store, FUZZ_DID, &sig, &st, err, sizeof err) != TS_OK) return;
    for (int d = 0; d < TRUST_DIM_COUNT; d++)
        if (!(st.dims[d] >= 0 && st.dims[d] <= 100)) abort();
    int score = trust_score(&st, sig.at_ms);
    if (score < 0 || score > 1000) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!reg) init();
    if (size < 1) return 0;
    enum trust_api_body which = (enum trust_api_body)(data[0] % 3);
    char err[256] = "";
    json_t *in = trust_api_parse_body(which, (const char *)data + 1, size - 1, err, sizeof err);
    if (!in) {
        json_t *msg = json_string(err);   /* the 400's message must be valid UTF-8 */
        if (!err[0] || !msg) abort();
        json_decref(msg);
        return 0;
    }
    if (!json_is_object(in) || !json_str_at(in, "agent_did") || !identity_did_valid(json_str_at(in, "agent_did")))
        abort();
    if (which == TRUST_API_BODY_VERIFY) run_verify(in);
    else if (which == TRUST_API_BODY_SIGNAL) run_signal(in);
    json_decref(in);
    return 0;
}
