/* test_workqueue.c — the workqueue's guarantees: de-duplication, one key
 * never processed by two workers at once, re-add while processing, the
 * backoff and token-bucket numbers, add_after ordering, and shutdown. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/test/check_run.h"
#include "controller/workqueue.h"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double fake_now;
static double fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

START_TEST(dedup_processes_once)
{
    struct workqueue *q = workqueue_new(NULL);
    ck_assert_ptr_nonnull(q);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(workqueue_add(q, "ns/a"), 0);
    ck_assert_int_eq(workqueue_add(q, "ns/b"), 0);
    ck_assert_int_eq(workqueue_add(q, "ns/a"), 0);
    ck_assert_uint_eq(workqueue_len(q), 2);

    struct workqueue_stats st;
    workqueue_stats(q, &st);
    ck_assert_uint_eq(st.adds, 2);
    ck_assert_uint_eq(st.depth, 2);

    char *k1 = workqueue_get(q), *k2 = workqueue_get(q);
    ck_assert_str_eq(k1, "ns/a");       /* FIFO order of first add */
    ck_assert_str_eq(k2, "ns/b");
    ck_assert_uint_eq(workqueue_len(q), 0);
    workqueue_stats(q, &st);
    ck_assert_uint_eq(st.processing, 2);
    workqueue_done(q, k1);
    workqueue_done(q, k2);
    free(k1);
    free(k2);
    ck_assert_uint_eq(workqueue_len(q), 0);
    workqueue_shutdown(q);
    ck_assert_ptr_null(workqueue_get(q));
    workqueue_free(q);
}
END_TEST

START_TEST(readd_while_processing_requeued_after_done)
{
    struct workqueue *q = workqueue_new(NULL);
    ck_assert_int_eq(workqueue_add(q, "k"), 0);
    char *k = workqueue_get(q);
    ck_assert_str_eq(k, "k");
    /* added twice while held: not handed out, queued once after done */
    ck_assert_int_eq(workqueue_add(q, "k"), 0);
    ck_assert_int_eq(workqueue_add(q, "k"), 0);
    ck_assert_uint_eq(workqueue_len(q), 0);
    workqueue_done(q, k);
    free(k);
    ck_assert_uint_eq(workqueue_len(q), 1);
    k = workqueue_get(q);
    ck_assert_str_eq(k, "k");
    workqueue_done(q, k);
    free(k);
    ck_assert_uint_eq(workqueue_len(q), 0);
    workqueue_shutdown(q);
    workqueue_free(q);
}
END_TEST

/* N workers, K keys each added many times by adders; a per-key atomic
 * counter must never exceed 1 while a worker holds the key. */
#define NKEYS 8
#define NWORKERS 6
static atomic_int in_flight[NKEYS];
static atomic_int overlap;
static atomic_int processed[NKEYS];
static atomic_int add_failures;

static void *worker(void *arg)
{
    struct workqueue *q = arg;
    char *k;
    while ((k = workqueue_get(q)) != NULL) {
        int i = atoi(k + 4);
        if (atomic_fetch_add(&in_flight[i], 1) != 0)
            atomic_fetch_add(&overlap, 1);
        usleep(200);
        atomic_fetch_sub(&in_flight[i], 1);
        atomic_fetch_add(&processed[i], 1);
        workqueue_done(q, k);
        free(k);
    }
    return NULL;
}

static void *adder(void *arg)
{
    struct workqueue *q = arg;
    char key[32];
    for (int r = 0; r < 400; r++) {
        snprintf(key, sizeof(key), "key-%d", r % NKEYS);
        if (workqueue_add(q, key) != 0)
            atomic_fetch_add(&add_failures, 1);
        if (r % 16 == 0)
            usleep(100);
    }
    return NULL;
}

