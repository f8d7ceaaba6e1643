/* workqueue.c — the rate-limited, de-duplicating work queue of workqueue.h.
 *
 * The same three sets as client-go's queue, under one mutex:
 *   dirty      keys waiting to be processed (the de-duplication set),
 *   processing keys a worker holds,
 *   fifo       the order in which dirty keys not being processed go out.
 * A key added while it is processing only goes to `dirty`; workqueue_done
 * moves it to the fifo then. Delayed keys wait in a min-heap ordered by
 * their due time (monotonic clock); no extra thread moves them: getters
 * promote due keys and sleep on the condvar until the earliest one is due. */
#include "controller/workqueue.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "controller/strmap.h"

struct fifo_node {
    struct fifo_node *next;
    char *key;
};

/* A delayed key, in one allocation with its node in `waiting`: every
 * agent waits here for its hourly look, and a separate key copy and map
 * entry were two more mallocs per agent. */
struct delayed {
    struct strmap_node node;
    double when;
    size_t idx;          /* position in the heap */
    char key[];
};

struct workqueue {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    char name[64];
    double base_delay, max_delay;
    workqueue_clock_fn clock;
    void *clock_arg;

    struct fifo_node *head, *tail;
    size_t fifo_len;
    struct strmap *dirty;        /* key -> NULL */
    struct strmap *processing;   /* key -> NULL */

    struct delayed **heap;       /* min-heap on `when` */
    size_t heap_len, heap_cap;
    struct strmap *waiting;      /* nodes: struct delayed */

    struct strmap *failures;     /* key -> (uintptr_t) count */
    struct token_bucket bucket;

    unsigned long long adds, retries;
    int shutting_down, draining;
};

