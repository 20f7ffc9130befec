/* Element-wise exponentials over long rows, for the softmax over a vocabulary, and for GELU (private
 * to src/layers).
 * Like cells.c, vecmath.c is compiled with -ffast-math, so GCC calls glibc's vectorised expf, and is
 * built for AVX2 and for baseline x86-64, chosen at load time. -ffast-math also lets the sums below be
 * reordered into vector lanes: the order is fixed by the code, so a result is the same at every call
 * and on every rank of one CPU type. */
#ifndef REEL_VECMATH_H
#define REEL_VECMATH_H

#include <stddef.h>

/* The largest of z[0..K), K >= 1. */
float reel_row_max(const float *z, size_t K);
/* z[k] = exp(z[k] - shift) for every k; returns their sum. z (K) */
float reel_row_exp_sum(float *z, size_t K, float shift);
/* z[k] *= factor */
void reel_row_scale(float *z, size_t K, float factor);
/* z[k] = exp(z[k]) (GELU, gelu.c) */
void reel_row_exp(float *z, size_t K);

#endif
