/* reel/vectors.h: word vectors in the text formats people have, in and out.
 *
 * Reading: GloVe's (one line per word: the word, then its D values, separated by spaces) and word2vec's
 * or fastText's .vec (the same, after a first line "<words> <D>"), plain or compressed (gzip, bzip2, xz:
 * libarchive's filters, recognised by content). The width D is the header's, or the first line's. A word
 * may itself hold spaces: the last D fields of a line are the values. Matched to a vocabulary by word.
 *
 * Writing: the .vec format (with its header), every value printed with 9 significant digits, which
 * reads back to the same float.
 */
#ifndef REEL_VECTORS_H
#define REEL_VECTORS_H

#include <stddef.h>
#include <stdint.h>

#include "reel/check.h"
#include "reel/util.h"
#include "reel/vocab.h"

typedef struct reel_vectors_report {
    size_t lines;      /* vectors in the file */
    size_t width;      /* D */
    size_t matched;    /* vocabulary words (of the first `vocab_limit` ids, reserved ids excepted) given a vector */
    size_t candidates; /* vocabulary words that could have been */
} reel_vectors_report;

/* Copies into weight (vocab_limit, E) the vector of every word of vocab (ids < vocab_limit) that path
 * holds; other rows are left as they are. Errors name the file and the line: a line that is not a word
 * and D numbers, a value that is not a finite number, a width other than E, a header that does not
 * match the lines, or no word of the vocabulary in the file. weight is untouched on error. */
int reel_vectors_load(const char *path, const reel_vocab *vocab, size_t vocab_limit, float *weight, size_t E,
                      reel_vectors_report *report, reel_error *err);

/* Writes weight (rows, E) as a .vec file: the header "<rows> <E>", then token i of vocab and row i;
 * through a temporary file renamed into place. Reserved ids (<pad>, <unk>, <eod>) are written too. */
int reel_vectors_save(const char *path, const reel_vocab *vocab, const float *weight, size_t rows, size_t E,
                      reel_error *err);

#endif
