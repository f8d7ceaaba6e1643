/* manager.c — informers → work queues → reconcile workers (manager.h). */
#include "controller/manager.h"

#include "common/json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "controller/agent_render.h"

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORKERS 32
#define LOG "manager"

const struct kube_gvr GVR_AGENTIDENTITIES = {"agentmesh.io", "v1alpha1", "agentidentities", 1};
const struct kube_gvr GVR_TRUSTPOLICIES = {"agentmesh.io", "v1alpha1", "trustpolicies", 1};
const struct kube_gvr GVR_SERVICEACCOUNTS = {"", "v1", "serviceaccounts", 1};
const struct kube_gvr GVR_SECRETS = {"", "v1", "secrets", 1};
const struct kube_gvr GVR_NETWORKPOLICIES = {"networking.k8s.io", "v1", "networkpolicies", 1};
const struct kube_gvr GVR_PODS = {"", "v1", "pods", 1};

static const char *children_selector = LABEL_MANAGED_BY "=" LABEL_MANAGED_BY_VALUE;

struct worker {
    struct manager *m;
    struct workqueue *queue;
    const char *controller_name;
    int (*reconcile)(struct controller *c, const char *key, double *requeue_after);
    pthread_t thread;
};

struct manager {
    struct controller c;
    int nworkers;
    struct worker workers[MAX_WORKERS + 1];
    int running_workers;
    struct metric *reconcile_total, *reconcile_time, *wq_depth, *wq_adds, *wq_retries;
    unsigned long long reported_adds[2], reported_retries[2];
    int reconciles_untrimmed;   /* since the last give_back_memory */
};

json_t *manager_strip_object(json_t *obj, void *arg) {
    (void)arg;
    json_t *meta = json_object_get(obj, "metadata");
    json_object_del(meta, "managedFields");
    json_object_del(meta, "creationTimestamp");
    json_object_del(json_object_get(meta, "annotations"), "kubectl.kubernetes.io/last-applied-configuration");
    return obj;
}

/* Our children (ServiceAccounts, Secrets, NetworkPolicies): their own uid and
 * generation are never read (ownerReferences point at the AgentIdentity's),
 * and a uid is 36 characters no dictionary compresses, per child. */
static json_t *strip_child(json_t *obj, void *arg) {
    manager_strip_object(obj, arg);
    json_t *meta = json_object_get(obj, "metadata");
    json_object_del(meta, "uid");
    json_object_del(meta, "generation");
    return obj;
}

json_t *manager_strip_secret(json_t *obj, void *arg) {
    strip_child(obj, arg);
    json_object_del(json_object_get(obj, "data"), "ed25519.key");
    return obj;
}

/* Pods: only name, namespace, labels, resourceVersion and deletion matter to
 * us. Absent fields stay absent (not null): callers test presence. */
static json_t *strip_pod(json_t *obj, void *arg) {
    (void)arg;
    static const char *const keep[] = {"name", "namespace", "resourceVersion", "labels", "deletionTimestamp"};
    json_t *slim = json_pack("{s:o}", "metadata", json_pick(json_object_get(obj, "metadata"), keep,
                                                               sizeof keep / sizeof keep[0]));
    json_decref(obj);
    return slim;
}

/* ServiceAccounts: only metadata matters to us (not the token secrets list). */
static json_t *strip_service_account(json_t *obj, void *arg) {
    strip_child(obj, arg);
    json_object_del(obj, "secrets");
    json_object_del(obj, "imagePullSecrets");
    return obj;
}

static void enqueue_obj(struct workqueue *q, const json_t *obj) {
    char key[400];
    if (informer_key(obj, key, sizeof key) == 0) workqueue_add(q, key);
}

static int enqueue_visit(const json_t *obj, void *q) {
    enqueue_obj(q, obj);
    return 0;
}

/* Every TrustPolicy of a namespace: their matchedAgents count may have changed. */
static void enqueue_policies_of(struct manager *m, const char *ns) {
    json_t *all = informer_list(m->c.policies);
    size_t i;
    json_t *p;
    json_array_foreach(all, i, p) {
        const char *pns = json_str_at(p, "metadata.namespace");
        if (pns && ns && strcmp(pns, ns) == 0) enqueue_obj(m->c.policy_queue, p);
    }
    json_decref(all);
}

