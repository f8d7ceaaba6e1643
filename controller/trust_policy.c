/* trust_policy.c — TrustPolicy: parsing with field-naming errors, the
 * strictest combination of several policies, rule evaluation and the
 * enforcement decision (Active / Quarantined / Revoked).
 *
 * Rule operands are decoded and regexes compiled once, at parse time, so
 * evaluation on the hot path (every handshake) does no allocation. */
#include "controller/trust_policy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_RULE_PRIORITY 1000

static const char *const field_names[] = {"trust_score", "tier", "phase", "capabilities", "dimensions"};
#define DIMENSION_PREFIX "dimensions."
static const char *const op_names[] = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "matches"};
static const char *const action_names[] = {"allow", "deny", "warn", "quarantine"};
static const char *const phase_names[] = {"Active", "Quarantined", "Revoked"};

#define COUNT(a) ((int)(sizeof(a) / sizeof *(a)))

const char *policy_field_name(enum policy_field f) { return field_names[f]; }
const char *policy_op_name(enum policy_op op) { return op_names[op]; }
const char *policy_action_name(enum policy_action a) { return action_names[a]; }
const char *trust_phase_name(enum trust_phase ph) { return phase_names[ph]; }

/* Index of `s` in names[0..n), or -1. */
static int lookup(const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

static void rule_free(struct policy_rule *r)
{
    free(r->name);
    free(r->policy);
    free(r->str);
    free(r->nums);
    for (size_t i = 0; r->strs && i < r->nvalues; i++)
        free(r->strs[i]);
    free(r->strs);
    if (r->has_re)
        regfree(&r->re);
    memset(r, 0, sizeof *r);
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void trust_policy_free(struct trust_policy *p)
{
    label_selector_free(&p->selector);
    label_selector_free(&p->allow_from_namespaces);
    free_strv(p->required_caps, p->nrequired_caps);
    for (size_t i = 0; i < p->nrules; i++)
        rule_free(&p->rules[i]);
    free(p->rules);
    trust_policy_init_default(p);
}

void trust_policy_init_default(struct trust_policy *p)
{
    memset(p, 0, sizeof *p);
    trust_params_default(&p->scoring);
}

int trust_policy_selects(const struct trust_policy *p, const json_t *agent_labels)
{
    return label_selector_matches(&p->selector, agent_labels);
}

/* Appends a copy of s to (*v, *n) unless already present. 0 or -1 (OOM). */
static int strv_add_unique(char ***v, size_t *n, const char *s)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i], s) == 0)
            return 0;
    char **nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (!nv)
        return -1;
    *v = nv;
    if (!(nv[*n] = strdup(s)))
        return -1;
    (*n)++;
    return 0;
}

/* Optional integer field in [lo, hi]; absent leaves *out alone. */
static int parse_int(const json_t *obj, const char *key, const char *field, int lo, int hi, int *out,
                     char *err, size_t errlen)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    double d = json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
    if (!json_is_number(v) || d != floor(d) || d < lo || d > hi) {
        snprintf(err, errlen, "%s: must be an integer within [%d,%d]", field, lo, hi);
        return -1;
    }
    *out = (int)d;
    return 0;
}

static int parse_scoring(const json_t *sc, struct trust_params *out, char *err, size_t errlen)
{
    if (!json_is_object(sc)) {
        snprintf(err, errlen, "spec.scoring: must be an object");
        return -1;
    }
    trust_params_default(out);
    const json_t *w = json_object_get(sc, "weights");
    if (w && !json_is_object(w)) {
        snprintf(err, errlen, "spec.scoring.weights: must be an object");
        return -1;
    }
    if (w) {
        memset(out->weights, 0, sizeof out->weights);
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)w, k, v) {
            enum trust_dim d;
            if (trust_dim_parse(k, &d) < 0) {
                snprintf(err, errlen, "spec.scoring.weights.%s: unknown dimension", k);
                return -1;
            }
            if (!json_is_number(v)) {
                snprintf(err, errlen, "spec.scoring.weights.%s: must be a number", k);
                return -1;
            }
            out->weights[d] = json_number_value(v);
        }
    }
    const json_t *dph = json_object_get(sc, "decayPerHour");
    const json_t *floor_ = json_object_get(sc, "decayFloor");
    if ((dph && !json_is_number(dph)) || (floor_ && !json_is_number(floor_))) {
        snprintf(err, errlen, "spec.scoring.%s: must be a number",
                 dph && !json_is_number(dph) ? "decayPerHour" : "decayFloor");
        return -1;
    }
    if (dph)
        out->decay_per_hour = json_number_value(dph);
    if (floor_)
        out->decay_floor = json_number_value(floor_);
    char inner[200];
    if (trust_params_check(out, inner, sizeof inner) < 0) {
        snprintf(err, errlen, "spec.scoring.%s", inner);
        return -1;
    }
    return 0;
}

