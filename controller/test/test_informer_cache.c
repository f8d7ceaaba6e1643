/* test_informer_cache.c — the informer's cache without a server: watch
 * events and relists applied by hand, the diff a relist produces, the
 * transform hook, ownership of what informer_get returns, and the watch
 * line handler feeding an informer (bookmarks, malformed lines, 410). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/test/check_run.h"
#include "controller/informer.h"
#include "controller/kube_watch.h"

static const char *rv_of(const json_t *o)
{
    const char *rv = json_str_at(o, "metadata.resourceVersion");
    return rv ? rv : "-";
}

#define MAX_REC 64
struct recorder {
    char ev[MAX_REC][128];
    int n;
};

/* Records "<what> <name> <old rv>[-><new rv>]". */
static void rec(struct recorder *r, const char *what, const json_t *o, const json_t *n)
{
    ck_assert_int_lt(r->n, MAX_REC);
    const char *name = json_str_at(n ? n : o, "metadata.name");
    if (n)
        snprintf(r->ev[r->n++], sizeof(r->ev[0]), "%s %s %s->%s", what, name, rv_of(o), rv_of(n));
    else
        snprintf(r->ev[r->n++], sizeof(r->ev[0]), "%s %s %s", what, name, rv_of(o));
}


static void on_add(void *arg, const json_t *o)
{
    rec(arg, "add", o, NULL);
}

static void on_update(void *arg, const json_t *o, const json_t *n)
{
    rec(arg, "update", o, n);
}

