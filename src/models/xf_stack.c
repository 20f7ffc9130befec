/* The Transformer stack (src/models/xf_stack.h), as GPT-2 lays it out:
 *
 *   x = token embedding + learned position embedding        (N tokens, C), dropout
 *   each of num_layers blocks (pre-LayerNorm):
 *     x = x + dropout(proj(multi-head attention(layernorm(x))))   attention dropout on its weights
 *     x = x + dropout(proj(gelu(fc(layernorm(x)))))         fc: C -> d_ff, proj: d_ff -> C
 *   features = layernorm(x)
 *
 * C is [model] embed_dim (d_model). Attention is causal (token t sees tokens <= t: the GPT, and a
 * classifier started from one) or bidirectional (every token of its sequence: the encoder classifier);
 * padding is never attended to either way.
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
 * the attention's block sizes, nor the other sequences' lengths.
 *
 * Packed batches: the stack keeps the batch's sequences PACKED, their tokens one after another ((N, C), N
 * the batch's tokens, sequence b at rows offsets[b] .. offsets[b + 1] - 1), exactly as the batch holds
 * its ids. The embedding, the LayerNorms, the four matrix products of each block, GELU, dropout and the
 * residual sums run over the N real tokens only; attention reads each sequence by its offset and length
 * (reel/attention.h's packed layout, FlashAttention's "varlen"); positions, learned or rotary, restart at
 * 0 (at the cached count when decoding) in each sequence. No work is done for padding: there is none.
 * A sequence's results are bit for bit those it gets alone (tests/test_models.c): every row is computed
 * by the same code from its own rows. The GPT's per-token output declares padded batch-major rows
 * (b * T + t, REEL_ROWS_BATCH_MAJOR, T the longest sequence): xf_stack_padded_features gives them, the
 * packed rows themselves when every sequence is T long (the stream sampler's training rows), else a copy
 * with zeros at padding. A GPT trains bit for bit as when the stack padded (checked with ckpt_compare
 * --exact, both samplers): its rows' values do not depend on the layout.
 *
 * Initialisation, GPT-2's: every matrix and both embeddings N(0, 0.02); the two projections that write
 * into the residual stream (attention's and the MLP's output) N(0, 0.02 / sqrt(2 num_layers)); biases 0;
 * layer-norm gains 1. Weight decay: matrices and embeddings decay, biases and gains do not (the model's
 * per-tensor flags; [optimizer] decay overrides them).
 *
 * Activations live in one arena (one allocation, with named views into it) sized for the tokens of the
 * largest batch seen: in training every block keeps what its backward needs; an evaluation forward keeps
 * one block's worth and runs at most EVAL_CHUNK_ROWS tokens at a time (whole sequences; one longer
 * sequence alone), so scoring batches of tens of thousands of tokens costs no more memory than a training
 * batch.
 *
 * Incremental decoding keeps a key/value cache per sequence (REEL_DECODE_CACHE): batch->state holds, per
 * sequence, the number of positions cached (one float: exact below 2^24) and then, block by block, the keys
 * (max_context, C) and the values (max_context, C) of those positions. A forward with a state reads each
 * sequence's tokens as the continuation of its cache (positions count, count + 1, ...), attends to the
 * cached keys and its own, and appends its keys and values; with rotary positions the cache holds the
 * rotated keys, rotated at their own positions. Reading a text all at once or in pieces
 * through the cache gives the same features up to the order of summation (tests/test_gpt.c). */
#include "xf_stack.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/attention.h"
#include "reel/gemm.h"
#include "reel/layers.h"
#include "reel/rng.h"

/* Rows (tokens) an evaluation forward runs at a time: enough for the matrix products to run at full
 * speed, small enough that the arena stays near a training batch's. */
enum { EVAL_CHUNK_ROWS = 4096 };

const char *const xf_position_kinds[] = {"learned", "rotary", NULL};

/* Attention's block products run in fp32 even in a bf16 run. Each is small (64 x 64 blocks, D columns),
 * and a bf16 product pays a rounding of both operands, three oneDNN memory objects and a stream wait per
 * call: the whole attention measured 4-6x slower in bf16 than in fp32 (bench_kernels --attention 1, with
 * and without --bf16 1), while attention is a small share of the model's FLOP (12 L C T of 6 N + 12 L C T
 * per token: 5% at the reference shape, 13% at GPT-2 small's). The kernel itself follows the precision it
 * is given (tests/test_attention.c checks it in both). */
enum { ATTENTION_BLOCK = 64 };

static size_t block_size(void) { return ATTENTION_BLOCK; }

/* offsets (B + 1): the sequences' rows in the packed layout (reel/attention.h) */
static void attention_forward_fp32(float *out, float *lse, const float *qkv, const size_t *offsets, int causal, size_t B,
                                   size_t C, size_t NH, const reel_attention_dropout *dropout, float *scratch) {
    reel_precision saved = reel_gemm_precision();
    reel_gemm_set_precision(REEL_FP32);
    reel_attention_forward_packed(out, lse, qkv, offsets, causal, B, C, NH, ATTENTION_BLOCK, ATTENTION_BLOCK, dropout,
                                  scratch);
    reel_gemm_set_precision(saved);
}

