/* cache_codec.c — dictionary-compressed JSON for the informer cache
 * (cache_codec.h).
 *
 * The zstd contexts are process-wide, one for compressing and one for
 * decompressing, each behind a mutex: a context holds ~100-200 KiB of
 * tables, a call on a ~1 KB object takes a few microseconds, so sharing two
 * beats one pair per informer or per thread. The per-codec dictionary is
 * prepared once (CDict/DDict) with compression parameters sized for small
 * objects, so its tables stay small too. */
#include "controller/cache_codec.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define ZSTD_STATIC_LINKING_ONLY   /* ZSTD_createCDict_advanced */
#include <zstd.h>

#include "common/log.h"

#define LEVEL 3
#define TYPICAL_OBJECT 4096          /* sizes the window */
#define TABLE_LOG 10                 /* match tables of 2^10 entries */
#define DECODED_MAX (64u << 20)      /* no cached object is near this */

struct cache_codec {
    pthread_mutex_t dict_lock;       /* guards the first-encode dictionary setup */
    ZSTD_CDict *cdict;
    ZSTD_DDict *ddict;
    char *text;                      /* encode's scratch JSON text (one writer) */
    size_t text_cap;
};

static pthread_mutex_t cctx_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t dctx_lock = PTHREAD_MUTEX_INITIALIZER;
static ZSTD_CCtx *shared_cctx;
static ZSTD_DCtx *shared_dctx;

struct cache_codec *cache_codec_new(void)
{
    struct cache_codec *cc = calloc(1, sizeof(*cc));
    if (cc && pthread_mutex_init(&cc->dict_lock, NULL) != 0) {
        free(cc);
        return NULL;
    }
    return cc;
}

void cache_codec_free(struct cache_codec *cc)
{
    if (!cc)
        return;
    ZSTD_freeCDict(cc->cdict);
    ZSTD_freeDDict(cc->ddict);
    pthread_mutex_destroy(&cc->dict_lock);
    free(cc->text);
    free(cc);
}

/* The object's compact JSON in cc->text; its length, or 0 on failure. */
static size_t render_text(struct cache_codec *cc, const json_t *obj)
{
    size_t n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
    if (n == 0)
        return 0;
    if (n > cc->text_cap) {
        char *t = realloc(cc->text, n);
        if (!t)
            return 0;
        cc->text = t;
        cc->text_cap = n;
    }
    return json_dumpb(obj, cc->text, n, JSON_COMPACT) == n ? n : 0;
}

/* Makes the first object's text the dictionary. 0, or -1 when out of memory. */
static int ensure_dictionary(struct cache_codec *cc, size_t n)
{
    pthread_mutex_lock(&cc->dict_lock);
    if (!cc->cdict) {
        /* level 3's search, with match tables sized for a few KiB of
         * dictionary + object (the defaults would spend ~115 KiB per informer) */
        ZSTD_compressionParameters cp = ZSTD_getCParams(LEVEL, TYPICAL_OBJECT, n);
        cp.hashLog = cp.hashLog > TABLE_LOG ? TABLE_LOG : cp.hashLog;
        cp.chainLog = cp.chainLog > TABLE_LOG ? TABLE_LOG : cp.chainLog;
        cc->cdict = ZSTD_createCDict_advanced(cc->text, n, ZSTD_dlm_byCopy, ZSTD_dct_rawContent, cp,
                                              ZSTD_defaultCMem);
        cc->ddict = ZSTD_createDDict_advanced(cc->text, n, ZSTD_dlm_byCopy, ZSTD_dct_rawContent,
                                              ZSTD_defaultCMem);
        if (!cc->cdict || !cc->ddict) {
            ZSTD_freeCDict(cc->cdict);
            ZSTD_freeDDict(cc->ddict);
            cc->cdict = NULL;
            cc->ddict = NULL;
        }
    }
    int rc = cc->cdict ? 0 : -1;
    pthread_mutex_unlock(&cc->dict_lock);
    return rc;
}

void *cache_codec_encode(struct cache_codec *cc, const json_t *obj, size_t reserve, size_t extra_tail,
                         size_t *len)
{
    size_t n = render_text(cc, obj);
    if (n == 0 || ensure_dictionary(cc, n) != 0) {
        log_error("cache", "cannot encode an object for the cache (out of memory?)");
        return NULL;
    }
    size_t bound = ZSTD_compressBound(n);
    unsigned char *block = malloc(reserve + bound + extra_tail);
    size_t c = 0;
    if (block) {
        pthread_mutex_lock(&cctx_lock);
        if (!shared_cctx)
            shared_cctx = ZSTD_createCCtx();
        c = shared_cctx ? ZSTD_compress_usingCDict(shared_cctx, block + reserve, bound, cc->text, n, cc->cdict)
                        : 0;
        pthread_mutex_unlock(&cctx_lock);
    }
    if (!block || c == 0 || ZSTD_isError(c)) {
        log_error("cache", "cannot compress an object for the cache: %s",
                  block && c ? ZSTD_getErrorName(c) : "out of memory");
        free(block);
        return NULL;
    }
    unsigned char *fit = realloc(block, reserve + c + extra_tail);   /* give back the bound's slack */
    *len = c;
    return fit ? fit : block;
}

json_t *cache_codec_decode(struct cache_codec *cc, const void *buf, size_t len)
{
    unsigned long long size = ZSTD_getFrameContentSize(buf, len);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > DECODED_MAX || !cc->ddict) {
        log_error("cache", "cannot decode a cached object: not a complete zstd frame");
        return NULL;
    }
    char *text = malloc(size ? size : 1);
    size_t got = 0;
    if (text) {
        pthread_mutex_lock(&dctx_lock);
        if (!shared_dctx)
            shared_dctx = ZSTD_createDCtx();
        got = shared_dctx ? ZSTD_decompress_usingDDict(shared_dctx, text, size, buf, len, cc->ddict) : 0;
        pthread_mutex_unlock(&dctx_lock);
    }
    json_t *obj = NULL;
    json_error_t e;
    if (!text || ZSTD_isError(got) || got != size)
        log_error("cache", "cannot decompress a cached object: %s",
                  text && ZSTD_isError(got) ? ZSTD_getErrorName(got) : "out of memory or short");
    else if (!(obj = json_loadb(text, size, 0, &e)))
        log_error("cache", "cached object is not JSON: %s", e.text);
    free(text);
    return obj;
}
