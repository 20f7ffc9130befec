/* One direction of one recurrent layer, on packed sequences (reel_packing in reel/layers.h): every buffer
 * of the cache holds the real positions only, step after step, each step's sequences longest first. The
 * input projection of all real positions is one large product; only the recurrent product of each step,
 * over the n[t] sequences still inside their document, is done step by step. In backward, the step loop
 * only propagates dh through W_hh; the weight gradients are single products over all real positions once
 * the loop is done. The caller's tensors stay padded (T, B, .); past its end a sequence keeps its state
 * there, as layers.h describes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reel/check.h"
#include "reel/gemm.h"
#include "reel/layers.h"

#include "cells.h"

size_t reel_cell_gates(reel_cell cell) { return cell == REEL_CELL_LSTM ? 4 : cell == REEL_CELL_GRU ? 3 : 1; }

/* ---- packing ---- */

void reel_packing_build(reel_packing *pk, const size_t *lengths, size_t T, size_t B) {
    if (B > pk->capacity_B || !pk->order) {
        free(pk->order), free(pk->length);
        pk->order = reel_malloc((B ? B : 1) * sizeof *pk->order);
        pk->length = reel_malloc((B ? B : 1) * sizeof *pk->length);
        pk->capacity_B = B;
    }
    if (T > pk->capacity_T || !pk->active) {
        free(pk->active), free(pk->offset);
        pk->active = reel_malloc((T ? T : 1) * sizeof *pk->active);
        pk->offset = reel_malloc((T + 1) * sizeof *pk->offset);
        pk->capacity_T = T;
    }
    pk->T = T, pk->B = B;
    /* a stable counting sort by length, longest first: count[L] sequences of length L (L <= T) */
    size_t *first = pk->offset; /* (T + 1) borrowed as the counts, rebuilt below */
    memset(first, 0, (T + 1) * sizeof *first);
    size_t N = 0;
    for (size_t b = 0; b < B; b++) {
        size_t L = lengths[b] < T ? lengths[b] : T;
        first[L]++;
        N += L;
    }
    /* first[L] = where the sequences of length L begin in the order: after every longer one */
    for (size_t L = T + 1, start = 0; L-- > 0;) {
        size_t count = first[L];
        first[L] = start;
        start += count;
    }
    for (size_t b = 0; b < B; b++) {
        size_t L = lengths[b] < T ? lengths[b] : T, i = first[L]++;
        pk->order[i] = b;
        pk->length[i] = L;
    }
    /* n[t] = the sequences longer than t, a prefix of the order */
    for (size_t t = 0, i = B; t < T; t++) {
        while (i > 0 && pk->length[i - 1] <= t) i--;
        pk->active[t] = i;
    }
    pk->offset[0] = 0;
    for (size_t t = 0; t < T; t++) pk->offset[t + 1] = pk->offset[t] + pk->active[t];
    pk->N = N;
    if (N > pk->capacity_N || !pk->padded) {
        free(pk->padded);
        pk->padded = reel_malloc((N ? N : 1) * sizeof *pk->padded);
        pk->capacity_N = N;
    }
    for (size_t t = 0; t < T; t++)
        for (size_t i = 0; i < pk->active[t]; i++) pk->padded[pk->offset[t] + i] = t * B + pk->order[i];
    pk->identity = N == T * B; /* every sequence T long: the order is the batch order, positions agree */
}

void reel_packing_free(reel_packing *pk) {
    free(pk->order);
    free(pk->length);
    free(pk->active);
    free(pk->offset);
    free(pk->padded);
    memset(pk, 0, sizeof *pk);
}

/* ---- the cache ---- */

