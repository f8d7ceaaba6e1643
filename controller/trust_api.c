/* trust_api.c — routes, authentication, bodies and replies of the trust API
 * (see trust_api.h; the handshake decisions themselves are in handshake.c).
 *
 * Every authenticated route goes through serve(): start the clock,
 * authenticate the caller against the registry and the shared replay cache,
 * run the route with the caller's record, and count the reply. Replies go
 * through reply_json / reply_error only, so every answer is counted once
 * with its route and code. */
#include "controller/trust_api.h"

#include "common/auth.h"
#include "common/httpd.h"
#include "common/json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/request_body.h"
#include "controller/trust_engine_text.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG "trust-api"
#define AGENTS_PATH "/api/v1/agents"
#define AGENT_PREFIX "/api/v1/agents/"

struct trust_api;

/* A route: its template (the metric label) and the function that serves an
 * authenticated call. */
struct call;
typedef void (*route_fn)(struct call *c, const struct agent_record *caller);

struct route {
    struct trust_api *api;
    const char *name;
    route_fn fn;
    int defer_replay;   /* the route records the signature itself (see struct call) */
};

enum { R_CHALLENGE, R_VERIFY, R_SIGNALS, R_AGENTS, R_AGENT, R_AUDIT, R_COUNT };

#define MAX_LOOPS 16

struct trust_api {
    struct trust_api_options o;
    struct httpd *http;
    struct route routes[R_COUNT];
    struct metric *requests, *errors, *handshake_time, *handshakes, *violations;
    pthread_mutex_t loops_mu;         /* guards loops[] */
    struct {
        struct event_base *base;
        struct trust_store_loop *store;
    } loops[MAX_LOOPS];               /* the store's connection for each event loop, opened on first use */
};

/* One request in flight. replay_key is its signature's replay-cache key;
 * `pending` while it is not yet recorded. The GET routes record it during
 * authentication; signals, challenges and verifies record it in their store
 * step (one store round trip per request, see struct step_call), and any
 * reply sent before that records it first, so a replayed request is a 401
 * on every path. */
struct call {
    struct trust_api *api;
    struct httpd_req *req;
    const char *route;
    char replay_key[8 + ID_SIG_B64_BUFSZ];
    int pending;
};

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- replies ------------------------------------------------------------------ */

static void count(struct call *c, int code, const char *reason) {
    char codes[8];
    snprintf(codes, sizeof codes, "%d", code);
    metric_add(c->api->requests, 1, c->route, codes);
    if (reason) metric_add(c->api->errors, 1, c->route, reason);
}

static int record_signature(struct call *c);

/* Sends body (stolen) with code; NULL body (OOM) becomes a 500. */
static void reply_json(struct call *c, int code, json_t *body) {
    if (c->pending && record_signature(c) != 0) {
        json_decref(body);
        return;
    }
    if (!body) code = 500;
    count(c, code, body ? NULL : "InternalError");
    httpd_reply_json(c->req, code, body);
}

