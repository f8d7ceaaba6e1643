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
#include "common/startup_pages.h"
#include "controller/agent_registry.h"
#include "controller/audit_pipeline.h"
#include "controller/config.h"
#include "controller/escape_scanner.h"
#include "controller/kube_client.h"
#include "controller/leader.h"
#include "controller/manager.h"
#include "controller/ops_server.h"
#include "controller/redis_conn.h"
#include "controller/trust_api.h"
#include "controller/trust_store.h"
#include "controller/webhook_lookup.h"
#include "webhook/cert_manager.h"
#include "webhook/certs.h"
#include "webhook/webhook_server.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG "main"

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t exit_code;
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

/* Ends the process from any thread: main's sigsuspend takes the signal. */
static void request_exit(int code) {
    exit_code = code;
    kill(getpid(), SIGTERM);
}

/* The leader's extra duty besides reconciling: reporting pods that escaped injection. */
static struct escape_scanner_options escape_opts;
static struct escape_scanner *escape_scanner;

static void on_started_leading(void *arg) {
    if (manager_start_workers(arg) != 0) {
        log_error(LOG, "cannot start workers");
        request_exit(1);
        return;
    }
    struct escape_scanner *es = escape_scanner_start(&escape_opts);
    if (!es) {
        log_error(LOG, "cannot start the escaped-pod scanner");
        request_exit(1);
        return;
    }
    __atomic_store_n(&escape_scanner, es, __ATOMIC_RELEASE);
}

static void on_stopped_leading(void *arg) {
    (void)arg;
    /* Like controller-runtime: a replica that lost its lease exits, and restarts clean. */
    log_error(LOG, "leadership lost; exiting so a clean replica takes over");
    request_exit(1);
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
    struct cert_manager *certs;
    SSL_CTX *first_tls;              /* the first certificate, for starting the API with --api-tls */
    char api_names[4][256];          /* the API Service's DNS names, for its TLS SANs */
};

/* Each new certificate (file reload or self-managed renewal): the webhook
 * listener starts on the first one; the trust API swaps to every one. */
static void on_webhook_certificate(SSL_CTX *ctx, int first, void *arg) {
    struct servers *s = arg;
    char err[256];
    if (first) {
        if (httpd_start(s->webhook_http, err, sizeof err) != 0) log_error(LOG, "webhook listener: %s", err);
        if (SSL_CTX_up_ref(ctx) == 1) __atomic_store_n(&s->first_tls, ctx, __ATOMIC_RELEASE);
    }
    struct trust_api *api = __atomic_load_n(&s->api, __ATOMIC_ACQUIRE);
    if (api) trust_api_set_tls(api, ctx);
}

static int webhook_cert_ready(void *arg, char *why, size_t whylen) {
    return cert_manager_ready(((struct servers *)arg)->certs, why, whylen);
}

