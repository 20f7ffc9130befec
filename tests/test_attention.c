/* Blocked multi-head self-attention (src/layers/attention.c) against a plain materialised softmax in double:
 * causal and not, with and without padding, T not a multiple of the blocks, blocks smaller than T (so the
 * online softmax rescales), one head and several; finite differences of dqkv; zeros at padding; the
 * workspace linear in T and never overrun. Attention dropout: the reference materialises the (T, T)
 * weights and applies the mask this test draws itself from the key reel/attention.h documents; the
 * kernel must match it with query and key blocks of 1, 3 and 64, and its gradient the finite differences.
 * The packed layout (sequences one after another, no padding) gives the padded layout's rows bit for bit.
 *
 * Run without arguments, the fp32 checks; with the argument "bf16", the same comparisons with every product
 * in bf16, which exit 77 (CTest: skipped, with the reason on stderr) on a CPU without native bf16. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reel/attention.h"
#include "reel/gemm.h"
#include "reel/rng.h"
#include "fdcheck.h"
#include "bf16_part.h"

typedef struct {
    size_t B, T, C, NH, Bq, Bk;
    int causal;
    const size_t *lengths; /* NULL: every sequence full */
    const reel_attention_dropout *dropout; /* NULL: none */
} shape;

/* The dropout mask as reel/attention.h documents its key, written out here: z_ij = 0 for a dropped weight
 * of query i and key j of head h in sequence b, 1 / (1 - p) for a kept one; 1 without dropout. */
static double mask_z(const reel_attention_dropout *d, size_t b, size_t h, size_t i, size_t j) {
    if (!d || d->p <= 0) return 1.0;
    uint32_t w[4];
    size_t W = d->positions;
    reel_rng_block(w, d->seed, (uint32_t)REEL_RNG_ATTENTION_DROPOUT | (d->layer << 8), d->epoch,
                   (uint32_t)d->sample_index[b], (uint32_t)((h * W + i) * ((W + 3) / 4) + j / 4));
    return reel_rng_unit_float(w[j % 4]) < d->p ? 0.0 : (double)(1.0f / (1.0f - d->p));
}

/* p = 0.3 over sequences of 13 (and 7) positions, in a model whose positions go up to 16; samples 40 and 9
 * (not their places in the batch), block 2, epoch 3. */
static const uint64_t drop_samples[] = {40, 9, 41};
static const reel_attention_dropout drop = {0.3f, 777, 3, drop_samples, 2, 16};

static size_t seq_length(const shape *s, size_t b) {
    return s->lengths ? (s->lengths[b] < s->T ? s->lengths[b] : s->T) : s->T;
}

/* ---------------- the reference: the whole (T, T) softmax per sequence and head, in double ----------------
 * Besides the values it returns, per entry, a bound on how far a kernel computing in the given precision may
 * be from them, derived from gemm.h's error model: a product of K terms is within
 * gamma = 2u + u^2 + K 2^-23 of the sum of its terms' magnitudes (u = 2^-8 in bf16; u = 0 in fp32, where
 * K 2^-23 is twice fp32's accumulation bound). Other fp32 roundings (expf, logf, the rescaling by
 * exp(m_old - m_new) once per key block, the accumulation into out / dqkv once per block) are counted by
 * rho = (K + 2 blocks + 16) 2^-23 relative to the magnitudes involved, with K = max(D, Bq, Bk).
 *   Scores: |s' - s| <= E_i = gamma scale max_j sum_d |q_id k_jd| + rho (1 + max_j |s_ij|), so a
 *   probability, a ratio of exponentials of scores, and also exp(s' - lse') in the backward, is within a
 *   factor exp(2 E_i + rho (1 + |lse_i|)) = 1 + eps_i of the exact one.
 *   out_id = sum_j p_ij v_jd: |out' - out| <= (eps_i + gamma (1 + eps_i) + rho) F_id, F_id = sum_j p_ij |v_jd|.
 *   lse: within E_i + rho (1 + |lse_i|).
 *   dv_jd = sum_i p_ij dout_id: within sum_i (eps_i + gamma (1 + eps_i)) p_ij |dout_id|.
 *   D_i = dout_i . out_i: within DD_i = sum_d |dout_id| (bound of out_id) + rho sum_d |dout_id out_id|.
 *   dp_ij = dout_i . v_j: within gamma A_ij, A_ij = sum_d |dout_id v_jd|.
 *   ds_ij = p_ij (dp_ij - D_i): within S_ij = p_ij ((eps_i + rho) |dp_ij - D_i| + (1 + eps_i)(gamma A_ij + DD_i)).
 *   dq_id = scale sum_j ds_ij k_jd: within scale sum_j (S_ij + gamma (|ds_ij| + S_ij)) |k_jd|; dk likewise.
 * A kernel that drops the rescaling, a mask, a block or a factor is off by order 1 of these magnitudes;
 * one that computed in bf16 when fp32 was asked for, by about 2^-8 of them. */
