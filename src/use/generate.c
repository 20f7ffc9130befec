/* Generation from a language model (reel/generate.h). */
#include "reel/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reel/data.h"
#include "reel/layers.h"
#include "reel/pieces.h"
#include "reel/rng.h"

/* Tokens of a prime read per forward: the state carries from one chunk to the next, so a long prime
 * costs no more memory than this. */
enum { PRIME_CHUNK = 512 };

struct reel_generator {
    reel_model *model;
    size_t samples, width, V, D;
    int recompute;    /* read the whole text at every step instead of carrying a state */
    float *state;     /* (samples, width): recurrent states or key/value caches */
    float *logits;    /* (samples, V) the next token's logits */
    float *scratch;   /* (V) */
    float *last;      /* (samples, D) the features of each sample's last step */
    uint32_t *text;   /* (samples, W) recompute: the tokens each sample has read (<eod>, prime, generated) */
    size_t text_length, text_capacity;
    reel_batch_buffer buffer;
    reel_comm comm;
};

int reel_generator_create(reel_generator **out, reel_model *model, size_t samples, reel_error *err) {
    if (model->output != REEL_OUTPUT_TOKEN)
        return reel_fail(err, "model type '%s' is a classifier (one output per document): generation needs a "
                         "language model (type rnn_lm or gpt)", model->type);
    if (samples == 0) return reel_fail(err, "no samples to generate");
    reel_generator *g = reel_calloc(1, sizeof *g);
    g->model = model;
    g->samples = samples;
    g->recompute = model->decode == REEL_DECODE_NONE;
    g->width = g->recompute ? 0 : model->decode_width;
    g->V = model->num_outputs;
    g->state = g->width ? reel_calloc(samples * g->width, sizeof(float)) : NULL;
    g->logits = reel_calloc(samples * g->V, sizeof(float));
    g->scratch = reel_calloc(g->V, sizeof(float));
    reel_comm_self(&g->comm);
    *out = g;
    return 0;
}

void reel_generator_recompute(reel_generator *g) {
    g->recompute = 1;
    free(g->state);
    g->state = NULL;
    g->width = 0;
}

int reel_generator_fits(const reel_model *model, size_t lowered, size_t prime_tokens, const char *prime_name,
                        size_t length, const char *length_name, reel_error *err) {
    size_t own = model->max_context;
    int use_lowered = lowered && (!own || lowered < own);
    size_t limit = use_lowered ? lowered : own, total = prime_tokens + 1 + length; /* <eod>, prime, generated */
    if (!limit || total <= limit) return 0;
    return reel_fail(err, "%s has %zu tokens: with the start of the document and %s %zu that is %zu, more than the "
                     "model takes (%s %zu)", prime_name, prime_tokens, length_name, length, total,
                     use_lowered ? "--max-context" : "its max_context", limit);
}

void reel_generator_free(reel_generator *g) {
    if (!g) return;
    reel_batch_buffer_free(&g->buffer);
    free(g->state);
    free(g->logits);
    free(g->scratch);
    free(g->last);
    free(g->text);
    free(g);
}

/* One forward of rows sequences of `count` tokens each (ids[b * count + k]) continuing from the states
 * in state (NULL: from the start); leaves the next token's logits of each in logits (rows, V). The one
 * step operation of every model: a recurrent state and a key/value cache are both the batch's state. */
static void run(reel_generator *g, const uint32_t *ids, size_t rows, size_t count, float *state, float *logits) {
    reel_batch_begin(&g->buffer, rows, 0, 0);
    for (size_t b = 0; b < rows; b++) {
        uint32_t *inputs, *targets;
        reel_batch_append(&g->buffer, count, b, &inputs, &targets);
        memcpy(inputs, ids + b * count, count * sizeof *inputs);
        memset(targets, 0, count * sizeof *targets);
    }
    reel_batch_finish(&g->buffer);
    g->buffer.batch.state = state;
    reel_output out;
    g->model->ops->forward(g->model, &g->buffer.batch, 0, &out, &g->comm);
    /* the features of each sequence's last step, side by side, then the output layer on those rows */
    size_t D = out.features_dim;
    if (D > g->D) {
        free(g->last);
        g->last = reel_malloc(g->samples * D * sizeof(float));
        g->D = D;
    }
    for (size_t b = 0; b < rows; b++)
        memcpy(g->last + b * D, out.features + reel_output_row(&out, count - 1, b) * D, D * sizeof(float));
    reel_linear_forward(logits, g->last, out.weight, out.bias, rows, D, out.width);
}

/* Recompute: every sample reads its whole text (the last max_context tokens of it) again. */
static void run_texts(reel_generator *g) {
    size_t W = g->model->max_context, n = g->text_length, from = W && n > W ? n - W : 0;
    uint32_t *ids = reel_malloc(g->samples * (n - from) * sizeof *ids);
    for (size_t b = 0; b < g->samples; b++)
        memcpy(ids + b * (n - from), g->text + b * g->text_capacity + from, (n - from) * sizeof *ids);
    run(g, ids, g->samples, n - from, NULL, g->logits);
    free(ids);
}

