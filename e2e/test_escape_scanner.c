/* test_escape_scanner.c — the escape scanner against the real local API
 * server (hack/kube-up.sh; admin kubeconfig in $AGENTMESH_CLUSTER_DIR).
 *
 * Informers, the event recorder and the scanner run in-process, as the
 * controller's leader runs them. No webhook serves the test namespaces, and
 * pods are opted in only after they exist (the namespace labelled later, or
 * the pod label patched on: admission webhooks see pod CREATE only), so the
 * test does not depend on whatever webhooks other tests register:
 *  - a plain pod in a namespace labelled afterwards escapes: one Warning
 *    Event InjectionEscaped on its AgentIdentity naming the pod, not repeated
 *    by later passes, and agentmesh_escaped_pods{namespace,agent} = 1; an
 *    opted-out pod and one carrying the sidecar there are not counted;
 *  - nothing counts before the namespace is labelled;
 *  - a pod labelled agentmesh.io/inject=true in an unlabelled namespace is
 *    found by the cluster-wide list;
 *  - deleting the escaped pod brings the gauge back to 0; stopping the
 *    scanner drops its series.
 * Namespaces are named after the pid and deleted at the end. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/metrics.h"
#include "common/test/check_run.h"
#include "controller/agent_render.h"
#include "controller/controller.h"
#include "controller/escape_scanner.h"
#include "controller/events.h"
#include "controller/informer.h"
#include "controller/kube_client.h"
#include "controller/webhook_lookup.h"
#include "e2e/kube_fixture.h"

static char ns_a[64], ns_b[64];

static const struct kube_gvr namespaces_gvr = {"", "v1", "namespaces", 0};
static const struct kube_gvr pods_gvr = {"", "v1", "pods", 1};
static const struct kube_gvr events_gvr = {"", "v1", "events", 1};
static const struct kube_gvr serviceaccounts_gvr = {"", "v1", "serviceaccounts", 1};

static struct metric *gauge(void) {
    return metrics_gauge("agentmesh_escaped_pods", "", "namespace,agent");
}

/* Polls until the gauge series (ns, agent) reads `want`; 1 if it did within `seconds`. */
static int gauge_becomes(const char *ns, const char *agent, double want, double seconds) {
    for (double t = 0; t < seconds; t += 0.2) {
        if (metric_value(gauge(), ns, agent) == want) return 1;
        usleep(200000);
    }
    return metric_value(gauge(), ns, agent) == want;
}

/* Creates `ns` (no labels) and waits for its default ServiceAccount, which
 * the 1.20 API server's ServiceAccount admission needs before any pod. */
static void make_namespace(const char *ns) {
    struct kube_result r;
    json_t *o = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name", ns);
    OK(kube_create(kc, &namespaces_gvr, NULL, o, &r), &r);
    kube_result_free(&r);
    json_decref(o);
    for (int i = 0; i < 300; i++) {
        int rc = kube_get(kc, &serviceaccounts_gvr, ns, "default", NULL, &r);
        kube_result_free(&r);
        if (rc == 0) return;
        usleep(100000);
    }
    ck_abort_msg("ServiceAccount %s/default never appeared", ns);
}

static void make_agent(const char *ns, const char *name) {
    struct kube_result r;
    json_t *o = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "apiVersion", "agentmesh.io/v1alpha1", "kind",
                          "AgentIdentity", "metadata", "name", name, "namespace", ns, "spec", "sponsor",
                          "alice@example.com");
    OK(kube_create(kc, &GVR_AGENTIDENTITIES, ns, o, &r), &r);
    kube_result_free(&r);
    json_decref(o);
}

/* A pod for AgentIdentity `agent` (by annotation); `labels` and the
 * container list may be NULL (one container "app"). */
static void make_pod(const char *ns, const char *name, const char *agent, json_t *labels, json_t *containers) {
    struct kube_result r;
    json_t *o = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}, s:o}, s:{s:b, s:o}}", "apiVersion", "v1", "kind", "Pod",
                          "metadata", "name", name, "namespace", ns, "annotations", "agentmesh.io/agent", agent,
                          "labels", labels ? labels : json_object(), "spec", "automountServiceAccountToken", 0,
                          "containers",
                          containers ? containers : json_pack("[{s:s, s:s}]", "name", "app", "image", "busybox"));
    ck_assert_ptr_nonnull(o);
    OK(kube_create(kc, &pods_gvr, ns, o, &r), &r);
    kube_result_free(&r);
    json_decref(o);
}

