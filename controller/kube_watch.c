/* kube_watch.c — the watch loop of kube_watch.h.
 *
 * One stream at a time: each ends either because the server closed it
 * (timeoutSeconds elapsed: reconnect from the last resourceVersion at once),
 * because the resourceVersion is gone (410: ask the owner to relist), or
 * because something failed (back off 0.8 s -> 30 s, then reconnect). The
 * resourceVersion advances with every event and every bookmark, so a
 * reconnect neither replays nor skips events. */
#include "controller/kube_watch.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"
#include "common/log.h"

#define WATCH_MAX_LINE (16u << 20)   /* one object per line; etcd caps objects near 1.5 MiB */
#define BACKOFF_FIRST 0.8
#define BACKOFF_MAX 30.0

static const char *const type_names[] = {
    [KUBE_EVENT_ADDED] = "ADDED",
    [KUBE_EVENT_MODIFIED] = "MODIFIED",
    [KUBE_EVENT_DELETED] = "DELETED",
    [KUBE_EVENT_BOOKMARK] = "BOOKMARK",
    [KUBE_EVENT_ERROR] = "ERROR",
};

const char *kube_event_type_name(enum kube_event_type t)
{
    if ((unsigned)t < sizeof(type_names) / sizeof(type_names[0]))
        return type_names[t];
    return "UNKNOWN";
}

int kube_watch_decode(const char *line, size_t len, struct kube_watch_event *ev, char *err,
                      size_t errlen)
{
    ev->object = NULL;
    char perr[160];
    json_t *root = json_parse(line, len, perr, sizeof(perr));
    if (!root) {
        snprintf(err, errlen, "watch event is not JSON: %s", perr);
        return -1;
    }
    int rc = -1;
    const char *type = json_str_at(root, "type");
    json_t *obj = json_object_get(root, "object");
    int found = 0;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "watch event is not a JSON object");
        goto out;
    }
    if (!type) {
        snprintf(err, errlen, "watch event: \"type\" missing or not a string");
        goto out;
    }
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
        if (strcmp(type, type_names[i]) == 0) {
            ev->type = (enum kube_event_type)i;
            found = 1;
        }
    if (!found) {
        snprintf(err, errlen, "watch event: unknown type \"%.32s\"", type);
        goto out;
    }
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "watch event %s: \"object\" missing or not an object", type);
        goto out;
    }
    ev->object = json_incref(obj);
    rc = 0;
out:
    json_decref(root);
    return rc;
}

void kube_watch_event_clear(struct kube_watch_event *ev)
{
    json_decref(ev->object);
    ev->object = NULL;
}

/* Remembers the object's resourceVersion as the point to resume from. */
static void note_rv(struct kube_watch_state *st, const json_t *obj)
{
    const char *rv = json_str_at(obj, "metadata.resourceVersion");
    if (rv && rv[0] && strlen(rv) < sizeof(st->rv))
        memcpy(st->rv, rv, strlen(rv) + 1);
}

int kube_watch_handle_line(struct kube_watch_state *st, const char *line, size_t len)
{
    struct kube_watch_event ev;
    char err[256];
    if (kube_watch_decode(line, len, &ev, err, sizeof(err)) != 0) {
        /* the line itself is not logged: it may be a Secret */
        log_warn("watch", "skipping malformed line (%zu bytes): %s", len, err);
        st->malformed++;
        return 0;
    }
    st->events++;
    int stop = 0;
    switch (ev.type) {
    case KUBE_EVENT_ADDED:
    case KUBE_EVENT_MODIFIED:
    case KUBE_EVENT_DELETED:
        note_rv(st, ev.object);     /* before the handler, which may edit the object */
        if (st->h && st->h->event)
            st->h->event(st->h->arg, ev.type, ev.object);
        break;
    case KUBE_EVENT_BOOKMARK:
        note_rv(st, ev.object);
        break;
    case KUBE_EVENT_ERROR: {
        long long code = json_int_at(ev.object, "code", 0);
        const char *reason = json_str_at(ev.object, "reason");
        const char *msg = json_str_at(ev.object, "message");
        st->verdict = code == 410 ? KUBE_WATCH_GONE : KUBE_WATCH_FAILED;
        log_info("watch", "ERROR event code=%lld reason=%s msg=\"%.200s\"", code,
                 reason ? reason : "-", msg ? msg : "");
        stop = 1;
        break;
    }
    }
    kube_watch_event_clear(&ev);
    return stop;
}

