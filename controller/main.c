/* main.c — agentmesh-controller: wires configuration, the Kubernetes
 * client, the trust store, informers + reconcilers (leader only), and the
 * listeners (metrics/probes 9090), then waits for SIGTERM and shuts down
 * in reverse order, releasing the leader Lease so a standby takes over at once. */
#include "common/identity.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/httpd.h"
#include "common/json.h"
#include "common/tls.h"
#include "controller/agent_registry.h"
#include "controller/audit_pipeline.h"
#include "controller/config.h"
#include "controller/kube_client.h"
#include "controller/leader.h"
#include "controller/manager.h"
#include "controller/ops_server.h"
#include "controller/redis_conn.h"
#include "controller/trust_api.h"
#include "controller/trust_store.h"
#include "controller/webhook_lookup.h"
#include "webhook/webhook_server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG "main"

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

/* --namespace, else the pod's own namespace, else agentmesh-system. */
static char *operator_namespace(const struct config *cfg, const struct kube_config *kc) {
    if (cfg->namespace && *cfg->namespace) return strdup(cfg->namespace);
    FILE *f = fopen("/var/run/secrets/kubernetes.io/serviceaccount/namespace", "r");
    char buf[128];
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        buf[strcspn(buf, "\r\n")] = '\0';
        if (*buf) return strdup(buf);
    }
    (void)kc;
    return strdup("agentmesh-system");
}

static struct trust_store *open_store(const struct config *cfg, char *err, size_t errlen) {
    if (!cfg->redis_url) return trust_store_memory_new(NULL);
    struct redis_options ro = {.url = cfg->redis_url, .ca_file = cfg->redis_ca_file};
    return trust_store_redis_new(&ro, err, errlen);
}

static int caches_ready(void *arg, char *why, size_t whylen) {
    if (manager_synced(arg)) return 1;
    snprintf(why, whylen, "informer caches not synced yet");
    return 0;
}

static void on_started_leading(void *arg) {
    if (manager_start_workers(arg) != 0) {
        log_error(LOG, "cannot start workers");
        stop_requested = 1;
    }
}

static void on_stopped_leading(void *arg) {
    (void)arg;
    /* Like controller-runtime: a replica that lost its lease exits, and restarts clean. */
    log_error(LOG, "leadership lost; exiting so a clean replica takes over");
    stop_requested = 1;
}

static void scrape(void *arg) { manager_update_metrics(arg); }

/* rest_client_requests_total{code,method}, as client-go reports it. */
static void count_request(const char *method, int code, double seconds) {
    static struct metric *requests;
    (void)seconds;
    if (!requests)
        requests = metrics_counter("rest_client_requests_total",
                                   "Number of HTTP requests, partitioned by status code and method.", "code,method");
    char codebuf[16];
    snprintf(codebuf, sizeof codebuf, code ? "%d" : "<error>", code);
    metric_add(requests, 1, codebuf, method);
}

/* Pod name (HOSTNAME) plus a random suffix: unique even across restarts of one pod. */
static void replica_identity(char *buf, size_t len) {
    const char *host = getenv("HOSTNAME");
    char rnd[5];
    snprintf(rnd, sizeof rnd, "%04x", (unsigned)(getpid() ^ (unsigned)time(NULL)) & 0xffff);
    snprintf(buf, len, "%s_%s", host && *host ? host : "agentmesh-controller", rnd);
}

/* The API server's minor version (for native sidecars on >= 1.29). */
static int api_minor_version(struct kube_client *client) {
    struct kube_result r = {0};
    int minor = 0;
    if (kube_get_path(client, "/version", &r) == 0) {
        const char *m = json_str_at(r.body, "minor");
        minor = m ? atoi(m) : 0; /* "29+" on some distributions */
    }
    kube_result_free(&r);
    return minor;
}

