/* The recurrent encoder shared by the recurrent models; see rnn_stack.h.
 *
 * Activations are time-major (T, B, X) with T the longest sequence of the batch; shorter sequences are
 * padded and the kernels guarantee that padding changes nothing. Buffers grow to the largest (T, B) seen. */
#include "rnn_stack.h"


#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reel/data.h"
#include "reel/gemm.h"
#include "reel/rng.h"

/* Dropout stream ids beyond the layers' own (layer l's output mask is keyed by l + 1). */
enum { EMBED_DROPOUT_ID = 200, BN_MOMENTUM_PERCENT = 10 };
static const float bn_eps = 1e-5f;

static const char *cell_prefix(reel_cell cell) {
    return cell == REEL_CELL_LSTM ? "lstm" : cell == REEL_CELL_GRU ? "gru" : "rnn";
}

void rnn_stack_create(rnn_stack *s, const rnn_stack_options *o, reel_store *params, reel_store *state) {
    memset(s, 0, sizeof *s);
    s->o = *o;
    REEL_CHECK(o->num_layers >= 1 && o->num_layers <= RNN_STACK_MAX_LAYERS && (o->dirs == 1 || o->dirs == 2), NULL,
               "rnn_stack: %zu layers, %zu directions", o->num_layers, o->dirs);
    size_t G = reel_cell_gates(o->cell), first_param = params->num_tensors, first_state = state->num_tensors;
    reel_store_set_group(params, 0);
    reel_store_set_group(state, 0);
    s->embedding = reel_store_add_sized(params, REEL_TENSOR_EMBEDDING, 2, (size_t[]){o->vocab, o->E},
                                        "[model] vocab_size x embed_dim");
    /* the keys each shape comes from, for the message when the memory does not suffice: W the layer's
     * units, width its output (both directions), input what it reads */
    char W[64], width[96], input[96] = "[model] embed_dim";
    for (size_t l = 0; l < o->num_layers; l++) {
        rnn_layer *ls = &s->layers[l];
        reel_store_set_group(params, l + 1);
        reel_store_set_group(state, l + 1);
        ls->H = o->H[l];
        ls->D = o->dirs * ls->H;
        ls->C = l == 0 ? o->E : s->layers[l - 1].D;
        size_t GH = G * ls->H;
        if (l > 0) snprintf(input, sizeof input, "%s", width);
        if (o->width_key) snprintf(W, sizeof W, "%s item %zu", o->width_key, l + 1);
        else snprintf(W, sizeof W, "[model] hidden_dim");
        snprintf(width, sizeof width, o->dirs == 2 ? "2 directions x %s" : "%s", W);
        for (size_t d = 0; d < o->dirs; d++) {
            char name[REEL_TENSOR_NAME_MAX];
            const char *dir = d ? "bwd" : "fwd";
            snprintf(name, sizeof name, "%s_l%zu_%s/w_ih", cell_prefix(o->cell), l, dir);
            ls->w_ih[d] = reel_store_add_sized(params, name, 2, (size_t[]){GH, ls->C}, "(%zu gates x %s) x %s", G, W, input);
            snprintf(name, sizeof name, "%s_l%zu_%s/w_hh", cell_prefix(o->cell), l, dir);
            ls->w_hh[d] = reel_store_add_sized(params, name, 2, (size_t[]){GH, ls->H}, "(%zu gates x %s) x %s", G, W, W);
            snprintf(name, sizeof name, "%s_l%zu_%s/b_ih", cell_prefix(o->cell), l, dir);
            ls->b_ih[d] = reel_store_add_sized(params, name, 1, (size_t[]){GH}, "%zu gates x %s", G, W);
            snprintf(name, sizeof name, "%s_l%zu_%s/b_hh", cell_prefix(o->cell), l, dir);
            ls->b_hh[d] = reel_store_add_sized(params, name, 1, (size_t[]){GH}, "%zu gates x %s", G, W);
            if (o->weight_dropout > 0.0f) {
                /* DropConnect's copies of w_hh: as large as it */
                char by[160];
                snprintf(by, sizeof by, "(%zu gates x %s) x %s", G, W, W);
                size_t count = reel_size_mul(GH, ls->H);
                ls->w_hh_dropped[d] = reel_calloc_for(count, sizeof(float), "a copy of w_hh for weight_dropout", by);
                ls->w_hh_mask[d] = reel_calloc_for(count, sizeof(float), "weight_dropout's mask", by);
                ls->dw_hh_dropped[d] = reel_calloc_for(count, sizeof(float), "its gradient", by);
            }
        }
        if (o->batch_norm) {
            char name[REEL_TENSOR_NAME_MAX];
            snprintf(name, sizeof name, "batchnorm_l%zu/weight", l);
            ls->bn_w = reel_store_add_sized(params, name, 1, (size_t[]){ls->D}, "%s", width);
            snprintf(name, sizeof name, "batchnorm_l%zu/bias", l);
            ls->bn_b = reel_store_add_sized(params, name, 1, (size_t[]){ls->D}, "%s", width);
            snprintf(name, sizeof name, "batchnorm_l%zu/running_mean", l);
            ls->bn_mean = reel_store_add_sized(state, name, 1, (size_t[]){ls->D}, "%s", width);
            snprintf(name, sizeof name, "batchnorm_l%zu/running_var", l);
            ls->bn_var = reel_store_add_sized(state, name, 1, (size_t[]){ls->D}, "%s", width);
        }
    }
    s->D = s->layers[o->num_layers - 1].D;
    /* the whole encoder: what a classifier starts from when it starts from a language model */
    reel_store_mark_transfer(params, first_param);
    reel_store_mark_transfer(state, first_state);
    /* what a model adds after the encoder (its head) sits above it */
    reel_store_set_group(params, o->num_layers + 1);
    reel_store_set_group(state, o->num_layers + 1);
    reel_embedding_rows_init(&s->rows, o->vocab);
}

