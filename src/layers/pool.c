#include <string.h>

#include "reel/layers.h"

void reel_pool_forward(reel_pool_mode mode, float *out, size_t *argmax, const float *seq, const size_t *lengths,
                       size_t T, size_t B, size_t D, size_t reverse_from) {
    for (size_t b = 0; b < B; b++) {
        float *o = out + b * D;
        size_t length = lengths[b] < T ? lengths[b] : T;
        if (length == 0) {
            memset(o, 0, D * sizeof *o);
            if (argmax) memset(argmax + b * D, 0, D * sizeof *argmax);
            continue;
        }
        if (mode == REEL_POOL_LAST) {
            for (size_t d = 0; d < D; d++) o[d] = seq[((d < reverse_from ? length - 1 : 0) * B + b) * D + d];
        } else if (mode == REEL_POOL_MEAN) {
            memset(o, 0, D * sizeof *o);
            for (size_t t = 0; t < length; t++)
                for (size_t d = 0; d < D; d++) o[d] += seq[(t * B + b) * D + d];
            for (size_t d = 0; d < D; d++) o[d] /= (float)length;
        } else {
            size_t *arg = argmax + b * D;
            memcpy(o, seq + b * D, D * sizeof *o);
            memset(arg, 0, D * sizeof *arg);
            for (size_t t = 1; t < length; t++)
                for (size_t d = 0; d < D; d++) {
                    float v = seq[(t * B + b) * D + d];
                    if (v > o[d]) o[d] = v, arg[d] = t;
                }
        }
    }
}

void reel_pool_backward(reel_pool_mode mode, float *dseq, const float *dout, const size_t *argmax,
                        const size_t *lengths, size_t T, size_t B, size_t D, size_t reverse_from) {
    for (size_t b = 0; b < B; b++) {
        const float *g = dout + b * D;
        size_t length = lengths[b] < T ? lengths[b] : T;
        if (length == 0) continue;
        if (mode == REEL_POOL_LAST) {
            for (size_t d = 0; d < D; d++) dseq[((d < reverse_from ? length - 1 : 0) * B + b) * D + d] += g[d];
        } else if (mode == REEL_POOL_MEAN) {
            float scale = 1.0f / (float)length;
            for (size_t t = 0; t < length; t++)
                for (size_t d = 0; d < D; d++) dseq[(t * B + b) * D + d] += g[d] * scale;
        } else {
            for (size_t d = 0; d < D; d++) dseq[(argmax[b * D + d] * B + b) * D + d] += g[d];
        }
    }
}