typedef struct {
    double *out, *out_bound; /* (B, T, C) */
    double *lse, *lse_bound; /* (B, NH, T) */
    double *dqkv, *dqkv_bound; /* (B, T, 3C) */
} reference;

static void reference_run(reference *ref, const shape *s, const float *qkv, const float *dout, double u) {
    size_t B = s->B, T = s->T, C = s->C, NH = s->NH, D = C / NH, ld = 3 * C;
    size_t K = D > s->Bq ? D : s->Bq;
    if (s->Bk > K) K = s->Bk;
    size_t blocks = (T + (s->Bq < s->Bk ? s->Bq : s->Bk) - 1) / (s->Bq < s->Bk ? s->Bq : s->Bk);
    double gamma = 2 * u + u * u + (double)K * ldexp(1.0, -23);
    double rho = (double)(K + 2 * blocks + 16) * ldexp(1.0, -23);
    double scale = 1.0 / sqrt((double)D);
    ref->out = calloc(B * T * C, sizeof(double));
    ref->out_bound = calloc(B * T * C, sizeof(double));
    ref->lse = calloc(B * NH * T, sizeof(double));
    ref->lse_bound = calloc(B * NH * T, sizeof(double));
    ref->dqkv = calloc(B * T * ld, sizeof(double));
    ref->dqkv_bound = calloc(B * T * ld, sizeof(double));
    double *p = malloc(T * T * sizeof(double)), *dsv = malloc(T * T * sizeof(double));
    double *sb = malloc(T * T * sizeof(double)), *eps = malloc(T * sizeof(double));
    double *Di = malloc(T * sizeof(double)), *DD = malloc(T * sizeof(double));
    for (size_t b = 0; b < B; b++) {
        size_t L = seq_length(s, b);
        for (size_t h = 0; h < NH; h++) {
            const float *Q = qkv + b * T * ld + h * D, *Kp = Q + C, *V = Q + 2 * C;
            const float *dO = dout + b * T * C + h * D;
            double *O = ref->out + b * T * C + h * D, *Ob = ref->out_bound + b * T * C + h * D;
            double *dQ = ref->dqkv + b * T * ld + h * D, *dK = dQ + C, *dV = dQ + 2 * C;
            double *dQb = ref->dqkv_bound + b * T * ld + h * D, *dKb = dQb + C, *dVb = dQb + 2 * C;
            for (size_t i = 0; i < L; i++) {
                size_t seen = s->causal ? i + 1 : L;
                double mx = -INFINITY, E = 0, smax = 0;
                for (size_t j = 0; j < seen; j++) {
                    double dotqk = 0, mag = 0;
                    for (size_t d = 0; d < D; d++) {
                        dotqk += (double)Q[i * ld + d] * Kp[j * ld + d];
                        mag += fabs((double)Q[i * ld + d] * Kp[j * ld + d]);
                    }
                    p[i * T + j] = scale * dotqk;
                    if (scale * mag > E) E = scale * mag;
                    if (fabs(scale * dotqk) > smax) smax = fabs(scale * dotqk);
                    if (scale * dotqk > mx) mx = scale * dotqk;
                }
                double sum = 0;
                for (size_t j = 0; j < seen; j++) sum += exp(p[i * T + j] - mx);
                double lse = mx + log(sum);
                for (size_t j = 0; j < T; j++) p[i * T + j] = j < seen ? exp(p[i * T + j] - lse) : 0;
                E = gamma * E + rho * (1 + smax);
                eps[i] = expm1(2 * E + rho * (1 + fabs(lse)));
                ref->lse[(b * NH + h) * T + i] = lse;
                ref->lse_bound[(b * NH + h) * T + i] = E + rho * (1 + fabs(lse));
                for (size_t d = 0; d < D; d++) {
                    double o = 0, F = 0;
                    for (size_t j = 0; j < seen; j++) {
                        double z = mask_z(s->dropout, b, h, i, j);
                        o += p[i * T + j] * z * V[j * ld + d];
                        F += p[i * T + j] * z * fabs((double)V[j * ld + d]);
                    }
                    O[i * C + d] = o;
                    Ob[i * C + d] = (eps[i] + gamma * (1 + eps[i]) + rho) * F;
                }
                Di[i] = DD[i] = 0;
                double mag = 0;
                for (size_t d = 0; d < D; d++) {
                    Di[i] += (double)dO[i * C + d] * O[i * C + d];
                    DD[i] += fabs((double)dO[i * C + d]) * Ob[i * C + d];
                    mag += fabs(dO[i * C + d] * O[i * C + d]);
                }
                DD[i] += rho * mag;
            }
            for (size_t i = 0; i < L; i++)
                for (size_t j = 0; j < L; j++) {
                    double dp = 0, A = 0;
                    for (size_t d = 0; d < D; d++) {
                        dp += (double)dO[i * C + d] * V[j * ld + d];
                        A += fabs((double)dO[i * C + d] * V[j * ld + d]);
                    }
                    /* with dropout the gradient of p_ij is z_ij dp_ij (z = 1 without) */
                    double pij = p[i * T + j], z = mask_z(s->dropout, b, h, i, j);
                    dsv[i * T + j] = pij * (z * dp - Di[i]);
                    sb[i * T + j] = pij * ((eps[i] + rho) * fabs(z * dp - Di[i]) + (1 + eps[i]) * (z * gamma * A + DD[i]));
                }
            for (size_t i = 0; i < L; i++)
                for (size_t d = 0; d < D; d++) {
                    double g = 0, gb = 0;
                    for (size_t j = 0; j < L; j++) {
                        g += dsv[i * T + j] * Kp[j * ld + d];
                        gb += (sb[i * T + j] + gamma * (fabs(dsv[i * T + j]) + sb[i * T + j])) * fabs((double)Kp[j * ld + d]);
                    }
                    dQ[i * ld + d] = scale * g;
                    dQb[i * ld + d] = scale * gb;
                }
            for (size_t j = 0; j < L; j++)
                for (size_t d = 0; d < D; d++) {
                    double gk = 0, gkb = 0, gv = 0, gvb = 0;
                    for (size_t i = 0; i < L; i++) {
                        double pij = p[i * T + j] * mask_z(s->dropout, b, h, i, j); /* dV takes the dropped weights */
                        gk += dsv[i * T + j] * Q[i * ld + d];
                        gkb += (sb[i * T + j] + gamma * (fabs(dsv[i * T + j]) + sb[i * T + j])) * fabs((double)Q[i * ld + d]);
                        gv += pij * dO[i * C + d];
                        gvb += (eps[i] + gamma * (1 + eps[i])) * pij * fabs((double)dO[i * C + d]);
                    }
                    dK[j * ld + d] = scale * gk;
                    dKb[j * ld + d] = scale * gkb;
                    dV[j * ld + d] = gv;
                    dVb[j * ld + d] = gvb;
                }
        }
    }
    free(p), free(dsv), free(sb), free(eps), free(Di), free(DD);
}

