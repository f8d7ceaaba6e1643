/* test_config.c — flags, AGENTMESH_* environment and --config YAML, with precedence and errors. */
#include "common/test/check_run.h"
#include "controller/config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char err[512];

static int load(struct config *cfg, int argc, const char **argv) {
    err[0] = '\0';
    return config_load(cfg, argc, (char **)argv, err, sizeof err);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(fputs(text, f), 0);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(defaults) {
    struct config cfg;
    const char *argv[] = {"x"};
    ck_assert_int_eq(load(&cfg, 1, argv), 0);
    ck_assert_int_eq(cfg.api_port, 8080);
    ck_assert_int_eq(cfg.metrics_port, 9090);
    ck_assert_int_eq(cfg.webhook_port, 9443);
    ck_assert_int_eq(cfg.leader_elect, 1);
    ck_assert_str_eq(cfg.leader_election_id, "agentmesh-controller");
    ck_assert_ptr_null(cfg.redis_url);
    ck_assert(cfg.status_min_interval == 10);
    ck_assert_int_eq(cfg.sched_slice_us, 100);
    config_free(&cfg);
}
END_TEST

START_TEST(flags_env_file_precedence) {
    char path[] = "/tmp/agentmesh-config-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    write_file(path, "redis-url: redis://file:6379\nworkers: 7\napi-port: 1111\nleader-elect: false\n");
    setenv("AGENTMESH_API_PORT", "2222", 1);
    setenv("AGENTMESH_REDIS_URL", "redis://env:6379", 1);
    struct config cfg;
    const char *argv[] = {"x", "--config", path, "--redis-url=redis://flag:6379"};
    ck_assert_msg(load(&cfg, 4, argv) == 0, "%s", err);
    ck_assert_str_eq(cfg.redis_url, "redis://flag:6379"); /* flag beats env and file */
    ck_assert_int_eq(cfg.api_port, 2222);                  /* env beats file */
    ck_assert_int_eq(cfg.workers, 7);                      /* file beats default */
    ck_assert_int_eq(cfg.leader_elect, 0);
    config_free(&cfg);
    unsetenv("AGENTMESH_API_PORT");
    unsetenv("AGENTMESH_REDIS_URL");
    unlink(path);
}
END_TEST

START_TEST(bool_flag_without_value) {
    struct config cfg;
    const char *argv[] = {"x", "--api-tls", "--workers", "3"};
    ck_assert_int_eq(load(&cfg, 4, argv), 0);
    ck_assert_int_eq(cfg.api_tls, 1);
    ck_assert_int_eq(cfg.workers, 3);
    config_free(&cfg);
}
END_TEST

START_TEST(errors_name_the_problem) {
    struct config cfg;
    const char *unknown[] = {"x", "--redis-uri", "x"};
    ck_assert_int_eq(load(&cfg, 3, unknown), -1);
    ck_assert_ptr_nonnull(strstr(err, "unknown flag --redis-uri"));
    config_free(&cfg);

    const char *bad_number[] = {"x", "--api-port", "eighty"};
    ck_assert_int_eq(load(&cfg, 3, bad_number), -1);
    ck_assert_ptr_nonnull(strstr(err, "--api-port: invalid non-negative number value \"eighty\""));
    config_free(&cfg);

    const char *missing[] = {"x", "--namespace"};
    ck_assert_int_eq(load(&cfg, 2, missing), -1);
    ck_assert_ptr_nonnull(strstr(err, "flag --namespace needs a value"));
    config_free(&cfg);

    setenv("AGENTMESH_LEADER_ELECT", "maybe", 1);
    const char *none[] = {"x"};
    ck_assert_int_eq(load(&cfg, 1, none), -1);
    ck_assert_ptr_nonnull(strstr(err, "AGENTMESH_LEADER_ELECT: invalid boolean value \"maybe\""));
    unsetenv("AGENTMESH_LEADER_ELECT");
    config_free(&cfg);

    const char *port[] = {"x", "--metrics-port", "70000"};
    ck_assert_int_eq(load(&cfg, 3, port), -1);
    ck_assert_ptr_nonnull(strstr(err, "ports must be within 0..65535"));
    config_free(&cfg);

    /* a slice the kernel would refuse is refused here, by name; 0 (kernel default) is fine */
    const char *slice[] = {"x", "--sched-slice-us", "50"};
    ck_assert_int_eq(load(&cfg, 3, slice), -1);
    ck_assert_ptr_nonnull(strstr(err, "sched-slice-us: 50"));
    config_free(&cfg);
    const char *no_slice[] = {"x", "--sched-slice-us", "0"};
    ck_assert_int_eq(load(&cfg, 3, no_slice), 0);
    ck_assert_int_eq(cfg.sched_slice_us, 0);
    config_free(&cfg);
}
END_TEST

START_TEST(file_errors) {
    char path[] = "/tmp/agentmesh-config-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    struct config cfg;
    const char *argv[] = {"x", "--config", path};

    write_file(path, "workers: 2\nbogus-key: 1\n");
    ck_assert_int_eq(load(&cfg, 3, argv), -1);
    ck_assert_ptr_nonnull(strstr(err, "line 2: unknown option \"bogus-key\""));
    config_free(&cfg);

    write_file(path, "workers: [1, 2]\n");
    ck_assert_int_eq(load(&cfg, 3, argv), -1);
    ck_assert_ptr_nonnull(strstr(err, "workers: value must be a scalar"));
    config_free(&cfg);

    write_file(path, "workers: 2\n  bad: : indent\n");
    ck_assert_int_eq(load(&cfg, 3, argv), -1);
    ck_assert_ptr_nonnull(strstr(err, "line 2"));
    config_free(&cfg);

    write_file(path, "- a\n- b\n");
    ck_assert_int_eq(load(&cfg, 3, argv), -1);
    ck_assert_ptr_nonnull(strstr(err, "top level must be a mapping"));
    config_free(&cfg);

    unlink(path);
    ck_assert_int_eq(load(&cfg, 3, argv), -1);
    ck_assert_ptr_nonnull(strstr(err, "No such file"));
    config_free(&cfg);
}
END_TEST

START_TEST(help_returns_one) {
    struct config cfg;
    const char *argv[] = {"x", "--help"};
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    int rc = load(&cfg, 2, argv);
    fclose(stdout);
    stdout = saved;
    ck_assert_int_eq(rc, 1);
    config_free(&cfg);
}
END_TEST

int main(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, flags_env_file_precedence);
    tcase_add_test(tc, bool_flag_without_value);
    tcase_add_test(tc, errors_name_the_problem);
    tcase_add_test(tc, file_errors);
    tcase_add_test(tc, help_returns_one);
    suite_add_tcase(s, tc);
    return check_run(s, CK_NOFORK);
}
