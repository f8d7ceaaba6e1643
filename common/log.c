/* log.c — logfmt lines on stderr, one write per line (see log.h). */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static int level_from_env_done;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level) {
    min_level = level;
    level_from_env_done = 1;
}

int log_parse_level(const char *name, enum log_level *out) {
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

static void level_from_env(void) {
    const char *env = getenv("AGENTMESH_LOG_LEVEL");
    enum log_level lvl;
    if (env && log_parse_level(env, &lvl) == 0)
        min_level = lvl;
    level_from_env_done = 1;
}

/* Appends `msg` quoted, escaping quotes, backslashes and control bytes, so a
 * hostile string (a CR name, an API message) cannot forge a log line. */
static size_t append_quoted(char *out, size_t pos, size_t cap, const char *msg) {
    if (pos < cap) out[pos++] = '"';
    for (const unsigned char *p = (const unsigned char *)msg; *p && pos + 5 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            out[pos++] = '\\';
            out[pos++] = (char)*p;
        } else if (*p == '\n') {
            out[pos++] = '\\';
            out[pos++] = 'n';
        } else if (*p < 0x20) {
            pos += (size_t)snprintf(out + pos, cap - pos, "\\x%02x", *p);
        } else {
            out[pos++] = (char)*p;
        }
    }
    if (pos < cap) out[pos++] = '"';
    return pos;
}

void log_msg(enum log_level level, const char *component, const char *fmt, ...) {
    if (!level_from_env_done) level_from_env();
    if (level < min_level) return;

    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);

    char line[4608];
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s component=%s msg=",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], component ? component : "-");
    if (n < 0) return;
    size_t pos = append_quoted(line, (size_t)n, sizeof line - 1, msg);
    line[pos++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, pos);
    (void)w; /* nowhere left to report a failed log write */
}
