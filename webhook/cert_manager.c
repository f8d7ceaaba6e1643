/* cert_manager.c — keeps a valid serving certificate on the webhook listeners
 * (see cert_manager.h for the two modes and the Secret layout).
 *
 * One thread per manager runs `tick` every check interval (the first tick
 * runs inside cert_manager_start). Everything the tick touches besides the
 * readiness state is private to that thread, so only `lock` guards
 * ready/why/not_after. Certificates are handed over as a fresh SSL_CTX per
 * change; the httpds keep their own reference, so swapping is lock-free
 * for connections in flight. */
#include "webhook/cert_manager.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/tls.h"
#include "webhook/certs.h"

#define COMPONENT "certs"
#define MAX_PEM_FILE (1024 * 1024)
#define MAX_BUNDLE_CAS 4
#define BUNDLE_PROPAGATION_SECONDS 2

static const struct kube_gvr secrets_gvr = {"", "v1", "secrets", 1};
static const struct kube_gvr mutating_gvr = {"admissionregistration.k8s.io", "v1",
                                             "mutatingwebhookconfigurations", 0};
static const struct kube_gvr validating_gvr = {"admissionregistration.k8s.io", "v1",
                                               "validatingwebhookconfigurations", 0};

/* What stat says about one file; any change means "reload". */
struct file_sig {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

/* The four PEMs of the Secret: ca.cert_pem is the CA bundle (signing CA first). */
struct material {
    struct cert_pair ca;
    struct cert_pair tls;
};

struct webhook_target {
    const struct kube_gvr *gvr;
    const char *name;
    char last_problem[256];   /* logged once, not on every check */
};

struct cert_manager {
    struct cert_manager_options o;
    struct metric *expiry;

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stopping;

    /* guarded by lock */
    int ready;
    char why[256];
    long long not_after;

    /* thread-private (the first tick runs before the thread exists) */
    int installed;            /* a certificate went out at least once */
    char crt_path[4096], key_path[4096];
    struct file_sig sig[2];
    int have_sig;
    struct httpd **servers;   /* copies of the option arrays */
    const char **ips;
    const char **dns;         /* Service names + extra DNS SANs */
    size_t ndns;
    char service_names[4][256];
    char loaded_rv[64];       /* resourceVersion of the Secret in use */
    char *ca_bundle_b64;      /* caBundle to set on the webhooks */
    struct webhook_target targets[2];
};

/* ---- readiness and installation ---- */

static void set_reason(struct cert_manager *cm, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records why there is no usable certificate; logged only when the reason changes. */
static void set_reason(struct cert_manager *cm, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&cm->lock);
    int changed = strcmp(buf, cm->why) != 0;
    snprintf(cm->why, sizeof cm->why, "%s", buf);
    int ready = cm->ready;
    pthread_mutex_unlock(&cm->lock);
    if (changed) {
        if (ready) log_warn(COMPONENT, "%s (the current certificate stays in use)", buf);
        else log_warn(COMPONENT, "%s", buf);
    }
}

/* Puts `ctx` (consumed) on every server and publishes `cert_pem`'s expiry. */
static int install(struct cert_manager *cm, SSL_CTX *ctx, const char *cert_pem) {
    time_t na = 0;
    if (certs_not_after(cert_pem, &na) != 0) {
        SSL_CTX_free(ctx);
        set_reason(cm, "certificate: notAfter does not parse");
        return -1;
    }
    for (size_t i = 0; i < cm->o.nservers; i++) {
        if (httpd_set_tls(cm->servers[i], ctx) != 0) {
            SSL_CTX_free(ctx);
            set_reason(cm, "cannot install the TLS context on server %zu", i);
            return -1;
        }
    }
    metric_set(cm->expiry, (double)na);
    pthread_mutex_lock(&cm->lock);
    cm->ready = 1;
    cm->why[0] = '\0';
    cm->not_after = (long long)na;
    pthread_mutex_unlock(&cm->lock);
    if (na <= time(NULL))
        log_warn(COMPONENT, "the serving certificate installed has expired (notAfter %lld)",
                 (long long)na);
    else
        log_info(COMPONENT, "serving certificate installed on %zu server(s), notAfter %lld",
                 cm->o.nservers, (long long)na);
    int first = !cm->installed;
    cm->installed = 1;
    if (cm->o.on_certificate) cm->o.on_certificate(ctx, first, cm->o.on_certificate_arg);
    SSL_CTX_free(ctx);
    return 0;
}

/* What is wrong with a certificate/key pair, in words an operator can act on; NULL if nothing. */
static const char *pair_problem(const char *cert_pem, const char *key_pem) {
    BIO *cb = BIO_new_mem_buf(cert_pem, -1), *kb = BIO_new_mem_buf(key_pem, -1);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    const char *why = !x ? "tls.crt holds no PEM certificate"
                      : !k ? "tls.key holds no PEM private key"
                      : X509_check_private_key(x, k) != 1 ? "tls.key does not match tls.crt"
                      : NULL;
    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(cb);
    BIO_free(kb);
    ERR_clear_error();
    return why;
}

/* SSL_CTX from a PEM pair and install it; a pair that fails keeps the old one. */
static int install_pem(struct cert_manager *cm, const char *source, const char *cert_pem,
                       const char *key_pem) {
    char err[256];
    const char *problem = pair_problem(cert_pem, key_pem);
    SSL_CTX *ctx = problem ? NULL
                           : tls_server_ctx_from_pem(cert_pem, strlen(cert_pem), key_pem,
                                                     strlen(key_pem), err, sizeof err);
    if (!ctx) {
        set_reason(cm, "%s: certificate rejected: %s", source, problem ? problem : err);
        return -1;
    }
    return install(cm, ctx, cert_pem);
}

/* ---- file mode ---- */

static int file_sig_read(const char *path, struct file_sig *s) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    *s = (struct file_sig){.dev = st.st_dev, .ino = st.st_ino, .size = st.st_size,
                           .mtime = st.st_mtim, .ctime = st.st_ctim};
    return 0;
}

