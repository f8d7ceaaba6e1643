/* identity.c — Ed25519 keys, DID and key id derivation, base64, rotation
 * proofs, and the identity directory / Secret layout (see identity.h).
 *
 * All crypto is libsodium's. Secret key bytes only ever sit in struct
 * identity or in short-lived local buffers that are wiped before return. */
#include "common/identity.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ID_FILE_MAX 512          /* largest identity file we read */
#define ROTATE_MSG_MAX (7 + 2 * ID_PUB_B64_LEN + 2)

int identity_init(void) {
    return sodium_init() < 0 ? -1 : 0;
}

/* Lower-hex of the first n bytes of sha256(pk). */
static void sha256_prefix_hex(const unsigned char pk[ID_PUB_LEN], size_t n, char *out) {
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, pk, ID_PUB_LEN);
    sodium_bin2hex(out, 2 * n + 1, h, n);
}

void identity_did_from_pub(const unsigned char pk[ID_PUB_LEN], char out[ID_DID_BUFSZ]) {
    memcpy(out, ID_DID_PREFIX, sizeof ID_DID_PREFIX - 1);
    sha256_prefix_hex(pk, 16, out + sizeof ID_DID_PREFIX - 1);
}

void identity_key_id_from_pub(const unsigned char pk[ID_PUB_LEN], char out[ID_KEYID_BUFSZ]) {
    memcpy(out, "key-", 4);
    sha256_prefix_hex(pk, 8, out + 4);
}

int identity_did_valid(const char *s) {
    if (!s || strncmp(s, ID_DID_PREFIX, sizeof ID_DID_PREFIX - 1) != 0) return 0;
    const char *h = s + sizeof ID_DID_PREFIX - 1;
    for (int i = 0; i < 32; i++) {
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f'))) return 0;
    }
    return h[32] == '\0';
}

int b64_encode(const unsigned char *in, size_t len, char *out, size_t outlen) {
    if (outlen < sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL)) return -1;
    sodium_bin2base64(out, outlen, in, len, sodium_base64_VARIANT_ORIGINAL);
    return 0;
}

