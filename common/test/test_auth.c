/* test_auth.c — Ed25519-Timestamp headers (build, strict parse, verify with
 * time window and previous key) and the single-use replay cache. */
#include <check.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/auth.h"
#include "common/replay_cache.h"
#include "common/test/check_run.h"

#define NOW ((time_t)1700000000)   /* 2023-11-14T22:13:20Z */

static struct identity id;

static void setup(void) {
    ck_assert_int_eq(identity_generate(&id), 0);
}

static void teardown(void) {
    identity_wipe(&id);
}

static void build(const char *method, const char *path, const char *body, time_t t, char *out) {
    ck_assert_int_eq(auth_build_header(id.sk, id.did, method, path, body, body ? strlen(body) : 0,
                                       t, out, AUTH_HEADER_MAX), 0);
}

static void parse_ok(const char *hdr, struct auth_header *h) {
    const char *why = NULL;
    ck_assert_msg(auth_parse_header(hdr, strlen(hdr), h, &why) == 0, "parse failed: %s", why);
}

/* Verifies and returns the reason (NULL when accepted). */
static const char *verify(const struct auth_header *h, const char *method, const char *path,
                          const char *body, time_t now) {
    const char *why = NULL;
    int rc = auth_verify(h, id.pk, NULL, method, path, body, body ? strlen(body) : 0, now, NULL, &why);
    ck_assert_int_eq(rc == 0, why == NULL);
    return rc == 0 ? NULL : why;
}

START_TEST(round_trip) {
    char hdr[AUTH_HEADER_MAX];
    struct auth_header h;
    const char *body = "{\"agent_did\":\"x\"}";
    build("POST", "/api/v1/handshake/challenge", body, NOW, hdr);
    char want_prefix[128];
    snprintf(want_prefix, sizeof want_prefix, "Ed25519-Timestamp %s 2023-11-14T22:13:20Z ", id.did);
    ck_assert_int_eq(strncmp(hdr, want_prefix, strlen(want_prefix)), 0);
    parse_ok(hdr, &h);
    ck_assert_str_eq(h.did, id.did);
    ck_assert_str_eq(h.time, "2023-11-14T22:13:20Z");
    ck_assert_int_eq(h.ts, NOW);
    ck_assert_ptr_null(verify(&h, "POST", "/api/v1/handshake/challenge", body, NOW));
    /* No body: sha256 of the empty string. */
    build("GET", "/api/v1/agents?limit=5", NULL, NOW, hdr);
    parse_ok(hdr, &h);
    ck_assert_ptr_null(verify(&h, "GET", "/api/v1/agents?limit=5", NULL, NOW));
    ck_assert_ptr_null(verify(&h, "GET", "/api/v1/agents?limit=5", "", NOW));
}
END_TEST

/* The signature covers exactly the documented string: check it independently. */
START_TEST(signed_string_is_documented_one) {
    char hdr[AUTH_HEADER_MAX];
    struct auth_header h;
    const char *body = "payload";
    build("PUT", "/x", body, NOW, hdr);
    parse_ok(hdr, &h);
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)body, strlen(body), d);
    char msg[256];
    int off = snprintf(msg, sizeof msg, "PUT /x %s ", h.time);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) off += snprintf(msg + off, sizeof msg - (size_t)off, "%02x", d[i]);
    ck_assert_int_eq(identity_verify(id.pk, msg, strlen(msg), h.sig), 0);
}
END_TEST

