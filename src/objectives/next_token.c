/* Next-token prediction: a language model learns the token that follows every token of its training
 * text, the documents of [objective] train_splits (IMDb: train, valid and unsup, all 75,000 training
 * reviews). A document is read as <eod> d_1 ... d_n <eod>: the leading <eod> lets the model learn how
 * documents begin (and lets generation start from nothing), the trailing one how they end.
 *
 * Two samplers, both functions of (seed, epoch, step) alone, so any number of ranks trains the same
 * model and a checkpoint resumes on any world size:
 *   window  (the course's) every document once per epoch, in a seeded order, batch_size documents a step;
 *           from each, a random window of seq_len predictions (seq_len + 1 tokens), drawn from (seed,
 *           epoch, document); a shorter document is taken whole. No state crosses windows.
 *   stream  the documents of the epoch's order joined into one token stream, cut into batch_size
 *           parallel streams of equal length; step k reads the k-th window of seq_len tokens of every
 *           stream, and each stream starts from the recurrent state its previous window ended in
 *           (truncated backpropagation through time). The states are part of the checkpoint, per stream,
 *           so a resumed run continues every stream exactly, on any number of ranks.
 * The loss is the mean over the predictions of the global batch. Evaluation reads whole documents from
 * the zero state (a model of bounded max_context: in sliding windows of reel/windows.h, each from the zero
 * state, every prediction scored once) with the full softmax: loss, perplexity, next-token accuracy, and the perplexity of the
 * unigram distribution of the training text (vocab.txt's counts) on the same tokens, as a baseline. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reel/data.h"
#include "reel/layers.h"
#include "reel/objective.h"
#include "reel/rng.h"
#include "reel/windows.h"

/* SLICE_ROWS: rows of logits the decoder makes at a time (512 x 8,003 floats = 16 MB); from 256 to 4,096
 * the course LM's step time changes by less than the run-to-run noise. */
enum { MAX_SPLITS = 8, SLICE_ROWS = 512 };

typedef struct nt_options {
    char sampler[REEL_NAME_MAX];
    char train_splits[REEL_LIST_MAX];
    char eval_split[REEL_NAME_MAX];
    size_t eval_docs;
    char softmax[REEL_NAME_MAX];
    size_t sampled;
} nt_options;

static const char *const samplers[] = {"window", "stream", NULL};
static const char *const softmaxes[] = {"full", "sampled", NULL};
static const reel_key nt_keys[] = {
    REEL_KEY_CHOICE_OF(nt_options, "objective", "sampler", sampler, "window", samplers,
                       "window: a random window of [data] seq_len predictions per document and epoch; stream: the "
                       "documents joined into batch_size streams, read in consecutive windows with the state carried"),
    REEL_KEY_STRING_OF(nt_options, "objective", "train_splits", train_splits, "train",
                       "comma-separated token files of the data directory to train on (IMDb: train,valid,unsup)"),
    REEL_KEY_STRING_OF(nt_options, "objective", "eval_split", eval_split, "valid",
                       "held-out token file evaluated during training and at the end (IMDb: test)"),
    REEL_KEY_SIZE_OF(nt_options, "objective", "eval_docs", eval_docs, "0", 0, 0,
                     "evaluate on the first eval_docs documents during training (0: all); the end uses all"),
    REEL_KEY_CHOICE_OF(nt_options, "objective", "softmax", softmax, "full", softmaxes,
                       "training loss: full softmax over the vocabulary, or sampled softmax over `sampled` candidates "
                       "(cheaper; its training loss is an estimate, not the full softmax's; evaluation always uses the "
                       "full softmax)"),
    REEL_KEY_SIZE_OF(nt_options, "objective", "sampled", sampled, "1024", REEL_BOUND_MIN, 1,
                     "sampled softmax: candidate classes per step, drawn log-uniformly over the ids"),
};
static const reel_key_table nt_key_table = {nt_keys, sizeof nt_keys / sizeof nt_keys[0], sizeof(nt_options)};

enum { SUM_LOSS, SUM_CORRECT, SUM_TOKENS, NUM_SUMS };

static const reel_series train_series[] = {
    {"loss", REEL_COLUMN_F64, 0, 0, 0},
    {"perplexity", REEL_COLUMN_F64, 0, 0, 0},
    {"accuracy", REEL_COLUMN_F64, 0, 1, 0},
    {"tokens_per_s", REEL_COLUMN_F64, 0, 0, 0},
    {"model_gflops", REEL_COLUMN_F64, 0, 0, 1}, /* tokens/s x the model's FLOP per token; NaN when not stated */
    {"mfu", REEL_COLUMN_F64, 0, 1, 1},           /* model_gflops / (ranks x [train] peak_gflops); NaN without it */
};

