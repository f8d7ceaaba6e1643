/* webhook_server.c (bench) — the admission webhooks alone, for load tests and e2e.
 *
 *   bench_webhook_server --port 9443 --ca-out /tmp/ca.pem [--threads 2]
 *                        [--api-minor 29] [--kubeconfig FILE] [--sched-slice-us 100]
 *
 * Generates a CA and a serving certificate for 127.0.0.1/localhost (certs.c),
 * writes the CA to --ca-out (for wrk/curl, or a caBundle), and serves
 * /mutate-pods and /validate-agentmesh over TLS until SIGINT/SIGTERM.
 * Without --kubeconfig every pod finds the same AgentIdentity "alpha" (AWS
 * with injectToken, so each request builds the biggest patch) and every
 * namespace is opted in; with it, lookups go to the API server
 * (api_lookup.c). --sched-slice-us is the controller's flag of that name
 * (the listener threads' scheduler slice, default 100 like the controller;
 * 0 = the kernel's), so the bench measures what the product does. Prints
 * "ready <port>" on stdout once listening. */
#include "common/httpd.h"
#include "common/log.h"
#include "common/sched_slice.h"
#include "common/tls.h"
#include "controller/kube_client.h"
#include "webhook/api_lookup.h"
#include "webhook/certs.h"
#include "webhook/webhook_server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Like the controller's lookups, which hand out references to what their
 * informer caches hold, these allocate nothing per request. */
static json_t *fixed_identity, *fixed_labels;

static json_t *bench_identity(const char *ns, const char *key, int by_sa, void *arg) {
    return json_incref(fixed_identity);
}

static json_t *bench_labels(const char *ns, void *arg) {
    return json_incref(fixed_labels);
}

struct args {
    int port, threads, api_minor, slice_us;
    const char *ca_out, *kubeconfig;
};

static int parse_args(int argc, char **argv, struct args *a) {
    *a = (struct args){.port = 9443, .threads = 1, .api_minor = 29, .slice_us = 100};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0) a->port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0) a->threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--api-minor") == 0) a->api_minor = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--ca-out") == 0) a->ca_out = argv[i + 1];
        else if (strcmp(argv[i], "--kubeconfig") == 0) a->kubeconfig = argv[i + 1];
        else if (strcmp(argv[i], "--sched-slice-us") == 0) a->slice_us = atoi(argv[i + 1]);
        else return -1;
    }
    int slice_ok = a->slice_us == 0 || (a->slice_us >= SCHED_SLICE_MIN_US && a->slice_us <= SCHED_SLICE_MAX_US);
    return a->ca_out && slice_ok && (argc % 2) == 1 ? 0 : -1;
}

/* Fresh PKI; the CA goes to `ca_out`, the serving pair into an SSL_CTX. */
static SSL_CTX *make_tls(const char *ca_out) {
    struct cert_pair ca, srv;
    char err[256];
    const char *dns[] = {"localhost"}, *ips[] = {"127.0.0.1"};
    if (certs_make_ca("agentmesh-bench-ca", CERTS_CA_VALIDITY, &ca, err, sizeof err) != 0 ||
        certs_make_serving(&ca, dns, 1, ips, 1, CERTS_SERVING_VALIDITY, &srv, err, sizeof err) != 0) {
        log_error("bench", "certificates: %s", err);
        return NULL;
    }
    FILE *f = fopen(ca_out, "w");
    int ok = f && fputs(ca.cert_pem, f) >= 0;
    if (f && fclose(f) != 0) ok = 0;
    SSL_CTX *ctx = ok ? tls_server_ctx_from_pem(srv.cert_pem, strlen(srv.cert_pem), srv.key_pem,
                                                strlen(srv.key_pem), err, sizeof err)
                      : NULL;
    if (!ok) log_error("bench", "cannot write %s", ca_out);
    else if (!ctx) log_error("bench", "TLS: %s", err);
    certs_pair_free(&ca);
    certs_pair_free(&srv);
    return ctx;
}

static struct kube_client *connect_api(const char *kubeconfig) {
    struct kube_config kc = {0};
    char err[512];
    struct kube_client *c = NULL;
    if (kube_config_load_file(kubeconfig, NULL, &kc, err, sizeof err) == 0)
        c = kube_client_new(&kc, err, sizeof err);
    if (!c) log_error("bench", "kubeconfig %s: %s", kubeconfig, err);
    kube_config_free(&kc);
    return c;
}

int main(int argc, char **argv) {
    struct args a;
    if (parse_args(argc, argv, &a) != 0) {
        fprintf(stderr, "usage: %s --ca-out FILE [--port N] [--threads N] [--api-minor N] "
                        "[--kubeconfig FILE] [--sched-slice-us 0|%d..%d]\n", argv[0], SCHED_SLICE_MIN_US,
                SCHED_SLICE_MAX_US);
        return 2;
    }
    fixed_identity = json_loads(
        "{\"metadata\":{\"name\":\"alpha\"},\"spec\":{\"sponsor\":\"alice@example.com\","
        "\"cloud\":{\"aws\":{\"roleArn\":\"arn:aws:iam::123456789012:role/agent-alpha\","
        "\"stsRegionalEndpoints\":true,\"injectToken\":true}}},"
        "\"status\":{\"did\":\"did:mesh:00112233445566778899aabbccddeeff\"}}", 0, NULL);
    fixed_labels = json_pack("{s:s}", "agentmesh.io/inject", "enabled");
    struct kube_client *kube = a.kubeconfig ? connect_api(a.kubeconfig) : NULL;
    SSL_CTX *ctx = make_tls(a.ca_out);
    if (!fixed_identity || !fixed_labels || (a.kubeconfig && !kube) || !ctx) return 1;

    signal(SIGPIPE, SIG_IGN);   /* a client closing mid-reply must not kill us */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);   /* the loops inherit the mask */

    struct httpd_options o = {.name = "webhook", .address = "127.0.0.1", .port = a.port,
                              .threads = a.threads, .max_body = WEBHOOK_MAX_BODY, .tls = 1,
                              .timeout_seconds = 10, .sched_slice_us = a.slice_us};
    struct webhook_config cfg = {
        .inject = {.api_minor = a.api_minor, .operator_namespace = "agentmesh-system",
                   .sidecar_image = "ghcr.io/agentmesh/agentmesh-sidecar:0.1.0",
                   .controller_url = "https://agentmesh-controller.agentmesh-system.svc:8080"},
        .identity = kube ? api_lookup_identity : bench_identity, .identity_arg = kube,
        .ns_labels = kube ? api_lookup_ns_labels : bench_labels, .ns_labels_arg = kube};
    struct httpd *h = httpd_new(&o);
    struct webhook *w = h ? webhook_register(h, &cfg) : NULL;
    char err[256] = "";
    int rc = 1;
    if (w && httpd_set_tls(h, ctx) == 0 && httpd_start(h, err, sizeof err) == 0) {
        printf("ready %d\n", httpd_port(h));
        fflush(stdout);
        int sig;
        sigwait(&stop, &sig);
        rc = 0;
    } else {
        log_error("bench", "webhook server: %s", err[0] ? err : "setup failed");
    }
    httpd_free(h);
    webhook_free(w);
    SSL_CTX_free(ctx);
    kube_client_free(kube);
    json_decref(fixed_identity);
    json_decref(fixed_labels);
    return rc;
}
