/* reel/pieces.h: subword vocabularies, SentencePiece (Kudo and Richardson 2018; Debian's
 * libsentencepiece) behind a small C API. The one C++ file of reel, src/prep/pieces.cpp, implements it.
 *
 * A piece model is trained from texts (BPE or unigram pieces) and kept as SentencePiece's serialized
 * model (bytes), which reel stores beside a vocabulary (prep output, checkpoints) and loads again.
 * Its ids are reel's token ids: 0 <pad>, 1 <unk>, 2 <eod> (reel/vocab.h's reserved ids), then the
 * pieces. Byte fallback is on, so every text encodes with no <unk>: a character the pieces lack is
 * spelled as its UTF-8 bytes (pieces "<0x00>" .. "<0xFF>").
 * No normalisation happens inside: the texts given are the normalised ones (reel normalises before, as
 * reel/tokenizer.h's stage 1 does), runs of spaces are kept, and decode(encode(text)) == text exactly
 * for any valid UTF-8 text. */
#ifndef REEL_PIECES_H
#define REEL_PIECES_H

#include <stddef.h>
#include <stdint.h>

#include "reel/check.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { REEL_PIECES_UNIGRAM = 0, REEL_PIECES_BPE = 1 } reel_pieces_kind;

typedef struct reel_pieces_options {
    reel_pieces_kind kind;
    size_t vocab_size;  /* pieces, the 3 reserved ids included */
    size_t threads;     /* SentencePiece's trainer threads */
    uint64_t seed;      /* its sampling of the training texts (it draws sentences when there are many) */
    size_t max_texts;   /* at most this many texts used for training (SentencePiece's input_sentence_size;
                           0: all) */
} reel_pieces_options;

/* The next training text: sets *text and *length and returns 1, or returns 0 at the end. */
typedef int (*reel_pieces_next_text)(void *ctx, const char **text, size_t *length);

/* Trains a piece model on the texts next() gives; *model (malloc'd, the caller frees it) and *model_bytes
 * receive the serialized model. Texts longer than 64 KiB are cut for training only. */
int reel_pieces_train(char **model, size_t *model_bytes, reel_pieces_next_text next, void *ctx,
                      const reel_pieces_options *options, reel_error *err);

typedef struct reel_pieces reel_pieces;

/* Loads a serialized model; err names what is wrong with it. */
int reel_pieces_load(reel_pieces **out, const char *model, size_t model_bytes, reel_error *err);
void reel_pieces_free(reel_pieces *pieces);

/* Ids in the model (the vocabulary's size). */
size_t reel_pieces_count(const reel_pieces *pieces);
/* The spelling of piece id (SentencePiece's: U+2581 "▁" for a space), NUL-terminated, valid while the
 * model is loaded. */
const char *reel_pieces_spelling(const reel_pieces *pieces, size_t id);

/* The ids of text[0..length) in *ids (grown as needed, *capacity its size in ids); returns their number,
 * or (size_t)-1 with err set (invalid UTF-8 is replaced by SentencePiece, so only a broken model fails). */
size_t reel_pieces_encode(const reel_pieces *pieces, const char *text, size_t length, uint32_t **ids,
                          size_t *capacity, reel_error *err);

/* The text of ids[0..count) appended to *text (malloc'd, grown as needed; *length its bytes, *capacity
 * its size; NUL-terminated). Returns 0, or -1 with err set for an id past the model. */
int reel_pieces_decode(const reel_pieces *pieces, const uint32_t *ids, size_t count, char **text, size_t *length,
                       size_t *capacity, reel_error *err);

#ifdef __cplusplus
}
#endif

#endif
