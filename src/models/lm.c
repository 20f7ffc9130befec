/* The recurrent language model (course part 3a): the recurrent encoder (rnn_stack.h: embedding, stacked
 * LSTM, GRU or tanh-RNN layers of any widths, batch norm and locked dropout after each) -> a decoder to
 * the whole vocabulary, predicting the next token at every step.
 *
 * The decoder is a linear layer (V, D) + bias, left to the loss (a deferred output, see reel/model.h):
 * the objective computes its logits a slice of rows at a time fused with the softmax. With tied weights
 * (Press & Wolf 2017; Inan et al. 2017) the decoder's weight is the embedding matrix itself; when the
 * last layer's width D differs from the embedding width E, a projection (E, D) maps the features to E
 * first, as AWD-LSTM does by sizing its last layer. Its gradient then reaches the embedding from both
 * ends, through the same gradient buffer.
 *
 * Initialisation, as PyTorch's word_language_model example: embedding and untied decoder U(-0.1, 0.1),
 * decoder bias 0; recurrent weights and biases U(-1/sqrt(H), 1/sqrt(H)) (PyTorch's default); projection
 * U(-1/sqrt(D), 1/sqrt(D)); batch norm scale 1, shift 0. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reel/layers.h"
#include "reel/model.h"

#include "rnn_stack.h"

typedef struct lm_options {
    char cell[REEL_NAME_MAX];
    size_t hidden_dim;
    size_t num_layers;
    char layer_dims[REEL_LIST_MAX]; /* per-layer widths, overriding hidden_dim and num_layers */
    int rnn_batch_norm;
    double rnn_dropout, input_dropout, word_dropout, weight_dropout;
    int tie_weights;
} lm_options;

static const char *const cells[] = {"lstm", "gru", "rnn", NULL};
static const reel_key lm_keys[] = {
    REEL_KEY_CHOICE_OF(lm_options, "model", "cell", cell, "lstm", cells, "recurrent cell: lstm, gru or rnn (tanh)"),
    REEL_KEY_SIZE_OF(lm_options, "model", "hidden_dim", hidden_dim, "500", REEL_BOUND_MIN, 1, "units of each layer"),
    REEL_KEY_SIZE_OF(lm_options, "model", "num_layers", num_layers, "3", REEL_BOUND_MIN, 1, "stacked layers"),
    REEL_KEY_STRING_OF(lm_options, "model", "layer_dims", layer_dims, "",
                       "comma-separated units per layer (e.g. 1150,1150,400); given, it replaces hidden_dim and num_layers"),
    REEL_KEY_BOOL_OF(lm_options, "model", "rnn_batch_norm", rnn_batch_norm, "true",
                     "batch norm on every layer's output, over all valid steps"),
    REEL_KEY_DOUBLE_OF(lm_options, "model", "rnn_dropout", rnn_dropout, "0.3", REEL_BOUND_MIN | REEL_BOUND_MAX_OPEN, 0, 1,
                       "locked dropout on every layer's output, one mask per sequence"),
    REEL_KEY_DOUBLE_OF(lm_options, "model", "input_dropout", input_dropout, "0", REEL_BOUND_MIN | REEL_BOUND_MAX_OPEN, 0, 1,
                       "locked dropout on the embeddings, one mask per sequence"),
    REEL_KEY_DOUBLE_OF(lm_options, "model", "word_dropout", word_dropout, "0", REEL_BOUND_MIN | REEL_BOUND_MAX_OPEN, 0, 1,
                       "embedding dropout that drops whole words: a vocabulary row for a whole batch (AWD-LSTM)"),
    REEL_KEY_DOUBLE_OF(lm_options, "model", "weight_dropout", weight_dropout, "0", REEL_BOUND_MIN | REEL_BOUND_MAX_OPEN, 0, 1,
                       "DropConnect on the recurrent weights, one mask per batch (AWD-LSTM's weight drop)"),
    REEL_KEY_BOOL_OF(lm_options, "model", "tie_weights", tie_weights, "false",
                     "the decoder uses the embedding matrix (with a projection when the last width is not embed_dim)"),
};
static const reel_key_table lm_key_table = {lm_keys, sizeof lm_keys / sizeof lm_keys[0], sizeof(lm_options)};

