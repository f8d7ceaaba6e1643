/* status_throttle.h — when an AgentIdentity's status may be written again.
 *
 * Score changes within one tier reach status at most once per window
 * (--status-min-interval, 10 s): a busy agent's score moves with every
 * signal, and a status write per signal would flood the API server. And
 * after our own write, until its watch event reaches the cache, the cached
 * status is stale: writing from it would only repeat ourselves, so the
 * record also keeps the resourceVersion the write replaced.
 *
 * Times are monotonic seconds, passed in by the caller. Thread-safe. */
#ifndef AGENTMESH_STATUS_THROTTLE_H
#define AGENTMESH_STATUS_THROTTLE_H

#include <stddef.h>

struct status_throttle;

/* NULL when out of memory. */
struct status_throttle *status_throttle_new(double window);
void status_throttle_free(struct status_throttle *t);

/* Seconds until the status of `key` may be written: a score-only change
 * waits out the window since the last write, any other change may go at
 * once. 0 = now, and the write is recorded at `now`. */
double status_throttle_admit(struct status_throttle *t, const char *key, int score_only, double now);
/* Our write moved `key` from resourceVersion rv_before to rv_after (either
 * may be NULL). A write that changed nothing makes no new version and no
 * watch event, so it leaves nothing pending. */
void status_throttle_wrote(struct status_throttle *t, const char *key, const char *rv_before,
                           const char *rv_after);
/* 1 when the cached agent, at resourceVersion `rv`, predates our last write
 * of its status (its watch event has not come back yet), else 0. */
int status_throttle_cache_behind(struct status_throttle *t, const char *key, const char *rv);
/* The agent is gone: drops its record. */
void status_throttle_forget(struct status_throttle *t, const char *key);
/* Records held (tests). */
size_t status_throttle_count(struct status_throttle *t);

#endif
