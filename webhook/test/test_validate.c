/* test_validate.c — the validating webhook's verdicts and messages.
 *
 * Each case starts from a valid object, changes one field (a JSON merge of
 * `change` into it, null deleting a member) and expects either acceptance or
 * a denial whose message contains the expected text, field path first. */
#include "common/test/check_run.h"
#include "webhook/validate.h"

#include "common/json.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *valid_agent(void) {
    return json_loads(
        "{\"apiVersion\":\"agentmesh.io/v1alpha1\",\"kind\":\"AgentIdentity\","
        "\"metadata\":{\"name\":\"alpha\",\"namespace\":\"team-a\"},"
        "\"spec\":{\"sponsor\":\"alice@example.com\",\"description\":\"reads data\","
        "\"capabilities\":[\"read:data\",\"write:reports:weekly\",\"invoke:tools/*\"],"
        "\"trust\":{\"initialScore\":500},\"keyRotation\":{\"intervalSeconds\":86400},"
        "\"cloud\":{\"aws\":{\"roleArn\":\"arn:aws:iam::123456789012:role/agent-alpha\","
        "\"audience\":\"sts.amazonaws.com\",\"stsRegionalEndpoints\":true,"
        "\"tokenExpirationSeconds\":86400,\"injectToken\":false}},\"suspended\":false}}",
        0, NULL);
}

/* RFC 7386 merge of `patch` into `target`. */
static void merge(json_t *target, const json_t *patch) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v) {
        json_t *cur = json_object_get(target, k);
        if (json_is_null(v))
            json_object_del(target, k);
        else if (json_is_object(v) && json_is_object(cur))
            merge(cur, v);
        else
            json_object_set(target, k, v);
    }
}

static const struct {
    const char *change;   /* merged into the valid object */
    const char *want;     /* NULL: allowed; else a substring of the denial */
} agent_cases[] = {
    {"{}", NULL},
    {"{\"spec\":{\"cloud\":null,\"capabilities\":null,\"trust\":null,\"keyRotation\":null}}", NULL},
    {"{\"spec\":{\"sponsor\":null}}", "spec.sponsor: required"},
    {"{\"spec\":{\"sponsor\":\"alice\"}}", "spec.sponsor: \"alice\" is not an e-mail address"},
    {"{\"spec\":{\"sponsor\":\"alice@localhost\"}}", "spec.sponsor: \"alice@localhost\" is not an e-mail"},
    {"{\"spec\":{\"sponsor\":\"a b@example.com\"}}", "spec.sponsor:"},
    {"{\"spec\":{\"sponsor\":42}}", "spec.sponsor: must be a string"},
    {"{\"spec\":{\"capabilities\":[\"read:data\",\"readdata\"]}}",
     "spec.capabilities[1]: \"readdata\" is not action:resource[:qualifier]"},
    {"{\"spec\":{\"capabilities\":[\"Read:data\"]}}", "spec.capabilities[0]:"},
    {"{\"spec\":{\"capabilities\":[\"read:data:x:y\"]}}", "spec.capabilities[0]:"},
    {"{\"spec\":{\"capabilities\":\"read:data\"}}", "spec.capabilities: must be a list"},
    {"{\"spec\":{\"capabilities\":[7]}}", "spec.capabilities[0]: must be a string"},
    {"{\"spec\":{\"serviceAccountName\":\"Alpha_SA\"}}", "spec.serviceAccountName: \"Alpha_SA\" is not a DNS-1123"},
    {"{\"spec\":{\"serviceAccountName\":\"alpha-runner\"}}", NULL},
    {"{\"spec\":{\"trust\":{\"initialScore\":1001}}}", "spec.trust.initialScore: 1001 is outside 0..1000"},
    {"{\"spec\":{\"trust\":{\"initialScore\":-1}}}", "spec.trust.initialScore: -1 is outside 0..1000"},
    {"{\"spec\":{\"trust\":{\"initialScore\":\"high\"}}}", "spec.trust.initialScore: must be an integer"},
    {"{\"spec\":{\"keyRotation\":{\"intervalSeconds\":0}}}", NULL},
    {"{\"spec\":{\"keyRotation\":{\"intervalSeconds\":60}}}", "spec.keyRotation.intervalSeconds: 60 is under 300"},
    {"{\"spec\":{\"cloud\":{\"aws\":{\"roleArn\":\"arn:aws:iam::12345:role/x\"}}}}",
     "spec.cloud.aws.roleArn: \"arn:aws:iam::12345:role/x\" is not an IAM role ARN"},
    {"{\"spec\":{\"cloud\":{\"aws\":{\"roleArn\":\"arn:aws:s3:::bucket\"}}}}", "spec.cloud.aws.roleArn:"},
    {"{\"spec\":{\"cloud\":{\"aws\":{\"roleArn\":\"arn:aws-cn:iam::123456789012:role/path/to/r\"}}}}", NULL},
    {"{\"spec\":{\"cloud\":{\"aws\":{\"roleArn\":null}}}}", "spec.cloud.aws.roleArn: required"},
    {"{\"spec\":{\"cloud\":{\"aws\":{\"tokenExpirationSeconds\":60}}}}",
     "spec.cloud.aws.tokenExpirationSeconds: 60 is outside 600..86400"},
    {"{\"spec\":{\"cloud\":{\"aws\":{\"injectToken\":\"yes\"}}}}", "spec.cloud.aws.injectToken: must be true or false"},
    {"{\"spec\":{\"cloud\":{\"gcp\":{\"serviceAccount\":\"alpha@my-project.iam.gserviceaccount.com\"}}}}",
     "spec.cloud: at most one of aws, azure, gcp may be set"},
    {"{\"spec\":{\"cloud\":{\"aws\":null,\"gcp\":{\"serviceAccount\":\"alpha@my-project.iam.gserviceaccount.com\"}}}}", NULL},
    {"{\"spec\":{\"cloud\":{\"aws\":null,\"gcp\":{\"serviceAccount\":\"alpha@gmail.com\"}}}}",
     "spec.cloud.gcp.serviceAccount: \"alpha@gmail.com\" is not a GCP service account"},
    {"{\"spec\":{\"cloud\":{\"aws\":null,\"azure\":{\"clientId\":\"6f0a9d2e-3b8c-4f6a-9a51-2c7e4d1b8f03\","
     "\"tenantId\":\"72f988bf-86f1-41af-91ab-2d7cd011db47\"}}}}", NULL},
    {"{\"spec\":{\"cloud\":{\"aws\":null,\"azure\":{\"clientId\":\"6f0a9d2e-3b8c-4f6a-9a51\"}}}}",
     "spec.cloud.azure.clientId: \"6f0a9d2e-3b8c-4f6a-9a51\" is not a UUID"},
    {"{\"spec\":{\"cloud\":{\"aws\":null,\"azure\":{\"clientId\":\"6f0a9d2e-3b8c-4f6a-9a51-2c7e4d1b8f03\","
     "\"tenantId\":\"zz\"}}}}", "spec.cloud.azure.tenantId: \"zz\" is not a UUID"},
    {"{\"spec\":{\"cloud\":{\"aws\":null,\"ibm\":{}}}}", "spec.cloud.ibm: unknown cloud"},
    {"{\"spec\":{\"suspended\":\"no\"}}", "spec.suspended: must be true or false"},
    {"{\"spec\":null}", "spec: required"},
};

