/* strmap.c — a small chained hash map from strings to pointers.
 *
 * Written here because the informer cache and the workqueue need only
 * put/get/remove/iterate on string keys; glib would be a heavy dependency
 * for that, and hsearch(3) cannot delete. */
#include "controller/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    struct entry *next;
    uint32_t hash;
    void *val;
    char key[];
};

struct strmap {
    struct entry **buckets;
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

void strmap_free(struct strmap *m, void (*free_val)(void *))
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct entry *e = m->buckets[i];
        while (e) {
            struct entry *next = e->next;
            if (free_val)
                free_val(e->val);
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    free(m);
}

static struct entry **find(const struct strmap *m, const char *key, uint32_t hash)
{
    struct entry **pp = &m->buckets[hash & (m->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == hash && strcmp((*pp)->key, key) == 0)
            return pp;
    return pp;
}

/* Doubles the bucket array; on allocation failure the map just stays denser. */
static void grow(struct strmap *m)
{
    size_t n = m->nbuckets * 2;
    struct entry **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct entry *e = m->buckets[i];
        while (e) {
            struct entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

int strmap_put(struct strmap *m, const char *key, void *val, void **old)
{
    uint32_t hash = fnv1a(key);
    struct entry **pp = find(m, key, hash);
    if (*pp) {
        if (old)
            *old = (*pp)->val;
        (*pp)->val = val;
        return 0;
    }
    if (old)
        *old = NULL;
    size_t klen = strlen(key);
    struct entry *e = malloc(sizeof(*e) + klen + 1);
    if (!e)
        return -1;
    memcpy(e->key, key, klen + 1);
    e->hash = hash;
    e->val = val;
    e->next = NULL;
    *pp = e;
    if (++m->count > m->nbuckets)
        grow(m);
    return 0;
}

void *strmap_get(const struct strmap *m, const char *key)
{
    struct entry **pp = find(m, key, fnv1a(key));
    return *pp ? (*pp)->val : NULL;
}

int strmap_has(const struct strmap *m, const char *key)
{
    return *find(m, key, fnv1a(key)) != NULL;
}

void *strmap_remove(struct strmap *m, const char *key)
{
    struct entry **pp = find(m, key, fnv1a(key));
    struct entry *e = *pp;
    if (!e)
        return NULL;
    void *val = e->val;
    *pp = e->next;
    free(e);
    m->count--;
    return val;
}

size_t strmap_count(const struct strmap *m)
{
    return m->count;
}

int strmap_foreach(const struct strmap *m, strmap_iter_fn fn, void *arg)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (struct entry *e = m->buckets[i]; e; e = e->next) {
            int rc = fn(e->key, e->val, arg);
            if (rc)
                return rc;
        }
    return 0;
}
