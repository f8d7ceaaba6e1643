/* test_agent_registry.c — the registry stores records packed: every field
 * comes back as it went in (strings at their longest and shortest, keys,
 * capabilities), a re-keyed agent replaces its old DID, removal frees the
 * name, equal capability lists are stored once and outlive their last
 * record only in readers' hands, and listings come sorted by namespace and
 * name. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test/check_run.h"
#include "controller/agent_registry.h"

static void fill(struct agent_record *rec, const char *ns, const char *name, const char *did, int seed)
{
    memset(rec, 0, sizeof *rec);
    snprintf(rec->ns, sizeof rec->ns, "%s", ns);
    snprintf(rec->name, sizeof rec->name, "%s", name);
    snprintf(rec->did, sizeof rec->did, "%s", did);
    snprintf(rec->key_id, sizeof rec->key_id, "k%d", seed);
    snprintf(rec->phase, sizeof rec->phase, "%s", seed % 2 ? "Quarantined" : "Active");
    for (int i = 0; i < ID_PUB_LEN; i++) {
        rec->pub[i] = (unsigned char)(seed + i);
        rec->prev_pub[i] = (unsigned char)(seed * 3 + i);
    }
    rec->has_prev = seed % 2;
    rec->prev_valid_until_ms = 1700000000000LL + seed;
    rec->initial_score = 500 + seed;
    trust_params_default(&rec->params);
    rec->params.decay_per_hour = seed / 7.0;
    rec->min_trust_score = 300 + seed;
    rec->capabilities = json_pack("[s,s]", "read:data", "write:reports");
}

static void assert_same(const struct agent_record *a, const struct agent_record *b)
{
    ck_assert_str_eq(a->ns, b->ns);
    ck_assert_str_eq(a->name, b->name);
    ck_assert_str_eq(a->did, b->did);
    ck_assert_str_eq(a->key_id, b->key_id);
    ck_assert_str_eq(a->phase, b->phase);
    ck_assert_mem_eq(a->pub, b->pub, ID_PUB_LEN);
    ck_assert_mem_eq(a->prev_pub, b->prev_pub, ID_PUB_LEN);
    ck_assert_int_eq(a->has_prev, b->has_prev);
    ck_assert_int_eq(a->prev_valid_until_ms, b->prev_valid_until_ms);
    ck_assert_int_eq(a->initial_score, b->initial_score);
    ck_assert_int_eq(a->min_trust_score, b->min_trust_score);
    ck_assert(memcmp(&a->params, &b->params, sizeof a->params) == 0);
    ck_assert(json_equal(a->capabilities, b->capabilities));
}

START_TEST(records_come_back_whole)
{
    struct agent_registry *r = agent_registry_new();
    ck_assert_ptr_nonnull(r);
    static struct agent_record longest, shortest, out;
    char ns[AGENT_NS_MAX], name[AGENT_NAME_MAX];
    memset(ns, 'n', sizeof ns - 1);
    ns[sizeof ns - 1] = '\0';
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    fill(&longest, ns, name, "did:agentmesh:longest", 3);
    fill(&shortest, "a", "b", "did:agentmesh:short", 4);
    ck_assert_int_eq(agent_registry_put(r, &longest), 0);
    ck_assert_int_eq(agent_registry_put(r, &shortest), 0);

    ck_assert_int_eq(agent_registry_get(r, "did:agentmesh:longest", &out), 0);
    assert_same(&out, &longest);
    agent_record_clear(&out);
    ck_assert_int_eq(agent_registry_get(r, "did:agentmesh:short", &out), 0);
    assert_same(&out, &shortest);
    agent_record_clear(&out);
    ck_assert_int_eq(agent_registry_get(r, "did:agentmesh:none", &out), -1);

    char did[ID_DID_BUFSZ];
    ck_assert_int_eq(agent_registry_did_of(r, ns, name, did), 0);
    ck_assert_str_eq(did, "did:agentmesh:longest");
    /* the caller's capabilities are its own: the registry keeps a reference */
    agent_record_clear(&longest);
    ck_assert_int_eq(agent_registry_get(r, "did:agentmesh:longest", &out), 0);
    ck_assert_int_eq(json_array_size(out.capabilities), 2);
    agent_record_clear(&out);
    agent_record_clear(&shortest);
    agent_registry_free(r);
}
END_TEST

