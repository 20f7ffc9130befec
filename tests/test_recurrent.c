/* Sequence layers: finite-difference gradient checks (fdcheck.h) for every recurrent cell and direction
 * over a batch of ragged sequences (one empty), pooling in each mode, batch norm with padded rows masked
 * out and locked dropout; and the padding guarantee: a sequence padded to a longer T gives the same valid
 * outputs and the same gradients as the sequence alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reel/catalogue.h"
#include "reel/config.h"
#include "reel/gemm.h"
#include "reel/layers.h"
#include "reel/model.h"
#include "fdcheck.h"
#include "config_set.h"
#include "bf16_part.h"

enum { T = 5, B = 4, C = 3, H = 4, MAXG = 4 };

typedef struct {
    reel_cell cell;
    int reverse;
    size_t lengths[B];
    float inp[T * B * C], w_ih[MAXG * H * C], w_hh[MAXG * H * H], b_ih[MAXG * H], b_hh[MAXG * H];
    float out[T * B * H], r[T * B * H];
    float h0[B * H], c0[B * H]; /* the initial state, when with_state */
    reel_recurrent_cache cache;
} rnn_ctx;

static double rnn_objective(void *p) {
    rnn_ctx *c = p;
    reel_recurrent_forward(&c->cache, c->out, c->inp, c->lengths, c->w_ih, c->w_hh, c->b_ih, c->b_hh, T, B, C, H,
                           c->reverse);
    return dot(c->out, c->r, T * B * H);
}

static const char *cell_name(reel_cell cell) {
    return cell == REEL_CELL_LSTM ? "lstm" : cell == REEL_CELL_GRU ? "gru" : "rnn";
}

/* A layer of `cell` on a ragged batch with seeded inputs, weights and output weights r; its cache allocated. */
static rnn_ctx *make_ctx(reel_cell cell, int reverse) {
    rnn_ctx *c = calloc(1, sizeof *c);
    c->cell = cell;
    c->reverse = reverse;
    size_t lengths[B] = {5, 3, 0, 1}; /* full, ragged, empty, single step */
    memcpy(c->lengths, lengths, sizeof lengths);
    size_t GH = reel_cell_gates(cell) * H;
    fill(c->inp, T * B * C, -1, 1, 1);
    fill(c->w_ih, GH * C, -0.8f, 0.8f, 2);
    fill(c->w_hh, GH * H, -0.8f, 0.8f, 3);
    fill(c->b_ih, GH, -0.5f, 0.5f, 4);
    fill(c->b_hh, GH, -0.5f, 0.5f, 5);
    fill(c->r, T * B * H, -1, 1, 6);
    reel_recurrent_cache_alloc(&c->cache, cell, T * B, B, H);
    return c;
}

static void check_cell(reel_cell cell, int reverse, int with_state) {
    rnn_ctx *c = make_ctx(cell, reverse);
    size_t GH = reel_cell_gates(cell) * H;
    if (with_state) { /* a state carried in from a previous window: w_hh's gradient includes its product */
        fill(c->h0, B * H, -0.9f, 0.9f, 40);
        fill(c->c0, B * H, -2, 2, 41);
        c->cache.h0 = c->h0;
        c->cache.c0 = cell == REEL_CELL_LSTM ? c->c0 : NULL;
    }
    float *dinp = calloc(T * B * C, sizeof(float)), *dw_ih = calloc(GH * C, sizeof(float));
    float *dw_hh = calloc(GH * H, sizeof(float)), *db_ih = calloc(GH, sizeof(float)), *db_hh = calloc(GH, sizeof(float));
    rnn_objective(c);
    reel_recurrent_backward(&c->cache, dinp, dw_ih, dw_hh, db_ih, db_hh, c->r, c->out, c->inp, c->lengths, c->w_ih,
                            c->w_hh, T, B, C, H, reverse);
    char what[64];
    const char *direction = with_state ? (reverse ? "reverse from h0" : "forward from h0") : reverse ? "reverse" : "forward";
    snprintf(what, sizeof what, "%s %s input", cell_name(cell), direction);
    compare(what, c->inp, dinp, T * B * C, rnn_objective, c);
    snprintf(what, sizeof what, "%s %s w_ih", cell_name(cell), direction);
    compare(what, c->w_ih, dw_ih, GH * C, rnn_objective, c);
    snprintf(what, sizeof what, "%s %s w_hh", cell_name(cell), direction);
    compare(what, c->w_hh, dw_hh, GH * H, rnn_objective, c);
    snprintf(what, sizeof what, "%s %s b_ih", cell_name(cell), direction);
    compare(what, c->b_ih, db_ih, GH, rnn_objective, c);
    snprintf(what, sizeof what, "%s %s b_hh", cell_name(cell), direction);
    compare(what, c->b_hh, db_hh, GH, rnn_objective, c);
    /* the empty sequence keeps its initial state (zeros without one) in both directions */
    for (size_t t = 0; t < T; t++)
        for (size_t j = 0; j < H; j++) assert_true(c->out[(t * B + 2) * H + j] == (with_state ? c->h0[2 * H + j] : 0.0f));
    reel_recurrent_cache_free(&c->cache);
    free(dinp), free(dw_ih), free(dw_hh), free(db_ih), free(db_hh), free(c);
}