static void reference_free(reference *ref) {
    free(ref->out), free(ref->out_bound), free(ref->lse), free(ref->lse_bound), free(ref->dqkv), free(ref->dqkv_bound);
}

/* ---------------- running the kernel in exactly the workspace it asks for ----------------
 * The workspace is filled with NaN before each call (a kernel that read a value it had not written would
 * spread it into its results) and followed by a guard of sentinel values that must be intact afterwards. */
enum { GUARD = 1024 };
static const float sentinel = 12345.678f;

typedef struct {
    float *out, *lse, *dqkv, *dqkv0; /* dqkv0: what dqkv held before the backward (it accumulates) */
} result;

static float *workspace(size_t floats) {
    float *w = malloc((floats + GUARD) * sizeof(float));
    for (size_t i = 0; i < floats; i++) w[i] = NAN;
    for (size_t i = 0; i < GUARD; i++) w[floats + i] = sentinel;
    return w;
}

static void check_guard(const float *w, size_t floats, const char *what) {
    for (size_t i = 0; i < GUARD; i++)
        if (w[floats + i] != sentinel)
            fail_msg("%s wrote past its workspace of %zu floats: at float %zu", what, floats, floats + i);
}

static void kernel_run(result *res, const shape *s, const float *qkv, const float *dout) {
    size_t B = s->B, T = s->T, C = s->C;
    size_t floats = reel_attention_scratch_floats(B, T, C, s->NH, s->Bq, s->Bk);
    res->out = malloc(B * T * C * sizeof(float));
    res->lse = malloc(B * s->NH * T * sizeof(float));
    res->dqkv = malloc(B * T * 3 * C * sizeof(float));
    res->dqkv0 = malloc(B * T * 3 * C * sizeof(float));
    for (size_t i = 0; i < B * T * C; i++) res->out[i] = NAN;
    for (size_t i = 0; i < B * s->NH * T; i++) res->lse[i] = NAN;
    fill(res->dqkv0, B * T * 3 * C, -1, 1, 77);
    memcpy(res->dqkv, res->dqkv0, B * T * 3 * C * sizeof(float));
    float *w = workspace(floats);
    reel_attention_forward(res->out, res->lse, qkv, s->lengths, s->causal, B, T, C, s->NH, s->Bq, s->Bk, s->dropout, w);
    check_guard(w, floats, "reel_attention_forward");
    for (size_t i = 0; i < floats; i++) w[i] = NAN;
    reel_attention_backward(res->dqkv, dout, res->out, res->lse, qkv, s->lengths, s->causal, B, T, C, s->NH, s->Bq,
                            s->Bk, s->dropout, w);
    check_guard(w, floats, "reel_attention_backward");
    free(w);
}

