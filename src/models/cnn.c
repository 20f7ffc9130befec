/* The convolutional text classifier ([model] type = cnn), Kim (2014)'s CNN-rand / CNN-static family:
 *   x = the embedded tokens of each document                           (N, E) over the batch's tokens
 *   for each filter width w in [model] widths: conv over the tokens with `filters` filters, ReLU, max over
 *     positions (layers.h's reel_conv_maxpool)                          (B, F) each
 *   features = the widths' pooled values side by side                   (B, W F), W widths
 *   dropout on the features (training), then a linear layer to one logit (two classes) or K logits.
 * Documents are read ragged, as the batch holds them: no window crosses a document and padding never
 * exists, so a document's logits do not depend on the rest of its batch. A document shorter than a width
 * is read as one window padded with zeros (Kim pads short sentences the same way).
 *
 * Tensors: embedding/weight (V, E), shared with other models (init_from, embed_from, export vectors);
 * conv{w}/weight (w F, E) (block k: the weights that read a window's k-th token), conv{w}/bias (F);
 * output/weight (K, W F), output/bias (K). Initialisation: the embedding U(-0.25, 0.25), Kim's for words
 * without pretrained vectors (PyTorch's N(0, 1) left the model at 86% on IMDb, underfitting: Adam's steps of
 * about the learning rate barely move rows of unit scale, so the words stayed near random features); the
 * convolutions and the output PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = w E and W F.
 * Adversarial training perturbs the embedded tokens (input_delta) and reads their gradient (input_grad). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/layers.h"
#include "reel/model.h"

enum { MAX_WIDTHS = 8, DROPOUT_ID = 301 };

typedef struct {
    size_t E, F, num_widths, widths[MAX_WIDTHS], max_width;
    float dropout;
    int dropping; /* the last forward was in training mode with dropout */
    size_t embedding, conv_w[MAX_WIDTHS], conv_b[MAX_WIDTHS], out_w, out_b;
    /* per token of the batch, grown as needed */
    size_t token_capacity;
    float *x, *dx;  /* (N, E) the embedded tokens and their gradient */
    float *scratch; /* (N, max_width F) the convolution's products */
    /* per document, for max_batch documents */
    float *pooled;   /* (W, B, F) each width's pooled values */
    size_t *argmax;  /* (W, B, F) */
    float *features, *mask, *dropped, *logits; /* (B, W F) x3, (B, K) */
    float *d_features, *d_pooled;              /* (B, W F), (B, F) */
} cnn_impl;

static void reserve_tokens(cnn_impl *m, size_t N) {
    if (N <= m->token_capacity) return;
    m->token_capacity = N;
    free(m->x), free(m->dx), free(m->scratch);
    m->x = reel_calloc_for(reel_size_mul(N, m->E), sizeof(float), "the embedded tokens", "tokens per rank x embed_dim");
    m->dx = reel_calloc_for(reel_size_mul(N, m->E), sizeof(float), "their gradient", "tokens per rank x embed_dim");
    m->scratch = reel_calloc_for(reel_size_mul(N, m->max_width * m->F), sizeof(float), "the convolution's products",
                                 "tokens per rank x the widest filter x filters");
}

static void cnn_forward(reel_model *model, const reel_batch *batch, int training, reel_output *out,
                        const reel_comm *comm) {
    (void)comm; /* nothing here reduces over the ranks */
    cnn_impl *m = model->impl;
    const reel_store *p = &model->params;
    size_t B = batch->size, E = m->E, F = m->F, WF = m->num_widths * F, N = batch->offsets[B];
    REEL_CHECK(B <= model->max_batch, NULL, "batch of %zu rows exceeds the model's %zu", B, model->max_batch);
    reserve_tokens(m, N ? N : 1);
    const float *table = reel_store_view(p, m->embedding);
    for (size_t i = 0; i < N; i++) memcpy(m->x + i * E, table + (size_t)batch->ids[i] * E, E * sizeof(float));
    if (model->input_delta)
        for (size_t i = 0; i < N * E; i++) m->x[i] += model->input_delta[i];
    for (size_t k = 0; k < m->num_widths; k++) {
        float *pooled = m->pooled + k * model->max_batch * F;
        reel_conv_maxpool_forward(pooled, m->argmax + k * model->max_batch * F, m->scratch, m->x, batch->offsets, B, E,
                                  reel_store_view(p, m->conv_w[k]), reel_store_view(p, m->conv_b[k]), m->widths[k], F);
        for (size_t b = 0; b < B; b++) memcpy(m->features + b * WF + k * F, pooled + b * F, F * sizeof(float));
    }
    const float *features = m->features;
    m->dropping = training && m->dropout > 0.0f;
    if (m->dropping) {
        reel_dropout_mask(m->mask, batch->sample_index, B, WF, m->dropout, model->seed, batch->epoch, DROPOUT_ID);
        reel_dropout_forward(m->dropped, m->features, m->mask, B * WF);
        features = m->dropped;
    }
    reel_linear_forward(m->logits, features, reel_store_view(p, m->out_w), reel_store_view(p, m->out_b), B, WF,
                        model->num_outputs);
    *out = (reel_output){.rows = B, .width = model->num_outputs, .logits = m->logits};
}