static void count_poll(void *ctx) {
    (*(size_t *)ctx)++;
}

/* The poll hook (reel_recurrent_cache.poll) runs once before each of backward's T steps, empty steps
 * included, and never in forward: it is what lets the gradient exchange's buckets move while a recurrent
 * layer's backward runs. */
static void test_poll_hook(void **state) {
    (void)state;
    rnn_ctx *c = make_ctx(REEL_CELL_LSTM, 0);
    size_t polls = 0, GH = reel_cell_gates(c->cell) * H;
    c->cache.poll = count_poll;
    c->cache.poll_ctx = &polls;
    float *dinp = calloc(T * B * C, sizeof(float)), *dw_ih = calloc(GH * C, sizeof(float));
    float *dw_hh = calloc(GH * H, sizeof(float)), *db_ih = calloc(GH, sizeof(float)), *db_hh = calloc(GH, sizeof(float));
    c->lengths[0] = 3; /* no sequence reaches the last two steps: they have no rows and still poll */
    rnn_objective(c);
    assert_int_equal(polls, 0);
    reel_recurrent_backward(&c->cache, dinp, dw_ih, dw_hh, db_ih, db_hh, c->r, c->out, c->inp, c->lengths, c->w_ih,
                            c->w_hh, T, B, C, H, 0);
    assert_int_equal(polls, T);
    reel_recurrent_cache_free(&c->cache);
    free(dinp), free(dw_ih), free(dw_hh), free(db_ih), free(db_hh), free(c);
}

static void test_gradients(void **state) {
    (void)state;
    reel_cell cells[] = {REEL_CELL_RNN, REEL_CELL_GRU, REEL_CELL_LSTM};
    for (size_t i = 0; i < 3; i++)
        for (int reverse = 0; reverse <= 1; reverse++)
            for (int with_state = 0; with_state <= 1; with_state++) check_cell(cells[i], reverse, with_state);
}

/* bf16 products against fp32, for each cell, both directions, ragged lengths: the outputs and every
 * gradient agree norm-wise within a bound from bf16's unit roundoff u = 2^-8. Each product rounds its
 * two operands (relative error 2u + u^2 per term, reel/gemm.h); an output at step t depends on at most
 * t + 1 products in a chain, and a gradient on the forward chain, the backward chain of T steps and its
 * own product: at most 2T + 1 = 11 roundings in a row here, each adding at most 2u + u^2 relative to the
 * magnitudes involved. Cancellation makes magnitudes exceed results, so a factor of 2 on top:
 * bound = 2 (2T + 1)(2u + u^2) = 0.17. The errors measured are far smaller (printed); a product that
 * went wrong (a transpose, a stride) is off by order 1. */
static void test_bf16_against_fp32(void **state) {
    (void)state;
    const double u = 1.0 / 256.0, bound = 2.0 * (2 * T + 1) * (2 * u + u * u);
    reel_cell cells[] = {REEL_CELL_RNN, REEL_CELL_GRU, REEL_CELL_LSTM};
    for (size_t ci = 0; ci < 3; ci++)
        for (int reverse = 0; reverse <= 1; reverse++) {
            reel_cell cell = cells[ci];
            size_t GH = reel_cell_gates(cell) * H;
            size_t sizes[] = {T * B * H, T * B * C, GH * C, GH * H, GH, GH};
            float *result[2][6];
            for (int precision = 0; precision < 2; precision++) {
                rnn_ctx *c = make_ctx(cell, reverse);
                for (size_t k = 0; k < 6; k++) result[precision][k] = calloc(sizes[k], sizeof(float));
                reel_gemm_set_precision(precision ? REEL_BF16 : REEL_FP32);
                rnn_objective(c);
                memcpy(result[precision][0], c->out, sizes[0] * sizeof(float));
                reel_recurrent_backward(&c->cache, result[precision][1], result[precision][2], result[precision][3],
                                        result[precision][4], result[precision][5], c->r, c->out, c->inp, c->lengths,
                                        c->w_ih, c->w_hh, T, B, C, H, reverse);
                reel_gemm_set_precision(REEL_FP32);
                reel_recurrent_cache_free(&c->cache);
                free(c);
            }
            const char *names[] = {"output", "input", "w_ih", "w_hh", "b_ih", "b_hh"};
            for (size_t k = 0; k < 6; k++) {
                double diff = 0, norm = 0;
                for (size_t i = 0; i < sizes[k]; i++) {
                    double d = (double)result[1][k][i] - result[0][k][i];
                    diff += d * d;
                    norm += (double)result[0][k][i] * result[0][k][i];
                }
                double relative = sqrt(diff / (norm > 0 ? norm : 1));
                printf("bf16 %s %s %s: relative difference %.2e (bound %.2f)\n", cell_name(cell),
                       reverse ? "reverse" : "forward", names[k], relative, bound);
                if (relative > bound) fail_msg("bf16 %s %s: %.3g > %.3g", cell_name(cell), names[k], relative, bound);
                if (k == 0) assert_true(relative > 0); /* the bf16 path was taken */
                free(result[0][k]), free(result[1][k]);
            }
        }
    reel_gemm_release();
}