typedef struct {
    rnn_stack stack;
    int tied;
    size_t E, D, V;
    size_t proj, dec_w, dec_b; /* tensor indices; proj = SIZE_MAX without a projection */
    float *projected;          /* (T*B, E) the features after the projection */
    size_t cap_rows;
} lm_impl;

static void lm_forward(reel_model *model, const reel_batch *batch, int training, reel_output *out, const reel_comm *comm) {
    lm_impl *m = model->impl;
    const reel_store *p = &model->params;
    rnn_stack_forward(&m->stack, p, &model->state, batch, training, model->seed, comm);
    size_t rows = m->stack.T * m->stack.B;
    const float *features = m->stack.output;
    size_t width = m->D;
    if (m->proj != SIZE_MAX) {
        if (rows > m->cap_rows) {
            free(m->projected);
            m->cap_rows = rnn_stack_capacity(rows, m->cap_rows);
            m->projected = reel_malloc(m->cap_rows * m->E * sizeof(float));
        }
        /* projected (T*B, E) = features (T*B, D) . proj^T */
        reel_linear_forward(m->projected, features, reel_store_view(p, m->proj), NULL, rows, m->D, m->E);
        features = m->projected;
        width = m->E;
    }
    *out = (reel_output){
        .rows = rows, .width = m->V, .T = m->stack.T, .B = m->stack.B, .row_mask = m->stack.row_mask,
        .features = features, .features_dim = width,
        .weight = reel_store_view(p, m->dec_w), .bias = reel_store_view(p, m->dec_b),
        .dweight = reel_store_grad_view(p, m->dec_w), .dbias = reel_store_grad_view(p, m->dec_b),
    };
}

static void lm_backward(reel_model *model, const reel_batch *batch, const float *dfeatures, const reel_comm *comm) {
    lm_impl *m = model->impl;
    const reel_store *p = &model->params;
    size_t rows = m->stack.T * m->stack.B;
    float *grad = rnn_stack_output_grad(&m->stack);
    if (m->proj != SIZE_MAX) {
        /* grad (T*B, D) = dfeatures . proj; dproj (E, D) += dfeatures^T . features */
        memset(grad, 0, rows * m->D * sizeof(float));
        reel_linear_backward(grad, reel_store_grad_view(p, m->proj), NULL, dfeatures, m->stack.output,
                             reel_store_view(p, m->proj), rows, m->D, m->E);
    } else {
        memcpy(grad, dfeatures, rows * m->D * sizeof(float));
    }
    reel_store_grad_ready(p, reel_store_top_group(p)); /* the decoder (its loss ran before) and the projection are final */
    rnn_stack_backward(&m->stack, p, batch, comm);
}

static void lm_init(reel_model *model, uint64_t seed) {
    lm_impl *m = model->impl;
    reel_store *p = &model->params, *s = &model->state;
    for (size_t i = 0; i < p->num_tensors; i++) {
        const reel_tensor_info *info = &p->tensors[i];
        float *values = reel_store_view(p, i);
        if (i == m->stack.embedding || (i == m->dec_w && !m->tied)) {
            reel_init_uniform(values, info->count, 0.1f, seed, (uint32_t)i);
        } else if (i == m->dec_b) {
            reel_init_constant(values, info->count, 0.0f);
        } else if (i == m->proj) {
            reel_init_uniform(values, info->count, 1.0f / sqrtf((float)m->D), seed, (uint32_t)i);
        } else if (strstr(info->name, "batchnorm")) {
            reel_init_constant(values, info->count, strstr(info->name, "/weight") ? 1.0f : 0.0f);
        } else {
            /* a recurrent tensor: w_hh is (G*H, H), and every tensor of the layer has G*H rows */
            size_t H = info->shape[0] / reel_cell_gates(m->stack.o.cell);
            reel_init_uniform(values, info->count, 1.0f / sqrtf((float)H), seed, (uint32_t)i);
        }
    }
    for (size_t i = 0; i < s->num_tensors; i++)
        reel_init_constant(reel_store_view(s, i), s->tensors[i].count, strstr(s->tensors[i].name, "running_var") ? 1.0f : 0.0f);
}

