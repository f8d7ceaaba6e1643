/* audit_spool.c — bounded, crash-safe, ordered on-disk queue of audit
 * payloads for a destination that is down (see audit_spool.h).
 *
 * Files are "<20-digit seq>.ev"; a push writes "<seq>.tmp", fsyncs it,
 * renames it and fsyncs the directory, so after a crash a ".ev" file is
 * always complete and a ".tmp" one was never acknowledged (it is removed on
 * open). An in-memory index (seq, size) mirrors the directory so limits are
 * checked without listing it. Two locks: `mu` guards the index, `drain_mu`
 * serialises deliveries so the destination sees payloads in order even
 * while other threads keep pushing. */
#include "controller/audit_spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define DEFAULT_MAX_ENTRIES 100000
#define DEFAULT_MAX_BYTES (256u * 1024 * 1024)

struct item {
    uint64_t seq;
    size_t size;
};

struct audit_spool {
    char *dir;
    size_t max_entries, max_bytes;
    pthread_mutex_t mu, drain_mu;
    struct item *items;       /* items[head..head+count) in seq order */
    size_t head, count, cap;
    size_t bytes;
    uint64_t next_seq;
    int full;
    /* background drainer */
    pthread_t drainer;
    int drainer_running, stopping;
    pthread_cond_t stop_cv;
    audit_spool_sink_fn sink;
    void *sink_arg;
    int interval_ms;
};

static void path_of(const struct audit_spool *sp, uint64_t seq, const char *ext, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%020llu.%s", sp->dir, (unsigned long long)seq, ext);
}

/* Makes a rename/unlink in the directory durable. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int index_append(struct audit_spool *sp, uint64_t seq, size_t size)
{
    if (sp->head + sp->count == sp->cap) {
        if (sp->head > 0) {   /* reuse the space drained from the front */
            memmove(sp->items, sp->items + sp->head, sp->count * sizeof *sp->items);
            sp->head = 0;
        } else {
            size_t cap = sp->cap ? sp->cap * 2 : 64;
            struct item *it = realloc(sp->items, cap * sizeof *it);
            if (!it)
                return -1;
            sp->items = it;
            sp->cap = cap;
        }
    }
    sp->items[sp->head + sp->count++] = (struct item){seq, size};
    sp->bytes += size;
    return 0;
}

static void index_pop(struct audit_spool *sp)
{
    sp->bytes -= sp->items[sp->head].size;
    sp->head++;
    sp->count--;
    if (sp->count == 0)
        sp->head = 0;
    sp->full = 0;
}

static int cmp_item(const void *a, const void *b)
{
    uint64_t x = ((const struct item *)a)->seq, y = ((const struct item *)b)->seq;
    return x < y ? -1 : x > y;
}

/* Parses "<20 digits>.<ext>"; 1 when name has that shape. */
static int parse_name(const char *name, const char *ext, uint64_t *seq)
{
    size_t n = strlen(name);
    if (n != 21 + strlen(ext) || name[20] != '.' || strcmp(name + 21, ext) != 0)
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *seq = v;
    return 1;
}

