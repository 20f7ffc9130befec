/* reel_gemm against an independent reference, a plain triple loop accumulating in double, for every
 * transpose, alpha, beta and leading dimension: fp32 within the bound of fp32 accumulation, bf16 within
 * the bound its operands' rounding allows (and really taken: it differs from fp32).
 *
 * Run without arguments, the fp32 checks; with the argument "bf16", the bf16 ones, which exit 77 (CTest:
 * skipped, with the reason on stderr) on a CPU without native bf16, so such a machine shows them as not
 * run rather than passed (REEL_NO_BF16=1 forces that path; tests/bf16.sh covers the refusal). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reel/gemm.h"
#include "bf16_part.h"

static void fill(float *x, size_t n, unsigned seed) {
    srand(seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)rand() / (float)RAND_MAX * 2.0f - 1.0f;
}

/* op(X)[i][k] of a row-major X with leading dimension ld */
static double at(const float *x, int trans, size_t ld, size_t i, size_t k) { return trans ? x[k * ld + i] : x[i * ld + k]; }

/* The operands of one case: A, B and the C it starts from, with padded rows (leading dimensions larger
 * than the rows) so that a stride taken wrong reads or writes the wrong elements. */
typedef struct {
    int trans_a, trans_b;
    size_t M, N, K, lda, ldb, ldc;
    float alpha, beta;
    float *A, *B, *C0;
} gemm_case;

static gemm_case make_case(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha, float beta,
                           unsigned seed) {
    gemm_case g = {trans_a, trans_b, M, N, K, (trans_a ? M : K) + 3, (trans_b ? K : N) + 1, N + 2, alpha, beta,
                   NULL, NULL, NULL};
    size_t a_rows = trans_a ? K : M, b_rows = trans_b ? N : K;
    g.A = malloc(a_rows * g.lda * sizeof *g.A);
    g.B = malloc(b_rows * g.ldb * sizeof *g.B);
    g.C0 = malloc(M * g.ldc * sizeof *g.C0);
    assert_non_null(g.A), assert_non_null(g.B), assert_non_null(g.C0);
    fill(g.A, a_rows * g.lda, seed);
    fill(g.B, b_rows * g.ldb, seed + 1);
    fill(g.C0, M * g.ldc, seed + 2);
    return g;
}

static void free_case(gemm_case *g) { free(g->A), free(g->B), free(g->C0); }

/* C = reel_gemm(...) in the given precision, into a fresh copy of C0 */
static float *run_case(const gemm_case *g, reel_precision precision) {
    float *C = malloc(g->M * g->ldc * sizeof *C);
    assert_non_null(C);
    memcpy(C, g->C0, g->M * g->ldc * sizeof *C);
    reel_gemm_set_precision(precision);
    reel_gemm(g->trans_a, g->trans_b, g->M, g->N, g->K, g->alpha, g->A, g->lda, g->B, g->ldb, g->beta, C, g->ldc);
    reel_gemm_set_precision(REEL_FP32);
    return C;
}

/* The reference for C[i][j]: alpha sum_k op(A)[i][k] op(B)[k][j] + beta C0[i][j] in double, and the sum
 * of the magnitudes of the products (what rounding errors are proportional to). */
static double reference(const gemm_case *g, size_t i, size_t j, double *magnitude) {
    double exact = 0, sum = 0;
    for (size_t k = 0; k < g->K; k++) {
        double p = at(g->A, g->trans_a, g->lda, i, k) * at(g->B, g->trans_b, g->ldb, k, j);
        exact += p;
        sum += fabs(p);
    }
    *magnitude = sum;
    return exact;
}

/* the padding between rows of C is left alone */
static void check_padding(const gemm_case *g, const float *C) {
    for (size_t i = 0; i < g->M; i++)
        for (size_t j = g->N; j < g->ldc; j++) assert_true(C[i * g->ldc + j] == g->C0[i * g->ldc + j]);
}

/* fp32 against the double reference. A dot product of K terms computed in fp32, in whatever order and
 * blocking the library sums (with or without fused multiply-adds), is within gamma_K sum_k |a_k b_k| of
 * the exact one, gamma_n = n u / (1 - n u), u = 2^-24 (Higham, Accuracy and Stability of Numerical
 * Algorithms, 3.1); scaling by alpha, scaling C by beta and the addition are three more roundings, so
 * |C - exact| <= gamma_(K+3) (|alpha| sum_k |a_ik b_kj| + |beta c|). The double reference adds at most
 * K 2^-53 of the same magnitudes, which the bound also allows. A product that went wrong (a transpose,
 * a stride, beta ignored) is off by order 1, and one computed in bf16 by about 2^-8 of the magnitudes,
 * far above K 2^-24 for every K here (at most 500: 3e-5 against 4e-3). */
