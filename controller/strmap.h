/* strmap.h — a small hash map from C strings to pointers.
 *
 * Chained buckets, FNV-1a hashing, doubling when the load passes 1. Keys are
 * copied; values are the caller's. Not thread-safe: the owner locks. Used by
 * the informer cache and the workqueue's sets. */
#ifndef AGENTMESH_STRMAP_H
#define AGENTMESH_STRMAP_H

#include <stddef.h>

struct strmap;

struct strmap *strmap_new(void);
/* Frees the map; calls `free_val` (may be NULL) on every value. */
void strmap_free(struct strmap *m, void (*free_val)(void *));

/* Sets key -> val. When the key existed, its old value is stored in *old
 * (when old is non-NULL) and replaced; else *old = NULL. 0, or -1 on OOM. */
int strmap_put(struct strmap *m, const char *key, void *val, void **old);
/* The value, or NULL. Use strmap_has to tell a NULL value from a miss. */
void *strmap_get(const struct strmap *m, const char *key);
int strmap_has(const struct strmap *m, const char *key);
/* Removes the key; returns its value (NULL when absent). */
void *strmap_remove(struct strmap *m, const char *key);
size_t strmap_count(const struct strmap *m);

/* Calls fn for each entry in no particular order; stops early and returns
 * fn's value when it is non-zero. fn must not change the map. */
typedef int (*strmap_iter_fn)(const char *key, void *val, void *arg);
int strmap_foreach(const struct strmap *m, strmap_iter_fn fn, void *arg);

#endif
