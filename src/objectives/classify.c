/* Document classification: one label per document, from the labelled token files (train, valid, test).
 *
 * Sampler: an epoch's order is a seeded shuffle of the training split (reel_shuffle); global batch k is
 * positions [k*B, (k+1)*B) of it, and each rank takes a contiguous share (reel_rank_share). A document
 * longer than [data] seq_len (when set) is cut to a random window drawn from (seed, epoch, document),
 * else to its first [data] max_tokens. Loss: binary cross-entropy on one logit (two classes) or softmax
 * cross-entropy on K, averaged over the global batch. Metrics: loss, accuracy, and precision, recall,
 * F1 (of class 1 for two classes, macro averages for more) with the binary confusion matrix, and the
 * macro-averaged F1 over every class.
 *
 * Class imbalance, two remedies that can be combined:
 *   class_weights: the loss of a document of class k is weighted by w_k, and the step's loss is the
 *     weighted mean over the global batch, sum(w_i l_i) / sum(w_i), as PyTorch's weighted cross-entropy
 *     defines it. The denominator is the global batch's (every rank reads the batch's labels, which sit
 *     in memory), so the step does not depend on the number of ranks. "balanced" sets w_k = N / (K n_k)
 *     from the training split's class counts n_k.
 *   oversample: an epoch holds every class as often as the largest one: the documents of a smaller class
 *     are repeated (all of them as many whole times as fit, then a seeded random subset), and the whole
 *     list is shuffled. A function of (seed, epoch), so ranks agree and a resumed epoch is the same one.
 *
 * Length buckets (length_buckets = K > 1, reel_bucket_by_length in reel/data.h), as the bucket iterators
 * of the course's notebooks: batches of similar lengths (after seq_len or max_tokens), from pools of K
 * batches of the epoch's order. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reel/data.h"
#include "reel/layers.h"
#include "reel/objective.h"
#include "reel/rng.h"

/* [objective] keys of classification. */
typedef struct classify_options {
    double adversarial;         /* weight of the adversarial loss; 0: plain training */
    double adversarial_epsilon; /* size of the perturbation relative to the document's embeddings */
    char class_weights[REEL_LIST_MAX]; /* "": none; "balanced"; or one weight per class */
    int oversample;             /* 1: every class as often as the largest in each epoch */
    size_t length_buckets;      /* K > 1: batches of similar lengths from pools of K batches */
    double vat;                 /* weight of the virtual adversarial loss; 0: off */
    double vat_epsilon, vat_xi; /* its perturbation and its probe, as fractions of a document's embedding norm */
    size_t vat_unlabelled;      /* unlabelled documents (unsup split) per global batch */
} classify_options;

static const reel_key classify_key_list[] = {
    REEL_KEY_DOUBLE_OF(classify_options, "objective", "adversarial", adversarial, "0", REEL_BOUND_MIN, 0, 0,
                       "weight of the adversarial loss (the loss of each document with its embeddings moved a "
                       "small step in the direction that raises its loss most); 0 trains without it"),
    REEL_KEY_DOUBLE_OF(classify_options, "objective", "adversarial_epsilon", adversarial_epsilon, "0.02",
                       REEL_BOUND_MIN_OPEN, 0, 0,
                       "L2 norm of a document's adversarial perturbation, as a fraction of the L2 norm of its "
                       "embedded tokens"),
    REEL_KEY_STRING_OF(classify_options, "objective", "class_weights", class_weights, "",
                       "weights of the classes in the training loss (a weighted mean over the batch): 'balanced' "
                       "(inverse class frequency in the training split, N / (K n_k)), or one positive number per "
                       "class in label order (e.g. 1,4); not given: every class 1"),
    REEL_KEY_BOOL_OF(classify_options, "objective", "oversample", oversample, "false",
                     "each epoch repeats the documents of smaller classes so that every class is seen as often as the "
                     "largest (an epoch gets longer)"),
    REEL_KEY_SIZE_OF(classify_options, "objective", "length_buckets", length_buckets, "0", 0, 0,
                     "K > 1: each run of K global batches of the epoch's shuffled order is sorted by length and cut "
                     "into K batches of similar lengths (then shuffled), so a batch of short documents pads little; "
                     "0 or 1: off"),
    REEL_KEY_DOUBLE_OF(classify_options, "objective", "vat", vat, "0", REEL_BOUND_MIN, 0, 0,
                       "weight of the virtual adversarial loss (Miyato et al. 2017): the KL divergence between a "
                       "document's predictions at its embeddings and at them moved a small step in the direction one "
                       "power iteration finds most sensitive; needs no label; 0 trains without it"),
    REEL_KEY_DOUBLE_OF(classify_options, "objective", "vat_epsilon", vat_epsilon, "0.02", REEL_BOUND_MIN_OPEN, 0, 0,
                       "L2 norm of the virtual adversarial perturbation, as a fraction of the L2 norm of the document's "
                       "embedded tokens"),
    REEL_KEY_DOUBLE_OF(classify_options, "objective", "vat_xi", vat_xi, "0.001", REEL_BOUND_MIN_OPEN, 0, 0,
                       "L2 norm of the power iteration's random probe, the same fraction (small, yet large enough to "
                       "move float32 predictions)"),
    REEL_KEY_SIZE_OF(classify_options, "objective", "vat_unlabelled", vat_unlabelled, "0", 0, 0,
                     "unlabelled documents of the unsup split added to each global batch for the virtual "
                     "adversarial loss alone (at most batch_size); 0: it covers the labelled batch only"),
};
static const reel_key_table classify_keys = {classify_key_list, sizeof classify_key_list / sizeof classify_key_list[0],
                                             sizeof(classify_options)};

/* sums of a training step: loss, correct predictions, documents, tokens read */
enum { SUM_LOSS, SUM_CORRECT, SUM_ROWS, SUM_ADVERSARIAL, SUM_WEIGHT, SUM_VAT, SUM_VAT_ROWS, SUM_TOKENS, NUM_SUMS };

/* The first six are always declared; the adversarial and virtual adversarial losses only when on. */
enum { SERIES_ADVERSARIAL = 6, SERIES_VAT = 7 };
static const reel_series train_series[] = {
    {"loss", REEL_COLUMN_F64, 0, 0, 0},
    {"accuracy", REEL_COLUMN_F64, 0, 1, 0},
    {"samples_per_s", REEL_COLUMN_F64, 0, 0, 0},
    {"tokens_per_s", REEL_COLUMN_F64, 0, 0, 1}, /* the tokens the model read (after seq_len or max_tokens) */
    /* tokens/s x the model's FLOP per token of one forward and backward (the adversarial and virtual
     * adversarial passes not counted); NaN when the model states none */
    {"model_gflops", REEL_COLUMN_F64, 0, 0, 1},
    {"mfu", REEL_COLUMN_F64, 0, 1, 1}, /* model_gflops / (ranks x [train] peak_gflops); NaN without it */
    {"adversarial_loss", REEL_COLUMN_F64, 0, 0, 0},
    {"vat_loss", REEL_COLUMN_F64, 0, 0, 0},
};

