/* Every registered model type, tested by being registered: each type in src/models/registry.c has a tiny
 * configuration in the table below (a test fails when one is missing, so a new model cannot be forgotten),
 * and for each the test runs
 *   - finite differences of a loss against a sample of entries of every parameter tensor, and of the input
 *     perturbation where the model has one (model->input_dim);
 *   - padding invariance: a sequence's evaluation outputs are the same alone and in batches whose other
 *     sequences are longer (so it is padded) and hold other tokens;
 *   - a checkpoint round trip: saved, loaded into a model initialised otherwise, the training state read
 *     back is the one saved, and the parameters, saved state, optimizer slots and evaluation outputs are
 *     identical bit for bit.
 * A type may have more than one tiny configuration (variants, e.g. the GPT with rotary positions and
 * attention dropout): each is checked. The same table drives tests/models_ranks.sh (1 vs 2 ranks):
 * `test_models --types` lists the registered types with their default objective, `test_models --variants`
 * every configuration as "NAME TYPE OBJECTIVE", `test_models --ini NAME` its [model] keys as INI lines.
 * The more specific checks (every option combination, carried state, pooling modes, frozen layers) stay in
 * test_gradcheck.c, test_recurrent.c and test_lm.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reel/catalogue.h"
#include "reel/checkpoint.h"
#include "reel/config.h"
#include "reel/layers.h"
#include "reel/model.h"
#include "reel/optim.h"
#include "fdcheck.h"
#include "config_set.h"

#define SCRATCH_TEMPLATE "/tmp/reel_models_XXXXXX"
#include "scratch_dir.h"

/* The tiny configuration of each model type: [model] keys (beyond type and vocab_size, which the caller
 * sets), space-separated key=value. Each switches on what the type has that draws random numbers or
 * treats padding (dropouts, batch norm over valid steps, pooling, tied weights), so the checks below reach
 * it. */
typedef struct {
    const char *type;
    const char *keys;
    const char *name; /* a variant's name; NULL: the type's first configuration, named as the type */
} tiny_model;

static const tiny_model tiny_models[] = {
    {"bow", "embed_dim=4 hidden_dim=5 batch_norm=true dropout=0.3 word_dropout=0.2", NULL},
    /* n-grams hashed into buckets, with Naive-Bayes scaling */
    {"bow", "embed_dim=4 hidden_dim=5 batch_norm=true dropout=0.3 word_dropout=0.2 ngrams=3 ngram_buckets=7 "
            "nb_scaling=true", "bow_ngrams"},
    /* the linear bag (no hidden layer): NB-weighted logistic regression over distinct words and bigrams */
    {"bow", "embed_dim=2 hidden_dim=0 batch_norm=false dropout=0 word_dropout=0.2 ngrams=2 ngram_buckets=7 "
            "nb_scaling=true binary=true", "bow_linear"},
    {"lstm", "embed_dim=3 hidden_dim=3 num_layers=2 bidirectional=true pooling=max rnn_batch_norm=true "
             "rnn_dropout=0.2 embed_dropout=0.1 head_hidden=4 dropout=0.3", NULL},
    {"gru", "embed_dim=3 hidden_dim=4 pooling=concat rnn_dropout=0.2", NULL}, /* concat: last, max and mean */
    {"rnn", "embed_dim=3 hidden_dim=3 bidirectional=true pooling=last", NULL},
    {"rnn_lm", "embed_dim=3 layer_dims=4,3 tie_weights=true rnn_batch_norm=true rnn_dropout=0.2 input_dropout=0.1 "
           "word_dropout=0.1 weight_dropout=0.2", NULL},
    {"gpt", "embed_dim=8 num_layers=2 num_heads=2 d_ff=12 max_context=16 dropout=0.2", NULL},
    /* widths 2 and 4: the tiny documents include ones shorter than a width (one zero-padded window) */
    {"cnn", "embed_dim=4 widths=2,4 filters=3 dropout=0.3", NULL},
    /* rotary positions (head width 4; a small base, so every pair turns within 16 positions) and attention
     * dropout: no position table. Tied: untied, models_ranks.sh's Adam (eps 1e-8) turns the rounding of
     * the output rows' tiny gradients into steps that part 1 and 2 ranks by up to 2e-5 in 8 steps, beyond
     * its 1e-4 relative tolerance; with SGD they agree within 3e-6 relative, with eps 1e-6 within 1e-4
     * (tests/lib.sh's write_small_gpt_config says why). */
    {"gpt", "embed_dim=8 num_layers=2 num_heads=2 d_ff=12 max_context=16 dropout=0.1 attention_dropout=0.3 "
            "positions=rotary rotary_base=100", "gpt_rotary"},
    /* the encoder classifier: bidirectional, with every dropout it has */
    {"transformer", "embed_dim=8 num_layers=2 num_heads=2 d_ff=12 max_context=16 dropout=0.2 attention_dropout=0.2 "
                    "head_dropout=0.3 pooling=mean", NULL},
    /* causal (a GPT's blocks) with a context of 2: the documents of 4 and 5 tokens are read in 2 and 3
     * windows whose concat-pooled features (last, max, mean) combine; no dropout, which windows refuse in
     * training */
    {"transformer", "embed_dim=8 num_layers=2 num_heads=2 d_ff=12 max_context=2 causal=true pooling=concat",
     "transformer_windows"},
    /* rotary positions (restarting at 0 in each document of a packed batch), bidirectional, max pooling */
    {"transformer", "embed_dim=8 num_layers=2 num_heads=2 d_ff=12 max_context=16 dropout=0.1 attention_dropout=0.3 "
                    "positions=rotary rotary_base=100 pooling=max", "transformer_rotary"},
};
#define NUM_TINY (sizeof tiny_models / sizeof tiny_models[0])

