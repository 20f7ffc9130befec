#include "reel/gemm.h"

#include "reel/layers.h"

void reel_linear_forward(float *out, const float *inp, const float *weight, const float *bias, size_t B, size_t C,
                         size_t OC) {
    if (B == 0) return;
    /* Start from the bias broadcast over rows so one sgemm with beta = 1 adds the product. */
    for (size_t b = 0; b < B; b++)
        for (size_t o = 0; o < OC; o++) out[b * OC + o] = bias ? bias[o] : 0.0f;
    reel_gemm(0, 1, B, OC, C, 1.0f, inp, C, weight, C, 1.0f, out, OC);
}

void reel_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                          const float *weight, size_t B, size_t C, size_t OC) {
    if (B == 0) return;
    if (dinp)
        reel_gemm(0, 0, B, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    if (dweight)
        reel_gemm(1, 0, OC, C, B, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias)
        for (size_t b = 0; b < B; b++)
            for (size_t o = 0; o < OC; o++) dbias[o] += dout[b * OC + o];
}
