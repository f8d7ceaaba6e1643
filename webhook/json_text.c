/* json_text.c — compact JSON writer into one buffer (json_text.h). */
#include "webhook/json_text.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int json_text_reserve(struct json_text *t, size_t len) {
    if (t->oom) return -1;
    if (len < SIZE_MAX / 4 && t->n + len + 1 <= t->cap) return 0;
    size_t cap = len < SIZE_MAX / 4 ? (t->n + len + 1) * 2 : 0;
    char *p = cap ? realloc(t->p, cap) : NULL;
    if (!p) {
        t->oom = 1;
        return -1;
    }
    t->p = p;
    t->cap = cap;
    return 0;
}

void json_text_add(struct json_text *t, const char *s, size_t len) {
    if (json_text_reserve(t, len) != 0) return;
    memcpy(t->p + t->n, s, len);
    t->n += len;
    t->p[t->n] = '\0';
}

/* Room for the worst case (every byte as \u00XX) is reserved once, so the
 * loop only copies. */
void json_text_chars(struct json_text *t, const char *s, size_t len) {
    static const char hex[] = "0123456789ABCDEF";
    if (len > SIZE_MAX / 8 || json_text_reserve(t, len * 6) != 0) {
        t->oom = 1;
        return;
    }
    char *w = t->p + t->n;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *w++ = (char)c;
            continue;
        }
        *w++ = '\\';
        switch (c) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '\b': *w++ = 'b'; break;
        case '\f': *w++ = 'f'; break;
        case '\n': *w++ = 'n'; break;
        case '\r': *w++ = 'r'; break;
        case '\t': *w++ = 't'; break;
        default:
            memcpy(w, "u00", 3);
            w[3] = hex[c >> 4];
            w[4] = hex[c & 15];
            w += 5;
        }
    }
    *w = '\0';
    t->n = (size_t)(w - t->p);
}

void json_text_string(struct json_text *t, const char *s, size_t len) {
    json_text_add(t, "\"", 1);
    json_text_chars(t, s, len);
    json_text_add(t, "\"", 1);
}

void json_text_value(struct json_text *t, const json_t *v) {
    char num[32];
    const char *k;
    json_t *m;
    size_t i;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        json_text_add(t, "{", 1);
        i = 0;
        json_object_foreach((json_t *)v, k, m) {
            if (i++) json_text_add(t, ",", 1);
            json_text_string(t, k, strlen(k));
            json_text_add(t, ":", 1);
            json_text_value(t, m);
        }
        json_text_add(t, "}", 1);
        break;
    case JSON_ARRAY:
        json_text_add(t, "[", 1);
        json_array_foreach(v, i, m) {
            if (i) json_text_add(t, ",", 1);
            json_text_value(t, m);
        }
        json_text_add(t, "]", 1);
        break;
    case JSON_STRING:
        json_text_string(t, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        json_text_raw(t, num);
        break;
    case JSON_REAL: {   /* jansson's own formatting of reals, which we never send */
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!s) t->oom = 1;
        else json_text_raw(t, s);
        free(s);
        break;
    }
    case JSON_TRUE: json_text_add(t, "true", 4); break;
    case JSON_FALSE: json_text_add(t, "false", 5); break;
    case JSON_NULL: json_text_add(t, "null", 4); break;
    }
}

void json_text_reset(struct json_text *t) {
    t->n = 0;
    t->oom = 0;
    if (t->p) t->p[0] = '\0';
}

void json_text_free(struct json_text *t) {
    free(t->p);
    *t = (struct json_text){0};
}

char *json_text_finish(struct json_text *t) {
    if (!t->oom && json_text_reserve(t, 0) == 0) {   /* "" when nothing was written */
        t->p[t->n] = '\0';
        return t->p;
    }
    free(t->p);
    t->p = NULL;
    return NULL;
}
