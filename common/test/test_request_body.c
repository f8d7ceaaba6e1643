/* test_request_body.c — the shared request body checker: each value kind's
 * accepted and refused values, and every error text (not JSON, not an
 * object, duplicate and unknown keys, missing and malformed fields). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/identity.h"
#include "common/json.h"
#include "common/request_body.h"
#include "common/test/check_run.h"

#define DID "did:mesh:00112233445566778899aabbccddeeff"

/* A JSON string of n copies of c, quoted, in buf. */
static const char *repeat(char *buf, size_t size, char c, size_t n) {
    ck_assert_uint_lt(n + 2, size);
    buf[0] = '"';
    memset(buf + 1, c, n);
    buf[n + 1] = '"';
    buf[n + 2] = '\0';
    return buf;
}

/* Parses {"f": value} against one field of kind k; the error or "" when accepted. */
static const char *check_one(enum request_kind k, const char *value) {
    static char err[256];
    char body[4096];
    const struct request_field f = {"f", k, 1};
    int n = snprintf(body, sizeof body, "{\"f\":%s}", value);
    ck_assert(n > 0 && (size_t)n < sizeof body);
    strcpy(err, "untouched");
    json_t *obj = request_body_parse(body, (size_t)n, &f, 1, err, sizeof err);
    if (!obj) return err;
    ck_assert(json_is_object(obj));
    ck_assert_uint_eq(json_object_size(obj), 1);
    json_decref(obj);
    return "";
}

/* Asserts value of kind k is accepted (want NULL) or refused with exactly
 * `field "f" must be <want>`. */
static void expect(enum request_kind k, const char *value, const char *want) {
    char msg[256] = "";
    if (want) snprintf(msg, sizeof msg, "field \"f\" must be %s", want);
    ck_assert_msg(strcmp(check_one(k, value), msg) == 0, "kind %d, %s: got \"%s\", want \"%s\"", (int)k,
                  value, check_one(k, value), msg);
}

/* What each kind says it wants, in "field \"f\" must be <want>". */
#define W_DID "a DID (did:mesh:<32 lower-case hex>)"
#define W_TOKEN "a string of 1..64 letters, digits, '_' or '-'"
#define W_CHALLENGE "a challenge id (challenge_<16 hex>)"
#define W_HEX "a string of 16..128 hex digits"
#define W_SIG "the std base64 of a 64-byte Ed25519 signature"
#define W_SCORE "an integer in 0..1000"
#define W_FEW_CAPS "an array of at most 64 strings"
#define W_CAP_STRINGS "an array of strings of 1..128 characters"
#define W_DIMENSION \
    "one of policyCompliance, securityPosture, outputQuality, resourceEfficiency, collaborationHealth"
#define W_UNIT "a number in [0, 1]"
#define W_WEIGHT "a number in [0, 1000]"
#define W_TEXT "a string of 1..128 characters"

