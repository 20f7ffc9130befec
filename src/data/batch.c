#include "reel/data.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "reel/rng.h"
#include "reel/vocab.h"

void reel_rank_share(size_t total, int rank, int size, size_t *begin, size_t *count) {
    size_t base = total / (size_t)size, extra = total % (size_t)size, r = (size_t)rank;
    *begin = r * base + (r < extra ? r : extra);
    *count = base + (r < extra ? 1 : 0);
}

static void reserve_rows(reel_batch_buffer *buf, size_t rows) {
    /* offsets always exists (an empty batch still has offsets[0]), even for a first batch of no rows */
    if (rows <= buf->capacity && buf->offsets) return;
    if (rows == 0) rows = 1;
    buf->capacity = rows;
    buf->offsets = reel_realloc(buf->offsets, (rows + 1) * sizeof *buf->offsets);
    buf->labels = reel_realloc(buf->labels, rows * sizeof *buf->labels);
    buf->sample_index = reel_realloc(buf->sample_index, rows * sizeof *buf->sample_index);
}

int reel_batch_gather(reel_batch_buffer *buf, reel_tokfile *file, const uint64_t *doc_indices, size_t count,
                      size_t vocab_limit, size_t max_tokens, size_t window, uint64_t seed, uint64_t epoch,
                      reel_error *err) {
    reserve_rows(buf, count);
    size_t total = 0;
    buf->offsets[0] = 0;
    for (size_t b = 0; b < count; b++) {
        const uint32_t *ids;
        size_t length;
        int32_t label;
        if (reel_tokfile_doc(file, doc_indices[b], &ids, &length, &label, err) != 0) return -1;
        if (window && length > window) {
            uint32_t words[4];
            reel_rng_block(words, seed, REEL_RNG_WINDOW, (uint32_t)epoch, (uint32_t)doc_indices[b],
                           (uint32_t)(doc_indices[b] >> 32));
            ids += reel_rng_below(words[0], words[1], length - window + 1);
            length = window;
        } else if (max_tokens && length > max_tokens) {
            length = max_tokens;
        }
        if (total + length > buf->ids_capacity) {
            buf->ids_capacity = 2 * (total + length);
            buf->ids = reel_realloc(buf->ids, buf->ids_capacity * sizeof *buf->ids);
        }
        for (size_t t = 0; t < length; t++) buf->ids[total + t] = ids[t] < vocab_limit ? ids[t] : REEL_TOKEN_UNK;
        total += length;
        buf->offsets[b + 1] = total;
        buf->labels[b] = (float)label;
        buf->sample_index[b] = doc_indices[b];
    }
    buf->batch.size = count;
    buf->batch.ids = buf->ids;
    buf->batch.offsets = buf->offsets;
    buf->batch.labels = buf->labels;
    buf->batch.sample_index = buf->sample_index;
    buf->batch.epoch = epoch;
    return 0;
}

void reel_batch_begin(reel_batch_buffer *buf, size_t rows, uint64_t epoch, uint64_t step) {
    reserve_rows(buf, rows);
    buf->batch = (reel_batch){0};
    buf->batch.epoch = epoch;
    buf->batch.step = step;
    buf->offsets[0] = 0;
}

void reel_batch_append(reel_batch_buffer *buf, size_t length, uint64_t sample_index, uint32_t **ids, uint32_t **targets) {
    size_t b = buf->batch.size, total = buf->offsets[b];
    REEL_CHECK(b < buf->capacity, NULL, "batch of more than %zu sequences", buf->capacity);
    if (total + length > buf->ids_capacity || !buf->targets) {
        buf->ids_capacity = 2 * (total + length) + 16;
        buf->ids = reel_realloc(buf->ids, buf->ids_capacity * sizeof *buf->ids);
        buf->targets = reel_realloc(buf->targets, buf->ids_capacity * sizeof *buf->targets);
    }
    *ids = buf->ids + total;
    *targets = buf->targets + total;
    buf->offsets[b + 1] = total + length;
    buf->sample_index[b] = sample_index;
    buf->batch.size = b + 1;
}

void reel_batch_finish(reel_batch_buffer *buf) {
    buf->batch.ids = buf->ids;
    buf->batch.targets = buf->targets;
    buf->batch.offsets = buf->offsets;
    buf->batch.labels = NULL;
    buf->batch.sample_index = buf->sample_index;
}

void reel_batch_buffer_free(reel_batch_buffer *buf) {
    free(buf->targets);
    free(buf->ids);
    free(buf->offsets);
    free(buf->labels);
    free(buf->sample_index);
    memset(buf, 0, sizeof *buf);
}

static int by_key(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The shuffle of pool p's batches draws from stream 2p, the shuffle inside global batch g from 2g + 1. */
void reel_bucket_by_length(uint64_t *order, uint64_t n, const uint64_t *lengths, size_t batch, size_t pool_batches,
                           uint64_t seed, uint64_t epoch, uint64_t *scratch) {
    if (pool_batches < 2 || batch == 0) return;
    uint64_t pool_size = (uint64_t)pool_batches * batch, *sorted = scratch, *perm = scratch + pool_size;
    REEL_CHECK(pool_size <= UINT32_MAX, NULL, "length buckets: a pool of %" PRIu64 " documents is too large", pool_size);
    for (uint64_t start = 0, p = 0; start < n; start += pool_size, p++) {
        uint64_t count = n - start < pool_size ? n - start : pool_size;
        /* sort by (length, position in the shuffled order): keys length << 32 | position */
        for (uint64_t i = 0; i < count; i++) {
            uint64_t length = lengths[order[start + i]];
            sorted[i] = (length < UINT32_MAX ? length : UINT32_MAX) << 32 | i;
        }
        qsort(sorted, count, sizeof *sorted, by_key);
        for (uint64_t i = 0; i < count; i++) sorted[i] = order[start + (sorted[i] & 0xffffffffu)];
        /* batch k of the pool is sorted[k * batch, (k + 1) * batch) */
        uint64_t batches = (count + batch - 1) / batch, whole = count / batch;
        for (uint64_t k = 0; k < batches; k++) perm[k] = k;
        reel_shuffle_keyed(perm, whole, seed, REEL_RNG_BUCKETS, (uint32_t)epoch, (uint32_t)(2 * p));
        uint64_t at = start;
        for (uint64_t k = 0; k < batches; k++) {
            uint64_t first = perm[k] * batch, rows = count - first < batch ? count - first : batch;
            memcpy(order + at, sorted + first, rows * sizeof *order);
            reel_shuffle_keyed(order + at, rows, seed, REEL_RNG_BUCKETS, (uint32_t)epoch, (uint32_t)(2 * (at / batch) + 1));
            at += rows;
        }
    }
}