static void lm_destroy(reel_model *model) {
    lm_impl *m = model->impl;
    if (!m) return;
    rnn_stack_free(&m->stack);
    free(m->projected);
    free(m);
}

static const reel_model_ops lm_ops = {lm_forward, lm_backward, lm_init, lm_destroy, NULL, NULL};

static int lm_create(reel_model **out, const reel_config *cfg, size_t max_batch, reel_error *err) {
    const lm_options *o = reel_config_model_options(cfg);
    rnn_stack_options so = {
        .cell = !strcmp(o->cell, "lstm") ? REEL_CELL_LSTM : !strcmp(o->cell, "gru") ? REEL_CELL_GRU : REEL_CELL_RNN,
        .vocab = cfg->model.vocab_size, .E = cfg->model.embed_dim, .dirs = 1, .batch_norm = o->rnn_batch_norm,
        .input_dropout = (float)o->input_dropout, .word_dropout = (float)o->word_dropout,
        .rnn_dropout = (float)o->rnn_dropout, .weight_dropout = (float)o->weight_dropout,
    };
    if (o->layer_dims[0]) {
        int count = reel_config_size_list(o->layer_dims, "[model] layer_dims", so.H, RNN_STACK_MAX_LAYERS, err);
        if (count < 0) return -1;
        if (count == 0) return reel_fail(err, "[model] layer_dims is empty");
        so.num_layers = (size_t)count;
        so.width_key = "[model] layer_dims";
    } else {
        if (o->num_layers > RNN_STACK_MAX_LAYERS)
            return reel_fail(err, "[model] num_layers = %zu: at most %d recurrent layers", o->num_layers, RNN_STACK_MAX_LAYERS);
        so.num_layers = o->num_layers;
        for (size_t l = 0; l < so.num_layers; l++) so.H[l] = o->hidden_dim;
    }
    reel_model *model = reel_calloc(1, sizeof *model);
    lm_impl *m = reel_calloc(1, sizeof *m);
    snprintf(model->type, sizeof model->type, "rnn_lm");
    model->ops = &lm_ops;
    model->impl = m;
    model->vocab_size = cfg->model.vocab_size;
    model->output = REEL_OUTPUT_TOKEN;
    model->num_outputs = cfg->model.vocab_size;
    model->max_batch = max_batch ? max_batch : 1;
    model->seed = cfg->train.seed;
    m->V = cfg->model.vocab_size;
    m->E = cfg->model.embed_dim;
    m->tied = o->tie_weights;
    m->proj = SIZE_MAX;
    reel_store_init(&model->params, 1);
    reel_store_init(&model->state, 0);
    rnn_stack_create(&m->stack, &so, &model->params, &model->state);
    m->D = m->stack.D;
    model->state_width = rnn_stack_state_width(&m->stack);
    model->decode = REEL_DECODE_STATE;
    model->decode_width = model->state_width;
    const char *width_key = so.width_key ? so.width_key : "[model] hidden_dim"; /* the last layer's width */
    if (m->tied) {
        if (m->D != m->E)
            m->proj = reel_store_add_sized(&model->params, "decoder_proj/weight", 2, (size_t[]){m->E, m->D},
                                           "[model] embed_dim x %s (the last layer)", width_key);
        m->dec_w = m->stack.embedding;
    } else {
        m->dec_w = reel_store_add_sized(&model->params, "decoder/weight", 2, (size_t[]){m->V, m->D},
                                        "[model] vocab_size x %s (the last layer)", width_key);
    }
    m->dec_b = reel_store_add_sized(&model->params, "decoder/bias", 1, (size_t[]){m->V}, "[model] vocab_size");
    reel_store_allocate(&model->params);
    reel_store_allocate(&model->state);
    *out = model;
    return 0;
}

const reel_model_kind reel_model_kind_lm = {"rnn_lm", lm_create, &lm_key_table, "next_token"};