static const char *tiny_name(const tiny_model *tiny) { return tiny->name ? tiny->name : tiny->type; }

/* The configuration named `name` (a type's first one by its type's name, a variant by its own). */
static const tiny_model *tiny_find(const char *name) {
    for (size_t i = 0; i < NUM_TINY; i++)
        if (strcmp(tiny_name(&tiny_models[i]), name) == 0) return &tiny_models[i];
    return NULL;
}

/* Calls set(assignment, ctx) with "model.key=value" for each of the tiny model's keys. */
static void tiny_each_key(const tiny_model *tiny, void (*set)(const char *key, const char *value, void *ctx),
                          void *ctx) {
    const char *p = tiny->keys;
    while (*p) {
        size_t len = strcspn(p, " ");
        char entry[128];
        assert_true(len > 0 && len < sizeof entry);
        memcpy(entry, p, len);
        entry[len] = '\0';
        char *eq = strchr(entry, '=');
        assert_non_null(eq);
        *eq = '\0';
        set(entry, eq + 1, ctx);
        p += len;
        while (*p == ' ') p++;
    }
}

static void set_config_key(const char *key, const char *value, void *ctx) {
    config_set(ctx, "model.%s=%s", key, value);
}

enum { V = 11, SLICE = 4, FD_SAMPLE = 40 };

static void tiny_config(reel_config *cfg, const tiny_model *tiny) {
    reel_config_defaults(cfg);
    config_set(cfg, "model.type=%s", tiny->type);
    config_set(cfg, "model.vocab_size=%d", V);
    tiny_each_key(tiny, set_config_key, cfg);
}

/* The tiny model, initialised from seed; its weights then spread over (-0.9, 0.9) (batch-norm gains and
 * shifts kept) because the initialisers' small values would make every later value tiny and the
 * differences measure little. */
static reel_model *tiny_build(const tiny_model *tiny, reel_config *cfg, uint64_t seed);
static reel_model *tiny_create(const tiny_model *tiny, reel_config *cfg, uint64_t seed) {
    tiny_config(cfg, tiny);
    return tiny_build(tiny, cfg, seed);
}

/* tiny_create's model from a configuration the caller has filled (tiny_config and changes). */
static reel_model *tiny_build(const tiny_model *tiny, reel_config *cfg, uint64_t seed) {
    reel_model *model;
    reel_error err = {{0}};
    if (reel_model_create(&model, cfg, 8, &err) != 0) fail_msg("%s: %s", tiny_name(tiny), err.message);
    model->ops->init(model, seed);
    for (size_t t = 0; t < model->params.num_tensors; t++) {
        reel_tensor_info *info = &model->params.tensors[t];
        if (strstr(info->name, "batchnorm")) continue;
        fill(model->params.data + info->offset, info->count, -0.9f, 0.9f, (uint32_t)(70 + t + 13 * seed));
    }
    /* state that training computes before it starts (the bag of words' Naive-Bayes ratios): spread too,
     * so a weighting forward or backward leaves out shows */
    for (size_t t = 0; t < model->state.num_tensors; t++) {
        reel_tensor_info *info = &model->state.tensors[t];
        if (strstr(info->name, "batchnorm")) continue;
        fill(model->state.data + info->offset, info->count, -1.5f, 1.5f, (uint32_t)(90 + t + 13 * seed));
    }
    return model;
}

/* A batch of four sequences of 4, 2, 5 and 1 tokens (tokens repeat inside and across sequences), with
 * labels for classifiers and next tokens for language models. */
static const uint32_t batch_ids[] = {3, 4, 3, 9, 8, 2, 5, 3, 10, 4, 2, 7};
static const uint32_t batch_targets[] = {4, 3, 9, 1, 2, 2, 3, 10, 4, 6, 7, 5};
static const size_t batch_offsets[] = {0, 4, 6, 11, 12};
static const float batch_labels[] = {1, 0, 1, 0};
static const uint64_t batch_samples[] = {20, 21, 22, 23};

/* ---------------- (a) finite differences ---------------- */
/* The loss: for per-document outputs sum logits . R with fixed random R; for per-token outputs the fused
 * decoder's cross-entropy over every valid step. */
typedef struct {
    reel_model *model;
    reel_batch batch;
    reel_comm comm;
    float *r;          /* (B, K) per-document outputs */
    float *scratch;    /* the decoder's */
    uint32_t tm_targets[64];
    float *dout;       /* (N, K) or (N, D): the gradient handed to backward */
} fd_ctx;

