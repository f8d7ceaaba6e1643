/* test_watch.c — informers and the watch loop against the real local API
 * server (hack/kube-up.sh; admin kubeconfig in $AGENTMESH_CLUSTER_DIR).
 *
 *  - an informer on ConfigMaps with a label selector sees create, update
 *    and delete of matching objects only, and caches the transformed object;
 *  - a watch survives an API-server restart (hack/kube-restart-apiserver.sh):
 *    objects created just before and just after it are each seen exactly
 *    once as an add;
 *  - a watch started from a resourceVersion that etcd has compacted away
 *    gets 410 and relists, ending with exactly the server's objects. Events
 *    are used there because the API server keeps no watch cache for them
 *    (kube-apiserver's default --watch-cache-sizes), so the watch reaches
 *    etcd and the compaction; a cached resource would answer from memory.
 *
 * Objects live in a namespace of their own, deleted at the end. The cluster
 * is left running. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/test/check_run.h"
#include "controller/informer.h"
#include "controller/kube_client.h"
#include "e2e/kube_fixture.h"

static char ns[64];

static const struct kube_gvr configmaps = {"", "v1", "configmaps", 1};
static const struct kube_gvr events = {"", "v1", "events", 1};
static const struct kube_gvr namespaces = {"", "v1", "namespaces", 0};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What the handlers saw, shared with the test thread. */
#define MAX_SEEN 256
struct seen {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int n;
    char what[MAX_SEEN];          /* 'a' add, 'u' update, 'd' delete */
    char name[MAX_SEEN][64];
    char rv[MAX_SEEN][32];
    int managed_fields;           /* objects handed over that still had managedFields */
};

static struct seen seen = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}, {{0}}, {{0}}, 0};

static void record(char what, const json_t *obj)
{
    pthread_mutex_lock(&seen.mu);
    if (seen.n < MAX_SEEN) {
        const char *name = json_str_at(obj, "metadata.name");
        const char *rv = json_str_at(obj, "metadata.resourceVersion");
        seen.what[seen.n] = what;
        snprintf(seen.name[seen.n], sizeof(seen.name[0]), "%s", name ? name : "?");
        snprintf(seen.rv[seen.n], sizeof(seen.rv[0]), "%s", rv ? rv : "?");
        seen.n++;
    }
    if (json_at(obj, "metadata.managedFields"))
        seen.managed_fields++;
    pthread_cond_broadcast(&seen.cond);
    pthread_mutex_unlock(&seen.mu);
}

static void on_add(void *arg, const json_t *obj)
{
    (void)arg;
    record('a', obj);
}

static void on_update(void *arg, const json_t *old_obj, const json_t *new_obj)
{
    (void)arg;
    (void)old_obj;
    record('u', new_obj);
}

static void on_delete(void *arg, const json_t *obj)
{
    (void)arg;
    record('d', obj);
}

/* How many events of kind `what` for `name` (with `rv` when non-NULL). Lock held. */
static int count_locked(char what, const char *name, const char *rv)
{
    int c = 0;
    for (int i = 0; i < seen.n; i++)
        if (seen.what[i] == what && strcmp(seen.name[i], name) == 0 &&
            (!rv || strcmp(seen.rv[i], rv) == 0))
            c++;
    return c;
}

static int count(char what, const char *name)
{
    pthread_mutex_lock(&seen.mu);
    int c = count_locked(what, name, NULL);
    pthread_mutex_unlock(&seen.mu);
    return c;
}

/* Waits up to `timeout` seconds for an event; 1 when it came. */
static int wait_for(char what, const char *name, const char *rv, double timeout)
{
    double end = now() + timeout;
    pthread_mutex_lock(&seen.mu);
    int found;
    while (!(found = count_locked(what, name, rv) > 0) && now() < end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&seen.cond, &seen.mu, &ts);
    }
    pthread_mutex_unlock(&seen.mu);
    return found;
}

/* The informer's memory diet: managedFields are never needed. */
static json_t *strip_managed_fields(json_t *obj, void *arg)
{
    (void)arg;
    json_object_del(json_object_get(obj, "metadata"), "managedFields");
    return obj;
}