int b64_decode_exact(const char *in, size_t inlen, unsigned char *out, size_t want) {
    /* Padded std base64 of `want` bytes is exactly this long; checking first
     * keeps libsodium from ever writing past `want` bytes. */
    if (inlen != ((want + 2) / 3) * 4) return -1;
    size_t got = 0;
    const char *end = NULL;
    if (sodium_base642bin(out, want, in, inlen, NULL, &got, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return -1;
    return (got == want && end == in + inlen) ? 0 : -1;
}

/* Fills the derived fields of id from id->pk. */
static void identity_fill_names(struct identity *id) {
    identity_key_id_from_pub(id->pk, id->key_id);
    b64_encode(id->pk, ID_PUB_LEN, id->pub_b64, sizeof id->pub_b64);
}

int identity_generate(struct identity *id) {
    memset(id, 0, sizeof *id);
    if (identity_init() != 0 || crypto_sign_keypair(id->pk, id->sk) != 0) {
        identity_wipe(id);
        return -1;
    }
    identity_did_from_pub(id->pk, id->did);
    identity_fill_names(id);
    return 0;
}

void identity_wipe(struct identity *id) {
    sodium_memzero(id, sizeof *id);
}

int identity_sign(const struct identity *id, const void *msg, size_t len,
                  unsigned char sig[ID_SIG_LEN]) {
    return crypto_sign_detached(sig, NULL, msg, len, id->sk) == 0 ? 0 : -1;
}

int identity_verify(const unsigned char pk[ID_PUB_LEN], const void *msg, size_t len,
                    const unsigned char sig[ID_SIG_LEN]) {
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : -1;
}

/* "rotate:<old pub b64>:<new pub b64>" into buf (ROTATE_MSG_MAX). Returns length. */
static size_t rotation_message(const unsigned char old_pk[ID_PUB_LEN],
                               const unsigned char new_pk[ID_PUB_LEN], char *buf) {
    char a[ID_PUB_B64_BUFSZ], b[ID_PUB_B64_BUFSZ];
    b64_encode(old_pk, ID_PUB_LEN, a, sizeof a);
    b64_encode(new_pk, ID_PUB_LEN, b, sizeof b);
    int n = snprintf(buf, ROTATE_MSG_MAX, "rotate:%s:%s", a, b);
    return (size_t)n;
}

int identity_rotate(const struct identity *old, struct identity *next,
                    char *proof_b64, size_t prooflen) {
    if (prooflen < ID_SIG_B64_BUFSZ) return -1;
    memset(next, 0, sizeof *next);
    if (identity_init() != 0 || crypto_sign_keypair(next->pk, next->sk) != 0) goto fail;
    memcpy(next->did, old->did, sizeof next->did);
    identity_fill_names(next);

    char msg[ROTATE_MSG_MAX];
    size_t n = rotation_message(old->pk, next->pk, msg);
    unsigned char sig[ID_SIG_LEN];
    if (identity_sign(old, msg, n, sig) != 0) goto fail;
    return b64_encode(sig, sizeof sig, proof_b64, prooflen);
fail:
    identity_wipe(next);
    return -1;
}

int identity_rotation_verify(const unsigned char old_pk[ID_PUB_LEN],
                             const unsigned char new_pk[ID_PUB_LEN], const char *proof_b64) {
    unsigned char sig[ID_SIG_LEN];
    if (!proof_b64 || b64_decode_exact(proof_b64, strlen(proof_b64), sig, sizeof sig) != 0)
        return -1;
    char msg[ROTATE_MSG_MAX];
    size_t n = rotation_message(old_pk, new_pk, msg);
    return identity_verify(old_pk, msg, n, sig);
}

/* Length of a text file's content without one trailing "\n" or "\r\n". */
static size_t trim_newline(const char *s, size_t len) {
    if (len > 0 && s[len - 1] == '\n') len--;
    if (len > 0 && s[len - 1] == '\r') len--;
    return len;
}

/* A key field that is either `raw` bytes long or the base64 text of that many
 * bytes (optionally newline-terminated). 0 / -1. */
static int decode_raw_or_b64(const void *in, size_t inlen, unsigned char *out, size_t raw) {
    if (inlen == raw) {
        memcpy(out, in, raw);
        return 0;
    }
    return b64_decode_exact(in, trim_newline(in, inlen), out, raw);
}

/* Copies a text field of exactly `want` chars (after trimming a newline). */
static int copy_text(const char *in, size_t inlen, char *out, size_t want) {
    size_t n = trim_newline(in, inlen);
    if (n != want || memchr(in, '\0', n)) return -1;
    memcpy(out, in, n);
    out[n] = '\0';
    return 0;
}

int identity_from_parts(struct identity *id,
                        const void *key, size_t keylen, const void *pub, size_t publen,
                        const char *did, size_t didlen, const char *key_id, size_t keyidlen,
                        char *err, size_t errlen) {
    const char *why = NULL;
    unsigned char derived[ID_PUB_LEN];
    char want_kid[ID_KEYID_BUFSZ];

    memset(id, 0, sizeof *id);
    if (decode_raw_or_b64(key, keylen, id->sk, ID_SK_LEN) != 0)
        why = "ed25519.key: not 64 raw bytes nor their base64";
    else if (decode_raw_or_b64(pub, publen, id->pk, ID_PUB_LEN) != 0)
        why = "ed25519.pub: not 32 raw bytes nor their base64";
    else if (crypto_sign_ed25519_sk_to_pk(derived, id->sk) != 0 ||
             sodium_memcmp(derived, id->pk, ID_PUB_LEN) != 0)
        why = "ed25519.pub does not match ed25519.key";
    else if (copy_text(did, didlen, id->did, ID_DID_LEN) != 0 || !identity_did_valid(id->did))
        why = "did: not did:mesh: followed by 32 lower-case hex digits";
    else if (copy_text(key_id, keyidlen, id->key_id, ID_KEYID_LEN) != 0)
        why = "key-id: not key- followed by 16 hex digits";
    else {
        identity_key_id_from_pub(id->pk, want_kid);
        if (strcmp(want_kid, id->key_id) != 0) why = "key-id does not match ed25519.pub";
    }
    /* The seed half of sk must actually produce the stored public half. */
    if (!why) {
        unsigned char pk2[ID_PUB_LEN], sk2[ID_SK_LEN];
        int bad = crypto_sign_seed_keypair(pk2, sk2, id->sk) != 0 ||
                  sodium_memcmp(pk2, id->pk, ID_PUB_LEN) != 0;
        sodium_memzero(sk2, sizeof sk2);
        if (bad) why = "ed25519.key: seed does not produce its public key";
    }
    if (why) {
        identity_wipe(id);
        if (err && errlen) snprintf(err, errlen, "%s", why);
        return -1;
    }
    b64_encode(id->pk, ID_PUB_LEN, id->pub_b64, sizeof id->pub_b64);
    return 0;
}

/* Reads dir/name (at most ID_FILE_MAX bytes) into buf. Returns length or -1. */
static ssize_t read_small_file(const char *dir, const char *name, char *buf, size_t cap,
                               char *err, size_t errlen) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        snprintf(err, errlen, "%s/%s: path too long", dir, name);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (n == 0) break;
        len += (size_t)n;
        if (len == cap) {
            snprintf(err, errlen, "%s: larger than %zu bytes", path, cap - 1);
            close(fd);
            return -1;
        }
    }
    close(fd);
    return (ssize_t)len;
}

int identity_load_dir(const char *dir, struct identity *id, char *err, size_t errlen) {
    char e[256] = "";
    char key[ID_FILE_MAX], pub[ID_FILE_MAX], did[ID_FILE_MAX], kid[ID_FILE_MAX];
    ssize_t nk = read_small_file(dir, "ed25519.key", key, sizeof key, e, sizeof e);
    ssize_t np = nk < 0 ? -1 : read_small_file(dir, "ed25519.pub", pub, sizeof pub, e, sizeof e);
    ssize_t nd = np < 0 ? -1 : read_small_file(dir, "did", did, sizeof did, e, sizeof e);
    ssize_t ni = nd < 0 ? -1 : read_small_file(dir, "key-id", kid, sizeof kid, e, sizeof e);
    int rc = -1;
    if (ni >= 0)
        rc = identity_from_parts(id, key, (size_t)nk, pub, (size_t)np, did, (size_t)nd, kid,
                                 (size_t)ni, e, sizeof e);
    else
        identity_wipe(id);
    sodium_memzero(key, sizeof key);
    if (rc != 0 && err && errlen) snprintf(err, errlen, "identity %s: %s", dir, e);
    return rc;
}

