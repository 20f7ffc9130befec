/* The Transformer layer kernels (layer norm, GELU, learned and rotary position embeddings): finite-difference
 * gradients of every input and parameter (fdcheck.h), the forward and the layer norm backward against
 * plain double references, and the backward's accumulation (+=) by calling it twice (rotary's backward
 * transforms in place instead: it is checked to leave padding and other columns alone).
 * `test_xf_layers dump DIR` instead writes fixed inputs and the kernels' outputs and gradients to DIR
 * for tests/torch_layers.sh, which repeats them with PyTorch. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reel/layers.h"
#include "fdcheck.h"

/* Fails unless |got - want| <= abs_tol + rel_tol[i] * |want| for every entry (rel_tol (n), or rel_all for
 * every entry when rel_tol is NULL); prints the worst entry. */
static void expect_close_each(const char *what, const float *got, const double *want, size_t n, double abs_tol,
                              const double *rel_tol, double rel_all) {
    size_t failures = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double error = fabs(got[i] - want[i]), allowed = abs_tol + (rel_tol ? rel_tol[i] : rel_all) * fabs(want[i]);
        if (error / allowed > worst) worst = error / allowed;
        if (error > allowed && failures++ < 5)
            fprintf(stderr, "%s[%zu]: got %.9g want %.9g\n", what, i, got[i], want[i]);
    }
    printf("%-34s %5zu entries, worst error / allowed = %.3f\n", what, n, worst);
    assert_int_equal(failures, 0);
}
static void expect_close(const char *what, const float *got, const double *want, size_t n, double abs_tol,
                         double rel_tol) {
    expect_close_each(what, got, want, n, abs_tol, NULL, rel_tol);
}

/* The backward ACCUMULATES: starting from arbitrary values g0, one call gives g1 and a second g2; each
 * call must add the same nonzero amount (g2 - g1 = g1 - g0), which fails for a backward that assigns. */
static void expect_accumulated(const char *what, const float *g0, const float *g1, const float *g2, size_t n) {
    size_t moved = 0;
    for (size_t i = 0; i < n; i++) {
        double first = (double)g1[i] - g0[i], second = (double)g2[i] - g1[i];
        if (fabs(first) > 1e-6) moved++;
        if (fabs(second - first) > 1e-5 * (1 + fabs(g0[i]) + fabs(g1[i])))
            fail_msg("%s[%zu]: the first call added %.9g, the second %.9g (from %.9g)", what, i, first, second,
                     (double)g0[i]);
    }
    if (!moved) fail_msg("%s: the backward added nothing", what);
}

/* ---------------- layer norm ---------------- */
enum { LN = 4, LC = 6 };
typedef struct {
    float inp[LN * LC], gamma[LC], beta[LC], out[LN * LC], r[LN * LC], mean[LN], rstd[LN];
} ln_ctx;
static double ln_objective(void *p) {
    ln_ctx *c = p;
    reel_layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->gamma, c->beta, LN, LC, REEL_LAYERNORM_EPS);
    return dot(c->out, c->r, LN * LC);
}
/* Rows of spread about 1; row 2 sits at 1e4 and row 3 is nearly constant (spread 1e-3), where eps matters. */
static void ln_fill(ln_ctx *c) {
    fill(c->inp, LN * LC, -1, 1, 40);
    for (size_t k = 0; k < LC; k++) {
        c->inp[2 * LC + k] += 1e4f;
        c->inp[3 * LC + k] = 0.5f + 1e-3f * c->inp[3 * LC + k];
    }
    fill(c->gamma, LC, 0.5f, 1.5f, 41);
    fill(c->beta, LC, -1, 1, 42);
    fill(c->r, LN * LC, -1, 1, 43);
}
static void test_layernorm_gradients(void **state) {
    (void)state;
    ln_ctx c;
    ln_fill(&c);
    float dinp[LN * LC] = {0}, dgamma[LC] = {0}, dbeta[LC] = {0};
    ln_objective(&c);
    reel_layernorm_backward(dinp, dgamma, dbeta, c.r, c.inp, c.mean, c.rstd, c.gamma, LN, LC);
    compare("layernorm input", c.inp, dinp, LN * LC, ln_objective, &c);
    compare("layernorm gamma", c.gamma, dgamma, LC, ln_objective, &c);
    compare("layernorm beta", c.beta, dbeta, LC, ln_objective, &c);
}

