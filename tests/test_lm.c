/* The language model: finite differences of the whole model through the fused decoder and its loss
 * (untied; tied; tied with a projection; GRU and tanh RNN; every regulariser on; starting from a carried
 * state), and the carried state itself: two windows with the state carried give what one window gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reel/catalogue.h"
#include "reel/config.h"
#include "reel/layers.h"
#include "reel/model.h"
#include "fdcheck.h"
#include "config_set.h"

enum { V = 11, SLICE = 4 };

static reel_model *make_lm(const char *cell, size_t embed, const char *dims, int tied, int batch_norm, double dropout) {
    reel_config cfg;
    reel_config_defaults(&cfg);
    config_set(&cfg, "model.type=rnn_lm");
    config_set(&cfg, "model.cell=%s", cell);
    config_set(&cfg, "model.vocab_size=%d", V);
    config_set(&cfg, "model.embed_dim=%zu", embed);
    config_set(&cfg, "model.layer_dims=%s", dims);
    config_set(&cfg, "model.tie_weights=%d", tied);
    config_set(&cfg, "model.rnn_batch_norm=%d", batch_norm);
    config_set(&cfg, "model.rnn_dropout=%.17g", dropout);
    config_set(&cfg, "model.input_dropout=%.17g", dropout);
    config_set(&cfg, "model.word_dropout=%.17g", dropout);
    config_set(&cfg, "model.weight_dropout=%.17g", dropout);
    reel_model *model;
    reel_error err = {{0}};
    if (reel_model_create(&model, &cfg, 4, &err) != 0) fail_msg("%s", err.message);
    model->ops->init(model, 7);
    /* the embedding's U(-0.1, 0.1) would make every later value tiny; spread the weights so every layer
     * sees O(1) values and the differences measure something */
    for (size_t t = 0; t < model->params.num_tensors; t++) {
        reel_tensor_info *info = &model->params.tensors[t];
        if (strstr(info->name, "batchnorm")) continue;
        fill(model->params.data + info->offset, info->count, -0.9f, 0.9f, (uint32_t)(70 + t));
    }
    return model;
}

/* A batch of four sequences of 4, 2, 5 and 1 tokens (tokens repeat inside and across sequences), each
 * with its next tokens as targets. */
static const uint32_t ids[] = {3, 4, 3, 9, 8, 2, 5, 3, 10, 4, 2, 7};
static const uint32_t targets[] = {4, 3, 9, 1, 2, 2, 3, 10, 4, 6, 7, 5};
static const size_t offsets[] = {0, 4, 6, 11, 12};
static const uint64_t samples[] = {20, 21, 22, 23};

typedef struct {
    reel_model *model;
    reel_batch batch;
    const float *initial; /* the carried state every forward starts from, or NULL */
    float *state;
    float *scratch;
    uint32_t tm_targets[64];
    reel_comm comm;
} lm_ctx;

/* The loss of a training forward: the decoder over every valid step, summed. */
static double lm_loss(lm_ctx *c, float *dfeatures) {
    if (c->initial) memcpy(c->state, c->initial, c->batch.size * c->model->state_width * sizeof(float));
    reel_output out;
    c->model->ops->forward(c->model, &c->batch, 1, &out, &c->comm);
    for (size_t b = 0; b < out.B; b++)
        for (size_t t = 0; t < out.T; t++)
            c->tm_targets[t * out.B + b] = t < offsets[b + 1] - offsets[b] ? targets[offsets[b] + t] : 0;
    return reel_decoder_softmax(dfeatures, dfeatures ? out.dweight : NULL, dfeatures ? out.dbias : NULL, NULL,
                                out.features, out.weight, out.bias, c->tm_targets, out.row_mask, out.rows,
                                out.features_dim, out.width, 1.0f, c->scratch, SLICE);
}

static double lm_objective(void *p) { return lm_loss(p, NULL); }

static void check_lm(const char *label, const char *cell, size_t embed, const char *dims, int tied, int batch_norm,
                     double dropout, int carried) {
    lm_ctx c = {0};
    c.model = make_lm(cell, embed, dims, tied, batch_norm, dropout);
    reel_comm_self(&c.comm);
    c.batch = (reel_batch){.size = 4, .ids = ids, .offsets = offsets, .targets = targets, .sample_index = samples,
                           .epoch = 1, .step = 3};
    size_t width = c.model->state_width;
    float *initial = calloc(4 * width + 1, sizeof(float));
    if (carried) {
        fill(initial, 4 * width, -0.8f, 0.8f, 90);
        c.initial = initial;
        c.state = calloc(4 * width + 1, sizeof(float));
        c.batch.state = c.state;
    }
    c.scratch = calloc(reel_decoder_scratch_floats(SLICE, 64, V), sizeof(float));
    float *dfeatures = calloc(64 * 64, sizeof(float));
    reel_store *params = &c.model->params;
    memset(params->grad, 0, params->num_floats * sizeof(float));
    lm_loss(&c, dfeatures);
    c.model->ops->backward(c.model, &c.batch, dfeatures, &c.comm);
    for (size_t t = 0; t < params->num_tensors; t++) {
        char what[96];
        snprintf(what, sizeof what, "%s %s", label, params->tensors[t].name);
        compare(what, reel_store_view(params, t), reel_store_grad_view(params, t), params->tensors[t].count,
                lm_objective, &c);
    }
    reel_model_destroy(c.model);
    free(initial), free(c.state), free(c.scratch), free(dfeatures);
}

