/* test_cert_manager.c — file mode of the certificate manager over real TLS.
 *
 * A temp dir holds tls.crt/tls.key; an httpd on 127.0.0.1:0 gets its
 * context from the manager; a fresh OpenSSL client connection reads the
 * peer certificate (verified against the test CA and the 127.0.0.1 SAN)
 * and compares it with what is on disk. Covers plain rewrites, the
 * Secret-volume `..data` symlink swap, a broken pair keeping the old one,
 * a directory that is empty at start, the expiry gauge and bad options.
 * Self-managed mode needs an API server: e2e/test_webhook_certs.c. */
#include "common/test/check_run.h"
#include "webhook/cert_manager.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/metrics.h"
#include "webhook/certs.h"

#define INTERVAL 0.1

static char dir[128];
static struct cert_pair ca;
static struct httpd *srv;
static int ready_calls, cert_calls;

/* Counts certificates handed out, and first ones; the context must be usable. */
static void on_certificate(SSL_CTX *ctx, int first, void *arg) {
    ck_assert_ptr_nonnull(SSL_CTX_get0_certificate(ctx));
    __atomic_add_fetch(&cert_calls, 1, __ATOMIC_SEQ_CST);
    if (first) __atomic_add_fetch(&ready_calls, 1, __ATOMIC_SEQ_CST);
}

static void run(const char *cmd) { ck_assert_msg(system(cmd) == 0, "%s", cmd); }

static void setup(void) {
    char err[256];
    snprintf(dir, sizeof dir, "/tmp/am-certmgr-%d-XXXXXX", (int)getpid());
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_msg(certs_make_ca("test-ca", 86400, &ca, err, sizeof err) == 0, "%s", err);
    struct httpd_options o = {.name = "webhook", .address = "127.0.0.1", .port = 0, .tls = 1};
    srv = httpd_new(&o);
    ck_assert_ptr_nonnull(srv);
    ready_calls = cert_calls = 0;
}

static void teardown(void) {
    httpd_free(srv);
    certs_pair_free(&ca);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    run(cmd);
}

/* A serving pair from the test CA, for 127.0.0.1, valid `validity` seconds. */
static struct cert_pair serving(long validity) {
    struct cert_pair p;
    char err[256];
    const char *dns[] = {"localhost"}, *ips[] = {"127.0.0.1"};
    ck_assert_msg(certs_make_serving(&ca, dns, 1, ips, 1, validity, &p, err, sizeof err) == 0,
                  "%s", err);
    return p;
}

