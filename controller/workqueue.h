/* workqueue.h — a rate-limited, de-duplicating work queue of string keys
 * ("namespace/name"), modelled on client-go's workqueue.
 *
 * Guarantees:
 *  - a key added many times before a worker takes it is processed once;
 *  - one key is never handed to two workers at the same time: a key added
 *    while it is being processed is queued again when the worker calls
 *    workqueue_done;
 *  - add_rate_limited delays a key by max(per-item exponential backoff
 *    5 ms * 2^failures capped at 1000 s, a shared token bucket of 10 qps /
 *    burst 100); forget resets the item's failure count;
 *  - workqueue_get blocks until a key is ready and returns NULL once the
 *    queue is shut down (all blocked getters are woken).
 *
 * All functions are thread-safe. Keys are copied; the caller keeps its own. */
#ifndef AGENTMESH_WORKQUEUE_H
#define AGENTMESH_WORKQUEUE_H

#include <stddef.h>

struct workqueue;

/* A monotonic clock in seconds; injectable for tests. */
typedef double (*workqueue_clock_fn)(void *arg);

/* Zero fields take the defaults shown. */
struct workqueue_opts {
    const char *name;          /* for logs and the metric label; "" */
    double base_delay;         /* 0.005 s */
    double max_delay;          /* 1000 s */
    double qps;                /* 10 */
    int burst;                 /* 100 */
    workqueue_clock_fn clock;  /* NULL: CLOCK_MONOTONIC */
    void *clock_arg;
};

/* Counters for workqueue_depth{name}, workqueue_adds_total, workqueue_retries_total. */
struct workqueue_stats {
    size_t depth;                  /* keys ready to be handed out now */
    size_t delayed;                /* keys waiting for their add_after time */
    size_t processing;             /* keys held by workers */
    unsigned long long adds;       /* every workqueue_add that queued a key (deduplicated ones excluded) */
    unsigned long long retries;    /* every workqueue_add_rate_limited */
};

/* NULL opts = all defaults. Returns NULL on allocation failure. */
struct workqueue *workqueue_new(const struct workqueue_opts *opts);
/* Frees the queue; call after shutdown once no thread uses it. */
void workqueue_free(struct workqueue *q);

/* Queues `key` now. 0, or -1 (shut down / out of memory). */
int workqueue_add(struct workqueue *q, const char *key);
/* Queues `key` after `delay` seconds (<= 0: now). An earlier pending time for
 * the same key wins. 0 or -1. */
int workqueue_add_after(struct workqueue *q, const char *key, double delay);
/* Queues `key` after its rate-limit delay and counts a failure for it.
 * Returns the delay applied in seconds, or -1 (shut down / out of memory). */
double workqueue_add_rate_limited(struct workqueue *q, const char *key);
/* The key succeeded: its failure count (and backoff) goes back to zero. */
void workqueue_forget(struct workqueue *q, const char *key);
/* How many times add_rate_limited was called for `key` since its last forget. */
int workqueue_num_requeues(struct workqueue *q, const char *key);

/* Blocks for the next key; the caller owns the returned string (free()) and
 * must call workqueue_done with it. NULL once the queue is shut down
 * (after drain: once it is also empty). */
char *workqueue_get(struct workqueue *q);
/* The worker finished `key`; re-queues it if it was added meanwhile. */
void workqueue_done(struct workqueue *q, const char *key);

/* Keys ready to be handed out now. */
size_t workqueue_len(struct workqueue *q);
void workqueue_stats(struct workqueue *q, struct workqueue_stats *out);

/* Stops accepting keys and wakes every blocked getter, which returns NULL.
 * Delayed keys are dropped. */
void workqueue_shutdown(struct workqueue *q);
/* Like shutdown, but getters keep receiving the keys already queued and the
 * call blocks until every handed-out key is done. */
void workqueue_shutdown_drain(struct workqueue *q);
int workqueue_shutting_down(struct workqueue *q);

/* The per-item backoff after `failures` earlier failures:
 * base * 2^failures, capped at max (defaults: 5 ms, 10 ms, 20 ms, ... 1000 s). */
double workqueue_backoff_for(double base, double max, int failures);

/* The shared token bucket (golang.org/x/time/rate semantics): starts full
 * with `burst` tokens, refills at `qps`; each reservation takes one token
 * and waits -tokens/qps when the bucket is in debt. Exposed for tests. */
struct token_bucket {
    double qps;
    double burst;
    double tokens;
    double last;      /* clock time of the last refill */
};
void token_bucket_init(struct token_bucket *b, double qps, int burst, double now);
/* Takes one token at time `now`; returns how long the caller must wait (>= 0). */
double token_bucket_reserve(struct token_bucket *b, double now);

#endif
