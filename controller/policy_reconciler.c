/* policy_reconciler.c — TrustPolicy status, and the effective policy of an agent.
 *
 * A TrustPolicy owns no children: reconciling one means validating its spec
 * (the schema cannot check everything on a 1.20 API server), counting the
 * agents it selects and writing status. Agents pick up policy changes
 * because the TrustPolicy informer re-queues every agent of the namespace. */
#include "controller/controller.h"

#include "common/json.h"
#include "common/log.h"
#include "controller/agent_render.h"
#include "controller/trust_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_POLICIES_PER_AGENT 64

/* Parses every TrustPolicy of `ns` that selects `labels`. Returns how many
 * were put in out[] (each to be trust_policy_free'd). Invalid ones are skipped:
 * their own status says why. */
static size_t selecting_policies(struct controller *c, const char *ns, const json_t *labels,
                                 struct trust_policy *out, size_t max) {
    json_t *all = informer_list(c->policies);
    size_t n = 0, i;
    json_t *tp;
    json_array_foreach(all, i, tp) {
        const char *tns = json_str_at(tp, "metadata.namespace");
        if (!tns || strcmp(tns, ns) != 0 || n == max) continue;
        char name[320], err[256];
        snprintf(name, sizeof name, "%s/%s", tns, json_str_at(tp, "metadata.name"));
        if (trust_policy_parse(json_at(tp, "spec"), name, &out[n], err, sizeof err) != 0) continue;
        if (trust_policy_selects(&out[n], labels)) n++;
        else trust_policy_free(&out[n]);
    }
    json_decref(all);
    return n;
}

int controller_effective_policy(struct controller *c, const json_t *agid, struct trust_policy *out,
                                char *err, size_t errlen) {
    struct trust_policy *pols = calloc(MAX_POLICIES_PER_AGENT, sizeof *pols);
    if (!pols) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t n = selecting_policies(c, json_str_at(agid, "metadata.namespace"),
                                  json_at(agid, "metadata.labels"), pols, MAX_POLICIES_PER_AGENT);
    int rc = 0;
    if (n == 0) {
        trust_policy_init_default(out);
    } else {
        const struct trust_policy *ptrs[MAX_POLICIES_PER_AGENT];
        for (size_t i = 0; i < n; i++) ptrs[i] = &pols[i];
        rc = trust_policy_combine(ptrs, n, out, err, errlen);
    }
    for (size_t i = 0; i < n; i++) trust_policy_free(&pols[i]);
    free(pols);
    return rc;
}

struct enqueue_ctx {
    struct controller *c;
    const char *ns;
};

static int enqueue_in_namespace(const json_t *a, void *arg) {
    struct enqueue_ctx *e = arg;
    const char *ans = json_str_at(a, "metadata.namespace");
    char key[400];
    if (ans && strcmp(ans, e->ns) == 0 && informer_key(a, key, sizeof key) == 0)
        workqueue_add(e->c->agent_queue, key);
    return 0;
}

void controller_enqueue_namespace(struct controller *c, const char *ns) {
    struct enqueue_ctx e = {c, ns};
    if (informer_foreach(c->agents, enqueue_in_namespace, &e) != 0)
        log_error("policy", "out of memory queueing the agents of namespace %s", ns);
}

struct match_ctx {
    const struct trust_policy *pol;
    const char *ns;
    long long matched;
};

static int count_match(const json_t *a, void *arg) {
    struct match_ctx *m = arg;
    const char *ans = json_str_at(a, "metadata.namespace");
    if (ans && m->ns && strcmp(ans, m->ns) == 0 && trust_policy_selects(m->pol, json_at(a, "metadata.labels")))
        m->matched++;
    return 0;
}

int policy_reconcile(struct controller *c, const char *key, double *requeue_after) {
    *requeue_after = 0;
    json_t *tp = informer_get(c->policies, key);
    if (!tp) return 0;
    char now[32], err[256];
    rfc3339((long long)time(NULL), now, sizeof now);
    long long generation = json_int_at(tp, "metadata.generation", 0);
    struct trust_policy pol;
    int valid = trust_policy_parse(json_at(tp, "spec"), key, &pol, err, sizeof err) == 0;
    long long matched = 0;
    if (valid) {
        struct match_ctx mc = {&pol, json_str_at(tp, "metadata.namespace"), 0};
        if (informer_foreach(c->agents, count_match, &mc) != 0)
            log_error("policy", "%s: out of memory counting matched agents", key);
        matched = mc.matched;
        trust_policy_free(&pol);
    }
    json_t *old = json_at(tp, "status");
    json_t *conds = json_is_array(json_at(old, "conditions")) ? json_deep_copy(json_at(old, "conditions"))
                                                              : json_array();
    char msg[300];
    snprintf(msg, sizeof msg, "selects %lld agent(s)", matched);
    conditions_set(conds, "Ready", valid, valid ? "Valid" : "InvalidSpec", valid ? msg : err, generation, now);
    json_t *want = json_pack("{s:I, s:I, s:o}", "matchedAgents", (json_int_t)matched, "observedGeneration",
                             (json_int_t)generation, "conditions", conds);
    int rc = 0;
    if (!json_equal(want, old)) {
        json_t *patch = json_pack("{s:O}", "status", want);
        struct kube_result r = {0};
        char ns[AGENT_NS_MAX], name[AGENT_NAME_MAX];
        informer_split_key(key, ns, sizeof ns, name, sizeof name);
        rc = kube_patch(c->client, &GVR_TRUSTPOLICIES, ns, name, "status", KUBE_PATCH_MERGE, patch, NULL, 0, &r);
        if (rc != 0) log_warn("policy", "%s: status: %s %s", key, r.reason, r.message);
        else if (!valid) events_record(c->events, tp, "Warning", "InvalidSpec", "%s", err);
        kube_result_free(&r);
        json_decref(patch);
    }
    json_decref(want);
    json_decref(tp);
    return rc;
}