START_TEST(rekeyed_agent_replaces_its_old_did_and_removal_frees_the_name)
{
    struct agent_registry *r = agent_registry_new();
    struct agent_record rec, out;
    fill(&rec, "team-a", "alpha", "did:agentmesh:first", 1);
    ck_assert_int_eq(agent_registry_put(r, &rec), 0);
    agent_record_clear(&rec);
    fill(&rec, "team-a", "alpha", "did:agentmesh:second", 2);
    ck_assert_int_eq(agent_registry_put(r, &rec), 0);
    agent_record_clear(&rec);
    ck_assert_int_eq(agent_registry_get(r, "did:agentmesh:first", &out), -1);
    ck_assert_int_eq(agent_registry_get(r, "did:agentmesh:second", &out), 0);
    ck_assert_str_eq(out.key_id, "k2");
    agent_record_clear(&out);

    ck_assert_int_eq(agent_registry_remove(r, "did:agentmesh:second"), 0);
    ck_assert_int_eq(agent_registry_remove(r, "did:agentmesh:second"), -1);
    char did[ID_DID_BUFSZ];
    ck_assert_int_eq(agent_registry_did_of(r, "team-a", "alpha", did), -1);
    agent_registry_free(r);
}
END_TEST

START_TEST(a_did_taken_over_by_another_name_leaves_no_stale_name)
{
    struct agent_registry *r = agent_registry_new();
    struct agent_record a, b;
    fill(&a, "team-a", "alpha", "did:agentmesh:same", 1);
    fill(&b, "team-b", "copy", "did:agentmesh:same", 2);     /* e.g. a Secret copied by hand */
    ck_assert_int_eq(agent_registry_put(r, &a), 0);
    ck_assert_int_eq(agent_registry_put(r, &b), 0);
    char did[ID_DID_BUFSZ];
    ck_assert_int_eq(agent_registry_did_of(r, "team-a", "alpha", did), -1);
    ck_assert_int_eq(agent_registry_did_of(r, "team-b", "copy", did), 0);
    ck_assert_str_eq(did, "did:agentmesh:same");
    ck_assert_int_eq(agent_registry_remove(r, "did:agentmesh:same"), 0);
    ck_assert_int_eq(agent_registry_did_of(r, "team-b", "copy", did), -1);
    agent_record_clear(&a), agent_record_clear(&b);
    agent_registry_free(r);
}
END_TEST

