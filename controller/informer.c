/* informer.c — list + watch into a cache, the informer of informer.h.
 *
 * The cache holds each object encoded by cache_codec (compact JSON, zstd
 * against a dictionary), not as a jansson tree: a tree costs ~7 KiB per
 * stripped Kubernetes object (a hashtable and a malloc per node), the
 * encoding ~0.2-0.4 KiB, and controllers read the cache far less often than
 * it holds objects. Readers decode a private copy (~10 µs). Entries are
 * reference-counted so readers decode outside the lock while a writer may
 * already have replaced the entry.
 *
 * Two locks: `mu` guards the cache, the resourceVersion and the synced
 * flag and is held only for map operations, so readers (workers calling
 * informer_get) never wait on a handler; `dispatch_mu` serialises the
 * writers (watch events, relists, resync) so handlers run one at a time,
 * in the order the changes were applied. Handlers are called without `mu`
 * and may read the informer. */
#include "controller/informer.h"

#include <errno.h>
#include <math.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"
#include "common/log.h"
#include "controller/cache_codec.h"
#include "controller/strmap.h"

#define LIST_PAGE 50   /* objects per list page: bounds a relist's transient memory */
#define MEMO_SLOTS 8    /* decoded trees kept for informer_get_indexed */

/* A decoded object kept next to the cache entry it came from. The webhook
 * asks for the same AgentIdentity for every pod of a Deployment, and
 * decoding it each time was a third of the controller's CPU per admission. */
struct memo {
    struct packed *p;   /* one reference: its address cannot be reused while here */
    json_t *obj;
};

struct informer {
    struct kube_client *c;
    struct informer_opts o;       /* string fields point at the copies below */
    char *ns, *label_selector, *field_selector, *start_rv;
    char what[128];               /* "group/version/resource" for logs */

    pthread_mutex_t mu;
    pthread_cond_t cond;          /* synced, stop (resync timer) */
    struct cache_codec *codec;
    struct strmap *cache;         /* nodes: struct packed (one reference each) */
    struct strmap *index;         /* nodes: struct keyset (o.index_key only) */
    char rv[64];
    int synced;

    pthread_mutex_t memo_mu;
    struct memo memo[MEMO_SLOTS];

    pthread_mutex_t dispatch_mu;
    pthread_t thread, resync_thread;
    int running, resync_running;
    volatile int stop;
};

static char *dup_opt(const char *s, int *failed)
{
    if (!s || !s[0])
        return NULL;
    char *d = strdup(s);
    if (!d)
        *failed = 1;
    return d;
}

/* One cached object in one allocation: its node in the cache map, then its
 * key, its index value ("" when it has none) and its encoding. A map entry
 * and the encoding as two allocations cost ~50 B more per object, and the
 * caches hold four objects per agent. Replaced or removed, it leaves the
 * map for good and lives on while readers hold references. */
struct packed {
    struct strmap_node node;      /* first: a cache node is its packed */
    atomic_int refs;
    uint32_t len;                 /* of the encoding (objects stay far below 4 GiB) */
    char data[];                  /* key \0 index value \0 encoding */
};

static struct packed *packed_of(struct strmap_node *n)
{
    return (struct packed *)n;
}

/* Another reference to `p` (NULL stays NULL), taken under the lock that found it. */
static struct packed *packed_ref(struct packed *p)
{
    if (p)
        atomic_fetch_add(&p->refs, 1);
    return p;
}

static void packed_unref(struct packed *p)
{
    if (p && atomic_fetch_sub(&p->refs, 1) == 1)
        free(p);
}

static void unref_node(struct strmap_node *n)
{
    packed_unref(packed_of(n));
}

static const char *key_of(const struct packed *p)
{
    return p->data;
}

static const char *index_field(const struct packed *p)
{
    return p->data + strlen(p->data) + 1;
}

/* The entry's index value, or NULL (no entry, or none). */
static const char *index_of(const struct packed *p)
{
    const char *value = p ? index_field(p) : NULL;
    return value && value[0] ? value : NULL;
}

static const unsigned char *encoding_of(const struct packed *p)
{
    const char *value = index_field(p);
    return (const unsigned char *)value + strlen(value) + 1;
}

/* The cache entry for `obj` under `key`, its index value (an empty one
 * counts as none) and encoding included. NULL on failure (logged by the
 * codec). */