static struct informer *start_informer(const struct kube_gvr *gvr, const char *selector,
                                       const char *start_rv)
{
    struct informer_opts o = {
        .gvr = *gvr,
        .ns = ns,
        .label_selector = selector,
        .transform = strip_managed_fields,
        .handlers = {on_add, on_update, on_delete, NULL},
        .resource_version = start_rv,
    };
    struct informer *inf = informer_new(kc, &o);
    ck_assert_ptr_nonnull(inf);
    ck_assert_int_eq(informer_start(inf), 0);
    return inf;
}

static json_t *labelled_configmap(const char *name, const char *label, const char *value)
{
    json_t *o = json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:{s:s}}", "apiVersion", "v1", "kind",
                          "ConfigMap", "metadata", "name", name, "labels", "e2e-watch", label,
                          "data", "v", value);
    ck_assert_ptr_nonnull(o);
    if (!label[0])
        json_object_del(json_object_get(o, "metadata"), "labels");
    return o;
}

/* Creates; retries for a while (the API server may just have restarted). */
static void create(const struct kube_gvr *gvr, json_t *obj, char *rv, size_t rvlen)
{
    struct kube_result r;
    int rc = -1;
    for (int attempt = 0; attempt < 30 && rc != 0; attempt++) {
        rc = kube_create(kc, gvr, ns, obj, &r);
        if (rc != 0 && (r.status == 0 || r.status >= 500)) {
            kube_result_free(&r);
            sleep(1);
            continue;
        }
        break;
    }
    ck_assert_msg(rc == 0, "create %s: %d %s: %s", json_str_at(obj, "metadata.name"), r.status,
                  r.reason, r.message);
    if (rv)
        snprintf(rv, rvlen, "%s", json_str_at(r.body, "metadata.resourceVersion"));
    kube_result_free(&r);
    json_decref(obj);
}

START_TEST(informer_sees_create_update_delete)
{
    struct informer *inf = start_informer(&configmaps, "e2e-watch=crud", NULL);
    ck_assert_msg(informer_wait_synced(inf, 30), "informer not synced after 30 s");
    ck_assert_uint_eq(informer_count(inf), 0);

    create(&configmaps, labelled_configmap("out-1", "", "x"), NULL, 0);
    create(&configmaps, labelled_configmap("other-1", "something-else", "x"), NULL, 0);
    char rv1[32];
    create(&configmaps, labelled_configmap("in-1", "crud", "one"), rv1, sizeof(rv1));
    ck_assert_msg(wait_for('a', "in-1", rv1, 20), "no add for in-1 rv %s", rv1);

    json_t *patch = json_pack("{s:{s:s}}", "data", "v", "two");
    struct kube_result r;
    ck_assert_int_eq(kube_patch(kc, &configmaps, ns, "in-1", NULL, KUBE_PATCH_MERGE, patch, NULL, 0,
                                &r),
                     0);
    char rv2[32];
    snprintf(rv2, sizeof(rv2), "%s", json_str_at(r.body, "metadata.resourceVersion"));
    kube_result_free(&r);
    json_decref(patch);
    ck_assert_msg(wait_for('u', "in-1", rv2, 20), "no update for in-1 rv %s", rv2);

    json_t *cached = informer_get_by_name(inf, ns, "in-1");
    ck_assert_ptr_nonnull(cached);
    ck_assert_str_eq(json_str_at(cached, "data.v"), "two");
    ck_assert_ptr_null(json_at(cached, "metadata.managedFields"));   /* transformed */
    json_decref(cached);

    OK(kube_delete(kc, &configmaps, ns, "in-1", NULL, &r), &r);
    kube_result_free(&r);
    ck_assert_msg(wait_for('d', "in-1", NULL, 20), "no delete for in-1");
    ck_assert_uint_eq(informer_count(inf), 0);
    informer_stop(inf);

    ck_assert_int_eq(count('a', "out-1") + count('a', "other-1"), 0);    /* selector honoured */
    ck_assert_int_eq(count('a', "in-1"), 1);
    ck_assert_int_eq(count('u', "in-1"), 1);
    ck_assert_int_eq(count('d', "in-1"), 1);
    ck_assert_int_eq(seen.managed_fields, 0);
    informer_free(inf);
}
END_TEST

