/* cloudevents.h — audit events as CloudEvents 1.0 (structured mode JSON),
 * POSTed to --audit-sink-url.
 *
 * {"specversion":"1.0","id":<event id>,"source":<agent DID>,
 *  "type":"ai.agentmesh.<type>","time":<RFC3339 UTC, ms>,
 *  "datacontenttype":"application/json","data":{...}}
 * sent with Content-Type: application/cloudevents+json. The CloudEvent id is
 * the audit event id, so a receiver can drop redeliveries from the spool. */
#ifndef AGENTMESH_CLOUDEVENTS_H
#define AGENTMESH_CLOUDEVENTS_H

#include <jansson.h>
#include <stddef.h>

#include "controller/audit_log.h"

/* New reference, or NULL on OOM. An event with no DID gets source "agentmesh-controller". */
json_t *cloudevent_from_audit(const struct audit_event *ev);

struct cloudevents_sink;

/* `url` http:// or https://; timeout_ms 0 = 2000 (connect and whole request).
 * `ca_file` may be NULL (system CAs). NULL with err for a bad URL. */
struct cloudevents_sink *cloudevents_sink_new(const char *url, const char *ca_file, int timeout_ms,
                                              char *err, size_t errlen);
void cloudevents_sink_free(struct cloudevents_sink *s);

/* POSTs one structured-mode event. 0 on 2xx; -1 transient (connect error,
 * timeout, 408/429/5xx); -2 rejected (other 4xx). Thread-safe. */
int cloudevents_sink_post(struct cloudevents_sink *s, const char *body, size_t len,
                          char *err, size_t errlen);

/* audit_spool sink: arg is the cloudevents_sink, payload the CloudEvent JSON. */
int cloudevents_spool_sink(const char *payload, size_t len, void *arg, char *err, size_t errlen);

#endif
