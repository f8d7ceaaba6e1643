/* test_audit_spool.c — the on-disk audit spool: order, bounds and the full
 * flag, stop-and-resume on sink failure without duplicates, restart
 * recovery (including an unfinished .tmp file), deliver() keeping order,
 * rejected payloads set aside, and the background drainer. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/test/check_run.h"
#include "controller/audit_spool.h"

static char dir[64];

static void make_dir(void)
{
    strcpy(dir, "/tmp/test_audit_spool.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* rm -r of the spool directory (one level of subdirectory: rejected/). */
static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", path, de->d_name);
        if (unlink(p) < 0)
            remove_tree(p);
    }
    closedir(d);
    rmdir(path);
}

static void remove_dir(void)
{
    remove_tree(dir);
}

static int count_files(const char *path, const char *suffix)
{
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name), s = strlen(suffix);
        n += l > s && strcmp(de->d_name + l - s, suffix) == 0;
    }
    closedir(d);
    return n;
}

/* A sink recording what it got; fails (-1) while `down`, or rejects payloads starting with "BAD". */
struct sink {
    int down;
    int fail_after;       /* >0: accept this many, then fail */
    char got[64][32];
    int n;
};

static int sink_fn(const char *payload, size_t len, void *arg, char *err, size_t errlen)
{
    struct sink *s = arg;
    if (s->down || (s->fail_after > 0 && s->n >= s->fail_after)) {
        snprintf(err, errlen, "sink down");
        return -1;
    }
    if (len >= 3 && memcmp(payload, "BAD", 3) == 0) {
        snprintf(err, errlen, "sink rejects %.*s", (int)len, payload);
        return -2;
    }
    ck_assert_uint_lt(len, sizeof s->got[0]);
    ck_assert_int_lt(s->n, 64);
    memcpy(s->got[s->n], payload, len);
    s->got[s->n][len] = '\0';
    s->n++;
    return 0;
}

static void push(struct audit_spool *sp, const char *text)
{
    char err[256];
    ck_assert_msg(audit_spool_push(sp, text, strlen(text), err, sizeof err) == 0, "%s", err);
}

START_TEST(order_and_resume_after_failure)
{
    char err[256];
    struct audit_spool *sp = audit_spool_open(dir, NULL, err, sizeof err);
    ck_assert_msg(sp != NULL, "%s", err);
    char text[24];
    for (int i = 0; i < 10; i++) {
        snprintf(text, sizeof text, "event-%d", i);
        push(sp, text);
    }
    ck_assert_uint_eq(audit_spool_count(sp), 10);
    ck_assert_uint_eq(audit_spool_bytes(sp), 10 * strlen("event-0"));
    ck_assert_int_eq(count_files(dir, ".ev"), 10);
    struct sink s = {.fail_after = 4};
    size_t delivered = 0;
    ck_assert_int_eq(audit_spool_drain(sp, sink_fn, &s, &delivered, err, sizeof err), -1);
    ck_assert_str_eq(err, "sink down");
    ck_assert_uint_eq(delivered, 4);
    ck_assert_uint_eq(audit_spool_count(sp), 6);
    ck_assert_int_eq(count_files(dir, ".ev"), 6);
    s.fail_after = 0;
    ck_assert_int_eq(audit_spool_drain(sp, sink_fn, &s, &delivered, err, sizeof err), 0);
    ck_assert_uint_eq(delivered, 6);
    ck_assert_int_eq(s.n, 10);
    for (int i = 0; i < 10; i++) {
        snprintf(text, sizeof text, "event-%d", i);
        ck_assert_str_eq(s.got[i], text);   /* in order, each exactly once */
    }
    ck_assert_uint_eq(audit_spool_count(sp), 0);
    ck_assert_uint_eq(audit_spool_bytes(sp), 0);
    ck_assert_int_eq(count_files(dir, ".ev"), 0);
    audit_spool_close(sp);
}
END_TEST

START_TEST(full_spool_refuses_and_flags)
{
    char err[256];
    struct audit_spool_limits lim = {.max_entries = 3, .max_bytes = 1000};
    struct audit_spool *sp = audit_spool_open(dir, &lim, err, sizeof err);
    ck_assert_ptr_nonnull(sp);
    push(sp, "a");
    push(sp, "b");
    push(sp, "c");
    ck_assert(!audit_spool_is_full(sp));
    ck_assert_int_eq(audit_spool_push(sp, "d", 1, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "full"));
    ck_assert_ptr_nonnull(strstr(err, "NOT stored"));
    ck_assert(audit_spool_is_full(sp));
    ck_assert_uint_eq(audit_spool_count(sp), 3);
    struct sink s = {0};
    ck_assert_int_eq(audit_spool_drain(sp, sink_fn, &s, NULL, err, sizeof err), 0);
    ck_assert(!audit_spool_is_full(sp));
    /* the byte bound */
    char big[600];
    memset(big, 'x', sizeof big);
    ck_assert_int_eq(audit_spool_push(sp, big, sizeof big, err, sizeof err), 0);
    ck_assert_int_eq(audit_spool_push(sp, big, sizeof big, err, sizeof err), -1);
    ck_assert(audit_spool_is_full(sp));
    ck_assert_uint_eq(audit_spool_bytes(sp), sizeof big);
    audit_spool_close(sp);
}
END_TEST

