/* sidecar_rss.c — memory of agentmesh-sidecar, idle and under load, with a
 * plain-HTTP and an HTTPS controller.
 *
 *   bench_sidecar_rss <path to agentmesh-sidecar> [seconds per phase, default 3]
 *
 * Run it from the repository root (it reads the test certificates in
 * sidecar/test/data/ for the HTTPS controller).
 * Runs the real binary as a child (measure a Release build: sanitizers
 * multiply memory), in front of an in-process fake controller, and drives it
 * with 8 client threads (one connection per request). After each phase it
 * prints the child's VmRSS and VmHWM from /proc/<pid>/status, and at the
 * end of each run its smaps_rollup split: shared pages (clean page cache,
 * libc's) versus private ones. The shipped sidecar is linked statically
 * (CMakeLists.txt), so its own code pages count as private here although
 * every sidecar on a node maps the same file. Goals from the design:
 * RSS < 4 MiB without TLS, < 8 MiB with TLS. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/httpd.h"
#include "common/identity.h"
#include "common/tls.h"

#define CLIENTS 8
#define CERTS "sidecar/test/data"

struct phase {
    const char *name, *method, *path, *body;
};

struct load {
    int port;
    const struct phase *ph;
    double until;
    long ok, failed;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One request over a fresh connection; the HTTP status, or -1. */
static int request(int port, const char *method, const char *path, const char *body) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char buf[4096];
    int status = -1;
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(buf, sizeof buf, "%s %s HTTP/1.0\r\nContent-Length: %zu\r\n\r\n%s", method,
                     path, blen, body ? body : "");
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, buf, (size_t)n) == n) {
        ssize_t r, got = 0;
        while ((r = read(fd, buf + got, sizeof buf - 1 - (size_t)got)) > 0) got += r;
        buf[got] = '\0';
        if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) status = -1;
    }
    close(fd);
    return status;
}

static void *client(void *arg) {
    struct load *l = arg;
    while (now_s() < l->until) {
        int st = request(l->port, l->ph->method, l->ph->path, l->ph->body);
        if (st == 200) l->ok++;
        else l->failed++;
    }
    return NULL;
}

/* "VmRSS" → kB from /proc/pid/status, or -1. */
static long status_kb(pid_t pid, const char *field) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    size_t fl = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') v = strtol(line + fl + 1, NULL, 10);
    if (f) fclose(f);
    return v;
}

static long rollup_kb(pid_t pid, const char *field) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(path, "r");
    long v = 0;
    size_t fl = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') v = strtol(line + fl + 1, NULL, 10);
    if (f) fclose(f);
    return v;
}

static void fake_controller(struct httpd_req *req, void *arg) {
    const char *p = httpd_path(req);
    if (strstr(p, "/handshake/challenge"))
        httpd_reply_json(req, 200, json_pack("{s:s, s:s, s:i}", "challenge_id", "challenge_0123456789abcdef",
                                             "nonce", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                                             "expires_in_seconds", 30));
    else
        httpd_reply_json(req, 200, json_pack("{s:i, s:s}", "trust_score", 500, "tier", "standard"));
}

