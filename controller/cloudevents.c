/* cloudevents.c — audit events as CloudEvents 1.0 structured-mode JSON,
 * POSTed with libcurl to the audit sink.
 *
 * One curl easy handle behind a mutex: audit traffic is light, and reusing
 * the handle keeps the connection (and TLS session) alive between events.
 * Every request is bounded by the timeout, so a hung sink costs 2 s and the
 * event goes to the spool. */
#include "controller/cloudevents.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMEOUT_MS 2000
#define DEFAULT_SOURCE "agentmesh-controller"

struct cloudevents_sink {
    char *url;
    char *ca_file;
    int timeout_ms;
    CURL *curl;
    struct curl_slist *headers;
    pthread_mutex_t mu;
};

/* RFC 3339 UTC with milliseconds: 2024-05-01T12:00:00.123Z */
static void rfc3339_ms(int64_t ms, char out[32])
{
    time_t secs = (time_t)(ms / 1000);
    int frac = (int)(ms % 1000);
    if (frac < 0) {
        frac += 1000;
        secs--;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", frac);
}

json_t *cloudevent_from_audit(const struct audit_event *ev)
{
    char type[AUDIT_TYPE_MAX + 16], time[32];
    snprintf(type, sizeof type, "ai.agentmesh.%s", ev->type);
    rfc3339_ms(ev->ts_ms, time);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:O}", "specversion", "1.0", "id", ev->id, "source",
                     ev->agent_did[0] ? ev->agent_did : DEFAULT_SOURCE, "type", type, "time", time,
                     "datacontenttype", "application/json", "data", ev->data ? ev->data : json_null());
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

struct cloudevents_sink *cloudevents_sink_new(const char *url, const char *ca_file, int timeout_ms, char *err,
                                              size_t errlen)
{
    if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        snprintf(err, errlen, "audit sink url: must start with http:// or https://");
        return NULL;
    }
    struct cloudevents_sink *s = calloc(1, sizeof *s);
    if (!s)
        goto oom;
    s->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    s->url = strdup(url);
    s->ca_file = ca_file ? strdup(ca_file) : NULL;
    s->curl = curl_easy_init();
    s->headers = curl_slist_append(NULL, "Content-Type: application/cloudevents+json; charset=utf-8");
    if (!s->url || (ca_file && !s->ca_file) || !s->curl || !s->headers)
        goto oom;
    pthread_mutex_init(&s->mu, NULL);
    return s;
oom:
    if (s) {
        curl_easy_cleanup(s->curl);
        curl_slist_free_all(s->headers);
        free(s->url);
        free(s->ca_file);
        free(s);
    }
    snprintf(err, errlen, "audit sink: out of memory");
    return NULL;
}

void cloudevents_sink_free(struct cloudevents_sink *s)
{
    if (!s)
        return;
    curl_easy_cleanup(s->curl);
    curl_slist_free_all(s->headers);
    pthread_mutex_destroy(&s->mu);
    free(s->url);
    free(s->ca_file);
    free(s);
}

int cloudevents_sink_post(struct cloudevents_sink *s, const char *body, size_t len, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    CURL *c = s->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, s->url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)s->timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (s->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    pthread_mutex_unlock(&s->mu);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "audit sink: %s", curl_easy_strerror(rc));
        return -1;
    }
    if (status >= 200 && status < 300)
        return 0;
    snprintf(err, errlen, "audit sink: HTTP %ld", status);
    return status == 408 || status == 429 || status >= 500 ? -1 : -2;
}

int cloudevents_spool_sink(const char *payload, size_t len, void *arg, char *err, size_t errlen)
{
    return cloudevents_sink_post(arg, payload, len, err, errlen);
}