static void result_free(result *res) { free(res->out), free(res->lse), free(res->dqkv), free(res->dqkv0); }

static double worst_ratio;

static void compare_entry(const char *label, const char *what, size_t index, double got, double want, double bound) {
    double diff = fabs(got - want);
    if (bound > 0 && diff / bound > worst_ratio) worst_ratio = diff / bound;
    if (!(diff <= bound)) fail_msg("%s: %s[%zu] = %.9g, reference %.9g, difference %.3g > bound %.3g", label, what, index, got, want, diff, bound);
}

/* Runs one shape against the reference in the current precision (u = 2^-8 for bf16, 0 for fp32) and
 * checks padding: outputs and log-sum-exps zero, dqkv rows unchanged. Returns the kernel's result. */
static result check_shape(const char *label, const shape *s, double u) {
    size_t B = s->B, T = s->T, C = s->C, NH = s->NH, ld = 3 * C;
    float *qkv = malloc(B * T * ld * sizeof(float)), *dout = malloc(B * T * C * sizeof(float));
    fill(qkv, B * T * ld, -1, 1, 11);
    fill(dout, B * T * C, -1, 1, 12);
    reference ref;
    reference_run(&ref, s, qkv, dout, u);
    result res;
    kernel_run(&res, s, qkv, dout);
    for (size_t b = 0; b < B; b++) {
        size_t L = seq_length(s, b);
        for (size_t t = 0; t < T; t++) {
            size_t row = b * T + t;
            for (size_t c = 0; c < C; c++) {
                size_t k = row * C + c;
                if (t >= L) {
                    if (res.out[k] != 0.0f) fail_msg("%s: out[%zu] at padding (b %zu t %zu) is %g, not 0", label, k, b, t, res.out[k]);
                } else
                    compare_entry(label, "out", k, res.out[k], ref.out[k], ref.out_bound[k] + ldexp(1.0, -40));
            }
            for (size_t c = 0; c < ld; c++) {
                size_t k = row * ld + c;
                double got = (double)res.dqkv[k] - res.dqkv0[k];
                if (t >= L) {
                    if (res.dqkv[k] != res.dqkv0[k]) fail_msg("%s: dqkv[%zu] at padding (b %zu t %zu) changed by %g", label, k, b, t, got);
                } else /* the += into dqkv0 rounds once more, relative to both */
                    compare_entry(label, "dqkv", k, got, ref.dqkv[k],
                                  ref.dqkv_bound[k] + ldexp(1.0, -23) * (fabs(res.dqkv0[k]) + fabs(ref.dqkv[k])) + ldexp(1.0, -40));
            }
            for (size_t h = 0; h < NH; h++) {
                size_t k = (b * NH + h) * T + t;
                if (t >= L) {
                    if (res.lse[k] != 0.0f) fail_msg("%s: lse[%zu] at padding is %g, not 0", label, k, res.lse[k]);
                } else
                    compare_entry(label, "lse", k, res.lse[k], ref.lse[k], ref.lse_bound[k]);
            }
        }
    }
    reference_free(&ref);
    free(qkv), free(dout);
    return res;
}