static int file_sig_eq(const struct file_sig *a, const struct file_sig *b) {
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Whole file as a NUL-terminated string (at most MAX_PEM_FILE), or NULL with the reason. */
static char *read_pem_file(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MAX_PEM_FILE + 1);
    size_t n = buf ? fread(buf, 1, MAX_PEM_FILE + 1, f) : 0;
    int bad = !buf || ferror(f) || n > MAX_PEM_FILE;
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: %s", path, !buf ? "out of memory"
                                              : n > MAX_PEM_FILE ? "larger than 1 MiB"
                                                                 : "read error");
        if (buf) OPENSSL_cleanse(buf, n > MAX_PEM_FILE ? MAX_PEM_FILE + 1 : n);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static void free_secret_text(char *s) {
    if (!s) return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

/* Reloads tls.crt/tls.key when either file changed since the last look. */
static void file_tick(struct cert_manager *cm) {
    struct file_sig now[2];
    const char *missing = file_sig_read(cm->crt_path, &now[0]) != 0   ? cm->crt_path
                          : file_sig_read(cm->key_path, &now[1]) != 0 ? cm->key_path
                                                                      : NULL;
    if (missing) {
        set_reason(cm, "%s: %s", missing, strerror(errno));
        return;
    }
    if (cm->have_sig && file_sig_eq(&now[0], &cm->sig[0]) && file_sig_eq(&now[1], &cm->sig[1]))
        return;
    /* Remember the change even if the pair fails: a half-written pair is
     * retried when the next write changes a file, not logged every second. */
    cm->sig[0] = now[0];
    cm->sig[1] = now[1];
    cm->have_sig = 1;
    pthread_mutex_lock(&cm->lock);
    snprintf(cm->why, sizeof cm->why, "loading %s", cm->o.cert_dir);  /* each change logs anew */
    pthread_mutex_unlock(&cm->lock);
    char err[512];
    char *crt = read_pem_file(cm->crt_path, err, sizeof err);
    char *key = crt ? read_pem_file(cm->key_path, err, sizeof err) : NULL;
    if (!crt || !key) set_reason(cm, "%s", err);
    else install_pem(cm, cm->o.cert_dir, crt, key);
    free(crt);
    free_secret_text(key);
}

/* ---- PEM and base64 helpers ---- */

static char *b64_encode(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out) EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    return out;
}

