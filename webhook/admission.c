/* admission.c — AdmissionReview decoding and reply building (see admission.h).
 *
 * The reply carries the JSON Patch base64-encoded, as the v1 API requires
 * (`patchType: JSONPatch`), and is only ever built from a request that
 * decoded, so uid and apiVersion always match what the API server sent. */
#include "webhook/admission.h"

#include "common/json.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADMISSION_V1 "admission.k8s.io/v1"
#define ADMISSION_V1BETA1 "admission.k8s.io/v1beta1"

static int fail(char *err, size_t errlen, const char *msg) {
    if (err && errlen) snprintf(err, errlen, "%s", msg);
    return -1;
}

/* A string member that may be absent (""), but must be a string when present. */
static int opt_str(const json_t *req, const char *key, const char **out) {
    json_t *v = json_object_get(req, key);
    if (!v || json_is_null(v)) {
        *out = "";
        return 0;
    }
    if (!json_is_string(v)) return -1;
    *out = json_string_value(v);
    return 0;
}

/* Checks the envelope fields into `out`; the caller owns doc cleanup. */
static int decode_request(struct admission_request *out, char *err, size_t errlen) {
    const char *av = json_str_at(out->doc, "apiVersion");
    if (!av) return fail(err, errlen, "apiVersion: missing");
    if (strcmp(av, ADMISSION_V1) != 0 && strcmp(av, ADMISSION_V1BETA1) != 0)
        return fail(err, errlen, "apiVersion: want admission.k8s.io/v1 or v1beta1");
    const char *kind = json_str_at(out->doc, "kind");
    if (!kind || strcmp(kind, "AdmissionReview") != 0)
        return fail(err, errlen, "kind: want AdmissionReview");
    json_t *req = json_object_get(out->doc, "request");
    if (!json_is_object(req)) return fail(err, errlen, "request: missing or not an object");

    out->api_version = av;
    out->uid = json_str_at(req, "uid");
    if (!out->uid || !out->uid[0]) return fail(err, errlen, "request.uid: missing");
    if (strlen(out->uid) > 128) return fail(err, errlen, "request.uid: longer than 128 bytes");
    out->operation = json_str_at(req, "operation");
    if (!out->operation) return fail(err, errlen, "request.operation: missing");
    if (opt_str(req, "namespace", &out->namespace) != 0)
        return fail(err, errlen, "request.namespace: not a string");
    if (opt_str(req, "name", &out->name) != 0) return fail(err, errlen, "request.name: not a string");
    json_t *k = json_object_get(req, "kind");
    out->kind = json_str_at(k, "kind");
    if (!out->kind) return fail(err, errlen, "request.kind.kind: missing");
    if (opt_str(k, "group", &out->group) != 0)
        return fail(err, errlen, "request.kind.group: not a string");

    json_t *obj = json_object_get(req, "object");
    if (obj && !json_is_null(obj) && !json_is_object(obj))
        return fail(err, errlen, "request.object: not an object");
    out->object = json_is_object(obj) ? obj : NULL;
    if (!out->object && strcmp(out->operation, "DELETE") != 0)
        return fail(err, errlen, "request.object: missing");
    json_t *old = json_object_get(req, "oldObject");
    if (old && !json_is_null(old) && !json_is_object(old))
        return fail(err, errlen, "request.oldObject: not an object");
    out->old_object = json_is_object(old) ? old : NULL;
    out->dry_run = json_bool_at(req, "dryRun", 0);
    return 0;
}

int admission_decode(const char *body, size_t len, struct admission_request *out, char *err,
                     size_t errlen) {
    memset(out, 0, sizeof *out);
    if (len == 0) return fail(err, errlen, "empty body");
    if (len > ADMISSION_MAX_BYTES) return fail(err, errlen, "body larger than 3 MiB");
    char perr[160];
    json_t *doc = json_parse(body, len, perr, sizeof perr);
    if (!doc) {
        if (err && errlen) snprintf(err, errlen, "invalid JSON: %s", perr);
        return -1;
    }
    return admission_decode_doc(doc, out, err, errlen);
}

int admission_decode_doc(json_t *doc, struct admission_request *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->doc = doc;
    if (!json_is_object(out->doc)) {
        admission_request_free(out);
        return fail(err, errlen, "body is not a JSON object");
    }
    if (decode_request(out, err, errlen) != 0) {
        admission_request_free(out);
        return -1;
    }
    return 0;
}

void admission_request_free(struct admission_request *r) {
    if (!r) return;
    json_decref(r->doc);
    memset(r, 0, sizeof *r);
}

/* The reply is written straight into a buffer rather than built as a
 * jansson tree and dumped: the patch is serialised once, base64 needs no
 * escaping, and put_value() below writes compact JSON several times faster
 * than json_dumps (whose per-chunk callbacks dominated the encode time). */
struct out {
    char *p;
    size_t n, cap;
    int oom;
};

