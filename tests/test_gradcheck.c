/* Finite-difference gradient checks (see fdcheck.h) for every feed-forward layer kernel, the loss, and
 * the whole bag-of-words model. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reel/catalogue.h"
#include "reel/config.h"
#include "reel/layers.h"
#include "reel/model.h"
#include "reel/rng.h"
#include "fdcheck.h"
#include "config_set.h"

/* ---------------- linear ---------------- */
enum { LB = 5, LC = 7, LOC = 4 };
typedef struct {
    float inp[LB * LC], weight[LOC * LC], bias[LOC], out[LB * LOC], r[LB * LOC];
} linear_ctx;
static double linear_objective(void *p) {
    linear_ctx *c = p;
    reel_linear_forward(c->out, c->inp, c->weight, c->bias, LB, LC, LOC);
    return dot(c->out, c->r, LB * LOC);
}
static void test_linear(void **state) {
    (void)state;
    linear_ctx c;
    fill(c.inp, LB * LC, -1, 1, 1);
    fill(c.weight, LOC * LC, -1, 1, 2);
    fill(c.bias, LOC, -1, 1, 3);
    fill(c.r, LB * LOC, -1, 1, 4);
    float dinp[LB * LC] = {0}, dweight[LOC * LC] = {0}, dbias[LOC] = {0};
    linear_objective(&c);
    reel_linear_backward(dinp, dweight, dbias, c.r, c.inp, c.weight, LB, LC, LOC);
    compare("linear input", c.inp, dinp, LB * LC, linear_objective, &c);
    compare("linear weight", c.weight, dweight, LOC * LC, linear_objective, &c);
    compare("linear bias", c.bias, dbias, LOC, linear_objective, &c);
}

/* ---------------- convolution, ReLU and max over positions ---------------- */
/* Five documents of 7, 2 (shorter than the width 3), 0, 1 and 5 tokens; F = 4 filters over E = 3. */
enum { CVB = 5, CVN = 15, CVE = 3, CVW = 3, CVF = 4 };
typedef struct {
    size_t offsets[CVB + 1], argmax[CVB * CVF];
    float x[CVN * CVE], weight[CVW * CVF * CVE], bias[CVF], pooled[CVB * CVF], r[CVB * CVF], scratch[CVN * CVW * CVF];
} conv_ctx;
static double conv_objective(void *p) {
    conv_ctx *c = p;
    reel_conv_maxpool_forward(c->pooled, c->argmax, c->scratch, c->x, c->offsets, CVB, CVE, c->weight, c->bias, CVW, CVF);
    return dot(c->pooled, c->r, CVB * CVF);
}
/* The pooled features written out from the definition in double: every window of every document, zeros
 * past a short document's end, ReLU, max; an empty document 0. */
