/* check_run.h — the end of every test program's main: run the Check suite,
 * turn its failures into the exit code ctest reads.
 *
 * fork is CK_FORK_GETENV (each test in its own process unless CK_FORK=no,
 * so a crash fails one test, not the run) or CK_NOFORK for suites whose
 * teardown must run in this process. */
#ifndef AGENTMESH_CHECK_RUN_H
#define AGENTMESH_CHECK_RUN_H

#include <check.h>
#include <stdlib.h>

static inline int check_run(Suite *s, enum fork_status fork)
{
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, fork);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
