/* fuzz_admission.c — libFuzzer target: AdmissionReview decoder + patch builder.
 *
 * Input: an AdmissionReview. Two extra top-level members steer the run
 * (the decoder ignores unknown members): "identity", the AgentIdentity the
 * lookup returns, and "apiMinor". Besides "no crash, no leak, no UB", it
 * checks the injector's promises on every input it accepts: the patch
 * applies cleanly to the pod (strict RFC 6902), and a second run over the
 * patched pod adds nothing (idempotence). Validation and reply encoding run
 * on the same input. */
#include "common/json.h"
#include "webhook/admission.h"
#include "webhook/inject.h"
#include "webhook/test/jsonpatch_apply.h"
#include "webhook/validate.h"

#include <stdint.h>
#include <stdlib.h>

static void check_inject(const struct admission_request *ar) {
    json_t *labels = json_pack("{s:s}", "agentmesh.io/inject", "enabled");
    struct inject_options o = {
        .api_minor = (int)json_int_at(ar->doc, "apiMinor", 20),
        .operator_namespace = "agentmesh-system",
        .sidecar_image = "sidecar:fuzz",
        .controller_url = "https://c:8080",
    };
    struct inject_input in = {.pod = ar->object, .namespace = ar->namespace,
                              .namespace_labels = labels,
                              .identity = json_object_get(ar->doc, "identity")};
    struct inject_result r;
    if (inject_pod(&in, &o, &r) != 0) abort();   /* only fails on OOM */

    json_t *pod = json_deep_copy(ar->object);
    char err[256];
    if (jp_apply(pod, r.patch, err, sizeof err) != 0) abort();
    struct inject_result again;
    in.pod = pod;
    if (inject_pod(&in, &o, &again) != 0) abort();
    if (json_array_size(again.patch) != 0) abort();

    struct admission_response resp = {.allowed = 1, .patch = r.patch, .warnings = r.warnings};
    free(admission_encode(ar, &resp));
    inject_result_free(&again);
    inject_result_free(&r);
    json_decref(pod);
    json_decref(labels);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct admission_request ar;
    char err[256];
    if (admission_decode((const char *)data, size, &ar, err, sizeof err) != 0) return 0;
    if (ar.object) check_inject(&ar);
    char msg[512];
    validate_request(ar.kind, ar.operation, ar.object, ar.old_object, msg, sizeof msg);
    admission_request_free(&ar);
    return 0;
}
