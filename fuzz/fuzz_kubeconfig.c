/* fuzz_kubeconfig.c — libFuzzer target: kubeconfig loading.
 *
 * The input is a kubeconfig file's bytes, served from a memfd so the real
 * entry point (kube_config_load_file) runs, YAML parser, tree walk, base64
 * and path resolution included. Besides "no crash, no leak, no UB" it checks
 * the loader's promises: success yields an http(s) server without a trailing
 * slash; failure yields a non-empty message and leaves nothing allocated.
 * Both the current context and a context named "fuzz" are tried. */
#include "controller/kube_client.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void check_load(const char *path, const char *context) {
    struct kube_config cfg;
    char err[512] = "";
    if (kube_config_load_file(path, context, &cfg, err, sizeof err) == 0) {
        size_t n = cfg.server ? strlen(cfg.server) : 0;
        if (!cfg.server || (strncmp(cfg.server, "https://", 8) != 0 && strncmp(cfg.server, "http://", 7) != 0))
            abort();
        if (n > 0 && cfg.server[n - 1] == '/') abort();
        if ((cfg.client_cert_file || cfg.client_cert_data) != (cfg.client_key_file || cfg.client_key_data)) abort();
        kube_config_free(&cfg);
    } else {
        if (!err[0] || cfg.server || cfg.token || cfg.ca_data) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("kubeconfig", 0);
    if (fd < 0) return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        check_load(path, NULL);
        check_load(path, "fuzz");
    }
    close(fd);
    return 0;
}
