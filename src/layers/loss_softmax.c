#include <math.h>

#include "reel/layers.h"

double reel_softmax_ce(float *dlogits, const float *logits, const float *labels, size_t B, size_t K, float scale) {
    double total = 0.0;
    for (size_t b = 0; b < B; b++) {
        const float *z = logits + b * K;
        size_t label = (size_t)labels[b];
        /* subtracting the largest logit keeps exp() from overflowing */
        double largest = z[0], sum = 0.0;
        for (size_t k = 1; k < K; k++)
            if (z[k] > largest) largest = z[k];
        for (size_t k = 0; k < K; k++) sum += exp(z[k] - largest);
        double log_sum = largest + log(sum);
        total += log_sum - z[label];
        if (dlogits)
            for (size_t k = 0; k < K; k++)
                dlogits[b * K + k] = (float)(scale * (exp(z[k] - log_sum) - (k == label ? 1.0 : 0.0)));
    }
    return total;
}