/* The parts every replica serves: admission webhooks and the trust API. */
struct servers {
    struct informer *namespaces;
    struct webhook_lookup lookup;
    struct httpd *webhook_http;
    struct webhook *webhook;
    struct trust_api *api;
    struct audit_pipeline *audit;
    SSL_CTX *tls;
};

static int webhook_cert_ready(void *arg, char *why, size_t whylen) {
    struct servers *s = arg;
    if (s->tls) return 1;
    snprintf(why, whylen, "no webhook certificate loaded");
    return 0;
}

static int start_servers(struct servers *s, const struct config *cfg, struct kube_client *client,
                         struct manager *mgr, struct agent_registry *registry, struct trust_store *store,
                         const char *ns, char *err, size_t errlen) {
    static const struct kube_gvr namespaces_gvr = {"", "v1", "namespaces", 0};
    struct informer_opts io = {.gvr = namespaces_gvr, .transform = webhook_lookup_strip_namespace};
    s->namespaces = informer_new(client, &io);
    if (!s->namespaces || informer_start(s->namespaces) != 0) {
        snprintf(err, errlen, "cannot start the namespace informer");
        return -1;
    }
    s->lookup = (struct webhook_lookup){manager_controller(mgr)->agents, s->namespaces, client};

    struct audit_pipeline_options ao = {cfg->postgres_url, cfg->audit_sink_url, cfg->audit_spool_dir,
                                        (size_t)cfg->audit_spool_max_bytes};
    s->audit = audit_pipeline_new(&ao, err, errlen);
    if (!s->audit) return -1;

    if (cfg->webhook_cert_dir) {
        char crt[1024], key[1024];
        snprintf(crt, sizeof crt, "%s/tls.crt", cfg->webhook_cert_dir);
        snprintf(key, sizeof key, "%s/tls.key", cfg->webhook_cert_dir);
        s->tls = tls_server_ctx_from_files(crt, key, err, errlen);
        if (!s->tls) return -1;
    }
    static char controller_url[128];
    snprintf(controller_url, sizeof controller_url, "%s://agentmesh-api.%s.svc:%d", cfg->api_tls ? "https" : "http",
             ns, cfg->api_port);
    struct webhook_config wc = {
        .inject = {.api_minor = api_minor_version(client), .operator_namespace = ns,
                   .sidecar_image = cfg->sidecar_image, .controller_url = controller_url},
        .identity = webhook_lookup_identity, .identity_arg = &s->lookup,
        .ns_labels = webhook_lookup_ns_labels, .ns_labels_arg = &s->lookup,
    };
    struct httpd_options wo = {.name = "webhook", .address = cfg->bind_address, .port = cfg->webhook_port,
                               .threads = cfg->webhook_threads, .max_body = WEBHOOK_MAX_BODY,
                               .timeout_seconds = 10, .tls = 1};
    s->webhook_http = httpd_new(&wo);
    s->webhook = s->webhook_http ? webhook_register(s->webhook_http, &wc) : NULL;
    if (!s->webhook) {
        snprintf(err, errlen, "cannot set up the webhook listener");
        return -1;
    }
    if (s->tls) {
        if (httpd_set_tls(s->webhook_http, s->tls) != 0 || httpd_start(s->webhook_http, err, errlen) != 0) return -1;
    } else {
        log_warn(LOG, "webhooks not served: no certificate (--webhook-cert-dir unset)");
    }

    struct trust_api_options to = {.address = cfg->bind_address, .port = cfg->api_port,
                                   .threads = cfg->api_threads, .tls = cfg->api_tls ? s->tls : NULL,
                                   .registry = registry, .store = store,
                                   .audit = audit_pipeline_emit, .audit_arg = s->audit,
                                   .audit_verify = audit_pipeline_verify, .audit_verify_arg = s->audit};
    if (cfg->api_tls && !s->tls) {
        snprintf(err, errlen, "--api-tls needs a certificate (--webhook-cert-dir)");
        return -1;
    }
    s->api = trust_api_new(&to, err, errlen);
    if (!s->api || trust_api_start(s->api, err, errlen) != 0) return -1;
    return 0;
}

