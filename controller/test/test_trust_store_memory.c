/* test_trust_store_memory.c — the memory trust store: state verbs,
 * signals equal to trust_engine's, single-use expiring challenges, the
 * replay cache, bounds, the change listener, and concurrent signals from
 * several threads ending in the same state as a sequential run. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/test/check_run.h"
#include "controller/trust_store.h"

#define T0 1700000000000LL

static struct trust_state fresh(int score)
{
    struct trust_state st;
    char err[128];
    ck_assert_int_eq(trust_state_init(&st, score, NULL, T0, err, sizeof err), 0);
    return st;
}

START_TEST(state_verbs)
{
    struct trust_store *s = trust_store_memory_new(NULL);
    char err[256];
    struct trust_state st = fresh(600), got;
    ck_assert_str_eq(s->kind, "memory");
    ck_assert_int_eq(s->get(s, "did:mesh:a", &got, err, sizeof err), TS_NOT_FOUND);
    ck_assert_int_eq(s->create(s, "did:mesh:a", &st, err, sizeof err), TS_OK);
    struct trust_state other = fresh(100);
    ck_assert_int_eq(s->create(s, "did:mesh:a", &other, err, sizeof err), TS_EXISTS);
    ck_assert_int_eq(trust_store_get(s, "did:mesh:a", &got, err, sizeof err), TS_OK);
    ck_assert_int_eq(trust_score(&got, T0), 600);
    ck_assert_int_eq(s->put(s, "did:mesh:a", &other, err, sizeof err), TS_OK);
    ck_assert_int_eq(s->get(s, "did:mesh:a", &got, err, sizeof err), TS_OK);
    ck_assert_int_eq(trust_score(&got, T0), 100);
    struct trust_params p;
    trust_params_default(&p);
    p.decay_per_hour = 7;
    ck_assert_int_eq(s->set_params(s, "did:mesh:a", &p, err, sizeof err), TS_OK);
    ck_assert_int_eq(s->set_params(s, "did:mesh:zz", &p, err, sizeof err), TS_NOT_FOUND);
    p.weights[0] = 0.9;
    ck_assert_int_eq(s->set_params(s, "did:mesh:a", &p, err, sizeof err), TS_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "weights"));
    ck_assert_int_eq(s->get(s, "did:mesh:a", &got, err, sizeof err), TS_OK);
    ck_assert_double_eq(got.params.decay_per_hour, 7);
    ck_assert_double_eq(got.dims[0], 10);
    struct trust_state bad = fresh(500);
    bad.dims[3] = 150;
    ck_assert_int_eq(s->put(s, "did:mesh:b", &bad, err, sizeof err), TS_INVALID);
    ck_assert_int_eq(s->put(s, "", &st, err, sizeof err), TS_INVALID);
    ck_assert_int_eq(s->remove(s, "did:mesh:a", err, sizeof err), TS_OK);
    ck_assert_int_eq(s->remove(s, "did:mesh:a", err, sizeof err), TS_NOT_FOUND);
    ck_assert_int_eq(s->get(s, "did:mesh:a", &got, err, sizeof err), TS_NOT_FOUND);
    trust_store_destroy(s);
}
END_TEST

START_TEST(signals_match_engine)
{
    struct trust_store *s = trust_store_memory_new(NULL);
    char err[256];
    struct trust_state local = fresh(500), got;
    ck_assert_int_eq(s->create(s, "did:mesh:x", &local, err, sizeof err), TS_OK);
    unsigned seed = 42;
    for (int i = 0; i < 2000; i++) {
        struct trust_signal sig = {(enum trust_dim)(rand_r(&seed) % TRUST_DIM_COUNT),
                                   (rand_r(&seed) % 1001) / 1000.0, (rand_r(&seed) % 300) / 100.0,
                                   T0 + i * 1000};
        ck_assert_int_eq(trust_apply_signal(&local, &sig, err, sizeof err), 0);
        ck_assert_int_eq(trust_store_apply(s, "did:mesh:x", &sig, &got, err, sizeof err), TS_OK);
    }
    ck_assert_int_eq(memcmp(&local, &got, sizeof got), 0);
    struct trust_signal bad = {TRUST_DIM_OUTPUT_QUALITY, 2, 1, T0};
    ck_assert_int_eq(trust_store_apply(s, "did:mesh:x", &bad, &got, err, sizeof err), TS_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "value"));
    struct trust_signal ok = {TRUST_DIM_OUTPUT_QUALITY, 1, 1, T0};
    ck_assert_int_eq(trust_store_apply(s, "did:mesh:nobody", &ok, NULL, err, sizeof err), TS_NOT_FOUND);
    trust_store_destroy(s);
}
END_TEST

START_TEST(challenges_single_use_and_expire)
{
    struct trust_store *s = trust_store_memory_new(NULL);
    char err[256], v[64];
    ck_assert_int_eq(s->put_challenge(s, "challenge_1", "nonce-1", 30000, err, sizeof err), TS_OK);
    ck_assert_int_eq(s->put_challenge(s, "challenge_1", "other", 30000, err, sizeof err), TS_EXISTS);
    ck_assert_int_eq(s->take_challenge(s, "challenge_1", v, sizeof v, err, sizeof err), TS_OK);
    ck_assert_str_eq(v, "nonce-1");
    ck_assert_int_eq(s->take_challenge(s, "challenge_1", v, sizeof v, err, sizeof err), TS_NOT_FOUND);
    ck_assert_int_eq(s->put_challenge(s, "challenge_2", "n2", 50, err, sizeof err), TS_OK);
    usleep(120 * 1000);
    ck_assert_int_eq(s->take_challenge(s, "challenge_2", v, sizeof v, err, sizeof err), TS_NOT_FOUND);
    /* an expired id can be reused */
    ck_assert_int_eq(s->put_challenge(s, "challenge_2", "n3", 30000, err, sizeof err), TS_OK);
    char tiny[2];
    ck_assert_int_eq(s->take_challenge(s, "challenge_2", tiny, sizeof tiny, err, sizeof err), TS_INVALID);
    ck_assert_int_eq(s->take_challenge(s, "challenge_2", v, sizeof v, err, sizeof err), TS_NOT_FOUND);
    ck_assert_int_eq(s->put_challenge(s, "challenge_3", "n", 0, err, sizeof err), TS_INVALID);
    trust_store_destroy(s);
}
END_TEST

