/* audit_log.c — the SHA-256 hash-chained audit log and score history in
 * PostgreSQL (libpq).
 *
 * One chain for all replicas: an append takes a transaction-scoped advisory
 * lock, reads the newest entry_hash, and inserts the new row chained to it,
 * so two replicas can never both chain onto the same predecessor. Appends
 * are idempotent on the event id, which is what lets audit_spool redeliver
 * after a crash without duplicating anything. The connection is opened
 * lazily and dropped when it breaks; the next call reconnects. */
#include "controller/audit_log.h"

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"

#define GENESIS_HASH "0000000000000000000000000000000000000000000000000000000000000000"
/* pg_advisory_xact_lock keys: the chain and the schema migration. */
#define CHAIN_LOCK "7310582340861133313"
#define MIGRATE_LOCK "7310582340861133314"

static const char schema_sql[] =
    "BEGIN;"
    "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ");"
    "CREATE TABLE IF NOT EXISTS audit_log ("
    " id text PRIMARY KEY,"
    " seq bigserial UNIQUE NOT NULL,"
    " ts timestamptz NOT NULL,"
    " type text NOT NULL,"
    " agent_did text NOT NULL DEFAULT '',"
    " data jsonb NOT NULL,"
    " previous_hash text NOT NULL,"
    " entry_hash text NOT NULL);"
    "CREATE TABLE IF NOT EXISTS score_history ("
    " id bigserial PRIMARY KEY,"
    " agent_did text NOT NULL,"
    " ts timestamptz NOT NULL,"
    " score integer NOT NULL,"
    " tier text NOT NULL);"
    "CREATE INDEX IF NOT EXISTS score_history_agent_ts ON score_history (agent_did, ts);"
    "COMMIT;";

struct audit_log {
    char *url;
    PGconn *conn;
    pthread_mutex_t mu;
};

/* ---- events --------------------------------------------------------------- */

static int valid_type(const char *t)
{
    if (!t || !*t || strlen(t) > AUDIT_TYPE_MAX)
        return 0;
    for (; *t; t++)
        if (!((*t >= 'a' && *t <= 'z') || (*t >= '0' && *t <= '9') || *t == '.' || *t == '_' || *t == '-'))
            return 0;
    return 1;
}

int audit_event_init(struct audit_event *ev, const char *id, const char *type, const char *agent_did,
                     int64_t ts_ms, json_t *data, char *err, size_t errlen)
{
    memset(ev, 0, sizeof *ev);
    if (!data)
        data = json_object();
    if (!json_is_object(data)) {
        snprintf(err, errlen, "audit event data: must be an object");
        json_decref(data);
        return -1;
    }
    ev->data = data;
    if (id && (!*id || strlen(id) > AUDIT_ID_MAX)) {
        snprintf(err, errlen, "audit event id: must be 1..%d characters", AUDIT_ID_MAX);
        goto fail;
    }
    if (!valid_type(type)) {
        snprintf(err, errlen, "audit event type: must match [a-z0-9._-]{1,%d}", AUDIT_TYPE_MAX);
        goto fail;
    }
    if (agent_did && strlen(agent_did) > AUDIT_DID_MAX) {
        snprintf(err, errlen, "audit event agent_did: longer than %d characters", AUDIT_DID_MAX);
        goto fail;
    }
    if (id) {
        snprintf(ev->id, sizeof ev->id, "%s", id);
    } else {
        unsigned char rnd[16];
        if (RAND_bytes(rnd, sizeof rnd) != 1) {
            snprintf(err, errlen, "audit event id: no randomness");
            goto fail;
        }
        int off = snprintf(ev->id, sizeof ev->id, "evt_");
        for (size_t i = 0; i < sizeof rnd; i++)
            off += snprintf(ev->id + off, sizeof ev->id - (size_t)off, "%02x", rnd[i]);
    }
    snprintf(ev->type, sizeof ev->type, "%s", type);
    snprintf(ev->agent_did, sizeof ev->agent_did, "%s", agent_did ? agent_did : "");
    ev->ts_ms = ts_ms;
    return 0;
fail:
    audit_event_clear(ev);
    return -1;
}