static void conv_reference(const conv_ctx *c, double *want) {
    for (size_t b = 0; b < CVB; b++) {
        size_t begin = c->offsets[b], length = c->offsets[b + 1] - begin;
        size_t windows = length == 0 ? 0 : length >= CVW ? length - CVW + 1 : 1;
        for (size_t f = 0; f < CVF; f++) {
            double best = 0; /* ReLU: nothing below 0, and 0 for no window */
            for (size_t t = 0; t < windows; t++) {
                double z = c->bias[f];
                for (size_t k = 0; k < CVW && t + k < length; k++)
                    for (size_t e = 0; e < CVE; e++)
                        z += (double)c->x[(begin + t + k) * CVE + e] * c->weight[(k * CVF + f) * CVE + e];
                if (z > best) best = z;
            }
            want[b * CVF + f] = best;
        }
    }
}
static void test_conv_maxpool(void **state) {
    (void)state;
    conv_ctx c = {.offsets = {0, 7, 9, 9, 10, 15}};
    fill(c.x, CVN * CVE, -1, 1, 61);
    fill(c.weight, CVW * CVF * CVE, -1, 1, 62);
    fill(c.bias, CVF, -0.3f, 0.3f, 63);
    fill(c.r, CVB * CVF, -1, 1, 64);
    conv_objective(&c);
    double want[CVB * CVF];
    conv_reference(&c, want);
    size_t positive = 0;
    for (size_t i = 0; i < CVB * CVF; i++) {
        assert_float_equal(c.pooled[i], want[i], 1e-5);
        positive += c.pooled[i] > 0;
    }
    assert_true(positive > CVB * CVF / 3 && positive < CVB * CVF - CVF); /* both sides of the ReLU are met */
    for (size_t f = 0; f < CVF; f++) assert_true(c.pooled[2 * CVF + f] == 0.0f && c.argmax[2 * CVF + f] == SIZE_MAX);
    float dx[CVN * CVE] = {0}, dweight[CVW * CVF * CVE] = {0}, dbias[CVF] = {0};
    reel_conv_maxpool_backward(dx, dweight, dbias, c.r, c.pooled, c.argmax, c.scratch, c.x, c.offsets, CVB, CVE,
                               c.weight, CVW, CVF);
    compare("conv input", c.x, dx, CVN * CVE, conv_objective, &c);
    compare("conv weight", c.weight, dweight, CVW * CVF * CVE, conv_objective, &c);
    compare("conv bias", c.bias, dbias, CVF, conv_objective, &c);
    /* a document's features depend on its own tokens only: moving another document's tokens changes nothing */
    float before[CVF];
    conv_objective(&c); /* compare() leaves the outputs of its last perturbed evaluation */
    memcpy(before, c.pooled + 1 * CVF, sizeof before);
    for (size_t i = 0; i < 7 * CVE; i++) c.x[i] += 0.5f;
    for (size_t i = 10 * CVE; i < CVN * CVE; i++) c.x[i] -= 0.5f;
    conv_objective(&c);
    assert_memory_equal(before, c.pooled + 1 * CVF, sizeof before);
}

/* ---------------- embedding bag (mean) ---------------- */
enum { EV = 6, EE = 5, EB = 4 };
typedef struct {
    float weight[EV * EE], out[EB * EE], r[EB * EE];
    uint32_t ids[9];
    size_t offsets[EB + 1];
} embag_ctx;
static double embag_objective(void *p) {
    embag_ctx *c = p;
    reel_embedding_bag_forward(c->out, c->ids, c->offsets, c->weight, NULL, EB, EE);
    return dot(c->out, c->r, EB * EE);
}
static void test_embedding_bag(void **state) {
    (void)state;
    /* documents of 3, 0 (empty), 4 and 2 tokens, with repeated ids inside a document */
    embag_ctx c = {.ids = {1, 3, 1, 0, 2, 5, 2, 4, 4}, .offsets = {0, 3, 3, 7, 9}};
    fill(c.weight, EV * EE, -1, 1, 5);
    fill(c.r, EB * EE, -1, 1, 6);
    float dweight[EV * EE] = {0};
    embag_objective(&c);
    for (size_t e = 0; e < EE; e++) assert_true(c.out[1 * EE + e] == 0.0f); /* the empty document */
    reel_embedding_bag_backward(dweight, c.r, c.ids, c.offsets, NULL, EB, EE);
    compare("embedding_bag weight", c.weight, dweight, EV * EE, embag_objective, &c);
}

/* ---------------- batch norm (training mode) ---------------- */
enum { BB = 6, BC = 3 };
typedef struct {
    float inp[BB * BC], gamma[BC], beta[BC], out[BB * BC], r[BB * BC], running_mean[BC], running_var[BC];
    float xhat[BB * BC], inv_std[BC];
    double scratch[2 * BC + 1];
    reel_batchnorm_cache cache;
    reel_comm comm;
} bn_ctx;
static double bn_objective(void *p) {
    bn_ctx *c = p;
    reel_batchnorm_forward_train(c->out, &c->cache, c->inp, c->gamma, c->beta, c->running_mean, c->running_var, NULL, BB, BC,
                                 0.1f, 1e-5f, &c->comm);
    return dot(c->out, c->r, BB * BC);
}
static void test_batchnorm(void **state) {
    (void)state;
    bn_ctx c;
    reel_comm_self(&c.comm);
    c.cache = (reel_batchnorm_cache){c.xhat, c.inv_std, c.scratch, 0};
    fill(c.inp, BB * BC, -2, 2, 7);
    fill(c.gamma, BC, 0.5f, 1.5f, 8);
    fill(c.beta, BC, -1, 1, 9);
    fill(c.r, BB * BC, -1, 1, 10);
    float dinp[BB * BC] = {0}, dgamma[BC] = {0}, dbeta[BC] = {0};
    bn_objective(&c);
    /* the normalised output has zero mean and unit (biased) variance per feature before scale/shift */
    for (size_t k = 0; k < BC; k++) {
        double mean = 0, var = 0;
        for (size_t b = 0; b < BB; b++) mean += c.xhat[b * BC + k] / BB;
        for (size_t b = 0; b < BB; b++) var += (c.xhat[b * BC + k] - mean) * (c.xhat[b * BC + k] - mean) / BB;
        assert_true(fabs(mean) < 1e-5 && fabs(var - 1) < 1e-3);
    }
    reel_batchnorm_backward(dinp, dgamma, dbeta, c.r, &c.cache, c.gamma, NULL, BB, BC, &c.comm);
    /* backward used the cache of the last forward; the objective re-runs forward, which rewrites it
     * identically, so comparing afterwards is sound */
    compare("batchnorm input", c.inp, dinp, BB * BC, bn_objective, &c);
    compare("batchnorm gamma", c.gamma, dgamma, BC, bn_objective, &c);
    compare("batchnorm beta", c.beta, dbeta, BC, bn_objective, &c);
}

