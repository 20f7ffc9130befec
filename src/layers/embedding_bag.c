#include "reel/layers.h"

#include <string.h>

void reel_embedding_bag_forward(float *out, const uint32_t *ids, const size_t *offsets, const float *weight,
                                const float *row_scale, size_t B, size_t E) {
    for (size_t b = 0; b < B; b++) {
        float *row = out + b * E;
        memset(row, 0, E * sizeof *row);
        size_t length = offsets[b + 1] - offsets[b];
        if (length == 0) continue;
        for (size_t t = offsets[b]; t < offsets[b + 1]; t++) {
            const float *embedding = weight + (size_t)ids[t] * E;
            float scale = row_scale ? row_scale[ids[t]] : 1.0f; /* x 1 is exact: the plain mean's bits */
            for (size_t e = 0; e < E; e++) row[e] += scale * embedding[e];
        }
        float inv_length = 1.0f / (float)length;
        for (size_t e = 0; e < E; e++) row[e] *= inv_length;
    }
}

void reel_embedding_bag_backward(float *dweight, const float *dout, const uint32_t *ids, const size_t *offsets,
                                 const float *row_scale, size_t B, size_t E) {
    for (size_t b = 0; b < B; b++) {
        size_t length = offsets[b + 1] - offsets[b];
        if (length == 0) continue;
        float inv_length = 1.0f / (float)length;
        const float *grad_row = dout + b * E;
        for (size_t t = offsets[b]; t < offsets[b + 1]; t++) {
            float *target = dweight + (size_t)ids[t] * E;
            float scale = (row_scale ? row_scale[ids[t]] : 1.0f) * inv_length;
            for (size_t e = 0; e < E; e++) target[e] += grad_row[e] * scale;
        }
    }
}
