/* test_trust_policy.c — TrustPolicy parsing (errors name the field),
 * strictest combination, rule evaluation per field/operator, first match by
 * priority, and the enforcement decision. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/test/check_run.h"
#include "controller/trust_policy.h"

static json_t *J(const char *text)
{
    char err[128];
    json_t *j = json_parse(text, strlen(text), err, sizeof err);
    ck_assert_msg(j != NULL, "%s: %s", text, err);
    return j;
}

static void parse_ok(const char *spec, const char *name, struct trust_policy *p)
{
    json_t *j = J(spec);
    char err[256];
    ck_assert_msg(trust_policy_parse(j, name, p, err, sizeof err) == 0, "%s", err);
    json_decref(j);
}

static void parse_fails(const char *spec, const char *want)
{
    json_t *j = J(spec);
    struct trust_policy p;
    char err[256] = "";
    ck_assert_int_eq(trust_policy_parse(j, "ns/p", &p, err, sizeof err), -1);
    ck_assert_msg(strstr(err, want) != NULL, "want \"%s\" in \"%s\"", want, err);
    ck_assert_uint_eq(p.nrules, 0);
    json_decref(j);
}

static const char *const FULL =
    "{\"agentSelector\":{\"matchLabels\":{\"team\":\"payments\"}},"
    "\"minTrustScore\":500,\"requiredCapabilities\":[\"read:data\"],"
    "\"quarantineBelow\":300,\"revokeBelow\":100,"
    "\"scoring\":{\"weights\":{\"policyCompliance\":0.4,\"securityPosture\":0.3,\"outputQuality\":0.1,"
    "\"resourceEfficiency\":0.1,\"collaborationHealth\":0.1},\"decayPerHour\":3,\"decayFloor\":150},"
    "\"rules\":["
    " {\"name\":\"late\",\"condition\":{\"field\":\"phase\",\"operator\":\"eq\",\"value\":\"Active\"},"
    "  \"action\":\"warn\",\"priority\":50},"
    " {\"name\":\"block-untrusted\",\"condition\":{\"field\":\"trust_score\",\"operator\":\"lt\",\"value\":200},"
    "  \"action\":\"deny\",\"priority\":10}],"
    "\"network\":{\"allowFromNamespaces\":{\"matchLabels\":{\"agentmesh-access\":\"true\"}}}}";

START_TEST(parse_full_spec)
{
    struct trust_policy p;
    parse_ok(FULL, "payments/strict", &p);
    ck_assert_str_eq(p.name, "payments/strict");
    ck_assert_int_eq(p.min_trust_score, 500);
    ck_assert_int_eq(p.quarantine_below, 300);
    ck_assert_int_eq(p.revoke_below, 100);
    ck_assert_uint_eq(p.nrequired_caps, 1);
    ck_assert_str_eq(p.required_caps[0], "read:data");
    ck_assert(p.has_scoring);
    ck_assert_double_eq(p.scoring.weights[TRUST_DIM_POLICY_COMPLIANCE], 0.4);
    ck_assert_double_eq(p.scoring.decay_per_hour, 3);
    ck_assert_double_eq(p.scoring.decay_floor, 150);
    ck_assert_uint_eq(p.nrules, 2);
    ck_assert_str_eq(p.rules[0].name, "block-untrusted");   /* sorted by priority */
    ck_assert_str_eq(p.rules[1].name, "late");
    ck_assert_str_eq(p.rules[0].policy, "payments/strict");
    ck_assert(p.has_allow_from);
    json_t *yes = J("{\"team\":\"payments\"}"), *no = J("{\"team\":\"risk\"}");
    ck_assert(trust_policy_selects(&p, yes));
    ck_assert(!trust_policy_selects(&p, no));
    json_decref(yes);
    json_decref(no);
    trust_policy_free(&p);
}
END_TEST

START_TEST(defaults_when_absent)
{
    struct trust_policy p;
    parse_ok("{}", "ns/empty", &p);
    ck_assert_int_eq(p.min_trust_score, 0);
    ck_assert_int_eq(p.quarantine_below, 0);
    ck_assert_int_eq(p.revoke_below, 0);
    ck_assert(!p.has_scoring);
    ck_assert_double_eq(p.scoring.weights[TRUST_DIM_OUTPUT_QUALITY], 0.20);
    ck_assert(!p.has_allow_from);
    ck_assert(trust_policy_selects(&p, NULL));
    trust_policy_free(&p);
}
END_TEST

