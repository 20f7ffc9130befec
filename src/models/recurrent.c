/* Recurrent classifiers (course part 2a): embedding (V, E) -> stacked recurrent layers (tanh RNN, GRU or
 * LSTM), each optionally bidirectional, with optional locked dropout and batch norm on every layer's
 * output -> pooling over the valid steps (max, mean or last) -> optional hidden layer (ReLU, dropout) ->
 * one logit (two classes) or K logits (K classes).
 *
 * Activations are time-major (T, B, X) with T the longest document of the batch; shorter documents are
 * padded and the kernels guarantee that padding changes nothing. Buffers grow to the largest (T, B) seen.
 * Random numbers (locked dropout masks) are keyed by sample index, as everywhere in reel.
 *
 * The first layer's input projection, x . W_ih^T, depends only on the token (and, under embedding
 * dropout, on the review's mask), and a batch repeats tokens a lot: 100 IMDb windows of 100 tokens hold
 * about 1,900 distinct tokens and 6,400 distinct (token, review) pairs among 9,800 positions. So the
 * first layer projects each distinct input row once and copies the result to its positions; backward
 * sums the positions' gradients per distinct row before the two products for dW_ih and the embedding.
 * That removes most of the three largest products of a one-layer model; the results are the same up to
 * the order of floating-point sums. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reel/layers.h"
#include "reel/model.h"

enum { MAX_LAYERS = 16, EMBED_DROPOUT_ID = 200, HEAD_DROPOUT_ID = 201, BN_MOMENTUM_PERCENT = 10 };
static const float bn_eps = 1e-5f;

typedef struct {
    size_t w_ih[2], w_hh[2], b_ih[2], b_hh[2]; /* tensor indices per direction */
    size_t bn_w, bn_b, bn_mean, bn_var;
    reel_recurrent_cache cache[2];
    reel_batchnorm_cache bn;
    float *dir_out[2]; /* (T, B, H) */
    float *cat;        /* (T, B, D) both directions side by side (unused with one direction) */
    float *normed;     /* (T, B, D) after batch norm */
    float *dropped;    /* (T, B, D) after locked dropout */
    float *mask;       /* (B, D) */
    const float *input, *output; /* what the layer read and what it passed on, in the last forward */
} layer_state;

typedef struct {
    reel_cell cell;
    size_t E, H, num_layers, dirs, D, head_hidden, K;
    reel_pool_mode pooling;
    float embed_dropout, rnn_dropout, head_dropout;
    int batch_norm, dropping; /* dropping: the last forward was in training mode */
    size_t embedding, head_w, head_b, out_w, out_b;
    layer_state layers[MAX_LAYERS];
    size_t cap_rows, cap_B, T; /* capacity: T * B <= cap_rows time steps, B <= cap_B sequences */
    size_t *lengths;        /* (B) */
    uint8_t *row_mask;      /* (T, B) 1 for valid steps */
    reel_embedding_rows rows; /* the distinct input rows of the first layer (see the top of this file) */
    float *embedded;        /* (U, E) the distinct rows, embedding dropout applied */
    float *projected;       /* (U, G*H) their input projection; in backward, its gradient */
    float *embed_mask;      /* (B, E) */
    float *pooled;          /* (B, D) */
    float *logits;          /* (B, K) */
    size_t *argmax;         /* (B, D) */
    float *head_pre, *head_relu, *head_mask, *head_dropped; /* (B, head_hidden) */
    float *d_pooled, *d_head;                               /* (B, D), (B, head_hidden) */
    float *grad_a, *grad_b; /* (T, B, max(E, D)) ping-pong gradient buffers */
    float *d_dir[2];        /* (T, B, H) */
} rec_impl;

static const char *cell_prefix(reel_cell cell) {
    return cell == REEL_CELL_LSTM ? "lstm" : cell == REEL_CELL_GRU ? "gru" : "rnn";
}