/* Decodes base64 text into a NUL-terminated string; NULL when invalid. */
static char *b64_decode(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n % 4 != 0 || n > 4 * MAX_PEM_FILE) return NULL;
    char *out = malloc(n / 4 * 3 + 1);
    if (!out) return NULL;
    int len = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    if (len < 0) {
        free(out);
        return NULL;
    }
    len -= (s[n - 1] == '=') + (s[n - 2] == '=');   /* DecodeBlock counts padding */
    out[len] = '\0';
    if (strlen(out) != (size_t)len) {   /* a NUL inside is not PEM */
        free_secret_text(out);
        return NULL;
    }
    return out;
}

/* `first` followed by the CAs of `old` that are still valid at `now` and not
 * `first` itself, at most MAX_BUNDLE_CAS in all. The CA overlap after a CA
 * renewal: webhooks keep trusting serving certificates of the old CA. */
static char *bundle_build(const char *first, const char *old, time_t now) {
    BIO *in = BIO_new_mem_buf(first, -1), *out = BIO_new(BIO_s_mem());
    X509 *head = in ? PEM_read_bio_X509(in, NULL, NULL, NULL) : NULL;
    int ok = head && out && PEM_write_bio_X509(out, head) == 1;
    BIO_free(in);
    in = ok ? BIO_new_mem_buf(old ? old : "", -1) : NULL;
    X509 *x;
    for (int kept = 1; in && kept < MAX_BUNDLE_CAS &&
                       (x = PEM_read_bio_X509(in, NULL, NULL, NULL)) != NULL;) {
        if (X509_cmp(x, head) != 0 && X509_cmp_time(X509_get0_notAfter(x), &now) > 0) {
            ok = ok && PEM_write_bio_X509(out, x) == 1;
            kept++;
        }
        X509_free(x);
    }
    ERR_clear_error();   /* the loop ends on "no start line" */
    char *data, *s = NULL;
    long n = ok ? BIO_get_mem_data(out, &data) : -1;
    if (n > 0 && (s = malloc((size_t)n + 1)) != NULL) {
        memcpy(s, data, (size_t)n);
        s[n] = '\0';
    }
    X509_free(head);
    BIO_free(in);
    BIO_free(out);
    return s;
}

/* ---- self-managed mode: the Secret ---- */

static void material_free(struct material *m) {
    certs_pair_free(&m->ca);
    certs_pair_free(&m->tls);
}

/* The four PEMs out of Secret `s`; NULL, or the data key missing or not base64. */
static const char *material_from_secret(const json_t *s, struct material *m) {
    static const char *const keys[4] = {"ca.crt", "ca.key", "tls.crt", "tls.key"};
    char **dst[4] = {&m->ca.cert_pem, &m->ca.key_pem, &m->tls.cert_pem, &m->tls.key_pem};
    memset(m, 0, sizeof *m);
    const json_t *data = json_object_get(s, "data");   /* keys hold dots: no json_at */
    for (int i = 0; i < 4; i++) {
        const json_t *v = json_object_get(data, keys[i]);
        if (!json_is_string(v) || !(*dst[i] = b64_decode(json_string_value(v))))
            return keys[i];
    }
    return NULL;
}