static double fp32_worst; /* the largest |C - reference| / bound seen, printed to show the margin */

static void check_fp32(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha, float beta, unsigned seed) {
    gemm_case g = make_case(trans_a, trans_b, M, N, K, alpha, beta, seed);
    float *C = run_case(&g, REEL_FP32);
    const double u = ldexp(1.0, -24), gamma = (double)(K + 3) * u / (1.0 - (double)(K + 3) * u);
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            double magnitude, exact = reference(&g, i, j, &magnitude), c0 = g.C0[i * g.ldc + j];
            double want = alpha * exact + beta * c0;
            double scale = fabs(alpha) * magnitude + fabs(beta * c0);
            double bound = gamma * scale + (double)K * ldexp(1.0, -53) * fabs(alpha) * magnitude;
            double got = C[i * g.ldc + j];
            if (bound > 0 && fabs(got - want) / bound > fp32_worst) fp32_worst = fabs(got - want) / bound;
            if (!(fabs(got - want) <= bound))
                fail_msg("fp32 %c%c M=%zu N=%zu K=%zu alpha=%g beta=%g: C[%zu][%zu] = %.9g, reference %.9g, "
                         "difference %.3g > bound %.3g",
                         trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, beta, i, j, got, want,
                         fabs(got - want), bound);
        }
    check_padding(&g, C);
    free(C);
    free_case(&g);
}

/* bf16 against the double reference:
 * |C - exact| <= |alpha| (2u + u^2 + K 2^-23) sum_k |a_ik b_kj| + 2^-22 (|alpha| |ab| + |beta c|),
 * u = 2^-8: each operand is rounded to 8 significant bits (relative error <= u), their product then
 * carries at most 2u + u^2; the fp32 accumulation of K terms adds at most K 2^-24 relative to the sum
 * of magnitudes (doubled for slack), and scaling by alpha and adding beta C two more fp32 roundings. */
static void check_bf16(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha, float beta, unsigned seed) {
    gemm_case g = make_case(trans_a, trans_b, M, N, K, alpha, beta, seed);
    float *C = run_case(&g, REEL_BF16), *Cfp32 = run_case(&g, REEL_FP32);
    const double u = 1.0 / 256.0;
    int differs = 0;
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            double magnitude, exact = reference(&g, i, j, &magnitude), c0 = g.C0[i * g.ldc + j];
            double want = alpha * exact + beta * c0;
            double bound = fabs(alpha) * (2 * u + u * u + (double)K * ldexp(1.0, -23)) * magnitude +
                           ldexp(1.0, -22) * (fabs(alpha * exact) + fabs(beta * c0));
            double got = C[i * g.ldc + j];
            if (!(fabs(got - want) <= bound))
                fail_msg("bf16 %c%c M=%zu N=%zu K=%zu alpha=%g beta=%g: C[%zu][%zu] = %.9g, exact %.9g, bound %.3g",
                         trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, beta, i, j, got, want, bound);
            if (got != Cfp32[i * g.ldc + j]) differs = 1;
        }
    check_padding(&g, C);
    if (K >= 8) assert_true(differs); /* rounded operands: the bf16 path was really taken */
    free(C), free(Cfp32);
    free_case(&g);
}

typedef void (*check_fn)(int, int, size_t, size_t, size_t, float, float, unsigned);

/* every shape, both transposes of each operand, three (alpha, beta) pairs */
static void check_all(check_fn check) {
    unsigned seed = 1;
    const size_t shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {33, 65, 129}, {100, 200, 300}, {3, 1, 500}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                check(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 1.0f, 0.0f, seed++);
                check(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 0.5f, 1.0f, seed++);
                check(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], -2.0f, 0.25f, seed++);
            }
}

static void test_gemm_fp32(void **state) {
    (void)state;
    check_all(check_fp32);
    printf("fp32: the largest difference from the reference is %.3f of its bound\n", fp32_worst);
}