static void free_activations(rec_impl *m) {
    for (size_t l = 0; l < m->num_layers; l++) {
        layer_state *s = &m->layers[l];
        for (size_t d = 0; d < m->dirs; d++) {
            if (s->cache[d].gates) reel_recurrent_cache_free(&s->cache[d]);
            free(s->dir_out[d]);
        }
        float *buffers[] = {s->cat, s->normed, s->dropped, s->mask, s->bn.xhat, s->bn.inv_std};
        for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
        free(s->bn.scratch);
        memset(s->dir_out, 0, sizeof s->dir_out);
        s->cat = s->normed = s->dropped = s->mask = s->bn.xhat = s->bn.inv_std = NULL;
        s->bn.scratch = NULL;
    }
    float *buffers[] = {m->embedded, m->projected, m->embed_mask, m->pooled, m->logits, m->head_pre, m->head_relu,
                        m->head_mask, m->head_dropped, m->d_pooled, m->d_head, m->grad_a, m->grad_b,
                        m->d_dir[0], m->d_dir[1]};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
    free(m->lengths);
    free(m->row_mask);
    free(m->argmax);
}

/* Makes every activation buffer large enough for T steps of B documents. Capacity is kept as a number
 * of time steps (T * B), not as T and B apart: evaluation batches a few long reviews or many short ones,
 * and the product of the two maxima would be far larger than either batch. */
static void reserve(rec_impl *m, size_t T, size_t B) {
    if (T * B <= m->cap_rows && B <= m->cap_B) return;
    free_activations(m);
    m->cap_rows = T * B > m->cap_rows ? T * B : m->cap_rows;
    m->cap_B = B > m->cap_B ? B : m->cap_B;
    B = m->cap_B;
    size_t rows = m->cap_rows, D = m->D, E = m->E, H = m->H, widest = E > D ? E : D, HH = m->head_hidden;
    for (size_t l = 0; l < m->num_layers; l++) {
        layer_state *s = &m->layers[l];
        for (size_t d = 0; d < m->dirs; d++) {
            reel_recurrent_cache_alloc(&s->cache[d], m->cell, rows, B, H);
            s->dir_out[d] = reel_calloc(rows * H, sizeof(float));
        }
        s->cat = m->dirs == 2 ? reel_calloc(rows * D, sizeof(float)) : NULL;
        s->normed = reel_calloc(rows * D, sizeof(float));
        s->dropped = reel_calloc(rows * D, sizeof(float));
        s->mask = reel_calloc(B * D, sizeof(float));
        s->bn.xhat = reel_calloc(rows * D, sizeof(float));
        s->bn.inv_std = reel_calloc(D, sizeof(float));
        s->bn.scratch = reel_calloc(2 * D + 1, sizeof(double));
    }
    m->lengths = reel_calloc(B, sizeof(size_t));
    m->row_mask = reel_calloc(rows, 1);
    reel_embedding_rows_reserve(&m->rows, rows);
    m->embedded = reel_calloc(rows * E, sizeof(float));
    /* as large as the gates in the worst case (every position distinct); calloc leaves pages that are
     * never touched unmapped, so a batch with U distinct rows costs U rows of memory */
    m->projected = reel_calloc(rows * reel_cell_gates(m->cell) * H, sizeof(float));
    m->embed_mask = reel_calloc(B * E, sizeof(float));
    m->pooled = reel_calloc(B * D, sizeof(float));
    m->logits = reel_calloc(B * m->K, sizeof(float));
    m->argmax = reel_calloc(B * D, sizeof(size_t));
    m->d_pooled = reel_calloc(B * D, sizeof(float));
    size_t head = HH ? HH : 1;
    m->head_pre = reel_calloc(B * head, sizeof(float));
    m->head_relu = reel_calloc(B * head, sizeof(float));
    m->head_mask = reel_calloc(B * head, sizeof(float));
    m->head_dropped = reel_calloc(B * head, sizeof(float));
    m->d_head = reel_calloc(B * head, sizeof(float));
    m->grad_a = reel_calloc(rows * widest, sizeof(float));
    m->grad_b = reel_calloc(rows * widest, sizeof(float));
    for (size_t d = 0; d < 2; d++) m->d_dir[d] = reel_calloc(rows * H, sizeof(float));
}

/* First layer, one direction: projects the distinct rows, copies each projection to its positions (the
 * padded ones are left alone: the steps never read them) and runs the steps. */
