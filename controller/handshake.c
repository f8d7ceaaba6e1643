/* handshake.c — the challenge/response handshake of DESIGN §5, without HTTP.
 *
 * A challenge is a random id and nonce, stored in the trust store as
 * "<agent_did> <nonce>" with a TTL; verifying takes it out of the store
 * (atomic, so a challenge is used once even across replicas) and then
 * decides from the registry's record and the store's score alone. The
 * HTTP side (trust_api.c) only parses bodies and formats the result. */
#include "controller/trust_api.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Stored value: DID, one space, nonce. */
#define CHALLENGE_VALUE_LEN (ID_DID_LEN + 1 + HANDSHAKE_NONCE_LEN)
_Static_assert(HANDSHAKE_VALUE_BUFSZ == CHALLENGE_VALUE_LEN + 1, "trust_api.h's HANDSHAKE_VALUE_BUFSZ");
#define CHALLENGE_ID_BYTES 8
#define CHALLENGE_NONCE_BYTES (HANDSHAKE_NONCE_LEN / 2)

int trust_api_state_of(struct trust_store *s, const struct agent_record *rec, int64_t now_ms,
                       struct trust_state *out, char *err, size_t errlen) {
    int rc = s->get(s, rec->did, out, err, errlen);
    if (rc != TS_NOT_FOUND) return rc;
    return trust_state_init(out, rec->initial_score, &rec->params, now_ms, err, errlen) == 0
               ? TS_OK : TS_INVALID;
}

int handshake_draw(const char *agent_did, struct handshake_challenge *out, char value[HANDSHAKE_VALUE_BUFSZ],
                   char *err, size_t errlen) {
    /* One draw for both: each randombytes_buf is a getrandom(2). */
    unsigned char rnd[CHALLENGE_ID_BYTES + CHALLENGE_NONCE_BYTES];
    randombytes_buf(rnd, sizeof rnd);
    memcpy(out->id, HANDSHAKE_ID_PREFIX, sizeof HANDSHAKE_ID_PREFIX);
    sodium_bin2hex(out->id + sizeof HANDSHAKE_ID_PREFIX - 1, sizeof out->id - (sizeof HANDSHAKE_ID_PREFIX - 1), rnd,
                   CHALLENGE_ID_BYTES);
    sodium_bin2hex(out->nonce, sizeof out->nonce, rnd + CHALLENGE_ID_BYTES, CHALLENGE_NONCE_BYTES);
    if (snprintf(value, HANDSHAKE_VALUE_BUFSZ, "%s %s", agent_did, out->nonce) != CHALLENGE_VALUE_LEN) {
        snprintf(err, errlen, "agent_did: not a DID");
        return -1;
    }
    return 0;
}

int handshake_issue(struct trust_store *s, const char *agent_did, int64_t ttl_ms,
                    struct handshake_challenge *out, char *err, size_t errlen) {
    char value[HANDSHAKE_VALUE_BUFSZ];
    /* 64 random bits collide only by accident; a second draw settles it. */
    for (int attempt = 0; attempt < 2; attempt++) {
        if (handshake_draw(agent_did, out, value, err, errlen) != 0) return TS_INVALID;
        int rc = s->put_challenge(s, out->id, value, ttl_ms, err, errlen);
        if (rc != TS_EXISTS) return rc;
    }
    snprintf(err, errlen, "challenge id collision twice in a row");
    return TS_UNAVAILABLE;
}

static void reject(struct handshake_result *out, int policy, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reject(struct handshake_result *out, int policy, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof out->reason, fmt, ap);
    va_end(ap);
    out->verified = 0;
    out->policy = policy;
}

/* 1 when sig is rec's signature over msg: current key, or previous key in its grace. */
static int signed_by(const struct agent_record *rec, const char *msg, size_t len,
                     const unsigned char sig[ID_SIG_LEN], int64_t now_ms) {
    if (identity_verify(rec->pub, msg, len, sig) == 0) return 1;
    const unsigned char *prev = agent_record_grace_key(rec, now_ms);
    return prev && identity_verify(prev, msg, len, sig) == 0;
}