START_TEST(no_concurrent_processing_of_a_key)
{
    struct workqueue *q = workqueue_new(NULL);
    pthread_t w[NWORKERS], a[3];
    for (int i = 0; i < NWORKERS; i++)
        ck_assert_int_eq(pthread_create(&w[i], NULL, worker, q), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pthread_create(&a[i], NULL, adder, q), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(a[i], NULL);
    workqueue_shutdown_drain(q);
    for (int i = 0; i < NWORKERS; i++)
        pthread_join(w[i], NULL);
    ck_assert_int_eq(atomic_load(&overlap), 0);
    ck_assert_int_eq(atomic_load(&add_failures), 0);
    int total = 0;
    for (int i = 0; i < NKEYS; i++) {
        ck_assert_int_ge(atomic_load(&processed[i]), 1);   /* drained: every key ran */
        total += atomic_load(&processed[i]);
    }
    ck_assert_int_lt(total, 3 * 400);                      /* and de-duplication happened */
    struct workqueue_stats st;
    workqueue_stats(q, &st);
    ck_assert_uint_eq(st.processing, 0);
    ck_assert_uint_eq(st.depth, 0);
    workqueue_free(q);
}
END_TEST

START_TEST(backoff_numbers)
{
    ck_assert_double_eq_tol(workqueue_backoff_for(0.005, 1000, 0), 0.005, 1e-12);
    ck_assert_double_eq_tol(workqueue_backoff_for(0.005, 1000, 1), 0.010, 1e-12);
    ck_assert_double_eq_tol(workqueue_backoff_for(0.005, 1000, 2), 0.020, 1e-12);
    ck_assert_double_eq_tol(workqueue_backoff_for(0.005, 1000, 10), 5.12, 1e-9);
    ck_assert_double_eq_tol(workqueue_backoff_for(0.005, 1000, 17), 655.36, 1e-9);
    ck_assert_double_eq(workqueue_backoff_for(0.005, 1000, 18), 1000);   /* 1310.72 capped */
    ck_assert_double_eq(workqueue_backoff_for(0.005, 1000, 5000), 1000);
    ck_assert_double_eq_tol(workqueue_backoff_for(0.005, 1000, -3), 0.005, 1e-12);
}
END_TEST

START_TEST(rate_limited_uses_backoff_and_forget_resets)
{
    fake_now = 100;
    struct workqueue_opts o = {.clock = fake_clock};
    struct workqueue *q = workqueue_new(&o);
    double expect = 0.005;
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(workqueue_num_requeues(q, "x"), i);
        ck_assert_double_eq_tol(workqueue_add_rate_limited(q, "x"), expect, 1e-12);
        expect *= 2;
    }
    ck_assert_int_eq(workqueue_num_requeues(q, "x"), 6);
    struct workqueue_stats st;
    workqueue_stats(q, &st);
    ck_assert_uint_eq(st.retries, 6);
    ck_assert_uint_eq(st.delayed, 1);       /* one key, earliest time kept */
    ck_assert_uint_eq(st.depth, 0);
    fake_now += 0.006;                      /* past the first (5 ms) deadline */
    ck_assert_uint_eq(workqueue_len(q), 1);
    workqueue_forget(q, "x");
    ck_assert_int_eq(workqueue_num_requeues(q, "x"), 0);
    ck_assert_double_eq_tol(workqueue_add_rate_limited(q, "x"), 0.005, 1e-12);
    workqueue_shutdown(q);
    ck_assert_double_eq(workqueue_add_rate_limited(q, "x"), -1);
    workqueue_free(q);
}
END_TEST

START_TEST(token_bucket_math)
{
    struct token_bucket b;
    token_bucket_init(&b, 10, 100, 0);
    for (int i = 0; i < 100; i++)
        ck_assert_double_eq(token_bucket_reserve(&b, 0), 0);     /* the burst */
    ck_assert_double_eq_tol(token_bucket_reserve(&b, 0), 0.1, 1e-9);
    ck_assert_double_eq_tol(token_bucket_reserve(&b, 0), 0.2, 1e-9);
    /* 1 s later 10 tokens came back: debt was 2, now 8 in hand */
    for (int i = 0; i < 8; i++)
        ck_assert_double_eq(token_bucket_reserve(&b, 1), 0);
    ck_assert_double_eq_tol(token_bucket_reserve(&b, 1), 0.1, 1e-9);
    /* a long idle refills to the burst, never beyond */
    ck_assert_double_eq(token_bucket_reserve(&b, 1000), 0);
    ck_assert_double_eq_tol(b.tokens, 99, 1e-9);
}
END_TEST

START_TEST(rate_limited_bucket_dominates_after_burst)
{
    fake_now = 50;
    struct workqueue_opts o = {.clock = fake_clock};
    struct workqueue *q = workqueue_new(&o);
    char key[32];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_double_eq_tol(workqueue_add_rate_limited(q, key), 0.005, 1e-12);
    }
    /* 101st distinct key: its own backoff is 5 ms, the bucket says 100 ms */
    ck_assert_double_eq_tol(workqueue_add_rate_limited(q, "k100"), 0.1, 1e-9);
    ck_assert_double_eq_tol(workqueue_add_rate_limited(q, "k101"), 0.2, 1e-9);
    workqueue_shutdown(q);
    workqueue_free(q);
}
END_TEST