START_TEST(errors_name_the_field)
{
    parse_fails("{\"scoring\":{\"weights\":{\"policyCompliance\":0.5,\"securityPosture\":0.4}}}",
                "spec.scoring.weights: must sum to 1");
    parse_fails("{\"scoring\":{\"weights\":{\"honesty\":1}}}", "spec.scoring.weights.honesty: unknown dimension");
    parse_fails("{\"scoring\":{\"decayPerHour\":\"fast\"}}", "spec.scoring.decayPerHour: must be a number");
    parse_fails("{\"scoring\":{\"decayFloor\":-5}}", "spec.scoring.decayFloor");
    parse_fails("{\"minTrustScore\":1001}", "spec.minTrustScore: must be an integer within [0,1000]");
    parse_fails("{\"quarantineBelow\":2.5}", "spec.quarantineBelow");
    parse_fails("{\"revokeBelow\":\"x\"}", "spec.revokeBelow");
    parse_fails("{\"requiredCapabilities\":[\"a\",3]}", "spec.requiredCapabilities[1]");
    parse_fails("{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"trust_score\",\"operator\":\"like\","
                "\"value\":1},\"action\":\"deny\"}]}",
                "spec.rules[0].condition.operator: unknown operator \"like\"");
    parse_fails("{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"mood\",\"operator\":\"eq\",\"value\":1},"
                "\"action\":\"deny\"}]}",
                "spec.rules[0].condition.field: unknown field \"mood\"");
    parse_fails("{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"tier\",\"operator\":\"eq\","
                "\"value\":\"gold\"},\"action\":\"deny\"}]}",
                "spec.rules[0].condition.value: unknown tier \"gold\"");
    parse_fails("{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"trust_score\",\"operator\":\"lt\","
                "\"value\":5000},\"action\":\"deny\"}]}",
                "spec.rules[0].condition.value: must be a number within [0,1000]");
    parse_fails("{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"phase\",\"operator\":\"gt\","
                "\"value\":\"A\"},\"action\":\"deny\"}]}",
                "spec.rules[0].condition.operator: gt does not apply to field phase");
    parse_fails("{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"trust_score\",\"operator\":\"matches\","
                "\"value\":\"1\"},\"action\":\"deny\"}]}",
                "matches does not apply to field trust_score");
    parse_fails("{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"phase\",\"operator\":\"in\","
                "\"value\":[]},\"action\":\"deny\"}]}",
                "spec.rules[0].condition.value: must be a non-empty array for in");
    parse_fails("{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"capabilities\",\"operator\":\"matches\","
                "\"value\":\"([\"},\"action\":\"deny\"}]}",
                "spec.rules[0].condition.value: invalid regular expression");
    parse_fails("{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"phase\",\"operator\":\"eq\","
                "\"value\":\"x\"},\"action\":\"explode\"}]}",
                "spec.rules[0].action: unknown action \"explode\"");
    parse_fails("{\"rules\":[{\"condition\":{\"field\":\"phase\",\"operator\":\"eq\",\"value\":\"x\"},"
                "\"action\":\"deny\"}]}",
                "spec.rules[0].name: required");
    parse_fails("{\"rules\":[{\"name\":\"a\",\"condition\":{\"field\":\"phase\",\"operator\":\"eq\",\"value\":\"x\"},"
                "\"action\":\"deny\"},{\"name\":\"a\",\"condition\":{\"field\":\"phase\",\"operator\":\"eq\","
                "\"value\":\"y\"},\"action\":\"deny\"}]}",
                "spec.rules[1].name: duplicate rule name");
    parse_fails("{\"agentSelector\":{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Nope\"}]}}",
                "spec.agentSelector.matchExpressions[0].operator");
    parse_fails("{\"network\":{\"allowFromNamespaces\":{\"matchLabels\":{\"a\":1}}}}",
                "spec.network.allowFromNamespaces.matchLabels.a");
    parse_fails("[]", "spec: must be an object");
}
END_TEST

/* Evaluates one single-rule policy against a subject. */
static int holds(const char *field, const char *op, const char *value, const struct policy_subject *s)
{
    char spec[512];
    snprintf(spec, sizeof spec,
             "{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"%s\",\"operator\":\"%s\",\"value\":%s},"
             "\"action\":\"deny\"}]}",
             field, op, value);
    struct trust_policy p;
    parse_ok(spec, "ns/p", &p);
    int m = trust_policy_evaluate(&p, s) != NULL;
    trust_policy_free(&p);
    return m;
}

