/* fuzz_auth_header.c — libFuzzer target for the Authorization header parser,
 * the first code that touches untrusted bytes on every API request.
 *
 * Checks, beyond "no crash": a parsed header always carries a valid DID and
 * a time that re-parses to the same instant, and a rejection always names a
 * reason. Accepted headers are also run through auth_verify (which must
 * reject: the fuzzer cannot forge Ed25519) to cover the signed-string code.
 * Seeds: fuzz/corpus/auth_header/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    static unsigned char pk[ID_PUB_LEN];
    if (!ready) {
        if (identity_init() != 0) abort();
        memset(pk, 0x42, sizeof pk);
        ready = 1;
    }
    struct auth_header h;
    const char *why = NULL;
    if (auth_parse_header((const char *)data, size, &h, &why) != 0) {
        if (!why || !*why) abort();
        return 0;
    }
    time_t again;
    if (!identity_did_valid(h.did)) abort();
    if (auth_time_parse(h.time, strlen(h.time), &again) != 0 || again != h.ts) abort();
    if (auth_verify(&h, pk, pk, "GET", "/api/v1/agents", data, size, h.ts, NULL, &why) == 0)
        abort();
    return 0;
}
