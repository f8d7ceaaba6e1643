/* inject.c — the sidecar injection decision and its JSON Patch (see inject.h).
 *
 * The patch is a list of small "add" operations against the pod as the API
 * server sent it: whole maps/arrays are created when missing, otherwise
 * entries are appended ("/-") or set one key at a time, so fields written by
 * other webhooks or the user are never replaced. Operations on app
 * initContainers come before the native sidecar is inserted at index 0, so
 * their indices are still those of the original pod. */
#include "webhook/inject.h"

#include "common/json.h"
#include "webhook/json_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Patch under construction; `oom` latches the first allocation failure so
 * the builders stay linear instead of checking every jansson call. */
struct builder {
    json_t *ops;
    json_t *add;            /* the string "add", shared by every operation */
    json_t *warnings;
    json_t *rec_env, *rec_containers, *rec_volumes, *rec_labels;  /* the record */
    int oom;
};

static const char *const system_namespaces[] = {"kube-system", "kube-public", "kube-node-lease"};

/* JSON Pointer: base + "/" + key with '~' → "~0" and '/' → "~1" (RFC 6901). */
static int ptr_join(char *out, size_t cap, const char *base, const char *key) {
    size_t n = strlen(base);
    if (n + 2 > cap) return -1;
    memmove(out, base, n);
    out[n++] = '/';
    for (const char *k = key; *k; k++) {
        const char *rep = *k == '~' ? "~0" : *k == '/' ? "~1" : NULL;
        size_t need = rep ? 2 : 1;
        if (n + need + 1 > cap) return -1;
        if (rep) {
            out[n++] = rep[0];
            out[n++] = rep[1];
        } else {
            out[n++] = *k;
        }
    }
    out[n] = '\0';
    return 0;
}

static void note(struct builder *b, int rc) {
    if (rc != 0) b->oom = 1;
}

/* Sets o[key] = v and returns o; steals both, NULL when either is NULL or
 * on OOM. Builds the small objects of every request without json_pack,
 * whose format parsing and checks were a third of inject_pod's time. */
static json_t *with(json_t *o, const char *key, json_t *v) {
    if (!o || json_object_set_new_nocheck(o, key, v) != 0) {   /* frees v on failure */
        json_decref(o);
        if (!o) json_decref(v);
        return NULL;
    }
    return o;
}

/* Appends {"op":"add","path":path,"value":value}; steals value. */
static void op_add(struct builder *b, const char *path, json_t *value) {
    json_t *op = with(with(with(json_object(), "op", json_incref(b->add)), "path",
                           json_string(path)),
                      "value", value);
    if (!op) b->oom = 1;
    note(b, json_array_append_new(b->ops, op));
}

static void record(struct builder *b, json_t *list, const char *name) {
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) if (strcmp(json_string_value(v), name) == 0) return;
    note(b, json_array_append_new(list, json_string(name)));
}

/* Appends `items` (stolen array) to the array at `path` inside `existing`
 * (the current value there, possibly NULL): one op creating the array when
 * missing, else one "/-" op per item. */
