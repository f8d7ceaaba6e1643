/* test_webhook_server.c — the admission endpoints over real HTTPS.
 *
 * Starts an httpd with TLS (certificates from certs.c, client verifying
 * against the generated CA and 127.0.0.1 SAN), registers the webhooks with
 * in-memory lookups, and posts AdmissionReviews with libcurl. */
#include "common/test/check_run.h"
#include "common/test/curl_collect.h"
#include "webhook/webhook_server.h"

#include "common/json.h"
#include "common/metrics.h"
#include "common/tls.h"
#include "webhook/certs.h"
#include "webhook/test/jsonpatch_apply.h"

#include <check.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct httpd *srv;
static struct webhook *wh;
static char ca_file[64];
static int port;
static int identity_calls;

static json_t *lookup_identity(const char *ns, const char *key, int by_sa, void *arg) {
    __atomic_add_fetch(&identity_calls, 1, __ATOMIC_SEQ_CST);
    if (strcmp(ns, "team-a") != 0 || strcmp(key, "alpha") != 0) return NULL;
    return json_pack("{s:{s:s, s:s}, s:{s:s}, s:{s:s}}", "metadata", "name", "alpha", "namespace",
                     "team-a", "spec", "sponsor", "a@example.com", "status", "did",
                     "did:mesh:00112233445566778899aabbccddeeff");
}

static json_t *lookup_labels(const char *ns, void *arg) {
    if (strcmp(ns, "team-a") == 0) return json_pack("{s:s}", "agentmesh.io/inject", "enabled");
    return json_object();
}

