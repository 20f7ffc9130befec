/* A trained model applied to documents (reel/infer.h). */
#include "reel/infer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reel/comm.h"
#include "reel/data.h"
#include "reel/layers.h"
#include "reel/objective.h"
#include "reel/pieces.h"
#include "reel/windows.h"

/* ---- text -> ids ---- */

void reel_text_encoder_init(reel_text_encoder *enc, const reel_vocab *vocab, size_t vocab_limit) {
    reel_tokenizer_init(&enc->tokenizer);
    reel_vocab_index_build(&enc->index, vocab);
    enc->vocab_limit = vocab_limit < vocab->size ? vocab_limit : vocab->size;
    enc->reverse = 0;
}

void reel_text_encoder_free(reel_text_encoder *enc) {
    reel_tokenizer_free(&enc->tokenizer);
    reel_vocab_index_free(&enc->index);
}

/* A vocabulary of pieces: the normalised text (as prep wrote it) into the piece model's ids. */
static size_t encode_pieces(reel_text_encoder *enc, const char *text, size_t length, size_t max_tokens, uint32_t **ids,
                            size_t *capacity, size_t *unknown, size_t *tokens_in_text) {
    size_t norm_length;
    const char *norm = reel_tokenizer_normalize(&enc->tokenizer, text, length, &norm_length);
    reel_error err = {{0}};
    size_t count = reel_pieces_encode(enc->index.vocab->processor, norm, norm_length, ids, capacity, &err);
    /* encoding fails only for a model that loaded but is broken, or out of memory */
    REEL_CHECK(count != (size_t)-1, NULL, "%s", err.message);
    if (!*ids) *ids = reel_malloc(16 * sizeof **ids), *capacity = 16;
    if (tokens_in_text) *tokens_in_text = count;
    if (enc->reverse)
        for (size_t i = 0, j = count ? count - 1 : 0; i < j; i++, j--) {
            uint32_t t = (*ids)[i];
            (*ids)[i] = (*ids)[j];
            (*ids)[j] = t;
        }
    if (max_tokens && count > max_tokens) count = max_tokens;
    size_t missing = 0; /* byte fallback: never, unless the model's vocabulary is cut */
    for (size_t i = 0; i < count; i++)
        if ((*ids)[i] >= enc->vocab_limit) (*ids)[i] = REEL_TOKEN_UNK, missing++;
    if (unknown) *unknown = missing;
    return count;
}

size_t reel_text_encode(reel_text_encoder *enc, const char *text, size_t length, size_t max_tokens, uint32_t **ids,
                        size_t *capacity, size_t *unknown, size_t *tokens_in_text) {
    if (enc->index.vocab->processor)
        return encode_pieces(enc, text, length, max_tokens, ids, capacity, unknown, tokens_in_text);
    size_t count = 0, missing = 0;
    const reel_token *tokens = reel_tokenize(&enc->tokenizer, text, length, &count);
    if (tokens_in_text) *tokens_in_text = count;
    size_t all = count;
    if (max_tokens && count > max_tokens) count = max_tokens;
    if (count > *capacity || !*ids) {
        *capacity = count > 16 ? count : 16;
        *ids = reel_realloc(*ids, *capacity * sizeof **ids);
    }
    for (size_t i = 0; i < count; i++) {
        const reel_token *token = &tokens[enc->reverse ? all - 1 - i : i];
        int64_t id = reel_vocab_find(&enc->index, token->text, token->length);
        if (id < 0 || (size_t)id >= enc->vocab_limit) {
            (*ids)[i] = REEL_TOKEN_UNK;
            missing++;
        } else {
            (*ids)[i] = (uint32_t)id;
        }
    }
    if (unknown) *unknown = missing;
    return count;
}

/* ---- running a model ---- */

enum { SCORE_SLICE = 256 }; /* language-model rows whose logits exist at once */

struct reel_predictor {
    reel_model *model;
    size_t max_batch;
    reel_comm comm;
    reel_batch_buffer buffer;
    reel_doc_length *order; /* (n) the documents by length */
    size_t order_capacity;
    float *logits;          /* (SCORE_SLICE, V) language models */
    float *rows;            /* (SCORE_SLICE, D) language models: the valid rows' features */
};

int reel_predictor_create(reel_predictor **out, reel_model *model, size_t max_batch, reel_error *err) {
    if (max_batch == 0 || max_batch > model->max_batch)
        return reel_fail(err, "a predictor of %zu documents per forward for a model built for %zu", max_batch,
                         model->max_batch);
    reel_predictor *p = reel_calloc(1, sizeof *p);
    p->model = model;
    p->max_batch = max_batch;
    reel_comm_self(&p->comm);
    *out = p;
    return 0;
}

void reel_predictor_free(reel_predictor *p) {
    if (!p) return;
    reel_batch_buffer_free(&p->buffer);
    free(p->order);
    free(p->logits);
    free(p->rows);
    free(p);
}

size_t reel_predictor_classes(const reel_predictor *p) {
    return p->model->num_outputs == 1 ? 2 : p->model->num_outputs;
}