START_TEST(dimension_rules)
{
    const double dims[TRUST_DIM_COUNT] = {80, 30, 60, 50, 50};
    struct policy_subject s = {650, TRUST_TIER_STANDARD, "Active", NULL, 0, dims};
    ck_assert(holds("dimensions.securityPosture", "lt", "40", &s));
    ck_assert(!holds("dimensions.policyCompliance", "lt", "40", &s));
    ck_assert(holds("dimensions.outputQuality", "in", "[60, 61]", &s));
    struct policy_subject unknown = {650, TRUST_TIER_STANDARD, "Active", NULL, 0, NULL};
    ck_assert(!holds("dimensions.securityPosture", "lt", "40", &unknown)); /* no dimensions: never holds */
    parse_fails("{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"dimensions.charm\",\"operator\":\"lt\",\"value\":1},\"action\":\"deny\"}]}",
                "unknown field \"dimensions.charm\"");
    parse_fails("{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"dimensions.outputQuality\",\"operator\":\"lt\",\"value\":101},\"action\":\"deny\"}]}",
                "must be a number within [0,100]");
    parse_fails("{\"rules\":[{\"name\":\"r\",\"condition\":{\"field\":\"dimensions\",\"operator\":\"lt\",\"value\":1},\"action\":\"deny\"}]}",
                "unknown field \"dimensions\"");
}
END_TEST

START_TEST(rule_fields_and_operators)
{
    const char *caps[] = {"read:data", "write:reports"};
    struct policy_subject s = {650, TRUST_TIER_STANDARD, "Active", caps, 2, NULL};
    ck_assert(holds("trust_score", "eq", "650", &s));
    ck_assert(!holds("trust_score", "ne", "650", &s));
    ck_assert(holds("trust_score", "gt", "649", &s));
    ck_assert(!holds("trust_score", "gt", "650", &s));
    ck_assert(holds("trust_score", "gte", "650", &s));
    ck_assert(holds("trust_score", "lt", "651", &s));
    ck_assert(!holds("trust_score", "lt", "650", &s));
    ck_assert(holds("trust_score", "lte", "650", &s));
    ck_assert(holds("trust_score", "in", "[1, 650]", &s));
    ck_assert(!holds("trust_score", "not_in", "[1, 650]", &s));
    /* tiers compare by rank */
    ck_assert(holds("tier", "eq", "\"standard\"", &s));
    ck_assert(holds("tier", "lt", "\"trusted\"", &s));
    ck_assert(!holds("tier", "lt", "\"standard\"", &s));
    ck_assert(holds("tier", "gte", "\"probationary\"", &s));
    ck_assert(holds("tier", "in", "[\"untrusted\",\"standard\"]", &s));
    ck_assert(holds("tier", "matches", "\"^stan\"", &s));
    ck_assert(!holds("tier", "matches", "\"^trust\"", &s));
    ck_assert(holds("phase", "eq", "\"Active\"", &s));
    ck_assert(holds("phase", "ne", "\"Quarantined\"", &s));
    ck_assert(holds("phase", "not_in", "[\"Revoked\",\"Quarantined\"]", &s));
    ck_assert(holds("phase", "matches", "\"^(Active|Pending)$\"", &s));
    ck_assert(!holds("phase", "matches", "\"^Act$\"", &s));
    /* capabilities are a set */
    ck_assert(holds("capabilities", "eq", "\"write:reports\"", &s));
    ck_assert(!holds("capabilities", "eq", "\"write:data\"", &s));
    ck_assert(holds("capabilities", "ne", "\"admin:all\"", &s));
    ck_assert(!holds("capabilities", "ne", "\"read:data\"", &s));
    ck_assert(holds("capabilities", "in", "[\"admin:all\",\"read:data\"]", &s));
    ck_assert(!holds("capabilities", "not_in", "[\"admin:all\",\"read:data\"]", &s));
    ck_assert(holds("capabilities", "not_in", "[\"admin:all\"]", &s));
    ck_assert(holds("capabilities", "matches", "\"^write:\"", &s));
    ck_assert(!holds("capabilities", "matches", "\"^delete:\"", &s));
    struct policy_subject none = {650, TRUST_TIER_STANDARD, NULL, NULL, 0, NULL};
    ck_assert(!holds("capabilities", "in", "[\"read:data\"]", &none));
    ck_assert(holds("capabilities", "not_in", "[\"read:data\"]", &none));
    ck_assert(holds("phase", "eq", "\"\"", &none));
}
END_TEST

