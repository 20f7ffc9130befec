/* Recurrent classifiers (course part 2a): the recurrent encoder (rnn_stack.h: embedding, stacked tanh
 * RNN, GRU or LSTM layers, each optionally bidirectional, with batch norm and locked dropout) -> pooling
 * over the valid steps (max, mean, last, or ULMFiT's concat of the three) -> optional hidden layer (ReLU,
 * dropout) -> one logit (two classes) or K logits (K classes).
 *
 * Random numbers (dropout masks) are keyed by sample index, as everywhere in reel. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reel/layers.h"
#include "reel/model.h"

#include "rnn_stack.h"

enum { HEAD_DROPOUT_ID = 201 };

typedef struct {
    rnn_stack stack;
    size_t H, D, P, head_hidden, K; /* P: the pooled width, D or 3 D (concat) */
    reel_pool_mode pooling;
    float head_dropout;
    int dropping; /* the last forward was in training mode */
    size_t head_w, head_b, out_w, out_b;
    size_t cap_B;
    float *pooled_cuts;     /* (num_cuts, B, P) forward_prefixes: each cut's pooled features */
    size_t cap_cut_rows;    /* its capacity in rows (num_cuts * B) */
    float *pooled;          /* (B, P) */
    float *logits;          /* (B, K) */
    size_t *argmax;         /* (B, D) */
    float *head_pre, *head_relu, *head_mask, *head_dropped; /* (B, head_hidden) */
    float *d_pooled, *d_head;                               /* (B, P), (B, head_hidden) */
} rec_impl;

static void free_head(rec_impl *m) {
    float *buffers[] = {m->pooled, m->logits, m->head_pre, m->head_relu, m->head_mask, m->head_dropped, m->d_pooled, m->d_head};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
    free(m->argmax);
}

/* The head's buffers, for B documents. */
static void reserve_head(rec_impl *m, size_t B) {
    if (B <= m->cap_B && m->pooled) return;
    free_head(m);
    m->cap_B = B > m->cap_B ? B : m->cap_B;
    B = m->cap_B;
    size_t D = m->D, P = m->P, head = m->head_hidden ? m->head_hidden : 1;
    m->pooled = reel_calloc(B * P, sizeof(float));
    m->logits = reel_calloc(B * m->K, sizeof(float));
    m->argmax = reel_calloc(B * D, sizeof(size_t));
    m->d_pooled = reel_calloc(B * P, sizeof(float));
    m->head_pre = reel_calloc(B * head, sizeof(float));
    m->head_relu = reel_calloc(B * head, sizeof(float));
    m->head_mask = reel_calloc(B * head, sizeof(float));
    m->head_dropped = reel_calloc(B * head, sizeof(float));
    m->d_head = reel_calloc(B * head, sizeof(float));
}

/* The head, from pooled (B, P) to logits (B, K): the optional hidden layer (ReLU, dropout in training),
 * then the output layer. */
static void head_forward(reel_model *model, const reel_batch *batch, int training, const float *pooled, float *logits,
                         size_t B) {
    rec_impl *m = model->impl;
    const reel_store *p = &model->params;
    size_t P = m->P;
    const float *features = pooled;
    size_t width = P;
    if (m->head_hidden) {
        size_t HH = m->head_hidden;
        reel_linear_forward(m->head_pre, pooled, reel_store_view(p, m->head_w), reel_store_view(p, m->head_b), B, P,
                            HH);
        reel_relu_forward(m->head_relu, m->head_pre, B * HH);
        features = m->head_relu;
        if (training && m->head_dropout > 0.0f) {
            reel_dropout_mask(m->head_mask, batch->sample_index, B, HH, m->head_dropout, model->seed, batch->epoch,
                              HEAD_DROPOUT_ID);
            reel_dropout_forward(m->head_dropped, m->head_relu, m->head_mask, B * HH);
            features = m->head_dropped;
        }
        width = HH;
    }
    reel_linear_forward(logits, features, reel_store_view(p, m->out_w), reel_store_view(p, m->out_b), B, width,
                        model->num_outputs);
}

