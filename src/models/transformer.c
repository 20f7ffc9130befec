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
 * and analyze read whole documents (up to [data] max_tokens) in windows; `reel eval --lengths` reads every
 * length from one pass over the windows (transformer_forward_prefixes).
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
    /* forward_prefixes: a slot is a (cut, document) pair, slot c B + b */
    float *part_pooled;        /* (slots, P) the pooled features of a slot's partial last window */
    size_t *part_source;       /* (slots) the slot whose part_pooled row is this slot's partial window (itself,
                                  or an earlier cut's with the same tokens); SIZE_MAX: it has none */
    uint32_t *ext_ids;         /* bidirectional: the ids of a group of partial windows read as sequences */
    size_t *ext_offsets, *ext_slot; /* (group + 1) their offsets, (group) their slots */
    uint64_t *ext_sample;      /* (group) their documents' sample indices */
    size_t part_pooled_cap, part_source_cap, ext_ids_cap, ext_offsets_cap, ext_slot_cap, ext_sample_cap;
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

/* Pools each window of the stack's last pass (packed rows) into win_pooled (windows, P), its max pooling's
 * argmax into win_argmax (windows, C). */
static void pool_windows(transformer_impl *m) {
    const xf_stack *s = &m->stack;
    size_t NW = m->windows.size, C = s->C, P = m->P;
    m->win_pooled = grow(m->win_pooled, &m->win_pooled_cap, (NW ? NW : 1) * P, sizeof(float));
    m->win_argmax = grow(m->win_argmax, &m->win_argmax_cap, (NW ? NW : 1) * C, sizeof(size_t));
    for (size_t w = 0; w < NW; w++)
        reel_pool_forward(m->pooling, m->win_pooled + w * P, m->win_argmax + w * C, s->features + s->offsets[w] * C,
                          &s->lengths[w], s->lengths[w], 1, C, C);
}

/* A document's pooled features f (P) from its windows' pooled rows: `count` rows at pooled (P apart) of
 * lengths[w] tokens, then, when extra is not NULL, one more window's row of extra_length tokens; n tokens
 * in all. The mean weighted by the windows' tokens, the max of the windows' maxes (from (C): the window,
 * counted from `first`, of each maximum, for the backward), the last window's last token. The forward
 * and the forward of prefixes both combine here, so a prefix's features are the same floats as those of
 * a forward over the document cut there. */
