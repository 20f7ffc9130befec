#include <stdlib.h>
#include <string.h>

#include "reel/check.h"
#include "reel/layers.h"

size_t reel_pool_width(reel_pool_mode mode, size_t D) { return mode == REEL_POOL_CONCAT ? 3 * D : D; }

/* One sequence b of length >= 1, one single mode: o (D) and, for max, arg (D). */
static void pool_one(reel_pool_mode mode, float *o, size_t *arg, const float *seq, size_t b, size_t length, size_t B,
                     size_t D, size_t reverse_from) {
    if (mode == REEL_POOL_LAST) {
        for (size_t d = 0; d < D; d++) o[d] = seq[((d < reverse_from ? length - 1 : 0) * B + b) * D + d];
    } else if (mode == REEL_POOL_MEAN) {
        memset(o, 0, D * sizeof *o);
        for (size_t t = 0; t < length; t++)
            for (size_t d = 0; d < D; d++) o[d] += seq[(t * B + b) * D + d];
        for (size_t d = 0; d < D; d++) o[d] /= (float)length;
    } else {
        memcpy(o, seq + b * D, D * sizeof *o);
        memset(arg, 0, D * sizeof *arg);
        for (size_t t = 1; t < length; t++)
            for (size_t d = 0; d < D; d++) {
                float v = seq[(t * B + b) * D + d];
                if (v > o[d]) o[d] = v, arg[d] = t;
            }
    }
}

void reel_pool_forward(reel_pool_mode mode, float *out, size_t *argmax, const float *seq, const size_t *lengths,
                       size_t T, size_t B, size_t D, size_t reverse_from) {
    size_t width = reel_pool_width(mode, D);
    for (size_t b = 0; b < B; b++) {
        float *o = out + b * width;
        size_t length = lengths[b] < T ? lengths[b] : T;
        if (length == 0) {
            memset(o, 0, width * sizeof *o);
            if (argmax) memset(argmax + b * D, 0, D * sizeof *argmax);
            continue;
        }
        size_t *arg = argmax ? argmax + b * D : NULL;
        if (mode == REEL_POOL_CONCAT) { /* ULMFiT's order: last, max, mean */
            pool_one(REEL_POOL_LAST, o, NULL, seq, b, length, B, D, reverse_from);
            pool_one(REEL_POOL_MAX, o + D, arg, seq, b, length, B, D, reverse_from);
            pool_one(REEL_POOL_MEAN, o + 2 * D, NULL, seq, b, length, B, D, reverse_from);
        } else {
            pool_one(mode, o, arg, seq, b, length, B, D, reverse_from);
        }
    }
}

