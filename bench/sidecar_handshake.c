/* sidecar_handshake.c — full handshakes through two sidecars at a fixed rate.
 *
 *   bench_sidecar_handshake A_PORT B_PORT B_DID [rate/s, default 500] [seconds, default 20]
 *
 * One handshake is the three calls an agent pair makes: agent A's sidecar
 * asks the controller for a challenge for B (POST A/v1/challenge), B's
 * sidecar signs it (POST B/v1/respond), A's sidecar has the controller
 * verify B's answer (POST A/v1/verify), which must say verified. The load is
 * open-loop: handshake i is due at start + i/rate whatever happened before,
 * and its latency runs from that due time to the verify answer, so a stall
 * anywhere (sidecar, controller, or this driver's own timer) shows in the
 * figures instead of silently lowering the rate. The first second is warm-up
 * and not recorded. Prints p50/p90/p99/max, each step's p50/p99, how late
 * handshakes started against their due time (this driver's timer and CPU
 * wait), errors, the achieved rate and the driver's own CPU use (to show it
 * was not the bottleneck). Exit 1 when any handshake failed.
 *
 * One event loop; requests go over kept-alive connections to the sidecars,
 * as an agent's HTTP client would use them. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define WARMUP_SECONDS 1.0
#define MAX_IDLE 64

enum step { CHALLENGE, RESPOND, VERIFY };

struct target {
    int port;
    struct evhttp_connection *idle[MAX_IDLE];
    int nidle;
};

struct bench {
    struct event_base *base;
    struct event *timer;      /* fires at the next handshake's due time */
    struct target a, b;
    const char *b_did;
    double rate, start, end_due;
    long started, total, done, failed;
    double *lat;              /* ms, due time to verified, per recorded handshake */
    double *svc;              /* ms, first request sent to verified */
    long nlat;
    double *step_lat[3];      /* ms, per step of the recorded handshakes */
    long nstep[3];
    double *late;             /* ms from due to the first request sent (driver + scheduling) */
    long nlate;
    char first_error[256];
};

struct handshake {
    struct bench *b;
    double due, sent;         /* sent: the first request went out */
    enum step step;
    double step_start;
    struct target *t;
    struct evhttp_connection *conn;
    char challenge_id[64];
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct evhttp_connection *conn_get(struct bench *b, struct target *t) {
    if (t->nidle > 0) return t->idle[--t->nidle];
    struct evhttp_connection *c = evhttp_connection_base_new(b->base, NULL, "127.0.0.1", (unsigned short)t->port);
    if (c) evhttp_connection_set_timeout(c, 10);
    return c;
}

static void conn_put(struct target *t, struct evhttp_connection *c) {
    if (t->nidle < MAX_IDLE) t->idle[t->nidle++] = c;
    else evhttp_connection_free(c);
}

static void finish(struct handshake *h, const char *error) {
    struct bench *b = h->b;
    b->done++;
    if (error) {
        b->failed++;
        if (!b->first_error[0]) snprintf(b->first_error, sizeof b->first_error, "%s", error);
    } else if (h->due >= b->start + WARMUP_SECONDS) {
        double now = now_s();
        b->svc[b->nlat] = (now - h->sent) * 1e3;
        b->lat[b->nlat++] = (now - h->due) * 1e3;
    }
    free(h);
    if (b->done == b->total) event_base_loopbreak(b->base);
}

static void send_step(struct handshake *h, struct target *t, const char *path, json_t *body);

/* The reply to h's current step: parse it and start the next step. */
static void on_reply(struct evhttp_request *req, void *arg) {
    struct handshake *h = arg;
    int status = req ? evhttp_request_get_response_code(req) : 0;
    char err[200];
    json_t *j = NULL;
    if (status == 200) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);
        j = json_loadb((const char *)evbuffer_pullup(in, (ev_ssize_t)n), n, 0, NULL);
    }
    /* evhttp frees req after we return, and a kept-alive connection is idle again now. */
    conn_put(h->t, h->conn);
    struct bench *b = h->b;
    if (status == 200 && h->due >= b->start + WARMUP_SECONDS)
        b->step_lat[h->step][b->nstep[h->step]++] = (now_s() - h->step_start) * 1e3;
    if (!j) {
        snprintf(err, sizeof err, "step %d: HTTP status %d", (int)h->step, status);
        finish(h, err);
        return;
    }
    if (h->step == CHALLENGE) {
        const char *cid = json_string_value(json_object_get(j, "challenge_id"));
        const char *nonce = json_string_value(json_object_get(j, "nonce"));
        if (!cid || !nonce || strlen(cid) >= sizeof h->challenge_id) {
            finish(h, "challenge: no challenge_id/nonce in the reply");
        } else {
            snprintf(h->challenge_id, sizeof h->challenge_id, "%s", cid);
            h->step = RESPOND;
            send_step(h, &h->b->b, "/v1/respond", json_pack("{s:s, s:s}", "challenge_id", cid, "nonce", nonce));
        }
    } else if (h->step == RESPOND) {
        json_t *v = json_pack("{s:s, s:O, s:O, s:O}", "challenge_id", h->challenge_id, "agent_did",
                              json_object_get(j, "agent_did"), "response_nonce",
                              json_object_get(j, "response_nonce"), "signature", json_object_get(j, "signature"));
        if (!v) {
            finish(h, "respond: reply lacks agent_did/response_nonce/signature");
        } else {
            h->step = VERIFY;
            send_step(h, &h->b->a, "/v1/verify", v);
        }
    } else {
        json_t *why = json_object_get(j, "rejection_reason");
        snprintf(err, sizeof err, "verify refused: %s", json_is_string(why) ? json_string_value(why) : "?");
        finish(h, json_is_true(json_object_get(j, "verified")) ? NULL : err);
    }
    json_decref(j);
}

