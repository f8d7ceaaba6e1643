/* trust_store.h — where trust state, handshake challenges and the replay
 * cache live (DESIGN §6).
 *
 * One interface, two backends: memory (one process, the default) and Redis
 * (shared by all replicas; atomic through Lua). Every call is thread-safe.
 * Return codes are enum trust_store_rc; on TS_INVALID / TS_UNAVAILABLE a
 * message is written into err. TS_UNAVAILABLE means the backend could not
 * be reached in time (callers answer 503); it comes back within the
 * backend's I/O timeout (Redis: 2 s by default), never hangs. */
#ifndef AGENTMESH_TRUST_STORE_H
#define AGENTMESH_TRUST_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "controller/trust_engine.h"

enum trust_store_rc {
    TS_OK = 0,
    TS_EXISTS = 1,          /* remember: already seen; create/put_challenge: already there */
    TS_NOT_FOUND = 2,       /* no such agent / challenge (or it expired) */
    TS_INVALID = -1,        /* bad argument (signal out of range, id too long, ...) */
    TS_UNAVAILABLE = -2     /* backend down, timed out, or full */
};

/* Called after an agent's state changed (signal, put, set_params, remove),
 * with its DID. Redis: for changes made by any replica (from the
 * agentmesh:trust_updates channel), on the store's subscriber thread.
 * Memory: synchronously on the thread that made the change, after the
 * store's lock is released. Keep it short; do not call back into the store
 * while holding your own locks that the store's callers hold. */
typedef void (*trust_store_listener)(const char *did, void *arg);

/* What an asynchronous store step found (see loop_open); everything in it
 * is valid during the done call only. */
struct trust_store_reply {
    int rc;                          /* as the synchronous calls': TS_EXISTS = replayed, nothing done */
    const char *err;                 /* what failed when rc < 0; "" otherwise */
    const struct trust_state *state; /* signal: the new state (TS_OK); take: the agent's, NULL when none */
    const char *challenge;           /* take: the challenge's value, NULL when unknown, expired or used */
};
typedef void (*trust_store_done)(const struct trust_store_reply *r, void *arg);

struct event_base;
struct trust_store_loop;

#define TRUST_STORE_MAX_KEY 256      /* DIDs, challenge ids, replay keys */
#define TRUST_STORE_MAX_VALUE 4096   /* challenge payloads */

struct trust_store {
    /* TS_OK with *out filled, or TS_NOT_FOUND. */
    int (*get)(struct trust_store *s, const char *did, struct trust_state *out,
               char *err, size_t errlen);
    /* Creates the agent's state if absent: TS_OK, or TS_EXISTS (state untouched). */
    int (*create)(struct trust_store *s, const char *did, const struct trust_state *st,
                  char *err, size_t errlen);
    /* Overwrites the whole state (restore on start, admin). */
    int (*put)(struct trust_store *s, const char *did, const struct trust_state *st,
               char *err, size_t errlen);
    /* Replaces only the scoring parameters (policy change), keeping dims and
     * last_positive; TS_NOT_FOUND if absent. */
    int (*set_params)(struct trust_store *s, const char *did, const struct trust_params *p,
                      char *err, size_t errlen);
    /* Applies a signal atomically; *out (may be NULL) gets the new state.
     * TS_NOT_FOUND if the agent has no state; TS_INVALID if the signal is out of range. */
    int (*apply_signal)(struct trust_store *s, const char *did, const struct trust_signal *sig,
                        struct trust_state *out, char *err, size_t errlen);
    /* TS_OK or TS_NOT_FOUND. */
    int (*remove)(struct trust_store *s, const char *did, char *err, size_t errlen);

    /* Stores a challenge for ttl_ms; TS_EXISTS if the id is taken. */
    int (*put_challenge)(struct trust_store *s, const char *id, const char *value, int64_t ttl_ms,
                         char *err, size_t errlen);
    /* Removes and returns a challenge (single use, atomic across replicas):
     * TS_OK with value copied (NUL-terminated; TS_INVALID if it does not
     * fit), or TS_NOT_FOUND (never existed, expired, or already taken). */
    int (*take_challenge)(struct trust_store *s, const char *id, char *value, size_t valuelen,
                          char *err, size_t errlen);
    /* Replay cache: TS_OK when `key` was new (now remembered for ttl_ms),
     * TS_EXISTS when it was already seen. */
    int (*remember)(struct trust_store *s, const char *key, int64_t ttl_ms,
                    char *err, size_t errlen);

    /* Optional (NULL = remember, then apply_signal): the replay check and a
     * signal in one step, so a networked backend pays one round trip.
     * TS_EXISTS when `key` was already seen (nothing applied); otherwise the
     * key is remembered for ttl_ms and the result is apply_signal's
     * (TS_NOT_FOUND: remembered, but the agent has no state yet). */
    int (*remember_apply)(struct trust_store *s, const char *key, int64_t ttl_ms, const char *did,
                          const struct trust_signal *sig, struct trust_state *out, char *err, size_t errlen);

