/* The bag-of-words classifier (course part 1a):
 *   mean of word embeddings (B,E) -> linear (B,H) -> batch norm -> ReLU -> dropout -> linear -> one logit.
 * With batch norm the hidden linear layer has no bias: batch norm subtracts any constant shift, so that
 * bias would have a gradient of exactly zero, and Adam would turn its rounding noise into full-size random
 * steps (different on every machine and rank count) while changing nothing the model computes.
 * Batch norm uses the statistics of the global batch, so the model computes the same function whatever
 * the number of ranks; dropout masks are keyed by sample index for the same reason.
 *
 * Word n-grams ([model] ngrams = 2 or 3, ngram_buckets = N), as fastText's supervised models: besides its
 * words, a document's average takes one row per word bigram (and trigram) of the document, hashed into N
 * extra rows of the embedding table, computed here from the token ids (nothing in the data changes).
 *   embedding/weight (V+N, E): rows 0..V-1 the words (V = [model] vocab_size), rows V..V+N-1 the buckets.
 *   The n-gram of the ids w0 w1 [w2] starting at position t takes row V + h mod N, with h the unsigned
 *   64-bit value h = w0, then h = h * 116049371 + w_k for each following id (arithmetic modulo 2^64; the ids
 *   as numbers, not bytes; fastText's multiplier). Bigrams and trigrams share the N buckets.
 * A document's features, in the order they are summed: its (kept) words, then its bigrams by position, then
 * its trigrams; the average divides by their count. An n-gram lies inside one document (the batch's offsets
 * delimit them), and none contains <pad> or <eod>: those separate texts (padding is never part of a
 * document; <eod> joins documents in language-model streams), so an n-gram across them would pair words of
 * two texts. <unk> takes part like any word: it stands for every word outside the vocabulary ("not <unk>"
 * still says "not" before a rare word), as fastText keeps its rare words' n-grams.
 * Word dropout draws once more for each n-gram, independently of its words, with the same probability: an
 * n-gram is its own feature (its own row), and dropping it whenever one of its words is dropped would keep
 * bigrams with probability (1-p)^2 and trigrams (1-p)^3 while training against 1 at evaluation, shifting
 * the mixture of words and n-grams that the average and the layers above learn from. The bucket rows start
 * at zero ([model] embed_init_std sets the words' normal initialisation, 1 as in the course).
 *
 * Naive-Bayes scaling ([model] nb_scaling = true, two classes; Wang & Manning 2012): every row f is
 * weighted by its log-count ratio r_f in the average, (1/n) sum_f r_f e_f, so that words and n-grams that
 * tell the classes apart weigh more from the start. The ratios (state nb/ratio, (V+N)) are counted from the
 * training split before training (bow_prepare) and travel in the checkpoints.
 * ngrams = 1 without nb_scaling (the defaults) is the model as it was, bit for bit.
 *
 * A linear model ([model] hidden_dim = 0): the average feeds the output layer directly,
 *   mean of (weighted) rows (B,E) -> linear -> logits.
 * With embed_dim = 1, nb_scaling and binary features this is NB-weighted logistic regression (Wang &
 * Manning's NBLR): the logit is a + b (1/n) sum_f r_f e_f over the document's distinct features, each row e_f
 * a weight on its feature, its ratio r_f a per-feature prior that decay toward 0 penalises as (e_f r_f)^2 /
 * r_f^2, so the discriminative n-grams are the cheap ones to use. There is no hidden layer for batch norm or
 * dropout to act on, so both must be off. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reel/layers.h"
#include "reel/model.h"
#include "reel/rng.h"
#include "reel/vocab.h"

enum { BN_MOMENTUM_PERCENT = 10 };
static const float bn_eps = 1e-5f;

/* fastText's multiplier for hashing word n-grams (any odd 64-bit constant mixes; this one is documented) */
#define NGRAM_HASH_MULTIPLIER 116049371ULL

/* A list of each document's bag entries, as one stage of the forward leaves them: the rows (ids), where
 * each entry is in the batch (positions: its row of input_delta; SIZE_MAX for an n-gram), and each
 * document's range (offsets, (batch + 1)). The ids and positions grow with the batch's tokens. */
typedef struct {
    uint32_t *ids;
    size_t *positions, *offsets, capacity;
} bag_list;

/* Room for n entries in l's ids and positions. */
static void bag_list_reserve(bag_list *l, size_t n) {
    if (n <= l->capacity) return;
    l->capacity = n;
    l->ids = reel_realloc(l->ids, n * sizeof *l->ids);
    l->positions = reel_realloc(l->positions, n * sizeof *l->positions);
}