static pid_t spawn(const char *bin, const char *url, const char *ca, const char *dir, int port,
                   int mport) {
    char listen[64], mlisten[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(mlisten, sizeof mlisten, "127.0.0.1:%d", mport);
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {(char *)bin, "--controller-url", (char *)url, "--identity-dir", (char *)dir,
                        "--listen", listen, "--metrics-listen", mlisten, "--ca-file", (char *)ca,
                        "--log-level", "warn", NULL};
        execv(bin, argv);
        _exit(127);
    }
    return pid;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int run(const char *bin, const char *label, const char *url, const char *ca, const char *dir,
               double seconds) {
    static const struct phase phases[] = {
        {"identity", "GET", "/v1/identity", NULL},
        {"respond", "POST", "/v1/respond",
         "{\"challenge_id\":\"challenge_0123456789abcdef\",\"nonce\":"
         "\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}"},
        {"challenge", "POST", "/v1/challenge", "{\"peer_did\":\"did:mesh:0123456789abcdef0123456789abcdef\"}"},
        {"signals", "POST", "/v1/signals", "{\"dimension\":\"outputQuality\",\"value\":0.8}"},
    };
    int port = free_port(), mport = free_port();
    pid_t pid = spawn(bin, url, ca, dir, port, mport);
    if (pid < 0 || port < 0 || mport < 0) return -1;
    for (int i = 0; i < 50 && request(mport, "GET", "/healthz", NULL) != 200; i++) usleep(100000);
    sleep(1);
    printf("%-6s %-10s %9s %8s %8s %10s %10s\n", label, "phase", "requests", "errors", "req/s",
           "VmRSS_kB", "VmHWM_kB");
    printf("%-6s %-10s %9d %8d %8d %10ld %10ld\n", label, "idle", 0, 0, 0, status_kb(pid, "VmRSS"),
           status_kb(pid, "VmHWM"));
    int bad = 0;
    for (size_t p = 0; p < sizeof phases / sizeof *phases; p++) {
        struct load l[CLIENTS];
        pthread_t th[CLIENTS];
        double t0 = now_s();
        for (int i = 0; i < CLIENTS; i++) {
            l[i] = (struct load){port, &phases[p], t0 + seconds, 0, 0};
            if (pthread_create(&th[i], NULL, client, &l[i]) != 0) return -1;
        }
        long ok = 0, failed = 0;
        for (int i = 0; i < CLIENTS; i++) {
            pthread_join(th[i], NULL);
            ok += l[i].ok;
            failed += l[i].failed;
        }
        bad |= failed > 0;
        printf("%-6s %-10s %9ld %8ld %8.0f %10ld %10ld\n", label, phases[p].name, ok + failed, failed,
               (double)(ok + failed) / (now_s() - t0), status_kb(pid, "VmRSS"), status_kb(pid, "VmHWM"));
    }
    long shared = rollup_kb(pid, "Shared_Clean") + rollup_kb(pid, "Shared_Dirty");
    long priv = rollup_kb(pid, "Private_Clean") + rollup_kb(pid, "Private_Dirty");
    printf("%-6s smaps: Rss %ld kB = shared %ld kB (library pages) + private %ld kB; Anonymous %ld kB\n",
           label, rollup_kb(pid, "Rss"), shared, priv, rollup_kb(pid, "Anonymous"));
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    printf("%-6s exit status after SIGTERM: %d\n\n", label, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return bad ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s <agentmesh-sidecar binary> [seconds per phase]\n", argv[0]);
        return 2;
    }
    double seconds = argc > 2 ? atof(argv[2]) : 3;
    signal(SIGPIPE, SIG_IGN);
    char dir[] = "/tmp/bench_sidecar.XXXXXX", err[256], url[128];
    struct identity id;
    if (identity_init() != 0 || !mkdtemp(dir) || identity_generate(&id) != 0 ||
        identity_save_dir(dir, &id, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "cannot create an identity: %s\n", err);
        return 1;
    }
    identity_wipe(&id);

    struct httpd_options plain = {.name = "fake", .address = "127.0.0.1", .threads = 2};
    struct httpd_options tls = {.name = "fake-tls", .address = "127.0.0.1", .threads = 2, .tls = 1};
    struct httpd *h = httpd_new(&plain), *hs = httpd_new(&tls);
    SSL_CTX *ctx = tls_server_ctx_from_files(CERTS "/server.crt",
                                             CERTS "/server.key", err, sizeof err);
    if (!h || !hs || !ctx || httpd_set_tls(hs, ctx) != 0 ||
        httpd_route(h, NULL, "/", 1, fake_controller, NULL) != 0 ||
        httpd_route(hs, NULL, "/", 1, fake_controller, NULL) != 0 ||
        httpd_start(h, err, sizeof err) != 0 || httpd_start(hs, err, sizeof err) != 0) {
        fprintf(stderr, "fake controller: %s\n", err);
        return 1;
    }
    SSL_CTX_free(ctx);

    snprintf(url, sizeof url, "http://127.0.0.1:%d", httpd_port(h));
    int rc = run(argv[1], "http", url, "", dir, seconds);
    snprintf(url, sizeof url, "https://127.0.0.1:%d", httpd_port(hs));
    rc |= run(argv[1], "https", url, CERTS "/ca.crt", dir, seconds);

    httpd_free(h);
    httpd_free(hs);
    const char *names[] = {"ed25519.key", "ed25519.pub", "did", "key-id"};
    for (size_t i = 0; i < 4; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
    return rc;
}
