/* admission.h — AdmissionReview codec (admission.k8s.io v1, and v1beta1 for
 * old API servers that still send it).
 *
 * Decoding checks the envelope only (size, apiVersion, kind, request.uid,
 * request.object); what the object means is the webhook's business. Bad input
 * comes back as -1 with a reason, which the server sends as an HTTP 400. */
#ifndef AGENTMESH_WEBHOOK_ADMISSION_H
#define AGENTMESH_WEBHOOK_ADMISSION_H

#include <jansson.h>
#include <stddef.h>

/* The API server never sends more than 3 MiB of request body (etcd's limit
 * plus envelope); anything bigger is not an AdmissionReview from it. */
#define ADMISSION_MAX_BYTES (3u * 1024u * 1024u)

/* A decoded request. Every pointer borrows from `doc`. */
struct admission_request {
    json_t *doc;                /* the whole review (owned) */
    const char *api_version;    /* "admission.k8s.io/v1" or ".../v1beta1", echoed back */
    const char *uid;
    const char *operation;      /* CREATE, UPDATE, DELETE, CONNECT */
    const char *namespace;      /* "" for cluster-scoped objects */
    const char *name;           /* "" when the API server has not named it yet */
    const char *kind;           /* request.kind.kind: "Pod", "AgentIdentity" */
    const char *group;          /* request.kind.group: "", "agentmesh.io" */
    const json_t *object;       /* request.object (NULL on DELETE) */
    const json_t *old_object;   /* request.oldObject, or NULL */
    int dry_run;
};

/* Parses `len` bytes. 0, or -1 with a reason in err (and *out zeroed). */
int admission_decode(const char *body, size_t len, struct admission_request *out, char *err,
                     size_t errlen);
/* The envelope checks of admission_decode on an already parsed review
 * (`doc` is stolen, freed on error): for decoders that build the tree
 * another way (review_scan.h). */
int admission_decode_doc(json_t *doc, struct admission_request *out, char *err, size_t errlen);
void admission_request_free(struct admission_request *r);

/* What the webhook decided. */
struct admission_response {
    int allowed;
    const char *patch;          /* JSON Patch as JSON text (inject.h); NULL = no patch */
    size_t patch_len;
    const json_t *warnings;     /* array of strings, or NULL */
    int code;                   /* status code on deny (0 = 403) */
    const char *message;        /* reason on deny, or NULL */
};

/* Serialises the reply review (uid and apiVersion echoed from `req`) into
 * `out`, replacing what it held (its buffer is reused: a loop thread keeps
 * one for all its replies). 0, or -1 on allocation failure. */
struct json_text;
int admission_encode(struct json_text *out, const struct admission_request *req,
                     const struct admission_response *resp);

#endif
