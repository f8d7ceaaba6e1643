/* review_scan.h — the fast decoder of pod AdmissionReviews for /mutate-pods.
 *
 * admission_decode() builds a jansson tree of the whole review; on a 3 KB
 * pod that alone cost ~85 µs of CPU per request, most of the webhook's
 * time. The injector reads only a handful of pod fields (inject.h lists
 * them), so this decoder checks the whole body with an allocation-free
 * scanner and builds jansson nodes only for the envelope and those fields.
 *
 * It takes only the plain, common shape of input: anything unusual (non-ASCII
 * text, escaped keys, big objects, exponents, deep nesting) and every
 * malformed body is handed to admission_decode(), so results and error
 * messages are always exactly the full decoder's. */
#ifndef AGENTMESH_WEBHOOK_REVIEW_SCAN_H
#define AGENTMESH_WEBHOOK_REVIEW_SCAN_H

#include "webhook/admission.h"

/* Like admission_decode(), but out->object holds only the pod fields the
 * injector reads (other members of the review, and oldObject's content,
 * are left out). 0, or -1 with the full decoder's reason in err. */
int review_scan_pod(const char *body, size_t len, struct admission_request *out, char *err,
                    size_t errlen);

#endif