void reel_recurrent_cache_alloc(reel_recurrent_cache *cache, reel_cell cell, size_t rows, size_t B, size_t H) {
    memset(cache, 0, sizeof *cache);
    size_t G = reel_cell_gates(cell);
    cache->cell = cell;
    cache->rows = rows;
    cache->B = B;
    cache->H = H;
    cache->gates = reel_calloc(rows * G * H, sizeof(float));
    if (cell == REEL_CELL_GRU) cache->hidden_part = reel_calloc(rows * H, sizeof(float));
    if (cell == REEL_CELL_LSTM) cache->cell_state = reel_calloc(rows * H, sizeof(float));
    cache->h_prev = reel_calloc(rows * H, sizeof(float));
    /* h, x and dx only for batches of uneven lengths, dgates_x / dgates_h only for backward: allocated
     * when first needed (evaluation never needs the gradients, which are as large as the gates). */
    cache->step = reel_calloc((B > 0 ? B : 1) * G * H, sizeof(float)); /* >= G*H: also holds bias sums */
    float **per_sequence[] = {&cache->dh, &cache->dh_prev, &cache->dc, &cache->dc_prev, &cache->zeros,
                              &cache->h0_packed, &cache->c0_packed, &cache->c_last};
    for (size_t i = 0; i < sizeof per_sequence / sizeof per_sequence[0]; i++)
        *per_sequence[i] = reel_calloc(B * H, sizeof(float));
}

void reel_recurrent_cache_free(reel_recurrent_cache *cache) {
    if (cache->dgates_h != cache->dgates_x) free(cache->dgates_h);
    float *buffers[] = {cache->gates, cache->hidden_part, cache->cell_state, cache->h, cache->h_prev, cache->x,
                        cache->dx, cache->step, cache->dgates_x, cache->dh, cache->dh_prev, cache->dc,
                        cache->dc_prev, cache->zeros, cache->h0_packed, cache->c0_packed, cache->c_last};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
    reel_packing_free(&cache->pack);
    memset(cache, 0, sizeof *cache);
}

void reel_recurrent_pack(reel_recurrent_cache *cache, const size_t *lengths, size_t T, size_t B) {
    REEL_CHECK(T * B <= cache->rows && B <= cache->B, NULL, "recurrent cache too small: %zu x %zu for %zu rows of %zu",
               T, B, cache->rows, cache->B);
    reel_packing_build(&cache->pack, lengths, T, B);
}

/* x and dx of width C (reel_recurrent_forward/backward on a packing that is not the identity) */
static void reserve_input(reel_recurrent_cache *cache, size_t C) {
    if (cache->x && cache->x_width == C) return;
    free(cache->x), free(cache->dx);
    cache->x = reel_calloc(cache->rows * C, sizeof(float));
    cache->dx = reel_calloc(cache->rows * C, sizeof(float));
    cache->x_width = C;
}

/* sum (cols) = the column sums of x (rows, cols) */
static void column_sums(float *sum, const float *x, size_t rows, size_t cols) {
    memset(sum, 0, cols * sizeof *sum);
    for (size_t row = 0; row < rows; row++)
        for (size_t j = 0; j < cols; j++) sum[j] += x[row * cols + j];
}

/* Step t in processing order: its n[t] sequences, of which the first *with_prev continue a step of
 * their own (whose first row is at packed position *prev_offset); the others start from the initial
 * state (the reverse direction reaches a shorter document's last token later than a longer one's). */
static size_t step_rows(const reel_packing *pk, size_t t, int reverse, size_t *with_prev, size_t *prev_offset) {
    size_t n = pk->active[t];
    if (!reverse) {
        *with_prev = t > 0 ? n : 0;
        *prev_offset = t > 0 ? pk->offset[t - 1] : 0;
    } else {
        *with_prev = t + 1 < pk->T ? pk->active[t + 1] : 0;
        *prev_offset = t + 1 < pk->T ? pk->offset[t + 1] : 0;
    }
    return n;
}

void reel_recurrent_input_bias(float *bias, reel_cell cell, const float *b_ih, const float *b_hh, size_t H) {
    size_t GH = reel_cell_gates(cell) * H;
    /* LSTM and RNN add the two pre-activations before any non-linearity, so both biases can go into the
     * input projection and each step's recurrent product is accumulated straight into that step's rows
     * (beta = 1): no per-step bias broadcast, no second buffer to read. The GRU needs h . W_hn + b_hn on
     * its own (the reset gate scales it), so its recurrent bias stays in the step. */
    for (size_t j = 0; j < GH; j++) bias[j] = b_ih[j] + (cell == REEL_CELL_GRU ? 0.0f : b_hh[j]);
}

/* out (T, B, H) from the packed outputs h (N, H): a real position's output, and past a sequence's end the
 * state it keeps (forward: its last output; reverse, and a sequence without tokens: the initial state).
 * Also c_last for the LSTM. */
