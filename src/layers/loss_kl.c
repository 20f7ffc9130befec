/* KL divergence between the predictions of two sets of logits, for virtual adversarial training
 * (reel/layers.h). The target distribution p is held constant: only q's logits get a gradient. */
#include <math.h>
#include <stdlib.h>

#include "reel/layers.h"

/* log sigmoid(z), stable for any z */
static double log_sigmoid(double z) { return z >= 0 ? -log1p(exp(-z)) : z - log1p(exp(z)); }

static double sigmoid(double z) { return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z)); }

double reel_kl_logits(float *dq, const float *p_logits, const float *q_logits, size_t B, size_t K, float scale) {
    double total = 0.0;
    if (K == 1) { /* Bernoulli: p = sigmoid(zp), q = sigmoid(zq); log(1 - sigmoid(z)) = log sigmoid(-z) */
        for (size_t b = 0; b < B; b++) {
            double zp = p_logits[b], zq = q_logits[b], p = sigmoid(zp);
            total += p * (log_sigmoid(zp) - log_sigmoid(zq)) + (1 - p) * (log_sigmoid(-zp) - log_sigmoid(-zq));
            if (dq) dq[b] = (float)(scale * (sigmoid(zq) - p));
        }
        return total;
    }
    for (size_t b = 0; b < B; b++) {
        const float *zp = p_logits + b * K, *zq = q_logits + b * K;
        double max_p = zp[0], max_q = zq[0], sum_p = 0, sum_q = 0;
        for (size_t k = 1; k < K; k++) max_p = fmax(max_p, zp[k]), max_q = fmax(max_q, zq[k]);
        for (size_t k = 0; k < K; k++) sum_p += exp(zp[k] - max_p), sum_q += exp(zq[k] - max_q);
        double log_norm_p = max_p + log(sum_p), log_norm_q = max_q + log(sum_q);
        for (size_t k = 0; k < K; k++) {
            double log_p = zp[k] - log_norm_p, log_q = zq[k] - log_norm_q, p = exp(log_p);
            total += p * (log_p - log_q);
            if (dq) dq[b * K + k] = (float)(scale * (exp(log_q) - p));
        }
    }
    return total;
}
