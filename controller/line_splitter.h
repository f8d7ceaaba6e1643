/* line_splitter.h — reassembles newline-delimited records from a byte stream.
 *
 * Watch replies are one JSON object per line, but the network hands them over
 * in arbitrary chunks: a line may span many reads and one read may hold many
 * lines. The splitter buffers only the unfinished tail, up to `max_line`. */
#ifndef AGENTMESH_LINE_SPLITTER_H
#define AGENTMESH_LINE_SPLITTER_H

#include <stddef.h>

/* Called once per complete line. `line` is NUL-terminated (the '\n' is not
 * included) and only valid during the call. Return 0 to go on, non-zero to stop. */
typedef int (*line_splitter_fn)(const char *line, size_t len, void *arg);

struct line_splitter {
    char *buf;          /* unfinished line, NUL-terminated */
    size_t len, cap;
    size_t max_line;    /* longest accepted line, without its '\n' */
};

enum {
    LINE_SPLITTER_OK = 0,
    LINE_SPLITTER_STOPPED = 1,    /* the callback returned non-zero */
    LINE_SPLITTER_TOO_LONG = -1,  /* a line exceeds max_line */
    LINE_SPLITTER_NOMEM = -2,
};

void line_splitter_init(struct line_splitter *s, size_t max_line);
/* Feeds `len` bytes, calling `fn` for each line they complete. Empty lines
 * are skipped. Returns one of the LINE_SPLITTER_* codes; after a non-zero
 * code the splitter must not be fed again. */
int line_splitter_feed(struct line_splitter *s, const char *data, size_t len,
                       line_splitter_fn fn, void *arg);
/* End of input: delivers a final line that had no '\n', if any. */
int line_splitter_finish(struct line_splitter *s, line_splitter_fn fn, void *arg);
void line_splitter_free(struct line_splitter *s);

#endif