static void scatter_outputs(reel_recurrent_cache *cache, float *out, const float *h, int reverse) {
    const reel_packing *pk = &cache->pack;
    size_t T = pk->T, B = pk->B, H = cache->H;
    for (size_t i = 0; i < B; i++) {
        size_t b = pk->order[i], L = pk->length[i];
        const float *h_init = cache->h0 ? cache->h0 + b * H : cache->zeros;
        if (!pk->identity)
            for (size_t t = 0; t < T; t++) {
                const float *source = t < L ? h + (pk->offset[t] + i) * H
                                      : !reverse && L > 0 ? h + (pk->offset[L - 1] + i) * H : h_init;
                memcpy(out + (t * B + b) * H, source, H * sizeof *out);
            }
        if (cache->cell == REEL_CELL_LSTM) {
            /* the state after the last step in processing order: t = L - 1 forward, t = 0 reverse */
            const float *c = L == 0 ? (cache->c0 ? cache->c0 + b * H : cache->zeros)
                                    : cache->cell_state + (pk->offset[reverse ? 0 : L - 1] + i) * H;
            memcpy(cache->c_last + b * H, c, H * sizeof *c);
        }
    }
}

void reel_recurrent_forward_steps(reel_recurrent_cache *cache, float *out, const size_t *lengths, const float *w_hh,
                                  const float *b_hh, size_t T, size_t B, size_t H, int reverse) {
    const reel_packing *pk = &cache->pack;
    REEL_CHECK(pk->T == T && pk->B == B && H == cache->H, NULL, "forward_steps: the batch was not packed (reel_recurrent_pack)");
    (void)lengths;
    const reel_cell cell = cache->cell;
    const size_t G = reel_cell_gates(cell), GH = G * H;
    const int fused = cell != REEL_CELL_GRU;
    if (!pk->identity && !cache->h) cache->h = reel_calloc(cache->rows * H, sizeof(float));
    float *h = pk->identity ? out : cache->h;
    /* the initial state in the packed order */
    const float *h0 = NULL, *c0 = cache->zeros;
    if (cache->h0) {
        for (size_t i = 0; i < B; i++) memcpy(cache->h0_packed + i * H, cache->h0 + pk->order[i] * H, H * sizeof(float));
        h0 = cache->h0_packed;
    }
    if (cache->c0 && cell == REEL_CELL_LSTM) {
        for (size_t i = 0; i < B; i++) memcpy(cache->c0_packed + i * H, cache->c0 + pk->order[i] * H, H * sizeof(float));
        c0 = cache->c0_packed;
    }
    for (size_t k = 0; k < T; k++) {
        size_t t = reverse ? T - 1 - k : k, with_prev, prev;
        size_t n = step_rows(pk, t, reverse, &with_prev, &prev);
        if (n == 0) continue;
        size_t here = pk->offset[t];
        /* h_prev (n, H): the previous step's outputs, then the initial state of the sequences starting */
        float *h_prev = cache->h_prev + here * H;
        memcpy(h_prev, h + prev * H, with_prev * H * sizeof *h_prev);
        if (h0)
            memcpy(h_prev + with_prev * H, h0 + with_prev * H, (n - with_prev) * H * sizeof *h_prev);
        else
            memset(h_prev + with_prev * H, 0, (n - with_prev) * H * sizeof *h_prev);
        size_t stateful = h0 ? n : with_prev; /* rows whose h_prev may be non-zero */
        float *step_gates = cache->gates + here * GH;
        if (!fused) /* step (n, G*H) = h_prev . w_hh^T + b_hh */
            reel_linear_forward(cache->step, h_prev, w_hh, b_hh, n, H, GH);
        else if (stateful) /* step_gates (rows, G*H) += h_prev (rows, H) . w_hh^T; a zero state adds nothing */
            reel_gemm(0, 1, stateful, GH, H, 1.0f, h_prev, H, w_hh, H, 1.0f, step_gates, GH);
        for (size_t i = 0; i < n; i++) {
            size_t q = here + i;
            float *g = step_gates + i * GH, *hq = h + q * H;
            if (cell == REEL_CELL_LSTM) {
                const float *c_prev = i < with_prev ? cache->cell_state + (prev + i) * H : c0 + i * H;
                reel_lstm_cell_forward(g, c_prev, cache->cell_state + q * H, hq, H);
            } else if (cell == REEL_CELL_GRU) {
                reel_gru_cell_forward(g, cache->step + i * GH, h_prev + i * H, cache->hidden_part + q * H, hq, H);
            } else {
                reel_rnn_cell_forward(g, hq, H);
            }
        }
    }
    scatter_outputs(cache, out, h, reverse);
}