/* Everything in double from the same float inputs: the mean, the biased variance about it, the output,
 * and the gradients from dinp = rstd (g - mean(g) - xhat mean(g xhat)), g = dout gamma. */
static void ln_reference(double *out, double *mean, double *rstd, double *dinp, double *dgamma, double *dbeta,
                         const float *inp, const float *gamma, const float *beta, const float *dout, size_t N,
                         size_t C, double eps) {
    for (size_t k = 0; k < C; k++) dgamma[k] = dbeta[k] = 0;
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *dy = dout + n * C;
        double m = 0, v = 0, sg = 0, sgx = 0;
        for (size_t k = 0; k < C; k++) m += x[k];
        m /= (double)C;
        for (size_t k = 0; k < C; k++) v += (x[k] - m) * (x[k] - m);
        double s = 1 / sqrt(v / (double)C + eps);
        mean[n] = m;
        rstd[n] = s;
        for (size_t k = 0; k < C; k++) {
            double xhat = (x[k] - m) * s, g = (double)dy[k] * gamma[k];
            out[n * C + k] = xhat * gamma[k] + beta[k];
            sg += g;
            sgx += g * xhat;
            dgamma[k] += dy[k] * xhat;
            dbeta[k] += dy[k];
        }
        for (size_t k = 0; k < C; k++) {
            double xhat = (x[k] - m) * s, g = (double)dy[k] * gamma[k];
            dinp[n * C + k] = s * (g - sg / (double)C - xhat * sgx / (double)C);
        }
    }
}

/* Rows of 1e4 + a spread of 1e-2: a float one-pass variance (E[x^2] - E[x]^2 loses all of it) or a
 * backward that trusts the float mean (off by up to 5e-4, i.e. 0.08 in xhat at rstd 170) fails here. */
enum { RN = 5, RC = 40 };
static void test_layernorm_reference(void **state) {
    (void)state;
    float inp[RN * RC], gamma[RC], beta[RC], dout[RN * RC], out[RN * RC], mean[RN], rstd[RN];
    fill(inp, RN * RC, -1, 1, 50);
    for (size_t k = 0; k < RC; k++) {
        inp[1 * RC + k] = 1e4f + 1e-2f * inp[1 * RC + k];
        inp[2 * RC + k] = -3e4f + inp[2 * RC + k];
        inp[3 * RC + k] = 100.0f + 10.0f * inp[3 * RC + k];
    }
    fill(gamma, RC, 0.5f, 1.5f, 51);
    fill(beta, RC, -1, 1, 52);
    fill(dout, RN * RC, -1, 1, 53);
    float dinp[RN * RC] = {0}, dgamma[RC] = {0}, dbeta[RC] = {0};
    reel_layernorm_forward(out, mean, rstd, inp, gamma, beta, RN, RC, REEL_LAYERNORM_EPS);
    reel_layernorm_backward(dinp, dgamma, dbeta, dout, inp, mean, rstd, gamma, RN, RC);
    double want_out[RN * RC], want_mean[RN], want_rstd[RN], want_dinp[RN * RC], want_dgamma[RC], want_dbeta[RC];
    ln_reference(want_out, want_mean, want_rstd, want_dinp, want_dgamma, want_dbeta, inp, gamma, beta, dout, RN, RC,
                 REEL_LAYERNORM_EPS);
    /* float rounding of results computed in double: a few 1e-8 relative; the backward's inputs mean and
     * rstd are floats, which costs a few more ulp at rstd 170 */
    expect_close("layernorm out", out, want_out, RN * RC, 1e-6, 1e-6);
    expect_close("layernorm mean", mean, want_mean, RN, 0, 1e-7);
    expect_close("layernorm rstd", rstd, want_rstd, RN, 0, 1e-7);
    expect_close("layernorm dinp", dinp, want_dinp, RN * RC, 1e-4, 1e-5);
    expect_close("layernorm dgamma", dgamma, want_dgamma, RC, 1e-5, 1e-5);
    expect_close("layernorm dbeta", dbeta, want_dbeta, RC, 1e-6, 1e-6);
}

