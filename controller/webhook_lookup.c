/* webhook_lookup.c — cache-first lookups for the admission webhook (webhook_lookup.h). */
#include "controller/webhook_lookup.h"

#include "common/json.h"
#include "webhook/api_lookup.h"

#include <stdio.h>

/* The AgentIdentity naming service account `sa` in `ns`, from the agents
 * informer's "namespace/serviceAccountName" index (controller.h), or NULL. */
static json_t *find_by_service_account(struct informer *agents, const char *ns, const char *sa) {
    char key[512];
    int n = snprintf(key, sizeof key, "%s/%s", ns, sa);
    if (n < 0 || (size_t)n >= sizeof key) return NULL;
    return informer_get_indexed(agents, key);
}

json_t *webhook_lookup_identity(const char *ns, const char *key, int by_service_account, void *arg) {
    struct webhook_lookup *l = arg;
    json_t *hit = by_service_account ? find_by_service_account(l->agents, ns, key)
                                     : informer_get_by_name(l->agents, ns, key);
    return hit ? hit : api_lookup_identity(ns, key, by_service_account, l->client);
}

json_t *webhook_lookup_ns_labels(const char *ns, void *arg) {
    struct webhook_lookup *l = arg;
    json_t *obj = informer_get_by_name(l->namespaces, NULL, ns);
    if (!obj) return api_lookup_ns_labels(ns, l->client);
    json_t *labels = json_at(obj, "metadata.labels");
    json_t *out = json_is_object(labels) ? json_incref(labels) : json_object();
    json_decref(obj);
    return out;
}

json_t *webhook_lookup_strip_namespace(json_t *obj, void *arg) {
    (void)arg;
    static const char *const keep[] = {"name", "resourceVersion", "labels"};
    json_t *slim = json_pack("{s:o}", "metadata", json_pick(json_object_get(obj, "metadata"), keep,
                                                               sizeof keep / sizeof keep[0]));
    json_decref(obj);
    return slim;
}