static int by_length(const void *a, const void *b) {
    const reel_doc_length *x = a, *y = b;
    if (x->length != y->length) return x->length < y->length ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* The documents to run (all of them with extra > 0, else the non-empty ones) sorted by length (then
 * index), extra tokens added to each length; returns their number. */
static size_t sort_by_length(reel_predictor *p, const reel_document *docs, size_t n, size_t extra) {
    if (n > p->order_capacity) {
        p->order_capacity = n;
        p->order = reel_realloc(p->order, n * sizeof *p->order);
    }
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (docs[i].length || extra) p->order[count++] = (reel_doc_length){i, docs[i].length + extra};
    if (count > 1) qsort(p->order, count, sizeof *p->order, by_length); /* may be NULL when empty */
    return count;
}

/* Fills the batch with documents order[start .. start + rows); for a language model each reads <eod>
 * first and predicts <eod> last. */
static void fill_batch(reel_predictor *p, const reel_document *docs, size_t start, size_t rows, int next_token) {
    size_t V = p->model->vocab_size;
    reel_batch_begin(&p->buffer, rows, 0, 0);
    for (size_t r = 0; r < rows; r++) {
        const reel_document *d = &docs[p->order[start + r].index];
        uint32_t *inputs, *targets;
        size_t length = d->length + (next_token ? 1 : 0);
        reel_batch_append(&p->buffer, length, p->order[start + r].index, &inputs, &targets);
        if (next_token) {
            inputs[0] = REEL_TOKEN_EOD;
            for (size_t k = 0; k < d->length; k++) {
                uint32_t id = d->ids[k] < V ? d->ids[k] : REEL_TOKEN_UNK;
                inputs[k + 1] = targets[k] = id;
            }
            targets[d->length] = REEL_TOKEN_EOD;
        } else {
            for (size_t k = 0; k < length; k++) inputs[k] = d->ids[k] < V ? d->ids[k] : REEL_TOKEN_UNK;
            memset(targets, 0, length * sizeof *targets);
        }
    }
    reel_batch_finish(&p->buffer);
}

void reel_predict_classes(reel_predictor *p, const reel_document *docs, size_t n, float *probs) {
    reel_model *model = p->model;
    REEL_CHECK(model->output == REEL_OUTPUT_DOCUMENT, NULL, "class probabilities from model type %s", model->type);
    size_t C = reel_predictor_classes(p), K = model->num_outputs;
    for (size_t i = 0; i < n * C; i++) probs[i] = NAN;
    size_t count = sort_by_length(p, docs, n, 0);
    for (size_t start = 0; start < count;) {
        size_t rows = reel_eval_batch_rows(p->order, count, start, p->max_batch);
        fill_batch(p, docs, start, rows, 0);
        reel_output out;
        model->ops->forward(model, &p->buffer.batch, 0, &out, &p->comm);
        for (size_t r = 0; r < rows; r++) {
            const float *z = out.logits + r * K;
            float *prob = probs + p->order[start + r].index * C;
            if (K == 1) {
                double positive = 1.0 / (1.0 + exp(-(double)z[0]));
                prob[0] = (float)(1.0 - positive);
                prob[1] = (float)positive;
                continue;
            }
            float top = z[0];
            for (size_t k = 1; k < K; k++) top = z[k] > top ? z[k] : top;
            double sum = 0;
            for (size_t k = 0; k < K; k++) sum += exp((double)(z[k] - top));
            for (size_t k = 0; k < K; k++) prob[k] = (float)(exp((double)(z[k] - top)) / sum);
        }
        start += rows;
    }
}

/* Adds to nll[row_doc[b]] the negative log-likelihood of the targets of row b of the batch just run
 * (out), from its step row_from[b] on: the logits of the valid rows a slice at a time, log-softmax at the
 * target. */
/* The logits of the `filled` gathered rows, each row's negative log-likelihood of its target added to
 * its document's. */
static void score_slice(reel_predictor *p, const reel_output *out, size_t filled, const size_t *doc_of,
                        const size_t *target_of, double *nll) {
    size_t D = out->features_dim, V = p->model->num_outputs;
    reel_linear_forward(p->logits, p->rows, out->weight, out->bias, filled, D, V);
    for (size_t k = 0; k < filled; k++) {
        const float *z = p->logits + k * V;
        float top = z[0];
        for (size_t v = 1; v < V; v++) top = z[v] > top ? z[v] : top;
        double sum = 0;
        for (size_t v = 0; v < V; v++) sum += exp((double)(z[v] - top));
        nll[doc_of[k]] += log(sum) + (double)top - (double)z[target_of[k]];
    }
}

static void score_rows(reel_predictor *p, const reel_output *out, const size_t *row_doc, const size_t *row_from,
                       double *nll) {
    size_t D = out->features_dim, V = p->model->num_outputs;
    if (!p->logits) {
        p->logits = reel_malloc((size_t)SCORE_SLICE * V * sizeof *p->logits);
        p->rows = reel_malloc((size_t)SCORE_SLICE * D * sizeof *p->rows);
    }
    size_t doc_of[SCORE_SLICE], target_of[SCORE_SLICE], filled = 0;
    for (size_t b = 0; b < out->B; b++)
        for (size_t t = row_from[b]; t < out->T; t++) {
            size_t row = reel_output_row(out, t, b);
            if (!out->row_mask[row]) continue;
            memcpy(p->rows + filled * D, out->features + row * D, D * sizeof(float));
            doc_of[filled] = row_doc[b];
            target_of[filled] = p->buffer.batch.targets[p->buffer.batch.offsets[b] + t];
            if (++filled == SCORE_SLICE) {
                score_slice(p, out, filled, doc_of, target_of, nll);
                filled = 0;
            }
        }
    if (filled) score_slice(p, out, filled, doc_of, target_of, nll);
}

/* Runs the windows gathered so far (rows of them) and adds their scores. */
static void run_windows(reel_predictor *p, size_t rows, const size_t *row_doc, const size_t *row_from, double *nll) {
    if (rows == 0) return;
    reel_batch_finish(&p->buffer);
    reel_output out;
    p->model->ops->forward(p->model, &p->buffer.batch, 0, &out, &p->comm);
    score_rows(p, &out, row_doc, row_from, nll);
}

/* A model of bounded context: every document's predictions (<eod> d_1 ... d_n <eod>) in the windows of
 * reel/windows.h at the default stride, one row per window from the start state, each scoring only its
 * own predictions; up to max_batch windows per forward, and no more steps than the evaluation's budget
 * (as evaluation batches them), in the documents' order. */
static void score_windows(reel_predictor *p, const reel_document *docs, size_t n, double *nll) {
    reel_model *model = p->model;
    size_t W = model->max_context, S = reel_windows_default_stride(W), V = model->vocab_size;
    size_t rows_cap = REEL_EVAL_STEP_BUDGET / W < p->max_batch ? REEL_EVAL_STEP_BUDGET / W : p->max_batch;
    if (rows_cap == 0) rows_cap = 1;
    size_t *row_doc = reel_malloc(rows_cap * sizeof *row_doc), *row_from = reel_malloc(rows_cap * sizeof *row_from);
    size_t rows = 0;
    for (size_t i = 0; i < n; i++) {
        const reel_document *d = &docs[i];
        size_t predictions = d->length + 1, windows = reel_windows_count(predictions, W, S);
        for (size_t k = 0; k < windows; k++) {
            if (rows == rows_cap) {
                run_windows(p, rows, row_doc, row_from, nll);
                rows = 0;
            }
            reel_window w = reel_windows_at(predictions, W, S, k);
            if (rows == 0) reel_batch_begin(&p->buffer, rows_cap, 0, 0);
            uint32_t *inputs, *targets;
            reel_batch_append(&p->buffer, w.end - w.start, i, &inputs, &targets);
            for (size_t q = w.start; q < w.end; q++) {
                /* input q of <eod> d_1 ... d_n, target q + 1 of d_1 ... d_n <eod> */
                inputs[q - w.start] = q == 0 ? REEL_TOKEN_EOD : d->ids[q - 1] < V ? d->ids[q - 1] : REEL_TOKEN_UNK;
                targets[q - w.start] = q == d->length ? REEL_TOKEN_EOD : d->ids[q] < V ? d->ids[q] : REEL_TOKEN_UNK;
            }
            row_doc[rows] = i;
            row_from[rows] = w.score_from - w.start;
            rows++;
        }
    }
    run_windows(p, rows, row_doc, row_from, nll);
    free(row_doc);
    free(row_from);
}

void reel_score_documents(reel_predictor *p, const reel_document *docs, size_t n, double *nll, size_t *tokens) {
    reel_model *model = p->model;
    REEL_CHECK(model->output == REEL_OUTPUT_TOKEN, NULL, "a likelihood from model type %s", model->type);
    for (size_t i = 0; i < n; i++) {
        nll[i] = 0;
        tokens[i] = docs[i].length + 1;
    }
    if (model->max_context > 0) {
        score_windows(p, docs, n, nll);
        return;
    }
    size_t count = sort_by_length(p, docs, n, 1);
    size_t *row_doc = reel_malloc((p->max_batch ? p->max_batch : 1) * sizeof *row_doc);
    size_t *row_from = reel_calloc(p->max_batch ? p->max_batch : 1, sizeof *row_from); /* whole documents */
    for (size_t start = 0; start < count;) {
        size_t rows = reel_eval_batch_rows(p->order, count, start, p->max_batch);
        fill_batch(p, docs, start, rows, 1);
        reel_output out;
        model->ops->forward(model, &p->buffer.batch, 0, &out, &p->comm);
        for (size_t r = 0; r < rows; r++) row_doc[r] = p->order[start + r].index;
        score_rows(p, &out, row_doc, row_from, nll);
        start += rows;
    }
    free(row_doc);
    free(row_from);
}
