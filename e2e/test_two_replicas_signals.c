/* test_two_replicas_signals.c — two agentmesh-controller processes sharing
 * one Redis take 10,000 concurrent signed signals, split between their trust
 * APIs, and lose none (issue 5: "concurrent updates from several replicas
 * lose nothing — atomic Lua").
 *
 * The agents are real AgentIdentity objects: replica A, the leader,
 * reconciles them (keys, Secrets, status); replica B starts once they exist
 * and stays a standby, which still learns them from the cluster and serves
 * them (agent_refresh). The reporter's key is read from its identity
 * Secret, as the sidecar would mount it.
 *
 * Why the final state is predictable although the order of arrival is not:
 * every signal on one dimension has the same value and weight, so each is
 * the same map dim <- dim*(1-a) + 100*v*a, and n of them give f^n(dim) in
 * any order. Weights are small (a <= 0.001), so 2,000 applications are far
 * from the fixed point and one lost or doubled update changes the result;
 * the comparison is exact (the API prints doubles with 17 digits). A
 * TrustPolicy sets decayPerHour 0, so the score does not depend on when it
 * is read. Without a cluster (KUBECONFIG, AGENTMESH_TEST_REDIS_URL) the test
 * prints why and passes without checking anything. */
#include <check.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/test/check_run.h"
#include "controller/redis_conn.h"
#include "controller/trust_engine.h"
#include "controller/trust_store.h"
#include "e2e/signed_client.h"

#define SIGNALS 10000
#define CLIENTS 8                  /* keep-alive connections, half to each replica */
#define WAIT_SECONDS 90

/* Per dimension: every signal's value and weight (a = 0.1 * weight). */
static const double values[TRUST_DIM_COUNT] = {0.9, 0.2, 0.7, 0.4, 1.0};
static const double weights[TRUST_DIM_COUNT] = {0.01, 0.005, 0.008, 0.002, 0.004};

static const char *redis_url, *kubeconfig;
static char ns[64], opns[64], work[PATH_MAX], controller_bin[PATH_MAX];
static pid_t replicas[2];
static int api_port[2];
static char reporter_did[ID_DID_BUFSZ], subject_did[ID_DID_BUFSZ];
static unsigned char reporter_sk[ID_SK_LEN];

/* ---- shell and cluster ------------------------------------------------------------ */

/* Runs a shell command; its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    ck_assert_msg(n > 0 && (size_t)n < sizeof cmd, "command too long");
    int rc = system(cmd);
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* The first line a shell command prints, into out ("" when none). */
static void sh_read(char *out, size_t outlen, const char *cmd) {
    FILE *p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "popen %s: %s", cmd, strerror(errno));
    if (!fgets(out, (int)outlen, p)) out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    pclose(p);
}

/* A port nothing listens on now (bound, read, released). */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void start_replica(int i) {
    char metrics[16], api[16], spool[PATH_MAX + 16], log[PATH_MAX + 16];
    api_port[i] = free_port();
    snprintf(api, sizeof api, "%d", api_port[i]);
    snprintf(metrics, sizeof metrics, "%d", free_port());
    snprintf(spool, sizeof spool, "%s/spool-%d", work, i);
    snprintf(log, sizeof log, "%s/replica-%d.log", work, i);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        FILE *f = freopen(log, "w", stderr);
        if (!f || dup2(fileno(stderr), STDOUT_FILENO) < 0) _exit(127);
        execl(controller_bin, controller_bin, "--kubeconfig", kubeconfig, "--namespace", opns, "--redis-url",
              redis_url, "--api-port", api, "--metrics-port", metrics, "--webhook-port", "0", "--bind-address",
              "127.0.0.1", "--webhook-cert-dir", work, "--audit-spool-dir", spool,
              "--status-min-interval", "1", (char *)NULL);
        _exit(127);
    }
    replicas[i] = pid;
}

/* jsonpath of an AgentIdentity in ns into out; "" until it is there. */
static void agid_field(const char *name, const char *path, char *out, size_t outlen) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "kubectl -n %s get agid %s -o jsonpath='%s' 2>/dev/null", ns, name, path);
    sh_read(out, outlen, cmd);
}

/* The end of replica i's log on stderr, to explain a failure before the work dir goes. */
static void show_log(int i) {
    fprintf(stderr, "--- replica %d log (last lines) ---\n", i);
    if (sh("tail -n 25 %s/replica-%d.log >&2", work, i) != 0) fprintf(stderr, "(no log)\n");
}