/* Writes len bytes to dir/name via dir/.name.tmp + rename, mode 0600. */
static int write_file_atomic(const char *dir, const char *name, const void *data, size_t len,
                             char *err, size_t errlen) {
    char path[PATH_MAX], tmp[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= (int)sizeof tmp) {
        snprintf(err, errlen, "%s/%s: path too long", dir, name);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    const char *p = data;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, p + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)n;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int identity_save_dir(const char *dir, const struct identity *id, const char *rotation_proof_b64,
                      char *err, size_t errlen) {
    char e[256] = "";
    int rc = write_file_atomic(dir, "ed25519.key", id->sk, ID_SK_LEN, e, sizeof e);
    if (rc == 0) rc = write_file_atomic(dir, "ed25519.pub", id->pub_b64, strlen(id->pub_b64), e, sizeof e);
    if (rc == 0) rc = write_file_atomic(dir, "did", id->did, strlen(id->did), e, sizeof e);
    if (rc == 0) rc = write_file_atomic(dir, "key-id", id->key_id, strlen(id->key_id), e, sizeof e);
    if (rc == 0 && rotation_proof_b64)
        rc = write_file_atomic(dir, "rotation-proof", rotation_proof_b64,
                               strlen(rotation_proof_b64), e, sizeof e);
    if (rc != 0 && err && errlen) snprintf(err, errlen, "%s", e);
    return rc;
}

/* Sets data[name] = base64(bytes). 0 / -1. */
static int set_b64(json_t *data, const char *name, const void *bytes, size_t len) {
    char buf[2 * ID_FILE_MAX];
    if (b64_encode(bytes, len, buf, sizeof buf) != 0) return -1;
    int rc = json_object_set_new(data, name, json_string(buf));
    sodium_memzero(buf, sizeof buf);
    return rc;
}

json_t *identity_secret_data(const struct identity *id, const char *rotation_proof_b64) {
    json_t *data = json_object();
    if (!data) return NULL;
    int rc = set_b64(data, "ed25519.key", id->sk, ID_SK_LEN);
    rc |= set_b64(data, "ed25519.pub", id->pub_b64, strlen(id->pub_b64));
    rc |= set_b64(data, "did", id->did, strlen(id->did));
    rc |= set_b64(data, "key-id", id->key_id, strlen(id->key_id));
    if (rotation_proof_b64)
        rc |= set_b64(data, "rotation-proof", rotation_proof_b64, strlen(rotation_proof_b64));
    if (rc != 0) {
        json_decref(data);
        return NULL;
    }
    return data;
}

/* Decodes data[name] (base64 of a small file) into buf. Length or -1. */
static ssize_t get_b64(const json_t *data, const char *name, unsigned char *buf, size_t cap,
                       char *err, size_t errlen) {
    const json_t *v = json_object_get(data, name);
    const char *s = json_string_value(v);
    size_t got = 0;
    const char *end = NULL;
    if (!s) {
        snprintf(err, errlen, "Secret data has no %s", name);
        return -1;
    }
    size_t n = json_string_length(v);
    if (sodium_base642bin(buf, cap, s, n, NULL, &got, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != s + n) {
        snprintf(err, errlen, "Secret data %s: not base64 of at most %zu bytes", name, cap);
        return -1;
    }
    return (ssize_t)got;
}

int identity_from_secret_data(const json_t *data, struct identity *id, char *err, size_t errlen) {
    char e[256] = "";
    unsigned char key[ID_FILE_MAX], pub[ID_FILE_MAX], did[ID_FILE_MAX], kid[ID_FILE_MAX];
    ssize_t nk = -1, np = -1, nd = -1, ni = -1;
    if (!json_is_object(data)) snprintf(e, sizeof e, "Secret data is not an object");
    else if ((nk = get_b64(data, "ed25519.key", key, sizeof key, e, sizeof e)) >= 0 &&
             (np = get_b64(data, "ed25519.pub", pub, sizeof pub, e, sizeof e)) >= 0 &&
             (nd = get_b64(data, "did", did, sizeof did, e, sizeof e)) >= 0)
        ni = get_b64(data, "key-id", kid, sizeof kid, e, sizeof e);
    int rc = -1;
    if (ni >= 0)
        rc = identity_from_parts(id, key, (size_t)nk, pub, (size_t)np, (const char *)did,
                                 (size_t)nd, (const char *)kid, (size_t)ni, e, sizeof e);
    else
        identity_wipe(id);
    sodium_memzero(key, sizeof key);
    if (rc != 0 && err && errlen) snprintf(err, errlen, "%s", e);
    return rc;
}
