/* test_json.c — the one JSON helper set (common/json.h): dotted-path access
 * and json_parse's error text, which error replies echo to clients. */
#include <check.h>
#include <string.h>

#include "common/json.h"
#include "common/test/check_run.h"

START_TEST(parse_error_text_is_printable_ascii)
{
    /* a UTF-8 sequence cut by the end of the input, quoted by jansson's message */
    const char body[] = "{\"a\": \"\xe2\x82";
    char err[200];
    ck_assert_ptr_null(json_parse(body, sizeof body - 1, err, sizeof err));
    ck_assert_msg(strncmp(err, "line 1 col ", 11) == 0, "err = %s", err);
    for (const char *p = err; *p; p++)
        ck_assert_msg((unsigned char)*p >= 0x20 && (unsigned char)*p <= 0x7e, "byte 0x%02x in \"%s\"",
                      (unsigned char)*p, err);
}
END_TEST

START_TEST(parse_refuses_duplicate_keys_and_names_them)
{
    char err[200];
    const char body[] = "{\"k\": 1, \"k\": 2}";
    ck_assert_ptr_null(json_parse(body, sizeof body - 1, err, sizeof err));
    ck_assert_msg(strstr(err, "duplicate") != NULL, "err = %s", err);
}
END_TEST

START_TEST(dotted_paths)
{
    const char doc[] = "{\"a\": {\"b\": \"x\", \"n\": 7}}";
    json_t *o = json_parse(doc, sizeof doc - 1, NULL, 0);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_str_at(o, "a.b"), "x");
    ck_assert_int_eq(json_int_at(o, "a.n", -1), 7);
    ck_assert_int_eq(json_int_at(o, "a.missing", -1), -1);
    ck_assert_ptr_null(json_str_at(o, "a.n"));      /* not a string */
    ck_assert_int_eq(json_set_at(o, "c.d", json_string("y")), 0);
    ck_assert_str_eq(json_str_at(o, "c.d"), "y");
    json_decref(o);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, parse_error_text_is_printable_ascii);
    tcase_add_test(tc, parse_refuses_duplicate_keys_and_names_them);
    tcase_add_test(tc, dotted_paths);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
