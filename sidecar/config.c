/* config.c — parses the sidecar's flags and AGENTMESH_* environment (config.h).
 *
 * One table lists every setting once (flag, variable, where it goes), so a
 * flag and its variable can never drift apart. */
#include "sidecar/config.h"

#include "common/identity.h"
#include "common/log.h"
#include "common/sched_slice.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_STR, K_LISTEN_API, K_LISTEN_METRICS, K_SECONDS, K_SLICE_US, K_LOG_LEVEL };

struct setting {
    const char *flag;
    const char *env;
    enum kind kind;
    size_t offset;   /* of the char[] or int in struct sidecar_config */
    size_t size;     /* of the char[] */
};

#define STR(f) offsetof(struct sidecar_config, f), sizeof(((struct sidecar_config *)0)->f)
#define INT(f) offsetof(struct sidecar_config, f), 0

static const struct setting settings[] = {
    {"controller-url", "AGENTMESH_CONTROLLER_URL", K_STR, STR(controller_url)},
    {"listen", "AGENTMESH_LISTEN", K_LISTEN_API, 0, 0},
    {"metrics-listen", "AGENTMESH_METRICS_LISTEN", K_LISTEN_METRICS, 0, 0},
    {"identity-dir", "AGENTMESH_IDENTITY_DIR", K_STR, STR(identity_dir)},
    {"ca-file", "AGENTMESH_CA_FILE", K_STR, STR(ca_file)},
    {"agent", "AGENTMESH_AGENT", K_STR, STR(agent)},
    {"exit-when-file-exists", "AGENTMESH_EXIT_WHEN_FILE_EXISTS", K_STR, STR(exit_file)},
    {"reload-seconds", "AGENTMESH_RELOAD_SECONDS", K_SECONDS, INT(reload_seconds)},
    {"timeout-seconds", "AGENTMESH_TIMEOUT_SECONDS", K_SECONDS, INT(timeout_seconds)},
    {"sched-slice-us", "AGENTMESH_SCHED_SLICE_US", K_SLICE_US, INT(sched_slice_us)},
    {"log-level", "AGENTMESH_LOG_LEVEL", K_LOG_LEVEL, 0, 0},
};
#define NSETTINGS (sizeof settings / sizeof *settings)

int sidecar_parse_listen(const char *s, char *addr, size_t addrlen, int *port) {
    const char *colon;
    size_t alen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') return -1;
        alen = (size_t)(close - s - 1);
        if (alen + 1 > addrlen) return -1;
        memcpy(addr, s + 1, alen);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return -1;
        alen = (size_t)(colon - s);
        if (alen + 1 > addrlen) return -1;
        memcpy(addr, s, alen);
    }
    addr[alen] = '\0';
    unsigned char tmp[16];
    if (inet_pton(AF_INET, addr, tmp) != 1 && inet_pton(AF_INET6, addr, tmp) != 1) return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || p < 0 || p > 65535) return -1;
    *port = (int)p;
    return 0;
}