static void first_layer_forward(rec_impl *m, const reel_store *p, layer_state *ls, size_t d, size_t T, size_t B) {
    size_t E = m->E, H = m->H, GH = reel_cell_gates(m->cell) * H, U = m->rows.count;
    reel_recurrent_cache *cache = &ls->cache[d];
    float *bias = cache->step; /* G*H floats, free until the steps */
    reel_recurrent_input_bias(bias, m->cell, reel_store_view(p, ls->b_ih[d]), reel_store_view(p, ls->b_hh[d]), H);
    /* projected (U, G*H) = embedded (U, E) . w_ih^T + bias */
    reel_linear_forward(m->projected, m->embedded, reel_store_view(p, ls->w_ih[d]), bias, U, E, GH);
    reel_embedding_rows_to_steps(&m->rows, cache->gates, m->projected, GH);
    reel_recurrent_forward_steps(cache, ls->dir_out[d], m->lengths, reel_store_view(p, ls->w_hh[d]),
                                 reel_store_view(p, ls->b_hh[d]), T, B, H, (int)d);
}

/* First layer, one direction: d_rows (U, E) += the gradient of the distinct rows; weight gradients +=. */
static void first_layer_backward(rec_impl *m, const reel_store *p, float *d_rows, layer_state *ls, size_t d,
                                 const float *dout, size_t T, size_t B) {
    size_t E = m->E, H = m->H, GH = reel_cell_gates(m->cell) * H, U = m->rows.count;
    reel_recurrent_cache *cache = &ls->cache[d];
    reel_recurrent_backward_steps(cache, reel_store_grad_view(p, ls->w_hh[d]), reel_store_grad_view(p, ls->b_ih[d]),
                                  reel_store_grad_view(p, ls->b_hh[d]), dout, ls->dir_out[d], m->lengths,
                                  reel_store_view(p, ls->w_hh[d]), T, B, H, (int)d);
    /* the gradient of each distinct projection: the sum over its positions */
    float *d_projected = m->projected;
    reel_embedding_rows_sum_steps(&m->rows, d_projected, cache->dgates_x, GH);
    /* d_rows (U, E) += d_projected . w_ih; dw_ih (G*H, E) += d_projected^T . embedded */
    reel_linear_backward(d_rows, reel_store_grad_view(p, ls->w_ih[d]), NULL, d_projected, m->embedded,
                         reel_store_view(p, ls->w_ih[d]), U, E, GH);
}

