/* test_status_throttle.c — the status-write records: score-only changes
 * wait out the window while other changes go at once, a write of ours
 * marks the cache behind until its version moves on, and records that can
 * no longer throttle are swept instead of kept for the process's life. */
#include <check.h>
#include <stdio.h>

#include "common/test/check_run.h"
#include "controller/status_throttle.h"

START_TEST(score_only_changes_wait_out_the_window)
{
    struct status_throttle *t = status_throttle_new(10);
    ck_assert_double_eq(status_throttle_admit(t, "ns/a", 1, 100), 0);       /* first write: now */
    ck_assert_double_eq_tol(status_throttle_admit(t, "ns/a", 1, 104), 6, 1e-9);
    ck_assert_double_eq(status_throttle_admit(t, "ns/b", 1, 104), 0);       /* another agent */
    ck_assert_double_eq(status_throttle_admit(t, "ns/a", 0, 105), 0);       /* not score-only */
    ck_assert_double_eq_tol(status_throttle_admit(t, "ns/a", 1, 106), 9, 1e-9);   /* from 105 */
    ck_assert_double_eq(status_throttle_admit(t, "ns/a", 1, 115), 0);
    status_throttle_free(t);
}
END_TEST

START_TEST(our_write_marks_the_cache_behind_until_its_version_moves)
{
    struct status_throttle *t = status_throttle_new(10);
    ck_assert_double_eq(status_throttle_admit(t, "ns/a", 0, 100), 0);
    status_throttle_wrote(t, "ns/a", "41", "42");
    ck_assert_int_eq(status_throttle_cache_behind(t, "ns/a", "41"), 1);
    ck_assert_int_eq(status_throttle_cache_behind(t, "ns/a", "42"), 0);
    ck_assert_int_eq(status_throttle_cache_behind(t, "ns/b", "41"), 0);
    ck_assert_int_eq(status_throttle_cache_behind(t, "ns/a", NULL), 0);
    /* a write that changed nothing leaves nothing pending */
    status_throttle_wrote(t, "ns/a", "42", "42");
    ck_assert_int_eq(status_throttle_cache_behind(t, "ns/a", "42"), 0);
    status_throttle_forget(t, "ns/a");
    ck_assert_uint_eq(status_throttle_count(t), 0);
    status_throttle_free(t);
}
END_TEST

START_TEST(records_past_the_window_are_swept)
{
    struct status_throttle *t = status_throttle_new(10);
    char key[32];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "ns/a%d", i);
        ck_assert_double_eq(status_throttle_admit(t, key, 0, 100 + i * 0.01), 0);
        status_throttle_wrote(t, key, "1", "2");
    }
    ck_assert_uint_eq(status_throttle_count(t), 100);
    /* within the window of the first sweep nothing is looked at */
    ck_assert_double_eq(status_throttle_admit(t, "ns/late", 0, 105), 0);
    ck_assert_uint_eq(status_throttle_count(t), 101);
    /* a window later, everything older than the window goes; the young one stays and still throttles */
    ck_assert_double_eq(status_throttle_admit(t, "ns/next", 0, 112), 0);
    ck_assert_uint_eq(status_throttle_count(t), 2);
    ck_assert_int_eq(status_throttle_cache_behind(t, "ns/a0", "1"), 0);
    ck_assert_double_eq_tol(status_throttle_admit(t, "ns/late", 1, 113), 2, 1e-9);
    status_throttle_free(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("status_throttle");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, score_only_changes_wait_out_the_window);
    tcase_add_test(tc, our_write_marks_the_cache_behind_until_its_version_moves);
    tcase_add_test(tc, records_past_the_window_are_swept);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