static const size_t lengths2[] = {13, 7}, lengths3[] = {13, 5, 0}, lengths_nc[] = {6, 11};

/* The shapes every precision is checked on. */
static const shape shapes[] = {
    /* blocks smaller than T, T a multiple of neither; several heads */
    {2, 13, 12, 3, 4, 3, 1, NULL},
    /* padded: one full sequence, one short, one empty */
    {3, 13, 12, 3, 4, 3, 1, lengths3},
    {2, 13, 12, 2, 3, 5, 1, lengths2},
    /* one head, the query block larger than the key block */
    {1, 20, 8, 1, 8, 3, 1, NULL},
    /* blocks larger than T: one block */
    {2, 13, 12, 3, 64, 64, 1, lengths2},
    /* without the causal mask (the encoder), padded */
    {2, 11, 12, 2, 4, 4, 0, lengths_nc},
    {1, 9, 8, 1, 2, 3, 0, NULL},
    /* head width and blocks large enough for bf16's rounding to show */
    {2, 40, 64, 2, 16, 8, 1, lengths2},
};

static void test_against_reference(void **state) {
    (void)state;
    worst_ratio = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        char label[96];
        snprintf(label, sizeof label, "fp32 shape %zu", i);
        result res = check_shape(label, &shapes[i], 0);
        result_free(&res);
    }
    printf("fp32: the largest difference from the reference is %.3g of its bound\n", worst_ratio);
}

/* Values at padding never matter: changing q, k and v there changes no valid output, and dout there no
 * gradient. */
static void test_padding_invariance(void **state) {
    (void)state;
    const shape *s = &shapes[1];
    size_t B = s->B, T = s->T, C = s->C, ld = 3 * C;
    float *qkv = malloc(B * T * ld * sizeof(float)), *dout = malloc(B * T * C * sizeof(float));
    fill(qkv, B * T * ld, -1, 1, 11);
    fill(dout, B * T * C, -1, 1, 12);
    result first, second;
    kernel_run(&first, s, qkv, dout);
    for (size_t b = 0; b < B; b++)
        for (size_t t = seq_length(s, b); t < T; t++) {
            for (size_t c = 0; c < ld; c++) qkv[(b * T + t) * ld + c] = 50.0f + (float)c;
            for (size_t c = 0; c < C; c++) dout[(b * T + t) * C + c] = -30.0f;
        }
    kernel_run(&second, s, qkv, dout);
    assert_memory_equal(first.out, second.out, B * T * C * sizeof(float));
    assert_memory_equal(first.dqkv, second.dqkv, B * T * ld * sizeof(float));
    result_free(&first), result_free(&second);
    free(qkv), free(dout);
}

/* ---------------- finite differences of dqkv ---------------- */
typedef struct {
    const shape *s;
    float *qkv, *out, *lse, *r, *scratch;
} fd_ctx;

static double fd_objective(void *p) {
    fd_ctx *c = p;
    const shape *s = c->s;
    reel_attention_forward(c->out, c->lse, c->qkv, s->lengths, s->causal, s->B, s->T, s->C, s->NH, s->Bq, s->Bk, s->dropout, c->scratch);
    return dot(c->out, c->r, s->B * s->T * s->C);
}

static void fd_shape(const char *label, const shape *s) {
    size_t n = s->B * s->T * 3 * s->C, no = s->B * s->T * s->C;
    fd_ctx c = {s, malloc(n * sizeof(float)), malloc(no * sizeof(float)), malloc(s->B * s->NH * s->T * sizeof(float)),
                malloc(no * sizeof(float)), malloc(reel_attention_scratch_floats(s->B, s->T, s->C, s->NH, s->Bq, s->Bk) * sizeof(float))};
    fill(c.qkv, n, -1, 1, 21);
    fill(c.r, no, -1, 1, 22); /* nonzero at padding too: it must not reach any gradient */
    float *grad = calloc(n, sizeof(float));
    fd_objective(&c);
    reel_attention_backward(grad, c.r, c.out, c.lse, c.qkv, s->lengths, s->causal, s->B, s->T, s->C, s->NH, s->Bq, s->Bk, s->dropout, c.scratch);
    compare(label, c.qkv, grad, n, fd_objective, &c);
    free(c.qkv), free(c.out), free(c.lse), free(c.r), free(c.scratch), free(grad);
}

