/* One direction of one recurrent layer. The input projection of every time step is one large product
 * (T*B rows); only the recurrent product h_{t-1} . W_hh^T is done step by step. In backward, the step
 * loop only propagates dh through W_hh; the weight gradients are single products over all steps once
 * the loop is done. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reel/check.h"
#include "reel/exchange.h"
#include "reel/layers.h"

#include "cells.h"

size_t reel_cell_gates(reel_cell cell) { return cell == REEL_CELL_LSTM ? 4 : cell == REEL_CELL_GRU ? 3 : 1; }

void reel_recurrent_cache_alloc(reel_recurrent_cache *cache, reel_cell cell, size_t rows, size_t B, size_t H) {
    memset(cache, 0, sizeof *cache);
    size_t G = reel_cell_gates(cell), steps = rows;
    cache->cell = cell;
    cache->rows = rows;
    cache->B = B;
    cache->H = H;
    cache->gates = reel_calloc(steps * G * H, sizeof(float));
    if (cell == REEL_CELL_GRU) cache->hidden_part = reel_calloc(steps * H, sizeof(float));
    if (cell == REEL_CELL_LSTM) cache->cell_state = reel_calloc(steps * H, sizeof(float));
    cache->step = reel_calloc((B > 0 ? B : 1) * G * H, sizeof(float)); /* >= G*H: also holds bias sums */
    /* dgates_x / dgates_h are allocated by the first backward: evaluation never needs them, and they are
     * as large as the gates themselves. */
    float **per_row[] = {&cache->dh, &cache->dh_prev, &cache->dc, &cache->dc_prev, &cache->zeros};
    for (size_t i = 0; i < sizeof per_row / sizeof per_row[0]; i++) *per_row[i] = reel_calloc(B * H, sizeof(float));
}

void reel_recurrent_cache_free(reel_recurrent_cache *cache) {
    if (cache->dgates_h != cache->dgates_x) free(cache->dgates_h);
    float *buffers[] = {cache->gates, cache->hidden_part, cache->cell_state, cache->step, cache->dgates_x,
                        cache->dh, cache->dh_prev, cache->dc, cache->dc_prev, cache->zeros};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
    memset(cache, 0, sizeof *cache);
}

/* sum (cols) = the column sums of x (rows, cols) */
static void column_sums(float *sum, const float *x, size_t rows, size_t cols) {
    memset(sum, 0, cols * sizeof *sum);
    for (size_t row = 0; row < rows; row++)
        for (size_t j = 0; j < cols; j++) sum[j] += x[row * cols + j];
}

/* The step before step t in processing order; *exists = 0 at the first step, whose previous state is
 * the initial one (cache->h0, or zeros). */
static size_t previous_step(size_t t, size_t T, int reverse, int *exists) {
    *exists = reverse ? t + 1 < T : t > 0;
    return reverse ? t + 1 : t - 1;
}

static const float *initial_h(const reel_recurrent_cache *cache) { return cache->h0 ? cache->h0 : cache->zeros; }
static const float *initial_c(const reel_recurrent_cache *cache) { return cache->c0 ? cache->c0 : cache->zeros; }

void reel_recurrent_input_bias(float *bias, reel_cell cell, const float *b_ih, const float *b_hh, size_t H) {
    size_t GH = reel_cell_gates(cell) * H;
    /* LSTM and RNN add the two pre-activations before any non-linearity, so both biases can go into the
     * input projection and each step's recurrent product is accumulated straight into that step's rows
     * (beta = 1): no per-step bias broadcast, no second buffer to read. The GRU needs h . W_hn + b_hn on
     * its own (the reset gate scales it), so its recurrent bias stays in the step. */
    for (size_t j = 0; j < GH; j++) bias[j] = b_ih[j] + (cell == REEL_CELL_GRU ? 0.0f : b_hh[j]);
}

