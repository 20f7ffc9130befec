/* The bag-of-words classifier (course part 1a):
 *   mean of word embeddings (B,E) -> linear (B,H) -> batch norm -> ReLU -> dropout -> linear -> one logit.
 * With batch norm the hidden linear layer has no bias: batch norm subtracts any constant shift, so that
 * bias would have a gradient of exactly zero, and Adam would turn its rounding noise into full-size random
 * steps (different on every machine and rank count) while changing nothing the model computes.
 * Batch norm uses the statistics of the global batch, so the model computes the same function whatever
 * the number of ranks; dropout masks are keyed by sample index for the same reason. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reel/layers.h"
#include "reel/model.h"

enum { BN_MOMENTUM_PERCENT = 10 };
static const float bn_eps = 1e-5f;

typedef struct {
    size_t E, H;
    float dropout;
    int batch_norm;
    /* tensor indices */
    size_t embedding, hidden_w, hidden_b, bn_w, bn_b, out_w, out_b, running_mean, running_var;
    /* activations and their gradients, (max_batch, width) each */
    float *mean_embedding, *hidden, *normed, *relu, *mask, *dropped;
    float *d_mean_embedding, *d_hidden, *d_normed, *d_relu, *d_dropped;
    reel_batchnorm_cache bn_cache;
} bow_impl;

static void bow_forward(reel_model *model, const reel_batch *batch, int training, float *logits,
                        const reel_comm *comm) {
    bow_impl *m = model->impl;
    size_t B = batch->size, E = m->E, H = m->H;
    REEL_CHECK(B <= model->max_batch, NULL, "batch of %zu rows exceeds the model's %zu", B, model->max_batch);
    const reel_store *p = &model->params, *s = &model->state;

    reel_embedding_bag_forward(m->mean_embedding, batch->ids, batch->offsets, reel_store_view(p, m->embedding), B, E);
    reel_linear_forward(m->hidden, m->mean_embedding, reel_store_view(p, m->hidden_w),
                        m->batch_norm ? NULL : reel_store_view(p, m->hidden_b), B, E, H);
    const float *after_norm = m->hidden;
    if (m->batch_norm) {
        if (training)
            reel_batchnorm_forward_train(m->normed, &m->bn_cache, m->hidden, reel_store_view(p, m->bn_w),
                                         reel_store_view(p, m->bn_b), reel_store_view(s, m->running_mean),
                                         reel_store_view(s, m->running_var), B, H, BN_MOMENTUM_PERCENT / 100.0f,
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
    reel_linear_forward(logits, features, reel_store_view(p, m->out_w), reel_store_view(p, m->out_b), B, H, 1);
}

static void bow_backward(reel_model *model, const reel_batch *batch, const float *dlogits, const reel_comm *comm) {
    bow_impl *m = model->impl;
    size_t B = batch->size, E = m->E, H = m->H;
    const reel_store *p = &model->params;
    int dropped = m->dropout > 0.0f;
    const float *features = dropped ? m->dropped : m->relu;

    memset(m->d_dropped, 0, B * H * sizeof(float));
    reel_linear_backward(m->d_dropped, reel_store_grad_view(p, m->out_w), reel_store_grad_view(p, m->out_b), dlogits,
                         features, reel_store_view(p, m->out_w), B, H, 1);
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
                                m->d_normed, &m->bn_cache, reel_store_view(p, m->bn_w), B, H, comm);
        d_hidden = m->d_hidden;
    }
    memset(m->d_mean_embedding, 0, B * E * sizeof(float));
    reel_linear_backward(m->d_mean_embedding, reel_store_grad_view(p, m->hidden_w),
                         m->batch_norm ? NULL : reel_store_grad_view(p, m->hidden_b), d_hidden, m->mean_embedding, reel_store_view(p, m->hidden_w), B, E, H);
    reel_embedding_bag_backward(reel_store_grad_view(p, m->embedding), m->d_mean_embedding, batch->ids, batch->offsets,
                                B, E);
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
    reel_init_uniform(reel_store_view(p, m->out_w), m->H, out_bound, seed, (uint32_t)m->out_w);
    reel_init_uniform(reel_store_view(p, m->out_b), 1, out_bound, seed, (uint32_t)m->out_b);
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
    float *buffers[] = {m->mean_embedding, m->hidden, m->normed, m->relu, m->mask, m->dropped,
                        m->d_mean_embedding, m->d_hidden, m->d_normed, m->d_relu, m->d_dropped,
                        m->bn_cache.xhat, m->bn_cache.inv_std};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
    free(m->bn_cache.scratch);
    free(m);
}

static const reel_model_ops bow_ops = {bow_forward, bow_backward, bow_init, bow_destroy};

int reel_bow_create(reel_model **out, const reel_config *cfg, size_t max_batch, reel_error *err) {
    if (cfg->model.embed_dim == 0 || cfg->model.hidden_dim == 0)
        return reel_fail(err, "[model] embed_dim and hidden_dim must be positive for the bow model");
    reel_model *model = reel_calloc(1, sizeof *model);
    bow_impl *m = reel_calloc(1, sizeof *m);
    snprintf(model->type, sizeof model->type, "bow");
    model->ops = &bow_ops;
    model->impl = m;
    model->vocab_size = cfg->model.vocab_size;
    model->max_batch = max_batch ? max_batch : 1;
    model->seed = cfg->train.seed;
    m->E = cfg->model.embed_dim;
    m->H = cfg->model.hidden_dim;
    m->dropout = (float)cfg->model.dropout;
    m->batch_norm = cfg->model.batch_norm;

    reel_store_init(&model->params, 1);
    reel_store_init(&model->state, 0);
    m->embedding = reel_store_add(&model->params, "embedding/weight", 2, (size_t[]){model->vocab_size, m->E});
    m->hidden_w = reel_store_add(&model->params, "hidden/weight", 2, (size_t[]){m->H, m->E});
    if (m->batch_norm) {
        m->bn_w = reel_store_add(&model->params, "batchnorm/weight", 1, (size_t[]){m->H});
        m->bn_b = reel_store_add(&model->params, "batchnorm/bias", 1, (size_t[]){m->H});
        m->running_mean = reel_store_add(&model->state, "batchnorm/running_mean", 1, (size_t[]){m->H});
        m->running_var = reel_store_add(&model->state, "batchnorm/running_var", 1, (size_t[]){m->H});
    } else {
        m->hidden_b = reel_store_add(&model->params, "hidden/bias", 1, (size_t[]){m->H});
    }
    m->out_w = reel_store_add(&model->params, "output/weight", 2, (size_t[]){1, m->H});
    m->out_b = reel_store_add(&model->params, "output/bias", 1, (size_t[]){1});
    reel_store_allocate(&model->params);
    reel_store_allocate(&model->state);

    size_t B = model->max_batch, E = m->E, H = m->H;
    m->mean_embedding = reel_calloc(B * E, sizeof(float));
    m->d_mean_embedding = reel_calloc(B * E, sizeof(float));
    float **hidden_buffers[] = {&m->hidden, &m->normed, &m->relu, &m->mask, &m->dropped, &m->d_hidden,
                                &m->d_normed, &m->d_relu, &m->d_dropped, &m->bn_cache.xhat};
    for (size_t i = 0; i < sizeof hidden_buffers / sizeof hidden_buffers[0]; i++)
        *hidden_buffers[i] = reel_calloc(B * H, sizeof(float));
    m->bn_cache.inv_std = reel_calloc(H, sizeof(float));
    m->bn_cache.scratch = reel_calloc(2 * H + 1, sizeof(double));
    *out = model;
    return 0;
}
