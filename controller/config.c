/* config.c — flags, AGENTMESH_* environment and YAML file (config.h). */
#include "controller/config.h"

#include "common/sched_slice.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

enum opt_kind { OPT_STR, OPT_INT, OPT_BOOL, OPT_LONG, OPT_DOUBLE };

struct option_def {
    const char *name;       /* flag without "--", file key */
    enum opt_kind kind;
    size_t offset;
    const char *def;
    const char *help;
};

#define O(field) offsetof(struct config, field)
static const struct option_def options[] = {
    {"kubeconfig", OPT_STR, O(kubeconfig), NULL, "kubeconfig file (else $KUBECONFIG, else in-cluster)"},
    {"namespace", OPT_STR, O(namespace), NULL, "operator namespace (default: the pod's own, else agentmesh-system)"},
    {"bind-address", OPT_STR, O(bind_address), "0.0.0.0", "address every listener binds"},
    {"api-port", OPT_INT, O(api_port), "8080", "trust API port"},
    {"metrics-port", OPT_INT, O(metrics_port), "9090", "metrics and probes port (/metrics /healthz /readyz)"},
    {"webhook-port", OPT_INT, O(webhook_port), "9443", "admission webhook port (HTTPS)"},
    {"api-threads", OPT_INT, O(api_threads), "2", "event loops serving the trust API"},
    {"webhook-threads", OPT_INT, O(webhook_threads), "2", "event loops serving the webhooks"},
    {"sched-slice-us", OPT_INT, O(sched_slice_us), "100", "scheduler slice in us of the webhook and trust API listener threads (100..100000; Linux >= 6.12 honours it): a woken listener preempts a busy neighbour sooner; 0 = kernel default"},
    {"api-tls", OPT_BOOL, O(api_tls), "false", "serve the trust API over TLS with the webhook certificate"},
    {"api-rate-limit", OPT_INT, O(api_rate_limit), "0", "trust API requests per second per replica, over it 429; 0 = unlimited"},
    {"webhook-cert-dir", OPT_STR, O(webhook_cert_dir), NULL, "directory with tls.crt/tls.key (reloaded on change); unset = self-managed certificates"},
    {"redis-url", OPT_STR, O(redis_url), NULL, "redis:// or rediss:// URL; unset = in-memory trust store"},
    {"redis-ca-file", OPT_STR, O(redis_ca_file), NULL, "CA bundle for rediss:// (default: system store)"},
    {"postgres-url", OPT_STR, O(postgres_url), NULL, "PostgreSQL URL for the audit log and score history (libpq, sslmode honoured)"},
    {"audit-sink-url", OPT_STR, O(audit_sink_url), NULL, "HTTP endpoint receiving CloudEvents 1.0 (structured mode)"},
    {"audit-spool-dir", OPT_STR, O(audit_spool_dir), "/tmp/agentmesh-spool", "on-disk spool for audit events while Postgres/the sink is down"},
    {"audit-spool-max-bytes", OPT_LONG, O(audit_spool_max_bytes), "67108864", "spool size limit; when full /readyz fails and events are refused loudly"},
    {"workers", OPT_INT, O(workers), "4", "concurrent AgentIdentity reconciles (I/O-bound: more than cores helps)"},
    {"leader-elect", OPT_BOOL, O(leader_elect), "true", "elect a leader with a coordination.k8s.io Lease"},
    {"leader-election-id", OPT_STR, O(leader_election_id), "agentmesh-controller", "name of the Lease"},
    {"sidecar-image", OPT_STR, O(sidecar_image), "agentmesh/agentmesh-sidecar:0.1.0", "image of the injected sidecar"},
    {"log-level", OPT_STR, O(log_level), "info", "debug, info, warn or error"},
    {"status-min-interval", OPT_DOUBLE, O(status_min_interval), "10", "seconds between status writes for score changes within one tier"},
    {"config", OPT_STR, O(config_file), NULL, "YAML file of the same keys (e.g. `redis-url: redis://...`)"},
};
#define NOPTIONS (sizeof options / sizeof options[0])

void config_usage(FILE *out) {
    fprintf(out, "Usage: agentmesh-controller [flags]\n\n"
                 "Every flag can also be set by the environment variable AGENTMESH_<NAME> (upper case,\n"
                 "'-' as '_') or by the key <name> in the YAML file given by --config.\n"
                 "Precedence: flag > environment > file > default.\n\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        const struct option_def *o = &options[i];
        const char *type = o->kind == OPT_BOOL ? "bool" : o->kind == OPT_STR ? "string" : "number";
        fprintf(out, "  --%-22s %-6s %s", o->name, type, o->help);
        if (o->def) fprintf(out, " (default %s)", o->def);
        fprintf(out, "\n");
    }
    fprintf(out, "  --%-22s %-6s %s\n", "help", "", "print this and exit");
}

