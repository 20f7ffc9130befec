#include <stdlib.h>
#include <string.h>

#include "reel/check.h"
#include "reel/layers.h"

void reel_embedding_rows_init(reel_embedding_rows *rows, size_t vocab) {
    memset(rows, 0, sizeof *rows);
    rows->vocab = vocab;
    rows->stamp = reel_calloc(vocab ? vocab : 1, sizeof *rows->stamp);
    rows->token_row = reel_calloc(vocab ? vocab : 1, sizeof *rows->token_row);
}

void reel_embedding_rows_reserve(reel_embedding_rows *rows, size_t steps) {
    if (steps <= rows->capacity) return;
    free(rows->step_row);
    free(rows->token);
    free(rows->sequence);
    rows->capacity = steps;
    rows->step_row = reel_calloc(steps, sizeof *rows->step_row);
    rows->token = reel_calloc(steps, sizeof *rows->token);
    rows->sequence = reel_calloc(steps, sizeof *rows->sequence);
}

void reel_embedding_rows_free(reel_embedding_rows *rows) {
    free(rows->step_row);
    free(rows->token);
    free(rows->sequence);
    free(rows->stamp);
    free(rows->token_row);
    memset(rows, 0, sizeof *rows);
}

void reel_embedding_rows_forward(reel_embedding_rows *rows, float *out, uint8_t *row_mask, const uint32_t *ids,
                                 const size_t *offsets, const float *weight, const float *mask, size_t T, size_t B,
                                 size_t E) {
    REEL_CHECK(T * B <= rows->capacity, NULL, "embedding rows: %zu steps, room for %zu", T * B, rows->capacity);
    size_t count = 0;
    for (size_t step = 0; step < T * B; step++) rows->step_row[step] = REEL_NO_ROW;
    /* A token's row is reused while its stamp is the current generation: one generation per batch, or
     * one per sequence when a mask makes each sequence's rows its own. */
    rows->generation++;
    for (size_t b = 0; b < B; b++) {
        size_t length = offsets[b + 1] - offsets[b];
        for (size_t t = 0; t < T; t++) row_mask[t * B + b] = (uint8_t)(t < length);
        for (size_t t = 0; t < length && t < T; t++) {
            uint32_t token = ids[offsets[b] + t];
            if (rows->stamp[token] != rows->generation) {
                rows->stamp[token] = rows->generation;
                rows->token_row[token] = count;
                rows->token[count] = token;
                rows->sequence[count] = b;
                float *row = out + count * E;
                const float *source = weight + (size_t)token * E;
                if (mask)
                    for (size_t e = 0; e < E; e++) row[e] = source[e] * mask[b * E + e];
                else
                    memcpy(row, source, E * sizeof *row);
                count++;
            }
            rows->step_row[t * B + b] = rows->token_row[token];
        }
        if (mask) rows->generation++;
    }
    rows->count = count;
    rows->steps = T * B;
}

void reel_embedding_rows_to_steps(const reel_embedding_rows *rows, float *steps, const float *row_values, size_t X,
                                  const size_t *positions, size_t count) {
    for (size_t q = 0; q < count; q++) {
        size_t row = rows->step_row[positions[q]];
        REEL_CHECK(row != REEL_NO_ROW, NULL, "position %zu is padding", positions[q]);
        memcpy(steps + q * X, row_values + row * X, X * sizeof *steps);
    }
}

void reel_embedding_rows_sum_steps(const reel_embedding_rows *rows, float *row_values, const float *steps, size_t X,
                                   const size_t *positions, size_t count) {
    memset(row_values, 0, rows->count * X * sizeof *row_values);
    for (size_t q = 0; q < count; q++) {
        float *target = row_values + rows->step_row[positions[q]] * X;
        const float *source = steps + q * X;
        for (size_t j = 0; j < X; j++) target[j] += source[j];
    }
}

void reel_embedding_rows_backward(const reel_embedding_rows *rows, float *dweight, const float *dout,
                                  const float *mask, size_t E) {
    for (size_t u = 0; u < rows->count; u++) {
        float *target = dweight + (size_t)rows->token[u] * E;
        const float *g = dout + u * E;
        if (mask) {
            const float *m = mask + rows->sequence[u] * E;
            for (size_t e = 0; e < E; e++) target[e] += g[e] * m[e];
        } else {
            for (size_t e = 0; e < E; e++) target[e] += g[e];
        }
    }
}
