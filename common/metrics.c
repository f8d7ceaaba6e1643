/* metrics.c — the Prometheus registry behind metrics.h.
 *
 * Series of one metric live in a chained hash table keyed by the joined
 * label values, so a gauge per agent (agentmesh_trust_score) stays O(1) to
 * update with tens of thousands of agents. One registry mutex: updates are
 * a hash lookup and an add, far below the cost of what they measure. */
#include "common/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LABELS 4

enum metric_kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

/* One allocation with its label values (a copy of each per series was two
 * more mallocs per agent for agentmesh_trust_score). */
struct series {
    struct series *next;
    char *values[MAX_LABELS]; /* into text */
    uint64_t hash;
    double value;         /* counter/gauge value, histogram sum */
    uint64_t count;       /* histogram observations */
    uint64_t *bucket_counts;
    char text[];          /* the label values, each NUL-terminated */
};

struct metric {
    struct metric *next;
    enum metric_kind kind;
    char *name, *help;
    char *label_names[MAX_LABELS];
    int nlabels;
    double *buckets;
    int nbuckets;
    struct series **table;
    size_t table_size, nseries;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metric *registry;

static const double default_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                         0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,
                                         5,      10};

static struct series *lookup(struct metric *m, const char *const *values, int create);

static char *xstrdup(const char *s) {
    char *d = strdup(s ? s : "");
    if (!d) abort(); /* out of memory at declaration time: nothing sane to do */
    return d;
}

static struct metric *declare(enum metric_kind kind, const char *name, const char *help,
                              const char *labels, const double *buckets, int nbuckets) {
    pthread_mutex_lock(&registry_lock);
    for (struct metric *m = registry; m; m = m->next) {
        if (strcmp(m->name, name) == 0) {
            pthread_mutex_unlock(&registry_lock);
            return m;
        }
    }
    struct metric *m = calloc(1, sizeof *m);
    if (!m) abort();
    m->kind = kind;
    m->name = xstrdup(name);
    m->help = xstrdup(help);
    if (labels && *labels) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s", labels);
        char *save = NULL;
        for (char *tok = strtok_r(tmp, ",", &save); tok && m->nlabels < MAX_LABELS;
             tok = strtok_r(NULL, ",", &save))
            m->label_names[m->nlabels++] = xstrdup(tok);
    }
    if (kind == KIND_HISTOGRAM) {
        if (!buckets) {
            buckets = default_buckets;
            nbuckets = (int)(sizeof default_buckets / sizeof default_buckets[0]);
        }
        m->buckets = malloc(sizeof(double) * (size_t)nbuckets);
        if (!m->buckets) abort();
        memcpy(m->buckets, buckets, sizeof(double) * (size_t)nbuckets);
        m->nbuckets = nbuckets;
    }
    m->table_size = 16;
    m->table = calloc(m->table_size, sizeof *m->table);
    if (!m->table) abort();
    if (m->nlabels == 0) lookup(m, NULL, 1); /* an unlabelled metric shows 0 from the start */
    /* append, so output order is declaration order */
    struct metric **tail = &registry;
    while (*tail) tail = &(*tail)->next;
    *tail = m;
    pthread_mutex_unlock(&registry_lock);
    return m;
}

struct metric *metrics_counter(const char *name, const char *help, const char *labels) {
    return declare(KIND_COUNTER, name, help, labels, NULL, 0);
}
struct metric *metrics_gauge(const char *name, const char *help, const char *labels) {
    return declare(KIND_GAUGE, name, help, labels, NULL, 0);
}
struct metric *metrics_histogram(const char *name, const char *help, const char *labels,
                                 const double *buckets, int nbuckets) {
    return declare(KIND_HISTOGRAM, name, help, labels, buckets, nbuckets);
}

