/* audit_pipeline.h — where audit events go: PostgreSQL (hash chain) and a
 * CloudEvents sink, each behind its own on-disk spool.
 *
 * The trust API hands events over through a bounded in-memory queue, so a
 * Postgres round trip never sits on an API thread; one worker delivers each
 * event to both destinations with audit_spool_deliver (straight through when
 * the destination is up, into the spool when it is down; the spool's drainer
 * catches up later, exactly once into Postgres thanks to idempotent ids).
 * When the queue is full the caller delivers itself: back-pressure, never a
 * silent drop. A full spool refuses events loudly: log, metric, /readyz. */
#ifndef AGENTMESH_AUDIT_PIPELINE_H
#define AGENTMESH_AUDIT_PIPELINE_H

#include "controller/audit_log.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct audit_pipeline_options {
    const char *postgres_url;   /* NULL = no audit log */
    const char *sink_url;       /* NULL = no CloudEvents export */
    const char *spool_dir;      /* parent of postgres/ and sink/ */
    size_t spool_max_bytes;
};

struct audit_pipeline;

/* NULL with err when a URL is malformed or the spool cannot be opened. An
 * unreachable Postgres or sink is not an error: events spool until it returns. */
struct audit_pipeline *audit_pipeline_new(const struct audit_pipeline_options *o, char *err, size_t errlen);
void audit_pipeline_free(struct audit_pipeline *p);

/* trust_api_audit_fn: queues one event (data stolen). */
void audit_pipeline_emit(void *arg, const char *type, const char *agent_did, int64_t ts_ms, json_t *data);
/* trust_api_audit_verify_fn: walks the Postgres chain. -1 with err when none is configured. */
int audit_pipeline_verify(void *arg, struct audit_verify_result *out, char *err, size_t errlen);
/* ops_check_fn for /readyz: false while a spool is full. */
int audit_pipeline_ready(void *arg, char *why, size_t whylen);

#endif