void reel_recurrent_forward_steps(reel_recurrent_cache *cache, float *out, const size_t *lengths, const float *w_hh,
                                  const float *b_hh, size_t T, size_t B, size_t H, int reverse) {
    REEL_CHECK(T * B <= cache->rows && B <= cache->B && H == cache->H, NULL, "recurrent cache too small");
    const reel_cell cell = cache->cell;
    const size_t G = reel_cell_gates(cell), GH = G * H;
    const int fused = cell != REEL_CELL_GRU;
    for (size_t k = 0; k < T; k++) {
        size_t t = reverse ? T - 1 - k : k;
        int has_prev;
        size_t p = previous_step(t, T, reverse, &has_prev);
        const float *h_prev = has_prev ? out + p * B * H : initial_h(cache);
        const float *c_prev = cell != REEL_CELL_LSTM ? cache->zeros : has_prev ? cache->cell_state + p * B * H : initial_c(cache);
        float *step_gates = cache->gates + t * B * GH;
        if (!fused) /* step (B, G*H) = h_prev . w_hh^T + b_hh */
            reel_linear_forward(cache->step, h_prev, w_hh, b_hh, B, H, GH);
        else if ((has_prev || cache->h0) && B > 0) /* step_gates (B, G*H) += h_prev (B, H) . w_hh^T; a zero state adds nothing */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)GH, (int)H, 1.0f, h_prev, (int)H,
                        w_hh, (int)H, 1.0f, step_gates, (int)GH);
        for (size_t b = 0; b < B; b++) {
            float *g = step_gates + b * GH;
            const float *hp = h_prev + b * H, *cp = c_prev + b * H;
            float *h = out + (t * B + b) * H;
            float *c = cell == REEL_CELL_LSTM ? cache->cell_state + (t * B + b) * H : NULL;
            if (t >= lengths[b]) { /* past the end: keep the state */
                memcpy(h, hp, H * sizeof *h);
                if (c) memcpy(c, cp, H * sizeof *c);
                memset(g, 0, GH * sizeof *g);
                if (cell == REEL_CELL_GRU) memset(cache->hidden_part + (t * B + b) * H, 0, H * sizeof(float));
                continue;
            }
            if (cell == REEL_CELL_LSTM)
                reel_lstm_cell_forward(g, cp, c, h, H);
            else if (cell == REEL_CELL_GRU)
                reel_gru_cell_forward(g, cache->step + b * GH, hp, cache->hidden_part + (t * B + b) * H, h, H);
            else
                reel_rnn_cell_forward(g, h, H);
        }
    }
}

void reel_recurrent_forward(reel_recurrent_cache *cache, float *out, const float *inp, const size_t *lengths,
                            const float *w_ih, const float *w_hh, const float *b_ih, const float *b_hh, size_t T,
                            size_t B, size_t C, size_t H, int reverse) {
    REEL_CHECK(T * B <= cache->rows && B <= cache->B && H == cache->H, NULL, "recurrent cache too small");
    /* all input projections at once: gates (T*B, G*H) = inp . w_ih^T + bias; cache->step holds the bias
     * until the steps need it */
    reel_recurrent_input_bias(cache->step, cache->cell, b_ih, b_hh, H);
    reel_linear_forward(cache->gates, inp, w_ih, cache->step, T * B, C, reel_cell_gates(cache->cell) * H);
    reel_recurrent_forward_steps(cache, out, lengths, w_hh, b_hh, T, B, H, reverse);
}

