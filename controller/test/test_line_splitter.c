/* test_line_splitter.c — watch-stream framing: lines split across chunks,
 * many lines per chunk, a multi-megabyte object line, and the max_line cap. */
#include "common/test/check_run.h"
#include "controller/line_splitter.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEEN 64

struct seen {
    int n;
    char *lines[MAX_SEEN];
    size_t lens[MAX_SEEN];
    int stop_after;   /* stop when this many lines were seen; 0 = never */
};

static int collect(const char *line, size_t len, void *arg) {
    struct seen *s = arg;
    ck_assert_int_lt(s->n, MAX_SEEN);
    ck_assert_uint_eq(strlen(line), len);   /* NUL-terminated, no embedded '\n' */
    s->lines[s->n] = strndup(line, len);
    ck_assert_ptr_nonnull(s->lines[s->n]);
    s->lens[s->n] = len;
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

static void seen_free(struct seen *s) {
    for (int i = 0; i < s->n; i++) free(s->lines[i]);
}

START_TEST(partial_lines_across_chunks) {
    const char *text = "{\"type\":\"ADDED\",\"object\":{}}\n{\"type\":\"DELETED\"}\n";
    size_t total = strlen(text);
    /* Every chunk size from 1 byte to the whole text gives the same two lines. */
    for (size_t chunk = 1; chunk <= total; chunk++) {
        struct line_splitter sp;
        struct seen s = {0};
        line_splitter_init(&sp, 1024);
        for (size_t off = 0; off < total; off += chunk) {
            size_t n = total - off < chunk ? total - off : chunk;
            ck_assert_int_eq(line_splitter_feed(&sp, text + off, n, collect, &s), LINE_SPLITTER_OK);
        }
        ck_assert_int_eq(line_splitter_finish(&sp, collect, &s), LINE_SPLITTER_OK);
        ck_assert_int_eq(s.n, 2);
        ck_assert_str_eq(s.lines[0], "{\"type\":\"ADDED\",\"object\":{}}");
        ck_assert_str_eq(s.lines[1], "{\"type\":\"DELETED\"}");
        seen_free(&s);
        line_splitter_free(&sp);
    }
}
END_TEST

START_TEST(many_lines_in_one_chunk) {
    char text[4096] = "";
    size_t off = 0;
    for (int i = 0; i < 40; i++)
        off += (size_t)snprintf(text + off, sizeof text - off, "line-%d\n", i);
    struct line_splitter sp;
    struct seen s = {0};
    line_splitter_init(&sp, 64);
    ck_assert_int_eq(line_splitter_feed(&sp, text, off, collect, &s), LINE_SPLITTER_OK);
    ck_assert_int_eq(s.n, 40);
    ck_assert_str_eq(s.lines[0], "line-0");
    ck_assert_str_eq(s.lines[39], "line-39");
    seen_free(&s);
    line_splitter_free(&sp);
}
END_TEST

START_TEST(empty_lines_skipped_and_tail_flushed) {
    struct line_splitter sp;
    struct seen s = {0};
    line_splitter_init(&sp, 64);
    ck_assert_int_eq(line_splitter_feed(&sp, "\n\na\n\nb", 6, collect, &s), LINE_SPLITTER_OK);
    ck_assert_int_eq(s.n, 1);
    ck_assert_int_eq(line_splitter_finish(&sp, collect, &s), LINE_SPLITTER_OK);
    ck_assert_int_eq(s.n, 2);
    ck_assert_str_eq(s.lines[1], "b");
    /* Nothing pending: finish delivers nothing more. */
    ck_assert_int_eq(line_splitter_finish(&sp, collect, &s), LINE_SPLITTER_OK);
    ck_assert_int_eq(s.n, 2);
    seen_free(&s);
    line_splitter_free(&sp);
}
END_TEST

START_TEST(five_mib_object_line) {
    size_t big = 5u << 20;
    char *obj = malloc(big + 2);
    ck_assert_ptr_nonnull(obj);
    for (size_t i = 0; i < big; i++) obj[i] = (char)('a' + i % 26);
    obj[big] = '\n';
    obj[big + 1] = 'x';   /* start of the next line */
    struct line_splitter sp;
    struct seen s = {0};
    line_splitter_init(&sp, 8u << 20);
    /* Fed in 16 KiB reads, as libcurl delivers them. */
    for (size_t off = 0; off < big + 2; off += 16384) {
        size_t n = big + 2 - off < 16384 ? big + 2 - off : 16384;
        ck_assert_int_eq(line_splitter_feed(&sp, obj + off, n, collect, &s), LINE_SPLITTER_OK);
    }
    ck_assert_int_eq(s.n, 1);
    ck_assert_uint_eq(s.lens[0], big);
    ck_assert_int_eq(memcmp(s.lines[0], obj, big), 0);
    ck_assert_uint_eq(sp.len, 1);
    seen_free(&s);
    line_splitter_free(&sp);
    free(obj);
}
END_TEST

START_TEST(line_over_max_is_an_error) {
    struct line_splitter sp;
    struct seen s = {0};
    line_splitter_init(&sp, 10);
    /* Exactly max_line is fine... */
    ck_assert_int_eq(line_splitter_feed(&sp, "0123456789\n", 11, collect, &s), LINE_SPLITTER_OK);
    ck_assert_int_eq(s.n, 1);
    /* ...one more byte, even split over two feeds without a newline, is not. */
    ck_assert_int_eq(line_splitter_feed(&sp, "012345", 6, collect, &s), LINE_SPLITTER_OK);
    ck_assert_int_eq(line_splitter_feed(&sp, "67890", 5, collect, &s), LINE_SPLITTER_TOO_LONG);
    ck_assert_int_eq(s.n, 1);
    ck_assert_uint_le(sp.cap, 11);   /* never buffered more than max_line + NUL */
    seen_free(&s);
    line_splitter_free(&sp);
}
END_TEST

START_TEST(callback_stops_the_stream) {
    struct line_splitter sp;
    struct seen s = {.stop_after = 2};
    line_splitter_init(&sp, 64);
    ck_assert_int_eq(line_splitter_feed(&sp, "a\nb\nc\n", 6, collect, &s), LINE_SPLITTER_STOPPED);
    ck_assert_int_eq(s.n, 2);
    seen_free(&s);
    line_splitter_free(&sp);
}
END_TEST

int main(void) {
    Suite *su = suite_create("line_splitter");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, partial_lines_across_chunks);
    tcase_add_test(tc, many_lines_in_one_chunk);
    tcase_add_test(tc, empty_lines_skipped_and_tail_flushed);
    tcase_add_test(tc, five_mib_object_line);
    tcase_add_test(tc, line_over_max_is_an_error);
    tcase_add_test(tc, callback_stops_the_stream);
    suite_add_tcase(su, tc);
    return check_run(su, CK_FORK_GETENV);
}
