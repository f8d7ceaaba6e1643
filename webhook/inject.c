/* inject.c — the sidecar injection decision and its JSON Patch (see inject.h).
 *
 * The patch is a list of small "add" operations against the pod as the API
 * server sent it: whole maps/arrays are created when missing, otherwise
 * entries are appended ("/-") or set one key at a time, so fields written by
 * other webhooks or the user are never replaced. Operations on app
 * initContainers come before the native sidecar is inserted at index 0, so
 * their indices are still those of the original pod.
 *
 * The patch is written as JSON text as it is decided, never as a jansson
 * tree: building, dumping and freeing the tree (~60 small allocations per
 * pod) was half of the webhook's CPU per request. What is added (env vars,
 * mounts, volumes, the sidecar) is rendered once per request into the
 * plan's text and copied into each operation that needs it. The text is
 * byte for byte what json_dumps(JSON_COMPACT) gave for the tree before
 * (test_inject.c holds it to the golden fixtures). */
#include "webhook/inject.h"

#include "common/json.h"
#include "webhook/json_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The decimal text of v, written at the end of buf: the integers of the
 * request path without a printf. */
static const char *decimal(long long v, char buf[24]) {
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    char *w = buf + 23;
    *w = '\0';
    do *--w = (char)('0' + u % 10); while ((u /= 10) > 0);
    if (v < 0) *--w = '-';
    return w;
}

/* A list of borrowed names without duplicates, for the injected record.
 * Small lists (all but a pod's containers) stay in `small`. */
struct names {
    const char **v;
    size_t n, cap;
    const char *small[8];
};

/* Patch under construction; an allocation failure is latched in `oom` (or
 * in the text's own flag) so the builders stay linear. */
struct builder {
    struct json_text *text; /* "[op,op,..." until finished */
    struct json_text *record;
    size_t ops;
    json_t *warnings;
    struct names rec_env, rec_containers, rec_volumes, rec_labels;
    int oom;
};

static void names_init(struct names *l) {
    l->v = l->small;
    l->n = 0;
    l->cap = sizeof l->small / sizeof *l->small;
}

static void names_free(struct names *l) {
    if (l->v != l->small) free(l->v);
}

static void record(struct builder *b, struct names *l, const char *name) {
    for (size_t i = 0; i < l->n; i++) if (strcmp(l->v[i], name) == 0) return;
    if (l->n == l->cap) {
        const char **v = malloc(2 * l->cap * sizeof *v);
        if (!v) {
            b->oom = 1;
            return;
        }
        memcpy(v, l->v, l->n * sizeof *v);
        names_free(l);
        l->v = v;
        l->cap *= 2;
    }
    l->v[l->n++] = name;
}

static void put_str(struct json_text *t, const char *s) {
    json_text_string(t, s, strlen(s));
}

static void put_names(struct json_text *t, const struct names *l) {
    json_text_raw(t, "[");
    for (size_t i = 0; i < l->n; i++) {
        if (i) json_text_raw(t, ",");
        put_str(t, l->v[i]);
    }
    json_text_raw(t, "]");
}

/* Appends a warning; names in it are cut to 63 bytes at a character
 * boundary by the caller's "%.63s" through clip(). */
static void warn(struct builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct builder *b, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (json_array_append_new(b->warnings, json_string(buf)) != 0) b->oom = 1;
}

/* `s` cut to at most 63 bytes without splitting a UTF-8 character, so a
 * warning naming a long non-ASCII name is still valid text. */
