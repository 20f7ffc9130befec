/* reel/generate.h: text from a language model, one token at a time.
 *
 * A generator holds several samples side by side, each with its own decoding state (a recurrent state
 * or a Transformer's key/value cache, as the model declares): it reads a prime (the same for every
 * sample) through the model from the start of a document (<eod>), then steps: each step feeds every
 * sample its last token, one position with the state carried, and draws the next token from the
 * decoder's softmax. The step is the model's forward with a batch state buffer (reel/model.h), so what
 * serves here serves a web service too.
 *
 * Sampling: the logits are divided by the temperature (0: the greedy choice, the largest logit), then
 * only the top_k most likely tokens (0: all) and, among those, the smallest set whose probability
 * reaches top_p (1: all) remain; the draw uses Philox keyed by (seed, sample, position), so the same seed
 * gives the same text whatever the number of samples. <pad> and <unk> are never drawn.
 */
#ifndef REEL_GENERATE_H
#define REEL_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "reel/check.h"
#include "reel/model.h"
#include "reel/util.h"
#include "reel/vocab.h"

typedef struct reel_sampling {
    double temperature; /* >= 0 */
    size_t top_k;       /* 0: no limit */
    double top_p;       /* in (0, 1] */
    uint64_t seed;
} reel_sampling;

typedef struct reel_generator reel_generator;

/* A generator of `samples` texts from model, which must be a language model (per-token outputs); errors
 * say what the model is instead. It steps the way the model decodes (reel/model.h): carrying a recurrent
 * state or a key/value cache per sample, or, for a model that declares neither, reading each sample's
 * whole text again at every step. */
int reel_generator_create(reel_generator **out, reel_model *model, size_t samples, reel_error *err);
/* From now on (call it before the prime) read each sample's whole text (its last max_context tokens)
 * again at every step instead of carrying a state or cache: slower, and the reference that incremental
 * decoding is tested against. */
void reel_generator_recompute(reel_generator *g);
void reel_generator_free(reel_generator *g);
/* Whether a prime of prime_tokens tokens and `length` generated ones fit what the model reads: its
 * max_context, or `lowered` when that is smaller (0: no lowering; both 0: unbounded). 0, or -1 with err
 * saying how many tokens that is and which limit applied ("--max-context N" or "its max_context N"), the
 * prime and the length named as the caller's user wrote them (prime_name "--prime", length_name
 * "--length"). The one check reel generate and reel serve make before they generate. */
int reel_generator_fits(const reel_model *model, size_t lowered, size_t prime_tokens, const char *prime_name,
                        size_t length, const char *length_name, reel_error *err);
/* Starts every sample at the beginning of a document and reads ids[0..count) (the prime). A model of
 * bounded max_context reads only the last max_context tokens of <eod> and the prime (cut, not refused: the
 * latest tokens matter most to what follows; the commands refuse a prime and length past a limit first). */
void reel_generator_prime(reel_generator *g, const uint32_t *ids, size_t count);
/* Draws the next token of every sample into next[samples] (position = tokens generated so far, keys the
 * draw) and feeds it to the model, so the following call continues from it. */
void reel_generator_step(reel_generator *g, const reel_sampling *sampling, uint64_t position, uint32_t *next);
/* The sampling loop `reel generate` and `reel serve` share: after the prime, up to length steps; sample b's
 * tokens go to out[b * length ..] (out: (samples, length)) and their number to produced[b] (samples). With
 * stop_at_eod a sample ends at its first <eod>, which it keeps as its last token; otherwise every sample
 * gets length tokens. */
void reel_generator_run(reel_generator *g, const reel_sampling *sampling, size_t length, int stop_at_eod,
                        uint32_t *out, size_t *produced);
/* The logits the next step draws from: (samples, V), sample b's at b * V, valid until the next prime or
 * step (tests compare incremental decoding with recomputation through them). */
const float *reel_generator_logits(const reel_generator *g);

/* The token drawn from logits (K) under sampling, for sample `sample` at `position`; never an id in
 * [0, REEL_VOCAB_RESERVED) other than <eod>. logits is overwritten. */
uint32_t reel_sample_logits(float *logits, size_t K, const reel_sampling *sampling, uint64_t sample, uint64_t position);

/* Appends tokens to out as readable text: words joined by spaces, none before closing punctuation and
 * clitics ("do n't" -> "don't", "film 's" -> "film's") or after an opening bracket; <eod> stays
 * visible as "<eod>", the end of one document and the start of the next. A vocabulary of pieces is
 * decoded by its piece model into the text it stands for (reel/pieces.h: U+2581 is a space; the first
 * piece's space, SentencePiece's word-start mark, is dropped), reserved ids spelt out between spaces. */
void reel_detokenize(reel_buf *out, const reel_vocab *vocab, const uint32_t *ids, size_t count);
/* The text of ids written after prime (its continuation) appended to out: for words what
 * reel_detokenize gives for ids; for pieces the text they add after the prime's (a leading space kept). */
void reel_detokenize_after(reel_buf *out, const reel_vocab *vocab, const uint32_t *prime, size_t prime_count,
                           const uint32_t *ids, size_t count);

#endif