static void text_append(reel_generator *g, const uint32_t *next, size_t samples_same) {
    if (g->text_length == g->text_capacity) {
        size_t capacity = g->text_capacity ? 2 * g->text_capacity : 256;
        uint32_t *text = reel_malloc(g->samples * capacity * sizeof *text);
        for (size_t b = 0; b < g->samples && g->text_length; b++) /* nothing to keep from an empty text */
            memcpy(text + b * capacity, g->text + b * g->text_capacity, g->text_length * sizeof *text);
        free(g->text);
        g->text = text;
        g->text_capacity = capacity;
    }
    for (size_t b = 0; b < g->samples; b++) g->text[b * g->text_capacity + g->text_length] = next[samples_same ? 0 : b];
    g->text_length++;
}

void reel_generator_prime(reel_generator *g, const uint32_t *ids, size_t count) {
    uint32_t chunk[PRIME_CHUNK];
    size_t total = count + 1, done = 0; /* <eod>, then the prime */
    /* A model of bounded context reads the last max_context tokens of <eod> p_1 ... p_n (the last window,
     * aligned on the end, as evaluation would read them): the latest tokens matter most. */
    size_t W = g->model->max_context;
    if (W > 0 && total > W) done = total - W;
    if (g->recompute) {
        g->text_length = 0;
        for (size_t k = done; k < total; k++) {
            uint32_t id = k == 0 ? REEL_TOKEN_EOD : ids[k - 1];
            text_append(g, &id, 1);
        }
        run_texts(g);
        return;
    }
    /* every sample reads the same prime: read it once, then copy the state and the logits */
    memset(g->state, 0, g->width * sizeof(float));
    while (done < total) {
        size_t n = total - done < PRIME_CHUNK ? total - done : PRIME_CHUNK;
        for (size_t k = 0; k < n; k++) chunk[k] = done + k == 0 ? REEL_TOKEN_EOD : ids[done + k - 1];
        run(g, chunk, 1, n, g->state, g->logits);
        done += n;
    }
    for (size_t b = 1; b < g->samples; b++) {
        memcpy(g->state + b * g->width, g->state, g->width * sizeof(float));
        memcpy(g->logits + b * g->V, g->logits, g->V * sizeof(float));
    }
}

void reel_generator_step(reel_generator *g, const reel_sampling *sampling, uint64_t position, uint32_t *next) {
    for (size_t b = 0; b < g->samples; b++) {
        memcpy(g->scratch, g->logits + b * g->V, g->V * sizeof(float));
        next[b] = reel_sample_logits(g->scratch, g->V, sampling, b, position);
    }
    if (g->recompute) {
        text_append(g, next, 0);
        run_texts(g);
    } else {
        run(g, next, g->samples, 1, g->state, g->logits);
    }
}

const float *reel_generator_logits(const reel_generator *g) { return g->logits; }

/* ---- sampling ---- */

typedef struct {
    float value;
    uint32_t id;
} candidate;

void reel_generator_run(reel_generator *g, const reel_sampling *sampling, size_t length, int stop_at_eod,
                        uint32_t *out, size_t *produced) {
    uint32_t *next = reel_malloc(g->samples * sizeof *next);
    int *ended = reel_calloc(g->samples, sizeof *ended);
    for (size_t b = 0; b < g->samples; b++) produced[b] = 0;
    /* Every step draws for every sample, an ended one too: the draw of a sample is keyed by its position,
     * not by what the others do, so a sample's text does not depend on when the others stop. */
    for (size_t position = 0; position < length; position++) {
        reel_generator_step(g, sampling, position, next);
        for (size_t b = 0; b < g->samples; b++) {
            if (ended[b]) continue;
            out[b * length + produced[b]++] = next[b];
            if (stop_at_eod && next[b] == REEL_TOKEN_EOD) ended[b] = 1;
        }
    }
    free(next);
    free(ended);
}

static int by_value_descending(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->value != y->value) return x->value > y->value ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

