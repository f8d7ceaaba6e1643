/* line_splitter.c — newline framing for streamed replies (see line_splitter.h).
 *
 * Every line is copied into the splitter's own buffer before the callback
 * sees it, so the callback always gets a NUL-terminated string no matter how
 * the bytes were chunked. The buffer grows geometrically and never beyond
 * max_line + 1 bytes, so a hostile or broken server cannot exhaust memory. */
#include "controller/line_splitter.h"

#include <stdlib.h>
#include <string.h>

void line_splitter_init(struct line_splitter *s, size_t max_line) {
    s->buf = NULL;
    s->len = 0;
    s->cap = 0;
    s->max_line = max_line;
}

/* Makes room for `need` bytes of line plus the terminating NUL. */
static int reserve(struct line_splitter *s, size_t need) {
    if (need + 1 <= s->cap) return 0;
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < need + 1) cap *= 2;
    if (cap > s->max_line + 1) cap = s->max_line + 1;
    char *nb = realloc(s->buf, cap);
    if (!nb) return -1;
    s->buf = nb;
    s->cap = cap;
    return 0;
}

/* Appends bytes to the unfinished line, enforcing max_line. */
static int append(struct line_splitter *s, const char *data, size_t n) {
    if (n > s->max_line - s->len) return LINE_SPLITTER_TOO_LONG;
    if (reserve(s, s->len + n) != 0) return LINE_SPLITTER_NOMEM;
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return LINE_SPLITTER_OK;
}

/* Hands the buffered line to the callback and empties the buffer. */
static int emit(struct line_splitter *s, line_splitter_fn fn, void *arg) {
    size_t n = s->len;
    s->len = 0;
    if (n == 0) return LINE_SPLITTER_OK;
    return fn(s->buf, n, arg) ? LINE_SPLITTER_STOPPED : LINE_SPLITTER_OK;
}

int line_splitter_feed(struct line_splitter *s, const char *data, size_t len,
                       line_splitter_fn fn, void *arg) {
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len;
        int rc = append(s, data, n);
        if (rc != LINE_SPLITTER_OK) return rc;
        if (!nl) break;
        rc = emit(s, fn, arg);
        if (rc != LINE_SPLITTER_OK) return rc;
        data += n + 1;
        len -= n + 1;
    }
    return LINE_SPLITTER_OK;
}

int line_splitter_finish(struct line_splitter *s, line_splitter_fn fn, void *arg) {
    return emit(s, fn, arg);
}

void line_splitter_free(struct line_splitter *s) {
    free(s->buf);
    line_splitter_init(s, s->max_line);
}