/* Truncated backpropagation through time: a sequence run as one window of 6 steps gives the same
 * outputs as two windows of 3, the second starting from the state the first ended in (the last output
 * and, for the LSTM, the last cell state). */
static void check_carried_state(reel_cell cell) {
    enum { L = 6, HALF = 3, BB = 2 };
    size_t GH = reel_cell_gates(cell) * H;
    float w_ih[MAXG * H * C], w_hh[MAXG * H * H], b_ih[MAXG * H], b_hh[MAXG * H];
    fill(w_ih, GH * C, -0.8f, 0.8f, 50);
    fill(w_hh, GH * H, -0.8f, 0.8f, 51);
    fill(b_ih, GH, -0.5f, 0.5f, 52);
    fill(b_hh, GH, -0.5f, 0.5f, 53);
    float in[L * BB * C], whole[L * BB * H], first[HALF * BB * H], second[HALF * BB * H];
    fill(in, L * BB * C, -1, 1, 54);
    size_t full[BB] = {L, L}, half[BB] = {HALF, HALF};
    reel_recurrent_cache a, b, c;
    reel_recurrent_cache_alloc(&a, cell, L * BB, BB, H);
    reel_recurrent_cache_alloc(&b, cell, HALF * BB, BB, H);
    reel_recurrent_cache_alloc(&c, cell, HALF * BB, BB, H);
    reel_recurrent_forward(&a, whole, in, full, w_ih, w_hh, b_ih, b_hh, L, BB, C, H, 0);
    reel_recurrent_forward(&b, first, in, half, w_ih, w_hh, b_ih, b_hh, HALF, BB, C, H, 0);
    c.h0 = first + (HALF - 1) * BB * H;
    c.c0 = cell == REEL_CELL_LSTM ? b.cell_state + (HALF - 1) * BB * H : NULL;
    reel_recurrent_forward(&c, second, in + HALF * BB * C, half, w_ih, w_hh, b_ih, b_hh, HALF, BB, C, H, 0);
    double worst = 0;
    for (size_t i = 0; i < HALF * BB * H; i++) {
        worst = fmax(worst, fabs(first[i] - whole[i]));
        worst = fmax(worst, fabs(second[i] - whole[HALF * BB * H + i]));
    }
    printf("%s: two windows with the state carried vs one window: max |difference| %.3g\n", cell_name(cell), worst);
    assert_true(worst <= 1e-6);
    /* and without the carried state the second window differs (the check can fail) */
    c.h0 = c.c0 = NULL;
    reel_recurrent_forward(&c, second, in + HALF * BB * C, half, w_ih, w_hh, b_ih, b_hh, HALF, BB, C, H, 0);
    double apart = 0;
    for (size_t i = 0; i < HALF * BB * H; i++) apart = fmax(apart, fabs(second[i] - whole[HALF * BB * H + i]));
    assert_true(apart > 1e-2);
    reel_recurrent_cache_free(&a);
    reel_recurrent_cache_free(&b);
    reel_recurrent_cache_free(&c);
}

static void test_carried_state(void **state) {
    (void)state;
    reel_cell cells[] = {REEL_CELL_RNN, REEL_CELL_GRU, REEL_CELL_LSTM};
    for (size_t i = 0; i < 3; i++) check_carried_state(cells[i]);
}

/* A sequence of 3 steps, padded to 6 in a batch of two, against the same sequence alone with T = 3: equal
 * outputs at its valid steps, and equal weight and input gradients when the loss only reads valid steps. */
