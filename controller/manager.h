/* manager.h — wires informers, work queues and reconcilers together.
 *
 * Every replica runs the informers (the webhook and the trust API answer
 * from their caches); only the leader runs the workers that write to the
 * API server. */
#ifndef AGENTMESH_MANAGER_H
#define AGENTMESH_MANAGER_H

#include "controller/controller.h"

struct manager_options {
    struct kube_client *client;
    struct trust_store *store;
    struct agent_registry *registry;
    const char *operator_namespace;
    int workers;                 /* AgentIdentity workers; TrustPolicy gets one */
    int api_port;
    double status_min_interval;  /* 10 s */
};

struct manager;

struct manager *manager_new(const struct manager_options *opts);
/* Starts the informers. 0 / -1. */
int manager_start_informers(struct manager *m);
/* 1 when every informer has synced (readiness). */
int manager_synced(struct manager *m);
/* Starts the reconcile workers (call once leadership is acquired). 0 / -1. */
int manager_start_workers(struct manager *m);
/* Before this replica leads: one AgentIdentity worker that only refreshes
 * this replica's agent registry (agent_refresh), so a standby's trust API
 * knows every agent. manager_start_workers later turns it, and the workers
 * it adds, to full reconciles. 0 or -1. */
int manager_start_standby(struct manager *m);
/* Refreshes the workqueue gauges/counters before /metrics renders. */
void manager_update_metrics(struct manager *m);
/* Stops workers (draining nothing: leadership is lost or we shut down) and informers. */
void manager_stop(struct manager *m);
void manager_free(struct manager *m);
struct controller *manager_controller(struct manager *m);

/* The transforms the caches use, exposed for tests: they drop what the
 * controller never reads (managedFields, last-applied annotations, a
 * child's own uid and generation) and, for Secrets, the private key, which
 * thus never sits in the cache. */
json_t *manager_strip_object(json_t *obj, void *arg);
json_t *manager_strip_secret(json_t *obj, void *arg);

#endif
