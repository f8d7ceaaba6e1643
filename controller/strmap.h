/* strmap.h — a small hash map from C strings to pointers.
 *
 * Chained buckets, FNV-1a hashing, doubling when the load passes 2. Not
 * thread-safe: the owner locks. Used by the informer cache and the
 * workqueue's sets.
 *
 * A map holds either values (strmap_put and friends: keys are copied,
 * values are the caller's) or the caller's own nodes (strmap_link and
 * friends), never both. A node sits in the caller's allocation next to its
 * key and payload, so an entry costs one malloc instead of two: the
 * informer caches hold four entries per agent. */
#ifndef AGENTMESH_STRMAP_H
#define AGENTMESH_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap;

struct strmap_node {
    struct strmap_node *next;
    uint32_t hash;
    uint32_t key_off;   /* the key is stored key_off bytes after the node's start */
};

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

/* ---- node maps ---- */

static inline const char *strmap_node_key(const struct strmap_node *n)
{
    return (const char *)n + n->key_off;
}

/* A zeroed node of key_off bytes followed by a copy of `key`, key_off set:
 * for a caller's struct that starts with its strmap_node and ends with its
 * key (char key[] at offset key_off). NULL when out of memory. */
void *strmap_node_new(size_t key_off, const char *key);
/* Links `n` (key_off set, its key in place and unchanged while linked).
 * The node it replaces (same key) is unlinked and returned, else NULL.
 * Never fails: when the buckets cannot grow the map just stays denser. */
struct strmap_node *strmap_link(struct strmap *m, struct strmap_node *n);
/* The node under `key`, or NULL. */
struct strmap_node *strmap_find(const struct strmap *m, const char *key);
/* Unlinks and returns the node under `key` (NULL when absent). */
struct strmap_node *strmap_unlink(struct strmap *m, const char *key);
/* As strmap_foreach, for the nodes of a node map. */
typedef int (*strmap_node_fn)(struct strmap_node *n, void *arg);
int strmap_foreach_node(const struct strmap *m, strmap_node_fn fn, void *arg);
/* Unlinks every node for which `drop` returns non-zero, in one pass (the
 * way to prune while walking); `drop` then owns the node and may free it.
 * Returns how many were unlinked. */
size_t strmap_unlink_if(struct strmap *m, int (*drop)(struct strmap_node *n, void *arg), void *arg);
/* Frees a node map; calls `free_node` (may be NULL) on every linked node. */
void strmap_free_nodes(struct strmap *m, void (*free_node)(struct strmap_node *));

#endif
