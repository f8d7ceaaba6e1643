/* json.h — the project's one set of JSON helpers, over jansson.
 *
 * Kubernetes objects are deep; these helpers read them by dotted path
 * ("metadata.name", "spec.cloud.aws.roleArn") and never crash on a missing
 * or mistyped node: they return NULL / the fallback instead. */
#ifndef AGENTMESH_JSON_H
#define AGENTMESH_JSON_H

#include <jansson.h>
#include <stddef.h>

/* Node at dotted `path` under `root`, or NULL. Borrowed reference. */
json_t *json_at(const json_t *root, const char *path);
/* String at path, or NULL when missing or not a string. */
const char *json_str_at(const json_t *root, const char *path);
/* Integer at path (a JSON integer, or a real with no fraction), or `fallback`. */
long long json_int_at(const json_t *root, const char *path, long long fallback);
/* Number (integer or real) at path, or `fallback`. */
double json_num_at(const json_t *root, const char *path, double fallback);
/* Boolean at path, or `fallback`. */
int json_bool_at(const json_t *root, const char *path, int fallback);

/* Sets `value` (stolen) at dotted path, creating objects on the way. 0 or -1. */
int json_set_at(json_t *root, const char *path, json_t *value);

/* Parses `len` bytes; on failure returns NULL and writes "line L col C: text"
 * into err, printable ASCII only (safe to echo in a JSON error reply).
 * Rejects duplicate keys; any root type is allowed. */
json_t *json_parse(const char *buf, size_t len, char *err, size_t errlen);

/* A new object holding only those of `keys` that `obj` has (absent ones stay
 * absent, never null). Values are shared references. NULL on OOM. */
json_t *json_pick(const json_t *obj, const char *const *keys, size_t nkeys);

/* Compact serialisation (caller frees), sorted keys for stable output. NULL on OOM. */
char *json_compact(const json_t *value);

/* Builds a string from printf-style arguments (json_string takes a copy). */
json_t *json_stringf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