static int compile_regex(struct policy_rule *r, const char *where, char *err, size_t errlen)
{
    int rc = regcomp(&r->re, r->str, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[128];
        regerror(rc, &r->re, msg, sizeof msg);
        snprintf(err, errlen, "%s.condition.value: invalid regular expression: %s", where, msg);
        return -1;
    }
    r->has_re = 1;
    return 0;
}

/* One operand: a number for trust_score, a tier rank for tier (both into *num),
 * else a copied string into *str. */
static int parse_operand(const struct policy_rule *r, const json_t *v, const char *where,
                         double *num, char **str, char *err, size_t errlen)
{
    if (r->field == POLICY_FIELD_TRUST_SCORE || r->field == POLICY_FIELD_DIMENSION) {
        double max = r->field == POLICY_FIELD_TRUST_SCORE ? 1000 : 100;
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > max) {
            snprintf(err, errlen, "%s: must be a number within [0,%.0f]", where, max);
            return -1;
        }
        *num = json_number_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s) {
        snprintf(err, errlen, "%s: must be a string", where);
        return -1;
    }
    if (r->field == POLICY_FIELD_TIER && r->op != POLICY_OP_MATCHES) {
        enum trust_tier t;
        if (trust_tier_parse(s, &t) < 0) {
            snprintf(err, errlen, "%s: unknown tier \"%s\"", where, s);
            return -1;
        }
        *num = (double)t;
        return 0;
    }
    if (!(*str = strdup(s))) {
        snprintf(err, errlen, "%s: out of memory", where);
        return -1;
    }
    return 0;
}

static int is_numeric_op(enum policy_op op)
{
    return op == POLICY_OP_GT || op == POLICY_OP_GTE || op == POLICY_OP_LT || op == POLICY_OP_LTE;
}

static int parse_condition(struct policy_rule *r, const json_t *cond, const char *where,
                           char *err, size_t errlen)
{
    char at[300];
    if (!json_is_object(cond)) {
        snprintf(err, errlen, "%s.condition: required object", where);
        return -1;
    }
    const char *f = json_string_value(json_object_get(cond, "field"));
    const char *o = json_string_value(json_object_get(cond, "operator"));
    int fi = lookup(field_names, COUNT(field_names) - 1, f);
    int oi = lookup(op_names, COUNT(op_names), o);
    if (fi < 0 && f && strncmp(f, DIMENSION_PREFIX, strlen(DIMENSION_PREFIX)) == 0 &&
        trust_dim_parse(f + strlen(DIMENSION_PREFIX), &r->dim) == 0)
        fi = POLICY_FIELD_DIMENSION;
    if (fi < 0) {
        snprintf(err, errlen,
                 "%s.condition.field: unknown field \"%s\" (trust_score, tier, phase, capabilities, dimensions.<name>)",
                 where, f ? f : "");
        return -1;
    }
    if (oi < 0) {
        snprintf(err, errlen, "%s.condition.operator: unknown operator \"%s\"", where, o ? o : "");
        return -1;
    }
    r->field = (enum policy_field)fi;
    r->op = (enum policy_op)oi;
    if (((r->field == POLICY_FIELD_TRUST_SCORE || r->field == POLICY_FIELD_DIMENSION) && r->op == POLICY_OP_MATCHES) ||
        ((r->field == POLICY_FIELD_PHASE || r->field == POLICY_FIELD_CAPABILITIES) && is_numeric_op(r->op))) {
        snprintf(err, errlen, "%s.condition.operator: %s does not apply to field %s", where, o, f);
        return -1;
    }
    const json_t *v = json_object_get(cond, "value");
    snprintf(at, sizeof at, "%s.condition.value", where);
    if (r->op == POLICY_OP_IN || r->op == POLICY_OP_NOT_IN) {
        size_t n = json_array_size(v);
        if (!json_is_array(v) || n == 0) {
            snprintf(err, errlen, "%s: must be a non-empty array for %s", at, o);
            return -1;
        }
        int numeric = r->field == POLICY_FIELD_TRUST_SCORE || r->field == POLICY_FIELD_TIER ||
                      r->field == POLICY_FIELD_DIMENSION;
        if (numeric ? !(r->nums = calloc(n, sizeof *r->nums)) : !(r->strs = calloc(n, sizeof *r->strs))) {
            snprintf(err, errlen, "%s: out of memory", at);
            return -1;
        }
        r->nvalues = n;
        for (size_t i = 0; i < n; i++) {
            char ai[400];
            snprintf(ai, sizeof ai, "%s[%zu]", at, i);
            if (parse_operand(r, json_array_get(v, i), ai, numeric ? &r->nums[i] : NULL,
                              numeric ? NULL : &r->strs[i], err, errlen) < 0)
                return -1;
        }
        return 0;
    }
    if (parse_operand(r, v, at, &r->num, &r->str, err, errlen) < 0)
        return -1;
    return r->op == POLICY_OP_MATCHES ? compile_regex(r, where, err, errlen) : 0;
}

