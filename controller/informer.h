/* informer.h — list + watch of one resource type into an in-memory cache.
 *
 * The cache is keyed "namespace/name" ("name" for cluster-scoped objects).
 * Each object passes through an optional transform hook before it is cached
 * (drop managedFields, big annotations, ... to save memory). Handlers run
 * one at a time, in the order changes are applied, on the informer's thread
 * (or its resync timer's); they may call informer_get/list but must not
 * call informer_stop/free. On every relist (first start,
 * or after a 410) the fresh list is diffed against the cache: vanished
 * objects give on_delete, new ones on_add, changed resourceVersions
 * on_update, so no change is lost across a relist.
 *
 * The cache keeps each object as compact JSON text (a fraction of a jansson
 * tree's memory); informer_get / informer_list decode a private copy that
 * the caller owns and json_decref()s. An optional index (one value per
 * object, like client-go's Indexer) answers "which objects have value V"
 * without walking the cache. */
#ifndef AGENTMESH_INFORMER_H
#define AGENTMESH_INFORMER_H

#include <jansson.h>
#include <stddef.h>

#include "controller/kube_client.h"
#include "controller/kube_watch.h"

/* Takes ownership of `obj` (a private deep copy of what the server sent),
 * returns the object to cache (may be `obj` itself, edited), or NULL to
 * leave it out of the cache entirely. */
typedef json_t *(*informer_transform_fn)(json_t *obj, void *arg);

/* Any handler may be NULL. Objects are borrowed for the call (incref to keep). */
struct informer_handlers {
    void (*on_add)(void *arg, const json_t *obj);
    void (*on_update)(void *arg, const json_t *old_obj, const json_t *new_obj);
    /* `obj` is the last state known to the cache. */
    void (*on_delete)(void *arg, const json_t *obj);
    void *arg;
};

struct informer_opts {
    struct kube_gvr gvr;               /* strings must outlive the informer */
    const char *ns;                    /* NULL/"" = all namespaces */
    const char *label_selector;        /* or NULL */
    const char *field_selector;        /* or NULL */
    informer_transform_fn transform;   /* or NULL */
    void *transform_arg;
    /* Optional index: writes the object's index value into buf and returns
     * 0, or returns -1 when the object has none. Runs on the transformed
     * object; see informer_list_index. NULL = no index. */
    int (*index_key)(const json_t *obj, char *buf, size_t buflen);
    struct informer_handlers handlers;
    /* > 0: every this many seconds, on_update(obj, obj) for each cached
     * object so the owner can re-check; 0 = never. */
    double resync_seconds;
    /* Start watching at this resourceVersion with an empty cache instead of
     * listing first (resuming; tests of the 410 path). NULL = list first. */
    const char *resource_version;
};

struct informer;

/* Copies the option strings it needs (not gvr's). `c` may be NULL for an
 * informer that is only fed by hand (tests). NULL on allocation failure. */
struct informer *informer_new(struct kube_client *c, const struct informer_opts *opts);
/* Stops (if running) and frees. */
void informer_free(struct informer *inf);

/* Starts the informer thread. 0, or -1 (no client, already started, thread error). */
int informer_start(struct informer *inf);
/* Asks the thread to stop and joins it (the stream notices within ~1 s). */
void informer_stop(struct informer *inf);

/* Non-zero once the first list has been applied to the cache and its
 * objects passed to the handlers. */
int informer_has_synced(struct informer *inf);
/* Waits until synced or `timeout` seconds passed; 1 if synced, else 0. */
int informer_wait_synced(struct informer *inf, double timeout);

/* A private copy of the cached object under `key`, or NULL. */
json_t *informer_get(struct informer *inf, const char *key);
/* Same, by namespace (NULL/"" for cluster-scoped) and name. */
json_t *informer_get_by_name(struct informer *inf, const char *ns, const char *name);
/* A new JSON array holding a copy of every cached object (a snapshot).
 * NULL on allocation failure. */
json_t *informer_list(struct informer *inf);
/* Same, for only the objects whose index value is `value` (an empty array
 * without an index_key). */
json_t *informer_list_index(struct informer *inf, const char *value);
/* One object whose index value is `value` (the one cached under `value`
 * itself when there is one, else the first in the index's order), or NULL. The tree may be shared with later calls
 * (recently decoded objects are kept): read it, never modify it. */
json_t *informer_get_indexed(struct informer *inf, const char *value);
/* Calls fn with a copy of each cached object in turn (decoded one at a
 * time, so walking a big cache costs one object's memory, not the whole
 * list's); stops when fn returns non-zero and returns that value. -1 when
 * out of memory. fn may read the informer. */
typedef int (*informer_visit_fn)(const json_t *obj, void *arg);
int informer_foreach(struct informer *inf, informer_visit_fn fn, void *arg);
size_t informer_count(struct informer *inf);
/* The last resourceVersion the informer has seen (list or watch), copied into buf. */
void informer_resource_version(struct informer *inf, char *buf, size_t buflen);

/* The cache key of an object: "namespace/name", or "name" without a
 * namespace. -1 when metadata.name is missing or the key does not fit. */
int informer_key(const json_t *obj, char *buf, size_t buflen);
/* Splits a key into namespace ("" when none) and name. -1 if a part does not fit. */
int informer_split_key(const char *key, char *ns, size_t nslen, char *name, size_t namelen);

/* The cache operations the informer thread performs, exposed so tests can
 * drive them with synthetic data. Each runs the transform, updates the
 * cache and calls the handlers.
 * informer_replace: `list` is a List object ({"items": [...],
 * "metadata": {"resourceVersion": ...}}), borrowed; diffs it against the
 * cache as described above and marks the informer synced. 0 or -1. */
int informer_replace(struct informer *inf, const json_t *list);
/* One watch event (ADDED / MODIFIED / DELETED; others are ignored). `obj` borrowed. */
void informer_apply_event(struct informer *inf, enum kube_event_type type, json_t *obj);
/* One resync pass (see resync_seconds). */
void informer_resync(struct informer *inf);

#endif
