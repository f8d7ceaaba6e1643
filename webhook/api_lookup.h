/* api_lookup.h — the webhook's lookups answered by the API server directly.
 *
 * Signatures fit webhook_identity_fn / webhook_ns_labels_fn with a
 * `struct kube_client *` as arg. The controller answers from its informer
 * cache and calls these only on a miss (an AgentIdentity created a moment
 * before its pod); standalone runs (e2e, benchmarks) use them alone. Each
 * is one API call (a GET, or a LIST of the namespace's AgentIdentities when
 * matching by service account), bounded by the client's request timeout. */
#ifndef AGENTMESH_WEBHOOK_API_LOOKUP_H
#define AGENTMESH_WEBHOOK_API_LOOKUP_H

#include <jansson.h>

json_t *api_lookup_identity(const char *ns, const char *key, int by_service_account, void *kube);
json_t *api_lookup_ns_labels(const char *ns, void *kube);

#endif