size_t rnn_stack_state_width(const rnn_stack *s) {
    if (s->o.dirs != 1) return 0;
    size_t width = 0;
    for (size_t l = 0; l < s->o.num_layers; l++) width += s->layers[l].H * (s->o.cell == REEL_CELL_LSTM ? 2 : 1);
    return width;
}

static void free_activations(rnn_stack *s) {
    for (size_t l = 0; l < s->o.num_layers; l++) {
        rnn_layer *ls = &s->layers[l];
        for (size_t d = 0; d < s->o.dirs; d++) {
            if (ls->cache[d].gates) reel_recurrent_cache_free(&ls->cache[d]);
            free(ls->dir_out[d]);
        }
        float *buffers[] = {ls->cat, ls->normed, ls->dropped, ls->mask, ls->bn.xhat, ls->bn.inv_std, ls->h0, ls->c0};
        for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
        free(ls->bn.scratch);
        memset(ls->dir_out, 0, sizeof ls->dir_out);
        ls->cat = ls->normed = ls->dropped = ls->mask = ls->bn.xhat = ls->bn.inv_std = ls->h0 = ls->c0 = NULL;
        ls->bn.scratch = NULL;
    }
    float *buffers[] = {s->embedded, s->projected, s->embed_mask, s->row_scale, s->grad_a, s->grad_b, s->d_dir[0], s->d_dir[1],
                        s->delta_steps, s->d_input_steps};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
    free(s->lengths);
    free(s->row_mask);
}

void rnn_stack_free(rnn_stack *s) {
    free_activations(s);
    for (size_t l = 0; l < s->o.num_layers; l++)
        for (size_t d = 0; d < 2; d++) {
            free(s->layers[l].w_hh_dropped[d]);
            free(s->layers[l].w_hh_mask[d]);
            free(s->layers[l].dw_hh_dropped[d]);
        }
    reel_embedding_rows_free(&s->rows);
    memset(s, 0, sizeof *s);
}

/* Makes every activation buffer large enough for T steps of B sequences. Capacity is kept as a number
 * of time steps (T * B), not as T and B apart: evaluation batches a few long reviews or many short ones,
 * and the product of the two maxima would be far larger than either batch. */
size_t rnn_stack_capacity(size_t needed, size_t current) {
    size_t doubled = 2 * current > REEL_EVAL_STEP_BUDGET ? REEL_EVAL_STEP_BUDGET : 2 * current;
    if (doubled < current) doubled = current;
    return needed > doubled ? needed : doubled;
}

