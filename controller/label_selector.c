/* label_selector.c — metav1.LabelSelector as a list of ANDed requirements.
 *
 * matchLabels entries become "key In (value)", so matching, merging and
 * serialising deal with one shape only. */
#include "controller/label_selector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_KEY_MAX 317      /* 253 prefix + '/' + 63 name */
#define LABEL_VALUE_MAX 63

static const char *const op_names[] = {"In", "NotIn", "Exists", "DoesNotExist"};

static void requirement_free(struct label_requirement *r)
{
    free(r->key);
    for (size_t i = 0; i < r->nvalues; i++)
        free(r->values[i]);
    free(r->values);
}

void label_selector_free(struct label_selector *sel)
{
    for (size_t i = 0; i < sel->nreqs; i++)
        requirement_free(&sel->reqs[i]);
    free(sel->reqs);
    sel->reqs = NULL;
    sel->nreqs = 0;
}

/* Appends an empty requirement slot; NULL on OOM. */
static struct label_requirement *add_requirement(struct label_selector *sel)
{
    struct label_requirement *r = realloc(sel->reqs, (sel->nreqs + 1) * sizeof *r);
    if (!r)
        return NULL;
    sel->reqs = r;
    r = &sel->reqs[sel->nreqs++];
    memset(r, 0, sizeof *r);
    return r;
}

static int add_value(struct label_requirement *r, const char *v)
{
    char **vals = realloc(r->values, (r->nvalues + 1) * sizeof *vals);
    if (!vals)
        return -1;
    r->values = vals;
    if (!(vals[r->nvalues] = strdup(v)))
        return -1;
    r->nvalues++;
    return 0;
}

static int check_key(const char *key, const char *where, char *err, size_t errlen)
{
    size_t n = strlen(key);
    if (n == 0 || n > LABEL_KEY_MAX) {
        snprintf(err, errlen, "%s: label key must be 1..%d characters", where, LABEL_KEY_MAX);
        return -1;
    }
    return 0;
}

static int check_value(const char *v, const char *where, char *err, size_t errlen)
{
    if (strlen(v) > LABEL_VALUE_MAX) {
        snprintf(err, errlen, "%s: label value longer than %d characters", where, LABEL_VALUE_MAX);
        return -1;
    }
    return 0;
}

static int parse_match_labels(const json_t *ml, const char *field, struct label_selector *out,
                              char *err, size_t errlen)
{
    char where[512];
    if (!json_is_object(ml)) {
        snprintf(err, errlen, "%s.matchLabels: must be an object", field);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)ml, k, v) {
        snprintf(where, sizeof where, "%s.matchLabels.%s", field, k);
        if (!json_is_string(v)) {
            snprintf(err, errlen, "%s: must be a string", where);
            return -1;
        }
        if (check_key(k, where, err, errlen) < 0 || check_value(json_string_value(v), where, err, errlen) < 0)
            return -1;
        struct label_requirement *r = add_requirement(out);
        if (!r || !(r->key = strdup(k)) || add_value(r, json_string_value(v)) < 0)
            goto oom;
        r->op = LABEL_IN;
    }
    return 0;
oom:
    snprintf(err, errlen, "%s: out of memory", field);
    return -1;
}

static int parse_expression(const json_t *e, const char *where, struct label_selector *out,
                            char *err, size_t errlen)
{
    if (!json_is_object(e)) {
        snprintf(err, errlen, "%s: must be an object", where);
        return -1;
    }
    const char *key = json_string_value(json_object_get(e, "key"));
    const char *opname = json_string_value(json_object_get(e, "operator"));
    const json_t *values = json_object_get(e, "values");
    if (!key) {
        snprintf(err, errlen, "%s.key: required string", where);
        return -1;
    }
    if (check_key(key, where, err, errlen) < 0)
        return -1;
    int op = -1;
    for (int i = 0; opname && i < 4; i++)
        if (strcmp(opname, op_names[i]) == 0)
            op = i;
    if (op < 0) {
        snprintf(err, errlen, "%s.operator: unknown operator \"%s\" (In, NotIn, Exists, DoesNotExist)",
                 where, opname ? opname : "");
        return -1;
    }
    size_t nv = json_is_array(values) ? json_array_size(values) : 0;
    if (values && !json_is_array(values)) {
        snprintf(err, errlen, "%s.values: must be an array", where);
        return -1;
    }
    if ((op == LABEL_IN || op == LABEL_NOT_IN) && nv == 0) {
        snprintf(err, errlen, "%s.values: must be non-empty for %s", where, opname);
        return -1;
    }
    if ((op == LABEL_EXISTS || op == LABEL_DOES_NOT_EXIST) && nv != 0) {
        snprintf(err, errlen, "%s.values: must be empty for %s", where, opname);
        return -1;
    }
    struct label_requirement *r = add_requirement(out);
    if (!r || !(r->key = strdup(key)))
        goto oom;
    r->op = (enum label_op)op;
    for (size_t i = 0; i < nv; i++) {
        const char *v = json_string_value(json_array_get(values, i));
        if (!v) {
            snprintf(err, errlen, "%s.values[%zu]: must be a string", where, i);
            return -1;
        }
        if (check_value(v, where, err, errlen) < 0)
            return -1;
        if (add_value(r, v) < 0)
            goto oom;
    }
    return 0;
oom:
    snprintf(err, errlen, "%s: out of memory", where);
    return -1;
}