void audit_event_clear(struct audit_event *ev)
{
    json_decref(ev->data);
    ev->data = NULL;
}

char *audit_event_canonical(const struct audit_event *ev)
{
    json_t *o = json_pack("{s:s, s:O, s:s, s:I, s:s}", "agent_did", ev->agent_did, "data", ev->data, "id", ev->id,
                          "ts", (json_int_t)ev->ts_ms, "type", ev->type);
    if (!o)
        return NULL;
    char *s = json_compact(o);
    json_decref(o);
    return s;
}

int audit_event_parse(const char *text, size_t len, struct audit_event *out, char *err, size_t errlen)
{
    char perr[128];
    memset(out, 0, sizeof *out);
    json_t *j = json_parse(text, len, perr, sizeof perr);
    if (!j) {
        snprintf(err, errlen, "audit event: %s", perr);
        return -1;
    }
    json_t *ts = json_object_get(j, "ts");
    json_t *data = json_object_get(j, "data");
    const char *id = json_str_at(j, "id");
    int rc = -1;
    if (!id || !json_is_integer(ts) || !json_is_string(json_object_get(j, "agent_did")))
        snprintf(err, errlen, "audit event: id, ts and agent_did are required");
    else
        rc = audit_event_init(out, id, json_str_at(j, "type"), json_str_at(j, "agent_did"),
                              (int64_t)json_integer_value(ts), json_incref(data), err, errlen);
    json_decref(j);
    return rc;
}

/* ---- hashing ---------------------------------------------------------------- */

/* hex(sha256(previous_hash || canonical)) into out[65]. 0, or -1 (OpenSSL out of memory). */
static int chain_hash(const char *previous, const char *canonical, char out[65])
{
    unsigned char h[SHA256_DIGEST_LENGTH];
    unsigned int hlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, previous, strlen(previous)) == 1 &&
             EVP_DigestUpdate(ctx, canonical, strlen(canonical)) == 1 && EVP_DigestFinal_ex(ctx, h, &hlen) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -1;
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
    return 0;
}

/* ---- connection ------------------------------------------------------------- */

struct audit_log *audit_log_new(const char *url, char *err, size_t errlen)
{
    char *perr = NULL;
    PQconninfoOption *opts = url ? PQconninfoParse(url, &perr) : NULL;
    if (!opts) {
        snprintf(err, errlen, "postgres url: %s", perr ? perr : "missing");
        PQfreemem(perr);
        return NULL;
    }
    PQconninfoFree(opts);
    struct audit_log *l = calloc(1, sizeof *l);
    if (!l || !(l->url = strdup(url))) {
        free(l);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&l->mu, NULL);
    return l;
}

void audit_log_free(struct audit_log *l)
{
    if (!l)
        return;
    if (l->conn)
        PQfinish(l->conn);
    pthread_mutex_destroy(&l->mu);
    free(l->url);
    free(l);
}

/* Copies libpq's message without its trailing newline. */
static void pg_error(char *err, size_t errlen, const char *what, const char *msg)
{
    size_t n = strcspn(msg ? msg : "", "\n");
    snprintf(err, errlen, "postgres %s: %.*s", what, (int)n, msg ? msg : "");
}

/* Runs a command expecting no rows; 0 or -1. */
static int exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        pg_error(err, errlen, "query", PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

/* The connection, opened (and the schema migrated) when needed. Caller holds mu. */
static PGconn *conn(struct audit_log *l, char *err, size_t errlen)
{
    if (l->conn && PQstatus(l->conn) == CONNECTION_OK)
        return l->conn;
    if (l->conn)
        PQfinish(l->conn);
    /* defaults first: the URL's own settings (expanded from dbname) override them */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"2", "agentmesh-controller", l->url, NULL};
    l->conn = PQconnectdbParams(keys, vals, 1);
    if (!l->conn || PQstatus(l->conn) != CONNECTION_OK) {
        pg_error(err, errlen, "connect", l->conn ? PQerrorMessage(l->conn) : "out of memory");
        goto fail;
    }
    if (exec_ok(l->conn, "SET statement_timeout = 5000; SET client_min_messages = warning", err, errlen) < 0 ||
        exec_ok(l->conn, schema_sql, err, errlen) < 0)
        goto fail;
    return l->conn;
fail:
    if (l->conn)
        PQfinish(l->conn);
    l->conn = NULL;
    return NULL;
}

