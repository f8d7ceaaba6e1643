/* audit_pipeline.c — queue → worker → spool-guarded Postgres and CloudEvents sink. */
#include "controller/audit_pipeline.h"

#include "common/log.h"
#include "common/metrics.h"
#include "controller/audit_spool.h"
#include "controller/cloudevents.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LOG "audit"
#define QUEUE_CAP 8192

struct audit_pipeline {
    struct audit_log *log;
    struct cloudevents_sink *sink;
    struct audit_spool *log_spool, *sink_spool;
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    struct audit_event *queue[QUEUE_CAP];
    size_t head, len;
    int stopping;
    pthread_t worker;
    int worker_running;
    struct metric *events_total, *refused_total;
};

/* Hands one event to both destinations (or their spools). */
static void deliver(struct audit_pipeline *p, const struct audit_event *ev) {
    char err[256];
    metric_add(p->events_total, 1, ev->type);
    if (p->log_spool) {
        char *canonical = audit_event_canonical(ev);
        if (!canonical || audit_spool_deliver(p->log_spool, canonical, strlen(canonical), audit_log_spool_sink,
                                              p->log, err, sizeof err) != 0) {
            metric_add(p->refused_total, 1, "postgres");
            log_error(LOG, "audit event %s NOT stored for PostgreSQL: %s", ev->id, canonical ? err : "out of memory");
        }
        free(canonical);
    }
    if (p->sink_spool) {
        json_t *ce = cloudevent_from_audit(ev);
        char *body = ce ? json_dumps(ce, JSON_COMPACT) : NULL;
        json_decref(ce);
        if (!body || audit_spool_deliver(p->sink_spool, body, strlen(body), cloudevents_spool_sink, p->sink, err,
                                         sizeof err) != 0) {
            metric_add(p->refused_total, 1, "sink");
            log_error(LOG, "audit event %s NOT stored for the CloudEvents sink: %s", ev->id, body ? err : "out of memory");
        }
        free(body);
    }
}

static void *worker_main(void *arg) {
    struct audit_pipeline *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->len == 0 && !p->stopping) pthread_cond_wait(&p->nonempty, &p->lock);
        if (p->len == 0) break; /* stopping, and everything queued was delivered */
        struct audit_event *ev = p->queue[p->head];
        p->head = (p->head + 1) % QUEUE_CAP;
        p->len--;
        pthread_mutex_unlock(&p->lock);
        deliver(p, ev);
        audit_event_clear(ev);
        free(ev);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static struct audit_spool *open_spool(const char *parent, const char *name, size_t max_bytes, char *err,
                                      size_t errlen) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", parent, name);
    if (mkdir(parent, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", parent, strerror(errno));
        return NULL;
    }
    struct audit_spool_limits limits = {.max_bytes = max_bytes};
    return audit_spool_open(dir, &limits, err, errlen);
}

struct audit_pipeline *audit_pipeline_new(const struct audit_pipeline_options *o, char *err, size_t errlen) {
    struct audit_pipeline *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->nonempty, NULL);
    p->events_total = metrics_counter("agentmesh_audit_events_total", "Audit events emitted, by type.", "type");
    p->refused_total = metrics_counter("agentmesh_audit_events_refused_total",
                                       "Audit events that could be neither delivered nor spooled (spool full or disk error).",
                                       "destination");
    if (o->postgres_url) {
        p->log = audit_log_new(o->postgres_url, err, errlen);
        if (!p->log || !(p->log_spool = open_spool(o->spool_dir, "postgres", o->spool_max_bytes, err, errlen)) ||
            audit_spool_start_drainer(p->log_spool, audit_log_spool_sink, p->log, 0, err, errlen) != 0)
            goto fail;
    }
    if (o->sink_url) {
        p->sink = cloudevents_sink_new(o->sink_url, NULL, 0, err, errlen);
        if (!p->sink || !(p->sink_spool = open_spool(o->spool_dir, "sink", o->spool_max_bytes, err, errlen)) ||
            audit_spool_start_drainer(p->sink_spool, cloudevents_spool_sink, p->sink, 0, err, errlen) != 0)
            goto fail;
    }
    if (pthread_create(&p->worker, NULL, worker_main, p) != 0) {
        snprintf(err, errlen, "cannot start the audit worker");
        goto fail;
    }
    p->worker_running = 1;
    return p;
fail:
    audit_pipeline_free(p);
    return NULL;
}

void audit_pipeline_free(struct audit_pipeline *p) {
    if (!p) return;
    if (p->worker_running) {
        pthread_mutex_lock(&p->lock);
        p->stopping = 1;
        pthread_cond_signal(&p->nonempty);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->worker, NULL);
    }
    audit_spool_close(p->log_spool);
    audit_spool_close(p->sink_spool);
    audit_log_free(p->log);
    cloudevents_sink_free(p->sink);
    pthread_cond_destroy(&p->nonempty);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void audit_pipeline_emit(void *arg, const char *type, const char *agent_did, int64_t ts_ms, json_t *data) {
    struct audit_pipeline *p = arg;
    char err[256];
    struct audit_event *ev = calloc(1, sizeof *ev);
    if (!ev || audit_event_init(ev, NULL, type, agent_did ? agent_did : "", ts_ms, data, err, sizeof err) != 0) {
        log_error(LOG, "cannot build audit event %s: %s", type, ev ? err : "out of memory");
        free(ev);
        return;
    }
    pthread_mutex_lock(&p->lock);
    if (p->len < QUEUE_CAP && !p->stopping) {
        p->queue[(p->head + p->len) % QUEUE_CAP] = ev;
        p->len++;
        pthread_cond_signal(&p->nonempty);
        pthread_mutex_unlock(&p->lock);
        return;
    }
    pthread_mutex_unlock(&p->lock);
    deliver(p, ev); /* queue full: back-pressure on the caller instead of a drop */
    audit_event_clear(ev);
    free(ev);
}

int audit_pipeline_verify(void *arg, struct audit_verify_result *out, char *err, size_t errlen) {
    struct audit_pipeline *p = arg;
    if (!p || !p->log) {
        snprintf(err, errlen, "no audit log configured (--postgres-url)");
        return -1;
    }
    return audit_log_verify(p->log, out, err, errlen);
}

int audit_pipeline_ready(void *arg, char *why, size_t whylen) {
    struct audit_pipeline *p = arg;
    if (p->log_spool && audit_spool_is_full(p->log_spool)) {
        snprintf(why, whylen, "PostgreSQL audit spool is full (%zu events waiting)", audit_spool_count(p->log_spool));
        return 0;
    }
    if (p->sink_spool && audit_spool_is_full(p->sink_spool)) {
        snprintf(why, whylen, "CloudEvents spool is full (%zu events waiting)", audit_spool_count(p->sink_spool));
        return 0;
    }
    return 1;
}