static void bag_list_free(bag_list *l) {
    free(l->ids);
    free(l->positions);
    free(l->offsets);
}

typedef struct {
    size_t E, H;
    float dropout, word_dropout;
    int batch_norm;
    size_t V, ngrams, buckets; /* words, n-gram order (1: words alone) and bucket rows after them */
    int nb;                    /* Naive-Bayes scaling: each feature row weighted by its log-count ratio */
    float init_std, init_mean; /* the word rows' initial standard deviation; every row's initial mean */
    /* with ngrams > 1: each document's features (words, then n-gram rows; an n-gram has no input delta) */
    bag_list features;
    /* the documents after word dropout (training only): what forward averaged and backward must use */
    bag_list kept;
    const uint32_t *bag_ids;
    const size_t *bag_offsets;
    const size_t *bag_positions; /* kept.positions under word dropout, NULL when every token is kept */
    /* with binary: each document's distinct features (the first of each row), what forward averaged */
    int binary;
    bag_list distinct;
    uint32_t *row_stamp, stamp; /* row_stamp (V+N): the last document (stamp) that took the row */
    /* tensor indices */
    size_t nb_ratio; /* state (V+N): the log-count ratios, with nb */
    size_t embedding, hidden_w, hidden_b, bn_w, bn_b, out_w, out_b, running_mean, running_var;
    /* activations and their gradients, (max_batch, width) each */
    float *mean_embedding, *hidden, *normed, *relu, *mask, *dropped, *logits;
    float *d_mean_embedding, *d_hidden, *d_normed, *d_relu, *d_dropped;
    reel_batchnorm_cache bn_cache;
} bow_impl;

/* Word dropout: each token of a document is left out of its average with probability p, drawn from
 * (seed, epoch, sample, position) so it does not depend on the rank. A document never loses all its
 * tokens: when every draw says drop, the token with the highest draw stays. */
static void drop_words(bow_impl *m, const reel_batch *batch, uint64_t seed) {
    size_t total = batch->offsets[batch->size];
    bag_list_reserve(&m->kept, total);
    size_t kept = 0;
    m->kept.offsets[0] = 0;
    for (size_t b = 0; b < batch->size; b++) {
        size_t begin = batch->offsets[b], length = batch->offsets[b + 1] - begin, best = 0;
        float best_draw = -1.0f;
        uint32_t words[4];
        for (size_t t = 0; t < length; t++) {
            if (t % 4 == 0)
                reel_rng_block(words, seed, REEL_RNG_WORD_DROPOUT, (uint32_t)batch->epoch,
                               (uint32_t)batch->sample_index[b], (uint32_t)(t / 4));
            float draw = reel_rng_unit_float(words[t % 4]);
            if (draw >= m->word_dropout) {
                m->kept.positions[kept] = begin + t;
                m->kept.ids[kept++] = batch->ids[begin + t];
            }
            if (draw > best_draw) {
                best_draw = draw;
                best = t;
            }
        }
        if (length > 0 && kept == m->kept.offsets[b]) {
            m->kept.positions[kept] = begin + best;
            m->kept.ids[kept++] = batch->ids[begin + best];
        }
        m->kept.offsets[b + 1] = kept;
    }
}

/* The bucket row of the n-gram of ids[0..n-1] (the hash of the header comment). */
uint64_t reel_bow_ngram_row(const uint32_t *ids, size_t n, size_t V, size_t buckets) {
    uint64_t h = ids[0];
    for (size_t k = 1; k < n; k++) h = h * NGRAM_HASH_MULTIPLIER + ids[k];
    return (uint64_t)V + h % buckets;
}

/* <pad> and <eod> separate texts: no n-gram contains them. */
static int joins_texts(const uint32_t *ids, size_t n) {
    for (size_t k = 0; k < n; k++)
        if (ids[k] == REEL_TOKEN_PAD || ids[k] == REEL_TOKEN_EOD) return 1;
    return 0;
}

/* Each document's features: its words as the bag holds them (after word dropout when training), then its
 * bigrams and trigrams from the whole document (batch->ids), each left out while training with the word
 * dropout probability, drawn from (seed, epoch, sample, n, position) so it does not depend on the rank. */
