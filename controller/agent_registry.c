/* agent_registry.c — DID-keyed agent records behind a mutex (agent_registry.h). */
#include "controller/agent_registry.h"

#include "controller/strmap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct agent_registry {
    pthread_mutex_t lock;
    struct strmap *by_did;     /* did -> struct agent_record * */
    struct strmap *by_name;    /* "ns/name" -> did (char *) */
};

struct agent_registry *agent_registry_new(void) {
    struct agent_registry *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->by_did = strmap_new();
    r->by_name = strmap_new();
    if (!r->by_did || !r->by_name) {
        agent_registry_free(r);
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

static void record_free(void *p) {
    struct agent_record *rec = p;
    if (!rec) return;
    agent_record_clear(rec);
    free(rec);
}

void agent_registry_free(struct agent_registry *r) {
    if (!r) return;
    if (r->by_did) strmap_free(r->by_did, record_free);
    if (r->by_name) strmap_free(r->by_name, free);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

void agent_record_clear(struct agent_record *rec) {
    json_decref(rec->capabilities);
    rec->capabilities = NULL;
}

static void copy_record(struct agent_record *dst, const struct agent_record *src) {
    *dst = *src;
    json_incref(dst->capabilities);
}

static int name_key(const char *ns, const char *name, char *buf, size_t buflen) {
    int n = snprintf(buf, buflen, "%s/%s", ns, name);
    return n < 0 || (size_t)n >= buflen ? -1 : 0;
}

int agent_registry_put(struct agent_registry *r, const struct agent_record *rec) {
    char key[AGENT_NS_MAX + AGENT_NAME_MAX + 2];
    if (name_key(rec->ns, rec->name, key, sizeof key) != 0) return -1;
    struct agent_record *copy = malloc(sizeof *copy);
    char *did = strdup(rec->did);
    if (!copy || !did) {
        free(copy);
        free(did);
        return -1;
    }
    copy_record(copy, rec);
    pthread_mutex_lock(&r->lock);
    void *old = NULL, *old_did = NULL;
    /* A re-keyed agent (new DID after its Secret was lost) drops its old DID. */
    char *prev_did = strmap_get(r->by_name, key);
    if (prev_did && strcmp(prev_did, rec->did) != 0) record_free(strmap_remove(r->by_did, prev_did));
    int rc = strmap_put(r->by_did, rec->did, copy, &old);
    if (rc == 0) rc = strmap_put(r->by_name, key, did, &old_did);
    pthread_mutex_unlock(&r->lock);
    record_free(old);
    free(old_did);
    if (rc != 0) {
        free(did);
        return -1;
    }
    return 0;
}

int agent_registry_get(struct agent_registry *r, const char *did, struct agent_record *out) {
    pthread_mutex_lock(&r->lock);
    struct agent_record *rec = strmap_get(r->by_did, did);
    if (rec) copy_record(out, rec);
    pthread_mutex_unlock(&r->lock);
    return rec ? 0 : -1;
}

int agent_registry_did_of(struct agent_registry *r, const char *ns, const char *name,
                          char did[ID_DID_BUFSZ]) {
    char key[AGENT_NS_MAX + AGENT_NAME_MAX + 2];
    if (name_key(ns, name, key, sizeof key) != 0) return -1;
    pthread_mutex_lock(&r->lock);
    const char *d = strmap_get(r->by_name, key);
    if (d) snprintf(did, ID_DID_BUFSZ, "%s", d);
    pthread_mutex_unlock(&r->lock);
    return d ? 0 : -1;
}

int agent_registry_remove(struct agent_registry *r, const char *did) {
    pthread_mutex_lock(&r->lock);
    struct agent_record *rec = strmap_remove(r->by_did, did);
    if (rec) {
        char key[AGENT_NS_MAX + AGENT_NAME_MAX + 2];
        if (name_key(rec->ns, rec->name, key, sizeof key) == 0) free(strmap_remove(r->by_name, key));
    }
    pthread_mutex_unlock(&r->lock);
    record_free(rec);
    return rec ? 0 : -1;
}

struct snapshot {
    struct agent_record *recs;
    size_t n, cap;
};

static int collect(const char *key, void *val, void *arg) {
    (void)key;
    struct snapshot *s = arg;
    if (s->n == s->cap) return 1;
    copy_record(&s->recs[s->n++], val);
    return 0;
}

static int by_namespace_name(const void *a, const void *b) {
    const struct agent_record *x = a, *y = b;
    int c = strcmp(x->ns, y->ns);
    return c ? c : strcmp(x->name, y->name);
}

void agent_registry_foreach(struct agent_registry *r,
                            void (*fn)(const struct agent_record *rec, void *arg), void *arg) {
    struct snapshot s = {0};
    pthread_mutex_lock(&r->lock);
    s.cap = strmap_count(r->by_did);
    s.recs = s.cap ? calloc(s.cap, sizeof *s.recs) : NULL;
    if (s.recs) strmap_foreach(r->by_did, collect, &s);
    pthread_mutex_unlock(&r->lock);
    qsort(s.recs, s.n, sizeof *s.recs, by_namespace_name);
    for (size_t i = 0; i < s.n; i++) {
        fn(&s.recs[i], arg);
        agent_record_clear(&s.recs[i]);
    }
    free(s.recs);
}

const unsigned char *agent_record_grace_key(const struct agent_record *rec, int64_t now_ms) {
    return rec->has_prev && now_ms <= rec->prev_valid_until_ms ? rec->prev_pub : NULL;
}