/* The first required capability rec lacks, or NULL. */
static const char *missing_capability(const struct agent_record *rec, const json_t *required) {
    size_t i, j;
    json_t *want, *have;
    json_array_foreach(required, i, want) {
        int found = 0;
        json_array_foreach(rec->capabilities, j, have)
            if (json_equal(want, have)) found = 1;
        if (!found) return json_string_value(want);
    }
    return NULL;
}

/* 1 when the stored challenge value "<did> <nonce>" names agent_did. */
static int issued_for(const char *value, const char *agent_did) {
    return strlen(value) == CHALLENGE_VALUE_LEN && value[ID_DID_LEN] == ' ' &&
           strlen(agent_did) == ID_DID_LEN && strncmp(value, agent_did, ID_DID_LEN) == 0;
}

int handshake_decide(struct agent_registry *reg, const struct handshake_request *req, const char *challenge,
                     const struct trust_state *stored, int64_t now_ms, struct handshake_result *out, char *err,
                     size_t errlen) {
    memset(out, 0, sizeof *out);
    struct agent_record rec;
    struct trust_state st;
    if (agent_registry_get(reg, req->agent_did, &rec) == 0) {
        if (stored) st = *stored;
        else if (trust_state_init(&st, rec.initial_score, &rec.params, now_ms, err, errlen) != 0) {
            agent_record_clear(&rec);
            return -1;
        }
        out->known = 1;
        out->capabilities = json_incref(rec.capabilities);
        out->score = trust_score(&st, now_ms);
        out->tier = trust_tier_of(out->score);
    }
    char msg[512];
    int ours = challenge && issued_for(challenge, req->agent_did), n = -1;
    if (ours)
        n = snprintf(msg, sizeof msg, "%s:%s:%s:%s", req->challenge_id, challenge + ID_DID_LEN + 1,
                     req->response_nonce, req->agent_did);
    const char *cap = NULL;
    if (!challenge)
        reject(out, 0, "challenge %s is unknown, expired or already used", req->challenge_id);
    else if (!ours)
        reject(out, 0, "challenge %s was issued for another agent", req->challenge_id);
    else if (!out->known)
        reject(out, 0, "unknown agent %s", req->agent_did);
    else if (n < 0 || (size_t)n >= sizeof msg || !signed_by(&rec, msg, (size_t)n, req->signature, now_ms))
        reject(out, 0, "signature does not verify under agent %s's registered key", req->agent_did);
    else if (strcmp(rec.phase, "Revoked") == 0 || strcmp(rec.phase, "Quarantined") == 0)
        reject(out, 1, "agent %s is %s", rec.did, rec.phase);
    else if (out->score < req->bar)
        reject(out, 1, "trust score %d is below the required %d", out->score, req->bar);
    else if (req->required_capabilities && (cap = missing_capability(&rec, req->required_capabilities)))
        reject(out, 1, "agent lacks the required capability \"%.128s\"", cap);
    else
        out->verified = 1;
    if (out->known) agent_record_clear(&rec);
    return 0;
}

int handshake_verify(struct trust_store *s, struct agent_registry *reg,
                     const struct handshake_request *req, int64_t now_ms,
                     struct handshake_result *out, char *err, size_t errlen) {
    char value[HANDSHAKE_VALUE_BUFSZ];
    struct trust_state st;
    memset(out, 0, sizeof *out);
    int taken = s->take_challenge(s, req->challenge_id, value, sizeof value, err, errlen);
    if (taken == TS_UNAVAILABLE) return -1;
    int got = s->get(s, req->agent_did, &st, err, errlen);
    if (got != TS_OK && got != TS_NOT_FOUND) return -1;
    return handshake_decide(reg, req, taken == TS_OK ? value : NULL, got == TS_OK ? &st : NULL, now_ms, out, err,
                            errlen);
}

void handshake_result_clear(struct handshake_result *r) {
    json_decref(r->capabilities);
    r->capabilities = NULL;
}
