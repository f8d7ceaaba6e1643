/* test_kube_client.c — the Kubernetes client against the real local API
 * server (hack/kube-up.sh; admin kubeconfig in $AGENTMESH_CLUSTER_DIR).
 *
 * Every verb on a ConfigMap and on a custom resource of a tiny test CRD
 * (widgets.test.agentmesh.io, with a /status subresource), pagination,
 * Conflict / NotFound / AlreadyExists reasons, server-side apply next to
 * another field manager, JSON and merge patches, 4 threads sharing one
 * client, and a watch stream seeing ADDED, all verifying the server against
 * the cluster's CA file (the admin kubeconfig must name one and not skip
 * verification). Objects live in a namespace of their own, deleted at the
 * end. */
#include "common/test/check_run.h"
#include "controller/kube_client.h"
#include "e2e/kube_fixture.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"

static char ns[64];

static const struct kube_gvr configmaps = {"", "v1", "configmaps", 1};
static const struct kube_gvr namespaces = {"", "v1", "namespaces", 0};
static const struct kube_gvr crds = {"apiextensions.k8s.io", "v1", "customresourcedefinitions", 0};
static const struct kube_gvr widgets = {"test.agentmesh.io", "v1", "widgets", 1};

static int str_is(const char *a, const char *b) { return a && strcmp(a, b) == 0; }

static json_t *configmap(const char *name, const char *key, const char *value) {
    json_t *o = json_pack("{s:s, s:s, s:{s:s}, s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata",
                          "name", name, "data", key, value);
    ck_assert_ptr_nonnull(o);
    return o;
}

START_TEST(version_and_discovery) {
    struct kube_result r;
    OK(kube_get_path(kc, "/version", &r), &r);
    ck_assert_msg(strncmp(json_str_at(r.body, "gitVersion"), "v1.", 3) == 0, "%s", json_str_at(r.body, "gitVersion"));
    kube_result_free(&r);
    OK(kube_get_path(kc, "/apis/test.agentmesh.io/v1", &r), &r);
    ck_assert_str_eq(json_str_at(r.body, "kind"), "APIResourceList");
    kube_result_free(&r);
}
END_TEST

