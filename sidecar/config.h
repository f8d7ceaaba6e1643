/* config.h — agentmesh-sidecar settings from flags and AGENTMESH_* variables.
 *
 * Precedence: built-in default < environment < command-line flag. Flags are
 * `--name value` or `--name=value`; each has an environment twin:
 *   --controller-url         AGENTMESH_CONTROLLER_URL   http://agentmesh-controller.agentmesh-system.svc:8080
 *   --listen                 AGENTMESH_LISTEN           127.0.0.1:8081 (loopback only, enforced)
 *   --metrics-listen         AGENTMESH_METRICS_LISTEN   0.0.0.0:9091 (Prometheus + kubelet probes)
 *   --identity-dir           AGENTMESH_IDENTITY_DIR     /var/run/agentmesh/identity
 *   --ca-file                AGENTMESH_CA_FILE          "" (system store) for an https controller
 *   --agent                  AGENTMESH_AGENT            "" (the AgentIdentity name, for /v1/identity)
 *   --exit-when-file-exists  AGENTMESH_EXIT_WHEN_FILE_EXISTS  "" (off)
 *   --reload-seconds         AGENTMESH_RELOAD_SECONDS   2 (identity files polled this often)
 *   --timeout-seconds        AGENTMESH_TIMEOUT_SECONDS  10 (each controller call)
 *   --sched-slice-us         AGENTMESH_SCHED_SLICE_US   100 (scheduler slice asked for; 0 = kernel default)
 *   --log-level              AGENTMESH_LOG_LEVEL        info
 * The API listener signs with the agent's key for whoever asks, so it only
 * ever binds a loopback address: other pods must not reach it. */
#ifndef AGENTMESH_SIDECAR_CONFIG_H
#define AGENTMESH_SIDECAR_CONFIG_H

#include <limits.h>
#include <stddef.h>

#define SIDECAR_MAX_BODY (64 * 1024)

struct sidecar_config {
    char controller_url[512];
    char listen_addr[64];
    int listen_port;
    char metrics_addr[64];
    int metrics_port;
    char identity_dir[PATH_MAX];
    char ca_file[PATH_MAX];
    char agent[254];
    char exit_file[PATH_MAX];
    int reload_seconds;
    int timeout_seconds;
    int sched_slice_us;
};

enum { CONFIG_OK = 0, CONFIG_HELP = 1, CONFIG_ERROR = -1 };

/* Fills c from defaults, the environment and argv. CONFIG_OK, CONFIG_HELP
 * (--help: usage is in err), or CONFIG_ERROR with the problem in err. */
int sidecar_config_load(struct sidecar_config *c, int argc, char **argv, char *err, size_t errlen);

/* "host:port" or "[v6]:port" into addr/port. 0 / -1. */
int sidecar_parse_listen(const char *s, char *addr, size_t addrlen, int *port);

#endif
