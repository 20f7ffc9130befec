/* Finite-difference gradient checking shared by the gradient tests (included by test_*.c, after
 * cmocka.h).
 *
 * A check builds a scalar objective L = sum_i out_i * R_i with fixed random R, runs the analytic backward
 * with dout = R, and compares every gradient entry (or a sample of them, compare_sampled) with the central
 * difference (L(x+h) - L(x-h)) / (the distance the float entry really moved, about 2h), accumulated in
 * double. An entry passes when |analytic - numeric| <= 2e-3 + 2e-2 * |numeric|; the gradients are of order
 * 0.1-1, so a missing term, a wrong sign or a wrong factor fails by orders of magnitude more than float
 * rounding does. */
#ifndef REEL_TEST_FDCHECK_H
#define REEL_TEST_FDCHECK_H

#include <math.h>
#include <stdio.h>

#include <stdlib.h>
#include <string.h>

#include "reel/comm.h"
#include "reel/model.h"
#include "reel/rng.h"

static const double fd_step = 1e-3, fd_abs_tol = 2e-3, fd_rel_tol = 2e-2;

static void fill(float *x, size_t n, float lo, float hi, uint32_t stream) {
    for (size_t i = 0; i < n; i++) {
        uint32_t w[4];
        reel_rng_block(w, 1234, 99, stream, (uint32_t)i, 0);
        x[i] = lo + (hi - lo) * reel_rng_unit_float(w[0]);
    }
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

typedef double (*objective_fn)(void *ctx);

/* Entry i of x: the central difference of objective(ctx), divided by the step the float actually took
 * (around 1e4 a float moves in steps of 2^-10, so saved +- fd_step lands 2.3% short of 2 fd_step apart,
 * more than the relative tolerance), against the analytic grad[i]. Returns error / allowed (above 1 fails,
 * and is printed; *failures counts them) and stores the difference in *numeric. */
static double fd_check_entry(const char *what, float *x, const float *grad, size_t i, objective_fn objective,
                             void *ctx, double *numeric, size_t *failures) {
    float saved = x[i];
    x[i] = (float)(saved + fd_step);
    double up = objective(ctx), high = x[i];
    x[i] = (float)(saved - fd_step);
    double down = objective(ctx), low = x[i];
    x[i] = saved;
    *numeric = (up - down) / (high - low);
    double error = fabs(grad[i] - *numeric), allowed = fd_abs_tol + fd_rel_tol * fabs(*numeric);
    if (error > allowed && (*failures)++ < 5)
        fprintf(stderr, "%s[%zu]: analytic %.6g numeric %.6g\n", what, i, grad[i], *numeric);
    return error / allowed;
}

/* Compares the analytic gradient grad of objective(ctx) with respect to x (n entries) with central
 * differences, and fails the test on any entry out of tolerance. */
static void compare(const char *what, float *x, const float *grad, size_t n, objective_fn objective, void *ctx) {
    double worst = 0, numeric;
    size_t failures = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fd_check_entry(what, x, grad, i, objective, ctx, &numeric, &failures));
    printf("%-34s %5zu entries, worst error / allowed = %.3f\n", what, n, worst);
    assert_int_equal(failures, 0);
}

/* compare() on up to max_entries entries of x spread over it (all of a smaller tensor): entry k of the
 * picks is one of the n / picks entries of its stretch, drawn. The sample must hold a gradient that is not
 * about zero, or the check would test nothing. */