enum { EV_LOSS, EV_PERPLEXITY, EV_ACCURACY, EV_TOKENS, EV_UNIGRAM, EV_BITS_PER_BYTE, EV_WORD_PERPLEXITY, EV_COUNT };
static const reel_series eval_series[] = {
    {"loss", REEL_COLUMN_F64, -1, 0, 0},
    {"perplexity", REEL_COLUMN_F64, -1, 0, 0},
    {"accuracy", REEL_COLUMN_F64, 1, 1, 0},
    {"tokens", REEL_COLUMN_U64, 0, 0, 0},
    {"unigram_perplexity", REEL_COLUMN_F64, 0, 0, 0},
    /* measures that do not depend on the tokenizer (see nt_evaluate) */
    {"bits_per_byte", REEL_COLUMN_F64, -1, 0, 1},
    {"word_perplexity", REEL_COLUMN_F64, -1, 0, 1},
};

/* The training documents: several token files seen as one numbered list. */
typedef struct corpus {
    reel_tokfile *files[MAX_SPLITS];
    uint64_t first[MAX_SPLITS + 1]; /* global index of each file's first document */
    size_t num_files;
    uint64_t num_docs;
} corpus;

typedef struct {
    const reel_config *cfg;
    const nt_options *o;
    const reel_vocab *vocab;
    corpus train;
    int stream;          /* the stream sampler */
    size_t seq_len;      /* predictions per window */
    uint64_t *order;     /* (num_docs) the epoch's order */
    /* stream sampler */
    uint64_t *start;     /* (num_docs) position in the stream of each document of the order, after its <eod> */
    uint64_t stream_length; /* predictions per stream */
    size_t streams, local_begin, local_streams;
    float *state;        /* (local_streams, state_width) */
    /* a step */
    reel_batch_buffer buffer;
    reel_batch_buffer micro; /* a micro-batch of buffer's rows (gradient accumulation) */
    uint32_t *tm_targets;  /* (T * B) the targets in the output's row order */
    size_t tm_capacity;
    float *dfeatures;      /* (T * B, D) */
    size_t dfeatures_capacity;
    float *scratch;        /* decoder slices */
    size_t scratch_capacity;
    double *unigram_log;   /* (V) log-probabilities of the unigram baseline; NULL without counts */
    int sampled;           /* the sampled softmax in training */
    uint8_t *eval_mask;    /* (T * B) the rows an evaluation scores, when windows overlap */
    size_t eval_mask_capacity;
    size_t *score_from;    /* (rows) per row of a windowed evaluation batch, the first step it scores */
    size_t score_from_capacity;
    uint32_t *candidates;  /* (sampled) */
    float *log_expected;   /* (sampled) */
} nt_impl;

/* ---- data ---- */

static uint32_t model_id(uint32_t id, size_t vocab_limit) { return id < vocab_limit ? id : REEL_TOKEN_UNK; }

static int corpus_open(corpus *c, const reel_config *cfg, const reel_vocab *vocab, const char *list, reel_error *err) {
    memset(c, 0, sizeof *c);
    char names[MAX_SPLITS][REEL_NAME_MAX];
    int count = reel_config_split_list(list, "[objective] train_splits", names, MAX_SPLITS, err);
    if (count < 0) return -1;
    if (count == 0) return reel_fail(err, "[objective] train_splits is empty: name the token files to train on");
    for (int i = 0; i < count; i++) {
        reel_error why = {{0}};
        if (reel_open_split(&c->files[i], cfg, vocab, names[i], 1, &why) != 0)
            return reel_fail(err, "%s (needed by [objective] train_splits = %s)", why.message, list);
        c->num_files++;
        c->first[i + 1] = c->first[i] + reel_tokfile_info(c->files[i])->num_docs;
    }
    c->num_docs = c->first[c->num_files];
    if (c->num_docs == 0) return reel_fail(err, "[objective] train_splits = %s holds no documents", list);
    return 0;
}

static void corpus_close(corpus *c) {
    for (size_t i = 0; i < c->num_files; i++) reel_tokfile_close(c->files[i]);
    memset(c, 0, sizeof *c);
}

static size_t corpus_file(const corpus *c, uint64_t doc) {
    size_t f = 0;
    while (doc >= c->first[f + 1]) f++;
    return f;
}

static size_t corpus_length(const corpus *c, uint64_t doc) {
    size_t f = corpus_file(c, doc);
    return reel_tokfile_doc_length(c->files[f], doc - c->first[f]);
}

/* The ids of document doc; fatal on a bad document (every rank stops, none waits). */
static const uint32_t *corpus_doc(const corpus *c, uint64_t doc, size_t *length) {
    size_t f = corpus_file(c, doc);
    const uint32_t *ids;
    int32_t label;
    reel_error err = {{0}};
    if (reel_tokfile_doc(c->files[f], doc - c->first[f], &ids, length, &label, &err) != 0)
        reel_die(&err, "re-run `reel prep`, or check the file with `reel inspect`");
    return ids;
}

