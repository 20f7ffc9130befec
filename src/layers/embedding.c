#include <string.h>

#include "reel/layers.h"

void reel_embedding_forward(float *out, uint8_t *row_mask, const uint32_t *ids, const size_t *offsets,
                            const float *weight, size_t T, size_t B, size_t E) {
    for (size_t t = 0; t < T; t++)
        for (size_t b = 0; b < B; b++) {
            float *row = out + (t * B + b) * E;
            int valid = t < offsets[b + 1] - offsets[b];
            if (row_mask) row_mask[t * B + b] = (uint8_t)valid;
            if (valid) memcpy(row, weight + (size_t)ids[offsets[b] + t] * E, E * sizeof *row);
            else memset(row, 0, E * sizeof *row);
        }
}

void reel_embedding_backward(float *dweight, const float *dout, const uint32_t *ids, const size_t *offsets, size_t T,
                             size_t B, size_t E) {
    for (size_t b = 0; b < B; b++) {
        size_t length = offsets[b + 1] - offsets[b];
        for (size_t t = 0; t < length && t < T; t++) {
            float *target = dweight + (size_t)ids[offsets[b] + t] * E;
            const float *g = dout + (t * B + b) * E;
            for (size_t e = 0; e < E; e++) target[e] += g[e];
        }
    }
}