START_TEST(replay_cache_and_bounds)
{
    struct trust_store_memory_limits lim = {.max_agents = 2, .max_challenges = 2, .max_replay = 3};
    struct trust_store *s = trust_store_memory_new(&lim);
    char err[256];
    ck_assert_int_eq(s->remember(s, "sig-a", 60000, err, sizeof err), TS_OK);
    ck_assert_int_eq(s->remember(s, "sig-a", 60000, err, sizeof err), TS_EXISTS);
    ck_assert_int_eq(s->remember(s, "sig-b", 80, err, sizeof err), TS_OK);
    ck_assert_int_eq(s->remember(s, "sig-c", 80, err, sizeof err), TS_OK);
    ck_assert_int_eq(s->remember(s, "sig-d", 60000, err, sizeof err), TS_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(err, "replay cache full"));
    usleep(150 * 1000);   /* b and c expire: room again, and they count as new */
    ck_assert_int_eq(s->remember(s, "sig-d", 60000, err, sizeof err), TS_OK);
    ck_assert_int_eq(s->remember(s, "sig-b", 60000, err, sizeof err), TS_OK);
    ck_assert_int_eq(s->remember(s, "sig-a", 60000, err, sizeof err), TS_EXISTS);
    struct trust_state st = fresh(500);
    ck_assert_int_eq(s->create(s, "a1", &st, err, sizeof err), TS_OK);
    ck_assert_int_eq(s->create(s, "a2", &st, err, sizeof err), TS_OK);
    ck_assert_int_eq(s->create(s, "a3", &st, err, sizeof err), TS_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(err, "agent table full"));
    ck_assert_int_eq(s->put(s, "a2", &st, err, sizeof err), TS_OK);   /* overwrite needs no room */
    trust_store_destroy(s);
}
END_TEST

static char heard[8][64];
static int nheard;

static void listen_fn(const char *did, void *arg)
{
    ck_assert_ptr_eq(arg, heard);
    if (nheard < 8)
        snprintf(heard[nheard++], sizeof heard[0], "%s", did);
}