/* POSTs body (stolen) to t; the reply goes to on_reply. */
static void send_step(struct handshake *h, struct target *t, const char *path, json_t *body) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    h->t = t;
    h->step_start = now_s();
    struct bench *b = h->b;
    if (h->step == CHALLENGE) h->sent = h->step_start;
    if (h->step == CHALLENGE && h->due >= b->start + WARMUP_SECONDS)
        b->late[b->nlate++] = (h->step_start - h->due) * 1e3;
    h->conn = text ? conn_get(b, t) : NULL;
    struct evhttp_request *req = h->conn ? evhttp_request_new(on_reply, h) : NULL;
    if (!req) {
        if (h->conn) conn_put(t, h->conn);
        free(text);
        finish(h, "out of memory");
        return;
    }
    struct evkeyvalq *hd = evhttp_request_get_output_headers(req);
    char host[32];
    snprintf(host, sizeof host, "127.0.0.1:%d", t->port);
    int bad = evhttp_add_header(hd, "Host", host) != 0 ||
              evhttp_add_header(hd, "Content-Type", "application/json") != 0 ||
              evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text)) != 0;
    free(text);
    if (bad) {
        evhttp_request_free(req);
        conn_put(t, h->conn);
        finish(h, "cannot build a request");
        return;
    }
    if (evhttp_make_request(h->conn, req, EVHTTP_REQ_POST, path) != 0) {
        conn_put(t, h->conn);
        finish(h, "cannot send a request");
    }
}

/* Starts every handshake that is due by now, then sleeps until the next
 * one is due. A timer per due time instead of a 1 ms tick: the tick made
 * handshakes start ~0.5 ms late on average (up to a whole tick), which is
 * the driver's lateness, not the sidecars'. */