/* Appends `s` percent-encoded (RFC 3986 unreserved characters kept). */
static int append_escaped(char *buf, size_t buflen, size_t *pos, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        int plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~';
        size_t need = plain ? 1 : 3;
        if (*pos + need >= buflen)
            return -1;
        if (plain) {
            buf[(*pos)++] = (char)ch;
        } else {
            buf[(*pos)++] = '%';
            buf[(*pos)++] = hex[ch >> 4];
            buf[(*pos)++] = hex[ch & 15];
        }
    }
    buf[*pos] = '\0';
    return 0;
}

static int append_raw(char *buf, size_t buflen, size_t *pos, const char *s)
{
    size_t n = strlen(s);
    if (*pos + n >= buflen)
        return -1;
    memcpy(buf + *pos, s, n + 1);
    *pos += n;
    return 0;
}

static int append_param(char *buf, size_t buflen, size_t *pos, const char *name, const char *value)
{
    if (!value || !value[0])
        return 0;
    if (append_raw(buf, buflen, pos, "&") != 0 || append_raw(buf, buflen, pos, name) != 0 ||
        append_raw(buf, buflen, pos, "=") != 0)
        return -1;
    return append_escaped(buf, buflen, pos, value);
}

int kube_watch_path(char *buf, size_t buflen, const struct kube_watch_opts *opts, const char *rv,
                    int timeout_seconds)
{
    if (kube_path(buf, buflen, opts->gvr, opts->ns, NULL, NULL) != 0)
        return -1;
    size_t pos = strlen(buf);
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%d", timeout_seconds);
    if (append_raw(buf, buflen, &pos, "?watch=1&allowWatchBookmarks=true") != 0 ||
        append_param(buf, buflen, &pos, "resourceVersion", rv) != 0 ||
        append_param(buf, buflen, &pos, "timeoutSeconds", timeout) != 0 ||
        append_param(buf, buflen, &pos, "labelSelector", opts->label_selector) != 0 ||
        append_param(buf, buflen, &pos, "fieldSelector", opts->field_selector) != 0)
        return -1;
    return 0;
}

double kube_watch_backoff_next(double cur)
{
    if (cur <= 0)
        return BACKOFF_FIRST;
    return cur * 2 > BACKOFF_MAX ? BACKOFF_MAX : cur * 2;
}

