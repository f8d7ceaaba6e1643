/* agent_registry.c — DID-keyed agent records behind a mutex (agent_registry.h).
 *
 * Records are stored packed (struct stored): struct agent_record reserves
 * the longest namespace and name Kubernetes allows, ~400 bytes of buffers
 * that a typical agent fills with 30; at 1,000 agents that was a third of
 * a megabyte of the controller's heap. Readers still get full records.
 *
 * Capability lists are shared: agents of a fleet hold a handful of distinct
 * sets, and a private jansson array of one string costs ~230 bytes of heap
 * per agent. Records with equal lists (same compact JSON) point at one
 * array, counted in `struct shared_caps`; the array itself stays
 * reference-counted by jansson, so a reader's copy outlives its removal.
 *
 * A stored record is its own entry in both maps (by DID and by
 * "namespace/name"): its strings hold both keys, so the maps need no
 * copies of them and an agent costs one allocation, not three. */
#include "controller/agent_registry.h"

#include "controller/strmap.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct agent_registry {
    pthread_mutex_t lock;
    struct strmap *by_did;     /* nodes: struct stored (owned), by DID */
    struct strmap *by_name;    /* nodes: the same records, by "ns/name" */
    struct strmap *caps;       /* compact JSON -> struct shared_caps * */
};

/* One distinct capability list and how many stored records use it. */
struct shared_caps {
    json_t *list;              /* the map's reference */
    size_t users;
    char text[];               /* its key in the caps map */
};

#define FIXED_LEN offsetof(struct agent_record, ns)
#define NSTRINGS 5

/* A record as stored: its first FIXED_LEN bytes, then its strings in
 * string_fields order, namespace and name joined by '/' (the by_name key),
 * the others each ending in a NUL. Holds a reference to the record's
 * capabilities; a record in the maps also counts as a user of `shared` (a
 * listing's copies do not). */
struct stored {
    struct strmap_node by_did;    /* first: a by_did node is its record */
    struct strmap_node by_name;
    size_t len;
    struct shared_caps *shared;
    unsigned char bytes[];
};

/* The record's string fields in stored order (ns and name first: they make
 * the by_name key), with their sizes. */
static void string_fields(struct agent_record *rec, char *f[NSTRINGS], size_t size[NSTRINGS]) {
    f[0] = rec->ns, size[0] = sizeof rec->ns;
    f[1] = rec->name, size[1] = sizeof rec->name;
    f[2] = rec->did, size[2] = sizeof rec->did;
    f[3] = rec->key_id, size[3] = sizeof rec->key_id;
    f[4] = rec->phase, size[4] = sizeof rec->phase;
}

/* What ends stored string i: the namespace runs into the name. */
static char string_end(int i) { return i == 0 ? '/' : '\0'; }

static const char *stored_key(const struct stored *s) { return (const char *)s->bytes + FIXED_LEN; }

static const char *stored_did(const struct stored *s) {
    const char *key = stored_key(s);
    return key + strlen(key) + 1;
}

static struct stored *named(struct strmap_node *n) {
    return n ? (struct stored *)((char *)n - offsetof(struct stored, by_name)) : NULL;
}

/* A packed copy of rec whose capabilities are `shared`'s list, its map
 * nodes ready to link. */
static struct stored *stored_new(const struct agent_record *rec, struct shared_caps *shared) {
    struct agent_record tmp = *rec;   /* string_fields wants a writable record */
    tmp.capabilities = shared ? shared->list : rec->capabilities;
    char *f[NSTRINGS];
    size_t size[NSTRINGS], len[NSTRINGS], total = FIXED_LEN;
    string_fields(&tmp, f, size);
    for (int i = 0; i < NSTRINGS; i++) {
        len[i] = strnlen(f[i], size[i] - 1);
        total += len[i] + 1;
    }
    struct stored *s = malloc(sizeof *s + total);
    if (!s) return NULL;
    s->len = total;
    s->shared = shared;
    memcpy(s->bytes, &tmp, FIXED_LEN);
    unsigned char *p = s->bytes + FIXED_LEN;
    for (int i = 0; i < NSTRINGS; i++) {
        memcpy(p, f[i], len[i]);
        p[len[i]] = (unsigned char)string_end(i);
        p += len[i] + 1;
    }
    s->by_name.key_off = (uint32_t)(offsetof(struct stored, bytes) + FIXED_LEN - offsetof(struct stored, by_name));
    s->by_did.key_off = (uint32_t)((const unsigned char *)stored_did(s) - (const unsigned char *)s);
    json_incref(tmp.capabilities);
    return s;
}

