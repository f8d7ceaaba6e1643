/* trust_store_memory.c — the process-local trust store (the default backend).
 *
 * Three chained hash tables under one mutex: agent states, challenges (with
 * TTL) and the replay cache (with TTL). Each table is bounded; expired
 * entries are dropped lazily on lookup and in a sweep when a table reaches
 * its bound, so memory stays bounded under any request pattern. The signal
 * math is trust_engine's, done under the lock, so updates are atomic. */
#include "controller/trust_store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct entry {
    struct entry *next;
    uint64_t hash;
    int64_t expires_ms;      /* monotonic; 0 = never */
    void *val;               /* struct trust_state * / char * / NULL */
    char key[];
};

struct table {
    const char *what;        /* for "... full" messages */
    struct entry **buckets;
    size_t nbuckets;         /* power of two */
    size_t count;
    size_t max;
};

struct memstore {
    struct trust_store base;
    pthread_mutex_t mu;
    struct table agents, challenges, replay;
    trust_store_listener listener;
    void *listener_arg;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int table_init(struct table *t, const char *what, size_t max)
{
    t->what = what;
    t->nbuckets = 64;
    t->count = 0;
    t->max = max;
    t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
    return t->buckets ? 0 : -1;
}

static void entry_free(struct entry *e)
{
    free(e->val);
    free(e);
}

static void table_free(struct table *t)
{
    for (size_t i = 0; t->buckets && i < t->nbuckets; i++) {
        struct entry *e = t->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            entry_free(e);
        }
    }
    free(t->buckets);
    t->buckets = NULL;
}

static int expired(const struct entry *e, int64_t now)
{
    return e->expires_ms && e->expires_ms <= now;
}

/* The link pointing at `key`'s entry (or at the NULL ending its chain).
 * Expired entries met on the way are unlinked and freed. */
static struct entry **table_slot(struct table *t, const char *key, uint64_t h, int64_t now)
{
    struct entry **pp = &t->buckets[h & (t->nbuckets - 1)];
    while (*pp) {
        struct entry *e = *pp;
        if (expired(e, now)) {
            *pp = e->next;
            entry_free(e);
            t->count--;
            continue;
        }
        if (e->hash == h && strcmp(e->key, key) == 0)
            return pp;
        pp = &e->next;
    }
    return pp;
}

static struct entry *table_get(struct table *t, const char *key, int64_t now)
{
    return *table_slot(t, key, hash_key(key), now);
}

static void table_sweep(struct table *t, int64_t now)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct entry **pp = &t->buckets[i];
        while (*pp) {
            if (expired(*pp, now)) {
                struct entry *e = *pp;
                *pp = e->next;
                entry_free(e);
                t->count--;
            } else {
                pp = &(*pp)->next;
            }
        }
    }
}