static double model_loss(fd_ctx *c, int with_gradient) {
    reel_output out;
    c->model->ops->forward(c->model, &c->batch, 1, &out, &c->comm);
    if (c->model->output == REEL_OUTPUT_DOCUMENT) {
        size_t n = out.rows * out.width;
        if (with_gradient) memcpy(c->dout, c->r, n * sizeof(float));
        return dot(out.logits, c->r, n);
    }
    assert_true(out.rows <= 64 && out.features_dim <= 64); /* the sizes fd_setup allocated for */
    for (size_t b = 0; b < out.B; b++)
        for (size_t t = 0; t < out.T; t++) {
            size_t length = batch_offsets[b + 1] - batch_offsets[b];
            c->tm_targets[reel_output_row(&out, t, b)] = t < length ? batch_targets[batch_offsets[b] + t] : 0;
        }
    return reel_decoder_softmax(with_gradient ? c->dout : NULL, with_gradient ? out.dweight : NULL,
                                with_gradient ? out.dbias : NULL, NULL, out.features, out.weight, out.bias,
                                c->tm_targets, out.row_mask, out.rows, out.features_dim, out.width, 1.0f, c->scratch,
                                SLICE);
}

static double model_objective(void *p) { return model_loss(p, 0); }

static void fd_setup(fd_ctx *c, reel_model *model) {
    c->model = model;
    reel_comm_self(&c->comm);
    c->batch = (reel_batch){.size = 4, .ids = batch_ids, .offsets = batch_offsets, .sample_index = batch_samples,
                            .epoch = 1, .step = 3};
    if (model->output == REEL_OUTPUT_DOCUMENT)
        c->batch.labels = batch_labels;
    else
        c->batch.targets = batch_targets;
    size_t width = model->num_outputs > 64 ? model->num_outputs : 64;
    c->r = calloc(4 * model->num_outputs, sizeof(float));
    fill(c->r, 4 * model->num_outputs, -1, 1, 30);
    c->scratch = calloc(reel_decoder_scratch_floats(SLICE, 64, V), sizeof(float));
    c->dout = calloc(64 * width, sizeof(float));
}

static void fd_free(fd_ctx *c) { free(c->r), free(c->scratch), free(c->dout); }

static void check_gradients(const tiny_model *tiny) {
    reel_config cfg;
    fd_ctx c = {0};
    fd_setup(&c, tiny_create(tiny, &cfg, 7));
    reel_store *params = &c.model->params;
    memset(params->grad, 0, params->num_floats * sizeof(float));
    model_loss(&c, 1);
    c.model->ops->backward(c.model, &c.batch, c.dout, &c.comm);
    /* fdcheck.h's checks (as compare_model_gradients) with this loss, on FD_SAMPLE entries of each tensor */
    compare_store_gradients(tiny_name(tiny), params, FD_SAMPLE, model_objective, &c);
    if (c.model->input_dim) {
        size_t count = batch_offsets[4] * c.model->input_dim;
        float *delta = calloc(count, sizeof(float)), *input_grad = calloc(count, sizeof(float));
        fill(delta, count, -0.5f, 0.5f, 31);
        c.model->input_delta = delta;
        c.model->input_grad = input_grad;
        model_loss(&c, 1);
        c.model->ops->backward(c.model, &c.batch, c.dout, &c.comm);
        char what[96];
        snprintf(what, sizeof what, "%s input perturbation", tiny->type);
        compare_sampled(what, delta, input_grad, count, FD_SAMPLE, model_objective, &c);
        c.model->input_delta = NULL;
        c.model->input_grad = NULL;
        free(delta), free(input_grad);
    }
    reel_model_destroy(c.model);
    fd_free(&c);
}

static void test_gradients(void **state) {
    (void)state;
    for (size_t i = 0; i < NUM_TINY; i++) check_gradients(&tiny_models[i]);
}

/* ---------------- (a') a batch's gradient is the sum of its parts' ----------------
 * For the GPTs (no batch statistics): the training gradient of the four sequences in one batch equals the
 * sum of those of two batches of two (the sum loss adds), up to rounding: every random mask (residual
 * and attention dropout) follows the sequence's sample index, not its place or its batch's shape, which is
 * what makes runs on 1 and 2 ranks, or with accumulation, the same. */
static void grads_of(fd_ctx *c, size_t first, size_t count, float *into) {
    reel_store *params = &c->model->params;
    size_t offsets[5];
    for (size_t b = 0; b <= count; b++) offsets[b] = batch_offsets[first + b] - batch_offsets[first];
    reel_batch whole = c->batch;
    c->batch.size = count;
    c->batch.ids = batch_ids + batch_offsets[first];
    c->batch.targets = batch_targets + batch_offsets[first];
    c->batch.offsets = offsets;
    c->batch.sample_index = batch_samples + first;
    memset(params->grad, 0, params->num_floats * sizeof(float));
    reel_output out;
    c->model->ops->forward(c->model, &c->batch, 1, &out, &c->comm);
    for (size_t b = 0; b < out.B; b++)
        for (size_t t = 0; t < out.T; t++) {
            size_t length = offsets[b + 1] - offsets[b];
            c->tm_targets[reel_output_row(&out, t, b)] = t < length ? c->batch.targets[offsets[b] + t] : 0;
        }
    reel_decoder_softmax(c->dout, out.dweight, out.dbias, NULL, out.features, out.weight, out.bias, c->tm_targets,
                         out.row_mask, out.rows, out.features_dim, out.width, 1.0f, c->scratch, SLICE);
    c->model->ops->backward(c->model, &c->batch, c->dout, &c->comm);
    for (size_t i = 0; i < params->num_floats; i++) into[i] += params->grad[i];
    c->batch = whole;
}