void reel_pool_forward_cuts(reel_pool_mode mode, float *out, const float *seq, const size_t *lengths, const size_t *cuts,
                            size_t num_cuts, size_t T, size_t B, size_t D) {
    enum { MAX_CUTS = 64 };
    if (mode == REEL_POOL_CONCAT) { /* each part by its own sweep, then laid side by side in out's rows */
        static const reel_pool_mode parts[3] = {REEL_POOL_LAST, REEL_POOL_MAX, REEL_POOL_MEAN};
        size_t part_floats = num_cuts * B * D;
        float *part = reel_malloc((part_floats ? part_floats : 1) * sizeof *part);
        for (size_t k = 0; k < 3; k++) {
            reel_pool_forward_cuts(parts[k], part, seq, lengths, cuts, num_cuts, T, B, D);
            for (size_t row = 0; row < num_cuts * B; row++)
                memcpy(out + row * 3 * D + k * D, part + row * D, D * sizeof *out);
        }
        free(part);
        return;
    }
    REEL_CHECK(num_cuts <= MAX_CUTS, "evaluate at most 64 lengths in one pass", "%zu cuts", num_cuts);
    size_t cut_length[MAX_CUTS], by_length[MAX_CUTS];
    float *running = reel_malloc((D ? D : 1) * sizeof *running);
    for (size_t b = 0; b < B; b++) {
        size_t length = lengths[b] < T ? lengths[b] : T;
        /* this sequence's length at every cut, and the cuts in increasing order of it (insertion sort) */
        for (size_t c = 0; c < num_cuts; c++) {
            cut_length[c] = cuts[c] && cuts[c] < length ? cuts[c] : length;
            size_t i = c;
            while (i > 0 && cut_length[by_length[i - 1]] > cut_length[c]) by_length[i] = by_length[i - 1], i--;
            by_length[i] = c;
        }
        size_t next = 0; /* the next cut to fill, in by_length's order */
        for (; next < num_cuts && cut_length[by_length[next]] == 0; next++)
            memset(out + (by_length[next] * B + b) * D, 0, D * sizeof *out);
        if (next == num_cuts) continue;
        if (mode == REEL_POOL_LAST) {
            for (; next < num_cuts; next++) {
                size_t c = by_length[next];
                memcpy(out + (c * B + b) * D, seq + ((cut_length[c] - 1) * B + b) * D, D * sizeof *out);
            }
            continue;
        }
        /* the same operations in the same order as reel_pool_forward: max starts from step 0 and compares
         * the later steps; mean sums from zero and divides the sum by the length */
        if (mode == REEL_POOL_MEAN)
            memset(running, 0, D * sizeof *running);
        else
            memcpy(running, seq + b * D, D * sizeof *running);
        for (size_t t = 0; next < num_cuts; t++) {
            const float *x = seq + (t * B + b) * D;
            if (mode == REEL_POOL_MEAN) {
                for (size_t d = 0; d < D; d++) running[d] += x[d];
            } else if (t > 0) {
                for (size_t d = 0; d < D; d++)
                    if (x[d] > running[d]) running[d] = x[d];
            }
            for (; next < num_cuts && cut_length[by_length[next]] == t + 1; next++) {
                float *o = out + (by_length[next] * B + b) * D;
                if (mode == REEL_POOL_MEAN)
                    for (size_t d = 0; d < D; d++) o[d] = running[d] / (float)(t + 1);
                else
                    memcpy(o, running, D * sizeof *o);
            }
        }
    }
    free(running);
}

/* One sequence b of length >= 1, one single mode: dseq += the gradient of o from g (D). */
static void unpool_one(reel_pool_mode mode, float *dseq, const float *g, const size_t *arg, size_t b, size_t length,
                       size_t B, size_t D, size_t reverse_from) {
    if (mode == REEL_POOL_LAST) {
        for (size_t d = 0; d < D; d++) dseq[((d < reverse_from ? length - 1 : 0) * B + b) * D + d] += g[d];
    } else if (mode == REEL_POOL_MEAN) {
        float scale = 1.0f / (float)length;
        for (size_t t = 0; t < length; t++)
            for (size_t d = 0; d < D; d++) dseq[(t * B + b) * D + d] += g[d] * scale;
    } else {
        for (size_t d = 0; d < D; d++) dseq[(arg[d] * B + b) * D + d] += g[d];
    }
}

void reel_pool_backward(reel_pool_mode mode, float *dseq, const float *dout, const size_t *argmax,
                        const size_t *lengths, size_t T, size_t B, size_t D, size_t reverse_from) {
    size_t width = reel_pool_width(mode, D);
    for (size_t b = 0; b < B; b++) {
        const float *g = dout + b * width;
        size_t length = lengths[b] < T ? lengths[b] : T;
        if (length == 0) continue;
        const size_t *arg = argmax ? argmax + b * D : NULL;
        if (mode == REEL_POOL_CONCAT) {
            unpool_one(REEL_POOL_LAST, dseq, g, NULL, b, length, B, D, reverse_from);
            unpool_one(REEL_POOL_MAX, dseq, g + D, arg, b, length, B, D, reverse_from);
            unpool_one(REEL_POOL_MEAN, dseq, g + 2 * D, NULL, b, length, B, D, reverse_from);
        } else {
            unpool_one(mode, dseq, g, arg, b, length, B, D, reverse_from);
        }
    }
}
