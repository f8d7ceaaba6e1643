/* audit_spool.h — a bounded on-disk queue for audit events whose
 * destination (PostgreSQL, the CloudEvents sink) is down.
 *
 * A directory with one file per event, named by a 20-digit sequence number
 * so that names sort in arrival order. Each file is written to a temporary
 * name, fsynced, renamed, and the directory fsynced, so a crash leaves
 * either the whole event or nothing. Draining delivers oldest first and
 * removes a file only after its sink accepted it; a crash in between
 * redelivers that one event, which the sinks absorb (Postgres appends are
 * idempotent on the event id; CloudEvents carry the same id).
 *
 * Bounded: when max_entries or max_bytes would be exceeded, push fails,
 * the full flag is set (for /readyz) and an error is logged — nothing is
 * ever dropped silently. One spool per destination. Thread-safe. */
#ifndef AGENTMESH_AUDIT_SPOOL_H
#define AGENTMESH_AUDIT_SPOOL_H

#include <stddef.h>

struct audit_spool_limits {
    size_t max_entries;      /* 0 = 100000 */
    size_t max_bytes;        /* 0 = 256 MiB */
};

/* Delivers one payload: 0 delivered (or already there), -1 destination
 * unavailable (retry later), -2 payload rejected for good (the spool moves
 * it to <dir>/rejected/ and logs an error instead of retrying forever). */
typedef int (*audit_spool_sink_fn)(const char *payload, size_t len, void *arg,
                                   char *err, size_t errlen);

struct audit_spool;

/* Opens (creating, mode 0700) `dir` and picks up files left by an earlier
 * run, in order. `limits` may be NULL. NULL with err on failure. */
struct audit_spool *audit_spool_open(const char *dir, const struct audit_spool_limits *limits,
                                     char *err, size_t errlen);
void audit_spool_close(struct audit_spool *sp);

/* Appends one payload durably. 0, or -1 (full, or disk error) with err. */
int audit_spool_push(struct audit_spool *sp, const char *payload, size_t len, char *err, size_t errlen);

/* Delivers spooled payloads oldest first until the spool is empty (0) or
 * the sink fails (-1, err from the sink). *delivered (may be NULL) counts
 * the payloads removed. */
int audit_spool_drain(struct audit_spool *sp, audit_spool_sink_fn sink, void *arg,
                      size_t *delivered, char *err, size_t errlen);

/* The one call for emitting; keeps order with what is already spooled.
 * Empty spool: try the sink directly, spool on failure. Non-empty: spool
 * only (the drainer or an explicit drain delivers it after the older ones),
 * so a down destination costs at most one failed attempt per drain period.
 * 0 when delivered or safely spooled, -1 when neither was possible (spool
 * full, disk error, or the sink rejected the payload) — the event is then
 * NOT stored and err says why. */
int audit_spool_deliver(struct audit_spool *sp, const char *payload, size_t len,
                        audit_spool_sink_fn sink, void *arg, char *err, size_t errlen);

/* Starts a thread that drains into `sink` every interval_ms (0 = 5000)
 * while anything is spooled; stopped by audit_spool_close. 0 or -1. */
int audit_spool_start_drainer(struct audit_spool *sp, audit_spool_sink_fn sink, void *arg,
                              int interval_ms, char *err, size_t errlen);

size_t audit_spool_count(struct audit_spool *sp);
size_t audit_spool_bytes(struct audit_spool *sp);
/* 1 after a push failed for lack of room, until a push fits or a drain frees room. */
int audit_spool_is_full(struct audit_spool *sp);

#endif
