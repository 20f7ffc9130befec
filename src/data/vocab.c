/* vocab.txt reading and writing; see include/reel/vocab.h for the format.
 *
 * Loading is strict: besides the line syntax it checks the reserved entries, the frequency order and
 * duplicates, because a model trained with one vocabulary and fed ids from a subtly different one
 * produces no error, only wrong results. */
#include "reel/vocab.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "reel/util.h"

static const char *const reserved_spelling[REEL_VOCAB_RESERVED] = {"<pad>", "<unk>", "<eod>"};

uint64_t reel_vocab_checksum(char *const *tokens, size_t size) {
    XXH64_state_t *state = XXH64_createState();
    REEL_CHECK(state != NULL, NULL, "out of memory creating an XXH64 state");
    XXH64_reset(state, 0);
    for (size_t i = 0; i < size; i++) {
        XXH64_update(state, tokens[i], strlen(tokens[i]));
        XXH64_update(state, "\n", 1);
    }
    uint64_t digest = XXH64_digest(state);
    XXH64_freeState(state);
    return digest;
}

void reel_vocab_free(reel_vocab *vocab) {
    if (!vocab) return;
    if (vocab->tokens)
        for (size_t i = 0; i < vocab->size; i++) free(vocab->tokens[i]);
    free(vocab->tokens);
    free(vocab->counts);
    memset(vocab, 0, sizeof *vocab);
}

/* Open-addressing set of token indices, used only to find duplicates while loading. */
typedef struct {
    size_t *slots; /* index + 1; 0 is empty */
    size_t mask;
} token_set;

static size_t token_set_insert(token_set *set, char **tokens, size_t index) {
    const char *tok = tokens[index];
    size_t len = strlen(tok);
    size_t h = (size_t)XXH3_64bits(tok, len) & set->mask;
    while (set->slots[h]) {
        size_t other = set->slots[h] - 1;
        if (strcmp(tokens[other], tok) == 0) return other;
        h = (h + 1) & set->mask;
    }
    set->slots[h] = index + 1;
    return index;
}