static struct packed *pack(struct informer *inf, const char *key, const json_t *obj)
{
    char idx[512];
    if (!inf->o.index_key || inf->o.index_key(obj, idx, sizeof(idx)) != 0)
        idx[0] = '\0';
    size_t klen = strlen(key) + 1, ilen = strlen(idx) + 1, len = 0;
    struct packed *p = cache_codec_encode(inf->codec, obj, sizeof(*p) + klen + ilen, 0, &len);
    if (!p)
        return NULL;
    p->node.key_off = offsetof(struct packed, data);
    atomic_init(&p->refs, 1);
    p->len = (uint32_t)len;
    memcpy(p->data, key, klen);
    memcpy(p->data + klen, idx, ilen);
    return p;
}

/* A private tree of a cached entry. NULL only on failure (logged). */
static json_t *unpack(struct informer *inf, const struct packed *p)
{
    return cache_codec_decode(inf->codec, encoding_of(p), p->len);
}

/* Same object (same JSON text)? */
static int same_entry(struct informer *inf, const struct packed *a, const struct packed *b)
{
    return cache_codec_same(inf->codec, encoding_of(a), a->len, encoding_of(b), b->len);
}

/* The primary keys under one index value (few: an agent's pods), in one
 * allocation like a cache entry: its node in the index map, the value,
 * then the keys, each NUL-terminated. Never empty: the last key out frees it. */
struct keyset {
    struct strmap_node node;      /* first: an index node is its keyset */
    uint32_t len;                 /* bytes of data in use */
    char data[];                  /* value \0 key \0 key \0 ... */
};

static const char *first_key(const struct keyset *ks)
{
    return ks->data + strlen(ks->data) + 1;
}

/* The key after `k`, or NULL after the last. */
static const char *next_key(const struct keyset *ks, const char *k)
{
    k += strlen(k) + 1;
    return k < ks->data + ks->len ? k : NULL;
}

static size_t count_keys(const struct keyset *ks)
{
    size_t n = 0;
    for (const char *k = first_key(ks); k; k = next_key(ks, k))
        n++;
    return n;
}

static void free_node(struct strmap_node *n)
{
    free(n);
}

/* An entry whose index value is its own key is not filed in the index map:
 * lookups find it in the cache under the value. An AgentIdentity's index
 * value is its ServiceAccount, which almost always has the agent's name,
 * so this saves a keyset (~80 B) per agent. */
static int files_itself(const struct packed *p)
{
    const char *value = index_of(p);
    return value && strcmp(value, key_of(p)) == 0;
}

/* The cached entry under `value` when its index value is `value` too, else
 * NULL (see files_itself). Caller holds mu. */
static struct packed *self_indexed(struct informer *inf, const char *value)
{
    struct packed *p = inf->index ? packed_of(strmap_find(inf->cache, value)) : NULL;
    return p && files_itself(p) ? p : NULL;
}

/* Files the entry's key under its index value. Caller holds mu. 0 or -1
 * (OOM: the index is left as it was). The keyset grows by realloc, so it
 * is out of the map meanwhile. */
static int index_add(struct strmap *index, const struct packed *p)
{
    const char *value = index_of(p);
    if (!index || !value || files_itself(p))
        return 0;
    struct keyset *ks = (struct keyset *)strmap_unlink(index, value);
    size_t used = ks ? ks->len : strlen(value) + 1, klen = strlen(key_of(p)) + 1;
    struct keyset *grown = realloc(ks, sizeof(*grown) + used + klen);
    if (!grown) {
        if (ks)
            strmap_link(index, &ks->node);
        return -1;
    }
    if (!ks)
        memcpy(grown->data, value, used);
    memcpy(grown->data + used, key_of(p), klen);
    grown->len = (uint32_t)(used + klen);
    grown->node.key_off = offsetof(struct keyset, data);
    strmap_link(index, &grown->node);
    return 0;
}

/* Takes the entry's key out of its index value. Caller holds mu. */
static void index_del(struct strmap *index, const struct packed *p)
{
    const char *value = index_of(p);
    if (!index || !value || files_itself(p))
        return;
    struct keyset *ks = (struct keyset *)strmap_find(index, value);
    for (const char *k = ks ? first_key(ks) : NULL; k; k = next_key(ks, k)) {
        if (strcmp(k, key_of(p)) != 0)
            continue;
        size_t klen = strlen(k) + 1;
        if (ks->len == strlen(value) + 1 + klen) {
            free_node(strmap_unlink(index, value));
        } else {
            memmove((char *)k, k + klen, (size_t)(ks->data + ks->len - k) - klen);
            ks->len -= (uint32_t)klen;
        }
        return;
    }
}

