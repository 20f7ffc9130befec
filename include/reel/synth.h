/* reel/synth.h: a synthetic labelled corpus (`reel synth`), the default data of the quick start.
 *
 * Each review is 30 to 200 words in sentences of 5 to 14 words: neutral words (common English function
 * words and about 300 invented two-syllable words such as "berve" and "momsti") and, with probability 0.12 per word,
 * one of 60 positive or 60 negative words, each with its own strength between 0.5 and 2.0. The neutral
 * words have structure a language model can learn: every neutral word has 4 usual successors (fixed
 * for the whole corpus), and the next neutral word is one of the previous one's with probability 0.8,
 * otherwise a fresh one (a function word with probability 0.4, else an invented word). A review
 * leans one way (chosen with probability 1/2); its sentiment words agree with the lean with probability
 * 0.7. A sentiment word is preceded by "not" with probability 0.05, which flips its polarity.
 *
 * The label is pos when score + noise > 0 and neg otherwise, where score is the sum of signed
 * strengths (flipped by negation) and noise is Gaussian with standard deviation REEL_SYNTH_NOISE. With
 * these settings a model that knew every strength and the negations would score about 95% (the noise
 * decides the rest); a bag of words, blind to which word "not" negates, about 92% (logistic regression
 * on word counts reaches 91.7% on 5000 test reviews after training on 20000). So a working model is
 * clearly visible, and 100% would reveal a bug such as leaked labels.
 *
 * Short texts (REEL_SYNTH_SHORT, `reel synth --short`): the same language in 2 to 55 words (log-normal,
 * median 7; about 10 tokens on average, 3 to 60 with punctuation) with sentiment words twice as often
 * (0.24 per word), like tweets or one-line reviews: the workload of packed sequences (bench/short.sh).
 *
 * Determinism: document i of a stream depends only on (seed, stream, i) through Philox4x32-10 keyed
 * by the seed, so asking for more documents never changes the earlier ones, and train (stream 0) and
 * test (stream 1) documents are independent draws.
 */
#ifndef REEL_SYNTH_H
#define REEL_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "reel/check.h"

#define REEL_SYNTH_NOISE 1.25

enum { REEL_SYNTH_TRAIN = 0, REEL_SYNTH_TEST = 1 };
typedef enum reel_synth_kind { REEL_SYNTH_REVIEWS = 0, REEL_SYNTH_SHORT = 1 } reel_synth_kind;

typedef struct reel_synth_doc {
    char *text; /* NUL-terminated, no TAB or LF; buffer reused between calls */
    size_t length;
    size_t capacity;
    int label;    /* 0 neg, 1 pos */
    double score; /* signed sentiment before noise: the best a model can know */
} reel_synth_doc;

/* Generates document `index` of `stream` into doc (zero-initialise doc before the first call). */
void reel_synth_generate(uint64_t seed, uint32_t stream, uint64_t index, reel_synth_kind kind, reel_synth_doc *doc);
void reel_synth_doc_free(reel_synth_doc *doc);

/* Writes documents 0..docs-1 of stream as TSV with the header "label<TAB>text" and labels neg/pos,
 * through a temporary file renamed into place. *positive (if not NULL) receives the number of pos rows. */
int reel_synth_write_tsv(const char *path, uint64_t seed, uint32_t stream, reel_synth_kind kind, uint64_t docs,
                         uint64_t *positive, reel_error *err);

#endif