static void reserve(rnn_stack *s, size_t T, size_t B) {
    if (T * B <= s->cap_rows && B <= s->cap_B) return;
    free_activations(s);
    s->cap_rows = rnn_stack_capacity(T * B, s->cap_rows);
    s->cap_B = B > s->cap_B ? B : s->cap_B;
    B = s->cap_B;
    size_t rows = s->cap_rows, E = s->o.E, widest = E, widest_H = 0;
    /* rows: time steps x sequences of a batch; the keys behind the sizes, for the message when the
     * memory does not suffice */
    const char *W = s->o.width_key ? s->o.width_key : "[model] hidden_dim";
    char by_width[160], by_embed[160];
    snprintf(by_width, sizeof by_width, "[data] seq_len or max_tokens x [train] batch_size (per rank) x %s", W);
    snprintf(by_embed, sizeof by_embed, "[data] seq_len or max_tokens x [train] batch_size (per rank) x [model] embed_dim");
    for (size_t l = 0; l < s->o.num_layers; l++) {
        rnn_layer *ls = &s->layers[l];
        size_t H = ls->H, D = ls->D;
        if (D > widest) widest = D;
        if (H > widest_H) widest_H = H;
        for (size_t d = 0; d < s->o.dirs; d++) {
            reel_require_for(reel_size_mul(reel_size_mul(rows, reel_cell_gates(s->o.cell)), H), sizeof(float),
                             "a layer's gate cache (gates x rows)", by_width);
            reel_recurrent_cache_alloc(&ls->cache[d], s->o.cell, rows, B, H);
            ls->dir_out[d] = reel_calloc_for(reel_size_mul(rows, H), sizeof(float), "a layer's outputs", by_width);
        }
        ls->cat = s->o.dirs == 2 ? reel_calloc_for(reel_size_mul(rows, D), sizeof(float), "a layer's joined directions",
                                                   by_width) : NULL;
        ls->normed = reel_calloc_for(reel_size_mul(rows, D), sizeof(float), "a layer's normalised outputs", by_width);
        ls->dropped = reel_calloc_for(reel_size_mul(rows, D), sizeof(float), "a layer's outputs after dropout", by_width);
        ls->mask = reel_calloc(B * D, sizeof(float));
        ls->bn.xhat = reel_calloc_for(reel_size_mul(rows, D), sizeof(float), "batch norm's cache", by_width);
        ls->bn.inv_std = reel_calloc(D, sizeof(float));
        ls->bn.scratch = reel_calloc(2 * D + 1, sizeof(double));
        ls->h0 = reel_calloc(B * H, sizeof(float));
        ls->c0 = reel_calloc(B * H, sizeof(float));
    }
    s->lengths = reel_calloc(B, sizeof(size_t));
    s->row_mask = reel_calloc(rows, 1);
    reel_embedding_rows_reserve(&s->rows, rows);
    s->embedded = reel_calloc_for(reel_size_mul(rows, E), sizeof(float), "the embedded inputs", by_embed);
    /* as large as the gates in the worst case (every position distinct); calloc leaves pages that are
     * never touched unmapped, so a batch with U distinct rows costs U rows of memory */
    s->projected = reel_calloc_for(reel_size_mul(reel_size_mul(rows, reel_cell_gates(s->o.cell)), s->layers[0].H),
                                   sizeof(float), "the first layer's input projections (gates x rows)", by_width);
    s->embed_mask = reel_calloc(B * E, sizeof(float));
    s->row_scale = reel_calloc(rows, sizeof(float));
    /* used by adversarial training only; untouched pages of calloc cost nothing */
    s->delta_steps = reel_calloc_for(reel_size_mul(rows, E), sizeof(float), "the adversarial perturbations", by_embed);
    s->d_input_steps = reel_calloc_for(reel_size_mul(rows, E), sizeof(float), "their gradients", by_embed);
    s->grad_a = reel_calloc_for(reel_size_mul(rows, widest), sizeof(float), "a gradient buffer", by_width);
    s->grad_b = reel_calloc_for(reel_size_mul(rows, widest), sizeof(float), "a gradient buffer", by_width);
    for (size_t d = 0; d < 2; d++) s->d_dir[d] = reel_calloc(rows * widest_H, sizeof(float));
}

