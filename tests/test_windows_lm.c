/* A language model of bounded context scores documents in windows (reel_score_documents, which
 * `reel predict` uses): with max_context forced on a small recurrent LM, every document's negative
 * log-likelihood equals a reference summed here from one forward per window, each alone in its batch
 * from the zero state, over the positions that window scores (reel/windows.h, tested on its own in
 * test_windows.c); max_context 0 and a context longer than every document equal one whole-document
 * forward. A scorer that counted the overlap twice, or dropped a window's own positions, fails. The
 * generator reads only the last max_context tokens of <eod> and its prime: its greedy token is the one
 * the logits of a forward over those tokens alone make most likely. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "reel/catalogue.h"
#include "reel/config.h"
#include "reel/data.h"
#include "reel/generate.h"
#include "reel/infer.h"
#include "reel/model.h"
#include "reel/windows.h"
#include "fdcheck.h"
#include "config_set.h"

enum { V = 13, MAX_BATCH = 4, NUM_DOCS = 6 };

static reel_model *make_lm(void) {
    reel_config cfg;
    reel_config_defaults(&cfg);
    config_set(&cfg, "model.type=rnn_lm");
    config_set(&cfg, "model.cell=lstm");
    config_set(&cfg, "model.vocab_size=%d", V);
    config_set(&cfg, "model.embed_dim=6");
    config_set(&cfg, "model.layer_dims=8");
    config_set(&cfg, "model.rnn_batch_norm=0");
    config_set(&cfg, "model.rnn_dropout=0");
    reel_model *model;
    reel_error err = {{0}};
    if (reel_model_create(&model, &cfg, MAX_BATCH, &err) != 0) fail_msg("%s", err.message);
    model->ops->init(model, 5);
    /* spread the weights, so the state and so the left context change the predictions a lot */
    for (size_t t = 0; t < model->params.num_tensors; t++) {
        reel_tensor_info *info = &model->params.tensors[t];
        fill(model->params.data + info->offset, info->count, -0.8f, 0.8f, (uint32_t)(40 + t));
    }
    return model;
}

/* Token q of <eod> d_1 ... d_n <eod>. */
static uint32_t framed(const reel_document *d, size_t q) {
    return q == 0 || q == d->length + 1 ? REEL_TOKEN_EOD : d->ids[q - 1];
}

/* The negative log-likelihood of the targets framed(q + 1), q in [from, end), after reading the inputs
 * framed(start .. end) in one forward of a batch of one row, from the zero state. */
static double window_nll(reel_model *model, const reel_document *d, size_t start, size_t from, size_t end) {
    reel_batch_buffer buf = {0};
    reel_batch_begin(&buf, 1, 0, 0);
    uint32_t *inputs, *targets;
    reel_batch_append(&buf, end - start, 0, &inputs, &targets);
    for (size_t q = start; q < end; q++) {
        inputs[q - start] = framed(d, q);
        targets[q - start] = framed(d, q + 1);
    }
    reel_batch_finish(&buf);
    reel_comm comm;
    reel_comm_self(&comm);
    reel_output out;
    model->ops->forward(model, &buf.batch, 0, &out, &comm);
    double nll = 0;
    for (size_t q = from; q < end; q++) {
        const float *x = out.features + (q - start) * out.features_dim; /* B = 1: row t */
        double z[V], top = -INFINITY, sum = 0;
        for (size_t v = 0; v < out.width; v++) {
            double acc = out.bias ? out.bias[v] : 0;
            for (size_t k = 0; k < out.features_dim; k++) acc += (double)out.weight[v * out.features_dim + k] * x[k];
            z[v] = acc;
            top = acc > top ? acc : top;
        }
        for (size_t v = 0; v < out.width; v++) sum += exp(z[v] - top);
        nll += log(sum) + top - z[framed(d, q + 1)];
    }
    reel_batch_buffer_free(&buf);
    return nll;
}

static const uint32_t text[] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 3, 5, 7, 9, 11, 4, 6, 8, 10, 12, 3, 3, 4, 4,
                                5, 5, 6, 6, 7, 7, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3};

static void documents(reel_document *docs) {
    static const size_t lengths[NUM_DOCS] = {0, 1, 3, 9, 23, 40};
    for (size_t i = 0; i < NUM_DOCS; i++) docs[i] = (reel_document){text + (40 - lengths[i]), lengths[i]};
}

static void score(reel_model *model, const reel_document *docs, double *nll) {
    reel_predictor *p;
    reel_error err = {{0}};
    if (reel_predictor_create(&p, model, MAX_BATCH, &err) != 0) fail_msg("%s", err.message);
    size_t tokens[NUM_DOCS];
    reel_score_documents(p, docs, NUM_DOCS, nll, tokens);
    for (size_t i = 0; i < NUM_DOCS; i++) assert_int_equal(tokens[i], docs[i].length + 1);
    reel_predictor_free(p);
}