static void reply_error(struct call *c, int code, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Sends a 200 formatted in place (trust_api_*_reply): n bytes of body, or
 * a 500 when n < 0 (it did not fit, or out of memory). */
static void reply_text(struct call *c, const char *body, int n) {
    if (n < 0) {
        reply_error(c, 500, "InternalError", "reply could not be formatted");
        return;
    }
    if (c->pending && record_signature(c) != 0) return;
    count(c, 200, NULL);
    httpd_reply(c->req, 200, "application/json", body, (size_t)n);
}

static void reply_error(struct call *c, int code, const char *reason, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    if (c->pending && record_signature(c) != 0) return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    count(c, code, reason);
    if (code >= 500) log_warn(LOG, "%s %s: %d %s", httpd_method(c->req), c->route, code, msg);
    httpd_reply_error(c->req, code, reason, "%s", msg);
}

/* The reply for a trust-store failure: 503 when the backend is down, else 500. */
static void reply_store_error(struct call *c, int rc, const char *err) {
    if (rc == TS_UNAVAILABLE)
        reply_error(c, 503, "StoreUnavailable", "trust store unavailable: %s", err);
    else
        reply_error(c, 500, "InternalError", "trust store: %s", err);
}

/* Records the call's signature in the shared replay cache. 0, or -1 after
 * replying 401 (already used) or 503 (store down). */
static int record_signature(struct call *c) {
    char err[256];
    c->pending = 0;
    int rc = c->api->o.store->remember(c->api->o.store, c->replay_key, TRUST_API_REPLAY_TTL_MS, err, sizeof err);
    if (rc == TS_OK) return 0;
    if (rc == TS_EXISTS) reply_error(c, 401, "Unauthorized", "authorization signature already used");
    else reply_store_error(c, rc, err);
    return -1;
}

/* The store's asynchronous connection for this event loop, opened on its
 * first use; NULL when the store has none (memory) or it cannot be had. */
static struct trust_store_loop *store_loop(struct trust_api *api, struct event_base *base) {
    struct trust_store *s = api->o.store;
    struct trust_store_loop *l = NULL;
    if (!s->loop_open) return NULL;
    pthread_mutex_lock(&api->loops_mu);
    for (int i = 0; i < MAX_LOOPS; i++) {
        if (api->loops[i].base == base) {
            l = api->loops[i].store;
            break;
        }
        if (!api->loops[i].base) {
            if ((l = s->loop_open(s, base))) {
                api->loops[i].base = base;
                api->loops[i].store = l;
            }
            break;
        }
    }
    pthread_mutex_unlock(&api->loops_mu);
    return l;
}

/* httpd's loop-stop hook: ends the signals still waiting on this loop's
 * store connection (503) and closes it. */
static void close_store_loop(struct event_base *base, void *arg) {
    struct trust_api *api = arg;
    struct trust_store_loop *l = NULL;
    pthread_mutex_lock(&api->loops_mu);
    for (int i = 0; i < MAX_LOOPS; i++)
        if (api->loops[i].base == base) {
            l = api->loops[i].store;
            api->loops[i].store = NULL;
        }
    pthread_mutex_unlock(&api->loops_mu);
    if (l) api->o.store->loop_close(l);
}

/* Hands an audit event (and the data reference) to the callback, if any. */
static void emit(struct trust_api *api, const char *type, const char *did, json_t *data) {
    if (api->o.audit && data) api->o.audit(api->o.audit_arg, type, did, wall_ms(), data);
    else json_decref(data);
}

/* ---- authentication ----------------------------------------------------------- */

/* Checks the Authorization header (see trust_api.h) and, unless `defer`,
 * records the signature. 0 with *caller filled (release with
 * agent_record_clear), or -1 after replying 401/503. */
static int authenticate(struct call *c, struct agent_record *caller, int defer) {
    const char *value = httpd_header(c->req, "Authorization");
    struct auth_header h;
    const char *why = NULL;
    if (!value) {
        reply_error(c, 401, "Unauthorized", "missing Authorization header (%s <did> <time> <signature>)",
                    AUTH_SCHEME);
        return -1;
    }
    if (auth_parse_header(value, strlen(value), &h, &why) != 0) {
        reply_error(c, 401, "Unauthorized", "bad Authorization header: %s", why);
        return -1;
    }
    if (agent_registry_get(c->api->o.registry, h.did, caller) != 0) {
        reply_error(c, 401, "Unauthorized", "unknown agent %s", h.did);
        return -1;
    }
    int64_t now = wall_ms();
    size_t len;
    const char *body = httpd_body(c->req, &len);
    const unsigned char *prev = agent_record_grace_key(caller, now);
    if (strcmp(caller->phase, "Revoked") == 0) {
        reply_error(c, 401, "Unauthorized", "agent %s is revoked", h.did);
    } else if (auth_verify(&h, caller->pub, prev, httpd_method(c->req), httpd_uri(c->req), body, len,
                           (time_t)(now / 1000), NULL, &why) != 0) {
        reply_error(c, 401, "Unauthorized", "%s", why);
    } else {
        memcpy(c->replay_key, "auth:", 5);
        memcpy(c->replay_key + 5, h.sig_b64, sizeof h.sig_b64);   /* canonical: the text is the signature */
        c->pending = 1;
        if (defer || record_signature(c) == 0) return 0;
    }
    agent_record_clear(caller);
    return -1;
}

/* The entry of every authenticated route. */
static void serve(struct httpd_req *r, void *arg) {
    struct route *rt = arg;
    struct call c = {.api = rt->api, .req = r, .route = rt->name};
    struct agent_record caller;
    if (authenticate(&c, &caller, rt->defer_replay) != 0) return;
    rt->fn(&c, &caller);
    agent_record_clear(&caller);
}

static void healthz(struct httpd_req *r, void *arg) {
    (void)arg;
    httpd_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

/* ---- bodies ------------------------------------------------------------------- */

/* The shared checker's limits are the handshake's (see request_body.h). */
_Static_assert(RB_CHALLENGE_ID_LEN == HANDSHAKE_ID_LEN && RB_HEX_MIN == HANDSHAKE_RNONCE_MIN &&
                   RB_HEX_MAX == HANDSHAKE_RNONCE_MAX && RB_SCORE_MAX == TRUST_SCORE_MAX &&
                   TRUST_DIM_COUNT == 5,
               "common/request_body.h disagrees with the handshake or the trust engine");

static const struct request_field challenge_fields[] = {{"agent_did", RB_DID, 1}};
static const struct request_field verify_fields[] = {
    {"challenge_id", RB_CHALLENGE_ID, 1}, {"agent_did", RB_DID, 1},
    {"response_nonce", RB_HEX, 1},        {"signature", RB_SIG, 1},
    {"required_score", RB_SCORE, 0},      {"required_capabilities", RB_CAPS, 0},
};
static const struct request_field signal_fields[] = {
    {"agent_did", RB_DID, 1}, {"dimension", RB_DIMENSION, 1}, {"value", RB_UNIT, 1},
    {"weight", RB_WEIGHT, 0}, {"source", RB_TEXT, 1},
};

#define COUNT(a) (sizeof(a) / sizeof *(a))

json_t *trust_api_parse_body(enum trust_api_body which, const char *body, size_t len, char *err,
                             size_t errlen) {
    switch (which) {
    case TRUST_API_BODY_CHALLENGE:
        return request_body_parse(body, len, challenge_fields, COUNT(challenge_fields), err, errlen);
    case TRUST_API_BODY_VERIFY:
        return request_body_parse(body, len, verify_fields, COUNT(verify_fields), err, errlen);
    case TRUST_API_BODY_SIGNAL:
        return request_body_parse(body, len, signal_fields, COUNT(signal_fields), err, errlen);
    }
    snprintf(err, errlen, "unknown body kind");
    return NULL;
}

/* The parsed body of this call, or NULL after replying 400. */
static json_t *call_body(struct call *c, enum trust_api_body which) {
    size_t len;
    const char *body = httpd_body(c->req, &len);
    char err[256];
    json_t *in = trust_api_parse_body(which, body, len, err, sizeof err);
    if (!in) reply_error(c, 400, "BadRequest", "%s", err);
    return in;
}

/* ---- views -------------------------------------------------------------------- */

static json_t *dims_json(const struct trust_state *st) {
    json_t *o = json_object();
    for (int d = 0; o && d < TRUST_DIM_COUNT; d++)
        if (json_object_set_new(o, trust_dim_name((enum trust_dim)d), json_real(st->dims[d])) != 0) {
            json_decref(o);
            return NULL;
        }
    return o;
}

/* A new reference to an agent's capabilities: caps, or [] when it has none. */
static json_t *caps_of(json_t *caps) {
    return json_is_array(caps) ? json_incref(caps) : json_array();
}

/* The registry view of one agent (new reference). TS_OK, or a store error with err. */
static int agent_view(struct trust_api *api, const struct agent_record *rec, int64_t now,
                      json_t **out, char *err, size_t errlen) {
    struct trust_state st;
    int rc = trust_api_state_of(api->o.store, rec, now, &st, err, errlen);
    if (rc != TS_OK) return rc;
    char pub[ID_PUB_B64_BUFSZ];
    b64_encode(rec->pub, sizeof rec->pub, pub, sizeof pub);
    int score = trust_score(&st, now);
    *out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:o?, s:o, s:s}", "did", rec->did, "name",
                     rec->name, "namespace", rec->ns, "public_key", pub, "key_id", rec->key_id,
                     "trust_score", score, "tier", trust_tier_name(trust_tier_of(score)), "dimensions",
                     dims_json(&st), "capabilities", caps_of(rec->capabilities), "phase", rec->phase);
    if (*out) return TS_OK;
    snprintf(err, errlen, "out of memory");
    return TS_INVALID;
}

