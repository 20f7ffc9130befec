/* Finite-difference gradient checking shared by the gradient tests (included by test_*.c, after
 * cmocka.h).
 *
 * A check builds a scalar objective L = sum_i out_i * R_i with fixed random R, runs the analytic backward
 * with dout = R, and compares every gradient entry with the central difference (L(x+h) - L(x-h)) / 2h,
 * accumulated in double (2h: the distance the float entry really moved). An entry passes when
 * |analytic - numeric| <= 2e-3 + 2e-2 * |numeric|; the gradients are of order 0.1-1, so a missing term, a
 * wrong sign or a wrong factor fails by orders of magnitude more than float rounding does. */
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

/* Compares the analytic gradient grad of objective(ctx) with respect to x (n entries) with central
 * differences, and fails the test on any entry out of tolerance. */
static void compare(const char *what, float *x, const float *grad, size_t n, objective_fn objective, void *ctx) {
    double worst = 0;
    size_t failures = 0;
    for (size_t i = 0; i < n; i++) {
        float saved = x[i];
        x[i] = (float)(saved + fd_step);
        double up = objective(ctx), high = x[i];
        x[i] = (float)(saved - fd_step);
        double down = objective(ctx), low = x[i];
        x[i] = saved;
        /* divided by the step the floats actually took: around 1e4 a float moves in steps of 2^-10, so
         * saved +- fd_step lands 2.3% short of 2 fd_step apart, more than the relative tolerance */
        double numeric = (up - down) / (high - low), error = fabs(grad[i] - numeric);
        double allowed = fd_abs_tol + fd_rel_tol * fabs(numeric);
        if (error / allowed > worst) worst = error / allowed;
        if (error > allowed && failures++ < 5)
            fprintf(stderr, "%s[%zu]: analytic %.6g numeric %.6g\n", what, i, grad[i], numeric);
    }
    printf("%-34s %5zu entries, worst error / allowed = %.3f\n", what, n, worst);
    assert_int_equal(failures, 0);
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
    for (size_t t = 0; t < params->num_tensors; t++) {
        char what[96];
        snprintf(what, sizeof what, "%s %s", label, params->tensors[t].name);
        compare(what, reel_store_view(params, t), reel_store_grad_view(params, t), params->tensors[t].count,
                fd_model_objective, c);
    }
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