START_TEST(add_after_ordering)
{
    struct workqueue *q = workqueue_new(NULL);
    double t0 = mono();
    ck_assert_int_eq(workqueue_add_after(q, "c", 0.15), 0);
    ck_assert_int_eq(workqueue_add_after(q, "a", 0.05), 0);
    ck_assert_int_eq(workqueue_add_after(q, "b", 0.10), 0);
    ck_assert_int_eq(workqueue_add_after(q, "c", 0.30), 0);   /* later time: earlier one wins */
    ck_assert_uint_eq(workqueue_len(q), 0);
    const char *want[] = {"a", "b", "c"};
    double due[] = {0.05, 0.10, 0.15};
    for (int i = 0; i < 3; i++) {
        char *k = workqueue_get(q);
        double waited = mono() - t0;
        ck_assert_str_eq(k, want[i]);
        ck_assert_double_ge(waited, due[i] - 0.001);
        ck_assert_double_lt(waited, due[i] + 0.5);    /* generous: a loaded 2-core machine */
        workqueue_done(q, k);
        free(k);
    }
    ck_assert_uint_eq(workqueue_len(q), 0);
    /* a delay <= 0 is an immediate add */
    ck_assert_int_eq(workqueue_add_after(q, "now", 0), 0);
    ck_assert_uint_eq(workqueue_len(q), 1);
    workqueue_shutdown(q);
    workqueue_free(q);
}
END_TEST

static atomic_int woke;
static void *blocked_getter(void *arg)
{
    char *k = workqueue_get(arg);
    if (k == NULL)
        atomic_fetch_add(&woke, 1);
    free(k);
    return NULL;
}

START_TEST(shutdown_wakes_blocked_getters)
{
    struct workqueue *q = workqueue_new(NULL);
    ck_assert_int_eq(workqueue_add_after(q, "later", 60), 0);   /* getters sleep with a timeout too */
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, blocked_getter, q), 0);
    usleep(50000);
    ck_assert_int_eq(atomic_load(&woke), 0);
    workqueue_shutdown(q);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(atomic_load(&woke), 4);
    ck_assert_int_eq(workqueue_shutting_down(q), 1);
    ck_assert_int_eq(workqueue_add(q, "x"), -1);
    ck_assert_int_eq(workqueue_add_after(q, "x", 1), -1);
    workqueue_free(q);
}
END_TEST

static void *drain_thread(void *arg)
{
    workqueue_shutdown_drain(arg);
    return NULL;
}

START_TEST(drain_hands_out_queued_keys)
{
    struct workqueue *q = workqueue_new(NULL);
    ck_assert_int_eq(workqueue_add(q, "a"), 0);
    ck_assert_int_eq(workqueue_add(q, "b"), 0);
    char *a = workqueue_get(q);
    pthread_t t;
    /* drain blocks until "a" is done and "b" handed out and done */
    ck_assert_int_eq(pthread_create(&t, NULL, drain_thread, q), 0);
    /* wait for the drain to begin (a loaded machine may start the thread late) */
    for (int i = 0; i < 500 && !workqueue_shutting_down(q); i++)
        usleep(10000);
    ck_assert_int_eq(workqueue_shutting_down(q), 1);
    char *b = workqueue_get(q);
    ck_assert_str_eq(b, "b");
    workqueue_done(q, a);
    workqueue_done(q, b);
    free(a);
    free(b);
    pthread_join(t, NULL);
    ck_assert_ptr_null(workqueue_get(q));
    workqueue_free(q);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("workqueue");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, dedup_processes_once);
    tcase_add_test(tc, readd_while_processing_requeued_after_done);
    tcase_add_test(tc, no_concurrent_processing_of_a_key);
    tcase_add_test(tc, backoff_numbers);
    tcase_add_test(tc, rate_limited_uses_backoff_and_forget_resets);
    tcase_add_test(tc, token_bucket_math);
    tcase_add_test(tc, rate_limited_bucket_dominates_after_burst);
    tcase_add_test(tc, add_after_ordering);
    tcase_add_test(tc, shutdown_wakes_blocked_getters);
    tcase_add_test(tc, drain_hands_out_queued_keys);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