enum { EV_LOSS, EV_ACCURACY, EV_PRECISION, EV_RECALL, EV_F1, EV_TP, EV_FP, EV_TN, EV_FN, EV_MACRO_F1, EV_COUNT };
static const reel_series eval_series[] = {
    {"loss", REEL_COLUMN_F64, -1, 0, 0},  {"accuracy", REEL_COLUMN_F64, 1, 1, 0}, {"precision", REEL_COLUMN_F64, 1, 0, 0},
    {"recall", REEL_COLUMN_F64, 1, 0, 0}, {"f1", REEL_COLUMN_F64, 1, 0, 0},       {"tp", REEL_COLUMN_U64, 0, 0, 0},
    {"fp", REEL_COLUMN_U64, 0, 0, 0},     {"tn", REEL_COLUMN_U64, 0, 0, 0},       {"fn", REEL_COLUMN_U64, 0, 0, 0},
    {"macro_f1", REEL_COLUMN_F64, 1, 0, 1},
};

typedef struct {
    const reel_config *cfg;
    const reel_vocab *vocab;
    reel_tokfile *train;
    uint64_t num_train;  /* samples in an epoch: the split's documents, or more when oversampling */
    uint64_t *order;     /* (num_train) the epoch's order */
    /* class imbalance */
    float *class_weight; /* (num_classes) or NULL: unweighted */
    int oversample;
    uint64_t **class_docs; /* oversampling: the training documents of each class */
    uint64_t *class_count;
    uint64_t largest_class;
    uint64_t *pool;      /* (num_train) scratch: the epoch's repeated documents before the shuffle */
    size_t length_buckets; /* pools of this many global batches sorted by length; 0: off */
    uint64_t *doc_lengths; /* (training documents) length buckets: each one's length in a batch */
    uint64_t *sort_keys; /* (length_buckets * batch + length_buckets) length buckets: scratch */
    size_t max_rows;     /* documents per rank in a step, at most */
    reel_batch_buffer buffer;
    float *dlogits;      /* (max_rows, K) */
    int *predicted;      /* (max_rows) */
    size_t num_classes;
    /* adversarial training */
    float adversarial, epsilon;
    size_t embedding;    /* the model's embedding/weight tensor */
    float *delta;        /* (batch tokens, E) the perturbation of each token's embedding */
    float *input_grad;   /* (batch tokens, E) the clean loss's gradient with respect to them */
    size_t token_capacity;
    /* virtual adversarial training (delta and input_grad serve it too) */
    float vat, vat_epsilon, vat_xi;
    size_t vat_unlabelled;
    reel_tokfile *unlabelled; /* the unsup split, when vat_unlabelled > 0 */
    uint64_t num_unlabelled;
    uint64_t *unlabelled_order; /* (num_unlabelled) the epoch's order of them */
    uint64_t *unlabelled_indices; /* (vat_unlabelled) this rank's share of a step */
    reel_batch_buffer unlabelled_buffer;
    float *clean_logits; /* (max_rows, K) the predictions the perturbed ones are compared with */
    float *saved_grad;   /* (parameters) the gradient before the power iteration's backward */
    /* the train series declared: the first six, then the adversarial and VAT losses when on */
    reel_series series[sizeof train_series / sizeof train_series[0]];
    /* series_index[SERIES_*]: where that series is among those declared, or 0 */
    size_t series_index[sizeof train_series / sizeof train_series[0]];
} classify_impl;

double reel_classify_loss(float *dlogits, const float *logits, const float *labels, size_t B, size_t K, float scale,
                          int *predicted) {
    if (predicted)
        for (size_t b = 0; b < B; b++) {
            const float *z = logits + b * K;
            size_t best = 0;
            for (size_t k = 1; k < K; k++)
                if (z[k] > z[best]) best = k;
            predicted[b] = K == 1 ? z[0] > 0.0f : (int)best;
        }
    return K == 1 ? reel_bce_logits(dlogits, logits, labels, B, scale) : reel_softmax_ce(dlogits, logits, labels, B, K, scale);
}

/* Checks that a split holds labels, as many classes as the model has. */
static int check_labels(const reel_tokfile *file, size_t num_classes, reel_error *err) {
    const reel_tokfile_header *info = reel_tokfile_info(file);
    if (info->num_classes < 2)
        return reel_fail(err, "%s holds no labels (%" PRIu32 " classes): a classifier needs at least 2; train on a "
                         "labelled corpus (reel prep of IMDb or of a TSV file with a label column)",
                         reel_tokfile_path(file), info->num_classes);
    if (num_classes != info->num_classes)
        return reel_fail(err, "%s has %" PRIu32 " classes, but [model] num_classes = %zu; leave [model] num_classes "
                         "at 0 to take it from the data", reel_tokfile_path(file), info->num_classes, num_classes);
    return 0;
}

/* The number of classes comes from the training data unless the configuration fixes it; the stored
 * configuration records it, so `reel eval` rebuilds the same head. */
static int classify_resolve(reel_config *cfg, const reel_vocab *vocab, reel_error *err) {
    const size_t *num_classes = reel_config_field(cfg, REEL_KEY_NUM_CLASSES);
    if (!num_classes || *num_classes != 0) return 0;
    reel_tokfile *probe;
    if (reel_open_split(&probe, cfg, vocab, "train", 1, err) != 0) return -1;
    char value[32];
    snprintf(value, sizeof value, "%" PRIu32, reel_tokfile_info(probe)->num_classes);
    reel_tokfile_close(probe);
    return reel_config_set(cfg, REEL_KEY_NUM_CLASSES, value, "data", err);
}

/* Oversampling: every class fills largest_class slots of the epoch, its documents in a seeded order
 * (repeated from the start when the class is smaller), then the slots of all classes are shuffled. */