START_TEST(restart_recovers_in_order)
{
    char err[256];
    struct audit_spool *sp = audit_spool_open(dir, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(sp);
    push(sp, "first");
    push(sp, "second");
    push(sp, "third");
    audit_spool_close(sp);
    /* a crash mid-write leaves a .tmp that was never acknowledged */
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s/%020d.tmp", dir, 4);
    FILE *f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    fputs("half", f);
    fclose(f);
    sp = audit_spool_open(dir, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(sp);
    ck_assert_uint_eq(audit_spool_count(sp), 3);
    ck_assert_int_eq(count_files(dir, ".tmp"), 0);
    push(sp, "fourth");   /* numbered after what was found */
    struct sink s = {0};
    ck_assert_int_eq(audit_spool_drain(sp, sink_fn, &s, NULL, err, sizeof err), 0);
    ck_assert_int_eq(s.n, 4);
    ck_assert_str_eq(s.got[0], "first");
    ck_assert_str_eq(s.got[1], "second");
    ck_assert_str_eq(s.got[2], "third");
    ck_assert_str_eq(s.got[3], "fourth");
    audit_spool_close(sp);
}
END_TEST

START_TEST(deliver_keeps_order)
{
    char err[256];
    struct audit_spool *sp = audit_spool_open(dir, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(sp);
    struct sink s = {0};
    ck_assert_int_eq(audit_spool_deliver(sp, "e1", 2, sink_fn, &s, err, sizeof err), 0);
    ck_assert_int_eq(s.n, 1);   /* empty spool, sink up: delivered directly */
    ck_assert_uint_eq(audit_spool_count(sp), 0);
    s.down = 1;
    ck_assert_int_eq(audit_spool_deliver(sp, "e2", 2, sink_fn, &s, err, sizeof err), 0);
    ck_assert_uint_eq(audit_spool_count(sp), 1);
    s.down = 0;
    /* the sink is back, but e2 waits: e3 must queue behind it, not overtake it */
    ck_assert_int_eq(audit_spool_deliver(sp, "e3", 2, sink_fn, &s, err, sizeof err), 0);
    ck_assert_int_eq(s.n, 1);
    ck_assert_uint_eq(audit_spool_count(sp), 2);
    ck_assert_int_eq(audit_spool_drain(sp, sink_fn, &s, NULL, err, sizeof err), 0);
    ck_assert_int_eq(s.n, 3);
    ck_assert_str_eq(s.got[1], "e2");
    ck_assert_str_eq(s.got[2], "e3");
    /* a payload the sink refuses outright is an error, not silently dropped */
    ck_assert_int_eq(audit_spool_deliver(sp, "BADx", 4, sink_fn, &s, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "rejects"));
    audit_spool_close(sp);
}
END_TEST

START_TEST(rejected_payloads_set_aside)
{
    char err[256];
    struct audit_spool *sp = audit_spool_open(dir, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(sp);
    push(sp, "ok-1");
    push(sp, "BAD-2");
    push(sp, "ok-3");
    struct sink s = {0};
    size_t n = 0;
    ck_assert_int_eq(audit_spool_drain(sp, sink_fn, &s, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(s.n, 2);
    ck_assert_str_eq(s.got[1], "ok-3");
    char rej[128];
    snprintf(rej, sizeof rej, "%s/rejected", dir);
    ck_assert_int_eq(count_files(rej, ".ev"), 1);
    ck_assert_uint_eq(audit_spool_count(sp), 0);
    audit_spool_close(sp);
}
END_TEST

START_TEST(background_drainer)
{
    char err[256];
    struct audit_spool *sp = audit_spool_open(dir, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(sp);
    struct sink s = {.down = 1};
    ck_assert_int_eq(audit_spool_start_drainer(sp, sink_fn, &s, 50, err, sizeof err), 0);
    ck_assert_int_eq(audit_spool_start_drainer(sp, sink_fn, &s, 50, err, sizeof err), -1);
    push(sp, "x1");
    push(sp, "x2");
    usleep(200 * 1000);
    ck_assert_uint_eq(audit_spool_count(sp), 2);
    s.down = 0;
    for (int i = 0; i < 100 && audit_spool_count(sp) > 0; i++)
        usleep(20 * 1000);
    ck_assert_uint_eq(audit_spool_count(sp), 0);
    ck_assert_int_eq(s.n, 2);
    ck_assert_str_eq(s.got[0], "x1");
    audit_spool_close(sp);
}
END_TEST

START_TEST(bad_directory)
{
    char err[256];
    ck_assert_ptr_null(audit_spool_open("/proc/definitely/not/here", NULL, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "/proc/definitely/not/here"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("audit_spool");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, make_dir, remove_dir);
    tcase_add_test(tc, order_and_resume_after_failure);
    tcase_add_test(tc, full_spool_refuses_and_flags);
    tcase_add_test(tc, restart_recovers_in_order);
    tcase_add_test(tc, deliver_keeps_order);
    tcase_add_test(tc, rejected_payloads_set_aside);
    tcase_add_test(tc, background_drainer);
    tcase_add_test(tc, bad_directory);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
