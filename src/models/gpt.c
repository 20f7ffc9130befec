/* A GPT-style decoder-only Transformer language model ([model] type = gpt), as GPT-2 lays it out:
 *
 *   x = token embedding + learned position embedding        (the batch's tokens, C), dropout
 *   each of num_layers blocks (pre-LayerNorm):
 *     x = x + dropout(proj(causal multi-head attention(layernorm(x))))   attention dropout on its weights
 *     x = x + dropout(proj(gelu(fc(layernorm(x)))))         fc: C -> d_ff, proj: d_ff -> C
 *   features = layernorm(x)                                  the deferred output (reel/model.h)
 *   logits = features . W^T                                  W: the embedding (tied, the default) or its own
 *
 * C is [model] embed_dim (d_model). There is no bias on the output layer (GPT-2 has none). The stack (all
 * but the output layer) is src/models/xf_stack.c's, shared with the Transformer classifier, which can
 * start from a GPT's checkpoint.
 *
 * Positions ([model] positions): learned (GPT-2's, the default) adds row t of position/weight
 * (max_context, C) to token t's embedding; rotary has no table and instead rotates each head's queries
 * and keys right after the qkv projection by angles pos base^(-2i/D) (RoPE in the "rotate half" pairing of
 * GPT-NeoX and LLaMA, src/layers/rotary.c; the cos/sin tables, max_context x D/2, are made once here),
 * so attention depends on the distance between positions. D = C / num_heads must then be even.
 *
 * Dropout ([model] dropout, attention_dropout; training only, evaluation and generation never drop):
 * dropout on the embeddings and on both residual branches uses masks (N, C) drawn per (seed, epoch, sample
 * index, site, position); attention dropout drops attention weights inside the blocked kernel, the mask
 * of weight (i, j) drawn from (seed, epoch, sample index, layer, head, i, j) in the forward and drawn
 * again in the backward (reel/attention.h). Both depend on neither the rank, the batch's composition nor
 * the attention's block sizes. The stack works on the batch's tokens packed (src/models/xf_stack.c); the
 * output's rows are batch-major (b * T + t, REEL_ROWS_BATCH_MAJOR, T the longest sequence), which the
 * packed rows are when every sequence is T long (the stream sampler's training rows), else a copy; the
 * objective reads them through reel_output_row. Padding (t >= the sequence's length) is never computed
 * nor attended to, its features are zeros, and it gets no gradient.
 *
 * Initialisation, GPT-2's: every matrix and both embeddings N(0, 0.02); the two projections that write
 * into the residual stream (attention's and the MLP's output) N(0, 0.02 / sqrt(2 num_layers)); biases 0;
 * layer-norm gains 1. Weight decay: matrices and embeddings decay, biases and gains do not (the model's
 * per-tensor flags; [optimizer] decay overrides them).
 *
 * Activations live in one arena (one allocation, with named views into it) sized for the tokens of the
 * largest batch seen: in training every block keeps what its backward needs; an evaluation forward keeps
 * one block's worth and runs at most EVAL_CHUNK_ROWS tokens at a time (whole sequences), so scoring
 * batches of tens of thousands of tokens costs no more memory than a training batch.
 *
 * Incremental decoding keeps a key/value cache per sequence (REEL_DECODE_CACHE): batch->state holds, per
 * sequence, the number of positions cached (one float: exact below 2^24) and then, block by block, the keys
 * (max_context, C) and the values (max_context, C) of those positions. A forward with a state reads each
 * sequence's tokens as the continuation of its cache (positions count, count + 1, ...), attends to the
 * cached keys and its own, and appends its keys and values; with rotary positions the cache holds the
 * rotated keys, rotated at their own positions. Reading a text all at once or in pieces
 * through the cache gives the same features up to the order of summation (tests/test_gpt.c). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reel/model.h"
#include "xf_stack.h"

typedef struct gpt_options {
    xf_stack_options stack;
    int tie_weights;
} gpt_options;

static const reel_key gpt_keys[] = {
    XF_STACK_KEYS_SHAPE(gpt_options, "positions the model reads at once (the learned position table's rows); [data] "
                                     "seq_len may not exceed it"),
    REEL_KEY_BOOL_OF(gpt_options, "model", "tie_weights", tie_weights, "true",
                     "the output layer uses the token embedding matrix"),
    XF_STACK_KEYS_REST(gpt_options, "dropout on the embeddings and on each block's two residual branches (0 for "
                                    "pretraining, as GPT-2 at this scale)"),
};
static const reel_key_table gpt_key_table = {gpt_keys, sizeof gpt_keys / sizeof gpt_keys[0], sizeof(gpt_options)};

typedef struct {
    xf_stack stack;
    size_t V;     /* vocabulary: the output's width */
    size_t dec_w; /* the output layer's weight: the embedding when tied */
} gpt_impl;

