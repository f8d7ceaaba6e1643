/* cache_codec.c — dictionary-compressed JSON for the informer cache
 * (cache_codec.h).
 *
 * An entry is one byte naming its dictionary, then a zstd frame. The
 * dictionaries are only ever added (at most MAX_DICTS), never replaced, so
 * an entry stays decodable for the codec's life; readers hold dict_lock only
 * to look its dictionary up.
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
#define MAX_DICTS 3                  /* each costs ~40 KiB of zstd tables */

struct cache_codec {
    pthread_mutex_t dict_lock;       /* guards adding a dictionary */
    ZSTD_CDict *cdict[MAX_DICTS];
    ZSTD_DDict *ddict[MAX_DICTS];
    size_t dict_len[MAX_DICTS];
    int ndicts;                      /* encodes use the newest */
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
    for (int i = 0; i < cc->ndicts; i++) {
        ZSTD_freeCDict(cc->cdict[i]);
        ZSTD_freeDDict(cc->ddict[i]);
    }
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

/* Makes the object's text in cc->text the newest dictionary. 0, or -1 when
 * out of memory. */
static int add_dictionary(struct cache_codec *cc, size_t n)
{
    /* level 3's search, with match tables sized for a few KiB of
     * dictionary + object (the defaults would spend ~115 KiB per informer) */
    ZSTD_compressionParameters cp = ZSTD_getCParams(LEVEL, TYPICAL_OBJECT, n);
    cp.hashLog = cp.hashLog > TABLE_LOG ? TABLE_LOG : cp.hashLog;
    cp.chainLog = cp.chainLog > TABLE_LOG ? TABLE_LOG : cp.chainLog;
    ZSTD_CDict *cd = ZSTD_createCDict_advanced(cc->text, n, ZSTD_dlm_byCopy, ZSTD_dct_rawContent, cp,
                                               ZSTD_defaultCMem);
    ZSTD_DDict *dd = ZSTD_createDDict_advanced(cc->text, n, ZSTD_dlm_byCopy, ZSTD_dct_rawContent,
                                               ZSTD_defaultCMem);
    if (!cd || !dd) {
        ZSTD_freeCDict(cd);
        ZSTD_freeDDict(dd);
        return -1;
    }
    pthread_mutex_lock(&cc->dict_lock);
    cc->cdict[cc->ndicts] = cd;
    cc->ddict[cc->ndicts] = dd;
    cc->dict_len[cc->ndicts] = n;
    cc->ndicts++;
    pthread_mutex_unlock(&cc->dict_lock);
    return 0;
}

/* The dictionary to encode an n-byte text with, adding one when needed; -1
 * when out of memory. The first object of a kind is often its smallest
 * shape (an AgentIdentity before its first status write: a dictionary made
 * from it leaves a written status at ~0.75 KB instead of ~0.2 KB), so a text
 * half again as long as the newest dictionary becomes the next one. */
static int dictionary_for(struct cache_codec *cc, size_t n)
{
    int last = cc->ndicts - 1;
    if (last >= 0 && (cc->ndicts == MAX_DICTS || n <= cc->dict_len[last] + cc->dict_len[last] / 2))
        return last;
    return add_dictionary(cc, n) == 0 ? cc->ndicts - 1 : (last >= 0 ? last : -1);
}

void *cache_codec_encode(struct cache_codec *cc, const json_t *obj, size_t reserve, size_t extra_tail,
                         size_t *len)
{
    size_t n = render_text(cc, obj);
    int d = n ? dictionary_for(cc, n) : -1;
    if (d < 0) {
        log_error("cache", "cannot encode an object for the cache (out of memory?)");
        return NULL;
    }
    size_t bound = ZSTD_compressBound(n);
    unsigned char *block = malloc(reserve + 1 + bound + extra_tail);
    size_t c = 0;
    if (block) {
        block[reserve] = (unsigned char)d;
        pthread_mutex_lock(&cctx_lock);
        if (!shared_cctx)
            shared_cctx = ZSTD_createCCtx();
        c = shared_cctx ? ZSTD_compress_usingCDict(shared_cctx, block + reserve + 1, bound, cc->text, n,
                                                   cc->cdict[d])
                        : 0;
        pthread_mutex_unlock(&cctx_lock);
    }
    if (!block || c == 0 || ZSTD_isError(c)) {
        log_error("cache", "cannot compress an object for the cache: %s",
                  block && c ? ZSTD_getErrorName(c) : "out of memory");
        free(block);
        return NULL;
    }
    unsigned char *fit = realloc(block, reserve + 1 + c + extra_tail);   /* give back the bound's slack */
    *len = 1 + c;
    return fit ? fit : block;
}

/* The decoded text of an entry (malloc'ed, *size bytes, not terminated);
 * NULL on failure (logged). */
static char *decode_text(struct cache_codec *cc, const unsigned char *buf, size_t len, size_t *size)
{
    pthread_mutex_lock(&cc->dict_lock);
    int known = len > 1 && buf[0] < cc->ndicts;
    ZSTD_DDict *dd = known ? cc->ddict[buf[0]] : NULL;
    pthread_mutex_unlock(&cc->dict_lock);
    if (!known) {
        log_error("cache", "cannot decode a cached object: it names no dictionary of this cache");
        return NULL;
    }
    unsigned long long want = ZSTD_getFrameContentSize(buf + 1, len - 1);
    if (want == ZSTD_CONTENTSIZE_ERROR || want == ZSTD_CONTENTSIZE_UNKNOWN || want > DECODED_MAX) {
        log_error("cache", "cannot decode a cached object: not a complete zstd frame");
        return NULL;
    }
    char *text = malloc(want ? want : 1);
    size_t got = 0;
    if (text) {
        pthread_mutex_lock(&dctx_lock);
        if (!shared_dctx)
            shared_dctx = ZSTD_createDCtx();
        got = shared_dctx ? ZSTD_decompress_usingDDict(shared_dctx, text, want, buf + 1, len - 1, dd) : 0;
        pthread_mutex_unlock(&dctx_lock);
    }
    if (!text || ZSTD_isError(got) || got != want) {
        log_error("cache", "cannot decompress a cached object: %s",
                  text && ZSTD_isError(got) ? ZSTD_getErrorName(got) : "out of memory or short");
        free(text);
        return NULL;
    }
    *size = want;
    return text;
}

json_t *cache_codec_decode(struct cache_codec *cc, const void *buf, size_t len)
{
    size_t size = 0;
    char *text = decode_text(cc, buf, len, &size);
    json_t *obj = NULL;
    json_error_t e;
    if (text && !(obj = json_loadb(text, size, 0, &e)))
        log_error("cache", "cached object is not JSON: %s", e.text);
    free(text);
    return obj;
}

int cache_codec_same(struct cache_codec *cc, const void *a, size_t alen, const void *b, size_t blen)
{
    const unsigned char *x = a, *y = b;
    if (alen == blen && memcmp(x, y, alen) == 0)
        return 1;
    if (alen == 0 || blen == 0 || x[0] == y[0])
        return 0;
    size_t xn = 0, yn = 0;
    char *xt = decode_text(cc, x, alen, &xn), *yt = decode_text(cc, y, blen, &yn);
    int same = xt && yt && xn == yn && memcmp(xt, yt, xn) == 0;
    free(xt);
    free(yt);
    return same;
}