static int index_entry(struct strmap_node *n, void *index)
{
    return index_add(index, packed_of(n));
}

/* A fresh index over `cache`, or NULL (no index_key, or OOM: logged). */
static struct strmap *build_index(struct informer *inf, struct strmap *cache)
{
    if (!inf->o.index_key)
        return NULL;
    struct strmap *index = strmap_new();
    if (index && strmap_foreach_node(cache, index_entry, index) == 0)
        return index;
    log_error("informer", "resource=%s out of memory indexing the cache", inf->what);
    strmap_free_nodes(index, free_node);
    return NULL;
}

struct informer *informer_new(struct kube_client *c, const struct informer_opts *opts)
{
    struct informer *inf = calloc(1, sizeof(*inf));
    if (!inf)
        return NULL;
    int failed = 0;
    inf->c = c;
    inf->o = *opts;
    inf->ns = dup_opt(opts->ns, &failed);
    inf->label_selector = dup_opt(opts->label_selector, &failed);
    inf->field_selector = dup_opt(opts->field_selector, &failed);
    inf->start_rv = dup_opt(opts->resource_version, &failed);
    inf->o.ns = inf->ns;
    inf->o.label_selector = inf->label_selector;
    inf->o.field_selector = inf->field_selector;
    inf->o.resource_version = inf->start_rv;
    const struct kube_gvr *g = &opts->gvr;
    snprintf(inf->what, sizeof(inf->what), "%s%s%s/%s", g->group ? g->group : "",
             g->group && g->group[0] ? "/" : "", g->version ? g->version : "",
             g->resource ? g->resource : "");
    inf->cache = strmap_new();
    inf->codec = cache_codec_new();
    if (!inf->codec)
        failed = 1;
    if (opts->index_key && !(inf->index = strmap_new()))
        failed = 1;
    pthread_condattr_t ca;
    int cond_ok = pthread_condattr_init(&ca) == 0;
    if (cond_ok) {
        cond_ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                  pthread_cond_init(&inf->cond, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (failed || !inf->cache || !cond_ok || pthread_mutex_init(&inf->mu, NULL) != 0 ||
        pthread_mutex_init(&inf->memo_mu, NULL) != 0 || pthread_mutex_init(&inf->dispatch_mu, NULL) != 0) {
        /* (glibc's pthread_mutex_init never fails, so no mutex is left to destroy) */
        if (cond_ok)
            pthread_cond_destroy(&inf->cond);
        strmap_free_nodes(inf->cache, NULL);
        strmap_free_nodes(inf->index, NULL);
        cache_codec_free(inf->codec);
        free(inf->ns);
        free(inf->label_selector);
        free(inf->field_selector);
        free(inf->start_rv);
        free(inf);
        return NULL;
    }
    return inf;
}

void informer_free(struct informer *inf)
{
    if (!inf)
        return;
    informer_stop(inf);
    strmap_free_nodes(inf->cache, unref_node);
    strmap_free_nodes(inf->index, free_node);
    for (int i = 0; i < MEMO_SLOTS; i++) {
        packed_unref(inf->memo[i].p);
        json_decref(inf->memo[i].obj);
    }
    cache_codec_free(inf->codec);
    pthread_cond_destroy(&inf->cond);
    pthread_mutex_destroy(&inf->mu);
    pthread_mutex_destroy(&inf->memo_mu);
    pthread_mutex_destroy(&inf->dispatch_mu);
    free(inf->ns);
    free(inf->label_selector);
    free(inf->field_selector);
    free(inf->start_rv);
    free(inf);
}

int informer_key(const json_t *obj, char *buf, size_t buflen)
{
    const char *name = json_str_at(obj, "metadata.name");
    const char *ns = json_str_at(obj, "metadata.namespace");
    if (!name || !name[0])
        return -1;
    int n = ns && ns[0] ? snprintf(buf, buflen, "%s/%s", ns, name) : snprintf(buf, buflen, "%s", name);
    return n < 0 || (size_t)n >= buflen ? -1 : 0;
}

int informer_split_key(const char *key, char *ns, size_t nslen, char *name, size_t namelen)
{
    const char *slash = strchr(key, '/');
    size_t nsl = slash ? (size_t)(slash - key) : 0;
    const char *nm = slash ? slash + 1 : key;
    if (nsl >= nslen || strlen(nm) >= namelen)
        return -1;
    memcpy(ns, key, nsl);
    ns[nsl] = '\0';
    memcpy(name, nm, strlen(nm) + 1);
    return 0;
}

/* The object as it will be cached: a private copy run through the
 * transform (the copy keeps the caller's object untouched), or a plain new
 * reference without a transform; list items (`list` non-NULL) also get
 * their type. NULL = leave it out of the cache. */
/* Gives list items the apiVersion and kind the API server leaves out of
 * them ("ServiceAccountList" items are ServiceAccounts), so a cached object
 * looks the same whether it came from a list or a watch event — reconcilers
 * compare rendered objects, kind included, with the cache. */
static void set_item_type(json_t *item, const json_t *list)
{
    const char *list_kind = json_str_at(list, "kind"), *api_version = json_str_at(list, "apiVersion");
    size_t n = list_kind ? strlen(list_kind) : 0;
    if (!json_object_get(item, "kind") && n > 4 && strcmp(list_kind + n - 4, "List") == 0)
        json_object_set_new(item, "kind", json_stringn(list_kind, n - 4));
    if (!json_object_get(item, "apiVersion") && api_version)
        json_object_set_new(item, "apiVersion", json_string(api_version));
}

static json_t *cacheable(struct informer *inf, json_t *obj, const json_t *list)
{
    int typeless = list && (!json_object_get(obj, "kind") || !json_object_get(obj, "apiVersion"));
    if (!inf->o.transform && !typeless)
        return json_incref(obj);
    /* a shallow copy suffices to add top-level keys; a transform may edit deeper */
    json_t *copy = inf->o.transform ? json_deep_copy(obj) : json_copy(obj);
    if (!copy) {
        log_error("informer", "resource=%s out of memory copying an object", inf->what);
        return NULL;
    }
    if (typeless)
        set_item_type(copy, list);
    return inf->o.transform ? inf->o.transform(copy, inf->o.transform_arg) : copy;
}

static const char *rv_of(const json_t *obj)
{
    const char *rv = json_str_at(obj, "metadata.resourceVersion");
    return rv ? rv : "";
}

static void set_rv_locked(struct informer *inf, const char *rv)
{
    if (rv && rv[0] && strlen(rv) < sizeof(inf->rv))
        memcpy(inf->rv, rv, strlen(rv) + 1);
}

static void call_add(struct informer *inf, const json_t *obj)
{
    if (inf->o.handlers.on_add)
        inf->o.handlers.on_add(inf->o.handlers.arg, obj);
}

static void call_update(struct informer *inf, const json_t *old_obj, const json_t *new_obj)
{
    if (inf->o.handlers.on_update)
        inf->o.handlers.on_update(inf->o.handlers.arg, old_obj, new_obj);
}

static void call_delete(struct informer *inf, const json_t *obj)
{
    if (inf->o.handlers.on_delete)
        inf->o.handlers.on_delete(inf->o.handlers.arg, obj);
}

/* Calls `report` with a private tree of `p` (skipped if it cannot be decoded). */
static void report_packed(struct informer *inf, const struct packed *p,
                          void (*report)(struct informer *, const json_t *))
{
    json_t *obj = unpack(inf, p);
    if (obj)
        report(inf, obj);
    json_decref(obj);
}

/* Drops `key` from the cache and reports the deletion, if it was cached. */
static void remove_key(struct informer *inf, const char *key)
{
    pthread_mutex_lock(&inf->mu);
    struct packed *old = packed_of(strmap_unlink(inf->cache, key));
    index_del(inf->index, old);
    pthread_mutex_unlock(&inf->mu);
    if (old)
        report_packed(inf, old, call_delete);
    packed_unref(old);
}

/* Puts `p` in the cache; returns the entry it replaced (or NULL). */
static struct packed *store(struct informer *inf, struct packed *p)
{
    pthread_mutex_lock(&inf->mu);
    struct packed *old = packed_of(strmap_link(inf->cache, &p->node));
    index_del(inf->index, old);
    if (index_add(inf->index, p) != 0)
        log_error("informer", "resource=%s out of memory indexing %s", inf->what, key_of(p));
    pthread_mutex_unlock(&inf->mu);
    return old;
}

void informer_apply_event(struct informer *inf, enum kube_event_type type, json_t *obj)
{
    char key[512];
    if (type != KUBE_EVENT_ADDED && type != KUBE_EVENT_MODIFIED && type != KUBE_EVENT_DELETED)
        return;
    if (informer_key(obj, key, sizeof(key)) != 0) {
        log_warn("informer", "resource=%s %s event without a usable metadata.name, ignored",
                 inf->what, kube_event_type_name(type));
        return;
    }
    pthread_mutex_lock(&inf->dispatch_mu);
    pthread_mutex_lock(&inf->mu);
    set_rv_locked(inf, rv_of(obj));
    pthread_mutex_unlock(&inf->mu);

    json_t *obj_new = type == KUBE_EVENT_DELETED ? NULL : cacheable(inf, obj, NULL);
    struct packed *p = obj_new ? pack(inf, key, obj_new) : NULL;
    struct packed *old = p ? store(inf, p) : NULL;
    if (!p) {
        /* deleted, transformed out of the cache, or not encodable */
        remove_key(inf, key);
    } else if (old) {
        json_t *old_obj = unpack(inf, old);
        if (old_obj)
            call_update(inf, old_obj, obj_new);
        json_decref(old_obj);
        packed_unref(old);
    } else {
        call_add(inf, obj_new);
    }
    json_decref(obj_new);
    pthread_mutex_unlock(&inf->dispatch_mu);
}

/* Adds a list page's items to `m` (a cache being built). */
static void add_items(struct informer *inf, struct strmap *m, const json_t *list)
{
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(list, "items"), i, item) {
        char key[512];
        if (informer_key(item, key, sizeof(key)) != 0) {
            log_warn("informer", "resource=%s list item %zu has no usable metadata.name, ignored",
                     inf->what, i);
            continue;
        }
        json_t *obj = cacheable(inf, item, list);
        struct packed *p = obj ? pack(inf, key, obj) : NULL;
        json_decref(obj);
        if (p)
            packed_unref(packed_of(strmap_link(m, &p->node)));
    }
}

/* Diff pass 1: everything in the old cache missing from the new list. */
struct diff {
    struct informer *inf;
    struct strmap *other;
};

static int report_vanished(struct strmap_node *n, void *arg)
{
    struct diff *d = arg;
    if (!strmap_find(d->other, strmap_node_key(n)))
        report_packed(d->inf, packed_of(n), call_delete);
    return 0;
}

/* Diff pass 2: new objects are adds, changed ones (the encoding covers the
 * resourceVersion, so a new version always differs) updates. */
static int report_new_or_changed(struct strmap_node *node, void *arg)
{
    struct diff *d = arg;
    struct packed *old = packed_of(strmap_find(d->other, strmap_node_key(node))), *cur = packed_of(node);
    if (!old) {
        report_packed(d->inf, cur, call_add);
    } else if (!same_entry(d->inf, old, cur)) {
        json_t *o = unpack(d->inf, old), *n = unpack(d->inf, cur);
        if (o && n)
            call_update(d->inf, o, n);
        json_decref(o);
        json_decref(n);
    }
    return 0;
}

/* Makes `fresh` (built by add_items, owned from here) the cache as of
 * resourceVersion `rv`, reports the differences and marks the informer
 * synced. The caller holds dispatch_mu. 0, or -1 when out of memory. */
static int commit_list(struct informer *inf, struct strmap *fresh, const char *rv)
{
    struct strmap *fresh_index = build_index(inf, fresh);
    if (inf->o.index_key && !fresh_index) {
        strmap_free_nodes(fresh, unref_node);
        log_error("informer", "resource=%s out of memory building the cache", inf->what);
        return -1;
    }
    pthread_mutex_lock(&inf->mu);
    struct strmap *old = inf->cache, *old_index = inf->index;
    inf->cache = fresh;
    inf->index = fresh_index;
    set_rv_locked(inf, rv);
    pthread_mutex_unlock(&inf->mu);

    /* `fresh` is only changed by writers, and we are the writer: safe to walk unlocked */
    struct diff gone = {inf, fresh}, added = {inf, old};
    strmap_foreach_node(old, report_vanished, &gone);
    strmap_foreach_node(fresh, report_new_or_changed, &added);
    /* synced only once the handlers have seen the list: a caller that waits
     * for sync (readiness, tests) then finds every object already handled */
    pthread_mutex_lock(&inf->mu);
    inf->synced = 1;
    pthread_cond_broadcast(&inf->cond);
    pthread_mutex_unlock(&inf->mu);
    log_debug("informer", "resource=%s relisted: %zu objects (was %zu)", inf->what,
              strmap_count(fresh), strmap_count(old));
    strmap_free_nodes(old, unref_node);
    strmap_free_nodes(old_index, free_node);
    /* The list's pages and the old cache were freed in the middle of the
     * heap, where malloc keeps them: after a start with 1,000 agents 9 of
     * the 15 MB malloc held were free. Hand those pages back to the kernel. */
    malloc_trim(0);
    return 0;
}

int informer_replace(struct informer *inf, const json_t *list)
{
    const json_t *items = json_object_get(list, "items");
    if (!json_is_array(items)) {
        log_error("informer", "resource=%s list reply has no \"items\" array", inf->what);
        return -1;
    }
    pthread_mutex_lock(&inf->dispatch_mu);
    struct strmap *fresh = strmap_new();
    int rc = -1;
    if (fresh) {
        add_items(inf, fresh, list);
        rc = commit_list(inf, fresh, json_str_at(list, "metadata.resourceVersion"));
    } else {
        log_error("informer", "resource=%s out of memory building the cache", inf->what);
    }
    pthread_mutex_unlock(&inf->dispatch_mu);
    return rc;
}

/* A snapshot of cached texts, each referenced, taken under the lock so the
 * (slower) decoding happens outside it. */
struct snapshot {
    size_t n, cap;
    struct packed **items;
};

static int snap_one(struct snapshot *s, struct packed *p)
{
    if (!p || s->n == s->cap)
        return p ? -1 : 0;
    s->items[s->n++] = packed_ref(p);
    return 0;
}

static int snap_entry(struct strmap_node *n, void *arg)
{
    return snap_one(arg, packed_of(n));
}

/* Decodes a snapshot into a new JSON array and releases it. NULL on OOM. */
static json_t *snapshot_to_array(struct informer *inf, struct snapshot *s)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < s->n; i++) {
        json_t *obj = arr ? unpack(inf, s->items[i]) : NULL;
        if (!obj || json_array_append_new(arr, obj) != 0) {
            json_decref(arr);
            arr = NULL;
        }
        packed_unref(s->items[i]);
    }
    free(s->items);
    return arr;
}