/* After a failure: drop a broken connection, roll back an open transaction. */
static void recover(struct audit_log *l)
{
    if (!l->conn)
        return;
    if (PQstatus(l->conn) != CONNECTION_OK) {
        PQfinish(l->conn);
        l->conn = NULL;
    } else if (PQtransactionStatus(l->conn) != PQTRANS_IDLE) {
        PGresult *r = PQexec(l->conn, "ROLLBACK");
        PQclear(r);
    }
}

int audit_log_ping(struct audit_log *l, char *err, size_t errlen)
{
    pthread_mutex_lock(&l->mu);
    PGconn *c = conn(l, err, errlen);
    int rc = c ? exec_ok(c, "SELECT 1", err, errlen) : -1;
    if (rc < 0)
        recover(l);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* ---- append ------------------------------------------------------------------ */

/* The body of the append transaction. 0 appended, 1 present, -1 error. */
static int append_locked(PGconn *c, const struct audit_event *ev, const char *canonical, const char *data,
                         char hash[65], char *err, size_t errlen)
{
    if (exec_ok(c, "BEGIN", err, errlen) < 0 ||
        exec_ok(c, "SELECT pg_advisory_xact_lock(" CHAIN_LOCK ")", err, errlen) < 0)
        return -1;
    const char *idp[] = {ev->id};
    PGresult *r = PQexecParams(c, "SELECT entry_hash FROM audit_log WHERE id = $1", 1, NULL, idp, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_error(err, errlen, "lookup", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    if (PQntuples(r) == 1) {
        snprintf(hash, 65, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        return exec_ok(c, "COMMIT", err, errlen) < 0 ? -1 : 1;
    }
    PQclear(r);
    r = PQexec(c, "SELECT entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_error(err, errlen, "chain head", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    char previous[65];
    snprintf(previous, sizeof previous, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : GENESIS_HASH);
    PQclear(r);
    if (chain_hash(previous, canonical, hash) < 0) {
        snprintf(err, errlen, "audit: sha256 failed");
        return -1;
    }
    char ts[24];
    snprintf(ts, sizeof ts, "%lld", (long long)ev->ts_ms);
    const char *p[] = {ev->id, ts, ev->type, ev->agent_did, data, previous, hash};
    r = PQexecParams(c,
                     "INSERT INTO audit_log (id, ts, type, agent_did, data, previous_hash, entry_hash) "
                     "VALUES ($1, to_timestamp(0) + $2::bigint * interval '1 millisecond', $3, $4, $5::jsonb, $6, $7)",
                     7, NULL, p, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        pg_error(err, errlen, "insert", PQresultErrorMessage(r));
    PQclear(r);
    if (!ok || exec_ok(c, "COMMIT", err, errlen) < 0)
        return -1;
    return 0;
}

int audit_log_append(struct audit_log *l, const struct audit_event *ev, char hash_out[65], char *err,
                     size_t errlen)
{
    char *canonical = audit_event_canonical(ev);
    char *data = json_compact(ev->data);
    char hash[65] = "";
    int rc = -1;
    if (!canonical || !data) {
        snprintf(err, errlen, "audit event: out of memory");
        goto out;
    }
    pthread_mutex_lock(&l->mu);
    PGconn *c = conn(l, err, errlen);
    if (c)
        rc = append_locked(c, ev, canonical, data, hash, err, errlen);
    if (rc < 0)
        recover(l);
    pthread_mutex_unlock(&l->mu);
    if (rc >= 0 && hash_out)
        memcpy(hash_out, hash, 65);
out:
    free(canonical);
    free(data);
    return rc;
}

/* ---- verify ------------------------------------------------------------------- */

/* Checks one row against the running hash; 1 when it chains correctly. */
static int row_valid(PGresult *r, char previous[65])
{
    char perr[128];
    const char *data_text = PQgetvalue(r, 0, 5);
    struct audit_event ev = {0};
    json_t *data = json_parse(data_text, strlen(data_text), perr, sizeof perr);
    snprintf(ev.id, sizeof ev.id, "%s", PQgetvalue(r, 0, 0));
    ev.ts_ms = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    snprintf(ev.type, sizeof ev.type, "%s", PQgetvalue(r, 0, 3));
    snprintf(ev.agent_did, sizeof ev.agent_did, "%s", PQgetvalue(r, 0, 4));
    ev.data = data;
    char *canonical = data ? audit_event_canonical(&ev) : NULL;
    json_decref(data);
    if (!canonical)
        return 0;
    char want[65];
    int hashed = chain_hash(previous, canonical, want) == 0;
    free(canonical);
    int ok = hashed && strcmp(PQgetvalue(r, 0, 6), previous) == 0 && strcmp(PQgetvalue(r, 0, 7), want) == 0;
    snprintf(previous, 65, "%s", PQgetvalue(r, 0, 7));
    return ok;
}

/* Streams the chain row by row (single-row mode: memory stays flat). */
static int verify_locked(PGconn *c, struct audit_verify_result *out, char *err, size_t errlen)
{
    if (!PQsendQuery(c, "SELECT id, seq, (extract(epoch FROM ts) * 1000)::bigint, type, agent_did, data::text, "
                        "previous_hash, entry_hash FROM audit_log ORDER BY seq") ||
        !PQsetSingleRowMode(c)) {
        pg_error(err, errlen, "verify", PQerrorMessage(c));
        return -1;
    }
    char previous[65] = GENESIS_HASH;
    int rc = 0;
    PGresult *r;
    while ((r = PQgetResult(c))) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_SINGLE_TUPLE) {
            out->entries++;
            if (out->chain_valid && !row_valid(r, previous)) {
                out->chain_valid = 0;
                out->first_bad_seq = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
                snprintf(out->first_bad_id, sizeof out->first_bad_id, "%s", PQgetvalue(r, 0, 0));
            }
        } else if (st != PGRES_TUPLES_OK) {
            pg_error(err, errlen, "verify", PQresultErrorMessage(r));
            rc = -1;
        }
        PQclear(r);
    }
    return rc;
}

int audit_log_verify(struct audit_log *l, struct audit_verify_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->chain_valid = 1;
    out->first_bad_seq = -1;
    pthread_mutex_lock(&l->mu);
    PGconn *c = conn(l, err, errlen);
    int rc = c ? verify_locked(c, out, err, errlen) : -1;
    if (rc < 0)
        recover(l);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int audit_log_record_score(struct audit_log *l, const char *agent_did, int score, const char *tier, int64_t ts_ms,
                           char *err, size_t errlen)
{
    char s[16], ts[24];
    snprintf(s, sizeof s, "%d", score);
    snprintf(ts, sizeof ts, "%lld", (long long)ts_ms);
    const char *p[] = {agent_did, ts, s, tier};
    pthread_mutex_lock(&l->mu);
    PGconn *c = conn(l, err, errlen);
    int rc = -1;
    if (c) {
        PGresult *r = PQexecParams(c,
                                   "INSERT INTO score_history (agent_did, ts, score, tier) "
                                   "VALUES ($1, to_timestamp(0) + $2::bigint * interval '1 millisecond', $3, $4)",
                                   4, NULL, p, NULL, NULL, 0);
        rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
        if (rc < 0)
            pg_error(err, errlen, "score history", PQresultErrorMessage(r));
        PQclear(r);
    }
    if (rc < 0)
        recover(l);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int audit_log_spool_sink(const char *payload, size_t len, void *arg, char *err, size_t errlen)
{
    struct audit_event ev;
    if (audit_event_parse(payload, len, &ev, err, errlen) < 0)
        return -2;
    int rc = audit_log_append(arg, &ev, NULL, err, errlen);
    audit_event_clear(&ev);
    return rc < 0 ? -1 : 0;
}
