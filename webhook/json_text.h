/* json_text.h — compact JSON text for the webhook's replies and records.
 *
 * json_dumps() hands its output to a callback in small pieces and checks
 * every string again; on the mutating webhook's ~4 KB patch that was most
 * of the reply's encoding time. This writer appends straight into one
 * growable buffer. Its output is json_dumps(v, JSON_COMPACT)'s: members in
 * insertion order, UTF-8 as is, the same escapes. An allocation failure is
 * latched in `oom` so callers write linearly and check once at the end. */
#ifndef AGENTMESH_WEBHOOK_JSON_TEXT_H
#define AGENTMESH_WEBHOOK_JSON_TEXT_H

#include <jansson.h>
#include <stddef.h>
#include <string.h>

struct json_text {
    char *p;        /* NUL-terminated text so far */
    size_t n, cap;
    int oom;
};

/* Room for `len` more bytes and a NUL at p + n. 0, or -1 (oom set). */
int json_text_reserve(struct json_text *t, size_t len);
/* Appends `len` bytes as they are (literal JSON syntax). */
void json_text_add(struct json_text *t, const char *s, size_t len);
/* Appends `s` as it is; inline so the length of a literal is a constant. */
static inline void json_text_raw(struct json_text *t, const char *s) {
    json_text_add(t, s, strlen(s));
}
/* Appends `len` bytes escaped as inside a JSON string, without the quotes:
 * for string literals written in pieces. */
void json_text_chars(struct json_text *t, const char *s, size_t len);
/* Appends `len` bytes as a JSON string literal. */
void json_text_string(struct json_text *t, const char *s, size_t len);
/* Appends any JSON value. */
void json_text_value(struct json_text *t, const json_t *v);
/* The text (caller frees), or NULL after an allocation failure. */
char *json_text_finish(struct json_text *t);
/* Empties `t` for the next text, keeping its buffer. */
void json_text_reset(struct json_text *t);
/* Frees the buffer; `t` is empty and can be written again. */
void json_text_free(struct json_text *t);

#endif