START_TEST(agent_identity_cases) {
    for (size_t i = 0; i < sizeof agent_cases / sizeof *agent_cases; i++) {
        json_t *obj = valid_agent(), *change = json_loads(agent_cases[i].change, 0, NULL);
        ck_assert_msg(obj && change, "case %zu does not parse", i);
        merge(obj, change);
        char msg[512] = "";
        int ok = validate_agent_identity(obj, NULL, msg, sizeof msg);
        if (!agent_cases[i].want)
            ck_assert_msg(ok, "case %zu denied: %s", i, msg);
        else
            ck_assert_msg(!ok && strstr(msg, agent_cases[i].want), "case %zu: got %s '%s', want '%s'",
                          i, ok ? "allowed" : "denied", msg, agent_cases[i].want);
        json_decref(obj);
        json_decref(change);
    }
}
END_TEST

/* serviceAccountName is immutable: compared as effective names (unset = metadata.name). */
START_TEST(service_account_immutable) {
    json_t *old = valid_agent(), *obj = valid_agent();
    char msg[512] = "";
    ck_assert(validate_request("AgentIdentity", "UPDATE", obj, old, msg, sizeof msg));
    /* Setting it explicitly to the name it already defaulted to is no change. */
    json_object_set_new(json_object_get(obj, "spec"), "serviceAccountName", json_string("alpha"));
    ck_assert_msg(validate_request("AgentIdentity", "UPDATE", obj, old, msg, sizeof msg), "%s", msg);
    json_object_set_new(json_object_get(obj, "spec"), "serviceAccountName", json_string("beta"));
    ck_assert(!validate_request("AgentIdentity", "UPDATE", obj, old, msg, sizeof msg));
    ck_assert_str_eq(msg, "spec.serviceAccountName: immutable once set (was \"alpha\", now \"beta\")");
    /* CREATE never compares. */
    ck_assert(validate_request("AgentIdentity", "CREATE", obj, old, msg, sizeof msg));
    /* Removing an explicit name changes the effective one back to metadata.name. */
    json_object_set_new(json_object_get(old, "spec"), "serviceAccountName", json_string("runner"));
    json_object_del(json_object_get(obj, "spec"), "serviceAccountName");
    ck_assert(!validate_request("AgentIdentity", "UPDATE", obj, old, msg, sizeof msg));
    ck_assert_ptr_nonnull(strstr(msg, "was \"runner\", now \"alpha\""));
    json_decref(old);
    json_decref(obj);
}
END_TEST

