/* reel_gemm: fp32 is OpenBLAS's sgemm bit for bit; bf16 agrees with an exact (double) product of the
 * fp32 operands within the bound its rounding allows, for every transpose, alpha, beta and leading
 * dimension, and is really taken (it differs from fp32). On a CPU without native bf16 the bf16 checks
 * are skipped with the reason (REEL_NO_BF16=1 forces that path; tests/bf16.sh covers the refusal). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cblas.h>

#include "reel/gemm.h"

static void fill(float *x, size_t n, unsigned seed) {
    srand(seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)rand() / (float)RAND_MAX * 2.0f - 1.0f;
}

/* op(X)[i][k] of a row-major X with leading dimension ld */
static double at(const float *x, int trans, size_t ld, size_t i, size_t k) { return trans ? x[k * ld + i] : x[i * ld + k]; }

static void check_shape(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha, float beta, unsigned seed) {
    size_t lda = (trans_a ? M : K) + 3, ldb = (trans_b ? K : N) + 1, ldc = N + 2; /* padded rows */
    size_t a_rows = trans_a ? K : M, b_rows = trans_b ? N : K;
    float *A = malloc(a_rows * lda * sizeof *A), *B = malloc(b_rows * ldb * sizeof *B);
    float *C0 = malloc(M * ldc * sizeof *C0), *C = malloc(M * ldc * sizeof *C), *Cref = malloc(M * ldc * sizeof *Cref);
    fill(A, a_rows * lda, seed);
    fill(B, b_rows * ldb, seed + 1);
    fill(C0, M * ldc, seed + 2);
    /* fp32: exactly OpenBLAS */
    memcpy(C, C0, M * ldc * sizeof *C);
    memcpy(Cref, C0, M * ldc * sizeof *C);
    reel_gemm_set_precision(REEL_FP32);
    reel_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)M, (int)N,
                (int)K, alpha, A, (int)lda, B, (int)ldb, beta, Cref, (int)ldc);
    assert_memory_equal(C, Cref, M * ldc * sizeof *C);
    if (!reel_bf16_supported()) {
        free(A), free(B), free(C0), free(C), free(Cref);
        return;
    }
    /* bf16: |C - exact| <= |alpha| (2u + u^2 + K 2^-23) sum_k |a_ik b_kj| + 2^-22 (|alpha| |ab| + |beta c|),
     * u = 2^-8: each operand is rounded to 8 significant bits (relative error <= u), their product then
     * carries at most 2u + u^2; the fp32 accumulation of K terms adds at most K 2^-24 relative to the sum
     * of magnitudes (doubled for slack), and scaling by alpha and adding beta C two more fp32 roundings. */
    memcpy(C, C0, M * ldc * sizeof *C);
    reel_gemm_set_precision(REEL_BF16);
    reel_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    reel_gemm_set_precision(REEL_FP32);
    const double u = 1.0 / 256.0;
    int differs = 0;
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            double exact = 0, magnitude = 0;
            for (size_t k = 0; k < K; k++) {
                double p = at(A, trans_a, lda, i, k) * at(B, trans_b, ldb, k, j);
                exact += p;
                magnitude += fabs(p);
            }
            double c0 = C0[i * ldc + j], want = alpha * exact + beta * c0;
            double bound = fabs(alpha) * (2 * u + u * u + (double)K * ldexp(1.0, -23)) * magnitude +
                           ldexp(1.0, -22) * (fabs(alpha * exact) + fabs(beta * c0));
            double got = C[i * ldc + j];
            if (fabs(got - want) > bound)
                fail_msg("bf16 %c%c M=%zu N=%zu K=%zu alpha=%g beta=%g: C[%zu][%zu] = %.9g, exact %.9g, bound %.3g",
                         trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, beta, i, j, got, want, bound);
            if (got != Cref[i * ldc + j]) differs = 1;
        }
    /* the padding between rows of C is left alone */
    for (size_t i = 0; i < M; i++)
        for (size_t j = N; j < ldc; j++) assert_true(C[i * ldc + j] == C0[i * ldc + j]);
    if (K >= 8) assert_true(differs); /* rounded operands: the bf16 path was really taken */
    free(A), free(B), free(C0), free(C), free(Cref);
}

static void test_gemm(void **state) {
    (void)state;
    if (!reel_bf16_supported())
        printf("note: this CPU (%s) has no native bf16: only the fp32 path is checked\n", reel_cpu_isa_name());
    unsigned seed = 1;
    const size_t shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {33, 65, 129}, {100, 200, 300}, {3, 1, 500}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                check_shape(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 1.0f, 0.0f, seed++);
                check_shape(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 0.5f, 1.0f, seed++);
                check_shape(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], -2.0f, 0.25f, seed++);
            }
    /* the same shape again takes the kept primitive; a changed alpha must not */
    check_shape(0, 1, 33, 65, 129, 1.0f, 0.0f, 900);
    check_shape(0, 1, 33, 65, 129, 3.0f, 0.0f, 901);
    reel_gemm_release();
    check_shape(1, 0, 7, 5, 3, 1.0f, 1.0f, 902); /* after a release, state is made again */
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
    if (!reel_bf16_supported()) {
        printf("note: this CPU (%s) has no native bf16: no bf16 copies to check\n", reel_cpu_isa_name());
        return;
    }
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

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_gemm), cmocka_unit_test(test_weight_copies)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
