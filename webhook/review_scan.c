/* review_scan.c — pod AdmissionReviews decoded by a scanner (review_scan.h).
 *
 * Why a second JSON reader next to jansson (the project's one JSON helper
 * set): jansson allocates a node, a hash table and a copy of every key and
 * string of the review, and its lexer goes byte by byte through callbacks;
 * for the 3 KB pods of bench/webhook.sh that was ~85 µs of CPU out of the
 * ~210 µs the webhook spent per request. This reader is confined to the
 * /mutate-pods hot path and does not stand alone: it never reports an
 * error itself. It walks the body once, checks the JSON grammar of all of
 * it, and builds jansson nodes only where a `spec` below says the injector
 * needs them. Whatever it is unsure about makes it give up, and the caller
 * decodes the body with admission_decode(); so it can only ever accept a
 * subset of what jansson accepts, and yields the same values for what it
 * keeps:
 *   - any byte >= 0x80 (jansson checks UTF-8: we leave that to it),
 *   - control bytes in strings, bad escapes, escaped surrogates,
 *   - escaped object keys and objects of more than MAX_KEYS members (the
 *     duplicate-key check here compares raw keys, pairwise),
 *   - integers of more than 18 digits, numbers with exponents, long reals
 *     (jansson's overflow errors),
 *   - nesting deeper than MAX_DEPTH, a root that is not an object. */
#include "webhook/review_scan.h"

#include "webhook/inject.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
#define MAX_KEYS 64
#define MAX_KEY_LEN 255

/* What to build for a value: nothing (check only), all of it, the listed
 * members of an object, or each element of an array by `each`. A FIELDS or
 * EACH value of another type than expected is built whole, so the type
 * checks of the decoder and the injector see what was sent. */
enum shape { SKIP, FULL, FIELDS, EACH };

struct field;
struct spec {
    enum shape shape;
    const struct field *fields;   /* FIELDS: NULL-name terminated */
    const struct spec *each;      /* EACH */
};
struct field {
    const char *name;
    size_t len;
    const struct spec *spec;
};
/* A field's name and its length, counted by the compiler. */
#define F(name) name, sizeof name - 1

static const struct spec skip = {SKIP, NULL, NULL};
static const struct spec full = {FULL, NULL, NULL};
static const struct spec empty = {FIELDS, (const struct field[]){{NULL, 0, NULL}}, NULL};

/* The pod fields inject.c reads (the list in inject.h); of the labels and
 * annotations only the keys it looks up, since pods carry many. */
static const struct spec labels = {FIELDS, (const struct field[]){
    {F(INJECT_LABEL_OPT), &full}, {F(INJECT_LABEL_AGENT), &full}, {F(INJECT_LABEL_AZURE), &full},
    {NULL, 0, NULL}}, NULL};
static const struct spec annotations = {FIELDS, (const struct field[]){
    {F(INJECT_ANNOTATION_AGENT), &full}, {F(INJECT_ANNOTATION_RECORD), &full}, {NULL, 0, NULL}}, NULL};
static const struct spec env_var = {FIELDS, (const struct field[]){
    {F("name"), &full}, {F("value"), &full}, {NULL, 0, NULL}}, NULL};
static const struct spec mount = {FIELDS, (const struct field[]){
    {F("name"), &full}, {F("mountPath"), &full}, {NULL, 0, NULL}}, NULL};
static const struct spec container = {FIELDS, (const struct field[]){
    {F("name"), &full},
    {F("env"), &(const struct spec){EACH, NULL, &env_var}},
    {F("volumeMounts"), &(const struct spec){EACH, NULL, &mount}},
    {NULL, 0, NULL}}, NULL};
static const struct spec containers = {EACH, NULL, &container};
static const struct spec volume = {FIELDS, (const struct field[]){{F("name"), &full}, {NULL, 0, NULL}}, NULL};
static const struct spec pod = {FIELDS, (const struct field[]){
    {F("metadata"), &(const struct spec){FIELDS, (const struct field[]){
        {F("name"), &full}, {F("generateName"), &full}, {F("namespace"), &full},
        {F("labels"), &labels}, {F("annotations"), &annotations}, {NULL, 0, NULL}}, NULL}},
    {F("spec"), &(const struct spec){FIELDS, (const struct field[]){
        {F("hostNetwork"), &full}, {F("serviceAccountName"), &full}, {F("serviceAccount"), &full},
        {F("volumes"), &(const struct spec){EACH, NULL, &volume}},
        {F("containers"), &containers}, {F("initContainers"), &containers}, {NULL, 0, NULL}}, NULL}},
    {NULL, 0, NULL}}, NULL};