static void test_split_batch(void **state) {
    (void)state;
    for (size_t k = 0; k < NUM_TINY; k++) {
        if (strcmp(tiny_models[k].type, "gpt") != 0) continue;
        reel_config cfg;
        fd_ctx c = {0};
        fd_setup(&c, tiny_create(&tiny_models[k], &cfg, 7));
        size_t n = c.model->params.num_floats;
        float *whole = calloc(n, sizeof(float)), *parts = calloc(n, sizeof(float));
        grads_of(&c, 0, 4, whole);
        grads_of(&c, 0, 2, parts);
        grads_of(&c, 2, 2, parts);
        double worst = 0, scale = 0;
        for (size_t i = 0; i < n; i++) {
            worst = fmax(worst, fabs((double)whole[i] - parts[i]));
            scale = fmax(scale, fabs((double)whole[i]));
        }
        printf("%-10s one batch of 4 vs two of 2: max |gradient difference| %.3g (largest gradient %.3g)\n",
               tiny_name(&tiny_models[k]), worst, scale);
        if (worst > 1e-5 * scale) fail_msg("%s: a batch's gradient is not the sum of its halves'", tiny_name(&tiny_models[k]));
        free(whole), free(parts);
        reel_model_destroy(c.model);
        fd_free(&c);
    }
}

/* ---------------- (a'') the Transformer classifier: a document alone or in a packed batch ----------------
 * The stack reads a batch's documents packed, their tokens one after another without padding
 * (src/models/xf_stack.h): a document's training logits, with every dropout on (masks keyed by its sample
 * index and its positions), are bit for bit those it gets alone, whatever the other documents' lengths
 * (1 to 16 tokens here); so is the gradient of its input perturbation (rows of its own); the parameters'
 * gradient of the batch is the sum of the documents' alone up to float rounding (the same terms summed
 * in another order). Every Transformer configuration of the table is checked (with context 2, documents
 * are read in several windows). */
enum { ALONE_DOCS = 5 };
static const uint32_t alone_ids[] = {7,                                                /* 1 token */
                                     3, 9, 4, 1, 10, 2, 8, 5, 6, 3, 3, 7, 9, 0, 4, 2,  /* 16 */
                                     5, 5, 1,                                          /* 3 */
                                     9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 10,                 /* 11 */
                                     2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 0, 2, 4};          /* 13 */
static const size_t alone_offsets[ALONE_DOCS + 1] = {0, 1, 17, 20, 31, 44};
static const uint64_t alone_samples[ALONE_DOCS] = {40, 41, 42, 43, 44};
static const float alone_labels[ALONE_DOCS] = {1, 0, 0, 1, 1};

/* Training forward and backward of `batch` with output gradient dlogits: logits into logits, the
 * parameters' gradient into grad (zeroed first), the perturbation's gradient into model->input_grad. */
static void train_pass(reel_model *model, const reel_batch *batch, const float *dlogits, float *logits, float *grad) {
    reel_comm comm;
    reel_comm_self(&comm);
    reel_store *params = &model->params;
    memset(params->grad, 0, params->num_floats * sizeof(float));
    reel_output out;
    model->ops->forward(model, batch, 1, &out, &comm);
    assert_int_equal(out.rows, batch->size);
    memcpy(logits, out.logits, out.rows * out.width * sizeof(float));
    model->ops->backward(model, batch, dlogits, &comm);
    memcpy(grad, params->grad, params->num_floats * sizeof(float));
}