static void add_ngrams(bow_impl *m, const reel_batch *batch, int drop, uint64_t seed) {
    size_t B = batch->size, total = batch->offsets[B];
    size_t need = reel_size_mul(total, m->ngrams); /* words + (length-1) bigrams + (length-2) trigrams */
    bag_list_reserve(&m->features, need);
    size_t at = 0;
    m->features.offsets[0] = 0;
    for (size_t b = 0; b < B; b++) {
        for (size_t i = m->bag_offsets[b]; i < m->bag_offsets[b + 1]; i++) {
            m->features.ids[at] = m->bag_ids[i];
            m->features.positions[at++] = m->bag_positions ? m->bag_positions[i] : i;
        }
        size_t begin = batch->offsets[b], length = batch->offsets[b + 1] - begin;
        const uint32_t *doc = batch->ids + begin;
        for (size_t n = 2; n <= m->ngrams; n++) {
            uint32_t words[4];
            for (size_t t = 0; t + n <= length; t++) {
                if (drop) {
                    if (t % 4 == 0)
                        reel_rng_block(words, seed, REEL_RNG_NGRAM_DROPOUT, (uint32_t)batch->epoch,
                                       (uint32_t)batch->sample_index[b], (uint32_t)((n << 24) | ((t / 4) & 0xffffffu)));
                    if (reel_rng_unit_float(words[t % 4]) < m->word_dropout) continue;
                }
                if (joins_texts(doc + t, n)) continue;
                m->features.ids[at] = (uint32_t)reel_bow_ngram_row(doc + t, n, m->V, m->buckets);
                m->features.positions[at++] = SIZE_MAX;
            }
        }
        m->features.offsets[b + 1] = at;
    }
    m->bag_ids = m->features.ids;
    m->bag_offsets = m->features.offsets;
    m->bag_positions = m->features.positions;
}

/* Binary features ([model] binary = true, NBSVM's binarised counts): a row enters a document's average
 * once however often its word or n-gram occurs, at its first occurrence that word dropout kept (so a
 * feature occurring k times survives dropout with probability 1 - p^k while training). */
static void keep_distinct(bow_impl *m, size_t B) {
    size_t total = m->bag_offsets[B];
    bag_list_reserve(&m->distinct, total);
    size_t at = 0;
    m->distinct.offsets[0] = 0;
    for (size_t b = 0; b < B; b++) {
        if (++m->stamp == 0) { /* after 2^32 documents the stamps start over */
            memset(m->row_stamp, 0, (m->V + m->buckets) * sizeof *m->row_stamp);
            m->stamp = 1;
        }
        for (size_t i = m->bag_offsets[b]; i < m->bag_offsets[b + 1]; i++) {
            uint32_t row = m->bag_ids[i] < m->V + m->buckets ? m->bag_ids[i] : REEL_TOKEN_UNK;
            if (m->row_stamp[row] == m->stamp) continue;
            m->row_stamp[row] = m->stamp;
            m->distinct.ids[at] = m->bag_ids[i];
            m->distinct.positions[at++] = m->bag_positions ? m->bag_positions[i] : i;
        }
        m->distinct.offsets[b + 1] = at;
    }
    m->bag_ids = m->distinct.ids;
    m->bag_offsets = m->distinct.offsets;
    m->bag_positions = m->distinct.positions;
}

/* Adversarial training: a document's average moves by the average of its (kept) tokens' deltas. */
static void add_mean_deltas(bow_impl *m, const float *delta, size_t B, const float *ratio) {
    size_t E = m->E;
    for (size_t b = 0; b < B; b++) {
        size_t begin = m->bag_offsets[b], end = m->bag_offsets[b + 1];
        if (end == begin) continue;
        float *mean = m->mean_embedding + b * E, scale = 1.0f / (float)(end - begin);
        for (size_t i = begin; i < end; i++) {
            size_t position = m->bag_positions ? m->bag_positions[i] : i;
            if (position == SIZE_MAX) continue; /* an n-gram: the delta perturbs words */
            const float *row = delta + position * E;
            float s = ratio ? scale * ratio[m->bag_ids[i]] : scale; /* a delta moves its row, weighted as it is */
            for (size_t e = 0; e < E; e++) mean[e] += s * row[e];
        }
    }
}

/* Its gradient: every kept token's delta receives its document's average gradient over the count, a
 * dropped token none. */
static void mean_delta_grad(const bow_impl *m, float *input_grad, const reel_batch *batch, const float *ratio) {
    size_t E = m->E, B = batch->size;
    memset(input_grad, 0, batch->offsets[B] * E * sizeof(float));
    for (size_t b = 0; b < B; b++) {
        size_t begin = m->bag_offsets[b], end = m->bag_offsets[b + 1];
        if (end == begin) continue;
        const float *d_mean = m->d_mean_embedding + b * E;
        float scale = 1.0f / (float)(end - begin);
        for (size_t i = begin; i < end; i++) {
            size_t position = m->bag_positions ? m->bag_positions[i] : i;
            if (position == SIZE_MAX) continue;
            float *row = input_grad + position * E, s = ratio ? scale * ratio[m->bag_ids[i]] : scale;
            for (size_t e = 0; e < E; e++) row[e] = s * d_mean[e];
        }
    }
}

