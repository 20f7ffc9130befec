/* Word vectors in text formats (reel/vectors.h). Decompression is libarchive's: its raw format with every
 * filter reads a plain file as it is and a compressed one decompressed. */
#include "reel/vectors.h"
#include "reel/util.h"

#include <archive.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lines of a (possibly compressed) text file. */
typedef struct line_reader {
    struct archive *ar;
    reel_buf pending; /* bytes read but not yet handed out */
    size_t start;     /* where the next line begins in pending */
    int eof;
    reel_buf line;
} line_reader;

static int reader_open(line_reader *r, const char *path, reel_error *err) {
    memset(r, 0, sizeof *r);
    r->ar = archive_read_new();
    archive_read_support_filter_all(r->ar);
    archive_read_support_format_raw(r->ar);
    struct archive_entry *entry;
    if (archive_read_open_filename(r->ar, path, (size_t)1 << 20) != ARCHIVE_OK ||
        archive_read_next_header(r->ar, &entry) != ARCHIVE_OK) {
        int saved = archive_errno(r->ar);
        reel_fail(err, "%s: cannot read the vectors: %s", path,
                  archive_error_string(r->ar) ? archive_error_string(r->ar) : strerror(saved));
        archive_read_free(r->ar);
        r->ar = NULL;
        return -1;
    }
    return 0;
}

/* The next line without its end (\n or \r\n) in r->line.data; 0 at the end, -1 on a read error. */
static int reader_next(line_reader *r, const char *path, reel_error *err) {
    for (;;) {
        char *begin = r->pending.data ? r->pending.data + r->start : NULL;
        char *newline = begin ? memchr(begin, '\n', r->pending.length - r->start) : NULL;
        if (newline || (r->eof && begin && r->start < r->pending.length)) {
            size_t n = newline ? (size_t)(newline - begin) : r->pending.length - r->start;
            r->line.length = 0;
            reel_buf_append(&r->line, begin, n);
            if (r->line.length && r->line.data[r->line.length - 1] == '\r') r->line.data[--r->line.length] = '\0';
            r->start += n + (newline != NULL);
            return 1;
        }
        if (r->eof) return 0;
        /* keep the unfinished line, read more after it */
        size_t left = r->pending.length - r->start;
        if (r->start) memmove(r->pending.data, r->pending.data + r->start, left);
        r->pending.length = left;
        r->start = 0;
        reel_buf_reserve(&r->pending, left + (1 << 20) + 1);
        la_ssize_t got = archive_read_data(r->ar, r->pending.data + left, r->pending.capacity - left - 1);
        if (got < 0) return reel_fail(err, "%s: read error: %s", path, archive_error_string(r->ar));
        if (got == 0) r->eof = 1;
        r->pending.length = left + (size_t)got;
        r->pending.data[r->pending.length] = '\0';
    }
}

static void reader_close(line_reader *r) {
    if (r->ar) archive_read_free(r->ar);
    reel_buf_free(&r->pending);
    reel_buf_free(&r->line);
}

/* Splits line at spaces (runs of spaces or tabs), in place; returns the field count (at most max). */
static size_t split_fields(char *line, char **fields, size_t max) {
    size_t n = 0;
    char *p = line;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        if (n < max) fields[n] = p;
        n++;
        while (*p && *p != ' ' && *p != '\t') p++;
        if (*p) *p++ = '\0';
    }
    return n;
}

static int parse_size_field(const char *text, size_t *value) {
    if (!isdigit((unsigned char)text[0])) return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end || errno) return -1;
    *value = (size_t)v;
    return 0;
}

enum { MAX_FIELDS = 65536 };