/* The serving certificate names every Service name and every extra SAN. */
static const char *names_problem(const struct cert_manager *cm, const char *cert_pem) {
    BIO *b = BIO_new_mem_buf(cert_pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    const char *why = x ? NULL : "tls.crt does not parse";
    for (size_t i = 0; !why && i < cm->ndns; i++)
        if (X509_check_host(x, cm->dns[i], 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL) != 1)
            why = "tls.crt does not name every DNS SAN";
    for (size_t i = 0; !why && i < cm->o.nip_sans; i++)
        if (X509_check_ip_asc(x, cm->ips[i], 0) != 1) why = "tls.crt lacks an IP SAN";
    X509_free(x);
    ERR_clear_error();
    return why;
}

/* 0 when the material is usable as it is; else -1 with the reason. */
static int material_check(const struct cert_manager *cm, const struct material *m, time_t now,
                          char *why, size_t whylen) {
    char err[200];
    if (certs_check(&m->ca, m->ca.cert_pem, now, err, sizeof err) != 0) {
        snprintf(why, whylen, "CA: %s", err);
        return -1;
    }
    if (certs_check(&m->tls, m->ca.cert_pem, now, err, sizeof err) != 0) {
        snprintf(why, whylen, "serving certificate: %s", err);
        return -1;
    }
    const char *names = names_problem(cm, m->tls.cert_pem);
    if (names) {
        snprintf(why, whylen, "%s", names);
        return -1;
    }
    return 0;
}

/* New material into `out`: a new CA when `old` is NULL or `new_ca` is set
 * (then the old CAs stay in the bundle while valid), and a serving
 * certificate signed by the bundle's first CA. */
static int material_issue(const struct cert_manager *cm, const struct material *old, int new_ca,
                          time_t now, struct material *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!old || new_ca) {
        struct cert_pair ca;
        char cn[64];
        snprintf(cn, sizeof cn, "agentmesh-webhook-ca-%lld", (long long)now);
        if (certs_make_ca(cn, cm->o.ca_validity_seconds, &ca, err, errlen) != 0) return -1;
        out->ca.key_pem = ca.key_pem;
        out->ca.cert_pem = bundle_build(ca.cert_pem, old ? old->ca.cert_pem : NULL, now);
        free(ca.cert_pem);
    } else {
        out->ca.key_pem = strdup(old->ca.key_pem);
        out->ca.cert_pem = bundle_build(old->ca.cert_pem, old->ca.cert_pem, now);
    }
    if (!out->ca.key_pem || !out->ca.cert_pem) {
        material_free(out);
        snprintf(err, errlen, "out of memory building the CA bundle");
        return -1;
    }
    if (certs_make_serving(&out->ca, cm->dns, cm->ndns, cm->ips, cm->o.nip_sans,
                           cm->o.cert_validity_seconds, &out->tls, err, errlen) != 0) {
        material_free(out);
        return -1;
    }
    return 0;
}

/* `m` as the `data` object of a kubernetes.io/tls Secret. */
static json_t *material_data(const struct material *m) {
    const char *keys[4] = {"ca.crt", "ca.key", "tls.crt", "tls.key"};
    const char *vals[4] = {m->ca.cert_pem, m->ca.key_pem, m->tls.cert_pem, m->tls.key_pem};
    json_t *data = json_object();
    for (int i = 0; data && i < 4; i++) {
        char *b = b64_encode(vals[i]);
        json_t *s = b ? json_string(b) : NULL;
        free_secret_text(b);
        if (!s || json_object_set_new(data, keys[i], s) != 0) {
            json_decref(data);
            return NULL;
        }
    }
    return data;
}

/* Writes `m` as the Secret: create when `current` is NULL, else update it
 * (with its resourceVersion). 0 with the stored Secret in *stored; 1 when
 * another replica got there first (AlreadyExists / Conflict); -1 on error. */
static int secret_write(struct cert_manager *cm, const json_t *current, const struct material *m,
                        json_t **stored) {
    json_t *obj = current ? json_deep_copy(current)
                          : json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s}}, s:s}", "apiVersion",
                                      "v1", "kind", "Secret", "metadata", "name",
                                      cm->o.secret_name, "namespace", cm->o.namespace, "labels",
                                      "app.kubernetes.io/name", "agentmesh",
                                      "app.kubernetes.io/component", "webhook-certificates",
                                      "type", "kubernetes.io/tls");
    json_t *data = material_data(m);
    if (!obj || !data || json_object_set_new(obj, "data", data) != 0) {
        if (!obj) json_decref(data);
        json_decref(obj);
        set_reason(cm, "out of memory building Secret %s", cm->o.secret_name);
        return -1;
    }
    struct kube_result r;
    int rc = current ? kube_update(cm->o.client, &secrets_gvr, cm->o.namespace, cm->o.secret_name,
                                   NULL, obj, &r)
                     : kube_create(cm->o.client, &secrets_gvr, cm->o.namespace, obj, &r);
    json_decref(obj);
    int out;
    if (rc == 0) {
        *stored = json_incref(r.body);
        out = 0;
    } else if (kube_is_reason(&r, "AlreadyExists") || kube_is_reason(&r, "Conflict")) {
        log_info(COMPONENT, "Secret %s/%s was written by another replica; using theirs",
                 cm->o.namespace, cm->o.secret_name);
        out = 1;
    } else {
        set_reason(cm, "writing Secret %s/%s: %d %s: %s", cm->o.namespace, cm->o.secret_name,
                   r.status, r.reason, r.message);
        out = -1;
    }
    kube_result_free(&r);
    return out;
}

