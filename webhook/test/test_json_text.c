/* test_json_text.c — the webhook's JSON writer matches json_dumps(JSON_COMPACT). */
#include "common/test/check_run.h"
#include "webhook/json_text.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static void assert_like_jansson(const json_t *v) {
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    struct json_text t = {0};
    json_text_value(&t, v);
    char *got = json_text_finish(&t);
    ck_assert_ptr_nonnull(want);
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, want);
    free(want);
    free(got);
}

START_TEST(same_text_as_jansson) {
    static const char *const docs[] = {
        "{}", "[]", "[{}, [], \"\"]", "{\"b\": 1, \"a\": [true, false, null], \"c\": -9223372036854775808}",
        "{\"q\\\"uo\\\\te\": \"tab\\t nl\\n cr\\r ff\\f bs\\b nul\\u0000 esc\\u001b del\\u007f\"}",
        "[\"caf\\u00e9 \\u20ac \\ud83d\\ude00\", \"a/b\", \"<>&'\"]",
        ("{\"op\": \"add\", \"path\": \"/metadata/annotations/agentmesh.io~1injected\","
         " \"value\": \"{\\\"agent\\\":\\\"alpha\\\"}\"}"),
        "[0.5, 1e300, -2.25, 12345678901234]",
    };
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
        json_error_t e;
        json_t *v = json_loads(docs[i], JSON_ALLOW_NUL, &e);
        ck_assert_msg(v != NULL, "doc %zu: %s", i, e.text);
        assert_like_jansson(v);
        json_decref(v);
    }
}
END_TEST

/* Raw text and values mix; nothing written gives "", not NULL. */
START_TEST(raw_and_empty) {
    struct json_text t = {0};
    char *s = json_text_finish(&t);
    ck_assert_str_eq(s, "");
    free(s);
    t = (struct json_text){0};
    json_text_raw(&t, "{\"k\":");
    json_text_string(&t, "a\"b", 3);
    json_text_raw(&t, "}");
    s = json_text_finish(&t);
    ck_assert_str_eq(s, "{\"k\":\"a\\\"b\"}");
    free(s);
    /* A string literal written in pieces: only the pieces are escaped. */
    t = (struct json_text){0};
    json_text_raw(&t, "\"");
    json_text_chars(&t, "x\ny", 3);
    json_text_chars(&t, "-\\", 2);
    json_text_raw(&t, "\"");
    s = json_text_finish(&t);
    ck_assert_str_eq(s, "\"x\\ny-\\\\\"");
    free(s);
}
END_TEST

int main(void) {
    Suite *s = suite_create("json_text");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, same_text_as_jansson);
    tcase_add_test(tc, raw_and_empty);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