/* Token i of <eod> d_1 ... d_n <eod> (i <= n + 1). */
static uint32_t framed(const uint32_t *ids, size_t n, size_t i, size_t vocab_limit) {
    return i == 0 || i == n + 1 ? REEL_TOKEN_EOD : model_id(ids[i - 1], vocab_limit);
}

/* ---- the window sampler ---- */

/* Predictions from a document of n tokens: seq_len of its n + 1, or all of them. */
static size_t window_predictions(const nt_impl *t, size_t n) {
    return t->seq_len && n + 1 > t->seq_len ? t->seq_len : n + 1;
}

/* Documents in global batch `step` of the window sampler: batch_size, fewer in the last one. */
static size_t window_batch_documents(const nt_impl *t, uint64_t step) {
    uint64_t left = t->train.num_docs - step * t->cfg->train.batch_size;
    return (size_t)(left < t->cfg->train.batch_size ? left : t->cfg->train.batch_size);
}

static void gather_windows(nt_impl *t, reel_objective *obj, uint64_t epoch, uint64_t step, size_t *global_tokens) {
    const reel_config *cfg = t->cfg;
    uint64_t begin = step * cfg->train.batch_size;
    size_t global_rows = window_batch_documents(t, step);
    size_t local_begin, local_rows;
    reel_rank_share(global_rows, obj->comm.rank, obj->comm.size, &local_begin, &local_rows);
    *global_tokens = 0;
    for (size_t i = 0; i < global_rows; i++) *global_tokens += window_predictions(t, corpus_length(&t->train, t->order[begin + i]));
    size_t V = obj->model->vocab_size;
    reel_batch_begin(&t->buffer, local_rows, epoch, step);
    for (size_t i = 0; i < local_rows; i++) {
        uint64_t doc = t->order[begin + local_begin + i];
        size_t n;
        const uint32_t *ids = corpus_doc(&t->train, doc, &n);
        size_t count = window_predictions(t, n), first = 0;
        if (count < n + 1) {
            uint32_t words[4];
            reel_rng_block(words, obj->model->seed, REEL_RNG_WINDOW, (uint32_t)epoch, (uint32_t)doc, (uint32_t)(doc >> 32));
            first = (size_t)reel_rng_below(words[0], words[1], n + 1 - count + 1);
        }
        uint32_t *inputs, *targets;
        reel_batch_append(&t->buffer, count, doc, &inputs, &targets);
        for (size_t k = 0; k < count; k++) {
            inputs[k] = framed(ids, n, first + k, V);
            targets[k] = framed(ids, n, first + k + 1, V);
        }
    }
    reel_batch_finish(&t->buffer);
}

/* ---- the stream sampler ---- */

/* Lays out the epoch's stream: document order[i] starts (after the <eod> before it) at start[i]. */
static void layout_streams(nt_impl *t) {
    uint64_t position = 1; /* position 0 is the stream's leading <eod> */
    for (uint64_t i = 0; i < t->train.num_docs; i++) {
        t->start[i] = position;
        position += corpus_length(&t->train, t->order[i]) + 1;
    }
}

/* Token q of the epoch's stream. */
static uint32_t stream_token(const nt_impl *t, uint64_t q, size_t vocab_limit, uint64_t *cached_doc) {
    if (q == 0) return REEL_TOKEN_EOD;
    /* the document holding q: the last one starting at or before it */
    uint64_t lo = 0, hi = t->train.num_docs;
    if (*cached_doc < hi && t->start[*cached_doc] <= q &&
        (*cached_doc + 1 == hi || t->start[*cached_doc + 1] > q)) {
        lo = *cached_doc;
    } else {
        while (hi - lo > 1) {
            uint64_t mid = lo + (hi - lo) / 2;
            if (t->start[mid] <= q) lo = mid;
            else hi = mid;
        }
        *cached_doc = lo;
    }
    size_t n;
    const uint32_t *ids = corpus_doc(&t->train, t->order[lo], &n);
    uint64_t offset = q - t->start[lo];
    return offset < n ? model_id(ids[offset], vocab_limit) : REEL_TOKEN_EOD;
}

static void gather_streams(nt_impl *t, reel_objective *obj, uint64_t epoch, uint64_t step, size_t *global_tokens) {
    uint64_t from = step * t->seq_len;
    size_t count = (size_t)(t->stream_length - from < t->seq_len ? t->stream_length - from : t->seq_len);
    *global_tokens = count * t->streams;
    size_t V = obj->model->vocab_size;
    reel_batch_begin(&t->buffer, t->local_streams, epoch, step);
    for (size_t i = 0; i < t->local_streams; i++) {
        size_t s = t->local_begin + i;
        uint64_t base = (uint64_t)s * t->stream_length + from, cached = UINT64_MAX;
        uint32_t *inputs, *targets;
        reel_batch_append(&t->buffer, count, step * t->streams + s, &inputs, &targets);
        for (size_t k = 0; k < count; k++) {
            inputs[k] = stream_token(t, base + k, V, &cached);
            targets[k] = stream_token(t, base + k + 1, V, &cached);
        }
    }
    reel_batch_finish(&t->buffer);
    if (obj->model->state_width == 0) return; /* a model without recurrent state: nothing carries over */
    if (step == 0) memset(t->state, 0, t->local_streams * obj->model->state_width * sizeof(float));
    t->buffer.batch.state = t->state;
}