static void cnn_backward(reel_model *model, const reel_batch *batch, const float *dlogits, const reel_comm *comm) {
    (void)comm;
    cnn_impl *m = model->impl;
    const reel_store *p = &model->params;
    size_t B = batch->size, E = m->E, F = m->F, WF = m->num_widths * F, N = batch->offsets[B];
    memset(m->d_features, 0, B * WF * sizeof(float));
    reel_linear_backward(m->d_features, reel_store_grad_view(p, m->out_w), reel_store_grad_view(p, m->out_b), dlogits,
                         m->dropping ? m->dropped : m->features, reel_store_view(p, m->out_w), B, WF,
                         model->num_outputs);
    reel_store_grad_ready(p, 2); /* the output layer is final */
    if (m->dropping) /* in place: the gradient of the features before dropout */
        for (size_t i = 0; i < B * WF; i++) m->d_features[i] *= m->mask[i];
    memset(m->dx, 0, N * E * sizeof(float));
    for (size_t k = 0; k < m->num_widths; k++) {
        for (size_t b = 0; b < B; b++) memcpy(m->d_pooled + b * F, m->d_features + b * WF + k * F, F * sizeof(float));
        reel_conv_maxpool_backward(m->dx, reel_store_grad_view(p, m->conv_w[k]), reel_store_grad_view(p, m->conv_b[k]),
                                   m->d_pooled, m->pooled + k * model->max_batch * F,
                                   m->argmax + k * model->max_batch * F, m->scratch, m->x, batch->offsets, B, E,
                                   reel_store_view(p, m->conv_w[k]), m->widths[k], F);
    }
    reel_store_grad_ready(p, 1); /* the convolutions are final */
    float *dtable = reel_store_grad_view(p, m->embedding);
    for (size_t i = 0; i < N; i++) {
        float *row = dtable + (size_t)batch->ids[i] * E;
        const float *g = m->dx + i * E;
        for (size_t e = 0; e < E; e++) row[e] += g[e];
    }
    if (model->input_grad) memcpy(model->input_grad, m->dx, N * E * sizeof(float));
}

static void cnn_init(reel_model *model, uint64_t seed) {
    cnn_impl *m = model->impl;
    reel_store *p = &model->params;
    reel_init_uniform(reel_store_view(p, m->embedding), p->tensors[m->embedding].count, 0.25f, seed, (uint32_t)m->embedding);
    for (size_t k = 0; k < m->num_widths; k++) {
        float bound = 1.0f / sqrtf((float)(m->widths[k] * m->E));
        reel_init_uniform(reel_store_view(p, m->conv_w[k]), p->tensors[m->conv_w[k]].count, bound, seed, (uint32_t)m->conv_w[k]);
        reel_init_uniform(reel_store_view(p, m->conv_b[k]), m->F, bound, seed, (uint32_t)m->conv_b[k]);
    }
    float bound = 1.0f / sqrtf((float)(m->num_widths * m->F));
    reel_init_uniform(reel_store_view(p, m->out_w), p->tensors[m->out_w].count, bound, seed, (uint32_t)m->out_w);
    reel_init_uniform(reel_store_view(p, m->out_b), model->num_outputs, bound, seed, (uint32_t)m->out_b);
}

static void cnn_destroy(reel_model *model) {
    cnn_impl *m = model->impl;
    if (!m) return;
    float *buffers[] = {m->x, m->dx, m->scratch, m->pooled, m->features, m->mask, m->dropped, m->logits,
                        m->d_features, m->d_pooled};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
    free(m->argmax);
    free(m);
}

static const reel_model_ops cnn_ops = {cnn_forward, cnn_backward, cnn_init, cnn_destroy, NULL, NULL};

/* [model] keys of the CNN. */
typedef struct cnn_options {
    char widths[REEL_LIST_MAX];
    size_t filters;
    double dropout;
    size_t num_classes;
} cnn_options;