static void check_padding(reel_cell cell, int reverse) {
    enum { L = 3, TP = 6, BP = 2 };
    size_t GH = reel_cell_gates(cell) * H;
    float w_ih[MAXG * H * C], w_hh[MAXG * H * H], b_ih[MAXG * H], b_hh[MAXG * H];
    fill(w_ih, GH * C, -0.8f, 0.8f, 7);
    fill(w_hh, GH * H, -0.8f, 0.8f, 8);
    fill(b_ih, GH, -0.5f, 0.5f, 9);
    fill(b_hh, GH, -0.5f, 0.5f, 10);
    float alone_in[L * C], alone_out[L * H], alone_dout[L * H], alone_din[L * C] = {0};
    fill(alone_in, L * C, -1, 1, 11);
    fill(alone_dout, L * H, -1, 1, 12);
    /* padded batch: row 1 is our sequence, row 0 another one of full length; garbage in the padding */
    float padded_in[TP * BP * C], padded_out[TP * BP * H], padded_dout[TP * BP * H] = {0}, padded_din[TP * BP * C] = {0};
    fill(padded_in, TP * BP * C, -3, 3, 13);
    for (size_t t = 0; t < L; t++) {
        memcpy(padded_in + (t * BP + 1) * C, alone_in + t * C, C * sizeof(float));
        memcpy(padded_dout + (t * BP + 1) * H, alone_dout + t * H, H * sizeof(float));
    }
    size_t alone_len[1] = {L}, padded_len[BP] = {TP, L};
    reel_recurrent_cache alone_cache, padded_cache;
    reel_recurrent_cache_alloc(&alone_cache, cell, L, 1, H);
    reel_recurrent_cache_alloc(&padded_cache, cell, TP * BP, BP, H);
    reel_recurrent_forward(&alone_cache, alone_out, alone_in, alone_len, w_ih, w_hh, b_ih, b_hh, L, 1, C, H, reverse);
    reel_recurrent_forward(&padded_cache, padded_out, padded_in, padded_len, w_ih, w_hh, b_ih, b_hh, TP, BP, C, H,
                           reverse);
    for (size_t t = 0; t < L; t++)
        for (size_t j = 0; j < H; j++) assert_float_equal(alone_out[t * H + j], padded_out[(t * BP + 1) * H + j], 1e-6);
    /* gradients: only row 1 gets a loss, so row 0 contributes nothing */
    float alone_dw[MAXG * H * C] = {0}, alone_dwh[MAXG * H * H] = {0}, alone_db[MAXG * H] = {0}, alone_dbh[MAXG * H] = {0};
    float padded_dw[MAXG * H * C] = {0}, padded_dwh[MAXG * H * H] = {0}, padded_db[MAXG * H] = {0}, padded_dbh[MAXG * H] = {0};
    reel_recurrent_backward(&alone_cache, alone_din, alone_dw, alone_dwh, alone_db, alone_dbh, alone_dout, alone_out,
                            alone_in, alone_len, w_ih, w_hh, L, 1, C, H, reverse);
    reel_recurrent_backward(&padded_cache, padded_din, padded_dw, padded_dwh, padded_db, padded_dbh, padded_dout,
                            padded_out, padded_in, padded_len, w_ih, w_hh, TP, BP, C, H, reverse);
    for (size_t i = 0; i < GH * C; i++) assert_float_equal(alone_dw[i], padded_dw[i], 1e-5);
    for (size_t i = 0; i < GH * H; i++) assert_float_equal(alone_dwh[i], padded_dwh[i], 1e-5);
    for (size_t i = 0; i < GH; i++) assert_float_equal(alone_db[i], padded_db[i], 1e-5);
    for (size_t i = 0; i < GH; i++) assert_float_equal(alone_dbh[i], padded_dbh[i], 1e-5);
    for (size_t t = 0; t < TP; t++)
        for (size_t k = 0; k < C; k++) {
            float expected = t < L ? alone_din[t * C + k] : 0.0f; /* padding gets no gradient */
            assert_float_equal(expected, padded_din[(t * BP + 1) * C + k], 1e-5);
        }
    reel_recurrent_cache_free(&alone_cache);
    reel_recurrent_cache_free(&padded_cache);
}

static void test_padding_changes_nothing(void **state) {
    (void)state;
    reel_cell cells[] = {REEL_CELL_RNN, REEL_CELL_GRU, REEL_CELL_LSTM};
    for (size_t i = 0; i < 3; i++)
        for (int reverse = 0; reverse <= 1; reverse++) check_padding(cells[i], reverse);
}

/* ---------------- pooling ---------------- */
enum { PD = 6, PREV = 4 }; /* D = 6 columns: a forward half [0, 4) and a reverse part [4, 6) */
typedef struct {
    reel_pool_mode mode;
    size_t lengths[B], argmax[B * PD];
    float seq[T * B * PD], out[B * 3 * PD], r[B * 3 * PD]; /* room for concat's 3 PD columns */
} pool_ctx;
static double pool_objective(void *p) {
    pool_ctx *c = p;
    reel_pool_forward(c->mode, c->out, c->argmax, c->seq, c->lengths, T, B, PD, PREV);
    return dot(c->out, c->r, B * reel_pool_width(c->mode, PD));
}
static void test_pooling(void **state) {
    (void)state;
    const char *names[] = {"max pool", "mean pool", "last pool", "concat pool"};
    for (int mode = 0; mode < 4; mode++) {
        pool_ctx c = {.mode = (reel_pool_mode)mode, .lengths = {5, 2, 0, 4}};
        fill(c.seq, T * B * PD, -1, 1, 20); /* distinct values: no ties for max */
        fill(c.r, B * 3 * PD, -1, 1, 21);
        float dseq[T * B * PD] = {0};
        pool_objective(&c);
        reel_pool_backward(c.mode, dseq, c.r, c.argmax, c.lengths, T, B, PD, PREV);
        compare(names[mode], c.seq, dseq, T * B * PD, pool_objective, &c);
        for (size_t t = 0; t < T; t++) /* padding (row 1 past t = 1, row 2 always) gets no gradient */
            for (size_t d = 0; d < PD; d++) {
                if (t >= 2) assert_true(dseq[(t * B + 1) * PD + d] == 0.0f);
                assert_true(dseq[(t * B + 2) * PD + d] == 0.0f);
            }
    }
    /* last: forward columns read the last valid step, reverse columns step 0 */
    pool_ctx c = {.mode = REEL_POOL_LAST, .lengths = {5, 2, 0, 4}};
    fill(c.seq, T * B * PD, -1, 1, 22);
    pool_objective(&c);
    assert_true(c.out[1 * PD + 0] == c.seq[(1 * B + 1) * PD + 0]);
    assert_true(c.out[1 * PD + 5] == c.seq[(0 * B + 1) * PD + 5]);
    /* concat: each row is [last | max | mean], each part bit for bit what its own mode gives (and an empty
     * sequence all zeros) */
    pool_ctx parts[3] = {{.mode = REEL_POOL_LAST, .lengths = {5, 2, 0, 4}}, {.mode = REEL_POOL_MAX, .lengths = {5, 2, 0, 4}},
                         {.mode = REEL_POOL_MEAN, .lengths = {5, 2, 0, 4}}};
    pool_ctx whole = {.mode = REEL_POOL_CONCAT, .lengths = {5, 2, 0, 4}};
    fill(whole.seq, T * B * PD, -1, 1, 23);
    pool_objective(&whole);
    assert_int_equal(reel_pool_width(REEL_POOL_CONCAT, PD), 3 * PD);
    for (int k = 0; k < 3; k++) {
        memcpy(parts[k].seq, whole.seq, sizeof whole.seq);
        pool_objective(&parts[k]);
        for (size_t b = 0; b < B; b++)
            assert_memory_equal(whole.out + b * 3 * PD + k * PD, parts[k].out + b * PD, PD * sizeof(float));
    }
    assert_memory_equal(whole.argmax, parts[1].argmax, sizeof whole.argmax);
}

