/* events.c — Event recorder with folding of repeats (see events.h). */
#include "controller/events.h"

#include "common/json.h"
#include "common/log.h"
#include "controller/agent_render.h"

#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FOLD_SLOTS 256
#define FOLD_WINDOW_SECONDS 600

/* One remembered event: which object/reason/message it was and its API name. */
struct fold_entry {
    unsigned long long hash;
    time_t first, last;
    int count;
    char ns[254];
    char name[200];
};

struct events {
    struct kube_client *client;
    char *component;
    pthread_mutex_t lock;
    struct fold_entry slots[FOLD_SLOTS];
};

static const struct kube_gvr events_gvr = {"", "v1", "events", 1};

struct events *events_new(struct kube_client *c, const char *component) {
    struct events *ev = calloc(1, sizeof *ev);
    if (!ev) return NULL;
    ev->client = c;
    ev->component = strdup(component);
    if (!ev->component) {
        free(ev);
        return NULL;
    }
    pthread_mutex_init(&ev->lock, NULL);
    return ev;
}

void events_free(struct events *ev) {
    if (!ev) return;
    pthread_mutex_destroy(&ev->lock);
    free(ev->component);
    free(ev);
}

static unsigned long long fnv(unsigned long long h, const char *s) {
    for (; s && *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (h ^ 0xff) * 1099511628211ULL;
}

/* Bumps count/lastTimestamp of an event we already created. 0 on success. */
static int fold_existing(struct events *ev, const struct fold_entry *e, const char *now) {
    json_t *patch = json_pack("{s:i, s:s}", "count", e->count, "lastTimestamp", now);
    struct kube_result r = {0};
    int rc = kube_patch(ev->client, &events_gvr, e->ns, e->name, NULL, KUBE_PATCH_MERGE, patch,
                        NULL, 0, &r);
    json_decref(patch);
    kube_result_free(&r);
    return rc;
}

void events_record(struct events *ev, const json_t *obj, const char *type, const char *reason,
                   const char *fmt, ...) {
    if (!ev || !ev->client) return;
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);

    const char *ns = json_str_at(obj, "metadata.namespace");
    const char *name = json_str_at(obj, "metadata.name");
    const char *uid = json_str_at(obj, "metadata.uid");
    if (!name) return;
    if (!ns) ns = "default";
    time_t now_s = time(NULL);
    char now[32];
    rfc3339(now_s, now, sizeof now);

    unsigned long long h = fnv(fnv(fnv(fnv(1469598103934665603ULL, uid), reason), message), type);
    pthread_mutex_lock(&ev->lock);
    struct fold_entry *slot = &ev->slots[h % FOLD_SLOTS];
    if (slot->hash == h && now_s - slot->first < FOLD_WINDOW_SECONDS) {
        slot->count++;
        slot->last = now_s;
        struct fold_entry copy = *slot;
        pthread_mutex_unlock(&ev->lock);
        if (fold_existing(ev, &copy, now) == 0) return;
        pthread_mutex_lock(&ev->lock); /* the old event is gone: create a fresh one */
    }
    pthread_mutex_unlock(&ev->lock);

    /* Unique like client-go's: the object name and random hex, never a clash
     * between two events in the same second. */
    unsigned char rnd[8];
    randombytes_buf(rnd, sizeof rnd);
    char evname[200];
    snprintf(evname, sizeof evname, "%.100s.%02x%02x%02x%02x%02x%02x%02x%02x", name, rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    json_t *event = json_pack(
        "{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s}, s:s, s:s, s:s, s:i, s:s, s:s, s:{s:s}, s:s}",
        "apiVersion", "v1", "kind", "Event", "metadata", "name", evname, "namespace", ns,
        "involvedObject", "apiVersion", json_str_at(obj, "apiVersion") ? json_str_at(obj, "apiVersion") : "v1",
        "kind", json_str_at(obj, "kind") ? json_str_at(obj, "kind") : "", "name", name, "namespace", ns,
        "uid", uid ? uid : "", "type", type, "reason", reason, "message", message, "count", 1,
        "firstTimestamp", now, "lastTimestamp", now, "source", "component", ev->component,
        "reportingComponent", ev->component);
    if (!event) return;
    struct kube_result r = {0};
    if (kube_create(ev->client, &events_gvr, ns, event, &r) != 0) {
        log_warn("events", "cannot record event %s for %s/%s: %s", reason, ns, name, r.message);
    } else {
        pthread_mutex_lock(&ev->lock);
        slot->hash = h;
        slot->first = slot->last = now_s;
        slot->count = 1;
        snprintf(slot->ns, sizeof slot->ns, "%s", ns);
        snprintf(slot->name, sizeof slot->name, "%s", evname);
        pthread_mutex_unlock(&ev->lock);
    }
    json_decref(event);
    kube_result_free(&r);
}
