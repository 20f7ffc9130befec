/* The Transformer classifier ([model] type = transformer): the GPT's stack (src/models/xf_stack.c, the
 * same code), read bidirectionally as an encoder or causally as a GPT was trained, its features pooled
 * over each document and a linear head:
 *   windows: each document read in windows of max_context tokens (one window when it fits; an empty
 *     document is one empty window), each window a sequence of the stack starting at position 0
 *   features = the stack's final LayerNorm over each window's tokens   (the windows' tokens, C), packed
 *   pooled = pooling over a window's tokens (max, mean, last, or concat: last | max | mean, as ULMFiT)
 *   a document's pooled features combine its windows': the mean weighted by the windows' tokens (the
 *     mean over the whole document), the max over the windows' maxes, the last token of the last window
 *   dropout on the document's features (head_dropout, training), then a linear layer to one logit (two
 *     classes) or K logits.
 * causal = false (the default): every token attends to every token of its window, padding never;
 * causal = true: token t sees tokens <= t, what a GPT's blocks were trained with; last pooling is then the
 * one token that has read the whole window.
 *
 * Batches are packed: the stack (src/models/xf_stack.c) runs over the windows' tokens one after another,
 * no padding ([objective] length_buckets groups documents of similar lengths, which no longer changes
 * this model's work), attention reads each window by its offset and length, positions restart at 0 in
 * each window, and pooling reads each window's rows by its offset. A document's logits (and its tokens'
 * input gradients) are bit for bit the same alone or in any batch (tests/test_models.c).
 *
 * Training reads what the classify objective hands it: a random window of [data] seq_len tokens per
 * document (seq_len <= max_context: one window of the stack). Dropout masks are keyed by the document's
 * sample index and the position in the window, so windows of one document would share them: a training
 * document longer than max_context is refused when the stack drops anything. Evaluation, predict, serve
 * and analyze read whole documents (up to [data] max_tokens) in windows.
 *
 * Tensors: the stack's, named as the GPT's (embedding/weight, position/weight, block{l}/..., final_ln/...),
 * so [model] init_from a GPT checkpoint loads all of them by name (an untied GPT's decoder/weight is not
 * used), and output/weight (K, P), output/bias (K), P = C or 3 C for concat. Groups: the embeddings 0,
 * block l l + 1, the final norm L + 1, the head L + 2, so [optimizer] freeze names embedding, position,
 * block0 ... and final_ln, gradual unfreezing releases them block by block from the top, and
 * layer_lr_decay gives each block its rate. Initialisation: GPT-2's (the head's weight N(0, 0.02), its
 * bias 0). Adversarial training and VAT perturb the embedded tokens. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/layers.h"
#include "reel/model.h"
#include "xf_stack.h"

enum { DROPOUT_ID = 302 };

typedef struct transformer_options {
    xf_stack_options stack;
    int causal;
    char pooling[REEL_NAME_MAX];
    double head_dropout;
    size_t num_classes;
} transformer_options;

static const char *const poolings[] = {"mean", "max", "last", "concat", NULL};

static const reel_key transformer_keys[] = {
    XF_STACK_KEYS_SHAPE(transformer_options,
                        "positions the encoder reads at once (the learned position table's rows); documents longer "
                        "than it are read in windows of max_context tokens whose pooled features are combined; with "
                        "dropout, [data] seq_len (the training window) may not exceed it"),
    REEL_KEY_BOOL_OF(transformer_options, "model", "causal", causal, "false",
                     "false: each token attends to every token of its window (an encoder); true: to the tokens before "
                     "it, as a GPT's blocks were trained (set it with init_from a gpt checkpoint)"),
    REEL_KEY_CHOICE_OF(transformer_options, "model", "pooling", pooling, "mean", poolings,
                       "pooling of the features over a document's tokens: mean, max, last (the last token: the one "
                       "that has read everything when causal) or concat (last, max and mean side by side, as ULMFiT)"),
    XF_STACK_KEYS_REST(transformer_options, "dropout on the embeddings and on each block's two residual branches, in "
                                            "training"),
    REEL_KEY_DOUBLE_OF(transformer_options, "model", "head_dropout", head_dropout, "0",
                       REEL_BOUND_MIN | REEL_BOUND_MAX_OPEN, 0, 1,
                       "dropout on the pooled features before the output layer, in training"),
    REEL_KEY_SIZE_OF(transformer_options, "model", "num_classes", num_classes, "0", 0, 0,
                     "classes of the labels; 0 takes them from the data (2: one logit, K > 2: K logits)"),
};
static const reel_key_table transformer_key_table = {transformer_keys, sizeof transformer_keys / sizeof transformer_keys[0],
                                                     sizeof(transformer_options)};

typedef struct {
    xf_stack stack;
    reel_pool_mode pooling;
    size_t P, K;        /* pooled width, outputs */
    float head_dropout;
    int dropping;       /* the last forward dropped the pooled features */
    size_t out_w, out_b;
    /* the windows of the batch: a batch of the stack over the same ids */
    reel_batch windows;
    size_t *win_offsets;   /* (windows + 1) */
    uint64_t *win_sample;  /* (windows) the document's sample index */
    size_t *doc_first;     /* (B + 1) the windows of document b: [doc_first[b], doc_first[b + 1]) */
    size_t win_cap, doc_cap;
    float *win_pooled, *d_win; /* (windows, P) */
    size_t *win_argmax;        /* (windows, C) */
    size_t win_pooled_cap, d_win_cap, win_argmax_cap;
    float *d_seq;              /* (the windows' tokens, C) the packed features' gradient */
    size_t d_seq_cap;
    size_t *max_from;          /* (B, C) the window of each max-pooled value */
    float *features, *mask, *dropped, *d_features; /* (B, P) */
    float *logits;             /* (B, K) */
} transformer_impl;