/* ---- the loss ---- */

static void *grow(void *buffer, size_t *capacity, size_t needed, size_t element) {
    if (needed <= *capacity) return buffer;
    free(buffer);
    *capacity = needed;
    return reel_malloc(needed * element);
}

/* Runs the model on buf->batch; returns the loss sum over its predictions and adds the right ones to
 * *correct (not under the sampled softmax, which never sees all the logits); training: backward with
 * the gradient of loss * scale. score_from (B, evaluation only): NULL, or the first step of each row that
 * counts (the steps before it are left context, scored by an earlier window). */
static double run_batch(nt_impl *t, reel_objective *obj, const reel_batch *batch, int training, float scale,
                        double *correct, const size_t *score_from) {
    reel_model *model = obj->model;
    reel_output out;
    model->ops->forward(model, batch, training, &out, &obj->comm);
    size_t N = out.rows, D = out.features_dim, B = out.B;
    if (score_from) {
        t->eval_mask = grow(t->eval_mask, &t->eval_mask_capacity, N ? N : 1, sizeof *t->eval_mask);
        for (size_t k = 0; k < out.T; k++)
            for (size_t b = 0; b < B; b++) {
                size_t row = reel_output_row(&out, k, b);
                t->eval_mask[row] = k >= score_from[b] && out.row_mask[row];
            }
        out.row_mask = t->eval_mask;
    }
    t->tm_targets = grow(t->tm_targets, &t->tm_capacity, N ? N : 1, sizeof *t->tm_targets);
    for (size_t b = 0; b < B; b++) {
        size_t length = batch->offsets[b + 1] - batch->offsets[b];
        for (size_t k = 0; k < out.T; k++)
            t->tm_targets[reel_output_row(&out, k, b)] = k < length ? batch->targets[batch->offsets[b] + k] : 0;
    }
    int sampled = training && t->sampled;
    size_t S = t->o->sampled;
    t->scratch = grow(t->scratch, &t->scratch_capacity,
                      sampled ? reel_sampled_scratch_floats(SLICE_ROWS, D, S) : reel_decoder_scratch_floats(SLICE_ROWS, D, out.width),
                      sizeof(float));
    float *dfeatures = NULL;
    if (training) {
        t->dfeatures = grow(t->dfeatures, &t->dfeatures_capacity, N * D > 0 ? N * D : 1, sizeof(float));
        dfeatures = t->dfeatures;
    }
    if (sampled) {
        /* one candidate set for the whole global batch: every rank draws the same from (epoch, step) */
        reel_sampled_candidates(t->candidates, t->log_expected, S, out.width, model->seed, batch->epoch, batch->step);
        double loss = reel_decoder_sampled(dfeatures, out.dweight, out.dbias, out.features, out.weight, out.bias,
                                           t->tm_targets, out.row_mask, N, D, out.width, t->candidates,
                                           t->log_expected, S, scale, t->scratch, SLICE_ROWS);
        model->ops->backward(model, batch, dfeatures, &obj->comm);
        return loss;
    }
    double loss = reel_decoder_softmax(dfeatures, training ? out.dweight : NULL, training ? out.dbias : NULL, correct,
                                       out.features, out.weight, out.bias, t->tm_targets, out.row_mask, N, D, out.width,
                                       scale, t->scratch, SLICE_ROWS);
    if (training) model->ops->backward(model, batch, dfeatures, &obj->comm);
    return loss;
}

/* Gradient accumulation ([train] accumulate = K): the rank's share of the batch runs as K micro-batches
 * of consecutive rows, each forward and backward adding to the same gradients with the large batch's
 * scale, so the step is the large batch's up to summation order (a model's batch statistics excepted:
 * they are the micro-batch's). Random numbers are keyed by sample and step, never by position in a
 * batch, so they are the large batch's too. The exchange's hooks stay off until the last micro-batch,
 * whose backward overlaps the exchange as a single pass would. Every rank runs K micro-batches, an
 * empty one too, so collectives inside a forward stay matched. */