/* The recurrent weight a layer's direction uses in this forward: w_hh, or its DropConnect copy. */
static const float *effective_w_hh(const rnn_stack *s, const reel_store *p, const rnn_layer *ls, size_t d) {
    return s->training && s->o.weight_dropout > 0.0f ? ls->w_hh_dropped[d] : reel_store_view(p, ls->w_hh[d]);
}

/* DropConnect masks on every w_hh, keyed by (epoch, step, layer, direction): the same on every rank. */
static void drop_weights(rnn_stack *s, const reel_store *p, const reel_batch *batch, uint64_t seed) {
    float drop = s->o.weight_dropout, keep_scale = 1.0f / (1.0f - drop);
    size_t G = reel_cell_gates(s->o.cell);
    for (size_t l = 0; l < s->o.num_layers; l++)
        for (size_t d = 0; d < s->o.dirs; d++) {
            rnn_layer *ls = &s->layers[l];
            size_t count = G * ls->H * ls->H;
            const float *w = reel_store_view(p, ls->w_hh[d]);
            float *mask = ls->w_hh_mask[d], *dropped = ls->w_hh_dropped[d];
            uint32_t stream = (uint32_t)(l * 2 + d) << 24;
            for (size_t block = 0; block * 4 < count; block++) {
                uint32_t words[4];
                reel_rng_block(words, seed, REEL_RNG_WEIGHT_DROPOUT, (uint32_t)batch->epoch, (uint32_t)batch->step,
                               stream | (uint32_t)block);
                for (size_t k = 0; k < 4 && block * 4 + k < count; k++) {
                    size_t i = block * 4 + k;
                    mask[i] = reel_rng_unit_float(words[k]) < drop ? 0.0f : keep_scale;
                    dropped[i] = w[i] * mask[i];
                }
            }
        }
}

/* Word dropout: the scale of each distinct row, 0 or 1/(1-p) by its token, keyed by (epoch, step, token)
 * so a word is dropped everywhere in the global batch, on every rank alike. */
static void drop_words(rnn_stack *s, const reel_batch *batch, uint64_t seed) {
    float drop = s->o.word_dropout, keep_scale = 1.0f / (1.0f - drop);
    for (size_t u = 0; u < s->rows.count; u++) {
        uint32_t token = s->rows.token[u], words[4];
        reel_rng_block(words, seed, REEL_RNG_VOCAB_DROPOUT, (uint32_t)batch->epoch, (uint32_t)batch->step, token / 4);
        s->row_scale[u] = reel_rng_unit_float(words[token % 4]) < drop ? 0.0f : keep_scale;
        float *row = s->embedded + u * s->o.E;
        for (size_t e = 0; e < s->o.E; e++) row[e] *= s->row_scale[u];
    }
}

/* First layer, one direction: projects the distinct rows, copies each projection to its real positions
 * (packed: the cache was packed for this batch by rnn_stack_forward) and runs the steps. */
static void first_layer_forward(rnn_stack *s, const reel_store *p, rnn_layer *ls, size_t d, size_t T, size_t B) {
    size_t E = s->o.E, H = ls->H, GH = reel_cell_gates(s->o.cell) * H, U = s->rows.count;
    reel_recurrent_cache *cache = &ls->cache[d];
    float *bias = cache->step; /* G*H floats, free until the steps */
    reel_recurrent_input_bias(bias, s->o.cell, reel_store_view(p, ls->b_ih[d]), reel_store_view(p, ls->b_hh[d]), H);
    /* projected (U, G*H) = embedded (U, E) . w_ih^T + bias */
    reel_linear_forward(s->projected, s->embedded, reel_store_view(p, ls->w_ih[d]), bias, U, E, GH);
    const reel_packing *pk = &cache->pack;
    reel_embedding_rows_to_steps(&s->rows, cache->gates, s->projected, GH, pk->padded, pk->N);
    /* gates (N, G*H) += delta_steps (N, E) . w_ih^T: the perturbation's share of the projection */
    if (s->perturbed)
        reel_gemm(0, 1, pk->N, GH, E, 1.0f, s->delta_steps, E, reel_store_view(p, ls->w_ih[d]), E, 1.0f, cache->gates, GH);
    reel_recurrent_forward_steps(cache, ls->dir_out[d], s->lengths, effective_w_hh(s, p, ls, d),
                                 reel_store_view(p, ls->b_hh[d]), T, B, H, (int)d);
}