/* Every prefix from one sweep (reel_pool_forward_cuts) equals pooling each prefix on its own, bit for
 * bit, for every mode: cuts unsorted, repeated, 0 (whole), past a sequence's end; empty sequences; ties
 * (values rounded to a coarse grid) where max keeps the first. */
static void test_pooling_cuts(void **state) {
    (void)state;
    enum { CT = 40, CB = 5, CD = 7, CUTS = 8 };
    const size_t lengths[CB] = {40, 17, 0, 1, 33};
    const size_t cuts[CUTS] = {10, 0, 1, 17, 10, 100, 3, 39};
    static float seq[CT * CB * CD], out[CUTS * CB * 3 * CD], one[CB * 3 * CD];
    size_t cut_lengths[CB], argmax[CB * CD];
    fill(seq, CT * CB * CD, -1, 1, 30);
    for (size_t i = 0; i < CT * CB * CD; i += 2) seq[i] = (float)(int)(seq[i] * 4) / 4; /* ties */
    for (int mode = 0; mode < 4; mode++) {
        size_t W = reel_pool_width((reel_pool_mode)mode, CD);
        memset(out, 0xff, sizeof out); /* NaN: every row must be written */
        reel_pool_forward_cuts((reel_pool_mode)mode, out, seq, lengths, cuts, CUTS, CT, CB, CD);
        for (size_t c = 0; c < CUTS; c++) {
            for (size_t b = 0; b < CB; b++) cut_lengths[b] = cuts[c] && cuts[c] < lengths[b] ? cuts[c] : lengths[b];
            reel_pool_forward((reel_pool_mode)mode, one, argmax, seq, cut_lengths, CT, CB, CD, CD);
            assert_memory_equal(out + c * CB * W, one, CB * W * sizeof(float));
        }
    }
}

/* ---------------- batch norm with padded rows ---------------- */
enum { NR = 8, NC = 3 };
typedef struct {
    uint8_t mask[NR];
    float inp[NR * NC], gamma[NC], beta[NC], out[NR * NC], r[NR * NC], rm[NC], rv[NC], xhat[NR * NC], inv_std[NC];
    double scratch[2 * NC + 1];
    reel_batchnorm_cache cache;
    reel_comm comm;
} mbn_ctx;
static double mbn_objective(void *p) {
    mbn_ctx *c = p;
    reel_batchnorm_forward_train(c->out, &c->cache, c->inp, c->gamma, c->beta, c->rm, c->rv, c->mask, NR, NC, 0.1f,
                                 1e-5f, &c->comm);
    return dot(c->out, c->r, NR * NC);
}
static void test_masked_batchnorm(void **state) {
    (void)state;
    mbn_ctx c = {.mask = {1, 0, 1, 1, 0, 1, 1, 0}};
    reel_comm_self(&c.comm);
    c.cache = (reel_batchnorm_cache){c.xhat, c.inv_std, c.scratch, 0};
    fill(c.inp, NR * NC, -2, 2, 23);
    fill(c.gamma, NC, 0.5f, 1.5f, 24);
    fill(c.beta, NC, -1, 1, 25);
    fill(c.r, NR * NC, -1, 1, 26);
    float dinp[NR * NC] = {0}, dgamma[NC] = {0}, dbeta[NC] = {0};
    mbn_objective(&c);
    assert_true(c.cache.global_rows == 5.0);
    float before[NR * NC];
    memcpy(before, c.out, sizeof before);
    for (size_t k = 0; k < NC; k++) c.inp[1 * NC + k] = 1000.0f; /* a padded row changes nothing */
    mbn_objective(&c);
    assert_memory_equal(before, c.out, sizeof before);
    reel_batchnorm_backward(dinp, dgamma, dbeta, c.r, &c.cache, c.gamma, c.mask, NR, NC, &c.comm);
    compare("masked batchnorm input", c.inp, dinp, NR * NC, mbn_objective, &c);
    compare("masked batchnorm gamma", c.gamma, dgamma, NC, mbn_objective, &c);
    compare("masked batchnorm beta", c.beta, dbeta, NC, mbn_objective, &c);
}