START_TEST(listener_hears_changes)
{
    struct trust_store *s = trust_store_memory_new(NULL);
    char err[256];
    nheard = 0;
    ck_assert_int_eq(s->set_listener(s, listen_fn, heard), 0);
    struct trust_state st = fresh(500);
    struct trust_signal sig = {TRUST_DIM_SECURITY_POSTURE, 1, 1, T0};
    ck_assert_int_eq(s->create(s, "did:mesh:l", &st, err, sizeof err), TS_OK);
    ck_assert_int_eq(s->apply_signal(s, "did:mesh:l", &sig, NULL, err, sizeof err), TS_OK);
    ck_assert_int_eq(s->apply_signal(s, "did:mesh:none", &sig, NULL, err, sizeof err), TS_NOT_FOUND);
    ck_assert_int_eq(s->remove(s, "did:mesh:l", err, sizeof err), TS_OK);
    ck_assert_int_eq(nheard, 3);
    ck_assert_str_eq(heard[0], "did:mesh:l");
    ck_assert_str_eq(heard[2], "did:mesh:l");
    trust_store_destroy(s);
}
END_TEST

#define PER_THREAD 2500

struct worker {
    struct trust_store *s;
    enum trust_dim dim;
};

/* The signal number i of the thread working on `dim` (deterministic). */
static struct trust_signal nth_signal(enum trust_dim dim, int i)
{
    struct trust_signal sig = {dim, ((i * 37 + (int)dim * 11) % 101) / 100.0, ((i * 13) % 25) / 10.0,
                               T0 + i};
    return sig;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    char err[256];
    for (int i = 0; i < PER_THREAD; i++) {
        struct trust_signal sig = nth_signal(w->dim, i);
        if (w->s->apply_signal(w->s, "did:mesh:shared", &sig, NULL, err, sizeof err) != TS_OK)
            return (void *)"apply_signal failed";
    }
    return NULL;
}

START_TEST(concurrent_signals_equal_sequential)
{
    struct trust_store *s = trust_store_memory_new(NULL);
    char err[256];
    struct trust_state expect = fresh(500), got;
    ck_assert_int_eq(s->create(s, "did:mesh:shared", &expect, err, sizeof err), TS_OK);
    /* Each thread owns one dimension, so the per-dimension order is fixed and
     * the final state must equal a sequential run, bit for bit. */
    pthread_t th[4];
    struct worker w[4];
    for (int t = 0; t < 4; t++) {
        w[t] = (struct worker){s, (enum trust_dim)t};
        ck_assert_int_eq(pthread_create(&th[t], NULL, work, &w[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        void *res;
        ck_assert_int_eq(pthread_join(th[t], &res), 0);
        ck_assert_ptr_null(res);
    }
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            struct trust_signal sig = nth_signal((enum trust_dim)t, i);
            ck_assert_int_eq(trust_apply_signal(&expect, &sig, err, sizeof err), 0);
        }
    ck_assert_int_eq(s->get(s, "did:mesh:shared", &got, err, sizeof err), TS_OK);
    ck_assert_int_eq(memcmp(&expect, &got, sizeof got), 0);
    trust_store_destroy(s);
}
END_TEST

START_TEST(many_keys_grow_the_table)
{
    struct trust_store *s = trust_store_memory_new(NULL);
    char err[256], key[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "sig-%d", i);
        ck_assert_int_eq(s->remember(s, key, 60000, err, sizeof err), TS_OK);
    }
    for (int i = 0; i < 20000; i += 997) {
        snprintf(key, sizeof key, "sig-%d", i);
        ck_assert_int_eq(s->remember(s, key, 60000, err, sizeof err), TS_EXISTS);
    }
    trust_store_destroy(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("trust_store_memory");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, state_verbs);
    tcase_add_test(tc, signals_match_engine);
    tcase_add_test(tc, challenges_single_use_and_expire);
    tcase_add_test(tc, replay_cache_and_bounds);
    tcase_add_test(tc, listener_hears_changes);
    tcase_add_test(tc, concurrent_signals_equal_sequential);
    tcase_add_test(tc, many_keys_grow_the_table);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
