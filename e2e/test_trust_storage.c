/* test_trust_storage.c — the trust store and the audit log against real
 * redis-server and PostgreSQL (hack/kube-up.sh --redis --redis-tls --postgres).
 *
 * URLs come from the environment, else from $AGENTMESH_CLUSTER_DIR/env:
 * AGENTMESH_TEST_REDIS_URL, AGENTMESH_TEST_REDIS_TLS_URL +
 * AGENTMESH_TEST_REDIS_CA, AGENTMESH_TEST_POSTGRES_URL. A case whose URL is
 * absent prints why and passes without checking anything.
 *
 * Outages are made with a TCP proxy inside this test (down: connections
 * reset and refused; hang: accepted but never answered), so the shared
 * servers other tests use are never stopped; the trust API's own steps over
 * Redis (signals, challenges, verifies on its event loop) are checked
 * through such an outage too. Postgres cases work in a
 * schema of their own, dropped at the end. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/test/check_run.h"
#include "controller/audit_log.h"
#include "controller/audit_spool.h"
#include "controller/redis_conn.h"
#include "controller/test/agent_fixture.h"
#include "controller/trust_api.h"
#include "controller/trust_store.h"
#include "e2e/cluster_env.h"
#include "e2e/signed_client.h"

#define T0 1700000000000LL

static const char *redis_url, *redis_tls_url, *redis_ca, *pg_url;

#define SKIP_UNLESS(var, name)                                                   \
    do {                                                                         \
        if (!(var)) {                                                            \
            printf("SKIP %s: %s not set (run hack/kube-up.sh with the backend)\n", \
                   __func__, name);                                              \
            return;                                                              \
        }                                                                        \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- a TCP proxy we can take down ------------------------------------------ */

enum proxy_mode { PROXY_UP, PROXY_DOWN, PROXY_HANG };

struct proxy {
    int port;                    /* where clients connect */
    struct sockaddr_in target;
    _Atomic int mode;
    _Atomic int stop;
    pthread_t accept_th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int listening;               /* listener state, owned by the accept thread */
    int fds[64];                 /* live sockets, to reset on PROXY_DOWN */
    int nfds, pumps;
};

struct pump {
    struct proxy *p;
    int a, b;
};

static void track(struct proxy *p, int fd, int add)
{
    pthread_mutex_lock(&p->mu);
    if (add && p->nfds < 64) {
        p->fds[p->nfds++] = fd;
    } else if (!add) {
        for (int i = 0; i < p->nfds; i++)
            if (p->fds[i] == fd)
                p->fds[i] = p->fds[--p->nfds];
    }
    pthread_mutex_unlock(&p->mu);
}

static void *pump_main(void *arg)
{
    struct pump *pu = arg;
    struct proxy *p = pu->p;
    char buf[16384];
    for (;;) {
        if (p->mode == PROXY_HANG) {
            usleep(20000);
            if (p->stop)
                break;
            continue;
        }
        struct pollfd pf[2] = {{pu->a, POLLIN, 0}, {pu->b, POLLIN, 0}};
        int n = poll(pf, 2, 100);
        if (p->stop)
            break;
        if (n <= 0 || p->mode == PROXY_HANG)
            continue;
        int done = 0;
        for (int i = 0; i < 2 && !done; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = read(pf[i].fd, buf, sizeof buf);
            if (r <= 0 || send(i ? pu->a : pu->b, buf, (size_t)r, MSG_NOSIGNAL) != r)
                done = 1;
        }
        if (done)
            break;
    }
    track(p, pu->a, 0);
    track(p, pu->b, 0);
    close(pu->a);
    close(pu->b);
    pthread_mutex_lock(&p->mu);
    p->pumps--;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    free(pu);
    return NULL;
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *accept_main(void *arg)
{
    struct proxy *p = arg;
    int lfd = -1;
    while (!p->stop) {
        int want = p->mode != PROXY_DOWN;
        if (want && lfd < 0)
            lfd = listen_on(p->port);
        if (!want && lfd >= 0) {
            close(lfd);
            lfd = -1;
        }
        pthread_mutex_lock(&p->mu);
        p->listening = lfd >= 0;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        if (lfd < 0) {
            usleep(20000);
            continue;
        }
        struct pollfd pf = {lfd, POLLIN, 0};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            continue;
        int t = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(t, (struct sockaddr *)&p->target, sizeof p->target) < 0) {
            close(t);
            close(c);
            continue;
        }
        struct pump *pu = malloc(sizeof *pu);
        *pu = (struct pump){p, c, t};
        track(p, c, 1);
        track(p, t, 1);
        pthread_mutex_lock(&p->mu);
        p->pumps++;
        pthread_mutex_unlock(&p->mu);
        pthread_t th;
        pthread_create(&th, NULL, pump_main, pu);
        pthread_detach(th);
    }
    if (lfd >= 0)
        close(lfd);
    return NULL;
}

