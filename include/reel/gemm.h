/* reel/gemm.h: the matrix product of every layer, in fp32 (OpenBLAS) or bf16 (oneDNN).
 *
 * fp32, the default, is cblas_sgemm itself: results are those of OpenBLAS, bit for bit.
 * bf16 ([train] precision = bf16): both operands are rounded to bfloat16 (round to nearest even: 8
 * significant bits, unit roundoff u = 2^-8) and multiplied by oneDNN's matmul, which accumulates in
 * fp32 and writes fp32; alpha and beta apply in fp32. On a CPU with AVX512_BF16 (or AMX) this runs at
 * about 4x OpenBLAS's fp32 rate (measured here: 380 against 90 GFLOP/s on one core for the LSTM's
 * shapes). Everything else stays fp32: parameters, optimizer state, reductions, the gradient exchange
 * and checkpoints. Each element of a bf16 product is within (2u + u^2) sum_k |a_ik b_kj| of the exact
 * product of the fp32 operands, plus fp32 rounding (tests/test_gemm.c checks that bound).
 *
 * The precision is a per-thread setting (a rank runs its kernels on one thread; OpenBLAS's and oneDNN's
 * own threads are theirs), set by the trainer for a run and reset after it. */
#ifndef REEL_GEMM_H
#define REEL_GEMM_H

#include <stddef.h>

#include "reel/check.h"

typedef enum reel_precision { REEL_FP32 = 0, REEL_BF16 = 1 } reel_precision;

/* 1 when this CPU multiplies bf16 natively (AVX512_BF16 or AMX), as oneDNN detects it. The environment
 * variable REEL_NO_BF16=1 makes it 0, to try the refusal path on any machine. */
int reel_bf16_supported(void);
/* Describes the CPU's best instruction set as oneDNN sees it (for messages). */
const char *reel_cpu_isa_name(void);

/* The precision a run or an evaluation asked for: "fp32", "bf16" or "auto", given as `setting` (how the
 * user wrote the name: "[train] precision", "--precision") and `assign` (what joins name and value:
 * " = ", " "), so that errors quote the request as it was written. bf16 is chosen where it is asked and
 * the CPU multiplies it natively; "bf16" on a CPU that cannot is an error naming the CPU, since emulated
 * bf16 runs several times slower than fp32, which nobody asking for bf16 wants; "auto" falls back to fp32
 * and logs that it did; any other value is an error. The choice is logged. Returns 0, or -1 with err set. */
int reel_precision_choose(const char *setting, const char *assign, const char *requested, reel_precision *chosen,
                          reel_error *err);

void reel_gemm_set_precision(reel_precision precision);
reel_precision reel_gemm_precision(void);

/* C (M, N) = alpha op(A) op(B) + beta C, row-major with leading dimensions, as cblas_sgemm:
 * op(A) (M, K) is A (M, K) (lda >= K) or, with trans_a, A^T of A (K, M) (lda >= M); likewise B (K, N) or
 * B^T of B (N, K). M, N or K of 0 is allowed (C is scaled by beta when K is 0). */
void reel_gemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
               const float *B, size_t ldb, float beta, float *C, size_t ldc);

/* Parameters in bf16. A B operand that lies inside the registered parameter buffer is a weight: its
 * bf16 copy is made once and reused until reel_gemm_params_changed() (a step product would otherwise
 * round all of w_hh for a few rows of h at every time step: measured as most of a bf16 step's time).
 * The trainer registers the model's one contiguous buffer (num_floats floats) and calls
 * reel_gemm_params_changed() at the start of every step and evaluation, since parameters change only
 * between them. Registering NULL turns the reuse off, and so does the environment variable
 * REEL_BF16_WEIGHT_COPIES=0 (to check that a run does not depend on it). Per thread, like the precision. */
void reel_gemm_set_params(const float *params, size_t num_floats);
void reel_gemm_params_changed(void);

/* Releases the calling thread's bf16 primitives and buffers (they are also kept across calls). */
void reel_gemm_release(void);

#endif