static void oversampled_order(classify_impl *c, uint64_t seed, uint64_t epoch) {
    uint64_t *slot = c->pool;
    for (size_t k = 0; k < c->num_classes; k++) {
        uint64_t n = c->class_count[k], *docs = c->class_docs[k];
        /* the class's documents, shuffled by (epoch, class) */
        reel_shuffle_keyed(docs, n, seed, REEL_RNG_OVERSAMPLE, (uint32_t)epoch, (uint32_t)k);
        for (uint64_t j = 0; j < c->largest_class; j++) *slot++ = docs[j % n];
    }
    reel_shuffle(c->order, c->num_train, seed, epoch);
    for (uint64_t i = 0; i < c->num_train; i++) c->order[i] = c->pool[c->order[i]];
}

static void classify_begin_epoch(reel_objective *obj, uint64_t epoch) {
    classify_impl *c = obj->impl;
    if (c->oversample) oversampled_order(c, obj->model->seed, epoch);
    else reel_shuffle(c->order, c->num_train, obj->model->seed, epoch);
    if (c->length_buckets > 1)
        reel_bucket_by_length(c->order, c->num_train, c->doc_lengths, c->cfg->train.batch_size, c->length_buckets,
                              obj->model->seed, epoch, c->sort_keys);
    if (c->unlabelled) { /* from the identity every epoch: a function of (seed, epoch), so a resume finds it */
        for (uint64_t i = 0; i < c->num_unlabelled; i++) c->unlabelled_order[i] = i;
        reel_shuffle_keyed(c->unlabelled_order, c->num_unlabelled, obj->model->seed, REEL_RNG_VAT_ORDER, (uint32_t)epoch, 0);
    }
}

/* Weighted loss of B rows: the sum of w_i l_i, with dlogits = factor * w_i / weight_total times each
 * row's gradient (the weighted mean over a batch whose weights add up to weight_total). */
static double weighted_loss(const classify_impl *c, float *dlogits, const float *logits, const float *labels, size_t B,
                            size_t K, double factor, double weight_total, int *predicted) {
    double total = 0;
    for (size_t i = 0; i < B; i++) {
        float w = c->class_weight[(size_t)labels[i]];
        total += w * reel_classify_loss(dlogits ? dlogits + i * K : NULL, logits + i * K, labels + i, 1, K,
                                        (float)(factor * w / weight_total), predicted ? predicted + i : NULL);
    }
    return total;
}

static void reserve_tokens(classify_impl *c, size_t tokens, size_t E) {
    if (tokens <= c->token_capacity) return;
    c->token_capacity = tokens;
    c->delta = reel_realloc(c->delta, tokens * E * sizeof(float));
    c->input_grad = reel_realloc(c->input_grad, tokens * E * sizeof(float));
}

/* The L2 norm of each document's embedded tokens (before dropout), what both adversarial perturbations
 * are measured against. */
static double embedding_norm(const classify_impl *c, const reel_model *model, const reel_batch *batch, size_t b) {
    size_t E = model->input_dim;
    const float *table = reel_store_view(&model->params, c->embedding);
    double sum = 0;
    for (size_t t = batch->offsets[b]; t < batch->offsets[b + 1]; t++) {
        const float *row = table + (size_t)batch->ids[t] * E;
        for (size_t e = 0; e < E; e++) sum += (double)row[e] * row[e];
    }
    return sqrt(sum);
}

/* Adversarial training (Goodfellow et al. 2015; on text embeddings, Miyato et al. 2017): after the clean
 * forward and backward, each document's embedded tokens x move by
 *     r = epsilon * |x| * g / |g|,  g = dL/dx over the whole document (|.| the L2 norm over its tokens),
 * the first-order step that raises its loss most, and the loss at x + r, weighted by `adversarial`, adds
 * its gradient (r held constant). Miyato et al. normalise the embeddings so that a model cannot shrink
 * an absolute epsilon into insignificance by growing them; scaling r by the document's own embedding
 * norm does the same without changing the embeddings, which a model fine-tuned from a pretrained one
 * must keep as they are. (Their epsilon = 5 on unit-variance embeddings of 256 dimensions and 400
 * tokens is 5 / sqrt(400 * 256) = 0.016 of that norm.) Everything is per document and the masks are
 * the clean pass's, so the update does not depend on the ranks; the second pass leaves batch-norm
 * running statistics alone. Returns the adversarial loss sum of this rank's documents. */
static double adversarial_pass(classify_impl *c, reel_model *model, const reel_batch *batch, size_t global_rows,
                               double weight_total, const reel_comm *comm) {
    size_t B = batch->size, E = model->input_dim;
    for (size_t b = 0; b < B; b++) {
        size_t begin = batch->offsets[b] * E, end = batch->offsets[b + 1] * E;
        double grad_norm = 0;
        for (size_t i = begin; i < end; i++) grad_norm += (double)c->input_grad[i] * c->input_grad[i];
        float scale = grad_norm > 0 ? (float)(c->epsilon * embedding_norm(c, model, batch, b) / sqrt(grad_norm)) : 0.0f;
        for (size_t i = begin; i < end; i++) c->delta[i] = scale * c->input_grad[i];
    }
    model->input_delta = c->delta;
    model->frozen_statistics = 1;
    reel_output out;
    model->ops->forward(model, batch, 1, &out, comm);
    double loss = c->class_weight ? weighted_loss(c, c->dlogits, out.logits, batch->labels, B, model->num_outputs,
                                                  c->adversarial, weight_total, NULL)
                                  : reel_classify_loss(c->dlogits, out.logits, batch->labels, B, model->num_outputs,
                                                       c->adversarial / (float)global_rows, NULL);
    model->ops->backward(model, batch, c->dlogits, comm);
    model->input_delta = NULL;
    model->frozen_statistics = 0;
    return loss;
}

/* Virtual adversarial training (Miyato, Dai and Goodfellow 2017) on the documents of batch, whose clean
 * predictions are p_logits (B, K), held constant:
 *   1. a random direction d per document (Gaussian, from (seed, REEL_RNG_VAT, epoch, sample index), so
 *      it depends on neither the rank nor the batch), scaled to xi |x| (|x|: the L2 norm of the
 *      document's embedded tokens, as for the adversarial perturbation above);
 *   2. one power iteration: g = the gradient of KL(p || q(x + d)) with respect to d, by a forward and a
 *      backward with the model's input gradient; the parameters' gradient that backward adds is thrown
 *      away (restored from a copy), since the probe is not part of the objective;
 *   3. r = epsilon |x| g / |g|, and the loss weight * KL(p || q(x + r)) / scale_rows with r held
 *      constant, whose parameter gradient is kept.
 * The passes use the clean pass's dropout masks (keyed by sample index) and leave batch-norm running
 * statistics alone. Returns this rank's sum of KL(p || q(x + r)). */