static double monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps `seconds`, waking early (within 100 ms) when *stop is set. */
static void sleep_unless_stopped(double seconds, volatile int *stop)
{
    double end = monotonic() + seconds;
    while (!*stop) {
        double left = end - monotonic();
        if (left <= 0)
            return;
        if (left > 0.1)
            left = 0.1;
        struct timespec ts = {0, (long)(left * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* A backoff step with up to 20% jitter, never above the maximum. */
static double jittered(double step, unsigned *seed)
{
    double d = step * (1.0 + 0.2 * ((double)rand_r(seed) / ((double)RAND_MAX + 1.0)));
    return d > BACKOFF_MAX ? BACKOFF_MAX : d;
}

/* Grows the backoff one step and sleeps it (jittered), or until stopped. */
static void back_off(double *backoff, unsigned *seed, volatile int *stop)
{
    *backoff = kube_watch_backoff_next(*backoff);
    sleep_unless_stopped(jittered(*backoff, seed), stop);
}

/* kube_line_fn adapter for kube_watch_handle_line. */
static int on_line(const char *line, size_t len, void *arg)
{
    return kube_watch_handle_line(arg, line, len);
}

static void resource_name(const struct kube_watch_opts *o, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s/%s", o->gvr->group, o->gvr->group[0] ? "/" : "", o->gvr->version,
             o->gvr->resource);
}

/* Runs one stream from `rv`; returns its verdict, with a transport or HTTP
 * failure reported as KUBE_WATCH_FAILED. *healthy says whether the stream
 * worked (ended cleanly after a while or delivered events), which resets
 * the backoff. */
static enum kube_watch_verdict stream_once(struct kube_client *c, const struct kube_watch_opts *o,
                                           const struct kube_watch_handlers *h, char *rv,
                                           size_t rvlen, unsigned *seed, volatile int *stop,
                                           int *healthy)
{
    char path[4096], what[256];
    resource_name(o, what, sizeof(what));
    int timeout = 300 + rand_r(seed) % 301;
    *healthy = 0;
    if (kube_watch_path(path, sizeof(path), o, rv, timeout) != 0) {
        log_error("watch", "resource=%s watch path too long", what);
        return KUBE_WATCH_FAILED;
    }
    struct kube_watch_state st = {.h = h, .verdict = KUBE_WATCH_CONTINUE};
    snprintf(st.rv, sizeof(st.rv), "%s", rv);
    struct kube_result res = {0};
    double t0 = monotonic();
    int rc = kube_stream(c, path, WATCH_MAX_LINE, on_line, &st, stop,
                         &res);
    snprintf(rv, rvlen, "%s", st.rv);
    enum kube_watch_verdict v = st.verdict;
    if (v == KUBE_WATCH_CONTINUE && res.status == 410)
        v = KUBE_WATCH_GONE;
    if (v == KUBE_WATCH_CONTINUE && !*stop && !(rc == 0 && res.status == 200)) {
        v = KUBE_WATCH_FAILED;
        log_warn("watch", "resource=%s stream failed: status=%d reason=%s msg=\"%s\"", what,
                 res.status, res.reason, res.message);
    }
    *healthy = v == KUBE_WATCH_CONTINUE && (st.events > 0 || monotonic() - t0 >= 1.0);
    log_debug("watch", "resource=%s stream ended: %lu events, %lu malformed, rv=%s", what,
              st.events, st.malformed, rv);
    kube_result_free(&res);
    return v;
}

int kube_watch_run(struct kube_client *c, const struct kube_watch_opts *opts,
                   const struct kube_watch_handlers *h, volatile int *stop)
{
    if (!c || !opts || !opts->gvr || !opts->gvr->group || !opts->gvr->version ||
        !opts->gvr->resource || !h || !h->relist || !stop) {
        log_error("watch", "kube_watch_run: missing client, resource, relist handler or stop flag");
        return -1;
    }
    char rv[64] = "", what[256];
    resource_name(opts, what, sizeof(what));
    if (opts->resource_version)
        snprintf(rv, sizeof(rv), "%s", opts->resource_version);
    unsigned seed = (unsigned)(monotonic() * 1e6) ^ (unsigned)(uintptr_t)&seed;
    double backoff = 0;
    int gone_in_row = 0;
    while (!*stop) {
        if (!rv[0]) {
            if (h->relist(h->arg, rv, sizeof(rv)) != 0 || !rv[0]) {
                rv[0] = '\0';
                log_warn("watch", "resource=%s list failed, retrying with backoff", what);
                back_off(&backoff, &seed, stop);
                continue;
            }
            log_debug("watch", "resource=%s listed at rv=%s", what, rv);
        }
        int healthy;
        enum kube_watch_verdict v = stream_once(c, opts, h, rv, sizeof(rv), &seed, stop, &healthy);
        if (healthy)
            backoff = 0;
        if (*stop)
            break;
        gone_in_row = v == KUBE_WATCH_GONE ? gone_in_row + 1 : 0;
        if (v == KUBE_WATCH_GONE) {
            log_info("watch", "resource=%s rv=%s is gone (410), relisting", what, rv);
            rv[0] = '\0';
            /* a fresh list that is at once too old again (a just-restarted
             * API server's cache is still behind): do not spin */
            if (gone_in_row > 1)
                back_off(&backoff, &seed, stop);
        } else if (!healthy) {
            back_off(&backoff, &seed, stop);
        }
    }
    return 0;
}
