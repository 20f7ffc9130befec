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
 *
 * A vocabulary of pieces (`reel prep --tokenizer sentencepiece`, reel/pieces.h) has the same file format
 * and reserved ids, but line i is piece id i of the piece model written beside it as pieces.model (the
 * SentencePiece model, serialized), its count the times the piece occurs in the encoded training text
 * (train, valid and unsup); the lines are in the model's id order, not by count, and ids 3..258 are the
 * byte pieces <0x00> .. <0xFF>, which the word tokenizer can never produce: a vocab.txt whose id 3 is
 * <0x00> is one of pieces, and loading it requires pieces.model in the same directory with exactly these
 * spellings in this order. Such a vocabulary cannot be cut to its first V ids (a text needs all of them).
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
    uint64_t checksum; /* reel_vocab_checksum of the tokens (and of the piece model, for pieces) */
    /* A vocabulary of pieces: the serialized piece model (pieces.model; NULL for words) and the model
     * loaded from it. */
    char *pieces;
    size_t pieces_bytes;
    struct reel_pieces *processor;
} reel_vocab;

/* The spelling reel_vocab_load takes as the mark of a vocabulary of pieces: id 3's, the first byte piece. */
#define REEL_PIECES_FIRST_BYTE "<0x00>"
/* The piece model's file name beside vocab.txt. */
#define REEL_PIECES_FILE "pieces.model"

/* "word" or "sentencepiece": the tokenizer that made the vocabulary. */
const char *reel_vocab_tokenizer(const reel_vocab *vocab);

/* XXH64 (seed 0) over every token in id order, each followed by one LF byte. Counts are not part of it:
 * two vocabularies with the same tokens in the same order map text to the same ids. */
uint64_t reel_vocab_checksum(char *const *tokens, size_t size);
/* A vocabulary of pieces: the same XXH64 state continued over the piece model's bytes, so two piece
 * models with the same spellings but other scores (which encode texts differently) differ too. */
uint64_t reel_vocab_checksum_pieces(char *const *tokens, size_t size, const char *pieces, size_t pieces_bytes);

/* Makes vocab one of pieces: takes a copy of the serialized model, loads it, checks that its spellings
 * are vocab's tokens in order (err names model_name, vocab_name and the first id that differs) and sets
 * the checksum. */
int reel_vocab_attach_pieces(reel_vocab *vocab, const char *pieces, size_t pieces_bytes, const char *vocab_name,
                             const char *model_name, reel_error *err);

/* Loads vocab.txt; a malformed line is an error naming the file and the line. A vocabulary of pieces
 * also loads pieces.model from the same directory (an error naming it when it is missing or does not
 * match). */
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
