/* test_kube_config.c — kubeconfig parsing (good and malformed fixtures in
 * test/data/kubeconfig-*), in-cluster configuration and the resolve order. */
#include "common/test/check_run.h"
#include "controller/kube_client.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DATA(name) TESTDATA_DIR "/" name

/* Loads a fixture that must fail and checks the error names the field. */
static void expect_error(const char *file, const char *context, const char *fragment) {
    struct kube_config cfg;
    char err[512] = "";
    ck_assert_int_eq(kube_config_load_file(file, context, &cfg, err, sizeof err), -1);
    ck_assert_msg(strstr(err, fragment) != NULL, "error \"%s\" lacks \"%s\"", err, fragment);
    ck_assert_ptr_null(cfg.server);   /* nothing half-filled left behind */
}

static struct kube_config load_ok(const char *file, const char *context) {
    struct kube_config cfg;
    char err[512] = "";
    ck_assert_msg(kube_config_load_file(file, context, &cfg, err, sizeof err) == 0, "%s: %s", file, err);
    return cfg;
}

START_TEST(token_user) {
    struct kube_config cfg = load_ok(DATA("kubeconfig-token"), NULL);
    ck_assert_str_eq(cfg.server, "https://127.0.0.1:6443");   /* trailing slash dropped */
    ck_assert_str_eq(cfg.token, "abc.def.ghi");
    ck_assert_str_eq(cfg.namespace, "team-a");
    ck_assert_str_eq(cfg.ca_data, "-----BEGIN CERTIFICATE-----\nTESTCA\n-----END CERTIFICATE-----\n");
    ck_assert_ptr_null(cfg.ca_file);
    ck_assert_ptr_null(cfg.token_file);
    ck_assert_ptr_null(cfg.client_cert_data);
    ck_assert_int_eq(cfg.insecure_skip_tls_verify, 0);
    kube_config_free(&cfg);
    ck_assert_ptr_null(cfg.token);
}
END_TEST

START_TEST(client_cert_data) {
    struct kube_config cfg = load_ok(DATA("kubeconfig-certdata"), NULL);
    ck_assert_str_eq(cfg.server, "https://api.example.com:443");
    ck_assert_str_eq(cfg.client_cert_data, "-----BEGIN CERTIFICATE-----\nTESTCLIENT\n-----END CERTIFICATE-----\n");
    ck_assert_str_eq(cfg.client_key_data, "-----BEGIN PRIVATE KEY-----\nTESTKEY\n-----END PRIVATE KEY-----\n");
    ck_assert_ptr_nonnull(cfg.ca_data);
    ck_assert_ptr_null(cfg.ca_file);   /* data wins over the file, as in kubectl */
    ck_assert_ptr_null(cfg.token);
    ck_assert_ptr_null(cfg.namespace);
    kube_config_free(&cfg);
}
END_TEST

START_TEST(relative_paths_from_kubeconfig_dir) {
    struct kube_config cfg = load_ok(DATA("kubeconfig-cafile"), NULL);
    ck_assert_str_eq(cfg.ca_file, TESTDATA_DIR "/kubeconfig-ca.crt");
    ck_assert_str_eq(cfg.token_file, TESTDATA_DIR "/kubeconfig-token.txt");
    ck_assert_str_eq(cfg.client_cert_file, "/etc/pki/client.crt");
    ck_assert_str_eq(cfg.client_key_file, TESTDATA_DIR "/keys/client.key");
    ck_assert_ptr_null(cfg.token);
    ck_assert_ptr_null(cfg.ca_data);
    kube_config_free(&cfg);
}
END_TEST

START_TEST(named_context) {
    struct kube_config cfg = load_ok(DATA("kubeconfig-named"), "staging");
    ck_assert_str_eq(cfg.server, "https://staging.example.com:8443");
    ck_assert_str_eq(cfg.token, "staging-token");
    ck_assert_str_eq(cfg.namespace, "qa");
    kube_config_free(&cfg);
    cfg = load_ok(DATA("kubeconfig-named"), NULL);   /* current-context */
    ck_assert_str_eq(cfg.server, "https://prod.example.com");
    ck_assert_str_eq(cfg.token, "prod-token");
    ck_assert_ptr_null(cfg.namespace);
    kube_config_free(&cfg);
    expect_error(DATA("kubeconfig-named"), "nope", "contexts: context \"nope\" not found");
}
END_TEST

START_TEST(insecure_without_user) {
    struct kube_config cfg = load_ok(DATA("kubeconfig-insecure"), NULL);
    ck_assert_int_eq(cfg.insecure_skip_tls_verify, 1);
    ck_assert_ptr_null(cfg.token);
    ck_assert_ptr_null(cfg.token_file);
    ck_assert_ptr_null(cfg.client_cert_file);
    kube_config_free(&cfg);
}
END_TEST

START_TEST(malformed) {
    expect_error(DATA("kubeconfig-bad-yaml"), NULL, "line 3 column 14: mapping values are not allowed");
    expect_error(DATA("kubeconfig-no-current"), NULL, "current-context: missing");
    expect_error(DATA("kubeconfig-missing-cluster"), NULL,
                 "contexts[1].context.cluster: cluster \"ghost\" not found");
    expect_error(DATA("kubeconfig-missing-user"), NULL, "contexts[0].context.user: user \"bob\" not found");
    expect_error(DATA("kubeconfig-missing-server"), NULL, "clusters[1].cluster.server: missing");
    expect_error(DATA("kubeconfig-exec"), NULL, "users[0].user.exec: exec credential plugins are not supported");
    expect_error(DATA("kubeconfig-bad-base64"), NULL,
                 "clusters[0].cluster.certificate-authority-data: not valid base64");
    expect_error(DATA("kubeconfig-does-not-exist"), NULL, "cannot read " TESTDATA_DIR "/kubeconfig-does-not-exist");
}
END_TEST

