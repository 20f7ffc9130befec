/* The output layer over a vocabulary fused with softmax cross-entropy. The logits of N rows over K
 * classes (a language model: N = every time step of a batch, K = the vocabulary) would be the largest
 * buffer of the whole model (10,000 x 8,003 floats = 320 MB), so they are made a slice of rows at a
 * time: the slice's features are gathered, multiplied by the weight (one sgemm), turned into their
 * loss and gradient in place, and the gradient is sent back through two more sgemms before the next
 * slice is made. Padded rows are skipped: slices hold valid rows only. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "reel/check.h"
#include "reel/layers.h"

#include "vecmath.h"

size_t reel_decoder_scratch_floats(size_t slice_rows, size_t D, size_t K) {
    return slice_rows * K + 2 * slice_rows * D; /* logits, gathered features, their gradient */
}

double reel_decoder_softmax(float *dfeatures, float *dweight, float *dbias, double *correct, const float *features,
                            const float *weight, const float *bias, const uint32_t *targets, const uint8_t *row_mask,
                            size_t N, size_t D, size_t K, float scale, float *scratch, size_t slice_rows) {
    REEL_CHECK(slice_rows > 0 && K > 0, NULL, "decoder: empty slice or vocabulary");
    float *logits = scratch, *x = scratch + slice_rows * K, *dx = x + slice_rows * D;
    size_t rows[4096];
    REEL_CHECK(slice_rows <= sizeof rows / sizeof rows[0], NULL, "decoder: slices of at most 4096 rows");
    double total = 0.0, hits = 0.0;
    if (dfeatures) memset(dfeatures, 0, N * D * sizeof *dfeatures);
    for (size_t next = 0; next < N;) {
        size_t R = 0;
        for (; next < N && R < slice_rows; next++)
            if (!row_mask || row_mask[next]) rows[R++] = next;
        if (R == 0) break;
        for (size_t r = 0; r < R; r++) memcpy(x + r * D, features + rows[r] * D, D * sizeof *x);
        /* logits (R, K) = x (R, D) . weight^T + bias */
        reel_linear_forward(logits, x, weight, bias, R, D, K);
        for (size_t r = 0; r < R; r++) {
            float *z = logits + r * K;
            size_t target = targets[rows[r]];
            REEL_CHECK(target < K, NULL, "decoder: target %zu outside the %zu classes", target, K);
            float largest = reel_row_max(z, K);
            /* the first largest logit is the prediction; the target counts as right only if it is one */
            if (z[target] == largest) {
                size_t first = 0;
                while (z[first] != largest) first++;
                hits += first == target;
            }
            double target_logit = z[target];
            float sum = reel_row_exp_sum(z, K, largest);
            total += (double)largest + log((double)sum) - target_logit;
            if (!dfeatures) continue;
            /* dlogits = scale * (softmax - onehot), in place */
            reel_row_scale(z, K, scale / sum);
            z[target] -= scale;
        }
        if (!dfeatures) continue;
        /* dx (R, D) = dlogits . weight; dweight (K, D) += dlogits^T . x; dbias += column sums */
        memset(dx, 0, R * D * sizeof *dx);
        reel_linear_backward(dx, dweight, NULL, logits, x, weight, R, D, K);
        if (dbias)
            for (size_t r = 0; r < R; r++) {
                const float *z = logits + r * K;
                for (size_t k = 0; k < K; k++) dbias[k] += z[k];
            }
        for (size_t r = 0; r < R; r++) memcpy(dfeatures + rows[r] * D, dx + r * D, D * sizeof *dx);
    }
    if (correct) *correct += hits;
    return total;
}