static double run_micro_batches(nt_impl *t, reel_objective *obj, float scale, double *correct) {
    const reel_batch *whole = &t->buffer.batch;
    size_t K = t->cfg->train.accumulate, B = whole->size, width = obj->model->state_width;
    reel_store *params = &obj->model->params;
    reel_grad_hooks hooks = params->hooks;
    double loss = 0;
    for (size_t k = 0; k < K; k++) {
        size_t r0 = k * B / K, r1 = (k + 1) * B / K;
        reel_batch_begin(&t->micro, r1 - r0, whole->epoch, whole->step);
        for (size_t r = r0; r < r1; r++) {
            size_t n = whole->offsets[r + 1] - whole->offsets[r];
            uint32_t *ids, *targets;
            reel_batch_append(&t->micro, n, whole->sample_index[r], &ids, &targets);
            memcpy(ids, whole->ids + whole->offsets[r], n * sizeof *ids);
            memcpy(targets, whole->targets + whole->offsets[r], n * sizeof *targets);
        }
        reel_batch_finish(&t->micro);
        t->micro.batch.state = whole->state ? whole->state + r0 * width : NULL;
        params->hooks = k + 1 < K ? (reel_grad_hooks){0} : hooks;
        loss += run_batch(t, obj, &t->micro.batch, 1, scale, correct, NULL);
    }
    params->hooks = hooks;
    return loss;
}

static void nt_begin_epoch(reel_objective *obj, uint64_t epoch) {
    nt_impl *t = obj->impl;
    reel_shuffle(t->order, t->train.num_docs, obj->model->seed, epoch);
    if (t->stream) layout_streams(t);
}

static uint64_t nt_train_step(reel_objective *obj, uint64_t epoch, uint64_t step, double *sums) {
    nt_impl *t = obj->impl;
    size_t global_tokens = 0;
    if (t->stream)
        gather_streams(t, obj, epoch, step, &global_tokens);
    else
        gather_windows(t, obj, epoch, step, &global_tokens);
    size_t local_tokens = t->buffer.offsets[t->buffer.batch.size];
    double correct = 0;
    float scale = global_tokens ? 1.0f / (float)global_tokens : 0.0f;
    if (t->cfg->train.accumulate <= 1)
        sums[SUM_LOSS] += run_batch(t, obj, &t->buffer.batch, 1, scale, &correct, NULL);
    else
        sums[SUM_LOSS] += run_micro_batches(t, obj, scale, &correct);
    sums[SUM_CORRECT] += correct;
    sums[SUM_TOKENS] += (double)local_tokens;
    return t->stream ? t->streams : window_batch_documents(t, step);
}

static void nt_train_values(const reel_objective *obj, const double *sums, double seconds, reel_value *values) {
    double tokens = sums[SUM_TOKENS], loss = tokens > 0 ? sums[SUM_LOSS] / tokens : 0;
    values[0].f = loss;
    values[1].f = exp(loss);
    /* the sampled softmax never sees all the logits: no accuracy then */
    values[2].f = ((const nt_impl *)obj->impl)->sampled ? NAN : tokens > 0 ? sums[SUM_CORRECT] / tokens : 0;
    values[3].f = tokens / (seconds > 0 ? seconds : 1e-9);
    reel_model_flop_rates(obj, values[3].f, ((const nt_impl *)obj->impl)->cfg->train.peak_gflops, &values[4].f,
                          &values[5].f);
}

/* ---- evaluation ---- */

/* The unigram distribution of the training text over the model's ids: vocab.txt's counts, ids past the
 * model's vocabulary folded into <unk>, and one <eod> per training document. */
static double *unigram_log_probs(const reel_vocab *vocab, size_t V, uint64_t documents) {
    double total = 0;
    for (size_t i = 0; i < vocab->size; i++) total += (double)vocab->counts[i];
    if (total <= 0) return NULL; /* a checkpoint's vocabulary carries no counts */
    double *logp = reel_calloc(V, sizeof *logp), unk = 0;
    for (size_t i = V; i < vocab->size; i++) unk += (double)vocab->counts[i];
    total += (double)documents;
    for (size_t i = 0; i < V && i < vocab->size; i++) {
        double count = (double)vocab->counts[i] + (i == REEL_TOKEN_UNK ? unk : 0) + (i == REEL_TOKEN_EOD ? (double)documents : 0);
        logp[i] = count > 0 ? log(count / total) : log(0.5 / total);
    }
    return logp;
}

/* Evaluation of a model of bounded context: the predictions of every document (<eod> d_1 ... d_n <eod>,
 * cut to max_tokens) in the windows of reel/windows.h at the default stride, each window a row read from
 * the zero state, scoring only its own predictions; batches of at most batch_rows windows and
 * REEL_EVAL_STEP_BUDGET steps. Adds to sums as the whole-document path does. */
