/* jsonpatch_apply.h — a small RFC 6902 applier for tests and the fuzzer.
 *
 * Applies "add", "remove" and "replace" with RFC 6901 pointers as the API
 * server does: the parent must exist, array indices must be in range ("-"
 * appends), "~1" and "~0" are unescaped. Strict on purpose, so a patch the
 * webhook builds wrongly (missing parent map, bad index, unescaped '/')
 * fails here instead of in a cluster. Header-only (static) so each test and
 * the fuzz target include it without a library. */
#ifndef AGENTMESH_TEST_JSONPATCH_APPLY_H
#define AGENTMESH_TEST_JSONPATCH_APPLY_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Unescapes one reference token of [s, s+n) into out (cap bytes). -1 on a bad escape. */
static int jp_token(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '~') {
            if (i + 1 >= n || (s[i + 1] != '0' && s[i + 1] != '1')) return -1;
            c = s[++i] == '0' ? '~' : '/';
        }
        if (o + 1 >= cap) return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* Array index token: digits without leading zero, < limit. -1 if not. */
static long jp_index(const char *tok, size_t limit) {
    if (!tok[0] || (tok[0] == '0' && tok[1])) return -1;
    char *end;
    long v = strtol(tok, &end, 10);
    if (*end || v < 0 || (size_t)v >= limit) return -1;
    return v;
}

/* Walks to the parent of `path`; the last token goes into last. */
static json_t *jp_parent(json_t *doc, const char *path, char *last, size_t cap) {
    if (path[0] != '/') return NULL;
    json_t *node = doc;
    const char *p = path + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (jp_token(p, n, last, cap) != 0) return NULL;
        if (!slash) return node;
        if (json_is_object(node)) {
            node = json_object_get(node, last);
        } else if (json_is_array(node)) {
            long i = jp_index(last, json_array_size(node));
            node = i < 0 ? NULL : json_array_get(node, (size_t)i);
        } else {
            return NULL;
        }
        if (!node) return NULL;
        p = slash + 1;
    }
}

/* One operation; 0 or -1 with a reason in err. */
static int jp_apply_op(json_t *doc, const json_t *op, char *err, size_t errlen) {
    const char *kind = json_string_value(json_object_get(op, "op"));
    const char *path = json_string_value(json_object_get(op, "path"));
    json_t *value = json_object_get(op, "value");
    char last[1024];
    if (!kind || !path) return snprintf(err, errlen, "op or path missing"), -1;
    json_t *parent = jp_parent(doc, path, last, sizeof last);
    if (!parent) return snprintf(err, errlen, "%s: parent does not exist", path), -1;
    int add = strcmp(kind, "add") == 0, rm = strcmp(kind, "remove") == 0,
        rep = strcmp(kind, "replace") == 0;
    if (!add && !rm && !rep) return snprintf(err, errlen, "%s: unsupported op", kind), -1;
    if (!rm && !value) return snprintf(err, errlen, "%s: value missing", path), -1;
    if (json_is_object(parent)) {
        if (!add && !json_object_get(parent, last))
            return snprintf(err, errlen, "%s: no such member", path), -1;
        if (rm) return json_object_del(parent, last);
        return json_object_set(parent, last, value);
    }
    if (!json_is_array(parent)) return snprintf(err, errlen, "%s: parent is a scalar", path), -1;
    size_t n = json_array_size(parent);
    if (add && strcmp(last, "-") == 0) return json_array_append(parent, value);
    long i = jp_index(last, add ? n + 1 : n);
    if (i < 0) return snprintf(err, errlen, "%s: index out of range", path), -1;
    if (add) return json_array_insert(parent, (size_t)i, value);
    if (rm) return json_array_remove(parent, (size_t)i);
    return json_array_set(parent, (size_t)i, value);
}

/* Applies every op of `patch` to `doc` in place. */
static int jp_apply(json_t *doc, const json_t *patch, char *err, size_t errlen) {
    if (!json_is_array(patch)) return snprintf(err, errlen, "patch is not an array"), -1;
    size_t i;
    json_t *op;
    json_array_foreach(patch, i, op) if (jp_apply_op(doc, op, err, errlen) != 0) return -1;
    return 0;
}

#endif
