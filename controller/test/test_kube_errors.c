/* test_kube_errors.c — the client's wire behaviour against a tiny local HTTP
 * server (libevent evhttp on 127.0.0.1, started per test): error mapping
 * (Status JSON, non-JSON 503, connection refused), the request it sends
 * (headers, bearer token, apply content type and query encoding), list
 * pagination, and streams (split lines, LineTooLong, stop flag, error reply).
 * The same server also listens with TLS and demands a client certificate, to
 * check CA / client certificate handling as files and as in-memory PEM. */
#include "common/json.h"
#include "common/test/check_run.h"
#include "controller/kube_client.h"
#include "controller/kube_internal.h"

#include <arpa/inet.h>
#include <check.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "s3cret-t0ken-value"

/* What the server saw in the last request. */
static struct {
    pthread_mutex_t mu;
    char method[16], uri[2048], auth[256], ua[128], accept[128], ctype[128], body[4096];
    char client_cn[64];   /* subject CN of the TLS client certificate, if any */
    int requests;
} seen = {.mu = PTHREAD_MUTEX_INITIALIZER};

static struct event_base *base;
static struct evhttp *http, *https;
static SSL_CTX *tls_ctx;
static pthread_t server_thread;
static int port, tls_port;
static char pki[] = "/tmp/kube-errors-pki-XXXXXX";   /* made once in main() */

static const char *method_name(enum evhttp_cmd_type t) {
    switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    case EVHTTP_REQ_DELETE: return "DELETE";
    default: return "OTHER";
    }
}

static void copy_header(char *dst, size_t n, struct evhttp_request *req, const char *name) {
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), name);
    snprintf(dst, n, "%s", v ? v : "");
}

static void record(struct evhttp_request *req) {
    pthread_mutex_lock(&seen.mu);
    snprintf(seen.method, sizeof seen.method, "%s", method_name(evhttp_request_get_command(req)));
    snprintf(seen.uri, sizeof seen.uri, "%s", evhttp_request_get_uri(req));
    copy_header(seen.auth, sizeof seen.auth, req, "Authorization");
    copy_header(seen.ua, sizeof seen.ua, req, "User-Agent");
    copy_header(seen.accept, sizeof seen.accept, req, "Accept");
    copy_header(seen.ctype, sizeof seen.ctype, req, "Content-Type");
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (n >= sizeof seen.body) n = sizeof seen.body - 1;
    evbuffer_copyout(in, seen.body, n);
    seen.body[n] = '\0';
    seen.client_cn[0] = '\0';
    SSL *ssl = bufferevent_openssl_get_ssl(evhttp_connection_get_bufferevent(evhttp_request_get_connection(req)));
    X509 *peer = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
    if (peer)
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, seen.client_cn,
                                  sizeof seen.client_cn);
    X509_free(peer);
    seen.requests++;
    pthread_mutex_unlock(&seen.mu);
}

static void reply(struct evhttp_request *req, int code, const char *ctype, const char *body) {
    struct evbuffer *b = evbuffer_new();
    ck_assert_ptr_nonnull(b);
    evbuffer_add(b, body, strlen(body));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evhttp_send_reply(req, code, "X", b);
    evbuffer_free(b);
}

static void chunk(struct evhttp_request *req, const char *text) {
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, text, strlen(text));
    evhttp_send_reply_chunk(req, b);
    evbuffer_free(b);
}

/* Pages of a fake list: continue tokens with characters that need encoding. */
static void list_page(struct evhttp_request *req) {
    struct evkeyvalq q;
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    ck_assert_int_eq(evhttp_parse_query_str(query ? query : "", &q), 0);
    const char *cont = evhttp_find_header(&q, "continue");
    const char *rv = evhttp_find_header(&q, "resourceVersion");
    if (!cont)
        reply(req, 200, "application/json",
              "{\"kind\":\"ConfigMapList\",\"metadata\":{\"resourceVersion\":\"100\",\"continue\":\"tok+1/=\","
              "\"remainingItemCount\":3},\"items\":[{\"n\":\"a\"},{\"n\":\"b\"}]}");
    else if (strcmp(cont, "tok+1/=") == 0 && !rv)
        reply(req, 200, "application/json",
              "{\"metadata\":{\"resourceVersion\":\"101\",\"continue\":\"t2\"},\"items\":[{\"n\":\"c\"},{\"n\":\"d\"}]}");
    else if (strcmp(cont, "t2") == 0 && !rv)
        reply(req, 200, "application/json", "{\"metadata\":{\"resourceVersion\":\"102\"},\"items\":[{\"n\":\"e\"}]}");
    else
        reply(req, 410, "application/json", "{\"kind\":\"Status\",\"reason\":\"Expired\",\"message\":\"bad continue\"}");
    evhttp_clear_headers(&q);
}