/* ---------------- locked dropout ---------------- */
typedef struct {
    float inp[T * B * H], out[T * B * H], r[T * B * H], mask[B * H];
} locked_ctx;
static double locked_objective(void *p) {
    locked_ctx *c = p;
    reel_locked_dropout_forward(c->out, c->inp, c->mask, T, B, H);
    return dot(c->out, c->r, T * B * H);
}
static void test_locked_dropout(void **state) {
    (void)state;
    locked_ctx c;
    uint64_t samples[B] = {3, 4, 5, 6};
    reel_dropout_mask(c.mask, samples, B, H, 0.5f, 9, 0, 1);
    fill(c.inp, T * B * H, -1, 1, 27);
    fill(c.r, T * B * H, -1, 1, 28);
    locked_objective(&c);
    for (size_t t = 0; t < T; t++) /* the same units are dropped at every step */
        for (size_t i = 0; i < B * H; i++) assert_true((c.out[t * B * H + i] == 0.0f) == (c.mask[i] == 0.0f));
    float dinp[T * B * H] = {0};
    reel_locked_dropout_backward(dinp, c.r, c.mask, T, B, H);
    compare("locked dropout input", c.inp, dinp, T * B * H, locked_objective, &c);
}

/* ---------------- whole recurrent classifiers ---------------- */
static void check_model(const char *type, size_t layers, int bidirectional, const char *pooling, int batch_norm,
                        double dropout, size_t head_hidden) {
    reel_config cfg;
    reel_config_defaults(&cfg);
    config_set(&cfg, "model.type=%s", type);
    config_set(&cfg, "model.pooling=%s", pooling);
    cfg.model.vocab_size = 9;
    cfg.model.embed_dim = 3;
    config_set(&cfg, "model.hidden_dim=3");
    config_set(&cfg, "model.num_layers=%zu", layers);
    config_set(&cfg, "model.bidirectional=%d", bidirectional);
    config_set(&cfg, "model.rnn_batch_norm=%d", batch_norm);
    config_set(&cfg, "model.rnn_dropout=%.17g", dropout);
    config_set(&cfg, "model.embed_dropout=%.17g", dropout);
    config_set(&cfg, "model.dropout=%.17g", dropout);
    config_set(&cfg, "model.head_hidden=%zu", head_hidden);
    reel_model *model;
    reel_error err;
    assert_int_equal(reel_model_create(&model, &cfg, 4, &err), 0);
    model->ops->init(model, 7);
    /* tokens repeat inside a review (3, 8) and across reviews (3, 5, 8): the first layer projects each
     * distinct (token, review) row once */
    static const uint32_t ids[] = {3, 4, 3, 1, 8, 8, 2, 6, 8, 3, 0, 5};
    static const size_t offsets[] = {0, 4, 5, 9, 12}; /* lengths 4, 1, 4, 3 */
    static const float labels[] = {1, 0, 1, 0};
    static const uint64_t samples[] = {10, 11, 12, 13};
    reel_batch batch = {.size = 4, .ids = ids, .offsets = offsets, .labels = labels, .sample_index = samples, .epoch = 2};
    char label[64];
    snprintf(label, sizeof label, "%s%s", type, bidirectional ? " bi" : "");
    compare_model_gradients(label, model, &batch);
    reel_model_destroy(model);
}
static void test_recurrent_models(void **state) {
    (void)state;
    check_model("lstm", 2, 1, "max", 1, 0.3, 5); /* stacked, bidirectional, batch norm, every dropout, head */
    check_model("gru", 1, 0, "mean", 0, 0.0, 0);
    check_model("rnn", 1, 1, "last", 0, 0.0, 0);
}

/* ---------------- a 3-layer LSTM's whole backward ---------------- */
static const uint32_t small_ids[] = {3, 4, 3, 1, 8, 8, 2, 6, 8, 3, 0, 5};
static const size_t small_offsets[] = {0, 4, 5, 9, 12}; /* lengths 4, 1, 4, 3 */
static const uint64_t small_samples[] = {10, 11, 12, 13};

/* A 3-layer LSTM of width 3 over 9 tokens with the settings of extra (NULL-terminated) too, initialised,
 * and in *batch 4 documents of it. */