static int parse_rule(struct policy_rule *r, const json_t *j, const char *policy, const char *where,
                      char *err, size_t errlen)
{
    if (!json_is_object(j)) {
        snprintf(err, errlen, "%s: must be an object", where);
        return -1;
    }
    const char *name = json_string_value(json_object_get(j, "name"));
    if (!name || !*name) {
        snprintf(err, errlen, "%s.name: required string", where);
        return -1;
    }
    const char *a = json_string_value(json_object_get(j, "action"));
    int ai = lookup(action_names, COUNT(action_names), a);
    if (ai < 0) {
        snprintf(err, errlen, "%s.action: unknown action \"%s\" (allow, deny, warn, quarantine)", where,
                 a ? a : "");
        return -1;
    }
    r->action = (enum policy_action)ai;
    r->priority = DEFAULT_RULE_PRIORITY;
    char pf[300];
    snprintf(pf, sizeof pf, "%s.priority", where);
    if (parse_int(j, "priority", pf, -1000000, 1000000, &r->priority, err, errlen) < 0)
        return -1;
    if (!(r->name = strdup(name)) || !(r->policy = strdup(policy))) {
        snprintf(err, errlen, "%s: out of memory", where);
        return -1;
    }
    return parse_condition(r, json_object_get(j, "condition"), where, err, errlen);
}

/* Stable sort by priority (insertion sort: rule lists are short). */
static void sort_rules(struct policy_rule *rules, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct policy_rule x = rules[i];
        size_t j = i;
        for (; j > 0 && rules[j - 1].priority > x.priority; j--)
            rules[j] = rules[j - 1];
        rules[j] = x;
    }
}

static int parse_rules(const json_t *rules, struct trust_policy *out, char *err, size_t errlen)
{
    if (!json_is_array(rules)) {
        snprintf(err, errlen, "spec.rules: must be an array");
        return -1;
    }
    size_t n = json_array_size(rules);
    if (n && !(out->rules = calloc(n, sizeof *out->rules))) {
        snprintf(err, errlen, "spec.rules: out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char where[64];
        snprintf(where, sizeof where, "spec.rules[%zu]", i);
        out->nrules = i + 1;   /* so trust_policy_free releases a half-parsed rule too */
        if (parse_rule(&out->rules[i], json_array_get(rules, i), out->name, where, err, errlen) < 0)
            return -1;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(out->rules[k].name, out->rules[i].name) == 0) {
                snprintf(err, errlen, "%s.name: duplicate rule name \"%s\"", where, out->rules[i].name);
                return -1;
            }
        }
    }
    sort_rules(out->rules, out->nrules);
    return 0;
}