static void attention_backward_fp32(float *dqkv, const float *dout, const float *out, const float *lse,
                                    const float *qkv, const size_t *offsets, int causal, size_t B, size_t C, size_t NH,
                                    const reel_attention_dropout *dropout, float *scratch) {
    reel_precision saved = reel_gemm_precision();
    reel_gemm_set_precision(REEL_FP32);
    reel_attention_backward_packed(dqkv, dout, out, lse, qkv, offsets, causal, B, C, NH, ATTENTION_BLOCK,
                                   ATTENTION_BLOCK, dropout, scratch);
    reel_gemm_set_precision(saved);
}

/* Attention's workspace for sequences of at most T tokens. */
static size_t scratch_floats(const xf_stack *m, size_t T) {
    size_t bs = block_size();
    return reel_attention_scratch_floats(1, T, m->C, m->NH, bs, bs);
}

/* Lays the arena out for N packed rows (tokens) of sequences of at most T tokens with `slots` blocks of
 * saved activations (training: one per block, and the backward's buffers too). Grows the allocation when
 * it must. */
static void arena_layout(xf_stack *m, size_t N, size_t T, size_t slots, int training) {
    size_t C = m->C, F = m->F, NH = m->NH;
    int dropout = training && m->dropout > 0;
    size_t need = 0, scratch = scratch_floats(m, T) > m->W ? scratch_floats(m, T) : m->W;
    /* first pass counts, second pass assigns: the same code, so the two cannot disagree */
    for (int pass = 0; pass < 2; pass++) {
        size_t at = 0;
#define TAKE(ptr, count)                                  \
    do {                                                  \
        size_t take_count_ = (count);                     \
        if (pass) (ptr) = take_count_ ? m->arena + at : NULL; \
        at += take_count_;                                \
    } while (0)
        TAKE(m->x0, N * C);
        TAKE(m->mask_emb, dropout ? N * C : 0);
        for (size_t l = 0; l < slots; l++) {
            xf_block_acts *a = &m->acts[l];
            TAKE(a->ln1, N * C);
            TAKE(a->ln1_mean, N);
            TAKE(a->ln1_rstd, N);
            TAKE(a->qkv, N * 3 * C);
            TAKE(a->att, N * C);
            TAKE(a->lse, NH * N);
            TAKE(a->mid, N * C);
            TAKE(a->ln2, N * C);
            TAKE(a->ln2_mean, N);
            TAKE(a->ln2_rstd, N);
            TAKE(a->fc, N * F);
            TAKE(a->act, N * F);
            TAKE(a->out, N * C);
            TAKE(a->mask_att, dropout ? N * C : 0);
            TAKE(a->mask_mlp, dropout ? N * C : 0);
        }
        TAKE(m->lnf, N * C);
        TAKE(m->lnf_mean, N);
        TAKE(m->lnf_rstd, N);
        TAKE(m->dres, training ? N * C : 0);
        TAKE(m->dln, training ? N * C : 0);
        TAKE(m->dqkv, training ? N * 3 * C : 0);
        TAKE(m->datt, training ? N * C : 0);
        TAKE(m->dact, training ? N * F : 0);
        TAKE(m->dfc, training ? N * F : 0);
        TAKE(m->scratch, scratch);
#undef TAKE
        if (pass == 0) {
            need = at;
            if (need > m->arena_floats) {
                free(m->arena);
                m->arena = reel_malloc((need ? need : 1) * sizeof(float));
                m->arena_floats = need;
            }
        }
    }
    m->rows = N;
    m->block_slots = slots;
}

static void *grow(void *buffer, size_t *capacity, size_t needed, size_t element) {
    if (needed <= *capacity) return buffer;
    free(buffer);
    *capacity = needed;
    return reel_malloc(needed * element);
}

/* The row of token 0 of sequence first + b within the rows of sequences first, first + 1, ... */
static size_t seq_row(const xf_stack *m, size_t first, size_t b) { return m->offsets[first + b] - m->offsets[first]; }

/* Inverted dropout masks (N, C) for the packed rows of a training batch: token t of sequence b keyed by
 * (seed, epoch, the sequence's sample index, site, t), so a sequence's masks depend on neither its rank,
 * its place in the batch nor the other sequences' lengths. site: 0 the embeddings, 1 + 2 l and 2 + 2 l
 * block l's two branches. */
