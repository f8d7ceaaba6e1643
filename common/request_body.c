/* request_body.c — the one checker of JSON request bodies, shared by the
 * sidecar's routes (sidecar/routes.c) and the controller's trust API
 * (controller/trust_api.c).
 *
 * Both sides take the same handshake and signal bodies, so they must refuse
 * bad input the same way: each route declares its fields in a table (name,
 * kind, required) and this walks the table, naming the field at fault.
 * Unknown fields are refused too: a typo such as "peerDid" should fail
 * loudly, not forward or act on an empty value. */
#include "common/request_body.h"

#include "common/identity.h"
#include "common/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The trust engine's dimension names (controller/trust_engine.c), in order. */
static const char *const dimensions[] = {"policyCompliance", "securityPosture", "outputQuality",
                                         "resourceEfficiency", "collaborationHealth"};

static int is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Token characters: no ':' (the signed text's separator), nothing to escape. */
static int is_token(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '-';
}

static int all_chars(const char *s, size_t n, int (*ok)(char)) {
    for (size_t i = 0; i < n; i++)
        if (!ok(s[i])) return 0;
    return 1;
}

static int is_dimension(const char *s) {
    for (size_t i = 0; s && i < sizeof dimensions / sizeof *dimensions; i++)
        if (strcmp(s, dimensions[i]) == 0) return 1;
    return 0;
}

/* Every string of 1..128 characters, at most 64 of them. */
static const char *check_caps(const json_t *v) {
    size_t i;
    json_t *cap;
    if (!json_is_array(v) || json_array_size(v) > 64) return "an array of at most 64 strings";
    json_array_foreach(v, i, cap) {
        if (!json_is_string(cap) || json_string_length(cap) == 0 || json_string_length(cap) > 128)
            return "an array of strings of 1..128 characters";
    }
    return NULL;
}

/* NULL when v is a valid value of kind k, else what it should be. Strings
 * are measured by their JSON length, so an embedded NUL (which the parser
 * lets through) never hides the rest of a value. */
static const char *check_value(const json_t *v, enum request_kind k) {
    const char *s = json_string_value(v);
    size_t n = s ? json_string_length(v) : 0;
    double x = json_is_number(v) ? json_number_value(v) : -1;
    size_t plen = strlen(RB_CHALLENGE_ID_PREFIX);
    unsigned char sig[ID_SIG_LEN];
    switch (k) {
    case RB_DID:
        return s && n == ID_DID_LEN && identity_did_valid(s) ? NULL : "a DID (did:mesh:<32 lower-case hex>)";
    case RB_TOKEN:
        return s && n >= 1 && n <= 64 && all_chars(s, n, is_token)
                   ? NULL : "a string of 1..64 letters, digits, '_' or '-'";
    case RB_CHALLENGE_ID:
        return s && n == RB_CHALLENGE_ID_LEN && strncmp(s, RB_CHALLENGE_ID_PREFIX, plen) == 0 &&
                       all_chars(s + plen, n - plen, is_hex)
                   ? NULL : "a challenge id (challenge_<16 hex>)";
    case RB_HEX:
        return s && n >= RB_HEX_MIN && n <= RB_HEX_MAX && all_chars(s, n, is_hex)
                   ? NULL : "a string of 16..128 hex digits";
    case RB_SIG:
        return s && b64_decode_exact(s, n, sig, sizeof sig) == 0
                   ? NULL : "the std base64 of a 64-byte Ed25519 signature";
    case RB_SCORE:
        return json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= RB_SCORE_MAX
                   ? NULL : "an integer in 0..1000";
    case RB_CAPS:
        return check_caps(v);
    case RB_DIMENSION:
        return s && n == strlen(s) && is_dimension(s) ? NULL
                                    : "one of policyCompliance, securityPosture, outputQuality, "
                                      "resourceEfficiency, collaborationHealth";
    case RB_UNIT:
        return x >= 0 && x <= 1 ? NULL : "a number in [0, 1]";
    case RB_WEIGHT:
        return x >= 0 && x <= 1000 ? NULL : "a number in [0, 1000]";
    case RB_TEXT:
        return s && n >= 1 && n <= 128 && !memchr(s, '\0', n) ? NULL : "a string of 1..128 characters";
    }
    return "a value of a known kind";
}

/* 0 when every key of obj is one of fields, else -1 with err naming the first other. */
static int known_keys(json_t *obj, const struct request_field *fields, size_t nfields, char *err,
                      size_t errlen) {
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        size_t i = 0;
        while (i < nfields && strcmp(fields[i].name, key) != 0) i++;
        if (i == nfields) {
            snprintf(err, errlen, "unknown field \"%.64s\"", key);
            return -1;
        }
    }
    return 0;
}

/* ---- flat objects ----------------------------------------------------------
 * What clients send is a flat object of plain strings and numbers, and
 * jansson's general lexer was a fifth of a signal's CPU besides its Ed25519
 * verify. flat_parse builds the same object for that subset only: strings
 * of printable ASCII without escapes, numbers in the JSON grammar, true,
 * false, null, JSON whitespace, no repeated key. Anything else — escapes,
 * UTF-8, nesting, an overflowing number, any error — returns NULL before
 * deciding anything, and json_parse then accepts or refuses it with its own
 * message: the fast path never changes an answer. */

