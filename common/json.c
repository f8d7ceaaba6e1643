/* json.c — dotted-path access and parsing helpers over jansson (see json.h). */
#include "common/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *json_at(const json_t *root, const char *path) {
    const json_t *node = root;
    const char *p = path;
    while (node && *p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (!json_is_object(node)) return NULL;
        node = json_object_getn(node, p, len);
        p += len;
        if (*p == '.') p++;
    }
    return (json_t *)node;
}

const char *json_str_at(const json_t *root, const char *path) {
    json_t *n = json_at(root, path);
    return json_is_string(n) ? json_string_value(n) : NULL;
}

long long json_int_at(const json_t *root, const char *path, long long fallback) {
    json_t *n = json_at(root, path);
    if (json_is_integer(n)) return json_integer_value(n);
    if (json_is_real(n)) {
        double d = json_real_value(n);
        if (d == floor(d) && fabs(d) < 9.0e15) return (long long)d;
    }
    return fallback;
}

double json_num_at(const json_t *root, const char *path, double fallback) {
    json_t *n = json_at(root, path);
    return json_is_number(n) ? json_number_value(n) : fallback;
}

int json_bool_at(const json_t *root, const char *path, int fallback) {
    json_t *n = json_at(root, path);
    return json_is_boolean(n) ? json_is_true(n) : fallback;
}

int json_set_at(json_t *root, const char *path, json_t *value) {
    json_t *node = root;
    const char *p = path;
    for (;;) {
        const char *dot = strchr(p, '.');
        if (!json_is_object(node)) break;
        if (!dot) return json_object_set_new(node, p, value);
        size_t len = (size_t)(dot - p);
        json_t *next = json_object_getn(node, p, len);
        if (!next) {
            next = json_object();
            if (!next || json_object_setn_new(node, p, len, next) != 0) break;
        }
        node = next;
        p = dot + 1;
    }
    json_decref(value);
    return -1;
}

json_t *json_parse(const char *buf, size_t len, char *err, size_t errlen) {
    json_error_t e;
    json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    if (!v && err && errlen) {
        snprintf(err, errlen, "line %d col %d: %s", e.line, e.column, e.text);
        /* jansson quotes the input near the fault, raw bytes and all: a cut
         * UTF-8 sequence there would make an error reply that carries this
         * text invalid JSON itself (found by fuzz/fuzz_sidecar_routes.c). */
        for (char *p = err; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) *p = '?';
    }
    return v;
}

json_t *json_pick(const json_t *obj, const char *const *keys, size_t nkeys) {
    json_t *out = json_object();
    for (size_t i = 0; out && i < nkeys; i++) {
        json_t *v = json_object_get(obj, keys[i]);
        if (v && json_object_set(out, keys[i], v) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

char *json_compact(const json_t *value) {
    return json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS);
}

json_t *json_stringf(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return json_string(buf);
}
