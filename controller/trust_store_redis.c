/* trust_store_redis.c — the trust store shared by all replicas, in Redis.
 *
 * Keys (all under "agentmesh:"):
 *   agentmesh:trust:<did>       hash  d0..d4 (dimensions, weight order),
 *                                     lp (last positive signal, unix ms),
 *                                     w0..w4, dph, df (scoring parameters)
 *   agentmesh:challenge:<id>    string, SET NX PX; taken with GETDEL
 *   agentmesh:replay:<key>      string, SET NX PX (on an event loop, a request's
 *                               replay key is set by the same script that applies
 *                               its signal, stores its challenge, or takes its
 *                               challenge and reads the agent's state: one round
 *                               trip per request, and the loop never waits on it)
 * Every state change publishes the DID on agentmesh:trust_updates.
 *
 * Signals are applied server-side by a Lua script doing trust_engine's
 * arithmetic in the same IEEE double operations and order, with numbers
 * carried as "%.17g" strings both ways so nothing is lost in transit: a
 * signal applied here and in C gives the same bits. Scripts run by EVALSHA,
 * falling back to EVAL when the server answers NOSCRIPT (restart, flush). */
#include "controller/trust_store.h"

#include <inttypes.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "controller/redis_conn.h"
#include "controller/trust_engine_text.h"

#define UPDATES_CHANNEL "agentmesh:trust_updates"
#define NFIELDS 13       /* d0..d4 lp w0..w4 dph df */

static const char *const field_names[NFIELDS] = {"d0", "d1", "d2", "d3", "d4", "lp", "w0",
                                                 "w1", "w2", "w3", "w4", "dph", "df"};
/* The same names as Lua arguments: states are read with HMGET in this order,
 * so a reply is 13 values by position (no name matching, half the objects of HGETALL). */
#define FIELDS_LUA "'d0', 'd1', 'd2', 'd3', 'd4', 'lp', 'w0', 'w1', 'w2', 'w3', 'w4', 'dph', 'df'"

/* KEYS[1] state; ARGV did, dim index, value, weight, now_ms. Mirrors trust_apply_signal. */
#define APPLY_LUA                                                                        \
    "if redis.call('EXISTS', KEYS[1]) == 0 then return false end\n"                      \
    "local f = 'd' .. ARGV[2]\n"                                                         \
    "local d = tonumber(redis.call('HGET', KEYS[1], f))\n"                               \
    "local v = tonumber(ARGV[3])\n"                                                      \
    "local a = 0.1 * tonumber(ARGV[4])\n"                                                \
    "if a > 1 then a = 1 end\n"                                                          \
    "d = d * (1 - a) + 100 * v * a\n"                                                    \
    "redis.call('HSET', KEYS[1], f, string.format('%.17g', d))\n"                        \
    "if v >= 0.5 and tonumber(ARGV[5]) > tonumber(redis.call('HGET', KEYS[1], 'lp')) then\n" \
    "  redis.call('HSET', KEYS[1], 'lp', ARGV[5])\n"                                     \
    "end\n"                                                                              \
    "redis.call('PUBLISH', '" UPDATES_CHANNEL "', ARGV[1])\n"                            \
    "return redis.call('HMGET', KEYS[1], " FIELDS_LUA ")\n"
static const char apply_lua[] = APPLY_LUA;

/* KEYS[1] state, KEYS[2] replay key; ARGV as apply_lua, then the replay TTL
 * in ms. -1 when the replay key was already there (nothing applied). */
static const char remember_apply_lua[] =
    "if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[6]) then return -1 end\n" APPLY_LUA;

/* KEYS[1] state; ARGV did, mode (nx = create, xx = only if present, set), field/value pairs.
 * Returns 1 when written, 0 when the mode said no. */
static const char store_lua[] =
    "local exists = redis.call('EXISTS', KEYS[1]) == 1\n"
    "if (ARGV[2] == 'nx' and exists) or (ARGV[2] == 'xx' and not exists) then return 0 end\n"
    "redis.call('HSET', KEYS[1], unpack(ARGV, 3))\n"
    "redis.call('PUBLISH', '" UPDATES_CHANNEL "', ARGV[1])\n"
    "return 1\n";

