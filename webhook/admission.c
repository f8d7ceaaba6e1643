/* admission.c — AdmissionReview decoding and reply building (see admission.h).
 *
 * The reply carries the JSON Patch base64-encoded, as the v1 API requires
 * (`patchType: JSONPatch`), and is only ever built from a request that
 * decoded, so uid and apiVersion always match what the API server sent. */
#include "webhook/admission.h"

#include "common/json.h"
#include "webhook/json_text.h"

#include <limits.h>
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
 * jansson tree and dumped: the patch arrives as text (inject.h) and base64
 * needs no escaping. */

/* A C string as JSON; text that is not UTF-8 fails the reply, as before
 * (a deny message cut at its buffer's end may split a character). */
static void put_string(struct json_text *o, const char *s) {
    json_t *v = json_string(s);
    if (!v) o->oom = 1;
    else json_text_value(o, v);
    json_decref(v);
}

/* Base64 (standard alphabet, no line breaks) of the patch text. */
static void put_patch_b64(struct json_text *o, const char *patch, size_t len) {
    size_t b64 = 4 * ((len + 2) / 3);
    if (len > INT_MAX || json_text_reserve(o, b64 + 2) != 0) {
        o->oom = 1;
        return;
    }
    o->p[o->n++] = '"';
    EVP_EncodeBlock((unsigned char *)o->p + o->n, (const unsigned char *)patch, (int)len);
    o->n += b64;
    o->p[o->n++] = '"';
    o->p[o->n] = '\0';
}

/* uid and apiVersion come from a decoded review, so they are UTF-8 already
 * and are written without a check (and without a jansson string each). */
int admission_encode(struct json_text *o, const struct admission_request *req,
                     const struct admission_response *r) {
    json_text_reset(o);
    /* Room for the envelope and the base64 patch at once. */
    json_text_reserve(o, 512 + (r->patch ? r->patch_len / 3 * 4 : 0));
    json_text_raw(o, "{\"apiVersion\":");
    json_text_string(o, req->api_version, strlen(req->api_version));
    json_text_raw(o, ",\"kind\":\"AdmissionReview\",\"response\":{\"uid\":");
    json_text_string(o, req->uid, strlen(req->uid));
    json_text_raw(o, r->allowed ? ",\"allowed\":true" : ",\"allowed\":false");
    if (r->allowed && r->patch) {
        json_text_raw(o, ",\"patchType\":\"JSONPatch\",\"patch\":");
        put_patch_b64(o, r->patch, r->patch_len);
    }
    if (json_is_array(r->warnings) && json_array_size(r->warnings) > 0) {
        json_text_raw(o, ",\"warnings\":");
        json_text_value(o, r->warnings);
    }
    if (!r->allowed) {
        char code[32];
        snprintf(code, sizeof code, ",\"status\":{\"code\":%d", r->code ? r->code : 403);
        json_text_raw(o, code);
        json_text_raw(o, ",\"message\":");
        put_string(o, r->message ? r->message : "denied");
        json_text_raw(o, "}");
    }
    json_text_raw(o, "}}");
    return o->oom ? -1 : 0;
}
