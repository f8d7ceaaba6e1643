/* webhook_lookup.h — the admission webhook's lookups, answered from the
 * controller's informer caches with one API call on a miss.
 *
 * The miss path matters: a pod created right after its AgentIdentity must
 * not be admitted uninjected just because the watch event is a few ms late
 * (the race the EKS and Azure webhooks are known for). */
#ifndef AGENTMESH_WEBHOOK_LOOKUP_H
#define AGENTMESH_WEBHOOK_LOOKUP_H

#include "controller/informer.h"
#include "controller/kube_client.h"

#include <jansson.h>

struct webhook_lookup {
    struct informer *agents;       /* AgentIdentities, all namespaces */
    struct informer *namespaces;   /* Namespaces (labels only) */
    struct kube_client *client;    /* fallback */
};

/* webhook_identity_fn: the AgentIdentity named `key`, or (by_service_account)
 * the one whose effective serviceAccountName is `key`. New reference or NULL. */
json_t *webhook_lookup_identity(const char *ns, const char *key, int by_service_account, void *arg);
/* webhook_ns_labels_fn: the namespace's labels. New reference or NULL. */
json_t *webhook_lookup_ns_labels(const char *ns, void *arg);

/* Informer transform for Namespaces: keeps only metadata.name and labels. */
json_t *webhook_lookup_strip_namespace(json_t *obj, void *arg);

#endif