START_TEST(configmap_verbs) {
    struct kube_result r;
    json_t *cm = configmap("verbs", "a", "1");
    OK(kube_create(kc, &configmaps, ns, cm, &r), &r);
    ck_assert_int_eq(r.status, 201);
    char rv1[64];
    snprintf(rv1, sizeof rv1, "%s", json_str_at(r.body, "metadata.resourceVersion"));
    kube_result_free(&r);

    ck_assert_int_eq(kube_create(kc, &configmaps, ns, cm, &r), -1);
    ck_assert_int_eq(r.status, 409);
    ck_assert_str_eq(r.reason, "AlreadyExists");
    kube_result_free(&r);

    OK(kube_get(kc, &configmaps, ns, "verbs", NULL, &r), &r);
    ck_assert_str_eq(json_str_at(r.body, "data.a"), "1");
    json_t *cur = json_incref(r.body);
    kube_result_free(&r);

    /* Update with the current resourceVersion works... */
    json_set_at(cur, "data.b", json_string("2"));
    OK(kube_update(kc, &configmaps, ns, "verbs", NULL, cur, &r), &r);
    ck_assert_str_eq(json_str_at(r.body, "data.b"), "2");
    kube_result_free(&r);
    /* ...the same object again carries a stale one: Conflict. */
    json_set_at(cur, "data.b", json_string("3"));
    ck_assert_int_eq(kube_update(kc, &configmaps, ns, "verbs", NULL, cur, &r), -1);
    ck_assert_int_eq(r.status, 409);
    ck_assert_str_eq(r.reason, "Conflict");
    ck_assert_msg(strstr(r.message, "the object has been modified") != NULL, "%s", r.message);
    kube_result_free(&r);
    json_decref(cur);

    json_t *merge = json_pack("{s:{s:s, s:n}}", "data", "c", "3", "a");
    OK(kube_patch(kc, &configmaps, ns, "verbs", NULL, KUBE_PATCH_MERGE, merge, NULL, 0, &r), &r);
    ck_assert_str_eq(json_str_at(r.body, "data.c"), "3");
    ck_assert_ptr_null(json_at(r.body, "data.a"));   /* null deletes in a merge patch */
    kube_result_free(&r);
    json_decref(merge);

    json_t *jp = json_pack("[{s:s, s:s, s:s}, {s:s, s:s, s:s}]", "op", "test", "path", "/data/c", "value", "3",
                           "op", "add", "path", "/data/d", "value", "4");
    OK(kube_patch(kc, &configmaps, ns, "verbs", NULL, KUBE_PATCH_JSON, jp, NULL, 0, &r), &r);
    ck_assert_str_eq(json_str_at(r.body, "data.d"), "4");
    kube_result_free(&r);
    json_decref(jp);

    json_t *smp = json_pack("{s:{s:{s:s}}}", "metadata", "labels", "tier", "gold");
    OK(kube_patch(kc, &configmaps, ns, "verbs", NULL, KUBE_PATCH_STRATEGIC, smp, NULL, 0, &r), &r);
    ck_assert_str_eq(json_str_at(r.body, "metadata.labels.tier"), "gold");
    ck_assert_str_ne(json_str_at(r.body, "metadata.resourceVersion"), rv1);
    kube_result_free(&r);
    json_decref(smp);

    struct kube_list_opts sel = {.label_selector = "tier=gold"};
    OK(kube_list(kc, &configmaps, ns, &sel, &r), &r);
    ck_assert_uint_eq(json_array_size(json_object_get(r.body, "items")), 1);
    kube_result_free(&r);

    OK(kube_delete(kc, &configmaps, ns, "verbs", "Background", &r), &r);
    kube_result_free(&r);
    ck_assert_int_eq(kube_get(kc, &configmaps, ns, "verbs", NULL, &r), -1);
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(r.reason, "NotFound");
    ck_assert_msg(strstr(r.message, "\"verbs\" not found") != NULL, "%s", r.message);
    kube_result_free(&r);
    ck_assert_int_eq(kube_delete(kc, &configmaps, ns, "verbs", NULL, &r), -1);
    ck_assert(kube_is_reason(&r, "NotFound"));
    kube_result_free(&r);
    json_decref(cm);
}
END_TEST

