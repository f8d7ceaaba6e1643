/* kube_fixture.h — what the e2e tests against the shared local API server
 * (hack/kube-up.sh; admin kubeconfig in $AGENTMESH_CLUSTER_DIR) all start
 * with: the admin kubeconfig, a client from it per test, an assert that
 * prints the API's own reason, and deleting the test namespace at the end.
 *
 * Header-only on purpose: CMake builds every e2e test_*.c as a program of
 * its own, so a shared .c would need a CMake line per user. */
#ifndef AGENTMESH_KUBE_FIXTURE_H
#define AGENTMESH_KUBE_FIXTURE_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "controller/kube_client.h"

static char kubeconfig[512];
static struct kube_client *kc;   /* per test (client_up), so forks never share a connection */

/* Asserts that a kube_* call returned 0, printing the API's status, reason
 * and message when not. The result in *r stays the caller's to free. */
#define OK(call, r)                                                                                \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        ck_assert_msg(rc_ == 0, "%s: %d %s: %s", #call, (r)->status, (r)->reason, (r)->message); \
    } while (0)

/* kubeconfig <- $AGENTMESH_CLUSTER_DIR/kubeconfig (default /tmp/agentmesh-cluster). */
static inline void set_kubeconfig(void) {
    const char *dir = getenv("AGENTMESH_CLUSTER_DIR");
    snprintf(kubeconfig, sizeof kubeconfig, "%s/kubeconfig", dir && *dir ? dir : "/tmp/agentmesh-cluster");
}

/* Applies crds/ to the cluster, first starting it (hack/kube-up.sh,
 * idempotent) when that fails. 0, or -1 having said why on stderr. */
static inline int apply_crds(void) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "kubectl --kubeconfig '%s' apply -f '%s/crds/' >/dev/null", kubeconfig, SOURCE_DIR);
    if (system(cmd) == 0) return 0;
    if (system(SOURCE_DIR "/hack/kube-up.sh >&2") != 0 || system(cmd) != 0) {
        fprintf(stderr, "no API server (hack/kube-up.sh) or CRDs do not apply\n");
        return -1;
    }
    return 0;
}

/* A client from the admin kubeconfig, or NULL with the reason in err. */
static inline struct kube_client *connect_admin(char *err, size_t errlen) {
    struct kube_config cfg;
    if (kube_config_load_file(kubeconfig, NULL, &cfg, err, errlen) != 0) return NULL;
    struct kube_client *c = kube_client_new(&cfg, err, errlen);
    kube_config_free(&cfg);
    return c;
}

/* connect_admin, failing the test when it cannot. */
static inline struct kube_client *admin_client(void) {
    char err[512];
    struct kube_client *c = connect_admin(err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    return c;
}

/* The checked fixture: kc for the length of one test. */
static inline void client_up(void) {
    kc = admin_client();
}

static inline void client_down(void) {
    kube_client_free(kc);
    kc = NULL;
}

/* Deletes namespace `name` with a client of its own (for after the suite
 * has run); what fails is said on stderr. */
static inline void delete_test_namespace(const char *name) {
    static const struct kube_gvr gvr = {"", "v1", "namespaces", 0};
    char err[512];
    struct kube_client *c = connect_admin(err, sizeof err);
    if (!c) {
        fprintf(stderr, "admin client: %s\n", err);
        return;
    }
    struct kube_result r;
    if (kube_delete(c, &gvr, NULL, name, NULL, &r) != 0)
        fprintf(stderr, "delete namespace %s: %s: %s\n", name, r.reason, r.message);
    kube_result_free(&r);
    kube_client_free(c);
}

#endif