/* Doubles the bucket array when chains get long; failure just keeps chains longer. */
static void table_grow(struct table *t)
{
    size_t n = t->nbuckets * 2;
    struct entry **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct entry *e = t->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

/* Inserts a new entry (the key must be absent; `val` is owned by the table
 * on success). TS_OK, or TS_UNAVAILABLE when the table is full. */
static int table_insert(struct table *t, const char *key, void *val, int64_t expires, int64_t now,
                        char *err, size_t errlen)
{
    if (t->count >= t->max)
        table_sweep(t, now);
    if (t->count >= t->max) {
        snprintf(err, errlen, "%s full (%zu entries)", t->what, t->max);
        return TS_UNAVAILABLE;
    }
    size_t klen = strlen(key);
    struct entry *e = malloc(sizeof *e + klen + 1);
    if (!e) {
        snprintf(err, errlen, "%s: out of memory", t->what);
        return TS_UNAVAILABLE;
    }
    e->hash = hash_key(key);
    e->expires_ms = expires;
    e->val = val;
    memcpy(e->key, key, klen + 1);
    struct entry **head = &t->buckets[e->hash & (t->nbuckets - 1)];
    e->next = *head;
    *head = e;
    if (++t->count > t->nbuckets)
        table_grow(t);
    return TS_OK;
}

static void table_remove(struct table *t, struct entry **pp)
{
    struct entry *e = *pp;
    *pp = e->next;
    entry_free(e);
    t->count--;
}

static struct memstore *M(struct trust_store *s)
{
    return (struct memstore *)s;
}

/* Unlocks, then tells the listener (outside the lock) that `did` changed. */
static int unlock_notify(struct memstore *m, const char *did, int rc)
{
    trust_store_listener fn = m->listener;
    void *arg = m->listener_arg;
    pthread_mutex_unlock(&m->mu);
    if (rc == TS_OK && fn)
        fn(did, arg);
    return rc;
}

static int mem_get(struct trust_store *s, const char *did, struct trust_state *out, char *err, size_t errlen)
{
    struct memstore *m = M(s);
    if (trust_store_check_key("did", did, err, errlen))
        return TS_INVALID;
    pthread_mutex_lock(&m->mu);
    struct entry *e = table_get(&m->agents, did, 0);
    if (e)
        *out = *(struct trust_state *)e->val;
    pthread_mutex_unlock(&m->mu);
    return e ? TS_OK : TS_NOT_FOUND;
}

/* create and put: `overwrite` selects which. */
static int mem_store_state(struct trust_store *s, const char *did, const struct trust_state *st, int overwrite,
                           char *err, size_t errlen)
{
    struct memstore *m = M(s);
    if (trust_store_check_key("did", did, err, errlen) || trust_state_check(st, err, errlen) < 0)
        return TS_INVALID;
    pthread_mutex_lock(&m->mu);
    struct entry *e = table_get(&m->agents, did, 0);
    int rc = TS_OK;
    if (e && !overwrite) {
        rc = TS_EXISTS;
    } else if (e) {
        *(struct trust_state *)e->val = *st;
    } else {
        struct trust_state *copy = malloc(sizeof *copy);
        if (!copy) {
            snprintf(err, errlen, "out of memory");
            rc = TS_UNAVAILABLE;
        } else {
            *copy = *st;
            if ((rc = table_insert(&m->agents, did, copy, 0, 0, err, errlen)) != TS_OK)
                free(copy);
        }
    }
    return unlock_notify(m, did, rc);
}

static int mem_create(struct trust_store *s, const char *did, const struct trust_state *st, char *err,
                      size_t errlen)
{
    return mem_store_state(s, did, st, 0, err, errlen);
}

static int mem_put(struct trust_store *s, const char *did, const struct trust_state *st, char *err, size_t errlen)
{
    return mem_store_state(s, did, st, 1, err, errlen);
}

static int mem_set_params(struct trust_store *s, const char *did, const struct trust_params *p, char *err,
                          size_t errlen)
{
    struct memstore *m = M(s);
    if (trust_store_check_key("did", did, err, errlen) || trust_params_check(p, err, errlen) < 0)
        return TS_INVALID;
    pthread_mutex_lock(&m->mu);
    struct entry *e = table_get(&m->agents, did, 0);
    if (e)
        ((struct trust_state *)e->val)->params = *p;
    return unlock_notify(m, did, e ? TS_OK : TS_NOT_FOUND);
}

static int mem_apply(struct trust_store *s, const char *did, const struct trust_signal *sig,
                     struct trust_state *out, char *err, size_t errlen)
{
    struct memstore *m = M(s);
    if (trust_store_check_key("did", did, err, errlen) || trust_signal_check(sig, err, errlen) < 0)
        return TS_INVALID;
    pthread_mutex_lock(&m->mu);
    struct entry *e = table_get(&m->agents, did, 0);
    int rc = TS_NOT_FOUND;
    if (e) {
        struct trust_state *st = e->val;
        rc = trust_apply_signal(st, sig, err, errlen) == 0 ? TS_OK : TS_INVALID;
        if (out)
            *out = *st;
    }
    return unlock_notify(m, did, rc);
}

static int mem_remove(struct trust_store *s, const char *did, char *err, size_t errlen)
{
    struct memstore *m = M(s);
    if (trust_store_check_key("did", did, err, errlen))
        return TS_INVALID;
    pthread_mutex_lock(&m->mu);
    struct entry **pp = table_slot(&m->agents, did, hash_key(did), 0);
    int rc = *pp ? TS_OK : TS_NOT_FOUND;
    if (*pp)
        table_remove(&m->agents, pp);
    return unlock_notify(m, did, rc);
}

static int mem_put_challenge(struct trust_store *s, const char *id, const char *value, int64_t ttl_ms,
                             char *err, size_t errlen)
{
    struct memstore *m = M(s);
    if (trust_store_check_key("challenge id", id, err, errlen))
        return TS_INVALID;
    if (!value || strlen(value) >= TRUST_STORE_MAX_VALUE || ttl_ms <= 0) {
        snprintf(err, errlen, "challenge: value must be under %d bytes and ttl positive", TRUST_STORE_MAX_VALUE);
        return TS_INVALID;
    }
    char *copy = strdup(value);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return TS_UNAVAILABLE;
    }
    int64_t now = mono_ms();
    pthread_mutex_lock(&m->mu);
    int rc = table_get(&m->challenges, id, now) ? TS_EXISTS
           : table_insert(&m->challenges, id, copy, now + ttl_ms, now, err, errlen);
    pthread_mutex_unlock(&m->mu);
    if (rc != TS_OK)
        free(copy);
    return rc;
}

