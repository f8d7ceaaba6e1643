/* fuzz_controller_config.c — libFuzzer target: the controller's --config
 * YAML file.
 *
 * The input is the file's bytes, served from a memfd so the real entry point
 * (config_load with `--config <path>`) runs: libyaml, the mapping walk, the
 * option lookup and each value's conversion. Besides "no crash, no leak, no
 * UB" it checks config.h's promises: a refused file yields a non-empty
 * message; an accepted one leaves every port within 0..65535, at least one
 * worker, the spool limit non-negative, and a flag given alongside the file
 * (--api-port 4321) winning over whatever the file says. Seeds:
 * fuzz/corpus/controller_config/. */
#include "controller/config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void check_load(const char *path) {
    char argv0[] = "agentmesh-controller", flag_config[] = "--config", flag_port[] = "--api-port=4321";
    char path_arg[64];
    snprintf(path_arg, sizeof path_arg, "%s", path);
    char *argv[] = {argv0, flag_config, path_arg, flag_port, NULL};
    struct config cfg;
    char err[512] = "";
    int rc = config_load(&cfg, 4, argv, err, sizeof err);
    if (rc == 0) {
        if (cfg.api_port != 4321 || cfg.metrics_port > 65535 || cfg.webhook_port > 65535) abort();
        if (cfg.workers < 1 || cfg.audit_spool_max_bytes < 0 || cfg.status_min_interval < 0) abort();
        if (!cfg.bind_address || !cfg.log_level || !cfg.audit_spool_dir) abort();
    } else if (rc != -1 || !err[0]) {
        abort();   /* never --help here; a refusal always says why */
    }
    config_free(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("config", 0);
    if (fd < 0) return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        check_load(path);
    }
    close(fd);
    return 0;
}