static int parse_count(const char *s, size_t n, uint64_t *out) {
    if (n == 0 || n > 20) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

static int load_text(reel_vocab *vocab, char *text, size_t length, const char *path, reel_error *err) {
    size_t lines = 0;
    for (size_t i = 0; i < length; i++) lines += text[i] == '\n';
    if (length > 0 && text[length - 1] != '\n') lines++;
    vocab->tokens = reel_calloc(lines ? lines : 1, sizeof *vocab->tokens);
    vocab->counts = reel_calloc(lines ? lines : 1, sizeof *vocab->counts);
    vocab->size = 0;

    size_t pos = 0;
    while (pos < length) {
        size_t line_no = vocab->size + 1;
        char *line = text + pos;
        char *nl = memchr(line, '\n', length - pos);
        size_t line_len = nl ? (size_t)(nl - line) : length - pos;
        pos += line_len + (nl ? 1 : 0);
        char *tab = memchr(line, '\t', line_len);
        char shown[REEL_QUOTE_MAX], other[REEL_QUOTE_MAX]; /* file text as messages quote it, escaped */
        if (!tab)
            return reel_fail(err, "%s: line %zu: expected <token> TAB <count>, found no TAB in '%s'", path, line_no,
                             reel_escape_bytes(shown, sizeof shown, line, line_len > 40 ? 40 : line_len));
        size_t tok_len = (size_t)(tab - line);
        if (tok_len == 0) return reel_fail(err, "%s: line %zu: empty token before the TAB", path, line_no);
        if (memchr(line, '\0', line_len) || memchr(line, '\r', line_len))
            return reel_fail(err, "%s: line %zu: contains a NUL or CR byte, expected <token> TAB <count> LF", path,
                             line_no);
        size_t invalid_at = reel_utf8_invalid_at(line, tok_len, NULL);
        if (invalid_at != tok_len)
            return reel_fail(err, "%s: line %zu: token is not valid UTF-8 (byte %zu of the line)", path, line_no,
                             invalid_at + 1);
        const char *count_text = tab + 1;
        size_t count_len = line_len - tok_len - 1;
        uint64_t count;
        if (!parse_count(count_text, count_len, &count))
            return reel_fail(err, "%s: line %zu: count '%s' is not a decimal number in [0, 2^64)", path, line_no,
                             reel_escape_bytes(shown, sizeof shown, count_text, count_len > 40 ? 40 : count_len));
        char *tok = reel_malloc(tok_len + 1);
        memcpy(tok, line, tok_len);
        tok[tok_len] = '\0';
        size_t id = vocab->size++;
        vocab->tokens[id] = tok;
        vocab->counts[id] = count;

        if (id < REEL_VOCAB_RESERVED) {
            if (strcmp(tok, reserved_spelling[id]) != 0)
                return reel_fail(err, "%s: line %zu: reserved id %zu must be '%s', found '%s'", path, line_no, id,
                                 reserved_spelling[id], reel_escape_string(shown, sizeof shown, tok));
        } else if (id > REEL_VOCAB_RESERVED) {
            uint64_t prev = vocab->counts[id - 1];
            if (count > prev || (count == prev && strcmp(vocab->tokens[id - 1], tok) >= 0))
                return reel_fail(err,
                                 "%s: line %zu: '%s' (count %" PRIu64 ") is out of order after '%s' (count %" PRIu64
                                 "); expected decreasing counts, ties in byte order",
                                 path, line_no, reel_escape_string(shown, sizeof shown, tok), count,
                                 reel_escape_string(other, sizeof other, vocab->tokens[id - 1]), prev);
        }
    }
    if (vocab->size < REEL_VOCAB_RESERVED)
        return reel_fail(err, "%s: line %zu: file ends after %zu lines, expected at least the %d reserved entries "
                              "<pad>, <unk>, <eod>",
                         path, vocab->size + 1, vocab->size, REEL_VOCAB_RESERVED);

    token_set set;
    size_t slots = 16;
    while (slots < 2 * vocab->size) slots *= 2;
    set.slots = reel_calloc(slots, sizeof *set.slots);
    set.mask = slots - 1;
    for (size_t i = 0; i < vocab->size; i++) {
        size_t first = token_set_insert(&set, vocab->tokens, i);
        if (first != i) {
            free(set.slots);
            char shown[REEL_QUOTE_MAX]; /* the token as messages quote it, escaped */
            return reel_fail(err, "%s: line %zu: token '%s' already appears on line %zu", path, i + 1,
                             reel_escape_string(shown, sizeof shown, vocab->tokens[i]), first + 1);
        }
    }
    free(set.slots);
    vocab->checksum = reel_vocab_checksum(vocab->tokens, vocab->size);
    return 0;
}

int reel_vocab_load(reel_vocab *vocab, const char *path, reel_error *err) {
    memset(vocab, 0, sizeof *vocab);
    FILE *fp = fopen(path, "rb");
    if (!fp) return reel_fail(err, "%s: cannot open vocabulary: %s", path, strerror(errno));
    reel_buf text = {0};
    char chunk[1 << 16];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, fp)) > 0) reel_buf_append(&text, chunk, got);
    int read_error = ferror(fp);
    fclose(fp);
    if (read_error) {
        reel_buf_free(&text);
        return reel_fail(err, "%s: read error while loading the vocabulary", path);
    }
    int rc = load_text(vocab, text.data ? text.data : "", text.length, path, err);
    reel_buf_free(&text);
    if (rc != 0) reel_vocab_free(vocab);
    return rc;
}

int reel_vocab_save(const reel_vocab *vocab, const char *path, reel_error *err) {
    reel_buf out = {0};
    for (size_t i = 0; i < vocab->size; i++) {
        const char *tok = vocab->tokens[i];
        if (tok[0] == '\0' || strpbrk(tok, "\t\n\r")) {
            reel_buf_free(&out);
            return reel_fail(err, "%s: token id %zu is empty or contains TAB/CR/LF and cannot be written", path, i);
        }
        reel_buf_printf(&out, "%s\t%" PRIu64 "\n", tok, vocab->counts[i]);
    }
    int rc = reel_write_file_atomic(path, out.data ? out.data : "", out.length, err);
    reel_buf_free(&out);
    return rc;
}

/* ---- token -> id ---- */

void reel_vocab_index_build(reel_vocab_index *index, const reel_vocab *vocab) {
    size_t slots = 16;
    while (slots < 2 * vocab->size) slots *= 2;
    index->vocab = vocab;
    index->mask = slots - 1;
    index->slots = reel_calloc(slots, sizeof *index->slots);
    for (size_t id = 0; id < vocab->size; id++) {
        size_t at = (size_t)XXH64(vocab->tokens[id], strlen(vocab->tokens[id]), 0) & index->mask;
        while (index->slots[at]) at = (at + 1) & index->mask;
        index->slots[at] = (uint32_t)id + 1;
    }
}

void reel_vocab_index_free(reel_vocab_index *index) {
    free(index->slots);
    memset(index, 0, sizeof *index);
}

int64_t reel_vocab_find(const reel_vocab_index *index, const char *token, size_t length) {
    size_t at = (size_t)XXH64(token, length, 0) & index->mask;
    for (; index->slots[at]; at = (at + 1) & index->mask) {
        const char *candidate = index->vocab->tokens[index->slots[at] - 1];
        if (strncmp(candidate, token, length) == 0 && candidate[length] == '\0') return (int64_t)index->slots[at] - 1;
    }
    return -1;
}
