/* kube_config.c — where the API server is and how to authenticate to it.
 *
 * Three sources, as in every Kubernetes tool: a kubeconfig file (YAML, read
 * with libyaml's document API and walked by key), the in-cluster service
 * account, and the resolve order between them. Errors name the offending
 * field by its path in the file ("clusters[1].cluster.server: missing") so a
 * user can fix the file without guessing. Secrets are never copied into an
 * error message: only field names, paths and entry names are. */
#include "controller/kube_client.h"
#include "controller/kube_internal.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#define KUBECONFIG_MAX (4u << 20)
#define SA_DIR_DEFAULT "/var/run/secrets/kubernetes.io/serviceaccount"
#define WHERE_MAX 96

/* A parsed kubeconfig plus where errors go. */
struct kc {
    yaml_document_t doc;
    const char *dir;       /* directory of the kubeconfig, for relative paths */
    char *err;
    size_t errlen;
};

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

char *kube_read_file(const char *path, size_t max, int trim, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(max + 1);
    if (!buf) {
        fclose(f);
        fail(err, errlen, "cannot read %s: out of memory", path);
        return NULL;
    }
    size_t n = fread(buf, 1, max + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > max) {
        free(buf);
        fail(err, errlen, "cannot read %s: %s", path, bad ? "read error" : "file too large");
        return NULL;
    }
    while (trim && n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                             buf[n - 1] == '\t'))
        n--;
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

/* ---- walking libyaml's document tree ---- */

/* Value of `key` in mapping node `map`, or NULL (also when map is not a mapping). */
static yaml_node_t *map_get(struct kc *k, yaml_node_t *map, const char *key) {
    if (!map || map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(&k->doc, p->key);
        if (kn && kn->type == YAML_SCALAR_NODE && strlen(key) == kn->data.scalar.length &&
            memcmp(kn->data.scalar.value, key, kn->data.scalar.length) == 0)
            return yaml_document_get_node(&k->doc, p->value);
    }
    return NULL;
}

/* A plain empty, "~" or "null" scalar is YAML's null: treated as absent. */
static int is_null(const yaml_node_t *n) {
    if (!n) return 1;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *v = (const char *)n->data.scalar.value;
    return !*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

/* String field `key` of `map`: NULL in *out when absent or empty, -1 when not a string. */
static int get_str(struct kc *k, yaml_node_t *map, const char *where, const char *key, const char **out) {
    yaml_node_t *n = map_get(k, map, key);
    *out = NULL;
    if (is_null(n)) return 0;
    if (n->type != YAML_SCALAR_NODE) return fail(k->err, k->errlen, "%s.%s: expected a string", where, key);
    if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
        return fail(k->err, k->errlen, "%s.%s: contains a NUL byte", where, key);
    if (n->data.scalar.length > 0) *out = (const char *)n->data.scalar.value;
    return 0;
}

/* Boolean field, YAML 1.1 spellings as Kubernetes' YAML reader accepts them. */
static int get_bool(struct kc *k, yaml_node_t *map, const char *where, const char *key, int *out) {
    const char *v;
    *out = 0;
    if (get_str(k, map, where, key, &v) != 0) return -1;
    if (!v) return 0;
    static const char *yes[] = {"true", "yes", "on", "y"}, *no[] = {"false", "no", "off", "n"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) return 0;
    }
    return fail(k->err, k->errlen, "%s.%s: expected true or false, got \"%.32s\"", where, key, v);
}

/* Finds the entry of top-level list `list` ("clusters") whose name is `name`
 * and returns its `inner` mapping ("cluster"); `where` gets its path
 * ("clusters[1].cluster"). `ref` names the field that referred to it. */
