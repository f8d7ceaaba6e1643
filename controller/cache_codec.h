/* cache_codec.h — how the informer cache stores an object: compact JSON,
 * compressed with zstd against a dictionary taken from an earlier object.
 *
 * Objects of one kind share almost all their keys and much of their values
 * (labels, owner references, condition texts), so with an earlier object as
 * a raw-content dictionary a 2.2 KB AgentIdentity with its status stores in
 * ~0.2 KB, where zstd alone gets ~0.9 KB and a jansson tree costs ~7 KB.
 * The first object is the first dictionary; a later one half again as long
 * as the newest dictionary becomes another (at most three), because the
 * first of a kind is often its smallest shape. Encoding is deterministic
 * for one dictionary, so cache_codec_same compares bytes and decodes only
 * entries made with different dictionaries.
 *
 * One codec per informer. cache_codec_encode is called by one thread at a
 * time (the informer's writer); cache_codec_decode from any thread. */
#ifndef AGENTMESH_CACHE_CODEC_H
#define AGENTMESH_CACHE_CODEC_H

#include <jansson.h>
#include <stddef.h>

struct cache_codec;

/* NULL when out of memory. */
struct cache_codec *cache_codec_new(void);
void cache_codec_free(struct cache_codec *cc);

/* The encoding of `obj` written after `reserve` bytes the caller keeps for
 * itself: returns a malloc'ed block of reserve + *len (+ extra_tail) bytes,
 * the encoding at offset `reserve`, `extra_tail` bytes left after it. NULL
 * on failure (logged). */
void *cache_codec_encode(struct cache_codec *cc, const json_t *obj, size_t reserve, size_t extra_tail,
                         size_t *len);
/* A new object decoded from `len` bytes at `buf`; NULL on failure (logged). */
json_t *cache_codec_decode(struct cache_codec *cc, const void *buf, size_t len);
/* 1 when two encodings hold the same JSON text, else 0 (also when either
 * cannot be decoded). */
int cache_codec_same(struct cache_codec *cc, const void *a, size_t alen, const void *b, size_t blen);

#endif
