/* startup_pages.c — gives back the library pages only start-up used.
 *
 * Why: most of an idle controller's RSS is shared-library code and
 * constants, not our data (11 of 14 MiB; libcrypto alone 3.9 MiB). Start-up
 * runs code that never runs again (OpenSSL's configuration and provider
 * loading, error-string tables, libcurl's and libpq's initialisation), and
 * the kernel's fault-around maps it in 64 KiB blocks. Once the process is up,
 * dropping those mappings lets the pages that are used come back one fault
 * (and one 64 KiB block) at a time, and the rest stay out.
 *
 * Only mappings where dropping loses nothing: private, not writable, backed
 * by a file, and with no page of their own (smaps "Anonymous: 0 kB"). Such a
 * page is the file's page, so a later access reads the same bytes back from
 * the page cache. A mapping that relocation wrote to (RELRO, text
 * relocations) holds private copies and is never touched.
 *
 * Only while the process has one thread: between reading smaps and the
 * madvise, another thread could unmap a range and get the addresses back
 * for its heap or a library it loads (getaddrinfo loads NSS modules), and
 * MADV_DONTNEED would then zero or unrelocate live memory. So it runs once,
 * after the first API request (OpenSSL's and libcurl's own start-up) and
 * before the first thread. */
#include "common/startup_pages.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MAX_RANGES 1024

struct range {
    uintptr_t start, end;
    long rss_kb;
};

/* Reads /proc/self/smaps into the mappings that qualify (see above). */
static int clean_file_ranges(struct range *out, int cap, int *n) {
    FILE *f = fopen("/proc/self/smaps", "re");
    if (!f) return -1;
    char line[4096];
    struct range cur = {0, 0, 0};
    int candidate = 0;
    long anon_kb = -1;
    *n = 0;
    for (;;) {
        int more = fgets(line, sizeof line, f) != NULL;
        unsigned long start, end, inode;
        char perms[8], path[8] = "";
        int header = more && sscanf(line, "%lx-%lx %7s %*s %*s %lu %7s", &start, &end, perms, &inode, path) >= 4;
        if (!more || header) {
            if (candidate && anon_kb == 0 && cur.rss_kb > 0 && *n < cap) out[(*n)++] = cur;
            if (!more) break;
            cur = (struct range){start, end, 0};
            candidate = perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p' && inode != 0 && path[0] == '/';
            anon_kb = -1;
            continue;
        }
        long kb;
        if (sscanf(line, "Rss: %ld kB", &kb) == 1) cur.rss_kb = kb;
        else if (sscanf(line, "Anonymous: %ld kB", &kb) == 1) anon_kb = kb;
        /* Lines longer than the buffer (a very long path) continue here and match nothing. */
    }
    fclose(f);
    return 0;
}

/* Threads: in /proc/self/status, or -1. */
static int thread_count(void) {
    FILE *f = fopen("/proc/self/status", "re");
    if (!f) return -1;
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1) break;
    fclose(f);
    return n;
}

long startup_pages_drop(char *err, size_t errlen) {
    static struct range ranges[MAX_RANGES];   /* single-threaded by contract; 24 KiB off the stack */
    int threads = thread_count(), n = 0;
    if (threads != 1) {
        snprintf(err, errlen, threads < 0 ? "cannot read /proc/self/status"
                                          : "%d threads running (dropping is only safe with one)", threads);
        return -1;
    }
    if (clean_file_ranges(ranges, MAX_RANGES, &n) != 0) {
        snprintf(err, errlen, "cannot read /proc/self/smaps");
        return -1;
    }
    long dropped_kb = 0;
    for (int i = 0; i < n; i++)
        if (madvise((void *)ranges[i].start, ranges[i].end - ranges[i].start, MADV_DONTNEED) == 0)
            dropped_kb += ranges[i].rss_kb;
    return dropped_kb;
}
