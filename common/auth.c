/* auth.c — builds, parses and verifies Ed25519-Timestamp Authorization
 * headers (see auth.h for the scheme).
 *
 * The parser is the network-facing part: it works on (pointer, length), never
 * reads past len, copies only fields whose length it has checked, and names
 * what is wrong so a client can fix its request. */
#include "common/auth.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define SCHEME_LEN (sizeof AUTH_SCHEME - 1)
#define SIGNED_MAX (AUTH_METHOD_MAX + AUTH_PATH_MAX + AUTH_TIME_MAX + 64 + 4)

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm);
 * avoids timegm's normalisation of out-of-range fields. */
static long long days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m) {
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* Reads n decimal digits at s; -1 if any is not a digit. */
static int digits(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int auth_time_parse(const char *s, size_t len, time_t *out) {
    if (len < 20 || len > AUTH_TIME_MAX) return -1;
    if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        se < 0 || se > 59 || d > days_in_month(y, mo))
        return -1;
    size_t i = 19;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9') i++;
        if (i == start || i - start > 9) return -1;
    }
    long long offset = 0;
    if (i + 1 == len && s[i] == 'Z') {
        offset = 0;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59) return -1;
        offset = (s[i] == '+' ? 1 : -1) * (oh * 3600LL + om * 60LL);
    } else {
        return -1;
    }
    long long t = days_from_civil(y, mo, d) * 86400LL + h * 3600LL + mi * 60LL + se - offset;
    *out = (time_t)t;
    return 0;
}

int auth_time_format(time_t t, char *out, size_t outlen) {
    struct tm tm;
    if (!gmtime_r(&t, &tm)) return -1;
    size_t n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return n == 20 ? 0 : -1;
}

/* Method: 1..AUTH_METHOD_MAX upper-case letters. */
static int method_ok(const char *m) {
    size_t n = strlen(m);
    if (n == 0 || n > AUTH_METHOD_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (m[i] < 'A' || m[i] > 'Z') return 0;
    return 1;
}

/* Path: starts with '/', 1..AUTH_PATH_MAX visible ASCII characters. */
static int path_ok(const char *p) {
    size_t n = strnlen(p, AUTH_PATH_MAX + 1);
    if (n == 0 || n > AUTH_PATH_MAX || p[0] != '/') return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f) return 0;
    return 1;
}

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static void fetch_sha256(void) { sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); }

/* The verifier's SHA-256 of a request body: OpenSSL's (SHA-NI / AVX2
 * code) with the algorithm fetched once, 0.35 us for a signal's body
 * against libsodium's portable 1.6 us; libsodium's when OpenSSL cannot give
 * it. Signers (the sidecar) keep libsodium's: the first EVP call loads
 * OpenSSL's providers, +1.6 MiB RSS in a sidecar that has no TLS. */
static void verifier_sha256(const void *body, size_t len, unsigned char h[crypto_hash_sha256_BYTES]) {
    pthread_once(&sha256_once, fetch_sha256);
    if (!sha256_md || EVP_Digest(body, len, h, NULL, sha256_md, NULL) != 1)
        crypto_hash_sha256(h, body, len);
}

/* "<METHOD> <path> <time> <hex body_hash>" into buf (SIGNED_MAX). Length or -1. */
static int signed_string(const char *method, const char *path, const char *time_text,
                         const unsigned char h[crypto_hash_sha256_BYTES], char *buf) {
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, h, crypto_hash_sha256_BYTES);
    int n = snprintf(buf, SIGNED_MAX, "%s %s %s %s", method, path, time_text, hex);
    return (n < 0 || n >= SIGNED_MAX) ? -1 : n;
}

/* Signs the request with time text t and writes the header value. */
static int build_with_time(const unsigned char sk[ID_SK_LEN], const char *did, const char *method,
                           const char *path, const void *body, size_t body_len, const char *t,
                           char *out, size_t outlen) {
    char msg[SIGNED_MAX], sig_b64[ID_SIG_B64_BUFSZ];
    unsigned char sig[ID_SIG_LEN], h[crypto_hash_sha256_BYTES];
    if (!identity_did_valid(did) || !method_ok(method) || !path_ok(path)) return -1;
    crypto_hash_sha256(h, body_len ? body : (const void *)"", body_len);
    int n = signed_string(method, path, t, h, msg);
    if (n < 0 || crypto_sign_detached(sig, NULL, (const unsigned char *)msg, (size_t)n, sk) != 0)
        return -1;
    if (b64_encode(sig, sizeof sig, sig_b64, sizeof sig_b64) != 0) return -1;
    int w = snprintf(out, outlen, "%s %s %s %s", AUTH_SCHEME, did, t, sig_b64);
    return (w < 0 || (size_t)w >= outlen) ? -1 : 0;
}