static void test_layernorm_accumulates(void **state) {
    (void)state;
    ln_ctx c;
    ln_fill(&c);
    ln_objective(&c);
    float g0[LN * LC + 2 * LC], g1[LN * LC + 2 * LC], g2[LN * LC + 2 * LC];
    fill(g0, LN * LC + 2 * LC, -1, 1, 44);
    memcpy(g1, g0, sizeof g0);
    reel_layernorm_backward(g1, g1 + LN * LC, g1 + LN * LC + LC, c.r, c.inp, c.mean, c.rstd, c.gamma, LN, LC);
    memcpy(g2, g1, sizeof g1);
    reel_layernorm_backward(g2, g2 + LN * LC, g2 + LN * LC + LC, c.r, c.inp, c.mean, c.rstd, c.gamma, LN, LC);
    expect_accumulated("layernorm dinp", g0, g1, g2, LN * LC);
    expect_accumulated("layernorm dgamma", g0 + LN * LC, g1 + LN * LC, g2 + LN * LC, LC);
    expect_accumulated("layernorm dbeta", g0 + LN * LC + LC, g1 + LN * LC + LC, g2 + LN * LC + LC, LC);
}

/* ---------------- GELU ---------------- */
enum { GN = 24 };
typedef struct {
    float inp[GN], out[GN], r[GN];
} gelu_ctx;
static double gelu_objective(void *p) {
    gelu_ctx *c = p;
    reel_gelu_forward(c->out, c->inp, GN);
    return dot(c->out, c->r, GN);
}
static void test_gelu_gradients(void **state) {
    (void)state;
    gelu_ctx c;
    fill(c.inp, GN, -4, 4, 60);
    fill(c.r, GN, -1, 1, 61);
    float dinp[GN] = {0};
    gelu_objective(&c);
    reel_gelu_backward(dinp, c.r, c.inp, GN);
    compare("gelu input", c.inp, dinp, GN, gelu_objective, &c);
}

/* The reference in double, as x sigmoid(2u) = 0.5 x (1 + tanh u): in the tanh form even double loses
 * the negative tail (1 + tanh u is 0 below u = -19). test_gelu_reference checks the two forms agree
 * where the tanh one is accurate. */
static double gelu_u(double x) {
    return sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x);
}
static double gelu_sigmoid(double x) {
    return x / (1 + exp(-2 * gelu_u(x)));
}
static double gelu_derivative(double x) {
    double u = gelu_u(x), s = 1 / (1 + exp(-2 * u)), one_minus_s = 1 / (1 + exp(2 * u));
    return s + 2 * x * s * one_minus_s * sqrt(2 / 3.14159265358979323846) * (1 + 3 * 0.044715 * x * x);
}
/* 600 values: two whole chunks of the kernel's 256 and a partial one, from -10 to 10. */
enum { GR = 600 };
static void test_gelu_reference(void **state) {
    (void)state;
    float inp[GR], out[GR], in_place[GR], dout[GR], dinp[GR] = {0};
    fill(inp, GR, -10, 10, 62);
    inp[0] = 0.0f;
    inp[1] = 1.0f;
    fill(dout, GR, -1, 1, 63);
    reel_gelu_forward(out, inp, GR);
    reel_gelu_backward(dinp, dout, inp, GR);
    double want[GR], want_dinp[GR], rel[GR];
    for (size_t i = 0; i < GR; i++) {
        want[i] = gelu_sigmoid(inp[i]);
        want_dinp[i] = dout[i] * gelu_derivative(inp[i]);
        /* a few float ulp, times 2 |u| on the negative tail: there exp(-2 |u|) turns the rounding of the
         * float u into a relative error 2 |u| times as large (7e-6 measured at u = -25) */
        rel[i] = 3e-7 * (2 + 2 * fabs(gelu_u(inp[i])));
    }
    for (double x = -3; x <= 3; x += 0.25)
        assert_float_equal(gelu_sigmoid(x), 0.5 * x * (1 + tanh(gelu_u(x))), 1e-14);
    /* the tanh form at 1 (a fixed number, independent of the reference above) */
    assert_float_equal(out[1], 0.841191990608276, 1e-6);
    /* Relative to each value, down the negative tail too (gelu(-10) is -2e-37): written with tanh, the
     * kernel lost those digits to 1 + tanh(u) (its gradient was 12% off at -4.9). The gradient's absolute
     * floor is for x near -0.75, where it passes through 0 as a difference of terms of 0.3. */
    expect_close_each("gelu out", out, want, GR, 1e-30, rel, 0);
    expect_close_each("gelu dinp", dinp, want_dinp, GR, 1e-7, rel, 0);
    memcpy(in_place, inp, sizeof inp);
    reel_gelu_forward(in_place, in_place, GR);
    assert_memory_equal(in_place, out, sizeof out);
}