START_TEST(tampering_detected) {
    char hdr[AUTH_HEADER_MAX];
    struct auth_header h;
    build("POST", "/api/v1/signals", "{\"v\":1}", NOW, hdr);
    parse_ok(hdr, &h);
    const char *bad = "authorization signature does not verify";
    ck_assert_str_eq(verify(&h, "PUT", "/api/v1/signals", "{\"v\":1}", NOW), bad);
    ck_assert_str_eq(verify(&h, "POST", "/api/v1/signal", "{\"v\":1}", NOW), bad);
    ck_assert_str_eq(verify(&h, "POST", "/api/v1/signals?x=1", "{\"v\":1}", NOW), bad);
    ck_assert_str_eq(verify(&h, "POST", "/api/v1/signals", "{\"v\":2}", NOW), bad);
    ck_assert_str_eq(verify(&h, "POST", "/api/v1/signals", NULL, NOW), bad);

    /* Time changed in the header (still within the window): signature breaks. */
    char *t = strstr(hdr, "22:13:20Z");
    ck_assert_ptr_nonnull(t);
    t[7] = '1';                                         /* ...22:13:21Z */
    parse_ok(hdr, &h);
    ck_assert_str_eq(verify(&h, "POST", "/api/v1/signals", "{\"v\":1}", NOW), bad);

    /* Same instant, written differently: the text is signed, not the instant. */
    build("POST", "/p", NULL, NOW, hdr);
    t = strstr(hdr, "22:13:20Z");
    memmove(t + 14, t + 9, strlen(t + 9) + 1);
    memcpy(t + 8, "+00:00", 6);
    parse_ok(hdr, &h);
    ck_assert_int_eq(h.ts, NOW);
    ck_assert_str_eq(verify(&h, "POST", "/p", NULL, NOW), bad);

    /* Another key. */
    struct identity other;
    ck_assert_int_eq(identity_generate(&other), 0);
    build("POST", "/p", NULL, NOW, hdr);
    parse_ok(hdr, &h);
    const char *why = NULL;
    ck_assert_int_eq(auth_verify(&h, other.pk, NULL, "POST", "/p", NULL, 0, NOW, NULL, &why), -1);
    ck_assert_str_eq(why, bad);
    identity_wipe(&other);
}
END_TEST

START_TEST(time_window_edges) {
    char hdr[AUTH_HEADER_MAX];
    struct auth_header h;
    build("GET", "/a", NULL, NOW, hdr);
    parse_ok(hdr, &h);
    ck_assert_ptr_null(verify(&h, "GET", "/a", NULL, NOW + 300));
    ck_assert_str_eq(verify(&h, "GET", "/a", NULL, NOW + 301),
                     "authorization time is more than 300 s in the past");
    ck_assert_ptr_null(verify(&h, "GET", "/a", NULL, NOW - 300));
    ck_assert_str_eq(verify(&h, "GET", "/a", NULL, NOW - 301),
                     "authorization time is more than 300 s in the future");
}
END_TEST

START_TEST(previous_key_during_grace) {
    struct identity next;
    char proof[ID_SIG_B64_BUFSZ], hdr[AUTH_HEADER_MAX];
    struct auth_header h;
    const char *why = NULL;
    int used_prev = -1;
    ck_assert_int_eq(identity_rotate(&id, &next, proof, sizeof proof), 0);
    build("GET", "/a", NULL, NOW, hdr);                 /* signed with the OLD key */
    parse_ok(hdr, &h);
    ck_assert_int_eq(auth_verify(&h, next.pk, id.pk, "GET", "/a", NULL, 0, NOW, &used_prev, &why), 0);
    ck_assert_int_eq(used_prev, 1);
    ck_assert_int_eq(auth_verify(&h, next.pk, NULL, "GET", "/a", NULL, 0, NOW, &used_prev, &why), -1);
    ck_assert_int_eq(used_prev, 0);
    ck_assert_int_eq(auth_build_header(next.sk, next.did, "GET", "/a", NULL, 0, NOW, hdr, sizeof hdr), 0);
    parse_ok(hdr, &h);
    ck_assert_int_eq(auth_verify(&h, next.pk, id.pk, "GET", "/a", NULL, 0, NOW, &used_prev, &why), 0);
    ck_assert_int_eq(used_prev, 0);
    identity_wipe(&next);
}
END_TEST

/* Deterministic signatures: same request, same second → same header (the
 * replay cache would refuse the second); microsecond times tell them apart. */
