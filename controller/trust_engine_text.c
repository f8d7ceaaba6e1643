/* trust_engine_text.c — "%.17g" and strtod for trust numbers, exactly and
 * without glibc's multi-precision paths in the common cases (see
 * trust_engine_text.h).
 *
 * Both directions are one integer division: a double is m · 2^e (m < 2^53),
 * a decimal is D · 10^k (D < 10^19). Formatting computes D = m · 10^q >> -e
 * and rounds with the remainder; parsing computes m from D · 2^s / 10^q and
 * rounds with the remainder. The exact remainders are what make the result
 * glibc's to the last bit: ties go to even, as its default rounding does. */
#include "controller/trust_engine_text.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint64_t ten[20] = {1ULL,
                                 10ULL,
                                 100ULL,
                                 1000ULL,
                                 10000ULL,
                                 100000ULL,
                                 1000000ULL,
                                 10000000ULL,
                                 100000000ULL,
                                 1000000000ULL,
                                 10000000000ULL,
                                 100000000000ULL,
                                 1000000000000ULL,
                                 10000000000000ULL,
                                 100000000000000ULL,
                                 1000000000000000ULL,
                                 10000000000000000ULL,
                                 100000000000000000ULL,
                                 1000000000000000000ULL,
                                 10000000000000000000ULL};

/* The 17 significant digits of v (1e-3 <= v < 1e15) as D with
 * 10^16 <= D < 10^17, and its decimal exponent x (v ≈ D · 10^(x-16)). 0,
 * or -1 when v is outside that range. */
static int digits17(double v, uint64_t *dout, int *xout) {
    if (!(v >= 1e-3 && v < 1e15)) return -1;
    int e2;
    double f = frexp(v, &e2);                 /* v = f · 2^e2, f in [0.5, 1) */
    uint64_t m = (uint64_t)ldexp(f, 53);      /* exact: 53 bits */
    int shift = 53 - e2;                      /* v = m / 2^shift; 3 <= shift <= 63 in range */
    int x = (int)floor(log10(v));             /* may be one off: corrected below */
    for (int tries = 0; tries < 3; tries++) {
        int q = 16 - x;                       /* D = round(v · 10^q) */
        if (q < 0 || q > 19) return -1;
        unsigned __int128 n = (unsigned __int128)m * ten[q];
        unsigned __int128 half = (unsigned __int128)1 << (shift - 1), rem = n & ((half << 1) - 1);
        uint64_t d = (uint64_t)(n >> shift);
        if (d < ten[16]) {
            x--;
            continue;
        }
        if (d >= ten[17]) {
            x++;
            continue;
        }
        if (rem > half || (rem == half && (d & 1))) d++;
        if (d == ten[17]) {                   /* rounded up to one more digit */
            d = ten[16];
            x++;
        }
        *dout = d;
        *xout = x;
        return 0;
    }
    return -1;
}

int trust_real_format(double v, char out[TRUST_REAL_BUFSZ]) {
    uint64_t d;
    int x;
    if (digits17(v, &d, &x) != 0 || x < -4 || x >= 17)   /* %g's fixed notation only */
        return snprintf(out, TRUST_REAL_BUFSZ, "%.17g", v);
    char dig[17];
    for (int i = 16; i >= 0; i--, d /= 10) dig[i] = (char)('0' + d % 10);
    int ipart = x >= 0 ? x + 1 : 0;           /* digits before the point */
    int last = 16;                            /* %g drops trailing zeros of the fraction */
    while (last >= ipart && dig[last] == '0') last--;
    int n = 0;
    if (x < 0) {
        out[n++] = '0';
        out[n++] = '.';
        for (int i = 0; i < -x - 1; i++) out[n++] = '0';
        memcpy(out + n, dig, (size_t)last + 1);
        n += last + 1;
    } else {
        memcpy(out + n, dig, (size_t)ipart);
        n += ipart;
        if (last >= ipart) {
            out[n++] = '.';
            memcpy(out + n, dig + ipart, (size_t)(last + 1 - ipart));
            n += last + 1 - ipart;
        }
    }
    out[n] = '\0';
    return n;
}

/* Reads "[-]digits[.digits]" of at most 19 significant digits as D · 10^k.
 * 0, or -1 when s is anything else. */
static int read_decimal(const char *s, int *neg, uint64_t *dout, int *kout) {
    uint64_t d = 0;
    int k = 0, ndig = 0, sig = 0, point = 0;
    *neg = *s == '-';
    s += *neg;
    for (; *s; s++) {
        if (*s == '.' && !point) {
            point = 1;
            continue;
        }
        if (*s < '0' || *s > '9') return -1;
        ndig++;
        if (d == 0 && *s == '0') {            /* leading zeros are not significant */
            k -= point;
            continue;
        }
        if (++sig > 19) return -1;
        d = d * 10 + (uint64_t)(*s - '0');
        k -= point;
    }
    if (ndig == 0) return -1;
    *dout = d;
    *kout = k;
    return 0;
}

static int bit_length(unsigned __int128 v) {
    int n = 0;
    for (; v >> 64; v >>= 64) n += 64;
    uint64_t lo = (uint64_t)v;
    return lo ? n + 64 - __builtin_clzll(lo) : n;
}

int trust_real_parse(const char *s, double *out) {
    int neg, k;
    uint64_t d;
    if (read_decimal(s, &neg, &d, &k) == 0) {
        if (d == 0) {
            *out = neg ? -0.0 : 0.0;
            return 0;
        }
        if (k >= 0 && k <= 19 && d <= ((1ULL << 53) - 1) / ten[k]) {   /* an integer below 2^53: exact */
            *out = (double)(d * ten[k]) * (neg ? -1 : 1);
            return 0;
        }
        if (k < 0 && k >= -19) {
            int s2 = 127 - bit_length(d);                             /* D · 2^s2 < 2^127 */
            unsigned __int128 n = (unsigned __int128)d << s2, p = ten[-k];
            unsigned __int128 q = n / p, r = n % p;                   /* v = (q + r/p) / 2^s2 */
            int extra = bit_length(q) - 53;                           /* >= 10: q has >= 63 bits */
            uint64_t mant = (uint64_t)(q >> extra);
            unsigned __int128 below = q & (((unsigned __int128)1 << extra) - 1),
                              half = (unsigned __int128)1 << (extra - 1);
            if (below > half || (below == half && (r || (mant & 1)))) mant++;   /* ties to even */
            *out = ldexp((double)mant, extra - s2) * (neg ? -1 : 1);
            return 0;
        }
    }
    char *end;
    *out = strtod(s, &end);
    return end != s && *end == '\0' ? 0 : -1;
}