void reel_recurrent_forward(reel_recurrent_cache *cache, float *out, const float *inp, const size_t *lengths,
                            const float *w_ih, const float *w_hh, const float *b_ih, const float *b_hh, size_t T,
                            size_t B, size_t C, size_t H, int reverse) {
    reel_recurrent_pack(cache, lengths, T, B);
    const reel_packing *pk = &cache->pack;
    const float *x = inp;
    if (!pk->identity) { /* x (N, C): the real positions of inp */
        reserve_input(cache, C);
        for (size_t q = 0; q < pk->N; q++) memcpy(cache->x + q * C, inp + pk->padded[q] * C, C * sizeof(float));
        x = cache->x;
    }
    /* all input projections at once: gates (N, G*H) = x . w_ih^T + bias; cache->step holds the bias
     * until the steps need it */
    reel_recurrent_input_bias(cache->step, cache->cell, b_ih, b_hh, H);
    reel_linear_forward(cache->gates, x, w_ih, cache->step, pk->N, C, reel_cell_gates(cache->cell) * H);
    reel_recurrent_forward_steps(cache, out, lengths, w_hh, b_hh, T, B, H, reverse);
}

void reel_recurrent_backward_steps(reel_recurrent_cache *cache, float *dw_hh, float *db_ih, float *db_hh,
                                   const float *dout, const float *out, const size_t *lengths, const float *w_hh,
                                   size_t T, size_t B, size_t H, int reverse) {
    const reel_packing *pk = &cache->pack;
    REEL_CHECK(pk->T == T && pk->B == B && H == cache->H, NULL, "backward_steps of another batch than the forward's");
    (void)lengths, (void)out;
    const reel_cell cell = cache->cell;
    const size_t G = reel_cell_gates(cell), GH = G * H, N = pk->N;
    if (!cache->dgates_x) {
        cache->dgates_x = reel_calloc(cache->rows * GH, sizeof(float));
        cache->dgates_h = cell == REEL_CELL_GRU ? reel_calloc(cache->rows * GH, sizeof(float)) : cache->dgates_x;
    }
    /* dh, dc (B, H): the gradient of each sequence's state, in the packed order */
    float *dh = cache->dh, *dh_prev = cache->dh_prev, *dc = cache->dc, *dc_prev = cache->dc_prev;
    memset(dh, 0, B * H * sizeof *dh);
    memset(dc, 0, B * H * sizeof *dc);
    /* Forward: past its end a sequence's output is its last state, so the gradient there belongs to that
     * state (reverse: to the initial state, which receives none; the identity packing has no such rows). */
    if (!reverse && !pk->identity)
        for (size_t i = 0; i < B; i++) {
            size_t b = pk->order[i], L = pk->length[i];
            if (L == 0) continue;
            for (size_t t = L; t < T; t++)
                for (size_t j = 0; j < H; j++) dh[i * H + j] += dout[(t * B + b) * H + j];
        }
    const float *c0 = cache->c0 && cell == REEL_CELL_LSTM ? cache->c0_packed : cache->zeros;
    /* backward visits the steps in the opposite order of forward */
    for (size_t k = 0; k < T; k++) {
        if (cache->poll) cache->poll(cache->poll_ctx); /* what the caller started earlier moves on meanwhile */
        size_t t = reverse ? k : T - 1 - k, with_prev, prev;
        size_t n = step_rows(pk, t, reverse, &with_prev, &prev);
        if (n == 0) continue;
        size_t here = pk->offset[t];
        for (size_t i = 0; i < n; i++) {
            size_t q = here + i;
            float *dgx = cache->dgates_x + q * GH, *dgh = cache->dgates_h + q * GH;
            float *dhi = dh + i * H, *dci = dc + i * H, *dhp = dh_prev + i * H, *dcp = dc_prev + i * H;
            const float *d = dout + pk->padded[q] * H;
            for (size_t j = 0; j < H; j++) dhi[j] += d[j];
            const float *g = cache->gates + q * GH;
            if (cell == REEL_CELL_LSTM) {
                const float *c_prev = i < with_prev ? cache->cell_state + (prev + i) * H : c0 + i * H;
                reel_lstm_cell_backward(dgx, dcp, dhi, dci, g, cache->cell_state + q * H, c_prev, H);
            } else if (cell == REEL_CELL_GRU) {
                reel_gru_cell_backward(dgx, dgh, dhp, dhi, g, cache->hidden_part + q * H, cache->h_prev + q * H, H);
            } else {
                reel_rnn_cell_backward(dgx, dhi, g, H);
            }
        }
        /* the state gradient of the sequences that continue a step of their own (the others began here
         * from the initial state, which receives none): dh_prev (rows, H) (+)= dgates_h (rows, G*H) . w_hh */
        if (with_prev) {
            if (cell != REEL_CELL_GRU) memset(dh_prev, 0, with_prev * H * sizeof *dh_prev);
            reel_linear_backward(dh_prev, NULL, NULL, cache->dgates_h + here * GH, NULL, w_hh, with_prev, H, GH);
            memcpy(dh, dh_prev, with_prev * H * sizeof *dh);
            if (cell == REEL_CELL_LSTM) memcpy(dc, dc_prev, with_prev * H * sizeof *dc);
        }
    }
    /* Weight gradients over all real positions at once: dw_hh (G*H, H) += dgates_h^T (G*H, rows) . h_prev
     * (rows, H), each position paired with the state its step started from. Without h0 the first step in
     * processing order started from zeros and adds nothing: left out (the rest of the rows that began from
     * zeros, in the reverse direction of uneven sequences, are zero rows of h_prev). */
    size_t first = 0, rows = N;
    if (!cache->h0 && T > 0) {
        if (!reverse)
            first = pk->active[0];
        else
            rows -= pk->active[T - 1];
    }
    rows -= first;
    if (rows > 0)
        reel_linear_backward(NULL, dw_hh, NULL, cache->dgates_h + first * GH, cache->h_prev + first * H, w_hh, rows, H, GH);
    /* Bias gradients: column sums of the pre-activation gradients, summed once when both are the same
     * buffer (LSTM, RNN). cache->step (B*G*H >= G*H floats) is free during backward. */
    float *column_sum = cache->step;
    column_sums(column_sum, cache->dgates_h, N, GH);
    for (size_t j = 0; j < GH; j++) db_hh[j] += column_sum[j];
    if (cache->dgates_h != cache->dgates_x) column_sums(column_sum, cache->dgates_x, N, GH);
    for (size_t j = 0; j < GH; j++) db_ih[j] += column_sum[j];
}

