/* certs.c — CA and serving certificate generation with OpenSSL 3 (see certs.h).
 *
 * Only EVP and X509 APIs (no deprecated EC_KEY calls). Serial numbers are
 * 128 random bits; every certificate gets subject/authority key ids so
 * verifiers can pick the right CA after a rotation. */
#include "webhook/certs.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *what) {
    unsigned long e = ERR_get_error();
    char ossl[160] = "";
    if (e) ERR_error_string_n(e, ossl, sizeof ossl);
    ERR_clear_error();
    if (err && errlen) snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", ossl);
    return -1;
}

/* Heap copy of a memory BIO's contents. */
static char *bio_string(BIO *b) {
    char *data;
    long n = BIO_get_mem_data(b, &data);
    if (n < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    return s;
}

static int to_pem(X509 *cert, EVP_PKEY *key, struct cert_pair *out) {
    BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
    int ok = cb && kb && PEM_write_bio_X509(cb, cert) &&
             PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL);
    if (ok) {
        out->cert_pem = bio_string(cb);
        out->key_pem = bio_string(kb);
        ok = out->cert_pem && out->key_pem;
    }
    if (kb) {
        char *data;
        long n = BIO_get_mem_data(kb, &data);
        if (n > 0) OPENSSL_cleanse(data, (size_t)n);
    }
    BIO_free(cb);
    BIO_free(kb);
    if (!ok) certs_pair_free(out);
    return ok ? 0 : -1;
}

static X509 *pem_cert(const char *pem) {
    BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return x;
}

static EVP_PKEY *pem_key(const char *pem) {
    BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return k;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    int ok = ext && X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

static int random_serial(X509 *cert) {
    BIGNUM *bn = BN_new();
    int ok = bn && BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
             BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
    BN_free(bn);
    return ok;
}

/* A certificate for `key`, named `cn`, valid from a minute ago (clock skew)
 * for `validity` seconds; extensions are added by the caller. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, long validity) {
    X509 *cert = X509_new();
    X509_NAME *name = cert ? X509_get_subject_name(cert) : NULL;
    int ok = name && X509_set_version(cert, 2) && random_serial(cert) &&
             X509_gmtime_adj(X509_getm_notBefore(cert), -60) &&
             X509_gmtime_adj(X509_getm_notAfter(cert), validity) && X509_set_pubkey(cert, key) &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                        -1, 0);
    if (!ok) {
        X509_free(cert);
        return NULL;
    }
    return cert;
}

int certs_make_ca(const char *cn, long validity_seconds, struct cert_pair *out, char *err,
                  size_t errlen) {
    memset(out, 0, sizeof *out);
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (!key) return fail(err, errlen, "generating the CA key");
    X509 *cert = new_cert(key, cn, validity_seconds);
    int ok = cert && X509_set_issuer_name(cert, X509_get_subject_name(cert)) &&
             add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE") &&
             add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") &&
             add_ext(cert, cert, NID_subject_key_identifier, "hash") &&
             X509_sign(cert, key, EVP_sha256()) > 0;
    int rc = ok ? to_pem(cert, key, out) : -1;
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc == 0 ? 0 : fail(err, errlen, "building the CA certificate");
}

/* "DNS:a,DNS:b,IP:127.0.0.1" into buf; -1 if it does not fit. */
static int san_list(char *buf, size_t cap, const char *const *dns, size_t ndns,
                    const char *const *ips, size_t nips) {
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < ndns + nips; i++) {
        int w = snprintf(buf + n, cap - n, "%s%s:%s", n ? "," : "", i < ndns ? "DNS" : "IP",
                         i < ndns ? dns[i] : ips[i - ndns]);
        if (w < 0 || (size_t)w >= cap - n) return -1;
        n += (size_t)w;
    }
    return 0;
}