/* KEYS[1] state; ARGV did. Returns the number of keys deleted. */
static const char remove_lua[] =
    "local n = redis.call('DEL', KEYS[1])\n"
    "if n == 1 then redis.call('PUBLISH', '" UPDATES_CHANNEL "', ARGV[1]) end\n"
    "return n\n";

struct script {
    const char *text;
    char sha[41];
};

struct redisstore {
    struct trust_store base;
    struct redis_pool *pool;
    struct script apply, remember_apply, store, remove, remember_put_challenge, remember_take;
    pthread_mutex_t mu;               /* guards listener fields */
    trust_store_listener listener;
    void *listener_arg;
    pthread_t sub_thread;
    int sub_started;
    _Atomic int stopping;
};

static struct redisstore *R(struct trust_store *s)
{
    return (struct redisstore *)s;
}

static void script_init(struct script *sc, const char *text)
{
    unsigned char h[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)text, strlen(text), h);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(sc->sha + 2 * i, 3, "%02x", h[i]);
    sc->text = text;
}

/* Runs a command; error replies become TS_UNAVAILABLE with their text. */
static redisReply *command(struct redisstore *r, int argc, const char **argv, char *err, size_t errlen)
{
    redisReply *rep = redis_pool_command(r->pool, argc, argv, NULL, err, errlen);
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "redis %s: %s", argv[0], rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

/* EVALSHA, then EVAL if the script cache lost it. argv[0..1] are reserved
 * for the command and script; argv[2] must be "1" (numkeys). */
static redisReply *run_script(struct redisstore *r, const struct script *sc, int argc, const char **argv,
                              char *err, size_t errlen)
{
    argv[0] = "EVALSHA";
    argv[1] = sc->sha;
    redisReply *rep = redis_pool_command(r->pool, argc, argv, NULL, err, errlen);
    if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(rep);
        argv[0] = "EVAL";
        argv[1] = sc->text;
        rep = redis_pool_command(r->pool, argc, argv, NULL, err, errlen);
    }
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "redis script: %s", rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

static void state_key(char *buf, size_t n, const char *did)
{
    snprintf(buf, n, "agentmesh:trust:%s", did);
}

/* Fills st from an HMGET reply of field_names: TS_OK, TS_NOT_FOUND (no
 * fields: no state), TS_UNAVAILABLE (partial or corrupt). */
static int parse_state(const redisReply *rep, struct trust_state *st, char *err, size_t errlen)
{
    if (rep->type == REDIS_REPLY_NIL)
        return TS_NOT_FOUND;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != NFIELDS) {
        snprintf(err, errlen, "redis: unexpected reply (type %d) for a trust state", rep->type);
        return TS_UNAVAILABLE;
    }
    double *dst[NFIELDS] = {&st->dims[0], &st->dims[1], &st->dims[2], &st->dims[3], &st->dims[4], NULL,
                            &st->params.weights[0], &st->params.weights[1], &st->params.weights[2],
                            &st->params.weights[3], &st->params.weights[4], &st->params.decay_per_hour,
                            &st->params.decay_floor};
    unsigned seen = 0, absent = 0;
    for (int f = 0; f < NFIELDS; f++) {
        const redisReply *v = rep->element[f];
        if (v->type != REDIS_REPLY_STRING) {
            absent |= 1u << f;
            continue;
        }
        char *end;
        if (f == 5) {
            st->last_positive_ms = strtoll(v->str, &end, 10);
            if (end != v->str && *end == '\0')
                seen |= 1u << f;
        } else if (trust_real_parse(v->str, dst[f]) == 0) {
            seen |= 1u << f;
        }
    }
    if (absent == (1u << NFIELDS) - 1)
        return TS_NOT_FOUND;
    if (seen != (1u << NFIELDS) - 1) {
        snprintf(err, errlen, "redis: trust state is missing or has bad fields (mask %#x)", seen);
        return TS_UNAVAILABLE;
    }
    return TS_OK;
}

