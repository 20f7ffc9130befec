/* Rotary position embeddings (RoPE), GPT-NeoX's and LLaMA's "rotate half" pairing (see reel/layers.h). */
#include <math.h>

#include "reel/layers.h"

void reel_rotary_tables(float *cos_table, float *sin_table, size_t P, size_t D, double base) {
    size_t half = D / 2;
    for (size_t i = 0; i < half; i++) {
        /* in double: the angle pos * base^(-2i/D) reaches P radians, where a float angle would be off by
         * P 2^-24 before its cosine is taken */
        double frequency = pow(base, -2.0 * (double)i / (double)D);
        for (size_t pos = 0; pos < P; pos++) {
            double angle = (double)pos * frequency;
            cos_table[pos * half + i] = (float)cos(angle);
            sin_table[pos * half + i] = (float)sin(angle);
        }
    }
}

/* Turns every pair of the rows' first `heads` heads by its angle (direction 1) or back (-1). */
static void rotate(float *x, size_t ld, size_t heads, size_t D, const float *cos_table, const float *sin_table,
                   const size_t *pos0, const size_t *lengths, size_t B, size_t T, float direction) {
    size_t half = D / 2;
    for (size_t b = 0; b < B; b++) {
        size_t L = lengths && lengths[b] < T ? lengths[b] : T, start = pos0 ? pos0[b] : 0;
        for (size_t t = 0; t < L; t++) {
            const float *cs = cos_table + (start + t) * half, *sn = sin_table + (start + t) * half;
            float *row = x + (b * T + t) * ld;
            for (size_t h = 0; h < heads; h++) {
                float *lo = row + h * D, *hi = lo + half;
                for (size_t i = 0; i < half; i++) {
                    float a = lo[i], z = hi[i], s = direction * sn[i];
                    lo[i] = a * cs[i] - z * s;
                    hi[i] = a * s + z * cs[i];
                }
            }
        }
    }
}

void reel_rotary_forward(float *x, size_t ld, size_t heads, size_t D, const float *cos_table, const float *sin_table,
                         const size_t *pos0, const size_t *lengths, size_t B, size_t T) {
    rotate(x, ld, heads, D, cos_table, sin_table, pos0, lengths, B, T, 1.0f);
}

void reel_rotary_backward(float *dx, size_t ld, size_t heads, size_t D, const float *cos_table,
                          const float *sin_table, const size_t *pos0, const size_t *lengths, size_t B, size_t T) {
    /* the rotation is orthogonal: its transpose, the gradient's map, is the rotation by minus the angle */
    rotate(dx, ld, heads, D, cos_table, sin_table, pos0, lengths, B, T, -1.0f);
}