static void test_gemm_bf16(void **state) {
    (void)state;
    check_all(check_bf16);
    /* the same shape again takes the kept primitive; a changed alpha must not */
    check_bf16(0, 1, 33, 65, 129, 1.0f, 0.0f, 900);
    check_bf16(0, 1, 33, 65, 129, 3.0f, 0.0f, 901);
    reel_gemm_release();
    check_bf16(1, 0, 7, 5, 3, 1.0f, 1.0f, 902); /* after a release, state is made again */
    reel_gemm_release();
}

/* C (M, N) = A (M, K) . op(W) in bf16, into a fresh C */
static void product(float *C, const float *A, const float *W, int trans_w, size_t M, size_t N, size_t K) {
    memset(C, 0, M * N * sizeof *C);
    reel_gemm(0, trans_w, M, N, K, 1.0f, A, K, W, trans_w ? K : N, 0.0f, C, N);
}

/* Weights' bf16 copies (reel_gemm_set_params): a product with a kept copy is bit-identical to one that
 * rounds the weight afresh, in either orientation, for many weights (more than the slots kept); a copy
 * is really kept (an unannounced change of a weight is not seen) until reel_gemm_params_changed(); an
 * operand outside the registered buffer is never kept. */
static void test_weight_copies(void **state) {
    (void)state;
    enum { M = 9, K = 48, N = 40, WEIGHTS = 40 };
    size_t count = (size_t)WEIGHTS * K * N;
    float *params = malloc(count * sizeof *params), *A = malloc(M * K * sizeof *A), *outside = malloc(K * N * sizeof *A);
    float *C = malloc(M * N * sizeof *C), *want = malloc(M * N * sizeof *C), *old = malloc(M * N * sizeof *C);
    fill(params, count, 7);
    fill(A, M * K, 8);
    fill(outside, K * N, 9);
    reel_gemm_set_precision(REEL_BF16);
    for (int round = 0; round < 2; round++) /* the second round finds (or, past the slots, remakes) copies */
        for (size_t w = 0; w < WEIGHTS; w++)
            for (int trans = 0; trans < 2; trans++) {
                const float *W = params + w * K * N;
                reel_gemm_set_params(NULL, 0);
                product(want, A, W, trans, M, N, K);
                reel_gemm_set_params(params, count);
                product(C, A, W, trans, M, N, K);
                assert_memory_equal(C, want, M * N * sizeof *C);
            }
    /* a kept copy is used until the change is announced */
    float *W = params + 3 * K * N;
    product(old, A, W, 1, M, N, K);
    for (size_t i = 0; i < K * N; i++) W[i] = -2.0f * W[i] + 0.125f;
    product(C, A, W, 1, M, N, K);
    assert_memory_equal(C, old, M * N * sizeof *C);
    reel_gemm_params_changed();
    product(C, A, W, 1, M, N, K);
    reel_gemm_set_params(NULL, 0);
    product(want, A, W, 1, M, N, K);
    assert_memory_equal(C, want, M * N * sizeof *C);
    assert_memory_not_equal(C, old, M * N * sizeof *C);
    /* outside the parameters: rounded at every call */
    reel_gemm_set_params(params, count);
    product(old, A, outside, 0, M, N, K);
    for (size_t i = 0; i < K * N; i++) outside[i] += 0.5f;
    product(C, A, outside, 0, M, N, K);
    reel_gemm_set_params(NULL, 0);
    product(want, A, outside, 0, M, N, K);
    assert_memory_equal(C, want, M * N * sizeof *C);
    assert_memory_not_equal(C, old, M * N * sizeof *C);
    reel_gemm_set_precision(REEL_FP32);
    reel_gemm_release();
    free(params), free(A), free(outside), free(C), free(want), free(old);
}

/* The rounding itself, bit for bit: with K = 1 and the other operand 1.0, C is the bf16 value of each
 * element, widened back to fp32 exactly. The reference below rounds by the definition (the nearest of the
 * two bf16 neighbours, the even one on a tie), written separately from gemm.c's bit arithmetic. The
 * values cover ties both ways, values just off a tie, negatives, the largest floats (which round to
 * infinity), infinities and a NaN, in rows longer than one vector (37 columns: a 16-wide body and a tail)
 * with a leading dimension past the row, as either operand. */
static float bf16_by_definition(float x) {
    if (isnan(x)) return x;
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    uint32_t low_bits = bits & 0xffffu, down = bits & 0xffff0000u, up = down + 0x10000u;
    uint32_t pick = low_bits < 0x8000u ? down : low_bits > 0x8000u ? up : ((down >> 16) & 1u) ? up : down;
    float y;
    memcpy(&y, &pick, sizeof y);
    return y;
}