static int rs_get(struct trust_store *s, const char *did, struct trust_state *out, char *err, size_t errlen)
{
    if (trust_store_check_key("did", did, err, errlen))
        return TS_INVALID;
    char key[300];
    state_key(key, sizeof key, did);
    const char *argv[2 + NFIELDS] = {"HMGET", key};
    memcpy(argv + 2, field_names, sizeof field_names);
    redisReply *rep = command(R(s), 2 + NFIELDS, argv, err, errlen);
    if (!rep)
        return TS_UNAVAILABLE;
    int rc = parse_state(rep, out, err, errlen);
    freeReplyObject(rep);
    return rc;
}

/* Formats the fields selected by [from, to) of field_names as name/value argv pairs. */
static int format_fields(const struct trust_state *st, int from, int to, const char **argv,
                         char vals[NFIELDS][TRUST_REAL_BUFSZ])
{
    const double src[NFIELDS] = {st->dims[0], st->dims[1], st->dims[2], st->dims[3], st->dims[4], 0,
                                 st->params.weights[0], st->params.weights[1], st->params.weights[2],
                                 st->params.weights[3], st->params.weights[4], st->params.decay_per_hour,
                                 st->params.decay_floor};
    int n = 0;
    for (int f = from; f < to; f++) {
        if (f == 5)
            snprintf(vals[f], 32, "%" PRId64, st->last_positive_ms);
        else
            trust_real_format(src[f], vals[f]);
        argv[n++] = field_names[f];
        argv[n++] = vals[f];
    }
    return n;
}

/* create / put / set_params through store_lua. */
static int store_fields(struct redisstore *r, const char *did, const char *mode, const struct trust_state *st,
                        int from, int to, char *err, size_t errlen)
{
    char key[300], vals[NFIELDS][TRUST_REAL_BUFSZ];
    state_key(key, sizeof key, did);
    const char *argv[6 + 2 * NFIELDS] = {NULL, NULL, "1", key, did, mode};
    int argc = 6 + format_fields(st, from, to, argv + 6, vals);
    redisReply *rep = run_script(r, &r->store, argc, argv, err, errlen);
    if (!rep)
        return TS_UNAVAILABLE;
    int written = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    if (written)
        return TS_OK;
    return strcmp(mode, "nx") == 0 ? TS_EXISTS : TS_NOT_FOUND;
}

static int rs_create(struct trust_store *s, const char *did, const struct trust_state *st, char *err,
                     size_t errlen)
{
    if (trust_store_check_key("did", did, err, errlen) || trust_state_check(st, err, errlen) < 0)
        return TS_INVALID;
    return store_fields(R(s), did, "nx", st, 0, NFIELDS, err, errlen);
}

static int rs_put(struct trust_store *s, const char *did, const struct trust_state *st, char *err, size_t errlen)
{
    if (trust_store_check_key("did", did, err, errlen) || trust_state_check(st, err, errlen) < 0)
        return TS_INVALID;
    return store_fields(R(s), did, "set", st, 0, NFIELDS, err, errlen);
}

static int rs_set_params(struct trust_store *s, const char *did, const struct trust_params *p, char *err,
                         size_t errlen)
{
    if (trust_store_check_key("did", did, err, errlen) || trust_params_check(p, err, errlen) < 0)
        return TS_INVALID;
    struct trust_state st = {.params = *p};
    return store_fields(R(s), did, "xx", &st, 6, NFIELDS, err, errlen);
}

/* The replay key's name and TTL text: TS_OK or TS_INVALID. */
static int replay_arg(const char *key, int64_t ttl_ms, char rkey[300], char ttl[24], char *err, size_t errlen)
{
    if (trust_store_check_key("replay key", key, err, errlen))
        return TS_INVALID;
    if (ttl_ms <= 0) {
        snprintf(err, errlen, "replay ttl must be positive");
        return TS_INVALID;
    }
    snprintf(rkey, 300, "agentmesh:replay:%s", key);
    snprintf(ttl, 24, "%" PRId64, ttl_ms);
    return TS_OK;
}

