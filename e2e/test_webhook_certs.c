/* test_webhook_certs.c — self-managed webhook certificates against the real
 * API server (hack/kube-up.sh; admin kubeconfig in $AGENTMESH_CLUSTER_DIR).
 *
 * In-process "replicas": each is an httpd on 127.0.0.1:0 with the admission
 * routes (webhook_register, lookups that always find one AgentIdentity) and
 * a cert_manager in self-managed mode that starts the httpd from on_certificate.
 * The test registers its own Mutating/ValidatingWebhookConfiguration (by
 * URL, no caBundle: the manager must patch it in), selecting only its own
 * namespace, and then checks:
 *   - the Secret is created (kubernetes.io/tls, four keys, pair signed by
 *     the CA), caBundle lands in both configurations (and comes back after
 *     being wiped), pods are injected and a bad TrustPolicy is rejected
 *     through TLS, a second replica adopts the Secret instead of writing
 *     one, and two replicas starting at once on an empty namespace end up
 *     serving the same certificate;
 *   - with a 20 s certificate renewed 10 s before expiry, pods and
 *     TrustPolicies are created in a loop across two renewals and every
 *     create succeeds (mutating webhook on one replica, validating on the
 *     other, so a renewal by one is picked up by the other), the expiry
 *     gauge moves forward;
 *   - with a 45 s CA the CA itself rotates under the same load: the bundle
 *     holds old + new CA and no create fails. */
#include "common/test/check_run.h"
#include "webhook/cert_manager.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/metrics.h"
#include "webhook/certs.h"
#include "webhook/webhook_server.h"
#include "e2e/kube_fixture.h"

static long run_id;
static char ns[64];              /* per test: namespace and webhook configuration name */

static const struct kube_gvr namespaces = {"", "v1", "namespaces", 0};
static const struct kube_gvr secrets = {"", "v1", "secrets", 1};
static const struct kube_gvr serviceaccounts = {"", "v1", "serviceaccounts", 1};
static const struct kube_gvr pods = {"", "v1", "pods", 1};
static const struct kube_gvr trustpolicies = {"agentmesh.io", "v1alpha1", "trustpolicies", 1};
static const struct kube_gvr mutating = {"admissionregistration.k8s.io", "v1",
                                         "mutatingwebhookconfigurations", 0};
static const struct kube_gvr validating = {"admissionregistration.k8s.io", "v1",
                                           "validatingwebhookconfigurations", 0};

/* ---- cluster plumbing ---- */

static void delete_quietly(struct kube_client *c, const struct kube_gvr *gvr, const char *nsn,
                           const char *name) {
    struct kube_result r;
    kube_delete(c, gvr, nsn, name, "Background", &r);
    kube_result_free(&r);
}

/* Webhook configurations first (they have failurePolicy Fail), then the namespace. */
static void delete_test_objects(struct kube_client *c, const char *name) {
    delete_quietly(c, &mutating, NULL, name);
    delete_quietly(c, &validating, NULL, name);
    delete_quietly(c, &namespaces, NULL, name);
}

static void test_name(const char *suffix) {
    snprintf(ns, sizeof ns, "e2e-certs-%ld-%s", run_id, suffix);
}

/* The test namespace, labelled for the webhooks, with its default ServiceAccount. */
static void make_namespace(void) {
    struct kube_result r;
    json_t *o = json_pack("{s:s, s:s, s:{s:s, s:{s:s}}}", "apiVersion", "v1", "kind", "Namespace",
                          "metadata", "name", ns, "labels", "e2e-certs", ns);
    OK(kube_create(kc, &namespaces, NULL, o, &r), &r);
    kube_result_free(&r);
    json_decref(o);
    for (int i = 0; i < 60; i++) {   /* kube-controller-manager creates it */
        int rc = kube_get(kc, &serviceaccounts, ns, "default", NULL, &r);
        kube_result_free(&r);
        if (rc == 0) return;
        usleep(500 * 1000);
    }
    ck_abort_msg("ServiceAccount %s/default never appeared", ns);
}

