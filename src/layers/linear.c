#include <cblas.h>

#include "reel/layers.h"

void reel_linear_forward(float *out, const float *inp, const float *weight, const float *bias, size_t B, size_t C,
                         size_t OC) {
    if (B == 0) return;
    /* Start from the bias broadcast over rows so one sgemm with beta = 1 adds the product. */
    for (size_t b = 0; b < B; b++)
        for (size_t o = 0; o < OC; o++) out[b * OC + o] = bias ? bias[o] : 0.0f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)OC, (int)C, 1.0f, inp, (int)C, weight, (int)C,
                1.0f, out, (int)OC);
}

void reel_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                          const float *weight, size_t B, size_t C, size_t OC) {
    if (B == 0) return;
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)C, (int)OC, 1.0f, dout, (int)OC, weight,
                    (int)C, 1.0f, dinp, (int)C);
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)OC, (int)C, (int)B, 1.0f, dout, (int)OC, inp,
                    (int)C, 1.0f, dweight, (int)C);
    if (dbias)
        for (size_t b = 0; b < B; b++)
            for (size_t o = 0; o < OC; o++) dbias[o] += dout[b * OC + o];
}