START_TEST(microsecond_times_make_repeats_distinct) {
    char a[AUTH_HEADER_MAX], b[AUTH_HEADER_MAX];
    struct auth_header h;
    build("POST", "/api/v1/signals", "{}", NOW, a);
    build("POST", "/api/v1/signals", "{}", NOW, b);
    ck_assert_str_eq(a, b);
    long long us = (long long)NOW * 1000000 + 123;
    ck_assert_int_eq(auth_build_header_us(id.sk, id.did, "POST", "/api/v1/signals", "{}", 2, us, a, sizeof a), 0);
    ck_assert_int_eq(auth_build_header_us(id.sk, id.did, "POST", "/api/v1/signals", "{}", 2, us + 1, b, sizeof b), 0);
    ck_assert_str_ne(a, b);
    parse_ok(a, &h);
    ck_assert_str_eq(h.time, "2023-11-14T22:13:20.000123Z");
    ck_assert_int_eq(h.ts, NOW);
    ck_assert_ptr_null(verify(&h, "POST", "/api/v1/signals", "{}", NOW));
    parse_ok(b, &h);
    ck_assert_str_eq(h.time, "2023-11-14T22:13:20.000124Z");
    ck_assert_ptr_null(verify(&h, "POST", "/api/v1/signals", "{}", NOW + 300));
    ck_assert_int_eq(auth_build_header_us(id.sk, id.did, "GET", "/a", NULL, 0, -1, a, sizeof a), -1);
}
END_TEST

START_TEST(build_rejects_bad_input) {
    char hdr[AUTH_HEADER_MAX];
    ck_assert_int_eq(auth_build_header(id.sk, id.did, "get", "/a", NULL, 0, NOW, hdr, sizeof hdr), -1);
    ck_assert_int_eq(auth_build_header(id.sk, id.did, "GET", "a", NULL, 0, NOW, hdr, sizeof hdr), -1);
    ck_assert_int_eq(auth_build_header(id.sk, id.did, "GET", "/a b", NULL, 0, NOW, hdr, sizeof hdr), -1);
    ck_assert_int_eq(auth_build_header(id.sk, "did:mesh:x", "GET", "/a", NULL, 0, NOW, hdr, sizeof hdr), -1);
    ck_assert_int_eq(auth_build_header(id.sk, id.did, "GET", "/a", NULL, 0, NOW, hdr, 100), -1);
}
END_TEST

struct bad_case {
    const char *name;
    const char *tmpl;    /* "$D" did, "$T" time, "$S" sig, "$s" sig minus 4 chars */
    const char *reason;
};