static json_t *stored_capabilities(const struct stored *s) {
    json_t *caps;
    memcpy(&caps, s->bytes + offsetof(struct agent_record, capabilities), sizeof caps);
    return caps;
}

/* A listing's copy: no user of the shared list, linked in no map. */
static struct stored *stored_dup(const struct stored *s) {
    struct stored *d = malloc(sizeof *d + s->len);
    if (!d) return NULL;
    memcpy(d, s, sizeof *d + s->len);
    d->shared = NULL;
    json_incref(stored_capabilities(d));
    return d;
}

static void stored_free(struct stored *s) {
    if (!s) return;
    json_decref(stored_capabilities(s));
    free(s);
}

static void stored_free_node(struct strmap_node *n) { stored_free((struct stored *)n); }

/* The shared entry for the list whose compact JSON is `text` (one more
 * user), made from `list` on first sight. NULL when text is NULL or out of
 * memory: the record then keeps its own list. Called with the lock held. */
static struct shared_caps *caps_acquire(struct agent_registry *r, json_t *list, const char *text) {
    if (!text) return NULL;
    struct shared_caps *sc = strmap_get(r->caps, text);
    if (!sc && (sc = malloc(sizeof *sc + strlen(text) + 1))) {
        sc->list = json_incref(list);
        sc->users = 0;
        strcpy(sc->text, text);
        if (strmap_put(r->caps, text, sc, NULL) != 0) {
            json_decref(sc->list);
            free(sc);
            sc = NULL;
        }
    }
    if (sc) sc->users++;
    return sc;
}

static void shared_caps_free(void *p) {
    struct shared_caps *sc = p;
    json_decref(sc->list);
    free(sc);
}

/* One user fewer of a shared list (NULL: none); the last one frees it.
 * Called with the lock held. */
static void caps_release(struct agent_registry *r, struct shared_caps *sc) {
    if (sc && --sc->users == 0) shared_caps_free(strmap_remove(r->caps, sc->text));
}

/* Takes a record out of both maps and drops it, and its use of a shared
 * list. Called with the lock held. */
static void stored_release(struct agent_registry *r, struct stored *s) {
    if (!s) return;
    strmap_unlink(r->by_did, stored_did(s));
    strmap_unlink(r->by_name, stored_key(s));
    caps_release(r, s->shared);
    stored_free(s);
}

/* The full record, with its own reference to the capabilities. */
static void stored_load(const struct stored *s, struct agent_record *out) {
    memcpy(out, s->bytes, FIXED_LEN);
    char *f[NSTRINGS];
    size_t size[NSTRINGS];
    string_fields(out, f, size);
    const char *p = stored_key(s);
    for (int i = 0; i < NSTRINGS; i++) {
        size_t n = (size_t)(strchr(p, string_end(i)) - p);   /* < size[i]: stored_new cut it to fit */
        memcpy(f[i], p, n);
        f[i][n] = '\0';
        p += n + 1;
    }
    json_incref(out->capabilities);
}

