/* test_spool_disk_full.c — the audit spool when the disk runs out of room
 * (issue 8's "disk full while spooling").
 *
 * The spool directory is a 64 KiB tmpfs mounted in a private mount namespace
 * (so the mount vanishes with the test process), which gives a real ENOSPC.
 * Where the test may not mount (an unprivileged container), it falls back to
 * RLIMIT_FSIZE (16 KiB, SIGXFSZ ignored): the same failed write, as EFBIG.
 * Either way an event too big for the room left must be refused loudly —
 * -1 with the OS's reason, an error log line, the full flag that /readyz
 * reads — while everything spooled before stays byte-exact and in order,
 * no half-written file is left behind, the spool takes events again once
 * there is room, and a restart finds exactly what was spooled. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/test/check_run.h"
#include "controller/audit_spool.h"

#define SMALL 1000                 /* bytes of each event that fits */
#define BIG (128 * 1024)           /* more than the tmpfs or the file-size limit allows */

static char dir[64];
static int on_tmpfs;               /* 1: ENOSPC from a full tmpfs; 0: EFBIG from RLIMIT_FSIZE */
static struct rlimit saved_fsize;

/* Mounts a 64 KiB tmpfs on dir in a mount namespace of our own; 0 on success. */
static int mount_small_tmpfs(void)
{
    if (unshare(CLONE_NEWNS) != 0)
        return -1;
    if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0)   /* source, type ignored */
        return -1;
    return mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700");
}

static void setup(void)
{
    strcpy(dir, "/tmp/test_spool_disk_full.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved_fsize), 0);
    on_tmpfs = mount_small_tmpfs() == 0;
    if (!on_tmpfs) {
        struct rlimit small = {16 * 1024, saved_fsize.rlim_max};
        ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
        ck_assert(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
    }
    fprintf(stderr, "test_spool_disk_full: %s\n",
            on_tmpfs ? "spool on a 64 KiB tmpfs (ENOSPC)" : "no mount allowed: RLIMIT_FSIZE 16 KiB (EFBIG)");
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[512];
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    if (on_tmpfs)
        umount2(dir, MNT_DETACH);
    else
        setrlimit(RLIMIT_FSIZE, &saved_fsize);
    rmdir(dir);
}

static int count_files(const char *suffix)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name), s = strlen(suffix);
        n += l > s && strcmp(de->d_name + l - s, suffix) == 0;
    }
    closedir(d);
    return n;
}

/* Event i: its number, then filler, SMALL bytes, repeated `times` times. */
static char *make_event(int i, int times)
{
    char *ev = malloc((size_t)times * SMALL);
    ck_assert_ptr_nonnull(ev);
    memset(ev, 'a' + i % 26, SMALL);
    int n = snprintf(ev, SMALL, "event-%d", i);
    ev[n] = '|';
    for (int k = 1; k < times; k++)
        memcpy(ev + (size_t)k * SMALL, ev, SMALL);
    return ev;
}

/* A sink that checks each delivered payload is event 0, 1, 2, ... exactly;
 * with `grow`, event i is i + 1 copies long. */
struct sink {
    int n, grow;
};

static int expect_in_order(const char *payload, size_t len, void *arg, char *err, size_t errlen)
{
    struct sink *s = arg;
    int times = s->grow ? s->n + 1 : 1;
    char *want = make_event(s->n, times);
    int same = len == (size_t)times * SMALL && memcmp(payload, want, len) == 0;
    free(want);
    if (!same) {
        snprintf(err, errlen, "payload %d corrupted (length %zu)", s->n, len);
        return -2;
    }
    s->n++;
    return 0;
}

/* Pushes event i (`times` copies long); 0 or -1 as audit_spool_push. */
static int push_event(struct audit_spool *sp, int i, int times, char *err, size_t errlen)
{
    char *ev = make_event(i, times);
    int rc = audit_spool_push(sp, ev, (size_t)times * SMALL, err, errlen);
    free(ev);
    return rc;
}

/* Pushes one payload with stderr captured; returns push's result and fills
 * log with what was logged (the spool logs through common/log.h). */
