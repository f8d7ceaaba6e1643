/* escape_scanner.c — periodic search for pods that escaped injection (escape_scanner.h).
 *
 * The admission webhook cannot catch every pod: with failurePolicy Ignore a
 * pod created while it is down is admitted as is, and labelling a namespace
 * does nothing to the pods already in it. None of the reference webhooks
 * notice; this leader-only thread does. The injection rules themselves
 * (inject_precheck, inject_agent_key) decide what "should have been
 * injected" means, so the webhook and the scanner cannot drift apart.
 *
 * One pass: snapshot the AgentIdentity and Namespace caches, list (paged)
 * the pods of every opted-in namespace that has an AgentIdentity, then the
 * pods labelled agentmesh.io/inject=true elsewhere. Only when every list
 * succeeded is the pass committed: Events for pods not reported before, the
 * gauge set, and the remembered uids replaced by this pass's (so pods that
 * vanished are forgotten). A failed pass changes nothing. */
#include "controller/escape_scanner.h"

#include "common/json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "controller/strmap.h"
#include "webhook/inject.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG "escape"
#define ESCAPE_PAGE 500
/* At most this many escaped pods are remembered (and get an Event) per
 * pass; more are still counted. That many means something systemic, and
 * the gauge already says so. */
#define ESCAPE_MAX_REMEMBERED 4096
#define ESCAPE_POD_SELECTOR INJECT_LABEL_OPT "=true"

static const struct kube_gvr pods_gvr = {"", "v1", "pods", 1};

struct escape_scanner {
    struct escape_scanner_options o;
    char *operator_ns;
    struct metric *gauge;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop;                    /* under lock; read atomically between pages */
    /* Owned by the thread. */
    struct strmap *reported;     /* uid -> NULL: pods that already got their Event */
    struct strmap *series;       /* "ns/agent" -> count: the gauge series exported */
};

/* An escaped pod found in the current pass, reported at commit. */
struct escaped_pod {
    char agent_key[512];         /* "ns/name" of its AgentIdentity */
    char name[];
};

struct pass {
    struct escape_scanner *s;
    json_t *namespaces;              /* informer snapshot (AgentIdentities are looked up one by one) */
    struct strmap *agent_ns;         /* namespaces holding at least one AgentIdentity */
    struct strmap *ns_labels;        /* namespace -> its labels (borrowed, may be NULL) */
    struct strmap *scanned;          /* namespaces whose pods are listed whole */
    struct strmap *escaped;          /* uid -> struct escaped_pod * */
    struct strmap *counts;           /* "ns/agent" -> count */
    size_t unremembered;             /* escaped pods beyond ESCAPE_MAX_REMEMBERED */
};

int escape_check_pod(const json_t *pod, const json_t *ns_labels, const json_t *agent,
                     const char *operator_ns, const char **reason) {
    const char *why = NULL, *phase = json_str_at(pod, "status.phase");
    if (json_at(pod, "metadata.deletionTimestamp")) {
        why = ESCAPE_SKIP_TERMINATING;
    } else if (phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0)) {
        why = ESCAPE_SKIP_FINISHED;
    } else {
        struct inject_input in = {.pod = pod, .namespace_labels = ns_labels, .identity = agent};
        struct inject_options io = {.operator_namespace = operator_ns};
        why = inject_precheck(&in, &io);
        if (!why && !agent) why = INJECT_SKIP_NO_IDENTITY;
    }
    if (reason) *reason = why;
    return why == NULL;
}

/* Whether an ordinary pod created in `ns` now would be injected: asks the
 * injection rules about a bare pod, so the namespace opt-in (both labels)
 * and the system/operator namespace rules live only in inject.c. */
static int namespace_opted_in(const char *ns, const json_t *labels, const char *operator_ns) {
    json_t *bare = json_pack("{s:{s:s}, s:{s:[{s:s}]}}", "metadata", "namespace", ns, "spec",
                             "containers", "name", "app");
    struct inject_input in = {.pod = bare, .namespace = ns, .namespace_labels = labels};
    struct inject_options io = {.operator_namespace = operator_ns};
    int yes = bare && inject_precheck(&in, &io) == NULL;
    json_decref(bare);
    return yes;
}