/* Both configurations, by URL and without caBundle, selecting only our namespace. */
static void make_webhook_configs(int mutate_port, int validate_port) {
    char url[128];
    struct kube_result r;
    snprintf(url, sizeof url, "https://127.0.0.1:%d%s", mutate_port, WEBHOOK_MUTATE_PATH);
    json_t *m = json_pack(
        "{s:s, s:s, s:{s:s}, s:[{s:s, s:[s], s:s, s:i, s:s, s:s, s:{s:s}, s:{s:{s:s}},"
        " s:[{s:[s], s:[s], s:[s], s:[s]}]}]}",
        "apiVersion", "admissionregistration.k8s.io/v1", "kind", "MutatingWebhookConfiguration",
        "metadata", "name", ns, "webhooks", "name", "inject.agentmesh.io",
        "admissionReviewVersions", "v1", "sideEffects", "None", "timeoutSeconds", 5,
        "failurePolicy", "Fail", "reinvocationPolicy", "IfNeeded", "clientConfig", "url", url,
        "namespaceSelector", "matchLabels", "e2e-certs", ns, "rules", "apiGroups", "",
        "apiVersions", "v1", "operations", "CREATE", "resources", "pods");
    ck_assert_ptr_nonnull(m);
    OK(kube_create(kc, &mutating, NULL, m, &r), &r);
    kube_result_free(&r);
    json_decref(m);
    snprintf(url, sizeof url, "https://127.0.0.1:%d%s", validate_port, WEBHOOK_VALIDATE_PATH);
    json_t *v = json_pack(
        "{s:s, s:s, s:{s:s}, s:[{s:s, s:[s], s:s, s:i, s:s, s:{s:s}, s:{s:{s:s}},"
        " s:[{s:[s], s:[s], s:[s, s], s:[s]}]}]}",
        "apiVersion", "admissionregistration.k8s.io/v1", "kind", "ValidatingWebhookConfiguration",
        "metadata", "name", ns, "webhooks", "name", "validate.agentmesh.io",
        "admissionReviewVersions", "v1", "sideEffects", "None", "timeoutSeconds", 5,
        "failurePolicy", "Fail", "clientConfig", "url", url, "namespaceSelector", "matchLabels",
        "e2e-certs", ns, "rules", "apiGroups", "agentmesh.io", "apiVersions", "v1alpha1",
        "operations", "CREATE", "UPDATE", "resources", "trustpolicies");
    ck_assert_ptr_nonnull(v);
    OK(kube_create(kc, &validating, NULL, v, &r), &r);
    kube_result_free(&r);
    json_decref(v);
}

/* ---- replicas ---- */

static json_t *fixed_identity;

static json_t *any_identity(const char *nsn, const char *key, int by_sa, void *arg) {
    return json_incref(fixed_identity);
}

static json_t *opted_in(const char *nsn, void *arg) {
    return json_pack("{s:s}", "agentmesh.io/inject", "enabled");
}

struct replica {
    struct httpd *h;
    struct webhook *w;
    struct cert_manager *cm;
    int started;   /* 1 once on_certificate started the httpd, -1 if that failed */
};

static void start_listener(SSL_CTX *ctx, int first, void *arg) {
    struct replica *r = arg;
    if (!first) return;
    char err[256];
    int rc = httpd_start(r->h, err, sizeof err);
    if (rc != 0) fprintf(stderr, "httpd_start: %s\n", err);
    __atomic_store_n(&r->started, rc == 0 ? 1 : -1, __ATOMIC_SEQ_CST);
}

struct validity {
    long ca, cert, renew;
};

static void replica_start(struct replica *r, const char *secret, struct validity v) {
    static const struct webhook_config cfg = {
        .inject = {.api_minor = 20, .operator_namespace = "agentmesh-system",
                   .sidecar_image = "ghcr.io/agentmesh/agentmesh-sidecar:0.1.0",
                   .controller_url = "https://agentmesh-controller.agentmesh-system.svc:8080"},
        .identity = any_identity, .ns_labels = opted_in};
    struct httpd_options ho = {.name = "webhook", .address = "127.0.0.1", .threads = 2,
                               .max_body = WEBHOOK_MAX_BODY, .tls = 1, .timeout_seconds = 10};
    memset(r, 0, sizeof *r);
    r->h = httpd_new(&ho);
    ck_assert_ptr_nonnull(r->h);
    r->w = webhook_register(r->h, &cfg);
    ck_assert_ptr_nonnull(r->w);
    struct httpd *servers[] = {r->h};
    const char *ips[] = {"127.0.0.1"};
    struct cert_manager_options o = {
        .client = kc, .namespace = ns, .secret_name = secret, .mutating_webhook = ns,
        .validating_webhook = ns, .servers = servers, .nservers = 1, .ip_sans = ips,
        .nip_sans = 1, .ca_validity_seconds = v.ca, .cert_validity_seconds = v.cert,
        .renew_before_seconds = v.renew, .check_interval_seconds = 1,
        .on_certificate = start_listener, .on_certificate_arg = r};
    char err[256] = "";
    r->cm = cert_manager_start(&o, err, sizeof err);
    ck_assert_msg(r->cm != NULL, "%s", err);
    char why[256] = "";
    ck_assert_msg(cert_manager_ready(r->cm, why, sizeof why), "not ready: %s", why);
    ck_assert_int_eq(__atomic_load_n(&r->started, __ATOMIC_SEQ_CST), 1);
}