/* A client that hangs up on an unfinished reply leaves the request to us:
 * evhttp detaches it from the connection, and ending it frees it. */
static void on_close(struct evhttp_connection *conn, void *arg) {
    evhttp_send_reply_end(arg);
}

static void handle(struct evhttp_request *req, void *arg) {
    record(req);
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (strcmp(path, "/status404") == 0) {
        reply(req, 404, "application/json",
              "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
              "\"message\":\"configmaps \\\"nope\\\" not found\",\"reason\":\"NotFound\","
              "\"details\":{\"name\":\"nope\",\"kind\":\"configmaps\"},\"code\":404}");
    } else if (strcmp(path, "/plain503") == 0) {
        char body[2048];
        int n = snprintf(body, sizeof body, "<html>\r\n<b>upstream unavailable</b>\t");
        memset(body + n, 'z', 1000);
        body[n + 1000] = '\0';
        reply(req, 503, "text/html", body);
    } else if (strcmp(path, "/plain401") == 0) {
        reply(req, 401, "text/plain", "Unauthorized");
    } else if (strcmp(path, "/plain200") == 0) {
        reply(req, 200, "text/plain", "ok");
    } else if (strcmp(path, "/api/v1/namespaces/page/configmaps") == 0) {
        list_page(req);
    } else if (strcmp(path, "/stream/lines") == 0) {
        evhttp_send_reply_start(req, 200, "OK");
        chunk(req, "{\"type\":\"ADDED\",\"n\":1}\n{\"type\":\"MOD");
        chunk(req, "IFIED\",\"n\":2}\n{\"type\":\"DELETED\",");
        chunk(req, "\"n\":3}\n{\"tail\":true}");
        evhttp_send_reply_end(req);
    } else if (strcmp(path, "/stream/long") == 0) {
        char line[2100];
        memset(line, 'x', 2000);
        strcpy(line + 2000, "\n");
        evhttp_send_reply_start(req, 200, "OK");
        chunk(req, "short\n");
        chunk(req, line);
        evhttp_send_reply_end(req);
    } else if (strcmp(path, "/stream/forever") == 0) {
        evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_close, req);
        evhttp_send_reply_start(req, 200, "OK");
        chunk(req, "{\"type\":\"BOOKMARK\"}\n");
    } else if (strcmp(path, "/stream/gone") == 0) {
        reply(req, 410, "application/json",
              "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"too old resource version: 1 (5)\","
              "\"reason\":\"Gone\",\"code\":410}");
    } else {
        reply(req, 200, "application/json", "{\"kind\":\"Echo\"}");
    }
}

static void *serve(void *arg) {
    event_base_dispatch(base);
    return NULL;
}

static int local_port(evutil_socket_t fd) {
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    return ntohs(sa.sin_port);
}

static const char *pki_file(const char *name) {
    static char path[4][128];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", pki, name);
    return p;
}

/* TLS connections: the server demands a client certificate signed by the test CA. */
static struct bufferevent *tls_bev(struct event_base *b, void *arg) {
    SSL *ssl = SSL_new(tls_ctx);
    return ssl ? bufferevent_openssl_socket_new(b, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
}

static struct evhttp *listener(int *bound_port) {
    struct evhttp *h = evhttp_new(base);
    ck_assert_ptr_nonnull(h);
    evhttp_set_allowed_methods(h, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH |
                                      EVHTTP_REQ_DELETE);
    evhttp_set_gencb(h, handle, NULL);
    struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(h, "127.0.0.1", 0);
    ck_assert_ptr_nonnull(s);
    *bound_port = local_port(evhttp_bound_socket_get_fd(s));
    return h;
}

static void server_start(void) {
    ck_assert_int_eq(evthread_use_pthreads(), 0);
    base = event_base_new();
    http = listener(&port);
    tls_ctx = SSL_CTX_new(TLS_server_method());
    ck_assert_ptr_nonnull(tls_ctx);
    ck_assert_int_eq(SSL_CTX_use_certificate_chain_file(tls_ctx, pki_file("server.crt")), 1);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(tls_ctx, pki_file("server.key"), SSL_FILETYPE_PEM), 1);
    ck_assert_int_eq(SSL_CTX_load_verify_locations(tls_ctx, pki_file("ca.crt"), NULL), 1);
    SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    https = listener(&tls_port);
    evhttp_set_bevcb(https, tls_bev, NULL);
    ck_assert_int_eq(pthread_create(&server_thread, NULL, serve, NULL), 0);
}

