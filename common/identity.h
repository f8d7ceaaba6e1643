/* identity.h — an agent's Ed25519 identity: keys, DID, key id, base64, the
 * rotation proof, and the on-disk / Secret layout.
 *
 * Keys are libsodium's: a 32-byte public key and a 64-byte secret key
 * (seed || public key). Derived names (DESIGN §2):
 *   DID     did:mesh:<hex(sha256(first raw public key)[:16])>  stable across rotations
 *   key id  key-<hex(sha256(current raw public key)[:8])>      changes on rotation
 *
 * Identity directory / Secret layout (the webhook mounts the Secret
 * `<agent>-agentmesh-identity` at /var/run/agentmesh/identity):
 *   ed25519.key     the 64-byte libsodium secret key, RAW bytes. Kubernetes
 *                   Secret `data` is base64 on the wire and raw once mounted, so
 *                   the Secret holds the raw 64 bytes. Readers also accept the
 *                   88-character std base64 text of the same 64 bytes.
 *   ed25519.pub     std base64 text of the 32-byte public key (== status.publicKey);
 *                   readers also accept the raw 32 bytes.
 *   did             the DID text
 *   key-id          the key id text
 *   rotation-proof  (optional) std base64 of the previous key's signature over
 *                   "rotate:<old pub b64>:<new pub b64>"
 * Text files are written without a newline; one trailing "\n" or "\r\n" is
 * tolerated when reading.
 *
 * The secret key lives only in `struct identity`; nothing here formats it for
 * printing. Call identity_wipe() when done with one (it zeroes the key). */
#ifndef AGENTMESH_IDENTITY_H
#define AGENTMESH_IDENTITY_H

#include <jansson.h>
#include <stddef.h>

#define ID_PUB_LEN 32            /* crypto_sign_PUBLICKEYBYTES */
#define ID_SK_LEN 64             /* crypto_sign_SECRETKEYBYTES */
#define ID_SIG_LEN 64            /* crypto_sign_BYTES */
#define ID_DID_PREFIX "did:mesh:"
#define ID_DID_LEN 41            /* "did:mesh:" + 32 hex */
#define ID_DID_BUFSZ 42
#define ID_KEYID_LEN 20          /* "key-" + 16 hex */
#define ID_KEYID_BUFSZ 21
#define ID_PUB_B64_LEN 44
#define ID_PUB_B64_BUFSZ 45
#define ID_SIG_B64_LEN 88
#define ID_SIG_B64_BUFSZ 89
#define ID_DEFAULT_DIR "/var/run/agentmesh/identity"

struct identity {
    unsigned char pk[ID_PUB_LEN];
    unsigned char sk[ID_SK_LEN];          /* never logged, wiped by identity_wipe */
    char did[ID_DID_BUFSZ];               /* from the FIRST key; survives rotation */
    char key_id[ID_KEYID_BUFSZ];          /* from the current key */
    char pub_b64[ID_PUB_B64_BUFSZ];       /* current public key, std base64 */
};

/* sodium_init() once; safe to call many times and from several threads. 0 / -1. */
int identity_init(void);

/* Fresh keypair; did and key_id both derived from the new key. 0 / -1. */
int identity_generate(struct identity *id);

/* Rotation: `next` gets a fresh keypair but keeps old->did; proof_b64 (at
 * least ID_SIG_B64_BUFSZ) receives the old key's signature over
 * "rotate:<old pub b64>:<new pub b64>". 0 / -1. */
int identity_rotate(const struct identity *old, struct identity *next,
                    char *proof_b64, size_t prooflen);

/* 0 when proof_b64 is old_pk's valid rotation signature for new_pk, else -1. */
int identity_rotation_verify(const unsigned char old_pk[ID_PUB_LEN],
                             const unsigned char new_pk[ID_PUB_LEN], const char *proof_b64);

/* Zeroes the whole struct (secret key included) with sodium_memzero. */
void identity_wipe(struct identity *id);

/* Name derivations (out must hold ID_DID_BUFSZ / ID_KEYID_BUFSZ). */
void identity_did_from_pub(const unsigned char pk[ID_PUB_LEN], char out[ID_DID_BUFSZ]);
void identity_key_id_from_pub(const unsigned char pk[ID_PUB_LEN], char out[ID_KEYID_BUFSZ]);

/* 1 when s is exactly "did:mesh:" + 32 lower-case hex digits, else 0. */
int identity_did_valid(const char *s);

/* Detached signatures. sign: 0 / -1. verify: 0 when valid, -1 otherwise. */
int identity_sign(const struct identity *id, const void *msg, size_t len,
                  unsigned char sig[ID_SIG_LEN]);
int identity_verify(const unsigned char pk[ID_PUB_LEN], const void *msg, size_t len,
                    const unsigned char sig[ID_SIG_LEN]);

/* Std base64 (RFC 4648, padded). encode: 0, or -1 when out is too small.
 * decode_exact: 0 only when `in` (inlen chars, no whitespace, canonical
 * padding) decodes to exactly `want` bytes; -1 otherwise, out untouched on
 * size mismatch. */
int b64_encode(const unsigned char *in, size_t len, char *out, size_t outlen);
int b64_decode_exact(const char *in, size_t inlen, unsigned char *out, size_t want);

/* Builds an identity from file contents (see the layout above). key/pub may
 * be raw or base64; did and key_id are checked against the key: key_id must
 * match the public key, the public key must match the secret key, and did
 * must be a valid DID. On failure returns -1 with a reason in err (never
 * containing key bytes) and leaves *id wiped. */
int identity_from_parts(struct identity *id,
                        const void *key, size_t keylen, const void *pub, size_t publen,
                        const char *did, size_t didlen, const char *key_id, size_t keyidlen,
                        char *err, size_t errlen);

/* Reads the identity files from `dir`. 0 / -1 with reason in err. */
int identity_load_dir(const char *dir, struct identity *id, char *err, size_t errlen);

/* Writes the identity files into `dir` (mode 0600, each via a temp file +
 * rename so a reader never sees half a file). rotation_proof_b64 may be NULL.
 * For tests and local runs; in a cluster the Secret is the source. 0 / -1. */
int identity_save_dir(const char *dir, const struct identity *id, const char *rotation_proof_b64,
                      char *err, size_t errlen);

/* The `data` object of the identity Secret (values base64-encoded as the API
 * wants; ed25519.key carries the raw 64 bytes). rotation_proof_b64 may be
 * NULL. New reference, NULL on OOM. The caller should json_decref it soon:
 * it holds the secret key. */
json_t *identity_secret_data(const struct identity *id, const char *rotation_proof_b64);

/* Reverse of identity_secret_data: reads a Secret's `data` object. 0 / -1. */
int identity_from_secret_data(const json_t *data, struct identity *id, char *err, size_t errlen);

#endif