struct cursor {
    const char *p, *end;
};

static void skip_ws(struct cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

/* A string of printable ASCII without escapes: its text and length, or NULL. */
static const char *flat_string(struct cursor *c, size_t *n) {
    if (c->p == c->end || *c->p != '"') return NULL;
    const char *s = ++c->p;
    while (c->p < c->end && *c->p != '"') {
        if (*c->p < 0x20 || *c->p > 0x7e || *c->p == '\\') return NULL;
        c->p++;
    }
    if (c->p == c->end) return NULL;
    *n = (size_t)(c->p++ - s);
    return s;
}

static int digit_run(struct cursor *c) {
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
    return c->p > start;
}

/* A number in the JSON grammar, as jansson makes it: an integer without a
 * fraction or exponent (here at most 18 digits, so strtoll cannot
 * overflow), else a real (NULL when it overflows). */
static json_t *flat_number(struct cursor *c) {
    const char *start = c->p;
    int real = 0;
    if (c->p < c->end && *c->p == '-') c->p++;
    if (c->p < c->end && *c->p == '0') c->p++;
    else if (!digit_run(c)) return NULL;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (!digit_run(c)) return NULL;
        real = 1;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
        if (!digit_run(c)) return NULL;
        real = 1;
    }
    char text[64];
    size_t n = (size_t)(c->p - start);
    if (n >= sizeof text || (!real && n > 18)) return NULL;
    memcpy(text, start, n);
    text[n] = '\0';
    if (!real) return json_integer((json_int_t)strtoll(text, NULL, 10));
    double v = strtod(text, NULL);
    return isinf(v) ? NULL : json_real(v);
}

static json_t *flat_value(struct cursor *c) {
    static const struct {
        const char *word;
        size_t len;
    } words[] = {{"true", 4}, {"false", 5}, {"null", 4}};
    size_t n;
    if (c->p == c->end) return NULL;
    if (*c->p == '"') {
        const char *s = flat_string(c, &n);
        return s ? json_stringn_nocheck(s, n) : NULL;
    }
    for (int i = 0; i < 3; i++)
        if ((size_t)(c->end - c->p) >= words[i].len && memcmp(c->p, words[i].word, words[i].len) == 0) {
            c->p += words[i].len;
            return i == 0 ? json_true() : i == 1 ? json_false() : json_null();
        }
    return flat_number(c);
}

/* Adds "key": value from the cursor to obj. 0, or -1 (outside the subset). */
static int flat_member(struct cursor *c, json_t *obj) {
    size_t klen;
    const char *key = flat_string(c, &klen);
    if (!key) return -1;
    skip_ws(c);
    if (c->p == c->end || *c->p++ != ':') return -1;
    skip_ws(c);
    json_t *v = flat_value(c);
    if (!v || json_object_getn(obj, key, klen)) {
        json_decref(v);
        return -1;
    }
    return json_object_setn_new_nocheck(obj, key, klen, v);
}

static json_t *flat_parse(const char *body, size_t len) {
    struct cursor c = {body, body + len};
    skip_ws(&c);
    if (c.p == c.end || *c.p++ != '{') return NULL;
    json_t *obj = json_object();
    skip_ws(&c);
    int ok = obj != NULL;
    if (ok && c.p < c.end && *c.p == '}') {
        c.p++;
    } else {
        while (ok) {
            ok = flat_member(&c, obj) == 0;
            skip_ws(&c);
            if (!ok || c.p == c.end) ok = 0;
            else if (*c.p == '}') break;
            else ok = *c.p++ == ',';
            skip_ws(&c);
        }
        c.p += ok;   /* the '}' */
    }
    skip_ws(&c);
    if (ok && c.p == c.end) return obj;
    json_decref(obj);
    return NULL;
}

json_t *request_body_json(const char *body, size_t len, char *err, size_t errlen) {
    json_t *obj = flat_parse(body, len);
    if (obj) return obj;
    char jerr[JSON_ERROR_TEXT_LENGTH + 40];   /* jansson's whole text and "line L col C: " */
    if ((obj = json_parse(body, len, jerr, sizeof jerr))) return obj;
    snprintf(err, errlen, "body is not valid JSON: %s", jerr);
    return NULL;
}

json_t *request_body_parse(const char *body, size_t len, const struct request_field *fields,
                           size_t nfields, char *err, size_t errlen) {
    json_t *obj = request_body_json(body, len, err, errlen);
    if (!obj) return NULL;
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "body must be a JSON object");
        json_decref(obj);
        return NULL;
    }
    if (known_keys(obj, fields, nfields, err, errlen) != 0) {
        json_decref(obj);
        return NULL;
    }
    for (size_t i = 0; i < nfields; i++) {
        json_t *v = json_object_get(obj, fields[i].name);
        const char *want = v ? check_value(v, fields[i].kind) : NULL;
        if (!v && fields[i].required) snprintf(err, errlen, "field \"%s\" is required", fields[i].name);
        else if (want) snprintf(err, errlen, "field \"%s\" must be %s", fields[i].name, want);
        else continue;
        json_decref(obj);
        return NULL;
    }
    return obj;
}