/* Fails at once (with its log) when replica i has exited. */
static void assert_running(int i) {
    int status;
    if (waitpid(replicas[i], &status, WNOHANG) != replicas[i]) return;
    replicas[i] = 0;
    show_log(i);
    ck_abort_msg("replica %d exited (status %d)", i, status);
}

static void wait_did(const char *name, char *did) {
    for (int i = 0; i < WAIT_SECONDS * 2; i++) {
        assert_running(0);
        agid_field(name, "{.status.did}", did, ID_DID_BUFSZ);
        if (identity_did_valid(did)) return;
        usleep(500000);
    }
    show_log(0);
    ck_abort_msg("AgentIdentity %s got no status.did within %d s (see %s/replica-0.log)", name, WAIT_SECONDS, work);
}

/* The reporter's secret key, from its identity Secret. */
static void read_reporter_key(void) {
    char cmd[512], b64[256];
    snprintf(cmd, sizeof cmd,
             "kubectl -n %s get secret reporter-agentmesh-identity -o jsonpath='{.data.ed25519\\.key}'", ns);
    sh_read(b64, sizeof b64, cmd);
    /* Secret data is base64 of the 64 raw libsodium secret-key bytes. */
    ck_assert_msg(b64_decode_exact(b64, strlen(b64), reporter_sk, sizeof reporter_sk) == 0,
                  "reporter Secret has no 64-byte ed25519.key");
}

static const char manifests[] =
    "apiVersion: agentmesh.io/v1alpha1\n"
    "kind: AgentIdentity\n"
    "metadata: {name: reporter, labels: {role: reporter}}\n"
    "spec: {sponsor: alice@example.com, capabilities: [\"write:signals\"]}\n"
    "---\n"
    "apiVersion: agentmesh.io/v1alpha1\n"
    "kind: AgentIdentity\n"
    "metadata: {name: subject, labels: {role: subject}}\n"
    "spec: {sponsor: bob@example.com, trust: {initialScore: 500}}\n"
    "---\n"
    "apiVersion: agentmesh.io/v1alpha1\n"
    "kind: TrustPolicy\n"
    "metadata: {name: no-decay}\n"
    "spec:\n"
    "  agentSelector: {matchLabels: {role: subject}}\n"
    "  scoring:\n"
    "    weights: {policyCompliance: 0.25, securityPosture: 0.25, outputQuality: 0.20,\n"
    "              resourceEfficiency: 0.15, collaborationHealth: 0.15}\n"
    "    decayPerHour: 0\n"
    "    decayFloor: 0\n";

/* ---- API calls ----------------------------------------------------------------------- */

/* One signed call on a fresh connection to replica i: status, body parsed into *out. */
static int call(int i, const char *method, const char *path, const char *body, json_t **out) {
    char req[2048], reply[16384], err[128];
    int fd = sc_dial(api_port[i]);
    if (fd < 0) return -1;
    int n = sc_build(req, sizeof req, reporter_sk, reporter_did, method, path, body);
    ck_assert_int_gt(n, 0);
    int code = sc_roundtrip(fd, req, (size_t)n, reply, sizeof reply);
    close(fd);
    *out = code > 0 ? json_parse(reply, strlen(reply), err, sizeof err) : NULL;
    return code;
}

/* The subject's view on replica i, or NULL while the replica does not know it yet. */
static json_t *subject_view(int i) {
    char path[128];
    json_t *out = NULL;
    snprintf(path, sizeof path, "/api/v1/agents/%s", subject_did);
    if (call(i, "GET", path, NULL, &out) == 200) return out;
    json_decref(out);
    return NULL;
}

static json_t *wait_subject_view(int i) {
    for (int k = 0; k < WAIT_SECONDS * 4; k++) {
        assert_running(i);
        json_t *v = subject_view(i);
        if (v) return v;
        usleep(250000);
    }
    show_log(i);
    ck_abort_msg("replica %d never knew both agents (see %s/replica-%d.log)", i, work, i);
    return NULL;
}

