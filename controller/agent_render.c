/* agent_render.c — desired children of an AgentIdentity (see agent_render.h). */
#include "controller/agent_render.h"

#include "common/json.h"
#include "controller/trust_engine.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

const char *agent_sa_name(const json_t *agid) {
    const char *sa = json_str_at(agid, "spec.serviceAccountName");
    return sa && *sa ? sa : json_str_at(agid, "metadata.name");
}

/* "ns/value" into buf: 0, or -1 when a part is missing or it does not fit. */
static int ns_index_key(const json_t *obj, const char *value, char *buf, size_t buflen) {
    const char *ns = json_str_at(obj, "metadata.namespace");
    if (!ns || !value) return -1;
    int n = snprintf(buf, buflen, "%s/%s", ns, value);
    return n < 0 || (size_t)n >= buflen ? -1 : 0;
}

int agent_sa_index_key(const json_t *agid, char *buf, size_t buflen) {
    return ns_index_key(agid, agent_sa_name(agid), buf, buflen);
}

int agent_pod_index_key(const json_t *pod, char *buf, size_t buflen) {
    const char *agent = json_string_value(json_object_get(json_at(pod, "metadata.labels"), LABEL_AGENT));
    return ns_index_key(pod, agent, buf, buflen);
}

int agent_secret_name(const char *agent, char *buf, size_t buflen) {
    int n = snprintf(buf, buflen, "%s-agentmesh-identity", agent);
    return n < 0 || (size_t)n >= buflen ? -1 : 0;
}

int agent_netpol_name(const char *agent, char *buf, size_t buflen) {
    int n = snprintf(buf, buflen, "%s-agentmesh", agent);
    return n < 0 || (size_t)n >= buflen ? -1 : 0;
}

json_t *render_owner_refs(const json_t *agid) {
    return json_pack("[{s:s, s:s, s:s, s:s, s:b, s:b}]", "apiVersion", "agentmesh.io/v1alpha1",
                     "kind", "AgentIdentity", "name", json_str_at(agid, "metadata.name"), "uid",
                     json_str_at(agid, "metadata.uid") ? json_str_at(agid, "metadata.uid") : "",
                     "controller", 1, "blockOwnerDeletion", 1);
}

/* metadata for a child: name, namespace, our two labels. */
static json_t *child_metadata(const json_t *agid, const char *name) {
    return json_pack("{s:s, s:s, s:{s:s, s:s}}", "name", name, "namespace",
                     json_str_at(agid, "metadata.namespace"), "labels", LABEL_MANAGED_BY,
                     LABEL_MANAGED_BY_VALUE, LABEL_AGENT, json_str_at(agid, "metadata.name"));
}

/* The cloud bindings of DESIGN §3 as annotations (and Azure's label). */
static void add_cloud_binding(const json_t *agid, json_t *annotations, json_t *labels) {
    const json_t *aws = json_at(agid, "spec.cloud.aws");
    const json_t *azure = json_at(agid, "spec.cloud.azure");
    const json_t *gcp = json_at(agid, "spec.cloud.gcp");
    if (json_is_object(aws)) {
        const char *arn = json_str_at(aws, "roleArn");
        const char *aud = json_str_at(aws, "audience");
        if (arn) json_object_set_new(annotations, "eks.amazonaws.com/role-arn", json_string(arn));
        if (aud) json_object_set_new(annotations, "eks.amazonaws.com/audience", json_string(aud));
        json_t *regional = json_at(aws, "stsRegionalEndpoints");
        if (json_is_boolean(regional))
            json_object_set_new(annotations, "eks.amazonaws.com/sts-regional-endpoints",
                                json_string(json_is_true(regional) ? "true" : "false"));
        long long exp = json_int_at(aws, "tokenExpirationSeconds", 0);
        if (exp > 0)
            json_object_set_new(annotations, "eks.amazonaws.com/token-expiration",
                                json_stringf("%lld", exp));
    }
    if (json_is_object(azure)) {
        const char *client = json_str_at(azure, "clientId");
        const char *tenant = json_str_at(azure, "tenantId");
        if (client)
            json_object_set_new(annotations, "azure.workload.identity/client-id", json_string(client));
        if (tenant)
            json_object_set_new(annotations, "azure.workload.identity/tenant-id", json_string(tenant));
        json_object_set_new(labels, "azure.workload.identity/use", json_string("true"));
    }
    if (json_is_object(gcp)) {
        const char *sa = json_str_at(gcp, "serviceAccount");
        if (sa) json_object_set_new(annotations, "iam.gke.io/gcp-service-account", json_string(sa));
    }
}

json_t *render_service_account(const json_t *agid, int preexisting) {
    json_t *meta = child_metadata(agid, agent_sa_name(agid));
    json_t *annotations = json_object();
    add_cloud_binding(agid, annotations, json_object_get(meta, "labels"));
    if (preexisting) json_object_set_new(annotations, ANNOTATION_PREEXISTING, json_string("true"));
    else json_object_set_new(meta, "ownerReferences", render_owner_refs(agid));
    if (json_object_size(annotations)) json_object_set_new(meta, "annotations", annotations);
    else json_decref(annotations);
    return json_pack("{s:s, s:s, s:o}", "apiVersion", "v1", "kind", "ServiceAccount", "metadata", meta);
}

json_t *render_service_account_release(const char *ns, const char *name) {
    return json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind", "ServiceAccount",
                     "metadata", "name", name, "namespace", ns);
}

