#include <math.h>

#include "reel/layers.h"

double reel_bce_logits(float *dlogits, const float *logits, const float *labels, size_t B, float scale) {
    double total = 0.0;
    for (size_t b = 0; b < B; b++) {
        double z = logits[b], y = labels[b];
        /* max(z,0) - z*y + log(1 + exp(-|z|)) never overflows, unlike log(sigmoid(z)). */
        total += fmax(z, 0.0) - z * y + log1p(exp(-fabs(z)));
        if (dlogits) {
            double sigmoid = z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
            dlogits[b] = (float)(scale * (sigmoid - y));
        }
    }
    return total;
}