/* One value of one kind: accepted when want is NULL, else refused with want. */
static const struct {
    enum request_kind kind;
    const char *value;
    const char *want;
} values[] = {
    {RB_DID, "\"" DID "\"", NULL},
    {RB_DID, "\"did:mesh:00112233445566778899AABBCCDDEEFF\"", W_DID},
    {RB_DID, "\"did:mesh:00112233445566778899aabbccddeef\"", W_DID},
    {RB_DID, "\"did:mesh:00112233445566778899aabbccddeeff0\"", W_DID},
    {RB_DID, "\"did:web:00112233445566778899aabbccddeeff\"", W_DID},
    {RB_DID, "\"" DID "\\u0000\"", W_DID},
    {RB_DID, "\"\"", W_DID},
    {RB_DID, "42", W_DID},
    {RB_DID, "null", W_DID},

    {RB_TOKEN, "\"c\"", NULL},
    {RB_TOKEN, "\"challenge_1\"", NULL},
    {RB_TOKEN, "\"Az-09_\"", NULL},
    {RB_TOKEN, "\"\"", W_TOKEN},
    {RB_TOKEN, "\"a:b\"", W_TOKEN},
    {RB_TOKEN, "\"a b\"", W_TOKEN},
    {RB_TOKEN, "\"a\\u0000b\"", W_TOKEN},
    {RB_TOKEN, "7", W_TOKEN},

    {RB_CHALLENGE_ID, "\"challenge_0123456789abcdef\"", NULL},
    {RB_CHALLENGE_ID, "\"challenge_0123456789ABCDEF\"", NULL},
    {RB_CHALLENGE_ID, "\"challenge_0123456789abcde\"", W_CHALLENGE},
    {RB_CHALLENGE_ID, "\"challenge_0123456789abcdef0\"", W_CHALLENGE},
    {RB_CHALLENGE_ID, "\"challenge_0123456789abcdeg\"", W_CHALLENGE},
    {RB_CHALLENGE_ID, "\"Challenge_0123456789abcdef\"", W_CHALLENGE},
    {RB_CHALLENGE_ID, "\"challenge_0123456789abcde\\u0000\"", W_CHALLENGE},
    {RB_CHALLENGE_ID, "\"c\"", W_CHALLENGE},
    {RB_CHALLENGE_ID, "1", W_CHALLENGE},

    {RB_HEX, "\"0123456789abcdef\"", NULL},
    {RB_HEX, "\"0123456789ABCDEFabcdef\"", NULL},
    {RB_HEX, "\"0123456789abcde\"", W_HEX},
    {RB_HEX, "\"zz112233445566778899\"", W_HEX},
    {RB_HEX, "\"0123456789abcdef\\u0000\"", W_HEX},
    {RB_HEX, "null", W_HEX},

    {RB_SIG, "\"\"", W_SIG},
    {RB_SIG, "64", W_SIG},

    {RB_SCORE, "0", NULL},
    {RB_SCORE, "700", NULL},
    {RB_SCORE, "1000", NULL},
    {RB_SCORE, "-1", W_SCORE},
    {RB_SCORE, "1001", W_SCORE},
    {RB_SCORE, "700.0", W_SCORE},
    {RB_SCORE, "\"700\"", W_SCORE},
    {RB_SCORE, "true", W_SCORE},

    {RB_CAPS, "[]", NULL},
    {RB_CAPS, "[\"read:data\",\"write:reports\"]", NULL},
    {RB_CAPS, "\"read:data\"", W_FEW_CAPS},
    {RB_CAPS, "{}", W_FEW_CAPS},
    {RB_CAPS, "[\"\"]", W_CAP_STRINGS},
    {RB_CAPS, "[\"a\",1]", W_CAP_STRINGS},
    {RB_CAPS, "[null]", W_CAP_STRINGS},

    {RB_DIMENSION, "\"policyCompliance\"", NULL},
    {RB_DIMENSION, "\"securityPosture\"", NULL},
    {RB_DIMENSION, "\"outputQuality\"", NULL},
    {RB_DIMENSION, "\"resourceEfficiency\"", NULL},
    {RB_DIMENSION, "\"collaborationHealth\"", NULL},
    {RB_DIMENSION, "\"PolicyCompliance\"", W_DIMENSION},
    {RB_DIMENSION, "\"policyCompliance \"", W_DIMENSION},
    {RB_DIMENSION, "\"policyCompliance\\u0000x\"", W_DIMENSION},   /* an embedded NUL must not hide the rest */
    {RB_DIMENSION, "\"\"", W_DIMENSION},
    {RB_DIMENSION, "3", W_DIMENSION},

    {RB_UNIT, "0", NULL},
    {RB_UNIT, "0.5", NULL},
    {RB_UNIT, "1", NULL},
    {RB_UNIT, "1.0", NULL},
    {RB_UNIT, "-0.001", W_UNIT},
    {RB_UNIT, "1.0001", W_UNIT},
    {RB_UNIT, "\"0.5\"", W_UNIT},
    {RB_UNIT, "null", W_UNIT},

    {RB_WEIGHT, "0", NULL},
    {RB_WEIGHT, "2.5", NULL},
    {RB_WEIGHT, "1000", NULL},
    {RB_WEIGHT, "-1", W_WEIGHT},
    {RB_WEIGHT, "1000.5", W_WEIGHT},
    {RB_WEIGHT, "\"1\"", W_WEIGHT},
    {RB_WEIGHT, "false", W_WEIGHT},

    {RB_TEXT, "\"agentmesh-sidecar\"", NULL},
    {RB_TEXT, "\"\"", W_TEXT},
    {RB_TEXT, "\"a\\u0000b\"", W_TEXT},
    {RB_TEXT, "5", W_TEXT},
};