static void dims_of(const json_t *view, double dims[TRUST_DIM_COUNT]) {
    for (int d = 0; d < TRUST_DIM_COUNT; d++) {
        char path[64];
        snprintf(path, sizeof path, "dimensions.%s", trust_dim_name((enum trust_dim)d));
        ck_assert_msg(json_is_number(json_at(view, path)), "view has no %s", path);
        dims[d] = json_num_at(view, path, -1);
    }
}

/* ---- the load -------------------------------------------------------------------------- */

struct client {
    int replica, first, count;   /* signals first..first+count-1 (k % 5 is the dimension) */
    int failures, last_code;
    char last_reply[256];
    char replay[2048];           /* the first request sent, kept for the replay check */
    size_t replay_len;
};

static void *send_signals(void *arg) {
    struct client *c = arg;
    int fd = sc_dial(api_port[c->replica]);
    if (fd < 0) {
        c->failures = c->count;
        return NULL;
    }
    for (int k = c->first; k < c->first + c->count; k++) {
        char body[256], req[2048];
        int d = k % TRUST_DIM_COUNT;
        snprintf(body, sizeof body,
                 "{\"agent_did\":\"%s\",\"dimension\":\"%s\",\"value\":%.17g,\"weight\":%.17g,\"source\":\"e2e\"}",
                 subject_did, trust_dim_name((enum trust_dim)d), values[d], weights[d]);
        int n = sc_build(req, sizeof req, reporter_sk, reporter_did, "POST", "/api/v1/signals", body);
        int code = n > 0 ? sc_roundtrip(fd, req, (size_t)n, c->last_reply, sizeof c->last_reply) : -1;
        if (code != 200) {
            c->failures++;
            c->last_code = code;
        }
        if (k == c->first && n > 0) {
            memcpy(c->replay, req, (size_t)n);
            c->replay_len = (size_t)n;
        }
        if (code < 0) break;   /* connection gone: the rest count as failures below */
    }
    close(fd);
    return NULL;
}

/* ---- fixture ----------------------------------------------------------------------------- */

static void setup(void) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_int_gt(n, 0);
    self[n] = '\0';
    snprintf(controller_bin, sizeof controller_bin, "%s/agentmesh-controller", dirname(self));
    ck_assert_msg(access(controller_bin, X_OK) == 0, "%s not built", controller_bin);
    snprintf(ns, sizeof ns, "e2e-2rep-%d", (int)getpid());
    snprintf(opns, sizeof opns, "agentmesh-2rep-%d", (int)getpid());
    snprintf(work, sizeof work, "/tmp/e2e-2rep.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(work));
    ck_assert_int_eq(sh("kubectl apply -f %s/crds/ >/dev/null && kubectl wait --for condition=established "
                        "--timeout=30s crd/agentidentities.agentmesh.io crd/trustpolicies.agentmesh.io >/dev/null",
                        SOURCE_DIR), 0);
    ck_assert_int_eq(sh("kubectl create ns %s >/dev/null && kubectl create ns %s >/dev/null", ns, opns), 0);
    ck_assert_int_eq(sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
                        "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout %s/tls.key "
                        "-out %s/tls.crt 2>/dev/null", work, work), 0);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/agents.yaml", work);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(manifests, f) >= 0 && fclose(f) == 0, 1);
    ck_assert_int_eq(sh("kubectl -n %s apply -f %s >/dev/null", ns, path), 0);
}

static void stop_replica(int i) {
    if (replicas[i] <= 0) return;
    kill(replicas[i], SIGTERM);
    waitpid(replicas[i], NULL, 0);
    replicas[i] = 0;
}

/* Runs after the test whether it passed or not (an unchecked fixture, no fork). */
static void teardown(void) {
    char err[256];
    if (!ns[0]) return;   /* skipped: nothing was made */
    for (int i = 0; i < 2; i++) stop_replica(i);
    if (subject_did[0]) {   /* leave no state behind in the shared Redis */
        struct redis_options ro = {.url = redis_url};
        struct trust_store *s = trust_store_redis_new(&ro, err, sizeof err);
        if (s) {
            s->remove(s, subject_did, err, sizeof err);
            s->remove(s, reporter_did, err, sizeof err);
            trust_store_destroy(s);
        }
    }
    if (sh("kubectl delete ns %s %s --wait=false >/dev/null 2>&1", ns, opns) != 0)
        fprintf(stderr, "could not delete namespaces %s %s\n", ns, opns);
    if (sh("rm -rf %s", work) != 0) fprintf(stderr, "could not remove %s\n", work);
    sodium_memzero(reporter_sk, sizeof reporter_sk);
}