static reel_model *small_lstm(const char *const *extra, reel_batch *batch) {
    reel_config cfg;
    reel_config_defaults(&cfg);
    config_set(&cfg, "model.type=lstm");
    cfg.model.vocab_size = 9;
    cfg.model.embed_dim = 3;
    config_set(&cfg, "model.hidden_dim=3");
    config_set(&cfg, "model.num_layers=3");
    for (size_t i = 0; extra[i]; i++) config_set(&cfg, "%s", extra[i]);
    reel_model *model;
    reel_error err;
    assert_int_equal(reel_model_create(&model, &cfg, 4, &err), 0);
    model->ops->init(model, 7);
    *batch = (reel_batch){.size = 4, .ids = small_ids, .offsets = small_offsets, .sample_index = small_samples,
                          .epoch = 2};
    return model;
}

/* Frozen lower layers: the backward stops early. The gradients of the tensors that train must be exactly
 * those of the full backward, and the frozen ones (below the lowest layer that trains) must be left
 * untouched: the work was skipped. */
static void check_frozen_below(size_t trainable_from) {
    static const char *const extra[] = {"model.rnn_batch_norm=1", "model.rnn_dropout=0.3", "model.embed_dropout=0.3",
                                        NULL};
    reel_batch batch;
    reel_model *model = small_lstm(extra, &batch);
    reel_comm comm;
    reel_comm_self(&comm);
    reel_store *p = &model->params;
    float r[4], *full = malloc(p->num_floats * sizeof(float));
    fill(r, 4, -1, 1, 50);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < p->num_tensors; i++) p->tensors[i].frozen = pass == 1 && p->tensors[i].group < trainable_from;
        memset(p->grad, 0, p->num_floats * sizeof(float));
        reel_output out;
        model->ops->forward(model, &batch, 1, &out, &comm);
        model->ops->backward(model, &batch, r, &comm);
        if (pass == 0) memcpy(full, p->grad, p->num_floats * sizeof(float));
    }
    size_t skipped = 0;
    for (size_t i = 0; i < p->num_tensors; i++) {
        const reel_tensor_info *t = &p->tensors[i];
        if (!t->frozen) {
            if (memcmp(p->grad + t->offset, full + t->offset, t->count * sizeof(float)) != 0)
                fail_msg("%s: its gradient changed when the layers below group %zu froze", t->name, trainable_from);
            continue;
        }
        for (size_t k = 0; k < t->count; k++)
            if (p->grad[t->offset + k] != 0.0f) fail_msg("%s is frozen but its gradient was computed", t->name);
        skipped++;
    }
    printf("trainable from group %zu: %zu frozen tensors skipped, the others' gradients unchanged\n", trainable_from,
           skipped);
    assert_true(skipped > 0);
    free(full);
    reel_model_destroy(model);
}
typedef struct {
    size_t groups[16], num_groups, polls;
} hook_log;
static void log_ready(void *ctx, size_t group) {
    hook_log *log = ctx;
    if (log->num_groups < 16) log->groups[log->num_groups] = group;
    log->num_groups++;
}
static void log_poll(void *ctx) {
    ((hook_log *)ctx)->polls++;
}

/* The hooks of the parameter store (set by the trainer for the gradient exchange) are what the model's
 * backward reports to: every group final, from the head (4) down to the first layer (1), and a poll at
 * each time step of each layer and direction; with them the gradient is the same as without. */
static void test_backward_reports_to_hooks(void **state) {
    (void)state;
    static const char *const extra[] = {"model.bidirectional=1", NULL};
    reel_batch batch;
    reel_model *model = small_lstm(extra, &batch); /* its longest document is 4 steps */
    reel_comm comm;
    reel_comm_self(&comm);
    reel_store *p = &model->params;
    float r[4], *plain = malloc(p->num_floats * sizeof(float));
    fill(r, 4, -1, 1, 50);
    hook_log log = {0};
    for (int hooked = 0; hooked < 2; hooked++) {
        p->hooks = hooked ? (reel_grad_hooks){log_ready, log_poll, &log} : (reel_grad_hooks){0};
        memset(p->grad, 0, p->num_floats * sizeof(float));
        reel_output out;
        model->ops->forward(model, &batch, 1, &out, &comm);
        model->ops->backward(model, &batch, r, &comm);
        if (!hooked) memcpy(plain, p->grad, p->num_floats * sizeof(float));
    }
    assert_memory_equal(plain, p->grad, p->num_floats * sizeof(float));
    assert_int_equal(reel_store_top_group(p), 4);
    assert_int_equal(log.num_groups, 4);
    for (size_t i = 0; i < 4; i++) assert_int_equal(log.groups[i], 4 - i);
    assert_int_equal(log.polls, 3 * 2 * 4); /* layers x directions x steps */
    p->hooks = (reel_grad_hooks){0};
    free(plain);
    reel_model_destroy(model);
}

static void test_frozen_layers_skip_backward(void **state) {
    (void)state;
    check_frozen_below(1); /* the embedding alone */
    check_frozen_below(3); /* the embedding and two of three layers, as the course fine-tunes */
}

/* ---------------- embedding: distinct rows ---------------- */
typedef struct {
    float weight[6 * 3], out[4 * 3 * 3], r[4 * 3 * 3], mask[3 * 3];
    uint32_t ids[7];
    size_t offsets[4];
    uint8_t row_mask[4 * 3];
    const float *use_mask;
    reel_embedding_rows rows;
} embed_ctx;
/* The objective reads every step through its row, as a caller does: sum over valid steps of
 * out[row(t, b)] . r[t, b]. */