static void test_finite_differences(void **state) {
    (void)state;
    static const size_t lengths[] = {7, 4};
    const shape causal = {2, 7, 6, 2, 3, 2, 1, lengths}, full = {2, 7, 6, 3, 2, 3, 0, lengths};
    const shape one_head = {1, 6, 4, 1, 4, 2, 1, NULL};
    fd_shape("attention dqkv (causal, padded)", &causal);
    fd_shape("attention dqkv (not causal, padded)", &full);
    fd_shape("attention dqkv (causal, one head)", &one_head);
    /* with dropout (a fixed key, so a fixed mask): the query and key blocks split the sequences */
    const shape causal_drop = {2, 7, 6, 2, 3, 2, 1, lengths, &drop}, full_drop = {2, 7, 6, 3, 2, 3, 0, lengths, &drop};
    fd_shape("attention dqkv (causal, padded, dropout)", &causal_drop);
    fd_shape("attention dqkv (not causal, padded, dropout)", &full_drop);
}

/* ---------------- attention dropout ---------------- */

/* The kernel with dropout against the reference that applies the same mask to the whole (T, T) weights,
 * causal and not, padded, one head and several, with query and key blocks of 1, 3 and 64 (one block, or a
 * block per position): the mask depends on neither. And dropout changed the result (the comparison is not
 * of two undropped computations), dropping about p of the weights. */
static void test_dropout_against_reference(void **state) {
    (void)state;
    static const size_t lengths[] = {13, 7, 0};
    const size_t blocks[][2] = {{1, 1}, {3, 3}, {64, 64}, {1, 64}, {64, 3}, {4, 5}};
    const shape bases[] = {{3, 13, 12, 3, 0, 0, 1, lengths, &drop}, {2, 13, 12, 2, 0, 0, 0, lengths, &drop},
                           {1, 16, 8, 1, 0, 0, 1, NULL, &drop}};
    worst_ratio = 0;
    for (size_t k = 0; k < sizeof bases / sizeof bases[0]; k++)
        for (size_t c = 0; c < sizeof blocks / sizeof blocks[0]; c++) {
            shape s = bases[k];
            s.Bq = blocks[c][0];
            s.Bk = blocks[c][1];
            char label[96];
            snprintf(label, sizeof label, "dropout shape %zu, blocks %zu x %zu", k, s.Bq, s.Bk);
            result res = check_shape(label, &s, 0);
            /* the same shape without dropout gives other outputs */
            s.dropout = NULL;
            result plain = check_shape(label, &s, 0);
            assert_memory_not_equal(res.out, plain.out, s.B * s.T * s.C * sizeof(float));
            result_free(&res), result_free(&plain);
        }
    printf("dropout: the largest difference from the reference is %.3g of its bound\n", worst_ratio);
    /* the mask drops about p of the weights: 16 x 16 pairs of 4 heads of 3 sequences, 3,072 draws */
    size_t dropped = 0, drawn = 0;
    for (size_t b = 0; b < 3; b++)
        for (size_t h = 0; h < 4; h++)
            for (size_t i = 0; i < 16; i++)
                for (size_t j = 0; j < 16; j++, drawn++) dropped += mask_z(&drop, b, h, i, j) == 0.0;
    printf("dropout: %zu of %zu weights dropped (p = %.2f)\n", dropped, drawn, (double)drop.p);
    assert_true(fabs((double)dropped / (double)drawn - drop.p) < 0.03);
}

/* The mask follows its key: the same sequence at another place in the batch (its sample index going
 * with it) gives the same output rows; another layer, epoch or sample index gives others. */
