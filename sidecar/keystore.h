/* keystore.h — the sidecar's hold on the agent's Ed25519 key.
 *
 * The key is read from the mounted identity directory (identity.h layout)
 * and never leaves this module: callers get signatures, auth headers and the
 * public half, never the secret key. keystore_reload polls the files' inode,
 * size and mtime (a Kubernetes Secret update swaps the `..data` symlink, so
 * every file gets a new inode) and loads a changed set; a half-written or
 * inconsistent set is refused and the previous key stays in use, so a
 * rotation is picked up without restart and never leaves the sidecar keyless.
 * Thread-safe: reloads happen on the main thread while loops sign. */
#ifndef AGENTMESH_SIDECAR_KEYSTORE_H
#define AGENTMESH_SIDECAR_KEYSTORE_H

#include <stddef.h>
#include <time.h>

#include "common/identity.h"

struct keystore;

struct keystore_public {
    char did[ID_DID_BUFSZ];
    char key_id[ID_KEYID_BUFSZ];
    char pub_b64[ID_PUB_B64_BUFSZ];
};

struct keystore *keystore_new(const char *dir);
void keystore_free(struct keystore *ks);

/* Loads the files when they changed since the last attempt. Returns 1 when
 * a new key was loaded, 0 when nothing changed, -1 when the changed files do
 * not form a valid identity (reason in err; the old key, if any, stays). */
int keystore_reload(struct keystore *ks, char *err, size_t errlen);

/* 0 and the public names when a key is loaded, else -1. */
int keystore_public(struct keystore *ks, struct keystore_public *out);

/* Detached signature with the current key. 0 / -1 (no key loaded). */
int keystore_sign(struct keystore *ks, const void *msg, size_t len, unsigned char sig[ID_SIG_LEN]);

/* An Ed25519-Timestamp Authorization value for a request (auth.h), timed
 * now to the microsecond; no two calls share a time, so no two identical
 * requests share a signature (the controller accepts each one once). 0 / -1. */
int keystore_auth_header(struct keystore *ks, const char *method, const char *path,
                         const void *body, size_t len, char *out, size_t outlen);

#endif