static void *grow(void *buffer, size_t *capacity, size_t needed, size_t element) {
    if (needed <= *capacity) return buffer;
    free(buffer);
    *capacity = needed;
    return reel_malloc(needed * element);
}

/* The part of a pooled row of each mode: concat lays last, max and mean side by side. */
static size_t part_offset(reel_pool_mode pooling, reel_pool_mode part, size_t C) {
    if (pooling != REEL_POOL_CONCAT) return 0;
    return part == REEL_POOL_LAST ? 0 : part == REEL_POOL_MAX ? C : 2 * C;
}
static int has_part(reel_pool_mode pooling, reel_pool_mode part) {
    return pooling == REEL_POOL_CONCAT || pooling == part;
}

/* Cuts each document of batch into windows of at most W tokens (the stack's batch m->windows). */
static void make_windows(transformer_impl *m, const reel_batch *batch, int training, int drops) {
    size_t B = batch->size, W = m->stack.W, count = 0;
    m->doc_first = grow(m->doc_first, &m->doc_cap, B + 1, sizeof *m->doc_first);
    for (size_t b = 0; b < B; b++) {
        size_t n = batch->offsets[b + 1] - batch->offsets[b];
        size_t k = n ? (n + W - 1) / W : 1;
        REEL_CHECK(!(training && drops && k > 1), "set [data] seq_len to at most [model] max_context",
                   "transformer: a training document of %zu tokens is longer than max_context = %zu, and the windows "
                   "of one document would share their dropout masks", n, W);
        m->doc_first[b] = count;
        count += k;
    }
    m->doc_first[B] = count;
    size_t cap = m->win_cap;
    m->win_offsets = grow(m->win_offsets, &cap, count + 1, sizeof *m->win_offsets);
    cap = m->win_cap;
    m->win_sample = grow(m->win_sample, &cap, count + 1, sizeof *m->win_sample);
    m->win_cap = cap;
    for (size_t b = 0; b < B; b++) {
        size_t at = batch->offsets[b], end = batch->offsets[b + 1];
        for (size_t w = m->doc_first[b]; w < m->doc_first[b + 1]; w++) {
            m->win_offsets[w] = at;
            m->win_sample[w] = batch->sample_index ? batch->sample_index[b] : 0;
            at = end - at > W ? at + W : end;
        }
    }
    m->win_offsets[count] = batch->offsets[B];
    m->windows = (reel_batch){.size = count, .ids = batch->ids, .offsets = m->win_offsets,
                              .sample_index = m->win_sample, .epoch = batch->epoch, .step = batch->step};
}