/* Reads the Secret and brings it to a usable state that is not due for
 * renewal. Returns the Secret to serve from (new reference) with its PEMs
 * in `m`, or NULL with the reason recorded. A write lost to another
 * replica re-reads and adopts what they wrote. */
static json_t *secret_ensure(struct cert_manager *cm, struct material *m) {
    const struct cert_manager_options *o = &cm->o;
    for (int round = 0; round < 3; round++) {
        struct kube_result r;
        json_t *current = NULL;
        if (kube_get(o->client, &secrets_gvr, o->namespace, o->secret_name, NULL, &r) == 0) {
            current = json_incref(r.body);
        } else if (!kube_is_reason(&r, "NotFound")) {
            set_reason(cm, "reading Secret %s/%s: %d %s: %s", o->namespace, o->secret_name,
                       r.status, r.reason, r.message);
            kube_result_free(&r);
            return NULL;
        }
        kube_result_free(&r);

        time_t now = time(NULL);
        char why[256] = "absent";
        const char *missing = current ? material_from_secret(current, m) : "Secret";
        char err[256];
        int ca_ok = !missing && certs_check(&m->ca, m->ca.cert_pem, now, err, sizeof err) == 0;
        int tls_ok = ca_ok && material_check(cm, m, now, why, sizeof why) == 0;
        int new_ca = !ca_ok || certs_needs_renewal(m->ca.cert_pem, now,
                                                   o->cert_validity_seconds + o->renew_before_seconds);
        if (tls_ok && !new_ca && !certs_needs_renewal(m->tls.cert_pem, now, o->renew_before_seconds))
            return current;

        if (!current) log_info(COMPONENT, "Secret %s/%s absent: creating a CA and a serving certificate",
                               o->namespace, o->secret_name);
        else if (missing) log_warn(COMPONENT, "Secret %s/%s: data[%s] missing or not base64: replacing it",
                                   o->namespace, o->secret_name, missing);
        else if (!tls_ok) log_warn(COMPONENT, "Secret %s/%s unusable (%s): replacing it",
                                   o->namespace, o->secret_name, ca_ok ? why : err);
        else log_info(COMPONENT, "renewing the serving certificate%s", new_ca ? " and the CA" : "");

        struct material fresh;
        int rc = material_issue(cm, ca_ok ? m : NULL, new_ca, now, &fresh, err, sizeof err);
        material_free(m);
        if (rc != 0) {
            set_reason(cm, "issuing certificates: %s", err);
            json_decref(current);
            return NULL;
        }
        json_t *stored = NULL;
        int w = secret_write(cm, current, &fresh, &stored);
        json_decref(current);
        if (w == 0) {
            *m = fresh;
            return stored;
        }
        material_free(&fresh);
        if (w < 0) return NULL;
    }
    set_reason(cm, "Secret %s/%s keeps changing; retrying", o->namespace, o->secret_name);
    return NULL;
}

/* ---- self-managed mode: caBundle on the webhook configurations ---- */