static void compare_sampled(const char *what, float *x, const float *grad, size_t n, size_t max_entries,
                            objective_fn objective, void *ctx) {
    size_t picks = n < max_entries ? n : max_entries, failures = 0;
    double worst = 0, largest = 0, numeric;
    for (size_t k = 0; k < picks; k++) {
        size_t lo = k * n / picks, hi = (k + 1) * n / picks;
        uint32_t w[4];
        reel_rng_block(w, 4321, 5, (uint32_t)n, (uint32_t)k, 0);
        size_t i = lo + w[0] % (hi - lo);
        worst = fmax(worst, fd_check_entry(what, x, grad, i, objective, ctx, &numeric, &failures));
        largest = fmax(largest, fabs(numeric));
    }
    printf("%-44s %3zu of %4zu entries, worst error / allowed = %.3f\n", what, picks, n, worst);
    if (largest < 10 * fd_abs_tol)
        fail_msg("%s: every sampled gradient is below %g: the check tests nothing", what, 10 * fd_abs_tol);
    assert_int_equal(failures, 0);
}

/* Every tensor of params against its gradient (params->grad, filled by the caller's backward): all entries
 * when max_entries is 0, else compare_sampled's sample of each. */
static void compare_store_gradients(const char *label, reel_store *params, size_t max_entries, objective_fn objective,
                                    void *ctx) {
    for (size_t t = 0; t < params->num_tensors; t++) {
        char what[96];
        snprintf(what, sizeof what, "%s %s", label, params->tensors[t].name);
        float *x = reel_store_view(params, t);
        const float *grad = reel_store_grad_view(params, t);
        if (max_entries) compare_sampled(what, x, grad, params->tensors[t].count, max_entries, objective, ctx);
        else compare(what, x, grad, params->tensors[t].count, objective, ctx);
    }
}

/* Every parameter gradient of a whole model: the objective is sum of logits . R over a training forward
 * of batch (dropout masks are keyed by sample and epoch, so every forward of the batch draws the same). */
typedef struct {
    reel_model *model;
    const reel_batch *batch;
    float *logits, *r;
    reel_comm comm;
} fd_model_ctx;

static double fd_model_objective(void *p) {
    fd_model_ctx *c = p;
    reel_output out;
    c->model->ops->forward(c->model, c->batch, 1, &out, &c->comm);
    memcpy(c->logits, out.logits, c->batch->size * c->model->num_outputs * sizeof(float));
    return dot(c->logits, c->r, c->batch->size * c->model->num_outputs);
}

static void compare_parameter_gradients(const char *label, fd_model_ctx *c) {
    reel_store *params = &c->model->params;
    memset(params->grad, 0, params->num_floats * sizeof(float));
    fd_model_objective(c);
    c->model->ops->backward(c->model, c->batch, c->r, &c->comm);
    compare_store_gradients(label, params, 0, fd_model_objective, c);
}

/* Checks every parameter gradient; then, for a model whose embedded inputs can be perturbed
 * (adversarial training), every parameter gradient again with a perturbation added to each token's
 * embedding, and the gradient with respect to the perturbation itself. */
static void compare_model_gradients(const char *label, reel_model *model, const reel_batch *batch) {
    size_t outputs = batch->size * model->num_outputs;
    fd_model_ctx c = {model, batch, calloc(outputs, sizeof(float)), calloc(outputs, sizeof(float)), {0}};
    reel_comm_self(&c.comm);
    fill(c.r, outputs, -1, 1, 30);
    compare_parameter_gradients(label, &c);
    if (model->input_dim) {
        size_t count = batch->offsets[batch->size] * model->input_dim;
        float *delta = calloc(count, sizeof(float)), *input_grad = calloc(count, sizeof(float));
        fill(delta, count, -0.5f, 0.5f, 31);
        model->input_delta = delta;
        char what[96];
        snprintf(what, sizeof what, "%s (perturbed)", label);
        compare_parameter_gradients(what, &c);
        model->input_grad = input_grad;
        fd_model_objective(&c);
        model->ops->backward(model, batch, c.r, &c.comm);
        snprintf(what, sizeof what, "%s input perturbation", label);
        compare(what, delta, input_grad, count, fd_model_objective, &c);
        model->input_delta = NULL;
        model->input_grad = NULL;
        free(delta);
        free(input_grad);
    }
    free(c.logits);
    free(c.r);
}

#endif