/* Runs a script of the repository, returning its exit status. */
static int run_script(const char *cmd)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "cd %s && %s >&2", SOURCE_DIR, cmd);
    int st = system(buf);
    return st == -1 ? -1 : WEXITSTATUS(st);
}

START_TEST(watch_survives_apiserver_restart)
{
    struct informer *inf = start_informer(&configmaps, "e2e-watch=restart", NULL);
    ck_assert_msg(informer_wait_synced(inf, 30), "informer not synced after 30 s");
    char name[32];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "before-%d", i);
        create(&configmaps, labelled_configmap(name, "restart", "b"), NULL, 0);
    }
    int rc = run_script("timeout 180 hack/kube-restart-apiserver.sh");
    ck_assert_msg(rc == 0, "hack/kube-restart-apiserver.sh exited %d", rc);
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "after-%d", i);
        create(&configmaps, labelled_configmap(name, "restart", "a"), NULL, 0);
    }
    const char *prefix[] = {"before", "after"};
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < 5; i++) {
            snprintf(name, sizeof(name), "%s-%d", prefix[p], i);
            ck_assert_msg(wait_for('a', name, NULL, 90), "%s never seen after the restart", name);
        }
    sleep(2);     /* room for a duplicate to show up */
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < 5; i++) {
            snprintf(name, sizeof(name), "%s-%d", prefix[p], i);
            ck_assert_msg(count('a', name) == 1, "%s seen %d times as an add", name,
                          count('a', name));
            ck_assert_int_eq(count('d', name), 0);
        }
    ck_assert_uint_eq(informer_count(inf), 10);
    informer_stop(inf);
    informer_free(inf);
}
END_TEST

static json_t *event_obj(const char *name)
{
    json_t *o = json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:{s:s, s:s, s:s}, s:s, s:s, s:s}",
                          "apiVersion", "v1", "kind", "Event", "metadata", "name", name, "labels",
                          "e2e-watch", "compact", "involvedObject", "kind", "ConfigMap", "namespace",
                          ns, "name", "nothing", "reason", "Test", "message", "e2e watch test",
                          "type", "Normal");
    ck_assert_ptr_nonnull(o);
    return o;
}

/* Reads a command's whole output (at most buflen-1 bytes). 0 when it exited 0. */
static int capture(const char *cmd, char *buf, size_t buflen)
{
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, buflen - 1, f);
    buf[n] = '\0';
    int st = pclose(f);
    return st == 0 ? 0 : -1;
}

/* Compacts etcd at its current revision, like `etcdctl compact <rev>`. */
static void compact_etcd(void)
{
    const char *ep = getenv("ETCDCTL_ENDPOINTS");
    char cmd[512], out[4096];
    snprintf(cmd, sizeof(cmd), "env -u ETCDCTL_ENDPOINTS ETCDCTL_API=3 etcdctl --endpoints %s endpoint status -w json",
             ep && *ep ? ep : "http://127.0.0.1:2379");
    ck_assert_msg(capture(cmd, out, sizeof(out)) == 0, "%s failed: %s", cmd, out);
    /* member_id does not fit an int64: read integers as reals (the revision stays exact) */
    json_error_t je;
    json_t *st = json_loads(out, JSON_DECODE_INT_AS_REAL, &je);
    ck_assert_msg(st != NULL, "etcdctl endpoint status: %s", je.text);
    long long rev = json_int_at(json_array_get(st, 0), "Status.header.revision", -1);
    json_decref(st);
    ck_assert_int_gt(rev, 0);
    snprintf(cmd, sizeof(cmd), "env -u ETCDCTL_ENDPOINTS ETCDCTL_API=3 etcdctl --endpoints %s compact %lld 2>&1",
             ep && *ep ? ep : "http://127.0.0.1:2379", rev);
    int rc = capture(cmd, out, sizeof(out));
    /* a concurrent compaction to a newer revision is as good */
    ck_assert_msg(rc == 0 || strstr(out, "compacted"), "%s: %s", cmd, out);
}

