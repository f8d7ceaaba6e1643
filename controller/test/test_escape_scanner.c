/* test_escape_scanner.c — which pods count as having escaped injection:
 * opted in (namespace label, legacy label, pod label), eligible, with an
 * AgentIdentity, and carrying no sidecar; everything else is not, with the
 * reason the injection rules give. */
#include <check.h>
#include <string.h>

#include "common/json.h"
#include "common/test/check_run.h"
#include "controller/escape_scanner.h"
#include "webhook/inject.h"

#define OPERATOR_NS "agentmesh-system"

static json_t *J(const char *text)
{
    char err[128];
    json_t *j = json_parse(text, strlen(text), err, sizeof err);
    ck_assert_msg(j != NULL, "%s: %s", text, err);
    return j;
}

/* A plain app pod in `ns`; `meta_extra` and `spec_extra` are spliced into
 * metadata and spec (",\"labels\":{...}"), "" for none. */
static json_t *pod(const char *ns, const char *meta_extra, const char *spec_extra)
{
    char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"metadata\":{\"name\":\"app-1\",\"namespace\":\"%s\",\"uid\":\"u-1\"%s},"
             "\"spec\":{\"serviceAccountName\":\"alpha\",\"containers\":[{\"name\":\"app\",\"image\":\"x\"}]%s},"
             "\"status\":{\"phase\":\"Pending\"}}",
             ns, meta_extra, spec_extra);
    return J(buf);
}

static const char *AGENT = "{\"apiVersion\":\"agentmesh.io/v1alpha1\",\"kind\":\"AgentIdentity\","
                           "\"metadata\":{\"name\":\"alpha\",\"namespace\":\"apps\"},"
                           "\"spec\":{\"sponsor\":\"a@example.com\"}}";
static const char *NS_ENABLED = "{\"agentmesh.io/inject\":\"enabled\"}";

/* Runs escape_check_pod; returns its result and stores the reason. */
static int check(json_t *p, const char *ns_labels, int with_agent, const char **reason)
{
    json_t *labels = ns_labels ? J(ns_labels) : NULL;
    json_t *agent = with_agent ? J(AGENT) : NULL;
    *reason = "unset";
    int escaped = escape_check_pod(p, labels, agent, OPERATOR_NS, reason);
    json_decref(labels);
    json_decref(agent);
    json_decref(p);
    return escaped;
}

START_TEST(opted_in_without_sidecar_escaped)
{
    const char *why;
    ck_assert_int_eq(check(pod("apps", "", ""), NS_ENABLED, 1, &why), 1);
    ck_assert_ptr_null(why);
}
END_TEST

START_TEST(legacy_namespace_label)
{
    const char *why;
    ck_assert_int_eq(check(pod("apps", "", ""), "{\"agentmesh-inject\":\"enabled\"}", 1, &why), 1);
    ck_assert_ptr_null(why);
    /* any other value is not an opt-in */
    ck_assert_int_eq(check(pod("apps", "", ""), "{\"agentmesh.io/inject\":\"disabled\"}", 1, &why), 0);
    ck_assert_str_eq(why, INJECT_SKIP_NOT_OPTED_IN);
}
END_TEST

START_TEST(pod_label_in_unlabelled_namespace)
{
    const char *why;
    ck_assert_int_eq(check(pod("apps", ",\"labels\":{\"agentmesh.io/inject\":\"true\"}", ""), NULL, 1, &why), 1);
    ck_assert_ptr_null(why);
    ck_assert_int_eq(check(pod("apps", ",\"labels\":{\"agentmesh.io/inject\":\"true\"}", ""), "{}", 1, &why), 1);
    /* without the label the same pod there is not opted in */
    ck_assert_int_eq(check(pod("apps", "", ""), NULL, 1, &why), 0);
    ck_assert_str_eq(why, INJECT_SKIP_NOT_OPTED_IN);
}
END_TEST

START_TEST(injected_pods_not_escaped)
{
    const char *why;
    /* an app init container is not a sidecar */
    ck_assert_int_eq(check(pod("apps", "", ",\"initContainers\":[{\"name\":\"migrate\"}]"), NS_ENABLED, 1, &why), 1);
    /* sidecar as a regular container (API server < 1.29) */
    json_t *p = pod("apps", "", "");
    json_array_append_new(json_at(p, "spec.containers"), json_pack("{s:s}", "name", INJECT_SIDECAR_NAME));
    ck_assert_int_eq(check(p, NS_ENABLED, 1, &why), 0);
    ck_assert_str_eq(why, INJECT_SKIP_ALREADY);
    /* native sidecar */
    ck_assert_int_eq(check(pod("apps", "", ",\"initContainers\":[{\"name\":\"agentmesh-sidecar\","
                                           "\"restartPolicy\":\"Always\"}]"),
                           NS_ENABLED, 1, &why), 0);
    ck_assert_str_eq(why, INJECT_SKIP_ALREADY);
    /* the record alone */
    ck_assert_int_eq(check(pod("apps", ",\"annotations\":{\"agentmesh.io/injected\":\"{}\"}", ""), NS_ENABLED, 1, &why),
                     0);
    ck_assert_str_eq(why, INJECT_SKIP_ALREADY);
}
END_TEST