static double embed_objective(void *p) {
    embed_ctx *c = p;
    reel_embedding_rows_forward(&c->rows, c->out, c->row_mask, c->ids, c->offsets, c->weight, c->use_mask, 4, 3, 3);
    double sum = 0;
    for (size_t step = 0; step < 4 * 3; step++)
        if (c->rows.step_row[step] != REEL_NO_ROW) sum += dot(c->out + c->rows.step_row[step] * 3, c->r + step * 3, 3);
    return sum;
}
static void check_embedding_rows(int masked) {
    embed_ctx c = {.ids = {1, 4, 1, 5, 0, 2, 2}, .offsets = {0, 4, 4, 7}}; /* lengths 4, 0, 3; ids repeat */
    fill(c.weight, 18, -1, 1, 40);
    fill(c.r, 36, -1, 1, 41);
    fill(c.mask, 9, 0, 2, 42);
    c.use_mask = masked ? c.mask : NULL;
    reel_embedding_rows_init(&c.rows, 6);
    reel_embedding_rows_reserve(&c.rows, 4 * 3);
    embed_objective(&c);
    /* 1 repeats inside sequence 0 and 2 inside sequence 2: five distinct rows, masked or not (no token
     * appears in two sequences) */
    assert_int_equal(c.rows.count, 5);
    assert_true(c.rows.step_row[0 * 3 + 0] == c.rows.step_row[2 * 3 + 0]); /* token 1 at t = 0 and 2 */
    assert_true(c.rows.step_row[0 * 3 + 1] == REEL_NO_ROW && c.rows.step_row[3 * 3 + 2] == REEL_NO_ROW);
    assert_true(c.row_mask[3 * 3 + 2] == 0 && c.row_mask[2 * 3 + 2] == 1 && c.row_mask[0 * 3 + 1] == 0);
    /* the gradient of each row: the sum of its steps' r */
    /* through the packed positions of the batch, as the recurrent model passes them */
    size_t lengths[3] = {4, 0, 3};
    reel_packing pk = {0};
    reel_packing_build(&pk, lengths, 4, 3);
    assert_int_equal(pk.N, 7);
    float drows[4 * 3 * 3], dweight[18] = {0}, packed_r[7 * 3];
    for (size_t q = 0; q < pk.N; q++) memcpy(packed_r + q * 3, c.r + pk.padded[q] * 3, 3 * sizeof(float));
    reel_embedding_rows_sum_steps(&c.rows, drows, packed_r, 3, pk.padded, pk.N);
    reel_packing_free(&pk);
    reel_embedding_rows_backward(&c.rows, dweight, drows, c.use_mask, 3);
    compare(masked ? "embedding rows weight, masked" : "embedding rows weight", c.weight, dweight, 18,
            embed_objective, &c);
    for (size_t e = 0; e < 3; e++) assert_true(dweight[3 * 3 + e] == 0.0f); /* id 3 is not in the batch */
    reel_embedding_rows_free(&c.rows);
}
static void test_embedding(void **state) {
    (void)state;
    check_embedding_rows(0);
    check_embedding_rows(1);
    /* a token in two sequences: one row without a mask, one per sequence with one */
    uint32_t ids[] = {4, 4};
    size_t offsets[] = {0, 1, 2};
    float weight[6 * 2], out[2 * 2], mask[2 * 2] = {1, 1, 1, 1};
    uint8_t row_mask[2];
    fill(weight, 12, -1, 1, 43);
    reel_embedding_rows rows;
    reel_embedding_rows_init(&rows, 6);
    reel_embedding_rows_reserve(&rows, 2);
    reel_embedding_rows_forward(&rows, out, row_mask, ids, offsets, weight, NULL, 1, 2, 2);
    assert_int_equal(rows.count, 1);
    reel_embedding_rows_forward(&rows, out, row_mask, ids, offsets, weight, mask, 1, 2, 2);
    assert_int_equal(rows.count, 2);
    assert_int_equal(rows.sequence[1], 1);
    reel_embedding_rows_free(&rows);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_poll_hook),
        cmocka_unit_test(test_carried_state),
        cmocka_unit_test(test_padding_changes_nothing),
        cmocka_unit_test(test_pooling),
        cmocka_unit_test(test_pooling_cuts),
        cmocka_unit_test(test_masked_batchnorm),
        cmocka_unit_test(test_locked_dropout),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_recurrent_models),
        cmocka_unit_test(test_frozen_layers_skip_backward),
        cmocka_unit_test(test_backward_reports_to_hooks),
    };
    const struct CMUnitTest bf16[] = {cmocka_unit_test(test_bf16_against_fp32)};
    return run_fp32_and_bf16_parts(argc, argv, "recurrent",
                                   "the comparison of the recurrent layers' bf16 outputs and gradients with fp32",
                                   tests, REEL_COUNT(tests), bf16, REEL_COUNT(bf16));
}