static void test_batchnorm_eval_matches_running_stats(void **state) {
    (void)state;
    float inp[2 * 2] = {1, 2, 3, 4}, gamma[2] = {2, 1}, beta[2] = {0.5f, -1}, mean[2] = {1, 3}, var[2] = {4, 1};
    float out[4];
    reel_batchnorm_forward_eval(out, inp, gamma, beta, mean, var, 2, 2, 0.0f);
    assert_float_equal(out[0], 2 * (1 - 1) / 2.0f + 0.5f, 1e-6);
    assert_float_equal(out[1], 1 * (2 - 3) / 1.0f - 1, 1e-6);
    assert_float_equal(out[2], 2 * (3 - 1) / 2.0f + 0.5f, 1e-6);
    assert_float_equal(out[3], 1 * (4 - 3) / 1.0f - 1, 1e-6);
}

/* ---------------- relu and dropout ---------------- */
enum { RN = 12 };
typedef struct {
    float inp[RN], out[RN], r[RN], mask[RN];
} elementwise_ctx;
static double relu_objective(void *p) {
    elementwise_ctx *c = p;
    reel_relu_forward(c->out, c->inp, RN);
    return dot(c->out, c->r, RN);
}
static double dropout_objective(void *p) {
    elementwise_ctx *c = p;
    reel_dropout_forward(c->out, c->inp, c->mask, RN);
    return dot(c->out, c->r, RN);
}
static void test_relu_dropout(void **state) {
    (void)state;
    elementwise_ctx c;
    fill(c.inp, RN, -1, 1, 11);
    for (size_t i = 0; i < RN; i++) /* keep away from the kink at 0, where the derivative is undefined */
        if (fabsf(c.inp[i]) < 0.05f) c.inp[i] = 0.3f;
    fill(c.r, RN, -1, 1, 12);
    float dinp[RN] = {0};
    relu_objective(&c);
    reel_relu_backward(dinp, c.r, c.inp, RN);
    compare("relu input", c.inp, dinp, RN, relu_objective, &c);

    uint64_t samples[3] = {7, 8, 9};
    reel_dropout_mask(c.mask, samples, 3, 4, 0.5f, 42, 1, 0);
    size_t zeros = 0;
    for (size_t i = 0; i < RN; i++) {
        assert_true(c.mask[i] == 0.0f || c.mask[i] == 2.0f);
        zeros += c.mask[i] == 0.0f;
    }
    assert_true(zeros > 0 && zeros < RN);
    memset(dinp, 0, sizeof dinp);
    reel_dropout_backward(dinp, c.r, c.mask, RN);
    compare("dropout input", c.inp, dinp, RN, dropout_objective, &c);
}