/* The envelope admission_decode_doc() checks; oldObject only for its type. */
static const struct spec review = {FIELDS, (const struct field[]){
    {F("apiVersion"), &full}, {F("kind"), &full},
    {F("request"), &(const struct spec){FIELDS, (const struct field[]){
        {F("uid"), &full}, {F("operation"), &full}, {F("namespace"), &full}, {F("name"), &full},
        {F("dryRun"), &full}, {F("object"), &pod}, {F("oldObject"), &empty},
        {F("kind"), &(const struct spec){FIELDS, (const struct field[]){
            {F("group"), &full}, {F("kind"), &full}, {NULL, 0, NULL}}, NULL}},
        {NULL, 0, NULL}}, NULL}},
    {NULL, 0, NULL}}, NULL};

struct scan {
    const char *p, *end;
    int depth;
};

static int value(struct scan *s, const struct spec *sp, json_t **out);

static void ws(struct scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The code point of the 4 hex digits at p, or -1. */
static long hex4(const char *p) {
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* The bytes a string holds as they are: printable ASCII but the quote and
 * the backslash. One table lookup per byte in the loop that skips them
 * (most of a review is string bytes). */
static const unsigned char plain[256] = {
    [' ' ... '!'] = 1, ['#' ... '['] = 1, [']' ... 0x7f] = 1,   /* all but '"' and '\\' */
};

/* Scans the string at s->p (on its opening quote): the raw bytes between
 * the quotes in *start and *len, *escaped when a backslash occurs. */
static int string(struct scan *s, const char **start, size_t *len, int *escaped) {
    const char *p = s->p + 1;
    *escaped = 0;
    *start = p;
    for (;;) {
        while (p < s->end && plain[(unsigned char)*p]) p++;
        if (p >= s->end) return -1;
        unsigned char c = (unsigned char)*p;
        if (c == '"') break;
        if (c != '\\') return -1;   /* a control byte, or >= 0x80 */
        *escaped = 1;
        if (p + 1 >= s->end) return -1;
        char e = p[1];
        if (e == 'u') {
            long cp = p + 6 <= s->end ? hex4(p + 2) : -1;
            if (cp < 0 || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
            p += 6;
        } else if (e != '\0' && strchr("\"\\/bfnrt", e)) {
            p += 2;
        } else {
            return -1;
        }
    }
    *len = (size_t)(p - *start);
    s->p = p + 1;
    return 0;
}

/* A jansson string of the (already checked) escaped bytes. */
static json_t *unescape(const char *p, size_t len) {
    char *buf = malloc(len ? len : 1), *o = buf;
    if (!buf) return NULL;
    for (const char *end = p + len; p < end; p++) {
        if (*p != '\\') {
            *o++ = *p;
            continue;
        }
        char e = *++p;
        if (e == 'u') {
            long cp = hex4(p + 1);
            p += 4;
            if (cp < 0x80) {
                *o++ = (char)cp;
            } else if (cp < 0x800) {
                *o++ = (char)(0xC0 | (cp >> 6));
                *o++ = (char)(0x80 | (cp & 0x3F));
            } else {
                *o++ = (char)(0xE0 | (cp >> 12));
                *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            }
            continue;
        }
        *o++ = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r'
             : e == 't' ? '\t' : e;
    }
    json_t *v = json_stringn_nocheck(buf, (size_t)(o - buf));
    free(buf);
    return v;
}

static int number(struct scan *s, json_t **out) {
    const char *p = s->p, *e = s->end, *start = p;
    if (p < e && *p == '-') p++;
    if (p >= e || *p < '0' || *p > '9') return -1;
    if (*p == '0') p++;
    else while (p < e && *p >= '0' && *p <= '9') p++;
    int real = 0;
    if (p < e && *p == '.') {
        real = 1;
        p++;
        if (p >= e || *p < '0' || *p > '9') return -1;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) return -1;
    size_t n = (size_t)(p - start);
    if ((!real && n > 18) || n > 300) return -1;
    s->p = p;
    if (!out) return 0;
    char buf[320];
    memcpy(buf, start, n);
    buf[n] = '\0';
    *out = real ? json_real(strtod(buf, NULL)) : json_integer(strtoll(buf, NULL, 10));
    return *out ? 0 : -1;
}

static int literal(struct scan *s, const char *word, json_t *v, json_t **out) {
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return -1;
    s->p += n;
    if (out) *out = v;
    return 0;
}

static const struct spec *member_spec(const struct spec *sp, const char *key, size_t len) {
    if (sp->shape == FULL) return &full;
    for (const struct field *f = sp->fields; f->name; f++)
        if (f->len == len && memcmp(f->name, key, len) == 0) return f->spec;
    return &skip;
}

struct span {
    const char *p;
    size_t len;
};

/* An object; `obj` NULL checks it only. Duplicate keys give up (jansson
 * rejects them, with its own message). */
static int object(struct scan *s, const struct spec *sp, json_t *obj) {
    struct span keys[MAX_KEYS];
    int nkeys = 0;
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }
    for (;;) {
        const char *k;
        size_t klen;
        int escaped;
        if (s->p >= s->end || *s->p != '"' || string(s, &k, &klen, &escaped) != 0 || escaped ||
            klen > MAX_KEY_LEN || nkeys == MAX_KEYS)
            return -1;
        for (int i = 0; i < nkeys; i++)   /* length and first byte spare most memcmp calls */
            if (keys[i].len == klen && (klen == 0 || keys[i].p[0] == k[0]) &&
                memcmp(keys[i].p, k, klen) == 0)
                return -1;
        keys[nkeys++] = (struct span){k, klen};
        ws(s);
        if (s->p >= s->end || *s->p != ':') return -1;
        s->p++;
        const struct spec *child = obj ? member_spec(sp, k, klen) : &skip;
        json_t *v = NULL;
        if (value(s, child, child == &skip ? NULL : &v) != 0) return -1;
        if (v && json_object_setn_new_nocheck(obj, k, klen, v) != 0) return -1;
        ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            ws(s);
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            return 0;
        }
        return -1;
    }
}

static int array(struct scan *s, const struct spec *each, json_t *arr) {
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }
    for (;;) {
        json_t *v = NULL;
        if (value(s, each, arr ? &v : NULL) != 0) return -1;
        if (v && json_array_append_new(arr, v) != 0) return -1;
        ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            return 0;
        }
        return -1;
    }
}

