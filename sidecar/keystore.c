/* keystore.c — holds the current identity and reloads it when the mounted
 * files change (see keystore.h). */
#include "sidecar/keystore.h"

#include "common/auth.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *const files[] = {"ed25519.key", "ed25519.pub", "did", "key-id"};
#define NFILES (sizeof files / sizeof *files)

/* What we compare to notice a change: identity of each file's content. */
struct stamp {
    ino_t ino[NFILES];
    off_t size[NFILES];
    struct timespec mtime[NFILES];
    int missing;             /* bit per file */
};

struct keystore {
    pthread_mutex_t mu;
    char *dir;
    struct identity id;      /* valid when loaded */
    int loaded;
    struct stamp last;       /* of the last load attempt */
    int attempted;
    long long last_us;       /* time of the last auth header, microseconds */
};

struct keystore *keystore_new(const char *dir) {
    struct keystore *ks = calloc(1, sizeof *ks);
    if (!ks) return NULL;
    ks->dir = strdup(dir);
    if (!ks->dir || pthread_mutex_init(&ks->mu, NULL) != 0) {
        free(ks->dir);
        free(ks);
        return NULL;
    }
    return ks;
}

void keystore_free(struct keystore *ks) {
    if (!ks) return;
    identity_wipe(&ks->id);
    pthread_mutex_destroy(&ks->mu);
    free(ks->dir);
    free(ks);
}

static void take_stamp(const char *dir, struct stamp *st) {
    memset(st, 0, sizeof *st);
    for (size_t i = 0; i < NFILES; i++) {
        char path[PATH_MAX];
        struct stat sb;
        if (snprintf(path, sizeof path, "%s/%s", dir, files[i]) >= (int)sizeof path ||
            stat(path, &sb) != 0) {
            st->missing |= 1 << i;
            continue;
        }
        st->ino[i] = sb.st_ino;
        st->size[i] = sb.st_size;
        st->mtime[i] = sb.st_mtim;
    }
}

static int stamp_equal(const struct stamp *a, const struct stamp *b) {
    if (a->missing != b->missing) return 0;
    for (size_t i = 0; i < NFILES; i++) {
        if (a->ino[i] != b->ino[i] || a->size[i] != b->size[i] ||
            a->mtime[i].tv_sec != b->mtime[i].tv_sec || a->mtime[i].tv_nsec != b->mtime[i].tv_nsec)
            return 0;
    }
    return 1;
}

int keystore_reload(struct keystore *ks, char *err, size_t errlen) {
    struct stamp now;
    take_stamp(ks->dir, &now);
    pthread_mutex_lock(&ks->mu);
    int unchanged = ks->attempted && stamp_equal(&now, &ks->last);
    pthread_mutex_unlock(&ks->mu);
    if (unchanged) return 0;

    /* Load outside the lock: signing goes on with the old key meanwhile. */
    struct identity fresh;
    int rc = identity_load_dir(ks->dir, &fresh, err, errlen);
    /* Files changed while we read them: try again at the next poll. */
    struct stamp after;
    take_stamp(ks->dir, &after);
    int raced = !stamp_equal(&now, &after);

    pthread_mutex_lock(&ks->mu);
    ks->attempted = !raced;
    ks->last = now;
    if (rc == 0 && !raced) {
        int same = ks->loaded && memcmp(fresh.pk, ks->id.pk, ID_PUB_LEN) == 0 &&
                   strcmp(fresh.did, ks->id.did) == 0;
        identity_wipe(&ks->id);
        ks->id = fresh;
        ks->loaded = 1;
        rc = same ? 0 : 1;
    } else if (rc == 0) {
        snprintf(err, errlen, "identity %s changed while being read", ks->dir);
        rc = -1;
    }
    pthread_mutex_unlock(&ks->mu);
    identity_wipe(&fresh);
    return rc;
}

int keystore_public(struct keystore *ks, struct keystore_public *out) {
    pthread_mutex_lock(&ks->mu);
    int ok = ks->loaded;
    if (ok) {
        memcpy(out->did, ks->id.did, sizeof out->did);
        memcpy(out->key_id, ks->id.key_id, sizeof out->key_id);
        memcpy(out->pub_b64, ks->id.pub_b64, sizeof out->pub_b64);
    }
    pthread_mutex_unlock(&ks->mu);
    return ok ? 0 : -1;
}

int keystore_sign(struct keystore *ks, const void *msg, size_t len, unsigned char sig[ID_SIG_LEN]) {
    pthread_mutex_lock(&ks->mu);
    int rc = ks->loaded ? identity_sign(&ks->id, msg, len, sig) : -1;
    pthread_mutex_unlock(&ks->mu);
    return rc;
}

int keystore_auth_header(struct keystore *ks, const char *method, const char *path,
                         const void *body, size_t len, char *out, size_t outlen) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
    long long us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    pthread_mutex_lock(&ks->mu);
    if (us <= ks->last_us) us = ks->last_us + 1;
    ks->last_us = us;
    int rc = ks->loaded ? auth_build_header_us(ks->id.sk, ks->id.did, method, path, body, len, us,
                                               out, outlen)
                        : -1;
    pthread_mutex_unlock(&ks->mu);
    return rc;
}