static void dropout_masks(float *mask, const xf_stack *m, const reel_batch *batch, size_t B, size_t C, float p,
                          uint64_t seed, uint32_t site) {
    float keep = 1.0f / (1.0f - p);
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < m->lengths[b]; t++) {
            float *row = mask + (seq_row(m, 0, b) + t) * C;
            for (size_t block = 0; block * 4 < C; block++) {
                uint32_t words[4];
                /* c: site in the top 8 bits, then the position's blocks of 4 units (C / 4 < 2^10 per
                 * position up to C = 4096, positions < 2^14) */
                reel_rng_block(words, seed, REEL_RNG_TOKEN_DROPOUT, (uint32_t)batch->epoch,
                               (uint32_t)batch->sample_index[b], (site << 24) | (uint32_t)(t * ((C + 3) / 4) + block));
                for (size_t k = 0; k < 4 && block * 4 + k < C; k++)
                    row[block * 4 + k] = reel_rng_unit_float(words[k]) < p ? 0.0f : keep;
            }
        }
}

/* The key of block l's attention dropout for a training batch (reel/attention.h), or NULL when there is
 * none. Training batches start at sequence 0 (only an evaluation runs in chunks). */
static const reel_attention_dropout *attention_dropout(const xf_stack *m, const reel_model *model,
                                                       const reel_batch *batch, size_t l, int training,
                                                       reel_attention_dropout *key) {
    if (!training || m->attention_dropout <= 0) return NULL;
    *key = (reel_attention_dropout){.p = m->attention_dropout, .seed = model->seed, .epoch = (uint32_t)batch->epoch,
                                    .sample_index = batch->sample_index, .layer = (uint32_t)l, .positions = m->W};
    return key;
}

/* ---- the cache (decoding) ---- */

static size_t cache_floats(const xf_stack *m) { return 1 + m->L * 2 * m->W * m->C; }
static float *cache_keys(const xf_stack *m, float *cache, size_t l) { return cache + 1 + l * 2 * m->W * m->C; }
static float *cache_values(const xf_stack *m, float *cache, size_t l) { return cache_keys(m, cache, l) + m->W * m->C; }

/* Attention of block l for the new rows of sequences first .. first + B - 1 over their caches, after
 * their keys and values were appended: out (packed rows, C) for token t at position pos0 + t, each
 * seeing the positions up to its own. qkv (packed rows, 3C): the queries. Row by row with plain dot
 * products (decoding reads one row at a time, a prime a few hundred). */
static void cached_attention(xf_stack *m, size_t l, float *out, const float *qkv, float *state, size_t B,
                             size_t first) {
    size_t C = m->C, NH = m->NH, D = C / NH;
    float scale = 1.0f / sqrtf((float)D);
    float *score = m->scratch; /* (W) the scores of one query row */
    for (size_t b = 0; b < B; b++) {
        float *cache = state + (first + b) * cache_floats(m);
        size_t r0 = seq_row(m, first, b);
        for (size_t t = 0; t < m->lengths[first + b]; t++) {
            float *o = out + (r0 + t) * C;
            memset(o, 0, C * sizeof(float));
            size_t P = m->pos0[first + b] + t + 1;    /* the positions it sees: the cache and itself */
            for (size_t h = 0; h < NH; h++) {
                const float *q = qkv + (r0 + t) * 3 * C + h * D;
                const float *K = cache_keys(m, cache, l) + h * D, *V = cache_values(m, cache, l) + h * D;
                float top = -INFINITY;
                for (size_t j = 0; j < P; j++) {
                    float s = 0;
                    for (size_t d = 0; d < D; d++) s += q[d] * K[j * C + d];
                    score[j] = s * scale;
                    if (score[j] > top) top = score[j];
                }
                float sum = 0;
                for (size_t j = 0; j < P; j++) sum += score[j] = expf(score[j] - top);
                float *oh = o + h * D;
                for (size_t j = 0; j < P; j++) {
                    float w = score[j] / sum;
                    for (size_t d = 0; d < D; d++) oh[d] += w * V[j * C + d];
                }
            }
        }
    }
}

/* ---- forward ---- */

/* Embedding and positions: x0 (packed rows, C), token t of sequence b: wte[id] + wpe[pos0[b] + t]
 * (rotary: wte[id] alone). An input perturbation (delta, one row per token of the batch) is added to the
 * token's embedding before its position's. */
static void embed(xf_stack *m, const reel_store *p, const reel_batch *batch, const float *delta, size_t B,
                  size_t first) {
    size_t C = m->C;
    const float *wte = reel_store_view(p, m->wte), *wpe = m->rotary ? NULL : reel_store_view(p, m->wpe);
    for (size_t b = 0; b < B; b++) {
        const uint32_t *ids = batch->ids + batch->offsets[first + b];
        for (size_t t = 0; t < m->lengths[first + b]; t++) {
            float *x = m->x0 + (seq_row(m, first, b) + t) * C;
            const float *e = wte + (size_t)ids[t] * C;
            if (delta) {
                const float *d = delta + (batch->offsets[first + b] + t) * C;
                for (size_t c = 0; c < C; c++) x[c] = e[c] + d[c];
                e = x;
            }
            if (wpe) {
                const float *q = wpe + (m->pos0[first + b] + t) * C;
                for (size_t c = 0; c < C; c++) x[c] = e[c] + q[c];
            } else if (e != x) {
                memcpy(x, e, C * sizeof(float));
            }
        }
    }
}

