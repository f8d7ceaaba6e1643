/* test_trust_engine.c — the DESIGN §4 model: worked examples, signal math,
 * rounding, decay, tiers, weights, validation. Expected values are
 * recomputed here independently (integer arithmetic where possible). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/test/check_run.h"
#include "controller/trust_engine.h"

#define HOUR 3600000LL
#define T0 1700000000000LL

static struct trust_state with_dims(double a, double b, double c, double d, double e)
{
    struct trust_state st;
    char err[128];
    ck_assert_int_eq(trust_state_init(&st, 500, NULL, T0, err, sizeof err), 0);
    double v[5] = {a, b, c, d, e};
    memcpy(st.dims, v, sizeof v);
    return st;
}

START_TEST(published_examples)
{
    struct trust_state st = with_dims(92, 88, 85, 60, 78);
    ck_assert_int_eq(trust_score(&st, T0), 827);
    ck_assert_str_eq(trust_tier_name(trust_tier_of(trust_score(&st, T0))), "trusted");
    st = with_dims(15, 25, 40, 35, 20);
    ck_assert_int_eq(trust_score(&st, T0), 263);   /* 262.5 rounds away from zero */
    ck_assert_str_eq(trust_tier_name(trust_tier_of(trust_score(&st, T0))), "untrusted");
}
END_TEST

/* Every integer dimension combination on a grid, against exact integer math:
 * 10·Σ d·w = Σ d·(w·10000) / 1000, rounded half up (all values are ≥ 0). */
START_TEST(rounding_half_away_matches_exact_decimal)
{
    static const long w10000[5] = {2500, 2500, 2000, 1500, 1500};
    long checked = 0;
    for (int a = 0; a <= 100; a += 7)
        for (int c = 0; c <= 100; c += 3)
            for (int e = 0; e <= 100; e++) {
                struct trust_state st = with_dims(a, 100 - a, c, (a + c) % 101, e);
                long exact = 0;
                for (int i = 0; i < 5; i++)
                    exact += (long)st.dims[i] * w10000[i];
                long want = (exact + 500) / 1000;
                ck_assert_int_eq(trust_base(&st), want);
                checked++;
            }
    ck_assert_int_gt(checked, 10000);
    ck_assert_double_eq(trust_round(2.5), 3);
    ck_assert_double_eq(trust_round(-2.5), -3);
    ck_assert_double_eq(trust_round(2.4999), 2);
    ck_assert_double_eq(trust_round(13.499999999999998), 14);
}
END_TEST

START_TEST(initial_score_is_representable)
{
    char err[128];
    for (int s = 0; s <= 1000; s++) {
        struct trust_state st;
        ck_assert_int_eq(trust_state_init(&st, s, NULL, T0, err, sizeof err), 0);
        ck_assert_int_eq(trust_score(&st, T0), s);
    }
    struct trust_state st;
    ck_assert_int_eq(trust_state_init(&st, 1001, NULL, T0, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "initialScore"));
    ck_assert_int_eq(trust_state_init(&st, -1, NULL, T0, err, sizeof err), -1);
}
END_TEST

START_TEST(signal_math)
{
    char err[128];
    struct trust_state st = with_dims(50, 50, 50, 50, 50);
    struct trust_signal sig = {TRUST_DIM_OUTPUT_QUALITY, 1.0, 1.0, T0};
    ck_assert_int_eq(trust_apply_signal(&st, &sig, err, sizeof err), 0);
    ck_assert_double_eq_tol(st.dims[TRUST_DIM_OUTPUT_QUALITY], 55.0, 1e-12);   /* 50·0.9 + 100·0.1 */
    ck_assert_double_eq(st.dims[TRUST_DIM_POLICY_COMPLIANCE], 50);
    /* weight 2.5 -> a = 0.25: 55·0.75 + 100·0.2·0.25 = 46.25 */
    sig.value = 0.2;
    sig.weight = 2.5;
    ck_assert_int_eq(trust_apply_signal(&st, &sig, err, sizeof err), 0);
    ck_assert_double_eq_tol(st.dims[TRUST_DIM_OUTPUT_QUALITY], 46.25, 1e-12);
    /* weight ≥ 10 -> a = 1: the dimension becomes 100·value */
    sig.value = 0.3;
    sig.weight = 50;
    ck_assert_int_eq(trust_apply_signal(&st, &sig, err, sizeof err), 0);
    ck_assert_double_eq_tol(st.dims[TRUST_DIM_OUTPUT_QUALITY], 30, 1e-12);
    /* weight 0 changes nothing */
    sig.weight = 0;
    sig.value = 1;
    ck_assert_int_eq(trust_apply_signal(&st, &sig, err, sizeof err), 0);
    ck_assert_double_eq_tol(st.dims[TRUST_DIM_OUTPUT_QUALITY], 30, 1e-12);
    /* many positive signals converge on 100 and never exceed it */
    sig.weight = 1;
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(trust_apply_signal(&st, &sig, err, sizeof err), 0);
    ck_assert(st.dims[TRUST_DIM_OUTPUT_QUALITY] <= 100);
    ck_assert(st.dims[TRUST_DIM_OUTPUT_QUALITY] > 99.99);
}
END_TEST