static void transformer_forward(reel_model *model, const reel_batch *batch, int training, reel_output *out,
                                const reel_comm *comm) {
    (void)comm; /* nothing global: no batch statistics */
    transformer_impl *m = model->impl;
    xf_stack *s = &m->stack;
    const reel_store *p = &model->params;
    size_t B = batch->size, C = s->C, P = m->P;
    REEL_CHECK(B <= model->max_batch, NULL, "batch of %zu rows exceeds the model's %zu", B, model->max_batch);
    make_windows(m, batch, training, s->dropout > 0 || s->attention_dropout > 0);
    size_t NW = m->windows.size;
    xf_stack_forward(s, model, &m->windows, training, NULL);
    m->win_pooled = grow(m->win_pooled, &m->win_pooled_cap, (NW ? NW : 1) * P, sizeof(float));
    m->win_argmax = grow(m->win_argmax, &m->win_argmax_cap, (NW ? NW : 1) * C, sizeof(size_t));
    for (size_t w = 0; w < NW; w++)
        reel_pool_forward(m->pooling, m->win_pooled + w * P, m->win_argmax + w * C, s->features + s->offsets[w] * C,
                          &s->lengths[w], s->lengths[w], 1, C, C);
    /* each document's features from its windows' */
    for (size_t b = 0; b < B; b++) {
        size_t first = m->doc_first[b], end = m->doc_first[b + 1];
        float *f = m->features + b * P;
        size_t *from = m->max_from + b * C;
        for (size_t c = 0; c < C; c++) from[c] = first;
        if (end - first == 1) {
            memcpy(f, m->win_pooled + first * P, P * sizeof(float));
            continue;
        }
        size_t n = batch->offsets[b + 1] - batch->offsets[b];
        if (has_part(m->pooling, REEL_POOL_LAST)) {
            size_t o = part_offset(m->pooling, REEL_POOL_LAST, C);
            memcpy(f + o, m->win_pooled + (end - 1) * P + o, C * sizeof(float));
        }
        if (has_part(m->pooling, REEL_POOL_MAX)) {
            size_t o = part_offset(m->pooling, REEL_POOL_MAX, C);
            memcpy(f + o, m->win_pooled + first * P + o, C * sizeof(float));
            for (size_t w = first + 1; w < end; w++)
                for (size_t c = 0; c < C; c++)
                    if (m->win_pooled[w * P + o + c] > f[o + c]) f[o + c] = m->win_pooled[w * P + o + c], from[c] = w;
        }
        if (has_part(m->pooling, REEL_POOL_MEAN)) {
            size_t o = part_offset(m->pooling, REEL_POOL_MEAN, C);
            memset(f + o, 0, C * sizeof(float));
            for (size_t w = first; w < end; w++) {
                float weight = (float)s->lengths[w] / (float)n;
                for (size_t c = 0; c < C; c++) f[o + c] += weight * m->win_pooled[w * P + o + c];
            }
        }
    }
    const float *features = m->features;
    m->dropping = training && m->head_dropout > 0.0f;
    if (m->dropping) {
        reel_dropout_mask(m->mask, batch->sample_index, B, P, m->head_dropout, model->seed, batch->epoch, DROPOUT_ID);
        reel_dropout_forward(m->dropped, m->features, m->mask, B * P);
        features = m->dropped;
    }
    reel_linear_forward(m->logits, features, reel_store_view(p, m->out_w), reel_store_view(p, m->out_b), B, P, m->K);
    *out = (reel_output){.rows = B, .width = m->K, .logits = m->logits};
}

static void transformer_backward(reel_model *model, const reel_batch *batch, const float *dlogits,
                                 const reel_comm *comm) {
    (void)comm;
    transformer_impl *m = model->impl;
    xf_stack *s = &m->stack;
    const reel_store *p = &model->params;
    size_t B = batch->size, C = s->C, P = m->P, NW = m->windows.size;
    memset(m->d_features, 0, B * P * sizeof(float));
    reel_linear_backward(m->d_features, reel_store_grad_view(p, m->out_w), reel_store_grad_view(p, m->out_b), dlogits,
                         m->dropping ? m->dropped : m->features, reel_store_view(p, m->out_w), B, P, m->K);
    reel_store_grad_ready(p, s->L + 2); /* the head is final */
    if (m->dropping)
        for (size_t i = 0; i < B * P; i++) m->d_features[i] *= m->mask[i];
    /* to the windows' pooled features: the same routes as the forward's combination */
    m->d_win = grow(m->d_win, &m->d_win_cap, (NW ? NW : 1) * P, sizeof(float));
    memset(m->d_win, 0, NW * P * sizeof(float));
    for (size_t b = 0; b < B; b++) {
        size_t first = m->doc_first[b], end = m->doc_first[b + 1];
        const float *g = m->d_features + b * P;
        if (end - first == 1) {
            memcpy(m->d_win + first * P, g, P * sizeof(float));
            continue;
        }
        size_t n = batch->offsets[b + 1] - batch->offsets[b];
        if (has_part(m->pooling, REEL_POOL_LAST)) {
            size_t o = part_offset(m->pooling, REEL_POOL_LAST, C);
            memcpy(m->d_win + (end - 1) * P + o, g + o, C * sizeof(float));
        }
        if (has_part(m->pooling, REEL_POOL_MAX)) {
            size_t o = part_offset(m->pooling, REEL_POOL_MAX, C);
            for (size_t c = 0; c < C; c++) m->d_win[m->max_from[b * C + c] * P + o + c] = g[o + c];
        }
        if (has_part(m->pooling, REEL_POOL_MEAN)) {
            size_t o = part_offset(m->pooling, REEL_POOL_MEAN, C);
            for (size_t w = first; w < end; w++) {
                float weight = (float)s->lengths[w] / (float)n;
                for (size_t c = 0; c < C; c++) m->d_win[w * P + o + c] = weight * g[o + c];
            }
        }
    }
    /* to the windows' packed token rows */
    size_t rows = s->N;
    m->d_seq = grow(m->d_seq, &m->d_seq_cap, rows > 0 ? rows * C : 1, sizeof(float));
    memset(m->d_seq, 0, rows * C * sizeof(float));
    for (size_t w = 0; w < NW; w++)
        reel_pool_backward(m->pooling, m->d_seq + s->offsets[w] * C, m->d_win + w * P, m->win_argmax + w * C,
                           &s->lengths[w], s->lengths[w], 1, C, C);
    xf_stack_backward(s, model, &m->windows, m->d_seq);
}