/* One block, forward: a->out from inp, over the N packed rows of B sequences starting at sequence `first`
 * of the batch (lengths and positions). state: the batch's caches (decoding), or NULL; dropout: the
 * attention dropout's key, or NULL. */
static void block_forward(xf_stack *m, const reel_store *p, size_t l, xf_block_acts *a, const float *inp, size_t B,
                          size_t N, size_t first, float *state, const reel_attention_dropout *dropout) {
    const xf_block *k = &m->blocks[l];
    size_t C = m->C, F = m->F;
    reel_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, inp, reel_store_view(p, k->ln1_w),
                           reel_store_view(p, k->ln1_b), N, C, REEL_LAYERNORM_EPS);
    /* qkv (N, 3C) = ln1 (N, C) . qkv_w (3C, C)^T + qkv_b */
    reel_linear_forward(a->qkv, a->ln1, reel_store_view(p, k->qkv_w), reel_store_view(p, k->qkv_b), N, C, 3 * C);
    /* rotary: the queries and keys (2 NH heads side by side) turned at their positions (each sequence's
     * from its pos0), before the cache keeps the keys, so cached keys are rotated at their own positions */
    if (m->rotary)
        for (size_t b = 0; b < B; b++)
            reel_rotary_forward(a->qkv + seq_row(m, first, b) * 3 * C, 3 * C, 2 * m->NH, C / m->NH, m->rope_cos,
                                m->rope_sin, m->pos0 + first + b, m->lengths + first + b, 1, m->lengths[first + b]);
    if (state) {
        for (size_t b = 0; b < B; b++) {
            float *cache = state + (first + b) * cache_floats(m);
            float *keys = cache_keys(m, cache, l), *values = cache_values(m, cache, l);
            for (size_t t = 0; t < m->lengths[first + b]; t++) {
                const float *row = a->qkv + (seq_row(m, first, b) + t) * 3 * C;
                memcpy(keys + (m->pos0[first + b] + t) * C, row + C, C * sizeof(float));
                memcpy(values + (m->pos0[first + b] + t) * C, row + 2 * C, C * sizeof(float));
            }
        }
        cached_attention(m, l, a->att, a->qkv, state, B, first);
    } else {
        attention_forward_fp32(a->att, a->lse, a->qkv, m->offsets + first, m->causal, B, C, m->NH, dropout, m->scratch);
    }
    /* mid (N, C) = inp + dropout(att . proj_w^T + proj_b) */
    reel_linear_forward(a->mid, a->att, reel_store_view(p, k->proj_w), reel_store_view(p, k->proj_b), N, C, C);
    if (a->mask_att)
        for (size_t i = 0; i < N * C; i++) a->mid[i] = inp[i] + a->mid[i] * a->mask_att[i];
    else
        for (size_t i = 0; i < N * C; i++) a->mid[i] += inp[i];
    reel_layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->mid, reel_store_view(p, k->ln2_w),
                           reel_store_view(p, k->ln2_b), N, C, REEL_LAYERNORM_EPS);
    /* fc (N, F) = ln2 . fc_w (F, C)^T + fc_b; act = gelu(fc) */
    reel_linear_forward(a->fc, a->ln2, reel_store_view(p, k->fc_w), reel_store_view(p, k->fc_b), N, C, F);
    reel_gelu_forward(a->act, a->fc, N * F);
    /* out (N, C) = mid + dropout(act . fcproj_w (C, F)^T + fcproj_b) */
    reel_linear_forward(a->out, a->act, reel_store_view(p, k->fcproj_w), reel_store_view(p, k->fcproj_b), N, F, C);
    if (a->mask_mlp)
        for (size_t i = 0; i < N * C; i++) a->out[i] = a->mid[i] + a->out[i] * a->mask_mlp[i];
    else
        for (size_t i = 0; i < N * C; i++) a->out[i] += a->mid[i];
}

/* The whole stack over the packed rows of B sequences from sequence `first`; leaves the features in
 * m->lnf. */
static void stack_forward(xf_stack *m, reel_model *model, const reel_batch *batch, int training, float *state,
                          size_t B, size_t first) {
    const reel_store *p = &model->params;
    size_t N = seq_row(m, first, B), C = m->C;
    embed(m, p, batch, model->input_delta, B, first);
    if (m->mask_emb) {
        dropout_masks(m->mask_emb, m, batch, B, C, m->dropout, model->seed, 0);
        for (size_t i = 0; i < N * C; i++) m->x0[i] *= m->mask_emb[i];
    }
    const float *x = m->x0;
    for (size_t l = 0; l < m->L; l++) {
        xf_block_acts *a = &m->acts[training ? l : 0];
        if (a->mask_att) {
            dropout_masks(a->mask_att, m, batch, B, C, m->dropout, model->seed, (uint32_t)(1 + 2 * l));
            dropout_masks(a->mask_mlp, m, batch, B, C, m->dropout, model->seed, (uint32_t)(2 + 2 * l));
        }
        reel_attention_dropout key;
        block_forward(m, p, l, a, x, B, N, first, state, attention_dropout(m, model, batch, l, training, &key));
        if (!training && l + 1 < m->L) {
            /* evaluation keeps one block of views: the next block's input moves to x0 */
            memcpy(m->x0, a->out, N * C * sizeof(float));
            x = m->x0;
        } else {
            x = a->out;
        }
    }
    reel_layernorm_forward(m->lnf, m->lnf_mean, m->lnf_rstd, x, reel_store_view(p, m->lnf_w),
                           reel_store_view(p, m->lnf_b), N, C, REEL_LAYERNORM_EPS);
}