/* Loads the files of an earlier run into the index, dropping unfinished ".tmp" ones. */
static int scan(struct audit_spool *sp, char *err, size_t errlen)
{
    DIR *d = opendir(sp->dir);
    if (!d) {
        snprintf(err, errlen, "audit spool %s: %s", sp->dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        uint64_t seq;
        char p[4096];
        if (parse_name(de->d_name, "tmp", &seq)) {
            path_of(sp, seq, "tmp", p, sizeof p);
            unlink(p);
            continue;
        }
        if (!parse_name(de->d_name, "ev", &seq))
            continue;
        struct stat st;
        path_of(sp, seq, "ev", p, sizeof p);
        if (stat(p, &st) < 0 || index_append(sp, seq, (size_t)st.st_size) < 0) {
            snprintf(err, errlen, "audit spool %s: %s", p, strerror(errno ? errno : ENOMEM));
            closedir(d);
            return -1;
        }
        if (seq >= sp->next_seq)
            sp->next_seq = seq + 1;
    }
    closedir(d);
    if (sp->count)
        qsort(sp->items, sp->count, sizeof *sp->items, cmp_item);
    return 0;
}

struct audit_spool *audit_spool_open(const char *dir, const struct audit_spool_limits *limits, char *err,
                                     size_t errlen)
{
    if (!dir || !*dir || (mkdir(dir, 0700) < 0 && errno != EEXIST)) {
        snprintf(err, errlen, "audit spool %s: %s", dir ? dir : "(null)", dir ? strerror(errno) : "no directory");
        return NULL;
    }
    struct audit_spool *sp = calloc(1, sizeof *sp);
    if (!sp || !(sp->dir = strdup(dir))) {
        free(sp);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    sp->max_entries = limits && limits->max_entries ? limits->max_entries : DEFAULT_MAX_ENTRIES;
    sp->max_bytes = limits && limits->max_bytes ? limits->max_bytes : DEFAULT_MAX_BYTES;
    sp->next_seq = 1;
    pthread_mutex_init(&sp->mu, NULL);
    pthread_mutex_init(&sp->drain_mu, NULL);
    pthread_cond_init(&sp->stop_cv, NULL);
    if (scan(sp, err, errlen) < 0) {
        audit_spool_close(sp);
        return NULL;
    }
    if (sp->count)
        log_info("audit-spool", "%s: %zu events (%zu bytes) waiting from an earlier run", dir, sp->count, sp->bytes);
    return sp;
}

void audit_spool_close(struct audit_spool *sp)
{
    if (!sp)
        return;
    if (sp->drainer_running) {
        pthread_mutex_lock(&sp->mu);
        sp->stopping = 1;
        pthread_cond_signal(&sp->stop_cv);
        pthread_mutex_unlock(&sp->mu);
        pthread_join(sp->drainer, NULL);
    }
    pthread_cond_destroy(&sp->stop_cv);
    pthread_mutex_destroy(&sp->mu);
    pthread_mutex_destroy(&sp->drain_mu);
    free(sp->items);
    free(sp->dir);
    free(sp);
}

/* Writes <seq>.tmp durably and renames it to <seq>.ev. */
static int write_file(struct audit_spool *sp, uint64_t seq, const char *payload, size_t len, char *err,
                      size_t errlen)
{
    char tmp[4096], final[4096];
    path_of(sp, seq, "tmp", tmp, sizeof tmp);
    path_of(sp, seq, "ev", final, sizeof final);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail;
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, payload + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            goto fail;
        }
        off += (size_t)n;
    }
    if (fsync(fd) < 0) {
        close(fd);
        goto fail;
    }
    if (close(fd) < 0 || rename(tmp, final) < 0 || sync_dir(sp->dir) < 0)
        goto fail;
    return 0;
fail:
    {
        int e = errno;
        snprintf(err, errlen, "audit spool %s: %s", tmp, strerror(e));
        unlink(tmp);
        errno = e;   /* the caller tells "no room" from other disk errors */
    }
    return -1;
}

/* A write that failed because the disk (or the file-size limit) has no room:
 * the spool is full as surely as when its own limits are reached. */
static int out_of_room(int e)
{
    return e == ENOSPC || e == EDQUOT || e == EFBIG;
}

int audit_spool_push(struct audit_spool *sp, const char *payload, size_t len, char *err, size_t errlen)
{
    pthread_mutex_lock(&sp->mu);
    if (sp->count + 1 > sp->max_entries || sp->bytes + len > sp->max_bytes) {
        sp->full = 1;
        snprintf(err, errlen, "audit spool %s full (%zu events, %zu bytes; limits %zu, %zu): event NOT stored",
                 sp->dir, sp->count, sp->bytes, sp->max_entries, sp->max_bytes);
        pthread_mutex_unlock(&sp->mu);
        log_error("audit-spool", "%s", err);
        return -1;
    }
    uint64_t seq = sp->next_seq++;
    int rc = write_file(sp, seq, payload, len, err, errlen);
    if (rc < 0 && out_of_room(errno))
        sp->full = 1;
    if (rc == 0 && index_append(sp, seq, len) < 0) {
        snprintf(err, errlen, "audit spool: out of memory");
        char p[4096];
        path_of(sp, seq, "ev", p, sizeof p);
        unlink(p);
        rc = -1;
    }
    if (rc == 0)
        sp->full = 0;
    pthread_mutex_unlock(&sp->mu);
    if (rc < 0)
        log_error("audit-spool", "%s", err);
    return rc;
}

/* Reads a whole spooled file (NUL-terminated, caller frees); NULL on error. */
static char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) == 0 && (buf = malloc((size_t)st.st_size + 1))) {
        size_t off = 0;
        while (off < (size_t)st.st_size) {
            ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        buf[off] = '\0';
        *len = off;
    }
    close(fd);
    return buf;
}

/* Moves a payload the destination refused for good out of the queue, loudly. */
static void reject(struct audit_spool *sp, uint64_t seq, const char *why)
{
    char from[4096], dir[4096], to[8192];
    path_of(sp, seq, "ev", from, sizeof from);
    snprintf(dir, sizeof dir, "%s/rejected", sp->dir);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        log_error("audit-spool", "%s: %s", dir, strerror(errno));
    snprintf(to, sizeof to, "%s/%020llu.ev", dir, (unsigned long long)seq);
    if (rename(from, to) < 0)
        log_error("audit-spool", "cannot move %s to %s: %s", from, to, strerror(errno));
    log_error("audit-spool", "event %s rejected by its destination (%s); kept in %s", from, why, to);
}