int certs_make_serving(const struct cert_pair *ca, const char *const *dns, size_t ndns,
                       const char *const *ips, size_t nips, long validity_seconds,
                       struct cert_pair *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    char sans[2048];
    if (ndns == 0) return fail(err, errlen, "at least one DNS name is needed");
    if (san_list(sans, sizeof sans, dns, ndns, ips, nips) != 0)
        return fail(err, errlen, "subjectAltName list too long");
    X509 *ca_cert = pem_cert(ca->cert_pem);
    EVP_PKEY *ca_key = pem_key(ca->key_pem);
    EVP_PKEY *key = ca_cert && ca_key ? EVP_EC_gen("P-256") : NULL;
    X509 *cert = key ? new_cert(key, dns[0], validity_seconds) : NULL;
    int ok = cert && X509_set_issuer_name(cert, X509_get_subject_name(ca_cert)) &&
             add_ext(cert, ca_cert, NID_basic_constraints, "critical,CA:FALSE") &&
             add_ext(cert, ca_cert, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
             add_ext(cert, ca_cert, NID_ext_key_usage, "serverAuth") &&
             add_ext(cert, ca_cert, NID_subject_key_identifier, "hash") &&
             add_ext(cert, ca_cert, NID_authority_key_identifier, "keyid:always") &&
             add_ext(cert, ca_cert, NID_subject_alt_name, sans) &&
             X509_sign(cert, ca_key, EVP_sha256()) > 0;
    int rc = ok ? to_pem(cert, key, out) : -1;
    const char *what = !ca_cert || !ca_key ? "reading the CA certificate and key"
                                           : "building the serving certificate";
    X509_free(cert);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    X509_free(ca_cert);
    return rc == 0 ? 0 : fail(err, errlen, what);
}

void certs_service_names(const char *svc, const char *ns, char out[4][256]) {
    snprintf(out[0], 256, "%s", svc);
    snprintf(out[1], 256, "%s.%s", svc, ns);
    snprintf(out[2], 256, "%s.%s.svc", svc, ns);
    snprintf(out[3], 256, "%s.%s.svc.cluster.local", svc, ns);
}

int certs_not_after(const char *pem, time_t *out) {
    X509 *x = pem_cert(pem);
    struct tm tm;
    int ok = x && ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm);
    X509_free(x);
    ERR_clear_error();
    if (!ok) return -1;
    *out = timegm(&tm);
    return 0;
}

int certs_needs_renewal(const char *pem, time_t now, long before) {
    X509 *x = pem_cert(pem);
    struct tm nb, na;
    int ok = x && ASN1_TIME_to_tm(X509_get0_notBefore(x), &nb) &&
             ASN1_TIME_to_tm(X509_get0_notAfter(x), &na);
    X509_free(x);
    ERR_clear_error();
    if (!ok) return 1;
    return now < timegm(&nb) || now + before >= timegm(&na);
}

int certs_check(const struct cert_pair *pair, const char *ca_pem, time_t now, char *err,
                size_t errlen) {
    X509 *cert = pem_cert(pair->cert_pem), *ca = pem_cert(ca_pem);
    EVP_PKEY *key = pem_key(pair->key_pem);
    EVP_PKEY *ca_pub = ca ? X509_get0_pubkey(ca) : NULL;
    const char *why = !cert ? "certificate does not parse"
                      : !key ? "private key does not parse"
                      : !ca_pub ? "CA certificate does not parse"
                      : X509_check_private_key(cert, key) != 1 ? "private key does not match the certificate"
                      : X509_verify(cert, ca_pub) != 1 ? "certificate is not signed by the CA"
                      : X509_cmp_time(X509_get0_notBefore(cert), &now) > 0 ? "certificate is not valid yet"
                      : X509_cmp_time(X509_get0_notAfter(cert), &now) < 0 ? "certificate has expired"
                      : NULL;
    X509_free(cert);
    X509_free(ca);
    EVP_PKEY_free(key);
    ERR_clear_error();
    if (why && err && errlen) snprintf(err, errlen, "%s", why);
    return why ? -1 : 0;
}

void certs_pair_free(struct cert_pair *p) {
    if (!p) return;
    free(p->cert_pem);
    if (p->key_pem) {
        OPENSSL_cleanse(p->key_pem, strlen(p->key_pem));
        free(p->key_pem);
    }
    p->cert_pem = p->key_pem = NULL;
}