/* 127.0.0.0/8 or ::1. */
static int is_loopback(const char *addr) {
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, addr, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, addr, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* Applies one value to its setting; `from` names the source for errors. */
static int apply(struct sidecar_config *c, const struct setting *s, const char *value,
                 const char *from, char *err, size_t errlen) {
    char *base = (char *)c;
    switch (s->kind) {
    case K_STR:
        if (strlen(value) >= s->size) {
            snprintf(err, errlen, "%s: longer than %zu characters", from, s->size - 1);
            return -1;
        }
        memcpy(base + s->offset, value, strlen(value) + 1);
        return 0;
    case K_LISTEN_API:
        if (sidecar_parse_listen(value, c->listen_addr, sizeof c->listen_addr, &c->listen_port) != 0) {
            snprintf(err, errlen, "%s: \"%s\" is not <ip>:<port>", from, value);
            return -1;
        }
        if (!is_loopback(c->listen_addr)) {
            snprintf(err, errlen, "%s: %s is not a loopback address; the signing API must not "
                     "be reachable from other pods", from, c->listen_addr);
            return -1;
        }
        return 0;
    case K_LISTEN_METRICS:
        if (sidecar_parse_listen(value, c->metrics_addr, sizeof c->metrics_addr, &c->metrics_port) != 0) {
            snprintf(err, errlen, "%s: \"%s\" is not <ip>:<port>", from, value);
            return -1;
        }
        return 0;
    case K_SECONDS: {
        char *end;
        long v = strtol(value, &end, 10);
        if (value[0] == '\0' || *end != '\0' || v < 1 || v > 3600) {
            snprintf(err, errlen, "%s: \"%s\" is not a number of seconds in 1..3600", from, value);
            return -1;
        }
        *(int *)(base + s->offset) = (int)v;
        return 0;
    }
    case K_SLICE_US: {
        char *end;
        long v = strtol(value, &end, 10);
        if (value[0] == '\0' || *end != '\0' || !sched_slice_valid(v)) {
            snprintf(err, errlen, "%s: \"%s\" is not 0 (kernel default) or microseconds in %d..%d",
                     from, value, SCHED_SLICE_MIN_US, SCHED_SLICE_MAX_US);
            return -1;
        }
        *(int *)(base + s->offset) = (int)v;
        return 0;
    }
    case K_LOG_LEVEL: {
        enum log_level lvl;
        if (log_parse_level(value, &lvl) != 0) {
            snprintf(err, errlen, "%s: \"%s\" is not debug, info, warn or error", from, value);
            return -1;
        }
        log_set_level(lvl);
        return 0;
    }
    }
    return -1;
}

static void usage(char *out, size_t outlen) {
    size_t off = (size_t)snprintf(out, outlen, "usage: agentmesh-sidecar [flags]\n");
    for (size_t i = 0; i < NSETTINGS && off < outlen; i++)
        off += (size_t)snprintf(out + off, outlen - off, "  --%-24s (env %s)\n", settings[i].flag,
                                settings[i].env);
}

static void defaults(struct sidecar_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->controller_url, sizeof c->controller_url, "%s",
             "http://agentmesh-controller.agentmesh-system.svc:8080");
    snprintf(c->listen_addr, sizeof c->listen_addr, "127.0.0.1");
    c->listen_port = 8081;
    snprintf(c->metrics_addr, sizeof c->metrics_addr, "0.0.0.0");
    c->metrics_port = 9091;
    snprintf(c->identity_dir, sizeof c->identity_dir, "%s", ID_DEFAULT_DIR);
    c->reload_seconds = 2;
    c->timeout_seconds = 10;
    c->sched_slice_us = 100;
}

int sidecar_config_load(struct sidecar_config *c, int argc, char **argv, char *err, size_t errlen) {
    defaults(c);
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *v = getenv(settings[i].env);
        if (v && *v && apply(c, &settings[i], v, settings[i].env, err, errlen) != 0) return CONFIG_ERROR;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(err, errlen);
            return CONFIG_HELP;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument \"%s\"", arg);
            return CONFIG_ERROR;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct setting *s = NULL;
        for (size_t i = 0; i < NSETTINGS; i++)
            if (strlen(settings[i].flag) == nlen && strncmp(settings[i].flag, name, nlen) == 0)
                s = &settings[i];
        if (!s) {
            snprintf(err, errlen, "unknown flag \"%.*s\" (try --help)", (int)nlen + 2, arg);
            return CONFIG_ERROR;
        }
        const char *value = eq ? eq + 1 : (a + 1 < argc ? argv[++a] : NULL);
        if (!value) {
            snprintf(err, errlen, "flag --%s needs a value", s->flag);
            return CONFIG_ERROR;
        }
        char from[64];
        snprintf(from, sizeof from, "--%s", s->flag);
        if (apply(c, s, value, from, err, errlen) != 0) return CONFIG_ERROR;
    }
    return CONFIG_OK;
}