START_TEST(opted_out)
{
    const char *why;
    ck_assert_int_eq(check(pod("apps", ",\"labels\":{\"agentmesh.io/inject\":\"false\"}", ""), NS_ENABLED, 1, &why), 0);
    ck_assert_str_eq(why, INJECT_SKIP_OPTED_OUT);
}
END_TEST

START_TEST(host_network)
{
    const char *why;
    ck_assert_int_eq(check(pod("apps", "", ",\"hostNetwork\":true"), NS_ENABLED, 1, &why), 0);
    ck_assert_str_eq(why, INJECT_SKIP_HOST_NETWORK);
    ck_assert_int_eq(check(pod("apps", "", ",\"hostNetwork\":false"), NS_ENABLED, 1, &why), 1);
}
END_TEST

START_TEST(system_and_operator_namespaces)
{
    const char *why;
    const char *system[] = {"kube-system", "kube-public", "kube-node-lease", OPERATOR_NS};
    for (size_t i = 0; i < sizeof system / sizeof *system; i++) {
        json_t *p = pod(system[i], ",\"labels\":{\"agentmesh.io/inject\":\"true\"}", "");
        ck_assert_int_eq(check(p, NS_ENABLED, 1, &why), 0);
        ck_assert_str_eq(why, INJECT_SKIP_SYSTEM_NS);
    }
}
END_TEST

START_TEST(no_identity_nothing_to_inject)
{
    const char *why;
    ck_assert_int_eq(check(pod("apps", "", ""), NS_ENABLED, 0, &why), 0);
    ck_assert_str_eq(why, INJECT_SKIP_NO_IDENTITY);
    /* a skip reason of the rules wins over the missing identity */
    ck_assert_int_eq(check(pod("apps", "", ",\"hostNetwork\":true"), NS_ENABLED, 0, &why), 0);
    ck_assert_str_eq(why, INJECT_SKIP_HOST_NETWORK);
}
END_TEST

START_TEST(terminating_and_finished)
{
    const char *why;
    ck_assert_int_eq(check(pod("apps", ",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"", ""), NS_ENABLED, 1, &why), 0);
    ck_assert_str_eq(why, ESCAPE_SKIP_TERMINATING);
    const char *phases[] = {"Succeeded", "Failed"};
    for (int i = 0; i < 2; i++) {
        json_t *p = pod("apps", "", "");
        json_set_at(p, "status.phase", json_string(phases[i]));
        ck_assert_int_eq(check(p, NS_ENABLED, 1, &why), 0);
        ck_assert_str_eq(why, ESCAPE_SKIP_FINISHED);
    }
    json_t *p = pod("apps", "", "");
    json_set_at(p, "status.phase", json_string("Running"));
    ck_assert_int_eq(check(p, NS_ENABLED, 1, &why), 1);
}
END_TEST

START_TEST(reason_optional)
{
    json_t *p = pod("apps", "", ""), *labels = J(NS_ENABLED), *agent = J(AGENT);
    ck_assert_int_eq(escape_check_pod(p, labels, agent, NULL, NULL), 1);
    ck_assert_int_eq(escape_check_pod(p, labels, NULL, NULL, NULL), 0);
    json_decref(p);
    json_decref(labels);
    json_decref(agent);
}
END_TEST

START_TEST(start_rejects_missing_parts)
{
    struct escape_scanner_options o = {.operator_namespace = OPERATOR_NS, .interval_seconds = 1};
    ck_assert_ptr_null(escape_scanner_start(&o));
    escape_scanner_stop(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("escape_scanner");
    TCase *tc = tcase_create("check_pod");
    tcase_add_test(tc, opted_in_without_sidecar_escaped);
    tcase_add_test(tc, legacy_namespace_label);
    tcase_add_test(tc, pod_label_in_unlabelled_namespace);
    tcase_add_test(tc, injected_pods_not_escaped);
    tcase_add_test(tc, opted_out);
    tcase_add_test(tc, host_network);
    tcase_add_test(tc, system_and_operator_namespaces);
    tcase_add_test(tc, no_identity_nothing_to_inject);
    tcase_add_test(tc, terminating_and_finished);
    tcase_add_test(tc, reason_optional);
    tcase_add_test(tc, start_rejects_missing_parts);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