uint32_t reel_sample_logits(float *logits, size_t K, const reel_sampling *s, uint64_t sample, uint64_t position) {
    /* <pad> and <unk> are never drawn; <eod> may be (it ends a review) */
    logits[REEL_TOKEN_PAD] = -INFINITY;
    if (K > REEL_TOKEN_UNK) logits[REEL_TOKEN_UNK] = -INFINITY;
    size_t best = 0;
    for (size_t k = 1; k < K; k++)
        if (logits[k] > logits[best]) best = k;
    if (s->temperature <= 0 || s->top_k == 1) return (uint32_t)best;
    candidate *c = malloc(K * sizeof *c);
    REEL_CHECK(c, NULL, "out of memory sampling");
    size_t n = 0;
    for (size_t k = 0; k < K; k++)
        if (isfinite(logits[k])) c[n++] = (candidate){logits[k], (uint32_t)k};
    qsort(c, n, sizeof *c, by_value_descending);
    if (s->top_k && s->top_k < n) n = s->top_k;
    /* probabilities under the temperature, relative to the largest (which is c[0]) */
    double *p = malloc(n * sizeof *p), total = 0;
    REEL_CHECK(p, NULL, "out of memory sampling");
    for (size_t i = 0; i < n; i++) total += p[i] = exp(((double)c[i].value - c[0].value) / s->temperature);
    if (s->top_p < 1.0) { /* the smallest head whose probability reaches top_p */
        double kept = 0;
        size_t m = 0;
        while (m < n && kept < s->top_p * total) kept += p[m++];
        n = m ? m : 1;
        total = kept > 0 ? kept : p[0];
    }
    uint32_t w[4];
    reel_rng_block(w, s->seed, REEL_RNG_GENERATE, (uint32_t)sample, (uint32_t)position, (uint32_t)(position >> 32));
    double u = ((double)(w[0] >> 5) * 67108864.0 + (double)(w[1] >> 6)) / 9007199254740992.0 * total;
    uint32_t chosen = c[n - 1].id;
    for (size_t i = 0; i < n; i++) {
        if (u < p[i]) {
            chosen = c[i].id;
            break;
        }
        u -= p[i];
    }
    free(p);
    free(c);
    return chosen;
}

/* ---- text ---- */

static int attaches_left(const char *t) {
    static const char *const closing[] = {".", ",", "!", "?", ";", ":", ")", "]", "...", "'s", "'re", "'ve", "'ll",
                                          "'d", "'m", "n't", "%"};
    for (size_t i = 0; i < sizeof closing / sizeof closing[0]; i++)
        if (strcmp(t, closing[i]) == 0) return 1;
    return 0;
}

/* Pieces: the text the piece model decodes them to (spaces where the pieces have U+2581), the reserved
 * ids spelt out between spaces (an <eod> between two generated documents). */
static void detokenize_pieces(reel_buf *out, const reel_vocab *vocab, const uint32_t *ids, size_t count) {
    char *text = NULL;
    size_t length = 0, capacity = 0;
    reel_error err = {{0}};
    for (size_t start = 0; start < count;) {
        size_t end = start;
        while (end < count && ids[end] >= REEL_VOCAB_RESERVED && ids[end] < vocab->size) end++;
        if (end > start) {
            length = 0;
            REEL_CHECK(reel_pieces_decode(vocab->processor, ids + start, end - start, &text, &length, &capacity, &err) == 0,
                       NULL, "%s", err.message);
            if (out->length && out->data[out->length - 1] != ' ' && out->data[out->length - 1] != '\n' &&
                start > 0 && text[0] != ' ')
                reel_buf_append(out, " ", 1); /* after a reserved id */
            reel_buf_append(out, text, length);
            start = end;
        } else {
            const char *t = ids[start] < vocab->size ? vocab->tokens[ids[start]] : "<unk>";
            if (out->length && out->data[out->length - 1] != ' ' && out->data[out->length - 1] != '\n')
                reel_buf_append(out, " ", 1);
            reel_buf_append(out, t, strlen(t));
            start++;
        }
    }
    if (!out->data) reel_buf_append(out, "", 0);
    free(text);
}

void reel_detokenize(reel_buf *out, const reel_vocab *vocab, const uint32_t *ids, size_t count) {
    if (vocab->processor) {
        detokenize_pieces(out, vocab, ids, count);
        return;
    }
    for (size_t i = 0; i < count; i++) {
        const char *t = ids[i] < vocab->size ? vocab->tokens[ids[i]] : "<unk>";
        int at_line_start = out->length == 0 || out->data[out->length - 1] == '\n';
        int after_open = out->length > 0 && (out->data[out->length - 1] == '(' || out->data[out->length - 1] == '[');
        if (!at_line_start && !after_open && !attaches_left(t)) reel_buf_append(out, " ", 1);
        reel_buf_append(out, t, strlen(t));
    }
}

void reel_detokenize_after(reel_buf *out, const reel_vocab *vocab, const uint32_t *prime, size_t prime_count,
                           const uint32_t *ids, size_t count) {
    if (!vocab->processor) {
        reel_detokenize(out, vocab, ids, count);
        return;
    }
    /* pieces: the continuation decoded after the prime, so its first space (a piece's U+2581) is text
     * and not the start of a document's, which decoding alone would drop */
    reel_buf head = {0}, whole = {0};
    uint32_t *both = reel_malloc((prime_count + count + 1) * sizeof *both);
    if (prime_count) memcpy(both, prime, prime_count * sizeof *both);
    if (count) memcpy(both + prime_count, ids, count * sizeof *both);
    detokenize_pieces(&head, vocab, prime, prime_count);
    detokenize_pieces(&whole, vocab, both, prime_count + count);
    /* the prime's text is a prefix of the whole's: pieces decode one after the other */
    size_t at = head.length <= whole.length && memcmp(whole.data, head.data ? head.data : "", head.length) == 0
                    ? head.length : 0;
    reel_buf_append(out, whole.data ? whole.data + at : "", whole.length - at);
    reel_buf_free(&head);
    reel_buf_free(&whole);
    free(both);
}