/* References to every cached text. 0, or -1 when out of memory. */
static int snapshot_all(struct informer *inf, struct snapshot *s)
{
    pthread_mutex_lock(&inf->mu);
    s->cap = strmap_count(inf->cache);
    s->items = malloc((s->cap ? s->cap : 1) * sizeof(*s->items));
    int rc = s->items ? strmap_foreach_node(inf->cache, snap_entry, s) : -1;
    pthread_mutex_unlock(&inf->mu);
    return rc;
}

json_t *informer_list(struct informer *inf)
{
    struct snapshot s = {0};
    int rc = snapshot_all(inf, &s);
    json_t *arr = s.items ? snapshot_to_array(inf, &s) : NULL;
    return rc == 0 ? arr : (json_decref(arr), NULL);
}

int informer_foreach(struct informer *inf, informer_visit_fn fn, void *arg)
{
    struct snapshot s = {0};
    int rc = snapshot_all(inf, &s);
    for (size_t i = 0; i < s.n; i++) {
        json_t *obj = rc == 0 ? unpack(inf, s.items[i]) : NULL;
        if (obj)
            rc = fn(obj, arg);
        json_decref(obj);
        packed_unref(s.items[i]);
    }
    free(s.items);
    return rc;
}

json_t *informer_list_index(struct informer *inf, const char *value)
{
    struct snapshot s = {0};
    int rc = 0;
    pthread_mutex_lock(&inf->mu);
    struct keyset *ks = inf->index ? (struct keyset *)strmap_find(inf->index, value) : NULL;
    struct packed *self = self_indexed(inf, value);
    s.cap = (ks ? count_keys(ks) : 0) + (self != NULL);
    s.items = malloc((s.cap ? s.cap : 1) * sizeof(*s.items));
    if (s.items)
        rc = snap_one(&s, self);
    for (const char *k = ks && s.items ? first_key(ks) : NULL; k && rc == 0; k = next_key(ks, k))
        rc = snap_one(&s, packed_of(strmap_find(inf->cache, k)));
    pthread_mutex_unlock(&inf->mu);
    json_t *arr = s.items ? snapshot_to_array(inf, &s) : NULL;
    return rc == 0 ? arr : (json_decref(arr), NULL);
}