static const char *clip(const char *s, char out[64]) {
    size_t n = strnlen(s, 63);
    if (s[n]) while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

/* Opens {"op":"add","path":<path>,"value": — the caller writes the value
 * and closes with op_end. */
static void op_begin(struct builder *b, const char *path) {
    json_text_raw(b->text, b->ops++ ? ",{\"op\":\"add\",\"path\":" : "{\"op\":\"add\",\"path\":");
    put_str(b->text, path);
    json_text_raw(b->text, ",\"value\":");
}

static void op_end(struct builder *b) {
    json_text_raw(b->text, "}");
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


/* What an injection adds, worked out once from the identity. Every value
 * is rendered into `text`; an item is a name and the place of its value. */
#define PLAN_MAX 8

struct item {
    const char *name;
    const char *value;      /* env: its value; mount: its mountPath */
    size_t off, len;        /* the JSON value in plan.text */
};

struct plan {
    const char *agent, *ns, *did;
    int native;
    struct json_text *text;
    struct item env[PLAN_MAX], mounts[PLAN_MAX], volumes[PLAN_MAX];
    size_t n_env, n_mounts, n_volumes;
    struct item labels[2];  /* name = key, value = label value */
    size_t n_labels;
    struct item sidecar;    /* the container */
};

/* Starts an item in `list`; its value is whatever is written to p->text
 * until item_end. */
static struct item *item_begin(struct plan *p, struct item *list, size_t *n, const char *name,
                               const char *value) {
    struct item *it = &list[(*n)++];
    *it = (struct item){.name = name, .value = value, .off = p->text->n};
    return it;
}

static void item_end(struct plan *p, struct item *it) {
    it->len = p->text->n - it->off;
}

static void put_item(struct json_text *t, const struct plan *p, const struct item *it) {
    json_text_add(t, p->text->p + it->off, it->len);
}

/* {"name":name,"value":value}: an env var. */
static void put_env(struct json_text *t, const char *name, const char *value) {
    json_text_raw(t, "{\"name\":");
    put_str(t, name);
    json_text_raw(t, ",\"value\":");
    put_str(t, value);
    json_text_raw(t, "}");
}

static void env_var(struct plan *p, const char *name, const char *value) {
    struct item *it = item_begin(p, p->env, &p->n_env, name, value);
    put_env(p->text, name, value);
    item_end(p, it);
}

/* The EKS pod-identity webhook's additions for AWS with injectToken. */
static void plan_aws(struct plan *p, const json_t *aws) {
    const char *arn = json_str_at(aws, "roleArn");
    if (!arn || !json_bool_at(aws, "injectToken", 0)) return;
    const char *aud = json_str_at(aws, "audience");
    char exp[24];
    struct item *v = item_begin(p, p->volumes, &p->n_volumes, INJECT_AWS_VOLUME, NULL);
    json_text_raw(p->text, "{\"name\":\"" INJECT_AWS_VOLUME "\",\"projected\":{\"sources\":"
                           "[{\"serviceAccountToken\":{\"audience\":");
    put_str(p->text, aud ? aud : "sts.amazonaws.com");
    json_text_raw(p->text, ",\"expirationSeconds\":");
    json_text_raw(p->text, decimal(json_int_at(aws, "tokenExpirationSeconds", 86400), exp));
    json_text_raw(p->text, ",\"path\":\"token\"}}]}}");
    item_end(p, v);
    if (json_bool_at(aws, "stsRegionalEndpoints", 0))
        env_var(p, "AWS_STS_REGIONAL_ENDPOINTS", "regional");
    env_var(p, "AWS_ROLE_ARN", arn);
    env_var(p, "AWS_WEB_IDENTITY_TOKEN_FILE", INJECT_AWS_TOKEN_DIR "/token");
    struct item *m = item_begin(p, p->mounts, &p->n_mounts, INJECT_AWS_VOLUME, INJECT_AWS_TOKEN_DIR);
    json_text_raw(p->text, "{\"name\":\"" INJECT_AWS_VOLUME "\",\"readOnly\":true,"
                           "\"mountPath\":\"" INJECT_AWS_TOKEN_DIR "\"}");
    item_end(p, m);
}

static void plan_sidecar(struct plan *p, const struct inject_options *o) {
    struct json_text *t = p->text;
    p->sidecar = (struct item){.name = INJECT_SIDECAR_NAME, .off = t->n};
    json_text_raw(t, "{\"name\":\"" INJECT_SIDECAR_NAME "\",\"image\":");
    put_str(t, o->sidecar_image ? o->sidecar_image : "agentmesh-sidecar");
    json_text_raw(t, ",\"imagePullPolicy\":\"IfNotPresent\",\"env\":[");
    put_env(t, "AGENTMESH_AGENT", p->agent);
    json_text_raw(t, ",");
    put_env(t, "AGENTMESH_NAMESPACE", p->ns);
    json_text_raw(t, ",");
    put_env(t, "AGENTMESH_IDENTITY_DIR", INJECT_IDENTITY_DIR);
    if (p->did) {
        json_text_raw(t, ",");
        put_env(t, "AGENTMESH_DID", p->did);
    }
    if (o->controller_url && o->controller_url[0]) {
        json_text_raw(t, ",");
        put_env(t, "AGENTMESH_CONTROLLER_URL", o->controller_url);
    }
    json_text_raw(t, "],\"volumeMounts\":[{\"name\":\"" INJECT_IDENTITY_VOLUME "\",\"mountPath\":\""
                     INJECT_IDENTITY_DIR "\",\"readOnly\":true}],"
                     "\"resources\":{\"requests\":{\"cpu\":\"10m\",\"memory\":\"16Mi\"},"
                     "\"limits\":{\"cpu\":\"200m\",\"memory\":\"64Mi\"}},"
                     "\"securityContext\":{\"runAsNonRoot\":true,\"runAsUser\":65532,"
                     "\"runAsGroup\":65532,\"readOnlyRootFilesystem\":true,"
                     "\"allowPrivilegeEscalation\":false,\"capabilities\":{\"drop\":[\"ALL\"]},"
                     "\"seccompProfile\":{\"type\":\"RuntimeDefault\"}}");
    json_text_raw(t, p->native ? ",\"restartPolicy\":\"Always\"}" : "}");
    item_end(p, &p->sidecar);
}

static int plan_make(struct plan *p, const struct inject_input *in, const struct inject_options *o) {
    p->agent = json_str_at(in->identity, "metadata.name");
    p->ns = pod_namespace(in);
    p->did = json_str_at(in->identity, "status.did");
    p->native = o->api_minor >= 29;
    json_text_reserve(p->text, 2048);   /* all items, sidecar included, in one allocation */
    env_var(p, "AGENTMESH_PROXY_URL", INJECT_PROXY_URL);
    if (p->did) env_var(p, "AGENTMESH_DID", p->did);
    env_var(p, "AGENTMESH_AGENT", p->agent);
    struct item *v = item_begin(p, p->volumes, &p->n_volumes, INJECT_IDENTITY_VOLUME, NULL);
    json_text_raw(p->text, "{\"name\":\"" INJECT_IDENTITY_VOLUME "\",\"secret\":{\"secretName\":\"");
    json_text_chars(p->text, p->agent, strlen(p->agent));
    json_text_raw(p->text, "-agentmesh-identity\"}}");
    item_end(p, v);
    p->labels[p->n_labels++] = (struct item){.name = INJECT_LABEL_AGENT, .value = p->agent};
    if (json_is_object(json_at(in->identity, "spec.cloud.azure")))
        p->labels[p->n_labels++] = (struct item){.name = INJECT_LABEL_AZURE, .value = "true"};
    plan_aws(p, json_at(in->identity, "spec.cloud.aws"));
    plan_sidecar(p, o);
    return p->text->oom ? -1 : 0;
}

/* Appends the plan items `add` to the array at `path` inside `existing`
 * (the current value there, possibly NULL): one op creating the array when
 * missing, else one "/-" op per item. */
static void append_items(struct builder *b, const struct plan *p, const char *path,
                         const json_t *existing, const struct item *const *add, size_t n) {
    if (n == 0) return;
    if (!json_is_array(existing)) {
        op_begin(b, path);
        json_text_raw(b->text, "[");
        for (size_t i = 0; i < n; i++) {
            if (i) json_text_raw(b->text, ",");
            put_item(b->text, p, add[i]);
        }
        json_text_raw(b->text, "]");
        op_end(b);
        return;
    }
    char ptr[512];
    if (ptr_join(ptr, sizeof ptr, path, "-") != 0) {
        b->oom = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        op_begin(b, ptr);
        put_item(b->text, p, add[i]);
        op_end(b);
    }
}

/* append_items at base + "/" + member. */
static void append_member(struct builder *b, const struct plan *p, const char *base,
                          const char *member, const json_t *existing,
                          const struct item *const *add, size_t n) {
    char path[512];
    if (ptr_join(path, sizeof path, base, member) != 0) b->oom = 1;
    else append_items(b, p, path, existing, add, n);
}

/* Sets string entries (labels, annotations: name → value) of the map at
 * `path` whose current value differs: the whole map when missing, else key
 * by key. */
static void set_entries(struct builder *b, const char *path, const json_t *existing,
                        const struct item *e, size_t n) {
    if (!json_is_object(existing)) {
        op_begin(b, path);
        for (size_t i = 0; i < n; i++) {
            json_text_raw(b->text, i ? "," : "{");
            put_str(b->text, e[i].name);
            json_text_raw(b->text, ":");
            put_str(b->text, e[i].value);
        }
        json_text_raw(b->text, n ? "}" : "{}");
        op_end(b);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *cur = json_string_value(json_object_get(existing, e[i].name));
        if (cur && strcmp(cur, e[i].value) == 0) continue;
        char ptr[512];
        if (ptr_join(ptr, sizeof ptr, path, e[i].name) != 0) {
            b->oom = 1;
            return;
        }
        op_begin(b, ptr);
        put_str(b->text, e[i].value);
        op_end(b);
    }
}

/* The EKS webhook adds its role/token pair only when neither is set. */
static int env_blocked(const json_t *env, const char *name) {
    if (by_name(env, name)) return 1;
    if (strcmp(name, "AWS_ROLE_ARN") == 0) return by_name(env, "AWS_WEB_IDENTITY_TOKEN_FILE") != NULL;
    if (strcmp(name, "AWS_WEB_IDENTITY_TOKEN_FILE") == 0) return by_name(env, "AWS_ROLE_ARN") != NULL;
    return 0;
}

/* Warns when a container keeps its own value of a variable we would set. */
static void warn_kept(struct builder *b, const char *cname, const json_t *have,
                      const struct item *want) {
    if (!have) return;
    if (streq(json_string_value(json_object_get(have, "value")), want->value)) return;
    char c[64];
    warn(b, "container %s: env %s already set, left unchanged", clip(cname, c), want->name);
}

static int mount_taken(const json_t *mounts, const struct item *m) {
    size_t i;
    json_t *v;
    if (by_name(mounts, m->name)) return 1;
    json_array_foreach(mounts, i, v) if (streq(json_string_value(json_object_get(v, "mountPath")), m->value)) return 1;
    return 0;
}

/* Env and mounts for one app container at `base` ("/spec/containers/0"). */
static void patch_container(struct builder *b, const struct plan *p, const char *base,
                            const json_t *c) {
    const char *cname = json_string_value(json_object_get(c, "name"));
    const json_t *env = json_object_get(c, "env");
    const json_t *mounts = json_object_get(c, "volumeMounts");
    const struct item *add_env[PLAN_MAX], *add_mounts[PLAN_MAX];
    size_t n_env = 0, n_mounts = 0;
    for (size_t i = 0; i < p->n_env; i++) {
        const struct item *v = &p->env[i];
        if (env_blocked(env, v->name)) {
            warn_kept(b, cname ? cname : "?", by_name(env, v->name), v);
            continue;
        }
        add_env[n_env++] = v;
        record(b, &b->rec_env, v->name);
    }
    for (size_t i = 0; i < p->n_mounts; i++)
        if (!mount_taken(mounts, &p->mounts[i])) add_mounts[n_mounts++] = &p->mounts[i];
    if (n_env + n_mounts > 0 && cname) record(b, &b->rec_containers, cname);
    append_member(b, p, base, "env", env, add_env, n_env);
    append_member(b, p, base, "volumeMounts", mounts, add_mounts, n_mounts);
}

static void patch_containers(struct builder *b, const struct plan *p, const json_t *pod,
                             const char *field) {
    const json_t *list = json_object_get(json_object_get(pod, "spec"), field);
    size_t i;
    json_t *c;
    char list_path[64], base[64], num[24];
    if (ptr_join(list_path, sizeof list_path, "/spec", field) != 0) {
        b->oom = 1;
        return;
    }
    json_array_foreach(list, i, c) {
        if (ptr_join(base, sizeof base, list_path, decimal((long long)i, num)) != 0) {
            b->oom = 1;
            return;
        }
        patch_container(b, p, base, c);
    }
}

/* Native: first initContainer (starts before, and outlives, the app's
 * init containers). Else: last regular container, so the pod's default
 * container (kubectl exec/logs) stays the app's. */
static void add_sidecar(struct builder *b, const struct plan *p, const json_t *pod) {
    const struct item *sc = &p->sidecar;
    if (!p->native) {
        append_items(b, p, "/spec/containers", json_at(pod, "spec.containers"), &sc, 1);
    } else if (json_is_array(json_at(pod, "spec.initContainers"))) {
        op_begin(b, "/spec/initContainers/0");
        put_item(b->text, p, sc);
        op_end(b);
    } else {
        append_items(b, p, "/spec/initContainers", NULL, &sc, 1);
    }
}

static void add_metadata(struct builder *b, const struct plan *p, const json_t *pod) {
    const json_t *md = json_object_get(pod, "metadata");
    if (!json_is_object(md)) {
        op_begin(b, "/metadata");
        json_text_raw(b->text, "{}");
        op_end(b);
        md = NULL;
    }
    for (size_t i = 0; i < p->n_labels; i++) record(b, &b->rec_labels, p->labels[i].name);
    set_entries(b, "/metadata/labels", json_object_get(md, "labels"), p->labels, p->n_labels);
    /* Keys in sorted order, as json_compact() writes them. */
    struct json_text *rec = b->record;
    json_text_reset(rec);
    json_text_raw(rec, "{\"agent\":");
    put_str(rec, p->agent);
    json_text_raw(rec, ",\"containers\":");
    put_names(rec, &b->rec_containers);
    json_text_raw(rec, ",\"env\":");
    put_names(rec, &b->rec_env);
    json_text_raw(rec, ",\"labels\":");
    put_names(rec, &b->rec_labels);
    json_text_raw(rec, p->native ? ",\"sidecar\":\"native\",\"volumes\":"
                                 : ",\"sidecar\":\"container\",\"volumes\":");
    put_names(rec, &b->rec_volumes);
    json_text_raw(rec, "}");
    if (rec->oom) {
        b->oom = 1;
        return;
    }
    struct item entry = {.name = INJECT_ANNOTATION_RECORD, .value = rec->p};
    set_entries(b, "/metadata/annotations", json_object_get(md, "annotations"), &entry, 1);
}

static void add_volumes(struct builder *b, const struct plan *p, const json_t *pod) {
    const json_t *have = json_at(pod, "spec.volumes");
    const struct item *add[PLAN_MAX];
    size_t n = 0;
    for (size_t i = 0; i < p->n_volumes; i++) {
        if (by_name(have, p->volumes[i].name)) continue;
        add[n++] = &p->volumes[i];
        record(b, &b->rec_volumes, p->volumes[i].name);
    }
    append_items(b, p, "/spec/volumes", have, add, n);
}

static void build(struct builder *b, const struct inject_input *in, const struct inject_options *o,
                  struct json_text *plan_text) {
    struct plan p = {.text = plan_text};
    json_text_reset(plan_text);
    if (plan_make(&p, in, o) == 0) {
        char a[64];
        if (!p.did) warn(b, "AgentIdentity %s has no DID yet; AGENTMESH_DID not set", clip(p.agent, a));
        add_volumes(b, &p, in->pod);
        patch_containers(b, &p, in->pod, "containers");
        patch_containers(b, &p, in->pod, "initContainers");
        add_sidecar(b, &p, in->pod);
        add_metadata(b, &p, in->pod);
    } else {
        b->oom = 1;
    }
}

static void warn_no_identity(struct builder *b, const json_t *pod, const char *ns) {
    int by_sa;
    const char *key = inject_agent_key(pod, &by_sa);
    char k[64], n[64];
    if (by_sa)
        warn(b, "no AgentIdentity uses service account %s in namespace %s; pod admitted without "
                "the agentmesh sidecar", clip(key, k), clip(ns, n));
    else
        warn(b, "AgentIdentity %s (annotation " INJECT_ANNOTATION_AGENT ") not found in namespace "
                "%s; pod admitted without the agentmesh sidecar", clip(key, k), clip(ns, n));
}

int inject_pod(const struct inject_input *in, const struct inject_options *o,
               struct inject_result *out) {
    if (out->warnings) json_array_clear(out->warnings);
    else out->warnings = json_array();
    struct builder b = {.text = &out->text, .record = &out->record, .warnings = out->warnings};
    names_init(&b.rec_env);
    names_init(&b.rec_containers);
    names_init(&b.rec_volumes);
    names_init(&b.rec_labels);
    out->patch = NULL;
    out->patch_len = out->ops = 0;
    out->skip = NULL;
    json_text_reset(b.text);
    /* Room for the patch of a typical pod (~3 KiB): one allocation, and none
     * when the buffer is reused. */
    json_text_reserve(b.text, 4096);
    json_text_raw(b.text, "[");
    if (b.warnings) {
        out->skip = inject_precheck(in, o);
        if (!out->skip && !json_str_at(in->identity, "metadata.name")) {
            out->skip = INJECT_SKIP_NO_IDENTITY;
            warn_no_identity(&b, in->pod, pod_namespace(in));
        }
        if (!out->skip) build(&b, in, o, &out->plan);
    }
    json_text_raw(b.text, "]");
    names_free(&b.rec_env);
    names_free(&b.rec_containers);
    names_free(&b.rec_volumes);
    names_free(&b.rec_labels);
    if (b.oom || b.text->oom || !b.warnings) return -1;
    out->patch = b.text->p;
    out->patch_len = b.text->n;
    out->ops = b.ops;
    return 0;
}

void inject_result_free(struct inject_result *r) {
    if (!r) return;
    json_text_free(&r->text);
    json_text_free(&r->plan);
    json_text_free(&r->record);
    json_decref(r->warnings);
    memset(r, 0, sizeof *r);
}
