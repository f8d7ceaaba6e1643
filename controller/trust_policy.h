/* trust_policy.h — TrustPolicy specs: parse, combine, evaluate, enforce.
 *
 * A TrustPolicy (DESIGN §2) selects AgentIdentities by label and sets the
 * bars that act on their trust score. Several policies selecting one agent
 * combine into one effective policy holding the strictest value of each
 * field. This file is pure: no Kubernetes calls, no clock.
 *
 * Defaults when a field is absent: minTrustScore 0, requiredCapabilities [],
 * quarantineBelow 0 and revokeBelow 0 (the policy never quarantines or
 * revokes on score unless it says so), scoring = DESIGN §4 defaults
 * (trust_params_default), rule priority 1000, no network.allowFromNamespaces
 * (no extra namespaces admitted). */
#ifndef AGENTMESH_TRUST_POLICY_H
#define AGENTMESH_TRUST_POLICY_H

#include <jansson.h>
#include <regex.h>
#include <stddef.h>

#include "controller/label_selector.h"
#include "controller/trust_engine.h"

enum policy_field {
    POLICY_FIELD_TRUST_SCORE,      /* "trust_score": number */
    POLICY_FIELD_TIER,             /* "tier": tier name; gt/gte/lt/lte compare tier rank */
    POLICY_FIELD_PHASE,            /* "phase": string */
    POLICY_FIELD_CAPABILITIES,     /* "capabilities": the agent's list, see below */
    POLICY_FIELD_DIMENSION         /* "dimensions.<name>": one dimension, number 0..100 */
};

/* eq ne gt gte lt lte in not_in matches.
 * trust_score: all but matches; in/not_in take a list of numbers.
 * tier:        all; gt.. compare ranks (untrusted < probationary < ... ).
 * phase:       eq ne in not_in matches.
 * capabilities (a set): eq "c" = has c; ne "c" = lacks c; in [..] = has any
 *              of them; not_in [..] = has none of them; matches = some
 *              capability matches the regex. Numeric comparisons are rejected.
 * matches is a POSIX extended regex, unanchored (use ^...$), compiled once at parse. */
enum policy_op {
    POLICY_OP_EQ, POLICY_OP_NE, POLICY_OP_GT, POLICY_OP_GTE, POLICY_OP_LT, POLICY_OP_LTE,
    POLICY_OP_IN, POLICY_OP_NOT_IN, POLICY_OP_MATCHES
};

enum policy_action {
    POLICY_ACTION_ALLOW, POLICY_ACTION_DENY, POLICY_ACTION_WARN, POLICY_ACTION_QUARANTINE
};

struct policy_rule {
    char *name;
    char *policy;            /* "namespace/name" of the TrustPolicy it came from */
    int priority;            /* lower first */
    enum policy_field field;
    enum trust_dim dim;      /* POLICY_FIELD_DIMENSION: which one */
    enum policy_op op;
    enum policy_action action;
    double num;              /* scalar numeric operand (trust_score value or tier rank) */
    char *str;               /* scalar string operand / regex source */
    double *nums;            /* in / not_in numeric list (trust_score, tier ranks) */
    char **strs;             /* in / not_in string list (phase, capabilities) */
    size_t nvalues;
    regex_t re;              /* valid when has_re */
    int has_re;
};

struct trust_policy {
    char name[256];          /* "ns/name"; for an effective policy, the sources joined by "," */
    struct label_selector selector;      /* spec.agentSelector */
    int min_trust_score;                 /* 0..1000 */
    char **required_caps;
    size_t nrequired_caps;
    int quarantine_below;                /* 0..1000 */
    int revoke_below;                    /* 0..1000 */
    int has_scoring;                     /* spec.scoring present (else defaults) */
    struct trust_params scoring;         /* always filled (defaults when !has_scoring) */
    struct policy_rule *rules;           /* sorted by priority (stable) */
    size_t nrules;
    int has_allow_from;                  /* spec.network.allowFromNamespaces present */
    struct label_selector allow_from_namespaces;
};

const char *policy_action_name(enum policy_action a);   /* "allow" "deny" "warn" "quarantine" */
const char *policy_op_name(enum policy_op op);
const char *policy_field_name(enum policy_field f);

/* Parses a TrustPolicy `spec` object. `name` is "namespace/name". On error
 * returns -1, leaves *out empty, and writes a message naming the field:
 * "spec.scoring.weights: must sum to 1 (got 0.9)",
 * "spec.rules[1].condition.operator: unknown operator \"like\"". */
int trust_policy_parse(const json_t *spec, const char *name, struct trust_policy *out,
                       char *err, size_t errlen);

/* The empty policy with all defaults (what an agent no policy selects gets). */
void trust_policy_init_default(struct trust_policy *p);

/* 1 when the policy's agentSelector selects an agent with these labels. */
int trust_policy_selects(const struct trust_policy *p, const json_t *agent_labels);

/* Strictest combination of n policies (n may be 0: defaults) into *out, which
 * owns everything it holds (the inputs may be freed afterwards):
 * max minTrustScore, union of requiredCapabilities, max quarantineBelow, max
 * revokeBelow, rules of all policies stably sorted by priority (ties keep
 * the input order — pass policies sorted by name for determinism),
 * allowFromNamespaces only if every policy sets one (their requirements
 * ANDed), scoring: max decayPerHour, min decayFloor, and weights from the
 * first policy (input order) that sets scoring. 0 or -1 with err. */
int trust_policy_combine(const struct trust_policy *const *pols, size_t n, struct trust_policy *out,
                         char *err, size_t errlen);

/* What rule conditions are evaluated against. */
struct policy_subject {
    int trust_score;
    enum trust_tier tier;
    const char *phase;                      /* may be NULL: treated as "" */
    const char *const *capabilities;
    size_t ncapabilities;
    const double *dimensions;               /* TRUST_DIM_COUNT values, or NULL: dimension rules never hold */
};

/* The first rule (by priority) whose condition holds, or NULL (no rule
 * matched: the caller's default, normally allow). */
const struct policy_rule *trust_policy_evaluate(const struct trust_policy *p,
                                                const struct policy_subject *s);

/* 1 when `caps` holds every requiredCapability; else 0 and *missing names the first missing one. */
int trust_policy_has_required_caps(const struct trust_policy *p, const char *const *caps,
                                   size_t ncaps, const char **missing);

enum trust_phase { TRUST_PHASE_ACTIVE, TRUST_PHASE_QUARANTINED, TRUST_PHASE_REVOKED };
const char *trust_phase_name(enum trust_phase ph);      /* "Active" "Quarantined" "Revoked" */

struct trust_enforcement {
    enum trust_phase phase;
    const char *reason;      /* CamelCase, for conditions/Events: see trust_policy_enforce */
    char message[256];       /* human sentence with the numbers */
};

/* The phase an agent should be in, from the effective policy, in order:
 *   score < revokeBelow        -> Revoked      "ScoreBelowRevokeThreshold"
 *   suspended                  -> Quarantined  "Suspended"
 *   score < quarantineBelow    -> Quarantined  "ScoreBelowQuarantineThreshold"
 *   first matching rule's action is quarantine -> Quarantined "PolicyRuleQuarantine"
 *   otherwise                  -> Active       "TrustSufficient"
 * Stateless: if Revoked must stay terminal, the caller keeps it so. */
void trust_policy_enforce(const struct trust_policy *eff, const struct policy_subject *s,
                          int suspended, struct trust_enforcement *out);

void trust_policy_free(struct trust_policy *p);

#endif
