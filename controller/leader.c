/* leader.c — Lease-based leader election (see leader.h). */
#include "controller/leader.h"

#include "common/json.h"
#include "common/log.h"
#include "common/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG "leader"

static const struct kube_gvr lease_gvr = {"coordination.k8s.io", "v1", "leases", 1};

struct leader {
    struct leader_options o;
    char *ns, *name, *identity;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;
    atomic_int leading;
    double last_renew;            /* monotonic, our last successful renew */
    char observed_rv[64];         /* the Lease resourceVersion we last saw */
    double observed_at;           /* monotonic time it last changed */
    struct metric *status_metric;
};

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* metav1.MicroTime: RFC3339 with microseconds. */
static void micro_time(char *buf, size_t len) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%.20s.%06dZ", base, (int)(ts.tv_nsec / 1000) % 1000000);
}

static json_t *lease_spec(struct leader *l, int transitions, const char *acquire, int release) {
    char now[48];
    micro_time(now, sizeof now);
    return json_pack("{s:s, s:i, s:s, s:s, s:i}", "holderIdentity", release ? "" : l->identity,
                     "leaseDurationSeconds", release ? 1 : (int)l->o.lease_duration, "acquireTime",
                     acquire ? acquire : now, "renewTime", now, "leaseTransitions", transitions);
}

static int create_lease(struct leader *l) {
    json_t *obj = json_pack("{s:s, s:s, s:{s:s, s:s}, s:o}", "apiVersion", "coordination.k8s.io/v1", "kind",
                            "Lease", "metadata", "name", l->name, "namespace", l->ns, "spec",
                            lease_spec(l, 0, NULL, 0));
    struct kube_result r = {0};
    int rc = kube_create(l->o.client, &lease_gvr, l->ns, obj, &r);
    json_decref(obj);
    kube_result_free(&r);
    return rc;
}

/* Writes the Lease with our holder (or released), guarded by resourceVersion. */
static int write_lease(struct leader *l, const json_t *current, int release) {
    const char *holder = json_str_at(current, "spec.holderIdentity");
    int ours = holder && strcmp(holder, l->identity) == 0;
    int transitions = (int)json_int_at(current, "spec.leaseTransitions", 0) + (ours || release ? 0 : 1);
    const char *acquire = ours ? json_str_at(current, "spec.acquireTime") : NULL;
    json_t *obj = json_deep_copy(current);
    json_object_set_new(obj, "spec", lease_spec(l, transitions, acquire, release));
    struct kube_result r = {0};
    int rc = kube_update(l->o.client, &lease_gvr, l->ns, l->name, NULL, obj, &r);
    json_decref(obj);
    kube_result_free(&r);
    return rc;
}

/* One attempt to acquire or renew. 1 = we hold the Lease now, 0 = someone else does, -1 = error. */
static int try_acquire_or_renew(struct leader *l) {
    struct kube_result r = {0};
    if (kube_get(l->o.client, &lease_gvr, l->ns, l->name, NULL, &r) != 0) {
        int notfound = kube_is_reason(&r, "NotFound");
        kube_result_free(&r);
        if (!notfound) return -1;
        return create_lease(l) == 0 ? 1 : -1;
    }
    const char *rv = json_str_at(r.body, "metadata.resourceVersion");
    const char *holder = json_str_at(r.body, "spec.holderIdentity");
    double duration = (double)json_int_at(r.body, "spec.leaseDurationSeconds", (long long)l->o.lease_duration);
    double now = mono();
    if (rv && strcmp(rv, l->observed_rv) != 0) {
        snprintf(l->observed_rv, sizeof l->observed_rv, "%s", rv);
        l->observed_at = now;
    }
    int ours = holder && strcmp(holder, l->identity) == 0;
    int free_lease = !holder || !*holder || now - l->observed_at >= duration;
    int rc = 0;
    if (ours || free_lease) rc = write_lease(l, r.body, 0) == 0 ? 1 : -1;
    kube_result_free(&r);
    return rc;
}

static void set_leading(struct leader *l, int leading) {
    int was = atomic_exchange(&l->leading, leading);
    metric_set(l->status_metric, leading, l->name);
    if (was == leading) return;
    if (leading) {
        log_info(LOG, "%s acquired lease %s/%s", l->identity, l->ns, l->name);
        if (l->o.on_started) l->o.on_started(l->o.arg);
    } else {
        log_warn(LOG, "%s lost lease %s/%s", l->identity, l->ns, l->name);
        if (l->o.on_stopped) l->o.on_stopped(l->o.arg);
    }
}

static void *election_main(void *arg) {
    struct leader *l = arg;
    pthread_mutex_lock(&l->lock);
    while (!l->stopping) {
        pthread_mutex_unlock(&l->lock);
        int rc = try_acquire_or_renew(l);
        double now = mono();
        if (rc == 1) {
            l->last_renew = now;
            set_leading(l, 1);
        } else if (atomic_load(&l->leading) && (rc == 0 || now - l->last_renew > l->o.renew_deadline)) {
            set_leading(l, 0);
        }
        pthread_mutex_lock(&l->lock);
        if (l->stopping) break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        double wait = l->o.retry_period * (rc == 1 ? 1.0 : 0.8 + 0.4 * ((double)rand() / RAND_MAX));
        until.tv_sec += (time_t)wait;
        until.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&l->wake, &l->lock, &until);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

struct leader *leader_start(const struct leader_options *opts) {
    struct leader *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->o = *opts;
    if (l->o.lease_duration <= 0) l->o.lease_duration = 15;
    if (l->o.renew_deadline <= 0) l->o.renew_deadline = 10;
    if (l->o.retry_period <= 0) l->o.retry_period = 2;
    l->ns = strdup(opts->namespace);
    l->name = strdup(opts->name);
    l->identity = strdup(opts->identity);
    if (!l->ns || !l->name || !l->identity) goto fail;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->wake, NULL);
    l->observed_at = mono();
    l->status_metric = metrics_gauge("leader_election_master_status",
                                     "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master.",
                                     "name");
    metric_set(l->status_metric, 0, l->name);
    if (pthread_create(&l->thread, NULL, election_main, l) != 0) goto fail;
    return l;
fail:
    free(l->ns);
    free(l->name);
    free(l->identity);
    free(l);
    return NULL;
}

void leader_stop(struct leader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->lock);
    l->stopping = 1;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    if (atomic_load(&l->leading)) {
        struct kube_result r = {0};
        if (kube_get(l->o.client, &lease_gvr, l->ns, l->name, NULL, &r) == 0 &&
            json_str_at(r.body, "spec.holderIdentity") &&
            strcmp(json_str_at(r.body, "spec.holderIdentity"), l->identity) == 0) {
            if (write_lease(l, r.body, 1) == 0) log_info(LOG, "released lease %s/%s", l->ns, l->name);
        }
        kube_result_free(&r);
        atomic_store(&l->leading, 0);
    }
    pthread_cond_destroy(&l->wake);
    pthread_mutex_destroy(&l->lock);
    free(l->ns);
    free(l->name);
    free(l->identity);
    free(l);
}