size_t xf_stack_cache_floats(const xf_stack *m) { return cache_floats(m); }

void xf_stack_forward(xf_stack *m, reel_model *model, const reel_batch *batch, int training, float *state) {
    size_t B = batch->size, T = 0, C = m->C;
    m->lengths = grow(m->lengths, &m->lengths_cap, B ? B : 1, sizeof *m->lengths);
    m->pos0 = grow(m->pos0, &m->pos0_cap, B ? B : 1, sizeof *m->pos0);
    m->offsets = grow(m->offsets, &m->offsets_cap, B + 1, sizeof *m->offsets);
    if (training) state = NULL; /* the cache serves evaluation only */
    m->offsets[0] = 0;
    for (size_t b = 0; b < B; b++) {
        m->lengths[b] = batch->offsets[b + 1] - batch->offsets[b];
        m->offsets[b + 1] = m->offsets[b] + m->lengths[b];
        if (m->lengths[b] > T) T = m->lengths[b];
        m->pos0[b] = state ? (size_t)state[b * cache_floats(m)] : 0;
        REEL_CHECK(m->pos0[b] + m->lengths[b] <= m->W, NULL,
                   "%s: sequence %zu of the batch reads %zu positions (%zu cached), more than its max_context %zu",
                   model->type, b, m->pos0[b] + m->lengths[b], m->pos0[b], m->W);
    }
    m->B = B;
    m->T = T;
    size_t N = m->offsets[B];
    m->N = N;
    if (training || N <= EVAL_CHUNK_ROWS) {
        arena_layout(m, N, T, training ? m->L : 1, training);
        if (N) stack_forward(m, model, batch, training, state, B, 0);
        m->features = m->lnf;
    } else {
        /* evaluation in chunks of whole sequences, at most EVAL_CHUNK_ROWS rows each unless one sequence
         * is longer: their rows are contiguous in the packed output */
        size_t widest = 0;
        for (size_t first = 0, end; first < B; first = end) {
            for (end = first + 1; end < B && m->offsets[end + 1] - m->offsets[first] <= EVAL_CHUNK_ROWS; end++) {}
            if (m->offsets[end] - m->offsets[first] > widest) widest = m->offsets[end] - m->offsets[first];
        }
        arena_layout(m, widest, T, 1, 0);
        m->all_features = grow(m->all_features, &m->all_features_cap, N * C, sizeof(float));
        for (size_t first = 0, end; first < B; first = end) {
            for (end = first + 1; end < B && m->offsets[end + 1] - m->offsets[first] <= EVAL_CHUNK_ROWS; end++) {}
            stack_forward(m, model, batch, 0, state, end - first, first);
            memcpy(m->all_features + m->offsets[first] * C, m->lnf,
                   (m->offsets[end] - m->offsets[first]) * C * sizeof(float));
        }
        m->features = m->all_features;
    }
    if (state)
        for (size_t b = 0; b < B; b++) state[b * cache_floats(m)] = (float)(m->pos0[b] + m->lengths[b]);
}

/* The features in the padded batch-major layout a per-token output declares (row b * T + t, T the longest
 * sequence, zeros at padding), with m->row_mask. With every sequence T long the packed rows are these
 * rows already, and nothing is copied. */
const float *xf_stack_padded_features(xf_stack *m) {
    size_t B = m->B, T = m->T, C = m->C, NT = B * T;
    m->row_mask = grow(m->row_mask, &m->row_mask_cap, NT ? NT : 1, sizeof *m->row_mask);
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) m->row_mask[b * T + t] = t < m->lengths[b];
    if (m->N == NT) return m->features;
    m->padded = grow(m->padded, &m->padded_cap, NT * C, sizeof(float));
    for (size_t b = 0; b < B; b++) {
        memcpy(m->padded + b * T * C, m->features + m->offsets[b] * C, m->lengths[b] * C * sizeof(float));
        memset(m->padded + (b * T + m->lengths[b]) * C, 0, (T - m->lengths[b]) * C * sizeof(float));
    }
    return m->padded;
}

