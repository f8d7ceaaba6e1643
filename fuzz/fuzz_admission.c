/* fuzz_admission.c — libFuzzer target: AdmissionReview decoders + patch builder.
 *
 * Input: an AdmissionReview. Two extra top-level members steer the run
 * (the decoders ignore unknown members): "identity", the AgentIdentity the
 * lookup returns, and "apiMinor". Besides "no crash, no leak, no UB", it
 * checks on every input:
 *   - differential: the fast pod decoder (review_scan.h) and the full one
 *     (admission.h) agree — both accept or both reject with the same error
 *     text, read the same envelope, and the injector gives the same patch,
 *     warnings and skip reason from the pruned pod as from the whole one
 *     (the pruned pod's run reuses one result across inputs, as the
 *     webhook's loop threads do, so nothing may carry over);
 *   - the injector's promises: the patch is one JSON array, applies cleanly
 *     to the pod (strict RFC 6902), and a second run over the patched pod
 *     adds nothing (idempotence).
 * Validation and reply encoding run on the same input. */
#include "common/json.h"
#include "webhook/admission.h"
#include "webhook/inject.h"
#include "webhook/review_scan.h"
#include "webhook/test/jsonpatch_apply.h"
#include "webhook/validate.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int same(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void same_envelope(const struct admission_request *f, const struct admission_request *s) {
    if (!same(f->api_version, s->api_version) || !same(f->uid, s->uid) ||
        !same(f->operation, s->operation) || !same(f->namespace, s->namespace) ||
        !same(f->name, s->name) || !same(f->kind, s->kind) || !same(f->group, s->group) ||
        f->dry_run != s->dry_run || !f->object != !s->object || !f->old_object != !s->old_object)
        abort();
}

static void check_patch(const struct inject_result *r, const json_t *object,
                        const struct inject_input *in, const struct inject_options *o) {
    json_t *patch = json_loadb(r->patch, r->patch_len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_array(patch) || json_array_size(patch) != r->ops) abort();
    json_t *pod = json_deep_copy(object);
    char err[256];
    if (jp_apply(pod, patch, err, sizeof err) != 0) abort();
    struct inject_input again_in = *in;
    again_in.pod = pod;
    struct inject_result again = {0};
    if (inject_pod(&again_in, o, &again) != 0) abort();
    if (again.ops != 0) abort();
    inject_result_free(&again);
    json_decref(pod);
    json_decref(patch);
}

/* Kept from input to input, like a loop thread's (reachable at exit). */
static struct inject_result reused;
static struct json_text reply;

/* Injection over the full pod (slow) and the pruned one (fast) agrees. */
static void check_inject(const struct admission_request *fast, const struct admission_request *slow) {
    json_t *labels = json_pack("{s:s}", "agentmesh.io/inject", "enabled");
    struct inject_options o = {
        .api_minor = (int)json_int_at(slow->doc, "apiMinor", 20),
        .operator_namespace = "agentmesh-system",
        .sidecar_image = "sidecar:fuzz",
        .controller_url = "https://c:8080",
    };
    struct inject_input in = {.pod = slow->object, .namespace = slow->namespace,
                              .namespace_labels = labels,
                              .identity = json_object_get(slow->doc, "identity")};
    struct inject_result r = {0}, *rf = &reused;
    if (inject_pod(&in, &o, &r) != 0) abort();   /* only fails on OOM */
    struct inject_input fin = in;
    fin.pod = fast->object;
    if (inject_pod(&fin, &o, rf) != 0) abort();
    if (strcmp(r.patch, rf->patch) != 0 || !json_equal(r.warnings, rf->warnings) ||
        !same(r.skip, rf->skip))
        abort();
    check_patch(&r, slow->object, &in, &o);

    struct admission_response resp = {.allowed = 1, .patch = r.ops ? r.patch : NULL,
                                      .patch_len = r.patch_len, .warnings = r.warnings};
    if (admission_encode(&reply, slow, &resp) == 0 && strlen(reply.p) != reply.n) abort();
    inject_result_free(&r);
    json_decref(labels);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct admission_request fast, slow;
    char ferr[256] = "", serr[256] = "";
    int frc = review_scan_pod((const char *)data, size, &fast, ferr, sizeof ferr);
    int src = admission_decode((const char *)data, size, &slow, serr, sizeof serr);
    if (frc != src || strcmp(ferr, serr) != 0) abort();
    if (src != 0) return 0;
    same_envelope(&fast, &slow);
    if (slow.object) check_inject(&fast, &slow);
    char msg[512];
    validate_request(slow.kind, slow.operation, slow.object, slow.old_object, msg, sizeof msg);
    admission_request_free(&fast);
    admission_request_free(&slow);
    return 0;
}