static void test_dropout_mask_keyed_by_sample(void **state) {
    (void)state;
    /* the mask of sample 8 is the same whether it is alone or the second row of a batch */
    uint64_t batch[2] = {7, 8}, alone[1] = {8};
    float in_batch[2 * 64], by_itself[64];
    reel_dropout_mask(in_batch, batch, 2, 64, 0.5f, 42, 3, 0);
    reel_dropout_mask(by_itself, alone, 1, 64, 0.5f, 42, 3, 0);
    assert_memory_equal(in_batch + 64, by_itself, sizeof by_itself);
    /* and it changes with the epoch */
    reel_dropout_mask(by_itself, alone, 1, 64, 0.5f, 42, 4, 0);
    assert_memory_not_equal(in_batch + 64, by_itself, sizeof by_itself);
    /* the rate is close to p over many units */
    float big[4096];
    reel_dropout_mask(big, alone, 1, 4096, 0.3f, 42, 0, 0);
    size_t zeros = 0;
    for (size_t i = 0; i < 4096; i++) zeros += big[i] == 0.0f;
    assert_true(fabs(zeros / 4096.0 - 0.3) < 0.03);
}

/* ---------------- binary cross-entropy on logits ---------------- */
enum { LN = 6 };
typedef struct {
    float logits[LN], labels[LN];
} bce_ctx;
static double bce_objective(void *p) {
    bce_ctx *c = p;
    return reel_bce_logits(NULL, c->logits, c->labels, LN, 1.0f);
}
static void test_bce(void **state) {
    (void)state;
    bce_ctx c = {{-3, -0.5f, 0, 0.7f, 2.5f, 8}, {0, 1, 1, 0, 1, 0}};
    float dlogits[LN];
    reel_bce_logits(dlogits, c.logits, c.labels, LN, 1.0f);
    compare("bce logits", c.logits, dlogits, LN, bce_objective, &c);
    /* the reference value for one logit: -log(sigmoid(0.7)) for label 1 */
    float z = 0.7f, y = 1;
    assert_float_equal(reel_bce_logits(NULL, &z, &y, 1, 1), log1p(exp(-0.7)), 1e-6);
    /* huge logits stay finite */
    float big[2] = {1000, -1000}, labels[2] = {0, 1};
    assert_float_equal(reel_bce_logits(NULL, big, labels, 2, 1), 2000, 1e-3);
}

/* ---------------- softmax cross-entropy ---------------- */
typedef struct {
    float logits[3 * 4], labels[3];
} softmax_ctx;
static double softmax_objective(void *p) {
    softmax_ctx *c = p;
    return reel_softmax_ce(NULL, c->logits, c->labels, 3, 4, 1.0f);
}
static void test_softmax_ce(void **state) {
    (void)state;
    softmax_ctx c = {{0.5f, -1, 2, 0.1f, 3, 3, -2, 0, -0.3f, 0.2f, 0.1f, 40}, {2, 0, 3}};
    float dlogits[12];
    reel_softmax_ce(dlogits, c.logits, c.labels, 3, 4, 1.0f);
    compare("softmax ce logits", c.logits, dlogits, 12, softmax_objective, &c);
    /* reference: uniform logits over K classes cost log K each */
    float flat[4] = {0.7f, 0.7f, 0.7f, 0.7f}, label[1] = {1};
    assert_float_equal(reel_softmax_ce(NULL, flat, label, 1, 4, 1.0f), log(4.0), 1e-6);
    /* with K = 2, softmax cross-entropy equals binary cross-entropy on the difference of the logits */
    float pair[2] = {-0.4f, 1.1f}, one = 1, difference = 1.5f;
    assert_float_equal(reel_softmax_ce(NULL, pair, &one, 1, 2, 1.0f), reel_bce_logits(NULL, &difference, &one, 1, 1.0f), 1e-6);
}

/* ---------------- KL divergence between two sets of logits ---------------- */
typedef struct {
    float p[3 * 4], q[3 * 4];
    size_t K;
} kl_ctx;
static double kl_objective(void *ctx) {
    kl_ctx *c = ctx;
    return reel_kl_logits(NULL, c->p, c->q, 3, c->K, 1.0f);
}
/* The gradient with respect to q's logits by finite differences (K = 4 softmax and K = 1 sigmoid), and
 * the values against sums written out from the definition in double. */
