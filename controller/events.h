/* events.h — Kubernetes Events for every transition (DESIGN §3).
 *
 * Events are core/v1 Events in the object's namespace, reported by
 * "agentmesh-controller". Identical events for one object within 10 minutes
 * are folded into one (count and lastTimestamp bumped), like client-go's
 * EventCorrelator, so a flapping agent cannot flood etcd. Never put key
 * material in a message. */
#ifndef AGENTMESH_EVENTS_H
#define AGENTMESH_EVENTS_H

#include "controller/kube_client.h"

#include <jansson.h>

struct events;

struct events *events_new(struct kube_client *c, const char *component);
void events_free(struct events *ev);

/* `type` "Normal" or "Warning"; `reason` CamelCase. `obj` is the involved
 * object (apiVersion/kind/metadata are read from it). Failures are logged,
 * never fatal: an Event is a courtesy, not state. */
void events_record(struct events *ev, const json_t *obj, const char *type, const char *reason,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
