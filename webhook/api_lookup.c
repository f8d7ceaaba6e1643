/* api_lookup.c — AgentIdentity and namespace-label lookups over the API (see api_lookup.h). */
#include "webhook/api_lookup.h"

#include "common/json.h"
#include "common/log.h"
#include "controller/kube_client.h"
#include "webhook/inject.h"

#include <string.h>

static const struct kube_gvr agentidentities = {"agentmesh.io", "v1alpha1", "agentidentities", 1};
static const struct kube_gvr namespaces = {"", "v1", "namespaces", 0};

/* The first item of a list whose effective service account is `sa`. */
static json_t *match_service_account(const json_t *list, const char *sa) {
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(list, "items"), i, item) {
        const char *have = inject_identity_sa(item);
        if (have && strcmp(have, sa) == 0) return json_incref(item);
    }
    return NULL;
}

json_t *api_lookup_identity(const char *ns, const char *key, int by_service_account, void *kube) {
    struct kube_result r;
    json_t *found = NULL;
    int rc = by_service_account ? kube_list(kube, &agentidentities, ns, NULL, &r)
                                : kube_get(kube, &agentidentities, ns, key, NULL, &r);
    if (rc == 0)
        found = by_service_account ? match_service_account(r.body, key) : json_incref(r.body);
    else if (!kube_is_reason(&r, "NotFound"))
        log_warn("webhook", "looking up AgentIdentity %s/%s: %d %s", ns, key, r.status, r.message);
    kube_result_free(&r);
    return found;
}

json_t *api_lookup_ns_labels(const char *ns, void *kube) {
    struct kube_result r;
    json_t *labels = NULL;
    if (kube_get(kube, &namespaces, NULL, ns, NULL, &r) == 0)
        labels = json_incref(json_at(r.body, "metadata.labels"));
    else
        log_warn("webhook", "reading namespace %s: %d %s", ns, r.status, r.message);
    kube_result_free(&r);
    return labels;
}