static int find_entry(struct kc *k, const char *list, const char *inner, const char *name,
                      const char *ref, yaml_node_t **out, char *where, size_t wherelen) {
    yaml_node_t *root = yaml_document_get_root_node(&k->doc);
    yaml_node_t *seq = map_get(k, root, list);
    if (!is_null(seq) && seq->type != YAML_SEQUENCE_NODE)
        return fail(k->err, k->errlen, "%s: expected a list", list);
    int idx = 0;
    for (yaml_node_item_t *it = seq && !is_null(seq) ? seq->data.sequence.items.start : NULL;
         it && it < seq->data.sequence.items.top; it++, idx++) {
        yaml_node_t *entry = yaml_document_get_node(&k->doc, *it);
        char at[WHERE_MAX];
        snprintf(at, sizeof at, "%s[%d]", list, idx);
        if (!entry || entry->type != YAML_MAPPING_NODE)
            return fail(k->err, k->errlen, "%s: expected a mapping with name and %s", at, inner);
        const char *n;
        if (get_str(k, entry, at, "name", &n) != 0) return -1;
        if (!n) return fail(k->err, k->errlen, "%s.name: missing", at);
        if (strcmp(n, name) != 0) continue;
        snprintf(where, wherelen, "%s.%s", at, inner);
        *out = map_get(k, entry, inner);
        if (is_null(*out)) return fail(k->err, k->errlen, "%s: missing", where);
        if ((*out)->type != YAML_MAPPING_NODE) return fail(k->err, k->errlen, "%s: expected a mapping", where);
        return 0;
    }
    return fail(k->err, k->errlen, "%s: %s \"%.64s\" not found", ref, inner, name);
}

/* A file path from the kubeconfig, relative ones taken from its directory. */
static int set_path(struct kc *k, const char *where, const char *key, const char *p, char **out) {
    int n;
    if (p[0] == '/') n = asprintf(out, "%s", p);
    else n = asprintf(out, "%s/%s", k->dir, p);
    if (n < 0) {
        *out = NULL;
        return fail(k->err, k->errlen, "%s.%s: out of memory", where, key);
    }
    return 0;
}

/* Decodes a *-data field (standard base64 of PEM bytes) into a C string. */
static int set_b64(struct kc *k, const char *where, const char *key, const char *b64, char **out) {
    size_t len = strlen(b64), binlen = 0;
    unsigned char *bin = malloc(len / 4 * 3 + 4);
    if (!bin) return fail(k->err, k->errlen, "%s.%s: out of memory", where, key);
    if (sodium_base642bin(bin, len / 4 * 3 + 3, b64, len, " \t\r\n", &binlen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        binlen == 0 || memchr(bin, '\0', binlen)) {
        free(bin);
        return fail(k->err, k->errlen, "%s.%s: not valid base64-encoded PEM", where, key);
    }
    bin[binlen] = '\0';
    *out = (char *)bin;
    return 0;
}

/* A file field or its *-data twin; data wins, as in kubectl. */
static int file_or_data(struct kc *k, yaml_node_t *map, const char *where, const char *key,
                        char **file, char **data) {
    char dkey[64];
    const char *p, *d;
    snprintf(dkey, sizeof dkey, "%s-data", key);
    if (get_str(k, map, where, key, &p) != 0 || get_str(k, map, where, dkey, &d) != 0) return -1;
    if (d) return set_b64(k, where, dkey, d, data);
    if (p) return set_path(k, where, key, p, file);
    return 0;
}

static int load_cluster(struct kc *k, yaml_node_t *cl, const char *where, struct kube_config *out) {
    const char *server;
    if (get_str(k, cl, where, "server", &server) != 0) return -1;
    if (!server) return fail(k->err, k->errlen, "%s.server: missing", where);
    if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0)
        return fail(k->err, k->errlen, "%s.server: \"%.128s\" is not an http(s):// URL", where, server);
    out->server = strdup(server);
    if (!out->server) return fail(k->err, k->errlen, "%s.server: out of memory", where);
    size_t n = strlen(out->server);
    while (n > 0 && out->server[n - 1] == '/') out->server[--n] = '\0';
    if (file_or_data(k, cl, where, "certificate-authority", &out->ca_file, &out->ca_data) != 0) return -1;
    return get_bool(k, cl, where, "insecure-skip-tls-verify", &out->insecure_skip_tls_verify);
}