/* The arguments of apply_lua / remember_apply_lua for one signal, as text. */
struct signal_args {
    char key[300], rkey[300], did[TRUST_STORE_MAX_KEY + 1], dim[4], now[24], ttl[24];
    char value[TRUST_REAL_BUFSZ], weight[TRUST_REAL_BUFSZ];
};

/* Checks and formats one signal (replay_key NULL: no replay check). TS_OK or TS_INVALID. */
static int signal_args_init(struct signal_args *a, const char *replay_key, int64_t ttl_ms, const char *did,
                            const struct trust_signal *sig, char *err, size_t errlen)
{
    if (trust_store_check_key("did", did, err, errlen) || trust_signal_check(sig, err, errlen) < 0)
        return TS_INVALID;
    a->rkey[0] = a->ttl[0] = '\0';
    if (replay_key && replay_arg(replay_key, ttl_ms, a->rkey, a->ttl, err, errlen) != TS_OK)
        return TS_INVALID;
    state_key(a->key, sizeof a->key, did);
    snprintf(a->did, sizeof a->did, "%s", did);
    snprintf(a->dim, sizeof a->dim, "%d", (int)sig->dim);
    trust_real_format(sig->value, a->value);
    trust_real_format(sig->weight, a->weight);
    snprintf(a->now, sizeof a->now, "%" PRId64, sig->at_ms);
    return TS_OK;
}

/* remember_apply_lua's argv (argv[0..1] left for run_script). Its argc. */
static int remember_apply_argv(const struct signal_args *a, const char **argv)
{
    const char *v[] = {NULL, NULL, "2", a->key, a->rkey, a->did, a->dim, a->value, a->weight, a->now, a->ttl};
    memcpy(argv, v, sizeof v);
    return 11;
}

/* What a signal script's reply means: TS_EXISTS (-1: replayed), or the new
 * state (TS_OK), TS_NOT_FOUND (no state), TS_UNAVAILABLE (error reply). */
static int signal_result(const redisReply *rep, struct trust_state *out, char *err, size_t errlen)
{
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "redis script: %s", rep->str);
        return TS_UNAVAILABLE;
    }
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer == -1)
        return TS_EXISTS;
    return parse_state(rep, out, err, errlen);
}

/* Runs apply_lua (replay_key NULL) or remember_apply_lua for one signal. */
static int apply_script(struct redisstore *r, const char *replay_key, int64_t ttl_ms, const char *did,
                        const struct trust_signal *sig, struct trust_state *out, char *err, size_t errlen)
{
    struct signal_args a;
    if (signal_args_init(&a, replay_key, ttl_ms, did, sig, err, errlen) != TS_OK)
        return TS_INVALID;
    const char *argv[11];
    const char *plain[] = {NULL, NULL, "1", a.key, a.did, a.dim, a.value, a.weight, a.now};
    redisReply *rep = replay_key ? run_script(r, &r->remember_apply, remember_apply_argv(&a, argv), argv, err, errlen)
                                 : run_script(r, &r->apply, 9, plain, err, errlen);
    if (!rep)
        return TS_UNAVAILABLE;
    struct trust_state tmp;
    int rc = signal_result(rep, out ? out : &tmp, err, errlen);
    freeReplyObject(rep);
    return rc;
}

static int rs_apply(struct trust_store *s, const char *did, const struct trust_signal *sig,
                    struct trust_state *out, char *err, size_t errlen)
{
    return apply_script(R(s), NULL, 0, did, sig, out, err, errlen);
}

static int rs_remember_apply(struct trust_store *s, const char *key, int64_t ttl_ms, const char *did,
                             const struct trust_signal *sig, struct trust_state *out, char *err, size_t errlen)
{
    if (!key) {
        snprintf(err, errlen, "replay key: required");
        return TS_INVALID;
    }
    return apply_script(R(s), key, ttl_ms, did, sig, out, err, errlen);
}