static void test_gelu_accumulates(void **state) {
    (void)state;
    float inp[GN], dout[GN], g0[GN], g1[GN], g2[GN];
    fill(inp, GN, -4, 4, 64);
    fill(dout, GN, -1, 1, 65);
    fill(g0, GN, -1, 1, 66);
    memcpy(g1, g0, sizeof g0);
    reel_gelu_backward(g1, dout, inp, GN);
    memcpy(g2, g1, sizeof g1);
    reel_gelu_backward(g2, dout, inp, GN);
    expect_accumulated("gelu dinp", g0, g1, g2, GN);
}

/* ---------------- learned position embeddings ---------------- */
/* A window of PT positions starting at PP0 in a table of PP rows: rows outside the window must get no
 * gradient, which the finite differences check too (their numeric gradient is 0). */
enum { PB = 2, PT = 3, PC = 4, PP = 7, PP0 = 2 };
typedef struct {
    float tok[PB * PT * PC], wpe[PP * PC], out[PB * PT * PC], r[PB * PT * PC];
} pos_ctx;
static double pos_objective(void *p) {
    pos_ctx *c = p;
    reel_position_forward(c->out, c->tok, c->wpe, PP0, PB, PT, PC);
    return dot(c->out, c->r, PB * PT * PC);
}
static void pos_fill(pos_ctx *c) {
    fill(c->tok, PB * PT * PC, -1, 1, 70);
    fill(c->wpe, PP * PC, -1, 1, 71);
    fill(c->r, PB * PT * PC, -1, 1, 72);
}
static void test_position_gradients(void **state) {
    (void)state;
    pos_ctx c;
    pos_fill(&c);
    float dtok[PB * PT * PC] = {0}, dwpe[PP * PC] = {0};
    pos_objective(&c);
    reel_position_backward(dtok, dwpe, c.r, PP0, PB, PT, PC);
    compare("position tok", c.tok, dtok, PB * PT * PC, pos_objective, &c);
    compare("position wpe", c.wpe, dwpe, PP * PC, pos_objective, &c);
    /* without dtok the table's gradient is the same */
    float dwpe_alone[PP * PC] = {0};
    reel_position_backward(NULL, dwpe_alone, c.r, PP0, PB, PT, PC);
    assert_memory_equal(dwpe_alone, dwpe, sizeof dwpe);
}

static void test_position_forward(void **state) {
    (void)state;
    pos_ctx c;
    pos_fill(&c);
    pos_objective(&c);
    for (size_t b = 0; b < PB; b++)
        for (size_t t = 0; t < PT; t++)
            for (size_t k = 0; k < PC; k++) {
                size_t at = (b * PT + t) * PC + k;
                assert_true(c.out[at] == c.tok[at] + c.wpe[(PP0 + t) * PC + k]);
            }
    /* in place, as the model will call it on its embedded tokens */
    float in_place[PB * PT * PC];
    memcpy(in_place, c.tok, sizeof in_place);
    reel_position_forward(in_place, in_place, c.wpe, PP0, PB, PT, PC);
    assert_memory_equal(in_place, c.out, sizeof in_place);
}

static void test_position_accumulates(void **state) {
    (void)state;
    pos_ctx c;
    pos_fill(&c);
    enum { NT = PB * PT * PC, NW = PP * PC };
    float g0[NT + NW], g1[NT + NW], g2[NT + NW];
    fill(g0, NT + NW, -1, 1, 73);
    memcpy(g1, g0, sizeof g0);
    reel_position_backward(g1, g1 + NT, c.r, PP0, PB, PT, PC);
    memcpy(g2, g1, sizeof g1);
    reel_position_backward(g2, g2 + NT, c.r, PP0, PB, PT, PC);
    expect_accumulated("position dtok", g0, g1, g2, NT);
    /* only the window's rows move; expect_accumulated needs some movement, so check them alone */
    expect_accumulated("position dwpe", g0 + NT + PP0 * PC, g1 + NT + PP0 * PC, g2 + NT + PP0 * PC, PT * PC);
    assert_memory_equal(g2 + NT, g0 + NT, PP0 * PC * sizeof(float));
    assert_memory_equal(g2 + NT + (PP0 + PT) * PC, g0 + NT + (PP0 + PT) * PC, (PP - PP0 - PT) * PC * sizeof(float));
}