int auth_build_header(const unsigned char sk[ID_SK_LEN], const char *did, const char *method,
                      const char *path, const void *body, size_t body_len, time_t now,
                      char *out, size_t outlen) {
    char t[AUTH_TIME_BUFSZ];
    if (auth_time_format(now, t, sizeof t) != 0) return -1;
    return build_with_time(sk, did, method, path, body, body_len, t, out, outlen);
}

int auth_build_header_us(const unsigned char sk[ID_SK_LEN], const char *did, const char *method,
                         const char *path, const void *body, size_t body_len, long long now_us,
                         char *out, size_t outlen) {
    char t[AUTH_TIME_BUFSZ];
    if (now_us < 0 || auth_time_format((time_t)(now_us / 1000000), t, sizeof t) != 0) return -1;
    /* "...:SSZ" → "...:SS.uuuuuuZ" */
    snprintf(t + 19, sizeof t - 19, ".%06lldZ", now_us % 1000000);
    return build_with_time(sk, did, method, path, body, body_len, t, out, outlen);
}

/* Splits value after the scheme into 3 fields at single spaces. */
static int split3(const char *s, size_t len, const char *f[3], size_t fl[3]) {
    size_t i = 0;
    for (int k = 0; k < 3; k++) {
        size_t start = i;
        while (i < len && s[i] != ' ') i++;
        if (i == start) return -1;       /* empty field: double or trailing space */
        f[k] = s + start;
        fl[k] = i - start;
        if (k < 2) {
            if (i == len) return -1;     /* too few fields */
            i++;
        }
    }
    return i == len ? 0 : -1;            /* anything left: a fourth field */
}

int auth_parse_header(const char *value, size_t len, struct auth_header *out,
                      const char **reason) {
    const char *why = NULL;
    const char *f[3];
    size_t fl[3];
    memset(out, 0, sizeof *out);
    if (len > AUTH_HEADER_MAX) why = "authorization header too long";
    else if (len < SCHEME_LEN + 1 || memcmp(value, AUTH_SCHEME " ", SCHEME_LEN + 1) != 0)
        why = "authorization scheme is not Ed25519-Timestamp";
    if (!why) {
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)value[i] < 0x20 || (unsigned char)value[i] >= 0x7f) {
                why = "authorization header has a control or non-ASCII character";
                break;
            }
    }
    if (!why && split3(value + SCHEME_LEN + 1, len - SCHEME_LEN - 1, f, fl) != 0)
        why = "authorization header needs <did> <time> <signature> separated by single spaces";
    if (!why) {
        if (fl[0] != ID_DID_LEN) why = "authorization DID is not did:mesh:<32 hex>";
        else {
            memcpy(out->did, f[0], ID_DID_LEN);
            if (!identity_did_valid(out->did)) why = "authorization DID is not did:mesh:<32 hex>";
        }
    }
    if (!why) {
        if (fl[1] > AUTH_TIME_MAX || auth_time_parse(f[1], fl[1], &out->ts) != 0)
            why = "authorization time is not RFC 3339 (YYYY-MM-DDTHH:MM:SSZ)";
        else
            memcpy(out->time, f[1], fl[1]);
    }
    if (!why && (fl[2] != ID_SIG_B64_LEN || b64_decode_exact(f[2], fl[2], out->sig, ID_SIG_LEN) != 0))
        why = "authorization signature is not base64 of 64 bytes";
    else if (!why)
        memcpy(out->sig_b64, f[2], ID_SIG_B64_LEN);
    if (why) {
        memset(out, 0, sizeof *out);
        if (reason) *reason = why;
        return -1;
    }
    return 0;
}

int auth_verify(const struct auth_header *h, const unsigned char pk[ID_PUB_LEN],
                const unsigned char *prev_pk, const char *method, const char *path,
                const void *body, size_t body_len, time_t now, int *used_prev,
                const char **reason) {
    const char *why = NULL;
    char msg[SIGNED_MAX];
    unsigned char digest[crypto_hash_sha256_BYTES];
    int n = -1;
    if (used_prev) *used_prev = 0;
    if (!method_ok(method)) why = "request method is not an upper-case token";
    else if (!path_ok(path)) why = "request path is empty, too long or has spaces";
    else if ((long long)now - (long long)h->ts > AUTH_WINDOW_SECONDS)
        why = "authorization time is more than 300 s in the past";
    else if ((long long)h->ts - (long long)now > AUTH_WINDOW_SECONDS)
        why = "authorization time is more than 300 s in the future";
    if (!why) {
        verifier_sha256(body_len ? body : (const void *)"", body_len, digest);
        if ((n = signed_string(method, path, h->time, digest, msg)) < 0) why = "request too long to verify";
    }
    if (!why) {
        if (identity_verify(pk, msg, (size_t)n, h->sig) == 0) return 0;
        if (prev_pk && identity_verify(prev_pk, msg, (size_t)n, h->sig) == 0) {
            if (used_prev) *used_prev = 1;
            return 0;
        }
        why = "authorization signature does not verify";
    }
    if (reason) *reason = why;
    return -1;
}