static void check_alone(const tiny_model *tiny) {
    reel_config cfg;
    reel_model *model = tiny_create(tiny, &cfg, 7);
    size_t K = model->num_outputs, n = model->params.num_floats, C = model->input_dim;
    size_t tokens = alone_offsets[ALONE_DOCS];
    assert_int_equal(sizeof alone_ids / sizeof alone_ids[0], tokens);
    assert_true(C > 0);
    float *dlogits = calloc(ALONE_DOCS * K, sizeof(float)), *logits = calloc(ALONE_DOCS * K, sizeof(float));
    float *one_logits = calloc(K, sizeof(float)), *grad = calloc(n, sizeof(float)), *one_grad = calloc(n, sizeof(float));
    float *sum = calloc(n, sizeof(float)), *delta = calloc(tokens * C, sizeof(float));
    float *input_grad = calloc(tokens * C, sizeof(float)), *one_input_grad = calloc(tokens * C, sizeof(float));
    fill(dlogits, ALONE_DOCS * K, -1, 1, 41);
    fill(delta, tokens * C, -0.5f, 0.5f, 42);
    reel_batch whole = {.size = ALONE_DOCS, .ids = alone_ids, .offsets = alone_offsets, .labels = alone_labels,
                        .sample_index = alone_samples, .epoch = 2, .step = 5};
    model->input_delta = delta;
    model->input_grad = input_grad;
    train_pass(model, &whole, dlogits, logits, grad);
    for (size_t b = 0; b < ALONE_DOCS; b++) {
        size_t offsets[2] = {0, alone_offsets[b + 1] - alone_offsets[b]};
        reel_batch one = {.size = 1, .ids = alone_ids + alone_offsets[b], .offsets = offsets,
                          .labels = alone_labels + b, .sample_index = alone_samples + b, .epoch = 2, .step = 5};
        model->input_delta = delta + alone_offsets[b] * C;
        model->input_grad = one_input_grad + alone_offsets[b] * C;
        train_pass(model, &one, dlogits + b * K, one_logits, one_grad);
        for (size_t i = 0; i < n; i++) sum[i] += one_grad[i];
        if (memcmp(one_logits, logits + b * K, K * sizeof(float)) != 0)
            fail_msg("%s: document %zu (%zu tokens): its logits in the batch (%.9g ...) are not those alone (%.9g ...)",
                     tiny_name(tiny), b, offsets[1], logits[b * K], one_logits[0]);
    }
    if (memcmp(one_input_grad, input_grad, tokens * C * sizeof(float)) != 0) {
        size_t i = 0;
        while (one_input_grad[i] == input_grad[i]) i++;
        fail_msg("%s: the input perturbation's gradient of token %zu in the batch (%.9g) is not the one alone (%.9g)",
                 tiny_name(tiny), i / C, input_grad[i], one_input_grad[i]);
    }
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)grad[i] - sum[i]));
        scale = fmax(scale, fabs((double)grad[i]));
    }
    printf("%-19s %d documents of 1 to 16 tokens: logits and input gradients alone == packed; max |parameter "
           "gradient - sum alone| %.3g (largest %.3g)\n", tiny_name(tiny), ALONE_DOCS, worst, scale);
    if (!(scale > 0) || worst > 1e-5 * scale)
        fail_msg("%s: the batch's parameter gradient is not the sum of its documents' alone (%.3g)", tiny_name(tiny), worst);
    model->input_delta = NULL;
    model->input_grad = NULL;
    reel_model_destroy(model);
    free(dlogits), free(logits), free(one_logits), free(grad), free(one_grad), free(sum), free(delta);
    free(input_grad), free(one_input_grad);
}

static void test_transformer_alone(void **state) {
    (void)state;
    size_t checked = 0;
    for (size_t i = 0; i < NUM_TINY; i++)
        if (strcmp(tiny_models[i].type, "transformer") == 0) check_alone(&tiny_models[i]), checked++;
    assert_true(checked >= 3);
}

/* The Transformer's forward_prefixes (reel eval --lengths in one pass): every cut's logits must be bit
 * for bit those of an evaluation forward over the documents cut there, causal (partial windows read off
 * the whole windows' rows) and bidirectional (partial windows as sequences of their own), with a context
 * of 5 so that the documents (0 to 16 tokens) span up to 4 windows. Cuts inside windows, on their
 * boundaries (5, 10, 15), at a document's end (16), past every document (40), 0 (whole), a cut twice; and
 * every length from 1 to 17, whose partial windows outnumber the batch's tokens and are read in groups. */
enum { PREFIX_DOCS = 6 };
static const size_t prefix_offsets[PREFIX_DOCS + 1] = {0, 1, 17, 17, 20, 31, 44}; /* 1, 16, 0, 3, 11, 13 */

static void check_prefix_cuts(reel_model *model, const char *name, const size_t *cuts, size_t num_cuts) {
    reel_comm comm;
    reel_comm_self(&comm);
    size_t B = PREFIX_DOCS, K = model->num_outputs;
    uint64_t samples[PREFIX_DOCS] = {50, 51, 52, 53, 54, 55};
    reel_batch whole = {.size = B, .ids = alone_ids, .offsets = prefix_offsets, .sample_index = samples};
    float *logits = calloc(num_cuts * B * K, sizeof(float));
    model->ops->forward_prefixes(model, &whole, cuts, num_cuts, logits, &comm);
    for (size_t c = 0; c < num_cuts; c++) {
        uint32_t ids[sizeof alone_ids / sizeof alone_ids[0]];
        size_t offsets[PREFIX_DOCS + 1] = {0};
        for (size_t b = 0; b < B; b++) {
            size_t n = prefix_offsets[b + 1] - prefix_offsets[b], k = cuts[c] && cuts[c] < n ? cuts[c] : n;
            memcpy(ids + offsets[b], alone_ids + prefix_offsets[b], k * sizeof *ids);
            offsets[b + 1] = offsets[b] + k;
        }
        reel_batch cut = {.size = B, .ids = ids, .offsets = offsets, .sample_index = samples};
        reel_output out;
        model->ops->forward(model, &cut, 0, &out, &comm);
        for (size_t b = 0; b < B; b++)
            if (memcmp(out.logits + b * K, logits + (c * B + b) * K, K * sizeof(float)) != 0)
                fail_msg("%s: cut %zu, document %zu (%zu tokens): one pass gives %.9g, a forward of the cut "
                         "documents %.9g", name, cuts[c], b, prefix_offsets[b + 1] - prefix_offsets[b],
                         logits[(c * B + b) * K], out.logits[b * K]);
    }
    free(logits);
}

