/* reel/model.h: a model is a set of named tensors (one contiguous buffer) plus forward and backward
 * over a batch of documents. Model types register themselves in src/model.c's table by name. */
#ifndef REEL_MODEL_H
#define REEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "reel/check.h"
#include "reel/comm.h"
#include "reel/config.h"
#include "reel/params.h"

/* This rank's share of a batch. */
typedef struct reel_batch {
    size_t size;                  /* B: documents */
    const uint32_t *ids;          /* (T) token ids, already mapped into the model's vocabulary */
    const size_t *offsets;        /* (B+1) document boundaries into ids */
    const float *labels;          /* (B) class of each document (0 or 1 for binary models) */
    const uint64_t *sample_index; /* (B) index of each document in its split: keys its random numbers */
    uint64_t epoch;               /* keys the random numbers too */
} reel_batch;

typedef struct reel_model reel_model;

typedef struct reel_model_ops {
    /* logits (B, num_outputs). training = 1 uses dropout and global batch statistics (a collective: every rank must
     * call it, even with an empty share), training = 0 is purely local. */
    void (*forward)(reel_model *model, const reel_batch *batch, int training, float *logits, const reel_comm *comm);
    /* Accumulates into model->params.grad from dlogits (B, num_outputs); must follow a training forward on the same batch. */
    void (*backward)(reel_model *model, const reel_batch *batch, const float *dlogits, const reel_comm *comm);
    /* Fills the parameters and state deterministically from seed. */
    void (*init)(reel_model *model, uint64_t seed);
    void (*destroy)(reel_model *model);
} reel_model_ops;

struct reel_model {
    char type[REEL_NAME_MAX];
    reel_store params;  /* trainable: data + grad */
    reel_store state;   /* not trained, but saved: e.g. batch-norm running statistics */
    size_t vocab_size;  /* ids are < vocab_size */
    size_t num_outputs; /* logits per document: 1 for two classes, K for K > 2 */
    size_t max_batch;   /* activations exist for this many rows */
    uint64_t seed;      /* keys dropout masks */
    const reel_model_ops *ops;
    void *impl;
};

/* Logits per document for num_classes classes: one logit for two, K for K > 2. */
size_t reel_model_outputs(size_t num_classes);

/* The head's loss: the SUM over the B rows of binary cross-entropy on one logit, or softmax cross-entropy
 * on K; dlogits (B, num_outputs) = scale * its gradient when not NULL; predicted (B) receives each row's
 * class (1 when the logit is positive / the argmax) when not NULL. */
double reel_model_loss(const reel_model *model, float *dlogits, const float *logits, const float *labels, size_t B,
                       float scale, int *predicted);

/* A model type, as its source file declares it and src/models/registry.c lists it. */
typedef struct reel_model_kind {
    const char *type;
    /* Builds the model cfg describes (its keys: reel_config_model_options(cfg)), with activations for
     * max_batch rows. */
    int (*create)(reel_model **out, const reel_config *cfg, size_t max_batch, reel_error *err);
    const reel_key_table *keys; /* its [model] keys beyond type, vocab_size and embed_dim */
    const char *objective;      /* the objective it is trained with when [objective] type is not given */
} reel_model_kind;

/* The registered kind of that type, or NULL. */
const reel_model_kind *reel_model_kind_find(const char *type);

/* Builds the model that cfg describes, with activations for max_batch rows. */
int reel_model_create(reel_model **out, const reel_config *cfg, size_t max_batch, reel_error *err);
void reel_model_destroy(reel_model *model);

/* Initialisers (src/init.c), keyed by (seed, tensor index) so every rank computes the same values. */
void reel_init_uniform(float *values, size_t count, float bound, uint64_t seed, uint32_t tensor);
void reel_init_normal(float *values, size_t count, float stddev, uint64_t seed, uint32_t tensor);
void reel_init_constant(float *values, size_t count, float value);

#endif