/* ---------------- rotary position embeddings ---------------- */
/* Two sequences of RT rows (the second padded after 3, read from position RP0) with 3 heads of RD columns
 * and 2 more columns the kernel must not touch (ld = 3 RD + 2); a table of RP positions. */
enum { RB = 2, RT = 5, RH = 3, RD = 6, RLD = RH * RD + 2, RP = 9, RP0 = 4 };
static const double rotary_base = 100.0; /* small: every pair turns by a sizeable angle within RP positions */
static const size_t rotary_pos0[RB] = {0, RP0}, rotary_lengths[RB] = {RT, 3};
typedef struct {
    float x[RB * RT * RLD], out[RB * RT * RLD], r[RB * RT * RLD], cos_t[RP * RD / 2], sin_t[RP * RD / 2];
} rope_ctx;
static double rope_objective(void *p) {
    rope_ctx *c = p;
    memcpy(c->out, c->x, sizeof c->x);
    reel_rotary_forward(c->out, RLD, RH, RD, c->cos_t, c->sin_t, rotary_pos0, rotary_lengths, RB, RT);
    return dot(c->out, c->r, RB * RT * RLD);
}
static void rope_fill(rope_ctx *c) {
    fill(c->x, RB * RT * RLD, -1, 1, 90);
    fill(c->r, RB * RT * RLD, -1, 1, 91);
    reel_rotary_tables(c->cos_t, c->sin_t, RP, RD, rotary_base);
}

/* The table against cos and sin of pos base^(-2i/D) in double, and the forward against the rotate-half
 * pairing written out in double: pair (i, i + D/2) turned by theta_i. Padding rows and the columns past
 * the heads are left as they were, bit for bit. */
static void test_rotary_forward(void **state) {
    (void)state;
    rope_ctx c;
    rope_fill(&c);
    double want_cos[RP * RD / 2], want_sin[RP * RD / 2];
    for (size_t pos = 0; pos < RP; pos++)
        for (size_t i = 0; i < RD / 2; i++) {
            double theta = (double)pos / pow(rotary_base, (double)(2 * i) / RD);
            want_cos[pos * RD / 2 + i] = cos(theta);
            want_sin[pos * RD / 2 + i] = sin(theta);
        }
    /* rounded once to float: half an ulp of values up to 1 */
    expect_close("rotary cos table", c.cos_t, want_cos, RP * RD / 2, 6e-8, 0);
    expect_close("rotary sin table", c.sin_t, want_sin, RP * RD / 2, 6e-8, 0);
    rope_objective(&c);
    double want[RB * RT * RLD];
    for (size_t b = 0; b < RB; b++)
        for (size_t t = 0; t < RT; t++) {
            size_t row = (b * RT + t) * RLD;
            for (size_t k = 0; k < RLD; k++) want[row + k] = c.x[row + k];
            if (t >= rotary_lengths[b]) continue;
            double pos = (double)(rotary_pos0[b] + t);
            for (size_t h = 0; h < RH; h++)
                for (size_t i = 0; i < RD / 2; i++) {
                    double theta = pos / pow(rotary_base, (double)(2 * i) / RD);
                    double a = c.x[row + h * RD + i], z = c.x[row + h * RD + RD / 2 + i];
                    want[row + h * RD + i] = a * cos(theta) - z * sin(theta);
                    want[row + h * RD + RD / 2 + i] = a * sin(theta) + z * cos(theta);
                }
        }
    /* two products of values below 1 by table entries within half an ulp, and a sum: a few 1e-7 */
    expect_close("rotary out", c.out, want, RB * RT * RLD, 4e-7, 0);
    for (size_t b = 0; b < RB; b++)
        for (size_t t = 0; t < RT; t++) {
            size_t row = (b * RT + t) * RLD;
            if (t >= rotary_lengths[b]) assert_memory_equal(c.out + row, c.x + row, RLD * sizeof(float));
            assert_memory_equal(c.out + row + RH * RD, c.x + row + RH * RD, (RLD - RH * RD) * sizeof(float));
        }
}