static int load_user(struct kc *k, yaml_node_t *u, const char *where, struct kube_config *out) {
    static const char *unsupported[][2] = {
        {"exec", "exec credential plugins are not supported; use a token or client certificate"},
        {"auth-provider", "auth-provider plugins are not supported; use a token or client certificate"},
        {"username", "basic authentication is not supported; use a token or client certificate"},
    };
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (!is_null(map_get(k, u, unsupported[i][0])))
            return fail(k->err, k->errlen, "%s.%s: %s", where, unsupported[i][0], unsupported[i][1]);
    const char *token, *token_file;
    if (get_str(k, u, where, "token", &token) != 0 || get_str(k, u, where, "tokenFile", &token_file) != 0)
        return -1;
    if (token) {
        out->token = strdup(token);
        if (!out->token) return fail(k->err, k->errlen, "%s.token: out of memory", where);
    } else if (token_file && set_path(k, where, "tokenFile", token_file, &out->token_file) != 0) {
        return -1;
    }
    if (file_or_data(k, u, where, "client-certificate", &out->client_cert_file, &out->client_cert_data) != 0 ||
        file_or_data(k, u, where, "client-key", &out->client_key_file, &out->client_key_data) != 0)
        return -1;
    int have_cert = out->client_cert_file || out->client_cert_data;
    int have_key = out->client_key_file || out->client_key_data;
    if (have_cert && !have_key) return fail(k->err, k->errlen, "%s.client-key: missing (client-certificate is set)", where);
    if (have_key && !have_cert) return fail(k->err, k->errlen, "%s.client-certificate: missing (client-key is set)", where);
    return 0;
}

/* Picks the context, then its cluster and user. */
static int load_context(struct kc *k, const char *want, struct kube_config *out) {
    yaml_node_t *root = yaml_document_get_root_node(&k->doc);
    if (!root) return fail(k->err, k->errlen, "empty kubeconfig");
    if (root->type != YAML_MAPPING_NODE) return fail(k->err, k->errlen, "top level: expected a mapping");
    const char *name = want, *ref = "contexts";
    if (!name) {
        if (get_str(k, root, "top level", "current-context", &name) != 0) return -1;
        if (!name) return fail(k->err, k->errlen, "current-context: missing (and no context was named)");
        ref = "current-context";
    }
    yaml_node_t *ctx, *cl, *u = NULL;
    char ctx_where[WHERE_MAX], cl_where[WHERE_MAX], u_where[WHERE_MAX], ref2[WHERE_MAX + 16];
    if (find_entry(k, "contexts", "context", name, ref, &ctx, ctx_where, sizeof ctx_where) != 0) return -1;
    const char *cluster, *user, *ns;
    if (get_str(k, ctx, ctx_where, "cluster", &cluster) != 0 || get_str(k, ctx, ctx_where, "user", &user) != 0 ||
        get_str(k, ctx, ctx_where, "namespace", &ns) != 0)
        return -1;
    if (!cluster) return fail(k->err, k->errlen, "%s.cluster: missing", ctx_where);
    snprintf(ref2, sizeof ref2, "%s.cluster", ctx_where);
    if (find_entry(k, "clusters", "cluster", cluster, ref2, &cl, cl_where, sizeof cl_where) != 0) return -1;
    if (user) {
        snprintf(ref2, sizeof ref2, "%s.user", ctx_where);
        if (find_entry(k, "users", "user", user, ref2, &u, u_where, sizeof u_where) != 0) return -1;
    }
    if (ns && !(out->namespace = strdup(ns))) return fail(k->err, k->errlen, "%s.namespace: out of memory", ctx_where);
    if (load_cluster(k, cl, cl_where, out) != 0) return -1;
    return u ? load_user(k, u, u_where, out) : 0;
}