int reel_vectors_load(const char *path, const reel_vocab *vocab, size_t vocab_limit, float *weight, size_t E,
                      reel_vectors_report *report, reel_error *err) {
    memset(report, 0, sizeof *report);
    line_reader r;
    if (reader_open(&r, path, err) != 0) return -1;
    reel_vocab_index index;
    reel_vocab_index_build(&index, vocab);
    char **fields = reel_malloc(MAX_FIELDS * sizeof *fields);
    float *row = reel_malloc((E ? E : 1) * sizeof *row);
    /* values land here first: a bad line anywhere leaves the caller's weight untouched */
    float *staged = reel_malloc((vocab_limit ? vocab_limit : 1) * E * sizeof *staged + 1);
    uint8_t *seen = reel_calloc(vocab_limit ? vocab_limit : 1, 1);
    size_t line = 0, width = 0, declared = 0;
    int status = -1, has_header = 0, got;
    while ((got = reader_next(&r, path, err)) > 0) {
        line++;
        size_t n = split_fields(r.line.data, fields, MAX_FIELDS);
        if (n == 0) continue; /* a blank line */
        if (n > MAX_FIELDS) {
            reel_fail(err, "%s:%zu: %zu fields, more than %d", path, line, n, MAX_FIELDS);
            goto done;
        }
        if (line == 1 && n == 2 && parse_size_field(fields[0], &declared) == 0 && parse_size_field(fields[1], &width) == 0) {
            has_header = 1; /* word2vec / fastText: "<words> <width>" */
            if (width == 0) {
                reel_fail(err, "%s:1: the header says the vectors have width 0", path);
                goto done;
            }
            continue;
        }
        if (width == 0) width = n - 1; /* GloVe: the first vector sets the width */
        if (width == 0 || n < width + 1) {
            reel_fail(err, "%s:%zu: %zu fields: expected a word and %zu values%s", path, line, n, width ? width : 1,
                      has_header ? " (the header's width)" : " (the width of the first vector)");
            goto done;
        }
        if (width != E) {
            reel_fail(err, "%s:%zu: the vectors have %zu values, but [model] embed_dim = %zu", path, line, width, E);
            goto done;
        }
        for (size_t d = 0; d < width; d++) {
            const char *text = fields[n - width + d];
            char *end;
            errno = 0;
            float v = strtof(text, &end);
            if (*end || end == text || errno == ERANGE || !isfinite(v)) {
                char shown[REEL_QUOTE_MAX]; /* escaped: a binary file must not print raw bytes */
                reel_fail(err, "%s:%zu: value %zu, '%s', is not a finite number", path, line, d + 1,
                          reel_escape_string(shown, sizeof shown, text));
                goto done;
            }
            row[d] = v;
        }
        report->lines++;
        /* the word: the fields before the values, joined again by single spaces */
        for (size_t k = 1; k < n - width; k++) fields[k][-1] = ' ';
        int64_t id = reel_vocab_find(&index, fields[0], strlen(fields[0]));
        if (id < REEL_VOCAB_RESERVED || (size_t)id >= vocab_limit || seen[id]) continue; /* the first vector of a word wins */
        seen[id] = 1;
        memcpy(staged + (size_t)id * E, row, E * sizeof *row);
        report->matched++;
    }
    if (got < 0) goto done;
    if (has_header && declared != report->lines) {
        reel_fail(err, "%s: the header announces %zu vectors, the file holds %zu", path, declared, report->lines);
        goto done;
    }
    report->width = width;
    report->candidates = vocab_limit > REEL_VOCAB_RESERVED ? vocab_limit - REEL_VOCAB_RESERVED : 0;
    if (report->matched == 0) {
        reel_fail(err, "%s: none of its %zu words is in the vocabulary (of %zu words): is it a file of this language and "
                  "tokenization?", path, report->lines, report->candidates);
        goto done;
    }
    for (size_t id = 0; id < vocab_limit; id++)
        if (seen[id]) memcpy(weight + id * E, staged + id * E, E * sizeof *weight);
    status = 0;
done:
    free(seen);
    free(staged);
    free(row);
    free(fields);
    reel_vocab_index_free(&index);
    reader_close(&r);
    return status;
}

int reel_vectors_save(const char *path, const reel_vocab *vocab, const float *weight, size_t rows, size_t E,
                      reel_error *err) {
    if (rows > vocab->size) return reel_fail(err, "%s: %zu rows, but the vocabulary has %zu words", path, rows, vocab->size);
    reel_buf text = {0};
    reel_buf_printf(&text, "%zu %zu\n", rows, E);
    for (size_t i = 0; i < rows; i++) {
        reel_buf_append(&text, vocab->tokens[i], strlen(vocab->tokens[i]));
        for (size_t e = 0; e < E; e++) reel_buf_printf(&text, " %.9g", (double)weight[i * E + e]);
        reel_buf_append(&text, "\n", 1);
    }
    int status = reel_write_file_atomic(path, text.data, text.length, err);
    reel_buf_free(&text);
    return status;
}