START_TEST(dispatch) {
    char msg[256] = "";
    ck_assert(validate_request("AgentIdentity", "DELETE", NULL, NULL, msg, sizeof msg));
    json_t *pod = json_pack("{s:{}}", "spec");
    ck_assert(!validate_request("Pod", "CREATE", pod, NULL, msg, sizeof msg));
    ck_assert_str_eq(msg, "kind: Pod is not validated by agentmesh");
    json_decref(pod);
}
END_TEST

static json_t *valid_policy(void) {
    return json_loads(
        "{\"apiVersion\":\"agentmesh.io/v1alpha1\",\"kind\":\"TrustPolicy\","
        "\"metadata\":{\"name\":\"strict\",\"namespace\":\"team-a\"},"
        "\"spec\":{\"agentSelector\":{\"matchLabels\":{\"team\":\"payments\"}},"
        "\"minTrustScore\":500,\"requiredCapabilities\":[\"read:data\"],"
        "\"quarantineBelow\":300,\"revokeBelow\":100,"
        "\"scoring\":{\"weights\":{\"policyCompliance\":0.25,\"securityPosture\":0.25,"
        "\"outputQuality\":0.2,\"resourceEfficiency\":0.15,\"collaborationHealth\":0.15},"
        "\"decayPerHour\":2,\"decayFloor\":100},"
        "\"rules\":[{\"name\":\"block-untrusted\",\"condition\":{\"field\":\"trust_score\","
        "\"operator\":\"lt\",\"value\":200},\"action\":\"deny\",\"priority\":10}],"
        "\"network\":{\"allowFromNamespaces\":{\"matchLabels\":{\"agentmesh-access\":\"true\"}}}}}",
        0, NULL);
}

static const struct {
    const char *change, *want;
} policy_cases[] = {
    {"{}", NULL},
    {"{\"spec\":{\"scoring\":{\"weights\":{\"policyCompliance\":0.35}}}}", "spec.scoring.weights"},
    {"{\"spec\":{\"scoring\":{\"weights\":{\"policyCompliance\":0.2500000001}}}}", NULL},
    {"{\"spec\":{\"revokeBelow\":400}}", "spec.revokeBelow: 400 is above spec.quarantineBelow (300)"},
    {"{\"spec\":{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"trust_score\","
     "\"operator\":\"like\",\"value\":1},\"action\":\"deny\"}]}}", "spec.rules[0].condition.operator"},
    {"{\"spec\":{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"trust_score\","
     "\"operator\":\"lt\",\"value\":1},\"action\":\"explode\"}]}}", "spec.rules[0].action"},
    {"{\"spec\":{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"trust_score\","
     "\"operator\":\"in\",\"value\":500},\"action\":\"deny\"}]}}", "spec.rules[0].condition.value"},
    {"{\"spec\":{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"trust_score\","
     "\"operator\":\"gt\",\"value\":\"high\"},\"action\":\"deny\"}]}}", "spec.rules[0].condition.value"},
    {"{\"spec\":{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"phase\","
     "\"operator\":\"matches\",\"value\":\"(\"},\"action\":\"warn\"}]}}", "spec.rules[0].condition.value"},
    {"{\"spec\":{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"phase\","
     "\"operator\":\"matches\",\"value\":\"^Quar.*$\"},\"action\":\"warn\"}]}}", NULL},
    {"{\"spec\":{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"tier\","
     "\"operator\":\"not_in\",\"value\":[\"untrusted\",\"probationary\"]},\"action\":\"quarantine\"}]}}", NULL},
    {"{\"spec\":{\"minTrustScore\":2000}}", "spec.minTrustScore"},
};

START_TEST(trust_policy_cases) {
    for (size_t i = 0; i < sizeof policy_cases / sizeof *policy_cases; i++) {
        json_t *obj = valid_policy(), *change = json_loads(policy_cases[i].change, 0, NULL);
        ck_assert_msg(obj && change, "case %zu does not parse", i);
        merge(obj, change);
        char msg[512] = "";
        int ok = validate_request("TrustPolicy", "CREATE", obj, NULL, msg, sizeof msg);
        if (!policy_cases[i].want)
            ck_assert_msg(ok, "case %zu denied: %s", i, msg);
        else
            ck_assert_msg(!ok && strncmp(msg, policy_cases[i].want, strlen(policy_cases[i].want)) == 0,
                          "case %zu: got %s '%s', want '%s...'", i, ok ? "allowed" : "denied", msg,
                          policy_cases[i].want);
        json_decref(obj);
        json_decref(change);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("validate");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, agent_identity_cases);
    tcase_add_test(tc, service_account_immutable);
    tcase_add_test(tc, dispatch);
    tcase_add_test(tc, trust_policy_cases);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