/* The decoded tree of `p` (the caller holds a reference to p), shared with
 * the memo: a slot keeps the last entry decoded there, and a hit is an entry
 * still in the cache, so a replaced object is never served. */
static json_t *memo_unpack(struct informer *inf, struct packed *p)
{
    struct memo *m = &inf->memo[((uintptr_t)p >> 4) % MEMO_SLOTS];
    pthread_mutex_lock(&inf->memo_mu);
    json_t *obj = m->p == p ? json_incref(m->obj) : NULL;
    pthread_mutex_unlock(&inf->memo_mu);
    if (obj || !(obj = unpack(inf, p)))
        return obj;
    struct memo old;
    pthread_mutex_lock(&inf->memo_mu);
    old = *m;
    m->p = packed_ref(p);
    m->obj = json_incref(obj);
    pthread_mutex_unlock(&inf->memo_mu);
    packed_unref(old.p);
    json_decref(old.obj);
    return obj;
}

json_t *informer_get_indexed(struct informer *inf, const char *value)
{
    pthread_mutex_lock(&inf->mu);
    struct keyset *ks = inf->index ? (struct keyset *)strmap_find(inf->index, value) : NULL;
    struct packed *p = self_indexed(inf, value);
    p = packed_ref(p || !ks ? p : packed_of(strmap_find(inf->cache, first_key(ks))));
    pthread_mutex_unlock(&inf->mu);
    json_t *obj = p ? memo_unpack(inf, p) : NULL;
    packed_unref(p);
    return obj;
}