/* The hidden block, (B,E) -> (B,H): linear -> batch norm -> ReLU -> dropout; returns what the output
 * layer reads. */
static const float *hidden_forward(reel_model *model, const reel_batch *batch, int training, const reel_comm *comm) {
    bow_impl *m = model->impl;
    size_t B = batch->size, E = m->E, H = m->H;
    const reel_store *p = &model->params, *s = &model->state;
    reel_linear_forward(m->hidden, m->mean_embedding, reel_store_view(p, m->hidden_w),
                        m->batch_norm ? NULL : reel_store_view(p, m->hidden_b), B, E, H);
    const float *after_norm = m->hidden;
    if (m->batch_norm) {
        if (training)
            reel_batchnorm_forward_train(m->normed, &m->bn_cache, m->hidden, reel_store_view(p, m->bn_w),
                                         reel_store_view(p, m->bn_b),
                                         model->frozen_statistics ? NULL : reel_store_view(s, m->running_mean),
                                         model->frozen_statistics ? NULL : reel_store_view(s, m->running_var), NULL,
                                         B, H, BN_MOMENTUM_PERCENT / 100.0f,
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
    return features;
}

/* Its backward: d_features (B,H), the gradient of what hidden_forward returned, to d_mean_embedding (B,E). */
static void hidden_backward(reel_model *model, const reel_batch *batch, float *d_features, const reel_comm *comm) {
    bow_impl *m = model->impl;
    size_t B = batch->size, E = m->E, H = m->H;
    const reel_store *p = &model->params;
    const float *d_relu_out = d_features;
    if (m->dropout > 0.0f) {
        memset(m->d_relu, 0, B * H * sizeof(float));
        reel_dropout_backward(m->d_relu, d_features, m->mask, B * H);
        d_relu_out = m->d_relu;
    }
    memset(m->d_normed, 0, B * H * sizeof(float));
    reel_relu_backward(m->d_normed, d_relu_out, m->batch_norm ? m->normed : m->hidden, B * H);
    const float *d_hidden = m->d_normed;
    if (m->batch_norm) {
        memset(m->d_hidden, 0, B * H * sizeof(float));
        reel_batchnorm_backward(m->d_hidden, reel_store_grad_view(p, m->bn_w), reel_store_grad_view(p, m->bn_b),
                                m->d_normed, &m->bn_cache, reel_store_view(p, m->bn_w), NULL, B, H, comm);
        d_hidden = m->d_hidden;
    }
    reel_linear_backward(m->d_mean_embedding, reel_store_grad_view(p, m->hidden_w),
                         m->batch_norm ? NULL : reel_store_grad_view(p, m->hidden_b), d_hidden, m->mean_embedding,
                         reel_store_view(p, m->hidden_w), B, E, H);
}

static void bow_forward(reel_model *model, const reel_batch *batch, int training, reel_output *out,
                        const reel_comm *comm) {
    bow_impl *m = model->impl;
    size_t B = batch->size, E = m->E, H = m->H;
    REEL_CHECK(B <= model->max_batch, NULL, "batch of %zu rows exceeds the model's %zu", B, model->max_batch);
    const reel_store *p = &model->params, *s = &model->state;

    m->bag_ids = batch->ids;
    m->bag_offsets = batch->offsets;
    if (training && m->word_dropout > 0.0f) {
        drop_words(m, batch, model->seed);
        m->bag_ids = m->kept.ids;
        m->bag_offsets = m->kept.offsets;
    }
    m->bag_positions = m->bag_ids == batch->ids ? NULL : m->kept.positions;
    if (m->ngrams > 1) add_ngrams(m, batch, training && m->word_dropout > 0.0f, model->seed);
    if (m->binary) keep_distinct(m, B);
    const float *ratio = m->nb ? reel_store_view(s, m->nb_ratio) : NULL;
    reel_embedding_bag_forward(m->mean_embedding, m->bag_ids, m->bag_offsets, reel_store_view(p, m->embedding), ratio, B,
                               E);
    if (model->input_delta) add_mean_deltas(m, model->input_delta, B, ratio);
    /* a linear model's output layer reads the average itself */
    const float *features = H ? hidden_forward(model, batch, training, comm) : m->mean_embedding;
    size_t width = H ? H : E;
    float *logits = m->logits;
    *out = (reel_output){.rows = B, .width = model->num_outputs, .logits = logits};
    reel_linear_forward(logits, features, reel_store_view(p, m->out_w), reel_store_view(p, m->out_b), B, width,
                        model->num_outputs);
}

static void bow_backward(reel_model *model, const reel_batch *batch, const float *dlogits, const reel_comm *comm) {
    bow_impl *m = model->impl;
    size_t B = batch->size, E = m->E, H = m->H, width = H ? H : E;
    const reel_store *p = &model->params;
    const float *features = !H ? m->mean_embedding : m->dropout > 0.0f ? m->dropped : m->relu;
    float *d_features = H ? m->d_dropped : m->d_mean_embedding;

    memset(d_features, 0, B * width * sizeof(float));
    reel_linear_backward(d_features, reel_store_grad_view(p, m->out_w), reel_store_grad_view(p, m->out_b), dlogits,
                         features, reel_store_view(p, m->out_w), B, width, model->num_outputs);
    reel_store_grad_ready(p, 2); /* the output layer is final */
    if (H) {
        memset(m->d_mean_embedding, 0, B * E * sizeof(float));
        hidden_backward(model, batch, m->d_dropped, comm);
    }
    reel_store_grad_ready(p, 1); /* the hidden layer and its batch norm are final */
    const float *ratio = m->nb ? reel_store_view(&model->state, m->nb_ratio) : NULL;
    reel_embedding_bag_backward(reel_store_grad_view(p, m->embedding), m->d_mean_embedding, m->bag_ids, m->bag_offsets,
                                ratio, B, E);
    if (model->input_grad) mean_delta_grad(m, model->input_grad, batch, ratio);
}

/* PyTorch's defaults, so results compare with the reference implementation: embeddings N(0, 1), linear
 * weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)), batch norm scale 1 and shift 0. */
static void bow_init(reel_model *model, uint64_t seed) {
    bow_impl *m = model->impl;
    reel_store *p = &model->params, *s = &model->state;
    /* the words N(0, embed_init_std^2) (the course: 1); the n-gram buckets start at 0, so the model starts
     * as the words-only one: a bucket's random start would be noise added to every document holding it */
    reel_init_normal(reel_store_view(p, m->embedding), p->tensors[m->embedding].count, m->init_std, seed,
                     (uint32_t)m->embedding);
    if (m->buckets) memset(reel_store_view(p, m->embedding) + m->V * m->E, 0, m->buckets * m->E * sizeof(float));
    if (m->init_mean != 0.0f) { /* with nb_scaling and embed_dim = 1, the model starts as Naive Bayes */
        float *rows = reel_store_view(p, m->embedding);
        for (size_t i = 0; i < p->tensors[m->embedding].count; i++) rows[i] += m->init_mean;
    }
    size_t width = m->H ? m->H : m->E; /* what the output layer reads */
    float hidden_bound = 1.0f / sqrtf((float)m->E), out_bound = 1.0f / sqrtf((float)width);
    if (m->H) {
        reel_init_uniform(reel_store_view(p, m->hidden_w), m->H * m->E, hidden_bound, seed, (uint32_t)m->hidden_w);
        if (!m->batch_norm)
            reel_init_uniform(reel_store_view(p, m->hidden_b), m->H, hidden_bound, seed, (uint32_t)m->hidden_b);
    }
    reel_init_uniform(reel_store_view(p, m->out_w), model->num_outputs * width, out_bound, seed, (uint32_t)m->out_w);
    reel_init_uniform(reel_store_view(p, m->out_b), model->num_outputs, out_bound, seed, (uint32_t)m->out_b);
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
    float *buffers[] = {m->mean_embedding, m->hidden, m->normed, m->relu, m->mask, m->dropped, m->logits,
                        m->d_mean_embedding, m->d_hidden, m->d_normed, m->d_relu, m->d_dropped,
                        m->bn_cache.xhat, m->bn_cache.inv_std};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
    free(m->bn_cache.scratch);
    bag_list_free(&m->kept);
    bag_list_free(&m->features);
    bag_list_free(&m->distinct);
    free(m->row_stamp);
    free(m);
}

/* Naive-Bayes log-count ratios (Wang & Manning 2012) of every feature row f, from the labelled training
 * documents: p_f and q_f count the documents of class 1 and of class 0 holding f at least once (words as
 * the model reads them, ids >= vocab_size as <unk>; n-grams as forward forms them, without dropout), and
 *   ratio[f] = log((p_f + 1) / sum_g (p_g + 1)) - log((q_f + 1) / sum_g (q_g + 1)).
 * Every rank reads the whole split in document order, so the ratios do not depend on the number of ranks. */
static int bow_prepare(reel_model *model, reel_tokfile *train, reel_error *err) {
    bow_impl *m = model->impl;
    if (!m->nb) return 0;
    if (model->num_outputs != 1)
        return reel_fail(err, "[model] nb_scaling = true needs two classes (one logit); the data has %zu",
                         model->num_outputs);
    size_t rows = m->V + m->buckets, docs = (size_t)reel_tokfile_info(train)->num_docs;
    uint32_t *count[2] = {reel_calloc(rows, sizeof(uint32_t)), reel_calloc(rows, sizeof(uint32_t))};
    uint32_t *seen = reel_calloc(rows, sizeof(uint32_t)); /* the last document (+1) that counted the row */
    uint32_t *doc = NULL;
    size_t capacity = 0;
    for (size_t d = 0; d < docs; d++) {
        const uint32_t *ids;
        size_t length;
        int32_t label;
        if (reel_tokfile_doc(train, d, &ids, &length, &label, err) != 0) {
            free(count[0]), free(count[1]), free(seen), free(doc);
            return -1;
        }
        if (label < 0 || label > 1) {
            free(count[0]), free(count[1]), free(seen), free(doc);
            return reel_fail(err, "%s: document %zu has label %d; nb_scaling needs labels 0 and 1",
                             reel_tokfile_path(train), d, (int)label);
        }
        if (length > capacity) {
            capacity = length;
            doc = reel_realloc(doc, capacity * sizeof *doc);
        }
        for (size_t t = 0; t < length; t++) doc[t] = ids[t] < m->V ? ids[t] : REEL_TOKEN_UNK;
        uint32_t mark = (uint32_t)d + 1;
        for (size_t t = 0; t < length; t++)
            if (seen[doc[t]] != mark) seen[doc[t]] = mark, count[label][doc[t]]++;
        for (size_t n = 2; n <= m->ngrams; n++)
            for (size_t t = 0; t + n <= length; t++) {
                if (joins_texts(doc + t, n)) continue;
                size_t row = (size_t)reel_bow_ngram_row(doc + t, n, m->V, m->buckets);
                if (seen[row] != mark) seen[row] = mark, count[label][row]++;
            }
    }
    double total[2] = {0, 0};
    for (size_t c = 0; c < 2; c++)
        for (size_t f = 0; f < rows; f++) total[c] += (double)count[c][f] + 1.0;
    float *ratio = reel_store_view(&model->state, m->nb_ratio);
    for (size_t f = 0; f < rows; f++)
        ratio[f] = (float)(log(((double)count[1][f] + 1.0) / total[1]) - log(((double)count[0][f] + 1.0) / total[0]));
    free(count[0]), free(count[1]), free(seen), free(doc);
    return 0;
}

static const reel_model_ops bow_ops = {bow_forward, bow_backward, bow_init, bow_destroy, NULL, bow_prepare};

/* [model] keys of the bag-of-words model. */
typedef struct bow_options {
    size_t hidden_dim;
    double dropout;      /* probability of zeroing a hidden unit */
    double word_dropout; /* probability of leaving a token out of the average while training */
    int batch_norm;      /* 1 = batch norm after the hidden linear layer */
    size_t num_classes;  /* 0: from the data; 2: one logit (BCE); K > 2: K logits (softmax) */
    size_t ngrams;       /* 1: words; 2: and word bigrams; 3: and trigrams */
    size_t ngram_buckets; /* rows the n-grams are hashed into, after the vocabulary's */
    int nb_scaling;      /* 1 = each feature row weighted by its Naive-Bayes log-count ratio */
    double embed_init_std; /* standard deviation of the word rows' normal initialisation */
    double embed_init_mean; /* where every row (words and n-grams) starts, the words' noise added */
    int binary;          /* 1 = each distinct word or n-gram once in a document's average */
} bow_options;

static const reel_key bow_keys[] = {
    REEL_KEY_SIZE_OF(bow_options, "model", "hidden_dim", hidden_dim, "256", 0, 0,
                     "width of the hidden layer; 0: none, the average feeds the output layer (a linear model; "
                     "batch_norm = false and dropout = 0 then)"),
    REEL_KEY_DOUBLE_OF(bow_options, "model", "dropout", dropout, "0.5", REEL_BOUND_MIN | REEL_BOUND_MAX_OPEN, 0, 1,
                       "probability of zeroing a hidden unit during training"),
    REEL_KEY_DOUBLE_OF(bow_options, "model", "word_dropout", word_dropout, "0", REEL_BOUND_MIN | REEL_BOUND_MAX_OPEN, 0, 1,
                       "probability of leaving each token out of a document's average while training (0 disables)"),
    REEL_KEY_BOOL_OF(bow_options, "model", "batch_norm", batch_norm, "true",
                     "batch normalisation after the hidden linear layer"),
    REEL_KEY_SIZE_OF(bow_options, "model", "num_classes", num_classes, "0", 0, 0,
                     "classes of the labels; 0 takes them from the data (2: one logit, K > 2: K logits)"),
    REEL_KEY_SIZE_OF(bow_options, "model", "ngrams", ngrams, "1", REEL_BOUND_MIN, 1,
                     "1: the bag holds words; 2: and each word bigram; 3: and each trigram (hashed into ngram_buckets rows)"),
    REEL_KEY_SIZE_OF(bow_options, "model", "ngram_buckets", ngram_buckets, "0", 0, 0,
                     "embedding rows after the vocabulary's that the n-grams are hashed into (needed with ngrams > 1)"),
    REEL_KEY_BOOL_OF(bow_options, "model", "nb_scaling", nb_scaling, "false",
                     "weight each word and n-gram row by its Naive-Bayes log-count ratio from the training split "
                     "(two classes)"),
    REEL_KEY_DOUBLE_OF(bow_options, "model", "embed_init_mean", embed_init_mean, "0", 0, 0, 0,
                       "where every embedding row (words and n-grams) starts; the words' normal noise is added"),
    REEL_KEY_DOUBLE_OF(bow_options, "model", "embed_init_std", embed_init_std, "1", REEL_BOUND_MIN, 0, 0,
                       "standard deviation of the word embeddings' normal initialisation (n-gram rows start at 0)"),
    REEL_KEY_BOOL_OF(bow_options, "model", "binary", binary, "false",
                     "each distinct word and n-gram enters a document's average once, however often it occurs "
                     "(NBSVM's binarised features)"),
};
static const reel_key_table bow_key_table = {bow_keys, sizeof bow_keys / sizeof bow_keys[0], sizeof(bow_options)};

static int bow_create(reel_model **out, const reel_config *cfg, size_t max_batch, reel_error *err) {
    const bow_options *o = reel_config_model_options(cfg);
    if (o->ngrams > 3)
        return reel_fail(err, "[model] ngrams = %zu: use 1 (words), 2 (and bigrams) or 3 (and trigrams)", o->ngrams);
    if (o->ngrams > 1 && o->ngram_buckets == 0)
        return reel_fail(err, "[model] ngrams = %zu needs ngram_buckets, the rows its n-grams are hashed into "
                         "(e.g. ngram_buckets = 2000000)", o->ngrams);
    if (o->ngrams == 1 && o->ngram_buckets != 0)
        return reel_fail(err, "[model] ngram_buckets = %zu with ngrams = 1: no n-gram would read those rows; set "
                         "ngrams = 2 or 3, or leave ngram_buckets out", o->ngram_buckets);
    if (o->ngram_buckets > (size_t)UINT32_MAX - cfg->model.vocab_size)
        return reel_fail(err, "[model] ngram_buckets = %zu: vocab_size + ngram_buckets must stay below 2^32 (token "
                         "rows are 32-bit)", o->ngram_buckets);
    if (o->hidden_dim == 0 && o->batch_norm)
        return reel_fail(err, "[model] hidden_dim = 0 (a linear model, no hidden layer) with batch_norm = true: batch "
                         "norm acts on the hidden layer; set batch_norm = false, or hidden_dim > 0");
    if (o->hidden_dim == 0 && o->dropout > 0.0)
        return reel_fail(err, "[model] hidden_dim = 0 (a linear model, no hidden layer) with dropout = %g: dropout "
                         "zeroes hidden units; set dropout = 0 (word_dropout still acts on the features), or "
                         "hidden_dim > 0", o->dropout);
    bow_impl *m = reel_calloc(1, sizeof *m);
    reel_model *model = reel_classifier_new("bow", &bow_ops, m, cfg, o->num_classes, max_batch);
    m->E = cfg->model.embed_dim;
    m->H = o->hidden_dim;
    m->dropout = (float)o->dropout;
    m->word_dropout = (float)o->word_dropout;
    m->batch_norm = o->batch_norm;
    m->V = model->vocab_size;
    m->ngrams = o->ngrams;
    m->buckets = o->ngram_buckets;
    m->nb = o->nb_scaling;
    m->init_std = (float)o->embed_init_std;
    m->init_mean = (float)o->embed_init_mean;
    m->binary = o->binary;

    reel_store_init(&model->params, 1);
    reel_store_init(&model->state, 0);
    m->embedding = reel_store_add_sized(&model->params, REEL_TENSOR_EMBEDDING, 2,
                                        (size_t[]){model->vocab_size + m->buckets, m->E},
                                        m->buckets ? "([model] vocab_size + ngram_buckets) x embed_dim"
                                                   : "[model] vocab_size x embed_dim");
    reel_store_mark_transfer(&model->params, m->embedding); /* the embedding alone is shared with other models */
    if (m->nb)
        m->nb_ratio = reel_store_add_sized(&model->state, "nb/ratio", 1, (size_t[]){model->vocab_size + m->buckets},
                                           "[model] vocab_size + ngram_buckets");
    reel_store_set_group(&model->params, 1); /* the hidden layer and its batch norm */
    reel_store_set_group(&model->state, 1);
    if (m->H) {
        m->hidden_w = reel_store_add_sized(&model->params, "hidden/weight", 2, (size_t[]){m->H, m->E},
                                           "[model] hidden_dim x embed_dim");
        if (m->batch_norm) {
            m->bn_w = reel_store_add_sized(&model->params, "batchnorm/weight", 1, (size_t[]){m->H}, "[model] hidden_dim");
            m->bn_b = reel_store_add_sized(&model->params, "batchnorm/bias", 1, (size_t[]){m->H}, "[model] hidden_dim");
            m->running_mean = reel_store_add_sized(&model->state, "batchnorm/running_mean", 1, (size_t[]){m->H},
                                                    "[model] hidden_dim");
            m->running_var = reel_store_add_sized(&model->state, "batchnorm/running_var", 1, (size_t[]){m->H},
                                                   "[model] hidden_dim");
        } else {
            m->hidden_b = reel_store_add_sized(&model->params, "hidden/bias", 1, (size_t[]){m->H}, "[model] hidden_dim");
        }
    }
    reel_store_set_group(&model->params, 2);
    m->out_w = reel_store_add_sized(&model->params, "output/weight", 2, (size_t[]){model->num_outputs, m->H ? m->H : m->E},
                                    m->H ? "outputs x [model] hidden_dim" : "outputs x [model] embed_dim");
    m->out_b = reel_store_add(&model->params, "output/bias", 1, (size_t[]){model->num_outputs});
    reel_store_allocate(&model->params);
    reel_store_allocate(&model->state);

    /* activations: B is the batch's share of a rank (training: [train] batch_size over the ranks) */
    size_t B = model->max_batch, E = m->E, H = m->H;
    const char *by_embed = "[train] batch_size (per rank) x [model] embed_dim";
    const char *by_hidden = "[train] batch_size (per rank) x [model] hidden_dim";
    m->mean_embedding = reel_calloc_for(reel_size_mul(B, E), sizeof(float), "the mean embeddings", by_embed);
    m->d_mean_embedding = reel_calloc_for(reel_size_mul(B, E), sizeof(float), "their gradient", by_embed);
    float **hidden_buffers[] = {&m->hidden, &m->normed, &m->relu, &m->mask, &m->dropped, &m->d_hidden,
                                &m->d_normed, &m->d_relu, &m->d_dropped, &m->bn_cache.xhat};
    for (size_t i = 0; H && i < sizeof hidden_buffers / sizeof hidden_buffers[0]; i++)
        *hidden_buffers[i] = reel_calloc_for(reel_size_mul(B, H), sizeof(float), "a hidden activation", by_hidden);
    if (H) m->bn_cache.inv_std = reel_calloc(H, sizeof(float));
    m->logits = reel_calloc_for(reel_size_mul(B, model->num_outputs), sizeof(float), "the logits",
                                "[train] batch_size (per rank) x outputs");
    m->bn_cache.scratch = reel_calloc(2 * H + 1, sizeof(double));
    m->kept.offsets = reel_calloc_for(B < SIZE_MAX ? B + 1 : B, sizeof(size_t), "the word-dropout offsets",
                                      "[train] batch_size (per rank)");
    if (m->ngrams > 1)
        m->features.offsets = reel_calloc_for(B < SIZE_MAX ? B + 1 : B, sizeof(size_t), "the n-gram offsets",
                                             "[train] batch_size (per rank)");
    if (m->binary) {
        m->distinct.offsets = reel_calloc_for(B < SIZE_MAX ? B + 1 : B, sizeof(size_t), "the distinct-feature offsets",
                                            "[train] batch_size (per rank)");
        m->row_stamp = reel_calloc_for(model->vocab_size + m->buckets, sizeof(uint32_t), "the distinct-feature marks",
                                       "[model] vocab_size + ngram_buckets");
    }
    *out = model;
    return 0;
}

const reel_model_kind reel_model_kind_bow = {"bow", bow_create, &bow_key_table, "classify"};