static void test_dropout_key(void **state) {
    (void)state;
    enum { T = 9, C = 8, NH = 2 };
    float qkv[2 * T * 3 * C], out[4][2 * T * C], lse[2 * NH * T];
    float *scratch = malloc(reel_attention_scratch_floats(2, T, C, NH, 4, 4) * sizeof(float));
    fill(qkv, T * 3 * C, -1, 1, 31);
    fill(qkv + T * 3 * C, T * 3 * C, -1, 1, 32);
    uint64_t swapped_samples[] = {9, 40};
    reel_attention_dropout swapped = drop;
    swapped.sample_index = swapped_samples;
    /* sequence 0 of the first call is sequence 1 of the second */
    float qkv_swapped[2 * T * 3 * C];
    memcpy(qkv_swapped, qkv + T * 3 * C, T * 3 * C * sizeof(float));
    memcpy(qkv_swapped + T * 3 * C, qkv, T * 3 * C * sizeof(float));
    reel_attention_forward(out[0], lse, qkv, NULL, 1, 2, T, C, NH, 4, 4, &drop, scratch);
    reel_attention_forward(out[1], lse, qkv_swapped, NULL, 1, 2, T, C, NH, 4, 4, &swapped, scratch);
    assert_memory_equal(out[0], out[1] + T * C, T * C * sizeof(float));
    assert_memory_equal(out[0] + T * C, out[1], T * C * sizeof(float));
    reel_attention_dropout other = drop;
    const char *what[] = {"layer", "epoch", "sample index"};
    for (int k = 0; k < 3; k++) {
        other = drop;
        uint64_t other_samples[] = {41, 9};
        if (k == 0) other.layer = 3;
        if (k == 1) other.epoch = 4;
        if (k == 2) other.sample_index = other_samples;
        reel_attention_forward(out[2], lse, qkv, NULL, 1, 2, T, C, NH, 4, 4, &other, scratch);
        if (memcmp(out[0], out[2], T * C * sizeof(float)) == 0) fail_msg("another %s gave the same mask", what[k]);
    }
    free(scratch);
}

/* ---------------- the packed layout ----------------
 * Sequences of unequal lengths (1 to 11 tokens, blocks of 4: some span several blocks, one is shorter
 * than a block), packed one after another: every output row, log-sum-exp and gradient row is bit for bit
 * the padded layout's, causal or not, with attention dropout (its key follows the sequence and the
 * positions in it, not the rows). */
static void test_packed(void **state) {
    (void)state;
    enum { B = 4, T = 11, C = 8, NH = 2, N = 26 };
    static const size_t lengths[B] = {7, 1, 11, 7}, offsets[B + 1] = {0, 7, 8, 19, 26};
    float *qkv = calloc(B * T * 3 * C, sizeof(float)), *dout = calloc(B * T * C, sizeof(float));
    float *out = calloc(B * T * C, sizeof(float)), *lse = calloc(B * NH * T, sizeof(float));
    float *dqkv = calloc(B * T * 3 * C, sizeof(float));
    float *pqkv = calloc(N * 3 * C, sizeof(float)), *pdout = calloc(N * C, sizeof(float));
    float *pout = calloc(N * C, sizeof(float)), *plse = calloc(N * NH, sizeof(float));
    float *pdqkv = calloc(N * 3 * C, sizeof(float));
    float *scratch = malloc(reel_attention_scratch_floats(B, T, C, NH, 4, 4) * sizeof(float));
    static const uint64_t samples[B] = {40, 9, 41, 8};
    reel_attention_dropout key = drop;
    key.sample_index = samples;
    fill(qkv, B * T * 3 * C, -1, 1, 51);
    fill(dout, B * T * C, -1, 1, 52);
    for (size_t b = 0; b < B; b++) {
        memcpy(pqkv + offsets[b] * 3 * C, qkv + b * T * 3 * C, lengths[b] * 3 * C * sizeof(float));
        memcpy(pdout + offsets[b] * C, dout + b * T * C, lengths[b] * C * sizeof(float));
    }
    for (int causal = 0; causal < 2; causal++)
        for (int dropping = 0; dropping < 2; dropping++) {
            const reel_attention_dropout *d = dropping ? &key : NULL;
            memset(dqkv, 0, B * T * 3 * C * sizeof(float));
            memset(pdqkv, 0, N * 3 * C * sizeof(float));
            reel_attention_forward(out, lse, qkv, lengths, causal, B, T, C, NH, 4, 4, d, scratch);
            reel_attention_backward(dqkv, dout, out, lse, qkv, lengths, causal, B, T, C, NH, 4, 4, d, scratch);
            reel_attention_forward_packed(pout, plse, pqkv, offsets, causal, B, C, NH, 4, 4, d, scratch);
            reel_attention_backward_packed(pdqkv, pdout, pout, plse, pqkv, offsets, causal, B, C, NH, 4, 4, d, scratch);
            for (size_t b = 0; b < B; b++) {
                size_t L = lengths[b];
                if (memcmp(pout + offsets[b] * C, out + b * T * C, L * C * sizeof(float)) ||
                    memcmp(pdqkv + offsets[b] * 3 * C, dqkv + b * T * 3 * C, L * 3 * C * sizeof(float)))
                    fail_msg("sequence %zu (causal %d, dropout %d): packed rows differ from the padded ones", b, causal,
                             dropping);
                for (size_t h = 0; h < NH; h++)
                    if (memcmp(plse + offsets[b] * NH + h * L, lse + (b * NH + h) * T, L * sizeof(float)))
                        fail_msg("sequence %zu head %zu: packed log-sum-exp differs", b, h);
            }
        }
    /* a packed batch of one sequence with its own offset: the rows are relative to offsets[0] */
    size_t one[2] = {100, 107};
    reel_attention_forward_packed(pout, plse, pqkv, one, 1, 1, C, NH, 4, 4, NULL, scratch);
    reel_attention_forward(out, lse, qkv, lengths, 1, 1, T, C, NH, 4, 4, NULL, scratch);
    assert_memory_equal(pout, out, 7 * C * sizeof(float));
    free(qkv), free(dout), free(out), free(lse), free(dqkv), free(pqkv), free(pdout), free(pout), free(plse);
    free(pdqkv), free(scratch);
}

