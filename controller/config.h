/* config.h — agentmesh-controller configuration.
 *
 * One table of options; each is a flag (--redis-url), the environment
 * variable AGENTMESH_REDIS_URL, and the key `redis-url` of the optional YAML
 * file given by --config. Precedence: flag > environment > file > default.
 * `--help` prints the table. */
#ifndef AGENTMESH_CONFIG_H
#define AGENTMESH_CONFIG_H

#include <stddef.h>
#include <stdio.h>

struct config {
    char *kubeconfig;
    char *namespace;
    char *bind_address;
    int api_port, metrics_port, webhook_port;
    int api_threads, webhook_threads;
    int sched_slice_us;      /* scheduler slice of the webhook listener threads; 0 = kernel's */
    int api_tls;
    int api_rate_limit;
    char *webhook_cert_dir;
    char *redis_url, *redis_ca_file;
    char *postgres_url;
    char *audit_sink_url;
    char *audit_spool_dir;
    long audit_spool_max_bytes;
    int workers;
    int leader_elect;
    char *leader_election_id;
    char *sidecar_image;
    char *log_level;
    double status_min_interval;
    char *config_file;
};

/* Parses argv/env/file into cfg (defaults first). Returns 0, 1 when --help
 * was printed (exit 0), or -1 with a message naming the flag, variable or
 * file key that is wrong. */
int config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen);
void config_usage(FILE *out);
void config_free(struct config *cfg);

#endif