const float *xf_stack_packed_rows(xf_stack *m, const float *padded) {
    size_t B = m->B, T = m->T, C = m->C;
    if (m->N == B * T) return padded;
    m->packed = grow(m->packed, &m->packed_cap, m->N ? m->N * C : 1, sizeof(float));
    for (size_t b = 0; b < B; b++)
        memcpy(m->packed + m->offsets[b] * C, padded + b * T * C, m->lengths[b] * C * sizeof(float));
    return m->packed;
}

/* ---- backward ---- */

void xf_stack_backward(xf_stack *m, reel_model *model, const reel_batch *batch, const float *dfeatures) {
    const reel_store *p = &model->params;
    size_t B = m->B, N = m->N, C = m->C, F = m->F;
    if (N == 0) { /* an empty share of the batch: no gradient to add, every group is final */
        reel_store_grad_ready(p, 0);
        return;
    }
    REEL_CHECK(m->block_slots == m->L && m->dres, NULL, "%s: backward without a training forward before it", model->type);
    float *dres = m->dres;
    /* the final norm: dres (N, C) = its input's gradient */
    memset(dres, 0, N * C * sizeof(float));
    const float *last = m->acts[m->L - 1].out;
    reel_layernorm_backward(dres, reel_store_grad_view(p, m->lnf_w), reel_store_grad_view(p, m->lnf_b), dfeatures,
                            last, m->lnf_mean, m->lnf_rstd, reel_store_view(p, m->lnf_w), N, C);
    reel_store_grad_ready(p, m->L + 1); /* the final norm (and an untied output layer, which the loss did) */
    /* Fine-tuning freezes the lower groups: nothing below the lowest group that trains needs a gradient
     * (a frozen tensor's is never read), so the backward stops there, unless the gradient of the inputs
     * is asked for. The frozen flags are the same on every rank. */
    size_t lowest = 0;
    if (!model->input_grad) {
        lowest = m->L + 1;
        for (size_t i = 0; i < p->num_tensors; i++)
            if (!p->tensors[i].frozen && p->tensors[i].group < lowest) lowest = p->tensors[i].group;
    }
    for (size_t l = m->L; l-- > 0 && l + 1 >= lowest;) {
        const xf_block *k = &m->blocks[l];
        xf_block_acts *a = &m->acts[l];
        const float *inp = l ? m->acts[l - 1].out : m->x0;
        /* MLP branch: dres is the gradient of out; the branch's output gradient is dres (* mask) */
        const float *dbranch = dres;
        if (a->mask_mlp) {
            for (size_t i = 0; i < N * C; i++) m->dln[i] = dres[i] * a->mask_mlp[i];
            dbranch = m->dln;
        }
        /* dact (N, F) = dbranch . fcproj_w; dfcproj_w (C, F) += dbranch^T . act; then dfc = dact * gelu'(fc) */
        memset(m->dact, 0, N * F * sizeof(float));
        reel_linear_backward(m->dact, reel_store_grad_view(p, k->fcproj_w), reel_store_grad_view(p, k->fcproj_b),
                             dbranch, a->act, reel_store_view(p, k->fcproj_w), N, F, C);
        memset(m->dfc, 0, N * F * sizeof(float));
        reel_gelu_backward(m->dfc, m->dact, a->fc, N * F);
        /* dln (N, C) = dfc . fc_w; dfc_w (F, C) += dfc^T . ln2; then through ln2 into dres */
        memset(m->dln, 0, N * C * sizeof(float));
        reel_linear_backward(m->dln, reel_store_grad_view(p, k->fc_w), reel_store_grad_view(p, k->fc_b), m->dfc, a->ln2,
                             reel_store_view(p, k->fc_w), N, C, F);
        reel_layernorm_backward(dres, reel_store_grad_view(p, k->ln2_w), reel_store_grad_view(p, k->ln2_b), m->dln,
                                a->mid, a->ln2_mean, a->ln2_rstd, reel_store_view(p, k->ln2_w), N, C);
        reel_store_poll(p);
        /* attention branch: dres is now the gradient of mid */
        dbranch = dres;
        if (a->mask_att) {
            for (size_t i = 0; i < N * C; i++) m->dln[i] = dres[i] * a->mask_att[i];
            dbranch = m->dln;
        }
        memset(m->datt, 0, N * C * sizeof(float));
        reel_linear_backward(m->datt, reel_store_grad_view(p, k->proj_w), reel_store_grad_view(p, k->proj_b), dbranch,
                             a->att, reel_store_view(p, k->proj_w), N, C, C);
        memset(m->dqkv, 0, N * 3 * C * sizeof(float));
        reel_attention_dropout key;
        attention_backward_fp32(m->dqkv, m->datt, a->att, a->lse, a->qkv, m->offsets, m->causal, B, C, m->NH,
                                attention_dropout(m, model, batch, l, 1, &key), m->scratch);
        /* rotary: the gradient of the rotated queries and keys back to that of the projection's output
         * (training reads each sequence from position 0) */
        if (m->rotary)
            for (size_t b = 0; b < B; b++)
                reel_rotary_backward(m->dqkv + m->offsets[b] * 3 * C, 3 * C, 2 * m->NH, C / m->NH, m->rope_cos,
                                     m->rope_sin, NULL, m->lengths + b, 1, m->lengths[b]);
        reel_store_poll(p);
        memset(m->dln, 0, N * C * sizeof(float));
        reel_linear_backward(m->dln, reel_store_grad_view(p, k->qkv_w), reel_store_grad_view(p, k->qkv_b), m->dqkv,
                             a->ln1, reel_store_view(p, k->qkv_w), N, C, 3 * C);
        /* The keys' bias has a gradient of exactly zero: it adds q . b_k to every score of a query row, which
         * the softmax cancels. Summed in floating point it comes out as rounding noise of ~1e-10, which Adam
         * would turn into steps of lr x noise / (|noise| + eps) that differ with the summation order (the
         * number of ranks, micro-batches). Its exact value is written instead, so the bias stays at 0.
         * (Attention dropout keeps it 0: the weights are still a softmax of the scores. Rotary does not:
         * the bias is rotated by the key's position, so it adds a different amount to each score and has
         * a true gradient.) */
        if (!m->rotary) memset(reel_store_grad_view(p, k->qkv_b) + C, 0, C * sizeof(float));
        reel_layernorm_backward(dres, reel_store_grad_view(p, k->ln1_w), reel_store_grad_view(p, k->ln1_b), m->dln, inp,
                                a->ln1_mean, a->ln1_rstd, reel_store_view(p, k->ln1_w), N, C);
        reel_store_grad_ready(p, l + 1);
    }
    if (lowest > 0) { /* the embeddings are frozen */
        reel_store_grad_ready(p, 0);
        return;
    }
    /* dres is the gradient of x0: through the embedding dropout to the token and position rows */
    if (m->mask_emb)
        for (size_t i = 0; i < N * C; i++) dres[i] *= m->mask_emb[i];
    if (model->input_grad) /* the perturbation's gradient is the embedded token's, one row per token */
        for (size_t b = 0; b < B; b++)
            memcpy(model->input_grad + batch->offsets[b] * C, dres + m->offsets[b] * C, m->lengths[b] * C * sizeof(float));
    float *dwte = reel_store_grad_view(p, m->wte), *dwpe = m->rotary ? NULL : reel_store_grad_view(p, m->wpe);
    for (size_t b = 0; b < B; b++) {
        const uint32_t *ids = batch->ids + batch->offsets[b];
        for (size_t t = 0; t < m->lengths[b]; t++) {
            const float *g = dres + (m->offsets[b] + t) * C;
            float *e = dwte + (size_t)ids[t] * C;
            for (size_t c = 0; c < C; c++) e[c] += g[c];
            if (dwpe) {
                float *q = dwpe + t * C;
                for (size_t c = 0; c < C; c++) q[c] += g[c];
            }
        }
    }
    reel_store_grad_ready(p, 0);
}