void informer_resync(struct informer *inf)
{
    pthread_mutex_lock(&inf->dispatch_mu);
    json_t *all = informer_list(inf);
    size_t i;
    json_t *obj;
    json_array_foreach(all, i, obj)
        call_update(inf, obj, obj);
    json_decref(all);
    pthread_mutex_unlock(&inf->dispatch_mu);
}

json_t *informer_get(struct informer *inf, const char *key)
{
    pthread_mutex_lock(&inf->mu);
    struct packed *p = packed_ref(packed_of(strmap_find(inf->cache, key)));
    pthread_mutex_unlock(&inf->mu);
    json_t *obj = p ? unpack(inf, p) : NULL;
    packed_unref(p);
    return obj;
}

json_t *informer_get_by_name(struct informer *inf, const char *ns, const char *name)
{
    char key[512];
    int n = ns && ns[0] ? snprintf(key, sizeof(key), "%s/%s", ns, name)
                        : snprintf(key, sizeof(key), "%s", name);
    if (n < 0 || (size_t)n >= sizeof(key))
        return NULL;
    return informer_get(inf, key);
}

size_t informer_count(struct informer *inf)
{
    pthread_mutex_lock(&inf->mu);
    size_t n = strmap_count(inf->cache);
    pthread_mutex_unlock(&inf->mu);
    return n;
}