/* Writes `text` to a fresh temp file and returns its path (static buffer). */
static const char *temp_kubeconfig(const char *text) {
    static char path[] = "/tmp/kubeconfig-test-XXXXXX";
    strcpy(path, "/tmp/kubeconfig-test-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

START_TEST(wrong_types_and_edge_cases) {
    const char *p = temp_kubeconfig("current-context: c\nclusters:\n- name: c\n  cluster:\n    server: [a]\n"
                                    "contexts:\n- name: c\n  context: {cluster: c}\n");
    expect_error(p, NULL, "clusters[0].cluster.server: expected a string");
    unlink(p);
    p = temp_kubeconfig("current-context: c\nclusters:\n- name: c\n  cluster: {server: https://x, "
                        "insecure-skip-tls-verify: maybe}\ncontexts:\n- name: c\n  context: {cluster: c}\n");
    expect_error(p, NULL, "clusters[0].cluster.insecure-skip-tls-verify: expected true or false");
    unlink(p);
    p = temp_kubeconfig("current-context: c\ncontexts:\n- context: {cluster: c}\n");
    expect_error(p, NULL, "contexts[0].name: missing");
    unlink(p);
    p = temp_kubeconfig("current-context: c\nclusters:\n- name: c\n  cluster: {server: https://x}\n"
                        "contexts:\n- name: c\n  context: {cluster: c, user: u}\nusers:\n- name: u\n"
                        "  user: {client-certificate: a.crt}\n");
    expect_error(p, NULL, "users[0].user.client-key: missing");
    unlink(p);
    p = temp_kubeconfig("");
    expect_error(p, NULL, "empty kubeconfig");
    unlink(p);
    p = temp_kubeconfig("- just\n- a list\n");
    expect_error(p, NULL, "top level: expected a mapping");
    unlink(p);
}
END_TEST

/* A service-account directory like the kubelet mounts. */
static void make_sa_dir(char *dir, int with_namespace) {
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[512];
    const char *files[][2] = {{"token", "sa-token\n"}, {"ca.crt", "PEM\n"}, {"namespace", "agentmesh-system\n"}};
    for (int i = 0; i < (with_namespace ? 3 : 2); i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i][0]);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_ge(fputs(files[i][1], f), 0);
        ck_assert_int_eq(fclose(f), 0);
    }
}

static void remove_sa_dir(const char *dir) {
    char path[512];
    const char *names[] = {"token", "ca.crt", "namespace"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

START_TEST(in_cluster) {
    char dir[] = "/tmp/sa-test-XXXXXX";
    make_sa_dir(dir, 1);
    struct kube_config cfg;
    char err[512] = "";
    unsetenv("KUBERNETES_SERVICE_HOST");
    ck_assert_int_eq(kube_config_in_cluster(dir, &cfg, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "KUBERNETES_SERVICE_HOST"));

    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    ck_assert_msg(kube_config_in_cluster(dir, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(cfg.server, "https://10.96.0.1:443");
    char want[512];
    snprintf(want, sizeof want, "%s/token", dir);
    ck_assert_str_eq(cfg.token_file, want);
    snprintf(want, sizeof want, "%s/ca.crt", dir);
    ck_assert_str_eq(cfg.ca_file, want);
    ck_assert_str_eq(cfg.namespace, "agentmesh-system");   /* newline trimmed */
    ck_assert_ptr_null(cfg.token);
    kube_config_free(&cfg);

    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    ck_assert_int_eq(kube_config_in_cluster(dir, &cfg, err, sizeof err), 0);
    ck_assert_str_eq(cfg.server, "https://[fd00::1]:443");
    kube_config_free(&cfg);

    snprintf(want, sizeof want, "%s/token", dir);
    unlink(want);
    ck_assert_int_eq(kube_config_in_cluster(dir, &cfg, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "cannot read") && strstr(err, "/token"), "%s", err);
    remove_sa_dir(dir);
}
END_TEST

START_TEST(resolve_order) {
    struct kube_config cfg;
    char err[512] = "";
    /* Explicit path beats $KUBECONFIG. */
    setenv("KUBECONFIG", DATA("kubeconfig-named"), 1);
    ck_assert_int_eq(kube_config_resolve(DATA("kubeconfig-token"), &cfg, err, sizeof err), 0);
    ck_assert_str_eq(cfg.token, "abc.def.ghi");
    kube_config_free(&cfg);
    /* $KUBECONFIG: the first entry of a colon list. */
    setenv("KUBECONFIG", DATA("kubeconfig-named") ":" DATA("kubeconfig-token"), 1);
    ck_assert_int_eq(kube_config_resolve(NULL, &cfg, err, sizeof err), 0);
    ck_assert_str_eq(cfg.token, "prod-token");
    kube_config_free(&cfg);
    /* Neither: in-cluster. */
    unsetenv("KUBECONFIG");
    unsetenv("KUBERNETES_SERVICE_HOST");
    ck_assert_int_eq(kube_config_resolve("", &cfg, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "in-cluster:") != NULL, "%s", err);
}
END_TEST

int main(void) {
    Suite *s = suite_create("kube_config");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, token_user);
    tcase_add_test(tc, client_cert_data);
    tcase_add_test(tc, relative_paths_from_kubeconfig_dir);
    tcase_add_test(tc, named_context);
    tcase_add_test(tc, insecure_without_user);
    tcase_add_test(tc, malformed);
    tcase_add_test(tc, wrong_types_and_edge_cases);
    tcase_add_test(tc, in_cluster);
    tcase_add_test(tc, resolve_order);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
