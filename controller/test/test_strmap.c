/* test_strmap.c — the string map both ways: values (keys copied, values
 * handed back on replace and remove, growth past many buckets) and the
 * caller's own nodes (linked in place, the replaced node handed back,
 * unlinked nodes left to their owner). */
#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test/check_run.h"
#include "controller/strmap.h"

START_TEST(values_put_get_replace_remove_grow)
{
    struct strmap *m = strmap_new();
    char key[32];
    static int vals[1000];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "ns/agent-%d", i);
        ck_assert_int_eq(strmap_put(m, key, &vals[i], NULL), 0);
    }
    ck_assert_uint_eq(strmap_count(m), 1000);
    ck_assert_ptr_eq(strmap_get(m, "ns/agent-999"), &vals[999]);
    void *old = NULL;
    int other;
    ck_assert_int_eq(strmap_put(m, "ns/agent-7", &other, &old), 0);
    ck_assert_ptr_eq(old, &vals[7]);
    ck_assert_uint_eq(strmap_count(m), 1000);
    ck_assert_ptr_eq(strmap_remove(m, "ns/agent-7"), &other);
    ck_assert_ptr_null(strmap_remove(m, "ns/agent-7"));
    ck_assert(!strmap_has(m, "ns/agent-7"));
    ck_assert_uint_eq(strmap_count(m), 999);
    strmap_free(m, NULL);
}
END_TEST

/* A caller's node: the key right after it, as the informer lays its entries out. */
struct item {
    struct strmap_node node;
    char key[16];
};

static struct item *item_new(const char *key)
{
    struct item *it = calloc(1, sizeof *it);
    snprintf(it->key, sizeof it->key, "%s", key);
    it->node.key_off = offsetof(struct item, key);
    return it;
}

static int count_node(struct strmap_node *n, void *arg)
{
    ck_assert_str_eq(strmap_node_key(n), ((struct item *)n)->key);
    ++*(int *)arg;
    return 0;
}

static int frees;
static void free_item(struct strmap_node *n)
{
    frees++;
    free(n);
}

START_TEST(nodes_link_in_place_and_hand_back_replaced)
{
    struct strmap *m = strmap_new();
    struct item *a = item_new("a"), *b = item_new("b"), *a2 = item_new("a");
    ck_assert_ptr_null(strmap_link(m, &a->node));
    ck_assert_ptr_null(strmap_link(m, &b->node));
    ck_assert_ptr_eq(strmap_find(m, "a"), &a->node);
    /* same key: the new node takes the place, the old one comes back unlinked */
    ck_assert_ptr_eq(strmap_link(m, &a2->node), &a->node);
    ck_assert_ptr_eq(strmap_find(m, "a"), &a2->node);
    ck_assert_uint_eq(strmap_count(m), 2);
    free(a);
    ck_assert_ptr_eq(strmap_unlink(m, "b"), &b->node);
    ck_assert_ptr_null(strmap_unlink(m, "b"));
    ck_assert_ptr_null(strmap_find(m, "b"));
    free(b);
    /* many nodes: growth rehashes them without losing any */
    char key[16];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "k%d", i);
        ck_assert_ptr_null(strmap_link(m, &item_new(key)->node));
    }
    int seen = 0;
    ck_assert_int_eq(strmap_foreach_node(m, count_node, &seen), 0);
    ck_assert_int_eq(seen, 101);
    ck_assert_str_eq(((struct item *)strmap_find(m, "k42"))->key, "k42");
    frees = 0;
    strmap_free_nodes(m, free_item);
    ck_assert_int_eq(frees, 101);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("strmap");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, values_put_get_replace_remove_grow);
    tcase_add_test(tc, nodes_link_in_place_and_hand_back_replaced);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