static void gpt_forward(reel_model *model, const reel_batch *batch, int training, reel_output *out, const reel_comm *comm) {
    (void)comm; /* nothing global: no batch statistics */
    gpt_impl *g = model->impl;
    xf_stack *m = &g->stack;
    xf_stack_forward(m, model, batch, training, batch->state);
    /* the stack's rows are packed; the output declares the padded batch-major rows, which they are when
     * every sequence has the longest one's length (the stream sampler's training rows), else a copy */
    const float *features = xf_stack_padded_features(m);
    const reel_store *p = &model->params;
    *out = (reel_output){
        .rows = m->B * m->T, .width = g->V, .T = m->T, .B = m->B, .layout = REEL_ROWS_BATCH_MAJOR,
        .row_mask = m->row_mask, .features = features, .features_dim = m->C,
        .weight = reel_store_view(p, g->dec_w), .bias = NULL,
        .dweight = reel_store_grad_view(p, g->dec_w), .dbias = NULL,
    };
}

/* The loss has added the output layer's gradient (group L + 1 with the final norm when untied, the
 * embedding's group 0 when tied): the stack's backward reports both groups ready after its own. */
static void gpt_backward(reel_model *model, const reel_batch *batch, const float *dfeatures, const reel_comm *comm) {
    (void)comm;
    gpt_impl *g = model->impl;
    xf_stack_backward(&g->stack, model, batch, xf_stack_packed_rows(&g->stack, dfeatures));
}

static void gpt_init(reel_model *model, uint64_t seed) {
    gpt_impl *g = model->impl;
    xf_stack_init(&model->params, &g->stack, seed);
}

static void gpt_destroy(reel_model *model) {
    gpt_impl *g = model->impl;
    if (!g) return;
    xf_stack_free(&g->stack);
    free(g);
}

static const reel_model_ops gpt_ops = {gpt_forward, gpt_backward, gpt_init, gpt_destroy, NULL, NULL};

static int gpt_create(reel_model **out, const reel_config *cfg, size_t max_batch, reel_error *err) {
    const gpt_options *o = reel_config_model_options(cfg);
    size_t C = cfg->model.embed_dim, V = cfg->model.vocab_size;
    if (cfg->data.seq_len > o->stack.max_context)
        return reel_fail(err, "[data] seq_len = %zu is longer than [model] max_context = %zu: a gpt reads at most "
                         "max_context positions (raise max_context or lower seq_len)", cfg->data.seq_len,
                         o->stack.max_context);
    reel_model *model = reel_calloc(1, sizeof *model);
    gpt_impl *g = reel_calloc(1, sizeof *g);
    snprintf(model->type, sizeof model->type, "gpt");
    model->ops = &gpt_ops;
    model->impl = g;
    model->vocab_size = V;
    model->output = REEL_OUTPUT_TOKEN;
    model->num_outputs = V;
    model->max_context = o->stack.max_context;
    model->max_batch = max_batch ? max_batch : 1;
    model->seed = cfg->train.seed;
    g->V = V;
    reel_store *p = &model->params;
    reel_store_init(p, 1);
    reel_store_init(&model->state, 0);
    xf_stack *m = &g->stack;
    if (xf_stack_create(m, model, &o->stack, C, 1, err) != 0) {
        reel_model_destroy(model);
        return -1;
    }
    if (o->tie_weights) {
        g->dec_w = m->wte;
    } else {
        g->dec_w = reel_store_add_sized(p, "decoder/weight", 2, (size_t[]){V, C}, "%s", "[model] vocab_size x embed_dim");
        reel_store_set_decay(p, g->dec_w, 1);
    }
    reel_store_allocate(p);
    reel_store_allocate(&model->state);
    model->decode = REEL_DECODE_CACHE;
    model->decode_width = xf_stack_cache_floats(m);
    /* FLOP per token of a training step: 6 per parameter that multiplies (2 forward, 4 backward; the
     * position table is a lookup) plus attention's 12 L C T (QK^T and AV, forward and backward, T the
     * context; counted at the full causal square as PaLM's appendix B and nanoGPT count it) */
    double matmul_params = (double)p->num_floats - (m->rotary ? 0.0 : (double)m->W * C);
    double T = (double)(cfg->data.seq_len ? cfg->data.seq_len : m->W);
    model->flops_per_token = 6.0 * matmul_params + 12.0 * (double)m->L * (double)C * T;
    *out = model;
    return 0;
}

const reel_model_kind reel_model_kind_gpt = {"gpt", gpt_create, &gpt_key_table, "next_token"};