static void expect_close(double got, double want, const char *what, size_t context, size_t doc) {
    if (!(fabs(got - want) <= 1e-4 * (1 + fabs(want))))
        fail_msg("%s, max_context %zu, document %zu: scored %.9g, reference %.9g", what, context, doc, got, want);
}

static void test_windows_equal_separate_windows(void **state) {
    (void)state;
    reel_model *model = make_lm();
    reel_document docs[NUM_DOCS];
    documents(docs);
    double whole[NUM_DOCS], nll[NUM_DOCS];
    /* unbounded: one forward over each whole document */
    score(model, docs, whole);
    for (size_t i = 0; i < NUM_DOCS; i++)
        expect_close(whole[i], window_nll(model, &docs[i], 0, 0, docs[i].length + 1), "unbounded", 0, i);
    static const size_t contexts[] = {1, 2, 4, 5, 8};
    for (size_t c = 0; c < sizeof contexts / sizeof contexts[0]; c++) {
        size_t W = contexts[c], S = reel_windows_default_stride(W);
        model->max_context = W;
        score(model, docs, nll);
        int differs = 0;
        for (size_t i = 0; i < NUM_DOCS; i++) {
            size_t L = docs[i].length + 1;
            double reference = 0;
            for (size_t k = 0; k < reel_windows_count(L, W, S); k++) {
                reel_window w = reel_windows_at(L, W, S, k);
                reference += window_nll(model, &docs[i], w.start, w.score_from, w.end);
            }
            expect_close(nll[i], reference, "windows", W, i);
            differs |= fabs(nll[i] - whole[i]) > 1e-3;
        }
        /* the longest document has far more than W tokens: a bounded context must change its score */
        if (!differs) fail_msg("max_context %zu scores as the unbounded model does", W);
    }
    /* a context longer than every document: the unbounded scores */
    model->max_context = 41 + 1;
    score(model, docs, nll);
    for (size_t i = 0; i < NUM_DOCS; i++) expect_close(nll[i], whole[i], "longer than the documents", 42, i);
    reel_model_destroy(model);
}

/* The greedy choice (no <pad> or <unk>) from the logits of the last step of one forward over ids. */
static uint32_t greedy_after(reel_model *model, const uint32_t *ids, size_t count) {
    reel_batch_buffer buf = {0};
    reel_batch_begin(&buf, 1, 0, 0);
    uint32_t *inputs, *targets;
    reel_batch_append(&buf, count, 0, &inputs, &targets);
    memcpy(inputs, ids, count * sizeof *ids);
    memset(targets, 0, count * sizeof *targets);
    reel_batch_finish(&buf);
    reel_comm comm;
    reel_comm_self(&comm);
    reel_output out;
    model->ops->forward(model, &buf.batch, 0, &out, &comm);
    const float *x = out.features + (count - 1) * out.features_dim;
    uint32_t best = 0;
    double best_z = -INFINITY;
    for (size_t v = 0; v < out.width; v++) {
        if (v < REEL_VOCAB_RESERVED && v != REEL_TOKEN_EOD) continue;
        double z = out.bias ? out.bias[v] : 0;
        for (size_t k = 0; k < out.features_dim; k++) z += (double)out.weight[v * out.features_dim + k] * x[k];
        if (z > best_z) best_z = z, best = (uint32_t)v;
    }
    reel_batch_buffer_free(&buf);
    return best;
}

static void test_prime_cut_to_context(void **state) {
    (void)state;
    reel_model *model = make_lm();
    uint32_t framed_prime[41];
    framed_prime[0] = REEL_TOKEN_EOD;
    memcpy(framed_prime + 1, text, sizeof text);
    reel_sampling greedy = {0, 0, 1, 1};
    size_t differs = 0;
    for (size_t W = 0; W <= 12; W++) {
        for (size_t count = 0; count <= 40; count += 13) {
            model->max_context = W;
            reel_generator *g;
            reel_error err = {{0}};
            if (reel_generator_create(&g, model, 2, &err) != 0) fail_msg("%s", err.message);
            reel_generator_prime(g, text, count);
            uint32_t next[2];
            reel_generator_step(g, &greedy, 0, next);
            reel_generator_free(g);
            /* <eod> and the prime, cut to its last W tokens */
            size_t total = count + 1, from = W && total > W ? total - W : 0;
            uint32_t expected = greedy_after(model, framed_prime + from, total - from);
            if (next[0] != expected || next[1] != expected)
                fail_msg("max_context %zu, prime of %zu: generated %u and %u, expected %u", W, count, next[0], next[1], expected);
            differs += expected != greedy_after(model, framed_prime, total);
        }
    }
    /* the cut must matter somewhere, or this test could not tell a generator that ignores it */
    if (!differs) fail_msg("no cut prime changes the greedy token");
    reel_model_destroy(model);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_windows_equal_separate_windows),
        cmocka_unit_test(test_prime_cut_to_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
