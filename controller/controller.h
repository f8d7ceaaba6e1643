/* controller.h — the shared state of the reconcilers.
 *
 * One `struct controller` per process, built by manager.c: the API client,
 * the informers (AgentIdentity, TrustPolicy, and our label-scoped children),
 * the work queues, the event recorder, the agent registry and the trust
 * store. Reconcilers are plain functions of (controller, key). */
#ifndef AGENTMESH_CONTROLLER_H
#define AGENTMESH_CONTROLLER_H

#include "controller/agent_registry.h"
#include "controller/events.h"
#include "controller/informer.h"
#include "controller/kube_client.h"
#include "controller/status_throttle.h"
#include "controller/trust_store.h"
#include "controller/workqueue.h"


extern const struct kube_gvr GVR_AGENTIDENTITIES;
extern const struct kube_gvr GVR_TRUSTPOLICIES;
extern const struct kube_gvr GVR_SERVICEACCOUNTS;
extern const struct kube_gvr GVR_SECRETS;
extern const struct kube_gvr GVR_NETWORKPOLICIES;
extern const struct kube_gvr GVR_PODS;

struct controller {
    struct kube_client *client;
    /* agents indexed by agent_sa_index_key, pods by agent_pod_index_key (agent_render.h) */
    struct informer *agents, *policies, *sas, *secrets, *netpols;
    struct informer *pods;           /* agent pods only (label agentmesh.io/agent), metadata only */
    struct workqueue *agent_queue, *policy_queue;
    struct events *events;
    struct agent_registry *registry;
    struct trust_store *store;
    const char *operator_namespace;
    int api_port;
    struct status_throttle *status_writes; /* by "ns/name" (status_throttle.h) */
    int leading;                     /* set (atomically) once this replica holds the Lease */
};

/* Reconciles one AgentIdentity ("ns/name"). 0 on success (with
 * *requeue_after > 0 when it wants another look later), -1 to retry with backoff. */
int agent_reconcile(struct controller *c, const char *key, double *requeue_after);
/* A standby's share of it: refreshes only this replica's agent registry
 * entry (key, phase, capabilities, scoring) from the caches and the trust
 * store and writes nothing to the API server, so every replica's trust API
 * knows every agent, not just the leader's. Same contract. */
int agent_refresh(struct controller *c, const char *key, double *requeue_after);
/* Reconciles one TrustPolicy: validates it, counts matched agents, writes status. */
int policy_reconcile(struct controller *c, const char *key, double *requeue_after);

/* Queues every AgentIdentity of `ns` (a TrustPolicy there changed). */
void controller_enqueue_namespace(struct controller *c, const char *ns);

/* Effective policy for an AgentIdentity: every TrustPolicy of its namespace
 * that selects its labels, combined to the strictest; the defaults when none.
 * Release with trust_policy_free. 0 / -1. */
struct trust_policy;
int controller_effective_policy(struct controller *c, const json_t *agid, struct trust_policy *out,
                                char *err, size_t errlen);

#endif
