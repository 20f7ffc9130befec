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

#include "reel/pieces.h"
#include "reel/util.h"

static const char *const reserved_spelling[REEL_VOCAB_RESERVED] = {"<pad>", "<unk>", "<eod>"};

uint64_t reel_vocab_checksum_pieces(char *const *tokens, size_t size, const char *pieces, size_t pieces_bytes) {
    XXH64_state_t *state = XXH64_createState();
    REEL_CHECK(state != NULL, NULL, "out of memory creating an XXH64 state");
    XXH64_reset(state, 0);
    for (size_t i = 0; i < size; i++) {
        XXH64_update(state, tokens[i], strlen(tokens[i]));
        XXH64_update(state, "\n", 1);
    }
    if (pieces) XXH64_update(state, pieces, pieces_bytes);
    uint64_t digest = XXH64_digest(state);
    XXH64_freeState(state);
    return digest;
}

uint64_t reel_vocab_checksum(char *const *tokens, size_t size) {
    return reel_vocab_checksum_pieces(tokens, size, NULL, 0);
}

const char *reel_vocab_tokenizer(const reel_vocab *vocab) { return vocab->pieces ? "sentencepiece" : "word"; }

int reel_vocab_attach_pieces(reel_vocab *vocab, const char *pieces, size_t pieces_bytes, const char *vocab_name,
                             const char *model_name, reel_error *err) {
    reel_pieces *processor = NULL;
    reel_error why = {{0}};
    if (reel_pieces_load(&processor, pieces, pieces_bytes, &why) != 0)
        return reel_fail(err, "%s: %s", model_name, why.message);
    size_t n = reel_pieces_count(processor);
    if (n != vocab->size) {
        reel_pieces_free(processor);
        return reel_fail(err, "%s holds %zu pieces, %s %zu entries: they come from different prep runs", model_name, n,
                         vocab_name, vocab->size);
    }
    for (size_t id = 0; id < n; id++)
        if (strcmp(reel_pieces_spelling(processor, id), vocab->tokens[id]) != 0) {
            char a[REEL_QUOTE_MAX], b[REEL_QUOTE_MAX];
            reel_fail(err, "piece id %zu is '%s' in %s but '%s' in %s: they come from different prep runs", id,
                      reel_escape_string(a, sizeof a, reel_pieces_spelling(processor, id)), model_name,
                      reel_escape_string(b, sizeof b, vocab->tokens[id]), vocab_name);
            reel_pieces_free(processor);
            return -1;
        }
    free(vocab->pieces);
    if (vocab->processor) reel_pieces_free(vocab->processor);
    vocab->pieces = reel_malloc(pieces_bytes ? pieces_bytes : 1);
    memcpy(vocab->pieces, pieces, pieces_bytes);
    vocab->pieces_bytes = pieces_bytes;
    vocab->processor = processor;
    vocab->checksum = reel_vocab_checksum_pieces(vocab->tokens, vocab->size, pieces, pieces_bytes);
    return 0;
}

void reel_vocab_free(reel_vocab *vocab) {
    if (!vocab) return;
    if (vocab->tokens)
        for (size_t i = 0; i < vocab->size; i++) free(vocab->tokens[i]);
    free(vocab->tokens);
    free(vocab->counts);
    free(vocab->pieces);
    if (vocab->processor) reel_pieces_free(vocab->processor);
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

/* Line 4 (id 3) of a vocabulary of pieces is the first byte piece; the word tokenizer never writes it. */
static int is_pieces_text(const char *text, size_t length) {
    const char *p = text;
    for (int line = 0; line < REEL_VOCAB_RESERVED; line++) {
        const char *nl = memchr(p, '\n', length - (size_t)(p - text));
        if (!nl) return 0;
        p = nl + 1;
    }
    size_t k = strlen(REEL_PIECES_FIRST_BYTE);
    return (size_t)(text + length - p) > k && memcmp(p, REEL_PIECES_FIRST_BYTE, k) == 0 && p[k] == '\t';
}

static int load_text(reel_vocab *vocab, char *text, size_t length, const char *path, reel_error *err) {
    int pieces = is_pieces_text(text, length); /* lines in the model's id order, not by count */
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
        } else if (id > REEL_VOCAB_RESERVED && !pieces) {
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
    if (rc == 0 && vocab->size > REEL_VOCAB_RESERVED && strcmp(vocab->tokens[REEL_VOCAB_RESERVED], REEL_PIECES_FIRST_BYTE) == 0) {
        /* a vocabulary of pieces is only usable with its model, read from beside it */
        const char *slash = strrchr(path, '/');
        reel_buf model_path = {0}, model = {0};
        if (slash) reel_buf_append(&model_path, path, (size_t)(slash - path + 1));
        reel_buf_printf(&model_path, "%s", REEL_PIECES_FILE);
        if (reel_read_file(&model, model_path.data, (size_t)1 << 30, 0, err) != 0) {
            reel_error why = *err;
            rc = reel_fail(err, "%s lists the pieces of a SentencePiece model, which must be beside it: %s", path,
                           why.message);
        } else {
            rc = reel_vocab_attach_pieces(vocab, model.data ? model.data : "", model.length, path, model_path.data, err);
        }
        reel_buf_free(&model_path);
        reel_buf_free(&model);
    }
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
