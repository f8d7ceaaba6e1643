/* fuzz_watch_event.c — libFuzzer target for the watch-stream line decoder.
 *
 * The input is a chunk of a watch stream: it is split on '\n' and each line
 * goes through kube_watch_handle_line into a hand-fed informer, the same path
 * a line from the API server takes. Must never crash, leak or misbehave
 * under ASan/UBSan, whatever the bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/log.h"
#include "controller/informer.h"
#include "controller/kube_watch.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);     /* malformed lines are logged at warn */
    return 0;
}

static void to_informer(void *arg, enum kube_event_type type, json_t *obj)
{
    informer_apply_event(arg, type, obj);
}

static int no_relist(void *arg, char *rv, size_t rvlen)
{
    (void)arg;
    (void)rv;
    (void)rvlen;
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct informer_opts io = {.gvr = {"", "v1", "configmaps", 1}};
    struct informer *inf = informer_new(NULL, &io);
    if (!inf)
        return 0;
    struct kube_watch_handlers h = {.relist = no_relist, .event = to_informer, .arg = inf};
    struct kube_watch_state st = {.h = &h};
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (kube_watch_handle_line(&st, p, len) != 0)
            st.verdict = KUBE_WATCH_CONTINUE;    /* keep going: exercise every line */
        p += len + 1;
    }
    /* the decoder alone, on the whole input as one line */
    struct kube_watch_event ev;
    char err[256];
    if (kube_watch_decode((const char *)data, size, &ev, err, sizeof(err)) == 0)
        kube_watch_event_clear(&ev);
    informer_free(inf);
    return 0;
}