START_TEST(signal_validation)
{
    char err[128];
    struct trust_state st = with_dims(50, 50, 50, 50, 50);
    struct trust_state before = st;
    struct trust_signal bad[] = {
        {TRUST_DIM_SECURITY_POSTURE, 1.5, 1, T0},
        {TRUST_DIM_SECURITY_POSTURE, -0.1, 1, T0},
        {TRUST_DIM_SECURITY_POSTURE, NAN, 1, T0},
        {TRUST_DIM_SECURITY_POSTURE, 0.5, -1, T0},
        {TRUST_DIM_SECURITY_POSTURE, 0.5, INFINITY, T0},
        {(enum trust_dim)7, 0.5, 1, T0},
    };
    const char *field[] = {"value", "value", "value", "weight", "weight", "dimension"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_eq(trust_apply_signal(&st, &bad[i], err, sizeof err), -1);
        ck_assert_msg(strncmp(err, field[i], strlen(field[i])) == 0, "case %zu: %s", i, err);
    }
    ck_assert_int_eq(memcmp(&st, &before, sizeof st), 0);
}
END_TEST

START_TEST(names_round_trip)
{
    for (int i = 0; i < TRUST_DIM_COUNT; i++) {
        enum trust_dim d;
        ck_assert_int_eq(trust_dim_parse(trust_dim_name((enum trust_dim)i), &d), 0);
        ck_assert_int_eq(d, i);
    }
    enum trust_dim d;
    ck_assert_int_eq(trust_dim_parse("policy", &d), -1);
    ck_assert_int_eq(trust_dim_parse(NULL, &d), -1);
    ck_assert_str_eq(trust_dim_name(TRUST_DIM_POLICY_COMPLIANCE), "policyCompliance");
    ck_assert_str_eq(trust_dim_name(TRUST_DIM_COLLABORATION_HEALTH), "collaborationHealth");
    for (int t = 0; t < TRUST_TIER_COUNT; t++) {
        enum trust_tier tt;
        ck_assert_int_eq(trust_tier_parse(trust_tier_name((enum trust_tier)t), &tt), 0);
        ck_assert_int_eq(tt, t);
    }
    enum trust_tier tt;
    ck_assert_int_eq(trust_tier_parse("gold", &tt), -1);
}
END_TEST

START_TEST(tier_boundaries)
{
    ck_assert_int_eq(trust_tier_of(0), TRUST_TIER_UNTRUSTED);
    ck_assert_int_eq(trust_tier_of(299), TRUST_TIER_UNTRUSTED);
    ck_assert_int_eq(trust_tier_of(300), TRUST_TIER_PROBATIONARY);
    ck_assert_int_eq(trust_tier_of(499), TRUST_TIER_PROBATIONARY);
    ck_assert_int_eq(trust_tier_of(500), TRUST_TIER_STANDARD);
    ck_assert_int_eq(trust_tier_of(699), TRUST_TIER_STANDARD);
    ck_assert_int_eq(trust_tier_of(700), TRUST_TIER_TRUSTED);
    ck_assert_int_eq(trust_tier_of(899), TRUST_TIER_TRUSTED);
    ck_assert_int_eq(trust_tier_of(900), TRUST_TIER_VERIFIED_PARTNER);
    ck_assert_int_eq(trust_tier_of(1000), TRUST_TIER_VERIFIED_PARTNER);
    ck_assert_str_eq(trust_tier_name(TRUST_TIER_VERIFIED_PARTNER), "verified_partner");
}
END_TEST

START_TEST(decay_over_hours)
{
    struct trust_state st = with_dims(92, 88, 85, 60, 78);   /* 827 */
    /* whole hours only: 59 minutes decay nothing, 1h59m one hour's worth */
    ck_assert_int_eq(trust_score(&st, T0 + HOUR - 1), 827);
    ck_assert_int_eq(trust_score(&st, T0 + HOUR), 825);
    ck_assert_int_eq(trust_score(&st, T0 + 2 * HOUR - 1), 825);
    for (long h = 0; h < 500; h++) {
        long want = 827 - 2 * h;
        if (want < 100)
            want = 100;
        ck_assert_int_eq(trust_score(&st, T0 + h * HOUR), want);
    }
    /* the floor holds forever */
    ck_assert_int_eq(trust_score(&st, T0 + 100000 * HOUR), 100);
    /* a clock behind last_positive decays nothing */
    ck_assert_int_eq(trust_score(&st, T0 - 5 * HOUR), 827);
    /* read time only: reading never changes the state */
    ck_assert_int_eq(st.last_positive_ms, T0);
}
END_TEST