static void server_stop(void) {
    event_base_loopexit(base, NULL);
    pthread_join(server_thread, NULL);
    evhttp_free(http);
    evhttp_free(https);
    SSL_CTX_free(tls_ctx);
    event_base_free(base);
}

static struct kube_client *client_for(int p, const char *token, const char *token_file) {
    char server[64], err[256];
    snprintf(server, sizeof server, "http://127.0.0.1:%d", p);
    struct kube_config cfg = {.server = server, .token = (char *)token, .token_file = (char *)token_file};
    struct kube_client *c = kube_client_new(&cfg, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    return c;
}

static const struct kube_gvr configmaps = {"", "v1", "configmaps", 1};

START_TEST(status_json_error) {
    struct kube_client *c = client_for(port, TOKEN, NULL);
    struct kube_result r;
    ck_assert_int_eq(kube_get_path(c, "/status404", &r), -1);
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(r.reason, "NotFound");
    ck_assert_str_eq(r.message, "configmaps \"nope\" not found");
    ck_assert(kube_is_reason(&r, "NotFound"));
    ck_assert(!kube_ok(&r));
    ck_assert_str_eq(json_string_value(json_object_get(r.body, "kind")), "Status");
    kube_result_free(&r);
    kube_client_free(c);
}
END_TEST

START_TEST(non_json_503) {
    struct kube_client *c = client_for(port, TOKEN, NULL);
    struct kube_result r;
    ck_assert_int_eq(kube_get_path(c, "/plain503", &r), -1);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(r.reason, "ServiceUnavailable");
    ck_assert_msg(strncmp(r.message, "HTTP 503: <html>  <b>upstream unavailable</b> zz", 48) == 0, "%s", r.message);
    ck_assert_uint_lt(strlen(r.message), 230);   /* a bounded snippet, not 1000 z's */
    ck_assert_ptr_nonnull(strstr(r.message, "zzz..."));
    ck_assert_ptr_null(r.body);
    kube_result_free(&r);
    /* The token never leaks into an error. */
    ck_assert_int_eq(kube_get_path(c, "/plain401", &r), -1);
    ck_assert_str_eq(r.reason, "Unauthorized");
    ck_assert_ptr_null(strstr(r.message, TOKEN));
    kube_result_free(&r);
    /* 2xx that is not JSON: a decoding error, not success. */
    ck_assert_int_eq(kube_get_path(c, "/plain200", &r), -1);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.reason, "DecodeError");
    ck_assert(!kube_ok(&r));
    kube_result_free(&r);
    kube_client_free(c);
}
END_TEST

START_TEST(connection_refused) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    int dead = local_port(fd);
    close(fd);   /* nothing listens there now */
    struct kube_client *c = client_for(dead, TOKEN, NULL);
    struct kube_result r;
    ck_assert_int_eq(kube_get(c, &configmaps, "default", "x", NULL, &r), -1);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.reason, "TransportError");
    ck_assert_msg(strstr(r.message, "onnect") != NULL, "%s", r.message);
    ck_assert_ptr_null(strstr(r.message, TOKEN));
    kube_client_free(c);
}
END_TEST

static struct {
    char method[16];
    int code, calls;
} hooked;

static void hook(const char *method, int code, double seconds) {
    snprintf(hooked.method, sizeof hooked.method, "%s", method);
    hooked.code = code;
    hooked.calls++;
    ck_assert(seconds >= 0 && seconds < 30);
}

