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
#include "reel/rng.h"

#include "vecmath.h"

/* The next slice: up to slice_rows valid rows from *next on, their indices in rows and their features
 * gathered into x (R, D); returns R (0 when no valid row is left). */
static size_t next_slice(size_t *next, size_t N, const uint8_t *row_mask, size_t slice_rows, size_t *rows,
                         const float *features, size_t D, float *x) {
    size_t R = 0;
    for (; *next < N && R < slice_rows; (*next)++)
        if (!row_mask || row_mask[*next]) rows[R++] = *next;
    for (size_t r = 0; r < R; r++) memcpy(x + r * D, features + rows[r] * D, D * sizeof *x);
    return R;
}

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
    for (size_t next = 0, R; (R = next_slice(&next, N, row_mask, slice_rows, rows, features, D, x)) > 0;) {
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

/* ---- the sampled softmax ---- */

void reel_sampled_candidates(uint32_t *candidates, float *log_expected, size_t S, size_t K, uint64_t seed,
                             uint64_t epoch, uint64_t step) {
    /* log-uniform: q(k) = log((k + 2) / (k + 1)) / log(K + 1), drawn by inverting its distribution
     * function, F(k) = log(k + 2) / log(K + 1) */
    double log_range = log((double)K + 1.0);
    for (size_t j = 0; j < S; j += 4) {
        uint32_t words[4];
        reel_rng_block(words, seed, REEL_RNG_SAMPLED, (uint32_t)epoch, (uint32_t)step, (uint32_t)(j / 4));
        for (size_t w = 0; w < 4 && j + w < S; w++) {
            double u = ((double)words[w] + 0.5) / 4294967296.0;
            size_t k = (size_t)(exp(u * log_range)) - 1;
            if (k >= K) k = K - 1;
            candidates[j + w] = (uint32_t)k;
        }
    }
    for (size_t j = 0; j < S; j++) log_expected[j] = (float)log((double)S * reel_sampled_probability(candidates[j], K));
}

double reel_sampled_probability(size_t k, size_t K) {
    return log(((double)k + 2.0) / ((double)k + 1.0)) / log((double)K + 1.0);
}

size_t reel_sampled_scratch_floats(size_t slice_rows, size_t D, size_t S) {
    return 2 * S * D + S + slice_rows * (S + 1) + 2 * slice_rows * D; /* Wc, dWc, bc, logits, x, dx */
}

double reel_decoder_sampled(float *dfeatures, float *dweight, float *dbias, const float *features, const float *weight,
                            const float *bias, const uint32_t *targets, const uint8_t *row_mask, size_t N, size_t D,
                            size_t K, const uint32_t *candidates, const float *log_expected, size_t S, float scale,
                            float *scratch, size_t slice_rows) {
    REEL_CHECK(slice_rows > 0 && slice_rows <= 4096 && S > 0, NULL, "sampled decoder: bad slice or candidates");
    float *wc = scratch, *dwc = wc + S * D, *bc = dwc + S * D, *z = bc + S, *x = z + slice_rows * (S + 1),
          *dx = x + slice_rows * D;
    size_t rows[4096];
    for (size_t j = 0; j < S; j++) {
        memcpy(wc + j * D, weight + (size_t)candidates[j] * D, D * sizeof *wc);
        bc[j] = (bias ? bias[candidates[j]] : 0.0f) - log_expected[j];
    }
    memset(dwc, 0, S * D * sizeof *dwc);
    memset(dfeatures, 0, N * D * sizeof *dfeatures);
    double total = 0.0;
    float log_s = (float)log((double)S);
    for (size_t next = 0, R; (R = next_slice(&next, N, row_mask, slice_rows, rows, features, D, x)) > 0;) {
        /* the targets' logits' gradients at z[0..R), the candidates' logits (R, S) after them */
        float *zc = z + R;
        reel_linear_forward(zc, x, wc, bc, R, D, S);
        for (size_t r = 0; r < R; r++) {
            uint32_t t = targets[rows[r]];
            REEL_CHECK(t < K, NULL, "sampled decoder: target %u outside the %zu classes", t, K);
            float *row = zc + r * S;
            double true_logit = (bias ? bias[t] : 0.0f) - (log_s + (float)log(reel_sampled_probability(t, K)));
            const float *wt = weight + (size_t)t * D, *xr = x + r * D;
            for (size_t d = 0; d < D; d++) true_logit += (double)xr[d] * wt[d];
            for (size_t j = 0; j < S; j++)
                if (candidates[j] == t) row[j] = -INFINITY; /* an accidental hit is no negative */
            float largest = (float)true_logit;
            for (size_t j = 0; j < S; j++) largest = row[j] > largest ? row[j] : largest;
            double sum = exp(true_logit - largest);
            for (size_t j = 0; j < S; j++) sum += row[j] == -INFINITY ? 0.0 : exp((double)row[j] - largest);
            total += (double)largest + log(sum) - true_logit;
            /* gradients: softmax - onehot(target), times scale */
            double p_true = exp(true_logit - largest) / sum;
            z[r] = (float)(scale * (p_true - 1.0));
            for (size_t j = 0; j < S; j++) row[j] = row[j] == -INFINITY ? 0.0f : (float)(scale * exp((double)row[j] - largest) / sum);
        }
        /* dx (R, D) = dzc . Wc + dz_true * w_target; dWc (S, D) += dzc^T . x; the target rows by hand */
        memset(dx, 0, R * D * sizeof *dx);
        reel_linear_backward(dx, dwc, NULL, zc, x, wc, R, D, S);
        for (size_t r = 0; r < R; r++) {
            uint32_t t = targets[rows[r]];
            const float *wt = weight + (size_t)t * D, *xr = x + r * D;
            float *dwt = dweight + (size_t)t * D, *dxr = dx + r * D, g = z[r];
            for (size_t d = 0; d < D; d++) {
                dxr[d] += g * wt[d];
                dwt[d] += g * xr[d];
            }
            if (dbias) dbias[t] += g;
            if (dbias)
                for (size_t j = 0; j < S; j++) dbias[candidates[j]] += zc[r * S + j];
        }
        for (size_t r = 0; r < R; r++) memcpy(dfeatures + rows[r] * D, dx + r * D, D * sizeof *dx);
    }
    /* the candidates' weight gradients back to their rows (a candidate drawn twice gets both) */
    for (size_t j = 0; j < S; j++) {
        float *target = dweight + (size_t)candidates[j] * D;
        const float *source = dwc + j * D;
        for (size_t d = 0; d < D; d++) target[d] += source[d];
    }
    return total;
}