/* Copies tmpl into out, replacing $D, $T, $S and $s (sig without its first 4 chars). */
static void expand(const char *tmpl, const char *did, const char *t, const char *sig,
                   char *out, size_t cap) {
    size_t o = 0;
    for (const char *p = tmpl; *p; p++) {
        const char *sub = NULL;
        if (p[0] == '$' && p[1] == 'D') sub = did;
        else if (p[0] == '$' && p[1] == 'T') sub = t;
        else if (p[0] == '$' && p[1] == 'S') sub = sig;
        else if (p[0] == '$' && p[1] == 's') sub = sig + 4;
        if (sub) {
            size_t n = strlen(sub);
            ck_assert_uint_lt(o + n, cap);
            memcpy(out + o, sub, n);
            o += n;
            p++;
        } else {
            ck_assert_uint_lt(o + 1, cap);
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

START_TEST(malformed_headers) {
    char good[AUTH_HEADER_MAX];
    build("GET", "/a", NULL, NOW, good);
    const char *sig = strrchr(good, ' ') + 1;
    const char *t = "2023-11-14T22:13:20Z";
    const char *fields = "authorization header needs <did> <time> <signature> separated by single spaces";
    const char *baddid = "authorization DID is not did:mesh:<32 hex>";
    const char *badtime = "authorization time is not RFC 3339 (YYYY-MM-DDTHH:MM:SSZ)";
    const char *badsig = "authorization signature is not base64 of 64 bytes";
    const struct bad_case cases[] = {
        {"other scheme", "Bearer $D $T $S", "authorization scheme is not Ed25519-Timestamp"},
        {"lower-case scheme", "ed25519-timestamp $D $T $S", "authorization scheme is not Ed25519-Timestamp"},
        {"scheme only", "Ed25519-Timestamp", "authorization scheme is not Ed25519-Timestamp"},
        {"double space", "Ed25519-Timestamp $D  $T $S", fields},
        {"leading space", "Ed25519-Timestamp  $D $T $S", fields},
        {"trailing space", "Ed25519-Timestamp $D $T $S ", fields},
        {"extra field", "Ed25519-Timestamp $D $T $S x", fields},
        {"missing sig", "Ed25519-Timestamp $D $T", fields},
        {"tab", "Ed25519-Timestamp $D\t$T $S", "authorization header has a control or non-ASCII character"},
        {"newline", "Ed25519-Timestamp $D $T $S\n", "authorization header has a control or non-ASCII character"},
        {"upper-case did", "Ed25519-Timestamp did:mesh:0123456789ABCDEF0123456789abcdef $T $S", baddid},
        {"short did", "Ed25519-Timestamp did:mesh:0123 $T $S", baddid},
        {"other did method", "Ed25519-Timestamp did:web:0123456789abcdef0123456789abcde $T $S", baddid},
        {"epoch time", "Ed25519-Timestamp $D 1700000000 $S", badtime},
        {"no zone", "Ed25519-Timestamp $D 2023-11-14T22:13:20 $S", badtime},
        {"feb 30", "Ed25519-Timestamp $D 2023-02-30T22:13:20Z $S", badtime},
        {"hour 24", "Ed25519-Timestamp $D 2023-11-14T24:13:20Z $S", badtime},
        {"space sep", "Ed25519-Timestamp $D 2023-11-14 22:13:20Z $S", fields},
        {"lower t", "Ed25519-Timestamp $D 2023-11-14t22:13:20Z $S", badtime},
        {"long fraction", "Ed25519-Timestamp $D 2023-11-14T22:13:20.1234567890Z $S", badtime},
        {"empty fraction", "Ed25519-Timestamp $D 2023-11-14T22:13:20.Z $S", badtime},
        {"bad offset", "Ed25519-Timestamp $D 2023-11-14T22:13:20+0100 $S", badtime},
        {"sig not base64", "Ed25519-Timestamp $D $T ****$s", badsig},
        {"sig short", "Ed25519-Timestamp $D $T $s", badsig},
        {"sig url-safe", "Ed25519-Timestamp $D $T -_AA$s", badsig},
    };
    char hdr[512];
    struct auth_header h;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        expand(cases[i].tmpl, id.did, t, sig, hdr, sizeof hdr);
        const char *why = NULL;
        ck_assert_msg(auth_parse_header(hdr, strlen(hdr), &h, &why) == -1, "%s: accepted", cases[i].name);
        ck_assert_msg(why && strcmp(why, cases[i].reason) == 0, "%s: reason '%s', want '%s'",
                      cases[i].name, why ? why : "(null)", cases[i].reason);
    }
    /* Oversize: a long value is refused before anything else is looked at. */
    char big[AUTH_HEADER_MAX + 2];
    memset(big, 'A', sizeof big);
    const char *why = NULL;
    ck_assert_int_eq(auth_parse_header(big, sizeof big, &h, &why), -1);
    ck_assert_str_eq(why, "authorization header too long");
    /* Length is honoured: the good header minus its last byte fails. */
    ck_assert_int_eq(auth_parse_header(good, strlen(good) - 1, &h, &why), -1);
    ck_assert_str_eq(why, badsig);
    /* Embedded NUL. */
    char nul[AUTH_HEADER_MAX];
    memcpy(nul, good, strlen(good) + 1);
    nul[30] = '\0';
    ck_assert_int_eq(auth_parse_header(nul, strlen(good), &h, &why), -1);
    ck_assert_str_eq(why, "authorization header has a control or non-ASCII character");
}
END_TEST

/* The signature text kept by the parser is the one base64 text of its
 * bytes: the same signature with other trailing bits (which decode to other
 * bytes or not at all) never passes as the same text, so the text serves as
 * the replay key. */
START_TEST(signature_text_is_canonical) {
    char hdr[AUTH_HEADER_MAX], again[ID_SIG_B64_BUFSZ];
    struct auth_header h, other;
    build("POST", "/api/v1/signals", "{}", NOW, hdr);
    parse_ok(hdr, &h);
    ck_assert_int_eq(b64_encode(h.sig, sizeof h.sig, again, sizeof again), 0);
    ck_assert_str_eq(h.sig_b64, again);
    ck_assert_int_eq(strncmp(hdr + strlen(hdr) - ID_SIG_B64_LEN, h.sig_b64, ID_SIG_B64_LEN), 0);
    char *last = hdr + strlen(hdr) - 3;   /* the last data character before "==" */
    const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int same_bytes = 0;
    for (const char *c = alphabet; *c; c++) {
        char keep = *last;
        *last = *c;
        const char *why = NULL;
        if (auth_parse_header(hdr, strlen(hdr), &other, &why) == 0 && memcmp(other.sig, h.sig, sizeof h.sig) == 0) {
            same_bytes++;
            ck_assert_str_eq(other.sig_b64, h.sig_b64);
        }
        *last = keep;
    }
    ck_assert_int_eq(same_bytes, 1);
}
END_TEST

START_TEST(time_parse_variants) {
    time_t t;
    ck_assert_int_eq(auth_time_parse("2023-11-14T22:13:20Z", 20, &t), 0);
    ck_assert_int_eq(t, NOW);
    ck_assert_int_eq(auth_time_parse("2023-11-14T22:13:20.123456789Z", 30, &t), 0);
    ck_assert_int_eq(t, NOW);
    ck_assert_int_eq(auth_time_parse("2023-11-15T00:13:20+02:00", 25, &t), 0);
    ck_assert_int_eq(t, NOW);
    ck_assert_int_eq(auth_time_parse("2023-11-14T21:43:20-00:30", 25, &t), 0);
    ck_assert_int_eq(t, NOW);
    ck_assert_int_eq(auth_time_parse("2024-02-29T00:00:00Z", 20, &t), 0);     /* leap day */
    ck_assert_int_eq(t, 1709164800);
    ck_assert_int_eq(auth_time_parse("2023-02-29T00:00:00Z", 20, &t), -1);
    ck_assert_int_eq(auth_time_parse("1970-01-01T00:00:00Z", 20, &t), 0);
    ck_assert_int_eq(t, 0);
    ck_assert_int_eq(auth_time_parse("2023-11-14T22:13:20Z", 19, &t), -1);     /* length honoured */
    char out[32];
    ck_assert_int_eq(auth_time_format(NOW, out, sizeof out), 0);
    ck_assert_str_eq(out, "2023-11-14T22:13:20Z");
    ck_assert_int_eq(auth_time_format(NOW, out, 20), -1);
}
END_TEST

/* ---- replay cache ---- */

START_TEST(replay_single_use) {
    struct replay_cache *rc = replay_cache_new(16, AUTH_WINDOW_SECONDS);
    ck_assert_ptr_nonnull(rc);
    unsigned char a[64], b[64];
    memset(a, 1, sizeof a);
    memset(b, 2, sizeof b);
    ck_assert_int_eq(replay_cache_add(rc, a, sizeof a, NOW, NOW), REPLAY_OK);
    ck_assert_int_eq(replay_cache_add(rc, a, sizeof a, NOW, NOW + 10), REPLAY_SEEN);
    ck_assert_int_eq(replay_cache_add(rc, b, sizeof b, NOW, NOW + 10), REPLAY_OK);
    ck_assert_uint_eq(replay_cache_size(rc, NOW + 10), 2);
    /* Still refused at the last second the time window would accept it. */
    ck_assert_int_eq(replay_cache_add(rc, a, sizeof a, NOW, NOW + 300), REPLAY_SEEN);
    /* After that it is pruned (the time check rejects it from then on). */
    ck_assert_uint_eq(replay_cache_size(rc, NOW + 301), 0);
    ck_assert_str_eq(replay_result_str(REPLAY_SEEN), "signature already used");
    replay_cache_free(rc);
}
END_TEST

START_TEST(replay_future_signature_kept_longer) {
    struct replay_cache *rc = replay_cache_new(4, AUTH_WINDOW_SECONDS);
    unsigned char a[64];
    memset(a, 3, sizeof a);
    /* Signed 300 s ahead of our clock: acceptable until NOW + 600. */
    ck_assert_int_eq(replay_cache_add(rc, a, sizeof a, NOW + 300, NOW), REPLAY_OK);
    ck_assert_int_eq(replay_cache_add(rc, a, sizeof a, NOW + 300, NOW + 600), REPLAY_SEEN);
    ck_assert_uint_eq(replay_cache_size(rc, NOW + 601), 0);
    replay_cache_free(rc);
}
END_TEST

START_TEST(replay_full_refuses_then_recovers) {
    struct replay_cache *rc = replay_cache_new(3, AUTH_WINDOW_SECONDS);
    unsigned char s[64];
    for (int i = 0; i < 3; i++) {
        memset(s, 10 + i, sizeof s);
        ck_assert_int_eq(replay_cache_add(rc, s, sizeof s, NOW + i, NOW), REPLAY_OK);
    }
    memset(s, 99, sizeof s);
    ck_assert_int_eq(replay_cache_add(rc, s, sizeof s, NOW, NOW), REPLAY_FULL);
    ck_assert_int_eq(replay_cache_add(rc, s, sizeof s, NOW, NOW + 300), REPLAY_FULL);
    /* At NOW+301 the first entry (time NOW) has expired: room for one. */
    ck_assert_int_eq(replay_cache_add(rc, s, sizeof s, NOW + 301, NOW + 301), REPLAY_OK);
    ck_assert_uint_eq(replay_cache_size(rc, NOW + 301), 3);
    memset(s, 12, sizeof s);                               /* third, time NOW+2: still live */
    ck_assert_int_eq(replay_cache_add(rc, s, sizeof s, NOW + 2, NOW + 301), REPLAY_SEEN);
    ck_assert_ptr_null(replay_cache_new(0, 300));
    ck_assert_ptr_null(replay_cache_new(4, 0));
    replay_cache_free(rc);
}
END_TEST

#define THREADS 4
#define PER_THREAD 2000

static struct replay_cache *shared_rc;
static int ok_counts[THREADS];

/* Every thread adds the same PER_THREAD signatures: each must be OK exactly once overall. */
static void *adder(void *arg) {
    int idx = *(int *)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        int sig[16] = {i};
        if (replay_cache_add(shared_rc, sig, sizeof sig, NOW, NOW) == REPLAY_OK) ok_counts[idx]++;
    }
    return NULL;
}

START_TEST(replay_thread_safe) {
    shared_rc = replay_cache_new(PER_THREAD, AUTH_WINDOW_SECONDS);
    pthread_t th[THREADS];
    int idx[THREADS];
    for (int i = 0; i < THREADS; i++) {
        idx[i] = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, adder, &idx[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        total += ok_counts[i];
    }
    ck_assert_int_eq(total, PER_THREAD);
    ck_assert_uint_eq(replay_cache_size(shared_rc, NOW), PER_THREAD);
    replay_cache_free(shared_rc);
}
END_TEST

/* The whole server flow: parse → verify → record; the replayed header is refused. */
START_TEST(replayed_request_refused) {
    struct replay_cache *rc = replay_cache_new(8, AUTH_WINDOW_SECONDS);
    char hdr[AUTH_HEADER_MAX];
    struct auth_header h;
    build("POST", "/api/v1/signals", "{}", NOW, hdr);
    for (int attempt = 0; attempt < 2; attempt++) {
        parse_ok(hdr, &h);
        ck_assert_ptr_null(verify(&h, "POST", "/api/v1/signals", "{}", NOW + 5));
        enum replay_result r = replay_cache_add(rc, h.sig, sizeof h.sig, h.ts, NOW + 5);
        ck_assert_int_eq(r, attempt == 0 ? REPLAY_OK : REPLAY_SEEN);
    }
    replay_cache_free(rc);
}
END_TEST

int main(void) {
    if (identity_init() != 0) return EXIT_FAILURE;
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("auth");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, signed_string_is_documented_one);
    tcase_add_test(tc, tampering_detected);
    tcase_add_test(tc, time_window_edges);
    tcase_add_test(tc, previous_key_during_grace);
    tcase_add_test(tc, microsecond_times_make_repeats_distinct);
    tcase_add_test(tc, build_rejects_bad_input);
    tcase_add_test(tc, malformed_headers);
    tcase_add_test(tc, signature_text_is_canonical);
    tcase_add_test(tc, time_parse_variants);
    tcase_add_test(tc, replay_single_use);
    tcase_add_test(tc, replay_future_signature_kept_longer);
    tcase_add_test(tc, replay_full_refuses_then_recovers);
    tcase_add_test(tc, replay_thread_safe);
    tcase_add_test(tc, replayed_request_refused);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
