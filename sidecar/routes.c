/* routes.c — request validation and the handshake signing of the sidecar's
 * routes (see routes.h).
 *
 * Each route declares its fields in a table (name, kind, required); one
 * checker walks the table, so every route rejects bad input the same way and
 * names the field at fault. Unknown fields are refused too: a typo such as
 * "peerDid" should fail loudly, not forward an empty value. */
#include "sidecar/routes.h"

#include "common/json.h"
#include "sidecar/config.h"

#include <math.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

enum kind { F_DID, F_TOKEN, F_HEX, F_SIG, F_SCORE, F_CAPS, F_DIMENSION, F_UNIT, F_WEIGHT, F_TEXT };

struct field {
    const char *name;
    enum kind kind;
    int required;
};

static const char *const dimensions[] = {"policyCompliance", "securityPosture", "outputQuality",
                                         "resourceEfficiency", "collaborationHealth"};

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

static int is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Challenge ids: no ':' (the signed text's separator), nothing to escape. */
static int is_token(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '_' || c == '-';
}

static int all_chars(const char *s, size_t n, int (*ok)(char)) {
    for (size_t i = 0; i < n; i++)
        if (!ok(s[i])) return 0;
    return 1;
}

/* NULL when v is a valid value of kind k, else what it should be. */
static const char *check_value(const json_t *v, enum kind k) {
    const char *s = json_string_value(v);
    size_t n = s ? json_string_length(v) : 0;
    switch (k) {
    case F_DID:
        return s && n == ID_DID_LEN && identity_did_valid(s) ? NULL
                                                             : "a DID (did:mesh:<32 lower-case hex>)";
    case F_TOKEN:
        return s && n >= 1 && n <= 64 && all_chars(s, n, is_token)
                   ? NULL : "a string of 1..64 letters, digits, '_' or '-'";
    case F_HEX:
        return s && n >= 16 && n <= 128 && all_chars(s, n, is_hex) ? NULL
                                                                  : "a string of 16..128 hex digits";
    case F_SIG: {
        unsigned char sig[ID_SIG_LEN];
        return s && b64_decode_exact(s, n, sig, sizeof sig) == 0
                   ? NULL : "the std base64 of a 64-byte Ed25519 signature";
    }
    case F_SCORE:
        return json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 1000
                   ? NULL : "an integer in 0..1000";
    case F_CAPS: {
        if (!json_is_array(v) || json_array_size(v) > 64) return "an array of at most 64 strings";
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c) {
            if (!json_is_string(c) || json_string_length(c) == 0 || json_string_length(c) > 128)
                return "an array of strings of 1..128 characters";
        }
        return NULL;
    }
    case F_DIMENSION:
        for (size_t i = 0; s && i < sizeof dimensions / sizeof *dimensions; i++)
            if (strcmp(s, dimensions[i]) == 0) return NULL;
        return "one of policyCompliance, securityPosture, outputQuality, resourceEfficiency, "
               "collaborationHealth";
    case F_UNIT:
        return json_is_number(v) && json_number_value(v) >= 0 && json_number_value(v) <= 1
                   ? NULL : "a number in [0, 1]";
    case F_WEIGHT:
        return json_is_number(v) && json_number_value(v) >= 0 && isfinite(json_number_value(v)) &&
                       json_number_value(v) <= 1000
                   ? NULL : "a number in [0, 1000]";
    case F_TEXT:
        return s && n >= 1 && n <= 128 && !memchr(s, '\0', n) ? NULL
                                                             : "a string of 1..128 characters";
    }
    return "valid";
}

/* Parses body as a JSON object holding only `fields`, each well-formed.
 * Returns the object (owned) or NULL with out filled with the 400/413. */
static json_t *parse_body(const char *body, size_t len, const struct field *fields, size_t nfields,
                          struct route_result *out) {
    char err[200];
    if (len > SIDECAR_MAX_BODY) {
        fail(out, 413, "PayloadTooLarge", "body of %zu bytes is over the %d-byte limit", len,
             SIDECAR_MAX_BODY);
        return NULL;
    }
    json_t *obj = json_parse(body, len, err, sizeof err);
    if (!obj) {
        fail(out, 400, "BadRequest", "body is not valid JSON: %s", err);
        return NULL;
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        fail(out, 400, "BadRequest", "body must be a JSON object");
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        size_t i = 0;
        while (i < nfields && strcmp(fields[i].name, key) != 0) i++;
        if (i == nfields) {
            fail(out, 400, "BadRequest", "unknown field \"%.64s\"", key);
            json_decref(obj);
            return NULL;
        }
    }
    for (size_t i = 0; i < nfields; i++) {
        v = json_object_get(obj, fields[i].name);
        const char *want = v ? check_value(v, fields[i].kind) : NULL;
        if (!v && fields[i].required) {
            fail(out, 400, "BadRequest", "field \"%s\" is required", fields[i].name);
        } else if (want) {
            fail(out, 400, "BadRequest", "field \"%s\" must be %s", fields[i].name, want);
        } else {
            continue;
        }
        json_decref(obj);
        return NULL;
    }
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
    static const struct field fields[] = {{"peer_did", F_DID, 1}};
    memset(out, 0, sizeof *out);
    json_t *in = parse_body(body, len, fields, 1, out);
    if (!in) return;
    forward(out, ROUTE_CHALLENGE_PATH, json_pack("{s:O}", "agent_did", json_object_get(in, "peer_did")));
    json_decref(in);
}

void route_respond(struct keystore *ks, const char *body, size_t len, struct route_result *out) {
    static const struct field fields[] = {{"challenge_id", F_TOKEN, 1}, {"nonce", F_HEX, 1}};
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
    static const struct field fields[] = {
        {"challenge_id", F_TOKEN, 1}, {"agent_did", F_DID, 1},
        {"response_nonce", F_HEX, 1}, {"signature", F_SIG, 1},
        {"required_score", F_SCORE, 0}, {"required_capabilities", F_CAPS, 0},
    };
    memset(out, 0, sizeof *out);
    json_t *in = parse_body(body, len, fields, sizeof fields / sizeof *fields, out);
    if (in) forward(out, ROUTE_VERIFY_PATH, in);
}

void route_signals(struct keystore *ks, const char *body, size_t len, struct route_result *out) {
    static const struct field fields[] = {
        {"agent_did", F_DID, 0}, {"dimension", F_DIMENSION, 1}, {"value", F_UNIT, 1},
        {"weight", F_WEIGHT, 0}, {"source", F_TEXT, 0},
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