void reel_recurrent_backward_steps(reel_recurrent_cache *cache, float *dw_hh, float *db_ih, float *db_hh,
                                   const float *dout, const float *out, const size_t *lengths, const float *w_hh,
                                   size_t T, size_t B, size_t H, int reverse) {
    const reel_cell cell = cache->cell;
    const size_t G = reel_cell_gates(cell), GH = G * H;
    if (!cache->dgates_x) {
        cache->dgates_x = reel_calloc(cache->rows * GH, sizeof(float));
        cache->dgates_h = cell == REEL_CELL_GRU ? reel_calloc(cache->rows * GH, sizeof(float)) : cache->dgates_x;
    }
    float *dh = cache->dh, *dh_prev = cache->dh_prev, *dc = cache->dc, *dc_prev = cache->dc_prev;
    memset(dh, 0, B * H * sizeof *dh);
    memset(dc, 0, B * H * sizeof *dc);
    /* backward visits the steps in the opposite order of forward */
    for (size_t k = 0; k < T; k++) {
        reel_exchange_poll(); /* buckets of the gradient started earlier move on while this layer works */
        size_t t = reverse ? k : T - 1 - k;
        int has_prev;
        size_t p = previous_step(t, T, reverse, &has_prev);
        const float *h_prev = has_prev ? out + p * B * H : initial_h(cache);
        const float *c_prev = cell != REEL_CELL_LSTM ? cache->zeros : has_prev ? cache->cell_state + p * B * H : initial_c(cache);
        memset(dh_prev, 0, B * H * sizeof *dh_prev);
        for (size_t b = 0; b < B; b++) {
            float *dgx = cache->dgates_x + (t * B + b) * GH, *dgh = cache->dgates_h + (t * B + b) * GH;
            float *dhb = dh + b * H, *dcb = dc + b * H, *dhp = dh_prev + b * H, *dcp = dc_prev + b * H;
            const float *dob = dout + (t * B + b) * H;
            for (size_t j = 0; j < H; j++) dhb[j] += dob[j];
            if (t >= lengths[b]) { /* the state was carried: so is its gradient */
                memcpy(dhp, dhb, H * sizeof *dhp);
                if (cell == REEL_CELL_LSTM) memcpy(dcp, dcb, H * sizeof *dcp);
                memset(dgx, 0, GH * sizeof *dgx);
                if (dgh != dgx) memset(dgh, 0, GH * sizeof *dgh);
                continue;
            }
            const float *g = cache->gates + (t * B + b) * GH, *hp = h_prev + b * H, *cp = c_prev + b * H;
            if (cell == REEL_CELL_LSTM)
                reel_lstm_cell_backward(dgx, dcp, dhb, dcb, g, cache->cell_state + (t * B + b) * H, cp, H);
            else if (cell == REEL_CELL_GRU)
                reel_gru_cell_backward(dgx, dgh, dhp, dhb, g, cache->hidden_part + (t * B + b) * H, hp, H);
            else
                reel_rnn_cell_backward(dgx, dhb, g, H);
        }
        /* dh_prev (B, H) += dgates_h[t] (B, G*H) . w_hh (G*H, H); the first step's goes nowhere */
        if (has_prev) reel_linear_backward(dh_prev, NULL, NULL, cache->dgates_h + t * B * GH, NULL, w_hh, B, H, GH);
        float *swap = dh;
        dh = dh_prev, dh_prev = swap;
        swap = dc;
        dc = dc_prev, dc_prev = swap;
    }
    /* Weight gradients over all steps at once. The recurrent input of step t is the output of the step
     * before it in processing order; the first step's is the initial state (added below when one was
     * given; zeros contribute nothing), so the products
     * pair the time-shifted, still contiguous, slices of dgates_h and out. */
    if (T > 1) {
        const float *dg = reverse ? cache->dgates_h : cache->dgates_h + B * GH;
        const float *prev = reverse ? out + B * H : out;
        reel_linear_backward(NULL, dw_hh, NULL, dg, prev, w_hh, (T - 1) * B, H, GH);
    }
    /* and the first step's, when it started from a given state */
    if (cache->h0 && T > 0) {
        size_t first = reverse ? T - 1 : 0;
        reel_linear_backward(NULL, dw_hh, NULL, cache->dgates_h + first * B * GH, cache->h0, w_hh, B, H, GH);
    }
    /* Bias gradients: column sums of the pre-activation gradients, summed once when both are the same
     * buffer (LSTM, RNN). cache->step (B*G*H >= G*H floats) is free during backward. */
    float *column_sum = cache->step;
    column_sums(column_sum, cache->dgates_h, T * B, GH);
    for (size_t j = 0; j < GH; j++) db_hh[j] += column_sum[j];
    if (cache->dgates_h != cache->dgates_x) column_sums(column_sum, cache->dgates_x, T * B, GH);
    for (size_t j = 0; j < GH; j++) db_ih[j] += column_sum[j];
}

void reel_recurrent_backward(reel_recurrent_cache *cache, float *dinp, float *dw_ih, float *dw_hh, float *db_ih,
                             float *db_hh, const float *dout, const float *out, const float *inp,
                             const size_t *lengths, const float *w_ih, const float *w_hh, size_t T, size_t B,
                             size_t C, size_t H, int reverse) {
    reel_recurrent_backward_steps(cache, dw_hh, db_ih, db_hh, dout, out, lengths, w_hh, T, B, H, reverse);
    /* dinp (T*B, C) += dgates_x . w_ih; dw_ih (G*H, C) += dgates_x^T . inp */
    reel_linear_backward(dinp, dw_ih, NULL, cache->dgates_x, inp, w_ih, T * B, C, reel_cell_gates(cache->cell) * H);
}
