/* bench/trust_engine.c — in-process trust engine throughput on one core.
 *
 * Measures (each for about a second, after a warm-up):
 *   engine_signals_per_s   trust_apply_signal on 1,000 agents' states
 *   engine_scores_per_s    trust_score (composite + decay) reads
 *   memory_store_signals_per_s  apply_signal through the memory store (lock, hash lookup)
 * and prints one "name value" line per figure. Goal: ≥ 2,000,000 engine
 * signals/s. Usage: bench_trust_engine [seconds-per-figure] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "controller/trust_engine.h"
#include "controller/trust_store.h"

#define AGENTS 1000
#define SIGNALS 4096     /* a pre-generated ring, so the loop measures the engine, not rand() */
#define T0 1700000000000LL

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct trust_signal ring[SIGNALS];
static struct trust_state states[AGENTS];

static void setup(void)
{
    char err[128];
    unsigned seed = 1;
    for (int i = 0; i < SIGNALS; i++)
        ring[i] = (struct trust_signal){(enum trust_dim)(rand_r(&seed) % TRUST_DIM_COUNT),
                                        (rand_r(&seed) % 1001) / 1000.0, (rand_r(&seed) % 30) / 10.0, T0 + i};
    for (int i = 0; i < AGENTS; i++)
        if (trust_state_init(&states[i], 500, NULL, T0, err, sizeof err) < 0) {
            fprintf(stderr, "init: %s\n", err);
            exit(1);
        }
}

static double bench_signals(double secs)
{
    char err[128];
    long n = 0;
    double start = now_s(), end = start + secs, t;
    do {
        for (int i = 0; i < 100000; i++, n++)
            if (trust_apply_signal(&states[n % AGENTS], &ring[n % SIGNALS], err, sizeof err) < 0) {
                fprintf(stderr, "signal: %s\n", err);
                exit(1);
            }
    } while ((t = now_s()) < end);
    return (double)n / (t - start);
}

static double bench_scores(double secs, long *sink)
{
    long n = 0, acc = 0;
    double start = now_s(), end = start + secs, t;
    do {
        for (int i = 0; i < 100000; i++, n++)
            acc += trust_score(&states[n % AGENTS], T0 + n * 1000);
    } while ((t = now_s()) < end);
    *sink = acc;   /* keeps the loop from being optimised away */
    return (double)n / (t - start);
}

static double bench_memory_store(double secs)
{
    struct trust_store *s = trust_store_memory_new(NULL);
    char err[128], dids[AGENTS][48];
    if (!s)
        exit(1);
    for (int i = 0; i < AGENTS; i++) {
        snprintf(dids[i], sizeof dids[i], "did:mesh:%032x", i);
        if (s->create(s, dids[i], &states[i], err, sizeof err) != TS_OK) {
            fprintf(stderr, "create: %s\n", err);
            exit(1);
        }
    }
    long n = 0;
    double start = now_s(), end = start + secs, t;
    do {
        for (int i = 0; i < 10000; i++, n++)
            if (s->apply_signal(s, dids[n % AGENTS], &ring[n % SIGNALS], NULL, err, sizeof err) != TS_OK) {
                fprintf(stderr, "store signal: %s\n", err);
                exit(1);
            }
    } while ((t = now_s()) < end);
    trust_store_destroy(s);
    return (double)n / (t - start);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    if (secs <= 0)
        secs = 1.0;
    setup();
    bench_signals(0.2);   /* warm-up */
    long sink = 0;
    printf("engine_signals_per_s %.0f\n", bench_signals(secs));
    printf("engine_scores_per_s %.0f\n", bench_scores(secs, &sink));
    printf("memory_store_signals_per_s %.0f\n", bench_memory_store(secs));
    printf("goal_engine_signals_per_s 2000000\n");
    return sink == 42 ? 2 : 0;
}
