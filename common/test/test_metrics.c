/* test_metrics.c — the Prometheus registry: exposition text, labels, histograms. */
#include "common/metrics.h"
#include "common/test/check_run.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *render(void) {
    size_t len;
    char *text = metrics_render(&len);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(strlen(text), len);
    return text;
}

START_TEST(counter_with_labels) {
    struct metric *m = metrics_counter("t_requests_total", "Requests.", "code,method");
    metric_add(m, 1, "200", "GET");
    metric_add(m, 2, "200", "GET");
    metric_add(m, 1, "500", "POST");
    ck_assert(metric_value(m, "200", "GET") == 3);
    char *text = render();
    ck_assert_ptr_nonnull(strstr(text, "# TYPE t_requests_total counter\n"));
    ck_assert_ptr_nonnull(strstr(text, "t_requests_total{code=\"200\",method=\"GET\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "t_requests_total{code=\"500\",method=\"POST\"} 1\n"));
    free(text);
}
END_TEST

START_TEST(same_name_is_same_metric) {
    struct metric *a = metrics_gauge("t_shared", "Shared.", "x");
    struct metric *b = metrics_gauge("t_shared", "Shared.", "x");
    ck_assert_ptr_eq(a, b);
}
END_TEST

START_TEST(unlabelled_shows_zero) {
    metrics_counter("t_never_touched_total", "Never touched.", NULL);
    char *text = render();
    ck_assert_ptr_nonnull(strstr(text, "\nt_never_touched_total 0\n"));
    free(text);
}
END_TEST

START_TEST(label_values_escaped) {
    struct metric *m = metrics_gauge("t_escape", "Escaping.", "v");
    metric_set(m, 1.5, "a\"b\\c\nd");
    char *text = render();
    ck_assert_ptr_nonnull(strstr(text, "t_escape{v=\"a\\\"b\\\\c\\nd\"} 1.5\n"));
    free(text);
}
END_TEST

START_TEST(gauge_remove) {
    struct metric *m = metrics_gauge("t_score", "Score.", "namespace,agent");
    metric_set(m, 500, "ns", "a");
    metric_set(m, 700, "ns", "b");
    metric_remove(m, "ns", "a");
    char *text = render();
    ck_assert_ptr_null(strstr(text, "t_score{namespace=\"ns\",agent=\"a\"}"));
    ck_assert_ptr_nonnull(strstr(text, "t_score{namespace=\"ns\",agent=\"b\"} 700\n"));
    free(text);
}
END_TEST

START_TEST(histogram_buckets) {
    static const double b[] = {0.001, 0.01, 0.1};
    struct metric *m = metrics_histogram("t_latency_seconds", "Latency.", "op", b, 3);
    metric_observe(m, 0.0005, "x");
    metric_observe(m, 0.005, "x");
    metric_observe(m, 0.05, "x");
    metric_observe(m, 5, "x");
    char *text = render();
    ck_assert_ptr_nonnull(strstr(text, "t_latency_seconds_bucket{op=\"x\",le=\"0.001\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "t_latency_seconds_bucket{op=\"x\",le=\"0.01\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "t_latency_seconds_bucket{op=\"x\",le=\"0.1\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "t_latency_seconds_bucket{op=\"x\",le=\"+Inf\"} 4\n"));
    ck_assert_ptr_nonnull(strstr(text, "t_latency_seconds_count{op=\"x\"} 4\n"));
    ck_assert_ptr_nonnull(strstr(text, "t_latency_seconds_sum{op=\"x\"} 5.0555\n"));
    free(text);
}
END_TEST

START_TEST(many_series_grow_table) {
    struct metric *m = metrics_gauge("t_many", "Many.", "agent");
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "a%d", i);
        metric_set(m, i, name);
    }
    for (int i = 0; i < 5000; i += 997) {
        snprintf(name, sizeof name, "a%d", i);
        ck_assert(metric_value(m, name) == i);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("registry");
    tcase_add_test(tc, counter_with_labels);
    tcase_add_test(tc, same_name_is_same_metric);
    tcase_add_test(tc, unlabelled_shows_zero);
    tcase_add_test(tc, label_values_escaped);
    tcase_add_test(tc, gauge_remove);
    tcase_add_test(tc, histogram_buckets);
    tcase_add_test(tc, many_series_grow_table);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