/* ---- creation ---- */

void xf_stack_init(reel_store *p, const xf_stack *m, uint64_t seed) {
    float residual_std = 0.02f / sqrtf(2.0f * (float)m->L);
    for (size_t i = 0; i < p->num_tensors; i++) {
        const reel_tensor_info *info = &p->tensors[i];
        float *values = reel_store_view(p, i);
        int gain = strstr(info->name, "ln") && strstr(info->name, "/weight"); /* ln1, ln2, final_ln */
        int projection = strstr(info->name, "attn_proj/weight") || strstr(info->name, "mlp_proj/weight");
        if (gain)
            reel_init_constant(values, info->count, 1.0f);
        else if (info->ndim == 1)
            reel_init_constant(values, info->count, 0.0f);
        else
            reel_init_normal(values, info->count, projection ? residual_std : 0.02f, seed, (uint32_t)i);
    }
}

void xf_stack_free(xf_stack *m) {
    free(m->all_features);
    free(m->arena);
    free(m->lengths);
    free(m->row_mask);
    free(m->pos0);
    free(m->offsets);
    free(m->padded);
    free(m->packed);
    free(m->rope_cos);
    free(m->rope_sin);
}

/* A tensor of the stack: biases and layer-norm parameters (one dimension) are not decayed. */
static size_t add(reel_store *p, const char *name, size_t ndim, const size_t *shape, const char *sized_by) {
    size_t i = reel_store_add_sized(p, name, ndim, shape, "%s", sized_by);
    reel_store_set_decay(p, i, ndim > 1);
    return i;
}