static int start_servers(struct servers *s, const struct config *cfg, struct kube_client *client, int api_minor,
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

    static char controller_url[128];
    snprintf(controller_url, sizeof controller_url, "%s://agentmesh-controller.%s.svc:%d",
             cfg->api_tls ? "https" : "http", ns, cfg->api_port);
    struct webhook_config wc = {
        .inject = {.api_minor = api_minor, .operator_namespace = ns,
                   .sidecar_image = cfg->sidecar_image, .controller_url = controller_url},
        .identity = webhook_lookup_identity, .identity_arg = &s->lookup,
        .ns_labels = webhook_lookup_ns_labels, .ns_labels_arg = &s->lookup,
    };
    struct httpd_options wo = {.name = "webhook", .address = cfg->bind_address, .port = cfg->webhook_port,
                               .threads = cfg->webhook_threads, .max_body = WEBHOOK_MAX_BODY,
                               .timeout_seconds = 10, .tls = 1, .sched_slice_us = cfg->sched_slice_us};
    s->webhook_http = httpd_new(&wo);
    s->webhook = s->webhook_http ? webhook_register(s->webhook_http, &wc) : NULL;
    if (!s->webhook) {
        snprintf(err, errlen, "cannot set up the webhook listener");
        return -1;
    }
    /* --webhook-cert-dir (cert-manager / Secret volume, reloaded on change),
     * else self-managed CA + serving certificate in Secret agentmesh-webhook-tls. */
    certs_service_names("agentmesh-controller", ns, s->api_names);
    const char *dns[] = {s->api_names[0], s->api_names[1], s->api_names[2], s->api_names[3]};
    const char *ips[] = {"127.0.0.1"};
    struct httpd *const listeners[] = {s->webhook_http};
    struct cert_manager_options co = {.cert_dir = cfg->webhook_cert_dir, .client = client, .namespace = ns,
                                      .servers = listeners, .nservers = 1, .dns_sans = dns, .ndns_sans = 4,
                                      .ip_sans = ips, .nip_sans = 1,
                                      .on_certificate = on_webhook_certificate, .on_certificate_arg = s};
    s->certs = cert_manager_start(&co, err, errlen);
    if (!s->certs) return -1;

    /* The API takes TLS from the first certificate; until one exists it cannot start with --api-tls. */
    struct trust_api_options to = {.address = cfg->bind_address, .port = cfg->api_port,
                                   .threads = cfg->api_threads, .registry = registry, .store = store,
                                   .max_requests_per_second = cfg->api_rate_limit,
                                   .sched_slice_us = cfg->sched_slice_us,
                                   .audit = audit_pipeline_emit, .audit_arg = s->audit,
                                   .audit_verify = audit_pipeline_verify, .audit_verify_arg = s->audit};
    if (cfg->api_tls) {
        char why[256] = "";
        for (int i = 0; i < 100 && !__atomic_load_n(&s->first_tls, __ATOMIC_ACQUIRE); i++) {
            cert_manager_ready(s->certs, why, sizeof why);
            usleep(100000);
        }
        to.tls = __atomic_load_n(&s->first_tls, __ATOMIC_ACQUIRE);
        if (!to.tls) {
            snprintf(err, errlen, "--api-tls: no certificate after 10 s: %s", why);
            return -1;
        }
    }
    struct trust_api *api = trust_api_new(&to, err, errlen);
    if (!api || trust_api_start(api, err, errlen) != 0) {
        trust_api_free(api);
        return -1;
    }
    __atomic_store_n(&s->api, api, __ATOMIC_RELEASE);
    return 0;
}

static void stop_servers(struct servers *s) {
    cert_manager_stop(s->certs); /* first: its callback touches the API and the listener */
    trust_api_free(s->api);
    httpd_free(s->webhook_http);
    webhook_free(s->webhook);
    audit_pipeline_free(s->audit);
    informer_free(s->namespaces);
    SSL_CTX_free(s->first_tls);
}

