/* sched_slice.h — ask the scheduler for short time slices on this thread.
 *
 * Our servers work in bursts of ~0.1 ms per request, and a request waits
 * for them: on a busy node a woken listener thread queued behind a
 * neighbour until that neighbour's slice ended (1.4 ms by default on the
 * 2-core bench machine). On Linux >= 6.12 (EEVDF) a normal thread's slice
 * is its sched_attr.sched_runtime; a short one gives it an earlier deadline
 * when it wakes, so it preempts a busy neighbour sooner. Its share of the
 * CPU stays the same. Older kernels accept and ignore the field.
 *
 * The setting is per thread, and threads started afterwards inherit it:
 * httpd applies it in each listener thread (httpd_options.sched_slice_us),
 * so the informers and workers of the controller keep the kernel's slice. */
#ifndef AGENTMESH_SCHED_SLICE_H
#define AGENTMESH_SCHED_SLICE_H

#include <stddef.h>

/* The range the kernel honours (it clamps to 0.1..100 ms); 0 = its default. */
#define SCHED_SLICE_MIN_US 100
#define SCHED_SLICE_MAX_US 100000

/* 1 when `us` is 0 or within SCHED_SLICE_MIN_US..SCHED_SLICE_MAX_US:
 * what configuration checks before any thread asks. */
int sched_slice_valid(long us);

/* Sets the calling thread's slice to `us` microseconds, or back to the
 * kernel's default when `us` is 0. 0, or -1 with a message in err (a value
 * outside 0 / SCHED_SLICE_MIN_US..SCHED_SLICE_MAX_US, or the syscall's
 * error); the caller logs it: a failure only costs latency. */
int sched_slice_set(int us, char *err, size_t errlen);

/* The calling thread's slice in microseconds as the kernel reports it, or
 * -1 (errno set). 0 on kernels that do not report one (before 6.12). */
int sched_slice_get(void);

#endif