static void evaluate_windows(nt_impl *t, reel_objective *obj, reel_tokfile *file, const reel_doc_length *order,
                             size_t count, size_t batch_rows, size_t max_tokens, double *sums) {
    size_t W = obj->model->max_context, S = reel_windows_default_stride(W), V = obj->model->vocab_size;
    size_t rows_cap = REEL_EVAL_STEP_BUDGET / W;
    if (rows_cap > batch_rows) rows_cap = batch_rows;
    if (rows_cap == 0) rows_cap = 1;
    t->score_from = grow(t->score_from, &t->score_from_capacity, rows_cap, sizeof *t->score_from);
    reel_error err = {{0}};
    size_t rows = 0;
    for (size_t d = 0; d < count; d++) {
        const uint32_t *ids;
        size_t n;
        int32_t label;
        if (reel_tokfile_doc(file, order[d].index, &ids, &n, &label, &err) != 0)
            reel_die(&err, "re-run `reel prep`, or check the file with `reel inspect`");
        int cut = max_tokens && n > max_tokens;
        if (cut) n = max_tokens;
        size_t predictions = n + 1 - (size_t)cut, windows = reel_windows_count(predictions, W, S);
        for (size_t k = 0; k < windows; k++) {
            reel_window w = reel_windows_at(predictions, W, S, k);
            if (rows == 0) reel_batch_begin(&t->buffer, rows_cap, 0, 0);
            uint32_t *inputs, *targets;
            reel_batch_append(&t->buffer, w.end - w.start, order[d].index, &inputs, &targets);
            for (size_t p = w.start; p < w.end; p++) {
                inputs[p - w.start] = framed(ids, n, p, V);
                targets[p - w.start] = framed(ids, n, p + 1, V);
                if (p >= w.score_from && t->unigram_log) sums[3] -= t->unigram_log[targets[p - w.start]];
            }
            sums[2] += (double)(w.end - w.score_from);
            t->score_from[rows++] = w.score_from - w.start;
            if (rows == rows_cap) {
                reel_batch_finish(&t->buffer);
                sums[0] += run_batch(t, obj, &t->buffer.batch, 0, 1.0f, &sums[1], t->score_from);
                rows = 0;
            }
        }
    }
    if (rows > 0) {
        reel_batch_finish(&t->buffer);
        sums[0] += run_batch(t, obj, &t->buffer.batch, 0, 1.0f, &sums[1], t->score_from);
    }
}

/* Whether max_tokens cuts any of the first docs documents of file. */
static int any_cut(reel_tokfile *file, uint64_t docs, size_t max_tokens) {
    for (uint64_t d = 0; max_tokens && d < docs; d++)
        if (reel_tokfile_doc_length(file, d) > max_tokens) return 1;
    return 0;
}

static void nt_evaluate(reel_objective *obj, const reel_eval_request *request, reel_value *values) {
    nt_impl *t = obj->impl;
    reel_model *model = obj->model;
    reel_error err = {{0}};
    reel_tokfile *file;
    if (reel_open_split(&file, t->cfg, t->vocab, request->split, 1, &err) != 0)
        reel_die(&err, "evaluate on a split made by the same `reel prep` run");
    uint64_t docs = reel_tokfile_info(file)->num_docs;
    if (request->max_docs && request->max_docs < docs) docs = request->max_docs;
    size_t count, V = model->vocab_size, max_tokens = request->max_tokens;
    size_t batch_rows = request->batch_rows ? request->batch_rows : 1;
    reel_doc_length *order = reel_eval_order(file, docs, max_tokens, 1, &obj->comm, &count); /* + <eod> */
    double sums[4] = {0}; /* loss, correct, tokens, unigram loss */
    if (model->max_context > 0) {
        evaluate_windows(t, obj, file, order, count, batch_rows, max_tokens, sums);
        count = 0;
    }
    for (size_t start = 0; start < count;) {
        size_t rows = reel_eval_batch_rows(order, count, start, batch_rows);
        reel_batch_begin(&t->buffer, rows, 0, 0);
        for (size_t r = 0; r < rows; r++) {
            const uint32_t *ids;
            size_t n;
            int32_t label;
            if (reel_tokfile_doc(file, order[start + r].index, &ids, &n, &label, &err) != 0)
                reel_die(&err, "re-run `reel prep`, or check the file with `reel inspect`");
            int cut = max_tokens && n > max_tokens;
            if (cut) n = max_tokens;
            uint32_t *inputs, *targets;
            reel_batch_append(&t->buffer, n + 1 - cut, order[start + r].index, &inputs, &targets);
            for (size_t k = 0; k + cut < n + 1; k++) {
                inputs[k] = framed(ids, n, k, V);
                targets[k] = framed(ids, n, k + 1, V);
                if (t->unigram_log) sums[3] -= t->unigram_log[targets[k]];
            }
            sums[2] += (double)(n + 1 - cut);
        }
        reel_batch_finish(&t->buffer);
        sums[0] += run_batch(t, obj, &t->buffer.batch, 0, 1.0f, &sums[1], NULL);
        start += rows;
    }
    reel_comm_sum_doubles(&obj->comm, sums, 4);
    double tokens = sums[2], loss = tokens > 0 ? sums[0] / tokens : 0;
    values[EV_LOSS].f = loss;
    values[EV_PERPLEXITY].f = exp(loss);
    values[EV_ACCURACY].f = tokens > 0 ? sums[1] / tokens : 0;
    values[EV_TOKENS].u = (uint64_t)tokens;
    values[EV_UNIGRAM].f = t->unigram_log && tokens > 0 ? exp(sums[3] / tokens) : NAN;
    /* Per byte and per word of the text, so models of different tokenizers (words, pieces, another piece
     * model) compare like for like: the total loss (nats over every prediction, each document's end
     * included) over the UTF-8 bytes of the documents' normalised text, in bits, and exp of it over their
     * word tokens. prep.ini records both per split, so they are known when the evaluation covers the
     * whole split whole (every document, none cut by max_tokens); otherwise NaN. */
    values[EV_BITS_PER_BYTE].f = values[EV_WORD_PERPLEXITY].f = NAN;
    uint64_t text_bytes, text_words;
    if (docs == reel_tokfile_info(file)->num_docs && !any_cut(file, docs, max_tokens) &&
        reel_prep_split_text(t->cfg->data.dir, request->split, &text_bytes, &text_words) == 0) {
        if (text_bytes) values[EV_BITS_PER_BYTE].f = sums[0] / log(2.0) / (double)text_bytes;
        if (text_words) values[EV_WORD_PERPLEXITY].f = exp(sums[0] / (double)text_words);
    }
    free(order);
    reel_tokfile_close(file);
}