int main(int argc, char **argv) {
    /* Two malloc arenas instead of one per core-multiple: with ~20 threads
     * (informers, workers, listeners) per-thread arenas fragment the caches'
     * many small allocations and hold freed memory; the locks are never hot. */
    mallopt(M_ARENA_MAX, 2);
    struct config cfg;
    char err[512] = "";
    int rc = config_load(&cfg, argc, argv, err, sizeof err);
    if (rc != 0) {
        if (rc < 0) fprintf(stderr, "agentmesh-controller: %s\n", err);
        config_free(&cfg);
        return rc < 0 ? 2 : 0;
    }
    enum log_level lvl;
    if (log_parse_level(cfg.log_level, &lvl) == 0) log_set_level(lvl);
    /* SIGTERM/SIGINT are blocked in every thread and taken only by main's
     * sigsuspend, so no signal can slip in between "check" and "wait". */
    sigset_t stop_signals, waiting_mask;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &waiting_mask);
    sigdelset(&waiting_mask, SIGTERM);
    sigdelset(&waiting_mask, SIGINT);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Everything below is torn down in reverse order on every path, so no
     * thread is still inside libcurl/OpenSSL when the process exits. */
    struct kube_client *client = NULL;
    struct trust_store *store = NULL;
    struct agent_registry *registry = NULL;
    struct manager *mgr = NULL;
    struct ops_server *ops = NULL;
    struct leader *leader = NULL;
    struct servers servers;
    memset(&servers, 0, sizeof servers);
    char *ns = NULL;
    rc = 1;

    struct kube_config kc;
    if (identity_init() != 0) {
        snprintf(err, sizeof err, "libsodium initialisation failed");
        goto out;
    }
    if (kube_config_resolve(cfg.kubeconfig, &kc, err, sizeof err) != 0) goto out;
    client = kube_client_new(&kc, err, sizeof err);
    ns = operator_namespace(&cfg, &kc);
    kube_config_free(&kc);
    if (!client || !ns) goto out;
    kube_client_set_request_hook(client, count_request);
    if (!(store = open_store(&cfg, err, sizeof err))) goto out;
    if (!(registry = agent_registry_new())) goto out;
    log_info(LOG, "agentmesh-controller starting in namespace %s, trust store %s", ns, store->kind);
    /* The first API request runs OpenSSL's and libcurl's start-up (configuration,
     * providers, the first handshake); no thread has started yet, which is
     * what startup_pages_drop needs. */
    int api_minor = api_minor_version(client);
    char why[160];
    long dropped_kb = startup_pages_drop(why, sizeof why);
    if (dropped_kb < 0) log_warn(LOG, "start-up's library pages stay mapped: %s", why);
    else log_info(LOG, "unmapped %ld KiB of library pages only start-up used", dropped_kb);

    struct manager_options mo = {.client = client, .store = store, .registry = registry,
                                 .operator_namespace = ns, .workers = cfg.workers,
                                 .api_port = cfg.api_port, .status_min_interval = cfg.status_min_interval};
    mgr = manager_new(&mo);
    ops = ops_server_new(cfg.bind_address, cfg.metrics_port);
    if (!mgr || !ops || manager_start_informers(mgr) != 0) {
        snprintf(err, sizeof err, "cannot start informers");
        goto out;
    }
    if (start_servers(&servers, &cfg, client, api_minor, mgr, registry, store, ns, err, sizeof err) != 0) goto out;
    ops_server_add_check(ops, "informers", caches_ready, mgr);
    ops_server_add_check(ops, "webhook-certificate", webhook_cert_ready, &servers);
    ops_server_add_check(ops, "audit-spool", audit_pipeline_ready, servers.audit);
    ops_server_on_scrape(ops, scrape, mgr);
    if (ops_server_start(ops, err, sizeof err) != 0) goto out;
    escape_opts = (struct escape_scanner_options){
        .client = client, .events = manager_controller(mgr)->events, .agents = manager_controller(mgr)->agents,
        .namespaces = servers.namespaces, .operator_namespace = ns, .interval_seconds = 60};

    if (cfg.leader_elect) {
        char id[300];
        replica_identity(id, sizeof id);
        struct leader_options lo = {.client = client, .namespace = ns, .name = cfg.leader_election_id,
                                    .identity = id, .on_started = on_started_leading,
                                    .on_stopped = on_stopped_leading, .arg = mgr};
        if (manager_start_standby(mgr) != 0 || !(leader = leader_start(&lo))) {
            snprintf(err, sizeof err, "cannot start leader election");
            goto out;
        }
    } else {
        on_started_leading(mgr);
    }

    while (!stop_requested) sigsuspend(&waiting_mask);
    log_info(LOG, "shutting down");
    rc = exit_code;
out:
    if (rc != 0 && *err) log_error(LOG, "%s", err);
    leader_stop(leader); /* joins the election thread: no scanner start can race the stop below */
    escape_scanner_stop(__atomic_exchange_n(&escape_scanner, NULL, __ATOMIC_ACQ_REL));
    manager_free(mgr);
    stop_servers(&servers);
    ops_server_free(ops);
    trust_store_destroy(store);
    agent_registry_free(registry);
    kube_client_free(client);
    free(ns);
    config_free(&cfg);
    log_info(LOG, "stopped");
    return rc;
}