START_TEST(custom_resource_verbs) {
    struct kube_result r;
    json_t *w = json_pack("{s:s, s:s, s:{s:s}, s:{s:i, s:s}}", "apiVersion", "test.agentmesh.io/v1", "kind", "Widget",
                          "metadata", "name", "w1", "spec", "size", 3, "color", "red");
    OK(kube_create(kc, &widgets, ns, w, &r), &r);
    ck_assert_int_eq(json_int_at(r.body, "metadata.generation", 0), 1);
    kube_result_free(&r);

    OK(kube_get(kc, &widgets, ns, "w1", NULL, &r), &r);
    json_t *cur = json_incref(r.body);
    kube_result_free(&r);

    /* /status: UpdateStatus changes status only, never spec. */
    json_set_at(cur, "status.phase", json_string("Ready"));
    json_set_at(cur, "spec.size", json_integer(99));
    OK(kube_update(kc, &widgets, ns, "w1", "status", cur, &r), &r);
    ck_assert_str_eq(json_str_at(r.body, "status.phase"), "Ready");
    ck_assert_int_eq(json_int_at(r.body, "spec.size", 0), 3);
    ck_assert_int_eq(json_int_at(r.body, "metadata.generation", 0), 1);
    json_decref(cur);
    cur = json_incref(r.body);
    kube_result_free(&r);

    /* The main resource ignores status and bumps the generation. */
    json_set_at(cur, "spec.size", json_integer(4));
    json_set_at(cur, "status.phase", json_string("Ignored"));
    OK(kube_update(kc, &widgets, ns, "w1", NULL, cur, &r), &r);
    ck_assert_int_eq(json_int_at(r.body, "spec.size", 0), 4);
    ck_assert_str_eq(json_str_at(r.body, "status.phase"), "Ready");
    ck_assert_int_eq(json_int_at(r.body, "metadata.generation", 0), 2);
    kube_result_free(&r);
    json_decref(cur);

    json_t *st = json_pack("{s:{s:i}}", "status", "observedGeneration", 2);
    OK(kube_patch(kc, &widgets, ns, "w1", "status", KUBE_PATCH_MERGE, st, NULL, 0, &r), &r);
    ck_assert_int_eq(json_int_at(r.body, "status.observedGeneration", 0), 2);
    kube_result_free(&r);
    OK(kube_get(kc, &widgets, ns, "w1", "status", &r), &r);
    ck_assert_str_eq(json_str_at(r.body, "status.phase"), "Ready");
    kube_result_free(&r);
    json_decref(st);

    json_t *jp = json_pack("[{s:s, s:s, s:s}]", "op", "replace", "path", "/spec/color", "value", "blue");
    OK(kube_patch(kc, &widgets, ns, "w1", NULL, KUBE_PATCH_JSON, jp, NULL, 0, &r), &r);
    ck_assert_str_eq(json_str_at(r.body, "spec.color"), "blue");
    kube_result_free(&r);
    json_decref(jp);

    /* Custom resources do not take strategic merge patches: the API says so. */
    json_t *mp = json_pack("{s:{s:s}}", "spec", "color", "green");
    ck_assert_int_eq(kube_patch(kc, &widgets, ns, "w1", NULL, KUBE_PATCH_STRATEGIC, mp, NULL, 0, &r), -1);
    ck_assert_int_eq(r.status, 415);
    ck_assert_str_eq(r.reason, "UnsupportedMediaType");
    kube_result_free(&r);
    OK(kube_patch(kc, &widgets, ns, "w1", NULL, KUBE_PATCH_MERGE, mp, NULL, 0, &r), &r);
    ck_assert_str_eq(json_str_at(r.body, "spec.color"), "green");
    kube_result_free(&r);
    json_decref(mp);

    OK(kube_list(kc, &widgets, ns, NULL, &r), &r);
    ck_assert_str_eq(json_str_at(r.body, "kind"), "WidgetList");
    ck_assert_uint_eq(json_array_size(json_object_get(r.body, "items")), 1);
    kube_result_free(&r);
    OK(kube_list(kc, &widgets, NULL, NULL, &r), &r);   /* all namespaces */
    ck_assert_uint_ge(json_array_size(json_object_get(r.body, "items")), 1);
    kube_result_free(&r);

    OK(kube_delete(kc, &widgets, ns, "w1", NULL, &r), &r);
    kube_result_free(&r);
    ck_assert_int_eq(kube_get(kc, &widgets, ns, "w1", NULL, &r), -1);
    ck_assert_str_eq(r.reason, "NotFound");
    kube_result_free(&r);
    json_decref(w);
}
END_TEST

/* Records the names kube_list_pages hands over, page by page. */
struct pages {
    int pages, n;
    char names[8][32];
};

static int collect_page(json_t *page, void *arg)
{
    struct pages *p = arg;
    size_t i;
    json_t *item;
    p->pages++;
    json_array_foreach(json_object_get(page, "items"), i, item) {
        ck_assert_int_lt(p->n, 8);
        snprintf(p->names[p->n++], sizeof p->names[0], "%s", json_str_at(item, "metadata.name"));
    }
    return 0;
}