/* Parses the YAML text into k->doc; syntax errors carry line and column. */
static int parse_yaml(struct kc *k, const char *text, size_t len) {
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return fail(k->err, k->errlen, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int ok = yaml_parser_load(&p, &k->doc);
    if (!ok) {
        if (p.problem)
            fail(k->err, k->errlen, "line %zu column %zu: %s", p.problem_mark.line + 1,
                 p.problem_mark.column + 1, p.problem);
        else
            fail(k->err, k->errlen, "YAML error");
    }
    yaml_parser_delete(&p);
    return ok ? 0 : -1;
}

int kube_config_load_file(const char *path, const char *context, struct kube_config *out,
                          char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *text = kube_read_file(path, KUBECONFIG_MAX, 0, &len, err, errlen);
    if (!text) return -1;
    char *dir = strdup(path);
    if (!dir) {
        free(text);
        return fail(err, errlen, "out of memory");
    }
    char *slash = strrchr(dir, '/');
    if (slash == dir) dir[1] = '\0';
    else if (slash) *slash = '\0';
    else strcpy(dir, ".");
    struct kc k = {.dir = dir, .err = err, .errlen = errlen};
    int rc = parse_yaml(&k, text, len);
    if (rc == 0) {
        rc = load_context(&k, context && *context ? context : NULL, out);
        yaml_document_delete(&k.doc);
    }
    free(text);
    free(dir);
    if (rc != 0) kube_config_free(out);
    return rc;
}

int kube_config_in_cluster(const char *sa_dir, struct kube_config *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
    if (!host || !*host || !port || !*port)
        return fail(err, errlen, "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not "
                                 "set (not running in a pod? pass --kubeconfig or set KUBECONFIG)");
    if (!sa_dir) sa_dir = SA_DIR_DEFAULT;
    int v6 = strchr(host, ':') != NULL;
    if (asprintf(&out->server, v6 ? "https://[%s]:%s" : "https://%s:%s", host, port) < 0 ||
        asprintf(&out->token_file, "%s/token", sa_dir) < 0 || asprintf(&out->ca_file, "%s/ca.crt", sa_dir) < 0) {
        kube_config_free(out);
        return fail(err, errlen, "in-cluster: out of memory");
    }
    const char *must[] = {out->token_file, out->ca_file};
    for (size_t i = 0; i < 2; i++) {
        if (access(must[i], R_OK) != 0) {
            fail(err, errlen, "in-cluster: cannot read %s: %s", must[i], strerror(errno));
            kube_config_free(out);
            return -1;
        }
    }
    char nspath[PATH_MAX];
    snprintf(nspath, sizeof nspath, "%s/namespace", sa_dir);
    if (access(nspath, F_OK) == 0) {
        char e[256];
        out->namespace = kube_read_file(nspath, 253, 1, NULL, e, sizeof e);
        if (!out->namespace) {
            fail(err, errlen, "in-cluster: %s", e);
            kube_config_free(out);
            return -1;
        }
    }
    return 0;
}

int kube_config_resolve(const char *explicit_path, struct kube_config *out, char *err, size_t errlen) {
    if (explicit_path && *explicit_path) return kube_config_load_file(explicit_path, NULL, out, err, errlen);
    const char *env = getenv("KUBECONFIG");
    if (env && *env) {
        /* Only the first file of a colon-separated list; merging is not supported. */
        size_t n = strcspn(env, ":");
        if (n == 0) return fail(err, errlen, "KUBECONFIG: first entry is empty");
        char *first = strndup(env, n);
        if (!first) return fail(err, errlen, "out of memory");
        int rc = kube_config_load_file(first, NULL, out, err, errlen);
        free(first);
        return rc;
    }
    return kube_config_in_cluster(NULL, out, err, errlen);
}

/* Frees a secret-bearing string after wiping it. */
static void free_secret(char *s) {
    if (!s) return;
    sodium_memzero(s, strlen(s));
    free(s);
}

void kube_config_free(struct kube_config *cfg) {
    if (!cfg) return;
    free(cfg->server);
    free(cfg->ca_file);
    free(cfg->ca_data);
    free_secret(cfg->token);
    free(cfg->token_file);
    free(cfg->client_cert_file);
    free(cfg->client_key_file);
    free(cfg->client_cert_data);
    free_secret(cfg->client_key_data);
    free(cfg->namespace);
    memset(cfg, 0, sizeof *cfg);
}