START_TEST(equal_capability_lists_are_shared)
{
    struct agent_registry *r = agent_registry_new();
    struct agent_record a, b, c, out_a, out_b, out_c;
    fill(&a, "team-a", "alpha", "did:agentmesh:a", 1);
    fill(&b, "team-a", "beta", "did:agentmesh:b", 2);     /* same list as a, its own array */
    fill(&c, "team-a", "gamma", "did:agentmesh:c", 3);
    json_decref(c.capabilities);
    c.capabilities = json_pack("[s]", "admin:all");
    ck_assert_int_eq(agent_registry_put(r, &a), 0);
    ck_assert_int_eq(agent_registry_put(r, &b), 0);
    ck_assert_int_eq(agent_registry_put(r, &c), 0);
    ck_assert_int_eq(agent_registry_get(r, "did:agentmesh:a", &out_a), 0);
    ck_assert_int_eq(agent_registry_get(r, "did:agentmesh:b", &out_b), 0);
    ck_assert_int_eq(agent_registry_get(r, "did:agentmesh:c", &out_c), 0);
    ck_assert_ptr_eq(out_a.capabilities, out_b.capabilities);
    ck_assert_ptr_ne(out_a.capabilities, out_c.capabilities);
    ck_assert_str_eq(json_string_value(json_array_get(out_c.capabilities, 0)), "admin:all");
    /* the records' own arrays are the callers' again: only the first was kept */
    ck_assert_int_eq(b.capabilities->refcount, 1);
    ck_assert_int_eq(c.capabilities->refcount, 4);            /* c, the registry's entry, its record, out_c */
    /* removing every user drops the shared list from the registry, but a
     * reader's copy stays whole */
    ck_assert_int_eq(agent_registry_remove(r, "did:agentmesh:c"), 0);
    ck_assert_int_eq(c.capabilities->refcount, 2);            /* c and out_c */
    agent_record_clear(&out_c);
    ck_assert_int_eq(c.capabilities->refcount, 1);
    ck_assert_int_eq(agent_registry_remove(r, "did:agentmesh:a"), 0);
    ck_assert_int_eq(agent_registry_remove(r, "did:agentmesh:b"), 0);
    ck_assert_int_eq(json_array_size(out_a.capabilities), 2);
    ck_assert_int_eq(a.capabilities->refcount, 3);            /* a, out_a, out_b */
    /* a changed list on put moves the record to a new shared entry */
    agent_record_clear(&b);
    fill(&b, "team-a", "beta", "did:agentmesh:b", 2);
    ck_assert_int_eq(agent_registry_put(r, &b), 0);
    json_decref(b.capabilities);
    b.capabilities = json_pack("[]");
    ck_assert_int_eq(agent_registry_put(r, &b), 0);
    struct agent_record again;
    ck_assert_int_eq(agent_registry_get(r, "did:agentmesh:b", &again), 0);
    ck_assert_int_eq(json_array_size(again.capabilities), 0);
    agent_record_clear(&again);
    agent_record_clear(&out_a), agent_record_clear(&out_b);
    agent_record_clear(&a), agent_record_clear(&b), agent_record_clear(&c);
    agent_registry_free(r);
}
END_TEST

struct listing {
    char seen[8][AGENT_NS_MAX + AGENT_NAME_MAX];
    int n;
};

static void list_one(const struct agent_record *rec, void *arg)
{
    struct listing *l = arg;
    ck_assert_int_lt(l->n, 8);
    ck_assert_int_eq(json_array_size(rec->capabilities), 2);
    snprintf(l->seen[l->n++], sizeof l->seen[0], "%s/%s", rec->ns, rec->name);
}

START_TEST(listing_is_sorted_by_namespace_and_name)
{
    struct agent_registry *r = agent_registry_new();
    const char *order[][2] = {{"team-b", "alpha"}, {"team-a", "zeta"}, {"team-a", "beta"}, {"a", "x"}, {"a-b", "a"}};
    for (int i = 0; i < 5; i++) {
        struct agent_record rec;
        char did[32];
        snprintf(did, sizeof did, "did:agentmesh:%d", i);
        fill(&rec, order[i][0], order[i][1], did, i);
        ck_assert_int_eq(agent_registry_put(r, &rec), 0);
        agent_record_clear(&rec);
    }
    struct listing l = {.n = 0};
    agent_registry_foreach(r, list_one, &l);
    ck_assert_int_eq(l.n, 5);
    ck_assert_str_eq(l.seen[0], "a/x");   /* namespace first: "a" before "a-b" */
    ck_assert_str_eq(l.seen[1], "a-b/a");
    ck_assert_str_eq(l.seen[2], "team-a/beta");
    ck_assert_str_eq(l.seen[3], "team-a/zeta");
    ck_assert_str_eq(l.seen[4], "team-b/alpha");
    agent_registry_free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("agent_registry");
    TCase *tc = tcase_create("registry");
    tcase_add_test(tc, records_come_back_whole);
    tcase_add_test(tc, rekeyed_agent_replaces_its_old_did_and_removal_frees_the_name);
    tcase_add_test(tc, a_did_taken_over_by_another_name_leaves_no_stale_name);
    tcase_add_test(tc, equal_capability_lists_are_shared);
    tcase_add_test(tc, listing_is_sorted_by_namespace_and_name);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
