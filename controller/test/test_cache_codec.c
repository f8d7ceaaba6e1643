/* test_cache_codec.c — the informer cache's object encoding: round trips,
 * equal objects encode alike (the relist diff relies on it), similar
 * objects shrink well against the first one's dictionary, a larger shape
 * gets a dictionary of its own while older entries stay readable and
 * compare equal to their re-encoding, bad bytes are refused. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/test/check_run.h"
#include "controller/cache_codec.h"

static json_t *agent(int i)
{
    json_t *o = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:{s:s}}, s:{s:s, s:[s], s:{s:{s:s}}}}",
                          "apiVersion", "agentmesh.io/v1alpha1", "kind", "AgentIdentity", "metadata",
                          "name", "agent", "namespace", "team-a", "resourceVersion", "1", "labels", "team",
                          "t", "spec", "sponsor", "owner@example.com", "capabilities", "read:data", "cloud",
                          "aws", "roleArn", "arn:aws:iam::123456789012:role/agent");
    char name[32], rv[32];
    snprintf(name, sizeof name, "agent-%d", i);
    snprintf(rv, sizeof rv, "%d", 1000 + i);
    json_object_set_new(json_object_get(o, "metadata"), "name", json_string(name));
    json_object_set_new(json_object_get(o, "metadata"), "resourceVersion", json_string(rv));
    return o;
}

START_TEST(round_trip_and_reserve)
{
    struct cache_codec *cc = cache_codec_new();
    ck_assert_ptr_nonnull(cc);
    json_t *a = agent(1);
    size_t len = 0;
    unsigned char *block = cache_codec_encode(cc, a, 16, 5, &len);
    ck_assert_ptr_nonnull(block);
    ck_assert_uint_gt(len, 0);
    memset(block, 0xab, 16);                 /* the reserved head and tail are the caller's */
    memcpy(block + 16 + len, "tail", 5);
    json_t *back = cache_codec_decode(cc, block + 16, len);
    ck_assert_ptr_nonnull(back);
    ck_assert(json_equal(a, back));
    json_decref(back);
    free(block);
    json_decref(a);
    cache_codec_free(cc);
}
END_TEST

START_TEST(equal_objects_encode_alike_and_similar_ones_shrink)
{
    struct cache_codec *cc = cache_codec_new();
    json_t *first = agent(1), *b = agent(2), *b_again = agent(2), *c = agent(3);
    size_t l1, lb, lb2, lc;
    void *e1 = cache_codec_encode(cc, first, 0, 0, &l1);     /* becomes the dictionary */
    void *eb = cache_codec_encode(cc, b, 0, 0, &lb);
    void *eb2 = cache_codec_encode(cc, b_again, 0, 0, &lb2);
    void *ec = cache_codec_encode(cc, c, 0, 0, &lc);
    ck_assert(e1 && eb && eb2 && ec);
    ck_assert(lb == lb2 && memcmp(eb, eb2, lb) == 0);
    ck_assert(lb != lc || memcmp(eb, ec, lb) != 0);
    size_t text = json_dumpb(b, NULL, 0, JSON_COMPACT);
    ck_assert_msg(lb * 4 < text, "%zu-byte text encoded in %zu bytes", text, lb);
    json_t *back = cache_codec_decode(cc, ec, lc);
    ck_assert(json_equal(back, c));
    json_decref(back);
    free(e1), free(eb), free(eb2), free(ec);
    json_decref(first), json_decref(b), json_decref(b_again), json_decref(c);
    cache_codec_free(cc);
}
END_TEST

/* agent(i) after its first status write: the shape most of a cache holds. */
static json_t *agent_with_status(int i)
{
    json_t *o = agent(i), *conds = json_array();
    static const char *const types[] = {"KeyReady", "ServiceAccountReady", "CloudBindingReady",
                                        "NetworkPolicyReady", "Ready"};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
        json_array_append_new(conds, json_pack("{s:s, s:s, s:s, s:s, s:i}", "type", types[k], "status", "True",
                                               "reason", "Applied", "message",
                                               "the child object carries what the spec asks for",
                                               "observedGeneration", 1));
    json_object_set_new(o, "status", json_pack("{s:s, s:s, s:i, s:s, s:o}", "did", "did:mesh:0123456789abcdef",
                                               "phase", "Active", "trustScore", 500, "tier", "standard",
                                               "conditions", conds));
    return o;
}

START_TEST(a_larger_shape_gets_its_own_dictionary)
{
    struct cache_codec *cc = cache_codec_new();
    json_t *bare = agent(1), *full = agent_with_status(1), *full2 = agent_with_status(2);
    size_t lb, lf, lf2, lbare2;
    void *eb = cache_codec_encode(cc, bare, 0, 0, &lb);         /* first dictionary: no status */
    void *ef = cache_codec_encode(cc, full, 0, 0, &lf);         /* twice as long: a new dictionary */
    void *ef2 = cache_codec_encode(cc, full2, 0, 0, &lf2);
    void *eb2 = cache_codec_encode(cc, bare, 0, 0, &lbare2);    /* same text, newer dictionary */
    ck_assert(eb && ef && ef2 && eb2);
    size_t text = json_dumpb(full2, NULL, 0, JSON_COMPACT);
    ck_assert_msg(lf2 * 8 < text, "%zu-byte status text encoded in %zu bytes", text, lf2);
    ck_assert(lb != lbare2 || memcmp(eb, eb2, lb) != 0);        /* different bytes ... */
    ck_assert_int_eq(cache_codec_same(cc, eb, lb, eb2, lbare2), 1);   /* ... same object */
    ck_assert_int_eq(cache_codec_same(cc, eb, lb, ef, lf), 0);
    ck_assert_int_eq(cache_codec_same(cc, ef, lf, ef2, lf2), 0);
    json_t *back = cache_codec_decode(cc, eb, lb);              /* the first dictionary still works */
    ck_assert(json_equal(back, bare));
    json_decref(back);
    back = cache_codec_decode(cc, ef2, lf2);
    ck_assert(json_equal(back, full2));
    json_decref(back);
    free(eb), free(ef), free(ef2), free(eb2);
    json_decref(bare), json_decref(full), json_decref(full2);
    cache_codec_free(cc);
}
END_TEST

START_TEST(bad_bytes_are_refused)
{
    struct cache_codec *cc = cache_codec_new();
    json_t *a = agent(1);
    size_t len;
    unsigned char *e = cache_codec_encode(cc, a, 0, 0, &len);
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_null(cache_codec_decode(cc, "not zstd at all", 15));
    ck_assert_ptr_null(cache_codec_decode(cc, e, len / 2));      /* truncated */
    e[0] = 7;                                                    /* no such dictionary */
    ck_assert_ptr_null(cache_codec_decode(cc, e, len));
    e[0] = 0;
    e[len - 1] ^= 0x55;
    json_t *maybe = cache_codec_decode(cc, e, len);              /* corrupt: NULL or (rarely) other JSON */
    ck_assert(maybe == NULL || !json_equal(maybe, a));
    json_decref(maybe);
    free(e);
    json_decref(a);
    cache_codec_free(cc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cache_codec");
    TCase *tc = tcase_create("codec");
    tcase_add_test(tc, round_trip_and_reserve);
    tcase_add_test(tc, equal_objects_encode_alike_and_similar_ones_shrink);
    tcase_add_test(tc, a_larger_shape_gets_its_own_dictionary);
    tcase_add_test(tc, bad_bytes_are_refused);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