static void rec_forward(reel_model *model, const reel_batch *batch, int training, reel_output *out,
                        const reel_comm *comm) {
    rec_impl *m = model->impl;
    const reel_store *p = &model->params;
    size_t B = batch->size, H = m->H, D = m->D;
    m->stack.input_delta = model->input_delta;
    m->stack.frozen_statistics = model->frozen_statistics;
    rnn_stack_forward(&m->stack, p, &model->state, batch, training, model->seed, comm);
    reserve_head(m, B);
    m->dropping = training;
    size_t T = m->stack.T;
    reel_pool_forward(m->pooling, m->pooled, m->argmax, m->stack.output, m->stack.lengths, T, B, D,
                      m->stack.o.dirs == 2 ? H : D);
    head_forward(model, batch, training, m->pooled, m->logits, B);
    *out = (reel_output){.rows = B, .width = model->num_outputs, .logits = m->logits};
}

/* Evaluation of several lengths in one pass (reel_model_ops.forward_prefixes): a unidirectional layer's
 * state after L tokens does not depend on what follows, so the pooled value of each document's first L
 * steps of the whole document's outputs is the pooled value of the L-token document; only the pooling
 * and the head run once per cut. */
static void rec_forward_prefixes(reel_model *model, const reel_batch *batch, const size_t *cuts, size_t num_cuts,
                                 float *logits, const reel_comm *comm) {
    rec_impl *m = model->impl;
    const reel_store *p = &model->params;
    size_t B = batch->size, D = m->D, P = m->P, K = model->num_outputs;
    REEL_CHECK(m->stack.o.dirs == 1, NULL, "prefixes of a bidirectional model");
    m->stack.input_delta = NULL;
    m->stack.frozen_statistics = 0;
    rnn_stack_forward(&m->stack, p, &model->state, batch, 0, model->seed, comm);
    reserve_head(m, B);
    m->dropping = 0;
    if (num_cuts * B > m->cap_cut_rows) {
        free(m->pooled_cuts);
        m->cap_cut_rows = num_cuts * B;
        m->pooled_cuts = reel_malloc(m->cap_cut_rows * P * sizeof(float));
    }
    /* pooled_cuts (num_cuts, B, P): one sweep over each document's steps reads off every cut */
    reel_pool_forward_cuts(m->pooling, m->pooled_cuts, m->stack.output, m->stack.lengths, cuts, num_cuts, m->stack.T, B, D);
    for (size_t c = 0; c < num_cuts; c++) head_forward(model, batch, 0, m->pooled_cuts + c * B * P, logits + c * B * K, B);
}

static void rec_backward(reel_model *model, const reel_batch *batch, const float *dlogits, const reel_comm *comm) {
    rec_impl *m = model->impl;
    const reel_store *p = &model->params;
    size_t B = batch->size, T = m->stack.T, H = m->H, D = m->D, P = m->P;
    int training = m->dropping;

    /* head */
    memset(m->d_pooled, 0, B * P * sizeof(float));
    if (m->head_hidden) {
        size_t HH = m->head_hidden;
        int dropped = training && m->head_dropout > 0.0f;
        const float *features = dropped ? m->head_dropped : m->head_relu;
        memset(m->d_head, 0, B * HH * sizeof(float));
        reel_linear_backward(m->d_head, reel_store_grad_view(p, m->out_w), reel_store_grad_view(p, m->out_b), dlogits,
                             features, reel_store_view(p, m->out_w), B, HH, model->num_outputs);
        if (dropped) /* in place: d_head becomes the gradient of the ReLU output */
            for (size_t i = 0; i < B * HH; i++) m->d_head[i] *= m->head_mask[i];
        float *d_pre = m->head_dropped; /* free for reuse as scratch now */
        memset(d_pre, 0, B * HH * sizeof(float));
        reel_relu_backward(d_pre, m->d_head, m->head_pre, B * HH);
        reel_linear_backward(m->d_pooled, reel_store_grad_view(p, m->head_w), reel_store_grad_view(p, m->head_b), d_pre,
                             m->pooled, reel_store_view(p, m->head_w), B, P, HH);
    } else {
        reel_linear_backward(m->d_pooled, reel_store_grad_view(p, m->out_w), reel_store_grad_view(p, m->out_b), dlogits,
                             m->pooled, reel_store_view(p, m->out_w), B, P, model->num_outputs);
    }

    reel_store_grad_ready(p, reel_store_top_group(p)); /* the head is final */

    /* pooling: the gradient of the last layer's output */
    float *grad = rnn_stack_output_grad(&m->stack);
    memset(grad, 0, T * B * D * sizeof(float));
    reel_pool_backward(m->pooling, grad, m->d_pooled, m->argmax, m->stack.lengths, T, B, D, m->stack.o.dirs == 2 ? H : D);
    m->stack.input_grad = model->input_grad;
    rnn_stack_backward(&m->stack, p, batch, comm);
}

