/* leader.h — leader election on a coordination.k8s.io/v1 Lease.
 *
 * client-go's algorithm: lease duration 15 s, renew deadline 10 s, retry
 * period 2 s. A candidate takes the Lease when it is free or its holder has
 * not renewed it for a full lease duration *as observed locally* (no trust
 * in clock agreement between nodes). A leader that cannot renew within the
 * renew deadline stops leading. On graceful shutdown the leader releases the
 * Lease so a standby takes over within one retry period. */
#ifndef AGENTMESH_LEADER_H
#define AGENTMESH_LEADER_H

#include "controller/kube_client.h"

struct leader_options {
    struct kube_client *client;
    const char *namespace;
    const char *name;            /* the Lease: "agentmesh-controller" */
    const char *identity;        /* this replica: pod name + random suffix */
    double lease_duration;       /* 15 */
    double renew_deadline;       /* 10 */
    double retry_period;         /* 2 */
    void (*on_started)(void *arg);
    void (*on_stopped)(void *arg);   /* leadership lost (not called on release) */
    void *arg;
};

struct leader;

/* Starts the election thread. NULL on error. */
struct leader *leader_start(const struct leader_options *opts);
/* Stops the thread and, when leading, releases the Lease. */
void leader_stop(struct leader *l);

#endif
