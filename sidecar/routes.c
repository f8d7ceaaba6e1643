/* routes.c — request validation and the handshake signing of the sidecar's
 * routes (see routes.h).
 *
 * Each route declares its fields in a table (name, kind, required) checked
 * by common/request_body.c, the same checker the controller's trust API
 * uses, so both refuse bad input the same way and name the field at fault.
 * Unknown fields are refused too: a typo such as "peerDid" should fail
 * loudly, not forward an empty value. */
#include "sidecar/routes.h"

#include "common/json.h"
#include "common/request_body.h"
#include "sidecar/config.h"

#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static void fail(struct route_result *out, int code, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(struct route_result *out, int code, const char *reason, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_decref(out->body);
    out->code = code;
    out->upstream = NULL;
    out->body = json_pack("{s:s, s:s}", "error", reason, "message", msg);
}

/* Parses body as a JSON object holding only `fields`, each well-formed
 * (common/request_body.h). Returns the object (owned) or NULL with out
 * filled with the 400/413. */
static json_t *parse_body(const char *body, size_t len, const struct request_field *fields,
                          size_t nfields, struct route_result *out) {
    char err[256];
    if (len > SIDECAR_MAX_BODY) {
        fail(out, 413, "PayloadTooLarge", "body of %zu bytes is over the %d-byte limit", len,
             SIDECAR_MAX_BODY);
        return NULL;
    }
    json_t *obj = request_body_parse(body, len, fields, nfields, err, sizeof err);
    if (!obj) fail(out, 400, "BadRequest", "%s", err);
    return obj;
}

static void forward(struct route_result *out, const char *path, json_t *body) {
    if (!body) {
        fail(out, 500, "InternalError", "out of memory");
        return;
    }
    out->code = 0;
    out->upstream = path;
    out->body = body;
}

/* Reply 503 when no identity is loaded; 0 when ks gave us the names. */
static int need_identity(struct keystore *ks, struct keystore_public *pub, struct route_result *out) {
    if (keystore_public(ks, pub) == 0) return 0;
    fail(out, 503, "ServiceUnavailable", "no identity loaded yet (see the sidecar's log)");
    return -1;
}

void route_identity(struct keystore *ks, const char *agent, struct route_result *out) {
    struct keystore_public pub;
    memset(out, 0, sizeof *out);
    if (need_identity(ks, &pub, out) != 0) return;
    out->code = 200;
    out->body = json_pack("{s:s, s:s, s:s, s:s}", "did", pub.did, "key_id", pub.key_id,
                          "public_key", pub.pub_b64, "agent", agent ? agent : "");
    if (!out->body) fail(out, 500, "InternalError", "out of memory");
}

void route_challenge(const char *body, size_t len, struct route_result *out) {
    static const struct request_field fields[] = {{"peer_did", RB_DID, 1}};
    memset(out, 0, sizeof *out);
    json_t *in = parse_body(body, len, fields, 1, out);
    if (!in) return;
    forward(out, ROUTE_CHALLENGE_PATH, json_pack("{s:O}", "agent_did", json_object_get(in, "peer_did")));
    json_decref(in);
}

void route_respond(struct keystore *ks, const char *body, size_t len, struct route_result *out) {
    static const struct request_field fields[] = {{"challenge_id", RB_TOKEN, 1}, {"nonce", RB_HEX, 1}};
    struct keystore_public pub;
    memset(out, 0, sizeof *out);
    json_t *in = parse_body(body, len, fields, 2, out);
    if (!in) return;
    if (need_identity(ks, &pub, out) != 0) {
        json_decref(in);
        return;
    }
    unsigned char rnd[32], sig[ID_SIG_LEN];
    char rhex[2 * sizeof rnd + 1], sig_b64[ID_SIG_B64_BUFSZ], msg[512];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(rhex, sizeof rhex, rnd, sizeof rnd);
    /* Fields are bounded and ':'-free (checked above), so the text is unambiguous. */
    int n = snprintf(msg, sizeof msg, "%s:%s:%s:%s", json_string_value(json_object_get(in, "challenge_id")),
                     json_string_value(json_object_get(in, "nonce")), rhex, pub.did);
    json_decref(in);
    if (n < 0 || (size_t)n >= sizeof msg || keystore_sign(ks, msg, (size_t)n, sig) != 0 ||
        b64_encode(sig, sizeof sig, sig_b64, sizeof sig_b64) != 0) {
        fail(out, 503, "ServiceUnavailable", "cannot sign: no identity loaded");
        return;
    }
    out->code = 200;
    out->body = json_pack("{s:s, s:s, s:s, s:s}", "agent_did", pub.did, "key_id", pub.key_id,
                          "response_nonce", rhex, "signature", sig_b64);
    if (!out->body) fail(out, 500, "InternalError", "out of memory");
}

void route_verify(const char *body, size_t len, struct route_result *out) {
    static const struct request_field fields[] = {
        {"challenge_id", RB_TOKEN, 1}, {"agent_did", RB_DID, 1},
        {"response_nonce", RB_HEX, 1}, {"signature", RB_SIG, 1},
        {"required_score", RB_SCORE, 0}, {"required_capabilities", RB_CAPS, 0},
    };
    memset(out, 0, sizeof *out);
    json_t *in = parse_body(body, len, fields, sizeof fields / sizeof *fields, out);
    if (in) forward(out, ROUTE_VERIFY_PATH, in);
}

void route_signals(struct keystore *ks, const char *body, size_t len, struct route_result *out) {
    static const struct request_field fields[] = {
        {"agent_did", RB_DID, 0}, {"dimension", RB_DIMENSION, 1}, {"value", RB_UNIT, 1},
        {"weight", RB_WEIGHT, 0}, {"source", RB_TEXT, 0},
    };
    struct keystore_public pub;
    memset(out, 0, sizeof *out);
    json_t *in = parse_body(body, len, fields, sizeof fields / sizeof *fields, out);
    if (!in) return;
    if (!json_object_get(in, "agent_did")) {
        if (need_identity(ks, &pub, out) != 0) {
            json_decref(in);
            return;
        }
        if (json_object_set_new(in, "agent_did", json_string(pub.did)) != 0) {
            json_decref(in);
            in = NULL;
        }
    }
    if (in && !json_object_get(in, "source") &&
        json_object_set_new(in, "source", json_string("agentmesh-sidecar")) != 0) {
        json_decref(in);
        in = NULL;
    }
    forward(out, ROUTE_SIGNALS_PATH, in);
}