/* PyTorch's defaults: embeddings N(0, 1); recurrent weights and biases U(-1/sqrt(H), 1/sqrt(H)); linear
 * layers U(-1/sqrt(fan_in), 1/sqrt(fan_in)); batch norm scale 1, shift 0. */
static void rec_init(reel_model *model, uint64_t seed) {
    rec_impl *m = model->impl;
    reel_store *p = &model->params, *s = &model->state;
    for (size_t i = 0; i < p->num_tensors; i++) {
        const reel_tensor_info *info = &p->tensors[i];
        float *values = reel_store_view(p, i);
        if (i == m->stack.embedding) {
            reel_init_normal(values, info->count, 1.0f, seed, (uint32_t)i);
        } else if (strstr(info->name, "batchnorm")) {
            reel_init_constant(values, info->count, strstr(info->name, "/weight") ? 1.0f : 0.0f);
        } else {
            float fan_in = strncmp(info->name, "head_hidden/", 12) == 0 ? (float)m->P
                           : strncmp(info->name, "output/", 7) == 0  ? (float)(m->head_hidden ? m->head_hidden : m->P)
                                                                     : (float)m->H;
            reel_init_uniform(values, info->count, 1.0f / sqrtf(fan_in), seed, (uint32_t)i);
        }
    }
    for (size_t i = 0; i < s->num_tensors; i++)
        reel_init_constant(reel_store_view(s, i), s->tensors[i].count, strstr(s->tensors[i].name, "running_var") ? 1.0f : 0.0f);
}

static void rec_destroy(reel_model *model) {
    rec_impl *m = model->impl;
    if (!m) return;
    rnn_stack_free(&m->stack);
    free_head(m);
    free(m->pooled_cuts);
    free(m);
}

static const reel_model_ops rec_ops = {rec_forward, rec_backward, rec_init, rec_destroy, rec_forward_prefixes, NULL};
/* a bidirectional layer's reverse direction reads the whole document: no prefixes from one pass */
static const reel_model_ops rec_ops_bidirectional = {rec_forward, rec_backward, rec_init, rec_destroy, NULL, NULL};

/* [model] keys of the recurrent classifiers (lstm, gru, rnn). */
typedef struct rec_options {
    size_t hidden_dim;
    size_t num_layers;
    int bidirectional;
    char pooling[REEL_NAME_MAX];
    double rnn_dropout;   /* locked dropout on every layer's output */
    double embed_dropout; /* locked dropout on the embeddings */
    int rnn_batch_norm;   /* batch norm on every layer's output (valid steps) */
    size_t head_hidden;   /* hidden width of the classifier head; 0 = none */
    double dropout;       /* dropout in the head's hidden layer */
    size_t num_classes;   /* 0: from the data; 2: one logit (BCE); K > 2: K logits (softmax) */
} rec_options;

static const char *const poolings[] = {"max", "mean", "last", "concat", NULL};
static const reel_key rec_keys[] = {
    REEL_KEY_SIZE_OF(rec_options, "model", "hidden_dim", hidden_dim, "256", REEL_BOUND_MIN, 1,
                     "units of each recurrent layer (per direction)"),
    REEL_KEY_SIZE_OF(rec_options, "model", "num_layers", num_layers, "1", REEL_BOUND_MIN, 1, "stacked layers"),
    REEL_KEY_BOOL_OF(rec_options, "model", "bidirectional", bidirectional, "false", "a reverse direction in every layer"),
    REEL_KEY_CHOICE_OF(rec_options, "model", "pooling", pooling, "max", poolings,
                       "pooling of the last layer's outputs over time (max, mean, last; concat: the three side by "
                       "side, as ULMFiT's classifier)"),
    REEL_KEY_DOUBLE_OF(rec_options, "model", "rnn_dropout", rnn_dropout, "0", REEL_BOUND_MIN | REEL_BOUND_MAX_OPEN, 0, 1,
                       "dropout on every recurrent layer's output, one mask per sequence"),
    REEL_KEY_DOUBLE_OF(rec_options, "model", "embed_dropout", embed_dropout, "0", REEL_BOUND_MIN | REEL_BOUND_MAX_OPEN, 0, 1,
                       "dropout on the embeddings, one mask per sequence"),
    REEL_KEY_BOOL_OF(rec_options, "model", "rnn_batch_norm", rnn_batch_norm, "false",
                     "batch norm on every recurrent layer's output, over all valid steps"),
    REEL_KEY_SIZE_OF(rec_options, "model", "head_hidden", head_hidden, "0", 0, 0,
                     "width of a hidden layer (ReLU, dropout) in the classifier head; 0 = none"),
    REEL_KEY_DOUBLE_OF(rec_options, "model", "dropout", dropout, "0.5", REEL_BOUND_MIN | REEL_BOUND_MAX_OPEN, 0, 1,
                       "dropout on the head's hidden layer during training"),
    REEL_KEY_SIZE_OF(rec_options, "model", "num_classes", num_classes, "0", 0, 0,
                     "classes of the labels; 0 takes them from the data (2: one logit, K > 2: K logits)"),
};
static const reel_key_table rec_key_table = {rec_keys, sizeof rec_keys / sizeof rec_keys[0], sizeof(rec_options)};