/* What rotary is for: the score of a query at position m and a key at n depends on n - m only. The same
 * query and key vectors at (m, n) and at (m + s, n + s) score the same (up to rounding), and at another
 * distance differently. */
static void test_rotary_relative(void **state) {
    (void)state;
    enum { D = 8, P = 40 };
    float cos_t[P * D / 2], sin_t[P * D / 2], q[D], k[D];
    reel_rotary_tables(cos_t, sin_t, P, D, rotary_base);
    fill(q, D, -1, 1, 92);
    fill(k, D, -1, 1, 93);
    /* score(m, n): the query rotated at m, the key at n */
    double scores[3];
    const size_t at[3][2] = {{3, 10}, {25, 32}, {25, 31}};
    for (size_t c = 0; c < 3; c++) {
        float qr[D], kr[D];
        memcpy(qr, q, sizeof q);
        memcpy(kr, k, sizeof k);
        size_t m = at[c][0], n = at[c][1];
        reel_rotary_forward(qr, D, 1, D, cos_t, sin_t, &m, NULL, 1, 1);
        reel_rotary_forward(kr, D, 1, D, cos_t, sin_t, &n, NULL, 1, 1);
        scores[c] = dot(qr, kr, D);
    }
    printf("rotary scores at (3, 10) %.7f, (25, 32) %.7f, (25, 31) %.7f\n", scores[0], scores[1], scores[2]);
    assert_true(fabs(scores[0] - scores[1]) < 1e-5);
    assert_true(fabs(scores[0] - scores[2]) > 1e-2);
}

static void test_rotary_gradients(void **state) {
    (void)state;
    rope_ctx c;
    rope_fill(&c);
    rope_objective(&c);
    /* the backward turns the gradient of the output (r) in place into that of the input */
    float dx[RB * RT * RLD];
    memcpy(dx, c.r, sizeof dx);
    reel_rotary_backward(dx, RLD, RH, RD, c.cos_t, c.sin_t, rotary_pos0, rotary_lengths, RB, RT);
    compare("rotary input", c.x, dx, RB * RT * RLD, rope_objective, &c);
    /* and back: the forward undoes the backward (the rotation is orthogonal) */
    reel_rotary_forward(dx, RLD, RH, RD, c.cos_t, c.sin_t, rotary_pos0, rotary_lengths, RB, RT);
    for (size_t i = 0; i < RB * RT * RLD; i++) assert_true(fabs(dx[i] - c.r[i]) < 1e-6);
}

/* ---------------- dump for tests/torch_layers.sh ---------------- */
/* DIR/NAME.f32 holds the floats (native byte order); DIR/manifest lists "NAME d0 [d1 [d2]]" per array
 * and "pos0 P0" for the position kernel's window start. */
typedef struct {
    const char *name;
    const float *data;
    size_t dims[3]; /* 0 for an absent dimension */
} dump_entry;

static int dump_arrays(const char *dir, FILE *manifest, const dump_entry *entries, size_t count) {
    for (size_t a = 0; a < count; a++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.f32", dir, entries[a].name);
        size_t n = 1;
        fprintf(manifest, "%s", entries[a].name);
        for (size_t d = 0; d < 3 && entries[a].dims[d]; d++) {
            n *= entries[a].dims[d];
            fprintf(manifest, " %zu", entries[a].dims[d]);
        }
        fprintf(manifest, "\n");
        FILE *f = fopen(path, "wb");
        int written = f && fwrite(entries[a].data, sizeof(float), n, f) == n;
        if (f && fclose(f) != 0) written = 0;
        if (!written) {
            fprintf(stderr, "test_xf_layers: cannot write %s\n", path);
            return 1;
        }
    }
    return 0;
}

