/* trust_engine.h — the trust score model of DESIGN §4, as pure arithmetic.
 *
 * No storage, no locks, no clock: callers pass the time in. The same math
 * runs server-side in Redis (trust_store_redis.c, Lua) and must give
 * bit-identical doubles, so every formula here is written out in one order
 * and documented.
 *
 *   signal {dim, value ∈ [0,1], weight ≥ 0}:
 *       a   = min(1, 0.1 · weight)
 *       dim = dim · (1 − a) + 100 · value · a
 *       value ≥ 0.5 is "positive": last_positive = max(last_positive, now)
 *   base  = round_half_away(10 · Σ dim_i · w_i)          (i in weight order)
 *   hours = WHOLE hours since last positive signal: floor(Δms / 3 600 000),
 *           0 when Δ ≤ 0 (clock skew). Whole hours keep a score stable between
 *           signals, so status is not rewritten every few seconds by decay.
 *   decay = min(decayPerHour · hours, max(0, base − decayFloor))
 *   score = clamp(round_half_away(base − decay), 0, 1000)
 *
 * Decay is computed at read time from timestamps and never stored.
 * Defaults: weights 0.25 0.25 0.20 0.15 0.15, decayPerHour 2, decayFloor 100
 * (the values of DESIGN §2's example TrustPolicy). */
#ifndef AGENTMESH_TRUST_ENGINE_H
#define AGENTMESH_TRUST_ENGINE_H

#include <stddef.h>
#include <stdint.h>

/* Dimensions, in weight order. */
enum trust_dim {
    TRUST_DIM_POLICY_COMPLIANCE = 0,
    TRUST_DIM_SECURITY_POSTURE,
    TRUST_DIM_OUTPUT_QUALITY,
    TRUST_DIM_RESOURCE_EFFICIENCY,
    TRUST_DIM_COLLABORATION_HEALTH,
    TRUST_DIM_COUNT
};

/* Tiers, lowest first, so tiers compare as integers. */
enum trust_tier {
    TRUST_TIER_UNTRUSTED = 0,      /* < 300 */
    TRUST_TIER_PROBATIONARY,       /* ≥ 300 */
    TRUST_TIER_STANDARD,           /* ≥ 500 */
    TRUST_TIER_TRUSTED,            /* ≥ 700 */
    TRUST_TIER_VERIFIED_PARTNER,   /* ≥ 900 */
    TRUST_TIER_COUNT
};

#define TRUST_SCORE_MIN 0
#define TRUST_SCORE_MAX 1000
#define TRUST_SCORE_DEFAULT 500
#define TRUST_DIM_START 50.0
#define TRUST_DEFAULT_DECAY_PER_HOUR 2.0
#define TRUST_DEFAULT_DECAY_FLOOR 100.0

/* "policyCompliance", ... (the CRD/API spelling). */
const char *trust_dim_name(enum trust_dim d);
/* Name -> dimension; -1 when unknown. */
int trust_dim_parse(const char *name, enum trust_dim *out);

/* "verified_partner", "trusted", "standard", "probationary", "untrusted". */
const char *trust_tier_name(enum trust_tier t);
int trust_tier_parse(const char *name, enum trust_tier *out);
enum trust_tier trust_tier_of(int score);

/* Scoring parameters (a TrustPolicy's spec.scoring). */
struct trust_params {
    double weights[TRUST_DIM_COUNT];   /* each ≥ 0, sum 1 within 1e-6 */
    double decay_per_hour;             /* ≥ 0 */
    double decay_floor;                /* 0..1000 */
};

void trust_params_default(struct trust_params *p);
/* 0, or -1 with a message naming the field ("weights.outputQuality: ..."). */
int trust_params_check(const struct trust_params *p, char *err, size_t errlen);

/* One agent's state. Dimensions 0..100. last_positive_ms starts at creation. */
struct trust_state {
    double dims[TRUST_DIM_COUNT];
    int64_t last_positive_ms;          /* unix ms of the last positive signal */
    struct trust_params params;
};

struct trust_signal {
    enum trust_dim dim;
    double value;                      /* 0..1 */
    double weight;                     /* ≥ 0, finite; 1 when the caller had none */
    int64_t at_ms;                     /* unix ms when the signal was received */
};

/* State for a new agent whose composite equals `initial_score` (0..1000):
 * every dimension = initial_score / 10 (exact because weights sum to 1).
 * `params` NULL = defaults. -1 with a message when out of range. */
int trust_state_init(struct trust_state *st, int initial_score, const struct trust_params *params,
                     int64_t now_ms, char *err, size_t errlen);

/* 0, or -1 naming the bad field: dims 0..100, params as trust_params_check
 * (used by stores before accepting a whole state from outside). */
int trust_state_check(const struct trust_state *st, char *err, size_t errlen);

/* 0, or -1 with "value: must be within [0,1]" / "weight: ..." / "dimension: ...". */
int trust_signal_check(const struct trust_signal *sig, char *err, size_t errlen);

/* Applies one signal (checked first; on error the state is unchanged). */
int trust_apply_signal(struct trust_state *st, const struct trust_signal *sig,
                       char *err, size_t errlen);

/* round(10 · Σ dim_i · w_i), half away from zero, without decay or clamp. */
long trust_base(const struct trust_state *st);
/* The score at `now_ms`: base minus decay, clamped to 0..1000. */
int trust_score(const struct trust_state *st, int64_t now_ms);

/* Round half away from zero, after snapping x to a multiple of 1e-6 so that
 * floating-point noise (13.499999999999998 for 13.5) cannot flip a tie. */
double trust_round(double x);

#endif