static void agent_added(void *arg, const json_t *obj) {
    struct manager *m = arg;
    enqueue_obj(m->c.agent_queue, obj);
    enqueue_policies_of(m, json_str_at(obj, "metadata.namespace"));
}

static void agent_updated(void *arg, const json_t *old_obj, const json_t *new_obj) {
    struct manager *m = arg;
    enqueue_obj(m->c.agent_queue, new_obj);
    if (!json_equal(json_at(old_obj, "metadata.labels"), json_at(new_obj, "metadata.labels")))
        enqueue_policies_of(m, json_str_at(new_obj, "metadata.namespace"));
}

static void agent_deleted(void *arg, const json_t *obj) {
    struct manager *m = arg;
    enqueue_obj(m->c.agent_queue, obj);
    enqueue_policies_of(m, json_str_at(obj, "metadata.namespace"));
}

static void policy_changed(struct manager *m, const json_t *obj) {
    enqueue_obj(m->c.policy_queue, obj);
    controller_enqueue_namespace(&m->c, json_str_at(obj, "metadata.namespace"));
}
static void policy_added(void *arg, const json_t *obj) { policy_changed(arg, obj); }
static void policy_updated(void *arg, const json_t *o, const json_t *n) {
    (void)o;
    policy_changed(arg, n);
}

/* A child changed or vanished: reconcile its agent (named by our label). */
static void child_changed(struct manager *m, const json_t *obj) {
    const char *ns = json_str_at(obj, "metadata.namespace");
    const char *agent = json_string_value(json_object_get(json_at(obj, "metadata.labels"), LABEL_AGENT));
    char key[400];
    if (ns && agent && snprintf(key, sizeof key, "%s/%s", ns, agent) < (int)sizeof key)
        workqueue_add(m->c.agent_queue, key);
}
static void child_added(void *arg, const json_t *obj) { child_changed(arg, obj); }
static void child_updated(void *arg, const json_t *o, const json_t *n) {
    (void)o;
    child_changed(arg, n);
}

/* A pod that appears, goes, or whose tier label drifts: reconcile its agent. */
static void pod_updated(void *arg, const json_t *o, const json_t *n) {
    const json_t *ol = json_at(o, "metadata.labels"), *nl = json_at(n, "metadata.labels");
    if (!json_equal(json_object_get(ol, LABEL_TIER), json_object_get(nl, LABEL_TIER)) ||
        !json_equal(json_object_get(ol, LABEL_AGENT), json_object_get(nl, LABEL_AGENT)) ||
        !json_equal(json_at(o, "metadata.deletionTimestamp"), json_at(n, "metadata.deletionTimestamp")))
        child_changed(arg, n);
}

/* The trust store saw a signal for `did` (possibly on another replica). */
static void trust_changed(const char *did, void *arg) {
    struct manager *m = arg;
    struct agent_record rec;
    if (agent_registry_get(m->c.registry, did, &rec) != 0) return;
    char key[AGENT_NS_MAX + AGENT_NAME_MAX + 2];
    snprintf(key, sizeof key, "%s/%s", rec.ns, rec.name);
    agent_record_clear(&rec);
    workqueue_add(m->c.agent_queue, key);
}

static struct informer *make_informer(struct manager *m, const struct kube_gvr *gvr, const char *selector,
                                      informer_transform_fn transform, struct informer_handlers h) {
    struct informer_opts o;
    memset(&o, 0, sizeof o);
    o.gvr = *gvr;
    o.label_selector = selector;
    o.transform = transform;
    o.index_key = gvr == &GVR_PODS ? agent_pod_index_key : gvr == &GVR_AGENTIDENTITIES ? agent_sa_index_key : NULL;
    o.handlers = h;
    o.handlers.arg = m;
    return informer_new(m->c.client, &o);
}