struct list_state {
    struct trust_api *api;
    int64_t now;
    json_t *agents;
    int rc;
    char err[256];
};

static void list_one(const struct agent_record *rec, void *arg) {
    struct list_state *ls = arg;
    json_t *view = NULL;
    if (ls->rc != TS_OK) return;
    ls->rc = agent_view(ls->api, rec, ls->now, &view, ls->err, sizeof ls->err);
    if (ls->rc == TS_OK && json_array_append_new(ls->agents, view) != 0) {
        snprintf(ls->err, sizeof ls->err, "out of memory");
        ls->rc = TS_INVALID;
    }
}

static void list_agents(struct call *c, const struct agent_record *caller) {
    (void)caller;
    struct list_state ls = {.api = c->api, .now = wall_ms(), .agents = json_array(), .rc = TS_OK};
    if (!ls.agents) {
        reply_json(c, 500, NULL);
        return;
    }
    agent_registry_foreach(c->api->o.registry, list_one, &ls);
    if (ls.rc != TS_OK) {
        json_decref(ls.agents);
        reply_store_error(c, ls.rc, ls.err);
        return;
    }
    reply_json(c, 200, json_pack("{s:o}", "agents", ls.agents));
}

static void get_agent(struct call *c, const struct agent_record *caller) {
    (void)caller;
    const char *did = httpd_path(c->req) + strlen(AGENT_PREFIX);
    struct agent_record rec;
    if (!identity_did_valid(did)) {
        reply_error(c, 400, "BadRequest", "\"%.64s\" is not a DID (did:mesh:<32 lower-case hex>)", did);
        return;
    }
    if (agent_registry_get(c->api->o.registry, did, &rec) != 0) {
        reply_error(c, 404, "NotFound", "no agent with DID %s", did);
        return;
    }
    json_t *view = NULL;
    char err[256];
    int rc = agent_view(c->api, &rec, wall_ms(), &view, err, sizeof err);
    agent_record_clear(&rec);
    if (rc != TS_OK) reply_store_error(c, rc, err);
    else reply_json(c, 200, view);
}

