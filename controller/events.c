/* events.c — Event recorder: asynchronous, with folding of repeats (events.h).
 *
 * events_record only queues; one sender thread talks to the API server, so a
 * reconcile never waits for its Events (client-go's broadcaster works the
 * same way). The queue is bounded: when a flood outruns the API server the
 * newest Events are dropped with a warning — they are a courtesy, the state
 * they describe is in status and conditions. */
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
#define QUEUE_CAP 1024

/* One remembered event: its fingerprint, how often it happened, its API
 * name. The names are allocated: inline buffers sized for the longest
 * namespace made the slots and the queue ~400 KiB that a flood touches. */
struct fold_entry {
    unsigned long long hash;
    time_t first;
    int count;
    char *ns, *name;
};

/* One queued Event, built on the caller's thread. */
struct pending {
    unsigned long long hash;
    time_t at;
    char *event;         /* the core/v1 Event to create, as compact JSON (a tenth of a
                            jansson tree's memory while a flood fills the queue);
                            its metadata.namespace is where it is created */
};

struct events {
    struct kube_client *client;
    char *component;
    struct fold_entry slots[FOLD_SLOTS];   /* sender thread only */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct pending queue[QUEUE_CAP];
    size_t head, len;
    int stopping;
    pthread_t sender;
    int sender_running;
    unsigned long long dropped;
};

static const struct kube_gvr events_gvr = {"", "v1", "events", 1};

static unsigned long long fnv(unsigned long long h, const char *s) {
    for (; s && *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (h ^ 0xff) * 1099511628211ULL;
}

/* Bumps count/lastTimestamp of an event we already created. 0 on success. */
static int fold_existing(struct events *ev, const struct fold_entry *e, const char *now) {
    json_t *patch = json_pack("{s:i, s:s}", "count", e->count, "lastTimestamp", now);
    struct kube_result r = {0};
    int rc = kube_patch(ev->client, &events_gvr, e->ns, e->name, NULL, KUBE_PATCH_MERGE, patch, NULL, 0, &r);
    json_decref(patch);
    kube_result_free(&r);
    return rc;
}

/* Sends one queued Event: folded into its recent twin, or created. */
static void send_one(struct events *ev, struct pending *p) {
    char now[32];
    rfc3339(p->at, now, sizeof now);
    struct fold_entry *slot = &ev->slots[p->hash % FOLD_SLOTS];
    if (slot->hash == p->hash && p->at - slot->first < FOLD_WINDOW_SECONDS) {
        slot->count++;
        if (fold_existing(ev, slot, now) == 0) return;
        /* the earlier event is gone (expired, deleted): create a fresh one */
    }
    struct kube_result r = {0};
    json_t *event = json_loads(p->event, 0, NULL);
    const char *ns = json_str_at(event, "metadata.namespace");
    if (!event || kube_create(ev->client, &events_gvr, ns, event, &r) != 0) {
        log_warn("events", "cannot record event %s in %s: %s", json_str_at(event, "reason"), ns,
                 event ? r.message : "out of memory");
    } else {
        const char *name = json_str_at(event, "metadata.name");
        char *slot_ns = ns ? strdup(ns) : NULL, *slot_name = name ? strdup(name) : NULL;
        free(slot->ns);
        free(slot->name);
        slot->ns = slot_ns;
        slot->name = slot_name;
        /* without both names the slot cannot fold: the next twin is created anew */
        slot->hash = slot_ns && slot_name ? p->hash : 0;
        slot->first = p->at;
        slot->count = 1;
    }
    json_decref(event);
    kube_result_free(&r);
}

static void *sender_main(void *arg) {
    struct events *ev = arg;
    pthread_mutex_lock(&ev->lock);
    for (;;) {
        while (ev->len == 0 && !ev->stopping) pthread_cond_wait(&ev->wake, &ev->lock);
        if (ev->stopping) break; /* what is left is dropped: shutdown must not wait on a slow API server */
        struct pending p = ev->queue[ev->head];
        ev->head = (ev->head + 1) % QUEUE_CAP;
        ev->len--;
        pthread_mutex_unlock(&ev->lock);
        send_one(ev, &p);
        free(p.event);
        pthread_mutex_lock(&ev->lock);
    }
    pthread_mutex_unlock(&ev->lock);
    return NULL;
}

struct events *events_new(struct kube_client *c, const char *component) {
    struct events *ev = calloc(1, sizeof *ev);
    if (!ev) return NULL;
    ev->client = c;
    ev->component = strdup(component);
    pthread_mutex_init(&ev->lock, NULL);
    pthread_cond_init(&ev->wake, NULL);
    if (!ev->component || pthread_create(&ev->sender, NULL, sender_main, ev) != 0) {
        events_free(ev);
        return NULL;
    }
    ev->sender_running = 1;
    return ev;
}

void events_free(struct events *ev) {
    if (!ev) return;
    if (ev->sender_running) {
        pthread_mutex_lock(&ev->lock);
        ev->stopping = 1;
        pthread_cond_signal(&ev->wake);
        pthread_mutex_unlock(&ev->lock);
        pthread_join(ev->sender, NULL);
    }
    for (; ev->len > 0; ev->len--, ev->head = (ev->head + 1) % QUEUE_CAP) free(ev->queue[ev->head].event);
    for (size_t i = 0; i < FOLD_SLOTS; i++) {
        free(ev->slots[i].ns);
        free(ev->slots[i].name);
    }
    pthread_cond_destroy(&ev->wake);
    pthread_mutex_destroy(&ev->lock);
    free(ev->component);
    free(ev);
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
    struct pending p;
    p.at = time(NULL);
    p.hash = fnv(fnv(fnv(fnv(1469598103934665603ULL, uid), reason), message), type);
    char now[32];
    rfc3339(p.at, now, sizeof now);
    /* Unique like client-go's: the object name and random hex. */
    unsigned char rnd[8];
    randombytes_buf(rnd, sizeof rnd);
    char evname[200];
    snprintf(evname, sizeof evname, "%.100s.%02x%02x%02x%02x%02x%02x%02x%02x", name, rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    const char *api_version = json_str_at(obj, "apiVersion");
    const char *kind = json_str_at(obj, "kind");
    json_t *event = json_pack(
        "{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s}, s:s, s:s, s:s, s:i, s:s, s:s, s:{s:s}, s:s}",
        "apiVersion", "v1", "kind", "Event", "metadata", "name", evname, "namespace", ns, "involvedObject",
        "apiVersion", api_version ? api_version : "v1", "kind", kind ? kind : "", "name", name, "namespace", ns,
        "uid", uid ? uid : "", "type", type, "reason", reason, "message", message, "count", 1, "firstTimestamp",
        now, "lastTimestamp", now, "source", "component", ev->component, "reportingComponent", ev->component);
    p.event = event ? json_dumps(event, JSON_COMPACT) : NULL;
    json_decref(event);
    if (!p.event) return;
    pthread_mutex_lock(&ev->lock);
    int queued = ev->len < QUEUE_CAP && !ev->stopping;
    if (queued) {
        ev->queue[(ev->head + ev->len) % QUEUE_CAP] = p;
        ev->len++;
        pthread_cond_signal(&ev->wake);
    } else if ((ev->dropped++ & 1023) == 0) {
        log_warn("events", "event queue full: dropping events (%llu so far), e.g. %s for %s/%s", ev->dropped, reason,
                 ns, name);
    }
    pthread_mutex_unlock(&ev->lock);
    if (!queued) free(p.event);
}