static int push_logged(struct audit_spool *sp, const char *payload, size_t len, char *err, size_t errlen,
                       char *log, size_t loglen)
{
    char path[] = "/tmp/test_spool_disk_full.log.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    fflush(stderr);
    ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
    int rc = audit_spool_push(sp, payload, len, err, errlen);
    fflush(stderr);
    ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
    close(saved);
    ssize_t n = pread(fd, log, loglen - 1, 0);
    log[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return rc;
}

START_TEST(disk_full_refuses_loudly_and_keeps_what_was_spooled)
{
    char err[512], log[4096];
    struct audit_spool_limits limits = {.max_bytes = 16 * 1024 * 1024};   /* the disk, not the limit, runs out */
    struct audit_spool *sp = audit_spool_open(dir, &limits, err, sizeof err);
    ck_assert_msg(sp != NULL, "%s", err);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(push_event(sp, i, 1, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(audit_spool_is_full(sp), 0);

    char *big = malloc(BIG);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', BIG);
    int rc = push_logged(sp, big, BIG, err, sizeof err, log, sizeof log);
    free(big);
    const char *reason = strerror(on_tmpfs ? ENOSPC : EFBIG);
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(strstr(err, reason) != NULL, "error '%s' lacks '%s'", err, reason);
    ck_assert_msg(strstr(log, "level=error") && strstr(log, reason), "no error logged: '%s'", log);
    ck_assert_msg(audit_spool_is_full(sp) == 1, "a disk-full push must set the full flag (/readyz)");
    ck_assert_uint_eq(audit_spool_count(sp), 3);
    ck_assert_uint_eq(audit_spool_bytes(sp), 3 * SMALL);
    ck_assert_int_eq(count_files(".ev"), 3);
    ck_assert_int_eq(count_files(".tmp"), 0);   /* the half-written event is gone, its room freed */

    /* Room is back (the failed write was removed): the next event fits and clears the flag. */
    ck_assert_msg(push_event(sp, 3, 1, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(audit_spool_is_full(sp), 0);
    audit_spool_close(sp);

    /* A restart finds the four events; the drain delivers them exactly, in order. */
    sp = audit_spool_open(dir, &limits, err, sizeof err);
    ck_assert_msg(sp != NULL, "%s", err);
    ck_assert_uint_eq(audit_spool_count(sp), 4);
    struct sink s = {0};
    size_t delivered = 0;
    ck_assert_msg(audit_spool_drain(sp, expect_in_order, &s, &delivered, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(delivered, 4);
    ck_assert_int_eq(s.n, 4);
    ck_assert_int_eq(count_files(".ev"), 0);
    audit_spool_close(sp);
}
END_TEST

/* Filling the disk one event at a time: every push either stores its event
 * whole or fails with the reason; what was stored drains intact. On tmpfs
 * each file takes a 4 KiB page, so 64 KiB holds at most 16 events; under
 * RLIMIT_FSIZE only a file's size counts, so event i is i + 1 KB long. */
START_TEST(filling_up_event_by_event)
{
    char err[512];
    struct audit_spool_limits limits = {.max_bytes = 16 * 1024 * 1024};
    struct audit_spool *sp = audit_spool_open(dir, &limits, err, sizeof err);
    ck_assert_msg(sp != NULL, "%s", err);
    int stored = 0;
    while (stored < 40 && push_event(sp, stored, on_tmpfs ? 1 : stored + 1, err, sizeof err) == 0)
        stored++;
    ck_assert_msg(stored < 40, "the disk never filled up");
    ck_assert_int_gt(stored, 0);
    ck_assert_msg(strstr(err, strerror(on_tmpfs ? ENOSPC : EFBIG)) != NULL, "%s", err);
    ck_assert_int_eq(audit_spool_is_full(sp), 1);
    ck_assert_uint_eq(audit_spool_count(sp), (size_t)stored);
    ck_assert_int_eq(count_files(".tmp"), 0);
    struct sink s = {.grow = !on_tmpfs};
    ck_assert_msg(audit_spool_drain(sp, expect_in_order, &s, NULL, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(s.n, stored);
    ck_assert_int_eq(audit_spool_is_full(sp), 0);   /* the drain freed room */
    audit_spool_close(sp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("spool_disk_full");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, disk_full_refuses_loudly_and_keeps_what_was_spooled);
    tcase_add_test(tc, filling_up_event_by_event);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