#define COUNT(a) (sizeof(a) / sizeof *(a))

START_TEST(value_of_kind) {
    expect(values[_i].kind, values[_i].value, values[_i].want);
}
END_TEST

/* A string of n copies of c (in an array for RB_CAPS), either side of a limit. */
static const struct {
    enum request_kind kind;
    char c;
    size_t n;
    const char *want;
} lengths[] = {
    {RB_TOKEN, 'x', 64, NULL},        {RB_TOKEN, 'x', 65, W_TOKEN},
    {RB_HEX, 'f', 128, NULL},         {RB_HEX, 'f', 129, W_HEX},
    {RB_CAPS, 'c', 128, NULL},        {RB_CAPS, 'c', 129, W_CAP_STRINGS},
    {RB_TEXT, 't', 128, NULL},        {RB_TEXT, 't', 129, W_TEXT},
};

START_TEST(length_limits) {
    char s[200], value[210];
    snprintf(value, sizeof value, lengths[_i].kind == RB_CAPS ? "[%s]" : "%s",
             repeat(s, sizeof s, lengths[_i].c, lengths[_i].n));
    expect(lengths[_i].kind, value, lengths[_i].want);
}
END_TEST

/* Built from b64_encode: 64 bytes in std base64 and the near misses. */
START_TEST(sig) {
    unsigned char bytes[ID_SIG_LEN + 1];
    char b64[ID_SIG_B64_BUFSZ + 8], value[ID_SIG_B64_BUFSZ + 16];
    memset(bytes, 0xfb, sizeof bytes);    /* 0xfb... encodes with '+' and '/' */
    ck_assert_int_eq(b64_encode(bytes, ID_SIG_LEN, b64, sizeof b64), 0);
    snprintf(value, sizeof value, "\"%s\"", b64);
    expect(RB_SIG, value, NULL);
    ck_assert_ptr_nonnull(strchr(b64, '+'));
    for (char *p = b64; *p; p++) {        /* the URL-safe alphabet is not std base64 */
        if (*p == '+') *p = '-';
        if (*p == '/') *p = '_';
    }
    snprintf(value, sizeof value, "\"%s\"", b64);
    expect(RB_SIG, value, W_SIG);
    ck_assert_int_eq(b64_encode(bytes, ID_SIG_LEN - 1, b64, sizeof b64), 0);
    snprintf(value, sizeof value, "\"%s\"", b64);
    expect(RB_SIG, value, W_SIG);
    ck_assert_int_eq(b64_encode(bytes, ID_SIG_LEN + 1, b64, sizeof b64), 0);
    snprintf(value, sizeof value, "\"%s\"", b64);
    expect(RB_SIG, value, W_SIG);
}
END_TEST

START_TEST(caps_count) {
    char list[64 * 6 + 16];
    size_t n = 0;
    list[n++] = '[';
    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s\"c%d\"", i ? "," : "", i % 10);
    snprintf(list + n, sizeof list - n, "]");
    expect(RB_CAPS, list, NULL);
    snprintf(list + n, sizeof list - n, ",\"x\"]");
    expect(RB_CAPS, list, W_FEW_CAPS);
}
END_TEST

static const struct request_field two[] = {{"a", RB_DID, 1}, {"b", RB_UNIT, 0}};

/* The error for body against `two`, asserting it was refused. */
static const char *refused(const char *body, size_t len) {
    static char err[256];
    strcpy(err, "untouched");
    json_t *obj = request_body_parse(body, len, two, 2, err, sizeof err);
    ck_assert_msg(obj == NULL, "accepted %.*s", (int)len, body);
    return err;
}

#define S(x) (x), strlen(x)