START_TEST(pagination) {
    struct kube_result r;
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof name, "page-%d", i);
        json_t *cm = configmap(name, "i", name);
        json_set_at(cm, "metadata.labels.batch", json_string("pages"));
        OK(kube_create(kc, &configmaps, ns, cm, &r), &r);
        kube_result_free(&r);
        json_decref(cm);
    }
    struct kube_list_opts o = {.label_selector = "batch=pages", .limit = 2};
    OK(kube_list(kc, &configmaps, ns, &o, &r), &r);
    ck_assert_uint_eq(json_array_size(json_object_get(r.body, "items")), 2);
    ck_assert_ptr_nonnull(json_str_at(r.body, "metadata.continue"));
    kube_result_free(&r);

    /* page by page: 2 + 2 + 1 items, in order, one page in memory at a time */
    struct pages seen = {0};
    OK(kube_list_pages(kc, &configmaps, ns, &o, collect_page, &seen, &r), &r);
    ck_assert_int_eq(seen.pages, 3);
    ck_assert_int_eq(seen.n, 5);
    for (int i = 0; i < 5; i++) {
        char want[32];
        snprintf(want, sizeof want, "page-%d", i);
        ck_assert_str_eq(seen.names[i], want);
    }
    ck_assert_ptr_nonnull(json_str_at(r.body, "metadata.resourceVersion"));
    ck_assert_ptr_null(json_at(r.body, "metadata.continue"));
    kube_result_free(&r);
}
END_TEST

static int apply(const char *manager, json_t *data, struct kube_result *r) {
    json_t *obj = json_pack("{s:s, s:s, s:{s:s}, s:o}", "apiVersion", "v1", "kind", "ConfigMap", "metadata",
                            "name", "ssa", "data", data);
    ck_assert_ptr_nonnull(obj);
    int rc = kube_patch(kc, &configmaps, ns, "ssa", NULL, KUBE_PATCH_APPLY, obj, manager, 1, r);
    json_decref(obj);
    return rc;
}

START_TEST(server_side_apply_keeps_other_managers_fields) {
    struct kube_result r;
    OK(apply("manager-a", json_pack("{s:s, s:s}", "x", "from-a", "shared", "a"), &r), &r);
    kube_result_free(&r);
    OK(apply("manager-b", json_pack("{s:s}", "y", "from-b"), &r), &r);
    kube_result_free(&r);
    /* A drops x and adds z: x goes (only A owned it), y stays (B owns it). */
    OK(apply("manager-a", json_pack("{s:s, s:s}", "z", "from-a", "shared", "a2"), &r), &r);
    ck_assert_ptr_null(json_at(r.body, "data.x"));
    ck_assert_str_eq(json_str_at(r.body, "data.y"), "from-b");
    ck_assert_str_eq(json_str_at(r.body, "data.z"), "from-a");
    ck_assert_str_eq(json_str_at(r.body, "data.shared"), "a2");
    json_t *mf = json_at(r.body, "metadata.managedFields");
    int a = 0, b = 0;
    for (size_t i = 0; i < json_array_size(mf); i++) {
        const char *m = json_str_at(json_array_get(mf, i), "manager");
        a += m && strcmp(m, "manager-a") == 0;
        b += m && strcmp(m, "manager-b") == 0;
    }
    ck_assert_int_eq(a, 1);
    ck_assert_int_eq(b, 1);
    kube_result_free(&r);
    /* B taking A's field: force makes B the owner instead of a conflict. */
    OK(apply("manager-b", json_pack("{s:s, s:s}", "y", "from-b", "shared", "b"), &r), &r);
    ck_assert_str_eq(json_str_at(r.body, "data.shared"), "b");
    kube_result_free(&r);
}
END_TEST

#define THREADS 4
#define GETS 50

struct worker {
    struct kube_client *c;
    int ok;
    char err[640];
};

static void *get_many(void *arg) {
    struct worker *w = arg;
    for (int i = 0; i < GETS; i++) {
        struct kube_result r;
        if (kube_get(w->c, &configmaps, ns, "shared", NULL, &r) == 0 &&
            str_is(json_str_at(r.body, "data.k"), "v"))
            w->ok++;
        else
            snprintf(w->err, sizeof w->err, "%d %s: %s", r.status, r.reason, r.message);
        kube_result_free(&r);
    }
    return NULL;
}

static int hook_calls;
static void count_requests(const char *method, int code, double seconds) {
    if (strcmp(method, "GET") == 0 && code == 200) __atomic_add_fetch(&hook_calls, 1, __ATOMIC_RELAXED);
}

