/* test_review_scan.c — the fast pod decoder against the full one.
 *
 * review_scan_pod() must agree with admission_decode() on every input:
 * the same envelope, the same error message, and — for every golden pod of
 * test_inject.c — the same injection patch and warnings from the pruned pod
 * as from the whole one. It must also really prune (else it is no faster),
 * and hand unusual input over to the full decoder. */
#include "common/test/check_run.h"
#include "webhook/review_scan.h"

#include "common/json.h"
#include "webhook/inject.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CASE_DIR TESTDATA_DIR "/inject"

/* A review around `object` (stolen) for a pod CREATE in `ns`. */
static char *review_text(json_t *object, const char *ns) {
    json_t *r = json_pack("{s:s, s:s, s:{s:s, s:{s:s, s:s, s:s}, s:s, s:s, s:o, s:n}}",
                          "apiVersion", "admission.k8s.io/v1", "kind", "AdmissionReview",
                          "request", "uid", "u-1", "kind", "group", "", "version", "v1", "kind",
                          "Pod", "namespace", ns, "operation", "CREATE", "object", object,
                          "oldObject");
    ck_assert_ptr_nonnull(r);
    char *s = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    return s;
}

/* Decodes `body` both ways; both succeed or both fail with one message.
 * On success the fast result is left in *fast and the full one in *slow. */
static int decode_both(const char *body, size_t len, struct admission_request *fast,
                       struct admission_request *slow) {
    char ferr[256] = "", serr[256] = "";
    int frc = review_scan_pod(body, len, fast, ferr, sizeof ferr);
    int src = admission_decode(body, len, slow, serr, sizeof serr);
    ck_assert_msg(frc == src, "rc fast %d full %d for %.200s", frc, src, body);
    ck_assert_str_eq(ferr, serr);
    if (frc != 0) return -1;
    ck_assert_str_eq(fast->api_version, slow->api_version);
    ck_assert_str_eq(fast->uid, slow->uid);
    ck_assert_str_eq(fast->operation, slow->operation);
    ck_assert_str_eq(fast->namespace, slow->namespace);
    ck_assert_str_eq(fast->name, slow->name);
    ck_assert_str_eq(fast->kind, slow->kind);
    ck_assert_str_eq(fast->group, slow->group);
    ck_assert_int_eq(fast->dry_run, slow->dry_run);
    ck_assert_int_eq(fast->object == NULL, slow->object == NULL);
    ck_assert_int_eq(fast->old_object == NULL, slow->old_object == NULL);
    return 0;
}

/* inject_pod over both decodings gives the same patch and warnings. */
static void assert_same_injection(const struct admission_request *fast,
                                  const struct admission_request *slow, const json_t *labels,
                                  const json_t *identity, int api_minor) {
    struct inject_options o = {.api_minor = api_minor, .operator_namespace = "agentmesh-system",
                               .sidecar_image = "sidecar:test", .controller_url = "https://c:8080"};
    struct inject_input in = {.pod = fast->object, .namespace = fast->namespace,
                              .namespace_labels = labels, .identity = identity};
    struct inject_result a = {0}, b = {0};
    ck_assert_int_eq(inject_pod(&in, &o, &a), 0);
    in.pod = slow->object;
    ck_assert_int_eq(inject_pod(&in, &o, &b), 0);
    ck_assert_msg(strcmp(a.patch, b.patch) == 0, "patches differ:\n%s\n%s", a.patch, b.patch);
    ck_assert_msg(json_equal(a.warnings, b.warnings), "warnings differ");
    ck_assert_int_eq(a.skip == NULL, b.skip == NULL);
    if (a.skip) ck_assert_str_eq(a.skip, b.skip);
    inject_result_free(&a);
    inject_result_free(&b);
}

static json_t *load(const char *name, const char *ext) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.%s.json", CASE_DIR, name, ext);
    return json_load_file(path, 0, NULL);
}