static void nt_describe(const reel_objective *obj, reel_metrics_table table, const reel_value *v, reel_buf *out) {
    if (table == REEL_METRICS_TRAIN) {
        reel_buf_printf(out, "loss %.4f ppl %.1f acc %.2f%% | %.0f tokens/s", v[0].f, v[1].f, 100 * v[2].f, v[3].f);
        if (!isnan(v[4].f)) reel_buf_printf(out, " %.1f GFLOP/s", v[4].f);
        if (!isnan(v[5].f)) reel_buf_printf(out, " MFU %.1f%%", 100 * v[5].f);
        return;
    }
    reel_buf_printf(out, "loss %.4f perplexity %.2f accuracy %.2f%% (%" PRIu64 " tokens; unigram perplexity %.1f)",
                    v[EV_LOSS].f, v[EV_PERPLEXITY].f, 100 * v[EV_ACCURACY].f, v[EV_TOKENS].u, v[EV_UNIGRAM].f);
    if (!isnan(v[EV_BITS_PER_BYTE].f))
        reel_buf_printf(out, "; %.4f bits per byte, word perplexity %.2f", v[EV_BITS_PER_BYTE].f, v[EV_WORD_PERPLEXITY].f);
}

/* ---- the carried state (stream sampler) ---- */

/* counts and displacements, in floats, of every rank's streams */
static void stream_layout(const nt_impl *t, const reel_objective *obj, int *counts, int *displs) {
    size_t width = obj->model->state_width;
    for (int r = 0; r < obj->comm.size; r++) {
        size_t begin, count;
        reel_rank_share(t->streams, r, obj->comm.size, &begin, &count);
        counts[r] = (int)(count * width);
        displs[r] = (int)(begin * width);
    }
}

static void nt_export_state(reel_objective *obj) {
    nt_impl *t = obj->impl;
    if (!t->stream || !obj->model->state_width) return;
    int *counts = reel_malloc((size_t)obj->comm.size * sizeof *counts), *displs = reel_malloc((size_t)obj->comm.size * sizeof *displs);
    stream_layout(t, obj, counts, displs);
    REEL_MPI_CHECK(MPI_Gatherv(t->state, counts[obj->comm.rank], MPI_FLOAT, obj->carried.data, counts, displs, MPI_FLOAT, 0,
                obj->comm.comm));
    free(counts);
    free(displs);
}

static void nt_import_state(reel_objective *obj) {
    nt_impl *t = obj->impl;
    if (!t->stream || !obj->model->state_width) return;
    int *counts = reel_malloc((size_t)obj->comm.size * sizeof *counts), *displs = reel_malloc((size_t)obj->comm.size * sizeof *displs);
    stream_layout(t, obj, counts, displs);
    REEL_MPI_CHECK(MPI_Scatterv(obj->carried.data, counts, displs, MPI_FLOAT, t->state, counts[obj->comm.rank], MPI_FLOAT, 0,
                 obj->comm.comm));
    free(counts);
    free(displs);
}

static void nt_destroy(reel_objective *obj) {
    nt_impl *t = obj->impl;
    corpus_close(&t->train);
    reel_batch_buffer_free(&t->buffer);
    reel_batch_buffer_free(&t->micro);
    free(t->order);
    free(t->start);
    free(t->state);
    free(t->tm_targets);
    free(t->dfeatures);
    free(t->scratch);
    free(t->unigram_log);
    free(t->candidates);
    free(t->eval_mask);
    free(t->score_from);
    free(t->log_expected);
    free(t);
}

static const reel_objective_ops nt_ops = {
    .begin_epoch = nt_begin_epoch,
    .train_step = nt_train_step,
    .train_values = nt_train_values,
    .evaluate = nt_evaluate,
    .describe = nt_describe,
    .export_state = nt_export_state,
    .import_state = nt_import_state,
    .destroy = nt_destroy,
};

