/* reel/objective.h: what a model is trained to do.
 *
 * An objective owns everything that depends on the task: the data it reads (which splits, labels or
 * next tokens), its batch sampler, its loss and its metrics. The training loop (reel/train.h) sees only
 * what every objective has: one step's gradient in model->params.grad, a vector of sums to reduce over
 * the ranks (the loss sum first), named series computed from those sums, and evaluations that return
 * named values. So the loop knows nothing of classes or tokens, and adding an objective is adding its
 * source file and one line in src/objectives/registry.c.
 *
 * Rank independence is each objective's duty: the global batch of (epoch, step) must be a function of
 * the seed, the epoch and the step alone, each rank taking a share (reel_rank_share), so that any
 * number of ranks trains the same model and a checkpoint resumes on any world size.
 */
#ifndef REEL_OBJECTIVE_H
#define REEL_OBJECTIVE_H

#include <stddef.h>
#include <stdint.h>

#include "reel/check.h"
#include "reel/comm.h"
#include "reel/config.h"
#include "reel/metrics.h"
#include "reel/model.h"
#include "reel/params.h"
#include "reel/tokfile.h"
#include "reel/util.h"
#include "reel/vocab.h"

/* A named series: a column of the metrics file. better: +1 when higher is better, -1 when lower is, 0
 * when the series is no criterion for the best checkpoint. percent: a fraction best shown as a
 * percentage. */
typedef struct reel_series {
    const char *name;
    reel_column_type type;
    int better;
    int percent;
    int added_later; /* see reel_column: older metrics files may lack it */
} reel_series;

/* What an evaluation covers. */
typedef struct reel_eval_request {
    const char *split;  /* the token file <data dir>/<split>.tok */
    size_t max_tokens;  /* tokens kept from the start of each document; 0 keeps all */
    size_t max_docs;    /* the first max_docs documents only; 0: all */
    size_t batch_rows;  /* documents per forward pass and rank, at most */
} reel_eval_request;

typedef struct reel_objective reel_objective;

typedef struct reel_objective_ops {
    /* Prepares the epoch's order of samples. Called before the first step of every epoch, and before
     * the first step after a resume. */
    void (*begin_epoch)(reel_objective *obj, uint64_t epoch);
    /* This rank's share of global batch `step` of `epoch`: gathers it, runs the training forward, the
     * loss (the mean over the whole global batch) and the backward, so model->params.grad (zeroed by
     * the caller) receives this rank's part of the gradient. Adds this rank's contribution to sums
     * (num_train_sums values, the loss sum first). Returns the samples in the global batch. A collective:
     * every rank calls it, with an empty share too. */
    uint64_t (*train_step)(reel_objective *obj, uint64_t epoch, uint64_t step, double *sums);
    /* The train series (num_train_series values) from sums reduced over the ranks and over the steps
     * since the previous row, which took `seconds`. */
    void (*train_values)(const reel_objective *obj, const double *sums, double seconds, reel_value *values);
    /* Evaluates the model (evaluation mode) on request->split, spread over the ranks: every rank returns
     * the same num_eval_series values. A collective. Bad data is fatal on every rank. */
    void (*evaluate)(reel_objective *obj, const reel_eval_request *request, reel_value *values);
    /* Optional (NULL: not offered): evaluates request->split once for every cut, each document read to its
     * first cuts[c] tokens (0: all), into values (num_cuts rows of num_eval_series), from one pass over the
     * documents where the model allows it (reel_model_ops.forward_prefixes). Returns -1, having done
     * nothing, when the model does not; the caller then evaluates each cut on its own. A collective. */
    int (*evaluate_cuts)(reel_objective *obj, const reel_eval_request *request, const size_t *cuts, size_t num_cuts,
                         reel_value *values);
    /* A short human description of one row of values: table REEL_METRICS_TRAIN or _EVAL. */
    void (*describe)(const reel_objective *obj, reel_metrics_table table, const reel_value *values, reel_buf *out);
    /* The state the checkpoint must hold beyond the model and the optimizer (e.g. the hidden state each
     * stream of a language model carries into its next window), for objectives that have any (NULL
     * otherwise). export gathers it into obj->carried on rank 0; import spreads rank 0's obj->carried,
     * read from a checkpoint, back to the ranks that own each part. Both are collectives. */
    void (*export_state)(reel_objective *obj);
    void (*import_state)(reel_objective *obj);
    void (*destroy)(reel_objective *obj);
} reel_objective_ops;

