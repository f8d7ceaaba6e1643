/* test_agent_render.c — the exact children of DESIGN §3, and the helpers the
 * reconciler uses to decide whether to write (json_subset, conditions_set). */
#include "common/test/check_run.h"
#include "controller/agent_render.h"

#include "common/json.h"
#include "controller/trust_engine.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static json_t *agent(const char *cloud_json) {
    char text[2048];
    snprintf(text, sizeof text,
             "{\"apiVersion\":\"agentmesh.io/v1alpha1\",\"kind\":\"AgentIdentity\","
             "\"metadata\":{\"name\":\"alpha\",\"namespace\":\"ns1\",\"uid\":\"u-1\"},"
             "\"spec\":{\"sponsor\":\"a@example.com\"%s%s}}",
             cloud_json ? ",\"cloud\":" : "", cloud_json ? cloud_json : "");
    json_t *a = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(a);
    return a;
}

static void assert_json(json_t *got, const char *want_text) {
    json_t *want = json_loads(want_text, 0, NULL);
    ck_assert_ptr_nonnull(want);
    char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
    ck_assert_msg(json_equal(got, want), "got %s", g);
    free(g);
    json_decref(want);
}

START_TEST(service_account_aws) {
    json_t *a = agent("{\"aws\":{\"roleArn\":\"arn:aws:iam::123456789012:role/x\",\"audience\":\"sts.amazonaws.com\","
                      "\"stsRegionalEndpoints\":true,\"tokenExpirationSeconds\":3600}}");
    json_t *sa = render_service_account(a, 0);
    assert_json(sa, "{\"apiVersion\":\"v1\",\"kind\":\"ServiceAccount\",\"metadata\":{\"name\":\"alpha\",\"namespace\":\"ns1\","
                    "\"labels\":{\"app.kubernetes.io/managed-by\":\"agentmesh-operator\",\"agentmesh.io/agent\":\"alpha\"},"
                    "\"annotations\":{\"eks.amazonaws.com/role-arn\":\"arn:aws:iam::123456789012:role/x\","
                    "\"eks.amazonaws.com/audience\":\"sts.amazonaws.com\",\"eks.amazonaws.com/sts-regional-endpoints\":\"true\","
                    "\"eks.amazonaws.com/token-expiration\":\"3600\"},"
                    "\"ownerReferences\":[{\"apiVersion\":\"agentmesh.io/v1alpha1\",\"kind\":\"AgentIdentity\",\"name\":\"alpha\","
                    "\"uid\":\"u-1\",\"controller\":true,\"blockOwnerDeletion\":true}]}}");
    json_decref(sa);
    json_decref(a);
}
END_TEST

START_TEST(service_account_azure_preexisting) {
    json_t *a = agent("{\"azure\":{\"clientId\":\"c\",\"tenantId\":\"t\"}}");
    json_object_set_new(json_at(a, "spec"), "serviceAccountName", json_string("legacy"));
    json_t *sa = render_service_account(a, 1);
    assert_json(sa, "{\"apiVersion\":\"v1\",\"kind\":\"ServiceAccount\",\"metadata\":{\"name\":\"legacy\",\"namespace\":\"ns1\","
                    "\"labels\":{\"app.kubernetes.io/managed-by\":\"agentmesh-operator\",\"agentmesh.io/agent\":\"alpha\","
                    "\"azure.workload.identity/use\":\"true\"},"
                    "\"annotations\":{\"azure.workload.identity/client-id\":\"c\",\"azure.workload.identity/tenant-id\":\"t\","
                    "\"agentmesh.io/preexisting\":\"true\"}}}");
    json_decref(sa);
    json_decref(a);
}
END_TEST

START_TEST(service_account_gcp_and_none) {
    json_t *a = agent("{\"gcp\":{\"serviceAccount\":\"alpha@p.iam.gserviceaccount.com\"}}");
    json_t *sa = render_service_account(a, 0);
    ck_assert_str_eq(json_string_value(json_object_get(json_at(sa, "metadata.annotations"),
                                                       "iam.gke.io/gcp-service-account")),
                     "alpha@p.iam.gserviceaccount.com");
    json_decref(sa);
    json_decref(a);
    a = agent(NULL);
    sa = render_service_account(a, 0);
    ck_assert_ptr_null(json_at(sa, "metadata.annotations")); /* no cloud: no annotations at all */
    json_decref(sa);
    json_decref(a);
}
END_TEST

START_TEST(network_policy_normal) {
    json_t *a = agent(NULL);
    json_t *allow = json_loads("{\"matchLabels\":{\"agentmesh-access\":\"true\"}}", 0, NULL);
    struct netpol_inputs in = {.min_tier = TRUST_TIER_TRUSTED, .allow_from_namespaces = allow,
                               .operator_namespace = "agentmesh-system", .controller_api_port = 8080};
    json_t *np = render_network_policy(a, &in);
    assert_json(json_at(np, "spec"),
                "{\"podSelector\":{\"matchLabels\":{\"agentmesh.io/agent\":\"alpha\"}},\"policyTypes\":[\"Ingress\"],"
                "\"ingress\":[{\"from\":["
                "{\"namespaceSelector\":{},\"podSelector\":{\"matchExpressions\":[{\"key\":\"agentmesh.io/agent\",\"operator\":\"Exists\"},"
                "{\"key\":\"agentmesh.io/tier\",\"operator\":\"In\",\"values\":[\"trusted\",\"verified_partner\"]}]}},"
                "{\"namespaceSelector\":{\"matchLabels\":{\"agentmesh-access\":\"true\"}}},"
                "{\"namespaceSelector\":{\"matchLabels\":{\"kubernetes.io/metadata.name\":\"agentmesh-system\"}},"
                "\"podSelector\":{\"matchLabels\":{\"app.kubernetes.io/name\":\"agentmesh-controller\"}}}]}]}");
    ck_assert_str_eq(json_str_at(np, "metadata.name"), "alpha-agentmesh");
    json_decref(np);
    json_decref(allow);
    json_decref(a);
}
END_TEST

