/* test_sched_slice.c — the per-thread scheduler slice: refused values, the
 * value the kernel reads back, inheritance by new threads, nice kept.
 * Each test runs in its own process (unless CK_FORK=no), so the slices and
 * nice values set here end with it.
 * Kernels before 6.12 report no slice (0): the read-back checks are skipped
 * there, the refusals are not. */
#include "common/sched_slice.h"
#include "common/test/check_run.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Whether this kernel reports a fair thread's slice at all. */
static int kernel_reports_slice(void) {
    int now = sched_slice_get();
    ck_assert_int_ge(now, 0);
    if (now == 0) fprintf(stderr, "test_sched_slice: kernel reports no slice; read-back checks skipped\n");
    return now > 0;
}

START_TEST(bad_values_refused) {
    int before = sched_slice_get();
    const int bad[] = {-1, 1, SCHED_SLICE_MIN_US - 1, SCHED_SLICE_MAX_US + 1, 1000000000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        ck_assert_int_eq(sched_slice_set(bad[i], err, sizeof err), -1);
        char want[32];
        snprintf(want, sizeof want, "%d us", bad[i]);
        ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" does not name %s", err, want);
    }
    ck_assert_int_eq(sched_slice_get(), before);   /* nothing was changed */
}
END_TEST

START_TEST(set_reads_back_and_resets) {
    if (!kernel_reports_slice()) return;
    int def = sched_slice_get();
    char err[256] = "";
    ck_assert_msg(sched_slice_set(SCHED_SLICE_MIN_US, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(sched_slice_get(), SCHED_SLICE_MIN_US);
    ck_assert_msg(sched_slice_set(3000, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(sched_slice_get(), 3000);
    ck_assert_msg(sched_slice_set(0, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(sched_slice_get(), def);
}
END_TEST

static void *report_slice(void *arg) {
    *(int *)arg = sched_slice_get();
    return NULL;
}

START_TEST(new_threads_inherit) {
    if (!kernel_reports_slice()) return;
    char err[256] = "";
    ck_assert_msg(sched_slice_set(200, err, sizeof err) == 0, "%s", err);
    int seen = -2;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, report_slice, &seen), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(seen, 200);
}
END_TEST

/* The attributes are read and written back: a niced thread stays niced. */
START_TEST(nice_is_kept) {
    errno = 0;
    int before = getpriority(PRIO_PROCESS, 0);
    ck_assert_int_eq(errno, 0);
    int r = nice(5);
    ck_assert_msg(r != -1 || errno == 0, "nice: %s", strerror(errno));
    int niced = getpriority(PRIO_PROCESS, 0);
    ck_assert_int_eq(niced, before + 5 > 19 ? 19 : before + 5);
    char err[256] = "";
    ck_assert_msg(sched_slice_set(SCHED_SLICE_MIN_US, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(getpriority(PRIO_PROCESS, 0), niced);
}
END_TEST

int main(void) {
    Suite *s = suite_create("sched_slice");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, bad_values_refused);
    tcase_add_test(tc, set_reads_back_and_resets);
    tcase_add_test(tc, new_threads_inherit);
    tcase_add_test(tc, nice_is_kept);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