/* An object or array, built (into *out) or only checked (out NULL). */
static int container_value(struct scan *s, const struct spec *sp, json_t **out) {
    int is_obj = *s->p == '{';
    if (++s->depth > MAX_DEPTH) return -1;
    json_t *v = NULL;
    if (out) {
        v = is_obj ? json_object() : json_array();
        if (!v) return -1;
    }
    /* A member list for an object, an element spec for an array; any
     * other pairing means the type differs from the spec: build it whole. */
    int rc;
    if (is_obj) rc = object(s, out && sp->shape == FIELDS ? sp : &full, v);
    else rc = array(s, out && sp->shape == EACH ? sp->each : &full, v);
    s->depth--;
    if (rc != 0) {
        json_decref(v);
        return -1;
    }
    if (out) *out = v;
    return 0;
}

/* One value at s->p; *out gets a new reference when out is not NULL. */
static int value(struct scan *s, const struct spec *sp, json_t **out) {
    ws(s);
    if (s->p >= s->end) return -1;
    switch (*s->p) {
    case '{':
    case '[':
        return container_value(s, sp, out);
    case '"': {
        const char *start;
        size_t len;
        int escaped;
        if (string(s, &start, &len, &escaped) != 0) return -1;
        if (!out) return 0;
        *out = escaped ? unescape(start, len) : json_stringn_nocheck(start, len);
        return *out ? 0 : -1;
    }
    case 't': return literal(s, "true", json_true(), out);
    case 'f': return literal(s, "false", json_false(), out);
    case 'n': return literal(s, "null", json_null(), out);
    default: return number(s, out);
    }
}

/* The pruned review, or NULL when the body is not for this reader. */
static json_t *scan_review(const char *body, size_t len) {
    struct scan s = {.p = body, .end = body + len};
    json_t *doc = NULL;
    ws(&s);
    if (s.p >= s.end || *s.p != '{' || value(&s, &review, &doc) != 0) return NULL;
    ws(&s);
    if (s.p != s.end) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

int review_scan_pod(const char *body, size_t len, struct admission_request *out, char *err,
                    size_t errlen) {
    json_t *doc = len > 0 && len <= ADMISSION_MAX_BYTES ? scan_review(body, len) : NULL;
    if (!doc) return admission_decode(body, len, out, err, errlen);
    return admission_decode_doc(doc, out, err, errlen);
}
