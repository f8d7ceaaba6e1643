/* request_body.h — parse and check a JSON request body against a table of
 * fields (see request_body.c).
 *
 * A route declares its fields once:
 *
 *     static const struct request_field fields[] = {
 *         {"agent_did", RB_DID, 1}, {"weight", RB_WEIGHT, 0},
 *     };
 *     json_t *in = request_body_parse(body, len, fields, 2, err, sizeof err);
 *
 * and gets back either the object, every present field well-formed and
 * every required one present, or NULL with a message naming the field. */
#ifndef AGENTMESH_REQUEST_BODY_H
#define AGENTMESH_REQUEST_BODY_H

#include <jansson.h>
#include <stddef.h>

/* The limits the kinds below check (the handshake's formats: the controller
 * asserts at compile time that its own constants agree). */
#define RB_CHALLENGE_ID_PREFIX "challenge_"
#define RB_CHALLENGE_ID_LEN 26     /* the prefix + 16 hex digits */
#define RB_HEX_MIN 16
#define RB_HEX_MAX 128
#define RB_SCORE_MAX 1000

/* What a field's value must be. */
enum request_kind {
    RB_DID,          /* a DID: did:mesh:<32 lower-case hex> */
    RB_TOKEN,        /* 1..64 of [A-Za-z0-9_-]: no ':' (the handshake's separator) */
    RB_CHALLENGE_ID, /* "challenge_" + 16 hex digits, as the controller issues them */
    RB_HEX,          /* 16..128 hex digits */
    RB_SIG,          /* std base64 of a 64-byte Ed25519 signature */
    RB_SCORE,        /* an integer in 0..1000 */
    RB_CAPS,         /* an array of at most 64 strings of 1..128 characters */
    RB_DIMENSION,    /* one of the five trust dimension names */
    RB_UNIT,         /* a number in [0, 1] */
    RB_WEIGHT,       /* a number in [0, 1000] */
    RB_TEXT,         /* a string of 1..128 characters, no NUL */
};

struct request_field {
    const char *name;
    enum request_kind kind;
    int required;    /* 1: a missing field is refused; 0: it may be absent */
};

/* Parses len bytes of body as a JSON object holding only `fields`
 * (duplicate keys refused), each required one present and each present one
 * a valid value of its kind. The object (new reference), or NULL with err
 * set to one of: "body is not valid JSON: ...", "body must be a JSON
 * object", "unknown field \"x\"", "field \"x\" is required", "field \"x\"
 * must be <what>". */
json_t *request_body_parse(const char *body, size_t len, const struct request_field *fields,
                           size_t nfields, char *err, size_t errlen);

/* Parses len bytes of body as json_parse does (same values, same
 * acceptance, duplicate keys refused), flat objects of plain strings and
 * numbers without jansson's lexer. A new reference, or NULL with err
 * "body is not valid JSON: ...". */
json_t *request_body_json(const char *body, size_t len, char *err, size_t errlen);

#endif
