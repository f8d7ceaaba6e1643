/* test_identity.c — Ed25519 identity: derivations checked against OpenSSL,
 * base64 strictness, rotation proofs, and the directory / Secret layouts. */
#include <check.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/identity.h"
#include "common/test/check_run.h"

/* Independent computation of prefix + hex(sha256(pk)[:n]) with OpenSSL. */
static void openssl_name(const char *prefix, const unsigned char *pk, size_t n, char *out) {
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256(pk, ID_PUB_LEN, h);
    size_t off = (size_t)sprintf(out, "%s", prefix);
    for (size_t i = 0; i < n; i++) off += (size_t)sprintf(out + off, "%02x", h[i]);
}

static char tmpdir[64];

static void make_tmpdir(void) {
    strcpy(tmpdir, "/tmp/test_identity.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
    const char *names[] = {"ed25519.key", "ed25519.pub", "did", "key-id", "rotation-proof"};
    char p[128];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
        unlink(p);
    }
    rmdir(tmpdir);
}

static void write_file(const char *name, const void *data, size_t len) {
    char p[128];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(derivations_match_openssl) {
    struct identity id;
    ck_assert_int_eq(identity_generate(&id), 0);
    char want[64];
    openssl_name("did:mesh:", id.pk, 16, want);
    ck_assert_str_eq(id.did, want);
    ck_assert_int_eq(identity_did_valid(id.did), 1);
    openssl_name("key-", id.pk, 8, want);
    ck_assert_str_eq(id.key_id, want);
    ck_assert_uint_eq(strlen(id.key_id), ID_KEYID_LEN);

    unsigned char b64[64];
    int n = EVP_EncodeBlock(b64, id.pk, ID_PUB_LEN);
    ck_assert_int_eq(n, ID_PUB_B64_LEN);
    ck_assert_str_eq(id.pub_b64, (char *)b64);

    /* The secret key is libsodium's seed || pk. */
    ck_assert_mem_eq(id.sk + 32, id.pk, ID_PUB_LEN);
    identity_wipe(&id);
}
END_TEST

START_TEST(two_identities_differ) {
    struct identity a, b;
    ck_assert_int_eq(identity_generate(&a), 0);
    ck_assert_int_eq(identity_generate(&b), 0);
    ck_assert_str_ne(a.did, b.did);
    ck_assert_int_ne(memcmp(a.pk, b.pk, ID_PUB_LEN), 0);
    identity_wipe(&a);
    identity_wipe(&b);
}
END_TEST

START_TEST(did_syntax) {
    ck_assert_int_eq(identity_did_valid("did:mesh:0123456789abcdef0123456789abcdef"), 1);
    ck_assert_int_eq(identity_did_valid("did:mesh:0123456789ABCDEF0123456789abcdef"), 0);
    ck_assert_int_eq(identity_did_valid("did:mesh:0123456789abcdef0123456789abcde"), 0);
    ck_assert_int_eq(identity_did_valid("did:mesh:0123456789abcdef0123456789abcdef0"), 0);
    ck_assert_int_eq(identity_did_valid("did:mash:0123456789abcdef0123456789abcdef"), 0);
    ck_assert_int_eq(identity_did_valid("did:mesh:0123456789abcdeg0123456789abcdef"), 0);
    ck_assert_int_eq(identity_did_valid("did:mesh:"), 0);
    ck_assert_int_eq(identity_did_valid(""), 0);
    ck_assert_int_eq(identity_did_valid(NULL), 0);
}
END_TEST

START_TEST(base64_strict) {
    unsigned char in[32], out[32];
    for (int i = 0; i < 32; i++) in[i] = (unsigned char)(i * 7 + 3);
    char enc[ID_PUB_B64_BUFSZ];
    ck_assert_int_eq(b64_encode(in, 32, enc, sizeof enc), 0);
    ck_assert_int_eq(b64_encode(in, 32, enc, sizeof enc - 1), -1);   /* no room for NUL */
    ck_assert_int_eq(b64_decode_exact(enc, strlen(enc), out, 32), 0);
    ck_assert_mem_eq(in, out, 32);

    ck_assert_int_eq(b64_decode_exact(enc, strlen(enc), out, 31), -1);    /* wrong length */
    ck_assert_int_eq(b64_decode_exact(enc, strlen(enc) - 1, out, 32), -1);/* truncated */
    char bad[64];
    snprintf(bad, sizeof bad, "%.43s", enc);                              /* padding dropped */
    ck_assert_int_eq(b64_decode_exact(bad, strlen(bad), out, 32), -1);
    snprintf(bad, sizeof bad, "%s", enc);
    bad[5] = '*';                                                         /* bad alphabet */
    ck_assert_int_eq(b64_decode_exact(bad, strlen(bad), out, 32), -1);
    snprintf(bad, sizeof bad, "%s", enc);
    bad[5] = '-';                                                         /* URL-safe alphabet */
    ck_assert_int_eq(b64_decode_exact(bad, strlen(bad), out, 32), -1);
    snprintf(bad, sizeof bad, "%s", enc);
    bad[5] = ' ';
    ck_assert_int_eq(b64_decode_exact(bad, strlen(bad), out, 32), -1);
    /* Non-canonical: "AB==" leaves non-zero padding bits; "AA==" is canonical. */
    unsigned char one;
    ck_assert_int_eq(b64_decode_exact("AA==", 4, &one, 1), 0);
    ck_assert_int_eq(one, 0);
    ck_assert_int_eq(b64_decode_exact("AB==", 4, &one, 1), -1);
}
END_TEST

START_TEST(sign_and_verify) {
    struct identity id, other;
    ck_assert_int_eq(identity_generate(&id), 0);
    ck_assert_int_eq(identity_generate(&other), 0);
    unsigned char sig[ID_SIG_LEN];
    const char msg[] = "hello mesh";
    ck_assert_int_eq(identity_sign(&id, msg, strlen(msg), sig), 0);
    ck_assert_int_eq(identity_verify(id.pk, msg, strlen(msg), sig), 0);
    ck_assert_int_eq(identity_verify(id.pk, "hello mesH", strlen(msg), sig), -1);
    ck_assert_int_eq(identity_verify(other.pk, msg, strlen(msg), sig), -1);
    sig[10] ^= 1;
    ck_assert_int_eq(identity_verify(id.pk, msg, strlen(msg), sig), -1);
    identity_wipe(&id);
    identity_wipe(&other);
}
END_TEST

START_TEST(rotation_proof) {
    struct identity old, next, other;
    char proof[ID_SIG_B64_BUFSZ];
    ck_assert_int_eq(identity_generate(&old), 0);
    ck_assert_int_eq(identity_rotate(&old, &next, proof, sizeof proof), 0);
    ck_assert_str_eq(next.did, old.did);                     /* DID survives rotation */
    ck_assert_str_ne(next.key_id, old.key_id);
    char want[64];
    openssl_name("key-", next.pk, 8, want);
    ck_assert_str_eq(next.key_id, want);
    ck_assert_int_eq(identity_rotation_verify(old.pk, next.pk, proof), 0);

    /* The proof is exactly the old key's signature over the documented text. */
    char msg[160];
    snprintf(msg, sizeof msg, "rotate:%s:%s", old.pub_b64, next.pub_b64);
    unsigned char sig[ID_SIG_LEN];
    ck_assert_int_eq(b64_decode_exact(proof, strlen(proof), sig, sizeof sig), 0);
    ck_assert_int_eq(identity_verify(old.pk, msg, strlen(msg), sig), 0);

    /* Forgeries: signed by the new key, keys swapped, another new key, garbage. */
    char forged[ID_SIG_B64_BUFSZ];
    ck_assert_int_eq(identity_sign(&next, msg, strlen(msg), sig), 0);
    ck_assert_int_eq(b64_encode(sig, sizeof sig, forged, sizeof forged), 0);
    ck_assert_int_eq(identity_rotation_verify(old.pk, next.pk, forged), -1);
    ck_assert_int_eq(identity_rotation_verify(next.pk, old.pk, proof), -1);
    ck_assert_int_eq(identity_generate(&other), 0);
    ck_assert_int_eq(identity_rotation_verify(old.pk, other.pk, proof), -1);
    ck_assert_int_eq(identity_rotation_verify(old.pk, next.pk, "not base64"), -1);
    ck_assert_int_eq(identity_rotation_verify(old.pk, next.pk, NULL), -1);
    ck_assert_int_eq(identity_rotate(&old, &other, proof, 10), -1);     /* proof buffer too small */
    identity_wipe(&old);
    identity_wipe(&next);
    identity_wipe(&other);
}
END_TEST

START_TEST(wipe_zeroes) {
    struct identity id;
    ck_assert_int_eq(identity_generate(&id), 0);
    identity_wipe(&id);
    static const unsigned char zero[sizeof id];
    ck_assert_mem_eq(&id, zero, sizeof id);
}
END_TEST

START_TEST(dir_round_trip) {
    struct identity id, got, next;
    char err[256], proof[ID_SIG_B64_BUFSZ];
    make_tmpdir();
    ck_assert_int_eq(identity_generate(&id), 0);
    ck_assert_int_eq(identity_save_dir(tmpdir, &id, NULL, err, sizeof err), 0);
    ck_assert_int_eq(identity_load_dir(tmpdir, &got, err, sizeof err), 0);
    ck_assert_mem_eq(got.sk, id.sk, ID_SK_LEN);
    ck_assert_mem_eq(got.pk, id.pk, ID_PUB_LEN);
    ck_assert_str_eq(got.did, id.did);
    ck_assert_str_eq(got.key_id, id.key_id);
    ck_assert_str_eq(got.pub_b64, id.pub_b64);

    /* The key file holds the raw 64 bytes (the mounted-Secret form). */
    char p[128];
    struct stat st;
    snprintf(p, sizeof p, "%s/ed25519.key", tmpdir);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_size, ID_SK_LEN);
    ck_assert_int_eq(st.st_mode & 0777, 0600);

    /* A rotated identity keeps the DID and loads with the new key. */
    ck_assert_int_eq(identity_rotate(&id, &next, proof, sizeof proof), 0);
    ck_assert_int_eq(identity_save_dir(tmpdir, &next, proof, err, sizeof err), 0);
    ck_assert_int_eq(identity_load_dir(tmpdir, &got, err, sizeof err), 0);
    ck_assert_str_eq(got.did, id.did);
    ck_assert_str_eq(got.key_id, next.key_id);
    ck_assert_mem_eq(got.pk, next.pk, ID_PUB_LEN);
    remove_tmpdir();
    identity_wipe(&id);
    identity_wipe(&got);
    identity_wipe(&next);
}
END_TEST

