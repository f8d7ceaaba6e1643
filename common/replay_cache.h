/* replay_cache.h — single-use request signatures (DESIGN §5: "each signature
 * accepted once").
 *
 * A bounded, thread-safe set of signature digests. An entry for a signature
 * whose header time is t is kept until t + window (after that the time check
 * rejects the signature anyway), then pruned. When the set is full of live
 * entries it refuses new ones (REPLAY_FULL) instead of growing: the caller
 * answers 503 and the client retries later with a fresh signature. */
#ifndef AGENTMESH_REPLAY_CACHE_H
#define AGENTMESH_REPLAY_CACHE_H

#include <stddef.h>
#include <time.h>

struct replay_cache;

enum replay_result {
    REPLAY_OK = 0,     /* first sighting, now recorded */
    REPLAY_SEEN = 1,   /* already used: reject the request (401) */
    REPLAY_FULL = 2,   /* no room for a live entry: reject (503) */
};

/* capacity: most live entries held; window_seconds: the auth window (300).
 * NULL on bad arguments or OOM. */
struct replay_cache *replay_cache_new(size_t capacity, int window_seconds);
void replay_cache_free(struct replay_cache *rc);

/* Records sig (any length; only its SHA-256 is kept) seen with header time
 * sig_time, at wall time now. */
enum replay_result replay_cache_add(struct replay_cache *rc, const void *sig, size_t len,
                                    time_t sig_time, time_t now);

/* Live entries after pruning those expired at `now`. */
size_t replay_cache_size(struct replay_cache *rc, time_t now);

/* Static text for a result ("ok", "signature already used", ...). */
const char *replay_result_str(enum replay_result r);

#endif