static void append_items(struct builder *b, const char *path, const json_t *existing,
                         json_t *items) {
    if (!items) {
        b->oom = 1;
        return;
    }
    if (json_array_size(items) == 0) {
        json_decref(items);
        return;
    }
    if (!json_is_array(existing)) {
        op_add(b, path, items);
        return;
    }
    char p[512];
    if (ptr_join(p, sizeof p, path, "-") != 0) {
        b->oom = 1;
        json_decref(items);
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(items, i, v) op_add(b, p, json_incref(v));
    json_decref(items);
}

/* Sets string entries of the map at `path` (labels, annotations) whose
 * current value differs: the whole map when missing, else key by key. */
static void set_entries(struct builder *b, const char *path, const json_t *existing,
                        json_t *entries) {
    if (!entries) {
        b->oom = 1;
        return;
    }
    if (!json_is_object(existing)) {
        op_add(b, path, entries);
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(entries, k, v) {
        const char *cur = json_string_value(json_object_get(existing, k));
        if (cur && strcmp(cur, json_string_value(v)) == 0) continue;
        char p[512];
        if (ptr_join(p, sizeof p, path, k) != 0) {
            b->oom = 1;
            break;
        }
        op_add(b, p, json_incref(v));
    }
    json_decref(entries);
}

/* Member of a list whose "name" equals `name`, or NULL. */
static const json_t *by_name(const json_t *list, const char *name) {
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        const char *n = json_string_value(json_object_get(v, "name"));
        if (n && strcmp(n, name) == 0) return v;
    }
    return NULL;
}

static int has_sidecar(const json_t *pod) {
    return by_name(json_at(pod, "spec.containers"), INJECT_SIDECAR_NAME) ||
           by_name(json_at(pod, "spec.initContainers"), INJECT_SIDECAR_NAME) ||
           json_object_get(json_at(pod, "metadata.annotations"), INJECT_ANNOTATION_RECORD);
}

static const char *label(const json_t *labels, const char *key) {
    return json_string_value(json_object_get(labels, key));
}

static int streq(const char *a, const char *b) {
    return a && b && strcmp(a, b) == 0;
}

static const char *pod_namespace(const struct inject_input *in) {
    if (in->namespace && in->namespace[0]) return in->namespace;
    const char *ns = json_str_at(in->pod, "metadata.namespace");
    return ns ? ns : "";
}

/* The API server decodes pods into typed objects before calling us, so this
 * only guards against callers (and fuzzers) sending shapes no pod has: we
 * patch inside every container, which needs each to be an object. */
static int containers_ok(const json_t *pod) {
    const json_t *c = json_at(pod, "spec.containers"), *ic = json_at(pod, "spec.initContainers");
    size_t i;
    json_t *v;
    if (json_array_size(c) == 0 || (ic && !json_is_array(ic))) return 0;
    json_array_foreach(c, i, v) if (!json_is_object(v)) return 0;
    json_array_foreach(ic, i, v) if (!json_is_object(v)) return 0;
    return 1;
}

const char *inject_precheck(const struct inject_input *in, const struct inject_options *o) {
    const char *ns = pod_namespace(in);
    for (size_t i = 0; i < sizeof system_namespaces / sizeof *system_namespaces; i++)
        if (strcmp(ns, system_namespaces[i]) == 0) return INJECT_SKIP_SYSTEM_NS;
    if (streq(ns, o->operator_namespace)) return INJECT_SKIP_SYSTEM_NS;
    if (json_bool_at(in->pod, "spec.hostNetwork", 0)) return INJECT_SKIP_HOST_NETWORK;
    const char *opt = label(json_at(in->pod, "metadata.labels"), INJECT_LABEL_OPT);
    if (streq(opt, "false")) return INJECT_SKIP_OPTED_OUT;
    int opted_in = streq(opt, "true") ||
                   streq(label(in->namespace_labels, INJECT_LABEL_OPT), "enabled") ||
                   streq(label(in->namespace_labels, "agentmesh-inject"), "enabled");
    if (!opted_in) return INJECT_SKIP_NOT_OPTED_IN;
    if (has_sidecar(in->pod)) return INJECT_SKIP_ALREADY;
    if (!containers_ok(in->pod)) return INJECT_SKIP_INVALID_POD;
    return NULL;
}

const char *inject_agent_key(const json_t *pod, int *by_service_account) {
    const char *a = label(json_at(pod, "metadata.annotations"), INJECT_ANNOTATION_AGENT);
    if (a && a[0]) {
        *by_service_account = 0;
        return a;
    }
    *by_service_account = 1;
    const char *sa = json_str_at(pod, "spec.serviceAccountName");
    if (!sa || !sa[0]) sa = json_str_at(pod, "spec.serviceAccount");  /* deprecated alias */
    return sa && sa[0] ? sa : "default";
}

const char *inject_identity_sa(const json_t *identity) {
    const char *sa = json_str_at(identity, "spec.serviceAccountName");
    return sa && sa[0] ? sa : json_str_at(identity, "metadata.name");
}

/* What an injection adds, worked out once from the identity. */
struct plan {
    const char *agent, *ns, *did;
    int native;
    json_t *app_env;        /* env for app containers */
    json_t *app_mounts;     /* volumeMounts for app containers */
    json_t *volumes;        /* pod volumes */
    json_t *labels;         /* pod labels */
};

static json_t *env_var(const char *name, const char *value) {
    return with(with(json_object(), "name", json_string(name)), "value", json_string(value));
}

static void push(struct builder *b, json_t *list, json_t *item) {
    note(b, json_array_append_new(list, item));
}

/* The EKS pod-identity webhook's additions for AWS with injectToken. */
static void plan_aws(struct builder *b, struct plan *p, const json_t *aws) {
    const char *arn = json_str_at(aws, "roleArn");
    if (!arn || !json_bool_at(aws, "injectToken", 0)) return;
    const char *aud = json_str_at(aws, "audience");
    long long exp = json_int_at(aws, "tokenExpirationSeconds", 86400);
    push(b, p->volumes,
         json_pack("{s:s, s:{s:[{s:{s:s, s:I, s:s}}]}}", "name", INJECT_AWS_VOLUME, "projected",
                   "sources", "serviceAccountToken", "audience", aud ? aud : "sts.amazonaws.com",
                   "expirationSeconds", (json_int_t)exp, "path", "token"));
    if (json_bool_at(aws, "stsRegionalEndpoints", 0))
        push(b, p->app_env, env_var("AWS_STS_REGIONAL_ENDPOINTS", "regional"));
    push(b, p->app_env, env_var("AWS_ROLE_ARN", arn));
    push(b, p->app_env, env_var("AWS_WEB_IDENTITY_TOKEN_FILE", INJECT_AWS_TOKEN_DIR "/token"));
    push(b, p->app_mounts,
         json_pack("{s:s, s:b, s:s}", "name", INJECT_AWS_VOLUME, "readOnly", 1, "mountPath",
                   INJECT_AWS_TOKEN_DIR));
}

static int plan_make(struct builder *b, struct plan *p, const struct inject_input *in,
                     const struct inject_options *o) {
    p->agent = json_str_at(in->identity, "metadata.name");
    p->ns = pod_namespace(in);
    p->did = json_str_at(in->identity, "status.did");
    p->native = o->api_minor >= 29;
    p->app_env = json_array();
    p->app_mounts = json_array();
    p->volumes = json_array();
    p->labels = json_object();
    if (!p->app_env || !p->app_mounts || !p->volumes || !p->labels) return -1;
    push(b, p->app_env, env_var("AGENTMESH_PROXY_URL", INJECT_PROXY_URL));
    if (p->did) push(b, p->app_env, env_var("AGENTMESH_DID", p->did));
    push(b, p->app_env, env_var("AGENTMESH_AGENT", p->agent));
    char secret[320];
    snprintf(secret, sizeof secret, "%s-agentmesh-identity", p->agent);
    push(b, p->volumes,
         json_pack("{s:s, s:{s:s}}", "name", INJECT_IDENTITY_VOLUME, "secret", "secretName", secret));
    note(b, json_object_set_new(p->labels, INJECT_LABEL_AGENT, json_string(p->agent)));
    if (json_is_object(json_at(in->identity, "spec.cloud.azure")))
        note(b, json_object_set_new(p->labels, "azure.workload.identity/use", json_string("true")));
    plan_aws(b, p, json_at(in->identity, "spec.cloud.aws"));
    return b->oom ? -1 : 0;
}

static void plan_free(struct plan *p) {
    json_decref(p->app_env);
    json_decref(p->app_mounts);
    json_decref(p->volumes);
    json_decref(p->labels);
}

/* The EKS webhook adds its role/token pair only when neither is set. */
static int env_blocked(const json_t *env, const char *name) {
    if (by_name(env, name)) return 1;
    if (strcmp(name, "AWS_ROLE_ARN") == 0) return by_name(env, "AWS_WEB_IDENTITY_TOKEN_FILE") != NULL;
    if (strcmp(name, "AWS_WEB_IDENTITY_TOKEN_FILE") == 0) return by_name(env, "AWS_ROLE_ARN") != NULL;
    return 0;
}

/* Warns when a container keeps its own value of a variable we would set. */
static void warn_kept(struct builder *b, const char *cname, const json_t *have, const json_t *want) {
    if (!have) return;
    const char *hv = json_string_value(json_object_get(have, "value"));
    const char *wv = json_string_value(json_object_get(want, "value"));
    if (streq(hv, wv)) return;
    push(b, b->warnings,
         json_stringf("container %.63s: env %s already set, left unchanged", cname,
                      json_string_value(json_object_get(want, "name"))));
}

static int mount_taken(const json_t *mounts, const json_t *m) {
    const char *path = json_string_value(json_object_get(m, "mountPath"));
    size_t i;
    json_t *v;
    if (by_name(mounts, json_string_value(json_object_get(m, "name")))) return 1;
    json_array_foreach(mounts, i, v) if (streq(json_string_value(json_object_get(v, "mountPath")), path)) return 1;
    return 0;
}

/* Env and mounts for one app container at `base` ("/spec/containers/0"). */
static void patch_container(struct builder *b, const struct plan *p, const char *base,
                            const json_t *c) {
    const char *cname = json_string_value(json_object_get(c, "name"));
    const json_t *env = json_object_get(c, "env");
    const json_t *mounts = json_object_get(c, "volumeMounts");
    json_t *add_env = json_array(), *add_mounts = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(p->app_env, i, v) {
        const char *name = json_string_value(json_object_get(v, "name"));
        if (env_blocked(env, name)) {
            warn_kept(b, cname ? cname : "?", by_name(env, name), v);
            continue;
        }
        push(b, add_env, json_incref(v));
        record(b, b->rec_env, name);
    }
    json_array_foreach(p->app_mounts, i, v) if (!mount_taken(mounts, v))
        push(b, add_mounts, json_incref(v));
    if (json_array_size(add_env) + json_array_size(add_mounts) > 0 && cname)
        record(b, b->rec_containers, cname);
    char path[512];
    snprintf(path, sizeof path, "%s/env", base);
    append_items(b, path, env, add_env);
    snprintf(path, sizeof path, "%s/volumeMounts", base);
    append_items(b, path, mounts, add_mounts);
}

static void patch_containers(struct builder *b, const struct plan *p, const json_t *pod,
                             const char *field) {
    const json_t *list = json_object_get(json_object_get(pod, "spec"), field);
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c) {
        char base[64];
        snprintf(base, sizeof base, "/spec/%s/%zu", field, i);
        patch_container(b, p, base, c);
    }
}