static int rec_create(reel_model **out, const reel_config *cfg, size_t max_batch, reel_error *err) {
    const rec_options *o = reel_config_model_options(cfg);
    const char *type = cfg->model.type;
    reel_cell cell = strcmp(type, "lstm") == 0 ? REEL_CELL_LSTM : strcmp(type, "gru") == 0 ? REEL_CELL_GRU : REEL_CELL_RNN;
    if (o->num_layers > RNN_STACK_MAX_LAYERS)
        return reel_fail(err, "[model] num_layers = %zu: at most %d recurrent layers", o->num_layers, RNN_STACK_MAX_LAYERS);
    rec_impl *m = reel_calloc(1, sizeof *m);
    reel_model *model = reel_classifier_new(type, o->bidirectional ? &rec_ops_bidirectional : &rec_ops, m, cfg,
                                            o->num_classes, max_batch);
    m->K = model->num_outputs;
    m->H = o->hidden_dim;
    m->D = (o->bidirectional ? 2 : 1) * m->H;
    m->head_hidden = o->head_hidden;
    m->pooling = strcmp(o->pooling, "mean") == 0     ? REEL_POOL_MEAN
                 : strcmp(o->pooling, "last") == 0   ? REEL_POOL_LAST
                 : strcmp(o->pooling, "concat") == 0 ? REEL_POOL_CONCAT
                                                     : REEL_POOL_MAX;
    m->P = reel_pool_width(m->pooling, m->D);
    m->head_dropout = (float)o->dropout;

    rnn_stack_options so = {.cell = cell, .vocab = model->vocab_size, .E = cfg->model.embed_dim,
                            .num_layers = o->num_layers, .dirs = o->bidirectional ? 2 : 1,
                            .batch_norm = o->rnn_batch_norm, .input_dropout = (float)o->embed_dropout,
                            .rnn_dropout = (float)o->rnn_dropout};
    for (size_t l = 0; l < o->num_layers; l++) so.H[l] = o->hidden_dim;
    reel_store_init(&model->params, 1);
    reel_store_init(&model->state, 0);
    rnn_stack_create(&m->stack, &so, &model->params, &model->state);
    size_t features = m->P;
    if (m->head_hidden) {
        m->head_w = reel_store_add_sized(&model->params, "head_hidden/weight", 2, (size_t[]){m->head_hidden, m->P},
                                         "[model] head_hidden x %s%s[model] hidden_dim",
                                         m->pooling == REEL_POOL_CONCAT ? "3 concat parts x " : "",
                                         o->bidirectional ? "2 directions x " : "");
        m->head_b = reel_store_add_sized(&model->params, "head_hidden/bias", 1, (size_t[]){m->head_hidden},
                                         "[model] head_hidden");
        features = m->head_hidden;
    }
    m->out_w = reel_store_add(&model->params, "output/weight", 2, (size_t[]){model->num_outputs, features});
    m->out_b = reel_store_add(&model->params, "output/bias", 1, (size_t[]){model->num_outputs});
    reel_store_allocate(&model->params);
    reel_store_allocate(&model->state);
    *out = model;
    return 0;
}

/* Three types, one set of keys: the cell is the type. */
const reel_model_kind reel_model_kind_lstm = {"lstm", rec_create, &rec_key_table, "classify"};
const reel_model_kind reel_model_kind_gru = {"gru", rec_create, &rec_key_table, "classify"};
const reel_model_kind reel_model_kind_rnn = {"rnn", rec_create, &rec_key_table, "classify"};