int xf_stack_create(xf_stack *m, reel_model *model, const xf_stack_options *o, size_t C, int causal, reel_error *err) {
    if (o->num_layers > XF_MAX_LAYERS)
        return reel_fail(err, "[model] num_layers = %zu: at most %d blocks", o->num_layers, XF_MAX_LAYERS);
    if (C % o->num_heads != 0)
        return reel_fail(err, "[model] num_heads = %zu does not divide embed_dim = %zu: every head takes embed_dim / "
                         "num_heads columns (e.g. num_heads = 8 for embed_dim = 512)", o->num_heads, C);
    if (o->max_context >= (1u << 24) || o->max_context * ((C + 3) / 4) >= (1u << 24))
        return reel_fail(err, "[model] max_context = %zu with embed_dim = %zu: max_context x embed_dim must stay below "
                         "2^26 (the dropout masks' counter; the cache's position count)", o->max_context, C);
    int rotary = strcmp(o->positions, "rotary") == 0;
    size_t D = C / o->num_heads;
    if (rotary && D % 2)
        return reel_fail(err, "[model] positions = rotary needs an even head width, but embed_dim / num_heads = %zu / "
                         "%zu = %zu: rotary turns each head's values in pairs", C, o->num_heads, D);
    if (o->attention_dropout > 0 &&
        (double)o->num_heads * (double)o->max_context * (double)((o->max_context + 3) / 4) > 4294967296.0)
        return reel_fail(err, "[model] attention_dropout with num_heads = %zu and max_context = %zu: num_heads x "
                         "max_context x max_context / 4 must stay within 2^32 (the mask's counter)", o->num_heads,
                         o->max_context);
    m->L = o->num_layers;
    m->NH = o->num_heads;
    m->C = C;
    m->F = o->d_ff ? o->d_ff : 4 * C;
    m->W = o->max_context;
    m->dropout = (float)o->dropout;
    m->attention_dropout = (float)o->attention_dropout;
    m->causal = causal;
    m->rotary = rotary;
    const char *ff_key = o->d_ff ? "[model] d_ff" : "4 x [model] embed_dim";
    char ff_by_c[96], c_by_ff[96], name[REEL_TENSOR_NAME_MAX];
    snprintf(ff_by_c, sizeof ff_by_c, "%s x [model] embed_dim", ff_key);
    snprintf(c_by_ff, sizeof c_by_ff, "[model] embed_dim x %s", ff_key);
    reel_store *p = &model->params;
    size_t first = p->num_tensors;
    m->wte = add(p, REEL_TENSOR_EMBEDDING, 2, (size_t[]){model->vocab_size, C}, "[model] vocab_size x embed_dim");
    if (rotary) {
        m->rope_cos = reel_malloc(m->W * (D / 2) * sizeof(float));
        m->rope_sin = reel_malloc(m->W * (D / 2) * sizeof(float));
        reel_rotary_tables(m->rope_cos, m->rope_sin, m->W, D, o->rotary_base);
    } else {
        m->wpe = add(p, "position/weight", 2, (size_t[]){m->W, C}, "[model] max_context x embed_dim");
    }
    for (size_t l = 0; l < m->L; l++) {
        xf_block *k = &m->blocks[l];
        reel_store_set_group(p, l + 1);
#define TENSOR(field, suffix, ndim, shape, by)                        \
    do {                                                              \
        snprintf(name, sizeof name, "block%zu/%s", l, suffix);        \
        k->field = add(p, name, ndim, (size_t[])shape, by);           \
    } while (0)
#define ARGS(...) {__VA_ARGS__}
        TENSOR(ln1_w, "ln1/weight", 1, ARGS(C), "[model] embed_dim");
        TENSOR(ln1_b, "ln1/bias", 1, ARGS(C), "[model] embed_dim");
        TENSOR(qkv_w, "attn_qkv/weight", 2, ARGS(3 * C, C), "3 x [model] embed_dim x embed_dim");
        TENSOR(qkv_b, "attn_qkv/bias", 1, ARGS(3 * C), "3 x [model] embed_dim");
        TENSOR(proj_w, "attn_proj/weight", 2, ARGS(C, C), "[model] embed_dim x embed_dim");
        TENSOR(proj_b, "attn_proj/bias", 1, ARGS(C), "[model] embed_dim");
        TENSOR(ln2_w, "ln2/weight", 1, ARGS(C), "[model] embed_dim");
        TENSOR(ln2_b, "ln2/bias", 1, ARGS(C), "[model] embed_dim");
        TENSOR(fc_w, "mlp_fc/weight", 2, ARGS(m->F, C), ff_by_c);
        TENSOR(fc_b, "mlp_fc/bias", 1, ARGS(m->F), ff_key);
        TENSOR(fcproj_w, "mlp_proj/weight", 2, ARGS(C, m->F), c_by_ff);
        TENSOR(fcproj_b, "mlp_proj/bias", 1, ARGS(C), "[model] embed_dim");
#undef TENSOR
#undef ARGS
    }
    reel_store_set_group(p, m->L + 1);
    m->lnf_w = add(p, "final_ln/weight", 1, (size_t[]){C}, "[model] embed_dim");
    m->lnf_b = add(p, "final_ln/bias", 1, (size_t[]){C}, "[model] embed_dim");
    /* everything up to here is the encoder another model can start from */
    reel_store_mark_transfer(p, first);
    return 0;
}
