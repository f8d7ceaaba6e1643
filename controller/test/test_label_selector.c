/* test_label_selector.c — metav1.LabelSelector semantics: matchLabels,
 * the four expression operators (absent keys included), merge as AND,
 * JSON round trip, and errors that name the field. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/test/check_run.h"
#include "controller/label_selector.h"

static json_t *J(const char *text)
{
    char err[128];
    json_t *j = json_parse(text, strlen(text), err, sizeof err);
    ck_assert_msg(j != NULL, "%s: %s", text, err);
    return j;
}

static int matches(const char *sel_json, const char *labels_json)
{
    json_t *s = J(sel_json), *l = labels_json ? J(labels_json) : NULL;
    struct label_selector sel;
    char err[256];
    ck_assert_msg(label_selector_parse(s, "sel", &sel, err, sizeof err) == 0, "%s", err);
    int m = label_selector_matches(&sel, l);
    label_selector_free(&sel);
    json_decref(s);
    json_decref(l);
    return m;
}

START_TEST(match_labels)
{
    ck_assert(matches("{\"matchLabels\":{\"team\":\"payments\"}}", "{\"team\":\"payments\",\"x\":\"y\"}"));
    ck_assert(!matches("{\"matchLabels\":{\"team\":\"payments\"}}", "{\"team\":\"risk\"}"));
    ck_assert(!matches("{\"matchLabels\":{\"team\":\"payments\"}}", "{}"));
    ck_assert(!matches("{\"matchLabels\":{\"team\":\"payments\"}}", NULL));
    ck_assert(!matches("{\"matchLabels\":{\"team\":\"payments\",\"env\":\"prod\"}}", "{\"team\":\"payments\"}"));
    /* empty selector selects everything, even objects without labels */
    ck_assert(matches("{}", "{\"a\":\"b\"}"));
    ck_assert(matches("{}", NULL));
}
END_TEST

START_TEST(expressions)
{
    const char *in = "{\"matchExpressions\":[{\"key\":\"env\",\"operator\":\"In\",\"values\":[\"prod\",\"stage\"]}]}";
    ck_assert(matches(in, "{\"env\":\"stage\"}"));
    ck_assert(!matches(in, "{\"env\":\"dev\"}"));
    ck_assert(!matches(in, "{}"));
    const char *notin = "{\"matchExpressions\":[{\"key\":\"env\",\"operator\":\"NotIn\",\"values\":[\"prod\"]}]}";
    ck_assert(matches(notin, "{\"env\":\"dev\"}"));
    ck_assert(!matches(notin, "{\"env\":\"prod\"}"));
    ck_assert(matches(notin, "{}"));   /* absent key satisfies NotIn, as in Kubernetes */
    const char *ex = "{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"Exists\"}]}";
    ck_assert(matches(ex, "{\"tier\":\"\"}"));
    ck_assert(!matches(ex, "{\"other\":\"x\"}"));
    const char *dne = "{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"DoesNotExist\"}]}";
    ck_assert(!matches(dne, "{\"tier\":\"x\"}"));
    ck_assert(matches(dne, "{}"));
    /* labels and expressions are ANDed */
    const char *both = "{\"matchLabels\":{\"team\":\"a\"},"
                       "\"matchExpressions\":[{\"key\":\"env\",\"operator\":\"In\",\"values\":[\"prod\"]}]}";
    ck_assert(matches(both, "{\"team\":\"a\",\"env\":\"prod\"}"));
    ck_assert(!matches(both, "{\"team\":\"a\",\"env\":\"dev\"}"));
    ck_assert(!matches(both, "{\"team\":\"b\",\"env\":\"prod\"}"));
}
END_TEST

static void parse_fails(const char *sel_json, const char *want)
{
    json_t *s = J(sel_json);
    struct label_selector sel;
    char err[256] = "";
    ck_assert_int_eq(label_selector_parse(s, "spec.agentSelector", &sel, err, sizeof err), -1);
    ck_assert_msg(strstr(err, want) != NULL, "want \"%s\" in \"%s\"", want, err);
    ck_assert_uint_eq(sel.nreqs, 0);
    json_decref(s);
}

START_TEST(errors_name_the_field)
{
    parse_fails("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Foo\",\"values\":[\"x\"]}]}",
                "spec.agentSelector.matchExpressions[0].operator: unknown operator \"Foo\"");
    parse_fails("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\"}]}",
                "spec.agentSelector.matchExpressions[0].values: must be non-empty");
    parse_fails("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\",\"values\":[\"x\"]}]}",
                "matchExpressions[0].values: must be empty");
    parse_fails("{\"matchExpressions\":[{\"operator\":\"Exists\"}]}", "matchExpressions[0].key: required");
    parse_fails("{\"matchLabels\":{\"team\":5}}", "spec.agentSelector.matchLabels.team: must be a string");
    parse_fails("{\"matchLabels\":[]}", "spec.agentSelector.matchLabels: must be an object");
    parse_fails("{\"matchLabels\":{\"ok\":\"1\"},\"matchExpressions\":{}}", "matchExpressions: must be an array");
    parse_fails("[1]", "spec.agentSelector: must be an object");
}
END_TEST

START_TEST(merge_is_and_and_json_round_trip)
{
    json_t *a = J("{\"matchLabels\":{\"team\":\"a\"}}");
    json_t *b = J("{\"matchExpressions\":[{\"key\":\"env\",\"operator\":\"NotIn\",\"values\":[\"dev\",\"test\"]}]}");
    struct label_selector sa, sb, back;
    char err[256];
    ck_assert_int_eq(label_selector_parse(a, "a", &sa, err, sizeof err), 0);
    ck_assert_int_eq(label_selector_parse(b, "b", &sb, err, sizeof err), 0);
    ck_assert_int_eq(label_selector_merge(&sa, &sb), 0);
    ck_assert_uint_eq(sa.nreqs, 2);
    json_t *ok = J("{\"team\":\"a\",\"env\":\"prod\"}"), *bad = J("{\"team\":\"a\",\"env\":\"test\"}");
    ck_assert(label_selector_matches(&sa, ok));
    ck_assert(!label_selector_matches(&sa, bad));
    json_t *out = label_selector_to_json(&sa);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(label_selector_parse(out, "out", &back, err, sizeof err), 0);
    ck_assert_uint_eq(back.nreqs, 2);
    ck_assert(label_selector_matches(&back, ok));
    ck_assert(!label_selector_matches(&back, bad));
    json_t *e0 = json_array_get(json_at(out, "matchExpressions"), 0);
    ck_assert_str_eq(json_str_at(e0, "operator"), "In");
    ck_assert_str_eq(json_str_at(e0, "key"), "team");
    struct label_selector empty = {0};
    json_t *eo = label_selector_to_json(&empty);
    ck_assert_uint_eq(json_object_size(eo), 0);
    json_decref(eo);
    label_selector_free(&back);
    label_selector_free(&sa);
    label_selector_free(&sb);
    json_decref(out);
    json_decref(a);
    json_decref(b);
    json_decref(ok);
    json_decref(bad);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("label_selector");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, match_labels);
    tcase_add_test(tc, expressions);
    tcase_add_test(tc, errors_name_the_field);
    tcase_add_test(tc, merge_is_and_and_json_round_trip);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