/* ---- asynchronous steps: one pipelined connection per event loop -------- */

/* KEYS[1] replay key, KEYS[2] challenge; ARGV replay TTL, value, challenge
 * TTL. -1: replayed; 0: the id is taken; 1: stored. */
static const char remember_put_challenge_lua[] =
    "if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return -1 end\n"
    "if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return 0 end\n"
    "return 1\n";

/* KEYS[1] replay key, KEYS[2] challenge, KEYS[3] state; ARGV replay TTL.
 * -1: replayed; else {challenge value or nil, the state's HMGET}. */
static const char remember_take_lua[] =
    "if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return -1 end\n"
    "return {redis.call('GETDEL', KEYS[2]), redis.call('HMGET', KEYS[3], " FIELDS_LUA ")}\n";

struct trust_store_loop {
    struct redisstore *r;
    struct redis_async *conn;
};

/* Reads a step's script reply into *out (st and the reply back its fields).
 * The reply has been checked not to be an error. */
typedef void (*step_parse_fn)(const redisReply *rep, struct trust_store_reply *out, struct trust_state *st,
                              char *err, size_t errlen);

/* One step in flight on a loop: its script arguments (copied into text[],
 * the step outlives the caller's strings), and what to do with the reply. */
struct async_step {
    struct trust_store_loop *l;
    const struct script *script;
    step_parse_fn parse;
    int eval;                    /* sent as EVAL (the server had lost the script) */
    trust_store_done done;
    void *arg;
    int argc;
    const char *argv[12];        /* [0..1] command and script, set when sent */
    char text[];
};

static void async_reply(redisReply *rep, const char *cerr, void *arg);

/* Sends the step's script: EVALSHA, or EVAL after a NOSCRIPT. 0 or -1 with err. */
static int async_send(struct async_step *as, char *err, size_t errlen)
{
    as->argv[0] = as->eval ? "EVAL" : "EVALSHA";
    as->argv[1] = as->eval ? as->script->text : as->script->sha;
    return redis_async_command(as->l->conn, as->argc, as->argv, NULL, async_reply, as, err, errlen);
}

static void async_reply(redisReply *rep, const char *cerr, void *arg)
{
    struct async_step *as = arg;
    char err[256] = "";
    struct trust_state st;
    struct trust_store_reply out = {.rc = TS_UNAVAILABLE, .err = err};
    if (!rep) {
        snprintf(err, sizeof err, "%s", cerr);
    } else if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0 && !as->eval) {
        as->eval = 1;
        if (async_send(as, err, sizeof err) == 0)
            return;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, sizeof err, "redis script: %s", rep->str);
    } else if (rep->type == REDIS_REPLY_INTEGER && rep->integer == -1) {
        out.rc = TS_EXISTS;
    } else {
        as->parse(rep, &out, &st, err, sizeof err);
    }
    as->done(&out, as->arg);
    free(as);
}

/* Queues `script` with argv[2..argc) (argv[0..1] are the command's). TS_OK,
 * or TS_UNAVAILABLE with err (done will not run). */
static int async_step(struct trust_store_loop *l, const struct script *script, step_parse_fn parse, int argc,
                      const char **argv, trust_store_done done, void *arg, char *err, size_t errlen)
{
    size_t len[12], total = 0;
    for (int i = 2; i < argc; i++)
        total += (len[i] = strlen(argv[i])) + 1;
    struct async_step *as = malloc(sizeof *as + total);
    if (!as) {
        snprintf(err, errlen, "out of memory");
        return TS_UNAVAILABLE;
    }
    *as = (struct async_step){.l = l, .script = script, .parse = parse, .done = done, .arg = arg, .argc = argc};
    char *p = as->text;
    for (int i = 2; i < argc; i++) {
        memcpy(p, argv[i], len[i] + 1);
        as->argv[i] = p;
        p += len[i] + 1;
    }
    if (async_send(as, err, errlen) == 0)
        return TS_OK;
    free(as);
    return TS_UNAVAILABLE;
}