START_TEST(first_match_by_priority)
{
    struct trust_policy p;
    parse_ok("{\"rules\":["
             "{\"name\":\"warn-low\",\"condition\":{\"field\":\"trust_score\",\"operator\":\"lt\",\"value\":600},"
             "\"action\":\"warn\",\"priority\":20},"
             "{\"name\":\"default-prio\",\"condition\":{\"field\":\"trust_score\",\"operator\":\"lt\",\"value\":1000},"
             "\"action\":\"allow\"},"
             "{\"name\":\"deny-very-low\",\"condition\":{\"field\":\"trust_score\",\"operator\":\"lt\",\"value\":200},"
             "\"action\":\"deny\",\"priority\":10}]}",
             "ns/p", &p);
    struct policy_subject s = {150, TRUST_TIER_UNTRUSTED, "Active", NULL, 0, NULL};
    const struct policy_rule *r = trust_policy_evaluate(&p, &s);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->name, "deny-very-low");
    ck_assert_str_eq(policy_action_name(r->action), "deny");
    s.trust_score = 500;
    ck_assert_str_eq(trust_policy_evaluate(&p, &s)->name, "warn-low");
    s.trust_score = 900;
    ck_assert_str_eq(trust_policy_evaluate(&p, &s)->name, "default-prio");   /* priority 1000 */
    s.trust_score = 1000;
    ck_assert_ptr_null(trust_policy_evaluate(&p, &s));
    trust_policy_free(&p);
}
END_TEST

START_TEST(combine_strictest)
{
    struct trust_policy a, b, c, eff;
    parse_ok(FULL, "ns/a", &a);
    parse_ok("{\"minTrustScore\":700,\"quarantineBelow\":250,\"revokeBelow\":150,"
             "\"requiredCapabilities\":[\"read:data\",\"write:reports\"],"
             "\"scoring\":{\"decayPerHour\":1,\"decayFloor\":50},"
             "\"rules\":[{\"name\":\"q\",\"condition\":{\"field\":\"capabilities\",\"operator\":\"matches\","
             "\"value\":\"^admin:\"},\"action\":\"quarantine\",\"priority\":5},"
             "{\"name\":\"late\",\"condition\":{\"field\":\"phase\",\"operator\":\"eq\",\"value\":\"Active\"},"
             "\"action\":\"allow\",\"priority\":50}],"
             "\"network\":{\"allowFromNamespaces\":{\"matchLabels\":{\"env\":\"prod\"}}}}",
             "ns/b", &b);
    parse_ok("{\"minTrustScore\":100}", "ns/c", &c);
    const struct trust_policy *two[] = {&a, &b};
    char err[256];
    ck_assert_int_eq(trust_policy_combine(two, 2, &eff, err, sizeof err), 0);
    /* the inputs may go away: the effective policy owns its copies */
    trust_policy_free(&a);
    ck_assert_str_eq(eff.name, "ns/a,ns/b");
    ck_assert_int_eq(eff.min_trust_score, 700);
    ck_assert_int_eq(eff.quarantine_below, 300);
    ck_assert_int_eq(eff.revoke_below, 150);
    ck_assert_uint_eq(eff.nrequired_caps, 2);
    ck_assert_double_eq(eff.scoring.weights[TRUST_DIM_POLICY_COMPLIANCE], 0.4);   /* first policy's */
    ck_assert_double_eq(eff.scoring.decay_per_hour, 3);
    ck_assert_double_eq(eff.scoring.decay_floor, 50);
    ck_assert_uint_eq(eff.nrules, 4);
    ck_assert_str_eq(eff.rules[0].name, "q");
    ck_assert_str_eq(eff.rules[1].name, "block-untrusted");
    ck_assert_str_eq(eff.rules[2].policy, "ns/a");   /* equal priority 50: input order */
    ck_assert_str_eq(eff.rules[3].policy, "ns/b");
    /* the copied regex still works */
    const char *caps[] = {"admin:cluster"};
    struct policy_subject s = {800, TRUST_TIER_TRUSTED, "Active", caps, 1, NULL};
    ck_assert_str_eq(trust_policy_evaluate(&eff, &s)->name, "q");
    /* allowFromNamespaces: both set -> ANDed */
    ck_assert(eff.has_allow_from);
    json_t *both = J("{\"agentmesh-access\":\"true\",\"env\":\"prod\"}"), *one = J("{\"env\":\"prod\"}");
    ck_assert(label_selector_matches(&eff.allow_from_namespaces, both));
    ck_assert(!label_selector_matches(&eff.allow_from_namespaces, one));
    json_decref(both);
    json_decref(one);
    trust_policy_free(&eff);
    /* one policy without allowFromNamespaces makes the combination admit none */
    const struct trust_policy *bc[] = {&b, &c};
    ck_assert_int_eq(trust_policy_combine(bc, 2, &eff, err, sizeof err), 0);
    ck_assert(!eff.has_allow_from);
    ck_assert_int_eq(eff.min_trust_score, 700);
    trust_policy_free(&eff);
    /* no policies: defaults */
    ck_assert_int_eq(trust_policy_combine(NULL, 0, &eff, err, sizeof err), 0);
    ck_assert_int_eq(eff.min_trust_score, 0);
    ck_assert_uint_eq(eff.nrules, 0);
    trust_policy_free(&eff);
    trust_policy_free(&b);
    trust_policy_free(&c);
}
END_TEST