struct reel_objective {
    const char *type;
    const reel_objective_ops *ops;
    reel_model *model;
    reel_comm comm;
    uint64_t steps_per_epoch;
    const char *sample_name;       /* what a sample is, for messages: "review", "document", "window" */
    const reel_series *train_series;
    size_t num_train_series;
    const reel_series *eval_series;
    size_t num_eval_series;
    size_t num_train_sums;
    const char *best_metric;       /* the eval series that picks the best checkpoint by default */
    const char *valid_split;       /* evaluated during training (NULL: nothing to evaluate) */
    size_t valid_docs;             /* its first valid_docs documents only; 0: all */
    uint8_t valid_split_code;      /* REEL_SPLIT_* of valid_split, for the metrics */
    const char *final_split;       /* evaluated when training ends (NULL: none) */
    reel_store carried;            /* see export_state; num_tensors 0 when there is none */
    int multi_pass;                /* the gradient of a step accumulates over several backward passes (adversarial
                                      training): the exchange waits for the end of the step (no overlap) */
    void *impl;
};

typedef struct reel_objective_kind {
    const char *type;
    const reel_key_table *keys; /* its [objective] keys beyond type */
    reel_output_kind needs;     /* the outputs of the models it trains */
    /* Settles what the data decides before the model is built (e.g. the number of classes), recording
     * it in cfg. NULL when nothing needs settling. */
    int (*resolve)(reel_config *cfg, const reel_vocab *vocab, reel_error *err);
    /* for_training = 1 opens the training data and sets up sampling; 0 prepares evaluation only.
     * max_rows: documents per rank in a forward pass (the model holds activations for that many). */
    int (*create)(reel_objective **out, const reel_config *cfg, reel_model *model, const reel_vocab *vocab,
                  const reel_comm *comm, size_t max_rows, int for_training, reel_error *err);
} reel_objective_kind;

const reel_objective_kind *reel_objective_kind_find(const char *type);
/* The registry's half of the configuration's catalogue: sets its objectives (as reel_model_catalogue). */
void reel_objective_catalogue(reel_config_catalogue *catalogue);

/* The objective cfg names, for model (whose outputs it must be able to train). */
int reel_objective_create(reel_objective **out, const reel_config *cfg, reel_model *model, const reel_vocab *vocab,
                          const reel_comm *comm, size_t max_rows, int for_training, reel_error *err);
void reel_objective_destroy(reel_objective *obj);
/* Index of the eval series called name, or -1. */
int reel_objective_eval_index(const reel_objective *obj, const char *name);

/* ---- shared by the objectives (src/objectives/common.c) ---- */

/* Opens <data dir>/<split>.tok and checks it was made with vocab. A missing file is an error naming it
 * when required; otherwise *out = NULL and 0. */
int reel_open_split(reel_tokfile **out, const reel_config *cfg, const reel_vocab *vocab, const char *split,
                    int required, reel_error *err);

/* Evaluation order: this rank's share of the first `docs` documents of file, each with its length (cut
 * to max_tokens when that is not 0, plus `extra` tokens an objective adds, e.g. <eod>), sorted by
 * length then index, so batches of similar lengths carry little padding (the metrics are sums and do
 * not depend on the order). *count receives the share's size; free the array. */
typedef struct reel_doc_length {
    uint64_t index;
    size_t length;
} reel_doc_length;
reel_doc_length *reel_eval_order(const reel_tokfile *file, uint64_t docs, size_t max_tokens, size_t extra,
                                 const reel_comm *comm, size_t *count);
/* The model FLOP rate of a training window: model_gflops = tokens_per_s x the model's FLOP per token of
 * one forward and backward, NaN when the model states none; mfu = model_gflops / (ranks x [train]
 * peak_gflops), NaN without it. Both objectives log them so. */
void reel_model_flop_rates(const reel_objective *obj, double tokens_per_s, double peak_gflops, double *model_gflops,
                           double *mfu);

/* Documents in the next evaluation batch from order[start]: at most batch_rows, and no more time steps
 * (documents x the longest) than REEL_EVAL_STEP_BUDGET (reel/data.h). */
size_t reel_eval_batch_rows(const reel_doc_length *order, size_t count, size_t start, size_t batch_rows);

/* The classification loss on logits (B, K): the SUM over the B rows of binary cross-entropy on one logit
 * (K = 1), or softmax cross-entropy on K > 1; dlogits (B, K) = scale * its gradient when not NULL;
 * predicted (B) receives each row's class (1 when the logit is positive / the argmax) when not NULL. */
double reel_classify_loss(float *dlogits, const float *logits, const float *labels, size_t B, size_t K, float scale,
                          int *predicted);

#endif