static void combine_windows(const transformer_impl *m, float *f, size_t *from, size_t first, const float *pooled,
                            const size_t *lengths, size_t count, const float *extra, size_t extra_length, size_t n) {
    size_t C = m->stack.C, P = m->P, total = count + (extra != NULL);
#define WINDOW_ROW(w) ((w) < count ? pooled + (w) * P : extra)
#define WINDOW_LENGTH(w) ((w) < count ? lengths[w] : extra_length)
    for (size_t c = 0; c < C; c++) from[c] = first;
    if (total == 1) {
        memcpy(f, WINDOW_ROW(0), P * sizeof(float));
        return;
    }
    if (has_part(m->pooling, REEL_POOL_LAST)) {
        size_t o = part_offset(m->pooling, REEL_POOL_LAST, C);
        memcpy(f + o, WINDOW_ROW(total - 1) + o, C * sizeof(float));
    }
    if (has_part(m->pooling, REEL_POOL_MAX)) {
        size_t o = part_offset(m->pooling, REEL_POOL_MAX, C);
        memcpy(f + o, WINDOW_ROW(0) + o, C * sizeof(float));
        for (size_t w = 1; w < total; w++) {
            const float *row = WINDOW_ROW(w) + o;
            for (size_t c = 0; c < C; c++)
                if (row[c] > f[o + c]) f[o + c] = row[c], from[c] = first + w;
        }
    }
    if (has_part(m->pooling, REEL_POOL_MEAN)) {
        size_t o = part_offset(m->pooling, REEL_POOL_MEAN, C);
        memset(f + o, 0, C * sizeof(float));
        for (size_t w = 0; w < total; w++) {
            float weight = (float)WINDOW_LENGTH(w) / (float)n;
            const float *row = WINDOW_ROW(w) + o;
            for (size_t c = 0; c < C; c++) f[o + c] += weight * row[c];
        }
    }
#undef WINDOW_ROW
#undef WINDOW_LENGTH
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
    xf_stack_forward(s, model, &m->windows, training, NULL);
    pool_windows(m);
    /* each document's features from its windows' */
    for (size_t b = 0; b < B; b++) {
        size_t first = m->doc_first[b], count = m->doc_first[b + 1] - first;
        combine_windows(m, m->features + b * P, m->max_from + b * C, first, m->win_pooled + first * P,
                        s->lengths + first, count, NULL, 0, batch->offsets[b + 1] - batch->offsets[b]);
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

/* The tokens a cut keeps of a document of n tokens: cut 0, and cuts past its end, keep all of them. */
static size_t cut_tokens(size_t cut, size_t n) { return cut == 0 || cut > n ? n : cut; }

/* Every cut's evaluation logits from one pass (reel_model_ops.forward_prefixes). A document cut to k
 * tokens is read in the windows [0, W), [W, 2 W), ... of its first k tokens: those wholly inside the k
 * tokens are windows of the whole document, read once for every cut; the last one is partial when W does
 * not divide k (and k is short of the document's end). Causal, a token's features do not depend on the
 * tokens after it, so a partial window's features are the first k mod W rows of the whole window's, and
 * it costs a pooling only. Bidirectional, the partial window's tokens see only each other: it is another
 * sequence of the stack, read in groups of at most the batch's tokens (so the stack's memory stays that
 * of a forward over the batch), one per document and distinct cut. The stack reads each sequence's rows
 * independently of the others, and the windows combine as in the forward (combine_windows), so each
 * cut's logits are those of a forward over the documents cut there. */
static void transformer_forward_prefixes(reel_model *model, const reel_batch *batch, const size_t *cuts,
                                         size_t num_cuts, float *logits, const reel_comm *comm) {
    (void)comm; /* local, as an evaluation forward */
    transformer_impl *m = model->impl;
    xf_stack *s = &m->stack;
    const reel_store *p = &model->params;
    size_t B = batch->size, C = s->C, P = m->P, K = m->K, W = s->W, slots = num_cuts * B;
    REEL_CHECK(B <= model->max_batch, NULL, "batch of %zu rows exceeds the model's %zu", B, model->max_batch);
    const float *delta = model->input_delta;
    model->input_delta = NULL; /* an evaluation perturbs nothing */
    m->dropping = 0;
    make_windows(m, batch, 0, 0);
    size_t NW = m->windows.size;
    /* the max pooling's argmax: not used here, but written */
    m->win_argmax = grow(m->win_argmax, &m->win_argmax_cap, (NW ? NW : 1) * C, sizeof(size_t));
    m->part_pooled = grow(m->part_pooled, &m->part_pooled_cap, (slots ? slots : 1) * P, sizeof(float));
    m->part_source = grow(m->part_source, &m->part_source_cap, slots ? slots : 1, sizeof(size_t));
    /* the slots with a partial window, each (document, token count) once */
    size_t extras = 0;
    for (size_t c = 0; c < num_cuts; c++)
        for (size_t b = 0; b < B; b++) {
            size_t n = batch->offsets[b + 1] - batch->offsets[b], k = cut_tokens(cuts[c], n), slot = c * B + b;
            m->part_source[slot] = SIZE_MAX;
            if (k == n || k % W == 0) continue;
            m->part_source[slot] = slot;
            for (size_t earlier = 0; earlier < c; earlier++)
                if (cut_tokens(cuts[earlier], n) == k) {
                    m->part_source[slot] = earlier * B + b;
                    break;
                }
            if (m->part_source[slot] == slot) extras++;
        }
    /* bidirectional: the partial windows as sequences of their own, before the windows' pass (whose
     * lengths and features the combination reads) */
    if (!s->causal && extras) {
        size_t limit = batch->offsets[B] - batch->offsets[0];
        if (limit < W) limit = W; /* each partial window is shorter than W */
        m->ext_ids = grow(m->ext_ids, &m->ext_ids_cap, limit, sizeof *m->ext_ids);
        m->ext_offsets = grow(m->ext_offsets, &m->ext_offsets_cap, extras + 1, sizeof *m->ext_offsets);
        m->ext_slot = grow(m->ext_slot, &m->ext_slot_cap, extras, sizeof *m->ext_slot);
        m->ext_sample = grow(m->ext_sample, &m->ext_sample_cap, extras, sizeof *m->ext_sample);
        size_t group = 0, tokens = 0;
        m->ext_offsets[0] = 0;
        for (size_t slot = 0; slot <= slots; slot++) {
            int own = slot < slots && m->part_source[slot] == slot;
            size_t b = own ? slot % B : 0, r = 0;
            if (own) r = cut_tokens(cuts[slot / B], batch->offsets[b + 1] - batch->offsets[b]) % W;
            if (group && (slot == slots || (own && tokens + r > limit))) {
                reel_batch part = {.size = group, .ids = m->ext_ids, .offsets = m->ext_offsets,
                                   .sample_index = m->ext_sample, .epoch = batch->epoch, .step = batch->step};
                xf_stack_forward(s, model, &part, 0, NULL);
                for (size_t i = 0; i < group; i++)
                    reel_pool_forward(m->pooling, m->part_pooled + m->ext_slot[i] * P, m->win_argmax,
                                      s->features + s->offsets[i] * C, &s->lengths[i], s->lengths[i], 1, C, C);
                group = tokens = 0;
            }
            if (!own) continue;
            size_t k = cut_tokens(cuts[slot / B], batch->offsets[b + 1] - batch->offsets[b]);
            memcpy(m->ext_ids + tokens, batch->ids + batch->offsets[b] + (k - r), r * sizeof *m->ext_ids);
            m->ext_slot[group] = slot;
            m->ext_sample[group] = batch->sample_index ? batch->sample_index[b] : 0;
            tokens += r;
            m->ext_offsets[++group] = tokens;
        }
    }
    /* the whole documents' windows, once */
    xf_stack_forward(s, model, &m->windows, 0, NULL);
    pool_windows(m);
    /* causal: a partial window's features are the whole window's first rows */
    if (s->causal)
        for (size_t slot = 0; slot < slots; slot++) {
            if (m->part_source[slot] != slot) continue;
            size_t b = slot % B, n = batch->offsets[b + 1] - batch->offsets[b], k = cut_tokens(cuts[slot / B], n);
            size_t r = k % W, w = m->doc_first[b] + k / W;
            reel_pool_forward(m->pooling, m->part_pooled + slot * P, m->win_argmax, s->features + s->offsets[w] * C,
                              &r, r, 1, C, C);
        }
    /* each cut: the documents' features from their windows, then the head */
    for (size_t c = 0; c < num_cuts; c++) {
        for (size_t b = 0; b < B; b++) {
            size_t n = batch->offsets[b + 1] - batch->offsets[b], k = cut_tokens(cuts[c], n), first = m->doc_first[b];
            size_t source = m->part_source[c * B + b];
            const float *extra = source == SIZE_MAX ? NULL : m->part_pooled + source * P;
            size_t count = k == n ? m->doc_first[b + 1] - first : k / W;
            combine_windows(m, m->features + b * P, m->max_from + b * C, first, m->win_pooled + first * P,
                            s->lengths + first, count, extra, k % W, k);
        }
        reel_linear_forward(logits + c * B * K, m->features, reel_store_view(p, m->out_w), reel_store_view(p, m->out_b),
                            B, P, K);
    }
    model->input_delta = delta;
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
                       m->max_from, m->features, m->mask, m->dropped, m->d_features, m->logits,
                       m->part_pooled, m->part_source, m->ext_ids, m->ext_offsets, m->ext_slot, m->ext_sample};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
    free(m);
}

static const reel_model_ops transformer_ops = {transformer_forward, transformer_backward, transformer_init,
                                               transformer_destroy, transformer_forward_prefixes, NULL};

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