/* First layer, one direction: d_rows (U, E) += the gradient of the distinct rows; weight gradients +=. */
static void first_layer_backward(rnn_stack *s, const reel_store *p, float *d_rows, float *dw_hh, rnn_layer *ls,
                                 size_t d, const float *dout, size_t T, size_t B) {
    size_t E = s->o.E, H = ls->H, GH = reel_cell_gates(s->o.cell) * H, U = s->rows.count;
    reel_recurrent_cache *cache = &ls->cache[d];
    reel_recurrent_backward_steps(cache, dw_hh, reel_store_grad_view(p, ls->b_ih[d]), reel_store_grad_view(p, ls->b_hh[d]),
                                  dout, ls->dir_out[d], s->lengths, effective_w_hh(s, p, ls, d), T, B, H, (int)d);
    /* the gradient of each distinct projection: the sum over its positions */
    float *d_projected = s->projected;
    const reel_packing *pk = &cache->pack;
    reel_embedding_rows_sum_steps(&s->rows, d_projected, cache->dgates_x, GH, pk->padded, pk->N);
    /* d_rows (U, E) += d_projected . w_ih; dw_ih (G*H, E) += d_projected^T . embedded */
    reel_linear_backward(d_rows, reel_store_grad_view(p, ls->w_ih[d]), NULL, d_projected, s->embedded,
                         reel_store_view(p, ls->w_ih[d]), U, E, GH);
    /* the products over the real positions, packed */
    size_t steps = pk->N;
    /* dw_ih (G*H, E) += dgates_x^T (G*H, N) . delta_steps (N, E) */
    if (s->perturbed)
        reel_gemm(1, 0, GH, E, steps, 1.0f, cache->dgates_x, GH, s->delta_steps, E, 1.0f,
                  reel_store_grad_view(p, ls->w_ih[d]), E);
    /* d_input_steps (N, E) (=, then += for the second direction) dgates_x (N, G*H) . w_ih (G*H, E) */
    if (s->input_grad)
        reel_gemm(0, 0, steps, E, GH, 1.0f, cache->dgates_x, GH, reel_store_view(p, ls->w_ih[d]), E, d == 0 ? 0.0f : 1.0f,
                  s->d_input_steps, E);
}

/* delta_steps (N, E) at the first layer's packed positions from the tokens' deltas (total tokens, E),
 * through the input-dropout mask (B, E) when there is one. */
static void deltas_to_steps(rnn_stack *s, const reel_batch *batch, const float *mask) {
    size_t E = s->o.E;
    const reel_packing *pk = &s->layers[0].cache[0].pack;
    for (size_t q = 0; q < pk->N; q++) {
        size_t t = pk->padded[q] / pk->B, b = pk->padded[q] % pk->B;
        float *row = s->delta_steps + q * E;
        const float *delta = s->input_delta + (batch->offsets[b] + t) * E;
        for (size_t e = 0; e < E; e++) row[e] = mask ? delta[e] * mask[b * E + e] : delta[e];
    }
}

/* input_grad (total tokens, E) from d_input_steps (N, E): the gradient with respect to each token's
 * delta, through the input-dropout mask. */
static void steps_to_input_grad(rnn_stack *s, const reel_batch *batch, const float *mask) {
    size_t E = s->o.E;
    const reel_packing *pk = &s->layers[0].cache[0].pack;
    for (size_t q = 0; q < pk->N; q++) {
        size_t t = pk->padded[q] / pk->B, b = pk->padded[q] % pk->B;
        const float *step = s->d_input_steps + q * E;
        float *out = s->input_grad + (batch->offsets[b] + t) * E;
        for (size_t e = 0; e < E; e++) out[e] = mask ? step[e] * mask[b * E + e] : step[e];
    }
}