static void replica_stop(struct replica *r) {
    cert_manager_stop(r->cm);
    httpd_free(r->h);
    webhook_free(r->w);
}

/* ---- certificates as served and as stored ---- */

/* The certificate a fresh TLS connection to `port` is served (not verified: compared). */
static X509 *served(int port) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    ck_assert_int_eq(SSL_connect(ssl), 1);
    X509 *peer = SSL_get1_peer_certificate(ssl);
    ck_assert_ptr_nonnull(peer);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
    SSL_CTX_free(ctx);
    return peer;
}

static int serves_pem(int port, const char *pem) {
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *want = PEM_read_bio_X509(b, NULL, NULL, NULL), *got = served(port);
    int same = want && X509_cmp(want, got) == 0;
    X509_free(want);
    X509_free(got);
    BIO_free(b);
    return same;
}

/* data[key] of the Secret, decoded (caller frees); the Secret's resourceVersion into rv. */
static char *secret_pem(const char *secret, const char *key, char *rv, size_t rvlen) {
    struct kube_result r;
    OK(kube_get(kc, &secrets, ns, secret, NULL, &r), &r);
    const char *b64 = json_string_value(json_object_get(json_object_get(r.body, "data"), key));
    ck_assert_msg(b64 != NULL, "Secret %s has no data[%s]", secret, key);
    size_t n = strlen(b64);
    char *out = calloc(1, n / 4 * 3 + 1);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_ge(EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)b64, (int)n), 0);
    if (rv) snprintf(rv, rvlen, "%s", json_str_at(r.body, "metadata.resourceVersion"));
    kube_result_free(&r);
    return out;
}

static int count_certs(const char *pem) {
    int n = 0;
    for (const char *p = pem; (p = strstr(p, "-----BEGIN CERTIFICATE-----")) != NULL; p++) n++;
    return n;
}

/* 1 when every webhook of configuration `gvr` carries caBundle == base64(ca_pem). */
static int bundle_is(const struct kube_gvr *gvr, const char *ca_pem) {
    size_t n = strlen(ca_pem);
    char *want = malloc(4 * ((n + 2) / 3) + 1);
    ck_assert_ptr_nonnull(want);
    EVP_EncodeBlock((unsigned char *)want, (const unsigned char *)ca_pem, (int)n);
    struct kube_result r;
    OK(kube_get(kc, gvr, NULL, ns, NULL, &r), &r);
    size_t i;
    json_t *w;
    int all = json_array_size(json_object_get(r.body, "webhooks")) > 0;
    json_array_foreach(json_object_get(r.body, "webhooks"), i, w) {
        const char *have = json_str_at(w, "clientConfig.caBundle");
        all = all && have && strcmp(have, want) == 0;
    }
    kube_result_free(&r);
    free(want);
    return all;
}

static int eventually_bundle_is(const char *ca_pem) {
    for (int i = 0; i < 40; i++) {
        if (bundle_is(&mutating, ca_pem) && bundle_is(&validating, ca_pem)) return 1;
        usleep(250 * 1000);
    }
    return 0;
}

/* ---- admission through the webhooks ---- */

/* Creates a pod; 0 when the API server stored it with the sidecar injected. */
static int create_pod(const char *name, char *why, size_t whylen) {
    json_t *pod = json_pack("{s:s, s:s, s:{s:s}, s:{s:b, s:[{s:s, s:s}]}}", "apiVersion", "v1",
                            "kind", "Pod", "metadata", "name", name, "spec",
                            "automountServiceAccountToken", 0, "containers", "name", "app",
                            "image", "busybox");
    struct kube_result r;
    int rc = kube_create(kc, &pods, ns, pod, &r);
    json_decref(pod);
    if (rc != 0) {
        snprintf(why, whylen, "pod %s: %d %s: %s", name, r.status, r.reason, r.message);
    } else {
        rc = -1;
        size_t i;
        json_t *c;
        json_array_foreach(json_at(r.body, "spec.containers"), i, c) {
            const char *cn = json_str_at(c, "name");
            if (cn && strcmp(cn, "agentmesh-sidecar") == 0) rc = 0;
        }
        if (rc != 0) snprintf(why, whylen, "pod %s stored without the sidecar", name);
    }
    kube_result_free(&r);
    return rc;
}