static int dump(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest", dir);
    FILE *manifest = fopen(path, "w");
    if (!manifest) {
        fprintf(stderr, "test_xf_layers: cannot write %s\n", path);
        return 1;
    }
    /* layer norm: 6 rows of 32, row 1 at 1e4 with spread 1e-2, row 4 at -3e4, row 5 nearly constant */
    enum { N = 6, C = 32 };
    static float inp[N * C], gamma[C], beta[C], dout[N * C], out[N * C], mean[N], rstd[N];
    static float dinp[N * C], dgamma[C], dbeta[C];
    fill(inp, N * C, -2, 2, 80);
    for (size_t k = 0; k < C; k++) {
        inp[1 * C + k] = 1e4f + 1e-2f * inp[1 * C + k];
        inp[4 * C + k] = -3e4f + inp[4 * C + k];
        inp[5 * C + k] = 1.0f + 1e-3f * inp[5 * C + k];
    }
    fill(gamma, C, 0.5f, 1.5f, 81);
    fill(beta, C, -1, 1, 82);
    fill(dout, N * C, -1, 1, 83);
    reel_layernorm_forward(out, mean, rstd, inp, gamma, beta, N, C, REEL_LAYERNORM_EPS);
    reel_layernorm_backward(dinp, dgamma, dbeta, dout, inp, mean, rstd, gamma, N, C);

    /* GELU: 1000 values over [-8, 8] (chunks of 256 and a partial one) */
    enum { G = 1000 };
    static float g_inp[G], g_dout[G], g_out[G], g_dinp[G];
    fill(g_inp, G, -8, 8, 84);
    fill(g_dout, G, -1, 1, 85);
    reel_gelu_forward(g_out, g_inp, G);
    reel_gelu_backward(g_dinp, g_dout, g_inp, G);

    /* position: a window of 5 at offset 3 in a table of 10 */
    enum { B = 2, T = 5, E = 8, P = 10, P0 = 3 };
    static float tok[B * T * E], wpe[P * E], p_dout[B * T * E], p_out[B * T * E], dtok[B * T * E], dwpe[P * E];
    fill(tok, B * T * E, -1, 1, 86);
    fill(wpe, P * E, -1, 1, 87);
    fill(p_dout, B * T * E, -1, 1, 88);
    reel_position_forward(p_out, tok, wpe, P0, B, T, E);
    reel_position_backward(dtok, dwpe, p_dout, P0, B, T, E);

    const dump_entry entries[] = {
        {"ln_inp", inp, {N, C}},          {"ln_gamma", gamma, {C}},      {"ln_beta", beta, {C}},
        {"ln_dout", dout, {N, C}},        {"ln_out", out, {N, C}},       {"ln_dinp", dinp, {N, C}},
        {"ln_dgamma", dgamma, {C}},       {"ln_dbeta", dbeta, {C}},      {"gelu_inp", g_inp, {G}},
        {"gelu_dout", g_dout, {G}},       {"gelu_out", g_out, {G}},      {"gelu_dinp", g_dinp, {G}},
        {"pos_tok", tok, {B, T, E}},      {"pos_wpe", wpe, {P, E}},      {"pos_dout", p_dout, {B, T, E}},
        {"pos_out", p_out, {B, T, E}},    {"pos_dtok", dtok, {B, T, E}}, {"pos_dwpe", dwpe, {P, E}},
    };
    int bad = dump_arrays(dir, manifest, entries, sizeof entries / sizeof *entries);
    fprintf(manifest, "pos0 %d\n", (int)P0);
    if (fclose(manifest) != 0 && !bad) {
        fprintf(stderr, "test_xf_layers: cannot write %s\n", path);
        bad = 1;
    }
    return bad;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "dump")) return dump(argv[2]);
    if (argc != 1) {
        fprintf(stderr, "usage: test_xf_layers [dump DIR]\n");
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm_gradients), cmocka_unit_test(test_layernorm_reference),
        cmocka_unit_test(test_layernorm_accumulates), cmocka_unit_test(test_gelu_gradients),
        cmocka_unit_test(test_gelu_reference),      cmocka_unit_test(test_gelu_accumulates),
        cmocka_unit_test(test_position_gradients),  cmocka_unit_test(test_position_forward),
        cmocka_unit_test(test_position_accumulates), cmocka_unit_test(test_rotary_forward),
        cmocka_unit_test(test_rotary_relative),     cmocka_unit_test(test_rotary_gradients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