static void test_kl(void **state) {
    (void)state;
    kl_ctx c = {{0.5f, -1, 2, 0.1f, 3, 3, -2, 0, -0.3f, 0.2f, 0.1f, 6}, {0.1f, 0.4f, 1, -1, 2, 3.5f, -1, 0.5f, 0, 0, 0, 0}, 4};
    float dq[12];
    reel_kl_logits(dq, c.p, c.q, 3, 4, 1.0f);
    compare("kl softmax logits", c.q, dq, 12, kl_objective, &c);
    double want = 0;
    for (size_t b = 0; b < 3; b++) {
        double sp = 0, sq = 0;
        for (size_t k = 0; k < 4; k++) sp += exp(c.p[b * 4 + k]), sq += exp(c.q[b * 4 + k]);
        for (size_t k = 0; k < 4; k++) {
            double p = exp(c.p[b * 4 + k]) / sp, q = exp(c.q[b * 4 + k]) / sq;
            want += p * log(p / q);
        }
    }
    assert_float_equal(kl_objective(&c), want, 1e-6);
    kl_ctx one = {{-2, 0.3f, 5}, {1, 0.3f, -4}, 1};
    reel_kl_logits(dq, one.p, one.q, 3, 1, 1.0f);
    compare("kl sigmoid logits", one.q, dq, 3, kl_objective, &one);
    want = 0;
    for (size_t b = 0; b < 3; b++) {
        double p = 1 / (1 + exp(-one.p[b])), q = 1 / (1 + exp(-one.q[b]));
        want += p * log(p / q) + (1 - p) * log((1 - p) / (1 - q));
    }
    assert_float_equal(kl_objective(&one), want, 1e-6);
    /* a distribution against itself costs nothing and pulls nowhere */
    assert_float_equal(reel_kl_logits(dq, c.p, c.p, 3, 4, 1.0f), 0.0, 1e-12);
    for (size_t i = 0; i < 12; i++) assert_float_equal(dq[i], 0.0, 1e-7);
}

/* ---------------- decoder fused with softmax cross-entropy ---------------- */
/* 11 rows (3 of them padding) over 9 classes, in slices of 3 rows: the slices cut across padding, and
 * the last one is partial. The loss is checked against softmax_ce on logits made the plain way. */
enum { DN = 11, DD = 4, DK = 9, DSLICE = 3 };
typedef struct {
    float features[DN * DD], weight[DK * DD], bias[DK];
    uint32_t targets[DN];
    uint8_t mask[DN];
    float *scratch;
} decoder_ctx;
static double decoder_objective(void *p) {
    decoder_ctx *c = p;
    return reel_decoder_softmax(NULL, NULL, NULL, NULL, c->features, c->weight, c->bias, c->targets, c->mask, DN, DD,
                                DK, 1.0f, c->scratch, DSLICE);
}
static void test_decoder_softmax(void **state) {
    (void)state;
    decoder_ctx c = {.targets = {0, 3, 8, 8, 2, 5, 1, 7, 4, 6, 0}, .mask = {1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1}};
    c.scratch = calloc(reel_decoder_scratch_floats(DSLICE, DD, DK), sizeof(float));
    fill(c.features, DN * DD, -1.5f, 1.5f, 60);
    fill(c.weight, DK * DD, -1, 1, 61);
    fill(c.bias, DK, -0.5f, 0.5f, 62);
    /* three rows predict their target, so the count of right predictions is tested too */
    for (size_t n = 0; n < 5; n += 2) {
        float logits[DK];
        reel_linear_forward(logits, c.features + n * DD, c.weight, c.bias, 1, DD, DK);
        size_t best = 0;
        for (size_t k = 1; k < DK; k++)
            if (logits[k] > logits[best]) best = k;
        c.targets[n] = (uint32_t)best;
    }
    /* garbage in padded rows must not matter */
    for (size_t d = 0; d < DD; d++) c.features[2 * DD + d] = 1e30f;
    float dfeatures[DN * DD], dweight[DK * DD] = {0}, dbias[DK] = {0};
    double correct = 0;
    double loss = reel_decoder_softmax(dfeatures, dweight, dbias, &correct, c.features, c.weight, c.bias, c.targets,
                                       c.mask, DN, DD, DK, 1.0f, c.scratch, DSLICE);
    /* the reference: every valid row's logits, then softmax_ce and the argmax */
    double expected = 0, expected_correct = 0;
    for (size_t n = 0; n < DN; n++) {
        if (!c.mask[n]) continue;
        float logits[DK], label = (float)c.targets[n];
        reel_linear_forward(logits, c.features + n * DD, c.weight, c.bias, 1, DD, DK);
        expected += reel_softmax_ce(NULL, logits, &label, 1, DK, 1.0f);
        size_t best = 0;
        for (size_t k = 1; k < DK; k++)
            if (logits[k] > logits[best]) best = k;
        expected_correct += best == c.targets[n];
    }
    printf("decoder loss %.9g, reference %.9g; %g of 8 rows right\n", loss, expected, correct);
    assert_true(fabs(loss - expected) <= 1e-5 * fabs(expected));
    assert_true(correct == expected_correct && correct == 2); /* rows 0 and 4 (row 2 is padding) */
    for (size_t d = 0; d < DD; d++) assert_true(dfeatures[2 * DD + d] == 0.0f && dfeatures[5 * DD + d] == 0.0f);
    for (size_t d = 0; d < DD; d++) c.features[2 * DD + d] = 0.25f; /* finite differences need finite values */
    compare("decoder features", c.features, dfeatures, DN * DD, decoder_objective, &c);
    compare("decoder weight", c.weight, dweight, DK * DD, decoder_objective, &c);
    compare("decoder bias", c.bias, dbias, DK, decoder_objective, &c);
    /* the scale multiplies every gradient and nothing else */
    float scaled[DN * DD], dw2[DK * DD] = {0};
    double loss2 = reel_decoder_softmax(scaled, dw2, NULL, NULL, c.features, c.weight, c.bias, c.targets, c.mask, DN, DD,
                                        DK, 0.25f, c.scratch, DSLICE);
    assert_true(fabs(loss2 - decoder_objective(&c)) < 1e-9);
    for (size_t i = 0; i < DN * DD; i++) assert_true(fabs(scaled[i] - 0.25f * dfeatures[i]) <= 1e-6);
    free(c.scratch);
}