static double vat_pass(classify_impl *c, reel_model *model, const reel_batch *batch, const float *p_logits,
                       double scale_rows, uint64_t epoch, const reel_comm *comm) {
    size_t B = batch->size, E = model->input_dim, K = model->num_outputs;
    reel_store *params = &model->params;
    reserve_tokens(c, batch->offsets[B], E);
    for (size_t b = 0; b < B; b++) {
        size_t begin = batch->offsets[b] * E, end = batch->offsets[b + 1] * E;
        double norm = 0;
        for (size_t i = begin; i < end; i += 4) {
            uint32_t w[4];
            reel_rng_block(w, model->seed, REEL_RNG_VAT, (uint32_t)epoch, (uint32_t)batch->sample_index[b],
                           (uint32_t)((i - begin) / 4));
            for (size_t k = 0; k < 4 && i + k < end; k += 2) { /* Box-Muller: two normals from two words */
                double u1 = (reel_rng_unit_float(w[k]) + 0x1p-25), u2 = reel_rng_unit_float(w[k + 1]);
                double radius = sqrt(-2.0 * log(u1)), angle = 6.283185307179586 * u2;
                c->delta[i + k] = (float)(radius * cos(angle));
                if (i + k + 1 < end) c->delta[i + k + 1] = (float)(radius * sin(angle));
            }
        }
        for (size_t i = begin; i < end; i++) norm += (double)c->delta[i] * c->delta[i];
        float scale = norm > 0 ? (float)(c->vat_xi * embedding_norm(c, model, batch, b) / sqrt(norm)) : 0.0f;
        for (size_t i = begin; i < end; i++) c->delta[i] *= scale;
    }
    memcpy(c->saved_grad, params->grad, params->num_floats * sizeof(float));
    model->input_delta = c->delta;
    model->input_grad = c->input_grad;
    model->frozen_statistics = 1;
    reel_output out;
    model->ops->forward(model, batch, 1, &out, comm);
    reel_kl_logits(c->dlogits, p_logits, out.logits, B, K, 1.0f);
    model->ops->backward(model, batch, c->dlogits, comm);
    memcpy(params->grad, c->saved_grad, params->num_floats * sizeof(float));
    model->input_grad = NULL;
    for (size_t b = 0; b < B; b++) {
        size_t begin = batch->offsets[b] * E, end = batch->offsets[b + 1] * E;
        double grad_norm = 0;
        for (size_t i = begin; i < end; i++) grad_norm += (double)c->input_grad[i] * c->input_grad[i];
        float scale = grad_norm > 0 ? (float)(c->vat_epsilon * embedding_norm(c, model, batch, b) / sqrt(grad_norm)) : 0.0f;
        for (size_t i = begin; i < end; i++) c->delta[i] = scale * c->input_grad[i];
    }
    model->ops->forward(model, batch, 1, &out, comm);
    double loss = reel_kl_logits(c->dlogits, p_logits, out.logits, B, K, (float)(c->vat / scale_rows));
    model->ops->backward(model, batch, c->dlogits, comm);
    model->input_delta = NULL;
    model->frozen_statistics = 0;
    return loss;
}

/* The step's unlabelled documents for virtual adversarial training: global positions [step U, step U + U)
 * of the epoch's order of the unsup split (wrapping around it), this rank's share of them; each keeps
 * dropout masks of its own (sample index = training documents + its index). Returns their clean logits
 * in c->clean_logits after a forward that leaves running statistics alone. */
static const reel_batch *unlabelled_batch(classify_impl *c, reel_objective *obj, uint64_t epoch, uint64_t step) {
    reel_model *model = obj->model;
    size_t U = c->vat_unlabelled, begin, rows;
    reel_rank_share(U, obj->comm.rank, obj->comm.size, &begin, &rows);
    for (size_t i = 0; i < rows; i++)
        c->unlabelled_indices[i] = c->unlabelled_order[(step * U + begin + i) % c->num_unlabelled];
    reel_error err = {{0}};
    if (reel_batch_gather(&c->unlabelled_buffer, c->unlabelled, c->unlabelled_indices, rows, model->vocab_size,
                          c->cfg->data.max_tokens, c->cfg->data.seq_len, model->seed, epoch, &err) != 0)
        reel_die(&err, "re-run `reel prep`, or check the file with `reel inspect`");
    reel_batch *batch = &c->unlabelled_buffer.batch;
    uint64_t labelled = reel_tokfile_info(c->train)->num_docs;
    for (size_t i = 0; i < rows; i++) c->unlabelled_buffer.sample_index[i] = labelled + c->unlabelled_indices[i];
    batch->step = step;
    model->frozen_statistics = 1;
    reel_output out;
    model->ops->forward(model, batch, 1, &out, &obj->comm);
    model->frozen_statistics = 0;
    memcpy(c->clean_logits, out.logits, rows * model->num_outputs * sizeof(float));
    return batch;
}

