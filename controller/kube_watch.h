/* kube_watch.h — the watch loop on one resource type.
 *
 * Streams GET <path>?watch=1&allowWatchBookmarks=true&resourceVersion=RV
 * &timeoutSeconds=<random 300..600> (+ label/field selectors), decodes each
 * line {type, object}, and keeps the last resourceVersion seen (bookmarks
 * included) so that when the server ends the stream the next one resumes
 * exactly there. An ERROR event with code 410 or an HTTP 410 (the RV was
 * compacted away) asks the caller to relist. Transport errors back off
 * 0.8 s doubling to 30 s with jitter; a healthy stream resets the backoff.
 * Malformed lines are logged and skipped, never fatal. */
#ifndef AGENTMESH_KUBE_WATCH_H
#define AGENTMESH_KUBE_WATCH_H

#include <jansson.h>
#include <stddef.h>

#include "controller/kube_client.h"

enum kube_event_type {
    KUBE_EVENT_ADDED,
    KUBE_EVENT_MODIFIED,
    KUBE_EVENT_DELETED,
    KUBE_EVENT_BOOKMARK,
    KUBE_EVENT_ERROR,
};
const char *kube_event_type_name(enum kube_event_type t);

/* One decoded watch line. `object` is owned by the event (kube_watch_event_clear). */
struct kube_watch_event {
    enum kube_event_type type;
    json_t *object;
};

/* Decodes one line of a watch stream (no trailing newline needed). Returns 0
 * and fills `ev`; on a malformed line returns -1 and writes what is wrong
 * into `err` (bad JSON, missing/unknown "type", "object" not an object).
 * Never crashes on any input: this is the fuzz target's entry point. */
int kube_watch_decode(const char *line, size_t len, struct kube_watch_event *ev, char *err,
                      size_t errlen);
void kube_watch_event_clear(struct kube_watch_event *ev);

/* What a stream asked the loop to do next (also the fuzz target's view). */
enum kube_watch_verdict {
    KUBE_WATCH_CONTINUE,   /* keep reading */
    KUBE_WATCH_GONE,       /* 410: the resourceVersion is too old, relist */
    KUBE_WATCH_FAILED,     /* another ERROR event: reconnect after a backoff */
};

/* What the watch reports to its owner (the informer). Called from the
 * watching thread. */
struct kube_watch_handlers {
    /* Lists the resource afresh and replaces the owner's state; writes the
     * list's resourceVersion into `rv`. 0, or -1 (retried with backoff). */
    int (*relist)(void *arg, char *rv, size_t rvlen);
    /* ADDED, MODIFIED or DELETED; `object` is borrowed (json_incref to keep). */
    void (*event)(void *arg, enum kube_event_type type, json_t *object);
    void *arg;
};

struct kube_watch_opts {
    const struct kube_gvr *gvr;
    const char *ns;                 /* NULL/"" = all namespaces */
    const char *label_selector;     /* or NULL */
    const char *field_selector;     /* or NULL */
    const char *resource_version;   /* start watching here without a first
                                       relist; NULL/"" = relist first */
};

/* Per-stream state: the line handler's view, exposed so the fuzz target
 * and tests can feed lines without a server. */
struct kube_watch_state {
    const struct kube_watch_handlers *h;
    char rv[64];                    /* last resourceVersion seen */
    unsigned long events;           /* lines decoded and dispatched */
    unsigned long malformed;        /* lines skipped */
    enum kube_watch_verdict verdict;
};
/* Handles one line: decodes it, updates st->rv, dispatches ADDED/MODIFIED/
 * DELETED, and on an ERROR event sets st->verdict (GONE for code 410, else
 * FAILED). Malformed lines are counted and skipped. Returns non-zero when
 * the stream should stop (so it fits kube_line_fn). */
int kube_watch_handle_line(struct kube_watch_state *st, const char *line, size_t len);

/* Runs until *stop becomes non-zero: relist (unless opts->resource_version),
 * then watch, reconnect, relist on 410, back off on errors. Returns 0 when
 * stopped, -1 on bad options. */
int kube_watch_run(struct kube_client *c, const struct kube_watch_opts *opts,
                   const struct kube_watch_handlers *h, volatile int *stop);

/* Builds the watch path+query into buf. -1 if it does not fit. */
int kube_watch_path(char *buf, size_t buflen, const struct kube_watch_opts *opts, const char *rv,
                    int timeout_seconds);

/* The next backoff step after `cur` seconds (0 = first): 0.8 s doubling,
 * capped at 30 s. The loop sleeps a step plus up to 20% jitter (never over 30 s). */
double kube_watch_backoff_next(double cur);

#endif
