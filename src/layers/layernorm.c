#include <math.h>

#include "reel/layers.h"

/* The statistics are summed in double and the variance comes from a second pass over the centred values,
 * not from E[x^2] - E[x]^2: a row whose mean is large against its spread (activations of 1e4 +- 1) would
 * lose every digit of the variance to cancellation in float, and most of them even in double with the
 * one-pass formula. The centred values (inp - mean) are formed in double too, so the output does not jump
 * when the float mean rounds differently; only mean and rstd are stored as float. */
void reel_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                            const float *beta, size_t N, size_t C, float eps) {
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *y = out + n * C;
        double sum = 0;
        for (size_t c = 0; c < C; c++) sum += x[c];
        double m = sum / (double)C, squares = 0;
        for (size_t c = 0; c < C; c++) {
            double centred = x[c] - m;
            squares += centred * centred;
        }
        double s = 1.0 / sqrt(squares / (double)C + eps);
        for (size_t c = 0; c < C; c++) y[c] = (float)((x[c] - m) * s * gamma[c] + beta[c]);
        mean[n] = (float)m;
        rstd[n] = (float)s;
    }
}

/* With xhat = (x - mean) * rstd and g = dout * gamma, the gradient of a row is
 * dinp = rstd * (g - mean(g) - xhat * mean(g * xhat)): the two means are the parts of the gradient that
 * move the row's mean and scale, which normalisation takes out again. The stored mean is a float: on a
 * row of 1e4 + small spread its rounding (up to 5e-4) would shift every xhat by as much times rstd, so
 * the first pass also sums x - mean and the second subtracts that residual, which restores the double
 * mean the forward used to within double rounding. */
void reel_layernorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                             const float *mean, const float *rstd, const float *gamma, size_t N, size_t C) {
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *dy = dout + n * C;
        float *dx = dinp + n * C;
        double s = rstd[n], sum_centred = 0, sum_g = 0, sum_g_centred = 0;
        for (size_t c = 0; c < C; c++) {
            double centred = (double)x[c] - mean[n], g = (double)dy[c] * gamma[c];
            sum_centred += centred;
            sum_g += g;
            sum_g_centred += g * centred;
        }
        double m = mean[n] + sum_centred / (double)C;
        double mean_g = sum_g / (double)C;
        /* sum of g * (x - m) from the sums about the float mean: the residual times sum_g comes off */
        double mean_g_xhat = (sum_g_centred - sum_centred / (double)C * sum_g) * s / (double)C;
        for (size_t c = 0; c < C; c++) {
            double xhat = (x[c] - m) * s, g = (double)dy[c] * gamma[c];
            dgamma[c] += (float)(dy[c] * xhat);
            dbeta[c] += dy[c];
            dx[c] += (float)(s * (g - mean_g - xhat * mean_g_xhat));
        }
    }
}