static uint64_t classify_train_step(reel_objective *obj, uint64_t epoch, uint64_t step, double *sums) {
    classify_impl *c = obj->impl;
    const reel_config *cfg = c->cfg;
    reel_model *model = obj->model;
    uint64_t global_begin = step * cfg->train.batch_size;
    size_t global_rows = (size_t)(c->num_train - global_begin < cfg->train.batch_size ? c->num_train - global_begin
                                                                                        : cfg->train.batch_size);
    size_t local_begin, local_rows;
    reel_rank_share(global_rows, obj->comm.rank, obj->comm.size, &local_begin, &local_rows);
    reel_error err = {{0}};
    if (reel_batch_gather(&c->buffer, c->train, c->order + global_begin + local_begin, local_rows, model->vocab_size,
                          cfg->data.max_tokens, cfg->data.seq_len, model->seed, epoch, &err) != 0)
        reel_die(&err, "re-run `reel prep`, or check the file with `reel inspect`");
    c->buffer.batch.step = step;
    int adversarial = c->adversarial > 0;
    if (adversarial) {
        reserve_tokens(c, c->buffer.batch.offsets[local_rows], model->input_dim);
        model->input_grad = c->input_grad;
    }

    /* the weighted mean's denominator: the weights of the whole global batch, from labels every rank has */
    double weight_total = (double)global_rows, local_weight = (double)local_rows;
    if (c->class_weight) {
        weight_total = local_weight = 0;
        for (size_t i = 0; i < global_rows; i++) {
            double w = c->class_weight[reel_tokfile_label(c->train, c->order[global_begin + i])];
            weight_total += w;
            if (i >= local_begin && i < local_begin + local_rows) local_weight += w;
        }
    }
    sums[SUM_WEIGHT] += local_weight;

    reel_output out;
    model->ops->forward(model, &c->buffer.batch, 1, &out, &obj->comm);
    if (c->vat > 0) memcpy(c->clean_logits, out.logits, local_rows * model->num_outputs * sizeof(float));
    if (c->class_weight)
        sums[SUM_LOSS] += weighted_loss(c, c->dlogits, out.logits, c->buffer.labels, local_rows, model->num_outputs, 1.0,
                                        weight_total, c->predicted);
    else
        sums[SUM_LOSS] += reel_classify_loss(c->dlogits, out.logits, c->buffer.labels, local_rows, model->num_outputs,
                                             1.0f / (float)global_rows, c->predicted);
    double correct = 0;
    for (size_t i = 0; i < local_rows; i++) correct += c->predicted[i] == (int)c->buffer.labels[i];
    sums[SUM_CORRECT] += correct;
    sums[SUM_ROWS] += (double)local_rows;
    sums[SUM_TOKENS] += (double)c->buffer.batch.offsets[local_rows];
    model->ops->backward(model, &c->buffer.batch, c->dlogits, &obj->comm);
    if (adversarial) {
        model->input_grad = NULL;
        sums[SUM_ADVERSARIAL] += adversarial_pass(c, model, &c->buffer.batch, global_rows, weight_total, &obj->comm);
    }
    if (c->vat > 0) { /* the mean KL over the step's labelled and unlabelled documents */
        double vat_rows = (double)(global_rows + c->vat_unlabelled);
        sums[SUM_VAT] += vat_pass(c, model, &c->buffer.batch, c->clean_logits, vat_rows, epoch, &obj->comm);
        sums[SUM_VAT_ROWS] += (double)local_rows;
        if (c->unlabelled) {
            const reel_batch *unlabelled = unlabelled_batch(c, obj, epoch, step);
            sums[SUM_VAT] += vat_pass(c, model, unlabelled, c->clean_logits, vat_rows, epoch, &obj->comm);
            sums[SUM_VAT_ROWS] += (double)unlabelled->size;
        }
    }
    return global_rows;
}

static void classify_train_values(const reel_objective *obj, const double *sums, double seconds, reel_value *values) {
    /* the losses are weighted means (the weight of every document is 1 without class weights) */
    double rows = sums[SUM_ROWS], weight = sums[SUM_WEIGHT];
    values[0].f = weight > 0 ? sums[SUM_LOSS] / weight : 0;
    values[1].f = rows > 0 ? sums[SUM_CORRECT] / rows : 0;
    values[2].f = rows / (seconds > 0 ? seconds : 1e-9);
    const classify_impl *c = obj->impl;
    values[3].f = sums[SUM_TOKENS] / (seconds > 0 ? seconds : 1e-9);
    reel_model_flop_rates(obj, values[3].f, c->cfg->train.peak_gflops, &values[4].f, &values[5].f);
    if (c->series_index[SERIES_ADVERSARIAL])
        values[c->series_index[SERIES_ADVERSARIAL]].f = weight > 0 ? sums[SUM_ADVERSARIAL] / weight : 0;
    if (c->series_index[SERIES_VAT])
        values[c->series_index[SERIES_VAT]].f = sums[SUM_VAT_ROWS] > 0 ? sums[SUM_VAT] / sums[SUM_VAT_ROWS] : 0;
}

/* ---- evaluation ---- */

static double ratio(double numerator, double denominator) { return denominator > 0 ? numerator / denominator : 0.0; }

/* The values from the sums (loss, correct, then true positives, false positives and false negatives of
 * each class) reduced over the ranks. */
static void eval_finish(reel_value *values, const double *sums, size_t num_classes) {
    const double *per_class = sums + 2; /* tp, fp, fn of class k at 3k, 3k+1, 3k+2 */
    double n = 0;
    for (size_t k = 0; k < num_classes; k++) n += per_class[3 * k] + per_class[3 * k + 2];
    double precision_sum = 0, recall_sum = 0, f1_sum = 0, every_f1 = 0;
    size_t first = num_classes == 2 ? 1 : 0; /* two classes: the positive class alone */
    for (size_t k = 0; k < num_classes; k++) {
        double tp = per_class[3 * k], fp = per_class[3 * k + 1], fn = per_class[3 * k + 2];
        double precision = ratio(tp, tp + fp), recall = ratio(tp, tp + fn);
        double f1 = ratio(2 * precision * recall, precision + recall);
        every_f1 += f1;
        if (k < first) continue;
        precision_sum += precision;
        recall_sum += recall;
        f1_sum += f1;
    }
    double averaged = (double)(num_classes - first);
    values[EV_LOSS].f = ratio(sums[0], n);
    values[EV_ACCURACY].f = ratio(sums[1], n);
    values[EV_PRECISION].f = precision_sum / averaged;
    values[EV_RECALL].f = recall_sum / averaged;
    values[EV_F1].f = f1_sum / averaged;
    values[EV_MACRO_F1].f = every_f1 / (double)num_classes;
    int binary = num_classes == 2;
    values[EV_TP].u = binary ? (uint64_t)per_class[3] : 0;
    values[EV_FP].u = binary ? (uint64_t)per_class[4] : 0;
    values[EV_FN].u = binary ? (uint64_t)per_class[5] : 0;
    values[EV_TN].u = binary ? (uint64_t)per_class[0] : 0;
}

/* Adds a batch's evaluation to sums: loss, correct, then tp, fp, fn per class (doubles hold counts exactly
 * far beyond any corpus). */
static void accumulate(double *sums, const float *logits, const float *labels, size_t rows, size_t K, size_t classes,
                       int *predicted) {
    sums[0] += reel_classify_loss(NULL, logits, labels, rows, K, 1.0f, predicted);
    for (size_t i = 0; i < rows; i++) {
        size_t guess = (size_t)predicted[i], actual = (size_t)labels[i];
        if (guess >= classes) guess = classes - 1;
        if (guess == actual) {
            sums[1] += 1.0;
            sums[2 + 3 * actual] += 1.0;
        } else {
            sums[2 + 3 * guess + 1] += 1.0;
            sums[2 + 3 * actual + 2] += 1.0;
        }
    }
}