static int mem_take_challenge(struct trust_store *s, const char *id, char *value, size_t valuelen, char *err,
                              size_t errlen)
{
    struct memstore *m = M(s);
    if (trust_store_check_key("challenge id", id, err, errlen))
        return TS_INVALID;
    pthread_mutex_lock(&m->mu);
    struct entry **pp = table_slot(&m->challenges, id, hash_key(id), mono_ms());
    int rc = TS_NOT_FOUND;
    if (*pp) {
        const char *v = (*pp)->val;
        if (strlen(v) >= valuelen) {
            snprintf(err, errlen, "challenge value does not fit in %zu bytes", valuelen);
            rc = TS_INVALID;
        } else {
            memcpy(value, v, strlen(v) + 1);
            rc = TS_OK;
        }
        table_remove(&m->challenges, pp);   /* single use, even when the caller's buffer was short */
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int mem_remember(struct trust_store *s, const char *key, int64_t ttl_ms, char *err, size_t errlen)
{
    struct memstore *m = M(s);
    if (trust_store_check_key("replay key", key, err, errlen))
        return TS_INVALID;
    if (ttl_ms <= 0) {
        snprintf(err, errlen, "replay ttl must be positive");
        return TS_INVALID;
    }
    int64_t now = mono_ms();
    pthread_mutex_lock(&m->mu);
    int rc = table_get(&m->replay, key, now) ? TS_EXISTS
           : table_insert(&m->replay, key, NULL, now + ttl_ms, now, err, errlen);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int mem_set_listener(struct trust_store *s, trust_store_listener fn, void *arg)
{
    struct memstore *m = M(s);
    pthread_mutex_lock(&m->mu);
    m->listener = fn;
    m->listener_arg = arg;
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static void mem_destroy(struct trust_store *s)
{
    struct memstore *m = M(s);
    table_free(&m->agents);
    table_free(&m->challenges);
    table_free(&m->replay);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

struct trust_store *trust_store_memory_new(const struct trust_store_memory_limits *limits)
{
    struct trust_store_memory_limits l = {0};
    if (limits)
        l = *limits;
    struct memstore *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return NULL;
    }
    if (table_init(&m->agents, "agent table", l.max_agents ? l.max_agents : 100000) < 0 ||
        table_init(&m->challenges, "challenge table", l.max_challenges ? l.max_challenges : 100000) < 0 ||
        table_init(&m->replay, "replay cache", l.max_replay ? l.max_replay : 1000000) < 0) {
        mem_destroy(&m->base);
        return NULL;
    }
    m->base = (struct trust_store){
        .get = mem_get, .create = mem_create, .put = mem_put, .set_params = mem_set_params,
        .apply_signal = mem_apply, .remove = mem_remove, .put_challenge = mem_put_challenge,
        .take_challenge = mem_take_challenge, .remember = mem_remember, .set_listener = mem_set_listener,
        .destroy = mem_destroy, .kind = "memory",
    };
    return &m->base;
}
