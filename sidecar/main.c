/* main.c — agentmesh-sidecar: the per-pod agent of DESIGN §8.
 *
 * Process concerns only: configuration (config.h), signals, and one 1-second
 * timer on the main thread that re-reads the identity every
 * --reload-seconds (so a rotated key is used without restart) and watches
 * the exit file. The listeners run on their own threads (server.h).
 *
 * Ending with the app. On Kubernetes >= 1.29 the webhook injects a native
 * sidecar (an init container with restartPolicy Always) and the kubelet
 * stops it when the app containers end, so nothing is needed. On older API
 * servers it is a regular container, and a Job's pod would never complete
 * while it runs. For that case: --exit-when-file-exists PATH (env
 * AGENTMESH_EXIT_WHEN_FILE_EXISTS), typically /var/run/agentmesh/exit on an
 * emptyDir shared with the app, which creates the file when it is done
 * (`touch /var/run/agentmesh/exit`). The sidecar then exits 0 within a
 * second. We chose a file over watching the app's process because containers
 * do not share a PID namespace by default, while a shared volume works
 * everywhere; it is the convention Istio and Linkerd users already script.
 *
 * Scheduling. The sidecar works in bursts of ~0.1 ms per call, and a call
 * waits for it: on a busy node a woken sidecar thread queued behind a
 * neighbour until that neighbour's slice ended (1.4 ms by default on the
 * 2-core bench machine). It asks for short slices instead
 * (common/sched_slice.h), on the main thread before the listeners start so
 * every thread of the sidecar inherits them; its share of the CPU stays the
 * same.
 *
 * Exit codes: 0 on SIGTERM/SIGINT or the exit file, 2 on bad flags, 1 when
 * a listener cannot start. */
#include "common/identity.h"
#include "common/log.h"
#include "common/sched_slice.h"
#include "sidecar/config.h"
#include "sidecar/server.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

struct ticker {
    struct event_base *base;
    struct sidecar *sidecar;
    const struct sidecar_config *cfg;
    time_t last_poll;
};

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    struct event_base *base = arg;
    log_info("sidecar", "signal %d: shutting down", (int)sig);
    event_base_loopbreak(base);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    struct ticker *t = arg;
    struct stat st;
    if (t->cfg->exit_file[0] && stat(t->cfg->exit_file, &st) == 0) {
        log_info("sidecar", "%s exists: the app is done, exiting", t->cfg->exit_file);
        event_base_loopbreak(t->base);
        return;
    }
    time_t now = time(NULL);
    if (now - t->last_poll >= t->cfg->reload_seconds) {
        t->last_poll = now;
        sidecar_poll_identity(t->sidecar);
    }
}

int main(int argc, char **argv) {
    struct sidecar_config cfg;
    char err[1024];
    int rc = sidecar_config_load(&cfg, argc, argv, err, sizeof err);
    if (rc == CONFIG_HELP) {
        fputs(err, stdout);
        return 0;
    }
    if (rc != CONFIG_OK) {
        log_error("sidecar", "%s", err);
        return 2;
    }
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR || identity_init() != 0) {
        log_error("sidecar", "cannot initialise (signals or libsodium)");
        return 1;
    }
    if (cfg.sched_slice_us > 0 && sched_slice_set(cfg.sched_slice_us, err, sizeof err) != 0)
        log_warn("sidecar", "%s (keeping the kernel's slice)", err);   /* before the listeners' threads */
    struct sidecar *s = sidecar_start(&cfg, err, sizeof err);
    if (!s) {
        log_error("sidecar", "%s", err);
        return 1;
    }
    log_info("sidecar", "api on %s:%d, metrics on %s:%d, controller %s, identity %s",
             cfg.listen_addr, sidecar_api_port(s), cfg.metrics_addr, sidecar_metrics_port(s),
             cfg.controller_url, cfg.identity_dir);

    struct ticker t = {.sidecar = s, .cfg = &cfg, .last_poll = time(NULL)};
    struct event_base *base = event_base_new();
    struct event *term = base ? evsignal_new(base, SIGTERM, on_signal, base) : NULL;
    struct event *intr = base ? evsignal_new(base, SIGINT, on_signal, base) : NULL;
    t.base = base;
    struct event *tick = base ? event_new(base, -1, EV_PERSIST, on_tick, &t) : NULL;
    struct timeval second = {1, 0};
    rc = 0;
    if (!tick || !term || !intr || event_add(term, NULL) != 0 || event_add(intr, NULL) != 0 ||
        event_add(tick, &second) != 0) {
        log_error("sidecar", "cannot set up the main event loop");
        rc = 1;
    } else {
        on_tick(-1, 0, &t);   /* an exit file that already exists ends us at once */
        if (!event_base_got_break(base)) event_base_dispatch(base);
    }
    if (tick) event_free(tick);
    if (term) event_free(term);
    if (intr) event_free(intr);
    if (base) event_base_free(base);
    sidecar_stop(s);
    log_info("sidecar", "stopped");
    return rc;
}