static void test_transformer_prefixes(void **state) {
    (void)state;
    static const size_t cuts[] = {3, 5, 7, 10, 12, 0, 15, 16, 40, 7};
    size_t every[18];
    for (size_t k = 0; k < 18; k++) every[k] = k; /* 0: whole */
    size_t checked = 0;
    for (size_t i = 0; i < NUM_TINY; i++) {
        if (strcmp(tiny_models[i].type, "transformer") != 0) continue;
        for (int causal = 0; causal < 2; causal++) {
            reel_config cfg;
            tiny_config(&cfg, &tiny_models[i]);
            config_set(&cfg, "model.max_context=5");
            config_set(&cfg, "data.seq_len=5");
            config_set(&cfg, "model.causal=%s", causal ? "true" : "false");
            reel_model *model = tiny_build(&tiny_models[i], &cfg, 9);
            assert_non_null(model->ops->forward_prefixes);
            char name[64];
            snprintf(name, sizeof name, "%s, %s", tiny_name(&tiny_models[i]), causal ? "causal" : "bidirectional");
            check_prefix_cuts(model, name, cuts, sizeof cuts / sizeof cuts[0]);
            check_prefix_cuts(model, name, every, 18);
            printf("%-36s forward_prefixes == a forward per cut, bit for bit (28 cuts, documents of 0 to 16 "
                   "tokens, context 5)\n", name);
            reel_model_destroy(model);
            checked++;
        }
    }
    assert_true(checked >= 6);
}

/* ---------------- (b) padding invariance ---------------- */
enum { OUTPUTS_MAX = 256 };

/* The evaluation outputs of sequence number `which` of a batch: its logits (K), or its features (len, D)
 * at its valid steps (rows reel_output_row(t, which)), into dest (OUTPUTS_MAX floats).
 * Returns how many floats. */
static size_t sequence_outputs(reel_model *model, const reel_batch *batch, size_t which, float *dest, size_t *padded_T) {
    reel_comm comm;
    reel_comm_self(&comm);
    reel_output out;
    model->ops->forward(model, batch, 0, &out, &comm);
    if (model->output == REEL_OUTPUT_DOCUMENT) {
        assert_true(out.width <= OUTPUTS_MAX);
        memcpy(dest, out.logits + which * out.width, out.width * sizeof(float));
        *padded_T = 0;
        return out.width;
    }
    size_t length = batch->offsets[which + 1] - batch->offsets[which], D = out.features_dim;
    assert_true(length * D <= OUTPUTS_MAX);
    for (size_t t = 0; t < out.T; t++)
        if (out.row_mask[reel_output_row(&out, t, which)] != (t < length))
            fail_msg("%s: row mask %d at step %zu of sequence %zu of %zu steps (padded to %zu)", model->type,
                     out.row_mask[reel_output_row(&out, t, which)], t, which, length, out.T);
    for (size_t t = 0; t < length; t++)
        memcpy(dest + t * D, out.features + reel_output_row(&out, t, which) * D, D * sizeof(float));
    *padded_T = out.T;
    return length * D;
}