/* The carried state of each sequence into the layers' initial states (cache h0/c0), or none. */
static void load_state(rnn_stack *s, const reel_batch *batch, size_t B) {
    int lstm = s->o.cell == REEL_CELL_LSTM;
    s->carried = batch->state != NULL;
    REEL_CHECK(!s->carried || s->o.dirs == 1, NULL, "a carried state needs a unidirectional encoder");
    size_t width = rnn_stack_state_width(s), offset = 0;
    for (size_t l = 0; l < s->o.num_layers; l++) {
        rnn_layer *ls = &s->layers[l];
        size_t H = ls->H;
        ls->cache[0].h0 = s->carried ? ls->h0 : NULL;
        ls->cache[0].c0 = s->carried && lstm ? ls->c0 : NULL;
        if (s->o.dirs == 2) ls->cache[1].h0 = ls->cache[1].c0 = NULL;
        if (!s->carried) continue;
        for (size_t b = 0; b < B; b++) {
            const float *row = batch->state + b * width + offset;
            memcpy(ls->h0 + b * H, row, H * sizeof(float));
            if (lstm) memcpy(ls->c0 + b * H, row + H, H * sizeof(float));
        }
        offset += H * (lstm ? 2 : 1);
    }
}

/* Each sequence's final state back into the batch's state buffer: the last step of the batch, which
 * holds it for shorter sequences too (they keep their state past their end), and the cell state the
 * layer kept per sequence. */
static void store_state(rnn_stack *s, const reel_batch *batch, size_t T, size_t B) {
    if (!batch->state) return;
    int lstm = s->o.cell == REEL_CELL_LSTM;
    size_t width = rnn_stack_state_width(s), offset = 0;
    for (size_t l = 0; l < s->o.num_layers; l++) {
        rnn_layer *ls = &s->layers[l];
        size_t H = ls->H;
        for (size_t b = 0; b < B; b++) {
            float *row = batch->state + b * width + offset;
            memcpy(row, ls->dir_out[0] + ((T - 1) * B + b) * H, H * sizeof(float));
            if (lstm) memcpy(row + H, ls->cache[0].c_last + b * H, H * sizeof(float));
        }
        offset += H * (lstm ? 2 : 1);
    }
}