static void on_delete(void *arg, const json_t *o)
{
    rec(arg, "delete", o, NULL);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Relist events come in hash order: compare them sorted. */
static void sort_rec(struct recorder *r)
{
    qsort(r->ev, (size_t)r->n, sizeof(r->ev[0]), cmp_str);
}

static json_t *cm(const char *ns, const char *name, const char *rv)
{
    json_t *o = json_pack("{s:s, s:s, s:{s:s, s:s, s:[{s:s}]}, s:{s:s}}", "apiVersion", "v1",
                          "kind", "ConfigMap", "metadata", "name", name, "resourceVersion", rv,
                          "managedFields", "manager", "kubectl", "data", "k", rv);
    ck_assert_ptr_nonnull(o);
    if (ns)
        ck_assert_int_eq(json_set_at(o, "metadata.namespace", json_string(ns)), 0);
    return o;
}

static struct informer *new_informer(struct recorder *r, informer_transform_fn tf)
{
    struct informer_opts o = {
        .gvr = {"", "v1", "configmaps", 1},
        .transform = tf,
        .handlers = {on_add, on_update, on_delete, r},
    };
    struct informer *inf = informer_new(NULL, &o);
    ck_assert_ptr_nonnull(inf);
    return inf;
}

static void apply(struct informer *inf, enum kube_event_type t, json_t *o)
{
    informer_apply_event(inf, t, o);
    json_decref(o);
}

START_TEST(keys)
{
    char buf[64], ns[16], name[16];
    json_t *o = cm("team-a", "cfg", "1");
    ck_assert_int_eq(informer_key(o, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "team-a/cfg");
    ck_assert_int_eq(informer_key(o, buf, 5), -1);               /* does not fit */
    json_decref(o);
    o = cm(NULL, "cluster-thing", "1");
    ck_assert_int_eq(informer_key(o, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "cluster-thing");
    json_decref(o);
    o = json_pack("{s:{s:s}}", "metadata", "namespace", "x");
    ck_assert_int_eq(informer_key(o, buf, sizeof(buf)), -1);    /* no name */
    json_decref(o);

    ck_assert_int_eq(informer_split_key("team-a/cfg", ns, sizeof(ns), name, sizeof(name)), 0);
    ck_assert_str_eq(ns, "team-a");
    ck_assert_str_eq(name, "cfg");
    ck_assert_int_eq(informer_split_key("cluster-thing", ns, sizeof(ns), name, sizeof(name)), 0);
    ck_assert_str_eq(ns, "");
    ck_assert_str_eq(name, "cluster-thing");
    ck_assert_int_eq(informer_split_key("a-very-long-namespace/x", ns, sizeof(ns), name, sizeof(name)),
                     -1);
}
END_TEST

START_TEST(watch_events_dispatch)
{
    struct recorder r = {0};
    struct informer *inf = new_informer(&r, NULL);
    ck_assert_int_eq(informer_has_synced(inf), 0);
    apply(inf, KUBE_EVENT_ADDED, cm("ns", "a", "10"));
    apply(inf, KUBE_EVENT_MODIFIED, cm("ns", "a", "11"));
    apply(inf, KUBE_EVENT_MODIFIED, cm("ns", "b", "12"));     /* unknown key: an add */
    apply(inf, KUBE_EVENT_BOOKMARK, cm("ns", "zz", "13"));    /* ignored by the cache */
    ck_assert_uint_eq(informer_count(inf), 2);

    json_t *held = informer_get(inf, "ns/a");
    ck_assert_ptr_nonnull(held);
    ck_assert_str_eq(rv_of(held), "11");
    apply(inf, KUBE_EVENT_DELETED, cm("ns", "a", "14"));
    apply(inf, KUBE_EVENT_DELETED, cm("ns", "never-seen", "15"));  /* nothing cached: no event */
    ck_assert_ptr_null(informer_get(inf, "ns/a"));
    ck_assert_str_eq(rv_of(held), "11");        /* our reference outlives the cache entry */
    json_decref(held);

    json_t *b = informer_get_by_name(inf, "ns", "b");
    ck_assert_ptr_nonnull(b);
    json_decref(b);
    ck_assert_uint_eq(informer_count(inf), 1);
    char rv[64];
    informer_resource_version(inf, rv, sizeof(rv));
    ck_assert_str_eq(rv, "15");

    ck_assert_int_eq(r.n, 4);
    ck_assert_str_eq(r.ev[0], "add a 10");
    ck_assert_str_eq(r.ev[1], "update a 10->11");
    ck_assert_str_eq(r.ev[2], "add b 12");
    ck_assert_str_eq(r.ev[3], "delete a 11");     /* the last state the cache knew */
    informer_free(inf);
}
END_TEST

static json_t *list_of(const char *rv, json_t *items)
{
    json_t *l = json_pack("{s:s, s:{s:s}, s:o}", "kind", "ConfigMapList", "metadata",
                          "resourceVersion", rv, "items", items);
    ck_assert_ptr_nonnull(l);
    return l;
}

START_TEST(relist_diff)
{
    struct recorder r = {0};
    struct informer *inf = new_informer(&r, NULL);
    json_t *l1 = list_of("100", json_pack("[o,o,o]", cm("ns", "a", "1"), cm("ns", "b", "2"),
                                          cm("ns", "c", "3")));
    ck_assert_int_eq(informer_replace(inf, l1), 0);
    json_decref(l1);
    ck_assert_int_eq(informer_has_synced(inf), 1);
    ck_assert_int_eq(informer_wait_synced(inf, 0.01), 1);
    ck_assert_uint_eq(informer_count(inf), 3);
    sort_rec(&r);
    ck_assert_int_eq(r.n, 3);
    ck_assert_str_eq(r.ev[0], "add a 1");
    ck_assert_str_eq(r.ev[1], "add b 2");
    ck_assert_str_eq(r.ev[2], "add c 3");

    /* after a 410: a unchanged, b changed, c vanished, d new */
    r.n = 0;
    json_t *l2 = list_of("200", json_pack("[o,o,o]", cm("ns", "a", "1"), cm("ns", "b", "7"),
                                          cm("ns", "d", "8")));
    ck_assert_int_eq(informer_replace(inf, l2), 0);
    json_decref(l2);
    sort_rec(&r);
    ck_assert_int_eq(r.n, 3);
    ck_assert_str_eq(r.ev[0], "add d 8");
    ck_assert_str_eq(r.ev[1], "delete c 3");
    ck_assert_str_eq(r.ev[2], "update b 2->7");
    ck_assert_uint_eq(informer_count(inf), 3);
    ck_assert_ptr_null(informer_get(inf, "ns/c"));
    char rv[64];
    informer_resource_version(inf, rv, sizeof(rv));
    ck_assert_str_eq(rv, "200");

    json_t *snap = informer_list(inf);
    ck_assert_uint_eq(json_array_size(snap), 3);
    json_decref(snap);

    /* list items come without apiVersion/kind; cached, they have the list's */
    json_t *bare = cm("ns", "e", "9");
    json_object_del(bare, "kind");
    json_object_del(bare, "apiVersion");
    json_t *l4 = json_pack("{s:s, s:s, s:{s:s}, s:[O]}", "apiVersion", "v1", "kind", "ConfigMapList", "metadata",
                           "resourceVersion", "201", "items", bare);
    r.n = 0;
    ck_assert_int_eq(informer_replace(inf, l4), 0);
    ck_assert_ptr_null(json_object_get(bare, "kind"));            /* the caller's list is untouched */
    json_decref(l4);
    json_decref(bare);
    json_t *typed = informer_get(inf, "ns/e");
    ck_assert_str_eq(json_str_at(typed, "kind"), "ConfigMap");
    ck_assert_str_eq(json_str_at(typed, "apiVersion"), "v1");
    json_decref(typed);
    /* back to a, b, d for the checks below */
    json_t *l5 = list_of("202", json_pack("[o,o,o]", cm("ns", "a", "1"), cm("ns", "b", "7"), cm("ns", "d", "8")));
    ck_assert_int_eq(informer_replace(inf, l5), 0);
    json_decref(l5);

    /* an empty list deletes everything */
    r.n = 0;
    json_t *l3 = list_of("300", json_array());
    ck_assert_int_eq(informer_replace(inf, l3), 0);
    json_decref(l3);
    ck_assert_int_eq(r.n, 3);
    ck_assert_uint_eq(informer_count(inf), 0);

    /* a reply without items is refused and changes nothing */
    json_t *bad = json_pack("{s:s}", "kind", "Status");
    ck_assert_int_eq(informer_replace(inf, bad), -1);
    json_decref(bad);
    informer_free(inf);
}
END_TEST

/* Drops managedFields; drops objects labelled skip=yes entirely. */
static json_t *slim(json_t *obj, void *arg)
{
    (void)arg;
    json_object_del(json_object_get(obj, "metadata"), "managedFields");
    if (json_str_at(obj, "metadata.labels.skip")) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

START_TEST(transform_before_caching)
{
    struct recorder r = {0};
    struct informer *inf = new_informer(&r, slim);
    json_t *a = cm("ns", "a", "1");
    informer_apply_event(inf, KUBE_EVENT_ADDED, a);
    ck_assert_ptr_nonnull(json_at(a, "metadata.managedFields"));   /* caller's object untouched */
    json_decref(a);
    json_t *got = informer_get(inf, "ns/a");
    ck_assert_ptr_nonnull(got);
    ck_assert_ptr_null(json_at(got, "metadata.managedFields"));
    ck_assert_str_eq(json_str_at(got, "data.k"), "1");
    json_decref(got);

    /* the object now transforms to nothing: it leaves the cache as a delete */
    json_t *a2 = cm("ns", "a", "2");
    ck_assert_int_eq(json_set_at(a2, "metadata.labels.skip", json_string("yes")), 0);
    apply(inf, KUBE_EVENT_MODIFIED, a2);
    ck_assert_uint_eq(informer_count(inf), 0);

    /* relist items go through the transform too */
    json_t *s = cm("ns", "s", "3");
    ck_assert_int_eq(json_set_at(s, "metadata.labels.skip", json_string("yes")), 0);
    json_t *l = list_of("9", json_pack("[o,o]", cm("ns", "b", "4"), s));
    ck_assert_int_eq(informer_replace(inf, l), 0);
    json_decref(l);
    ck_assert_uint_eq(informer_count(inf), 1);
    got = informer_get(inf, "ns/b");
    ck_assert_ptr_null(json_at(got, "metadata.managedFields"));
    json_decref(got);

    ck_assert_int_eq(r.n, 3);
    ck_assert_str_eq(r.ev[0], "add a 1");
    ck_assert_str_eq(r.ev[1], "delete a 1");
    ck_assert_str_eq(r.ev[2], "add b 4");
    informer_free(inf);
}
END_TEST

START_TEST(resync_updates_every_object)
{
    struct recorder r = {0};
    struct informer *inf = new_informer(&r, NULL);
    apply(inf, KUBE_EVENT_ADDED, cm("ns", "a", "1"));
    apply(inf, KUBE_EVENT_ADDED, cm(NULL, "b", "2"));
    r.n = 0;
    informer_resync(inf);
    sort_rec(&r);
    ck_assert_int_eq(r.n, 2);
    ck_assert_str_eq(r.ev[0], "update a 1->1");
    ck_assert_str_eq(r.ev[1], "update b 2->2");
    informer_free(inf);
}
END_TEST

/* Indexes ConfigMaps by their data.k value. */
static int by_k(const json_t *o, char *buf, size_t len)
{
    const char *k = json_str_at(o, "data.k");
    if (!k)
        return -1;
    snprintf(buf, len, "%s", k);
    return 0;
}

/* The sorted names of an index answer, joined by ",". */
static const char *names_of(json_t *arr, char *buf, size_t len)
{
    char names[8][32];
    size_t i, n = json_array_size(arr);
    ck_assert_uint_le(n, 8);
    for (i = 0; i < n; i++)
        snprintf(names[i], sizeof(names[i]), "%s", json_str_at(json_array_get(arr, i), "metadata.name"));
    qsort(names, n, sizeof(names[0]), cmp_str);
    buf[0] = '\0';
    for (i = 0; i < n; i++)
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? "," : "", names[i]);
    json_decref(arr);
    return buf;
}

/* A ConfigMap informer indexed by data.k, recording into r. */
static struct informer *new_indexed_informer(struct recorder *r)
{
    struct informer_opts o = {
        .gvr = {"", "v1", "configmaps", 1},
        .index_key = by_k,
        .handlers = {on_add, on_update, on_delete, r},
    };
    struct informer *inf = informer_new(NULL, &o);
    ck_assert_ptr_nonnull(inf);
    return inf;
}

START_TEST(index_follows_adds_updates_deletes_and_relists)
{
    struct recorder r = {0};
    struct informer *inf = new_indexed_informer(&r);
    char buf[128];
    apply(inf, KUBE_EVENT_ADDED, cm("ns", "a", "1"));
    apply(inf, KUBE_EVENT_ADDED, cm("ns", "b", "1"));
    apply(inf, KUBE_EVENT_ADDED, cm("ns", "c", "2"));
    ck_assert_str_eq(names_of(informer_list_index(inf, "1"), buf, sizeof(buf)), "a,b");
    ck_assert_str_eq(names_of(informer_list_index(inf, "2"), buf, sizeof(buf)), "c");
    ck_assert_str_eq(names_of(informer_list_index(inf, "9"), buf, sizeof(buf)), "");
    json_t *one = informer_get_indexed(inf, "2");
    ck_assert_str_eq(json_str_at(one, "metadata.name"), "c");
    json_decref(one);
    ck_assert_ptr_null(informer_get_indexed(inf, "9"));

    apply(inf, KUBE_EVENT_MODIFIED, cm("ns", "a", "2"));     /* moves to another value */
    apply(inf, KUBE_EVENT_DELETED, cm("ns", "b", "1"));
    ck_assert_str_eq(names_of(informer_list_index(inf, "1"), buf, sizeof(buf)), "");
    ck_assert_str_eq(names_of(informer_list_index(inf, "2"), buf, sizeof(buf)), "a,c");

    json_t *l = json_pack("{s:{s:s}, s:[o,o]}", "metadata", "resourceVersion", "5", "items",
                          cm("ns", "c", "3"), cm("ns", "d", "3"));
    ck_assert_int_eq(informer_replace(inf, l), 0);           /* a relist rebuilds the index */
    json_decref(l);
    ck_assert_str_eq(names_of(informer_list_index(inf, "2"), buf, sizeof(buf)), "");
    ck_assert_str_eq(names_of(informer_list_index(inf, "3"), buf, sizeof(buf)), "c,d");

    /* a key leaves the middle of its value's keys; one updated in place stays */
    apply(inf, KUBE_EVENT_ADDED, cm("ns", "x", "7"));
    apply(inf, KUBE_EVENT_ADDED, cm("ns", "y", "7"));
    apply(inf, KUBE_EVENT_ADDED, cm("ns", "z", "7"));
    apply(inf, KUBE_EVENT_DELETED, cm("ns", "y", "7"));
    apply(inf, KUBE_EVENT_MODIFIED, cm("ns", "x", "7"));
    ck_assert_str_eq(names_of(informer_list_index(inf, "7"), buf, sizeof(buf)), "x,z");
    apply(inf, KUBE_EVENT_DELETED, cm("ns", "x", "7"));
    apply(inf, KUBE_EVENT_DELETED, cm("ns", "z", "7"));
    ck_assert_str_eq(names_of(informer_list_index(inf, "7"), buf, sizeof(buf)), "");
    ck_assert_ptr_null(informer_get_indexed(inf, "7"));

    /* an informer without an index answers with nothing, not an error */
    struct informer *plain = new_informer(&r, NULL);
    apply(plain, KUBE_EVENT_ADDED, cm("ns", "a", "1"));
    ck_assert_str_eq(names_of(informer_list_index(plain, "1"), buf, sizeof(buf)), "");
    informer_free(plain);
    informer_free(inf);
}
END_TEST

/* An entry whose index value is its own key (an agent whose ServiceAccount
 * has its name) is found by that value like any other, first, and leaves
 * the index with its last update or delete. */
START_TEST(index_values_naming_their_own_entry)
{
    struct recorder r = {0};
    struct informer *inf = new_indexed_informer(&r);
    char buf[128];
    apply(inf, KUBE_EVENT_ADDED, cm("ns", "b", "ns/a"));
    apply(inf, KUBE_EVENT_ADDED, cm("ns", "a", "ns/a"));
    apply(inf, KUBE_EVENT_ADDED, cm("ns", "c", "ns/c"));
    ck_assert_str_eq(names_of(informer_list_index(inf, "ns/a"), buf, sizeof(buf)), "a,b");
    ck_assert_str_eq(names_of(informer_list_index(inf, "ns/c"), buf, sizeof(buf)), "c");
    json_t *one = informer_get_indexed(inf, "ns/a");
    ck_assert_str_eq(json_str_at(one, "metadata.name"), "a");   /* its own entry first */
    json_decref(one);
    ck_assert_str_eq(names_of(informer_list_index(inf, "ns/b"), buf, sizeof(buf)), "");

    apply(inf, KUBE_EVENT_MODIFIED, cm("ns", "a", "ns/x"));     /* moves to another value */
    ck_assert_str_eq(names_of(informer_list_index(inf, "ns/a"), buf, sizeof(buf)), "b");
    ck_assert_str_eq(names_of(informer_list_index(inf, "ns/x"), buf, sizeof(buf)), "a");
    one = informer_get_indexed(inf, "ns/a");
    ck_assert_str_eq(json_str_at(one, "metadata.name"), "b");
    json_decref(one);
    apply(inf, KUBE_EVENT_DELETED, cm("ns", "c", "ns/c"));
    ck_assert_str_eq(names_of(informer_list_index(inf, "ns/c"), buf, sizeof(buf)), "");
    ck_assert_ptr_null(informer_get_indexed(inf, "ns/c"));

    json_t *l = json_pack("{s:{s:s}, s:[o,o]}", "metadata", "resourceVersion", "9", "items",
                          cm("ns", "d", "ns/d"), cm("ns", "e", "ns/d"));
    ck_assert_int_eq(informer_replace(inf, l), 0);
    json_decref(l);
    ck_assert_str_eq(names_of(informer_list_index(inf, "ns/d"), buf, sizeof(buf)), "d,e");
    ck_assert_str_eq(names_of(informer_list_index(inf, "ns/a"), buf, sizeof(buf)), "");
    informer_free(inf);
}
END_TEST

/* An AgentIdentity looked up for every pod of a Deployment is decoded once;
 * an update, and a delete, are seen at once all the same. */
START_TEST(indexed_lookups_decode_once_and_follow_updates)
{
    struct recorder r = {0};
    struct informer *inf = new_indexed_informer(&r);
    json_t *a = cm("ns", "a", "1");
    ck_assert_int_eq(json_set_at(a, "data.v", json_string("old")), 0);
    apply(inf, KUBE_EVENT_ADDED, a);
    json_t *x = informer_get_indexed(inf, "1"), *y = informer_get_indexed(inf, "1");
    ck_assert_ptr_eq(x, y);   /* the second answer is the tree decoded for the first */
    ck_assert_str_eq(json_str_at(y, "data.v"), "old");
    json_decref(x);
    json_decref(y);

    json_t *b = cm("ns", "a", "1");
    ck_assert_int_eq(json_set_at(b, "data.v", json_string("new")), 0);
    apply(inf, KUBE_EVENT_MODIFIED, b);
    json_t *z = informer_get_indexed(inf, "1");
    ck_assert_str_eq(json_str_at(z, "data.v"), "new");
    json_decref(z);

    apply(inf, KUBE_EVENT_DELETED, cm("ns", "a", "1"));
    ck_assert_ptr_null(informer_get_indexed(inf, "1"));
    informer_free(inf);
}
END_TEST

START_TEST(cached_copies_are_private)
{
    struct recorder r = {0};
    struct informer *inf = new_informer(&r, NULL);
    apply(inf, KUBE_EVENT_ADDED, cm("ns", "a", "1"));
    json_t *got = informer_get(inf, "ns/a");
    ck_assert_int_eq(json_set_at(got, "data.k", json_string("scribbled")), 0);
    json_decref(got);
    got = informer_get(inf, "ns/a");                          /* the cache is unchanged */
    ck_assert_str_eq(json_str_at(got, "data.k"), "1");
    json_decref(got);
    informer_free(inf);
}
END_TEST

/* kube_watch's relist handler, counting calls. */
static int relists;
static int fake_relist(void *arg, char *rv, size_t rvlen)
{
    (void)arg;
    relists++;
    snprintf(rv, rvlen, "1");
    return 0;
}

static void feed_event(void *arg, enum kube_event_type type, json_t *obj)
{
    informer_apply_event(arg, type, obj);
}

static int feed(struct kube_watch_state *st, const char *line)
{
    return kube_watch_handle_line(st, line, strlen(line));
}

START_TEST(watch_lines_into_informer)
{
    struct recorder r = {0};
    struct informer *inf = new_informer(&r, NULL);
    struct kube_watch_handlers h = {.relist = fake_relist, .event = feed_event, .arg = inf};
    struct kube_watch_state st = {.h = &h};
    ck_assert_int_eq(feed(&st, "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\","
                               "\"namespace\":\"n\",\"resourceVersion\":\"5\"}}}"),
                     0);
    ck_assert_str_eq(st.rv, "5");
    ck_assert_int_eq(feed(&st, "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":"
                               "{\"resourceVersion\":\"9\"}}}"),
                     0);
    ck_assert_str_eq(st.rv, "9");                  /* bookmarks move the resume point */
    ck_assert_int_eq(feed(&st, "{\"type\":\"ADDED\",\"object\":"), 0);     /* truncated */
    ck_assert_int_eq(feed(&st, "[1,2]"), 0);
    ck_assert_int_eq(feed(&st, "{\"type\":\"EXPLODED\",\"object\":{}}"), 0);
    ck_assert_int_eq(feed(&st, "{\"type\":\"ADDED\",\"object\":\"x\"}"), 0);
    ck_assert_int_eq(feed(&st, "{\"type\":7,\"object\":{}}"), 0);
    ck_assert_uint_eq(st.malformed, 5);
    ck_assert_str_eq(st.rv, "9");
    ck_assert_int_eq(feed(&st, "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\","
                               "\"namespace\":\"n\",\"resourceVersion\":\"12\"}}}"),
                     0);
    ck_assert_int_eq(st.verdict, KUBE_WATCH_CONTINUE);
    /* a non-410 ERROR stops the stream for a reconnect */
    ck_assert_int_ne(feed(&st, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\","
                               "\"code\":500,\"reason\":\"InternalError\"}}"),
                     0);
    ck_assert_int_eq(st.verdict, KUBE_WATCH_FAILED);
    st.verdict = KUBE_WATCH_CONTINUE;
    ck_assert_int_ne(feed(&st, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
                               "\"reason\":\"Expired\",\"message\":\"too old resource version\"}}"),
                     0);
    ck_assert_int_eq(st.verdict, KUBE_WATCH_GONE);
    ck_assert_str_eq(st.rv, "12");
    ck_assert_uint_eq(st.events, 5);
    ck_assert_int_eq(relists, 0);                  /* relisting is the loop's job, not the line's */

    ck_assert_int_eq(r.n, 2);
    ck_assert_str_eq(r.ev[0], "add a 5");
    ck_assert_str_eq(r.ev[1], "update a 5->12");
    informer_free(inf);
}
END_TEST

START_TEST(decode_errors_name_the_problem)
{
    struct kube_watch_event ev;
    char err[256];
    const char *missing = "{\"object\":{}}";
    ck_assert_int_eq(kube_watch_decode(missing, strlen(missing), &ev, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "\"type\""));
    const char *noobj = "{\"type\":\"DELETED\"}";
    ck_assert_int_eq(kube_watch_decode(noobj, strlen(noobj), &ev, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "\"object\""));
    ck_assert_int_eq(kube_watch_decode("{", 1, &ev, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "not JSON"));
    /* length-bounded: a valid line followed by junk outside `len` */
    const char *ok = "{\"type\":\"DELETED\",\"object\":{\"a\":1}}GARBAGE";
    ck_assert_int_eq(kube_watch_decode(ok, strlen(ok) - 7, &ev, err, sizeof(err)), 0);
    ck_assert_int_eq(ev.type, KUBE_EVENT_DELETED);
    ck_assert_int_eq(json_int_at(ev.object, "a", 0), 1);
    kube_watch_event_clear(&ev);
    ck_assert_str_eq(kube_event_type_name(KUBE_EVENT_BOOKMARK), "BOOKMARK");
}
END_TEST

START_TEST(watch_path_and_backoff)
{
    struct kube_gvr g = {"agentmesh.io", "v1alpha1", "agentidentities", 1};
    struct kube_watch_opts o = {.gvr = &g, .ns = "team-a", .label_selector = "app in (x,y),!tmp"};
    char buf[512];
    ck_assert_int_eq(kube_watch_path(buf, sizeof(buf), &o, "123", 450), 0);
    ck_assert_ptr_nonnull(strstr(buf, "/apis/agentmesh.io/v1alpha1/namespaces/team-a/"));
    ck_assert_ptr_nonnull(strstr(buf, "agentidentities?watch=1&allowWatchBookmarks=true"
                                      "&resourceVersion=123&timeoutSeconds=450"
                                      "&labelSelector=app%20in%20%28x%2Cy%29%2C%21tmp"));
    ck_assert_ptr_null(strstr(buf, "fieldSelector"));
    ck_assert_int_eq(kube_watch_path(buf, 40, &o, "123", 450), -1);
    o.ns = "team a/..";                         /* not a namespace name */
    ck_assert_int_eq(kube_watch_path(buf, sizeof(buf), &o, "123", 450), -1);

    double b = 0, want[] = {0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30, 30};
    for (int i = 0; i < 8; i++) {
        b = kube_watch_backoff_next(b);
        ck_assert_double_eq_tol(b, want[i], 1e-9);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("informer_cache");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, keys);
    tcase_add_test(tc, watch_events_dispatch);
    tcase_add_test(tc, relist_diff);
    tcase_add_test(tc, transform_before_caching);
    tcase_add_test(tc, resync_updates_every_object);
    tcase_add_test(tc, index_follows_adds_updates_deletes_and_relists);
    tcase_add_test(tc, index_values_naming_their_own_entry);
    tcase_add_test(tc, indexed_lookups_decode_once_and_follow_updates);
    tcase_add_test(tc, cached_copies_are_private);
    tcase_add_test(tc, watch_lines_into_informer);
    tcase_add_test(tc, decode_errors_name_the_problem);
    tcase_add_test(tc, watch_path_and_backoff);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
