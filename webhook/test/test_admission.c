/* test_admission.c — AdmissionReview decoding and reply encoding. */
#include "common/test/check_run.h"
#include "webhook/admission.h"

#include "common/json.h"
#include "webhook/json_text.h"

#include <check.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *review_v1 =
    "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
    "\"uid\":\"705ab4f5-6393-11e8-b7cc-42010a800002\",\"kind\":{\"group\":\"\",\"version\":\"v1\","
    "\"kind\":\"Pod\"},\"resource\":{\"group\":\"\",\"version\":\"v1\",\"resource\":\"pods\"},"
    "\"namespace\":\"team-a\",\"operation\":\"CREATE\",\"dryRun\":true,"
    "\"object\":{\"metadata\":{\"generateName\":\"agent-\"},\"spec\":{\"containers\":[]}},"
    "\"oldObject\":null}}";

/* The reply as a string of its own (caller frees), or NULL. */
static char *encode(const struct admission_request *r, const struct admission_response *resp) {
    struct json_text t = {0};
    if (admission_encode(&t, r, resp) != 0) {
        json_text_free(&t);
        return NULL;
    }
    return json_text_finish(&t);
}

START_TEST(decode_v1) {
    struct admission_request r;
    char err[256];
    ck_assert_int_eq(admission_decode(review_v1, strlen(review_v1), &r, err, sizeof err), 0);
    ck_assert_str_eq(r.api_version, "admission.k8s.io/v1");
    ck_assert_str_eq(r.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    ck_assert_str_eq(r.operation, "CREATE");
    ck_assert_str_eq(r.namespace, "team-a");
    ck_assert_str_eq(r.name, "");
    ck_assert_str_eq(r.kind, "Pod");
    ck_assert_str_eq(r.group, "");
    ck_assert_str_eq(json_str_at(r.object, "metadata.generateName"), "agent-");
    ck_assert_ptr_null(r.old_object);
    ck_assert_int_eq(r.dry_run, 1);
    admission_request_free(&r);
}
END_TEST

/* Each malformed review fails with a reason naming what is wrong. */
START_TEST(decode_errors) {
    static const struct {
        const char *body, *reason;
    } cases[] = {
        {"", "empty body"},
        {"{", "invalid JSON"},
        {"[1]", "not a JSON object"},
        {"{\"kind\":\"AdmissionReview\",\"request\":{}}", "apiVersion: missing"},
        {"{\"apiVersion\":\"v1\",\"kind\":\"AdmissionReview\"}", "apiVersion: want"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"Pod\"}", "kind: want AdmissionReview"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}", "request: missing"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":"
         "{\"operation\":\"CREATE\"}}", "request.uid: missing"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":"
         "{\"uid\":\"u\",\"kind\":{\"kind\":\"Pod\"}}}", "request.operation: missing"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":"
         "{\"uid\":\"u\",\"operation\":\"CREATE\"}}", "request.kind.kind: missing"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":"
         "{\"uid\":\"u\",\"operation\":\"CREATE\",\"kind\":{\"kind\":\"Pod\"}}}", "request.object: missing"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":"
         "{\"uid\":\"u\",\"operation\":\"CREATE\",\"kind\":{\"kind\":\"Pod\"},\"object\":[]}}",
         "request.object: not an object"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":"
         "{\"uid\":\"u\",\"operation\":\"CREATE\",\"namespace\":7,\"kind\":{\"kind\":\"Pod\"},"
         "\"object\":{}}}", "request.namespace: not a string"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"apiVersion\":\"x\"}", "duplicate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct admission_request r;
        char err[256] = "";
        ck_assert_int_eq(admission_decode(cases[i].body, strlen(cases[i].body), &r, err, sizeof err), -1);
        ck_assert_msg(strstr(err, cases[i].reason), "case %zu: '%s' lacks '%s'", i, err, cases[i].reason);
        ck_assert_ptr_null(r.doc);
    }
}
END_TEST

START_TEST(decode_oversized) {
    size_t n = ADMISSION_MAX_BYTES + 1;
    char *big = malloc(n);
    ck_assert_ptr_nonnull(big);
    memset(big, ' ', n);
    struct admission_request r;
    char err[128];
    ck_assert_int_eq(admission_decode(big, n, &r, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "larger than 3 MiB"));
    free(big);
}
END_TEST

/* DELETE carries no object; v1beta1 is echoed back as v1beta1. */
START_TEST(decode_delete_v1beta1) {
    const char *body = "{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\","
                       "\"request\":{\"uid\":\"u1\",\"operation\":\"DELETE\",\"kind\":{\"group\":"
                       "\"agentmesh.io\",\"kind\":\"AgentIdentity\"},\"oldObject\":{\"spec\":{}}}}";
    struct admission_request r;
    char err[128];
    ck_assert_int_eq(admission_decode(body, strlen(body), &r, err, sizeof err), 0);
    ck_assert_ptr_null(r.object);
    ck_assert_ptr_nonnull(r.old_object);
    ck_assert_str_eq(r.group, "agentmesh.io");
    struct admission_response resp = {.allowed = 1};
    char *out = encode(&r, &resp);
    json_t *j = json_loads(out, 0, NULL);
    ck_assert_str_eq(json_str_at(j, "apiVersion"), "admission.k8s.io/v1beta1");
    ck_assert_str_eq(json_str_at(j, "response.uid"), "u1");
    ck_assert_ptr_null(json_at(j, "response.patch"));
    json_decref(j);
    free(out);
    admission_request_free(&r);
}
END_TEST

/* Allowed with a patch: base64 of the patch, patchType JSONPatch, warnings. */
START_TEST(encode_patch) {
    struct admission_request r;
    char err[128];
    ck_assert_int_eq(admission_decode(review_v1, strlen(review_v1), &r, err, sizeof err), 0);
    const char *patch = "[{\"op\":\"add\",\"path\":\"/metadata/labels/a~1b\",\"value\":\"x\"}]";
    json_t *warnings = json_pack("[s]", "no DID yet");
    struct admission_response resp = {.allowed = 1, .patch = patch, .patch_len = strlen(patch),
                                      .warnings = warnings};
    char *out = encode(&r, &resp);
    ck_assert_ptr_nonnull(out);
    json_t *j = json_loads(out, 0, NULL);
    ck_assert_str_eq(json_str_at(j, "kind"), "AdmissionReview");
    ck_assert_str_eq(json_str_at(j, "response.uid"), r.uid);
    ck_assert_int_eq(json_bool_at(j, "response.allowed", 0), 1);
    ck_assert_str_eq(json_str_at(j, "response.patchType"), "JSONPatch");
    ck_assert_str_eq(json_string_value(json_array_get(json_at(j, "response.warnings"), 0)), "no DID yet");
    const char *b64 = json_str_at(j, "response.patch");
    unsigned char raw[512];
    int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)strlen(b64));
    ck_assert_int_gt(n, 0);
    while (n > 0 && raw[n - 1] == '\0') n--;   /* DecodeBlock keeps padding bytes */
    ck_assert_int_eq(n, (int)strlen(patch));
    ck_assert_msg(memcmp(raw, patch, strlen(patch)) == 0, "patch did not round-trip");
    json_decref(j);
    free(out);

    /* No patch: no patchType either. */
    resp = (struct admission_response){.allowed = 1};
    out = encode(&r, &resp);
    j = json_loads(out, 0, NULL);
    ck_assert_ptr_null(json_at(j, "response.patchType"));
    ck_assert_ptr_null(json_at(j, "response.warnings"));
    json_decref(j);
    free(out);
    json_decref(warnings);
    admission_request_free(&r);
}
END_TEST