START_TEST(request_shape) {
    struct kube_client *c = client_for(port, TOKEN, NULL);
    kube_client_set_request_hook(c, hook);
    struct kube_result r;
    json_t *body = json_pack("{s:s, s:{s:s}}", "apiVersion", "v1", "data", "x", "1");
    const struct kube_gvr widgets = {"test.agentmesh.io", "v1", "widgets", 1};
    ck_assert_int_eq(kube_patch(c, &widgets, "ns1", "w1", "status", KUBE_PATCH_APPLY, body, "my manager", 1, &r), 0);
    ck_assert_str_eq(json_string_value(json_object_get(r.body, "kind")), "Echo");
    ck_assert_str_eq(seen.method, "PATCH");
    ck_assert_str_eq(seen.uri, "/apis/test.agentmesh.io/v1/namespaces/ns1/widgets/w1/status"
                               "?fieldManager=my%20manager&force=true");
    ck_assert_str_eq(seen.ctype, "application/apply-patch+yaml");
    ck_assert_str_eq(seen.auth, "Bearer " TOKEN);
    ck_assert_str_eq(seen.ua, "agentmesh-operator/0.1");
    ck_assert_str_eq(seen.accept, "application/json");
    ck_assert_str_eq(seen.body, "{\"apiVersion\":\"v1\",\"data\":{\"x\":\"1\"}}");
    ck_assert_str_eq(hooked.method, "PATCH");
    ck_assert_int_eq(hooked.code, 200);
    kube_result_free(&r);

    /* Apply without a field manager is refused before anything is sent. */
    int before = seen.requests;
    ck_assert_int_eq(kube_patch(c, &widgets, "ns1", "w1", NULL, KUBE_PATCH_APPLY, body, NULL, 1, &r), -1);
    ck_assert_str_eq(r.reason, "InvalidRequest");
    ck_assert_int_eq(seen.requests, before);

    ck_assert_int_eq(kube_patch(c, &configmaps, "ns1", "cm", NULL, KUBE_PATCH_JSON, body, NULL, 1, &r), 0);
    ck_assert_str_eq(seen.uri, "/api/v1/namespaces/ns1/configmaps/cm");   /* force only with apply */
    ck_assert_str_eq(seen.ctype, "application/json-patch+json");
    kube_result_free(&r);

    /* Selectors are URL-encoded; a cluster-scoped resource ignores ns. */
    const struct kube_gvr nodes = {"", "v1", "nodes", 0};
    struct kube_list_opts o = {.label_selector = "app in (a,b),tier!=x", .field_selector = "metadata.name=n&1",
                               .limit = 2};
    ck_assert_int_eq(kube_list(c, &nodes, "ignored", &o, &r), 0);
    ck_assert_str_eq(seen.uri, "/api/v1/nodes?labelSelector=app%20in%20%28a%2Cb%29%2Ctier%21%3Dx"
                               "&fieldSelector=metadata.name%3Dn%261&limit=2");
    kube_result_free(&r);

    ck_assert_int_eq(kube_delete(c, &configmaps, "ns1", "cm", "Foreground", &r), 0);
    ck_assert_str_eq(seen.method, "DELETE");
    ck_assert_ptr_nonnull(strstr(seen.body, "\"propagationPolicy\":\"Foreground\""));
    kube_result_free(&r);

    ck_assert_int_eq(kube_update(c, &configmaps, "ns1", "cm", NULL, body, &r), 0);
    ck_assert_str_eq(seen.method, "PUT");
    ck_assert_str_eq(seen.ctype, "application/json");
    kube_result_free(&r);

    /* Names that would escape their path segment are refused. */
    ck_assert_int_eq(kube_get(c, &configmaps, "ns1", "../secrets", NULL, &r), -1);
    ck_assert_str_eq(r.reason, "InvalidRequest");
    json_decref(body);
    kube_client_free(c);
}
END_TEST

START_TEST(token_file) {
    char path[] = "/tmp/kube-token-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "from-file\n", 10), 10);
    close(fd);
    struct kube_client *c = client_for(port, NULL, path);
    struct kube_result r;
    ck_assert_int_eq(kube_get_path(c, "/version", &r), 0);
    ck_assert_str_eq(seen.auth, "Bearer from-file");
    kube_result_free(&r);
    kube_client_free(c);
    unlink(path);
    /* A token file that cannot be read fails at construction, naming the file. */
    char server[64], err[256];
    snprintf(server, sizeof server, "http://127.0.0.1:%d", port);
    struct kube_config cfg = {.server = server, .token_file = path};
    ck_assert_ptr_null(kube_client_new(&cfg, err, sizeof err));
    ck_assert_msg(strstr(err, path) != NULL, "%s", err);
}
END_TEST

/* Records what kube_list_pages hands over: names and each page's resourceVersion. */
struct pages {
    int pages;
    char names[8], rvs[3][8];
};

static int collect_page(json_t *page, void *arg) {
    struct pages *p = arg;
    ck_assert_int_lt(p->pages, 3);
    snprintf(p->rvs[p->pages++], sizeof p->rvs[0], "%s", json_str_at(page, "metadata.resourceVersion"));
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(page, "items"), i, item)
        strncat(p->names, json_string_value(json_object_get(item, "n")), 1);
    return 0;
}

