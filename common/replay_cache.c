/* replay_cache.c — bounded, thread-safe set of used signatures (see
 * replay_cache.h).
 *
 * Open addressing with linear probing over a power-of-two table at most half
 * full. Each entry is the first 16 bytes of SHA-256(signature) and the last
 * second at which the signature can still pass the time window. Expired
 * entries are dropped by rebuilding the table, which happens only when the
 * oldest entry has expired, so at most once per clock second. */
#include "common/replay_cache.h"

#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DIGEST_LEN 16

struct entry {
    unsigned char digest[DIGEST_LEN];
    int64_t expires;       /* live while now <= expires */
    int used;
};

struct replay_cache {
    pthread_mutex_t mu;
    struct entry *slots;
    size_t nslots;         /* power of two, >= 2 * capacity */
    size_t count;
    size_t capacity;
    int window;
    int64_t min_expires;   /* smallest `expires` among entries (valid when count > 0) */
};

struct replay_cache *replay_cache_new(size_t capacity, int window_seconds) {
    if (capacity == 0 || capacity > (SIZE_MAX / sizeof(struct entry)) / 4 || window_seconds <= 0)
        return NULL;
    struct replay_cache *rc = calloc(1, sizeof *rc);
    if (!rc) return NULL;
    rc->nslots = 2;
    while (rc->nslots < 2 * capacity) rc->nslots <<= 1;
    rc->slots = calloc(rc->nslots, sizeof *rc->slots);
    if (!rc->slots || pthread_mutex_init(&rc->mu, NULL) != 0) {
        free(rc->slots);
        free(rc);
        return NULL;
    }
    rc->capacity = capacity;
    rc->window = window_seconds;
    return rc;
}

void replay_cache_free(struct replay_cache *rc) {
    if (!rc) return;
    pthread_mutex_destroy(&rc->mu);
    free(rc->slots);
    free(rc);
}

/* Slot holding digest, or the empty slot where it belongs. */
static struct entry *find_slot(struct entry *slots, size_t nslots, const unsigned char *digest) {
    uint64_t h;
    memcpy(&h, digest, sizeof h);
    size_t i = (size_t)h & (nslots - 1);
    while (slots[i].used && memcmp(slots[i].digest, digest, DIGEST_LEN) != 0)
        i = (i + 1) & (nslots - 1);
    return &slots[i];
}

/* Drops entries expired at `now` by rebuilding into a fresh table. On OOM
 * the old table stays (entries are kept a little longer, never lost). */
static void prune(struct replay_cache *rc, int64_t now) {
    if (rc->count == 0 || now <= rc->min_expires) return;
    struct entry *fresh = calloc(rc->nslots, sizeof *fresh);
    if (!fresh) return;
    size_t count = 0;
    int64_t min = INT64_MAX;
    for (size_t i = 0; i < rc->nslots; i++) {
        const struct entry *e = &rc->slots[i];
        if (!e->used || e->expires < now) continue;
        *find_slot(fresh, rc->nslots, e->digest) = *e;
        count++;
        if (e->expires < min) min = e->expires;
    }
    free(rc->slots);
    rc->slots = fresh;
    rc->count = count;
    rc->min_expires = min;
}

enum replay_result replay_cache_add(struct replay_cache *rc, const void *sig, size_t len,
                                    time_t sig_time, time_t now) {
    unsigned char full[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(full, sig, len);
    /* Keep it while the time check could still accept it, and at least until now. */
    int64_t expires = (int64_t)sig_time + rc->window;
    if (expires < (int64_t)now) expires = (int64_t)now;

    enum replay_result r;
    pthread_mutex_lock(&rc->mu);
    prune(rc, (int64_t)now);
    struct entry *e = find_slot(rc->slots, rc->nslots, full);
    if (e->used) {
        r = REPLAY_SEEN;
    } else if (rc->count >= rc->capacity) {
        r = REPLAY_FULL;
    } else {
        memcpy(e->digest, full, DIGEST_LEN);
        e->expires = expires;
        e->used = 1;
        if (rc->count == 0 || expires < rc->min_expires) rc->min_expires = expires;
        rc->count++;
        r = REPLAY_OK;
    }
    pthread_mutex_unlock(&rc->mu);
    return r;
}

size_t replay_cache_size(struct replay_cache *rc, time_t now) {
    pthread_mutex_lock(&rc->mu);
    prune(rc, (int64_t)now);
    size_t n = rc->count;
    pthread_mutex_unlock(&rc->mu);
    return n;
}

const char *replay_result_str(enum replay_result r) {
    switch (r) {
    case REPLAY_OK: return "ok";
    case REPLAY_SEEN: return "signature already used";
    case REPLAY_FULL: return "replay cache full, retry later";
    }
    return "unknown";
}
