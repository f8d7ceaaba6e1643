/* test_certs.c — CA + serving certificate generation, expiry and renewal. */
#include "common/test/check_run.h"
#include "webhook/certs.h"

#include <check.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

static X509 *parse(const char *pem) {
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    return x;
}

static void make_pki(struct cert_pair *ca, struct cert_pair *srv, long srv_validity) {
    char err[256] = "";
    char names[4][256];
    certs_service_names("agentmesh-webhook", "agentmesh-system", names);
    const char *dns[] = {names[0], names[1], names[2], names[3]};
    const char *ips[] = {"127.0.0.1"};
    ck_assert_msg(certs_make_ca("agentmesh-webhook-ca", CERTS_CA_VALIDITY, ca, err, sizeof err) == 0,
                  "%s", err);
    ck_assert_msg(certs_make_serving(ca, dns, 4, ips, 1, srv_validity, srv, err, sizeof err) == 0,
                  "%s", err);
}

START_TEST(ca_and_serving) {
    struct cert_pair ca, srv;
    make_pki(&ca, &srv, CERTS_SERVING_VALIDITY);
    ck_assert_ptr_nonnull(strstr(ca.cert_pem, "BEGIN CERTIFICATE"));
    ck_assert_ptr_nonnull(strstr(srv.key_pem, "PRIVATE KEY"));
    char err[256] = "";
    time_t now = time(NULL);
    ck_assert_msg(certs_check(&srv, ca.cert_pem, now, err, sizeof err) == 0, "%s", err);

    X509 *cax = parse(ca.cert_pem), *x = parse(srv.cert_pem);
    ck_assert_int_eq(X509_check_ca(cax), 1);
    ck_assert_int_eq(X509_check_ca(x), 0);
    ck_assert_int_eq(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);
    /* SANs: the service names and 127.0.0.1, as an API server checks them. */
    ck_assert_int_eq(X509_check_host(x, "agentmesh-webhook.agentmesh-system.svc", 0, 0, NULL), 1);
    ck_assert_int_eq(X509_check_host(x, "agentmesh-webhook.agentmesh-system.svc.cluster.local", 0, 0, NULL), 1);
    ck_assert_int_eq(X509_check_host(x, "evil.example.com", 0, 0, NULL), 0);
    ck_assert_int_eq(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    ck_assert_int_eq(X509_check_ip_asc(x, "10.0.0.1", 0), 0);
    X509_free(cax);
    X509_free(x);

    /* Validity: CA 10 years, serving 1 year (± the minute of back-dating). */
    time_t ca_end, srv_end;
    ck_assert_int_eq(certs_not_after(ca.cert_pem, &ca_end), 0);
    ck_assert_int_eq(certs_not_after(srv.cert_pem, &srv_end), 0);
    ck_assert_int_le(labs((long)(ca_end - now - CERTS_CA_VALIDITY)), 5);
    ck_assert_int_le(labs((long)(srv_end - now - CERTS_SERVING_VALIDITY)), 5);

    /* Another CA's pair does not verify against this CA. */
    struct cert_pair ca2, srv2;
    make_pki(&ca2, &srv2, 3600);
    ck_assert_int_eq(certs_check(&srv2, ca.cert_pem, now, err, sizeof err), -1);
    ck_assert_str_eq(err, "certificate is not signed by the CA");
    struct cert_pair mixed = {srv.cert_pem, srv2.key_pem};
    ck_assert_int_eq(certs_check(&mixed, ca.cert_pem, now, err, sizeof err), -1);
    ck_assert_str_eq(err, "private key does not match the certificate");
    ck_assert_int_eq(certs_check(&srv, ca.cert_pem, now + 2 * CERTS_SERVING_VALIDITY, err, sizeof err), -1);
    ck_assert_str_eq(err, "certificate has expired");
    certs_pair_free(&ca2);
    certs_pair_free(&srv2);
    certs_pair_free(&srv);
    certs_pair_free(&ca);
    ck_assert_ptr_null(ca.key_pem);
}
END_TEST

/* Renewal 30 days before expiry; a short validity exercises it in seconds. */
START_TEST(renewal) {
    struct cert_pair ca, srv;
    make_pki(&ca, &srv, 120);
    time_t now = time(NULL);
    ck_assert_int_eq(certs_needs_renewal(srv.cert_pem, now, 30), 0);
    ck_assert_int_eq(certs_needs_renewal(srv.cert_pem, now + 95, 30), 1);
    ck_assert_int_eq(certs_needs_renewal(srv.cert_pem, now, CERTS_RENEW_BEFORE), 1);
    ck_assert_int_eq(certs_needs_renewal(ca.cert_pem, now, CERTS_RENEW_BEFORE), 0);
    ck_assert_int_eq(certs_needs_renewal(ca.cert_pem, now + CERTS_CA_VALIDITY - 29L * 86400,
                                         CERTS_RENEW_BEFORE), 1);
    ck_assert_int_eq(certs_needs_renewal(srv.cert_pem, now - 3600, 30), 1);   /* not yet valid */
    ck_assert_int_eq(certs_needs_renewal("garbage", now, 30), 1);
    time_t t;
    ck_assert_int_eq(certs_not_after("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", &t), -1);
    certs_pair_free(&srv);
    certs_pair_free(&ca);
}
END_TEST

START_TEST(errors) {
    struct cert_pair bad = {"not a cert", "not a key"}, out;
    char err[256] = "";
    const char *dns[] = {"x"};
    ck_assert_int_eq(certs_make_serving(&bad, dns, 1, NULL, 0, 60, &out, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "reading the CA certificate and key"));
    ck_assert_ptr_null(out.cert_pem);
    struct cert_pair ca;
    ck_assert_int_eq(certs_make_ca("ca", 60, &ca, err, sizeof err), 0);
    ck_assert_int_eq(certs_make_serving(&ca, dns, 0, NULL, 0, 60, &out, err, sizeof err), -1);
    const char *ips[] = {"not-an-ip"};
    ck_assert_int_eq(certs_make_serving(&ca, dns, 1, ips, 1, 60, &out, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "building the serving certificate"));
    certs_pair_free(&ca);
}
END_TEST

int main(void) {
    Suite *s = suite_create("certs");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, ca_and_serving);
    tcase_add_test(tc, renewal);
    tcase_add_test(tc, errors);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