int audit_spool_drain(struct audit_spool *sp, audit_spool_sink_fn sink, void *arg, size_t *delivered, char *err,
                      size_t errlen)
{
    size_t done = 0;
    int rc = 0;
    pthread_mutex_lock(&sp->drain_mu);
    for (;;) {
        pthread_mutex_lock(&sp->mu);
        struct item it = sp->count ? sp->items[sp->head] : (struct item){0, 0};
        size_t left = sp->count;
        pthread_mutex_unlock(&sp->mu);
        if (!left)
            break;
        char path[4096];
        size_t len = 0;
        path_of(sp, it.seq, "ev", path, sizeof path);
        char *payload = read_file(path, &len);
        int readable = payload != NULL;
        int s = readable ? sink(payload, len, arg, err, errlen) : -2;
        free(payload);
        if (s == -1) {
            rc = -1;
            break;
        }
        if (s == -2)
            reject(sp, it.seq, readable ? err : "unreadable file");
        else if (unlink(path) < 0)
            log_error("audit-spool", "unlink %s: %s (it will be delivered again)", path, strerror(errno));
        pthread_mutex_lock(&sp->mu);
        index_pop(sp);
        pthread_mutex_unlock(&sp->mu);
        done++;
    }
    pthread_mutex_unlock(&sp->drain_mu);
    if (delivered)
        *delivered = done;
    return rc;
}

int audit_spool_deliver(struct audit_spool *sp, const char *payload, size_t len, audit_spool_sink_fn sink,
                        void *arg, char *err, size_t errlen)
{
    /* drain_mu held from the check to the push: no other delivery can slip in between */
    pthread_mutex_lock(&sp->drain_mu);
    pthread_mutex_lock(&sp->mu);
    size_t waiting = sp->count;
    pthread_mutex_unlock(&sp->mu);
    int s = waiting ? -1 : sink(payload, len, arg, err, errlen);
    int rc = 0;
    if (s == -2) {
        log_error("audit-spool", "event rejected by its destination: %s", err);
        rc = -1;
    } else if (s == -1) {
        rc = audit_spool_push(sp, payload, len, err, errlen);
    }
    pthread_mutex_unlock(&sp->drain_mu);
    return rc;
}

/* Waits interval_ms (or until close), then drains; logs what happened. */
static void *drainer_main(void *arg)
{
    struct audit_spool *sp = arg;
    pthread_mutex_lock(&sp->mu);
    while (!sp->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += sp->interval_ms / 1000;
        until.tv_nsec += (long)(sp->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&sp->stop_cv, &sp->mu, &until);
        if (sp->stopping || sp->count == 0)
            continue;
        pthread_mutex_unlock(&sp->mu);
        char err[256] = "";
        size_t n = 0;
        int rc = audit_spool_drain(sp, sp->sink, sp->sink_arg, &n, err, sizeof err);
        if (n)
            log_info("audit-spool", "%s: delivered %zu spooled events", sp->dir, n);
        if (rc < 0)
            log_warn("audit-spool", "%s: destination still unavailable: %s", sp->dir, err);
        pthread_mutex_lock(&sp->mu);
    }
    pthread_mutex_unlock(&sp->mu);
    return NULL;
}

int audit_spool_start_drainer(struct audit_spool *sp, audit_spool_sink_fn sink, void *arg, int interval_ms,
                              char *err, size_t errlen)
{
    if (sp->drainer_running) {
        snprintf(err, errlen, "audit spool %s: drainer already running", sp->dir);
        return -1;
    }
    sp->sink = sink;
    sp->sink_arg = arg;
    sp->interval_ms = interval_ms > 0 ? interval_ms : 5000;
    if (pthread_create(&sp->drainer, NULL, drainer_main, sp) != 0) {
        snprintf(err, errlen, "audit spool %s: cannot start drainer thread", sp->dir);
        return -1;
    }
    sp->drainer_running = 1;
    return 0;
}

size_t audit_spool_count(struct audit_spool *sp)
{
    pthread_mutex_lock(&sp->mu);
    size_t n = sp->count;
    pthread_mutex_unlock(&sp->mu);
    return n;
}

size_t audit_spool_bytes(struct audit_spool *sp)
{
    pthread_mutex_lock(&sp->mu);
    size_t n = sp->bytes;
    pthread_mutex_unlock(&sp->mu);
    return n;
}

int audit_spool_is_full(struct audit_spool *sp)
{
    pthread_mutex_lock(&sp->mu);
    int f = sp->full;
    pthread_mutex_unlock(&sp->mu);
    return f;
}