static int parse_caps(const json_t *caps, struct trust_policy *out, char *err, size_t errlen)
{
    if (!json_is_array(caps)) {
        snprintf(err, errlen, "spec.requiredCapabilities: must be an array of strings");
        return -1;
    }
    for (size_t i = 0; i < json_array_size(caps); i++) {
        const char *c = json_string_value(json_array_get(caps, i));
        if (!c || !*c) {
            snprintf(err, errlen, "spec.requiredCapabilities[%zu]: must be a non-empty string", i);
            return -1;
        }
        if (strv_add_unique(&out->required_caps, &out->nrequired_caps, c) < 0) {
            snprintf(err, errlen, "spec.requiredCapabilities: out of memory");
            return -1;
        }
    }
    return 0;
}

static int parse_spec(const json_t *spec, struct trust_policy *out, char *err, size_t errlen)
{
    if (!json_is_object(spec)) {
        snprintf(err, errlen, "spec: must be an object");
        return -1;
    }
    if (label_selector_parse(json_object_get(spec, "agentSelector"), "spec.agentSelector", &out->selector,
                             err, errlen) < 0)
        return -1;
    if (parse_int(spec, "minTrustScore", "spec.minTrustScore", 0, 1000, &out->min_trust_score, err, errlen) < 0 ||
        parse_int(spec, "quarantineBelow", "spec.quarantineBelow", 0, 1000, &out->quarantine_below, err,
                  errlen) < 0 ||
        parse_int(spec, "revokeBelow", "spec.revokeBelow", 0, 1000, &out->revoke_below, err, errlen) < 0)
        return -1;
    const json_t *caps = json_object_get(spec, "requiredCapabilities");
    if (caps && !json_is_null(caps) && parse_caps(caps, out, err, errlen) < 0)
        return -1;
    const json_t *sc = json_object_get(spec, "scoring");
    if (sc && !json_is_null(sc)) {
        if (parse_scoring(sc, &out->scoring, err, errlen) < 0)
            return -1;
        out->has_scoring = 1;
    }
    const json_t *rules = json_object_get(spec, "rules");
    if (rules && !json_is_null(rules) && parse_rules(rules, out, err, errlen) < 0)
        return -1;
    const json_t *net = json_object_get(spec, "network");
    if (net && !json_is_null(net) && !json_is_object(net)) {
        snprintf(err, errlen, "spec.network: must be an object");
        return -1;
    }
    const json_t *af = json_object_get(net, "allowFromNamespaces");
    if (af && !json_is_null(af)) {
        if (label_selector_parse(af, "spec.network.allowFromNamespaces", &out->allow_from_namespaces, err,
                                 errlen) < 0)
            return -1;
        out->has_allow_from = 1;
    }
    return 0;
}

int trust_policy_parse(const json_t *spec, const char *name, struct trust_policy *out, char *err,
                       size_t errlen)
{
    trust_policy_init_default(out);
    snprintf(out->name, sizeof out->name, "%s", name ? name : "");
    if (parse_spec(spec, out, err, errlen) < 0) {
        trust_policy_free(out);
        return -1;
    }
    return 0;
}

/* Deep copy of a rule; the regex is compiled again from its source. */
static int rule_copy(struct policy_rule *d, const struct policy_rule *s)
{
    memset(d, 0, sizeof *d);
    d->priority = s->priority;
    d->field = s->field;
    d->op = s->op;
    d->action = s->action;
    d->num = s->num;
    d->nvalues = s->nvalues;
    if (!(d->name = strdup(s->name)) || !(d->policy = strdup(s->policy)))
        return -1;
    if (s->str && !(d->str = strdup(s->str)))
        return -1;
    if (s->nums) {
        if (!(d->nums = malloc(s->nvalues * sizeof *d->nums)))
            return -1;
        memcpy(d->nums, s->nums, s->nvalues * sizeof *d->nums);
    }
    if (s->strs) {
        if (!(d->strs = calloc(s->nvalues, sizeof *d->strs)))
            return -1;
        for (size_t i = 0; i < s->nvalues; i++)
            if (!(d->strs[i] = strdup(s->strs[i])))
                return -1;
    }
    if (s->has_re) {
        if (regcomp(&d->re, d->str, REG_EXTENDED | REG_NOSUB) != 0)
            return -1;
        d->has_re = 1;
    }
    return 0;
}