static void on_due(evutil_socket_t fd, short what, void *arg) {
    struct bench *b = arg;
    double now = now_s();
    while (b->started < b->total && b->start + (double)b->started / b->rate <= now) {
        struct handshake *h = calloc(1, sizeof *h);
        if (!h) {
            fprintf(stderr, "out of memory\n");
            event_base_loopbreak(b->base);
            return;
        }
        h->b = b;
        h->due = b->start + (double)b->started / b->rate;
        b->started++;
        h->step = CHALLENGE;
        send_step(h, &b->a, "/v1/challenge", json_pack("{s:s}", "peer_did", b->b_did));
    }
    if (b->started == b->total) return;
    double wait = b->start + (double)b->started / b->rate - now_s();
    if (wait < 0) wait = 0;
    struct timeval tv = {(time_t)wait, (suseconds_t)((wait - (double)(time_t)wait) * 1e6)};
    if (event_add(b->timer, &tv) != 0) {
        fprintf(stderr, "cannot arm the timer\n");
        event_base_loopbreak(b->base);
    }
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double pct(const double *v, long n, double p) {
    if (n == 0) return 0;
    long i = (long)(p / 100.0 * (double)n);
    return v[i >= n ? n - 1 : i];
}

static double cpu_s(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

static void free_idle(struct target *t) {
    while (t->nidle > 0) evhttp_connection_free(t->idle[--t->nidle]);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s A_PORT B_PORT B_DID [rate/s] [seconds]\n", argv[0]);
        return 2;
    }
    struct bench b = {.b_did = argv[3]};
    b.a.port = atoi(argv[1]);
    b.b.port = atoi(argv[2]);
    b.rate = argc > 4 ? atof(argv[4]) : 500;
    double seconds = argc > 5 ? atof(argv[5]) : 20;
    if (b.a.port <= 0 || b.b.port <= 0 || b.rate <= 0 || seconds <= WARMUP_SECONDS) {
        fprintf(stderr, "bad arguments: ports > 0, rate > 0, seconds > %.0f\n", WARMUP_SECONDS);
        return 2;
    }
    b.total = (long)(b.rate * seconds);
    b.lat = calloc((size_t)b.total, sizeof *b.lat);
    for (int i = 0; i < 3; i++) b.step_lat[i] = calloc((size_t)b.total, sizeof *b.lat);
    b.late = calloc((size_t)b.total, sizeof *b.lat);
    b.svc = calloc((size_t)b.total, sizeof *b.lat);
    /* Precise timers (timerfd): epoll's millisecond timeouts alone made
     * handshakes start ~2 ms after their due time. */
    struct event_config *cfg = event_config_new();
    if (cfg && event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER) == 0) b.base = event_base_new_with_config(cfg);
    if (cfg) event_config_free(cfg);
    b.timer = b.base ? evtimer_new(b.base, on_due, &b) : NULL;
    struct timeval zero = {0, 0};
    if (!b.lat || !b.svc || !b.late || !b.step_lat[0] || !b.step_lat[1] || !b.step_lat[2] || !b.timer ||
        event_add(b.timer, &zero) != 0) {
        fprintf(stderr, "cannot set up the event loop\n");
        return 1;
    }
    double cpu0 = cpu_s();
    b.start = now_s();
    event_base_dispatch(b.base);
    double wall = now_s() - b.start, cpu = cpu_s() - cpu0;
    qsort(b.lat, (size_t)b.nlat, sizeof *b.lat, cmp_double);
    qsort(b.svc, (size_t)b.nlat, sizeof *b.lat, cmp_double);
    printf("handshakes %ld at %.0f/s over %.1f s (achieved %.0f/s), failed %ld, recorded %ld (after %.0f s warm-up)\n",
           b.done, b.rate, wall, (double)b.done / wall, b.failed, b.nlat, WARMUP_SECONDS);
    printf("full handshake latency ms, from due time: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", pct(b.lat, b.nlat, 50),
           pct(b.lat, b.nlat, 90), pct(b.lat, b.nlat, 99), b.nlat ? b.lat[b.nlat - 1] : 0.0);
    printf("  from first request sent: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", pct(b.svc, b.nlat, 50),
           pct(b.svc, b.nlat, 90), pct(b.svc, b.nlat, 99), b.nlat ? b.svc[b.nlat - 1] : 0.0);
    static const char *names[] = {"challenge (A)", "respond (B)", "verify (A)"};
    for (int i = 0; i < 3; i++) {
        qsort(b.step_lat[i], (size_t)b.nstep[i], sizeof *b.lat, cmp_double);
        printf("  step %-14s p50 %.3f  p99 %.3f\n", names[i], pct(b.step_lat[i], b.nstep[i], 50),
               pct(b.step_lat[i], b.nstep[i], 99));
    }
    qsort(b.late, (size_t)b.nlate, sizeof *b.lat, cmp_double);
    printf("  start lateness  p50 %.3f  p99 %.3f  (due time to first request: driver timer + CPU wait)\n",
           pct(b.late, b.nlate, 50), pct(b.late, b.nlate, 99));
    printf("driver CPU %.1f%% of one core\n", 100.0 * cpu / wall);
    if (b.failed) printf("first error: %s\n", b.first_error);
    event_free(b.timer);
    free_idle(&b.a);
    free_idle(&b.b);
    event_base_free(b.base);
    free(b.lat);
    for (int i = 0; i < 3; i++) free(b.step_lat[i]);
    free(b.late);
    free(b.svc);
    return b.failed ? 1 : 0;
}