static void rec_forward(reel_model *model, const reel_batch *batch, int training, reel_output *out,
                        const reel_comm *comm) {
    rec_impl *m = model->impl;
    const reel_store *p = &model->params, *s = &model->state;
    size_t B = batch->size, T = 0, E = m->E, H = m->H, D = m->D;
    for (size_t b = 0; b < B; b++) {
        size_t length = batch->offsets[b + 1] - batch->offsets[b];
        if (length > T) T = length;
    }
    if (T == 0) T = 1; /* only empty documents (or none): one step of padding */
    reserve(m, T, B);
    m->T = T;
    m->dropping = training;
    for (size_t b = 0; b < B; b++) m->lengths[b] = batch->offsets[b + 1] - batch->offsets[b];

    const float *x = NULL; /* the input of layers after the first */
    int embed_dropping = training && m->embed_dropout > 0.0f;
    if (embed_dropping)
        reel_dropout_mask(m->embed_mask, batch->sample_index, B, E, m->embed_dropout, model->seed, batch->epoch,
                          EMBED_DROPOUT_ID);
    reel_embedding_rows_forward(&m->rows, m->embedded, m->row_mask, batch->ids, batch->offsets,
                                reel_store_view(p, m->embedding), embed_dropping ? m->embed_mask : NULL, T, B, E);
    for (size_t l = 0; l < m->num_layers; l++) {
        layer_state *ls = &m->layers[l];
        size_t C = l == 0 ? E : D;
        ls->input = x;
        for (size_t d = 0; d < m->dirs; d++) {
            if (l == 0)
                first_layer_forward(m, p, ls, d, T, B);
            else
                reel_recurrent_forward(&ls->cache[d], ls->dir_out[d], x, m->lengths, reel_store_view(p, ls->w_ih[d]),
                                       reel_store_view(p, ls->w_hh[d]), reel_store_view(p, ls->b_ih[d]),
                                       reel_store_view(p, ls->b_hh[d]), T, B, C, H, (int)d);
        }
        /* one direction: its output already is the layer's output; two: side by side */
        float *cat = ls->dir_out[0];
        if (m->dirs == 2) {
            cat = ls->cat;
            for (size_t row = 0; row < T * B; row++)
                for (size_t d = 0; d < 2; d++) memcpy(cat + row * D + d * H, ls->dir_out[d] + row * H, H * sizeof(float));
        }
        const float *y = cat;
        if (m->batch_norm) {
            if (training)
                reel_batchnorm_forward_train(ls->normed, &ls->bn, cat, reel_store_view(p, ls->bn_w),
                                             reel_store_view(p, ls->bn_b), reel_store_view(s, ls->bn_mean),
                                             reel_store_view(s, ls->bn_var), m->row_mask, T * B, D,
                                             BN_MOMENTUM_PERCENT / 100.0f, bn_eps, comm);
            else
                reel_batchnorm_forward_eval(ls->normed, cat, reel_store_view(p, ls->bn_w),
                                            reel_store_view(p, ls->bn_b), reel_store_view(s, ls->bn_mean),
                                            reel_store_view(s, ls->bn_var), T * B, D, bn_eps);
            y = ls->normed;
        }
        if (training && m->rnn_dropout > 0.0f) {
            reel_dropout_mask(ls->mask, batch->sample_index, B, D, m->rnn_dropout, model->seed, batch->epoch,
                              (uint32_t)(l + 1));
            reel_locked_dropout_forward(ls->dropped, y, ls->mask, T, B, D);
            y = ls->dropped;
        }
        ls->output = y;
        x = y;
    }

    reel_pool_forward(m->pooling, m->pooled, m->argmax, x, m->lengths, T, B, D, m->dirs == 2 ? H : D);
    const float *features = m->pooled;
    size_t width = D;
    if (m->head_hidden) {
        size_t HH = m->head_hidden;
        reel_linear_forward(m->head_pre, m->pooled, reel_store_view(p, m->head_w), reel_store_view(p, m->head_b), B, D,
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
    float *logits = m->logits;
    *out = (reel_output){.rows = B, .width = model->num_outputs, .logits = logits};
    reel_linear_forward(logits, features, reel_store_view(p, m->out_w), reel_store_view(p, m->out_b), B, width,
                        model->num_outputs);
}

static void rec_backward(reel_model *model, const reel_batch *batch, const float *dlogits, const reel_comm *comm) {
    rec_impl *m = model->impl;
    const reel_store *p = &model->params;
    size_t B = batch->size, T = m->T, E = m->E, H = m->H, D = m->D;
    int training = m->dropping;

    /* head */
    memset(m->d_pooled, 0, B * D * sizeof(float));
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
                             m->pooled, reel_store_view(p, m->head_w), B, D, HH);
    } else {
        reel_linear_backward(m->d_pooled, reel_store_grad_view(p, m->out_w), reel_store_grad_view(p, m->out_b), dlogits,
                             m->pooled, reel_store_view(p, m->out_w), B, D, model->num_outputs);
    }

    /* pooling: the gradient of the last layer's output */
    float *grad = m->grad_a, *spare = m->grad_b;
    memset(grad, 0, T * B * D * sizeof(float));
    reel_pool_backward(m->pooling, grad, m->d_pooled, m->argmax, m->lengths, T, B, D, m->dirs == 2 ? H : D);

    for (size_t l = m->num_layers; l-- > 0;) {
        layer_state *ls = &m->layers[l];
        size_t C = l == 0 ? E : D;
        if (training && m->rnn_dropout > 0.0f)
            for (size_t t = 0; t < T; t++)
                for (size_t i = 0; i < B * D; i++) grad[t * B * D + i] *= ls->mask[i];
        if (m->batch_norm) {
            memset(spare, 0, T * B * D * sizeof(float));
            reel_batchnorm_backward(spare, reel_store_grad_view(p, ls->bn_w), reel_store_grad_view(p, ls->bn_b), grad,
                                    &ls->bn, reel_store_view(p, ls->bn_w), m->row_mask, T * B, D, comm);
            float *swap = grad;
            grad = spare, spare = swap;
        }
        /* two directions: split the (T, B, 2H) gradient into one (T, B, H) block per direction */
        const float *d_dir[2] = {grad, NULL};
        if (m->dirs == 2) {
            for (size_t row = 0; row < T * B; row++)
                for (size_t d = 0; d < 2; d++) memcpy(m->d_dir[d] + row * H, grad + row * D + d * H, H * sizeof(float));
            d_dir[0] = m->d_dir[0], d_dir[1] = m->d_dir[1];
        }
        if (l == 0) { /* spare receives the gradient of the distinct rows (U, E) */
            memset(spare, 0, m->rows.count * E * sizeof(float));
            for (size_t d = 0; d < m->dirs; d++) first_layer_backward(m, p, spare, ls, d, d_dir[d], T, B);
            grad = spare;
            break;
        }
        memset(spare, 0, T * B * C * sizeof(float));
        for (size_t d = 0; d < m->dirs; d++)
            reel_recurrent_backward(&ls->cache[d], spare, reel_store_grad_view(p, ls->w_ih[d]),
                                    reel_store_grad_view(p, ls->w_hh[d]), reel_store_grad_view(p, ls->b_ih[d]),
                                    reel_store_grad_view(p, ls->b_hh[d]), d_dir[d], ls->dir_out[d], ls->input,
                                    m->lengths, reel_store_view(p, ls->w_ih[d]), reel_store_view(p, ls->w_hh[d]), T, B,
                                    C, H, (int)d);
        float *swap = grad;
        grad = spare, spare = swap;
    }

    /* embeddings: only the rows of the batch's tokens receive gradient */
    int embed_dropping = training && m->embed_dropout > 0.0f;
    reel_embedding_rows_backward(&m->rows, reel_store_grad_view(p, m->embedding), grad,
                                 embed_dropping ? m->embed_mask : NULL, E);
}