/* ---- store steps ---------------------------------------------------------------- */

/* A signal, challenge or verify between its request and its reply. Its
 * store step also records the signature (see trust_api.h). Over a store
 * with asynchronous steps the reply comes from the loop when the store
 * answers and the loop serves other requests meanwhile, so the call lives
 * on the heap from then on; `finish` replies from the step's outcome. */
struct step_call {
    struct call c;
    json_t *in;                          /* the body (owned) */
    void (*finish)(struct step_call *sc, const struct trust_store_reply *r);
    char caller[ID_DID_BUFSZ];           /* who asked */
    double t0;                           /* verify: when it arrived (the handshake histogram) */
    struct handshake_request req;        /* verify (strings point into `in`) */
    struct handshake_challenge ch;       /* challenge */
    char value[HANDSHAKE_VALUE_BUFSZ];   /* challenge: what the store keeps */
    struct trust_signal sig;             /* signals */
};

typedef int (*step_queue_fn)(struct trust_store_loop *l, struct step_call *held, char *err, size_t errlen);

static void step_done(const struct trust_store_reply *r, void *arg) {
    struct step_call *sc = arg;
    sc->finish(sc, r);
    json_decref(sc->in);
    free(sc);
}

/* Runs sc's store step: queued on this loop's asynchronous connection when
 * the store has one, else `sync` does it (recording the signature itself)
 * and replies. Either way sc's body is released. */
static void run_step(struct step_call *sc, step_queue_fn queue, void (*sync)(struct step_call *sc)) {
    struct trust_store_loop *l = store_loop(sc->c.api, httpd_req_base(sc->c.req));
    if (!l) {
        sync(sc);
        json_decref(sc->in);
        return;
    }
    char err[256] = "out of memory";
    int rc = TS_UNAVAILABLE;
    sc->c.pending = 0;   /* the step records the signature */
    struct step_call *held = malloc(sizeof *held);
    if (held) {
        *held = *sc;
        if ((rc = queue(l, held, err, sizeof err)) == TS_OK) return;
        free(held);
    }
    sc->finish(sc, &(struct trust_store_reply){.rc = rc, .err = err});
    json_decref(sc->in);
}

/* The reply to a step that did not succeed: 401 for a replayed signature,
 * else the store's error. */
static void reply_step_error(struct call *c, const struct trust_store_reply *r) {
    if (r->rc == TS_EXISTS) reply_error(c, 401, "Unauthorized", "authorization signature already used");
    else reply_store_error(c, r->rc, r->err);
}

/* ---- handshake ---------------------------------------------------------------- */

/* The body of a request about one agent (its agent_did), or NULL once a
 * 400 (bad body) or 404 (no such agent) has been sent. */
static json_t *agent_body(struct call *c, enum trust_api_body which) {
    json_t *in = call_body(c, which);
    if (!in) return NULL;
    const char *did = json_str_at(in, "agent_did");
    struct agent_record rec;
    if (agent_registry_get(c->api->o.registry, did, &rec) != 0) {
        reply_error(c, 404, "NotFound", "no agent with DID %s", did);
        json_decref(in);
        return NULL;
    }
    agent_record_clear(&rec);
    return in;
}

static void challenge_finish(struct step_call *sc, const struct trust_store_reply *r) {
    struct call *c = &sc->c;
    if (r->rc != TS_OK) {
        reply_step_error(c, r);
        return;
    }
    char body[256];
    reply_text(c, body,
               trust_api_challenge_reply(body, sizeof body, &sc->ch, (c->api->o.challenge_ttl_ms + 999) / 1000));
}

static int challenge_queue(struct trust_store_loop *l, struct step_call *held, char *err, size_t errlen) {
    struct trust_api *api = held->c.api;
    if (handshake_draw(json_str_at(held->in, "agent_did"), &held->ch, held->value, err, errlen) != 0)
        return TS_INVALID;
    return api->o.store->remember_put_challenge_async(l, held->c.replay_key, TRUST_API_REPLAY_TTL_MS, held->ch.id,
                                                      held->value, api->o.challenge_ttl_ms, step_done, held, err,
                                                      errlen);
}

static void challenge_sync(struct step_call *sc) {
    char err[256] = "";
    if (record_signature(&sc->c) != 0) return;
    int rc = handshake_issue(sc->c.api->o.store, json_str_at(sc->in, "agent_did"), sc->c.api->o.challenge_ttl_ms,
                             &sc->ch, err, sizeof err);
    sc->finish(sc, &(struct trust_store_reply){.rc = rc, .err = err});
}