/* Writes `text` to dir/sub/name atomically (temp file + rename). */
static void put(const char *sub, const char *name, const char *text) {
    char path[512], tmp[520];
    snprintf(path, sizeof path, "%s/%s%s%s", dir, sub, sub[0] ? "/" : "", name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(fputs(text, f), 0);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(rename(tmp, path), 0);
}

static void put_pair(const struct cert_pair *p) {
    put("", "tls.crt", p->cert_pem);
    put("", "tls.key", p->key_pem);
}

static struct cert_manager *start_files(void) {
    struct httpd *servers[] = {srv};
    struct cert_manager_options o = {.cert_dir = dir, .servers = servers, .nservers = 1,
                                     .check_interval_seconds = INTERVAL,
                                     .on_certificate = on_certificate};
    char err[256] = "";
    struct cert_manager *cm = cert_manager_start(&o, err, sizeof err);
    ck_assert_msg(cm != NULL, "%s", err);
    return cm;
}

static void start_httpd(void) {
    char err[256];
    ck_assert_msg(httpd_start(srv, err, sizeof err) == 0, "%s", err);
}

/* The certificate a fresh TLS connection is served, verified against the CA
 * and the 127.0.0.1 SAN (a wrong or unverifiable certificate fails the test). */
static X509 *served(void) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(ctx);
    BIO *b = BIO_new_mem_buf(ca.cert_pem, -1);
    X509 *cax = PEM_read_bio_X509(b, NULL, NULL, NULL);
    ck_assert_int_eq(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), cax), 1);
    X509_free(cax);
    BIO_free(b);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)httpd_port(srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    SSL *ssl = SSL_new(ctx);
    ck_assert_ptr_nonnull(ssl);
    ck_assert_int_eq(X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1"), 1);
    SSL_set_fd(ssl, fd);
    int rc = SSL_connect(ssl);
    ck_assert_msg(rc == 1, "TLS handshake failed: %s", ERR_error_string(ERR_get_error(), NULL));
    X509 *peer = SSL_get1_peer_certificate(ssl);
    ck_assert_ptr_nonnull(peer);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
    SSL_CTX_free(ctx);
    return peer;
}

/* 1 when a fresh connection is served `pem` (compared by serial and whole encoding). */
static int serves(const char *pem) {
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *want = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    ck_assert_ptr_nonnull(want);
    X509 *got = served();
    int same = ASN1_INTEGER_cmp(X509_get0_serialNumber(got), X509_get0_serialNumber(want)) == 0 &&
               X509_cmp(got, want) == 0;
    X509_free(got);
    X509_free(want);
    return same;
}

/* Polls for up to 5 s (50 check intervals). */
static int eventually_serves(const char *pem) {
    for (int i = 0; i < 100; i++) {
        if (serves(pem)) return 1;
        usleep(50 * 1000);
    }
    return 0;
}

static double expiry_gauge(void) {
    return metric_value(metrics_gauge("agentmesh_webhook_certificate_expiry_timestamp_seconds",
                                      "", NULL));
}

static time_t not_after(const char *pem) {
    time_t t;
    ck_assert_int_eq(certs_not_after(pem, &t), 0);
    return t;
}

START_TEST(loads_then_reloads_a_rewritten_pair) {
    struct cert_pair one = serving(3600), two = serving(7200);
    put_pair(&one);
    struct cert_manager *cm = start_files();
    ck_assert_int_eq(ready_calls, 1);   /* synchronously, before start returns */
    ck_assert_int_eq(cert_manager_ready(cm, NULL, 0), 1);
    start_httpd();
    ck_assert(serves(one.cert_pem));
    ck_assert_int_eq(cert_manager_not_after(cm), (long long)not_after(one.cert_pem));
    ck_assert(expiry_gauge() == (double)not_after(one.cert_pem));

    put_pair(&two);
    ck_assert_msg(eventually_serves(two.cert_pem), "new pair never served");
    ck_assert(expiry_gauge() == (double)not_after(two.cert_pem));
    ck_assert(expiry_gauge() > (double)not_after(one.cert_pem));
    ck_assert_int_eq(ready_calls, 1);   /* first once, not per reload */
    ck_assert_int_eq(cert_calls, 2);
    cert_manager_stop(cm);
    certs_pair_free(&one);
    certs_pair_free(&two);
}
END_TEST

START_TEST(broken_pair_keeps_the_old_one) {
    struct cert_pair one = serving(3600), two = serving(3600), three = serving(7200);
    put_pair(&one);
    struct cert_manager *cm = start_files();
    start_httpd();
    ck_assert(serves(one.cert_pem));

    put("", "tls.key", two.key_pem);   /* key of another certificate */
    usleep((useconds_t)(INTERVAL * 5 * 1e6));
    ck_assert(serves(one.cert_pem));
    ck_assert_int_eq(cert_manager_ready(cm, NULL, 0), 1);
    ck_assert(expiry_gauge() == (double)not_after(one.cert_pem));

    put("", "tls.crt", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    usleep((useconds_t)(INTERVAL * 5 * 1e6));
    ck_assert(serves(one.cert_pem));

    put_pair(&three);   /* a good pair again is picked up */
    ck_assert(eventually_serves(three.cert_pem));
    cert_manager_stop(cm);
    certs_pair_free(&one);
    certs_pair_free(&two);
    certs_pair_free(&three);
}
END_TEST

/* The kubelet's Secret-volume layout: tls.crt -> ..data/tls.crt, ..data ->
 * ..<timestamp>/, and an update swaps ..data atomically. */
START_TEST(secret_volume_symlink_swap) {
    struct cert_pair one = serving(3600), two = serving(7200);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd '%s' && mkdir ..v1 ..v2 && ln -s ..v1 ..data && "
                              "ln -s ..data/tls.crt tls.crt && ln -s ..data/tls.key tls.key", dir);
    run(cmd);
    put("..v1", "tls.crt", one.cert_pem);
    put("..v1", "tls.key", one.key_pem);
    put("..v2", "tls.crt", two.cert_pem);
    put("..v2", "tls.key", two.key_pem);
    struct cert_manager *cm = start_files();
    start_httpd();
    ck_assert(serves(one.cert_pem));
    snprintf(cmd, sizeof cmd, "cd '%s' && ln -s ..v2 ..data_tmp && mv -T ..data_tmp ..data", dir);
    run(cmd);
    ck_assert_msg(eventually_serves(two.cert_pem), "..data swap not noticed");
    cert_manager_stop(cm);
    certs_pair_free(&one);
    certs_pair_free(&two);
}
END_TEST

START_TEST(not_ready_until_files_appear) {
    struct cert_manager *cm = start_files();
    char why[256] = "";
    ck_assert_int_eq(cert_manager_ready(cm, why, sizeof why), 0);
    ck_assert_msg(strstr(why, "tls.crt") != NULL, "%s", why);
    ck_assert_int_eq(ready_calls, 0);
    ck_assert_int_eq(cert_manager_not_after(cm), 0);

    struct cert_pair one = serving(3600);
    put_pair(&one);
    for (int i = 0; i < 100 && __atomic_load_n(&ready_calls, __ATOMIC_SEQ_CST) == 0; i++)
        usleep(50 * 1000);
    ck_assert_int_eq(ready_calls, 1);   /* from the manager's thread */
    ck_assert_int_eq(cert_manager_ready(cm, why, sizeof why), 1);
    start_httpd();
    ck_assert(serves(one.cert_pem));
    cert_manager_stop(cm);
    certs_pair_free(&one);
}
END_TEST

START_TEST(expired_certificate_is_not_ready) {
    struct cert_pair old = serving(-10);   /* notAfter in the past */
    put_pair(&old);
    struct cert_manager *cm = start_files();
    char why[256] = "";
    ck_assert_int_eq(cert_manager_ready(cm, why, sizeof why), 0);
    ck_assert_msg(strstr(why, "expired") != NULL, "%s", why);
    cert_manager_stop(cm);
    certs_pair_free(&old);
}
END_TEST

START_TEST(bad_options_are_named) {
    struct httpd *servers[] = {srv};
    char err[256];
    struct {
        struct cert_manager_options o;
        const char *expect;
    } cases[] = {
        {{.servers = servers, .nservers = 1, .namespace = "ns"}, "Kubernetes client"},
        {{.cert_dir = "", .servers = servers, .nservers = 1}, "cert_dir"},
        {{.cert_dir = dir, .nservers = 1}, "servers"},
        {{.cert_dir = dir, .check_interval_seconds = -1}, "check interval"},
        {{.client = (struct kube_client *)1, .namespace = "ns", .cert_validity_seconds = 20,
          .renew_before_seconds = 30}, "exceed renew-before"},
        {{.client = (struct kube_client *)1, .namespace = "ns", .ca_validity_seconds = 25,
          .cert_validity_seconds = 20, .renew_before_seconds = 10}, "CA validity"},
        {{.client = (struct kube_client *)1}, "namespace"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        ck_assert_ptr_null(cert_manager_start(&cases[i].o, err, sizeof err));
        ck_assert_msg(strstr(err, cases[i].expect) != NULL, "case %zu: %s", i, err);
    }
}
END_TEST

int main(void) {
    signal(SIGPIPE, SIG_IGN);   /* a peer closing during shutdown must not kill the test */
    Suite *s = suite_create("cert_manager");
    TCase *tc = tcase_create("files");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, loads_then_reloads_a_rewritten_pair);
    tcase_add_test(tc, broken_pair_keeps_the_old_one);
    tcase_add_test(tc, secret_volume_symlink_swap);
    tcase_add_test(tc, not_ready_until_files_appear);
    tcase_add_test(tc, expired_certificate_is_not_ready);
    tcase_add_test(tc, bad_options_are_named);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