/* ---------------- the sampled softmax ---------------- */
/* The decoder rows of above, 5 candidates of 9 classes with a duplicate (4 twice) and candidates that
 * are some rows' targets (accidental hits, left out for those rows); the loss against a plain
 * computation of the same formula, and finite differences of every input. */
enum { SS = 5 };
static const uint32_t sampled_candidates[SS] = {4, 7, 4, 0, 8};
static float sampled_log_expected[SS];
static double sampled_objective(void *p) {
    decoder_ctx *c = p;
    float dfeatures[DN * DD], dweight[DK * DD] = {0}, dbias[DK] = {0};
    return reel_decoder_sampled(dfeatures, dweight, dbias, c->features, c->weight, c->bias, c->targets, c->mask, DN, DD,
                                DK, sampled_candidates, sampled_log_expected, SS, 1.0f, c->scratch, DSLICE);
}
static void test_sampled_softmax(void **state) {
    (void)state;
    decoder_ctx c = {.targets = {0, 3, 8, 8, 2, 5, 1, 7, 4, 6, 0}, .mask = {1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1}};
    c.scratch = calloc(reel_sampled_scratch_floats(DSLICE, DD, SS), sizeof(float));
    for (size_t j = 0; j < SS; j++) sampled_log_expected[j] = (float)log(SS * reel_sampled_probability(sampled_candidates[j], DK));
    fill(c.features, DN * DD, -1.5f, 1.5f, 63);
    fill(c.weight, DK * DD, -1, 1, 64);
    fill(c.bias, DK, -0.5f, 0.5f, 65);
    float dfeatures[DN * DD], dweight[DK * DD] = {0}, dbias[DK] = {0};
    double loss = reel_decoder_sampled(dfeatures, dweight, dbias, c.features, c.weight, c.bias, c.targets, c.mask, DN, DD,
                                       DK, sampled_candidates, sampled_log_expected, SS, 1.0f, c.scratch, DSLICE);
    double expected = 0;
    for (size_t n = 0; n < DN; n++) {
        if (!c.mask[n]) continue;
        float logits[DK];
        reel_linear_forward(logits, c.features + n * DD, c.weight, c.bias, 1, DD, DK);
        uint32_t t = c.targets[n];
        double zt = logits[t] - log(SS * reel_sampled_probability(t, DK)), sum = exp(zt);
        for (size_t j = 0; j < SS; j++)
            if (sampled_candidates[j] != t) sum += exp(logits[sampled_candidates[j]] - sampled_log_expected[j]);
        expected += log(sum) - zt;
    }
    printf("sampled loss %.9g, reference %.9g\n", loss, expected);
    assert_true(fabs(loss - expected) <= 1e-5 * fabs(expected));
    /* rows the candidates never touch get no gradient: classes 1, 2, 3, 5, 6 only as targets */
    compare("sampled features", c.features, dfeatures, DN * DD, sampled_objective, &c);
    compare("sampled weight", c.weight, dweight, DK * DD, sampled_objective, &c);
    compare("sampled bias", c.bias, dbias, DK, sampled_objective, &c);
    /* the candidates: the same on every call for a step, from the log-uniform distribution */
    uint32_t a[4096], b[4096];
    float la[4096], lb[4096];
    reel_sampled_candidates(a, la, 4096, 8003, 42, 3, 17);
    reel_sampled_candidates(b, lb, 4096, 8003, 42, 3, 17);
    assert_memory_equal(a, b, sizeof a);
    size_t low = 0;
    for (size_t j = 0; j < 4096; j++) {
        assert_true(a[j] < 8003);
        low += a[j] < 100;
    }
    /* q puts log(101) / log(8004) = 51% of its mass on the 100 most frequent ids */
    printf("sampled candidates below id 100: %zu of 4096 (expected about 2100)\n", low);
    assert_true(low > 1950 && low < 2250);
    reel_sampled_candidates(b, lb, 4096, 8003, 42, 3, 18);
    assert_true(memcmp(a, b, sizeof a) != 0);
    free(c.scratch);
}

