/* Compiled with -ffast-math (see vecmath.h and CMakeLists.txt). */
#include "vecmath.h"

#include <math.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__AVX2__)
#define ROW_KERNEL __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ROW_KERNEL
#endif

ROW_KERNEL float reel_row_max(const float *restrict z, size_t K) {
    float largest = z[0];
    for (size_t k = 1; k < K; k++) largest = z[k] > largest ? z[k] : largest;
    return largest;
}

ROW_KERNEL float reel_row_exp_sum(float *restrict z, size_t K, float shift) {
    float sum = 0.0f;
    for (size_t k = 0; k < K; k++) {
        z[k] = expf(z[k] - shift);
        sum += z[k];
    }
    return sum;
}

ROW_KERNEL void reel_row_scale(float *restrict z, size_t K, float factor) {
    for (size_t k = 0; k < K; k++) z[k] *= factor;
}

ROW_KERNEL void reel_row_exp(float *restrict z, size_t K) {
    for (size_t k = 0; k < K; k++) z[k] = expf(z[k]);
}