static void parse_signal(const redisReply *rep, struct trust_store_reply *out, struct trust_state *st, char *err,
                         size_t errlen)
{
    out->rc = signal_result(rep, st, err, errlen);
    out->state = out->rc == TS_OK ? st : NULL;
}

static void parse_put_challenge(const redisReply *rep, struct trust_store_reply *out, struct trust_state *st,
                                char *err, size_t errlen)
{
    (void)st;
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1)
        out->rc = TS_OK;
    else
        snprintf(err, errlen, rep->type == REDIS_REPLY_INTEGER && rep->integer == 0 ? "challenge id collision"
                                                                                     : "redis: unexpected reply to a challenge");
}

static void parse_take(const redisReply *rep, struct trust_store_reply *out, struct trust_state *st, char *err,
                       size_t errlen)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        (rep->element[0]->type != REDIS_REPLY_STRING && rep->element[0]->type != REDIS_REPLY_NIL)) {
        snprintf(err, errlen, "redis: unexpected reply to a challenge take");
        return;
    }
    int rc = parse_state(rep->element[1], st, err, errlen);
    if (rc == TS_UNAVAILABLE)
        return;
    out->rc = TS_OK;
    out->state = rc == TS_OK ? st : NULL;
    out->challenge = rep->element[0]->type == REDIS_REPLY_STRING ? rep->element[0]->str : NULL;
}

static struct trust_store_loop *rs_loop_open(struct trust_store *s, struct event_base *base)
{
    struct trust_store_loop *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->r = R(s);
    if (!(l->conn = redis_async_new(base, redis_pool_options(l->r->pool)))) {
        free(l);
        return NULL;
    }
    return l;
}

static int rs_remember_apply_async(struct trust_store_loop *l, const char *key, int64_t ttl_ms, const char *did,
                                   const struct trust_signal *sig, trust_store_done done, void *arg, char *err,
                                   size_t errlen)
{
    struct signal_args a;
    if (!key) {
        snprintf(err, errlen, "replay key: required");
        return TS_INVALID;
    }
    if (signal_args_init(&a, key, ttl_ms, did, sig, err, errlen) != TS_OK)
        return TS_INVALID;
    const char *argv[11];
    return async_step(l, &l->r->remember_apply, parse_signal, remember_apply_argv(&a, argv), argv, done, arg, err,
                      errlen);
}

static int rs_remember_put_challenge_async(struct trust_store_loop *l, const char *key, int64_t ttl_ms,
                                           const char *id, const char *value, int64_t challenge_ttl_ms,
                                           trust_store_done done, void *arg, char *err, size_t errlen)
{
    char rkey[300], ttl[24], ckey[300], cttl[24];
    if (replay_arg(key, ttl_ms, rkey, ttl, err, errlen) != TS_OK ||
        trust_store_check_key("challenge id", id, err, errlen))
        return TS_INVALID;
    if (!value || strlen(value) >= TRUST_STORE_MAX_VALUE || challenge_ttl_ms <= 0) {
        snprintf(err, errlen, "challenge: value must be under %d bytes and ttl positive", TRUST_STORE_MAX_VALUE);
        return TS_INVALID;
    }
    snprintf(ckey, sizeof ckey, "agentmesh:challenge:%s", id);
    snprintf(cttl, sizeof cttl, "%" PRId64, challenge_ttl_ms);
    const char *argv[] = {NULL, NULL, "2", rkey, ckey, ttl, value, cttl};
    return async_step(l, &l->r->remember_put_challenge, parse_put_challenge, 8, argv, done, arg, err, errlen);
}

