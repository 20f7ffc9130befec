/* reel/rng.h: counter-based random numbers (Philox4x32-10, from Random123).
 *
 * A draw depends only on (seed, purpose, a, b, c), never on how many draws came before, so a dropout mask
 * for sample 1234 in epoch 3 is the same on 1 rank or 8, after a resume, and in any order of evaluation.
 * Key = the 64-bit seed; counter = (purpose, a, b, c), four 32-bit words.
 */
#ifndef REEL_RNG_H
#define REEL_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef enum reel_rng_purpose {
    REEL_RNG_INIT = 1,    /* a = tensor index, b = block of 4 elements (low word), c = (high word) */
    REEL_RNG_SHUFFLE = 2, /* a = epoch, b = position (low word), c = (high word) */
    REEL_RNG_DROPOUT = 3, /* a = epoch, b = sample index, c = (layer << 24) | block of 4 units */
    REEL_RNG_SPLIT = 4,   /* data preparation splits: a = split id, b = position */
    REEL_RNG_SYNTH = 5,   /* synthetic corpus: a = document, b, c = draw block */
    REEL_RNG_WORD_DROPOUT = 6, /* a = epoch, b = sample index, c = token position / 4 */
    REEL_RNG_WINDOW = 7,  /* training windows: a = epoch, b = sample index (low word), c = (high word) */
    REEL_RNG_VOCAB_DROPOUT = 8,  /* whole words dropped for a batch: a = epoch, b = step, c = token / 4 */
    REEL_RNG_WEIGHT_DROPOUT = 9, /* DropConnect masks: a = epoch, b = step, c = (stream << 24) | block of 4 */
    REEL_RNG_SAMPLED = 10,       /* sampled-softmax candidates: a = epoch, b = step, c = draw block */
    REEL_RNG_GENERATE = 11,      /* generation: a = sample, b = position, c = 0 */
    REEL_RNG_OVERSAMPLE = 12,    /* oversampling a class: a = epoch, b = class, c = position */
    REEL_RNG_BUCKETS = 13,       /* length buckets: a = epoch, b = 2 pool or 2 batch + 1, c = position */
    REEL_RNG_TOKEN_DROPOUT = 14, /* per-token dropout (Transformers): a = epoch, b = sample index,
                                    c = (site << 24) | block of 4 units counted over the positions */
    REEL_RNG_NGRAM_DROPOUT = 15, /* the bag of words' n-grams: a = epoch, b = sample index,
                                    c = (n << 24) | block of 4 n-grams counted over their start positions */
    REEL_RNG_ATTENTION_DROPOUT = 18, /* attention weights (reel/attention.h): this word | layer << 8,
                                        a = epoch, b = sample index, c = (head W + query) ceil(W / 4) + key / 4 */
    REEL_RNG_VAT = 16,           /* virtual adversarial training's random start: a = epoch, b = sample index,
                                    c = block of 4 values counted over the document's (tokens, E) embeddings */
    REEL_RNG_VAT_ORDER = 17,     /* its unlabelled documents' order: a = epoch, b = 0, then the position */
} reel_rng_purpose;

/* Four independent 32-bit words for counter (purpose, a, b, c) under seed. */
void reel_rng_block(uint32_t out[4], uint64_t seed, uint32_t purpose, uint32_t a, uint32_t b, uint32_t c);
/* A uniform float in [0, 1) from one 32-bit word (its top 24 bits). */
static inline float reel_rng_unit_float(uint32_t word) { return (float)(word >> 8) * (1.0f / 16777216.0f); }
/* A uniform integer in [0, n) from two words (multiply-high; bias below 2^-32 for n < 2^32). */
static inline uint64_t reel_rng_below(uint32_t hi, uint32_t lo, uint64_t n) {
    uint64_t word = ((uint64_t)hi << 32) | lo;
    return (uint64_t)(((unsigned __int128)word * n) >> 64);
}

/* The epoch's order of n samples: a Fisher-Yates shuffle driven by (seed, REEL_RNG_SHUFFLE, epoch, i).
 * perm has n entries. Independent of the number of ranks. */
void reel_shuffle(uint64_t *perm, uint64_t n, uint64_t seed, uint64_t epoch);
/* Shuffles items (n < 2^32) in place: Fisher-Yates driven by (seed, purpose, a, b, i), for the orders
 * that need a stream of their own (a class's documents when oversampling, a pool of length buckets). */
void reel_shuffle_keyed(uint64_t *items, uint64_t n, uint64_t seed, uint32_t purpose, uint32_t a, uint32_t b);

#endif