static void challenge(struct call *call, const struct agent_record *caller) {
    (void)caller;
    struct step_call sc = {.c = *call, .finish = challenge_finish};
    if (!(sc.in = agent_body(&sc.c, TRUST_API_BODY_CHALLENGE))) return;
    run_step(&sc, challenge_queue, challenge_sync);
}

static void audit_handshake(struct trust_api *api, const char *verifier, const char *cid, const char *did,
                            const struct handshake_result *res) {
    if (!api->o.audit) return;
    json_t *data = json_pack("{s:s, s:s}", "challenge_id", cid, "verifier", verifier);
    if (data && res->known) {
        json_object_set_new(data, "trust_score", json_integer(res->score));
        json_object_set_new(data, "tier", json_string(trust_tier_name(res->tier)));
    }
    if (data && !res->verified) json_object_set_new(data, "reason", json_string(res->reason));
    emit(api, res->verified ? "handshake.verified" : "handshake.failed", did, data);
}

/* Counts and times a verify that ended without a decision (already replied). */
static void verify_error(struct step_call *sc) {
    metric_add(sc->c.api->handshakes, 1, "error");
    metric_observe(sc->c.api->handshake_time, metrics_now() - sc->t0);
}

/* Replies with a decided verify, counts and times it, then audits it. */
static void verify_decided(struct step_call *sc, struct handshake_result *res) {
    struct trust_api *api = sc->c.api;
    metric_add(api->handshakes, 1, res->verified ? "verified" : "rejected");
    if (res->policy) metric_add(api->violations, 1);
    if (!res->verified)
        log_info(LOG, "handshake of %s for %s rejected: %s", sc->req.agent_did, sc->caller, res->reason);
    size_t len = 0;
    char *text = trust_api_verify_reply(res, &len);   /* first: the audit wakes its worker thread */
    reply_text(&sc->c, text, text ? (int)len : -1);
    free(text);
    metric_observe(api->handshake_time, metrics_now() - sc->t0);
    audit_handshake(api, sc->caller, sc->req.challenge_id, sc->req.agent_did, res);
    handshake_result_clear(res);
}

static void verify_finish(struct step_call *sc, const struct trust_store_reply *r) {
    struct handshake_result res;
    char err[256];
    if (r->rc != TS_OK) {
        reply_step_error(&sc->c, r);
        verify_error(sc);
    } else if (handshake_decide(sc->c.api->o.registry, &sc->req, r->challenge, r->state, wall_ms(), &res, err,
                                sizeof err) != 0) {
        reply_store_error(&sc->c, TS_UNAVAILABLE, err);
        verify_error(sc);
    } else {
        verify_decided(sc, &res);
    }
}

static int verify_queue(struct trust_store_loop *l, struct step_call *held, char *err, size_t errlen) {
    return held->c.api->o.store->remember_take_async(l, held->c.replay_key, TRUST_API_REPLAY_TTL_MS,
                                                     held->req.challenge_id, held->req.agent_did, step_done, held,
                                                     err, errlen);
}

static void verify_sync(struct step_call *sc) {
    struct trust_api *api = sc->c.api;
    struct handshake_result res;
    char err[256];
    if (record_signature(&sc->c) != 0) {
        verify_error(sc);
    } else if (handshake_verify(api->o.store, api->o.registry, &sc->req, wall_ms(), &res, err, sizeof err) != 0) {
        reply_store_error(&sc->c, TS_UNAVAILABLE, err);
        verify_error(sc);
    } else {
        verify_decided(sc, &res);
    }
}

static void verify(struct call *call, const struct agent_record *caller) {
    struct step_call sc = {.c = *call, .finish = verify_finish, .t0 = metrics_now()};
    if (!(sc.in = call_body(&sc.c, TRUST_API_BODY_VERIFY))) {
        verify_error(&sc);
        return;
    }
    const char *sig = json_str_at(sc.in, "signature");
    sc.req = (struct handshake_request){
        .challenge_id = json_str_at(sc.in, "challenge_id"),
        .agent_did = json_str_at(sc.in, "agent_did"),
        .response_nonce = json_str_at(sc.in, "response_nonce"),
        .bar = (int)json_int_at(sc.in, "required_score", 0),
        .required_capabilities = json_object_get(sc.in, "required_capabilities"),
    };
    if (caller->min_trust_score > sc.req.bar) sc.req.bar = caller->min_trust_score;
    snprintf(sc.caller, sizeof sc.caller, "%s", caller->did);
    if (b64_decode_exact(sig, strlen(sig), sc.req.signature, sizeof sc.req.signature) != 0) { /* parser checked it */
        reply_error(&sc.c, 500, "InternalError", "signature decoding failed after validation");
        verify_error(&sc);
        json_decref(sc.in);
        return;
    }
    run_step(&sc, verify_queue, verify_sync);
}

/* ---- signals ------------------------------------------------------------------ */

/* The first signal about an agent the store has no state for: its state is
 * created from its record, then the signal applied (the replay key is
 * already remembered). Synchronous, but once per agent. */