/* PyTorch's defaults: embeddings N(0, 1); recurrent weights and biases U(-1/sqrt(H), 1/sqrt(H)); linear
 * layers U(-1/sqrt(fan_in), 1/sqrt(fan_in)); batch norm scale 1, shift 0. */
static void rec_init(reel_model *model, uint64_t seed) {
    rec_impl *m = model->impl;
    reel_store *p = &model->params, *s = &model->state;
    for (size_t i = 0; i < p->num_tensors; i++) {
        const reel_tensor_info *info = &p->tensors[i];
        float *values = reel_store_view(p, i);
        if (i == m->embedding) {
            reel_init_normal(values, info->count, 1.0f, seed, (uint32_t)i);
        } else if (strstr(info->name, "batchnorm")) {
            reel_init_constant(values, info->count, strstr(info->name, "/weight") ? 1.0f : 0.0f);
        } else {
            float fan_in = strncmp(info->name, "head_hidden/", 12) == 0 ? (float)m->D
                           : strncmp(info->name, "output/", 7) == 0  ? (float)(m->head_hidden ? m->head_hidden : m->D)
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
    free_activations(m);
    reel_embedding_rows_free(&m->rows);
    free(m);
}

static const reel_model_ops rec_ops = {rec_forward, rec_backward, rec_init, rec_destroy};

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

static const char *const poolings[] = {"max", "mean", "last", NULL};
static const reel_key rec_keys[] = {
    REEL_KEY_SIZE_OF(rec_options, "model", "hidden_dim", hidden_dim, "256", REEL_BOUND_MIN, 1,
                     "units of each recurrent layer (per direction)"),
    REEL_KEY_SIZE_OF(rec_options, "model", "num_layers", num_layers, "1", REEL_BOUND_MIN, 1, "stacked layers"),
    REEL_KEY_BOOL_OF(rec_options, "model", "bidirectional", bidirectional, "false", "a reverse direction in every layer"),
    REEL_KEY_CHOICE_OF(rec_options, "model", "pooling", pooling, "max", poolings,
                       "pooling of the last layer's outputs over time (max, mean, last)"),
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
    if (o->num_layers > MAX_LAYERS)
        return reel_fail(err, "[model] num_layers = %zu: at most %d recurrent layers", o->num_layers, MAX_LAYERS);
    reel_model *model = reel_calloc(1, sizeof *model);
    rec_impl *m = reel_calloc(1, sizeof *m);
    snprintf(model->type, sizeof model->type, "%s", type);
    model->ops = &rec_ops;
    model->impl = m;
    model->vocab_size = cfg->model.vocab_size;
    model->output = REEL_OUTPUT_DOCUMENT;
    model->num_outputs = reel_model_outputs(o->num_classes);
    model->max_batch = max_batch ? max_batch : 1;
    model->seed = cfg->train.seed;
    m->cell = cell;
    m->K = model->num_outputs;
    m->E = cfg->model.embed_dim;
    m->H = o->hidden_dim;
    m->num_layers = o->num_layers;
    m->dirs = o->bidirectional ? 2 : 1;
    m->D = m->dirs * m->H;
    m->head_hidden = o->head_hidden;
    m->pooling = strcmp(o->pooling, "mean") == 0 ? REEL_POOL_MEAN : strcmp(o->pooling, "last") == 0 ? REEL_POOL_LAST : REEL_POOL_MAX;
    m->embed_dropout = (float)o->embed_dropout;
    m->rnn_dropout = (float)o->rnn_dropout;
    m->head_dropout = (float)o->dropout;
    m->batch_norm = o->rnn_batch_norm;
    reel_embedding_rows_init(&m->rows, model->vocab_size);

    reel_store_init(&model->params, 1);
    reel_store_init(&model->state, 0);
    size_t G = reel_cell_gates(cell), GH = G * m->H;
    m->embedding = reel_store_add(&model->params, "embedding/weight", 2, (size_t[]){model->vocab_size, m->E});
    for (size_t l = 0; l < m->num_layers; l++) {
        layer_state *ls = &m->layers[l];
        size_t C = l == 0 ? m->E : m->D;
        for (size_t d = 0; d < m->dirs; d++) {
            char name[REEL_TENSOR_NAME_MAX];
            const char *dir = d ? "bwd" : "fwd";
            snprintf(name, sizeof name, "%s_l%zu_%s/w_ih", cell_prefix(cell), l, dir);
            ls->w_ih[d] = reel_store_add(&model->params, name, 2, (size_t[]){GH, C});
            snprintf(name, sizeof name, "%s_l%zu_%s/w_hh", cell_prefix(cell), l, dir);
            ls->w_hh[d] = reel_store_add(&model->params, name, 2, (size_t[]){GH, m->H});
            snprintf(name, sizeof name, "%s_l%zu_%s/b_ih", cell_prefix(cell), l, dir);
            ls->b_ih[d] = reel_store_add(&model->params, name, 1, (size_t[]){GH});
            snprintf(name, sizeof name, "%s_l%zu_%s/b_hh", cell_prefix(cell), l, dir);
            ls->b_hh[d] = reel_store_add(&model->params, name, 1, (size_t[]){GH});
        }
        if (m->batch_norm) {
            char name[REEL_TENSOR_NAME_MAX];
            snprintf(name, sizeof name, "batchnorm_l%zu/weight", l);
            ls->bn_w = reel_store_add(&model->params, name, 1, (size_t[]){m->D});
            snprintf(name, sizeof name, "batchnorm_l%zu/bias", l);
            ls->bn_b = reel_store_add(&model->params, name, 1, (size_t[]){m->D});
            snprintf(name, sizeof name, "batchnorm_l%zu/running_mean", l);
            ls->bn_mean = reel_store_add(&model->state, name, 1, (size_t[]){m->D});
            snprintf(name, sizeof name, "batchnorm_l%zu/running_var", l);
            ls->bn_var = reel_store_add(&model->state, name, 1, (size_t[]){m->D});
        }
    }
    size_t features = m->D;
    if (m->head_hidden) {
        m->head_w = reel_store_add(&model->params, "head_hidden/weight", 2, (size_t[]){m->head_hidden, m->D});
        m->head_b = reel_store_add(&model->params, "head_hidden/bias", 1, (size_t[]){m->head_hidden});
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
