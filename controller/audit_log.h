/* audit_log.h — the hash-chained audit log and score history in PostgreSQL.
 *
 * Every audit event becomes one row of audit_log, chained:
 *     entry_hash = hex(sha256(previous_hash || canonical(event)))
 * where previous_hash is the entry_hash of the row before it (64 zeros for
 * the first) and canonical(event) is the compact, key-sorted JSON of
 * {"agent_did","data","id","ts","type"} (ts in unix ms). Appends run in one
 * transaction under a PostgreSQL advisory lock, so replicas appending at the
 * same time still build one chain. Appends are idempotent on the event id.
 *
 * The handle connects lazily (and reconnects after errors), creating or
 * migrating the schema on each new connection, so a controller can start
 * while Postgres is down; events meanwhile go to audit_spool. */
#ifndef AGENTMESH_AUDIT_LOG_H
#define AGENTMESH_AUDIT_LOG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define AUDIT_ID_MAX 128
#define AUDIT_TYPE_MAX 96
#define AUDIT_DID_MAX 128

/* One audit event. `type` is the short type ("trust.signal", "agent.revoked");
 * the CloudEvent type is "ai.agentmesh." + type. */
struct audit_event {
    char id[AUDIT_ID_MAX + 1];
    char type[AUDIT_TYPE_MAX + 1];
    char agent_did[AUDIT_DID_MAX + 1];
    int64_t ts_ms;
    json_t *data;           /* owned reference; an object, never NULL once initialised */
};

/* Fills *ev. `id` NULL = a fresh random id ("evt_<32 hex>"). `data` is stolen
 * (NULL = {}), also on error. type: [a-z0-9._-]+. -1 with err naming the field. */
int audit_event_init(struct audit_event *ev, const char *id, const char *type, const char *agent_did,
                     int64_t ts_ms, json_t *data, char *err, size_t errlen);
void audit_event_clear(struct audit_event *ev);
/* The canonical JSON text hashed into the chain (caller frees); NULL on OOM. */
char *audit_event_canonical(const struct audit_event *ev);
/* Inverse of audit_event_canonical (used for spooled events). */
int audit_event_parse(const char *json, size_t len, struct audit_event *out, char *err, size_t errlen);

struct audit_log;

/* Checks the URL (libpq URI or key=value string; sslmode etc. are honoured)
 * without connecting. connect_timeout defaults to 2 s and statements time out
 * after 5 s unless the URL says otherwise. NULL with err for a bad URL. */
struct audit_log *audit_log_new(const char *url, char *err, size_t errlen);
void audit_log_free(struct audit_log *l);

/* Connects if needed and runs `SELECT 1`: 0 when Postgres answers (readiness). */
int audit_log_ping(struct audit_log *l, char *err, size_t errlen);

/* Appends one event: 0 appended, 1 already present (same id: nothing
 * changed), -1 Postgres unavailable or failed (err says why). When
 * hash_out is non-NULL it receives the entry's hex hash (65 bytes). */
int audit_log_append(struct audit_log *l, const struct audit_event *ev, char hash_out[65],
                     char *err, size_t errlen);

struct audit_verify_result {
    int chain_valid;
    long long entries;
    long long first_bad_seq;             /* -1 when valid */
    char first_bad_id[AUDIT_ID_MAX + 1];  /* "" when valid */
};

/* Walks the whole chain in seq order, recomputing every hash. 0 (result
 * filled, valid or not) or -1 when Postgres is unavailable. */
int audit_log_verify(struct audit_log *l, struct audit_verify_result *out, char *err, size_t errlen);

/* One row of score_history. 0 or -1. */
int audit_log_record_score(struct audit_log *l, const char *agent_did, int score, const char *tier,
                           int64_t ts_ms, char *err, size_t errlen);

/* audit_spool sink: `payload` is audit_event_canonical text, arg the audit_log.
 * 0 appended or already present, -1 retry later, -2 payload unusable. */
int audit_log_spool_sink(const char *payload, size_t len, void *arg, char *err, size_t errlen);

#endif