static int apply_first(struct trust_api *api, const char *did, const struct trust_signal *sig,
                       struct trust_state *st, char *err, size_t errlen) {
    struct trust_store *s = api->o.store;
    struct agent_record rec;
    struct trust_state fresh;
    if (agent_registry_get(api->o.registry, did, &rec) != 0) {
        snprintf(err, errlen, "no agent with DID %s", did);
        return TS_NOT_FOUND;
    }
    int rc = trust_api_state_of(s, &rec, sig->at_ms, &fresh, err, errlen);
    agent_record_clear(&rec);
    if (rc == TS_OK) rc = s->create(s, did, &fresh, err, errlen);
    if (rc != TS_OK && rc != TS_EXISTS) return rc;
    return trust_store_apply(s, did, sig, st, err, errlen);
}

/* A JSON real as jansson writes it: "%.17g", then ".0" when that would
 * read back as an integer, and no "+" or leading zeros in the exponent. */
static void real_text(char out[TRUST_REAL_BUFSZ], double v) {
    int n = trust_real_format(v, out);
    char *e = strchr(out, 'e');
    if (!e && !strchr(out, '.')) {
        memcpy(out + n, ".0", 3);
        return;
    }
    if (!e) return;
    char *digits = e + 1 + (e[1] == '-'), *from = e + 2;
    while (*from == '0') from++;
    memmove(digits, from, strlen(from) + 1);
}

/* Appends len bytes of s to out at *n, keeping room for a NUL; 0, or -1
 * (nothing written) when they do not fit. */
static int put(char *out, size_t outlen, size_t *n, const char *s, size_t len) {
    if (*n + len >= outlen) return -1;
    memcpy(out + *n, s, len);
    *n += len;
    out[*n] = '\0';
    return 0;
}

static int put_str(char *out, size_t outlen, size_t *n, const char *s) { return put(out, outlen, n, s, strlen(s)); }

int trust_api_signal_reply(char *out, size_t outlen, const char *did, int score, const char *tier,
                           const struct trust_state *st) {
    /* The dimensions by name, as json_compact sorts them. */
    static const enum trust_dim sorted[TRUST_DIM_COUNT] = {
        TRUST_DIM_COLLABORATION_HEALTH, TRUST_DIM_OUTPUT_QUALITY, TRUST_DIM_POLICY_COMPLIANCE,
        TRUST_DIM_RESOURCE_EFFICIENCY, TRUST_DIM_SECURITY_POSTURE};
    char num[TRUST_REAL_BUFSZ];
    size_t n = 0;
    int bad = put_str(out, outlen, &n, "{\"agent_did\":\"") | put_str(out, outlen, &n, did) |
              put_str(out, outlen, &n, "\",\"dimensions\":{");
    for (int i = 0; i < TRUST_DIM_COUNT; i++) {
        real_text(num, st->dims[sorted[i]]);
        bad |= put_str(out, outlen, &n, i ? ",\"" : "\"") | put_str(out, outlen, &n, trust_dim_name(sorted[i])) |
               put_str(out, outlen, &n, "\":") | put_str(out, outlen, &n, num);
    }
    snprintf(num, sizeof num, "%d", score);
    bad |= put_str(out, outlen, &n, "},\"tier\":\"") | put_str(out, outlen, &n, tier) |
           put_str(out, outlen, &n, "\",\"trust_score\":") | put_str(out, outlen, &n, num) | put_str(out, outlen, &n, "}");
    return bad ? -1 : (int)n;
}


int trust_api_challenge_reply(char *out, size_t outlen, const struct handshake_challenge *ch, long long expires_s) {
    char num[24];
    size_t n = 0;
    snprintf(num, sizeof num, "%lld", expires_s);
    int bad = put_str(out, outlen, &n, "{\"challenge_id\":\"") | put_str(out, outlen, &n, ch->id) |
              put_str(out, outlen, &n, "\",\"expires_in_seconds\":") | put_str(out, outlen, &n, num) |
              put_str(out, outlen, &n, ",\"nonce\":\"") | put_str(out, outlen, &n, ch->nonce) |
              put_str(out, outlen, &n, "\"}");
    return bad ? -1 : (int)n;
}

/* v as json_compact writes it (malloc'ed), for the parts of a verify reply
 * that may need escaping; NULL on OOM or when v is NULL (bad UTF-8). */
static char *json_text(json_t *v) {
    char *t = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    return t;
}