START_TEST(required_capabilities)
{
    struct trust_policy p;
    parse_ok("{\"requiredCapabilities\":[\"read:data\",\"write:reports\"]}", "ns/p", &p);
    const char *has[] = {"write:reports", "read:data", "x:y"};
    const char *lacks[] = {"read:data"};
    const char *missing = NULL;
    ck_assert(trust_policy_has_required_caps(&p, has, 3, &missing));
    ck_assert(!trust_policy_has_required_caps(&p, lacks, 1, &missing));
    ck_assert_str_eq(missing, "write:reports");
    trust_policy_free(&p);
}
END_TEST

START_TEST(enforcement)
{
    struct trust_policy p;
    parse_ok("{\"quarantineBelow\":300,\"revokeBelow\":100,\"rules\":[{\"name\":\"no-admin\","
             "\"condition\":{\"field\":\"capabilities\",\"operator\":\"eq\",\"value\":\"admin:all\"},"
             "\"action\":\"quarantine\",\"priority\":1}]}",
             "ns/p", &p);
    struct trust_enforcement e;
    struct policy_subject s = {650, TRUST_TIER_STANDARD, "Active", NULL, 0, NULL};
    trust_policy_enforce(&p, &s, 0, &e);
    ck_assert_int_eq(e.phase, TRUST_PHASE_ACTIVE);
    ck_assert_str_eq(e.reason, "TrustSufficient");
    trust_policy_enforce(&p, &s, 1, &e);
    ck_assert_int_eq(e.phase, TRUST_PHASE_QUARANTINED);
    ck_assert_str_eq(e.reason, "Suspended");
    s.trust_score = 299;
    s.tier = trust_tier_of(299);
    trust_policy_enforce(&p, &s, 0, &e);
    ck_assert_str_eq(trust_phase_name(e.phase), "Quarantined");
    ck_assert_str_eq(e.reason, "ScoreBelowQuarantineThreshold");
    ck_assert_ptr_nonnull(strstr(e.message, "299"));
    s.trust_score = 300;
    trust_policy_enforce(&p, &s, 0, &e);
    ck_assert_int_eq(e.phase, TRUST_PHASE_ACTIVE);
    s.trust_score = 99;
    trust_policy_enforce(&p, &s, 1, &e);   /* revoke wins over suspended */
    ck_assert_str_eq(trust_phase_name(e.phase), "Revoked");
    ck_assert_str_eq(e.reason, "ScoreBelowRevokeThreshold");
    const char *caps[] = {"admin:all"};
    struct policy_subject adm = {800, TRUST_TIER_TRUSTED, "Active", caps, 1, NULL};
    trust_policy_enforce(&p, &adm, 0, &e);
    ck_assert_int_eq(e.phase, TRUST_PHASE_QUARANTINED);
    ck_assert_str_eq(e.reason, "PolicyRuleQuarantine");
    ck_assert_ptr_nonnull(strstr(e.message, "no-admin"));
    trust_policy_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("trust_policy");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, parse_full_spec);
    tcase_add_test(tc, dimension_rules);
    tcase_add_test(tc, defaults_when_absent);
    tcase_add_test(tc, errors_name_the_field);
    tcase_add_test(tc, rule_fields_and_operators);
    tcase_add_test(tc, first_match_by_priority);
    tcase_add_test(tc, combine_strictest);
    tcase_add_test(tc, required_capabilities);
    tcase_add_test(tc, enforcement);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