static uint64_t hash_values(const char *const *values, int n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (int i = 0; i < n; i++) {
        for (const char *p = values[i]; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return h;
}

static void grow(struct metric *m) {
    size_t nsize = m->table_size * 2;
    struct series **nt = calloc(nsize, sizeof *nt);
    if (!nt) return; /* keep the old table; chains just get longer */
    for (size_t i = 0; i < m->table_size; i++) {
        struct series *s = m->table[i];
        while (s) {
            struct series *next = s->next;
            s->next = nt[s->hash & (nsize - 1)];
            nt[s->hash & (nsize - 1)] = s;
            s = next;
        }
    }
    free(m->table);
    m->table = nt;
    m->table_size = nsize;
}

/* Finds (or, when `create`, makes) the series for these label values. Lock held. */
static struct series *lookup(struct metric *m, const char *const *values, int create) {
    uint64_t h = hash_values(values, m->nlabels);
    for (struct series *s = m->table[h & (m->table_size - 1)]; s; s = s->next) {
        if (s->hash != h) continue;
        int same = 1;
        for (int i = 0; i < m->nlabels && same; i++) same = strcmp(s->values[i], values[i]) == 0;
        if (same) return s;
    }
    if (!create) return NULL;
    size_t text_len = 0;
    for (int i = 0; i < m->nlabels; i++) text_len += strlen(values[i]) + 1;
    struct series *s = calloc(1, sizeof *s + text_len);
    if (!s) return NULL;
    char *p = s->text;
    for (int i = 0; i < m->nlabels; i++) {
        s->values[i] = p;
        p = stpcpy(p, values[i]) + 1;
    }
    if (m->kind == KIND_HISTOGRAM) {
        s->bucket_counts = calloc((size_t)m->nbuckets, sizeof(uint64_t));
        if (!s->bucket_counts) {
            free(s);
            return NULL;
        }
    }
    s->hash = h;
    if (m->nseries + 1 > m->table_size * 2) grow(m);
    s->next = m->table[h & (m->table_size - 1)];
    m->table[h & (m->table_size - 1)] = s;
    m->nseries++;
    return s;
}

static void collect_values(struct metric *m, va_list ap, const char **values) {
    for (int i = 0; i < m->nlabels; i++) {
        const char *v = va_arg(ap, const char *);
        values[i] = v ? v : "";
    }
}

enum update_op { OP_ADD, OP_SET, OP_OBSERVE };

static void update(struct metric *m, enum update_op op, double v, va_list ap) {
    if (!m) return;
    const char *values[MAX_LABELS];
    collect_values(m, ap, values);
    pthread_mutex_lock(&registry_lock);
    struct series *s = lookup(m, values, 1);
    if (s) {
        if (op == OP_ADD) {
            s->value += v;
        } else if (op == OP_SET) {
            s->value = v;
        } else {
            s->value += v;
            s->count++;
            for (int i = 0; i < m->nbuckets; i++)
                if (v <= m->buckets[i]) s->bucket_counts[i]++;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

void metric_add(struct metric *m, double delta, ...) {
    va_list ap;
    va_start(ap, delta);
    update(m, OP_ADD, delta, ap);
    va_end(ap);
}

void metric_set(struct metric *m, double value, ...) {
    va_list ap;
    va_start(ap, value);
    update(m, OP_SET, value, ap);
    va_end(ap);
}

void metric_observe(struct metric *m, double value, ...) {
    va_list ap;
    va_start(ap, value);
    update(m, OP_OBSERVE, value, ap);
    va_end(ap);
}

static void free_series(struct series *s) {
    free(s->bucket_counts);
    free(s);
}

void metric_remove(struct metric *m, ...) {
    if (!m) return;
    const char *values[MAX_LABELS];
    va_list ap;
    va_start(ap, m);
    collect_values(m, ap, values);
    va_end(ap);
    pthread_mutex_lock(&registry_lock);
    struct series *target = lookup(m, values, 0);
    if (target) {
        struct series **pp = &m->table[target->hash & (m->table_size - 1)];
        while (*pp != target) pp = &(*pp)->next;
        *pp = target->next;
        free_series(target);
        m->nseries--;
    }
    pthread_mutex_unlock(&registry_lock);
}

double metric_value(struct metric *m, ...) {
    if (!m) return 0;
    const char *values[MAX_LABELS];
    va_list ap;
    va_start(ap, m);
    collect_values(m, ap, values);
    va_end(ap);
    pthread_mutex_lock(&registry_lock);
    struct series *s = lookup(m, values, 0);
    double v = !s ? 0 : m->kind == KIND_HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&registry_lock);
    return v;
}

/* A growable output buffer; `failed` latches on OOM so render returns NULL. */
struct out {
    char *buf;
    size_t len, cap;
    int failed;
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(struct out *o, const char *fmt, ...) {
    if (o->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t ncap = (o->cap + (size_t)n + 1) * 2;
        char *nb = realloc(o->buf, ncap);
        if (!nb) {
            o->failed = 1;
            return;
        }
        o->buf = nb;
        o->cap = ncap;
    }
}

/* Label values escaped per the exposition format: backslash, quote, newline. */
static void out_label_value(struct out *o, const char *v) {
    for (const char *p = v; *p; p++) {
        if (*p == '\\') outf(o, "\\\\");
        else if (*p == '"') outf(o, "\\\"");
        else if (*p == '\n') outf(o, "\\n");
        else outf(o, "%c", *p);
    }
}

static void out_labels(struct out *o, const struct metric *m, const struct series *s,
                       const char *extra_name, const char *extra_value) {
    if (m->nlabels == 0 && !extra_name) return;
    outf(o, "{");
    for (int i = 0; i < m->nlabels; i++) {
        outf(o, "%s%s=\"", i ? "," : "", m->label_names[i]);
        out_label_value(o, s->values[i]);
        outf(o, "\"");
    }
    if (extra_name) outf(o, "%s%s=\"%s\"", m->nlabels ? "," : "", extra_name, extra_value);
    outf(o, "}");
}

static void out_number(struct out *o, double v) {
    if (isinf(v)) outf(o, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15) outf(o, "%.0f", v);
    else outf(o, "%.9g", v);
}

static void render_series(struct out *o, const struct metric *m, const struct series *s) {
    if (m->kind != KIND_HISTOGRAM) {
        outf(o, "%s", m->name);
        out_labels(o, m, s, NULL, NULL);
        outf(o, " ");
        out_number(o, s->value);
        outf(o, "\n");
        return;
    }
    for (int i = 0; i < m->nbuckets; i++) {
        char le[32];
        snprintf(le, sizeof le, "%g", m->buckets[i]);
        outf(o, "%s_bucket", m->name);
        out_labels(o, m, s, "le", le);
        outf(o, " %llu\n", (unsigned long long)s->bucket_counts[i]);
    }
    outf(o, "%s_bucket", m->name);
    out_labels(o, m, s, "le", "+Inf");
    outf(o, " %llu\n%s_sum", (unsigned long long)s->count, m->name);
    out_labels(o, m, s, NULL, NULL);
    outf(o, " ");
    out_number(o, s->value);
    outf(o, "\n%s_count", m->name);
    out_labels(o, m, s, NULL, NULL);
    outf(o, " %llu\n", (unsigned long long)s->count);
}

char *metrics_render(size_t *len) {
    static const char *kind_names[] = {"counter", "gauge", "histogram"};
    struct out o = {0};
    pthread_mutex_lock(&registry_lock);
    for (const struct metric *m = registry; m; m = m->next) {
        outf(&o, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, kind_names[m->kind]);
        for (size_t i = 0; i < m->table_size; i++)
            for (const struct series *s = m->table[i]; s; s = s->next) render_series(&o, m, s);
    }
    pthread_mutex_unlock(&registry_lock);
    if (o.failed || !o.buf) {
        free(o.buf);
        if (len) *len = 0;
        return o.failed ? NULL : strdup("");
    }
    if (len) *len = o.len;
    return o.buf;
}

double metrics_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