static void start(void) {
    struct cert_pair ca, pair;
    char err[256];
    const char *dns[] = {"localhost"}, *ips[] = {"127.0.0.1"};
    ck_assert(certs_make_ca("test-ca", 3600, &ca, err, sizeof err) == 0);
    ck_assert(certs_make_serving(&ca, dns, 1, ips, 1, 3600, &pair, err, sizeof err) == 0);
    snprintf(ca_file, sizeof ca_file, "/tmp/am-webhook-ca-%d.pem", (int)getpid());
    FILE *f = fopen(ca_file, "w");
    ck_assert_ptr_nonnull(f);
    fputs(ca.cert_pem, f);
    fclose(f);
    SSL_CTX *ctx = tls_server_ctx_from_pem(pair.cert_pem, strlen(pair.cert_pem), pair.key_pem,
                                           strlen(pair.key_pem), err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    struct httpd_options o = {.name = "webhook", .address = "127.0.0.1", .port = 0, .threads = 2,
                              .max_body = WEBHOOK_MAX_BODY, .tls = 1};
    srv = httpd_new(&o);
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(httpd_set_tls(srv, ctx), 0);
    SSL_CTX_free(ctx);
    struct webhook_config cfg = {
        .inject = {.api_minor = 29, .operator_namespace = "agentmesh-system",
                   .sidecar_image = "sidecar:test", .controller_url = "https://c:8080"},
        .identity = lookup_identity, .ns_labels = lookup_labels};
    wh = webhook_register(srv, &cfg);
    ck_assert_ptr_nonnull(wh);
    ck_assert_msg(httpd_start(srv, err, sizeof err) == 0, "%s", err);
    port = httpd_port(srv);
    certs_pair_free(&ca);
    certs_pair_free(&pair);
}

static void stop(void) {
    httpd_free(srv);
    webhook_free(wh);
    unlink(ca_file);
}

/* POSTs `body` to `path`; returns the HTTP code and the reply in *out. */
static long post(const char *path, const char *body, size_t len, json_t **out) {
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d%s", port, path);
    struct buf b = {0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(c);
    ck_assert_msg(rc == CURLE_OK, "%s", curl_easy_strerror(rc));
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    *out = json_loadb(b.p ? b.p : "", b.n, 0, NULL);
    free(b.p);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return code;
}

static char *review(const char *kind, const char *group, const char *op, const char *ns,
                    json_t *obj, json_t *old) {
    json_t *r = json_pack("{s:s, s:s, s:{s:s, s:{s:s, s:s, s:s}, s:s, s:s, s:s, s:o, s:o}}",
                          "apiVersion", "admission.k8s.io/v1", "kind", "AdmissionReview", "request",
                          "uid", "uid-1", "kind", "group", group, "version", "v1", "kind", kind,
                          "namespace", ns, "name", "", "operation", op, "object", obj, "oldObject",
                          old ? old : json_null());
    char *s = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    return s;
}

static json_t *pod(void) {
    return json_pack("{s:{s:s}, s:{s:s, s:[{s:s, s:s}]}}", "metadata", "generateName", "agent-",
                     "spec", "serviceAccountName", "alpha", "containers", "name", "app", "image", "x");
}

START_TEST(mutate_injects) {
    double before = metric_value(metrics_counter("agentmesh_sidecar_injections_total", "", "result,reason"),
                                 "injected", "");
    json_t *p = pod();
    char *body = review("Pod", "", "CREATE", "team-a", json_incref(p), NULL);
    json_t *reply;
    ck_assert_int_eq(post(WEBHOOK_MUTATE_PATH, body, strlen(body), &reply), 200);
    ck_assert_str_eq(json_str_at(reply, "response.uid"), "uid-1");
    ck_assert(json_bool_at(reply, "response.allowed", 0));
    ck_assert_str_eq(json_str_at(reply, "response.patchType"), "JSONPatch");
    const char *b64 = json_str_at(reply, "response.patch");
    size_t n = strlen(b64);
    unsigned char *raw = malloc(n);
    int len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
    while (len > 0 && raw[len - 1] == '\0') len--;
    json_t *patch = json_loadb((const char *)raw, (size_t)len, 0, NULL);
    char err[128];
    ck_assert_int_eq(jp_apply(p, patch, err, sizeof err), 0);
    json_t *sc = json_array_get(json_at(p, "spec.initContainers"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(sc, "name")), INJECT_SIDECAR_NAME);
    ck_assert_str_eq(json_string_value(json_object_get(sc, "restartPolicy")), "Always");
    double after = metric_value(metrics_counter("agentmesh_sidecar_injections_total", "", "result,reason"),
                                "injected", "");
    ck_assert(after == before + 1);
    free(raw);
    json_decref(patch);
    json_decref(reply);
    json_decref(p);
    free(body);
}
END_TEST

/* Not opted in: no identity lookup at all, allowed without a patch. */
START_TEST(mutate_skips_without_lookup) {
    int calls = identity_calls;
    char *body = review("Pod", "", "CREATE", "other", pod(), NULL);
    json_t *reply;
    ck_assert_int_eq(post(WEBHOOK_MUTATE_PATH, body, strlen(body), &reply), 200);
    ck_assert(json_bool_at(reply, "response.allowed", 0));
    ck_assert_ptr_null(json_at(reply, "response.patch"));
    ck_assert_int_eq(identity_calls, calls);
    json_decref(reply);
    free(body);
}
END_TEST

START_TEST(mutate_no_identity_warns) {
    json_t *p = pod();
    json_object_set_new(json_object_get(p, "spec"), "serviceAccountName", json_string("ghost"));
    char *body = review("Pod", "", "CREATE", "team-a", p, NULL);
    json_t *reply;
    ck_assert_int_eq(post(WEBHOOK_MUTATE_PATH, body, strlen(body), &reply), 200);
    ck_assert(json_bool_at(reply, "response.allowed", 0));
    ck_assert_ptr_null(json_at(reply, "response.patch"));
    const char *w = json_string_value(json_array_get(json_at(reply, "response.warnings"), 0));
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_nonnull(strstr(w, "ghost"));
    json_decref(reply);
    free(body);
}
END_TEST

START_TEST(malformed_is_400) {
    struct metric *req = metrics_counter("controller_runtime_webhook_requests_total", "", "webhook,code");
    double before = metric_value(req, WEBHOOK_MUTATE_PATH, "400");
    json_t *reply;
    ck_assert_int_eq(post(WEBHOOK_MUTATE_PATH, "{\"apiVersion\":", 14, &reply), 400);
    ck_assert_ptr_nonnull(strstr(json_str_at(reply, "message"), "invalid JSON"));
    json_decref(reply);
    ck_assert(metric_value(req, WEBHOOK_MUTATE_PATH, "400") == before + 1);

    /* Just over the decoder's limit: still a 400 with the reason. */
    size_t n = ADMISSION_MAX_BYTES + 1;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[n] = '\0';
    ck_assert_int_eq(post(WEBHOOK_VALIDATE_PATH, big, n, &reply), 400);
    ck_assert_ptr_nonnull(strstr(json_str_at(reply, "message"), "larger than 3 MiB"));
    json_decref(reply);
    free(big);
}
END_TEST

START_TEST(validate_denies_with_field) {
    json_t *agent = json_pack("{s:{s:s}, s:{s:s}}", "metadata", "name", "alpha", "spec", "sponsor",
                              "not-an-email");
    char *body = review("AgentIdentity", "agentmesh.io", "CREATE", "team-a", agent, NULL);
    json_t *reply;
    ck_assert_int_eq(post(WEBHOOK_VALIDATE_PATH, body, strlen(body), &reply), 200);
    ck_assert(!json_bool_at(reply, "response.allowed", 1));
    ck_assert_int_eq(json_int_at(reply, "response.status.code", 0), 403);
    ck_assert_ptr_nonnull(strstr(json_str_at(reply, "response.status.message"), "spec.sponsor"));
    json_decref(reply);
    free(body);

    agent = json_pack("{s:{s:s}, s:{s:s}}", "metadata", "name", "alpha", "spec", "sponsor",
                      "alice@example.com");
    body = review("AgentIdentity", "agentmesh.io", "CREATE", "team-a", agent, NULL);
    ck_assert_int_eq(post(WEBHOOK_VALIDATE_PATH, body, strlen(body), &reply), 200);
    ck_assert(json_bool_at(reply, "response.allowed", 0));
    json_decref(reply);
    free(body);
}
END_TEST

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    Suite *s = suite_create("webhook_server");
    TCase *tc = tcase_create("https");
    tcase_add_unchecked_fixture(tc, start, stop);
    tcase_add_test(tc, mutate_injects);
    tcase_add_test(tc, mutate_skips_without_lookup);
    tcase_add_test(tc, mutate_no_identity_warns);
    tcase_add_test(tc, malformed_is_400);
    tcase_add_test(tc, validate_denies_with_field);
    suite_add_tcase(s, tc);
    int rc = check_run(s, CK_NOFORK);
    curl_global_cleanup();
    return rc;
}