/* ---------------- the whole bag-of-words model ---------------- */
static void check_model(int batch_norm, double dropout, double word_dropout) {
    reel_config cfg;
    reel_config_defaults(&cfg);
    cfg.model.vocab_size = 9;
    cfg.model.embed_dim = 4;
    config_set(&cfg, "model.hidden_dim=5");
    config_set(&cfg, "model.batch_norm=%d", batch_norm);
    config_set(&cfg, "model.dropout=%.17g", dropout);
    config_set(&cfg, "model.word_dropout=%.17g", word_dropout);
    reel_model *model;
    reel_error err;
    assert_int_equal(reel_model_create(&model, &cfg, 4, &err), 0);
    model->ops->init(model, 7);
    /* small embeddings would make the mean tiny; spread them so every layer sees O(1) values */
    reel_tensor_info *emb = &model->params.tensors[0];
    fill(model->params.data + emb->offset, emb->count, -1, 1, 13);
    static const uint32_t ids[] = {3, 4, 5, 1, 8, 8, 2, 6, 7, 3, 0, 5};
    static const size_t offsets[] = {0, 3, 5, 9, 12};
    static const float labels[] = {1, 0, 1, 0};
    static const uint64_t samples[] = {10, 11, 12, 13};
    reel_batch batch = {.size = 4, .ids = ids, .offsets = offsets, .labels = labels, .sample_index = samples, .epoch = 2};
    char label[32];
    snprintf(label, sizeof label, "bow%s%s", batch_norm ? "+bn" : "", word_dropout > 0 ? "+wd" : "");
    compare_model_gradients(label, model, &batch);
    reel_model_destroy(model);
}

static void test_bow_model(void **state) {
    (void)state;
    check_model(1, 0.5, 0.0);
    check_model(0, 0.0, 0.0);
    check_model(1, 0.5, 0.4); /* word dropout: the same tokens are left out in every forward of this batch */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),          cmocka_unit_test(test_embedding_bag),
        cmocka_unit_test(test_batchnorm),       cmocka_unit_test(test_batchnorm_eval_matches_running_stats),
        cmocka_unit_test(test_relu_dropout),    cmocka_unit_test(test_dropout_mask_keyed_by_sample),
        cmocka_unit_test(test_bce),             cmocka_unit_test(test_softmax_ce),             cmocka_unit_test(test_kl),
        cmocka_unit_test(test_conv_maxpool),
        cmocka_unit_test(test_bow_model),
        cmocka_unit_test(test_decoder_softmax),         cmocka_unit_test(test_sampled_softmax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