static int nt_create(reel_objective **out, const reel_config *cfg, reel_model *model, const reel_vocab *vocab,
                     const reel_comm *comm, size_t max_rows, int for_training, reel_error *err) {
    (void)max_rows;
    const nt_options *o = reel_config_objective_options(cfg);
    reel_objective *obj = reel_calloc(1, sizeof *obj);
    nt_impl *t = reel_calloc(1, sizeof *t);
    obj->impl = t;
    obj->ops = &nt_ops;
    obj->model = model;
    obj->comm = *comm;
    t->cfg = cfg;
    t->o = o;
    t->vocab = vocab;
    t->stream = !strcmp(o->sampler, "stream");
    t->sampled = !strcmp(o->softmax, "sampled");
    if (t->sampled) {
        t->candidates = reel_malloc(o->sampled * sizeof *t->candidates);
        t->log_expected = reel_malloc(o->sampled * sizeof *t->log_expected);
    }
    t->seq_len = cfg->data.seq_len;
    obj->sample_name = t->stream ? "stream" : "document";
    obj->train_series = train_series;
    obj->num_train_series = sizeof train_series / sizeof train_series[0];
    obj->eval_series = eval_series;
    obj->num_eval_series = sizeof eval_series / sizeof eval_series[0];
    obj->num_train_sums = NUM_SUMS;
    obj->best_metric = "perplexity";
    obj->valid_split_code = REEL_SPLIT_TEST;
    if (!for_training) {
        /* evaluation only needs its own split; the training text, when it is there, gives the unigram
         * baseline its <eod> count */
        reel_error ignored = {{0}};
        if (corpus_open(&t->train, cfg, vocab, o->train_splits, &ignored) == 0)
            t->unigram_log = unigram_log_probs(vocab, model->vocab_size, t->train.num_docs);
        corpus_close(&t->train);
        *out = obj;
        return 0;
    }
    if (corpus_open(&t->train, cfg, vocab, o->train_splits, err) != 0) goto fail;
    t->unigram_log = unigram_log_probs(vocab, model->vocab_size, t->train.num_docs);
    reel_tokfile *probe;
    reel_error why = {{0}};
    if (reel_open_split(&probe, cfg, vocab, o->eval_split, 1, &why) != 0) {
        reel_fail(err, "%s (needed by [objective] eval_split = %s)", why.message, o->eval_split);
        goto fail;
    }
    reel_tokfile_close(probe);
    obj->valid_split = o->eval_split;
    obj->valid_docs = o->eval_docs;
    obj->final_split = o->eval_split;
    obj->valid_split_code = !strcmp(o->eval_split, "valid") ? REEL_SPLIT_VALID : !strcmp(o->eval_split, "train") ? REEL_SPLIT_TRAIN : REEL_SPLIT_TEST;
    t->order = reel_malloc(t->train.num_docs * sizeof *t->order);
    if (t->stream) {
        if (t->seq_len == 0) {
            reel_fail(err, "[objective] sampler = stream needs [data] seq_len, the tokens of each window (e.g. 50)");
            goto fail;
        }
        uint64_t tokens = 1;
        for (uint64_t d = 0; d < t->train.num_docs; d++) tokens += corpus_length(&t->train, d) + 1;
        t->streams = cfg->train.batch_size;
        t->stream_length = (tokens - 1) / t->streams;
        if (t->stream_length == 0) {
            reel_fail(err, "[train] batch_size = %zu streams, but the training text has %" PRIu64 " tokens", t->streams, tokens);
            goto fail;
        }
        obj->steps_per_epoch = (t->stream_length + t->seq_len - 1) / t->seq_len;
        t->start = reel_malloc(t->train.num_docs * sizeof *t->start);
        reel_rank_share(t->streams, comm->rank, comm->size, &t->local_begin, &t->local_streams);
        if (model->max_context && t->seq_len > model->max_context) {
            reel_fail(err, "[data] seq_len = %zu is longer than the model's max_context %zu", t->seq_len, model->max_context);
            goto fail;
        }
        if (model->state_width) { /* a model without recurrent state (a Transformer) carries nothing */
            t->state = reel_calloc((t->local_streams ? t->local_streams : 1) * model->state_width, sizeof(float));
            reel_store_init(&obj->carried, 0);
            reel_store_add(&obj->carried, "streams/state", 2, (size_t[]){t->streams, model->state_width});
            reel_store_allocate(&obj->carried);
        }
    } else {
        obj->steps_per_epoch = (t->train.num_docs + cfg->train.batch_size - 1) / cfg->train.batch_size;
    }
    *out = obj;
    return 0;
fail:
    reel_objective_destroy(obj);
    return -1;
}

const reel_objective_kind reel_objective_kind_next_token = {
    "next_token", &nt_key_table, REEL_OUTPUT_TOKEN, NULL, nt_create,
};