static void transformer_init(reel_model *model, uint64_t seed) {
    transformer_impl *m = model->impl;
    xf_stack_init(&model->params, &m->stack, seed);
}

static void transformer_destroy(reel_model *model) {
    transformer_impl *m = model->impl;
    if (!m) return;
    xf_stack_free(&m->stack);
    void *buffers[] = {m->win_offsets, m->win_sample, m->doc_first, m->win_pooled, m->d_win, m->win_argmax, m->d_seq,
                       m->max_from, m->features, m->mask, m->dropped, m->d_features, m->logits};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
    free(m);
}

static const reel_model_ops transformer_ops = {transformer_forward, transformer_backward, transformer_init,
                                               transformer_destroy, NULL, NULL};

static int transformer_create(reel_model **out, const reel_config *cfg, size_t max_batch, reel_error *err) {
    const transformer_options *o = reel_config_model_options(cfg);
    size_t C = cfg->model.embed_dim;
    if (cfg->data.seq_len > o->stack.max_context && (o->stack.dropout > 0 || o->stack.attention_dropout > 0))
        return reel_fail(err, "[data] seq_len = %zu is longer than [model] max_context = %zu: a training document "
                         "would be read in several windows, which would share their dropout masks (set seq_len to at "
                         "most max_context, or dropout and attention_dropout to 0)", cfg->data.seq_len,
                         o->stack.max_context);
    transformer_impl *m = reel_calloc(1, sizeof *m);
    reel_model *model = reel_classifier_new("transformer", &transformer_ops, m, cfg, o->num_classes, max_batch);
    m->K = model->num_outputs;
    m->pooling = strcmp(o->pooling, "max") == 0      ? REEL_POOL_MAX
                 : strcmp(o->pooling, "last") == 0   ? REEL_POOL_LAST
                 : strcmp(o->pooling, "concat") == 0 ? REEL_POOL_CONCAT
                                                     : REEL_POOL_MEAN;
    m->P = reel_pool_width(m->pooling, C);
    m->head_dropout = (float)o->head_dropout;
    reel_store *p = &model->params;
    reel_store_init(p, 1);
    reel_store_init(&model->state, 0);
    if (xf_stack_create(&m->stack, model, &o->stack, C, o->causal, err) != 0) {
        reel_model_destroy(model);
        return -1;
    }
    reel_store_set_group(p, m->stack.L + 2);
    m->out_w = reel_store_add_sized(p, "output/weight", 2, (size_t[]){m->K, m->P}, "%s",
                                    "outputs x [model] embed_dim (3 x for concat pooling)");
    m->out_b = reel_store_add(p, "output/bias", 1, (size_t[]){m->K});
    reel_store_set_decay(p, m->out_b, 0);
    reel_store_allocate(p);
    reel_store_allocate(&model->state);
    size_t B = model->max_batch;
    const char *by = "[train] batch_size (per rank) x [model] embed_dim";
    float **buffers[] = {&m->features, &m->mask, &m->dropped, &m->d_features};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++)
        *buffers[i] = reel_calloc_for(reel_size_mul(B, m->P), sizeof(float), "the pooled features", by);
    m->max_from = reel_calloc_for(reel_size_mul(B, C), sizeof(size_t), "the max-pooled windows", by);
    m->logits = reel_calloc_for(reel_size_mul(B, m->K), sizeof(float), "the logits",
                                "[train] batch_size (per rank) x outputs");
    /* FLOP per token of a training step: 6 per parameter that multiplies (the embedding and the position
     * table are lookups, the head runs once per document) plus attention's 12 L C T, T the training window */
    double lookups = (double)model->vocab_size * C + (m->stack.rotary ? 0.0 : (double)m->stack.W * C);
    double head = (double)m->K * (double)(m->P + 1);
    double T = (double)(cfg->data.seq_len && cfg->data.seq_len < m->stack.W ? cfg->data.seq_len : m->stack.W);
    model->flops_per_token = 6.0 * ((double)p->num_floats - lookups - head) + 12.0 * (double)m->stack.L * C * T;
    *out = model;
    return 0;
}

const reel_model_kind reel_model_kind_transformer = {"transformer", transformer_create, &transformer_key_table,
                                                     "classify"};
