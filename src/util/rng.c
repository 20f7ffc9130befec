#include "reel/rng.h"

#include <Random123/philox.h>

void reel_rng_block(uint32_t out[4], uint64_t seed, uint32_t purpose, uint32_t a, uint32_t b, uint32_t c) {
    philox4x32_key_t key = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
    philox4x32_ctr_t counter = {{purpose, a, b, c}};
    philox4x32_ctr_t result = philox4x32(counter, key);
    for (int i = 0; i < 4; i++) out[i] = result.v[i];
}

void reel_shuffle(uint64_t *perm, uint64_t n, uint64_t seed, uint64_t epoch) {
    for (uint64_t i = 0; i < n; i++) perm[i] = i;
    for (uint64_t i = n; i > 1; i--) {
        uint32_t words[4];
        reel_rng_block(words, seed, REEL_RNG_SHUFFLE, (uint32_t)epoch, (uint32_t)i, (uint32_t)(i >> 32));
        uint64_t j = reel_rng_below(words[0], words[1], i);
        uint64_t tmp = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = tmp;
    }
}

void reel_shuffle_keyed(uint64_t *items, uint64_t n, uint64_t seed, uint32_t purpose, uint32_t a, uint32_t b) {
    for (uint64_t i = n; i > 1; i--) {
        uint32_t words[4];
        reel_rng_block(words, seed, purpose, a, b, (uint32_t)i);
        uint64_t j = reel_rng_below(words[0], words[1], i), tmp = items[i - 1];
        items[i - 1] = items[j];
        items[j] = tmp;
    }
}