START_TEST(body_errors) {
    const char *e = refused(S("{\"a\":"));
    ck_assert_msg(strncmp(e, "body is not valid JSON: line 1 col ", 35) == 0, "%s", e);
    e = refused("", 0);
    ck_assert_msg(strncmp(e, "body is not valid JSON: ", 24) == 0, "%s", e);
    ck_assert_str_eq(refused(S("[1,2]")), "body must be a JSON object");
    ck_assert_str_eq(refused(S("[]")), "body must be a JSON object");
    e = refused(S("\"" DID "\""));   /* jansson refuses a scalar root itself */
    ck_assert_msg(strncmp(e, "body is not valid JSON: ", 24) == 0, "%s", e);
    e = refused(S("{\"a\":\"" DID "\",\"a\":\"" DID "\"}"));
    ck_assert_msg(strncmp(e, "body is not valid JSON: ", 24) == 0 && strstr(e, "duplicate"), "%s", e);
    ck_assert_str_eq(refused(S("{\"a\":\"" DID "\",\"peerDid\":1}")), "unknown field \"peerDid\"");
    ck_assert_str_eq(refused(S("{}")), "field \"a\" is required");
    ck_assert_str_eq(refused(S("{\"b\":0.5}")), "field \"a\" is required");
    ck_assert_str_eq(refused(S("{\"a\":\"x\"}")), "field \"a\" must be a DID (did:mesh:<32 lower-case hex>)");
    ck_assert_str_eq(refused(S("{\"a\":\"" DID "\",\"b\":2}")), "field \"b\" must be a number in [0, 1]");
    /* The first bad field in table order is the one named. */
    ck_assert_str_eq(refused(S("{\"b\":2,\"a\":1}")), "field \"a\" must be a DID (did:mesh:<32 lower-case hex>)");
    /* An unknown field is named before a missing one, cut to 64 characters. */
    char body[256], key[100], want[100];
    memset(key, 'k', 80);
    key[80] = '\0';
    snprintf(body, sizeof body, "{\"%s\":1}", key);
    key[64] = '\0';
    snprintf(want, sizeof want, "unknown field \"%s\"", key);
    ck_assert_str_eq(refused(S(body)), want);
}
END_TEST

START_TEST(accepted_bodies) {
    char err[256] = "";
    json_t *obj = request_body_parse(S("{\"a\":\"" DID "\"}"), two, 2, err, sizeof err);
    ck_assert_ptr_nonnull(obj);
    ck_assert_uint_eq(json_object_size(obj), 1);
    ck_assert_str_eq(json_string_value(json_object_get(obj, "a")), DID);
    json_decref(obj);
    obj = request_body_parse(S(" {\"b\":1,\"a\":\"" DID "\"} "), two, 2, err, sizeof err);
    ck_assert_ptr_nonnull(obj);
    ck_assert(json_number_value(json_object_get(obj, "b")) == 1);
    json_decref(obj);
    /* Only len bytes are read: the body needs no terminating NUL. */
    const char *buf = "{\"a\":\"" DID "\"}trailing garbage";
    obj = request_body_parse(buf, strlen(buf) - strlen("trailing garbage"), two, 2, err, sizeof err);
    ck_assert_ptr_nonnull(obj);
    json_decref(obj);
    ck_assert_ptr_null(request_body_parse(S(buf), two, 2, err, sizeof err));
    ck_assert_msg(strncmp(err, "body is not valid JSON: line 1 col ", 35) == 0 && strstr(err, "'trailing'"),
                  "%s", err);
}
END_TEST

/* request_body_json against json_parse: the same acceptance, the same
 * values (types included) and the same error text, for flat bodies, bodies
 * just outside the fast subset, and thousands of random mutations of both. */