/* The labelled split of an evaluation, checked. */
static reel_tokfile *open_eval_split(classify_impl *c, const char *split) {
    reel_error err = {{0}};
    reel_tokfile *file;
    if (reel_open_split(&file, c->cfg, c->vocab, split, 1, &err) != 0 || check_labels(file, c->num_classes, &err) != 0)
        reel_die(&err, "evaluate on a labelled split made by the same `reel prep` run");
    return file;
}

/* Evaluates documents of file cut to max_tokens, read in batches of similar length; with cuts (num_cuts
 * > 0), the model's forward_prefixes gives every cut's logits from each batch and sums holds num_cuts
 * rows of sums; else one forward per batch and one row. */
static void evaluate_documents(classify_impl *c, reel_model *model, const reel_comm *comm, reel_tokfile *file,
                               const reel_eval_request *request, size_t max_tokens, const size_t *cuts, size_t num_cuts,
                               double *sums, size_t num_sums) {
    reel_error err = {{0}};
    uint64_t docs = reel_tokfile_info(file)->num_docs;
    if (request->max_docs && request->max_docs < docs) docs = request->max_docs;
    size_t count, batch_rows = request->batch_rows;
    if (batch_rows > model->max_batch) batch_rows = model->max_batch;
    if (batch_rows == 0) batch_rows = 1;
    reel_doc_length *order = reel_eval_order(file, docs, max_tokens, 0, comm, &count);
    size_t K = model->num_outputs, rows_of_cuts = num_cuts ? num_cuts : 1;
    uint64_t *indices = reel_malloc(batch_rows * sizeof *indices);
    int *predicted = reel_malloc(batch_rows * sizeof *predicted);
    float *logits = num_cuts ? reel_malloc(num_cuts * batch_rows * K * sizeof *logits) : NULL;
    reel_batch_buffer buffer = {0};
    for (size_t start = 0; start < count;) {
        size_t rows = reel_eval_batch_rows(order, count, start, batch_rows);
        for (size_t r = 0; r < rows; r++) indices[r] = order[start + r].index;
        if (reel_batch_gather(&buffer, file, indices, rows, model->vocab_size, max_tokens, 0, 0, 0, &err) != 0)
            reel_die(&err, "re-run `reel prep`, or check the file with `reel inspect`");
        if (num_cuts) {
            model->ops->forward_prefixes(model, &buffer.batch, cuts, num_cuts, logits, comm);
            for (size_t k = 0; k < rows_of_cuts; k++)
                accumulate(sums + k * num_sums, logits + k * rows * K, buffer.labels, rows, K, c->num_classes, predicted);
        } else {
            reel_output out;
            model->ops->forward(model, &buffer.batch, 0, &out, comm);
            accumulate(sums, out.logits, buffer.labels, rows, K, c->num_classes, predicted);
        }
        start += rows;
    }
    reel_comm_sum_doubles(comm, sums, rows_of_cuts * num_sums);
    free(logits);
    free(predicted);
    reel_batch_buffer_free(&buffer);
    free(order);
    free(indices);
}

static void classify_evaluate(reel_objective *obj, const reel_eval_request *request, reel_value *values) {
    classify_impl *c = obj->impl;
    reel_tokfile *file = open_eval_split(c, request->split);
    size_t num_sums = 2 + 3 * c->num_classes;
    double *sums = reel_calloc(num_sums, sizeof *sums);
    evaluate_documents(c, obj->model, &obj->comm, file, request, request->max_tokens, NULL, 0, sums, num_sums);
    eval_finish(values, sums, c->num_classes);
    free(sums);
    reel_tokfile_close(file);
}

/* Every cut from one pass: the documents read to the longest cut, each batch's logits of every cut from
 * the model's forward_prefixes. */
static int classify_evaluate_cuts(reel_objective *obj, const reel_eval_request *request, const size_t *cuts,
                                  size_t num_cuts, reel_value *values) {
    classify_impl *c = obj->impl;
    if (!obj->model->ops->forward_prefixes || num_cuts == 0) return -1;
    size_t longest = 0;
    for (size_t k = 0; k < num_cuts; k++) {
        if (cuts[k] == 0) {
            longest = 0;
            break;
        }
        if (cuts[k] > longest) longest = cuts[k];
    }
    reel_tokfile *file = open_eval_split(c, request->split);
    size_t num_sums = 2 + 3 * c->num_classes;
    double *sums = reel_calloc(num_cuts * num_sums, sizeof *sums);
    evaluate_documents(c, obj->model, &obj->comm, file, request, longest, cuts, num_cuts, sums, num_sums);
    for (size_t k = 0; k < num_cuts; k++) eval_finish(values + k * obj->num_eval_series, sums + k * num_sums, c->num_classes);
    free(sums);
    reel_tokfile_close(file);
    return 0;
}

static void classify_describe(const reel_objective *obj, reel_metrics_table table, const reel_value *v, reel_buf *out) {
    classify_impl *c = obj->impl;
    if (table == REEL_METRICS_TRAIN) {
        reel_buf_printf(out, "loss %.4f acc %.2f%% | %.0f reviews/s %.0f tokens/s", v[0].f, 100 * v[1].f, v[2].f, v[3].f);
        if (!isnan(v[4].f)) reel_buf_printf(out, " %.1f GFLOP/s", v[4].f);
        if (!isnan(v[5].f)) reel_buf_printf(out, " MFU %.1f%%", 100 * v[5].f);
        if (c->series_index[SERIES_ADVERSARIAL])
            reel_buf_printf(out, " | adversarial loss %.4f", v[c->series_index[SERIES_ADVERSARIAL]].f);
        if (c->series_index[SERIES_VAT]) reel_buf_printf(out, " | vat loss %.5f", v[c->series_index[SERIES_VAT]].f);
        return;
    }
    if (c->num_classes == 2)
        reel_buf_printf(out, "loss %.4f accuracy %.2f%% precision %.4f recall %.4f F1 %.4f macro F1 %.4f | confusion tp %"
                        PRIu64 " fp %" PRIu64 " tn %" PRIu64 " fn %" PRIu64 " (%" PRIu64 " reviews)", v[EV_LOSS].f,
                        100 * v[EV_ACCURACY].f, v[EV_PRECISION].f, v[EV_RECALL].f, v[EV_F1].f, v[EV_MACRO_F1].f,
                        v[EV_TP].u, v[EV_FP].u, v[EV_TN].u, v[EV_FN].u,
                        v[EV_TP].u + v[EV_FP].u + v[EV_TN].u + v[EV_FN].u);
    else
        reel_buf_printf(out, "loss %.4f accuracy %.2f%% macro precision %.4f recall %.4f F1 %.4f (%zu classes)",
                        v[EV_LOSS].f, 100 * v[EV_ACCURACY].f, v[EV_PRECISION].f, v[EV_RECALL].f, v[EV_F1].f,
                        c->num_classes);
}