char *trust_api_verify_reply(const struct handshake_result *res, size_t *len) {
    int has_caps = json_is_array(res->capabilities) && json_array_size(res->capabilities) > 0;
    char *caps = has_caps ? json_text(json_incref(res->capabilities)) : NULL;
    char *reason = res->verified ? NULL : json_text(json_string(res->reason));
    char score[24] = "null", tier[32] = "null";
    if (res->known) {
        snprintf(score, sizeof score, "%d", res->score);
        snprintf(tier, sizeof tier, "\"%s\"", trust_tier_name(res->tier));   /* tier names need no escaping */
    }
    char *out = NULL;
    if ((!has_caps || caps) && (res->verified || reason)) {
        const char *parts[] = {"{\"capabilities\":", has_caps ? caps : "[]", ",\"rejection_reason\":",
                               res->verified ? "null" : reason, ",\"tier\":", tier, ",\"trust_score\":", score,
                               ",\"verified\":", res->verified ? "true}" : "false}"};
        size_t total = 1, n = 0;
        for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) total += strlen(parts[i]);
        if ((out = malloc(total)))
            for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) put_str(out, total, &n, parts[i]);
        *len = n;
    }
    free(caps);
    free(reason);
    return out;
}

static void signal_finish(struct step_call *sc, const struct trust_store_reply *r) {
    struct call *c = &sc->c;
    const char *did = json_str_at(sc->in, "agent_did");
    const struct trust_state *st = r->state;
    struct trust_state first;
    char err[256];
    snprintf(err, sizeof err, "%s", r->err ? r->err : "");
    int rc = r->rc;
    if (rc == TS_NOT_FOUND && (rc = apply_first(c->api, did, &sc->sig, &first, err, sizeof err)) == TS_OK)
        st = &first;
    if (rc == TS_NOT_FOUND) {
        reply_error(c, 404, "NotFound", "%s", err);
    } else if (rc == TS_INVALID) {
        reply_error(c, 400, "BadRequest", "%s", err);
    } else if (rc != TS_OK) {
        reply_step_error(c, &(struct trust_store_reply){.rc = rc, .err = err});
    } else {
        int score = trust_score(st, sc->sig.at_ms);
        const char *tier = trust_tier_name(trust_tier_of(score));
        if (c->api->o.audit)
            emit(c->api, "trust.signal", did,
                 json_pack("{s:s, s:f, s:f, s:s, s:s, s:i, s:s}", "dimension", trust_dim_name(sc->sig.dim),
                           "value", sc->sig.value, "weight", sc->sig.weight, "source",
                           json_str_at(sc->in, "source"), "reporter", sc->caller, "trust_score", score,
                           "tier", tier));
        char body[512];
        reply_text(c, body, trust_api_signal_reply(body, sizeof body, did, score, tier, st));
    }
}

static int signal_queue(struct trust_store_loop *l, struct step_call *held, char *err, size_t errlen) {
    return held->c.api->o.store->remember_apply_async(l, held->c.replay_key, TRUST_API_REPLAY_TTL_MS,
                                                      json_str_at(held->in, "agent_did"), &held->sig, step_done,
                                                      held, err, errlen);
}

/* Records the signature and applies the signal in one store call
 * (trust_store_remember_apply), then replies. */
static void signal_sync(struct step_call *sc) {
    struct trust_state st;
    char err[256] = "";
    sc->c.pending = 0;
    int rc = trust_store_remember_apply(sc->c.api->o.store, sc->c.replay_key, TRUST_API_REPLAY_TTL_MS,
                                        json_str_at(sc->in, "agent_did"), &sc->sig, &st, err, sizeof err);
    sc->finish(sc, &(struct trust_store_reply){.rc = rc, .err = err, .state = rc == TS_OK ? &st : NULL});
}

static void signals(struct call *call, const struct agent_record *caller) {
    struct step_call sc = {.c = *call, .finish = signal_finish};
    if (!(sc.in = agent_body(&sc.c, TRUST_API_BODY_SIGNAL))) return;
    snprintf(sc.caller, sizeof sc.caller, "%s", caller->did);
    sc.sig = (struct trust_signal){.value = json_num_at(sc.in, "value", 0),
                                   .weight = json_num_at(sc.in, "weight", 1), .at_ms = wall_ms()};
    if (trust_dim_parse(json_str_at(sc.in, "dimension"), &sc.sig.dim) != 0) {   /* the parser checked it */
        reply_error(&sc.c, 400, "BadRequest", "dimension: unknown");
        json_decref(sc.in);
        return;
    }
    run_step(&sc, signal_queue, signal_sync);
}

/* ---- audit -------------------------------------------------------------------- */

static void audit_verify(struct call *c, const struct agent_record *caller) {
    (void)caller;
    struct trust_api *api = c->api;
    struct audit_verify_result res;
    char err[256] = "";
    if (!api->o.audit_verify) {
        reply_error(c, 503, "AuditUnavailable", "no audit log configured (start with --postgres-url)");
        return;
    }
    memset(&res, 0, sizeof res);
    if (api->o.audit_verify(api->o.audit_verify_arg, &res, err, sizeof err) != 0) {
        reply_error(c, 503, "AuditUnavailable", "audit log unavailable: %s", err);
        return;
    }
    json_t *out = json_pack("{s:b, s:I}", "chain_valid", res.chain_valid, "entries", (json_int_t)res.entries);
    if (out && !res.chain_valid) {
        json_object_set_new(out, "first_bad_seq", json_integer(res.first_bad_seq));
        json_object_set_new(out, "first_bad_id", json_string(res.first_bad_id));
    }
    reply_json(c, 200, out);
}

