/* trust_engine.c — the trust score arithmetic of DESIGN §4.
 *
 * Pure functions over struct trust_state. The formulas are mirrored by the
 * Lua script in trust_store_redis.c; keep both evaluating the same IEEE
 * operations in the same order (the e2e test compares them bit for bit). */
#include "controller/trust_engine.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const dim_names[TRUST_DIM_COUNT] = {
    "policyCompliance", "securityPosture", "outputQuality", "resourceEfficiency",
    "collaborationHealth",
};

static const double default_weights[TRUST_DIM_COUNT] = {0.25, 0.25, 0.20, 0.15, 0.15};

static const char *const tier_names[TRUST_TIER_COUNT] = {
    "untrusted", "probationary", "standard", "trusted", "verified_partner",
};

/* Lower bound of each tier, indexed like tier_names. */
static const int tier_floor[TRUST_TIER_COUNT] = {0, 300, 500, 700, 900};

#define MS_PER_HOUR 3600000LL

const char *trust_dim_name(enum trust_dim d)
{
    return (d >= 0 && d < TRUST_DIM_COUNT) ? dim_names[d] : "unknown";
}

int trust_dim_parse(const char *name, enum trust_dim *out)
{
    for (int i = 0; name && i < TRUST_DIM_COUNT; i++) {
        if (strcmp(name, dim_names[i]) == 0) {
            *out = (enum trust_dim)i;
            return 0;
        }
    }
    return -1;
}

const char *trust_tier_name(enum trust_tier t)
{
    return (t >= 0 && t < TRUST_TIER_COUNT) ? tier_names[t] : "unknown";
}

int trust_tier_parse(const char *name, enum trust_tier *out)
{
    for (int i = 0; name && i < TRUST_TIER_COUNT; i++) {
        if (strcmp(name, tier_names[i]) == 0) {
            *out = (enum trust_tier)i;
            return 0;
        }
    }
    return -1;
}

enum trust_tier trust_tier_of(int score)
{
    for (int t = TRUST_TIER_COUNT - 1; t > 0; t--)
        if (score >= tier_floor[t])
            return (enum trust_tier)t;
    return TRUST_TIER_UNTRUSTED;
}

void trust_params_default(struct trust_params *p)
{
    memcpy(p->weights, default_weights, sizeof p->weights);
    p->decay_per_hour = TRUST_DEFAULT_DECAY_PER_HOUR;
    p->decay_floor = TRUST_DEFAULT_DECAY_FLOOR;
}

int trust_params_check(const struct trust_params *p, char *err, size_t errlen)
{
    double sum = 0;
    for (int i = 0; i < TRUST_DIM_COUNT; i++) {
        double w = p->weights[i];
        if (!isfinite(w) || w < 0 || w > 1) {
            snprintf(err, errlen, "weights.%s: must be within [0,1] (got %g)", dim_names[i], w);
            return -1;
        }
        sum += w;
    }
    if (fabs(sum - 1.0) > 1e-6) {
        snprintf(err, errlen, "weights: must sum to 1 (got %.9g)", sum);
        return -1;
    }
    if (!isfinite(p->decay_per_hour) || p->decay_per_hour < 0 || p->decay_per_hour > 1000) {
        snprintf(err, errlen, "decayPerHour: must be within [0,1000] (got %g)", p->decay_per_hour);
        return -1;
    }
    if (!isfinite(p->decay_floor) || p->decay_floor < 0 || p->decay_floor > 1000) {
        snprintf(err, errlen, "decayFloor: must be within [0,1000] (got %g)", p->decay_floor);
        return -1;
    }
    return 0;
}

int trust_state_init(struct trust_state *st, int initial_score, const struct trust_params *params,
                     int64_t now_ms, char *err, size_t errlen)
{
    if (initial_score < TRUST_SCORE_MIN || initial_score > TRUST_SCORE_MAX) {
        snprintf(err, errlen, "initialScore: must be within [0,1000] (got %d)", initial_score);
        return -1;
    }
    if (params) {
        if (trust_params_check(params, err, errlen) < 0)
            return -1;
        st->params = *params;
    } else {
        trust_params_default(&st->params);
    }
    for (int i = 0; i < TRUST_DIM_COUNT; i++)
        st->dims[i] = initial_score / 10.0;
    st->last_positive_ms = now_ms;
    return 0;
}

int trust_signal_check(const struct trust_signal *sig, char *err, size_t errlen)
{
    if (sig->dim < 0 || sig->dim >= TRUST_DIM_COUNT) {
        snprintf(err, errlen, "dimension: unknown dimension %d", (int)sig->dim);
        return -1;
    }
    if (!isfinite(sig->value) || sig->value < 0 || sig->value > 1) {
        snprintf(err, errlen, "value: must be within [0,1] (got %g)", sig->value);
        return -1;
    }
    if (!isfinite(sig->weight) || sig->weight < 0) {
        snprintf(err, errlen, "weight: must be a finite number >= 0 (got %g)", sig->weight);
        return -1;
    }
    return 0;
}

int trust_apply_signal(struct trust_state *st, const struct trust_signal *sig, char *err, size_t errlen)
{
    if (trust_signal_check(sig, err, errlen) < 0)
        return -1;
    double a = 0.1 * sig->weight;
    if (a > 1)
        a = 1;
    double d = st->dims[sig->dim];
    st->dims[sig->dim] = d * (1 - a) + 100 * sig->value * a;
    if (sig->value >= 0.5 && sig->at_ms > st->last_positive_ms)
        st->last_positive_ms = sig->at_ms;
    return 0;
}

/* Σ dim·w in binary floating point lands a hair below an exact .5 (for
 * example 10·(9·0.15) = 13.499999999999998): snap to 1e-6 first so the
 * decimal arithmetic of DESIGN §4 decides, then round() (C99: halfway
 * cases away from zero). */
double trust_round(double x)
{
    return round(round(x * 1e6) / 1e6);
}

long trust_base(const struct trust_state *st)
{
    double sum = 0;
    for (int i = 0; i < TRUST_DIM_COUNT; i++)
        sum += st->dims[i] * st->params.weights[i];
    return (long)trust_round(10 * sum);
}

int trust_score(const struct trust_state *st, int64_t now_ms)
{
    double base = (double)trust_base(st);
    int64_t elapsed = now_ms - st->last_positive_ms;
    double hours = elapsed > 0 ? (double)(elapsed / MS_PER_HOUR) : 0;
    double room = base - st->params.decay_floor;
    if (room < 0)
        room = 0;
    double decay = st->params.decay_per_hour * hours;
    if (decay > room)
        decay = room;
    double score = trust_round(base - decay);
    if (score < TRUST_SCORE_MIN)
        score = TRUST_SCORE_MIN;
    if (score > TRUST_SCORE_MAX)
        score = TRUST_SCORE_MAX;
    return (int)score;
}

int trust_state_check(const struct trust_state *st, char *err, size_t errlen)
{
    for (int i = 0; i < TRUST_DIM_COUNT; i++) {
        if (!isfinite(st->dims[i]) || st->dims[i] < 0 || st->dims[i] > 100) {
            snprintf(err, errlen, "dimensions.%s: must be within [0,100] (got %g)", dim_names[i],
                     st->dims[i]);
            return -1;
        }
    }
    return trust_params_check(&st->params, err, errlen);
}