static void test_lm_gradients(void **state) {
    (void)state;
    check_lm("lstm 2 layers", "lstm", 3, "4,3", 0, 0, 0.0, 0);
    check_lm("lstm tied", "lstm", 3, "4,3", 1, 0, 0.0, 0);
    check_lm("lstm tied, projection", "lstm", 3, "3,5", 1, 1, 0.0, 0);
    check_lm("gru, batch norm, all dropouts", "gru", 3, "4,4", 0, 1, 0.3, 0);
    check_lm("lstm, all dropouts, tied", "lstm", 4, "3,4", 1, 1, 0.3, 0);
    check_lm("rnn", "rnn", 3, "4", 0, 0, 0.0, 0);
    check_lm("lstm from a carried state", "lstm", 3, "4,3", 1, 1, 0.2, 1);
    check_lm("gru from a carried state", "gru", 3, "3", 0, 0, 0.0, 1);
}

/* A window of 6 steps against the same tokens as two windows of 3, the second starting from the state
 * the first left in the batch's state buffer (evaluation mode: batch norm uses its running statistics,
 * which do not depend on the window). */
static void check_two_windows(const char *cell) {
    reel_model *model = make_lm(cell, 3, "4,3", 1, 1, 0.0);
    reel_comm comm;
    reel_comm_self(&comm);
    static const uint32_t seq[] = {3, 4, 9, 2, 8, 5, 7, 4, 6, 3, 10, 2};
    static const size_t whole_offsets[] = {0, 6, 12}, half_offsets[] = {0, 3, 6};
    static const uint64_t two[] = {1, 2};
    size_t width = model->state_width;
    float *state = calloc(2 * width, sizeof(float));
    reel_batch whole = {.size = 2, .ids = seq, .offsets = whole_offsets, .sample_index = two, .state = state};
    reel_output out;
    model->ops->forward(model, &whole, 0, &out, &comm);
    size_t D = out.features_dim;
    float *expected = malloc(12 * D * sizeof(float));
    memcpy(expected, out.features, 12 * D * sizeof(float)); /* (6, 2, D) time-major */
    /* the two halves, time-major per window: steps 0-2 of both sequences, then steps 3-5 */
    uint32_t first_ids[6], second_ids[6];
    for (size_t b = 0; b < 2; b++)
        for (size_t t = 0; t < 3; t++) {
            first_ids[b * 3 + t] = seq[b * 6 + t];
            second_ids[b * 3 + t] = seq[b * 6 + 3 + t];
        }
    memset(state, 0, 2 * width * sizeof(float));
    reel_batch first = {.size = 2, .ids = first_ids, .offsets = half_offsets, .sample_index = two, .state = state};
    model->ops->forward(model, &first, 0, &out, &comm);
    double worst = 0;
    for (size_t i = 0; i < 6 * D; i++) worst = fmax(worst, fabs(out.features[i] - expected[i]));
    reel_batch second = first;
    second.ids = second_ids;
    model->ops->forward(model, &second, 0, &out, &comm);
    for (size_t i = 0; i < 6 * D; i++) worst = fmax(worst, fabs(out.features[i] - expected[6 * D + i]));
    printf("%s language model: two windows with the state carried vs one: max |difference| %.3g\n", cell, worst);
    assert_true(worst <= 1e-6);
    /* without the carried state the second window differs: the check can fail */
    second.state = NULL;
    model->ops->forward(model, &second, 0, &out, &comm);
    double apart = 0;
    for (size_t i = 0; i < 6 * D; i++) apart = fmax(apart, fabs(out.features[i] - expected[6 * D + i]));
    assert_true(apart > 1e-3);
    free(expected);
    free(state);
    reel_model_destroy(model);
}

static void test_two_windows(void **state) {
    (void)state;
    check_two_windows("lstm");
    check_two_windows("gru");
    check_two_windows("rnn");
}

/* One process, communicator MPI_COMM_SELF: the collectives of a single rank return at once, so MPI is
 * not started (its threads would otherwise race LeakSanitizer's stop-the-world at exit, in the
 * sanitizer build). */
int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lm_gradients),
        cmocka_unit_test(test_two_windows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
