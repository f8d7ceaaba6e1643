/* metrics.h — a small Prometheus registry: counters, gauges, histograms.
 *
 * One process-wide registry, thread-safe. A metric is declared once (name,
 * help, comma-separated label names) and then updated with label values in
 * declaration order. Declaring the same name twice returns the same metric,
 * so independent modules can share e.g. rest_client_requests_total.
 * Label values are escaped on output; never pass secrets as label values. */
#ifndef AGENTMESH_METRICS_H
#define AGENTMESH_METRICS_H

#include <stddef.h>

struct metric;

/* `labels` is "a,b,c" or NULL/"" for none (at most 4 labels). */
struct metric *metrics_counter(const char *name, const char *help, const char *labels);
struct metric *metrics_gauge(const char *name, const char *help, const char *labels);
/* `buckets` are upper bounds, ascending; the +Inf bucket is implicit. NULL =
 * the default latency buckets (100 µs .. 10 s). */
struct metric *metrics_histogram(const char *name, const char *help, const char *labels,
                                 const double *buckets, int nbuckets);

/* Label values follow as `const char *` arguments, one per declared label. */
void metric_add(struct metric *m, double delta, ...);   /* counters and gauges */
void metric_set(struct metric *m, double value, ...);   /* gauges */
void metric_observe(struct metric *m, double value, ...); /* histograms */
/* Drops one labelled series (e.g. a deleted agent's score). */
void metric_remove(struct metric *m, ...);
/* Current value of a counter/gauge series, or the count of a histogram; 0 if absent (tests). */
double metric_value(struct metric *m, ...);

/* The text exposition format 0.0.4, every metric. Caller frees. */
char *metrics_render(size_t *len);

/* Seconds on the monotonic clock, for latency observations. */
double metrics_now(void);

#endif
