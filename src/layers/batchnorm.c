#include <math.h>
#include <string.h>

#include "reel/layers.h"

#define ROW_USED(b) (!row_mask || row_mask[b])

void reel_batchnorm_forward_train(float *out, reel_batchnorm_cache *cache, const float *inp, const float *gamma,
                                  const float *beta, float *running_mean, float *running_var, const uint8_t *row_mask,
                                  size_t B, size_t C, float momentum, float eps, const reel_comm *comm) {
    double *sums = cache->scratch; /* C sums, then the row count */
    memset(sums, 0, (C + 1) * sizeof *sums);
    for (size_t b = 0; b < B; b++) {
        if (!ROW_USED(b)) continue;
        for (size_t c = 0; c < C; c++) sums[c] += inp[b * C + c];
        sums[C] += 1.0;
    }
    reel_comm_sum_doubles(comm, sums, C + 1);
    double rows = sums[C];
    cache->global_rows = rows;
    if (rows == 0) return;
    for (size_t c = 0; c < C; c++) sums[c] /= rows; /* now the means */

    /* A second pass over centred values, rather than E[x^2] - E[x]^2, keeps the variance accurate when
     * the mean is large relative to the spread. */
    double *squares = cache->scratch + C + 1;
    memset(squares, 0, C * sizeof *squares);
    for (size_t b = 0; b < B; b++)
        for (size_t c = 0; c < C && ROW_USED(b); c++) {
            double centred = inp[b * C + c] - sums[c];
            squares[c] += centred * centred;
        }
    reel_comm_sum_doubles(comm, squares, C);

    for (size_t c = 0; c < C; c++) {
        double variance = squares[c] / rows;
        cache->inv_std[c] = (float)(1.0 / sqrt(variance + eps));
        double unbiased = rows > 1 ? variance * rows / (rows - 1) : variance;
        if (!running_mean) continue; /* a repeated pass over the batch: the statistics moved once already */
        running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * sums[c]);
        running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
    }
    for (size_t b = 0; b < B; b++)
        for (size_t c = 0; c < C; c++) {
            float xhat = ROW_USED(b) ? (float)((inp[b * C + c] - sums[c]) * cache->inv_std[c]) : 0.0f;
            cache->xhat[b * C + c] = xhat;
            out[b * C + c] = ROW_USED(b) ? gamma[c] * xhat + beta[c] : 0.0f;
        }
}

void reel_batchnorm_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                                 const float *running_mean, const float *running_var, size_t B, size_t C, float eps) {
    for (size_t c = 0; c < C; c++) {
        float scale = gamma[c] / sqrtf(running_var[c] + eps);
        float shift = beta[c] - running_mean[c] * scale;
        for (size_t b = 0; b < B; b++) out[b * C + c] = inp[b * C + c] * scale + shift;
    }
}

void reel_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                             const reel_batchnorm_cache *cache, const float *gamma, const uint8_t *row_mask, size_t B,
                             size_t C, const reel_comm *comm) {
    double *sum_dout = cache->scratch, *sum_dout_xhat = cache->scratch + C;
    memset(sum_dout, 0, 2 * C * sizeof *sum_dout);
    for (size_t b = 0; b < B; b++)
        for (size_t c = 0; c < C && ROW_USED(b); c++) {
            sum_dout[c] += dout[b * C + c];
            sum_dout_xhat[c] += (double)dout[b * C + c] * cache->xhat[b * C + c];
        }
    /* The parameter gradients take this rank's share; the gradient all-reduce adds the other ranks'. */
    for (size_t c = 0; c < C; c++) {
        dbeta[c] += (float)sum_dout[c];
        dgamma[c] += (float)sum_dout_xhat[c];
    }
    /* The input gradient needs the sums over the whole global batch. */
    reel_comm_sum_doubles(comm, cache->scratch, 2 * C);
    double rows = cache->global_rows;
    if (rows == 0) return;
    for (size_t b = 0; b < B; b++)
        for (size_t c = 0; c < C && ROW_USED(b); c++) {
            double scale = gamma[c] * cache->inv_std[c] / rows;
            double g = rows * dout[b * C + c] - sum_dout[c] - cache->xhat[b * C + c] * sum_dout_xhat[c];
            dinp[b * C + c] += (float)(scale * g);
        }
}