START_TEST(decay_floor_above_base_and_fractional_rate)
{
    struct trust_state st = with_dims(5, 5, 5, 5, 5);          /* 50, under the floor of 100 */
    ck_assert_int_eq(trust_score(&st, T0 + 50 * HOUR), 50);
    st = with_dims(50, 50, 50, 50, 50);                        /* 500 */
    st.params.decay_per_hour = 2.5;
    st.params.decay_floor = 0;
    ck_assert_int_eq(trust_score(&st, T0 + 3 * HOUR), 493);   /* 500 − 7.5 = 492.5 -> 493 */
    ck_assert_int_eq(trust_score(&st, T0 + 1000 * HOUR), 0);
}
END_TEST

START_TEST(positive_signal_resets_decay_negative_does_not)
{
    char err[128];
    struct trust_state st = with_dims(50, 50, 50, 50, 50);
    ck_assert_int_eq(trust_score(&st, T0 + 10 * HOUR), 480);
    struct trust_signal neg = {TRUST_DIM_SECURITY_POSTURE, 0.49, 0, T0 + 10 * HOUR};
    ck_assert_int_eq(trust_apply_signal(&st, &neg, err, sizeof err), 0);
    ck_assert_int_eq(st.last_positive_ms, T0);
    ck_assert_int_eq(trust_score(&st, T0 + 10 * HOUR), 480);
    struct trust_signal pos = {TRUST_DIM_SECURITY_POSTURE, 0.5, 0, T0 + 10 * HOUR};
    ck_assert_int_eq(trust_apply_signal(&st, &pos, err, sizeof err), 0);
    ck_assert_int_eq(st.last_positive_ms, T0 + 10 * HOUR);
    ck_assert_int_eq(trust_score(&st, T0 + 10 * HOUR), 500);
    ck_assert_int_eq(trust_score(&st, T0 + 11 * HOUR), 498);
    /* an older positive signal (another replica's clock) never moves it back */
    pos.at_ms = T0 + 3 * HOUR;
    ck_assert_int_eq(trust_apply_signal(&st, &pos, err, sizeof err), 0);
    ck_assert_int_eq(st.last_positive_ms, T0 + 10 * HOUR);
}
END_TEST

START_TEST(weights_override)
{
    char err[128];
    struct trust_params p;
    trust_params_default(&p);
    double w[5] = {1, 0, 0, 0, 0};
    memcpy(p.weights, w, sizeof w);
    struct trust_state st;
    ck_assert_int_eq(trust_state_init(&st, 500, &p, T0, err, sizeof err), 0);
    double d[5] = {92, 10, 10, 10, 10};
    memcpy(st.dims, d, sizeof d);
    ck_assert_int_eq(trust_score(&st, T0), 920);
    ck_assert_int_eq(trust_tier_of(trust_score(&st, T0)), TRUST_TIER_VERIFIED_PARTNER);
    /* same dims, default weights: 0.25·92 + 0.75·10 = 30.5 -> 305 */
    trust_params_default(&st.params);
    ck_assert_int_eq(trust_score(&st, T0), 305);
}
END_TEST

START_TEST(params_validation)
{
    char err[128];
    struct trust_params p;
    trust_params_default(&p);
    ck_assert_int_eq(trust_params_check(&p, err, sizeof err), 0);
    p.weights[2] = 0.3;   /* sum 1.1 */
    ck_assert_int_eq(trust_params_check(&p, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "sum to 1"));
    trust_params_default(&p);
    p.weights[0] = 0.2500005;   /* within 1e-6 */
    ck_assert_int_eq(trust_params_check(&p, err, sizeof err), 0);
    p.weights[0] = -0.25;
    ck_assert_int_eq(trust_params_check(&p, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "weights.policyCompliance"));
    trust_params_default(&p);
    p.decay_per_hour = -1;
    ck_assert_int_eq(trust_params_check(&p, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "decayPerHour"));
    trust_params_default(&p);
    p.decay_floor = 2000;
    ck_assert_int_eq(trust_params_check(&p, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "decayFloor"));
    struct trust_state st = with_dims(50, 50, 101, 50, 50);
    ck_assert_int_eq(trust_state_check(&st, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "dimensions.outputQuality"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("trust_engine");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, published_examples);
    tcase_add_test(tc, rounding_half_away_matches_exact_decimal);
    tcase_add_test(tc, initial_score_is_representable);
    tcase_add_test(tc, signal_math);
    tcase_add_test(tc, signal_validation);
    tcase_add_test(tc, names_round_trip);
    tcase_add_test(tc, tier_boundaries);
    tcase_add_test(tc, decay_over_hours);
    tcase_add_test(tc, decay_floor_above_base_and_fractional_rate);
    tcase_add_test(tc, positive_signal_resets_decay_negative_does_not);
    tcase_add_test(tc, weights_override);
    tcase_add_test(tc, params_validation);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