static json_t *sidecar_container(const struct plan *p, const struct inject_options *o) {
    json_t *env = json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]", "name", "AGENTMESH_AGENT",
                            "value", p->agent, "name", "AGENTMESH_NAMESPACE", "value", p->ns,
                            "name", "AGENTMESH_IDENTITY_DIR", "value", INJECT_IDENTITY_DIR);
    if (!env) return NULL;
    if (p->did && json_array_append_new(env, env_var("AGENTMESH_DID", p->did)) != 0) {
        json_decref(env);
        return NULL;
    }
    if (o->controller_url && o->controller_url[0] &&
        json_array_append_new(env, env_var("AGENTMESH_CONTROLLER_URL", o->controller_url)) != 0) {
        json_decref(env);
        return NULL;
    }
    json_t *c = json_pack(
        "{s:s, s:s, s:s, s:o,"
        " s:[{s:s, s:s, s:b}],"
        " s:{s:{s:s, s:s}, s:{s:s, s:s}},"
        " s:{s:b, s:I, s:I, s:b, s:b, s:{s:[s]}, s:{s:s}}}",
        "name", INJECT_SIDECAR_NAME, "image", o->sidecar_image ? o->sidecar_image : "agentmesh-sidecar",
        "imagePullPolicy", "IfNotPresent", "env", env,
        "volumeMounts", "name", INJECT_IDENTITY_VOLUME, "mountPath", INJECT_IDENTITY_DIR,
        "readOnly", 1,
        "resources", "requests", "cpu", "10m", "memory", "16Mi", "limits", "cpu", "200m", "memory",
        "64Mi",
        "securityContext", "runAsNonRoot", 1, "runAsUser", (json_int_t)65532, "runAsGroup",
        (json_int_t)65532, "readOnlyRootFilesystem", 1, "allowPrivilegeEscalation", 0,
        "capabilities", "drop", "ALL", "seccompProfile", "type", "RuntimeDefault");
    if (c && p->native && json_object_set_new(c, "restartPolicy", json_string("Always")) != 0) {
        json_decref(c);
        return NULL;
    }
    return c;
}

