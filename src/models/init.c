#include <math.h>

#include "reel/model.h"
#include "reel/rng.h"

static const double reel_two_pi = 6.283185307179586476925;

void reel_init_uniform(float *values, size_t count, float bound, uint64_t seed, uint32_t tensor) {
    for (size_t block = 0; block * 4 < count; block++) {
        uint32_t words[4];
        reel_rng_block(words, seed, REEL_RNG_INIT, tensor, (uint32_t)block, (uint32_t)(block >> 32));
        for (size_t k = 0; k < 4 && block * 4 + k < count; k++)
            values[block * 4 + k] = (2.0f * reel_rng_unit_float(words[k]) - 1.0f) * bound;
    }
}

void reel_init_normal(float *values, size_t count, float stddev, uint64_t seed, uint32_t tensor) {
    /* Box-Muller: each block of four words gives two pairs, hence two normals per pair. */
    for (size_t block = 0; block * 4 < count; block++) {
        uint32_t words[4];
        reel_rng_block(words, seed, REEL_RNG_INIT, tensor, (uint32_t)block, (uint32_t)(block >> 32));
        for (size_t pair = 0; pair < 2; pair++) {
            double u1 = ((words[2 * pair] >> 8) + 1.0) / 16777217.0; /* (0, 1]: log stays finite */
            double u2 = (words[2 * pair + 1] >> 8) / 16777216.0;
            double radius = sqrt(-2.0 * log(u1));
            size_t first = block * 4 + 2 * pair;
            if (first < count) values[first] = (float)(stddev * radius * cos(reel_two_pi * u2));
            if (first + 1 < count) values[first + 1] = (float)(stddev * radius * sin(reel_two_pi * u2));
        }
    }
}

void reel_init_constant(float *values, size_t count, float value) {
    for (size_t i = 0; i < count; i++) values[i] = value;
}
