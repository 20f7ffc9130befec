/* The bag-of-words classifier (course part 1a):
 *   mean of word embeddings (B,E) -> linear (B,H) -> batch norm -> ReLU -> dropout -> linear -> one logit.
 * With batch norm the hidden linear layer has no bias: batch norm subtracts any constant shift, so that
 * bias would have a gradient of exactly zero, and Adam would turn its rounding noise into full-size random
 * steps (different on every machine and rank count) while changing nothing the model computes.
 * Batch norm uses the statistics of the global batch, so the model computes the same function whatever
 * the number of ranks; dropout masks are keyed by sample index for the same reason. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reel/layers.h"
#include "reel/model.h"
#include "reel/rng.h"

enum { BN_MOMENTUM_PERCENT = 10 };
static const float bn_eps = 1e-5f;

typedef struct {
    size_t E, H;
    float dropout, word_dropout;
    int batch_norm;
    /* the documents after word dropout (training only): what forward averaged and backward must use */
    uint32_t *kept_ids;
    size_t kept_capacity, *kept_offsets;
    size_t *kept_positions; /* (kept tokens) where each kept token is in the batch: its row of input_delta */
    const uint32_t *bag_ids;
    const size_t *bag_offsets;
    const size_t *bag_positions; /* kept_positions under word dropout, NULL when every token is kept */
    /* tensor indices */
    size_t embedding, hidden_w, hidden_b, bn_w, bn_b, out_w, out_b, running_mean, running_var;
    /* activations and their gradients, (max_batch, width) each */
    float *mean_embedding, *hidden, *normed, *relu, *mask, *dropped, *logits;
    float *d_mean_embedding, *d_hidden, *d_normed, *d_relu, *d_dropped;
    reel_batchnorm_cache bn_cache;
} bow_impl;

/* Word dropout: each token of a document is left out of its average with probability p, drawn from
 * (seed, epoch, sample, position) so it does not depend on the rank. A document never loses all its
 * tokens: when every draw says drop, the token with the highest draw stays. */
static void drop_words(bow_impl *m, const reel_batch *batch, uint64_t seed) {
    size_t total = batch->offsets[batch->size];
    if (total > m->kept_capacity) {
        m->kept_capacity = total;
        m->kept_ids = reel_realloc(m->kept_ids, total * sizeof *m->kept_ids);
        m->kept_positions = reel_realloc(m->kept_positions, total * sizeof *m->kept_positions);
    }
    size_t kept = 0;
    m->kept_offsets[0] = 0;
    for (size_t b = 0; b < batch->size; b++) {
        size_t begin = batch->offsets[b], length = batch->offsets[b + 1] - begin, best = 0;
        float best_draw = -1.0f;
        uint32_t words[4];
        for (size_t t = 0; t < length; t++) {
            if (t % 4 == 0)
                reel_rng_block(words, seed, REEL_RNG_WORD_DROPOUT, (uint32_t)batch->epoch,
                               (uint32_t)batch->sample_index[b], (uint32_t)(t / 4));
            float draw = reel_rng_unit_float(words[t % 4]);
            if (draw >= m->word_dropout) {
                m->kept_positions[kept] = begin + t;
                m->kept_ids[kept++] = batch->ids[begin + t];
            }
            if (draw > best_draw) {
                best_draw = draw;
                best = t;
            }
        }
        if (length > 0 && kept == m->kept_offsets[b]) {
            m->kept_positions[kept] = begin + best;
            m->kept_ids[kept++] = batch->ids[begin + best];
        }
        m->kept_offsets[b + 1] = kept;
    }
}

/* Adversarial training: a document's average moves by the average of its (kept) tokens' deltas. */
static void add_mean_deltas(bow_impl *m, const float *delta, size_t B) {
    size_t E = m->E;
    for (size_t b = 0; b < B; b++) {
        size_t begin = m->bag_offsets[b], end = m->bag_offsets[b + 1];
        if (end == begin) continue;
        float *mean = m->mean_embedding + b * E, scale = 1.0f / (float)(end - begin);
        for (size_t i = begin; i < end; i++) {
            const float *row = delta + (m->bag_positions ? m->bag_positions[i] : i) * E;
            for (size_t e = 0; e < E; e++) mean[e] += scale * row[e];
        }
    }
}

/* Its gradient: every kept token's delta receives its document's average gradient over the count, a
 * dropped token none. */