static int key2(char *buf, size_t len, const char *a, const char *b) {
    int n = snprintf(buf, len, "%s/%s", a, b);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int note_agent_namespace(const json_t *a, void *arg) {
    struct pass *p = arg;
    const char *ns = json_str_at(a, "metadata.namespace");
    return !ns || strmap_has(p->agent_ns, ns) ? 0 : strmap_put(p->agent_ns, ns, NULL, NULL);
}

/* Records every namespace's labels, and which namespaces to list whole:
 * opted in, and holding an AgentIdentity (else no pod there can escape). */
static int index_namespaces(struct pass *p) {
    size_t i;
    json_t *n;
    json_array_foreach(p->namespaces, i, n) {
        const char *name = json_str_at(n, "metadata.name");
        json_t *labels = json_at(n, "metadata.labels");
        if (!name) continue;
        if (strmap_put(p->ns_labels, name, labels, NULL) != 0) return -1;
        if (strmap_has(p->agent_ns, name) && namespace_opted_in(name, labels, p->s->operator_ns) &&
            strmap_put(p->scanned, name, NULL, NULL) != 0)
            return -1;
    }
    return 0;
}

/* The AgentIdentity the pod asks for (read-only; the caller drops its reference), or NULL:
 * by name, or by service account through the agents informer's
 * "namespace/serviceAccountName" index (the first one wins). */
static json_t *find_agent(const struct pass *p, const json_t *pod) {
    int by_sa;
    const char *key = inject_agent_key(pod, &by_sa), *ns = json_str_at(pod, "metadata.namespace");
    char k[512];
    if (!ns || key2(k, sizeof k, ns, key) != 0) return NULL;
    return by_sa ? informer_get_indexed(p->s->o.agents, k) : informer_get(p->s->o.agents, k);
}

static int count_escape(struct pass *p, const char *ns, const char *agent) {
    char k[512];
    if (key2(k, sizeof k, ns, agent) != 0) return -1;
    uintptr_t n = (uintptr_t)strmap_get(p->counts, k);
    return strmap_put(p->counts, k, (void *)(n + 1), NULL);
}

/* Counts an escaped pod of agent ns/agent and keeps it for its Event. */
static int remember_escape(struct pass *p, const char *uid, const char *name, const char *ns, const char *agent) {
    if (count_escape(p, ns, agent) != 0) return -1;
    if (strmap_count(p->escaped) >= ESCAPE_MAX_REMEMBERED) {
        p->unremembered++;
        return 0;
    }
    size_t len = strlen(name) + 1;
    struct escaped_pod *e = malloc(sizeof *e + len);
    if (!e) return -1;
    memcpy(e->name, name, len);
    if (key2(e->agent_key, sizeof e->agent_key, ns, agent) != 0 || strmap_put(p->escaped, uid, e, NULL) != 0) {
        free(e);
        return -1;
    }
    return 0;
}

static int consider_pod(struct pass *p, const json_t *pod) {
    const char *uid = json_str_at(pod, "metadata.uid"), *name = json_str_at(pod, "metadata.name");
    const char *ns = json_str_at(pod, "metadata.namespace");
    if (!uid || !name || !ns || strmap_has(p->escaped, uid)) return 0;
    json_t *agent = find_agent(p, pod);
    int rc = escape_check_pod(pod, strmap_get(p->ns_labels, ns), agent, p->s->operator_ns, NULL)
                 ? remember_escape(p, uid, name, ns, json_str_at(agent, "metadata.name"))
                 : 0;
    json_decref(agent);
    return rc;
}

static int stopping(struct escape_scanner *s) {
    return __atomic_load_n(&s->stop, __ATOMIC_ACQUIRE);
}

/* Lists pods page by page (namespace `ns`, or all with `selector`), so at
 * most one page of pods is in memory. Pods of namespaces listed whole are
 * skipped in the cluster-wide list. 0, or -1 (logged). */
static int scan_pods(struct pass *p, const char *ns, const char *selector) {
    struct kube_list_opts lo = {.label_selector = selector, .limit = ESCAPE_PAGE};
    char *cont = NULL;
    int rc = 0;
    do {
        struct kube_result r;
        lo.continue_token = cont;
        if (kube_list(p->s->o.client, &pods_gvr, ns, &lo, &r) != 0) {
            log_warn(LOG, "listing pods in %s: %d %s: %s", ns ? ns : "all namespaces", r.status, r.reason,
                     r.message);
            rc = -1;
        }
        size_t i;
        json_t *pod;
        json_array_foreach(rc == 0 ? json_object_get(r.body, "items") : NULL, i, pod) {
            const char *pns = json_str_at(pod, "metadata.namespace");
            if (!ns && pns && strmap_has(p->scanned, pns)) continue;
            if (consider_pod(p, pod) != 0) {
                rc = -1;
                break;
            }
        }
        const char *next = rc == 0 ? json_str_at(r.body, "metadata.continue") : NULL;
        free(cont);
        cont = next && next[0] ? strdup(next) : NULL;
        if (next && next[0] && !cont) rc = -1;
        kube_result_free(&r);
    } while (rc == 0 && cont && !stopping(p->s));
    free(cont);
    return stopping(p->s) ? -1 : rc;
}

struct list_ctx {
    struct pass *p;
    int rc;
};

static int scan_namespace(const char *ns, void *val, void *arg) {
    (void)val;
    struct list_ctx *l = arg;
    l->rc = scan_pods(l->p, ns, NULL);
    return l->rc;
}

/* Records the Event of an escaped pod not reported before, and remembers it. */
static int report_pod(const char *uid, void *val, void *arg) {
    struct pass *p = arg;
    struct escaped_pod *e = val;
    if (strmap_has(p->s->reported, uid)) return 0;
    log_warn(LOG, "pod %s escaped injection (AgentIdentity %s)", e->name, e->agent_key);
    json_t *agent = informer_get(p->s->o.agents, e->agent_key);
    if (agent)   /* (deleted since: nothing to attach the Event to) */
        events_record(p->s->o.events, agent, "Warning", "InjectionEscaped",
                      "pod %s was admitted without the agentmesh sidecar; recreate it to inject", e->name);
    json_decref(agent);
    return 0;
}

/* Splits "ns/agent" for the gauge's labels. */
static void split2(const char *key, char *ns, size_t nslen, const char **agent) {
    const char *slash = strchr(key, '/');
    size_t n = slash ? (size_t)(slash - key) : 0;
    snprintf(ns, nslen, "%.*s", (int)n, key);
    *agent = slash ? slash + 1 : key;
}

static int set_series(const char *key, void *val, void *arg) {
    struct escape_scanner *s = arg;
    char ns[256];
    const char *agent;
    split2(key, ns, sizeof ns, &agent);
    metric_set(s->gauge, (double)(uintptr_t)val, ns, agent);
    return 0;
}

/* Drops a series of the previous pass that this pass did not find. */
struct drop_ctx {
    struct escape_scanner *s;
    const struct strmap *current;    /* the series to keep, or NULL: drop all */
};

static int drop_series(const char *key, void *val, void *arg) {
    (void)val;
    struct drop_ctx *d = arg;
    if (d->current && strmap_has(d->current, key)) return 0;
    char ns[256];
    const char *agent;
    split2(key, ns, sizeof ns, &agent);
    metric_remove(d->s->gauge, ns, agent);
    return 0;
}

static int remember_uid(const char *uid, void *val, void *arg) {
    (void)val;
    return strmap_put(arg, uid, NULL, NULL);
}

/* Events, gauge and remembered uids from a pass whose every list succeeded. */
static int commit(struct pass *p) {
    struct escape_scanner *s = p->s;
    struct strmap *reported = strmap_new();
    if (!reported || strmap_foreach(p->escaped, remember_uid, reported) != 0) {
        strmap_free(reported, NULL);
        return -1;
    }
    strmap_foreach(p->escaped, report_pod, p);
    strmap_free(s->reported, NULL);
    s->reported = reported;
    if (p->unremembered)
        log_warn(LOG, "%zu more escaped pods beyond %d: counted, but no Event", p->unremembered,
                 ESCAPE_MAX_REMEMBERED);

    strmap_foreach(p->counts, set_series, s);
    struct drop_ctx d = {s, p->counts};
    strmap_foreach(s->series, drop_series, &d);
    strmap_free(s->series, NULL);
    s->series = p->counts;
    p->counts = NULL;
    return 0;
}

static void pass_free(struct pass *p) {
    json_decref(p->namespaces);
    strmap_free(p->agent_ns, NULL);
    strmap_free(p->ns_labels, NULL);
    strmap_free(p->scanned, NULL);
    strmap_free(p->escaped, free);
    strmap_free(p->counts, NULL);
}

/* One pass. 0 when committed or skipped (caches not synced), -1 when abandoned. */
static int scan_once(struct escape_scanner *s) {
    if (!informer_has_synced(s->o.agents) || !informer_has_synced(s->o.namespaces)) return 0;
    struct pass p = {.s = s,
                     .namespaces = informer_list(s->o.namespaces),
                     .agent_ns = strmap_new(),
                     .ns_labels = strmap_new(),
                     .scanned = strmap_new(),
                     .escaped = strmap_new(),
                     .counts = strmap_new()};
    int rc = -1;
    if (!p.namespaces || !p.agent_ns || !p.ns_labels || !p.scanned || !p.escaped || !p.counts ||
        informer_foreach(s->o.agents, note_agent_namespace, &p) != 0 || index_namespaces(&p) != 0) {
        log_error(LOG, "out of memory indexing the caches");
        goto out;
    }
    struct list_ctx l = {&p, 0};
    strmap_foreach(p.scanned, scan_namespace, &l);
    if (l.rc != 0) goto out;
    if (strmap_count(p.agent_ns) > 0 && scan_pods(&p, NULL, ESCAPE_POD_SELECTOR) != 0) goto out;
    rc = commit(&p);
out:
    pass_free(&p);
    return rc;
}

static void *run(void *arg) {
    struct escape_scanner *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        pthread_mutex_unlock(&s->lock);
        if (scan_once(s) != 0 && !stopping(s))
            log_warn(LOG, "scan abandoned; retrying in %.0f s", s->o.interval_seconds);
        pthread_mutex_lock(&s->lock);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        double t = (double)until.tv_sec + (double)until.tv_nsec / 1e9 + s->o.interval_seconds;
        until.tv_sec = (time_t)t;
        until.tv_nsec = (long)((t - (double)until.tv_sec) * 1e9);
        while (!s->stop && pthread_cond_timedwait(&s->wake, &s->lock, &until) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

struct escape_scanner *escape_scanner_start(const struct escape_scanner_options *o) {
    if (!o->client || !o->events || !o->agents || !o->namespaces) {
        log_error(LOG, "escape scanner needs a client, an event recorder and both informers");
        return NULL;
    }
    struct escape_scanner *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->o = *o;
    if (s->o.interval_seconds <= 0) s->o.interval_seconds = 60;
    s->operator_ns = o->operator_namespace ? strdup(o->operator_namespace) : NULL;
    s->o.operator_namespace = s->operator_ns;
    s->gauge = metrics_gauge("agentmesh_escaped_pods",
                             "Running pods that should carry the agentmesh sidecar but were admitted without it.",
                             "namespace,agent");
    s->reported = strmap_new();
    s->series = strmap_new();
    pthread_condattr_t ca;
    int ok = (!o->operator_namespace || s->operator_ns) && s->gauge && s->reported && s->series &&
             pthread_condattr_init(&ca) == 0;
    if (ok) {
        ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&s->wake, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (ok && pthread_mutex_init(&s->lock, NULL) != 0) {
        pthread_cond_destroy(&s->wake);
        ok = 0;
    }
    if (ok && pthread_create(&s->thread, NULL, run, s) != 0) {
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->wake);
        ok = 0;
    }
    if (!ok) {
        log_error(LOG, "cannot start the escape scanner");
        strmap_free(s->reported, NULL);
        strmap_free(s->series, NULL);
        free(s->operator_ns);
        free(s);
        return NULL;
    }
    log_info(LOG, "looking for pods that escaped injection every %.0f s", s->o.interval_seconds);
    return s;
}

void escape_scanner_stop(struct escape_scanner *s) {
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    struct drop_ctx d = {s, NULL};
    strmap_foreach(s->series, drop_series, &d);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
    strmap_free(s->reported, NULL);
    strmap_free(s->series, NULL);
    free(s->operator_ns);
    free(s);
}