static json_t *agent_pod_selector(const char *agent) {
    return json_pack("{s:{s:s}}", "matchLabels", LABEL_AGENT, agent);
}

/* Ingress sources: agent pods (any namespace) whose tier label meets the bar,
 * allowed namespaces, the controller. */
static json_t *ingress_rules(const struct netpol_inputs *in) {
    json_t *from = json_array();
    json_t *tiers = json_array();
    for (int t = in->min_tier; t < TRUST_TIER_COUNT; t++)
        json_array_append_new(tiers, json_string(trust_tier_name((enum trust_tier)t)));
    json_array_append_new(from, json_pack("{s:{}, s:{s:[{s:s, s:s}, {s:s, s:s, s:o}]}}", "namespaceSelector",
                                          "podSelector", "matchExpressions", "key", LABEL_AGENT, "operator",
                                          "Exists", "key", LABEL_TIER, "operator", "In", "values", tiers));
    if (json_is_object(in->allow_from_namespaces))
        json_array_append_new(from, json_pack("{s:O}", "namespaceSelector", in->allow_from_namespaces));
    /* kubernetes.io/metadata.name is set automatically from 1.21; on 1.20 label the operator namespace. */
    json_array_append_new(from, json_pack("{s:{s:{s:s}}, s:{s:{s:s}}}", "namespaceSelector",
                                          "matchLabels", "kubernetes.io/metadata.name",
                                          in->operator_namespace, "podSelector", "matchLabels",
                                          "app.kubernetes.io/name", "agentmesh-controller"));
    return json_pack("[{s:o}]", "from", from);
}

/* Quarantine egress: DNS anywhere, and the controller API. */
static json_t *quarantine_egress(const struct netpol_inputs *in) {
    return json_pack("[{s:[{s:s, s:i}, {s:s, s:i}]}, {s:[{s:{s:{s:s}}, s:{s:{s:s}}}], s:[{s:s, s:i}]}]",
                     "ports", "protocol", "UDP", "port", 53, "protocol", "TCP", "port", 53,
                     "to", "namespaceSelector", "matchLabels", "kubernetes.io/metadata.name",
                     in->operator_namespace, "podSelector", "matchLabels", "app.kubernetes.io/name",
                     "agentmesh-controller", "ports", "protocol", "TCP", "port",
                     in->controller_api_port);
}

json_t *render_network_policy(const json_t *agid, const struct netpol_inputs *in) {
    const char *agent = json_str_at(agid, "metadata.name");
    char name[300];
    if (agent_netpol_name(agent, name, sizeof name) != 0) return NULL;
    json_t *meta = child_metadata(agid, name);
    json_object_set_new(meta, "ownerReferences", render_owner_refs(agid));
    json_t *spec = json_pack("{s:o}", "podSelector", agent_pod_selector(agent));
    if (in->quarantined) {
        /* Ingress listed in policyTypes with no ingress rules = deny all. No
         * `ingress: []`: the API server drops empty lists, and what we render
         * must equal what it stores, or every reconcile would re-apply. */
        json_object_set_new(spec, "policyTypes", json_pack("[s,s]", "Ingress", "Egress"));
        json_object_set_new(spec, "egress", quarantine_egress(in));
    } else {
        json_object_set_new(spec, "policyTypes", json_pack("[s]", "Ingress"));
        json_object_set_new(spec, "ingress", ingress_rules(in));
    }
    return json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "networking.k8s.io/v1", "kind",
                     "NetworkPolicy", "metadata", meta, "spec", spec);
}

void conditions_set(json_t *conds, const char *type, int status, const char *reason,
                    const char *message, long long generation, const char *now) {
    const char *st = status ? "True" : "False";
    size_t i;
    json_t *c;
    json_array_foreach(conds, i, c) {
        const char *t = json_str_at(c, "type");
        if (!t || strcmp(t, type) != 0) continue;
        const char *old = json_str_at(c, "status");
        if (!old || strcmp(old, st) != 0) json_object_set_new(c, "lastTransitionTime", json_string(now));
        json_object_set_new(c, "status", json_string(st));
        json_object_set_new(c, "reason", json_string(reason));
        json_object_set_new(c, "message", json_string(message));
        json_object_set_new(c, "observedGeneration", json_integer(generation));
        return;
    }
    json_array_append_new(conds, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "type", type, "status",
                                           st, "reason", reason, "message", message,
                                           "observedGeneration", (json_int_t)generation,
                                           "lastTransitionTime", now));
}

int json_subset(const json_t *want, const json_t *have) {
    if (!have) return 0;
    if (json_is_object(want)) {
        if (!json_is_object(have)) return 0;
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)want, key, value) {
            if (!json_subset(value, json_object_get(have, key))) return 0;
        }
        return 1;
    }
    if (json_is_array(want)) {
        if (!json_is_array(have) || json_array_size(want) != json_array_size(have)) return 0;
        for (size_t i = 0; i < json_array_size(want); i++)
            if (!json_subset(json_array_get(want, i), json_array_get(have, i))) return 0;
        return 1;
    }
    return json_equal(want, have);
}

void rfc3339(long long unix_seconds, char *buf, size_t buflen) {
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, buflen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int rfc3339_parse(const char *s, long long *unix_seconds) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p) return -1;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') return -1;
        while (*p >= '0' && *p <= '9') p++;
    }
    long offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 || hh > 23 || mm > 59) return -1;
        offset = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p) return -1;
    *unix_seconds = (long long)timegm(&tm) - offset;
    return 0;
}