/* ---------------- the workspace ---------------- */
static void test_workspace(void **state) {
    (void)state;
    const size_t C = 512, NH = 8, Bq = 64, Bk = 64;
    size_t fixed = reel_attention_scratch_floats(1, 0, C, NH, Bq, Bk);
    for (size_t T = 256; T <= 4096; T *= 2) {
        size_t one = reel_attention_scratch_floats(1, T, C, NH, Bq, Bk), two = reel_attention_scratch_floats(1, 2 * T, C, NH, Bq, Bk);
        printf("workspace at T %zu: %zu floats (%.1f KiB)\n", T, one, (double)one * sizeof(float) / 1024);
        if (two > 2 * one + fixed) fail_msg("workspace grows faster than T: %zu floats at T %zu, %zu at %zu", one, T, two, 2 * T);
        /* not the (T, T) scores of even one head */
        assert_true(one < T * T);
    }
}

static void test_bf16(void **state) {
    (void)state;
    worst_ratio = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        char label[96];
        snprintf(label, sizeof label, "bf16 shape %zu", i);
        reel_gemm_set_precision(REEL_BF16);
        result bf = check_shape(label, &shapes[i], 1.0 / 256.0);
        reel_gemm_set_precision(REEL_FP32);
        result fp = check_shape(label, &shapes[i], 0);
        /* rounded operands: the bf16 products were really taken */
        assert_memory_not_equal(bf.out, fp.out, shapes[i].B * shapes[i].T * shapes[i].C * sizeof(float));
        assert_memory_not_equal(bf.dqkv, fp.dqkv, shapes[i].B * shapes[i].T * 3 * shapes[i].C * sizeof(float));
        result_free(&bf), result_free(&fp);
    }
    reel_gemm_release();
    printf("bf16: the largest difference from the reference is %.3g of its bound\n", worst_ratio);
}

int main(int argc, char **argv) {
    const struct CMUnitTest fp32[] = {cmocka_unit_test(test_against_reference), cmocka_unit_test(test_padding_invariance),
                                      cmocka_unit_test(test_finite_differences), cmocka_unit_test(test_workspace),
                                      cmocka_unit_test(test_dropout_against_reference),
                                      cmocka_unit_test(test_dropout_key), cmocka_unit_test(test_packed)};
    const struct CMUnitTest bf16[] = {cmocka_unit_test(test_bf16)};
    return run_fp32_and_bf16_parts(argc, argv, "attention", "the bf16 checks of the attention kernels", fp32,
                                   REEL_COUNT(fp32), bf16, REEL_COUNT(bf16));
}