/* ---- the test ------------------------------------------------------------------------------ */

START_TEST(ten_thousand_signals_over_two_replicas) {
    if (!redis_url || !kubeconfig) {
        printf("SKIP %s: KUBECONFIG or AGENTMESH_TEST_REDIS_URL not set (run hack/kube-up.sh --redis)\n", __func__);
        return;
    }
    setup();
    start_replica(0);
    wait_did("reporter", reporter_did);
    wait_did("subject", subject_did);
    read_reporter_key();
    start_replica(1);   /* a standby: it learns the agents A made from the cluster */
    json_t *before = wait_subject_view(0);
    json_decref(wait_subject_view(1));

    /* The expected end state: the start state, then every signal in sequence. */
    struct trust_state expect;
    char err[256];
    ck_assert_int_eq(trust_state_init(&expect, 500, NULL, 0, err, sizeof err), 0);
    expect.params.decay_per_hour = 0;
    expect.params.decay_floor = 0;
    dims_of(before, expect.dims);
    json_decref(before);
    for (int k = 0; k < SIGNALS; k++) {
        int d = k % TRUST_DIM_COUNT;
        struct trust_signal sig = {.dim = (enum trust_dim)d, .value = values[d], .weight = weights[d], .at_ms = 1};
        ck_assert_int_eq(trust_apply_signal(&expect, &sig, err, sizeof err), 0);
    }

    static struct client clients[CLIENTS];
    pthread_t tids[CLIENTS];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int c = 0; c < CLIENTS; c++) {
        clients[c] = (struct client){.replica = c % 2, .first = c * (SIGNALS / CLIENTS), .count = SIGNALS / CLIENTS};
        ck_assert_int_eq(pthread_create(&tids[c], NULL, send_signals, &clients[c]), 0);
    }
    int failures = 0;
    for (int c = 0; c < CLIENTS; c++) {
        pthread_join(tids[c], NULL);
        failures += clients[c].failures;
        if (clients[c].failures)
            fprintf(stderr, "client %d (replica %d): %d failed, last HTTP %d %s\n", c, clients[c].replica,
                    clients[c].failures, clients[c].last_code, clients[c].last_reply);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%d signals over 2 replicas in %.2f s (%.0f/s), %d failed\n", SIGNALS, secs, SIGNALS / secs, failures);
    ck_assert_int_eq(failures, 0);

    /* A request already served by one replica is refused by the other, and changes nothing. */
    char reply[512];
    int fd = sc_dial(api_port[1]);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(sc_roundtrip(fd, clients[0].replay, clients[0].replay_len, reply, sizeof reply), 401);
    close(fd);
    ck_assert_ptr_nonnull(strstr(reply, "already used"));

    int want_score = trust_score(&expect, 0);
    for (int i = 0; i < 2; i++) {
        json_t *after = subject_view(i);
        ck_assert_msg(after != NULL, "replica %d: no view of the subject after the run", i);
        double dims[TRUST_DIM_COUNT];
        dims_of(after, dims);
        for (int d = 0; d < TRUST_DIM_COUNT; d++)
            ck_assert_msg(dims[d] == expect.dims[d], "replica %d: %s is %.17g, sequentially %.17g", i,
                          trust_dim_name((enum trust_dim)d), dims[d], expect.dims[d]);
        ck_assert_int_eq(json_int_at(after, "trust_score", -1), want_score);
        ck_assert_str_eq(json_str_at(after, "tier"), trust_tier_name(trust_tier_of(want_score)));
        json_decref(after);
    }
}
END_TEST

int main(void) {
    redis_url = getenv("AGENTMESH_TEST_REDIS_URL");
    kubeconfig = getenv("KUBECONFIG");
    if (redis_url && !*redis_url) redis_url = NULL;
    if (kubeconfig && !*kubeconfig) kubeconfig = NULL;
    if (identity_init() != 0) return EXIT_FAILURE;
    Suite *s = suite_create("two_replicas_signals");
    TCase *tc = tcase_create("redis");
    tcase_set_timeout(tc, 180);
    tcase_add_unchecked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, ten_thousand_signals_over_two_replicas);
    suite_add_tcase(s, tc);
    return check_run(s, CK_NOFORK); /* teardown must run even when an assertion fails */
}