struct manager *manager_new(const struct manager_options *opts) {
    struct manager *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    struct controller *c = &m->c;
    c->client = opts->client;
    c->store = opts->store;
    c->registry = opts->registry;
    c->operator_namespace = opts->operator_namespace;
    c->api_port = opts->api_port ? opts->api_port : 8080;
    m->nworkers = opts->workers < 1 ? 1 : opts->workers > MAX_WORKERS ? MAX_WORKERS : opts->workers;
    c->status_writes = status_throttle_new(opts->status_min_interval > 0 ? opts->status_min_interval : 10);
    c->events = events_new(c->client, AGENTMESH_FIELD_MANAGER);
    struct workqueue_opts qa = {.name = "agentidentity"}, qp = {.name = "trustpolicy"};
    c->agent_queue = workqueue_new(&qa);
    c->policy_queue = workqueue_new(&qp);
    struct informer_handlers ah = {agent_added, agent_updated, agent_deleted, NULL};
    struct informer_handlers ph = {policy_added, policy_updated, policy_added, NULL};
    struct informer_handlers ch = {child_added, child_updated, child_added, NULL};
    c->agents = make_informer(m, &GVR_AGENTIDENTITIES, NULL, manager_strip_object, ah);
    c->policies = make_informer(m, &GVR_TRUSTPOLICIES, NULL, manager_strip_object, ph);
    c->sas = make_informer(m, &GVR_SERVICEACCOUNTS, children_selector, strip_service_account, ch);
    c->secrets = make_informer(m, &GVR_SECRETS, children_selector, manager_strip_secret, ch);
    c->netpols = make_informer(m, &GVR_NETWORKPOLICIES, children_selector, strip_child, ch);
    struct informer_handlers podh = {child_added, pod_updated, child_added, NULL};
    c->pods = make_informer(m, &GVR_PODS, LABEL_AGENT, strip_pod, podh);
    if (!c->status_writes || !c->events || !c->agent_queue || !c->policy_queue || !c->agents ||
        !c->policies || !c->sas || !c->secrets || !c->netpols || !c->pods) {
        manager_free(m);
        return NULL;
    }
    if (c->store->set_listener(c->store, trust_changed, m) != 0)
        log_warn(LOG, "trust store has no change listener; scores reach status on the next resync");
    m->reconcile_total = metrics_counter("controller_runtime_reconcile_total",
                                         "Total number of reconciliations per controller.", "controller,result");
    m->reconcile_time = metrics_histogram("controller_runtime_reconcile_time_seconds",
                                          "Length of time per reconciliation per controller.", "controller", NULL, 0);
    m->wq_depth = metrics_gauge("workqueue_depth", "Current depth of workqueue.", "name");
    m->wq_adds = metrics_counter("workqueue_adds_total", "Total number of adds handled by workqueue.", "name");
    m->wq_retries = metrics_counter("workqueue_retries_total", "Total number of retries handled by workqueue.", "name");
    return m;
}

int manager_start_informers(struct manager *m) {
    struct informer *all[] = {m->c.agents, m->c.policies, m->c.sas, m->c.secrets, m->c.netpols, m->c.pods};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (informer_start(all[i]) != 0) return -1;
    return 0;
}

int manager_synced(struct manager *m) {
    return informer_has_synced(m->c.agents) && informer_has_synced(m->c.policies) &&
           informer_has_synced(m->c.sas) && informer_has_synced(m->c.secrets) &&
           informer_has_synced(m->c.netpols) && informer_has_synced(m->c.pods);
}

/* An AgentIdentity worker's step: the full reconcile once this replica
 * leads, the registry refresh until then. */
static int agent_step(struct controller *c, const char *key, double *requeue_after) {
    return __atomic_load_n(&c->leading, __ATOMIC_ACQUIRE) ? agent_reconcile(c, key, requeue_after)
                                                         : agent_refresh(c, key, requeue_after);
}

/* A burst of reconciles (a flood of new agents, the first pass after a
 * start) leaves its decoded objects and replies freed between the caches'
 * long-lived entries, where malloc keeps the pages: 13 MB held for 5 MB in
 * use after a start with 1,000 agents. When a queue runs empty the burst is
 * over: hand the free pages back (RSS 27 -> 20 MiB there). Only after
 * TRIM_AFTER reconciles, so a trickle of single ones does not pay for a
 * trim each; counted rather than timed, so the end of a burst is never
 * skipped for being too soon after the last trim. */
