/* reel/model.h: a model is a set of named tensors (one contiguous buffer) plus forward and backward
 * over a batch of sequences. Model types register themselves in src/models/registry.c by name.
 *
 * A model computes up to its output layer. Its outputs are of one of two kinds:
 *   per document (classifiers): logits (B, K), one row per document;
 *   per token (language models): one row per time step of the time-major (T, B) batch. The output layer,
 *     a linear map to the whole vocabulary, is left to the loss ("deferred"): the model hands over the
 *     features (N, D), the layer's weight (K, D) and bias (K), and the loss computes the logits a slice
 *     of rows at a time, fused with the softmax and its gradient, so no more than a slice of the
 *     (N, K) logits ever exists. The loss adds the weight's and bias's gradients itself and gives the
 *     model back the gradient of the features.
 */
#ifndef REEL_MODEL_H
#define REEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "reel/check.h"
#include "reel/comm.h"
#include "reel/config.h"
#include "reel/data.h"
#include "reel/params.h"

typedef enum { REEL_OUTPUT_DOCUMENT = 0, REEL_OUTPUT_TOKEN = 1 } reel_output_kind;

/* The order of a per-token output's rows: time-major (row t * B + b, what recurrent layers produce one
 * time step at a time) or batch-major (row b * T + t, what attention works on, a sequence at a time).
 * Whoever reads rows goes through reel_output_row, never the arithmetic. */
typedef enum { REEL_ROWS_TIME_MAJOR = 0, REEL_ROWS_BATCH_MAJOR = 1 } reel_row_layout;

/* How a model continues a text one token at a time (generation, reel serve):
 *   NONE   it cannot: the generator reads the whole text again at every step (correct, slower);
 *   STATE  a fixed recurrent state per sequence (decode_width floats) that the forward carries;
 *   CACHE  a key/value cache per sequence (decode_width floats: the keys and values of every position
 *          read so far, up to max_context), which the forward reads and appends to. */
typedef enum { REEL_DECODE_NONE = 0, REEL_DECODE_STATE = 1, REEL_DECODE_CACHE = 2 } reel_decode_kind;

/* What a forward produced. Pointers are into the model's buffers, valid until its next forward. */
typedef struct reel_output {
    size_t rows;          /* N: B documents, or T * B time steps (row reel_output_row(out, t, b)) */
    size_t width;         /* K: logits per row */
    const float *logits;  /* (N, K) when materialised (per-document outputs); NULL when deferred */
    /* per-token outputs: the deferred output layer, logits = features . weight^T + bias */
    size_t T, B;
    reel_row_layout layout;
    const uint8_t *row_mask; /* (N) 1 at the valid steps (t < length of sequence b) */
    const float *features;   /* (N, D) */
    size_t features_dim;     /* D */
    const float *weight;     /* (K, D) */
    const float *bias;       /* (K) */
    float *dweight, *dbias;  /* their gradients (K, D), (K): the loss ADDS to them */
} reel_output;

/* The row of step t of sequence b in a per-token output. */
static inline size_t reel_output_row(const reel_output *out, size_t t, size_t b) {
    return out->layout == REEL_ROWS_BATCH_MAJOR ? b * out->T + t : t * out->B + b;
}

typedef struct reel_model reel_model;

typedef struct reel_model_ops {
    /* training = 1 uses dropout and global batch statistics (a collective: every rank must call it, even
     * with an empty share), training = 0 is purely local. */
    void (*forward)(reel_model *model, const reel_batch *batch, int training, reel_output *out, const reel_comm *comm);
    /* Accumulates into model->params.grad from dout, the gradient of the loss with respect to the logits
     * (N, K) of a materialised output, or to the features (N, D) of a deferred one; must follow a
     * training forward on the same batch. */
    void (*backward)(reel_model *model, const reel_batch *batch, const float *dout, const reel_comm *comm);
    /* Fills the parameters and state deterministically from seed. */
    void (*init)(reel_model *model, uint64_t seed);
    void (*destroy)(reel_model *model);
    /* Optional (NULL when the model cannot): evaluation-mode logits of every document read to its first
     * cuts[c] tokens (0: all of it), for all num_cuts cuts from one forward pass over the batch; logits
     * (num_cuts, B, K). Local, like an evaluation forward. */
    void (*forward_prefixes)(reel_model *model, const reel_batch *batch, const size_t *cuts, size_t num_cuts,
                             float *logits, const reel_comm *comm);
    /* Optional (NULL: nothing to do): statistics of the labelled training documents that the model keeps
     * in model->state (so checkpoints carry them), computed before training from the whole split on every
     * rank, so that they do not depend on the number of ranks (the bag of words' Naive-Bayes ratios). */
    int (*prepare)(reel_model *model, reel_tokfile *train, reel_error *err);
} reel_model_ops;