    /* Optional (NULL = none: use the synchronous calls): the API's store
     * steps for an event loop that must not wait for the backend, each
     * recording a request's replay key first and doing nothing more when it
     * was already seen (rc TS_EXISTS). loop_open gives the backend's
     * connection for one loop, used only on that loop's thread (NULL on
     * OOM). A step either returns TS_OK, and `done` runs later on the loop,
     * exactly once; or returns TS_INVALID / TS_UNAVAILABLE with err, and done
     * never runs. loop_close, on the loop's thread, ends the steps still in
     * flight with TS_UNAVAILABLE, then frees the connection. A backend with
     * loop_open has all three steps.
     *
     * remember_apply_async: remember_apply; r->state is the new state.
     * remember_put_challenge_async: remember, then put_challenge(id, value,
     *   challenge_ttl_ms); an id already taken is TS_UNAVAILABLE.
     * remember_take_async: remember, then take_challenge(id) and get(did) in
     *   one atomic step: TS_OK with r->challenge and r->state (either NULL
     *   when absent). */
    struct trust_store_loop *(*loop_open)(struct trust_store *s, struct event_base *base);
    int (*remember_apply_async)(struct trust_store_loop *l, const char *key, int64_t ttl_ms, const char *did,
                                const struct trust_signal *sig, trust_store_done done, void *arg, char *err,
                                size_t errlen);
    int (*remember_put_challenge_async)(struct trust_store_loop *l, const char *key, int64_t ttl_ms,
                                        const char *id, const char *value, int64_t challenge_ttl_ms,
                                        trust_store_done done, void *arg, char *err, size_t errlen);
    int (*remember_take_async)(struct trust_store_loop *l, const char *key, int64_t ttl_ms, const char *id,
                               const char *did, trust_store_done done, void *arg, char *err, size_t errlen);
    void (*loop_close)(struct trust_store_loop *l);

    /* Installs the change listener (NULL to remove). 0 or -1. */
    int (*set_listener)(struct trust_store *s, trust_store_listener fn, void *arg);
    /* Frees the store; no call may be in flight. */
    void (*destroy)(struct trust_store *s);
    /* "memory" or "redis". */
    const char *kind;
};

/* Bounds of the memory store. 0 in a field = its default. */
struct trust_store_memory_limits {
    size_t max_agents;       /* default 100000 */
    size_t max_challenges;   /* default 100000 */
    size_t max_replay;       /* default 1000000 */
};

/* A process-local store. `limits` may be NULL. When a table is full (after
 * dropping expired entries) inserts get TS_UNAVAILABLE "... full". Time for
 * TTLs comes from CLOCK_MONOTONIC. NULL on OOM. */
struct trust_store *trust_store_memory_new(const struct trust_store_memory_limits *limits);

struct redis_options;

/* A Redis-backed store (see trust_store_redis.c for the key layout). Connects
 * once to check the URL and credentials (-> NULL with err when it cannot),
 * then reconnects on demand. Keys are prefixed "agentmesh:". */
struct trust_store *trust_store_redis_new(const struct redis_options *opt, char *err, size_t errlen);

/* Backends' shared argument check: TS_OK, or TS_INVALID with
 * "<what>: must be 1..256 characters". */
static inline int trust_store_check_key(const char *what, const char *key, char *err, size_t errlen)
{
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || n > TRUST_STORE_MAX_KEY) {
        snprintf(err, errlen, "%s: must be 1..%d characters", what, TRUST_STORE_MAX_KEY);
        return TS_INVALID;
    }
    return TS_OK;
}

/* Convenience wrappers, so call sites read as verbs. */
static inline int trust_store_get(struct trust_store *s, const char *did, struct trust_state *out,
                                  char *err, size_t errlen)
{ return s->get(s, did, out, err, errlen); }
static inline int trust_store_apply(struct trust_store *s, const char *did,
                                    const struct trust_signal *sig, struct trust_state *out,
                                    char *err, size_t errlen)
{ return s->apply_signal(s, did, sig, out, err, errlen); }
static inline int trust_store_remember_apply(struct trust_store *s, const char *key, int64_t ttl_ms,
                                             const char *did, const struct trust_signal *sig,
                                             struct trust_state *out, char *err, size_t errlen)
{
    if (s->remember_apply) return s->remember_apply(s, key, ttl_ms, did, sig, out, err, errlen);
    int rc = s->remember(s, key, ttl_ms, err, errlen);
    return rc != TS_OK ? rc : s->apply_signal(s, did, sig, out, err, errlen);
}
static inline void trust_store_destroy(struct trust_store *s) { if (s) s->destroy(s); }

#endif
