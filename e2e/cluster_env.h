/* cluster_env.h — the e2e tests that use the cluster's Redis or Postgres
 * read their URLs from the environment, which hack/kube-up.sh writes to
 * $AGENTMESH_CLUSTER_DIR/env; this loads that file so the tests also run
 * without it being sourced first.
 *
 * Header-only on purpose: CMake builds every e2e test_*.c as a program of
 * its own, so a shared .c would need a CMake line per user. */
#ifndef AGENTMESH_CLUSTER_ENV_H
#define AGENTMESH_CLUSTER_ENV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Loads `export K='V'` lines of the cluster env file without overriding the environment. */
static inline void load_cluster_env(void) {
    const char *dir = getenv("AGENTMESH_CLUSTER_DIR");
    char path[512], line[2048];
    snprintf(path, sizeof path, "%s/env", dir ? dir : "/tmp/agentmesh-cluster");
    FILE *f = fopen(path, "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        char *k = line, *eq, *v;
        if (strncmp(k, "export ", 7) == 0) k += 7;
        if (!(eq = strchr(k, '='))) continue;
        *eq = '\0';
        v = eq + 1;
        v[strcspn(v, "\n")] = '\0';
        size_t n = strlen(v);
        if (n >= 2 && v[0] == '\'' && v[n - 1] == '\'') {
            v[n - 1] = '\0';
            v++;
        }
        setenv(k, v, 0);
    }
    fclose(f);
}

#endif