static void mean_delta_grad(const bow_impl *m, float *input_grad, const reel_batch *batch) {
    size_t E = m->E, B = batch->size;
    memset(input_grad, 0, batch->offsets[B] * E * sizeof(float));
    for (size_t b = 0; b < B; b++) {
        size_t begin = m->bag_offsets[b], end = m->bag_offsets[b + 1];
        if (end == begin) continue;
        const float *d_mean = m->d_mean_embedding + b * E;
        float scale = 1.0f / (float)(end - begin);
        for (size_t i = begin; i < end; i++) {
            float *row = input_grad + (m->bag_positions ? m->bag_positions[i] : i) * E;
            for (size_t e = 0; e < E; e++) row[e] = scale * d_mean[e];
        }
    }
}

static void bow_forward(reel_model *model, const reel_batch *batch, int training, reel_output *out,
                        const reel_comm *comm) {
    bow_impl *m = model->impl;
    size_t B = batch->size, E = m->E, H = m->H;
    REEL_CHECK(B <= model->max_batch, NULL, "batch of %zu rows exceeds the model's %zu", B, model->max_batch);
    const reel_store *p = &model->params, *s = &model->state;

    m->bag_ids = batch->ids;
    m->bag_offsets = batch->offsets;
    if (training && m->word_dropout > 0.0f) {
        drop_words(m, batch, model->seed);
        m->bag_ids = m->kept_ids;
        m->bag_offsets = m->kept_offsets;
    }
    reel_embedding_bag_forward(m->mean_embedding, m->bag_ids, m->bag_offsets, reel_store_view(p, m->embedding), B, E);
    m->bag_positions = m->bag_ids == batch->ids ? NULL : m->kept_positions;
    if (model->input_delta) add_mean_deltas(m, model->input_delta, B);
    reel_linear_forward(m->hidden, m->mean_embedding, reel_store_view(p, m->hidden_w),
                        m->batch_norm ? NULL : reel_store_view(p, m->hidden_b), B, E, H);
    const float *after_norm = m->hidden;
    if (m->batch_norm) {
        if (training)
            reel_batchnorm_forward_train(m->normed, &m->bn_cache, m->hidden, reel_store_view(p, m->bn_w),
                                         reel_store_view(p, m->bn_b),
                                         model->frozen_statistics ? NULL : reel_store_view(s, m->running_mean),
                                         model->frozen_statistics ? NULL : reel_store_view(s, m->running_var), NULL,
                                         B, H, BN_MOMENTUM_PERCENT / 100.0f,
                                         bn_eps, comm);
        else
            reel_batchnorm_forward_eval(m->normed, m->hidden, reel_store_view(p, m->bn_w), reel_store_view(p, m->bn_b),
                                        reel_store_view(s, m->running_mean), reel_store_view(s, m->running_var), B,
                                        H, bn_eps);
        after_norm = m->normed;
    }
    reel_relu_forward(m->relu, after_norm, B * H);
    const float *features = m->relu;
    if (training && m->dropout > 0.0f) {
        reel_dropout_mask(m->mask, batch->sample_index, B, H, m->dropout, model->seed, batch->epoch, 0);
        reel_dropout_forward(m->dropped, m->relu, m->mask, B * H);
        features = m->dropped;
    }
    float *logits = m->logits;
    *out = (reel_output){.rows = B, .width = model->num_outputs, .logits = logits};
    reel_linear_forward(logits, features, reel_store_view(p, m->out_w), reel_store_view(p, m->out_b), B, H,
                        model->num_outputs);
}

static void bow_backward(reel_model *model, const reel_batch *batch, const float *dlogits, const reel_comm *comm) {
    bow_impl *m = model->impl;
    size_t B = batch->size, E = m->E, H = m->H;
    const reel_store *p = &model->params;
    int dropped = m->dropout > 0.0f;
    const float *features = dropped ? m->dropped : m->relu;

    memset(m->d_dropped, 0, B * H * sizeof(float));
    reel_linear_backward(m->d_dropped, reel_store_grad_view(p, m->out_w), reel_store_grad_view(p, m->out_b), dlogits,
                         features, reel_store_view(p, m->out_w), B, H, model->num_outputs);
    reel_store_grad_ready(p, 2); /* the output layer is final */
    const float *d_relu_out = m->d_dropped;
    if (dropped) {
        memset(m->d_relu, 0, B * H * sizeof(float));
        reel_dropout_backward(m->d_relu, m->d_dropped, m->mask, B * H);
        d_relu_out = m->d_relu;
    }
    memset(m->d_normed, 0, B * H * sizeof(float));
    reel_relu_backward(m->d_normed, d_relu_out, m->batch_norm ? m->normed : m->hidden, B * H);
    const float *d_hidden = m->d_normed;
    if (m->batch_norm) {
        memset(m->d_hidden, 0, B * H * sizeof(float));
        reel_batchnorm_backward(m->d_hidden, reel_store_grad_view(p, m->bn_w), reel_store_grad_view(p, m->bn_b),
                                m->d_normed, &m->bn_cache, reel_store_view(p, m->bn_w), NULL, B, H, comm);
        d_hidden = m->d_hidden;
    }
    memset(m->d_mean_embedding, 0, B * E * sizeof(float));
    reel_linear_backward(m->d_mean_embedding, reel_store_grad_view(p, m->hidden_w),
                         m->batch_norm ? NULL : reel_store_grad_view(p, m->hidden_b), d_hidden, m->mean_embedding, reel_store_view(p, m->hidden_w), B, E, H);
    reel_store_grad_ready(p, 1); /* the hidden layer and its batch norm are final */
    reel_embedding_bag_backward(reel_store_grad_view(p, m->embedding), m->d_mean_embedding, m->bag_ids,
                                m->bag_offsets, B, E);
    if (model->input_grad) mean_delta_grad(m, model->input_grad, batch);
}