#define TRIM_AFTER 8
static void give_back_memory(struct manager *m, struct workqueue *q) {
    int done = __atomic_add_fetch(&m->reconciles_untrimmed, 1, __ATOMIC_RELAXED);
    if (done < TRIM_AFTER || workqueue_len(q) > 0 ||
        !__atomic_compare_exchange_n(&m->reconciles_untrimmed, &done, 0, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return;
    malloc_trim(0);
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    struct controller *c = &w->m->c;
    char *key;
    while ((key = workqueue_get(w->queue)) != NULL) {
        double t0 = metrics_now(), requeue = 0;
        int rc = w->reconcile(c, key, &requeue);
        metric_observe(w->m->reconcile_time, metrics_now() - t0, w->controller_name);
        if (rc != 0) {
            metric_add(w->m->reconcile_total, 1, w->controller_name, "error");
            workqueue_add_rate_limited(w->queue, key);
        } else {
            workqueue_forget(w->queue, key);
            if (requeue > 0) workqueue_add_after(w->queue, key, requeue);
            metric_add(w->m->reconcile_total, 1, w->controller_name, requeue > 0 ? "requeue_after" : "success");
        }
        workqueue_done(w->queue, key);
        free(key);
        give_back_memory(w->m, w->queue);
    }
    return NULL;
}

/* Starts workers up to index `last` (the TrustPolicy worker is the last one). */
static int start_workers_up_to(struct manager *m, int last) {
    for (int i = m->running_workers; i <= last; i++) {
        struct worker *w = &m->workers[i];
        w->m = m;
        int policy = i == m->nworkers;
        w->queue = policy ? m->c.policy_queue : m->c.agent_queue;
        w->controller_name = policy ? "trustpolicy" : "agentidentity";
        w->reconcile = policy ? policy_reconcile : agent_step;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) return -1;
        m->running_workers++;
    }
    return 0;
}

int manager_start_standby(struct manager *m) {
    if (start_workers_up_to(m, 0) != 0) return -1;
    log_info(LOG, "standby: 1 worker keeps this replica's agent registry current");
    return 0;
}

int manager_start_workers(struct manager *m) {
    __atomic_store_n(&m->c.leading, 1, __ATOMIC_RELEASE);
    if (start_workers_up_to(m, m->nworkers) != 0) return -1;
    /* Everything the informers delivered before we led is queued already; requeue all to be sure. */
    if (informer_foreach(m->c.agents, enqueue_visit, m->c.agent_queue) != 0 ||
        informer_foreach(m->c.policies, enqueue_visit, m->c.policy_queue) != 0)
        log_error(LOG, "out of memory queueing the cached objects; they reconcile on their next change");
    log_info(LOG, "started %d AgentIdentity worker(s) and 1 TrustPolicy worker", m->nworkers);
    return 0;
}

static void report_queue(struct manager *m, struct workqueue *q, const char *name, int idx) {
    struct workqueue_stats s;
    workqueue_stats(q, &s);
    metric_set(m->wq_depth, (double)s.depth, name);
    metric_add(m->wq_adds, (double)(s.adds - m->reported_adds[idx]), name);
    metric_add(m->wq_retries, (double)(s.retries - m->reported_retries[idx]), name);
    m->reported_adds[idx] = s.adds;
    m->reported_retries[idx] = s.retries;
}

void manager_update_metrics(struct manager *m) {
    report_queue(m, m->c.agent_queue, "agentidentity", 0);
    report_queue(m, m->c.policy_queue, "trustpolicy", 1);
}

void manager_stop(struct manager *m) {
    if (!m) return;
    workqueue_shutdown(m->c.agent_queue);
    workqueue_shutdown(m->c.policy_queue);
    for (int i = 0; i < m->running_workers; i++) pthread_join(m->workers[i].thread, NULL);
    m->running_workers = 0;
    struct informer *all[] = {m->c.agents, m->c.policies, m->c.sas, m->c.secrets, m->c.netpols, m->c.pods};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]) informer_stop(all[i]);
}

void manager_free(struct manager *m) {
    if (!m) return;
    manager_stop(m);
    if (m->c.store) m->c.store->set_listener(m->c.store, NULL, NULL);
    informer_free(m->c.agents);
    informer_free(m->c.policies);
    informer_free(m->c.sas);
    informer_free(m->c.secrets);
    informer_free(m->c.netpols);
    informer_free(m->c.pods);
    workqueue_free(m->c.agent_queue);
    workqueue_free(m->c.policy_queue);
    events_free(m->c.events);
    status_throttle_free(m->c.status_writes);
    free(m);
}

struct controller *manager_controller(struct manager *m) { return &m->c; }
