/* status_throttle.c — status-write records by agent key (status_throttle.h).
 *
 * A record is one allocation (map node, time, resourceVersion, key) and
 * lives only while it can still throttle: records older than the window
 * are swept, at most once per window, by the next write admitted. Kept for
 * the process's life, as they once were, they cost ~130 B of heap per agent
 * for a throttle that looks back 10 s. A swept record also forgets a write
 * whose watch event is later than the window; the cost of that is one
 * status write repeated, the same as after a restart. */
#include "controller/status_throttle.h"

#include "controller/strmap.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RV_MAX 21   /* an etcd revision: up to 20 digits */

struct record {
    struct strmap_node node;      /* first: a node is its record */
    double at;                    /* last write admitted; 0 = none */
    char rv_before[RV_MAX];       /* version our last write replaced; "" = nothing pending */
    char key[];
};

struct status_throttle {
    pthread_mutex_t lock;
    struct strmap *records;       /* nodes: struct record */
    double window;
    double swept_at;
};

struct status_throttle *status_throttle_new(double window)
{
    struct status_throttle *t = calloc(1, sizeof(*t));
    if (!t || !(t->records = strmap_new())) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    t->window = window;
    return t;
}

static void free_record(struct strmap_node *n)
{
    free(n);
}

void status_throttle_free(struct status_throttle *t)
{
    if (!t)
        return;
    strmap_free_nodes(t->records, free_record);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static struct record *find_record(struct status_throttle *t, const char *key)
{
    return (struct record *)strmap_find(t->records, key);
}

/* A new, empty record of `key`, which has none; NULL when out of memory. Lock held. */
static struct record *new_record(struct status_throttle *t, const char *key)
{
    struct record *r = strmap_node_new(offsetof(struct record, key), key);
    if (r)
        strmap_link(t->records, &r->node);
    return r;
}

/* strmap_unlink_if's test: frees a record written before the cutoff. */
static int written_before(struct strmap_node *n, void *cutoff)
{
    if (((struct record *)n)->at >= *(double *)cutoff)
        return 0;
    free_record(n);
    return 1;
}

/* Drops the records that throttle nothing any more, once per window. Lock held. */
static void sweep(struct status_throttle *t, double now)
{
    if (now - t->swept_at < t->window)
        return;
    double cutoff = now - t->window;
    strmap_unlink_if(t->records, written_before, &cutoff);
    t->swept_at = now;
}

double status_throttle_admit(struct status_throttle *t, const char *key, int score_only, double now)
{
    pthread_mutex_lock(&t->lock);
    sweep(t, now);
    struct record *r = find_record(t, key);
    double wait = 0;
    if (score_only && r && r->at > 0 && now - r->at < t->window)
        wait = t->window - (now - r->at);
    else if (r || (r = new_record(t, key)) != NULL)
        r->at = now;
    pthread_mutex_unlock(&t->lock);
    return wait;
}

void status_throttle_wrote(struct status_throttle *t, const char *key, const char *rv_before,
                           const char *rv_after)
{
    int moved = rv_before && rv_after && strcmp(rv_before, rv_after) != 0 && strlen(rv_before) < RV_MAX;
    pthread_mutex_lock(&t->lock);
    struct record *r = find_record(t, key);
    if (!r && moved)
        r = new_record(t, key);
    if (r)
        snprintf(r->rv_before, sizeof(r->rv_before), "%s", moved ? rv_before : "");
    pthread_mutex_unlock(&t->lock);
}

int status_throttle_cache_behind(struct status_throttle *t, const char *key, const char *rv)
{
    pthread_mutex_lock(&t->lock);
    struct record *r = find_record(t, key);
    int behind = r && rv && r->rv_before[0] && strcmp(r->rv_before, rv) == 0;
    pthread_mutex_unlock(&t->lock);
    return behind;
}

void status_throttle_forget(struct status_throttle *t, const char *key)
{
    pthread_mutex_lock(&t->lock);
    free_record(strmap_unlink(t->records, key));
    pthread_mutex_unlock(&t->lock);
}

size_t status_throttle_count(struct status_throttle *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = strmap_count(t->records);
    pthread_mutex_unlock(&t->lock);
    return n;
}