static void stop_servers(struct servers *s) {
    trust_api_free(s->api);
    httpd_free(s->webhook_http);
    webhook_free(s->webhook);
    audit_pipeline_free(s->audit);
    informer_free(s->namespaces);
    SSL_CTX_free(s->tls);
}

int main(int argc, char **argv) {
    struct config cfg;
    char err[512];
    int rc = config_load(&cfg, argc, argv, err, sizeof err);
    if (rc != 0) {
        if (rc < 0) fprintf(stderr, "agentmesh-controller: %s\n", err);
        config_free(&cfg);
        return rc < 0 ? 2 : 0;
    }
    enum log_level lvl;
    if (log_parse_level(cfg.log_level, &lvl) == 0) log_set_level(lvl);
    if (identity_init() != 0) {
        log_error(LOG, "libsodium initialisation failed");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct kube_config kc;
    if (kube_config_resolve(cfg.kubeconfig, &kc, err, sizeof err) != 0) {
        log_error(LOG, "kubeconfig: %s", err);
        config_free(&cfg);
        return 1;
    }
    struct kube_client *client = kube_client_new(&kc, err, sizeof err);
    if (client) kube_client_set_request_hook(client, count_request);
    char *ns = operator_namespace(&cfg, &kc);
    kube_config_free(&kc);
    struct trust_store *store = client ? open_store(&cfg, err, sizeof err) : NULL;
    struct agent_registry *registry = agent_registry_new();
    if (!client || !store || !registry || !ns) {
        log_error(LOG, "startup failed: %s", err);
        return 1;
    }
    log_info(LOG, "agentmesh-controller starting in namespace %s, trust store %s", ns, store->kind);

    struct manager_options mo = {.client = client, .store = store, .registry = registry,
                                 .operator_namespace = ns, .workers = cfg.workers,
                                 .api_port = cfg.api_port, .status_min_interval = cfg.status_min_interval};
    struct manager *mgr = manager_new(&mo);
    struct ops_server *ops = ops_server_new(cfg.bind_address, cfg.metrics_port);
    if (!mgr || !ops || manager_start_informers(mgr) != 0) {
        log_error(LOG, "cannot start informers");
        return 1;
    }
    struct servers servers;
    memset(&servers, 0, sizeof servers);
    if (start_servers(&servers, &cfg, client, mgr, registry, store, ns, err, sizeof err) != 0) {
        log_error(LOG, "%s", err);
        return 1;
    }
    ops_server_add_check(ops, "informers", caches_ready, mgr);
    ops_server_add_check(ops, "webhook-certificate", webhook_cert_ready, &servers);
    ops_server_add_check(ops, "audit-spool", audit_pipeline_ready, servers.audit);
    ops_server_on_scrape(ops, scrape, mgr);
    if (ops_server_start(ops, err, sizeof err) != 0) {
        log_error(LOG, "%s", err);
        return 1;
    }

    struct leader *leader = NULL;
    if (cfg.leader_elect) {
        char id[300];
        replica_identity(id, sizeof id);
        struct leader_options lo = {.client = client, .namespace = ns, .name = cfg.leader_election_id,
                                    .identity = id, .on_started = on_started_leading,
                                    .on_stopped = on_stopped_leading, .arg = mgr};
        leader = leader_start(&lo);
        if (!leader) {
            log_error(LOG, "cannot start leader election");
            return 1;
        }
    } else {
        on_started_leading(mgr);
    }

    while (!stop_requested) pause();

    log_info(LOG, "shutting down");
    leader_stop(leader);
    manager_free(mgr);
    stop_servers(&servers);
    ops_server_free(ops);
    trust_store_destroy(store);
    agent_registry_free(registry);
    kube_client_free(client);
    free(ns);
    config_free(&cfg);
    log_info(LOG, "stopped");
    return 0;
}