static void same_as_jansson(const char *body, size_t len) {
    char mine[512] = "", theirs[512] = "", want[600];
    json_t *a = request_body_json(body, len, mine, sizeof mine);
    json_t *b = json_parse(body, len, theirs, sizeof theirs);
    ck_assert_msg((a == NULL) == (b == NULL), "acceptance differs for [%.*s]", (int)len, body);
    if (!a) {
        snprintf(want, sizeof want, "body is not valid JSON: %s", theirs);
        ck_assert_str_eq(mine, want);
        return;
    }
    ck_assert_msg(json_equal(a, b), "values differ for [%.*s]", (int)len, body);
    char *ta = json_dumps(a, JSON_PRESERVE_ORDER | JSON_ENCODE_ANY), *tb = json_dumps(b, JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    ck_assert_str_eq(ta, tb);   /* types, key order and reals to the last digit */
    free(ta);
    free(tb);
    json_decref(a);
    json_decref(b);
}

START_TEST(json_same_as_jansson) {
    static const char *const bodies[] = {
        "{}", " { } ", "{\"a\":1}", "{\"agent_did\":\"" DID "\",\"dimension\":\"outputQuality\",\"value\":0.42,"
        "\"weight\":2,\"source\":\"bench\"}",
        "{\"a\":-0,\"b\":-0.0,\"c\":1e5,\"d\":1E-5,\"e\":2.5e+3,\"f\":123456789012345678}",
        "{\"big\":1234567890123456789,\"bigger\":99999999999999999999}", "{\"r\":1e400}", "{\"r\":-1e400}",
        "{\"r\":1e-400}", "{\"r\":0.1000000000000000055511151231257827021181583404541015625}",
        "{\"t\":true,\"f\":false,\"n\":null}", "\t{\r\n\"a\" :\t\"b\" , \"c\":[1,2]}\n",
        "{\"a\":{\"b\":1}}", "{\"a\":\"\\u00e9\"}", "{\"a\":\"\xc3\xa9\"}", "{\"a\":\"x\\\"y\"}",
        "{\"a\":1,\"a\":2}", "{\"a\":1,}", "{,}", "{\"a\"}", "{\"a\":}", "{\"a\":01}", "{\"a\":1.}",
        "{\"a\":.5}", "{\"a\":1e}", "{\"a\":-}", "{\"a\":+1}", "{\"a\":tru}", "{\"a\":truex}", "{\"a\":1}x",
        "{\"a\":1}}", "[1]", "\"s\"", "1", "", " ", "{", "{\"a\":\"b", "{\"\":1}", "{\"a\":\"\x7f\"}",
        "{\"a\":\"\x1f\"}", "\xef\xbb\xbf{}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) same_as_jansson(bodies[i], strlen(bodies[i]));
    same_as_jansson("{\"a\":1}\0", 8);   /* a NUL after the object */
    static const char alphabet[] = "{}[]:,\" \t\n\\-+.0123456789eEaftrunlsx\x01\xc3\xa9";
    unsigned seed = 7;
    char buf[256];
    for (int i = 0; i < 50000; i++) {
        const char *base = bodies[(size_t)rand_r(&seed) % 5 + 2];
        size_t n = strlen(base);
        memcpy(buf, base, n);
        for (int k = 0, edits = 1 + rand_r(&seed) % 3; k < edits && n > 0; k++) {
            size_t at = (size_t)rand_r(&seed) % n;
            char ch = alphabet[(size_t)rand_r(&seed) % (sizeof alphabet - 1)];
            switch (rand_r(&seed) % 3) {
            case 0: buf[at] = ch; break;                                    /* replace */
            case 1: memmove(buf + at, buf + at + 1, n - at - 1); n--; break; /* delete */
            default:                                                         /* insert */
                if (n + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = ch;
                    n++;
                }
            }
        }
        same_as_jansson(buf, n);
    }
}
END_TEST

START_TEST(small_error_buffer_truncates) {
    char err[8];
    memset(err, 'x', sizeof err);
    ck_assert_ptr_null(request_body_parse(S("{}"), two, 2, err, sizeof err));
    ck_assert_str_eq(err, "field \"");
}
END_TEST

int main(void) {
    if (identity_init() != 0) return EXIT_FAILURE;
    Suite *s = suite_create("request_body");
    TCase *tc = tcase_create("request_body");
    tcase_add_loop_test(tc, value_of_kind, 0, COUNT(values));
    tcase_add_loop_test(tc, length_limits, 0, COUNT(lengths));
    tcase_add_test(tc, sig);
    tcase_add_test(tc, caps_count);
    tcase_add_test(tc, body_errors);
    tcase_add_test(tc, accepted_bodies);
    tcase_add_test(tc, small_error_buffer_truncates);
    tcase_add_test(tc, json_same_as_jansson);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