int informer_has_synced(struct informer *inf)
{
    pthread_mutex_lock(&inf->mu);
    int s = inf->synced;
    pthread_mutex_unlock(&inf->mu);
    return s;
}

/* An absolute CLOCK_MONOTONIC time `seconds` from now, for timed waits. */
static struct timespec deadline_in(double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double whole = floor(seconds);
    ts.tv_sec += (time_t)whole;
    ts.tv_nsec += (long)((seconds - whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int informer_wait_synced(struct informer *inf, double timeout)
{
    struct timespec until = deadline_in(timeout);
    pthread_mutex_lock(&inf->mu);
    int rc = 0;
    while (!inf->synced && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&inf->cond, &inf->mu, &until);
    int s = inf->synced;
    pthread_mutex_unlock(&inf->mu);
    return s;
}

void informer_resource_version(struct informer *inf, char *buf, size_t buflen)
{
    pthread_mutex_lock(&inf->mu);
    snprintf(buf, buflen, "%s", inf->rv);
    pthread_mutex_unlock(&inf->mu);
}

/* A relist in progress: the cache being built, page by page. */
struct relist_state {
    struct informer *inf;
    struct strmap *fresh;
    char rv[64];                  /* the first page's: the list's snapshot */
};

static int add_page(json_t *page, void *arg)
{
    struct relist_state *st = arg;
    const char *rv = json_str_at(page, "metadata.resourceVersion");
    if (!st->rv[0] && rv)
        snprintf(st->rv, sizeof(st->rv), "%s", rv);
    const json_t *items = json_object_get(page, "items");
    if (!json_is_array(items)) {
        log_error("informer", "resource=%s list page has no \"items\" array", st->inf->what);
        return -1;
    }
    add_items(st->inf, st->fresh, page);
    return 0;
}

/* One list at a time in the whole process: at a start every informer lists
 * at once, and each list page in flight is a decoded tree of LIST_PAGE
 * objects (~1.5 MB for 100 AgentIdentities): the lists in parallel made
 * the start the peak of the process's memory. The API server, not the
 * order, bounds how fast the lists come back. */
static pthread_mutex_t list_mu = PTHREAD_MUTEX_INITIALIZER;

/* kube_watch relist handler: the list, one page (LIST_PAGE objects) in
 * memory at a time, into a new cache that then replaces the old one. */
static int relist(void *arg, char *rv, size_t rvlen)
{
    struct informer *inf = arg;
    struct kube_list_opts lo = {
        .label_selector = inf->label_selector,
        .field_selector = inf->field_selector,
        .limit = LIST_PAGE,
    };
    struct relist_state st = {.inf = inf, .fresh = strmap_new()};
    struct kube_result res = {0};
    pthread_mutex_lock(&inf->dispatch_mu);
    pthread_mutex_lock(&list_mu);
    int rc = st.fresh ? kube_list_pages(inf->c, &inf->o.gvr, inf->ns, &lo, add_page, &st, &res) : -1;
    pthread_mutex_unlock(&list_mu);
    if (rc != 0) {
        log_warn("informer", "resource=%s list failed: status=%d reason=%s msg=\"%s\"", inf->what,
                 res.status, res.reason, st.fresh ? res.message : "out of memory");
        strmap_free_nodes(st.fresh, unref_node);
    } else {
        rc = commit_list(inf, st.fresh, st.rv);
    }
    pthread_mutex_unlock(&inf->dispatch_mu);
    snprintf(rv, rvlen, "%s", rc == 0 ? st.rv : "");
    kube_result_free(&res);
    return rc;
}

/* kube_watch event handler. */
static void on_event(void *arg, enum kube_event_type type, json_t *obj)
{
    informer_apply_event(arg, type, obj);
}

static void *watch_thread(void *arg)
{
    struct informer *inf = arg;
    struct kube_watch_opts wo = {
        .gvr = &inf->o.gvr,
        .ns = inf->ns,
        .label_selector = inf->label_selector,
        .field_selector = inf->field_selector,
        .resource_version = inf->start_rv,
    };
    struct kube_watch_handlers h = {.relist = relist, .event = on_event, .arg = inf};
    if (kube_watch_run(inf->c, &wo, &h, &inf->stop) != 0)
        log_error("informer", "resource=%s watch could not start", inf->what);
    return NULL;
}

static void *resync_thread(void *arg)
{
    struct informer *inf = arg;
    for (;;) {
        struct timespec until = deadline_in(inf->o.resync_seconds);
        pthread_mutex_lock(&inf->mu);
        int rc = 0;
        while (!inf->stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&inf->cond, &inf->mu, &until);
        int stop = inf->stop, synced = inf->synced;
        pthread_mutex_unlock(&inf->mu);
        if (stop)
            return NULL;
        if (synced)
            informer_resync(inf);
    }
}

int informer_start(struct informer *inf)
{
    if (!inf->c || inf->running) {
        log_error("informer", "resource=%s cannot start: %s", inf->what,
                  inf->c ? "already started" : "no client");
        return -1;
    }
    inf->stop = 0;
    int err = pthread_create(&inf->thread, NULL, watch_thread, inf);
    if (err != 0) {
        log_error("informer", "resource=%s thread: %s", inf->what, strerror(err));
        return -1;
    }
    inf->running = 1;
    if (inf->o.resync_seconds > 0) {
        err = pthread_create(&inf->resync_thread, NULL, resync_thread, inf);
        if (err != 0) {
            log_error("informer", "resource=%s resync thread: %s", inf->what, strerror(err));
            informer_stop(inf);
            return -1;
        }
        inf->resync_running = 1;
    }
    return 0;
}

void informer_stop(struct informer *inf)
{
    if (!inf->running)
        return;
    pthread_mutex_lock(&inf->mu);
    inf->stop = 1;
    pthread_cond_broadcast(&inf->cond);
    pthread_mutex_unlock(&inf->mu);
    pthread_join(inf->thread, NULL);
    if (inf->resync_running)
        pthread_join(inf->resync_thread, NULL);
    inf->running = inf->resync_running = 0;
}