static void target_problem(struct webhook_target *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Logs a configuration's problem once, until it changes or goes away. */
static void target_problem(struct webhook_target *t, const char *fmt, ...) {
    char buf[sizeof t->last_problem];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (strcmp(buf, t->last_problem) != 0) log_warn(COMPONENT, "%s", buf);
    snprintf(t->last_problem, sizeof t->last_problem, "%s", buf);
}

/* Sets caBundle on every webhook of the configuration where it differs; one
 * update carrying the resourceVersion read, so a concurrent edit conflicts
 * (and is retried on the next check) instead of being overwritten. */
static void webhook_sync(struct cert_manager *cm, struct webhook_target *t) {
    struct kube_result r;
    if (kube_get(cm->o.client, t->gvr, NULL, t->name, NULL, &r) != 0) {
        target_problem(t, "%s %s: %d %s: %s (retrying)", t->gvr->resource, t->name, r.status,
                       r.reason, r.message);
        kube_result_free(&r);
        return;
    }
    json_t *cfg = json_incref(r.body);
    kube_result_free(&r);
    size_t i, changed = 0;
    json_t *w;
    json_array_foreach(json_object_get(cfg, "webhooks"), i, w) {
        json_t *cc = json_object_get(w, "clientConfig");
        const char *cur = json_string_value(json_object_get(cc, "caBundle"));
        if (!json_is_object(cc) || (cur && strcmp(cur, cm->ca_bundle_b64) == 0)) continue;
        if (json_object_set_new(cc, "caBundle", json_string(cm->ca_bundle_b64)) != 0) {
            target_problem(t, "%s %s: out of memory", t->gvr->resource, t->name);
            json_decref(cfg);
            return;
        }
        changed++;
    }
    if (changed && kube_update(cm->o.client, t->gvr, NULL, t->name, NULL, cfg, &r) != 0) {
        target_problem(t, "%s %s: setting caBundle: %d %s: %s (retrying)", t->gvr->resource,
                       t->name, r.status, r.reason, r.message);
    } else {
        if (changed) log_info(COMPONENT, "caBundle set on %zu webhook(s) of %s %s", changed,
                              t->gvr->resource, t->name);
        t->last_problem[0] = '\0';
    }
    if (changed) kube_result_free(&r);
    json_decref(cfg);
}

/* Waits up to `seconds` on the monotonic clock; 1 when stop was asked for. Call with lock held. */
static int wait_locked(struct cert_manager *cm, double seconds) {
    struct timespec due;
    clock_gettime(CLOCK_MONOTONIC, &due);
    long ns = (long)(seconds * 1e9);
    due.tv_sec += ns / 1000000000L;
    due.tv_nsec += ns % 1000000000L;
    if (due.tv_nsec >= 1000000000L) {
        due.tv_sec++;
        due.tv_nsec -= 1000000000L;
    }
    while (!cm->stopping && pthread_cond_timedwait(&cm->cond, &cm->lock, &due) != ETIMEDOUT) {
    }
    return cm->stopping;
}

/* One check: the Secret, then caBundle on the webhooks, then the certificate
 * in use. The bundle goes first: after a CA renewal the API server must
 * trust the new CA before it is served a certificate the new CA signed, so
 * when the bundle changed under a certificate already in use, the switch
 * waits BUNDLE_PROPAGATION_SECONDS for the API server to see the new
 * configuration (renewing only the serving certificate keeps the bundle). */
static void self_tick(struct cert_manager *cm) {
    struct material m;
    memset(&m, 0, sizeof m);
    json_t *secret = secret_ensure(cm, &m);
    const char *rv = json_str_at(secret, "metadata.resourceVersion");
    int fresh = secret && rv && strcmp(rv, cm->loaded_rv) != 0;
    if (secret) {   /* the API answers again: a recurring error gets logged anew */
        pthread_mutex_lock(&cm->lock);
        if (cm->ready) cm->why[0] = '\0';
        pthread_mutex_unlock(&cm->lock);
    }
    char *bundle = fresh ? b64_encode(m.ca.cert_pem) : NULL;
    int bundle_changed = bundle && (!cm->ca_bundle_b64 || strcmp(bundle, cm->ca_bundle_b64) != 0);
    if (fresh && !bundle) set_reason(cm, "out of memory encoding the caBundle");
    if (bundle_changed) {
        free(cm->ca_bundle_b64);
        cm->ca_bundle_b64 = bundle;
        bundle = NULL;
    }
    free(bundle);
    for (int i = 0; cm->ca_bundle_b64 && i < 2; i++)
        if (cm->targets[i].name[0]) webhook_sync(cm, &cm->targets[i]);
    int stop = 0;
    if (fresh && bundle_changed && cm->installed) {
        log_info(COMPONENT, "CA bundle changed: switching certificates in %d s",
                 BUNDLE_PROPAGATION_SECONDS);
        pthread_mutex_lock(&cm->lock);
        stop = wait_locked(cm, BUNDLE_PROPAGATION_SECONDS);
        pthread_mutex_unlock(&cm->lock);
    }
    if (fresh && !stop) {
        char source[320];
        snprintf(source, sizeof source, "Secret %s/%s", cm->o.namespace, cm->o.secret_name);
        if (install_pem(cm, source, m.tls.cert_pem, m.tls.key_pem) == 0)
            snprintf(cm->loaded_rv, sizeof cm->loaded_rv, "%s", rv);
    }
    material_free(&m);
    json_decref(secret);
}

static void tick(struct cert_manager *cm) {
    if (cm->o.cert_dir) file_tick(cm);
    else self_tick(cm);
}

static void *run(void *arg) {
    struct cert_manager *cm = arg;
    pthread_mutex_lock(&cm->lock);
    while (!wait_locked(cm, cm->o.check_interval_seconds)) {
        pthread_mutex_unlock(&cm->lock);
        tick(cm);
        pthread_mutex_lock(&cm->lock);
    }
    pthread_mutex_unlock(&cm->lock);
    return NULL;
}

/* ---- lifecycle ---- */

/* Copies the options with defaults filled in; -1 with the reason when unusable. */
static int options_resolve(const struct cert_manager_options *in, struct cert_manager_options *o,
                           char *err, size_t errlen) {
    *o = *in;
    if (!o->secret_name) o->secret_name = CERT_MANAGER_SECRET;
    if (!o->service_name) o->service_name = CERT_MANAGER_SERVICE;
    if (!o->mutating_webhook) o->mutating_webhook = CERT_MANAGER_MUTATING;
    if (!o->validating_webhook) o->validating_webhook = CERT_MANAGER_VALIDATING;
    if (o->ca_validity_seconds == 0) o->ca_validity_seconds = CERTS_CA_VALIDITY;
    if (o->cert_validity_seconds == 0) o->cert_validity_seconds = CERTS_SERVING_VALIDITY;
    if (o->renew_before_seconds == 0) o->renew_before_seconds = CERTS_RENEW_BEFORE;
    if (o->check_interval_seconds == 0) o->check_interval_seconds = 30;
    const char *why =
        o->nservers && !o->servers ? "servers: NULL with a non-zero count"
        : (o->ndns_sans && !o->dns_sans) || (o->nip_sans && !o->ip_sans) ? "SAN list: NULL with a non-zero count"
        : !(o->check_interval_seconds > 0 && o->check_interval_seconds < 86400) ? "check interval: must be within (0, 86400) seconds"
        : o->cert_dir && !o->cert_dir[0] ? "cert_dir: empty"
        : o->cert_dir && strlen(o->cert_dir) > 4000 ? "cert_dir: too long"
        : o->cert_dir ? NULL
        : !o->client ? "self-managed certificates need a Kubernetes client"
        : !o->namespace || !o->namespace[0] ? "namespace: empty"
        : !o->secret_name[0] || !o->service_name[0] ? "secret and service names must not be empty"
        : o->renew_before_seconds < 0 || o->cert_validity_seconds <= o->renew_before_seconds ? "certificate validity must exceed renew-before"
        : o->ca_validity_seconds <= o->cert_validity_seconds + o->renew_before_seconds ? "CA validity must exceed certificate validity + renew-before"
        : NULL;
    if (why) snprintf(err, errlen, "cert manager: %s", why);
    return why ? -1 : 0;
}

static void cm_free(struct cert_manager *cm) {
    pthread_cond_destroy(&cm->cond);
    pthread_mutex_destroy(&cm->lock);
    free(cm->servers);
    free(cm->ips);
    free(cm->dns);
    free(cm->ca_bundle_b64);
    free(cm);
}

/* Copies of the option arrays (the caller's may be on its stack), then the
 * file paths (file mode) or the SAN list and webhook targets (self-managed). */
static int prepare(struct cert_manager *cm) {
    const struct cert_manager_options *o = &cm->o;
    cm->servers = calloc(o->nservers + 1, sizeof *cm->servers);
    cm->ips = calloc(o->nip_sans + 1, sizeof *cm->ips);
    if (!cm->servers || !cm->ips) return -1;
    for (size_t i = 0; i < o->nservers; i++) cm->servers[i] = o->servers[i];
    for (size_t i = 0; i < o->nip_sans; i++) cm->ips[i] = o->ip_sans[i];
    if (o->cert_dir) {
        snprintf(cm->crt_path, sizeof cm->crt_path, "%s/tls.crt", o->cert_dir);
        snprintf(cm->key_path, sizeof cm->key_path, "%s/tls.key", o->cert_dir);
        return 0;
    }
    certs_service_names(o->service_name, o->namespace, cm->service_names);
    cm->dns = calloc(4 + o->ndns_sans, sizeof *cm->dns);
    if (!cm->dns) return -1;
    for (int i = 0; i < 4; i++) cm->dns[cm->ndns++] = cm->service_names[i];
    for (size_t i = 0; i < o->ndns_sans; i++) cm->dns[cm->ndns++] = o->dns_sans[i];
    cm->targets[0] = (struct webhook_target){.gvr = &mutating_gvr, .name = o->mutating_webhook};
    cm->targets[1] = (struct webhook_target){.gvr = &validating_gvr, .name = o->validating_webhook};
    return 0;
}

struct cert_manager *cert_manager_start(const struct cert_manager_options *opts, char *err,
                                        size_t errlen) {
    struct cert_manager *cm = calloc(1, sizeof *cm);
    if (!cm) {
        snprintf(err, errlen, "cert manager: out of memory");
        return NULL;
    }
    pthread_condattr_t ca;
    int sync_ok = pthread_mutex_init(&cm->lock, NULL) == 0 && pthread_condattr_init(&ca) == 0;
    if (sync_ok) {
        sync_ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                  pthread_cond_init(&cm->cond, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (!sync_ok) {
        snprintf(err, errlen, "cert manager: cannot create its lock");
        free(cm);
        return NULL;
    }
    if (options_resolve(opts, &cm->o, err, errlen) != 0) {
        cm_free(cm);
        return NULL;
    }
    if (prepare(cm) != 0) {
        snprintf(err, errlen, "cert manager: out of memory");
        cm_free(cm);
        return NULL;
    }
    cm->expiry = metrics_gauge("agentmesh_webhook_certificate_expiry_timestamp_seconds",
                               "notAfter of the webhook serving certificate in use, unix seconds",
                               NULL);
    snprintf(cm->why, sizeof cm->why, "no certificate loaded yet");
    if (cm->o.cert_dir) log_info(COMPONENT, "webhook certificate: files in %s", cm->o.cert_dir);
    else log_info(COMPONENT, "webhook certificate: self-managed in Secret %s/%s", cm->o.namespace,
                  cm->o.secret_name);
    tick(cm);
    if (pthread_create(&cm->thread, NULL, run, cm) != 0) {
        snprintf(err, errlen, "cert manager: cannot start its thread");
        cm_free(cm);
        return NULL;
    }
    return cm;
}

int cert_manager_ready(struct cert_manager *cm, char *why, size_t whylen) {
    time_t now = time(NULL);
    pthread_mutex_lock(&cm->lock);
    int ready = cm->ready && cm->not_after > (long long)now;
    if (!ready && why && whylen) {
        if (cm->ready) snprintf(why, whylen, "webhook certificate expired at %lld", cm->not_after);
        else snprintf(why, whylen, "webhook certificate: %s", cm->why);
    }
    pthread_mutex_unlock(&cm->lock);
    return ready;
}

long long cert_manager_not_after(struct cert_manager *cm) {
    pthread_mutex_lock(&cm->lock);
    long long na = cm->not_after;
    pthread_mutex_unlock(&cm->lock);
    return na;
}

void cert_manager_stop(struct cert_manager *cm) {
    if (!cm) return;
    pthread_mutex_lock(&cm->lock);
    cm->stopping = 1;
    pthread_cond_signal(&cm->cond);
    pthread_mutex_unlock(&cm->lock);
    pthread_join(cm->thread, NULL);
    cm_free(cm);
}