static void check_padding(const tiny_model *tiny) {
    reel_config cfg;
    reel_model *model = tiny_create(tiny, &cfg, 7);
    /* the sequence 5 3 9 alone, then in three batches: after a longer one and before a single token,
     * first before a longer one with other tokens, and last after two longer ones */
    static const uint32_t alone_ids[] = {5, 3, 9};
    static const size_t alone_offsets[] = {0, 3};
    static const uint32_t a_ids[] = {1, 2, 6, 7, 8, 2, 5, 3, 9, 4};
    static const size_t a_offsets[] = {0, 6, 9, 10};
    static const uint32_t b_ids[] = {5, 3, 9, 10, 10, 0, 1, 6, 4, 2};
    static const size_t b_offsets[] = {0, 3, 10};
    static const uint32_t c_ids[] = {7, 7, 7, 7, 2, 0, 3, 3, 3, 3, 3, 5, 3, 9};
    static const size_t c_offsets[] = {0, 5, 11, 14};
    static const uint64_t samples[] = {1, 2, 3};
    const struct {
        const char *name;
        const uint32_t *ids;
        const size_t *offsets;
        size_t size, which;
    } batches[] = {{"middle of 3", a_ids, a_offsets, 3, 1},
                   {"first of 2", b_ids, b_offsets, 2, 0},
                   {"last of 3", c_ids, c_offsets, 3, 2}};
    float expected[OUTPUTS_MAX], got[OUTPUTS_MAX];
    reel_batch alone = {.size = 1, .ids = alone_ids, .offsets = alone_offsets, .sample_index = samples};
    size_t T, n = sequence_outputs(model, &alone, 0, expected, &T);
    for (size_t k = 0; k < sizeof batches / sizeof batches[0]; k++) {
        reel_batch batch = {.size = batches[k].size, .ids = batches[k].ids, .offsets = batches[k].offsets,
                            .sample_index = samples};
        assert_int_equal(sequence_outputs(model, &batch, batches[k].which, got, &T), n);
        /* per-token outputs: the batch really pads our 3 steps */
        if (model->output == REEL_OUTPUT_TOKEN) assert_true(T > 3);
        /* the same products of the same rows: only a different blocking of the matrix products may change
         * the last bits. The outputs are of order 1-5 and a float's ulp at 4 is 4.8e-7, so an absolute 1e-6
         * would allow two ulps there, and another CPU's BLAS may block (and so round) otherwise. The bound
         * is relative, 1e-6 * (1 + |expected|): eight ulps or more at any magnitude (5e-6, ten ulps, at 4),
         * far below what a padded step or another sequence leaking in changes. */
        double worst = 0;
        for (size_t i = 0; i < n; i++)
            worst = fmax(worst, fabs((double)got[i] - expected[i]) / (1 + fabs((double)expected[i])));
        printf("%-5s padding, %-11s: %2zu outputs, max |difference| / (1 + |expected|) %.3g\n", tiny_name(tiny),
               batches[k].name, n, worst);
        if (worst > 1e-6) fail_msg("%s: the sequence's outputs depend on the padding or its batch (%s)", tiny_name(tiny),
                                   batches[k].name);
    }
    reel_model_destroy(model);
}

static void test_padding(void **state) {
    (void)state;
    for (size_t i = 0; i < NUM_TINY; i++) check_padding(&tiny_models[i]);
}

/* ---------------- (c) checkpoint round trip ---------------- */
/* Every tensor of a's layout equal bit for bit in b (values laid out as the store a, b describe). */
static void same_tensors(const char *type, const char *what, const reel_store *a, const float *a_values,
                         const reel_store *b, const float *b_values) {
    assert_int_equal(a->num_tensors, b->num_tensors);
    assert_int_equal(a->num_floats, b->num_floats);
    for (size_t t = 0; t < a->num_tensors; t++) {
        const reel_tensor_info *info = &a->tensors[t];
        if (memcmp(a_values + info->offset, b_values + b->tensors[t].offset, info->count * sizeof(float)) != 0)
            fail_msg("%s: %s %s differs after the checkpoint round trip", type, what, info->name);
    }
}

static void check_round_trip(const tiny_model *tiny) {
    reel_config cfg;
    fd_ctx c = {0};
    fd_setup(&c, tiny_create(tiny, &cfg, 7));
    reel_model *saved = c.model;
    reel_optimizer opt;
    reel_optimizer_init(&opt, &cfg, &saved->params);
    /* a training step, so the optimizer slots and running statistics hold something */
    memset(saved->params.grad, 0, saved->params.num_floats * sizeof(float));
    model_loss(&c, 1);
    saved->ops->backward(saved, &c.batch, c.dout, &c.comm);
    reel_optimizer_step(&opt, &saved->params, 1e-2);
    char path[300];
    snprintf(path, sizeof path, "%s/%s.h5", tmp_dir, tiny_name(tiny));
    reel_train_state train_state = {5, 1, 2, 40, "loss", 0.5, 4, 9, 3};
    reel_checkpoint_info info = {"[model]\n", reel_model_default_objective(tiny->type), 0x5eedULL, NULL, NULL, 1};
    reel_error err = {{0}};
    reel_checkpoint_slots slots = reel_optimizer_checkpoint_slots(&opt);
    if (reel_checkpoint_save(path, saved, &slots, &train_state, &info, &err) != 0) fail_msg("%s", err.message);

    reel_config cfg2;
    reel_model *loaded = tiny_create(tiny, &cfg2, 8);
    reel_optimizer opt2;
    reel_optimizer_init(&opt2, &cfg2, &loaded->params);
    /* another initialisation: the load has everything to bring over */
    assert_int_equal(loaded->params.num_floats, saved->params.num_floats);
    assert_true(memcmp(loaded->params.data, saved->params.data, saved->params.num_floats * sizeof(float)) != 0);
    reel_train_state read_state = {0};
    reel_checkpoint_slots slots2 = reel_optimizer_checkpoint_slots(&opt2);
    if (reel_checkpoint_load(path, loaded, &slots2, &read_state, NULL, 0x5eedULL, &err) != 0)
        fail_msg("%s", err.message);
    /* the training state read back is the one saved, field by field (each saved value differs from the 0
     * read_state starts as) */
    assert_int_equal(read_state.global_step, train_state.global_step);
    assert_int_equal(read_state.epoch, train_state.epoch);
    assert_int_equal(read_state.step_in_epoch, train_state.step_in_epoch);
    assert_int_equal(read_state.samples_seen, train_state.samples_seen);
    assert_string_equal(read_state.best_metric, train_state.best_metric);
    assert_memory_equal(&read_state.best_value, &train_state.best_value, sizeof train_state.best_value);
    assert_int_equal(read_state.best_step, train_state.best_step);
    assert_int_equal(read_state.seed, train_state.seed);
    assert_int_equal(read_state.evals_since_best, train_state.evals_since_best);
    same_tensors(tiny_name(tiny), "parameter", &saved->params, saved->params.data, &loaded->params, loaded->params.data);
    same_tensors(tiny_name(tiny), "state", &saved->state, saved->state.data, &loaded->state, loaded->state.data);
    assert_int_equal(opt2.num_slots, opt.num_slots);
    for (size_t s = 0; s < opt.num_slots; s++)
        same_tensors(tiny_name(tiny), opt.slot_names[s], &saved->params, opt.slots[s], &loaded->params, opt2.slots[s]);
    /* evaluation outputs of the whole batch, bit for bit */
    for (size_t b = 0; b < 4; b++) {
        float a[OUTPUTS_MAX], z[OUTPUTS_MAX];
        size_t T;
        size_t n = sequence_outputs(saved, &c.batch, b, a, &T);
        assert_int_equal(sequence_outputs(loaded, &c.batch, b, z, &T), n);
        assert_memory_equal(a, z, n * sizeof(float));
    }
    printf("%-5s checkpoint round trip: %zu parameters, %zu state floats, %zu optimizer slots identical\n", tiny_name(tiny),
           saved->params.num_floats, saved->state.num_floats, opt.num_slots);
    reel_optimizer_free(&opt);
    reel_optimizer_free(&opt2);
    reel_model_destroy(saved);
    reel_model_destroy(loaded);
    fd_free(&c);
}