/* Every golden pod: same patch from the pruned pod, at both API versions. */
START_TEST(golden_pods_same_patch) {
    DIR *d = opendir(CASE_DIR);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int cases = 0;
    while ((e = readdir(d))) {
        char name[256];
        const char *dot = strstr(e->d_name, ".pod.json");
        if (!dot || (size_t)(dot - e->d_name) >= sizeof name) continue;
        snprintf(name, sizeof name, "%.*s", (int)(dot - e->d_name), e->d_name);
        json_t *pod = load(name, "pod"), *c = load(name, "case"), *agent = load(name, "agent");
        ck_assert_ptr_nonnull(pod);
        ck_assert_ptr_nonnull(c);
        const char *ns = json_str_at(c, "namespace");
        char *body = review_text(pod, ns ? ns : "");
        struct admission_request fast, slow;
        ck_assert_int_eq(decode_both(body, strlen(body), &fast, &slow), 0);
        for (int minor = 20; minor <= 29; minor += 9)
            assert_same_injection(&fast, &slow, json_object_get(c, "namespaceLabels"), agent, minor);
        admission_request_free(&fast);
        admission_request_free(&slow);
        free(body);
        json_decref(agent);
        json_decref(c);
        cases++;
    }
    closedir(d);
    ck_assert_int_ge(cases, 20);
}
END_TEST

static const char *pod_full =
    "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
    "\"uid\":\"u-2\",\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"},"
    "\"namespace\":\"team-a\",\"operation\":\"CREATE\",\"dryRun\":false,\"userInfo\":"
    "{\"username\":\"x\",\"groups\":[\"a\",\"b\"]},\"object\":{\"metadata\":{\"name\":\"p\","
    "\"labels\":{\"app\":\"a\"},\"annotations\":{\"note\":\"n\",\"agentmesh.io/agent\":"
    "\"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20ac\\u0041\"}},"
    "\"spec\":{\"serviceAccountName\":\"alpha\",\"priority\":-12,\"weight\":0.25,"
    "\"containers\":[{\"name\":\"app\",\"image\":\"img:1\",\"env\":[{\"name\":\"A\","
    "\"value\":\"1\"},{\"name\":\"B\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"x\"}}}],"
    "\"resources\":{\"limits\":{\"cpu\":\"1\"}}}],\"volumes\":[{\"name\":\"v\",\"emptyDir\":{}}]}},"
    "\"oldObject\":null}}";

static const char *first_image(const json_t *pod) {
    return json_string_value(
        json_object_get(json_array_get(json_at(pod, "spec.containers"), 0), "image"));
}

static const char *annotation(const json_t *pod, const char *key) {
    return json_string_value(json_object_get(json_at(pod, "metadata.annotations"), key));
}

/* The fast path keeps what the injector reads, decodes escapes like
 * jansson, and leaves the rest out (of labels and annotations, all but the
 * keys the injector looks up). */
START_TEST(prunes_and_decodes) {
    struct admission_request fast, slow;
    ck_assert_int_eq(decode_both(pod_full, strlen(pod_full), &fast, &slow), 0);
    ck_assert_str_eq(annotation(fast.object, INJECT_ANNOTATION_AGENT),
                     annotation(slow.object, INJECT_ANNOTATION_AGENT));
    ck_assert_str_eq(annotation(fast.object, INJECT_ANNOTATION_AGENT),
                     "q\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac" "A");
    ck_assert_str_eq(annotation(slow.object, "note"), "n");
    ck_assert_ptr_null(annotation(fast.object, "note"));
    ck_assert_ptr_nonnull(json_at(slow.object, "metadata.labels.app"));
    ck_assert_ptr_null(json_at(fast.object, "metadata.labels.app"));
    ck_assert(json_is_object(json_at(fast.object, "metadata.labels")));
    ck_assert_ptr_nonnull(first_image(slow.object));
    ck_assert_ptr_null(first_image(fast.object));
    json_t *c0 = json_array_get(json_at(fast.object, "spec.containers"), 0);
    ck_assert_ptr_null(json_object_get(c0, "resources"));
    ck_assert_ptr_null(json_at(fast.object, "spec.priority"));
    ck_assert_ptr_null(json_object_get(json_array_get(json_object_get(c0, "env"), 1), "valueFrom"));
    ck_assert_ptr_null(json_object_get(json_at(fast.doc, "request"), "userInfo"));
    json_t *labels = json_pack("{s:s}", "agentmesh.io/inject", "enabled");
    json_t *agent = json_pack("{s:{s:s}, s:{s:s}}", "metadata", "name", "alpha", "status", "did",
                              "did:mesh:00112233445566778899aabbccddeeff");
    assert_same_injection(&fast, &slow, labels, agent, 29);
    json_decref(agent);
    json_decref(labels);
    admission_request_free(&fast);
    admission_request_free(&slow);
}
END_TEST

