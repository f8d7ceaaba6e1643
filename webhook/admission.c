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
    out->doc = json_parse(body, len, perr, sizeof perr);
    if (!out->doc) {
        if (err && errlen) snprintf(err, errlen, "invalid JSON: %s", perr);
        return -1;
    }
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

/* Base64 (standard alphabet, no line breaks) of the compact patch. */
static json_t *patch_b64(const json_t *patch) {
    char *raw = json_dumps(patch, JSON_COMPACT);
    if (!raw) return NULL;
    size_t n = strlen(raw);
    char *b64 = malloc(4 * ((n + 2) / 3) + 1);
    json_t *s = NULL;
    if (b64) {
        EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)raw, (int)n);
        s = json_string(b64);
    }
    free(b64);
    free(raw);
    return s;
}

/* Builds response members into `resp`; -1 on allocation failure. */
static int fill_response(json_t *out, const struct admission_request *req,
                         const struct admission_response *r) {
    if (json_object_set_new(out, "uid", json_string(req->uid)) != 0) return -1;
    if (json_object_set_new(out, "allowed", json_boolean(r->allowed)) != 0) return -1;
    if (r->allowed && json_is_array(r->patch) && json_array_size(r->patch) > 0) {
        json_t *b64 = patch_b64(r->patch);
        if (json_object_set_new(out, "patch", b64) != 0) return -1;
        if (json_object_set_new(out, "patchType", json_string("JSONPatch")) != 0) return -1;
    }
    if (json_is_array(r->warnings) && json_array_size(r->warnings) > 0 &&
        json_object_set(out, "warnings", (json_t *)r->warnings) != 0)
        return -1;
    if (!r->allowed) {
        json_t *st = json_pack("{s:i, s:s}", "code", r->code ? r->code : 403, "message",
                               r->message ? r->message : "denied");
        if (json_object_set_new(out, "status", st) != 0) return -1;
    }
    return 0;
}

char *admission_encode(const struct admission_request *req, const struct admission_response *resp) {
    json_t *review = json_object();
    json_t *r = json_object();
    char *s = NULL;
    if (review && r && fill_response(r, req, resp) == 0 &&
        json_object_set_new(review, "apiVersion", json_string(req->api_version)) == 0 &&
        json_object_set_new(review, "kind", json_string("AdmissionReview")) == 0 &&
        json_object_set(review, "response", r) == 0)
        s = json_dumps(review, JSON_COMPACT);
    json_decref(r);
    json_decref(review);
    return s;
}