START_TEST(network_policy_quarantine) {
    json_t *a = agent(NULL);
    struct netpol_inputs in = {.min_tier = TRUST_TIER_STANDARD, .operator_namespace = "ops", .quarantined = 1,
                               .controller_api_port = 8080};
    json_t *np = render_network_policy(a, &in);
    assert_json(json_at(np, "spec"),
                "{\"podSelector\":{\"matchLabels\":{\"agentmesh.io/agent\":\"alpha\"}},\"policyTypes\":[\"Ingress\",\"Egress\"],"
                "\"egress\":[{\"ports\":[{\"protocol\":\"UDP\",\"port\":53},{\"protocol\":\"TCP\",\"port\":53}]},"
                "{\"to\":[{\"namespaceSelector\":{\"matchLabels\":{\"kubernetes.io/metadata.name\":\"ops\"}},"
                "\"podSelector\":{\"matchLabels\":{\"app.kubernetes.io/name\":\"agentmesh-controller\"}}}],"
                "\"ports\":[{\"protocol\":\"TCP\",\"port\":8080}]}]}");
    json_decref(np);
    json_decref(a);
}
END_TEST

START_TEST(conditions_keep_transition_time) {
    json_t *c = json_array();
    conditions_set(c, "Ready", 1, "Ok", "fine", 1, "2026-01-01T00:00:00Z");
    conditions_set(c, "Ready", 1, "Ok", "fine", 2, "2026-01-02T00:00:00Z"); /* same status: time kept */
    ck_assert_uint_eq(json_array_size(c), 1);
    ck_assert_str_eq(json_str_at(json_array_get(c, 0), "lastTransitionTime"), "2026-01-01T00:00:00Z");
    ck_assert_int_eq(json_int_at(json_array_get(c, 0), "observedGeneration", 0), 2);
    conditions_set(c, "Ready", 0, "Broken", "bad", 2, "2026-01-03T00:00:00Z"); /* flip: time moves */
    ck_assert_str_eq(json_str_at(json_array_get(c, 0), "lastTransitionTime"), "2026-01-03T00:00:00Z");
    ck_assert_str_eq(json_str_at(json_array_get(c, 0), "status"), "False");
    conditions_set(c, "KeyReady", 1, "K", "k", 2, "2026-01-03T00:00:00Z");
    ck_assert_uint_eq(json_array_size(c), 2); /* one entry per type, never duplicates */
    json_decref(c);
}
END_TEST

START_TEST(subset) {
    json_t *have = json_loads("{\"a\":{\"b\":1,\"c\":[1,2]},\"x\":\"y\",\"extra\":true}", 0, NULL);
    json_t *yes = json_loads("{\"a\":{\"b\":1,\"c\":[1,2]}}", 0, NULL);
    json_t *diff = json_loads("{\"a\":{\"b\":2}}", 0, NULL);
    json_t *arr = json_loads("{\"a\":{\"c\":[1]}}", 0, NULL);
    ck_assert(json_subset(yes, have));
    ck_assert(!json_subset(diff, have));
    ck_assert(!json_subset(arr, have)); /* arrays compare whole */
    ck_assert(!json_subset(yes, NULL));
    json_decref(have);
    json_decref(yes);
    json_decref(diff);
    json_decref(arr);
}
END_TEST

START_TEST(time_round_trip) {
    char buf[32];
    rfc3339(1700000000, buf, sizeof buf);
    ck_assert_str_eq(buf, "2023-11-14T22:13:20Z");
    long long t;
    ck_assert_int_eq(rfc3339_parse(buf, &t), 0);
    ck_assert_int_eq(t, 1700000000);
    ck_assert_int_eq(rfc3339_parse("2023-11-14T23:13:20.123456+01:00", &t), 0);
    ck_assert_int_eq(t, 1700000000);
    ck_assert_int_eq(rfc3339_parse("2023-11-14T22:13:20", &t), -1);   /* no zone */
    ck_assert_int_eq(rfc3339_parse("2023-11-14T22:13:20Zjunk", &t), -1);
    ck_assert_int_eq(rfc3339_parse("yesterday", &t), -1);
}
END_TEST

START_TEST(names) {
    char buf[300];
    ck_assert_int_eq(agent_secret_name("alpha", buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "alpha-agentmesh-identity");
    ck_assert_int_eq(agent_netpol_name("alpha", buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "alpha-agentmesh");
    char tiny[8];
    ck_assert_int_eq(agent_secret_name("alpha", tiny, sizeof tiny), -1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("agent_render");
    TCase *tc = tcase_create("render");
    tcase_add_test(tc, service_account_aws);
    tcase_add_test(tc, service_account_azure_preexisting);
    tcase_add_test(tc, service_account_gcp_and_none);
    tcase_add_test(tc, network_policy_normal);
    tcase_add_test(tc, network_policy_quarantine);
    tcase_add_test(tc, conditions_keep_transition_time);
    tcase_add_test(tc, subset);
    tcase_add_test(tc, time_round_trip);
    tcase_add_test(tc, names);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