START_TEST(encode_deny) {
    struct admission_request r;
    char err[128];
    ck_assert_int_eq(admission_decode(review_v1, strlen(review_v1), &r, err, sizeof err), 0);
    const char *patch = "[{\"op\":\"add\",\"path\":\"/x\",\"value\":\"y\"}]";
    struct admission_response resp = {.allowed = 0, .patch = patch, .patch_len = strlen(patch),
                                      .message = "spec.sponsor: must be an e-mail address"};
    char *out = encode(&r, &resp);
    json_t *j = json_loads(out, 0, NULL);
    ck_assert_int_eq(json_bool_at(j, "response.allowed", 1), 0);
    ck_assert_int_eq(json_int_at(j, "response.status.code", 0), 403);
    ck_assert_str_eq(json_str_at(j, "response.status.message"), "spec.sponsor: must be an e-mail address");
    ck_assert_ptr_null(json_at(j, "response.patch"));   /* never patch a denied object */
    json_decref(j);
    free(out);
    admission_request_free(&r);
}
END_TEST

/* A reply written into a buffer that held a longer one is the same text
 * as in a fresh buffer: nothing of the first shows through. */
START_TEST(encode_reuses_buffer) {
    struct admission_request r;
    char err[128];
    ck_assert_int_eq(admission_decode(review_v1, strlen(review_v1), &r, err, sizeof err), 0);
    char patch[3000];
    memset(patch, 'x', sizeof patch - 1);
    patch[sizeof patch - 1] = '\0';
    struct admission_response big = {.allowed = 1, .patch = patch, .patch_len = strlen(patch)};
    struct admission_response deny = {.allowed = 0, .message = "no"};
    struct json_text t = {0};
    ck_assert_int_eq(admission_encode(&t, &r, &big), 0);
    ck_assert_uint_gt(t.n, 4000);
    char *fresh = encode(&r, &deny);
    ck_assert_int_eq(admission_encode(&t, &r, &deny), 0);
    ck_assert_uint_eq(t.n, strlen(fresh));
    ck_assert_str_eq(t.p, fresh);
    free(fresh);
    json_text_free(&t);
    admission_request_free(&r);
}
END_TEST

int main(void) {
    Suite *s = suite_create("admission");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, decode_v1);
    tcase_add_test(tc, decode_errors);
    tcase_add_test(tc, decode_oversized);
    tcase_add_test(tc, decode_delete_v1beta1);
    tcase_add_test(tc, encode_patch);
    tcase_add_test(tc, encode_deny);
    tcase_add_test(tc, encode_reuses_buffer);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
