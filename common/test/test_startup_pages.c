/* test_startup_pages.c — dropping start-up's library pages: RSS falls, code
 * and constants still work afterwards, and no private copy is ever lost
 * (a relocated constant table, a private file mapping written to and then
 * made read-only), and nothing is done while another thread runs. Each
 * test runs in its own single-threaded process (unless CK_FORK=no). */
#include "common/startup_pages.h"
#include "common/test/check_run.h"

#include <check.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* This process's file-backed RSS in KiB (RssFile in /proc/self/status). */
static long rss_file_kb(void) {
    FILE *f = fopen("/proc/self/status", "re");
    ck_assert_ptr_nonnull(f);
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "RssFile: %ld kB", &kb) == 1) break;
    fclose(f);
    ck_assert_int_ge(kb, 0);
    return kb;
}

static void digest(const char *text, unsigned char out[SHA256_DIGEST_LENGTH]) {
    ck_assert_ptr_nonnull(SHA256((const unsigned char *)text, strlen(text), out));
}

START_TEST(rss_falls_and_code_still_runs) {
    char err[160] = "";
    unsigned char before[SHA256_DIGEST_LENGTH], after[SHA256_DIGEST_LENGTH];
    char formatted_before[64], formatted_after[64];
    digest("agentmesh", before);
    snprintf(formatted_before, sizeof formatted_before, "%.17g %x", 1.0 / 3.0, 0xbeefu);
    long rss0 = rss_file_kb();
    long dropped = startup_pages_drop(err, sizeof err);
    long rss1 = rss_file_kb();
    ck_assert_msg(dropped > 0, "dropped %ld: %s", dropped, err);
    ck_assert_msg(rss1 < rss0, "RssFile %ld kB before, %ld kB after", rss0, rss1);
    digest("agentmesh", after);   /* libcrypto's code and tables fault back in */
    snprintf(formatted_after, sizeof formatted_after, "%.17g %x", 1.0 / 3.0, 0xbeefu);
    ck_assert_mem_eq(before, after, sizeof before);
    ck_assert_str_eq(formatted_before, formatted_after);
}
END_TEST

/* Pointers in a constant table are written by relocation at load time (the
 * table is RELRO): those pages are private copies and must stay. */
static int add(int a, int b) { return a + b; }
static int mul(int a, int b) { return a * b; }
static int (*const ops[])(int, int) = {add, mul};
static const char *const names[] = {"add", "mul"};

START_TEST(relocated_constants_survive) {
    char err[160] = "";
    ck_assert_int_ge(startup_pages_drop(err, sizeof err), 0);
    ck_assert_int_eq(ops[0](6, 7), 13);
    ck_assert_int_eq(ops[1](6, 7), 42);
    ck_assert_str_eq(names[1], "mul");
}
END_TEST

/* A private file mapping written to and then made read-only looks like
 * library code (r--p, a file behind it) but holds our bytes: it is kept.
 * The same file mapped read-only and never written is dropped, and reads
 * back the file. */
START_TEST(private_copies_are_kept) {
    char err[160] = "";
    char path[] = "/tmp/test_startup_pages.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    long page = sysconf(_SC_PAGESIZE);
    char *content = malloc((size_t)page);
    ck_assert_ptr_nonnull(content);
    memset(content, 'f', (size_t)page);
    ck_assert_int_eq(write(fd, content, (size_t)page), page);
    char *written = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    char *untouched = mmap(NULL, (size_t)page, PROT_READ, MAP_PRIVATE, fd, 0);
    ck_assert(written != MAP_FAILED && untouched != MAP_FAILED);
    memset(written, 'p', (size_t)page);
    ck_assert_int_eq(mprotect(written, (size_t)page, PROT_READ), 0);
    ck_assert_int_eq(untouched[0], 'f');   /* mapped now */

    ck_assert_int_gt(startup_pages_drop(err, sizeof err), 0);
    for (long i = 0; i < page; i++) {
        ck_assert_int_eq(written[i], 'p');
        ck_assert_int_eq(untouched[i], 'f');
    }
    munmap(written, (size_t)page);
    munmap(untouched, (size_t)page);
    close(fd);
    free(content);
}
END_TEST

static void *wait_for_release(void *arg) {
    pthread_mutex_t *mu = arg;
    pthread_mutex_lock(mu);
    pthread_mutex_unlock(mu);
    return NULL;
}

/* With a second thread alive nothing is unmapped, and the error says why. */
START_TEST(refused_with_other_threads) {
    char err[160] = "";
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_t t;
    pthread_mutex_lock(&mu);
    ck_assert_int_eq(pthread_create(&t, NULL, wait_for_release, &mu), 0);
    long rss0 = rss_file_kb();
    ck_assert_int_eq(startup_pages_drop(err, sizeof err), -1);
    ck_assert_msg(strstr(err, "2 threads running") != NULL, "error: %s", err);
    ck_assert_int_ge(rss_file_kb(), rss0);
    pthread_mutex_unlock(&mu);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_gt(startup_pages_drop(err, sizeof err), 0);   /* one thread again */
}
END_TEST

int main(void) {
    Suite *s = suite_create("startup_pages");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, rss_falls_and_code_still_runs);
    tcase_add_test(tc, relocated_constants_survive);
    tcase_add_test(tc, private_copies_are_kept);
    tcase_add_test(tc, refused_with_other_threads);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