static void merge_patch(const struct kube_gvr *gvr, const char *ns, const char *name, const char *patch) {
    struct kube_result r;
    json_t *p = json_loads(patch, 0, NULL);
    ck_assert_ptr_nonnull(p);
    OK(kube_patch(kc, gvr, ns, name, NULL, KUBE_PATCH_MERGE, p, NULL, 0, &r), &r);
    kube_result_free(&r);
    json_decref(p);
}

/* InjectionEscaped Events on AgentIdentity `agent` in `ns`: how many, their
 * summed count, and whether every message names `pod`. */
static int escaped_events(const char *ns, const char *agent, const char *pod, int *total_count) {
    struct kube_result r;
    int n = 0;
    *total_count = 0;
    ck_assert_int_eq(kube_list(kc, &events_gvr, ns, NULL, &r), 0);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(r.body, "items"), i, e) {
        const char *reason = json_str_at(e, "reason"), *msg = json_str_at(e, "message");
        if (!reason || strcmp(reason, "InjectionEscaped") != 0) continue;
        ck_assert_str_eq(json_str_at(e, "involvedObject.kind"), "AgentIdentity");
        ck_assert_str_eq(json_str_at(e, "involvedObject.name"), agent);
        ck_assert_str_eq(json_str_at(e, "type"), "Warning");
        char want[256];
        snprintf(want, sizeof want, "pod %s was admitted without the agentmesh sidecar; recreate it to inject", pod);
        ck_assert_str_eq(msg, want);
        n++;
        *total_count += (int)json_int_at(e, "count", 0);
    }
    kube_result_free(&r);
    return n;
}

/* escaped_events, waiting up to 5 s for the first one: the recorder sends Events asynchronously. */
static int wait_escaped_events(const char *ns, const char *agent, const char *pod, int *total_count) {
    int n = 0;
    for (int i = 0; i < 50 && (n = escaped_events(ns, agent, pod, total_count)) == 0; i++) usleep(100000);
    return n;
}