static void proxy_start(struct proxy *p, const char *host, int port)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->target.sin_family = AF_INET;
    p->target.sin_port = htons((uint16_t)port);
    ck_assert_msg(inet_pton(AF_INET, strcmp(host, "localhost") ? host : "127.0.0.1", &p->target.sin_addr) == 1,
                  "proxy needs an IPv4 target, got %s", host);
    int fd = listen_on(0);   /* pick a free port, then let the accept thread own it */
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    ck_assert_int_ge(fd, 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    p->port = ntohs(a.sin_port);
    close(fd);
    p->mode = PROXY_UP;
    ck_assert_int_eq(pthread_create(&p->accept_th, NULL, accept_main, p), 0);
    pthread_mutex_lock(&p->mu);
    while (!p->listening)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* Sets the mode; for DOWN also resets every live connection and waits until refused. */
static void proxy_set(struct proxy *p, enum proxy_mode m)
{
    p->mode = m;
    pthread_mutex_lock(&p->mu);
    if (m == PROXY_DOWN)
        for (int i = 0; i < p->nfds; i++)
            shutdown(p->fds[i], SHUT_RDWR);
    while (p->listening != (m != PROXY_DOWN) || (m == PROXY_DOWN && p->pumps > 0))
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

static void proxy_stop(struct proxy *p)
{
    proxy_set(p, PROXY_DOWN);
    p->stop = 1;
    pthread_join(p->accept_th, NULL);
}

/* ---- Redis -------------------------------------------------------------------- */

static struct trust_store *redis_store(const char *url, const char *ca, int io_ms, char *err, size_t errlen)
{
    struct redis_options o = {.url = url, .ca_file = ca, .io_timeout_ms = io_ms, .connect_timeout_ms = io_ms};
    return trust_store_redis_new(&o, err, errlen);
}

/* A Redis store that reaches the test Redis through `px` (started here), so
 * a test can cut or hang the connection; 500 ms I/O budget. */
static struct trust_store *redis_store_through_proxy(struct proxy *px)
{
    char err[256], url[800];
    struct redis_url u;
    ck_assert_int_eq(redis_url_parse(redis_url, &u, err, sizeof err), 0);
    proxy_start(px, u.host, u.port);
    if (u.password[0])
        snprintf(url, sizeof url, "redis://%s:%s@127.0.0.1:%d/%d", u.user, u.password, px->port, u.db);
    else
        snprintf(url, sizeof url, "redis://127.0.0.1:%d/%d", px->port, u.db);
    struct trust_store *s = redis_store(url, NULL, 500, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    return s;
}

static void unique_did(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "did:mesh:e2e-%s-%d-%ld", tag, (int)getpid(), (long)time(NULL));
}

static struct trust_state fresh(int score)
{
    struct trust_state st;
    char err[128];
    ck_assert_int_eq(trust_state_init(&st, score, NULL, T0, err, sizeof err), 0);
    return st;
}

START_TEST(redis_math_matches_c)
{
    SKIP_UNLESS(redis_url, "AGENTMESH_TEST_REDIS_URL");
    char err[256], did[128];
    struct trust_store *s = redis_store(redis_url, NULL, 2000, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    unique_did(did, sizeof did, "math");
    struct trust_state local = fresh(437), got;
    local.params.weights[0] = 0.3;
    local.params.weights[4] = 0.1;
    ck_assert_int_eq(s->create(s, did, &local, err, sizeof err), TS_OK);
    ck_assert_int_eq(s->create(s, did, &local, err, sizeof err), TS_EXISTS);
    ck_assert_int_eq(s->get(s, did, &got, err, sizeof err), TS_OK);
    ck_assert_int_eq(memcmp(&local, &got, sizeof got), 0);
    unsigned seed = 7;
    for (int i = 0; i < 3000; i++) {
        struct trust_signal sig = {(enum trust_dim)(rand_r(&seed) % TRUST_DIM_COUNT), rand_r(&seed) / (double)RAND_MAX,
                                   (rand_r(&seed) % 1500) / 97.0, T0 + (rand_r(&seed) % 100000) * 1000LL};
        ck_assert_int_eq(trust_apply_signal(&local, &sig, err, sizeof err), 0);
        int rc = s->apply_signal(s, did, &sig, &got, err, sizeof err);
        ck_assert_msg(rc == TS_OK, "signal %d: %s", i, err);
        ck_assert_msg(memcmp(&local, &got, sizeof got) == 0, "signal %d: C %.17g vs Redis %.17g", i,
                      local.dims[sig.dim], got.dims[sig.dim]);
    }
    ck_assert_int_eq(trust_score(&local, T0 + 100000000), trust_score(&got, T0 + 100000000));
    /* the stored copy is the same too, and a params change leaves the dims alone */
    struct trust_params p;
    trust_params_default(&p);
    ck_assert_int_eq(s->set_params(s, did, &p, err, sizeof err), TS_OK);
    ck_assert_int_eq(s->get(s, did, &got, err, sizeof err), TS_OK);
    ck_assert_int_eq(memcmp(local.dims, got.dims, sizeof got.dims), 0);
    ck_assert_double_eq(got.params.weights[0], 0.25);
    struct trust_signal bad = {TRUST_DIM_OUTPUT_QUALITY, 1.5, 1, T0};
    ck_assert_int_eq(s->apply_signal(s, did, &bad, NULL, err, sizeof err), TS_INVALID);
    ck_assert_int_eq(s->remove(s, did, err, sizeof err), TS_OK);
    ck_assert_int_eq(s->apply_signal(s, did, &(struct trust_signal){0, 1, 1, T0}, NULL, err, sizeof err),
                     TS_NOT_FOUND);
    ck_assert_int_eq(s->set_params(s, did, &p, err, sizeof err), TS_NOT_FOUND);
    ck_assert_int_eq(s->get(s, did, &got, err, sizeof err), TS_NOT_FOUND);
    trust_store_destroy(s);
}
END_TEST

/* Script cache flushed behind our back: EVALSHA gets NOSCRIPT, EVAL takes over. */
START_TEST(redis_survives_script_flush)
{
    SKIP_UNLESS(redis_url, "AGENTMESH_TEST_REDIS_URL");
    char err[256], did[128];
    struct trust_store *s = redis_store(redis_url, NULL, 2000, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    unique_did(did, sizeof did, "flush");
    struct trust_state st = fresh(500);
    ck_assert_int_eq(s->create(s, did, &st, err, sizeof err), TS_OK);
    struct redis_options o = {.url = redis_url};
    struct redis_conn *c = redis_conn_open(&o, err, sizeof err);
    ck_assert_ptr_nonnull(c);
    const char *flush[] = {"SCRIPT", "FLUSH"};
    redisReply *r = redis_conn_command(c, 2, flush, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    redis_conn_close(c);
    struct trust_signal sig = {TRUST_DIM_OUTPUT_QUALITY, 1, 1, T0};
    ck_assert_msg(s->apply_signal(s, did, &sig, &st, err, sizeof err) == TS_OK, "%s", err);
    ck_assert_double_eq_tol(st.dims[TRUST_DIM_OUTPUT_QUALITY], 55, 1e-9);
    ck_assert_int_eq(s->remove(s, did, err, sizeof err), TS_OK);
    trust_store_destroy(s);
}
END_TEST

/* Runs one command on a fresh plain connection; returns the reply (caller frees). */
static redisReply *admin(const char *url, int argc, const char **argv)
{
    char err[256];
    struct redis_options o = {.url = url};
    struct redis_conn *c = redis_conn_open(&o, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    redisReply *r = redis_conn_command(c, argc, argv, NULL, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    redis_conn_close(c);
    return r;
}

/* AUTH with an ACL user and SELECT of another database, from the URL. */
START_TEST(redis_auth_and_select)
{
    SKIP_UNLESS(redis_url, "AGENTMESH_TEST_REDIS_URL");
    char err[256], did[128], user[64], url[512], key[200];
    struct redis_url u;
    ck_assert_int_eq(redis_url_parse(redis_url, &u, err, sizeof err), 0);
    snprintf(user, sizeof user, "amtest_%d", (int)getpid());
    const char *add[] = {"ACL", "SETUSER", user, "on", ">p@ss:w0rd", "~*", "&*", "+@all"};
    freeReplyObject(admin(redis_url, 8, add));
    snprintf(url, sizeof url, "redis://%s:p%%40ss%%3Aw0rd@%s:%d/5", user, u.host, u.port);
    struct trust_store *s = redis_store(url, NULL, 2000, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    unique_did(did, sizeof did, "auth");
    struct trust_state st = fresh(500);
    ck_assert_int_eq(s->create(s, did, &st, err, sizeof err), TS_OK);
    /* the state landed in database 5, not in the URL-less default 0 */
    snprintf(key, sizeof key, "agentmesh:trust:%s", did);
    const char *exists[] = {"EXISTS", key};
    redisReply *r = admin(redis_url, 2, exists);
    ck_assert_int_eq(r->integer, 0);
    freeReplyObject(r);
    ck_assert_int_eq(s->remove(s, did, err, sizeof err), TS_OK);
    trust_store_destroy(s);
    snprintf(url, sizeof url, "redis://%s:wrong@%s:%d/5", user, u.host, u.port);
    ck_assert_ptr_null(redis_store(url, NULL, 2000, err, sizeof err));
    ck_assert_msg(strstr(err, "AUTH") && strstr(err, "WRONGPASS"), "%s", err);
    const char *del[] = {"ACL", "DELUSER", user};
    freeReplyObject(admin(redis_url, 3, del));
}
END_TEST

struct worker {
    struct trust_store *s;
    const char *did;
    enum trust_dim dim;
    int n;
};

static struct trust_signal nth_signal(enum trust_dim dim, int i)
{
    return (struct trust_signal){dim, ((i * 37 + (int)dim * 11) % 101) / 100.0, ((i * 13) % 25) / 10.0, T0 + i};
}

static void *work(void *arg)
{
    struct worker *w = arg;
    char err[256];
    for (int i = 0; i < w->n; i++) {
        struct trust_signal sig = nth_signal(w->dim, i);
        if (w->s->apply_signal(w->s, w->did, &sig, NULL, err, sizeof err) != TS_OK) {
            fprintf(stderr, "worker %d signal %d: %s\n", (int)w->dim, i, err);
            return (void *)"failed";
        }
    }
    return NULL;
}

START_TEST(redis_concurrent_signals_equal_sequential)
{
    SKIP_UNLESS(redis_url, "AGENTMESH_TEST_REDIS_URL");
    char err[256], did[128];
    struct trust_store *s = redis_store(redis_url, NULL, 2000, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    unique_did(did, sizeof did, "conc");
    struct trust_state expect = fresh(500), got;
    ck_assert_int_eq(s->create(s, did, &expect, err, sizeof err), TS_OK);
    /* 4 threads x 2,500 = 10,000 signals; each thread owns one dimension, so
     * any interleaving must give exactly the sequential result */
    pthread_t th[4];
    struct worker w[4];
    double t = now_s();
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){s, did, (enum trust_dim)i, 2500};
        ck_assert_int_eq(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *res;
        pthread_join(th[i], &res);
        ck_assert_ptr_null(res);
    }
    printf("redis: 10000 signals from 4 threads in %.2f s\n", now_s() - t);
    for (int d = 0; d < 4; d++)
        for (int i = 0; i < 2500; i++) {
            struct trust_signal sig = nth_signal((enum trust_dim)d, i);
            ck_assert_int_eq(trust_apply_signal(&expect, &sig, err, sizeof err), 0);
        }
    ck_assert_int_eq(s->get(s, did, &got, err, sizeof err), TS_OK);
    ck_assert_int_eq(memcmp(&expect, &got, sizeof got), 0);
    ck_assert_int_eq(s->remove(s, did, err, sizeof err), TS_OK);
    trust_store_destroy(s);
}
END_TEST

START_TEST(redis_challenges_and_replay)
{
    SKIP_UNLESS(redis_url, "AGENTMESH_TEST_REDIS_URL");
    char err[256], id[128], v[128];
    struct trust_store *a = redis_store(redis_url, NULL, 2000, err, sizeof err);
    struct trust_store *b = redis_store(redis_url, NULL, 2000, err, sizeof err);   /* another replica */
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    snprintf(id, sizeof id, "challenge_e2e_%d_%ld", (int)getpid(), (long)time(NULL));
    ck_assert_int_eq(a->put_challenge(a, id, "nonce-abc", 30000, err, sizeof err), TS_OK);
    ck_assert_int_eq(b->put_challenge(b, id, "other", 30000, err, sizeof err), TS_EXISTS);
    ck_assert_int_eq(b->take_challenge(b, id, v, sizeof v, err, sizeof err), TS_OK);
    ck_assert_str_eq(v, "nonce-abc");
    ck_assert_int_eq(a->take_challenge(a, id, v, sizeof v, err, sizeof err), TS_NOT_FOUND);   /* single use */
    ck_assert_int_eq(a->put_challenge(a, id, "short-lived", 100, err, sizeof err), TS_OK);
    usleep(250 * 1000);
    ck_assert_int_eq(b->take_challenge(b, id, v, sizeof v, err, sizeof err), TS_NOT_FOUND);   /* expired */
    char key[160];
    snprintf(key, sizeof key, "sig-%s", id);
    ck_assert_int_eq(a->remember(a, key, 200, err, sizeof err), TS_OK);
    ck_assert_int_eq(b->remember(b, key, 200, err, sizeof err), TS_EXISTS);
    usleep(350 * 1000);
    ck_assert_int_eq(b->remember(b, key, 200, err, sizeof err), TS_OK);
    trust_store_destroy(a);
    trust_store_destroy(b);
}
END_TEST

static char heard_did[128];
static _Atomic int heard;

static void on_update(const char *did, void *arg)
{
    if (strcmp(did, (const char *)arg) == 0) {
        snprintf(heard_did, sizeof heard_did, "%s", did);
        heard++;
    }
}

START_TEST(redis_updates_reach_other_replicas)
{
    SKIP_UNLESS(redis_url, "AGENTMESH_TEST_REDIS_URL");
    char err[256], did[128];
    struct trust_store *a = redis_store(redis_url, NULL, 2000, err, sizeof err);
    struct trust_store *b = redis_store(redis_url, NULL, 2000, err, sizeof err);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    unique_did(did, sizeof did, "pubsub");
    heard = 0;
    ck_assert_int_eq(b->set_listener(b, on_update, did), 0);
    usleep(300 * 1000);   /* let the subscriber connect */
    struct trust_state st = fresh(500);
    ck_assert_int_eq(a->create(a, did, &st, err, sizeof err), TS_OK);
    struct trust_signal sig = {TRUST_DIM_SECURITY_POSTURE, 0.9, 1, T0};
    ck_assert_int_eq(a->apply_signal(a, did, &sig, NULL, err, sizeof err), TS_OK);
    for (int i = 0; i < 100 && heard < 2; i++)
        usleep(20 * 1000);
    ck_assert_int_eq(heard, 2);
    ck_assert_str_eq(heard_did, did);
    ck_assert_int_eq(a->remove(a, did, err, sizeof err), TS_OK);
    trust_store_destroy(a);
    trust_store_destroy(b);
}
END_TEST

START_TEST(redis_tls)
{
    SKIP_UNLESS(redis_tls_url, "AGENTMESH_TEST_REDIS_TLS_URL");
    SKIP_UNLESS(redis_ca, "AGENTMESH_TEST_REDIS_CA");
    char err[256], did[128];
    struct trust_store *s = redis_store(redis_tls_url, redis_ca, 2000, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    unique_did(did, sizeof did, "tls");
    struct trust_state st = fresh(500), got;
    ck_assert_int_eq(s->create(s, did, &st, err, sizeof err), TS_OK);
    struct trust_signal sig = {TRUST_DIM_OUTPUT_QUALITY, 1, 2, T0};
    ck_assert_int_eq(trust_apply_signal(&st, &sig, err, sizeof err), 0);
    ck_assert_int_eq(s->apply_signal(s, did, &sig, &got, err, sizeof err), TS_OK);
    ck_assert_int_eq(memcmp(&st, &got, sizeof got), 0);
    ck_assert_int_eq(s->remove(s, did, err, sizeof err), TS_OK);
    trust_store_destroy(s);
    /* the system CAs do not know the test CA: the handshake must fail, naming the certificate */
    double t = now_s();
    ck_assert_ptr_null(redis_store(redis_tls_url, "/etc/ssl/certs/ca-certificates.crt", 2000, err, sizeof err));
    ck_assert_msg(strstr(err, "certificate") != NULL, "%s", err);
    ck_assert(now_s() - t < 2.5);
    /* plain RESP to the TLS port is not mistaken for a working connection */
    struct redis_url u;
    ck_assert_int_eq(redis_url_parse(redis_tls_url, &u, err, sizeof err), 0);
    char plain[300];
    snprintf(plain, sizeof plain, "redis://%s:%d", u.host, u.port);
    ck_assert_ptr_null(redis_store(plain, NULL, 500, err, sizeof err));
}
END_TEST

START_TEST(redis_down_fails_fast_and_recovers)
{
    SKIP_UNLESS(redis_url, "AGENTMESH_TEST_REDIS_URL");
    char err[256], did[128];
    struct proxy px;
    struct trust_store *s = redis_store_through_proxy(&px);
    unique_did(did, sizeof did, "down");
    struct trust_state st = fresh(500);
    struct trust_signal sig = {TRUST_DIM_SECURITY_POSTURE, 1, 1, T0};
    ck_assert_int_eq(s->create(s, did, &st, err, sizeof err), TS_OK);
    ck_assert_int_eq(s->apply_signal(s, did, &sig, NULL, err, sizeof err), TS_OK);

    proxy_set(&px, PROXY_DOWN);   /* killed: connections reset, connects refused */
    double t = now_s();
    ck_assert_int_eq(s->apply_signal(s, did, &sig, NULL, err, sizeof err), TS_UNAVAILABLE);
    ck_assert_int_eq(s->remember(s, "k", 1000, err, sizeof err), TS_UNAVAILABLE);
    double took = now_s() - t;
    printf("redis down: two calls failed in %.3f s (%s)\n", took, err);
    ck_assert_msg(took < 1.0, "took %.3f s", took);
    ck_assert_ptr_nonnull(strstr(err, "redis"));

    proxy_set(&px, PROXY_HANG);   /* accepts but never answers: the I/O timeout bounds it */
    t = now_s();
    ck_assert_int_eq(s->apply_signal(s, did, &sig, NULL, err, sizeof err), TS_UNAVAILABLE);
    took = now_s() - t;
    printf("redis hung: failed in %.3f s (%s)\n", took, err);
    ck_assert_msg(took >= 0.4 && took < 1.5, "took %.3f s", took);

    proxy_set(&px, PROXY_DOWN);
    proxy_set(&px, PROXY_UP);     /* back */
    struct trust_state got;
    ck_assert_msg(s->apply_signal(s, did, &sig, &got, err, sizeof err) == TS_OK, "%s", err);
    /* exactly the successful signals were applied: two of them */
    ck_assert_int_eq(trust_apply_signal(&st, &sig, err, sizeof err), 0);
    ck_assert_int_eq(trust_apply_signal(&st, &sig, err, sizeof err), 0);
    ck_assert_int_eq(memcmp(&st, &got, sizeof got), 0);
    ck_assert_int_eq(s->remove(s, did, err, sizeof err), TS_OK);
    trust_store_destroy(s);
    proxy_stop(&px);
}
END_TEST

/* ---- the trust API over Redis ---------------------------------------------- */

static struct identity alice, bob;


/* One signed request from alice on fd: the HTTP status, reply body in out. */
static int api_call(int fd, const char *path, const char *body, char *out, size_t outlen)
{
    char req[4096];
    int len = sc_build(req, sizeof req, alice.sk, alice.did, "POST", path, body);
    ck_assert_int_gt(len, 0);
    return sc_roundtrip(fd, req, (size_t)len, out, outlen);
}

/* alice asks a challenge for bob into id/nonce: the HTTP status. */
static int ask(int fd, char id[64], char nonce[128])
{
    char body[128], reply[1024], err[128];
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\"}", bob.did);
    int code = api_call(fd, "/api/v1/handshake/challenge", body, reply, sizeof reply);
    if (code != 200)
        return code;
    json_t *j = json_parse(reply, strlen(reply), err, sizeof err);
    ck_assert_ptr_nonnull(j);
    snprintf(id, 64, "%s", json_str_at(j, "challenge_id"));
    snprintf(nonce, 128, "%s", json_str_at(j, "nonce"));
    json_decref(j);
    return 200;
}

/* bob answers (id, nonce) and alice verifies: the HTTP status, reply in out. */
static int answer(int fd, const char *id, const char *nonce, char *out, size_t outlen)
{
    char msg[512], body[1024], sig_b64[ID_SIG_B64_BUFSZ];
    const char *rnonce = "00112233445566778899aabbccddeeff";
    unsigned char sig[ID_SIG_LEN];
    int n = snprintf(msg, sizeof msg, "%s:%s:%s:%s", id, nonce, rnonce, bob.did);
    ck_assert_int_eq(identity_sign(&bob, msg, (size_t)n, sig), 0);
    ck_assert_int_eq(b64_encode(sig, sizeof sig, sig_b64, sizeof sig_b64), 0);
    snprintf(body, sizeof body,
             "{\"challenge_id\":\"%s\",\"agent_did\":\"%s\",\"response_nonce\":\"%s\",\"signature\":\"%s\"}", id,
             bob.did, rnonce, sig_b64);
    return api_call(fd, "/api/v1/handshake/verify", body, out, outlen);
}

/* A whole handshake: 1 when bob is verified, 0 when it failed with 503
 * (code in *failed), asserting nothing else happens. */
static int handshake(int fd, int *failed)
{
    char id[64], nonce[128], reply[1024];
    int code = ask(fd, id, nonce);
    if (code == 200)
        code = answer(fd, id, nonce, reply, sizeof reply);
    *failed = code;
    if (code != 200) {
        ck_assert_int_eq(code, 503);
        return 0;
    }
    ck_assert_msg(strstr(reply, "\"verified\":true") != NULL, "%s", reply);
    return 1;
}

/* The API's store steps run on its event loop over Redis: handshakes and
 * signals work (also after the server lost its scripts), fail fast with
 * 503 while Redis is down, never hold the loop while Redis hangs (another
 * request is served meanwhile), and work again when it is back. */
START_TEST(redis_api_outage_503_and_recovery)
{
    SKIP_UNLESS(redis_url, "AGENTMESH_TEST_REDIS_URL");
    char err[256], reply[1024], body[256];
    struct proxy px;
    struct trust_store *s = redis_store_through_proxy(&px);
    ck_assert_int_eq(identity_init(), 0);
    ck_assert_int_eq(identity_generate(&alice), 0);
    ck_assert_int_eq(identity_generate(&bob), 0);
    struct agent_registry *reg = agent_registry_new();
    ck_assert_ptr_nonnull(reg);
    ck_assert_int_eq(fixture_put_agent(reg, &alice, "e2e-storage", "alice", "Active", 600, 0, "[]"), 0);
    ck_assert_int_eq(fixture_put_agent(reg, &bob, "e2e-storage", "bob", "Active", 600, 0, "[]"), 0);
    struct trust_api_options o = {.address = "127.0.0.1", .threads = 1, .registry = reg, .store = s};
    struct trust_api *api = trust_api_new(&o, err, sizeof err);
    ck_assert_msg(api && trust_api_start(api, err, sizeof err) == 0, "%s", err);
    int port = trust_api_port(api), failed;
    int fd = sc_dial(port);
    ck_assert_int_ge(fd, 0);

    ck_assert(handshake(fd, &failed));
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\",\"dimension\":\"outputQuality\",\"value\":1,\"source\":\"e2e\"}",
             bob.did);
    ck_assert_int_eq(api_call(fd, "/api/v1/signals", body, reply, sizeof reply), 200);
    const char *flush[] = {"SCRIPT", "FLUSH"};
    freeReplyObject(admin(redis_url, 2, flush));
    ck_assert(handshake(fd, &failed));   /* NOSCRIPT: the step is sent again as EVAL */
    ck_assert_int_eq(api_call(fd, "/api/v1/signals", body, reply, sizeof reply), 200);

    char id[64], nonce[128], id2[64], nonce2[128];
    ck_assert_int_eq(ask(fd, id, nonce), 200);
    proxy_set(&px, PROXY_DOWN);
    double t = now_s();
    ck_assert_int_eq(ask(fd, id2, nonce2), 503);
    ck_assert_int_eq(answer(fd, id, nonce, reply, sizeof reply), 503);
    ck_assert_ptr_nonnull(strstr(reply, "StoreUnavailable"));
    ck_assert_int_eq(api_call(fd, "/api/v1/signals", body, reply, sizeof reply), 503);
    double took = now_s() - t;
    printf("redis down: challenge, verify and signal answered 503 in %.3f s\n", took);
    ck_assert_msg(took < 1.0, "took %.3f s", took);

    /* Hung: a challenge waits for its reply on the loop, and meanwhile the
     * same loop answers another connection; then the I/O timeout ends it. */
    proxy_set(&px, PROXY_UP);
    usleep(1100 * 1000);          /* past the reconnect back-off */
    proxy_set(&px, PROXY_HANG);
    int fd2 = sc_dial(port);
    ck_assert_int_ge(fd2, 0);
    char req[4096], hreq[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\"}", bob.did);
    int len = sc_build(req, sizeof req, alice.sk, alice.did, "POST", "/api/v1/handshake/challenge", body);
    ck_assert_int_gt(len, 0);
    t = now_s();
    ck_assert_int_eq(write(fd, req, (size_t)len), len);
    usleep(50 * 1000);            /* the challenge is on the loop, waiting on Redis */
    double h0 = now_s();
    ck_assert_int_eq(sc_roundtrip(fd2, hreq, sizeof hreq - 1, reply, sizeof reply), 200);
    double healthz = now_s() - h0;
    ck_assert_int_eq(sc_roundtrip(fd, req, 0, reply, sizeof reply), 503);   /* reads the challenge's reply */
    took = now_s() - t;
    printf("redis hung: /healthz answered in %.3f s meanwhile; the challenge got 503 in %.3f s (%s)\n", healthz,
           took, reply);
    ck_assert_msg(healthz < 0.3, "healthz took %.3f s: the loop waited on Redis", healthz);
    ck_assert_msg(took >= 0.4 && took < 2.0, "took %.3f s", took);
    close(fd2);

    proxy_set(&px, PROXY_DOWN);
    proxy_set(&px, PROXY_UP);     /* back: within the reconnect back-off, handshakes work again */
    int ok = 0;
    for (int i = 0; i < 50 && !ok; i++) {
        if (!(ok = handshake(fd, &failed)))
            usleep(100 * 1000);
    }
    ck_assert_msg(ok, "no handshake within 5 s of Redis coming back (last %d)", failed);
    snprintf(body, sizeof body, "{\"agent_did\":\"%s\",\"dimension\":\"outputQuality\",\"value\":1,\"source\":\"e2e\"}",
             bob.did);
    ck_assert_int_eq(api_call(fd, "/api/v1/signals", body, reply, sizeof reply), 200);
    close(fd);
    trust_api_free(api);
    ck_assert_int_eq(s->remove(s, bob.did, err, sizeof err), TS_OK);
    trust_store_destroy(s);
    agent_registry_free(reg);
    identity_wipe(&alice);
    identity_wipe(&bob);
    proxy_stop(&px);
}
END_TEST

/* ---- PostgreSQL ------------------------------------------------------------ */

static char schema[64];
static char pg_conninfo[1024];     /* the test URL's parameters in our schema */

/* Appends key='value' (quoted for libpq) to buf. */
static void kv(char *buf, size_t n, const char *k, const char *v)
{
    size_t off = strlen(buf);
    off += (size_t)snprintf(buf + off, n - off, "%s='", k);
    for (; *v && off + 3 < n; v++) {
        if (*v == '\'' || *v == '\\')
            buf[off++] = '\\';
        buf[off++] = *v;
    }
    snprintf(buf + off, n - off, "' ");
}

/* A conninfo for the test database, through host:port when port > 0, in `schema`. */
static void conninfo(char *buf, size_t n, const char *host, int port)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(pg_url, &perr);
    ck_assert_msg(opts != NULL, "%s", perr ? perr : "bad url");
    buf[0] = '\0';
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !strcmp(o->keyword, "options"))
            continue;
        if (port > 0 && !strcmp(o->keyword, "host"))
            kv(buf, n, "host", host);
        else if (port > 0 && (!strcmp(o->keyword, "port") || !strcmp(o->keyword, "hostaddr")))
            continue;
        else
            kv(buf, n, o->keyword, o->val);
    }
    if (port > 0) {
        char p[16];
        snprintf(p, sizeof p, "%d", port);
        kv(buf, n, "port", p);
    }
    char opt[128];
    snprintf(opt, sizeof opt, "-csearch_path=%s", schema);
    kv(buf, n, "options", opt);
    PQconninfoFree(opts);
}

static void psql(const char *sql)
{
    PGconn *c = PQconnectdb(pg_conninfo);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

static long long psql_count(const char *sql)
{
    PGconn *c = PQconnectdb(pg_conninfo);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    long long n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return n;
}

static void pg_setup(void)
{
    if (!pg_url)
        return;
    snprintf(schema, sizeof schema, "amtest_%d_%ld", (int)getpid(), (long)time(NULL));
    conninfo(pg_conninfo, sizeof pg_conninfo, NULL, 0);
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
    psql(sql);
}

static void pg_teardown(void)
{
    if (!pg_url)
        return;
    char sql[128];
    snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
    psql(sql);
}

static struct audit_event event(int i, const char *type)
{
    struct audit_event ev;
    char err[256], id[64];
    snprintf(id, sizeof id, "evt_e2e_%04d", i);
    json_t *data = json_pack("{s:i, s:f, s:s, s:[i,i]}", "n", i, "value", i / 7.0, "note", "ünïcode ✓", "l", i, -i);
    ck_assert_int_eq(audit_event_init(&ev, id, type, "did:mesh:00112233445566778899aabbccddeeff", T0 + i * 1001,
                                      data, err, sizeof err),
                     0);
    return ev;
}

struct appender {
    int from, to;
};

static void *append_range(void *arg)
{
    struct appender *a = arg;
    char err[256];
    struct audit_log *l = audit_log_new(pg_conninfo, err, sizeof err);   /* one per "replica" */
    if (!l)
        return (void *)"new";
    void *res = NULL;
    for (int i = a->from; i < a->to && !res; i++) {
        struct audit_event ev = event(i, "trust.signal");
        if (audit_log_append(l, &ev, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "append %d: %s\n", i, err);
            res = (void *)"append";
        }
        audit_event_clear(&ev);
    }
    audit_log_free(l);
    return res;
}

START_TEST(audit_chain_appends_idempotently_and_verifies)
{
    SKIP_UNLESS(pg_url, "AGENTMESH_TEST_POSTGRES_URL");
    char err[256], h1[65], h2[65];
    struct audit_log *l = audit_log_new(pg_conninfo, err, sizeof err);
    ck_assert_msg(l != NULL, "%s", err);
    ck_assert_msg(audit_log_ping(l, err, sizeof err) == 0, "%s", err);
    struct audit_event ev = event(0, "agent.created");
    ck_assert_msg(audit_log_append(l, &ev, h1, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(audit_log_append(l, &ev, h2, err, sizeof err), 1);   /* same id: nothing new */
    ck_assert_str_eq(h1, h2);
    audit_event_clear(&ev);
    /* four replicas appending at once keep one chain */
    pthread_t th[4];
    struct appender ap[4];
    for (int i = 0; i < 4; i++) {
        ap[i] = (struct appender){1 + i * 50, 1 + (i + 1) * 50};
        ck_assert_int_eq(pthread_create(&th[i], NULL, append_range, &ap[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *res;
        pthread_join(th[i], &res);
        ck_assert_ptr_null(res);
    }
    struct audit_verify_result v;
    ck_assert_int_eq(audit_log_verify(l, &v, err, sizeof err), 0);
    ck_assert_int_eq(v.chain_valid, 1);
    ck_assert_int_eq(v.entries, 201);
    ck_assert_int_eq(psql_count("SELECT count(*) FROM audit_log"), 201);
    ck_assert_int_eq(psql_count("SELECT count(DISTINCT previous_hash) FROM audit_log"), 201);
    ck_assert_int_eq(audit_log_record_score(l, "did:mesh:00112233445566778899aabbccddeeff", 827, "trusted", T0, err,
                                            sizeof err),
                     0);
    ck_assert_int_eq(psql_count("SELECT count(*) FROM score_history WHERE score = 827 AND tier = 'trusted'"), 1);

    /* tampering with one row's data breaks the chain at that row */
    psql("UPDATE audit_log SET data = jsonb_set(data, '{n}', '999') WHERE id = 'evt_e2e_0120'");
    ck_assert_int_eq(audit_log_verify(l, &v, err, sizeof err), 0);
    ck_assert_int_eq(v.chain_valid, 0);
    ck_assert_str_eq(v.first_bad_id, "evt_e2e_0120");
    ck_assert_int_eq(v.entries, 201);
    audit_log_free(l);
}
END_TEST

START_TEST(audit_tampered_order_or_hash_detected)
{
    SKIP_UNLESS(pg_url, "AGENTMESH_TEST_POSTGRES_URL");
    char err[256];
    struct audit_log *l = audit_log_new(pg_conninfo, err, sizeof err);
    ck_assert_ptr_nonnull(l);
    for (int i = 0; i < 5; i++) {
        struct audit_event ev = event(i, "trust.signal");
        ck_assert_msg(audit_log_append(l, &ev, NULL, err, sizeof err) == 0, "%s", err);
        audit_event_clear(&ev);
    }
    struct audit_verify_result v;
    ck_assert_int_eq(audit_log_verify(l, &v, err, sizeof err), 0);
    ck_assert_int_eq(v.chain_valid, 1);
    psql("DELETE FROM audit_log WHERE id = 'evt_e2e_0002'");   /* a removed entry */
    ck_assert_int_eq(audit_log_verify(l, &v, err, sizeof err), 0);
    ck_assert_int_eq(v.chain_valid, 0);
    ck_assert_str_eq(v.first_bad_id, "evt_e2e_0003");
    audit_log_free(l);
}
END_TEST

START_TEST(postgres_down_spools_then_drains_exactly_once)
{
    SKIP_UNLESS(pg_url, "AGENTMESH_TEST_POSTGRES_URL");
    char err[256], info[1024], dir[64];
    PQconninfoOption *opts = PQconninfoParse(pg_url, NULL);
    const char *host = "127.0.0.1";
    int port = 5432;
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (o->val && !strcmp(o->keyword, "host") && o->val[0] != '/')
            host = o->val;
        if (o->val && !strcmp(o->keyword, "port"))
            port = atoi(o->val);
    }
    struct proxy px;
    proxy_start(&px, host, port);
    PQconninfoFree(opts);
    conninfo(info, sizeof info, "127.0.0.1", px.port);
    struct audit_log *l = audit_log_new(info, err, sizeof err);
    ck_assert_msg(l != NULL, "%s", err);
    snprintf(dir, sizeof dir, "/tmp/e2e_spool.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct audit_spool *sp = audit_spool_open(dir, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(sp);

    /* up: delivered straight through */
    for (int i = 0; i < 3; i++) {
        struct audit_event ev = event(i, "trust.signal");
        char *payload = audit_event_canonical(&ev);
        ck_assert_int_eq(audit_spool_deliver(sp, payload, strlen(payload), audit_log_spool_sink, l, err, sizeof err), 0);
        free(payload);
        audit_event_clear(&ev);
    }
    ck_assert_uint_eq(audit_spool_count(sp), 0);

    proxy_set(&px, PROXY_DOWN);
    double t = now_s();
    ck_assert_int_eq(audit_log_ping(l, err, sizeof err), -1);
    ck_assert_msg(now_s() - t < 3.0, "ping took %.2f s", now_s() - t);
    for (int i = 3; i < 23; i++) {
        struct audit_event ev = event(i, "trust.signal");
        char *payload = audit_event_canonical(&ev);
        ck_assert_int_eq(audit_spool_deliver(sp, payload, strlen(payload), audit_log_spool_sink, l, err, sizeof err), 0);
        free(payload);
        audit_event_clear(&ev);
    }
    ck_assert_uint_eq(audit_spool_count(sp), 20);
    size_t n = 0;
    ck_assert_int_eq(audit_spool_drain(sp, audit_log_spool_sink, l, &n, err, sizeof err), -1);   /* still down */
    ck_assert_uint_eq(n, 0);

    /* a controller restart while down: the spool survives it */
    audit_spool_close(sp);
    sp = audit_spool_open(dir, NULL, err, sizeof err);
    ck_assert_uint_eq(audit_spool_count(sp), 20);
    /* and one event is spooled twice (a crash after delivery, before unlink) */
    struct audit_event dup = event(3, "trust.signal");
    char *payload = audit_event_canonical(&dup);
    ck_assert_int_eq(audit_spool_push(sp, payload, strlen(payload), err, sizeof err), 0);
    free(payload);
    audit_event_clear(&dup);

    proxy_set(&px, PROXY_UP);
    ck_assert_msg(audit_spool_drain(sp, audit_log_spool_sink, l, &n, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(n, 21);
    ck_assert_uint_eq(audit_spool_count(sp), 0);
    ck_assert_int_eq(psql_count("SELECT count(*) FROM audit_log"), 23);
    ck_assert_int_eq(psql_count("SELECT count(DISTINCT id) FROM audit_log"), 23);
    /* delivered in order: seq follows the event number */
    ck_assert_int_eq(psql_count("SELECT count(*) FROM (SELECT id, lag(id) OVER (ORDER BY seq) AS prev FROM audit_log) x "
                                "WHERE prev IS NOT NULL AND prev > id"),
                     0);
    struct audit_verify_result v;
    ck_assert_int_eq(audit_log_verify(l, &v, err, sizeof err), 0);
    ck_assert_int_eq(v.chain_valid, 1);
    ck_assert_int_eq(v.entries, 23);
    audit_spool_close(sp);
    rmdir(dir);
    audit_log_free(l);
    proxy_stop(&px);
}
END_TEST

int main(void)
{
    load_cluster_env();
    redis_url = getenv("AGENTMESH_TEST_REDIS_URL");
    redis_tls_url = getenv("AGENTMESH_TEST_REDIS_TLS_URL");
    redis_ca = getenv("AGENTMESH_TEST_REDIS_CA");
    pg_url = getenv("AGENTMESH_TEST_POSTGRES_URL");
    Suite *s = suite_create("trust_storage");
    TCase *r = tcase_create("redis");
    tcase_set_timeout(r, 120);
    tcase_add_test(r, redis_math_matches_c);
    tcase_add_test(r, redis_survives_script_flush);
    tcase_add_test(r, redis_auth_and_select);
    tcase_add_test(r, redis_concurrent_signals_equal_sequential);
    tcase_add_test(r, redis_challenges_and_replay);
    tcase_add_test(r, redis_updates_reach_other_replicas);
    tcase_add_test(r, redis_tls);
    tcase_add_test(r, redis_down_fails_fast_and_recovers);
    tcase_add_test(r, redis_api_outage_503_and_recovery);
    suite_add_tcase(s, r);
    TCase *p = tcase_create("postgres");
    tcase_set_timeout(p, 120);
    tcase_add_checked_fixture(p, pg_setup, pg_teardown);
    tcase_add_test(p, audit_chain_appends_idempotently_and_verifies);
    tcase_add_test(p, audit_tampered_order_or_hash_detected);
    tcase_add_test(p, postgres_down_spools_then_drains_exactly_once);
    suite_add_tcase(s, p);
    return check_run(s, CK_FORK_GETENV);
}
