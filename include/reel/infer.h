/* reel/infer.h: a trained model applied to documents outside training: raw text turned into the model's
 * ids exactly as `reel prep` does it, class probabilities from a classifier, and the likelihood of a
 * text under a language model. `reel predict`, `reel serve` and `reel analyze` are built on it.
 *
 * Documents run in batches of similar length (sorted by length, at most max_batch rows and
 * REEL_EVAL_STEP_BUDGET time steps per forward), so a list of short and long texts wastes little on
 * padding; results come back in the caller's order and do not depend on the batching (a model's
 * outputs for a document do not depend on the other documents of its batch in evaluation mode).
 * One predictor must not be used by two threads at once (the model holds its activations).
 */
#ifndef REEL_INFER_H
#define REEL_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "reel/check.h"
#include "reel/model.h"
#include "reel/tokenizer.h"
#include "reel/vocab.h"

/* ---- text -> ids ---- */

typedef struct reel_text_encoder {
    reel_tokenizer tokenizer;
    reel_vocab_index index;
    size_t vocab_limit; /* ids >= vocab_limit (rarer than the model's vocabulary) become <unk> */
    int reverse;        /* the model reads documents last token first ([data] reverse); init sets 0 */
} reel_text_encoder;

void reel_text_encoder_init(reel_text_encoder *enc, const reel_vocab *vocab, size_t vocab_limit);
void reel_text_encoder_free(reel_text_encoder *enc);

/* The ids of text[0..length): tokenized as `reel prep` tokenizes (reel/tokenizer.h; for a vocabulary of
 * pieces, its normalised text encoded by the vocabulary's piece model, reel/pieces.h), words outside the
 * model's vocabulary as <unk>, cut to the first max_tokens (0: all); with enc->reverse, the tokens last
 * to first, so the cut keeps the text's last max_tokens, as training read them. They are written to *ids (grown
 * as needed; *capacity is its size in ids) and their number returned; *unknown (if not NULL) receives
 * how many became <unk>, *tokens_in_text (if not NULL) how many tokens the whole text has. */
size_t reel_text_encode(reel_text_encoder *enc, const char *text, size_t length, size_t max_tokens, uint32_t **ids,
                        size_t *capacity, size_t *unknown, size_t *tokens_in_text);

/* ---- running a model ---- */

typedef struct reel_document {
    const uint32_t *ids; /* ids >= the model's vocabulary size are read as <unk> */
    size_t length;
} reel_document;

typedef struct reel_predictor reel_predictor;

/* A predictor for model (weights loaded), with at most max_batch documents per forward (the model must
 * have been built for that many rows). */
int reel_predictor_create(reel_predictor **out, reel_model *model, size_t max_batch, reel_error *err);
void reel_predictor_free(reel_predictor *p);

/* The number of classes of a classifier's outputs: 2 for a model with one logit, else its logits. */
size_t reel_predictor_classes(const reel_predictor *p);

/* Classifiers: probs (n, C), C = reel_predictor_classes: document i's probability of each class (a
 * sigmoid for one logit, giving [1 - p, p]; a softmax otherwise). An empty document (no token) gets NaN
 * probabilities: a model never saw one in training (prep drops empty documents). */
void reel_predict_classes(reel_predictor *p, const reel_document *docs, size_t n, float *probs);

/* Language models: each document read from the start of a document, <eod> d1 .. dn, predicting
 * d1 .. dn <eod> (how the model was trained): nll[i] receives the summed negative log-likelihood in
 * nats and tokens[i] = n + 1 the predictions, so exp(nll / tokens) is the document's perplexity. */
void reel_score_documents(reel_predictor *p, const reel_document *docs, size_t n, double *nll, size_t *tokens);

#endif