int label_selector_parse(const json_t *sel, const char *field, struct label_selector *out,
                         char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!sel || json_is_null(sel))
        return 0;
    if (!json_is_object(sel)) {
        snprintf(err, errlen, "%s: must be an object", field);
        return -1;
    }
    const json_t *ml = json_object_get(sel, "matchLabels");
    const json_t *me = json_object_get(sel, "matchExpressions");
    if (ml && !json_is_null(ml) && parse_match_labels(ml, field, out, err, errlen) < 0)
        goto fail;
    if (me && !json_is_null(me)) {
        if (!json_is_array(me)) {
            snprintf(err, errlen, "%s.matchExpressions: must be an array", field);
            goto fail;
        }
        for (size_t i = 0; i < json_array_size(me); i++) {
            char where[512];
            snprintf(where, sizeof where, "%s.matchExpressions[%zu]", field, i);
            if (parse_expression(json_array_get(me, i), where, out, err, errlen) < 0)
                goto fail;
        }
    }
    return 0;
fail:
    label_selector_free(out);
    return -1;
}

static int requirement_matches(const struct label_requirement *r, const json_t *labels)
{
    const char *have = json_string_value(json_object_get(labels, r->key));
    int found = 0;
    for (size_t i = 0; have && i < r->nvalues && !found; i++)
        found = strcmp(have, r->values[i]) == 0;
    switch (r->op) {
    case LABEL_IN: return found;
    case LABEL_NOT_IN: return !found;
    case LABEL_EXISTS: return have != NULL;
    case LABEL_DOES_NOT_EXIST: return have == NULL;
    }
    return 0;
}

int label_selector_matches(const struct label_selector *sel, const json_t *labels)
{
    for (size_t i = 0; i < sel->nreqs; i++)
        if (!requirement_matches(&sel->reqs[i], labels))
            return 0;
    return 1;
}

int label_selector_merge(struct label_selector *dst, const struct label_selector *src)
{
    for (size_t i = 0; i < src->nreqs; i++) {
        const struct label_requirement *s = &src->reqs[i];
        struct label_requirement *r = add_requirement(dst);
        if (!r || !(r->key = strdup(s->key)))
            return -1;
        r->op = s->op;
        for (size_t j = 0; j < s->nvalues; j++)
            if (add_value(r, s->values[j]) < 0)
                return -1;
    }
    return 0;
}

json_t *label_selector_to_json(const struct label_selector *sel)
{
    json_t *obj = json_object();
    json_t *exprs = json_array();
    if (!obj || !exprs)
        goto oom;
    for (size_t i = 0; i < sel->nreqs; i++) {
        const struct label_requirement *r = &sel->reqs[i];
        json_t *e = json_pack("{s:s, s:s}", "key", r->key, "operator", op_names[r->op]);
        if (!e || json_array_append_new(exprs, e) < 0)
            goto oom;
        if (r->nvalues) {
            json_t *vals = json_array();
            if (!vals || json_object_set_new(e, "values", vals) < 0)
                goto oom;
            for (size_t j = 0; j < r->nvalues; j++)
                if (json_array_append_new(vals, json_string(r->values[j])) < 0)
                    goto oom;
        }
    }
    if (sel->nreqs && json_object_set_new(obj, "matchExpressions", exprs) < 0) {
        exprs = NULL;
        goto oom;
    }
    if (!sel->nreqs)
        json_decref(exprs);
    return obj;
oom:
    json_decref(exprs);
    json_decref(obj);
    return NULL;
}