static const reel_key cnn_keys[] = {
    REEL_KEY_STRING_OF(cnn_options, "model", "widths", widths, "3,4,5",
                       "filter widths in tokens, comma-separated (Kim 2014: 3,4,5); each has `filters` filters"),
    REEL_KEY_SIZE_OF(cnn_options, "model", "filters", filters, "100", REEL_BOUND_MIN, 1, "filters of each width"),
    REEL_KEY_DOUBLE_OF(cnn_options, "model", "dropout", dropout, "0.5", REEL_BOUND_MIN | REEL_BOUND_MAX_OPEN, 0, 1,
                       "dropout on the pooled features during training"),
    REEL_KEY_SIZE_OF(cnn_options, "model", "num_classes", num_classes, "0", 0, 0,
                     "classes of the labels; 0 takes them from the data (2: one logit, K > 2: K logits)"),
};
static const reel_key_table cnn_key_table = {cnn_keys, sizeof cnn_keys / sizeof cnn_keys[0], sizeof(cnn_options)};

static int cnn_create(reel_model **out, const reel_config *cfg, size_t max_batch, reel_error *err) {
    const cnn_options *o = reel_config_model_options(cfg);
    size_t widths[MAX_WIDTHS];
    int count = reel_config_size_list(o->widths, "[model] widths", widths, MAX_WIDTHS, err);
    if (count < 0) return -1;
    if (count == 0) return reel_fail(err, "[model] widths is empty: give at least one filter width (e.g. 3,4,5)");
    for (int i = 0; i < count; i++) {
        if (widths[i] == 0) return reel_fail(err, "[model] widths = %s: width %d is 0; a filter reads at least one token", o->widths, i + 1);
        for (int j = 0; j < i; j++)
            if (widths[j] == widths[i])
                return reel_fail(err, "[model] widths = %s: width %zu is given twice; give each width once and set "
                                 "[model] filters for more filters", o->widths, widths[i]);
    }
    cnn_impl *m = reel_calloc(1, sizeof *m);
    reel_model *model = reel_classifier_new("cnn", &cnn_ops, m, cfg, o->num_classes, max_batch);
    m->E = cfg->model.embed_dim;
    m->F = o->filters;
    m->dropout = (float)o->dropout;
    m->num_widths = (size_t)count;
    for (size_t k = 0; k < m->num_widths; k++) {
        m->widths[k] = widths[k];
        if (widths[k] > m->max_width) m->max_width = widths[k];
    }

    reel_store_init(&model->params, 1);
    reel_store_init(&model->state, 0);
    m->embedding = reel_store_add_sized(&model->params, REEL_TENSOR_EMBEDDING, 2, (size_t[]){model->vocab_size, m->E},
                                        "[model] vocab_size x embed_dim");
    reel_store_mark_transfer(&model->params, m->embedding);
    reel_store_set_group(&model->params, 1);
    for (size_t k = 0; k < m->num_widths; k++) {
        char name[64];
        snprintf(name, sizeof name, "conv%zu/weight", m->widths[k]);
        m->conv_w[k] = reel_store_add_sized(&model->params, name, 2, (size_t[]){m->widths[k] * m->F, m->E},
                                            "a width x [model] filters x embed_dim");
        snprintf(name, sizeof name, "conv%zu/bias", m->widths[k]);
        m->conv_b[k] = reel_store_add_sized(&model->params, name, 1, (size_t[]){m->F}, "[model] filters");
    }
    reel_store_set_group(&model->params, 2);
    size_t WF = m->num_widths * m->F;
    m->out_w = reel_store_add_sized(&model->params, "output/weight", 2, (size_t[]){model->num_outputs, WF},
                                    "outputs x widths x [model] filters");
    m->out_b = reel_store_add(&model->params, "output/bias", 1, (size_t[]){model->num_outputs});
    reel_store_allocate(&model->params);
    reel_store_allocate(&model->state);

    size_t B = model->max_batch;
    const char *by_features = "[train] batch_size (per rank) x widths x [model] filters";
    m->pooled = reel_calloc_for(reel_size_mul(B, WF), sizeof(float), "the pooled features", by_features);
    m->argmax = reel_calloc_for(reel_size_mul(B, WF), sizeof(size_t), "their positions", by_features);
    float **buffers[] = {&m->features, &m->mask, &m->dropped, &m->d_features};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++)
        *buffers[i] = reel_calloc_for(reel_size_mul(B, WF), sizeof(float), "the features", by_features);
    m->d_pooled = reel_calloc_for(reel_size_mul(B, m->F), sizeof(float), "a width's pooled gradient",
                                  "[train] batch_size (per rank) x [model] filters");
    m->logits = reel_calloc_for(reel_size_mul(B, model->num_outputs), sizeof(float), "the logits",
                                "[train] batch_size (per rank) x outputs");
    *out = model;
    return 0;
}

const reel_model_kind reel_model_kind_cnn = {"cnn", cnn_create, &cnn_key_table, "classify"};
