/* A one-dimensional convolution over each document's tokens, ReLU and the max over positions, fused
 * (reel/layers.h): Kim (2014)'s text CNN, one filter width per call.
 *
 * The convolution as matrix products: with the filter bank laid as w blocks of F rows (block k holds the
 * weights that read the k-th token of a window), Y = X . W^T (N, w F) gives every token's contribution
 * to every block, and the pre-activation of the window starting at token t is
 *     z[t, f] = bias[f] + sum_{k < w} Y[t + k, k F + f],
 * a shifted sum within the document. One product of all the batch's tokens replaces the (N, w E) copy of
 * im2col. A document shorter than w has one window, read with zeros past its end (Kim pads short
 * sentences); an empty one has none and pools to 0. Windows never cross documents, so the batch's other
 * documents (and padding) never reach a document's features.
 * relu(max_t z) = max_t relu(z): the max is taken first and its window kept, so the backward sends the
 * gradient to that window's tokens only, and only where the pooled value is positive. */
#include <stdint.h>
#include <string.h>

#include "reel/gemm.h"
#include "reel/layers.h"

void reel_conv_maxpool_forward(float *pooled, size_t *argmax, float *scratch, const float *x, const size_t *offsets,
                               size_t B, size_t E, const float *weight, const float *bias, size_t w, size_t F) {
    size_t N = offsets[B], WF = w * F;
    if (N) reel_gemm(0, 1, N, WF, E, 1.0f, x, E, weight, E, 0.0f, scratch, WF); /* Y (N, w F) */
    for (size_t b = 0; b < B; b++) {
        size_t begin = offsets[b], length = offsets[b + 1] - begin;
        float *out = pooled + b * F;
        size_t *arg = argmax + b * F;
        if (length == 0) {
            memset(out, 0, F * sizeof *out);
            for (size_t f = 0; f < F; f++) arg[f] = SIZE_MAX;
            continue;
        }
        size_t windows = length >= w ? length - w + 1 : 1;
        for (size_t t = 0; t < windows; t++) {
            for (size_t f = 0; f < F; f++) {
                float z = bias[f];
                for (size_t k = 0; k < w && t + k < length; k++) z += scratch[(begin + t + k) * WF + k * F + f];
                if (t == 0 || z > out[f]) out[f] = z, arg[f] = t;
            }
        }
        for (size_t f = 0; f < F; f++) out[f] = out[f] > 0.0f ? out[f] : 0.0f;
    }
}

void reel_conv_maxpool_backward(float *dx, float *dweight, float *dbias, const float *dpooled, const float *pooled,
                                const size_t *argmax, float *scratch, const float *x, const size_t *offsets, size_t B,
                                size_t E, const float *weight, size_t w, size_t F) {
    size_t N = offsets[B], WF = w * F;
    if (N == 0) return;
    memset(scratch, 0, N * WF * sizeof *scratch); /* dY (N, w F) */
    for (size_t b = 0; b < B; b++) {
        size_t begin = offsets[b], length = offsets[b + 1] - begin;
        for (size_t f = 0; f < F; f++) {
            if (length == 0 || !(pooled[b * F + f] > 0.0f)) continue; /* ReLU's zero side, or no window */
            float g = dpooled[b * F + f];
            size_t t = argmax[b * F + f];
            dbias[f] += g;
            for (size_t k = 0; k < w && t + k < length; k++) scratch[(begin + t + k) * WF + k * F + f] += g;
        }
    }
    if (dx) reel_gemm(0, 0, N, E, WF, 1.0f, scratch, WF, weight, E, 1.0f, dx, E);   /* dX += dY . W */
    reel_gemm(1, 0, WF, E, N, 1.0f, scratch, WF, x, E, 1.0f, dweight, E);           /* dW += dY^T . X */
}
