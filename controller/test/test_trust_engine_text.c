/* test_trust_engine_text.c — trust_real_format is snprintf's "%.17g" and
 * trust_real_parse is strtod, to the byte and to the bit, over edge values,
 * exact ties, and a few hundred thousand random doubles and decimals. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test/check_run.h"
#include "controller/trust_engine_text.h"

static void format_is_glibc(double v) {
    char mine[TRUST_REAL_BUFSZ], want[TRUST_REAL_BUFSZ];
    int n = trust_real_format(v, mine);
    snprintf(want, sizeof want, "%.17g", v);
    ck_assert_msg(strcmp(mine, want) == 0, "%a: \"%s\", want \"%s\"", v, mine, want);
    ck_assert_int_eq(n, (int)strlen(want));
}

static void parse_is_glibc(const char *s) {
    double mine = 12345, want;
    char *end;
    int rc = trust_real_parse(s, &mine);
    want = strtod(s, &end);
    int ok = end != s && *end == '\0';
    ck_assert_msg(rc == (ok ? 0 : -1), "\"%s\": rc %d", s, rc);
    if (ok) ck_assert_msg(memcmp(&mine, &want, sizeof mine) == 0, "\"%s\": %a, want %a", s, mine, want);
}

/* 53 random mantissa bits at a random binary exponent in [lo, lo + span). */
static double random_double(unsigned *seed, int lo, int span) {
    uint64_t bits = ((uint64_t)rand_r(seed) << 31 ^ (uint64_t)rand_r(seed)) & ((1ULL << 53) - 1);
    return ldexp((double)bits, lo + (int)((unsigned)rand_r(seed) % (unsigned)span) - 53);
}

START_TEST(format_edges) {
    static const double edge[] = {0, -0.0, 1, 100, 50, 0.1, 0.25, 0.15, 1e-3, 0.00099999999999999998, 1e-5,
                                  1.5e-7, 99.999999999999986, 999999999999999.88, 1e15, 1e17, 12345678901234567.0,
                                  4.9406564584124654e-324, 2.2250738585072014e-308, 1e20, 33.333333333333336,
                                  -12.5, 1e300, 9.9999999999999995e-4, 0.00099999999999999999};
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++) format_is_glibc(edge[i]);
    format_is_glibc(INFINITY);
    format_is_glibc(-INFINITY);
    format_is_glibc(NAN);
}
END_TEST

/* Exact ties at the 17th digit (binary fractions with 18 significant
 * decimal digits ending in 5) round to even, as glibc does. */
START_TEST(format_ties_to_even) {
    for (int k = 1; k <= 30; k++)
        for (long i = 1; i < 600; i++)
            for (int j = 1; j < 8; j += 2) {
                format_is_glibc(ldexp((double)(i * 1361LL + 1), -k) + ldexp(j, -k));
                format_is_glibc((double)(i * 7919 % 1000003) * 1e3 + ldexp(j, -k));
            }
}
END_TEST

START_TEST(format_random) {
    unsigned seed = 11;
    for (int i = 0; i < 80000; i++) {
        format_is_glibc(random_double(&seed, -15, 70));             /* the fast range and around it */
        format_is_glibc((double)(rand_r(&seed) % 100001) / 1000.0);   /* short decimals */
    }
    for (int i = 0; i < 5000; i++) format_is_glibc(random_double(&seed, -1070, 2090));   /* everything */
}
END_TEST

START_TEST(parse_edges) {
    static const char *const s[] = {"0", "-0", "0.0", "-0.0", "1", "100", "2", "0.25", "0.14999999999999999", "0.2",
                                    "0.1", ".5", "1.", "00.5", "0.05", "9007199254740991", "9007199254740993",
                                    "18446744073709551615", "1234567890123456789", "12345678901234567890",
                                    "0.1000000000000000055511151231257827", "1e-05", "1E3", "1e400", "-1e400",
                                    "1e-400", "4.9406564584124654e-324", "0.0000000000000000001", "nan", "inf",
                                    "0x1p3", " 1", "+1", "1 ", "", "-", ".", "1x", "1..2", "--1", "1.2.3",
                                    "1700000000000", "99.999999999999986", "33.333333333333336"};
    for (size_t i = 0; i < sizeof s / sizeof *s; i++) parse_is_glibc(s[i]);
}
END_TEST

START_TEST(parse_random) {
    unsigned seed = 13;
    char text[64];
    for (int i = 0; i < 80000; i++) {
        /* "%.17g" texts read back to the same double */
        double v = random_double(&seed, -15, 70), back;
        snprintf(text, sizeof text, "%.17g", v);
        ck_assert_int_eq(trust_real_parse(text, &back), 0);
        ck_assert_msg(memcmp(&v, &back, sizeof v) == 0, "\"%s\" read as %a, was %a", text, back, v);
        /* and random decimals of up to 21 digits, the point anywhere */
        int nd = 1 + rand_r(&seed) % 21, at = rand_r(&seed) % (nd + 1), n = 0;
        if (rand_r(&seed) % 4 == 0) text[n++] = '-';
        for (int d = 0; d < nd; d++) {
            if (d == at) text[n++] = '.';
            text[n++] = (char)('0' + rand_r(&seed) % 10);
        }
        text[n] = '\0';
        parse_is_glibc(text);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("trust_engine_text");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, format_edges);
    tcase_add_test(tc, format_ties_to_even);
    tcase_add_test(tc, format_random);
    tcase_add_test(tc, parse_edges);
    tcase_add_test(tc, parse_random);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