static void classify_destroy(reel_objective *obj) {
    classify_impl *c = obj->impl;
    if (c->train) reel_tokfile_close(c->train);
    if (c->unlabelled) reel_tokfile_close(c->unlabelled);
    reel_batch_buffer_free(&c->buffer);
    reel_batch_buffer_free(&c->unlabelled_buffer);
    free(c->unlabelled_order);
    free(c->unlabelled_indices);
    free(c->clean_logits);
    free(c->saved_grad);
    free(c->order);
    free(c->dlogits);
    free(c->predicted);
    free(c->delta);
    free(c->input_grad);
    free(c->class_weight);
    if (c->class_docs)
        for (size_t k = 0; k < c->num_classes; k++) free(c->class_docs[k]);
    free(c->class_docs);
    free(c->class_count);
    free(c->pool);
    free(c->sort_keys);
    free(c->doc_lengths);
    free(c);
}

static const reel_objective_ops classify_ops = {
    .begin_epoch = classify_begin_epoch,
    .train_step = classify_train_step,
    .train_values = classify_train_values,
    .evaluate = classify_evaluate,
    .evaluate_cuts = classify_evaluate_cuts,
    .describe = classify_describe,
    .destroy = classify_destroy,
};

/* Class weights and oversampling, from the training split's class counts. */
static int setup_imbalance(classify_impl *c, const classify_options *o, reel_error *err) {
    size_t K = c->num_classes;
    uint64_t docs = c->num_train;
    c->class_count = reel_calloc(K, sizeof *c->class_count);
    for (uint64_t i = 0; i < docs; i++) c->class_count[reel_tokfile_label(c->train, i)]++;
    if (strcmp(o->class_weights, "balanced") == 0) {
        c->class_weight = reel_malloc(K * sizeof *c->class_weight);
        for (size_t k = 0; k < K; k++) {
            if (c->class_count[k] == 0)
                return reel_fail(err, "[objective] class_weights = balanced: class %zu has no document in %s, so it has "
                                 "no frequency to invert; give the weights as a list", k, reel_tokfile_path(c->train));
            c->class_weight[k] = (float)((double)docs / ((double)K * (double)c->class_count[k]));
        }
    } else if (o->class_weights[0]) {
        char items[64][REEL_NAME_MAX];
        int count = reel_config_split_list(o->class_weights, "[objective] class_weights", items, 64, err);
        if (count < 0) return -1;
        if ((size_t)count != K)
            return reel_fail(err, "[objective] class_weights = '%s': %d weight(s), but the data has %zu classes; give one "
                             "per class in label order, or 'balanced'", o->class_weights, count, K);
        c->class_weight = reel_malloc(K * sizeof *c->class_weight);
        for (size_t k = 0; k < K; k++) {
            char *end;
            double w = strtod(items[k], &end);
            if (*end || end == items[k] || !(w > 0) || !isfinite(w))
                return reel_fail(err, "[objective] class_weights = '%s': weight %zu is '%s', expected a positive number "
                                 "(or the whole value 'balanced')", o->class_weights, k + 1, items[k]);
            c->class_weight[k] = (float)w;
        }
    }
    if (c->class_weight) {
        reel_buf line = {0};
        for (size_t k = 0; k < K; k++)
            reel_buf_printf(&line, "%sclass %zu: %" PRIu64 " documents, weight %.4g", k ? "; " : "", k, c->class_count[k],
                            c->class_weight[k]);
        reel_log("class weights: %s\n", line.data);
        reel_buf_free(&line);
    }
    if (o->oversample) {
        c->oversample = 1;
        c->class_docs = reel_calloc(K, sizeof *c->class_docs);
        for (size_t k = 0; k < K; k++) {
            if (c->class_count[k] == 0)
                return reel_fail(err, "[objective] oversample = true: class %zu has no document in %s to repeat", k,
                                 reel_tokfile_path(c->train));
            if (c->class_count[k] > c->largest_class) c->largest_class = c->class_count[k];
            c->class_docs[k] = reel_malloc(c->class_count[k] * sizeof **c->class_docs);
        }
        uint64_t *filled = reel_calloc(K, sizeof *filled);
        for (uint64_t i = 0; i < docs; i++) {
            size_t k = (size_t)reel_tokfile_label(c->train, i);
            c->class_docs[k][filled[k]++] = i;
        }
        free(filled);
        c->num_train = (uint64_t)K * c->largest_class;
        c->pool = reel_malloc(c->num_train * sizeof *c->pool);
        reel_log("oversampling: every class %" PRIu64 " times per epoch, %" PRIu64 " samples instead of %" PRIu64 "\n",
                 c->largest_class, c->num_train, docs);
    }
    return 0;
}

