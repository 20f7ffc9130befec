/* reel/vocab.h: the vocabulary written by `reel prep` as vocab.txt.
 *
 * vocab.txt is UTF-8 text with one entry per line; line i (counting from 0) is token id i:
 *     <token> TAB <count> LF
 * Ids 0..REEL_VOCAB_RESERVED-1 are reserved and always present, with these spellings (the tokenizer
 * can never produce them, since it splits '<' and '>' into tokens of their own):
 *     0 <pad>  padding, never a real token
 *     1 <unk>  any word outside the vocabulary; its count is the number of replaced tokens in the
 *              counted splits
 *     2 <eod>  end of document, appended by language-model readers (not stored in .tok files)
 * The other ids follow by decreasing count over the training text (labelled train + unsup), ties
 * broken by byte-wise ascending order of the token, so the file is deterministic.
 *
 * A model may use fewer ids than the file has: since ids are ordered by frequency, keeping the first
 * V ids and mapping the rest to <unk> is the same as building a smaller vocabulary.
 */
#ifndef REEL_VOCAB_H
#define REEL_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "reel/check.h"

enum { REEL_TOKEN_PAD = 0, REEL_TOKEN_UNK = 1, REEL_TOKEN_EOD = 2, REEL_VOCAB_RESERVED = 3 };

typedef struct reel_vocab {
    size_t size;       /* number of entries, reserved ones included */
    char **tokens;     /* tokens[id], NUL-terminated UTF-8 */
    uint64_t *counts;  /* counts[id] */
    uint64_t checksum; /* reel_vocab_checksum of the tokens */
} reel_vocab;

/* XXH64 (seed 0) over every token in id order, each followed by one LF byte. Counts are not part of it:
 * two vocabularies with the same tokens in the same order map text to the same ids. */
uint64_t reel_vocab_checksum(char *const *tokens, size_t size);

/* Loads vocab.txt; a malformed line is an error naming the file and the line. */
int reel_vocab_load(reel_vocab *vocab, const char *path, reel_error *err);
int reel_vocab_save(const reel_vocab *vocab, const char *path, reel_error *err);
void reel_vocab_free(reel_vocab *vocab);

/* Token -> id lookup over a loaded vocabulary (open addressing on XXH64), for turning text into ids
 * outside `reel prep` (a generation prime, a review to classify). */
typedef struct reel_vocab_index {
    const reel_vocab *vocab;
    uint32_t *slots; /* id + 1, 0 = empty */
    size_t mask;     /* slots - 1, a power of two minus one */
} reel_vocab_index;

void reel_vocab_index_build(reel_vocab_index *index, const reel_vocab *vocab);
void reel_vocab_index_free(reel_vocab_index *index);
/* The id of token[0..length), or -1 when the vocabulary does not hold it. */
int64_t reel_vocab_find(const reel_vocab_index *index, const char *token, size_t length);

#endif