/* PyTorch's defaults, so results compare with the reference implementation: embeddings N(0, 1), linear
 * weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)), batch norm scale 1 and shift 0. */
static void bow_init(reel_model *model, uint64_t seed) {
    bow_impl *m = model->impl;
    reel_store *p = &model->params, *s = &model->state;
    reel_init_normal(reel_store_view(p, m->embedding), p->tensors[m->embedding].count, 1.0f, seed, (uint32_t)m->embedding);
    float hidden_bound = 1.0f / sqrtf((float)m->E), out_bound = 1.0f / sqrtf((float)m->H);
    reel_init_uniform(reel_store_view(p, m->hidden_w), m->H * m->E, hidden_bound, seed, (uint32_t)m->hidden_w);
    if (!m->batch_norm) reel_init_uniform(reel_store_view(p, m->hidden_b), m->H, hidden_bound, seed, (uint32_t)m->hidden_b);
    reel_init_uniform(reel_store_view(p, m->out_w), model->num_outputs * m->H, out_bound, seed, (uint32_t)m->out_w);
    reel_init_uniform(reel_store_view(p, m->out_b), model->num_outputs, out_bound, seed, (uint32_t)m->out_b);
    if (m->batch_norm) {
        reel_init_constant(reel_store_view(p, m->bn_w), m->H, 1.0f);
        reel_init_constant(reel_store_view(p, m->bn_b), m->H, 0.0f);
        reel_init_constant(reel_store_view(s, m->running_mean), m->H, 0.0f);
        reel_init_constant(reel_store_view(s, m->running_var), m->H, 1.0f);
    }
}

static void bow_destroy(reel_model *model) {
    bow_impl *m = model->impl;
    if (!m) return;
    float *buffers[] = {m->mean_embedding, m->hidden, m->normed, m->relu, m->mask, m->dropped, m->logits,
                        m->d_mean_embedding, m->d_hidden, m->d_normed, m->d_relu, m->d_dropped,
                        m->bn_cache.xhat, m->bn_cache.inv_std};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
    free(m->bn_cache.scratch);
    free(m->kept_ids);
    free(m->kept_offsets);
    free(m->kept_positions);
    free(m);
}

static const reel_model_ops bow_ops = {bow_forward, bow_backward, bow_init, bow_destroy, NULL};

/* [model] keys of the bag-of-words model. */
typedef struct bow_options {
    size_t hidden_dim;
    double dropout;      /* probability of zeroing a hidden unit */
    double word_dropout; /* probability of leaving a token out of the average while training */
    int batch_norm;      /* 1 = batch norm after the hidden linear layer */
    size_t num_classes;  /* 0: from the data; 2: one logit (BCE); K > 2: K logits (softmax) */
} bow_options;

static const reel_key bow_keys[] = {
    REEL_KEY_SIZE_OF(bow_options, "model", "hidden_dim", hidden_dim, "256", REEL_BOUND_MIN, 1, "width of the hidden layer"),
    REEL_KEY_DOUBLE_OF(bow_options, "model", "dropout", dropout, "0.5", REEL_BOUND_MIN | REEL_BOUND_MAX_OPEN, 0, 1,
                       "probability of zeroing a hidden unit during training"),
    REEL_KEY_DOUBLE_OF(bow_options, "model", "word_dropout", word_dropout, "0", REEL_BOUND_MIN | REEL_BOUND_MAX_OPEN, 0, 1,
                       "probability of leaving each token out of a document's average while training (0 disables)"),
    REEL_KEY_BOOL_OF(bow_options, "model", "batch_norm", batch_norm, "true",
                     "batch normalisation after the hidden linear layer"),
    REEL_KEY_SIZE_OF(bow_options, "model", "num_classes", num_classes, "0", 0, 0,
                     "classes of the labels; 0 takes them from the data (2: one logit, K > 2: K logits)"),
};
static const reel_key_table bow_key_table = {bow_keys, sizeof bow_keys / sizeof bow_keys[0], sizeof(bow_options)};