static void join_name(struct trust_policy *out, const char *name)
{
    size_t len = strlen(out->name);
    snprintf(out->name + len, sizeof out->name - len, "%s%s", len ? "," : "", name);
}

/* Folds one policy into the running strictest combination. */
static int combine_one(struct trust_policy *out, const struct trust_policy *p, int first)
{
    join_name(out, p->name);
    if (p->min_trust_score > out->min_trust_score)
        out->min_trust_score = p->min_trust_score;
    if (p->quarantine_below > out->quarantine_below)
        out->quarantine_below = p->quarantine_below;
    if (p->revoke_below > out->revoke_below)
        out->revoke_below = p->revoke_below;
    for (size_t i = 0; i < p->nrequired_caps; i++)
        if (strv_add_unique(&out->required_caps, &out->nrequired_caps, p->required_caps[i]) < 0)
            return -1;
    if (p->has_scoring) {
        if (!out->has_scoring) {
            out->scoring = p->scoring;
            out->has_scoring = 1;
        } else {
            if (p->scoring.decay_per_hour > out->scoring.decay_per_hour)
                out->scoring.decay_per_hour = p->scoring.decay_per_hour;
            if (p->scoring.decay_floor < out->scoring.decay_floor)
                out->scoring.decay_floor = p->scoring.decay_floor;
        }
    }
    if (first) {
        out->has_allow_from = p->has_allow_from;
    } else if (!p->has_allow_from && out->has_allow_from) {
        out->has_allow_from = 0;
        label_selector_free(&out->allow_from_namespaces);
    }
    if (out->has_allow_from && label_selector_merge(&out->allow_from_namespaces, &p->allow_from_namespaces) < 0)
        return -1;
    if (p->nrules) {
        struct policy_rule *r = realloc(out->rules, (out->nrules + p->nrules) * sizeof *r);
        if (!r)
            return -1;
        out->rules = r;
        for (size_t i = 0; i < p->nrules; i++) {
            int rc = rule_copy(&out->rules[out->nrules], &p->rules[i]);
            out->nrules++;
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

int trust_policy_combine(const struct trust_policy *const *pols, size_t n, struct trust_policy *out,
                         char *err, size_t errlen)
{
    trust_policy_init_default(out);
    for (size_t i = 0; i < n; i++) {
        if (combine_one(out, pols[i], i == 0) < 0) {
            snprintf(err, errlen, "combining %s: out of memory", pols[i]->name);
            trust_policy_free(out);
            return -1;
        }
    }
    sort_rules(out->rules, out->nrules);
    return 0;
}

static int compare(enum policy_op op, double x, double v)
{
    switch (op) {
    case POLICY_OP_EQ: return x == v;
    case POLICY_OP_NE: return x != v;
    case POLICY_OP_GT: return x > v;
    case POLICY_OP_GTE: return x >= v;
    case POLICY_OP_LT: return x < v;
    case POLICY_OP_LTE: return x <= v;
    default: return 0;
    }
}

static int num_in(const struct policy_rule *r, double x)
{
    for (size_t i = 0; i < r->nvalues; i++)
        if (r->nums[i] == x)
            return 1;
    return 0;
}

static int str_in(const struct policy_rule *r, const char *x)
{
    for (size_t i = 0; i < r->nvalues; i++)
        if (strcmp(r->strs[i], x) == 0)
            return 1;
    return 0;
}

/* A numeric field (score, tier rank); `text` is what `matches` sees. */
static int numeric_holds(const struct policy_rule *r, double x, const char *text)
{
    switch (r->op) {
    case POLICY_OP_IN: return num_in(r, x);
    case POLICY_OP_NOT_IN: return !num_in(r, x);
    case POLICY_OP_MATCHES: return regexec(&r->re, text, 0, NULL, 0) == 0;
    default: return compare(r->op, x, r->num);
    }
}

static int string_holds(const struct policy_rule *r, const char *x)
{
    switch (r->op) {
    case POLICY_OP_EQ: return strcmp(x, r->str) == 0;
    case POLICY_OP_NE: return strcmp(x, r->str) != 0;
    case POLICY_OP_IN: return str_in(r, x);
    case POLICY_OP_NOT_IN: return !str_in(r, x);
    case POLICY_OP_MATCHES: return regexec(&r->re, x, 0, NULL, 0) == 0;
    default: return 0;
    }
}

/* Set semantics for capabilities: see trust_policy.h. */
static int caps_hold(const struct policy_rule *r, const struct policy_subject *s)
{
    int any = 0;
    enum policy_op positive = r->op == POLICY_OP_NE ? POLICY_OP_EQ
                            : r->op == POLICY_OP_NOT_IN ? POLICY_OP_IN : r->op;
    struct policy_rule probe = *r;
    probe.op = positive;
    for (size_t i = 0; i < s->ncapabilities && !any; i++)
        any = string_holds(&probe, s->capabilities[i]);
    return positive == r->op ? any : !any;
}

static int rule_holds(const struct policy_rule *r, const struct policy_subject *s)
{
    switch (r->field) {
    case POLICY_FIELD_TRUST_SCORE: return numeric_holds(r, s->trust_score, "");
    case POLICY_FIELD_TIER: return numeric_holds(r, s->tier, trust_tier_name(s->tier));
    case POLICY_FIELD_PHASE: return string_holds(r, s->phase ? s->phase : "");
    case POLICY_FIELD_CAPABILITIES: return caps_hold(r, s);
    case POLICY_FIELD_DIMENSION: return s->dimensions ? numeric_holds(r, s->dimensions[r->dim], "") : 0;
    }
    return 0;
}

const struct policy_rule *trust_policy_evaluate(const struct trust_policy *p, const struct policy_subject *s)
{
    for (size_t i = 0; i < p->nrules; i++)
        if (rule_holds(&p->rules[i], s))
            return &p->rules[i];
    return NULL;
}

int trust_policy_has_required_caps(const struct trust_policy *p, const char *const *caps, size_t ncaps,
                                   const char **missing)
{
    for (size_t i = 0; i < p->nrequired_caps; i++) {
        size_t j = 0;
        while (j < ncaps && strcmp(caps[j], p->required_caps[i]) != 0)
            j++;
        if (j == ncaps) {
            if (missing)
                *missing = p->required_caps[i];
            return 0;
        }
    }
    return 1;
}

void trust_policy_enforce(const struct trust_policy *eff, const struct policy_subject *s, int suspended,
                          struct trust_enforcement *out)
{
    const struct policy_rule *r;
    if (s->trust_score < eff->revoke_below) {
        out->phase = TRUST_PHASE_REVOKED;
        out->reason = "ScoreBelowRevokeThreshold";
        snprintf(out->message, sizeof out->message, "trust score %d is below revokeBelow %d (%.120s)",
                 s->trust_score, eff->revoke_below, eff->name);
    } else if (suspended) {
        out->phase = TRUST_PHASE_QUARANTINED;
        out->reason = "Suspended";
        snprintf(out->message, sizeof out->message, "spec.suspended is true");
    } else if (s->trust_score < eff->quarantine_below) {
        out->phase = TRUST_PHASE_QUARANTINED;
        out->reason = "ScoreBelowQuarantineThreshold";
        snprintf(out->message, sizeof out->message, "trust score %d is below quarantineBelow %d (%.120s)",
                 s->trust_score, eff->quarantine_below, eff->name);
    } else if ((r = trust_policy_evaluate(eff, s)) && r->action == POLICY_ACTION_QUARANTINE) {
        out->phase = TRUST_PHASE_QUARANTINED;
        out->reason = "PolicyRuleQuarantine";
        snprintf(out->message, sizeof out->message, "rule %.60s of %.120s matched (%s %s)", r->name, r->policy,
                 field_names[r->field], op_names[r->op]);
    } else {
        out->phase = TRUST_PHASE_ACTIVE;
        out->reason = "TrustSufficient";
        snprintf(out->message, sizeof out->message, "trust score %d (%s) meets the policy", s->trust_score,
                 trust_tier_name(s->tier));
    }
}