static int refuse_page(json_t *page, void *arg) {
    (void)page;
    (void)arg;
    return -1;
}

START_TEST(list_pages) {
    struct kube_client *c = client_for(port, TOKEN, NULL);
    struct kube_result r;
    struct kube_list_opts o = {.limit = 2, .resource_version = "0"};
    struct pages p = {0};
    ck_assert_int_eq(kube_list_pages(c, &configmaps, "page", &o, collect_page, &p, &r), 0);
    ck_assert_int_eq(p.pages, 3);
    ck_assert_str_eq(p.names, "abcde");
    ck_assert_str_eq(p.rvs[0], "100");
    ck_assert_str_eq(seen.uri, "/api/v1/namespaces/page/configmaps?limit=2&continue=t2");
    kube_result_free(&r);
    /* a page the caller cannot take stops the walk with an error */
    ck_assert_int_eq(kube_list_pages(c, &configmaps, "page", &o, refuse_page, NULL, &r), -1);
    ck_assert_msg(strstr(r.message, "page") != NULL, "%s", r.message);
    kube_result_free(&r);
    kube_client_free(c);
}
END_TEST

#define MAX_LINES 8
struct lines {
    int n;
    char text[MAX_LINES][64];
};

static int on_line(const char *line, size_t len, void *arg) {
    struct lines *l = arg;
    ck_assert_int_lt(l->n, MAX_LINES);
    snprintf(l->text[l->n++], sizeof l->text[0], "%.*s", (int)len, line);
    return 0;
}