/* Sets one option from text; `where` names the source for errors. */
static int set_option(struct config *cfg, const struct option_def *o, const char *value, const char *where,
                      char *err, size_t errlen) {
    char *field = (char *)cfg + o->offset;
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case OPT_STR: {
        char *copy = strdup(value);
        if (!copy) return -1;
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case OPT_INT: {
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < 0 || v > INT_MAX) break;
        *(int *)field = (int)v;
        return 0;
    }
    case OPT_LONG: {
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < 0) break;
        *(long *)field = v;
        return 0;
    }
    case OPT_DOUBLE: {
        double v = strtod(value, &end);
        if (errno || end == value || *end || v < 0) break;
        *(double *)field = v;
        return 0;
    }
    case OPT_BOOL:
        if (!strcasecmp(value, "true") || !strcmp(value, "1") || !strcasecmp(value, "yes")) {
            *(int *)field = 1;
            return 0;
        }
        if (!strcasecmp(value, "false") || !strcmp(value, "0") || !strcasecmp(value, "no")) {
            *(int *)field = 0;
            return 0;
        }
        break;
    }
    snprintf(err, errlen, "%s: invalid %s value \"%.64s\"", where,
             o->kind == OPT_BOOL ? "boolean" : "non-negative number", value);
    return -1;
}

static const struct option_def *find_option(const char *name, size_t len) {
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strlen(options[i].name) == len && strncmp(options[i].name, name, len) == 0) return &options[i];
    return NULL;
}

/* The YAML file: one flat mapping of option names to scalars. */
static int load_file(struct config *cfg, const char *path, const unsigned char *is_set, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "--config %s: %s", path, strerror(errno));
        return -1;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = -1;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        snprintf(err, errlen, "--config: out of memory");
        return -1;
    }
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "%s: line %zu column %zu: %s", path, parser.problem_mark.line + 1,
                 parser.problem_mark.column + 1, parser.problem ? parser.problem : "YAML error");
        goto out_parser;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        rc = 0; /* empty file */
        goto out_doc;
    }
    if (root->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "%s: the top level must be a mapping of option names to values", path);
        goto out_doc;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&doc, p->value);
        if (!k || k->type != YAML_SCALAR_NODE) {
            snprintf(err, errlen, "%s: keys must be option names", path);
            goto out_doc;
        }
        const char *key = (const char *)k->data.scalar.value;
        const struct option_def *o = find_option(key, k->data.scalar.length);
        if (!o || o->offset == O(config_file)) {
            snprintf(err, errlen, "%s: line %zu: unknown option \"%.64s\"", path, k->start_mark.line + 1, key);
            goto out_doc;
        }
        if (!v || v->type != YAML_SCALAR_NODE) {
            snprintf(err, errlen, "%s: line %zu: %s: value must be a scalar", path, k->start_mark.line + 1, key);
            goto out_doc;
        }
        if (is_set[o - options]) continue; /* flag or environment wins */
        char where[300];
        snprintf(where, sizeof where, "%s: %s", path, o->name);
        if (set_option(cfg, o, (const char *)v->data.scalar.value, where, err, errlen) != 0) goto out_doc;
    }
    rc = 0;
out_doc:
    yaml_document_delete(&doc);
out_parser:
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

static void env_name(const char *opt, char *buf, size_t len) {
    size_t n = (size_t)snprintf(buf, len, "AGENTMESH_");
    for (const char *p = opt; *p && n + 1 < len; p++) buf[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    buf[n] = '\0';
}

int config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    unsigned char is_set[NOPTIONS] = {0};
    for (size_t i = 0; i < NOPTIONS; i++)
        if (options[i].def && set_option(cfg, &options[i], options[i].def, "default", err, errlen) != 0) return -1;
    /* flags */
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            config_usage(stdout);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument \"%.64s\" (flags start with --)", arg);
            return -1;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct option_def *o = find_option(name, len);
        if (!o) {
            snprintf(err, errlen, "unknown flag --%.*s (see --help)", (int)len, name);
            return -1;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value && o->kind == OPT_BOOL) value = "true";
        if (!value) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "flag --%s needs a value", o->name);
                return -1;
            }
            value = argv[++i];
        }
        char where[64];
        snprintf(where, sizeof where, "--%s", o->name);
        if (set_option(cfg, o, value, where, err, errlen) != 0) return -1;
        is_set[o - options] = 1;
    }
    /* environment */
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (is_set[i]) continue;
        char name[64];
        env_name(options[i].name, name, sizeof name);
        const char *value = getenv(name);
        if (!value || !*value) continue;
        if (set_option(cfg, &options[i], value, name, err, errlen) != 0) return -1;
        is_set[i] = 1;
    }
    if (cfg->config_file && load_file(cfg, cfg->config_file, is_set, err, errlen) != 0) return -1;
    if (cfg->api_port > 65535 || cfg->metrics_port > 65535 || cfg->webhook_port > 65535) {
        snprintf(err, errlen, "ports must be within 0..65535");
        return -1;
    }
    if (!sched_slice_valid(cfg->sched_slice_us)) {
        snprintf(err, errlen, "sched-slice-us: %d is not 0 (kernel default) or microseconds in %d..%d",
                 cfg->sched_slice_us, SCHED_SLICE_MIN_US, SCHED_SLICE_MAX_US);
        return -1;
    }
    if (cfg->workers < 1) cfg->workers = 1;
    return 0;
}

void config_free(struct config *cfg) {
    for (size_t i = 0; i < NOPTIONS; i++)
        if (options[i].kind == OPT_STR) {
            char **field = (char **)((char *)cfg + options[i].offset);
            free(*field);
            *field = NULL;
        }
}
