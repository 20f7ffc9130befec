/* GELU, tanh form: 0.5 x (1 + tanh(u)), u = K (x + A x^3), computed as x s with s = sigmoid(2 u), which
 * is the same function. Written with tanh, negative inputs lose their digits: 1 + tanh(u) and 1 - tanh^2
 * cancel, so at x = -4.9 the float gradient came out 12% off (PyTorch's float32 kernel has the same
 * trouble). With e = exp(-2 |u|) <= 1 (never overflows), p = 1 / (1 + e) and q = e p, the sigmoid is p
 * for u >= 0 (that is x >= 0) and q below, s (1 - s) = p q on both sides, and nothing cancels:
 *   gelu(x) = x s,   gelu'(x) = s + 2 x p q K (1 + 3 A x^2).
 * The exponential is the costly part: reel_row_exp (vecmath.c, -ffast-math) uses glibc's vectorised
 * expf, about twice as fast as scalar expf here (bench_kernels --gelu-only 1 on a loaded 2-core machine:
 * 1.4-1.7 ns a value forward and 2.3-2.8 backward, against 3-6 and 4-6; the tanh form with scalar tanhf
 * took 19 and 21). So each kernel works through its values in chunks: -2 |u| of a chunk goes into a
 * small buffer on the stack, reel_row_exp runs over it, and the rest stays here in plain (strict) float
 * math. */
#include <math.h>

#include "reel/layers.h"
#include "vecmath.h"

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_A 0.044715f
#define CHUNK 256 /* floats of stack buffer: long enough for the vector loop, small enough for L1 */

static float gelu_u(float x) {
    return GELU_K * (x + GELU_A * x * x * x);
}

/* e[i] = exp(-2 |u(x[i])|) for n <= CHUNK values: both the forward and the backward build on it, and
 * its exponent is never positive, so it cannot overflow */
static void gelu_exp_terms(float *e, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) e[i] = -2.0f * fabsf(gelu_u(x[i]));
    reel_row_exp(e, n);
}

void reel_gelu_forward(float *out, const float *inp, size_t N) {
    float e[CHUNK];
    for (size_t start = 0; start < N; start += CHUNK) {
        size_t n = N - start < CHUNK ? N - start : CHUNK;
        const float *x = inp + start;
        gelu_exp_terms(e, x, n);
        /* out may be inp: each x[i] is read before out[i] is written. s = (x >= 0 ? 1 : e) / (1 + e)
         * is p or q: choosing before any arithmetic keeps the loop vectorised; a choice between p and q
         * themselves, or a sum q + (p - q) [x >= 0], GCC turns into a branch over the arithmetic, which
         * -ftrapping-math then keeps scalar (6-9 ns a value instead of 2, measured). */
        for (size_t i = 0; i < n; i++) {
            float numerator = x[i] >= 0.0f ? 1.0f : e[i];
            out[start + i] = x[i] * (numerator / (1.0f + e[i]));
        }
    }
}

void reel_gelu_backward(float *dinp, const float *dout, const float *inp, size_t N) {
    float e[CHUNK];
    for (size_t start = 0; start < N; start += CHUNK) {
        size_t n = N - start < CHUNK ? N - start : CHUNK;
        const float *x = inp + start;
        gelu_exp_terms(e, x, n);
        for (size_t i = 0; i < n; i++) {
            float p = 1.0f / (1.0f + e[i]), q = e[i] * p, s = x[i] >= 0.0f ? p : q;
            float d = s + 2.0f * x[i] * p * q * GELU_K * (1.0f + 3.0f * GELU_A * x[i] * x[i]);
            dinp[start + i] += dout[start + i] * d;
        }
    }
}