START_TEST(threads_share_one_client) {
    struct kube_result r;
    json_t *cm = configmap("shared", "k", "v");
    OK(kube_create(kc, &configmaps, ns, cm, &r), &r);
    kube_result_free(&r);
    json_decref(cm);
    kube_client_set_request_hook(kc, count_requests);
    struct worker w[THREADS] = {{0}};
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i].c = kc;
        ck_assert_int_eq(pthread_create(&t[i], NULL, get_many, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++) ck_assert_msg(w[i].ok == GETS, "thread %d: %d ok, last error %s", i, w[i].ok, w[i].err);
    ck_assert_int_eq(hook_calls, THREADS * GETS);
}
END_TEST

struct watch {
    volatile int stop;
    int added;        /* saw ADDED for "watched" */
    int lines;
    struct kube_result r;
    int rc;
    char path[512];
};

static int on_event(const char *line, size_t len, void *arg) {
    struct watch *w = arg;
    w->lines++;
    json_t *ev = json_loadb(line, len, 0, NULL);
    const char *type = json_str_at(ev, "type"), *name = json_str_at(ev, "object.metadata.name");
    int hit = type && name && strcmp(type, "ADDED") == 0 && strcmp(name, "watched") == 0;
    json_decref(ev);
    if (hit) __atomic_store_n(&w->added, 1, __ATOMIC_SEQ_CST);
    return hit;   /* stop the stream once seen */
}

static void *watch_thread(void *arg) {
    struct watch *w = arg;
    struct kube_client *c = admin_client();
    w->rc = kube_stream(c, w->path, 1u << 20, on_event, w, &w->stop, &w->r);
    kube_client_free(c);
    return NULL;
}

START_TEST(watch_sees_added) {
    struct kube_result r;
    OK(kube_list(kc, &configmaps, ns, NULL, &r), &r);
    static struct watch w;
    snprintf(w.path, sizeof w.path,
             "/api/v1/namespaces/%s/configmaps?watch=1&allowWatchBookmarks=true&timeoutSeconds=60&resourceVersion=%s",
             ns, json_str_at(r.body, "metadata.resourceVersion"));
    kube_result_free(&r);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, watch_thread, &w), 0);
    usleep(300 * 1000);
    json_t *cm = configmap("watched", "k", "v");
    OK(kube_create(kc, &configmaps, ns, cm, &r), &r);
    kube_result_free(&r);
    json_decref(cm);
    for (int i = 0; i < 200 && !__atomic_load_n(&w.added, __ATOMIC_SEQ_CST); i++) usleep(100 * 1000);
    w.stop = 1;   /* in case the event never came */
    pthread_join(t, NULL);
    ck_assert_msg(w.added, "no ADDED event after 20 s (%d lines, %d %s: %s)", w.lines, w.r.status, w.r.reason,
                  w.r.message);
    ck_assert_int_eq(w.rc, 0);
    ck_assert_int_eq(w.r.status, 200);
    kube_result_free(&w.r);
}
END_TEST

/* ---- cluster set-up, once, before the forked tests ---- */

static int wait_established(struct kube_client *c) {
    for (int i = 0; i < 150; i++) {
        struct kube_result r;
        int est = 0;
        if (kube_get(c, &crds, NULL, "widgets.test.agentmesh.io", NULL, &r) == 0) {
            json_t *conds = json_at(r.body, "status.conditions");
            for (size_t j = 0; j < json_array_size(conds); j++) {
                json_t *cd = json_array_get(conds, j);
                est |= str_is(json_str_at(cd, "type"), "Established") && str_is(json_str_at(cd, "status"), "True");
            }
        }
        kube_result_free(&r);
        if (est && kube_list(c, &widgets, NULL, NULL, &r) == 0) {
            kube_result_free(&r);
            return 0;
        }
        kube_result_free(&r);
        usleep(200 * 1000);
    }
    return -1;
}

/* 0 when the admin kubeconfig names a certificate-authority file and does
 * not skip verification, so every client here checks the server against
 * the cluster CA; else -1 with the reason in err. */