static void test_round_trip(void **state) {
    (void)state;
    for (size_t i = 0; i < NUM_TINY; i++) check_round_trip(&tiny_models[i]);
}

/* ---------------- the table covers the registry ---------------- */
static void test_every_type_has_a_tiny_model(void **state) {
    (void)state;
    size_t registered = 0;
    for (const char *type; (type = reel_model_type_at(registered)); registered++)
        if (!tiny_find(type))
            fail_msg("model type '%s' is registered (src/models/registry.c) but has no tiny configuration in "
                     "tests/test_models.c's tiny_models: add one so that it is tested",
                     type);
    for (size_t i = 0; i < NUM_TINY; i++) {
        if (!reel_model_kind_find(tiny_models[i].type))
            fail_msg("tests/test_models.c's tiny_models has '%s', which is not a registered model type",
                     tiny_models[i].type);
        for (size_t k = 0; k < i; k++)
            if (strcmp(tiny_name(&tiny_models[k]), tiny_name(&tiny_models[i])) == 0)
                fail_msg("tests/test_models.c's tiny_models names '%s' twice", tiny_name(&tiny_models[i]));
    }
    /* every configuration builds */
    for (size_t i = 0; i < NUM_TINY; i++) {
        reel_config cfg;
        reel_model_destroy(tiny_create(&tiny_models[i], &cfg, 1));
    }
    printf("%zu registered model types, each with a tiny configuration\n", registered);
}

/* ---------------- the table for tests/models_ranks.sh ---------------- */
static void print_ini_key(const char *key, const char *value, void *ctx) {
    (void)ctx;
    printf("%s = %s\n", key, value);
}

static int list_types(void) {
    int status = 0;
    for (size_t t = 0; reel_model_type_at(t); t++) {
        const char *type = reel_model_type_at(t);
        if (!tiny_find(type)) {
            fprintf(stderr, "test_models: model type '%s' has no tiny configuration in tests/test_models.c\n", type);
            status = 1;
        }
        printf("%s %s\n", type, reel_model_default_objective(type));
    }
    return status;
}

/* Every configuration of the table: "NAME TYPE OBJECTIVE". */
static int list_variants(void) {
    for (size_t i = 0; i < NUM_TINY; i++)
        printf("%s %s %s\n", tiny_name(&tiny_models[i]), tiny_models[i].type,
               reel_model_default_objective(tiny_models[i].type));
    return 0;
}

static int print_ini(const char *name) {
    const tiny_model *tiny = tiny_find(name);
    if (!tiny) {
        fprintf(stderr, "test_models --ini: no tiny configuration named '%s'\n", name);
        return 1;
    }
    printf("type = %s\n", tiny->type);
    tiny_each_key(tiny, print_ini_key, NULL);
    return 0;
}

/* One process, communicator MPI_COMM_SELF (MPI is not started), as the other unit tests. */
int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--types") == 0) return list_types();
    if (argc == 2 && strcmp(argv[1], "--variants") == 0) return list_variants();
    if (argc == 3 && strcmp(argv[1], "--ini") == 0) return print_ini(argv[2]);
    if (argc != 1) {
        fprintf(stderr, "usage: test_models [--types | --variants | --ini NAME]\n");
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type_has_a_tiny_model),
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_split_batch),
        cmocka_unit_test(test_transformer_alone),
        cmocka_unit_test(test_transformer_prefixes),
        cmocka_unit_test(test_padding),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