void reel_recurrent_backward(reel_recurrent_cache *cache, float *dinp, float *dw_ih, float *dw_hh, float *db_ih,
                             float *db_hh, const float *dout, const float *out, const float *inp,
                             const size_t *lengths, const float *w_ih, const float *w_hh, size_t T, size_t B,
                             size_t C, size_t H, int reverse) {
    reel_recurrent_backward_steps(cache, dw_hh, db_ih, db_hh, dout, out, lengths, w_hh, T, B, H, reverse);
    const reel_packing *pk = &cache->pack;
    size_t GH = reel_cell_gates(cache->cell) * H;
    if (pk->identity) { /* dinp (T*B, C) += dgates_x . w_ih; dw_ih (G*H, C) += dgates_x^T . inp */
        reel_linear_backward(dinp, dw_ih, NULL, cache->dgates_x, inp, w_ih, pk->N, C, GH);
        return;
    }
    /* the same over the real positions: dx (N, C) = dgates_x . w_ih, added to dinp's real rows */
    if (dinp) memset(cache->dx, 0, pk->N * C * sizeof(float));
    reel_linear_backward(dinp ? cache->dx : NULL, dw_ih, NULL, cache->dgates_x, cache->x, w_ih, pk->N, C, GH);
    if (dinp)
        for (size_t q = 0; q < pk->N; q++) {
            float *target = dinp + pk->padded[q] * C;
            const float *source = cache->dx + q * C;
            for (size_t j = 0; j < C; j++) target[j] += source[j];
        }
}