static int rs_remember_take_async(struct trust_store_loop *l, const char *key, int64_t ttl_ms, const char *id,
                                  const char *did, trust_store_done done, void *arg, char *err, size_t errlen)
{
    char rkey[300], ttl[24], ckey[300], skey[300];
    if (replay_arg(key, ttl_ms, rkey, ttl, err, errlen) != TS_OK ||
        trust_store_check_key("challenge id", id, err, errlen) || trust_store_check_key("did", did, err, errlen))
        return TS_INVALID;
    snprintf(ckey, sizeof ckey, "agentmesh:challenge:%s", id);
    state_key(skey, sizeof skey, did);
    const char *argv[] = {NULL, NULL, "3", rkey, ckey, skey, ttl};
    return async_step(l, &l->r->remember_take, parse_take, 7, argv, done, arg, err, errlen);
}

static void rs_loop_close(struct trust_store_loop *l)
{
    if (!l)
        return;
    redis_async_free(l->conn);
    free(l);
}

static int rs_remove(struct trust_store *s, const char *did, char *err, size_t errlen)
{
    if (trust_store_check_key("did", did, err, errlen))
        return TS_INVALID;
    char key[300];
    state_key(key, sizeof key, did);
    const char *argv[] = {NULL, NULL, "1", key, did};
    redisReply *rep = run_script(R(s), &R(s)->remove, 5, argv, err, errlen);
    if (!rep)
        return TS_UNAVAILABLE;
    int rc = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1 ? TS_OK : TS_NOT_FOUND;
    freeReplyObject(rep);
    return rc;
}

/* SET key value NX PX ttl: TS_OK when set, TS_EXISTS when the key was there. */
static int set_nx(struct redisstore *r, const char *key, const char *value, int64_t ttl_ms, char *err,
                  size_t errlen)
{
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms);
    const char *argv[] = {"SET", key, value, "NX", "PX", ttl};
    redisReply *rep = command(r, 6, argv, err, errlen);
    if (!rep)
        return TS_UNAVAILABLE;
    int rc = rep->type == REDIS_REPLY_NIL ? TS_EXISTS : TS_OK;
    freeReplyObject(rep);
    return rc;
}

static int rs_put_challenge(struct trust_store *s, const char *id, const char *value, int64_t ttl_ms, char *err,
                            size_t errlen)
{
    if (trust_store_check_key("challenge id", id, err, errlen))
        return TS_INVALID;
    if (!value || strlen(value) >= TRUST_STORE_MAX_VALUE || ttl_ms <= 0) {
        snprintf(err, errlen, "challenge: value must be under %d bytes and ttl positive", TRUST_STORE_MAX_VALUE);
        return TS_INVALID;
    }
    char key[300];
    snprintf(key, sizeof key, "agentmesh:challenge:%s", id);
    return set_nx(R(s), key, value, ttl_ms, err, errlen);
}

static int rs_take_challenge(struct trust_store *s, const char *id, char *value, size_t valuelen, char *err,
                             size_t errlen)
{
    if (trust_store_check_key("challenge id", id, err, errlen))
        return TS_INVALID;
    char key[300];
    snprintf(key, sizeof key, "agentmesh:challenge:%s", id);
    const char *argv[] = {"GETDEL", key};
    redisReply *rep = command(R(s), 2, argv, err, errlen);
    if (!rep)
        return TS_UNAVAILABLE;
    int rc = TS_NOT_FOUND;
    if (rep->type == REDIS_REPLY_STRING) {
        if (rep->len >= valuelen) {
            snprintf(err, errlen, "challenge value does not fit in %zu bytes", valuelen);
            rc = TS_INVALID;
        } else {
            memcpy(value, rep->str, rep->len);
            value[rep->len] = '\0';
            rc = TS_OK;
        }
    }
    freeReplyObject(rep);
    return rc;
}

static int rs_remember(struct trust_store *s, const char *key, int64_t ttl_ms, char *err, size_t errlen)
{
    if (trust_store_check_key("replay key", key, err, errlen))
        return TS_INVALID;
    if (ttl_ms <= 0) {
        snprintf(err, errlen, "replay ttl must be positive");
        return TS_INVALID;
    }
    char k[300];
    snprintf(k, sizeof k, "agentmesh:replay:%s", key);
    return set_nx(R(s), k, "1", ttl_ms, err, errlen);
}