/* ---- lifecycle ---------------------------------------------------------------- */

static int declare_metrics(struct trust_api *api) {
    api->requests = metrics_counter("agentmesh_api_requests_total",
                                    "Trust API requests, by route template and HTTP code.", "route,code");
    api->errors = metrics_counter("agentmesh_api_errors_total",
                                  "Trust API error replies, by route template and error reason.", "route,reason");
    api->handshake_time = metrics_histogram("agentmesh_handshake_duration_seconds",
                                            "Time to decide a handshake verify.", NULL, NULL, 0);
    api->handshakes = metrics_counter("agentmesh_handshakes_total",
                                      "Handshake verifies, by result (verified, rejected, error).", "result");
    api->violations = metrics_counter("agentmesh_policy_violations_total",
                                      "Handshakes rejected by trust policy (phase, score, capability).", NULL);
    return api->requests && api->errors && api->handshake_time && api->handshakes && api->violations ? 0 : -1;
}

static int add_routes(struct trust_api *api) {
    static const struct {
        const char *method, *path, *name;
        int prefix;
        route_fn fn;
        int defer_replay;
    } table[R_COUNT] = {
        [R_CHALLENGE] = {"POST", "/api/v1/handshake/challenge", "/api/v1/handshake/challenge", 0, challenge, 1},
        [R_VERIFY] = {"POST", "/api/v1/handshake/verify", "/api/v1/handshake/verify", 0, verify, 1},
        [R_SIGNALS] = {"POST", "/api/v1/signals", "/api/v1/signals", 0, signals, 1},
        [R_AGENTS] = {"GET", AGENTS_PATH, AGENTS_PATH, 0, list_agents, 0},
        [R_AGENT] = {"GET", AGENT_PREFIX, AGENT_PREFIX "{did}", 1, get_agent, 0},
        [R_AUDIT] = {"GET", "/api/v1/audit/verify", "/api/v1/audit/verify", 0, audit_verify, 0},
    };
    for (int i = 0; i < R_COUNT; i++) {
        api->routes[i] = (struct route){.api = api, .name = table[i].name, .fn = table[i].fn,
                                        .defer_replay = table[i].defer_replay};
        if (httpd_route(api->http, table[i].method, table[i].path, table[i].prefix, serve, &api->routes[i]) != 0)
            return -1;
    }
    return httpd_route(api->http, "GET", "/healthz", 0, healthz, NULL);
}

struct trust_api *trust_api_new(const struct trust_api_options *o, char *err, size_t errlen) {
    if (!o->registry || !o->store) {
        snprintf(err, errlen, "trust API: registry and store are required");
        return NULL;
    }
    if (o->port < 0 || o->port > 65535 || o->challenge_ttl_ms < 0) {
        snprintf(err, errlen, "trust API: port must be 0..65535 and challenge TTL not negative");
        return NULL;
    }
    if (identity_init() != 0) {
        snprintf(err, errlen, "trust API: libsodium failed to initialise");
        return NULL;
    }
    struct trust_api *api = calloc(1, sizeof *api);
    if (!api) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    api->o = *o;
    pthread_mutex_init(&api->loops_mu, NULL);
    if (!api->o.address) api->o.address = "0.0.0.0";
    if (!api->o.max_body) api->o.max_body = TRUST_API_MAX_BODY;
    if (!api->o.challenge_ttl_ms) api->o.challenge_ttl_ms = TRUST_API_CHALLENGE_TTL_MS;
    struct httpd_options ho = {.name = "api", .address = api->o.address, .port = o->port,
                               .threads = o->threads, .max_body = api->o.max_body, .tls = o->tls != NULL,
                               .max_requests_per_second = o->max_requests_per_second,
                               .sched_slice_us = o->sched_slice_us};
    api->http = httpd_new(&ho);
    if (!api->http || declare_metrics(api) != 0 || add_routes(api) != 0 ||
        (o->tls && httpd_set_tls(api->http, o->tls) != 0)) {
        snprintf(err, errlen, "trust API: cannot set up the listener (out of memory or bad TLS context)");
        trust_api_free(api);
        return NULL;
    }
    httpd_on_loop_stop(api->http, close_store_loop, api);
    return api;
}

int trust_api_start(struct trust_api *api, char *err, size_t errlen) {
    return httpd_start(api->http, err, errlen);
}

int trust_api_port(const struct trust_api *api) { return httpd_port(api->http); }

int trust_api_set_tls(struct trust_api *api, SSL_CTX *ctx) { return httpd_set_tls(api->http, ctx); }

void trust_api_free(struct trust_api *api) {
    if (!api) return;
    httpd_free(api->http);
    pthread_mutex_destroy(&api->loops_mu);
    free(api);
}