/* Creates a TrustPolicy; 0 when admitted, else the API's message in why. */
static int create_policy(const char *name, int quarantine, int revoke, char *why, size_t whylen) {
    json_t *tp = json_pack("{s:s, s:s, s:{s:s}, s:{s:i, s:i}}", "apiVersion",
                           "agentmesh.io/v1alpha1", "kind", "TrustPolicy", "metadata", "name",
                           name, "spec", "quarantineBelow", quarantine, "revokeBelow", revoke);
    struct kube_result r;
    int rc = kube_create(kc, &trustpolicies, ns, tp, &r);
    json_decref(tp);
    if (rc != 0) snprintf(why, whylen, "TrustPolicy %s: %d %s: %s", name, r.status, r.reason,
                          r.message);
    kube_result_free(&r);
    return rc;
}

static double expiry_gauge(void) {
    return metric_value(metrics_gauge("agentmesh_webhook_certificate_expiry_timestamp_seconds",
                                      "", NULL));
}

/* ---- fixtures ---- */

/* client_up's other half, after removing what the test made (once it has named it). */
static void objects_and_client_down(void) {
    if (ns[0]) delete_test_objects(kc, ns);
    client_down();
}

/* ---- tests ---- */

START_TEST(creates_secret_patches_bundles_and_admits) {
    test_name("setup");
    make_namespace();
    struct validity v = {0, 0, 0};   /* the defaults: 10 y CA, 1 y certificate */
    struct replica a;
    replica_start(&a, NULL, v);
    time_t now = time(NULL);

    char rv[64], rv_after[64];
    char *ca = secret_pem(CERT_MANAGER_SECRET, "ca.crt", rv, sizeof rv);
    char *ca_key = secret_pem(CERT_MANAGER_SECRET, "ca.key", NULL, 0);
    char *crt = secret_pem(CERT_MANAGER_SECRET, "tls.crt", NULL, 0);
    char *key = secret_pem(CERT_MANAGER_SECRET, "tls.key", NULL, 0);
    struct kube_result r;
    OK(kube_get(kc, &secrets, ns, CERT_MANAGER_SECRET, NULL, &r), &r);
    ck_assert_str_eq(json_str_at(r.body, "type"), "kubernetes.io/tls");
    kube_result_free(&r);
    char err[256];
    struct cert_pair pair = {crt, key}, capair = {ca, ca_key};
    ck_assert_msg(certs_check(&pair, ca, now, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(certs_check(&capair, ca, now, err, sizeof err) == 0, "CA: %s", err);
    time_t crt_na, ca_na;
    ck_assert_int_eq(certs_not_after(crt, &crt_na), 0);
    ck_assert_int_eq(certs_not_after(ca, &ca_na), 0);
    ck_assert_msg(labs((long)(crt_na - now) - CERTS_SERVING_VALIDITY) < 120, "cert notAfter %ld", (long)crt_na);
    ck_assert_msg(labs((long)(ca_na - now) - CERTS_CA_VALIDITY) < 120, "CA notAfter %ld", (long)ca_na);
    ck_assert_int_eq(cert_manager_not_after(a.cm), (long long)crt_na);
    ck_assert(expiry_gauge() == (double)crt_na);
    ck_assert(serves_pem(httpd_port(a.h), crt));

    /* Configurations created after the manager started: patched on a later check. */
    make_webhook_configs(httpd_port(a.h), httpd_port(a.h));
    ck_assert_msg(eventually_bundle_is(ca), "caBundle not patched into both configurations");
    ck_assert_msg(create_pod("first", err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(create_policy("bad", 300, 400, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "spec.revokeBelow") != NULL, "not the validator's answer: %s", err);
    ck_assert_msg(create_policy("good", 300, 100, err, sizeof err) == 0, "%s", err);

    /* Re-applying the manifests wipes caBundle: it comes back. */
    json_t *wipe = json_loads("[{\"op\":\"remove\",\"path\":\"/webhooks/0/clientConfig/caBundle\"}]",
                              0, NULL);
    ck_assert_ptr_nonnull(wipe);
    OK(kube_patch(kc, &mutating, NULL, ns, NULL, KUBE_PATCH_JSON, wipe, NULL, 0, &r), &r);
    ck_assert_ptr_null(json_object_get(json_at(json_array_get(json_object_get(r.body, "webhooks"), 0),
                                               "clientConfig"), "caBundle"));
    kube_result_free(&r);
    json_decref(wipe);
    ck_assert_msg(eventually_bundle_is(ca), "caBundle not restored");

    /* A second replica adopts the Secret: nothing written, same certificate served. */
    struct replica b;
    replica_start(&b, NULL, v);
    char *crt2 = secret_pem(CERT_MANAGER_SECRET, "tls.crt", rv_after, sizeof rv_after);
    ck_assert_str_eq(rv_after, rv);
    ck_assert_str_eq(crt2, crt);
    ck_assert(serves_pem(httpd_port(b.h), crt));

    replica_stop(&b);
    replica_stop(&a);
    free(crt2);
    certs_pair_free(&pair);
    certs_pair_free(&capair);
}
END_TEST

struct racer {
    struct replica r;
    pthread_barrier_t *go;
};

/* Check's assertions are for the main thread: a racer only reports. */
static void *race_start(void *arg) {
    struct racer *x = arg;
    static const struct webhook_config cfg = {.identity = any_identity, .ns_labels = opted_in};
    struct httpd_options ho = {.name = "webhook", .address = "127.0.0.1", .tls = 1};
    x->r.h = httpd_new(&ho);
    x->r.w = x->r.h ? webhook_register(x->r.h, &cfg) : NULL;
    struct httpd *servers[] = {x->r.h};
    const char *ips[] = {"127.0.0.1"};
    struct cert_manager_options o = {.client = kc, .namespace = ns, .servers = servers,
                                     .nservers = 1, .ip_sans = ips, .nip_sans = 1,
                                     .mutating_webhook = "", .validating_webhook = "",
                                     .check_interval_seconds = 1, .on_certificate = start_listener,
                                     .on_certificate_arg = &x->r};
    char err[256];
    pthread_barrier_wait(x->go);
    x->r.cm = x->r.w ? cert_manager_start(&o, err, sizeof err) : NULL;
    return NULL;
}

/* Two replicas on an empty namespace at the same instant: one creates the
 * Secret, the other gets AlreadyExists and serves what the first wrote. */
START_TEST(racing_replicas_share_one_certificate) {
    test_name("race");
    make_namespace();
    struct racer x[2];
    pthread_t t[2];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    memset(x, 0, sizeof x);
    for (int i = 0; i < 2; i++) {
        x[i].go = &go;
        ck_assert_int_eq(pthread_create(&t[i], NULL, race_start, &x[i]), 0);
    }
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
    char *crt = secret_pem(CERT_MANAGER_SECRET, "tls.crt", NULL, 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_ptr_nonnull(x[i].r.cm);
        ck_assert_int_eq(x[i].r.started, 1);
        ck_assert_msg(serves_pem(httpd_port(x[i].r.h), crt), "replica %d serves its own certificate", i);
        replica_stop(&x[i].r);
    }
    free(crt);
}
END_TEST

/* Pods (mutating → replica a) and TrustPolicies (validating → replica b)
 * created back to back for `seconds`; every create must succeed. Returns
 * how many distinct notAfter values each replica went through. */
static void load_across_renewals(struct replica *a, struct replica *b, int seconds, int *dist_a,
                                 int *dist_b) {
    long long last_a = 0, last_b = 0;
    int creates = 0, failures = 0;
    char err[512], first_failure[512] = "";
    *dist_a = *dist_b = 0;
    time_t end = time(NULL) + seconds;
    for (int i = 0; time(NULL) < end; i++) {
        char name[32];
        snprintf(name, sizeof name, "p%d", i);
        int rc = i % 2 ? create_policy(name, 300, 100, err, sizeof err)
                       : create_pod(name, err, sizeof err);
        creates++;
        if (rc != 0 && failures++ == 0) snprintf(first_failure, sizeof first_failure, "%s", err);
        long long na = cert_manager_not_after(a->cm), nb = cert_manager_not_after(b->cm);
        if (na != last_a) (*dist_a)++;
        if (nb != last_b) (*dist_b)++;
        last_a = na;
        last_b = nb;
        usleep(50 * 1000);
    }
    fprintf(stderr, "%d creates, %d failed; replica a used %d certificates, b %d\n", creates,
            failures, *dist_a, *dist_b);
    ck_assert_msg(failures == 0, "%d of %d creates failed, first: %s", failures, creates,
                  first_failure);
    ck_assert_int_ge(creates, 100);
}

START_TEST(renewal_while_pods_are_created) {
    test_name("renew");
    make_namespace();
    struct validity v = {0, 20, 10};
    struct replica a, b;
    replica_start(&a, "renew-tls", v);
    replica_start(&b, "renew-tls", v);
    make_webhook_configs(httpd_port(a.h), httpd_port(b.h));
    char *ca = secret_pem("renew-tls", "ca.crt", NULL, 0);
    ck_assert(eventually_bundle_is(ca));
    long long first = cert_manager_not_after(a.cm);
    double gauge_first = expiry_gauge();

    int dist_a, dist_b;
    load_across_renewals(&a, &b, 32, &dist_a, &dist_b);
    ck_assert_msg(dist_a >= 3 && dist_b >= 3, "renewals seen: a %d, b %d", dist_a, dist_b);
    ck_assert_int_gt(cert_manager_not_after(a.cm), first + 15);
    ck_assert(expiry_gauge() > gauge_first + 15);
    /* Same CA throughout: renewing the serving certificate keeps the bundle. */
    char *ca_now = secret_pem("renew-tls", "ca.crt", NULL, 0);
    ck_assert_str_eq(ca_now, ca);
    ck_assert(bundle_is(&mutating, ca));
    replica_stop(&b);
    replica_stop(&a);
    free(ca);
    free(ca_now);
}
END_TEST

START_TEST(ca_rotation_while_pods_are_created) {
    test_name("carot");
    make_namespace();
    struct validity v = {45, 20, 10};   /* the CA is due 30 s before expiry: every ~15 s */
    struct replica a, b;
    replica_start(&a, "rotate-tls", v);
    replica_start(&b, "rotate-tls", v);
    make_webhook_configs(httpd_port(a.h), httpd_port(b.h));
    char *ca = secret_pem("rotate-tls", "ca.crt", NULL, 0);
    ck_assert(eventually_bundle_is(ca));
    time_t ca_na;
    ck_assert_int_eq(certs_not_after(ca, &ca_na), 0);

    int dist_a, dist_b;
    load_across_renewals(&a, &b, 34, &dist_a, &dist_b);
    ck_assert_msg(dist_a >= 3 && dist_b >= 3, "renewals seen: a %d, b %d", dist_a, dist_b);
    char *ca_now = secret_pem("rotate-tls", "ca.crt", NULL, 0);
    time_t ca_now_na;
    ck_assert_int_eq(certs_not_after(ca_now, &ca_now_na), 0);
    ck_assert_msg(ca_now_na > ca_na, "the CA was not renewed");
    ck_assert_msg(count_certs(ca_now) >= 2, "bundle lacks the previous CA:\n%s", ca_now);
    ck_assert(eventually_bundle_is(ca_now));
    replica_stop(&b);
    replica_stop(&a);
    free(ca);
    free(ca_now);
}
END_TEST

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    set_kubeconfig();
    run_id = (long)getpid();
    if (apply_crds() != 0) return EXIT_FAILURE;
    fixed_identity = json_loads(
        "{\"metadata\":{\"name\":\"alpha\"},\"spec\":{\"sponsor\":\"alice@example.com\"},"
        "\"status\":{\"did\":\"did:mesh:00112233445566778899aabbccddeeff\"}}", 0, NULL);
    Suite *s = suite_create("webhook_certs_e2e");
    TCase *tc = tcase_create("self-managed");
    tcase_add_checked_fixture(tc, client_up, objects_and_client_down);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, creates_secret_patches_bundles_and_admits);
    tcase_add_test(tc, racing_replicas_share_one_certificate);
    tcase_add_test(tc, renewal_while_pods_are_created);
    tcase_add_test(tc, ca_rotation_while_pods_are_created);
    suite_add_tcase(s, tc);
    int rc = check_run(s, CK_FORK_GETENV);
    /* A failed test may have skipped its teardown: remove what any of them made. */
    char err[512];
    struct kube_client *c = connect_admin(err, sizeof err);
    const char *suffixes[] = {"setup", "race", "renew", "carot"};
    for (size_t i = 0; c && i < sizeof suffixes / sizeof suffixes[0]; i++) {
        test_name(suffixes[i]);
        delete_test_objects(c, ns);
    }
    kube_client_free(c);
    json_decref(fixed_identity);
    return rc;
}