void rnn_stack_forward(rnn_stack *s, const reel_store *p, const reel_store *st, const reel_batch *batch, int training,
                       uint64_t seed, const reel_comm *comm) {
    size_t B = batch->size, T = 0, E = s->o.E;
    for (size_t b = 0; b < B; b++) {
        size_t length = batch->offsets[b + 1] - batch->offsets[b];
        if (length > T) T = length;
    }
    if (T == 0) T = 1; /* only empty sequences (or none): one step of padding */
    reserve(s, T, B);
    s->T = T;
    s->B = B;
    s->training = training;
    for (size_t b = 0; b < B; b++) s->lengths[b] = batch->offsets[b + 1] - batch->offsets[b];
    load_state(s, batch, B);
    if (training && s->o.weight_dropout > 0.0f) drop_weights(s, p, batch, seed);

    const float *x = NULL; /* the input of layers after the first */
    int embed_dropping = training && s->o.input_dropout > 0.0f;
    if (embed_dropping)
        reel_dropout_mask(s->embed_mask, batch->sample_index, B, E, s->o.input_dropout, seed, batch->epoch,
                          EMBED_DROPOUT_ID);
    reel_embedding_rows_forward(&s->rows, s->embedded, s->row_mask, batch->ids, batch->offsets,
                                reel_store_view(p, s->embedding), embed_dropping ? s->embed_mask : NULL, T, B, E);
    if (training && s->o.word_dropout > 0.0f) drop_words(s, batch, seed);
    /* the first layer's order of the batch (packed sequences), before its input projection is placed */
    for (size_t d = 0; d < s->o.dirs; d++) reel_recurrent_pack(&s->layers[0].cache[d], s->lengths, T, B);
    s->perturbed = s->input_delta != NULL;
    if (s->perturbed) deltas_to_steps(s, batch, embed_dropping ? s->embed_mask : NULL);
    for (size_t l = 0; l < s->o.num_layers; l++) {
        rnn_layer *ls = &s->layers[l];
        size_t C = ls->C, H = ls->H, D = ls->D;
        ls->input = x;
        for (size_t d = 0; d < s->o.dirs; d++) {
            if (l == 0)
                first_layer_forward(s, p, ls, d, T, B);
            else
                reel_recurrent_forward(&ls->cache[d], ls->dir_out[d], x, s->lengths, reel_store_view(p, ls->w_ih[d]),
                                       effective_w_hh(s, p, ls, d), reel_store_view(p, ls->b_ih[d]),
                                       reel_store_view(p, ls->b_hh[d]), T, B, C, H, (int)d);
        }
        /* one direction: its output already is the layer's output; two: side by side */
        float *cat = ls->dir_out[0];
        if (s->o.dirs == 2) {
            cat = ls->cat;
            for (size_t row = 0; row < T * B; row++)
                for (size_t d = 0; d < 2; d++) memcpy(cat + row * D + d * H, ls->dir_out[d] + row * H, H * sizeof(float));
        }
        const float *y = cat;
        if (s->o.batch_norm) {
            if (training)
                reel_batchnorm_forward_train(ls->normed, &ls->bn, cat, reel_store_view(p, ls->bn_w),
                                             reel_store_view(p, ls->bn_b),
                                             s->frozen_statistics ? NULL : reel_store_view(st, ls->bn_mean),
                                             s->frozen_statistics ? NULL : reel_store_view(st, ls->bn_var), s->row_mask, T * B, D,
                                             BN_MOMENTUM_PERCENT / 100.0f, bn_eps, comm);
            else
                reel_batchnorm_forward_eval(ls->normed, cat, reel_store_view(p, ls->bn_w),
                                            reel_store_view(p, ls->bn_b), reel_store_view(st, ls->bn_mean),
                                            reel_store_view(st, ls->bn_var), T * B, D, bn_eps);
            y = ls->normed;
        }
        if (training && s->o.rnn_dropout > 0.0f) {
            reel_dropout_mask(ls->mask, batch->sample_index, B, D, s->o.rnn_dropout, seed, batch->epoch, (uint32_t)(l + 1));
            reel_locked_dropout_forward(ls->dropped, y, ls->mask, T, B, D);
            y = ls->dropped;
        }
        ls->output = y;
        x = y;
    }
    s->output = x;
    store_state(s, batch, T, B);
}

float *rnn_stack_output_grad(rnn_stack *s) { return s->grad_a; }

/* 1 when every tensor of layer l (its cells and batch norm) is frozen. */
static int layer_frozen(const rnn_stack *s, const reel_store *p, size_t l) {
    const rnn_layer *ls = &s->layers[l];
    for (size_t d = 0; d < s->o.dirs; d++)
        if (!p->tensors[ls->w_ih[d]].frozen || !p->tensors[ls->w_hh[d]].frozen || !p->tensors[ls->b_ih[d]].frozen ||
            !p->tensors[ls->b_hh[d]].frozen)
            return 0;
    return !s->o.batch_norm || (p->tensors[ls->bn_w].frozen && p->tensors[ls->bn_b].frozen);
}