START_TEST(stream_lines) {
    struct kube_client *c = client_for(port, TOKEN, NULL);
    struct kube_result r;
    struct lines l = {0};
    ck_assert_int_eq(kube_stream(c, "/stream/lines?watch=1", 1024, on_line, &l, NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(l.n, 4);
    ck_assert_str_eq(l.text[1], "{\"type\":\"MODIFIED\",\"n\":2}");
    ck_assert_str_eq(l.text[2], "{\"type\":\"DELETED\",\"n\":3}");
    ck_assert_str_eq(l.text[3], "{\"tail\":true}");
    kube_result_free(&r);

    memset(&l, 0, sizeof l);
    ck_assert_int_eq(kube_stream(c, "/stream/long", 1000, on_line, &l, NULL, &r), -1);
    ck_assert_str_eq(r.reason, "LineTooLong");
    ck_assert_int_eq(l.n, 1);
    kube_result_free(&r);

    ck_assert_int_eq(kube_stream(c, "/stream/gone", 1000, on_line, &l, NULL, &r), -1);
    ck_assert_int_eq(r.status, 410);
    ck_assert_str_eq(r.reason, "Gone");
    ck_assert_str_eq(r.message, "too old resource version: 1 (5)");
    kube_result_free(&r);
    kube_client_free(c);
}
END_TEST

struct stopper {
    volatile int *stop;
};

static void *stop_later(void *arg) {
    struct stopper *s = arg;
    usleep(300 * 1000);
    __atomic_store_n(s->stop, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

START_TEST(stream_stop_flag) {
    struct kube_client *c = client_for(port, TOKEN, NULL);
    struct kube_result r;
    struct lines l = {0};
    volatile int stop = 0;
    struct stopper s = {&stop};
    pthread_t t;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(pthread_create(&t, NULL, stop_later, &s), 0);
    ck_assert_int_eq(kube_stream(c, "/stream/forever", 1024, on_line, &l, &stop, &r), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(t, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(l.n, 1);
    ck_assert_str_eq(l.text[0], "{\"type\":\"BOOKMARK\"}");
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_msg(took < 2.5, "stop noticed after %.2fs", took);
    kube_result_free(&r);
    kube_client_free(c);
}
END_TEST

/* ---- TLS: CA and client certificates, as files and as PEM in memory ---- */

static char *slurp(const char *path) {
    char err[256];
    char *s = kube_read_file(path, 1 << 16, 0, NULL, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    return s;
}

/* GETs /version over TLS with `cfg` (server filled in); returns the result. */
static int tls_get(struct kube_config *cfg, struct kube_result *r) {
    char server[64], err[512];
    snprintf(server, sizeof server, "https://127.0.0.1:%d", tls_port);
    cfg->server = server;
    struct kube_client *c = kube_client_new(cfg, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    int rc = kube_get_path(c, "/version", r);
    kube_client_free(c);
    return rc;
}

START_TEST(tls_pem_in_memory) {
    struct kube_config cfg = {.ca_data = slurp(pki_file("ca.crt")), .client_cert_data = slurp(pki_file("client.crt")),
                              .client_key_data = slurp(pki_file("client.key"))};
    struct kube_result r;
    ck_assert_msg(tls_get(&cfg, &r) == 0, "%d %s: %s", r.status, r.reason, r.message);
    ck_assert_str_eq(seen.client_cn, "kube-client-test");
    kube_result_free(&r);
    cfg.server = NULL;
    kube_config_free(&cfg);
}
END_TEST

START_TEST(tls_files) {
    struct kube_config cfg = {.ca_file = (char *)pki_file("ca.crt"), .client_cert_file = (char *)pki_file("client.crt"),
                              .client_key_file = (char *)pki_file("client.key")};
    struct kube_result r;
    ck_assert_msg(tls_get(&cfg, &r) == 0, "%d %s: %s", r.status, r.reason, r.message);
    ck_assert_str_eq(seen.client_cn, "kube-client-test");
    kube_result_free(&r);
}
END_TEST

START_TEST(tls_rejects_unknown_server) {
    /* A CA that did not sign the server: refused, with curl's reason. */
    struct kube_config cfg = {.ca_data = slurp(pki_file("other-ca.crt")),
                              .client_cert_data = slurp(pki_file("client.crt")),
                              .client_key_data = slurp(pki_file("client.key"))};
    struct kube_result r;
    ck_assert_int_eq(tls_get(&cfg, &r), -1);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.reason, "TransportError");
    ck_assert_msg(strstr(r.message, "certificate") != NULL, "%s", r.message);
    /* insecure-skip-tls-verify accepts it. */
    cfg.insecure_skip_tls_verify = 1;
    ck_assert_msg(tls_get(&cfg, &r) == 0, "%d %s: %s", r.status, r.reason, r.message);
    kube_result_free(&r);
    cfg.server = NULL;
    kube_config_free(&cfg);
    /* A missing CA file is reported when the client is made, not at the first call. */
    char err[512];
    struct kube_config bad = {.server = "https://127.0.0.1:1", .ca_file = "/nonexistent/ca.crt"};
    ck_assert_ptr_null(kube_client_new(&bad, err, sizeof err));
    ck_assert_msg(strstr(err, "certificate-authority: cannot read /nonexistent/ca.crt") != NULL, "%s", err);
}
END_TEST

/* A throw-away PKI made with the openssl tool: CA, a second CA, server and client certs. */
static int make_pki(void) {
    if (!mkdtemp(pki)) return -1;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && ( E='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
             "openssl req -x509 $E -days 2 -subj /CN=test-ca -keyout ca.key -out ca.crt && "
             "openssl req -x509 $E -days 2 -subj /CN=other-ca -keyout other-ca.key -out other-ca.crt && "
             "openssl req $E -subj /CN=127.0.0.1 -keyout server.key -out server.csr && "
             "printf 'subjectAltName=IP:127.0.0.1\\n' > san.cnf && "
             "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
             "-extfile san.cnf -out server.crt && "
             "openssl req $E -subj /CN=kube-client-test -keyout client.key -out client.csr && "
             "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -out client.crt"
             " ) >openssl.log 2>&1 || { cat openssl.log >&2; exit 1; }",
             pki);
    return system(cmd) == 0 ? 0 : -1;
}

static void remove_pki(void) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", pki);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", pki);
}

int main(void) {
    if (make_pki() != 0) {
        fprintf(stderr, "cannot make the test PKI with openssl\n");
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("kube_errors");
    TCase *tc = tcase_create("wire");
    tcase_add_checked_fixture(tc, server_start, server_stop);
    tcase_add_test(tc, status_json_error);
    tcase_add_test(tc, non_json_503);
    tcase_add_test(tc, connection_refused);
    tcase_add_test(tc, request_shape);
    tcase_add_test(tc, token_file);
    tcase_add_test(tc, list_pages);
    tcase_add_test(tc, stream_lines);
    tcase_add_test(tc, stream_stop_flag);
    tcase_add_test(tc, tls_pem_in_memory);
    tcase_add_test(tc, tls_files);
    tcase_add_test(tc, tls_rejects_unknown_server);
    suite_add_tcase(s, tc);
    int rc = check_run(s, CK_FORK_GETENV);
    remove_pki();
    return rc;
}
