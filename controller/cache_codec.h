/* cache_codec.h — how the informer cache stores an object: compact JSON,
 * compressed with zstd against a dictionary taken from the first object.
 *
 * Objects of one kind share almost all their keys and much of their values
 * (labels, owner references, condition texts), so with the first object as
 * a raw-content dictionary a 1.4 KB AgentIdentity stores in ~0.3 KB, where
 * zstd alone gets ~0.7 KB and a jansson tree costs ~7 KB. Encoding is
 * deterministic: two objects encode to the same bytes exactly when their
 * JSON texts are equal, so callers compare encodings to detect change.
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
 * on failure (logged). The first object encoded becomes the dictionary. */
void *cache_codec_encode(struct cache_codec *cc, const json_t *obj, size_t reserve, size_t extra_tail,
                         size_t *len);
/* A new object decoded from `len` bytes at `buf`; NULL on failure (logged). */
json_t *cache_codec_decode(struct cache_codec *cc, const void *buf, size_t len);

#endif