START_TEST(watch_from_compacted_rv_relists)
{
    create(&events, event_obj("ev-1"), NULL, 0);
    create(&events, event_obj("ev-2"), NULL, 0);
    create(&events, event_obj("ev-3"), NULL, 0);
    struct kube_list_opts lo = {.label_selector = "e2e-watch=compact"};
    struct kube_result r;
    ck_assert_int_eq(kube_list(kc, &events, ns, &lo, &r), 0);
    char old_rv[32];
    snprintf(old_rv, sizeof(old_rv), "%s", json_str_at(r.body, "metadata.resourceVersion"));
    kube_result_free(&r);

    create(&events, event_obj("ev-4"), NULL, 0);
    create(&events, event_obj("ev-5"), NULL, 0);
    OK(kube_delete(kc, &events, ns, "ev-1", NULL, &r), &r);
    kube_result_free(&r);
    compact_etcd();

    /* Empty cache, watch from the compacted RV: only a relist can make it right. */
    struct informer *inf = start_informer(&events, "e2e-watch=compact", old_rv);
    ck_assert_msg(informer_wait_synced(inf, 30), "no relist within 30 s of watching from rv %s",
                  old_rv);
    ck_assert_int_eq(informer_count(inf), 4);
    ck_assert_ptr_null(informer_get_by_name(inf, ns, "ev-1"));
    const char *want[] = {"ev-2", "ev-3", "ev-4", "ev-5"};
    for (int i = 0; i < 4; i++) {
        json_t *o = informer_get_by_name(inf, ns, want[i]);
        ck_assert_msg(o != NULL, "%s missing from the cache", want[i]);
        json_decref(o);
        ck_assert_int_eq(count('a', want[i]), 1);
    }
    ck_assert_int_eq(count('a', "ev-1"), 0);    /* the replayed stream was never used */
    char rv[32];
    informer_resource_version(inf, rv, sizeof(rv));
    ck_assert_int_gt(atoll(rv), atoll(old_rv));
    informer_stop(inf);
    informer_free(inf);
}
END_TEST

static int set_up(void)
{
    set_kubeconfig();
    char err[512];
    struct kube_result r;
    struct kube_client *c = connect_admin(err, sizeof(err));
    int up = c && kube_get_path(c, "/version", &r) == 0;
    if (c)
        kube_result_free(&r);
    if (!up) {   /* not running yet: start the shared cluster (idempotent) */
        kube_client_free(c);
        if (run_script("hack/kube-up.sh") != 0) {
            fprintf(stderr, "hack/kube-up.sh failed\n");
            return -1;
        }
        c = connect_admin(err, sizeof(err));
        if (!c) {
            fprintf(stderr, "API server from %s: %s\n", kubeconfig, err);
            return -1;
        }
    }
    snprintf(ns, sizeof(ns), "watch-e2e-%ld", (long)getpid());
    json_t *nso = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace",
                            "metadata", "name", ns);
    int rc = kube_create(c, &namespaces, NULL, nso, &r);
    if (rc != 0)
        fprintf(stderr, "create namespace %s: %d %s: %s\n", ns, r.status, r.reason, r.message);
    kube_result_free(&r);
    json_decref(nso);
    kube_client_free(c);
    return rc;
}

int main(void)
{
    if (set_up() != 0)
        return EXIT_FAILURE;
    Suite *s = suite_create("watch_e2e");
    TCase *tc = tcase_create("watch");
    tcase_add_checked_fixture(tc, client_up, client_down);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, informer_sees_create_update_delete);
    tcase_add_test(tc, watch_from_compacted_rv_relists);
    tcase_add_test(tc, watch_survives_apiserver_restart);
    suite_add_tcase(s, tc);
    int rc = check_run(s, CK_FORK_GETENV);
    delete_test_namespace(ns);
    return rc;
}