START_TEST(reports_escaped_pods) {
    make_namespace(ns_a);
    make_namespace(ns_b);
    make_agent(ns_a, "alpha");
    make_agent(ns_b, "beta");
    make_pod(ns_a, "app", "alpha", NULL, NULL);
    make_pod(ns_a, "optout", "alpha", json_pack("{s:s}", "agentmesh.io/inject", "false"), NULL);
    make_pod(ns_a, "injected", "alpha", NULL,
             json_pack("[{s:s, s:s}, {s:s, s:s}]", "name", "app", "image", "busybox", "name", "agentmesh-sidecar",
                       "image", "agentmesh-sidecar"));
    make_pod(ns_b, "solo", "beta", NULL, NULL);

    struct informer_opts ao = {.gvr = GVR_AGENTIDENTITIES, .index_key = agent_sa_index_key};
    struct informer_opts no = {.gvr = namespaces_gvr, .transform = webhook_lookup_strip_namespace};
    struct informer *agents = informer_new(kc, &ao), *namespaces = informer_new(kc, &no);
    struct events *ev = events_new(kc, "agentmesh-controller");
    ck_assert(agents && namespaces && ev);
    ck_assert_int_eq(informer_start(agents), 0);
    ck_assert_int_eq(informer_start(namespaces), 0);
    ck_assert(informer_wait_synced(agents, 30) && informer_wait_synced(namespaces, 30));
    struct escape_scanner_options so = {.client = kc, .events = ev, .agents = agents, .namespaces = namespaces,
                                        .operator_namespace = "agentmesh-system", .interval_seconds = 1};
    struct escape_scanner *s = escape_scanner_start(&so);
    ck_assert_ptr_nonnull(s);

    /* Not opted in yet: a few passes find nothing. */
    sleep(3);
    int count;
    ck_assert_double_eq(metric_value(gauge(), ns_a, "alpha"), 0);
    ck_assert_int_eq(escaped_events(ns_a, "alpha", "app", &count), 0);

    merge_patch(&namespaces_gvr, NULL, ns_a, "{\"metadata\":{\"labels\":{\"agentmesh.io/inject\":\"enabled\"}}}");
    ck_assert_msg(gauge_becomes(ns_a, "alpha", 1, 20), "gauge %s/alpha is %g, want 1", ns_a,
                  metric_value(gauge(), ns_a, "alpha"));
    ck_assert_int_eq(wait_escaped_events(ns_a, "alpha", "app", &count), 1);
    ck_assert_int_eq(count, 1);
    /* Later passes keep the count and do not report the pod again. */
    sleep(3);
    ck_assert_double_eq(metric_value(gauge(), ns_a, "alpha"), 1);
    ck_assert_int_eq(escaped_events(ns_a, "alpha", "app", &count), 1);
    ck_assert_int_eq(count, 1);
    ck_assert_double_eq(metric_value(gauge(), ns_b, "beta"), 0);

    /* Pod-level opt-in in an unlabelled namespace. */
    merge_patch(&pods_gvr, ns_b, "solo", "{\"metadata\":{\"labels\":{\"agentmesh.io/inject\":\"true\"}}}");
    ck_assert(gauge_becomes(ns_b, "beta", 1, 20));
    ck_assert_int_eq(wait_escaped_events(ns_b, "beta", "solo", &count), 1);

    /* The escaped pod goes away (unscheduled pods are deleted at once). */
    struct kube_result r;
    OK(kube_delete(kc, &pods_gvr, ns_a, "app", NULL, &r), &r);
    kube_result_free(&r);
    ck_assert_msg(gauge_becomes(ns_a, "alpha", 0, 20), "gauge %s/alpha stays %g", ns_a,
                  metric_value(gauge(), ns_a, "alpha"));
    size_t len;
    char *text = metrics_render(&len);
    char series[160];
    snprintf(series, sizeof series, "namespace=\"%s\"", ns_a);
    ck_assert_msg(!strstr(text, series), "series for %s still exported:\n%s", ns_a, text);
    snprintf(series, sizeof series, "namespace=\"%s\"", ns_b);
    ck_assert_msg(strstr(text, series), "series for %s missing:\n%s", ns_b, text);
    free(text);
    ck_assert_double_eq(metric_value(gauge(), ns_b, "beta"), 1);

    escape_scanner_stop(s);
    text = metrics_render(&len);
    ck_assert_msg(!strstr(text, series), "series for %s still exported after stop:\n%s", ns_b, text);
    free(text);
    events_free(ev);
    informer_free(agents);
    informer_free(namespaces);
}
END_TEST

/* Removes the namespace; AgentIdentity finalizers first, in case a running
 * controller put its own there and is gone before it could take it off. */
static void delete_namespace(struct kube_client *c, const char *ns) {
    struct kube_result r;
    const char *agents[] = {"alpha", "beta"};
    json_t *p = json_loads("{\"metadata\":{\"finalizers\":null}}", 0, NULL);
    for (size_t i = 0; p && i < 2; i++) {
        if (kube_delete(c, &GVR_AGENTIDENTITIES, ns, agents[i], NULL, &r) == 0) {
            kube_result_free(&r);
            kube_patch(c, &GVR_AGENTIDENTITIES, ns, agents[i], NULL, KUBE_PATCH_MERGE, p, NULL, 0, &r);
        }
        kube_result_free(&r);
    }
    json_decref(p);
    if (kube_delete(c, &namespaces_gvr, NULL, ns, NULL, &r) != 0 && !kube_is_reason(&r, "NotFound"))
        fprintf(stderr, "delete namespace %s: %s: %s\n", ns, r.reason, r.message);
    kube_result_free(&r);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    set_kubeconfig();
    if (apply_crds() != 0) return EXIT_FAILURE;
    snprintf(ns_a, sizeof ns_a, "escape-e2e-a-%ld", (long)getpid());
    snprintf(ns_b, sizeof ns_b, "escape-e2e-b-%ld", (long)getpid());
    Suite *s = suite_create("escape_scanner_e2e");
    TCase *tc = tcase_create("scanner");
    tcase_add_checked_fixture(tc, client_up, client_down);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, reports_escaped_pods);
    suite_add_tcase(s, tc);
    int rc = check_run(s, CK_FORK_GETENV);
    char err[512];
    struct kube_client *c = connect_admin(err, sizeof err);
    if (!c) fprintf(stderr, "admin client: %s\n", err);
    for (int i = 0; c && i < 2; i++) delete_namespace(c, i ? ns_b : ns_a);
    kube_client_free(c);
    return rc;
}