struct agent_registry *agent_registry_new(void) {
    struct agent_registry *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->by_did = strmap_new();
    r->by_name = strmap_new();
    r->caps = strmap_new();
    if (!r->by_did || !r->by_name || !r->caps) {
        agent_registry_free(r);
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

void agent_registry_free(struct agent_registry *r) {
    if (!r) return;
    if (r->by_name) strmap_free_nodes(r->by_name, NULL);
    if (r->by_did) strmap_free_nodes(r->by_did, stored_free_node);
    if (r->caps) strmap_free(r->caps, shared_caps_free);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

void agent_record_clear(struct agent_record *rec) {
    json_decref(rec->capabilities);
    rec->capabilities = NULL;
}

static int name_key(const char *ns, const char *name, char *buf, size_t buflen) {
    int n = snprintf(buf, buflen, "%s/%s", ns, name);
    return n < 0 || (size_t)n >= buflen ? -1 : 0;
}

int agent_registry_put(struct agent_registry *r, const struct agent_record *rec) {
    char key[AGENT_NS_MAX + AGENT_NAME_MAX + 2];
    /* a namespace with a '/' would not split back out of the name key */
    if (strchr(rec->ns, '/') || name_key(rec->ns, rec->name, key, sizeof key) != 0) return -1;
    char *caps_text = rec->capabilities ? json_dumps(rec->capabilities, JSON_COMPACT) : NULL;
    pthread_mutex_lock(&r->lock);
    struct shared_caps *shared = caps_acquire(r, rec->capabilities, caps_text);
    struct stored *copy = stored_new(rec, shared);
    if (copy) {
        /* A re-keyed agent (new DID after its Secret was lost) drops its old DID. */
        struct stored *prev = named(strmap_find(r->by_name, key));
        if (prev && strcmp(stored_did(prev), rec->did) != 0) stored_release(r, prev);
        /* the record this one replaces: the agent's own, or another agent's that had the DID */
        stored_release(r, (struct stored *)strmap_find(r->by_did, rec->did));
        strmap_link(r->by_did, &copy->by_did);
        strmap_link(r->by_name, &copy->by_name);
    } else {
        caps_release(r, shared);
    }
    pthread_mutex_unlock(&r->lock);
    free(caps_text);
    return copy ? 0 : -1;
}

int agent_registry_get(struct agent_registry *r, const char *did, struct agent_record *out) {
    pthread_mutex_lock(&r->lock);
    struct stored *rec = (struct stored *)strmap_find(r->by_did, did);
    if (rec) stored_load(rec, out);
    pthread_mutex_unlock(&r->lock);
    return rec ? 0 : -1;
}

int agent_registry_did_of(struct agent_registry *r, const char *ns, const char *name,
                          char did[ID_DID_BUFSZ]) {
    char key[AGENT_NS_MAX + AGENT_NAME_MAX + 2];
    if (name_key(ns, name, key, sizeof key) != 0) return -1;
    pthread_mutex_lock(&r->lock);
    const struct stored *s = named(strmap_find(r->by_name, key));
    if (s) snprintf(did, ID_DID_BUFSZ, "%s", stored_did(s));
    pthread_mutex_unlock(&r->lock);
    return s ? 0 : -1;
}

int agent_registry_remove(struct agent_registry *r, const char *did) {
    pthread_mutex_lock(&r->lock);
    struct stored *rec = (struct stored *)strmap_find(r->by_did, did);
    int found = rec != NULL;
    stored_release(r, rec);
    pthread_mutex_unlock(&r->lock);
    return found ? 0 : -1;
}

struct snapshot {
    struct stored **recs;
    size_t n, cap;
};

static int collect(struct strmap_node *n, void *arg) {
    struct snapshot *s = arg;
    if (s->n == s->cap) return 1;
    struct stored *copy = stored_dup((struct stored *)n);
    if (copy) s->recs[s->n++] = copy;   /* out of memory: the listing misses it */
    return 0;
}

/* Orders "ns/name" keys by namespace, then name: the '/' ending a
 * namespace sorts before every character that could continue it ("a/x"
 * before "a-b/y"). */
static int by_namespace_name(const void *a, const void *b) {
    const unsigned char *x = (const unsigned char *)stored_key(*(struct stored *const *)a);
    const unsigned char *y = (const unsigned char *)stored_key(*(struct stored *const *)b);
    for (; *x && *x == *y; x++, y++) {}
    return (*x == '/' ? 1 : *x) - (*y == '/' ? 1 : *y);
}

void agent_registry_foreach(struct agent_registry *r,
                            void (*fn)(const struct agent_record *rec, void *arg), void *arg) {
    struct snapshot s = {0};
    pthread_mutex_lock(&r->lock);
    s.cap = strmap_count(r->by_did);
    s.recs = s.cap ? calloc(s.cap, sizeof *s.recs) : NULL;
    if (s.recs) strmap_foreach_node(r->by_did, collect, &s);
    pthread_mutex_unlock(&r->lock);
    qsort(s.recs, s.n, sizeof *s.recs, by_namespace_name);
    for (size_t i = 0; i < s.n; i++) {
        struct agent_record rec;
        stored_load(s.recs[i], &rec);
        fn(&rec, arg);
        agent_record_clear(&rec);
        stored_free(s.recs[i]);
    }
    free(s.recs);
}

const unsigned char *agent_record_grace_key(const struct agent_record *rec, int64_t now_ms) {
    return rec->has_prev && now_ms <= rec->prev_valid_until_ms ? rec->prev_pub : NULL;
}