static void test_rounding_exact(void **state) {
    (void)state;
    enum { ROWS = 5, COLS = 37, LD = COLS + 3 };
    float src[ROWS * LD], one = 1.0f, C[ROWS * COLS];
    uint32_t specials[] = {0x3f808000u, 0x3f818000u, 0x3f808001u, 0x3f807fffu, 0xbf808000u, 0xbf818000u,
                           0x7f7fffffu, 0xff7fffffu, 0x7f800000u, 0xff800000u, 0x4049ffffu, 0x00800000u};
    size_t n_special = sizeof specials / sizeof specials[0];
    srand(11);
    for (size_t i = 0; i < ROWS * LD; i++) {
        /* random normal floats (denormals stay out: the bf16 units may treat them as zero), a third negative */
        uint32_t exponent = 1u + (uint32_t)rand() % 253u, mantissa = ((uint32_t)rand() << 12 ^ (uint32_t)rand()) & 0x7fffffu;
        uint32_t bits = i < n_special ? specials[i] : (i % 3 == 0 ? 0x80000000u : 0u) | exponent << 23 | mantissa;
        memcpy(&src[i], &bits, sizeof bits);
    }
    reel_gemm_set_precision(REEL_BF16);
    reel_gemm_set_params(NULL, 0);
    for (int side = 0; side < 2; side++) { /* 0: as A (M = ROWS * COLS rows of one column), 1: as B */
        for (size_t r = 0; r < ROWS; r++) {
            memset(C, 0, sizeof C);
            if (side == 0) /* op(A) (COLS, 1) is A (1, COLS) transposed: one row of src; B (1, 1) = 1 */
                reel_gemm(1, 0, COLS, 1, 1, 1.0f, src + r * LD, COLS, &one, 1, 0.0f, C, 1);
            else /* A (1, 1) = 1; B (1, COLS): one row of src */
                reel_gemm(0, 0, 1, COLS, 1, 1.0f, &one, 1, src + r * LD, COLS, 0.0f, C, COLS);
            for (size_t c = 0; c < COLS; c++) {
                float want = bf16_by_definition(src[r * LD + c]);
                if (isnan(want) ? !isnan(C[c]) : memcmp(&C[c], &want, sizeof want) != 0)
                    fail_msg("side %d row %zu col %zu: %a rounded to %a, expected %a", side, r, c,
                             (double)src[r * LD + c], (double)C[c], (double)want);
            }
        }
    }
    /* the whole block at once, as the products' operands are: rows with a leading dimension */
    float out[ROWS * COLS];
    memset(out, 0, sizeof out);
    float eye[COLS * COLS];
    memset(eye, 0, sizeof eye);
    for (size_t c = 0; c < COLS; c++) eye[c * COLS + c] = 1.0f;
    reel_gemm(0, 0, ROWS, COLS, COLS, 1.0f, src, LD, eye, COLS, 0.0f, out, COLS);
    for (size_t r = 0; r < ROWS; r++) {
        int finite_row = 1; /* a row holding an infinity after rounding makes every sum of it NaN (0 x inf) */
        for (size_t c = 0; c < COLS; c++) finite_row &= isfinite(bf16_by_definition(src[r * LD + c]));
        for (size_t c = 0; c < COLS && finite_row; c++) {
            float want = bf16_by_definition(src[r * LD + c]);
            if (memcmp(&out[r * COLS + c], &want, sizeof want) != 0)
                fail_msg("block row %zu col %zu: %a rounded to %a, expected %a", r, c, (double)src[r * LD + c],
                         (double)out[r * COLS + c], (double)want);
        }
    }
    reel_gemm_set_precision(REEL_FP32);
    reel_gemm_release();
}

int main(int argc, char **argv) {
    const struct CMUnitTest fp32[] = {cmocka_unit_test(test_gemm_fp32)};
    const struct CMUnitTest bf16[] = {cmocka_unit_test(test_gemm_bf16), cmocka_unit_test(test_weight_copies),
                                         cmocka_unit_test(test_rounding_exact)};
    return run_fp32_and_bf16_parts(argc, argv, "gemm", "the bf16 checks of reel_gemm", fp32, REEL_COUNT(fp32), bf16,
                                   REEL_COUNT(bf16));
}