void rnn_stack_backward(rnn_stack *s, const reel_store *p, const reel_batch *batch, const reel_comm *comm) {
    size_t B = batch->size, T = s->T, E = s->o.E;
    int training = s->training, weight_dropping = training && s->o.weight_dropout > 0.0f;
    float *grad = s->grad_a, *spare = s->grad_b;
    /* Fine-tuning freezes the lower layers: the backward stops at the lowest layer that trains, which
     * then skips the gradient of its input too (about a third of a layer's backward), unless the
     * embedding trains or the gradient of the inputs is asked for. (The frozen flags are the same on
     * every rank, so the batch-norm collectives stay matched.) */
    int inputs_needed = s->input_grad != NULL || !p->tensors[s->embedding].frozen;
    size_t lowest = 0;
    if (!inputs_needed)
        for (lowest = 0; lowest < s->o.num_layers && layer_frozen(s, p, lowest); lowest++) continue;
    for (size_t l = s->o.num_layers; l-- > lowest;) {
        int input_wanted = inputs_needed || l > lowest;
        rnn_layer *ls = &s->layers[l];
        size_t C = ls->C, H = ls->H, D = ls->D, GH = reel_cell_gates(s->o.cell) * H;
        for (size_t d = 0; d < s->o.dirs; d++) { /* the layer polls the store's hook between its steps */
            ls->cache[d].poll = p->hooks.poll;
            ls->cache[d].poll_ctx = p->hooks.ctx;
        }
        if (training && s->o.rnn_dropout > 0.0f)
            for (size_t t = 0; t < T; t++)
                for (size_t i = 0; i < B * D; i++) grad[t * B * D + i] *= ls->mask[i];
        if (s->o.batch_norm) {
            memset(spare, 0, T * B * D * sizeof(float));
            reel_batchnorm_backward(spare, reel_store_grad_view(p, ls->bn_w), reel_store_grad_view(p, ls->bn_b), grad,
                                    &ls->bn, reel_store_view(p, ls->bn_w), s->row_mask, T * B, D, comm);
            float *swap = grad;
            grad = spare, spare = swap;
        }
        /* two directions: split the (T, B, 2H) gradient into one (T, B, H) block per direction */
        const float *d_dir[2] = {grad, NULL};
        if (s->o.dirs == 2) {
            for (size_t row = 0; row < T * B; row++)
                for (size_t d = 0; d < 2; d++) memcpy(s->d_dir[d] + row * H, grad + row * D + d * H, H * sizeof(float));
            d_dir[0] = s->d_dir[0], d_dir[1] = s->d_dir[1];
        }
        /* Under weight dropout the kernels see the dropped weight: its gradient goes through the mask. */
        float *dw_hh[2];
        for (size_t d = 0; d < s->o.dirs; d++) {
            dw_hh[d] = weight_dropping ? ls->dw_hh_dropped[d] : reel_store_grad_view(p, ls->w_hh[d]);
            if (weight_dropping) memset(dw_hh[d], 0, GH * H * sizeof(float));
        }
        if (l == 0) { /* spare receives the gradient of the distinct rows (U, E) */
            memset(spare, 0, s->rows.count * E * sizeof(float));
            for (size_t d = 0; d < s->o.dirs; d++)
                first_layer_backward(s, p, input_wanted ? spare : NULL, dw_hh[d], ls, d, d_dir[d], T, B);
            grad = spare;
        } else {
            if (input_wanted) memset(spare, 0, T * B * C * sizeof(float));
            for (size_t d = 0; d < s->o.dirs; d++)
                reel_recurrent_backward(&ls->cache[d], input_wanted ? spare : NULL, reel_store_grad_view(p, ls->w_ih[d]), dw_hh[d],
                                        reel_store_grad_view(p, ls->b_ih[d]), reel_store_grad_view(p, ls->b_hh[d]),
                                        d_dir[d], ls->dir_out[d], ls->input, s->lengths, reel_store_view(p, ls->w_ih[d]),
                                        effective_w_hh(s, p, ls, d), T, B, C, H, (int)d);
            float *swap = grad;
            grad = spare, spare = swap;
        }
        if (weight_dropping)
            for (size_t d = 0; d < s->o.dirs; d++) {
                float *target = reel_store_grad_view(p, ls->w_hh[d]);
                for (size_t i = 0; i < GH * H; i++) target[i] += dw_hh[d][i] * ls->w_hh_mask[d][i];
            }
        reel_store_grad_ready(p, l + 1); /* this layer and its batch norm are final: their bucket may go */
        if (l == 0) break;
    }
    if (!inputs_needed) return;

    /* embeddings: only the rows of the batch's tokens receive gradient */
    if (training && s->o.word_dropout > 0.0f)
        for (size_t u = 0; u < s->rows.count; u++)
            for (size_t e = 0; e < E; e++) grad[u * E + e] *= s->row_scale[u];
    int embed_dropping = training && s->o.input_dropout > 0.0f;
    reel_embedding_rows_backward(&s->rows, reel_store_grad_view(p, s->embedding), grad,
                                 embed_dropping ? s->embed_mask : NULL, E);
    if (s->input_grad) steps_to_input_grad(s, batch, embed_dropping ? s->embed_mask : NULL);
}