/* ---- invalidation: SUBSCRIBE agentmesh:trust_updates -------------------- */

static void notify(struct redisstore *r, const char *did)
{
    pthread_mutex_lock(&r->mu);
    trust_store_listener fn = r->listener;
    void *arg = r->listener_arg;
    pthread_mutex_unlock(&r->mu);
    if (fn)
        fn(did, arg);
}

/* Sleeps up to ms, waking early when the store is stopping. */
static void pause_ms(struct redisstore *r, int ms)
{
    for (int waited = 0; waited < ms && !r->stopping; waited += 100) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Reads messages until an error or stop. */
static void subscribe_loop(struct redisstore *r, struct redis_conn *c)
{
    char err[256];
    const char *argv[] = {"SUBSCRIBE", UPDATES_CHANNEL};
    if (redis_conn_send(c, 2, argv, NULL, err, sizeof err) < 0) {
        log_warn("trust-store", "redis subscribe: %s", err);
        return;
    }
    while (!r->stopping) {
        int timed_out = 0;
        redisReply *m = redis_conn_read(c, 250, &timed_out, err, sizeof err);
        if (!m) {
            if (timed_out)
                continue;
            log_warn("trust-store", "redis subscription lost: %s", err);
            return;
        }
        if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 && m->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(m->element[0]->str, "message") == 0 && m->element[2]->type == REDIS_REPLY_STRING)
            notify(r, m->element[2]->str);
        freeReplyObject(m);
    }
}

static void *subscriber(void *arg)
{
    struct redisstore *r = arg;
    while (!r->stopping) {
        char err[256];
        struct redis_conn *c = redis_conn_open(redis_pool_options(r->pool), err, sizeof err);
        if (!c) {
            log_warn("trust-store", "redis subscriber cannot connect: %s", err);
        } else {
            subscribe_loop(r, c);
            redis_conn_close(c);
        }
        pause_ms(r, 1000);
    }
    return NULL;
}

static int rs_set_listener(struct trust_store *s, trust_store_listener fn, void *arg)
{
    struct redisstore *r = R(s);
    pthread_mutex_lock(&r->mu);
    r->listener = fn;
    r->listener_arg = arg;
    int start = fn && !r->sub_started;
    if (start)
        r->sub_started = pthread_create(&r->sub_thread, NULL, subscriber, r) == 0;
    int ok = !start || r->sub_started;
    pthread_mutex_unlock(&r->mu);
    return ok ? 0 : -1;
}

static void rs_destroy(struct trust_store *s)
{
    struct redisstore *r = R(s);
    r->stopping = 1;
    if (r->sub_started)
        pthread_join(r->sub_thread, NULL);
    redis_pool_close(r->pool);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

struct trust_store *trust_store_redis_new(const struct redis_options *opt, char *err, size_t errlen)
{
    struct redisstore *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!(r->pool = redis_pool_open(opt, err, errlen))) {
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    script_init(&r->apply, apply_lua);
    script_init(&r->remember_apply, remember_apply_lua);
    script_init(&r->store, store_lua);
    script_init(&r->remove, remove_lua);
    script_init(&r->remember_put_challenge, remember_put_challenge_lua);
    script_init(&r->remember_take, remember_take_lua);
    r->base = (struct trust_store){
        .get = rs_get, .create = rs_create, .put = rs_put, .set_params = rs_set_params,
        .apply_signal = rs_apply, .remember_apply = rs_remember_apply, .loop_open = rs_loop_open,
        .remember_apply_async = rs_remember_apply_async,
        .remember_put_challenge_async = rs_remember_put_challenge_async,
        .remember_take_async = rs_remember_take_async, .loop_close = rs_loop_close,
        .remove = rs_remove, .put_challenge = rs_put_challenge,
        .take_challenge = rs_take_challenge, .remember = rs_remember, .set_listener = rs_set_listener,
        .destroy = rs_destroy, .kind = "redis",
    };
    return &r->base;
}