/* Native: first initContainer (starts before, and outlives, the app's
 * init containers). Else: last regular container, so the pod's default
 * container (kubectl exec/logs) stays the app's. */
static void add_sidecar(struct builder *b, const struct plan *p, const json_t *pod,
                        const struct inject_options *o) {
    json_t *sc = sidecar_container(p, o);
    if (!sc) {
        b->oom = 1;
        return;
    }
    if (!p->native) {
        append_items(b, "/spec/containers", json_at(pod, "spec.containers"), json_pack("[o]", sc));
        return;
    }
    if (json_is_array(json_at(pod, "spec.initContainers")))
        op_add(b, "/spec/initContainers/0", sc);
    else
        op_add(b, "/spec/initContainers", json_pack("[o]", sc));
}

static void add_metadata(struct builder *b, const struct plan *p, const json_t *pod) {
    const json_t *md = json_object_get(pod, "metadata");
    if (!json_is_object(md)) {
        op_add(b, "/metadata", json_object());
        md = NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(p->labels, k, v) record(b, b->rec_labels, k);
    set_entries(b, "/metadata/labels", json_object_get(md, "labels"), json_deep_copy(p->labels));
    json_t *rec = json_pack("{s:s, s:O, s:O, s:O, s:s, s:O}", "agent", p->agent, "containers",
                            b->rec_containers, "env", b->rec_env, "labels", b->rec_labels,
                            "sidecar", p->native ? "native" : "container", "volumes",
                            b->rec_volumes);
    /* Keys above are in sorted order, so this is json_compact()'s text. */
    struct json_text t = {0};
    if (rec) json_text_value(&t, rec);
    else t.oom = 1;
    char *text = json_text_finish(&t);
    json_decref(rec);
    set_entries(b, "/metadata/annotations", json_object_get(md, "annotations"),
                text ? json_pack("{s:s}", INJECT_ANNOTATION_RECORD, text) : NULL);
    free(text);
}

static void add_volumes(struct builder *b, const struct plan *p, const json_t *pod) {
    const json_t *have = json_at(pod, "spec.volumes");
    json_t *add = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(p->volumes, i, v) {
        const char *name = json_string_value(json_object_get(v, "name"));
        if (by_name(have, name)) continue;
        push(b, add, json_incref(v));
        record(b, b->rec_volumes, name);
    }
    append_items(b, "/spec/volumes", have, add);
}

static void build(struct builder *b, const struct inject_input *in, const struct inject_options *o) {
    struct plan p = {0};
    if (plan_make(b, &p, in, o) == 0) {
        if (!p.did)
            push(b, b->warnings,
                 json_stringf("AgentIdentity %.63s has no DID yet; AGENTMESH_DID not set", p.agent));
        add_volumes(b, &p, in->pod);
        patch_containers(b, &p, in->pod, "containers");
        patch_containers(b, &p, in->pod, "initContainers");
        add_sidecar(b, &p, in->pod, o);
        add_metadata(b, &p, in->pod);
    }
    plan_free(&p);
}

static void warn_no_identity(struct builder *b, const json_t *pod, const char *ns) {
    int by_sa;
    const char *key = inject_agent_key(pod, &by_sa);
    push(b, b->warnings,
         by_sa ? json_stringf("no AgentIdentity uses service account %.63s in namespace %.63s; "
                              "pod admitted without the agentmesh sidecar", key, ns)
               : json_stringf("AgentIdentity %.63s (annotation " INJECT_ANNOTATION_AGENT
                              ") not found in namespace %.63s; pod admitted without the "
                              "agentmesh sidecar", key, ns));
}

int inject_pod(const struct inject_input *in, const struct inject_options *o,
               struct inject_result *out) {
    struct builder b = {.ops = json_array(), .warnings = json_array(), .rec_env = json_array(),
                        .rec_containers = json_array(), .rec_volumes = json_array(),
                        .rec_labels = json_array(), .add = json_string("add")};
    b.oom = !b.ops || !b.warnings || !b.rec_env || !b.rec_containers || !b.rec_volumes ||
            !b.rec_labels || !b.add;
    memset(out, 0, sizeof *out);
    if (!b.oom) {
        out->skip = inject_precheck(in, o);
        if (!out->skip && !json_str_at(in->identity, "metadata.name")) {
            out->skip = INJECT_SKIP_NO_IDENTITY;
            warn_no_identity(&b, in->pod, pod_namespace(in));
        }
        if (!out->skip) build(&b, in, o);
    }
    json_decref(b.rec_env);
    json_decref(b.rec_containers);
    json_decref(b.rec_volumes);
    json_decref(b.rec_labels);
    json_decref(b.add);
    out->patch = b.ops;
    out->warnings = b.warnings;
    if (b.oom) {
        inject_result_free(out);
        return -1;
    }
    return 0;
}

void inject_result_free(struct inject_result *r) {
    if (!r) return;
    json_decref(r->patch);
    json_decref(r->warnings);
    memset(r, 0, sizeof *r);
}