static int admin_verifies_server(char *err, size_t errlen) {
    struct kube_config cfg;
    if (kube_config_load_file(kubeconfig, NULL, &cfg, err, errlen) != 0) return -1;
    int ok = cfg.ca_file && !cfg.insecure_skip_tls_verify;
    if (!cfg.ca_file) snprintf(err, errlen, "%s: expected a certificate-authority file", kubeconfig);
    else if (!ok) snprintf(err, errlen, "%s: expected no insecure-skip-tls-verify", kubeconfig);
    kube_config_free(&cfg);
    return ok ? 0 : -1;
}

/* The admin client when the API server answers /version, else NULL. */
static struct kube_client *reachable(char *err, size_t errlen) {
    struct kube_client *c = connect_admin(err, errlen);
    struct kube_result r;
    if (c && kube_get_path(c, "/version", &r) != 0) {
        snprintf(err, errlen, "/version: %s: %s", r.reason, r.message);
        kube_client_free(c);
        c = NULL;
    }
    if (c) kube_result_free(&r);
    return c;
}

static int set_up_cluster(void) {
    set_kubeconfig();
    char err[512];
    struct kube_client *c = reachable(err, sizeof err);
    if (!c) {   /* not running yet: start the shared cluster (idempotent) */
        if (system(SOURCE_DIR "/hack/kube-up.sh >&2") != 0) {
            fprintf(stderr, "hack/kube-up.sh failed\n");
            return -1;
        }
        c = reachable(err, sizeof err);
    }
    if (!c) {
        fprintf(stderr, "API server from %s: %s\n", kubeconfig, err);
        return -1;
    }
    if (admin_verifies_server(err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        kube_client_free(c);
        return -1;
    }
    struct kube_result r;
    snprintf(ns, sizeof ns, "kube-client-e2e-%ld", (long)getpid());
    json_t *nso = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name", ns);
    int rc = kube_create(c, &namespaces, NULL, nso, &r);
    json_decref(nso);
    if (rc != 0) fprintf(stderr, "create namespace: %s: %s\n", r.reason, r.message);
    kube_result_free(&r);
    json_error_t je;
    json_t *crd = json_loads(
        "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
        "\"metadata\":{\"name\":\"widgets.test.agentmesh.io\"},"
        "\"spec\":{\"group\":\"test.agentmesh.io\",\"scope\":\"Namespaced\","
        "\"names\":{\"plural\":\"widgets\",\"singular\":\"widget\",\"kind\":\"Widget\",\"listKind\":\"WidgetList\"},"
        "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,\"subresources\":{\"status\":{}},"
        "\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"properties\":{"
        "\"spec\":{\"type\":\"object\",\"x-kubernetes-preserve-unknown-fields\":true},"
        "\"status\":{\"type\":\"object\",\"x-kubernetes-preserve-unknown-fields\":true}}}}}]}}",
        0, &je);
    if (rc == 0 && kube_create(c, &crds, NULL, crd, &r) != 0 && !kube_is_reason(&r, "AlreadyExists")) {
        fprintf(stderr, "create CRD: %s: %s\n", r.reason, r.message);
        rc = -1;
    }
    kube_result_free(&r);
    json_decref(crd);
    if (rc == 0 && wait_established(c) != 0) {
        fprintf(stderr, "CRD widgets.test.agentmesh.io not Established after 30 s\n");
        rc = -1;
    }
    kube_client_free(c);
    return rc;
}

int main(void) {
    if (set_up_cluster() != 0) return EXIT_FAILURE;
    Suite *s = suite_create("kube_client_e2e");
    TCase *tc = tcase_create("api");
    tcase_add_checked_fixture(tc, client_up, client_down);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, version_and_discovery);
    tcase_add_test(tc, configmap_verbs);
    tcase_add_test(tc, custom_resource_verbs);
    tcase_add_test(tc, pagination);
    tcase_add_test(tc, server_side_apply_keeps_other_managers_fields);
    tcase_add_test(tc, threads_share_one_client);
    tcase_add_test(tc, watch_sees_added);
    suite_add_tcase(s, tc);
    int rc = check_run(s, CK_FORK_GETENV);
    delete_test_namespace(ns);
    return rc;
}