static int classify_create(reel_objective **out, const reel_config *cfg, reel_model *model, const reel_vocab *vocab,
                           const reel_comm *comm, size_t max_rows, int for_training, reel_error *err) {
    const size_t *num_classes = reel_config_field(cfg, REEL_KEY_NUM_CLASSES);
    if (!num_classes) return reel_fail(err, "[model] type = %s has no classes to learn", cfg->model.type);
    if (for_training && cfg->train.accumulate > 1)
        return reel_fail(err, "[train] accumulate = %zu: the classifier objective runs each step's batch in one pass "
                         "(its batch norm and adversarial passes take the whole batch); set accumulate = 1 and a "
                         "batch_size the ranks hold", cfg->train.accumulate);
    reel_objective *obj = reel_calloc(1, sizeof *obj);
    classify_impl *c = reel_calloc(1, sizeof *c);
    obj->impl = c;
    obj->ops = &classify_ops;
    c->cfg = cfg;
    c->vocab = vocab;
    c->num_classes = *num_classes;
    c->max_rows = max_rows ? max_rows : 1;
    const classify_options *o = reel_config_objective_options(cfg);
    c->adversarial = (float)o->adversarial;
    c->epsilon = (float)o->adversarial_epsilon;
    c->vat = (float)o->vat;
    c->vat_epsilon = (float)o->vat_epsilon;
    c->vat_xi = (float)o->vat_xi;
    c->embedding = reel_store_find(&model->params, REEL_TENSOR_EMBEDDING);
    const char *perturbing = c->adversarial > 0 ? "adversarial" : c->vat > 0 ? "vat" : NULL;
    if (perturbing && (model->input_dim == 0 || c->embedding == (size_t)-1)) {
        reel_fail(err, "[objective] %s = %g: model %s has no embedded inputs to perturb; set it to 0", perturbing,
                  c->adversarial > 0 ? o->adversarial : o->vat, model->type);
        reel_objective_destroy(obj);
        return -1;
    }
    if (o->vat_unlabelled > 0 && c->vat <= 0) {
        reel_fail(err, "[objective] vat_unlabelled = %zu, but vat = 0: unlabelled documents serve only the virtual "
                  "adversarial loss; set vat > 0 or vat_unlabelled = 0", o->vat_unlabelled);
        reel_objective_destroy(obj);
        return -1;
    }
    if (o->vat_unlabelled > cfg->train.batch_size) {
        reel_fail(err, "[objective] vat_unlabelled = %zu is more than [train] batch_size = %zu: the model holds "
                  "activations for a batch's share of documents per rank; use at most %zu", o->vat_unlabelled,
                  cfg->train.batch_size, cfg->train.batch_size);
        reel_objective_destroy(obj);
        return -1;
    }
    if (for_training) {
        if (reel_open_split(&c->train, cfg, vocab, "train", 1, err) != 0 || check_labels(c->train, c->num_classes, err) != 0) {
            reel_objective_destroy(obj);
            return -1;
        }
        c->num_train = reel_tokfile_info(c->train)->num_docs;
        if (c->num_train == 0) {
            reel_fail(err, "%s holds no documents", reel_tokfile_path(c->train));
            reel_objective_destroy(obj);
            return -1;
        }
        if (setup_imbalance(c, o, err) != 0) {
            reel_objective_destroy(obj);
            return -1;
        }
        /* what the model learns from the training split before training (every rank, the whole split) */
        if (model->ops->prepare && model->ops->prepare(model, c->train, err) != 0) {
            reel_objective_destroy(obj);
            return -1;
        }
        c->order = reel_malloc(c->num_train * sizeof *c->order);
        if (o->length_buckets > 1) { /* a pool larger than the epoch is the epoch */
            uint64_t batches = (c->num_train + cfg->train.batch_size - 1) / cfg->train.batch_size;
            c->length_buckets = o->length_buckets < batches ? o->length_buckets : (size_t)batches;
            c->sort_keys = reel_malloc(c->length_buckets * (cfg->train.batch_size + 1) * sizeof *c->sort_keys);
            uint64_t docs = reel_tokfile_info(c->train)->num_docs;
            size_t cap = cfg->data.seq_len ? cfg->data.seq_len : cfg->data.max_tokens;
            c->doc_lengths = reel_malloc(docs * sizeof *c->doc_lengths);
            for (uint64_t i = 0; i < docs; i++) {
                c->doc_lengths[i] = reel_tokfile_doc_length(c->train, i);
                if (cap && c->doc_lengths[i] > cap) c->doc_lengths[i] = cap;
            }
            reel_log("length buckets: pools of %zu batches sorted by length\n", c->length_buckets);
        }
        obj->steps_per_epoch = (c->num_train + cfg->train.batch_size - 1) / cfg->train.batch_size;
        if (c->vat > 0) {
            c->saved_grad = reel_malloc(model->params.num_floats * sizeof *c->saved_grad);
            if (o->vat_unlabelled > 0) {
                if (reel_open_split(&c->unlabelled, cfg, vocab, "unsup", 0, err) != 0) {
                    reel_objective_destroy(obj);
                    return -1;
                }
                if (!c->unlabelled || reel_tokfile_info(c->unlabelled)->num_docs == 0) {
                    reel_fail(err, "[objective] vat_unlabelled = %zu: %s/unsup.tok %s; prepare a corpus with "
                              "unlabelled documents (IMDb's train/unsup, or reel prep --unsup), or set vat_unlabelled "
                              "= 0", o->vat_unlabelled, cfg->data.dir, c->unlabelled ? "holds no documents" : "is missing");
                    reel_objective_destroy(obj);
                    return -1;
                }
                c->vat_unlabelled = o->vat_unlabelled;
                c->num_unlabelled = reel_tokfile_info(c->unlabelled)->num_docs;
                c->unlabelled_order = reel_malloc(c->num_unlabelled * sizeof *c->unlabelled_order);
                c->unlabelled_indices = reel_malloc(c->vat_unlabelled * sizeof *c->unlabelled_indices);
                reel_log("virtual adversarial training: %zu unlabelled documents per batch from %s (%" PRIu64 ")\n",
                         c->vat_unlabelled, reel_tokfile_path(c->unlabelled), c->num_unlabelled);
            }
        }
        /* validation and test are optional: a corpus without them trains without evaluations */
        reel_tokfile *probe;
        const char *splits[2] = {"valid", "test"};
        for (int s = 0; s < 2; s++) {
            if (reel_open_split(&probe, cfg, vocab, splits[s], 0, err) != 0) {
                reel_objective_destroy(obj);
                return -1;
            }
            if (!probe) continue;
            int bad = check_labels(probe, c->num_classes, err);
            reel_tokfile_close(probe);
            if (bad) {
                reel_objective_destroy(obj);
                return -1;
            }
            if (s == 0) obj->valid_split = "valid";
            else obj->final_split = "test";
        }
    }
    c->dlogits = reel_malloc(c->max_rows * model->num_outputs * sizeof *c->dlogits);
    c->clean_logits = reel_malloc(c->max_rows * model->num_outputs * sizeof *c->clean_logits);
    c->predicted = reel_malloc(c->max_rows * sizeof *c->predicted);
    obj->sample_name = "review";
    size_t declared = 0;
    for (size_t i = 0; i < sizeof train_series / sizeof train_series[0]; i++) {
        if ((i == SERIES_ADVERSARIAL && !(c->adversarial > 0)) || (i == SERIES_VAT && !(c->vat > 0))) continue;
        if (i >= SERIES_ADVERSARIAL) c->series_index[i] = declared;
        c->series[declared++] = train_series[i];
    }
    obj->train_series = c->series;
    obj->num_train_series = declared;
    obj->eval_series = eval_series;
    obj->num_eval_series = sizeof eval_series / sizeof eval_series[0];
    obj->num_train_sums = NUM_SUMS;
    obj->multi_pass = c->adversarial > 0 || c->vat > 0;
    obj->best_metric = "accuracy";
    obj->valid_split_code = REEL_SPLIT_VALID;
    *out = obj;
    return 0;
}

const reel_objective_kind reel_objective_kind_classify = {
    "classify", &classify_keys, REEL_OUTPUT_DOCUMENT, classify_resolve, classify_create,
};