/* Room for `len` more bytes and a NUL; 0, or -1 (latched in oom). */
static int reserve(struct out *o, size_t len) {
    if (o->oom) return -1;
    if (o->n + len + 1 <= o->cap) return 0;
    size_t cap = (o->n + len + 1) * 2;
    char *p = realloc(o->p, cap);
    if (!p) {
        o->oom = 1;
        return -1;
    }
    o->p = p;
    o->cap = cap;
    return 0;
}

static void put(struct out *o, const char *s, size_t len) {
    if (reserve(o, len) != 0) return;
    memcpy(o->p + o->n, s, len);
    o->n += len;
    o->p[o->n] = '\0';
}

static void put_str(struct out *o, const char *s) {
    put(o, s, strlen(s));
}

/* A JSON string literal, escaped as json_dumps does (UTF-8 kept as is). */
static void put_string_n(struct out *o, const char *s, size_t len) {
    put(o, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        put(o, s + i - run, run);
        run = 0;
        char esc[8];
        switch (c) {
        case '"': put(o, "\\\"", 2); break;
        case '\\': put(o, "\\\\", 2); break;
        case '\b': put(o, "\\b", 2); break;
        case '\f': put(o, "\\f", 2); break;
        case '\n': put(o, "\\n", 2); break;
        case '\r': put(o, "\\r", 2); break;
        case '\t': put(o, "\\t", 2); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04X", c);
            put(o, esc, 6);
        }
    }
    put(o, s + len - run, run);
    put(o, "\"", 1);
}

static void put_value(struct out *o, const json_t *v);

/* A C string as JSON; like before, text that is not UTF-8 fails the reply. */
static void put_string(struct out *o, const char *s) {
    json_t *v = json_string(s);
    if (!v) o->oom = 1;
    else put_value(o, v);
    json_decref(v);
}

/* Any JSON value, compact, members in insertion order like json_dumps. */
static void put_value(struct out *o, const json_t *v) {
    char num[32];
    const char *k;
    json_t *m;
    size_t i;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        put(o, "{", 1);
        i = 0;
        json_object_foreach((json_t *)v, k, m) {
            if (i++) put(o, ",", 1);
            put_string_n(o, k, strlen(k));
            put(o, ":", 1);
            put_value(o, m);
        }
        put(o, "}", 1);
        break;
    case JSON_ARRAY:
        put(o, "[", 1);
        json_array_foreach(v, i, m) {
            if (i) put(o, ",", 1);
            put_value(o, m);
        }
        put(o, "]", 1);
        break;
    case JSON_STRING:
        put_string_n(o, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        put_str(o, num);
        break;
    case JSON_REAL: {   /* jansson's own formatting; none of our replies has one */
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!s) o->oom = 1;
        else put_str(o, s);
        free(s);
        break;
    }
    case JSON_TRUE: put_str(o, "true"); break;
    case JSON_FALSE: put_str(o, "false"); break;
    case JSON_NULL: put_str(o, "null"); break;
    }
}

/* Base64 (standard alphabet, no line breaks) of the compact patch. */
static void put_patch_b64(struct out *o, const json_t *patch) {
    struct out raw = {0};
    put_value(&raw, patch);
    size_t b64 = 4 * ((raw.n + 2) / 3);
    if (raw.oom || reserve(o, b64 + 2) != 0) {
        o->oom = 1;
    } else {
        o->p[o->n++] = '"';
        EVP_EncodeBlock((unsigned char *)o->p + o->n, (const unsigned char *)raw.p, (int)raw.n);
        o->n += b64;
        o->p[o->n++] = '"';
        o->p[o->n] = '\0';
    }
    free(raw.p);
}

char *admission_encode(const struct admission_request *req, const struct admission_response *r) {
    struct out o = {0};
    put_str(&o, "{\"apiVersion\":");
    put_string(&o, req->api_version);
    put_str(&o, ",\"kind\":\"AdmissionReview\",\"response\":{\"uid\":");
    put_string(&o, req->uid);
    put_str(&o, r->allowed ? ",\"allowed\":true" : ",\"allowed\":false");
    if (r->allowed && json_is_array(r->patch) && json_array_size(r->patch) > 0) {
        put_str(&o, ",\"patchType\":\"JSONPatch\",\"patch\":");
        put_patch_b64(&o, r->patch);
    }
    if (json_is_array(r->warnings) && json_array_size(r->warnings) > 0) {
        put_str(&o, ",\"warnings\":");
        put_value(&o, r->warnings);
    }
    if (!r->allowed) {
        char code[32];
        snprintf(code, sizeof code, ",\"status\":{\"code\":%d", r->code ? r->code : 403);
        put_str(&o, code);
        put_str(&o, ",\"message\":");
        put_string(&o, r->message ? r->message : "denied");
        put_str(&o, "}");
    }
    put_str(&o, "}}");
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    return o.p;
}
