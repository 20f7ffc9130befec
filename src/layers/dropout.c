#include "reel/layers.h"
#include "reel/rng.h"

void reel_dropout_mask(float *mask, const uint64_t *sample_index, size_t B, size_t C, float p, uint64_t seed,
                       uint64_t epoch, uint32_t layer) {
    float keep_scale = 1.0f / (1.0f - p);
    for (size_t b = 0; b < B; b++) {
        float *row = mask + b * C;
        for (size_t block = 0; block * 4 < C; block++) {
            uint32_t words[4];
            /* Layer in the top byte, block below: 2^24 blocks of 4 units per layer is far beyond any width. */
            reel_rng_block(words, seed, REEL_RNG_DROPOUT, (uint32_t)epoch, (uint32_t)sample_index[b],
                           (layer << 24) | (uint32_t)block);
            for (size_t k = 0; k < 4 && block * 4 + k < C; k++)
                row[block * 4 + k] = reel_rng_unit_float(words[k]) < p ? 0.0f : keep_scale;
        }
    }
}

void reel_dropout_forward(float *out, const float *inp, const float *mask, size_t N) {
    for (size_t i = 0; i < N; i++) out[i] = inp[i] * mask[i];
}

void reel_dropout_backward(float *dinp, const float *dout, const float *mask, size_t N) {
    for (size_t i = 0; i < N; i++) dinp[i] += dout[i] * mask[i];
}

void reel_locked_dropout_forward(float *out, const float *inp, const float *mask, size_t T, size_t B, size_t D) {
    for (size_t t = 0; t < T; t++) reel_dropout_forward(out + t * B * D, inp + t * B * D, mask, B * D);
}

void reel_locked_dropout_backward(float *dinp, const float *dout, const float *mask, size_t T, size_t B, size_t D) {
    for (size_t t = 0; t < T; t++) reel_dropout_backward(dinp + t * B * D, dout + t * B * D, mask, B * D);
}