static double monotonic_now(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now(struct workqueue *q)
{
    return q->clock(q->clock_arg);
}

double workqueue_backoff_for(double base, double max, int failures)
{
    if (failures < 0)
        failures = 0;
    if (failures > 1023)         /* 2^1024 overflows a double */
        return max;
    double d = ldexp(base, failures);
    return d > max ? max : d;
}

void token_bucket_init(struct token_bucket *b, double qps, int burst, double t)
{
    b->qps = qps;
    b->burst = burst;
    b->tokens = burst;
    b->last = t;
}

double token_bucket_reserve(struct token_bucket *b, double t)
{
    if (t > b->last) {
        b->tokens += (t - b->last) * b->qps;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->last = t;
    }
    b->tokens -= 1;
    return b->tokens >= 0 ? 0 : -b->tokens / b->qps;
}

struct workqueue *workqueue_new(const struct workqueue_opts *opts)
{
    struct workqueue_opts o = {0};
    if (opts)
        o = *opts;
    struct workqueue *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    snprintf(q->name, sizeof(q->name), "%s", o.name ? o.name : "");
    q->base_delay = o.base_delay > 0 ? o.base_delay : 0.005;
    q->max_delay = o.max_delay > 0 ? o.max_delay : 1000;
    q->clock = o.clock ? o.clock : monotonic_now;
    q->clock_arg = o.clock_arg;
    token_bucket_init(&q->bucket, o.qps > 0 ? o.qps : 10, o.burst > 0 ? o.burst : 100, now(q));

    q->dirty = strmap_new();
    q->processing = strmap_new();
    q->waiting = strmap_new();
    q->failures = strmap_new();
    pthread_condattr_t ca;
    int cond_ok = pthread_condattr_init(&ca) == 0;
    if (cond_ok) {
        cond_ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                  pthread_cond_init(&q->cond, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (!q->dirty || !q->processing || !q->waiting || !q->failures || !cond_ok ||
        pthread_mutex_init(&q->mu, NULL) != 0) {
        if (cond_ok)
            pthread_cond_destroy(&q->cond);
        strmap_free(q->dirty, NULL);
        strmap_free(q->processing, NULL);
        strmap_free_nodes(q->waiting, NULL);
        strmap_free(q->failures, NULL);
        free(q);
        return NULL;
    }
    return q;
}

/* Drops every delayed key (shutdown and free). */
static void clear_delayed(struct workqueue *q)
{
    for (size_t i = 0; i < q->heap_len; i++) {
        strmap_unlink(q->waiting, q->heap[i]->key);
        free(q->heap[i]);
    }
    q->heap_len = 0;
}

void workqueue_free(struct workqueue *q)
{
    if (!q)
        return;
    clear_delayed(q);
    free(q->heap);
    while (q->head) {
        struct fifo_node *n = q->head;
        q->head = n->next;
        free(n->key);
        free(n);
    }
    strmap_free(q->dirty, NULL);
    strmap_free(q->processing, NULL);
    strmap_free_nodes(q->waiting, NULL);
    strmap_free(q->failures, NULL);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

static int fifo_push(struct workqueue *q, const char *key)
{
    struct fifo_node *n = malloc(sizeof(*n));
    if (!n)
        return -1;
    n->key = strdup(key);
    if (!n->key) {
        free(n);
        return -1;
    }
    n->next = NULL;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    q->fifo_len++;
    return 0;
}

static char *fifo_pop(struct workqueue *q)
{
    struct fifo_node *n = q->head;
    if (!n)
        return NULL;
    q->head = n->next;
    if (!q->head)
        q->tail = NULL;
    q->fifo_len--;
    char *key = n->key;
    free(n);
    return key;
}

/* The de-duplicating add, with the lock held. */
static int add_locked(struct workqueue *q, const char *key)
{
    if (strmap_has(q->dirty, key))
        return 0;
    if (strmap_put(q->dirty, key, NULL, NULL) != 0)
        return -1;
    q->adds++;
    if (strmap_has(q->processing, key))
        return 0;              /* workqueue_done queues it */
    if (fifo_push(q, key) != 0) {
        strmap_remove(q->dirty, key);
        return -1;
    }
    pthread_cond_signal(&q->cond);
    return 0;
}

int workqueue_add(struct workqueue *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    int rc = q->shutting_down ? -1 : add_locked(q, key);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static void heap_swap(struct workqueue *q, size_t i, size_t j)
{
    struct delayed *t = q->heap[i];
    q->heap[i] = q->heap[j];
    q->heap[j] = t;
    q->heap[i]->idx = i;
    q->heap[j]->idx = j;
}

static void heap_up(struct workqueue *q, size_t i)
{
    while (i > 0 && q->heap[(i - 1) / 2]->when > q->heap[i]->when) {
        heap_swap(q, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct workqueue *q, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->heap_len && q->heap[l]->when < q->heap[m]->when)
            m = l;
        if (r < q->heap_len && q->heap[r]->when < q->heap[m]->when)
            m = r;
        if (m == i)
            return;
        heap_swap(q, i, m);
        i = m;
    }
}

static struct delayed *heap_pop(struct workqueue *q)
{
    struct delayed *top = q->heap[0];
    q->heap_len--;
    if (q->heap_len > 0) {
        q->heap[0] = q->heap[q->heap_len];
        q->heap[0]->idx = 0;
        heap_down(q, 0);
    }
    return top;
}

/* Puts `key` in the delay heap, or moves it earlier when already there. */
static int delay_locked(struct workqueue *q, const char *key, double when)
{
    struct delayed *d = (struct delayed *)strmap_find(q->waiting, key);
    if (d) {
        if (when < d->when) {
            d->when = when;
            heap_up(q, d->idx);
        }
        return 0;
    }
    if (q->heap_len == q->heap_cap) {
        size_t cap = q->heap_cap ? q->heap_cap * 2 : 16;
        struct delayed **h = realloc(q->heap, cap * sizeof(*h));
        if (!h)
            return -1;
        q->heap = h;
        q->heap_cap = cap;
    }
    if (!(d = strmap_node_new(offsetof(struct delayed, key), key)))
        return -1;
    strmap_link(q->waiting, &d->node);
    d->when = when;
    d->idx = q->heap_len;
    q->heap[q->heap_len++] = d;
    heap_up(q, d->idx);
    return 0;
}

/* Moves every delayed key whose time has come to the queue. */
static void promote_due(struct workqueue *q)
{
    if (q->heap_len == 0)
        return;
    double t = now(q);
    while (q->heap_len > 0 && q->heap[0]->when <= t) {
        struct delayed *d = heap_pop(q);
        strmap_unlink(q->waiting, d->key);
        if (add_locked(q, d->key) != 0)
            log_error("workqueue", "queue=%s dropped key %s: out of memory", q->name, d->key);
        free(d);
    }
}

int workqueue_add_after(struct workqueue *q, const char *key, double delay)
{
    if (delay <= 0)
        return workqueue_add(q, key);
    pthread_mutex_lock(&q->mu);
    int rc = -1;
    if (!q->shutting_down) {
        rc = delay_locked(q, key, now(q) + delay);
        /* a new earliest deadline: sleeping getters must recompute their timeout */
        pthread_cond_broadcast(&q->cond);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

double workqueue_add_rate_limited(struct workqueue *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    if (q->shutting_down) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    uintptr_t failures = (uintptr_t)strmap_get(q->failures, key);
    double t = now(q);
    double backoff = workqueue_backoff_for(q->base_delay, q->max_delay,
                                           failures > 2000 ? 2000 : (int)failures);
    double bucket = token_bucket_reserve(&q->bucket, t);
    double delay = backoff > bucket ? backoff : bucket;
    int rc = strmap_put(q->failures, key, (void *)(failures + 1), NULL);
    if (rc == 0)
        rc = delay_locked(q, key, t + delay);
    if (rc == 0) {
        q->retries++;
        pthread_cond_broadcast(&q->cond);
    }
    pthread_mutex_unlock(&q->mu);
    return rc == 0 ? delay : -1;
}

void workqueue_forget(struct workqueue *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    strmap_remove(q->failures, key);
    pthread_mutex_unlock(&q->mu);
}

int workqueue_num_requeues(struct workqueue *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    uintptr_t n = (uintptr_t)strmap_get(q->failures, key);
    pthread_mutex_unlock(&q->mu);
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* Sleeps on the condvar until woken or until the earliest delayed key is due. */
static void wait_locked(struct workqueue *q)
{
    if (q->heap_len == 0) {
        pthread_cond_wait(&q->cond, &q->mu);
        return;
    }
    double wait = q->heap[0]->when - now(q);
    if (wait <= 0)
        return;
    if (wait > 3600)
        wait = 3600;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double whole = floor(wait);
    ts.tv_sec += (time_t)whole;
    ts.tv_nsec += (long)((wait - whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    int rc = pthread_cond_timedwait(&q->cond, &q->mu, &ts);
    if (rc != 0 && rc != ETIMEDOUT)
        log_error("workqueue", "queue=%s timedwait: %s", q->name, strerror(rc));
}

char *workqueue_get(struct workqueue *q)
{
    pthread_mutex_lock(&q->mu);
    char *key = NULL;
    for (;;) {
        if (q->shutting_down && !q->draining)
            break;
        promote_due(q);
        if (q->head) {
            key = fifo_pop(q);
            break;
        }
        /* draining: a key still processing may be re-queued by its done */
        if (q->shutting_down && strmap_count(q->processing) == 0)
            break;
        wait_locked(q);
    }
    if (key) {
        strmap_remove(q->dirty, key);
        if (strmap_put(q->processing, key, NULL, NULL) != 0) {
            log_error("workqueue", "queue=%s out of memory marking %s processing", q->name, key);
            free(key);
            key = NULL;
        }
    }
    pthread_mutex_unlock(&q->mu);
    return key;
}

void workqueue_done(struct workqueue *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    strmap_remove(q->processing, key);
    if (strmap_has(q->dirty, key)) {
        if (fifo_push(q, key) != 0) {
            strmap_remove(q->dirty, key);
            log_error("workqueue", "queue=%s dropped key %s: out of memory", q->name, key);
        }
    }
    /* wakes a getter for the re-queued key, and a draining shutdown */
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mu);
}

size_t workqueue_len(struct workqueue *q)
{
    pthread_mutex_lock(&q->mu);
    if (!q->shutting_down)
        promote_due(q);
    size_t n = q->fifo_len;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void workqueue_stats(struct workqueue *q, struct workqueue_stats *out)
{
    pthread_mutex_lock(&q->mu);
    if (!q->shutting_down)
        promote_due(q);
    out->depth = q->fifo_len;
    out->delayed = q->heap_len;
    out->processing = strmap_count(q->processing);
    out->adds = q->adds;
    out->retries = q->retries;
    pthread_mutex_unlock(&q->mu);
}

void workqueue_shutdown(struct workqueue *q)
{
    pthread_mutex_lock(&q->mu);
    q->shutting_down = 1;
    clear_delayed(q);
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mu);
}

void workqueue_shutdown_drain(struct workqueue *q)
{
    pthread_mutex_lock(&q->mu);
    q->shutting_down = 1;
    q->draining = 1;
    clear_delayed(q);
    pthread_cond_broadcast(&q->cond);
    while (q->head || strmap_count(q->processing) > 0)
        pthread_cond_wait(&q->cond, &q->mu);
    pthread_mutex_unlock(&q->mu);
}

int workqueue_shutting_down(struct workqueue *q)
{
    pthread_mutex_lock(&q->mu);
    int s = q->shutting_down;
    pthread_mutex_unlock(&q->mu);
    return s;
}