struct reel_model {
    char type[REEL_NAME_MAX];
    reel_store params;  /* trainable: data + grad */
    reel_store state;   /* not trained, but saved: e.g. batch-norm running statistics */
    size_t vocab_size;  /* ids are < vocab_size */
    reel_output_kind output;
    size_t num_outputs; /* logits per row: classifiers 1 for two classes, K for K > 2; language models V */
    size_t state_width; /* floats of recurrent state per sequence that training carries from one window to
                           the next (the stream sampler's truncated backpropagation; 0: none) */
    reel_decode_kind decode; /* how the model continues a text token by token */
    size_t decode_width;     /* floats per sequence of what decoding carries (batch->state): the recurrent
                                state (= state_width) or the key/value cache; 0 for REEL_DECODE_NONE */
    double flops_per_token;  /* training FLOP per token (forward and backward) by the usual count (6 N plus
                                the attention's 12 L C T for a Transformer); 0: not stated */
    size_t max_context; /* positions a forward may read of one sequence (0: unbounded, as a recurrent model);
                           evaluation, scoring and generation read longer documents in windows (reel/windows.h) */
    size_t max_batch;   /* activations exist for this many rows */
    uint64_t seed;      /* keys dropout masks */
    /* Perturbing the embedded inputs (adversarial training), in models that set input_dim. Both buffers
     * belong to the caller and hold one row per token of the batch, in the order of batch->ids. */
    size_t input_dim;          /* E: width of a token's embedded input; 0: the model has none to perturb */
    const float *input_delta;  /* NULL, or (total tokens, E) added to each token's embedding (after word
                                  dropout, before input dropout) by every forward */
    float *input_grad;         /* NULL, or (total tokens, E) that backward fills with the gradient of the loss
                                  with respect to each token's (perturbed) embedding */
    int frozen_statistics;     /* 1: a training forward leaves running statistics (batch norm) as they are,
                                  for a second pass over the same batch */
    const reel_model_ops *ops;
    void *impl;
};

/* Logits per document for num_classes classes: one logit for two, K for K > 2. */
size_t reel_model_outputs(size_t num_classes);
/* A new document classifier (calloc'd) with what every classifier type takes from the configuration:
 * its type name, vocabulary, seed, embedded-input width ([model] embed_dim, which adversarial training
 * perturbs), outputs for num_classes and activations for max_batch documents (0: 1). The caller adds its
 * tensors. */
reel_model *reel_classifier_new(const char *type, const reel_model_ops *ops, void *impl, const reel_config *cfg,
                                size_t num_classes, size_t max_batch);
/* The configuration key of the number of classes: the classifier objective sets it from the data and the
 * loader reads it back from a checkpoint's configuration, so both name it through this one constant. */
#define REEL_KEY_NUM_CLASSES "model.num_classes"

/* A model type, as its source file declares it and src/models/registry.c lists it. */
typedef struct reel_model_kind {
    const char *type;
    /* Builds the model cfg describes (its keys: reel_config_model_options(cfg)), with activations for
     * max_batch rows. */
    int (*create)(reel_model **out, const reel_config *cfg, size_t max_batch, reel_error *err);
    const reel_key_table *keys; /* its [model] keys beyond type, vocab_size and embed_dim */
    const char *objective;      /* the objective it is trained with when [objective] type is not given */
} reel_model_kind;

/* The registered kind of that type (not an old name: reel_model_type_resolve first), or NULL. */
const reel_model_kind *reel_model_kind_find(const char *type);
/* The registry by index and by name (src/models/registry.c): the name of the index-th model type (NULL
 * past the last), and the objective a model type is trained with when [objective] type is not given (its
 * keys and old names reach the configuration through the catalogue below). */
const char *reel_model_type_at(size_t index);
/* The type an old name stands for ("lm": "rnn_lm"), or name itself when it is not an old name. */
const char *reel_model_type_resolve(const char *name);
const char *reel_model_default_objective(const char *type);
/* The registry's half of the configuration's catalogue: sets its models and model_aliases (static data,
 * filled on the first call; reel_catalogue in reel/catalogue.h makes that call once). */
void reel_model_catalogue(reel_config_catalogue *catalogue);

/* Builds the model that cfg describes, with activations for max_batch rows. */
int reel_model_create(reel_model **out, const reel_config *cfg, size_t max_batch, reel_error *err);
void reel_model_destroy(reel_model *model);

/* The bag of words' embedding row of the word n-gram ids[0..n-1] (n = 2 or 3) under vocab_size V and
 * `buckets` bucket rows: V + h mod buckets, h = ids[0], then h = h * 116049371 + ids[k] modulo 2^64
 * (src/models/bow.c explains the layout). */
uint64_t reel_bow_ngram_row(const uint32_t *ids, size_t n, size_t V, size_t buckets);

/* Initialisers (src/init.c), keyed by (seed, tensor index) so every rank computes the same values. */
void reel_init_uniform(float *values, size_t count, float bound, uint64_t seed, uint32_t tensor);
void reel_init_normal(float *values, size_t count, float stddev, uint64_t seed, uint32_t tensor);
void reel_init_constant(float *values, size_t count, float value);

#endif