START_TEST(dir_accepts_base64_key_and_newlines) {
    struct identity id, got;
    char err[256], text[256];
    make_tmpdir();
    ck_assert_int_eq(identity_generate(&id), 0);
    ck_assert_int_eq(identity_save_dir(tmpdir, &id, NULL, err, sizeof err), 0);
    char kb64[ID_SIG_B64_BUFSZ];
    ck_assert_int_eq(b64_encode(id.sk, ID_SK_LEN, kb64, sizeof kb64), 0);
    snprintf(text, sizeof text, "%s\n", kb64);
    write_file("ed25519.key", text, strlen(text));
    snprintf(text, sizeof text, "%s\r\n", id.did);
    write_file("did", text, strlen(text));
    write_file("ed25519.pub", id.pk, ID_PUB_LEN);                /* raw public key */
    ck_assert_int_eq(identity_load_dir(tmpdir, &got, err, sizeof err), 0);
    ck_assert_mem_eq(got.sk, id.sk, ID_SK_LEN);
    ck_assert_str_eq(got.did, id.did);
    ck_assert_str_eq(got.pub_b64, id.pub_b64);
    remove_tmpdir();
    identity_wipe(&id);
    identity_wipe(&got);
}
END_TEST

/* Saves `id`, overwrites one file with `data`, expects load to fail naming `needle`. */
static void expect_load_error(const char *file, const void *data, size_t len, const char *needle) {
    struct identity id, got;
    char err[256] = "";
    make_tmpdir();
    ck_assert_int_eq(identity_generate(&id), 0);
    ck_assert_int_eq(identity_save_dir(tmpdir, &id, NULL, err, sizeof err), 0);
    if (data) write_file(file, data, len);
    else {
        char p[128];
        snprintf(p, sizeof p, "%s/%s", tmpdir, file);
        ck_assert_int_eq(unlink(p), 0);
    }
    ck_assert_int_eq(identity_load_dir(tmpdir, &got, err, sizeof err), -1);
    ck_assert_msg(strstr(err, needle) != NULL, "error '%s' does not mention '%s'", err, needle);
    static const unsigned char zero[sizeof got];
    ck_assert_mem_eq(&got, zero, sizeof got);                   /* wiped on failure */
    remove_tmpdir();
    identity_wipe(&id);
}

