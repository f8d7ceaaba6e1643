/* sched_slice.c — per-thread scheduler slice through sched_setattr (sched_slice.h).
 *
 * glibc before 2.41 has neither struct sched_attr nor a wrapper for
 * sched_getattr/sched_setattr, so both are raw syscalls on the kernel's
 * struct. The attributes are read first and written back with only the
 * runtime changed, so the thread's policy and nice value stay as they were. */
#include "common/sched_slice.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The kernel's struct sched_attr (SCHED_ATTR_SIZE_VER0: 48 bytes). */
struct slice_attr {
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
};

static int get_attr(struct slice_attr *a) {
    memset(a, 0, sizeof *a);
    a->size = sizeof *a;
    return (int)syscall(SYS_sched_getattr, 0, a, sizeof *a, 0);
}

int sched_slice_valid(long us) { return us == 0 || (us >= SCHED_SLICE_MIN_US && us <= SCHED_SLICE_MAX_US); }

int sched_slice_set(int us, char *err, size_t errlen) {
    if (!sched_slice_valid(us)) {
        snprintf(err, errlen, "scheduler slice %d us is not 0 (kernel default) or %d..%d us", us,
                 SCHED_SLICE_MIN_US, SCHED_SLICE_MAX_US);
        return -1;
    }
    struct slice_attr a;
    if (get_attr(&a) != 0) {
        snprintf(err, errlen, "sched_getattr: %s", strerror(errno));
        return -1;
    }
    a.size = sizeof a;
    a.sched_runtime = (uint64_t)us * 1000;
    if (syscall(SYS_sched_setattr, 0, &a, 0) != 0) {
        snprintf(err, errlen, "sched_setattr (slice %d us): %s", us, strerror(errno));
        return -1;
    }
    return 0;
}

int sched_slice_get(void) {
    struct slice_attr a;
    if (get_attr(&a) != 0) return -1;
    return (int)(a.sched_runtime / 1000);
}
