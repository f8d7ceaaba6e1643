/* redis_conn.h — Redis connections over plain TCP or OpenSSL TLS.
 *
 * Debian's hiredis 0.14 has no TLS, so hiredis is used only for RESP:
 * a redisReader decodes replies; commands are encoded here
 * (redis_format_command); the socket (and the TLS session, for rediss://)
 * is ours. A redis_pool holds a few
 * connections for concurrent callers; a dead server gives an error within
 * the connect / I/O timeouts, and the next call reconnects. */
#ifndef AGENTMESH_REDIS_CONN_H
#define AGENTMESH_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>

/* redis://[user:password@]host[:port][/db], rediss:// for TLS.
 * Default port 6379; user and password are percent-decoded; an IPv6 host is
 * written [::1]. */
struct redis_url {
    char host[256];
    int port;
    char user[128];
    char password[256];
    int db;
    int tls;
};

int redis_url_parse(const char *url, struct redis_url *out, char *err, size_t errlen);

struct redis_options {
    const char *url;             /* required */
    const char *ca_file;         /* rediss: CA bundle; NULL = system default paths */
    int insecure_skip_verify;    /* rediss: skip certificate + hostname checks (tests only) */
    int connect_timeout_ms;      /* 0 = 2000 */
    int io_timeout_ms;           /* 0 = 2000 */
    int pool_size;               /* 0 = 4 */
};

/* The RESP encoding of a command, byte for byte what hiredis's
 * redisFormatCommandArgv makes (argvlen NULL = strlen), without its
 * sprintf per argument. *out is malloc'ed (free it) and NUL-terminated;
 * its length, or -1 on OOM. */
int redis_format_command(char **out, int argc, const char **argv, const size_t *argvlen);

/* One connection: connected, TLS handshaken, AUTH and SELECT done. */
struct redis_conn;

struct redis_conn *redis_conn_open(const struct redis_options *opt, char *err, size_t errlen);
void redis_conn_close(struct redis_conn *c);

/* Sends one command (argv with explicit lengths; argvlen NULL = strlen). 0 or -1. */
int redis_conn_send(struct redis_conn *c, int argc, const char **argv, const size_t *argvlen,
                    char *err, size_t errlen);
/* Reads one reply, waiting at most timeout_ms (-1 = the I/O timeout). NULL on
 * error or timeout (*timed_out set to 1 for a timeout when non-NULL; the
 * connection stays usable after a timeout with no partial reply). */
redisReply *redis_conn_read(struct redis_conn *c, int timeout_ms, int *timed_out,
                            char *err, size_t errlen);
/* send + read. Error replies (-ERR ...) come back as a REDIS_REPLY_ERROR
 * reply; NULL only for transport problems. Caller frees with freeReplyObject. */
redisReply *redis_conn_command(struct redis_conn *c, int argc, const char **argv,
                               const size_t *argvlen, char *err, size_t errlen);

/* A thread-safe pool of up to pool_size connections, opened lazily. */
struct redis_pool;

/* Opens one connection to check the URL and credentials; NULL with err on failure. */
struct redis_pool *redis_pool_open(const struct redis_options *opt, char *err, size_t errlen);
void redis_pool_close(struct redis_pool *p);

/* Runs one command on a pooled connection. A connection that fails is
 * dropped. When a reused connection turns out dead before any reply byte
 * arrived (server restarted while it sat idle), the command is retried
 * once on a fresh connection. NULL (with err) for transport errors only. */
redisReply *redis_pool_command(struct redis_pool *p, int argc, const char **argv,
                               const size_t *argvlen, char *err, size_t errlen);

/* The options the pool was opened with (for a dedicated subscriber connection). */
const struct redis_options *redis_pool_options(const struct redis_pool *p);

/* One connection driven by an event loop, for callers that must not wait:
 * commands are written as they come (pipelined, several in flight) and
 * each callback runs on the loop when its reply arrives, in order. Used
 * only from the loop's thread. Connects lazily on the first command (the
 * connect itself waits, bounded by the connect timeout); while the server
 * is down, commands fail at once and a reconnect is tried at most once a
 * second. A reply that takes longer than the I/O timeout fails the
 * connection and every command in flight on it. */
struct redis_async;
struct event_base;

/* reply: the server's (REDIS_REPLY_ERROR included), freed after the
 * callback returns; NULL when the connection failed, timed out or is being
 * freed, with err saying which. */
typedef void (*redis_async_fn)(redisReply *reply, const char *err, void *arg);

/* Not connected yet; NULL on OOM. The options' strings are copied. */
struct redis_async *redis_async_new(struct event_base *base, const struct redis_options *opt);
/* Queues one command. 0: fn will be called exactly once, later, on the loop.
 * -1 with err (fn never called): not connected and cannot connect now. */
int redis_async_command(struct redis_async *a, int argc, const char **argv, const size_t *argvlen,
                        redis_async_fn fn, void *arg, char *err, size_t errlen);
/* Calls every pending callback with NULL ("connection closed") and frees. */
void redis_async_free(struct redis_async *a);

#endif