START_TEST(dir_rejects_bad_files) {
    struct identity other;
    ck_assert_int_eq(identity_generate(&other), 0);
    expect_load_error("ed25519.key", "short", 5, "ed25519.key");
    expect_load_error("ed25519.pub", other.pub_b64, strlen(other.pub_b64), "does not match");
    expect_load_error("ed25519.pub", "AAAA", 4, "ed25519.pub");
    expect_load_error("did", "did:mesh:XYZ", 12, "did:");
    expect_load_error("did", "did:mesh:0123456789ABCDEF0123456789abcdef", 41, "did:");
    expect_load_error("key-id", other.key_id, strlen(other.key_id), "key-id does not match");
    expect_load_error("key-id", "key-12", 6, "key-id");
    expect_load_error("did", NULL, 0, "No such file");
    char big[600];
    memset(big, 'A', sizeof big);
    expect_load_error("key-id", big, sizeof big, "larger than");
    /* A secret key whose public half was swapped for another key's. */
    struct identity id;
    ck_assert_int_eq(identity_generate(&id), 0);
    unsigned char sk[ID_SK_LEN];
    memcpy(sk, id.sk, 32);
    memcpy(sk + 32, other.pk, 32);
    expect_load_error("ed25519.key", sk, sizeof sk, "ed25519");
    identity_wipe(&id);
    identity_wipe(&other);
}
END_TEST

