/* trust_engine_text.h — trust numbers as text, exactly: "%.17g" and back.
 *
 * Dimensions, weights and decay parameters leave the engine as "%.17g"
 * text (17 significant digits: every double reads back to the same bits):
 * in the trust API's JSON replies and in the Redis hash, where Lua writes
 * them the same way. glibc formats and parses such text with
 * multi-precision arithmetic, a tenth of a signal's CPU besides its Ed25519
 * verify; these do the common cases with 128-bit integers, exactly as
 * glibc does them (rounding to nearest, ties to even), and hand the rest
 * to snprintf / strtod. */
#ifndef AGENTMESH_TRUST_ENGINE_TEXT_H
#define AGENTMESH_TRUST_ENGINE_TEXT_H

#define TRUST_REAL_BUFSZ 32

/* snprintf(out, TRUST_REAL_BUFSZ, "%.17g", v), byte for byte. Its length. */
int trust_real_format(double v, char out[TRUST_REAL_BUFSZ]);

/* strtod of the whole string s, bit for bit: 0 with *out set, or -1 when s
 * is empty or has anything after the number (*out may be set then). */
int trust_real_parse(const char *s, double *out);

#endif
