/* agent_render.h — the desired state of an AgentIdentity's children.
 *
 * Pure functions: an AgentIdentity (and, for the NetworkPolicy, the
 * effective TrustPolicy and the peers that meet its bar) in, the exact
 * object to server-side-apply out. Keeping rendering apart from the API
 * calls makes "each child has exactly the documented content" a unit test
 * (DESIGN §3). */
#ifndef AGENTMESH_AGENT_RENDER_H
#define AGENTMESH_AGENT_RENDER_H

#include <jansson.h>
#include <stddef.h>

#define AGENTMESH_FIELD_MANAGER "agentmesh-controller"
#define AGENTMESH_FINALIZER "agentmesh.io/cleanup"
#define LABEL_MANAGED_BY "app.kubernetes.io/managed-by"
#define LABEL_MANAGED_BY_VALUE "agentmesh-operator"
#define LABEL_AGENT "agentmesh.io/agent"
/* On a ServiceAccount that existed before its AgentIdentity: we never own
 * or delete it, and on deletion remove only our fields (finalizer). */
#define ANNOTATION_PREEXISTING "agentmesh.io/preexisting"
#define SECRET_TYPE_IDENTITY "agentmesh.io/identity"
#define ANNOTATION_ROTATED_AT "agentmesh.io/key-rotated-at"
#define ANNOTATION_PREVIOUS_KEY "agentmesh.io/previous-public-key"
/* On an AgentIdentity: any new value asks for a key rotation now (e.g. after
 * a suspected leak): `kubectl annotate agid X agentmesh.io/rotate-key=$(date +%s) --overwrite`.
 * The Secret records the last value served under the same name. */
#define ANNOTATION_ROTATE_REQUEST "agentmesh.io/rotate-key"

/* spec.serviceAccountName, else metadata.name. Borrowed from `agid`. */
const char *agent_sa_name(const json_t *agid);
/* Informer index keys (informer_opts.index_key): an AgentIdentity's
 * "namespace/serviceAccountName" (the webhook and the escape scanner find a
 * pod's identity by service account), and an agent pod's
 * "namespace/<agentmesh.io/agent label>" = its agent's cache key (a
 * reconcile finds its pods without walking every pod). 0 or -1 (no value). */
int agent_sa_index_key(const json_t *agid, char *buf, size_t buflen);
int agent_pod_index_key(const json_t *pod, char *buf, size_t buflen);
/* "<name>-agentmesh-identity" / "<name>-agentmesh". -1 if it doesn't fit. */
int agent_secret_name(const char *agent, char *buf, size_t buflen);
int agent_netpol_name(const char *agent, char *buf, size_t buflen);

/* The ownerReference list pointing at `agid` (controller: true). New reference. */
json_t *render_owner_refs(const json_t *agid);

/* The ServiceAccount to apply: cloud workload-identity annotations/labels
 * (AWS IRSA, Azure Workload Identity, GKE) plus our labels; an
 * ownerReference only when we created it (`preexisting` = 0). */
json_t *render_service_account(const json_t *agid, int preexisting);
/* The minimal apply body that, sent with our field manager, removes every
 * field we own from a pre-existing ServiceAccount. */
json_t *render_service_account_release(const char *ns, const char *name);

/* On agent pods: the agent's tier ("untrusted" .. "verified_partner"), or
 * "quarantined" while it is quarantined or revoked. The controller keeps it
 * current, so NetworkPolicies select peers by tier and never need to list
 * them: a tier change is one label patch per pod of that agent, instead of a
 * rewrite of every NetworkPolicy in the namespace. */
#define LABEL_TIER "agentmesh.io/tier"
#define TIER_LABEL_QUARANTINED "quarantined"

/* Which peers may reach an agent, decided by the reconciler. */
struct netpol_inputs {
    int min_tier;                    /* enum trust_tier: peers at this tier or above */
    const json_t *allow_from_namespaces; /* a LabelSelector object, or NULL */
    const char *operator_namespace;  /* where the controller runs */
    int quarantined;                 /* ingress none, egress DNS + controller API only */
    int controller_api_port;         /* 8080 */
};
json_t *render_network_policy(const json_t *agid, const struct netpol_inputs *in);

/* Sets condition `type` in the conditions array `conds` (metav1.Condition
 * shape). lastTransitionTime changes only when status changes, so an
 * unchanged reconcile writes nothing. `now` is RFC3339. */
void conditions_set(json_t *conds, const char *type, int status, const char *reason,
                    const char *message, long long generation, const char *now);

/* 1 when every field of `want` is present and equal in `have` (objects
 * compared key by key, recursively; arrays and scalars exactly). Used to
 * skip writes when a child already has our content. */
int json_subset(const json_t *want, const json_t *have);

/* RFC3339 UTC "2026-11-21T21:37:17Z" for a unix time. */
void rfc3339(long long unix_seconds, char *buf, size_t buflen);
/* Parses RFC3339 (Z or ±hh:mm, optional fraction). 0 / -1. */
int rfc3339_parse(const char *s, long long *unix_seconds);

#endif