START_TEST(secret_data_round_trip) {
    struct identity id, got;
    char err[256], proof[ID_SIG_B64_BUFSZ];
    ck_assert_int_eq(identity_generate(&id), 0);
    ck_assert_int_eq(identity_rotate(&id, &got, proof, sizeof proof), 0);
    json_t *data = identity_secret_data(&got, proof);
    ck_assert_ptr_nonnull(data);

    /* ed25519.key is base64 of the raw 64 bytes; did is base64 of the DID text. */
    unsigned char raw[ID_SK_LEN];
    const char *k = json_string_value(json_object_get(data, "ed25519.key"));
    ck_assert_ptr_nonnull(k);
    ck_assert_int_eq(b64_decode_exact(k, strlen(k), raw, sizeof raw), 0);
    ck_assert_mem_eq(raw, got.sk, ID_SK_LEN);
    unsigned char didtxt[ID_DID_LEN + 1] = {0};
    const char *d = json_string_value(json_object_get(data, "did"));
    ck_assert_int_eq(b64_decode_exact(d, strlen(d), didtxt, ID_DID_LEN), 0);
    ck_assert_str_eq((char *)didtxt, id.did);
    ck_assert_ptr_nonnull(json_object_get(data, "rotation-proof"));

    struct identity back;
    ck_assert_int_eq(identity_from_secret_data(data, &back, err, sizeof err), 0);
    ck_assert_mem_eq(back.sk, got.sk, ID_SK_LEN);
    ck_assert_str_eq(back.did, id.did);
    ck_assert_str_eq(back.key_id, got.key_id);

    json_object_del(data, "key-id");
    ck_assert_int_eq(identity_from_secret_data(data, &back, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "key-id"));
    json_object_set_new(data, "key-id", json_string("!!!"));
    ck_assert_int_eq(identity_from_secret_data(data, &back, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "not base64"));
    json_decref(data);
    identity_wipe(&id);
    identity_wipe(&got);
    identity_wipe(&back);
}
END_TEST

int main(void) {
    if (identity_init() != 0) return EXIT_FAILURE;
    Suite *s = suite_create("identity");
    TCase *tc = tcase_create("identity");
    tcase_add_test(tc, derivations_match_openssl);
    tcase_add_test(tc, two_identities_differ);
    tcase_add_test(tc, did_syntax);
    tcase_add_test(tc, base64_strict);
    tcase_add_test(tc, sign_and_verify);
    tcase_add_test(tc, rotation_proof);
    tcase_add_test(tc, wipe_zeroes);
    tcase_add_test(tc, dir_round_trip);
    tcase_add_test(tc, dir_accepts_base64_key_and_newlines);
    tcase_add_test(tc, dir_rejects_bad_files);
    tcase_add_test(tc, secret_data_round_trip);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
