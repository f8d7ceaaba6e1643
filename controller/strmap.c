/* strmap.c — a small chained hash map from strings to pointers.
 *
 * Written here because the informer cache and the workqueue need only
 * put/get/remove/iterate on string keys; glib would be a heavy dependency
 * for that, and hsearch(3) cannot delete. The table itself only links
 * nodes (struct strmap_node); the value API wraps each value in a node of
 * its own (struct entry) holding a copy of the key. */
#include "controller/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Entries per bucket before the buckets double. At 2, not 1, the bucket
 * arrays (8 B a bucket, in eight maps that grow with the agents: caches,
 * index, registry, delayed keys) take half the heap; a lookup walks 1-2
 * nodes, comparing the stored hash before any key. */
#define MAX_LOAD 2

struct entry {
    struct strmap_node node;
    void *val;
    char key[];
};

struct strmap {
    struct strmap_node **buckets;
    size_t nbuckets;    /* a power of two */
    size_t count;
};

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

struct strmap *strmap_new(void)
{
    struct strmap *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->nbuckets = 16;
    m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
    if (!m->buckets) {
        free(m);
        return NULL;
    }
    return m;
}

/* Frees the map, calling fn(node, arg) on every node first. */
static void destroy(struct strmap *m, void (*fn)(struct strmap_node *n, void *arg), void *arg)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_node *n = m->buckets[i];
        while (n) {
            struct strmap_node *next = n->next;
            fn(n, arg);
            n = next;
        }
    }
    free(m->buckets);
    free(m);
}

/* destroy's step for strmap_free: the entry, its value through free_val. */
static void free_entry(struct strmap_node *n, void *free_val)
{
    void (*fv)(void *) = *(void (**)(void *))free_val;
    if (fv)
        fv(((struct entry *)n)->val);
    free(n);
}

void strmap_free(struct strmap *m, void (*free_val)(void *))
{
    destroy(m, free_entry, &free_val);
}

/* destroy's step for strmap_free_nodes: the caller's free_node. */
static void free_node_of(struct strmap_node *n, void *free_node)
{
    void (*fn)(struct strmap_node *) = *(void (**)(struct strmap_node *))free_node;
    if (fn)
        fn(n);
}

void strmap_free_nodes(struct strmap *m, void (*free_node)(struct strmap_node *))
{
    destroy(m, free_node_of, &free_node);
}

static struct strmap_node **find(const struct strmap *m, const char *key, uint32_t hash)
{
    struct strmap_node **pp = &m->buckets[hash & (m->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == hash && strcmp(strmap_node_key(*pp), key) == 0)
            return pp;
    return pp;
}

/* Doubles the bucket array; on allocation failure the map just stays denser. */
static void grow(struct strmap *m)
{
    size_t n = m->nbuckets * 2;
    struct strmap_node **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_node *e = m->buckets[i];
        while (e) {
            struct strmap_node *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

/* Puts n (its hash set) in slot *pp, the one find returned for its key,
 * in place of what is there; returns that (or NULL). */
static struct strmap_node *link_at(struct strmap *m, struct strmap_node **pp, struct strmap_node *n)
{
    struct strmap_node *old = *pp;
    n->next = old ? old->next : NULL;
    *pp = n;
    if (!old && ++m->count > MAX_LOAD * m->nbuckets)
        grow(m);
    return old;
}

struct strmap_node *strmap_link(struct strmap *m, struct strmap_node *n)
{
    n->hash = fnv1a(strmap_node_key(n));
    return link_at(m, find(m, strmap_node_key(n), n->hash), n);
}

void *strmap_node_new(size_t key_off, const char *key)
{
    size_t klen = strlen(key) + 1;
    struct strmap_node *n = calloc(1, key_off + klen);
    if (!n)
        return NULL;
    memcpy((char *)n + key_off, key, klen);
    n->key_off = (uint32_t)key_off;
    return n;
}

struct strmap_node *strmap_find(const struct strmap *m, const char *key)
{
    return *find(m, key, fnv1a(key));
}

struct strmap_node *strmap_unlink(struct strmap *m, const char *key)
{
    struct strmap_node **pp = find(m, key, fnv1a(key)), *n = *pp;
    if (!n)
        return NULL;
    *pp = n->next;
    m->count--;
    return n;
}

int strmap_foreach_node(const struct strmap *m, strmap_node_fn fn, void *arg)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (struct strmap_node *n = m->buckets[i]; n; n = n->next) {
            int rc = fn(n, arg);
            if (rc)
                return rc;
        }
    return 0;
}

size_t strmap_unlink_if(struct strmap *m, int (*drop)(struct strmap_node *n, void *arg), void *arg)
{
    size_t dropped = 0;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_node **pp = &m->buckets[i];
        while (*pp) {
            struct strmap_node *n = *pp, *next = n->next;
            if (drop(n, arg)) {
                *pp = next;   /* n may be gone: only `next` is read from here */
                dropped++;
            } else {
                pp = &n->next;
            }
        }
    }
    m->count -= dropped;
    return dropped;
}

int strmap_put(struct strmap *m, const char *key, void *val, void **old)
{
    uint32_t hash = fnv1a(key);
    struct strmap_node **pp = find(m, key, hash);
    struct entry *e = (struct entry *)*pp;
    if (old)
        *old = e ? e->val : NULL;
    if (e) {
        e->val = val;
        return 0;
    }
    if (!(e = strmap_node_new(offsetof(struct entry, key), key)))
        return -1;
    e->node.hash = hash;
    e->val = val;
    link_at(m, pp, &e->node);
    return 0;
}

void *strmap_get(const struct strmap *m, const char *key)
{
    struct entry *e = (struct entry *)strmap_find(m, key);
    return e ? e->val : NULL;
}

int strmap_has(const struct strmap *m, const char *key)
{
    return strmap_find(m, key) != NULL;
}

void *strmap_remove(struct strmap *m, const char *key)
{
    struct entry *e = (struct entry *)strmap_unlink(m, key);
    void *val = e ? e->val : NULL;
    free(e);
    return val;
}

size_t strmap_count(const struct strmap *m)
{
    return m->count;
}

/* strmap_foreach's adapter from nodes to (key, value). */
struct value_walk {
    strmap_iter_fn fn;
    void *arg;
};

static int visit_entry(struct strmap_node *n, void *arg)
{
    struct value_walk *w = arg;
    return w->fn(strmap_node_key(n), ((struct entry *)n)->val, w->arg);
}

int strmap_foreach(const struct strmap *m, strmap_iter_fn fn, void *arg)
{
    struct value_walk w = {fn, arg};
    return strmap_foreach_node(m, visit_entry, &w);
}