static int bow_create(reel_model **out, const reel_config *cfg, size_t max_batch, reel_error *err) {
    const bow_options *o = reel_config_model_options(cfg);
    reel_model *model = reel_calloc(1, sizeof *model);
    bow_impl *m = reel_calloc(1, sizeof *m);
    snprintf(model->type, sizeof model->type, "bow");
    model->ops = &bow_ops;
    model->impl = m;
    model->vocab_size = cfg->model.vocab_size;
    model->output = REEL_OUTPUT_DOCUMENT;
    model->num_outputs = reel_model_outputs(o->num_classes);
    model->max_batch = max_batch ? max_batch : 1;
    model->seed = cfg->train.seed;
    model->input_dim = cfg->model.embed_dim;
    m->E = cfg->model.embed_dim;
    m->H = o->hidden_dim;
    m->dropout = (float)o->dropout;
    m->word_dropout = (float)o->word_dropout;
    m->batch_norm = o->batch_norm;

    reel_store_init(&model->params, 1);
    reel_store_init(&model->state, 0);
    m->embedding = reel_store_add_sized(&model->params, REEL_TENSOR_EMBEDDING, 2, (size_t[]){model->vocab_size, m->E},
                                        "[model] vocab_size x embed_dim");
    reel_store_mark_transfer(&model->params, m->embedding); /* the embedding alone is shared with other models */
    reel_store_set_group(&model->params, 1); /* the hidden layer and its batch norm */
    reel_store_set_group(&model->state, 1);
    m->hidden_w = reel_store_add_sized(&model->params, "hidden/weight", 2, (size_t[]){m->H, m->E},
                                       "[model] hidden_dim x embed_dim");
    if (m->batch_norm) {
        m->bn_w = reel_store_add_sized(&model->params, "batchnorm/weight", 1, (size_t[]){m->H}, "[model] hidden_dim");
        m->bn_b = reel_store_add_sized(&model->params, "batchnorm/bias", 1, (size_t[]){m->H}, "[model] hidden_dim");
        m->running_mean = reel_store_add_sized(&model->state, "batchnorm/running_mean", 1, (size_t[]){m->H},
                                                "[model] hidden_dim");
        m->running_var = reel_store_add_sized(&model->state, "batchnorm/running_var", 1, (size_t[]){m->H},
                                               "[model] hidden_dim");
    } else {
        m->hidden_b = reel_store_add_sized(&model->params, "hidden/bias", 1, (size_t[]){m->H}, "[model] hidden_dim");
    }
    reel_store_set_group(&model->params, 2);
    m->out_w = reel_store_add_sized(&model->params, "output/weight", 2, (size_t[]){model->num_outputs, m->H},
                                    "outputs x [model] hidden_dim");
    m->out_b = reel_store_add(&model->params, "output/bias", 1, (size_t[]){model->num_outputs});
    reel_store_allocate(&model->params);
    reel_store_allocate(&model->state);

    /* activations: B is the batch's share of a rank (training: [train] batch_size over the ranks) */
    size_t B = model->max_batch, E = m->E, H = m->H;
    const char *by_embed = "[train] batch_size (per rank) x [model] embed_dim";
    const char *by_hidden = "[train] batch_size (per rank) x [model] hidden_dim";
    m->mean_embedding = reel_calloc_for(reel_size_mul(B, E), sizeof(float), "the mean embeddings", by_embed);
    m->d_mean_embedding = reel_calloc_for(reel_size_mul(B, E), sizeof(float), "their gradient", by_embed);
    float **hidden_buffers[] = {&m->hidden, &m->normed, &m->relu, &m->mask, &m->dropped, &m->d_hidden,
                                &m->d_normed, &m->d_relu, &m->d_dropped, &m->bn_cache.xhat};
    for (size_t i = 0; i < sizeof hidden_buffers / sizeof hidden_buffers[0]; i++)
        *hidden_buffers[i] = reel_calloc_for(reel_size_mul(B, H), sizeof(float), "a hidden activation", by_hidden);
    m->bn_cache.inv_std = reel_calloc(H, sizeof(float));
    m->logits = reel_calloc_for(reel_size_mul(B, model->num_outputs), sizeof(float), "the logits",
                                "[train] batch_size (per rank) x outputs");
    m->bn_cache.scratch = reel_calloc(2 * H + 1, sizeof(double));
    m->kept_offsets = reel_calloc_for(B < SIZE_MAX ? B + 1 : B, sizeof(size_t), "the word-dropout offsets",
                                      "[train] batch_size (per rank)");
    *out = model;
    return 0;
}

const reel_model_kind reel_model_kind_bow = {"bow", bow_create, &bow_key_table, "classify"};
