/* main.c — agentmesh-controller: wires configuration, the Kubernetes
 * client, the trust store, informers + reconcilers (leader only), and the
 * listeners (metrics/probes 9090), then waits for SIGTERM and shuts down
 * in reverse order, releasing the leader Lease so a standby takes over at once. */
#include "common/identity.h"
#include "common/log.h"
#include "common/metrics.h"
#include "controller/agent_registry.h"
#include "controller/config.h"
#include "controller/kube_client.h"
#include "controller/leader.h"
#include "controller/manager.h"
#include "controller/ops_server.h"
#include "controller/redis_conn.h"
#include "controller/trust_store.h"

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
    ops_server_add_check(ops, "informers", caches_ready, mgr);
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
    ops_server_free(ops);
    trust_store_destroy(store);
    agent_registry_free(registry);
    kube_client_free(client);
    free(ns);
    config_free(&cfg);
    log_info(LOG, "stopped");
    return 0;
}