/* Replaces the first `from` in pod_full by `to`. */
static char *variant(const char *from, const char *to) {
    const char *at = strstr(pod_full, from);
    ck_assert_ptr_nonnull(at);
    size_t n = strlen(pod_full) - strlen(from) + strlen(to) + 1;
    char *s = malloc(n);
    ck_assert_ptr_nonnull(s);
    snprintf(s, n, "%.*s%s%s", (int)(at - pod_full), pod_full, to, at + strlen(from));
    return s;
}

/* Input the scanner does not take is decoded whole, with the same result. */
START_TEST(unusual_input_falls_back) {
    static const char *const cases[][2] = {
        {"\"agentmesh.io/agent\":\"q", "\"agentmesh.io/agent\":\"\xc3\xa9"},   /* UTF-8 text */
        {"\"app\":\"a\"", "\"a\\u0070p\":\"a\""},                       /* escaped key */
        {"\"priority\":-12", "\"priority\":1e3"},                      /* exponent */
        {"\"priority\":-12", "\"priority\":1234567890123456789"},      /* 19 digits */
        {"\"emptyDir\":{}", NULL},                                   /* 80 deep */
    };
    char deep[200] = "\"emptyDir\":";
    for (int i = 0; i < 80; i++) strcat(deep, "[");
    for (int i = 0; i < 80; i++) strcat(deep, "]");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *body = variant(cases[i][0], cases[i][1] ? cases[i][1] : deep);
        struct admission_request fast, slow;
        ck_assert_int_eq(decode_both(body, strlen(body), &fast, &slow), 0);
        ck_assert_msg(first_image(fast.object), "case %zu was not decoded whole", i);
        admission_request_free(&fast);
        admission_request_free(&slow);
        free(body);
    }
}
END_TEST

/* Malformed input: the same 400 reason as the full decoder, wherever the
 * fault is — also inside members the fast path does not keep. */
START_TEST(malformed_same_error) {
    static const char *const cases[][2] = {
        {"\"limits\":{\"cpu\":\"1\"}", "\"limits\":{\"cpu\":\"1\",\"cpu\":\"2\"}"},   /* duplicate */
        {"\"image\":\"img:1\"", "\"image\":\"img\x01\""},       /* control byte */
        {"\"image\":\"img:1\"", "\"image\":\"\\x\""},           /* bad escape */
        {"\"image\":\"img:1\"", "\"image\":\"\\ud800\""},       /* lone surrogate */
        {"\"image\":\"img:1\"", "\"image\":\"\xff\""},          /* not UTF-8 */
        {"\"priority\":-12", "\"priority\":012"},               /* leading zero */
        {"\"priority\":-12", "\"priority\":-"},                 /* no digits */
        {"\"priority\":-12", "\"priority\":1."},                /* no fraction digits */
        {"\"priority\":-12", "\"priority\":tru"},               /* bad literal */
        {"{\"name\":\"v\",", "{\"name\":\"v\",,"},              /* double comma */
        {"\"oldObject\":null}}", "\"oldObject\":null}} x"},     /* trailing garbage */
        {"\"oldObject\":null}}", "\"oldObject\":null}"},        /* truncated */
        {"\"uid\":\"u-2\"", "\"uid\":7"},                       /* envelope type */
        {"\"oldObject\":null", "\"oldObject\":[]"},             /* oldObject type */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *body = variant(cases[i][0], cases[i][1]);
        struct admission_request fast, slow;
        ck_assert_msg(decode_both(body, strlen(body), &fast, &slow) == -1, "case %zu accepted", i);
        ck_assert_ptr_null(fast.doc);
        free(body);
    }
    struct admission_request fast, slow;
    ck_assert_int_eq(decode_both("", 0, &fast, &slow), -1);
    ck_assert_int_eq(decode_both("[1]", 3, &fast, &slow), -1);
    ck_assert_int_eq(decode_both(" {} ", 4, &fast, &slow), -1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("review_scan");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, golden_pods_same_patch);
    tcase_add_test(tc, prunes_and_decodes);
    tcase_add_test(tc, unusual_input_falls_back);
    tcase_add_test(tc, malformed_same_error);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
