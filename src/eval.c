#include "reel/eval.h"

#include <stdlib.h>
#include <string.h>

#include "reel/data.h"
#include "reel/layers.h"

void reel_eval_finish(reel_eval_result *r, double loss_sum) {
    r->count = r->tp + r->fp + r->tn + r->fn;
    double n = (double)r->count;
    r->loss = n > 0 ? loss_sum / n : 0.0;
    r->accuracy = n > 0 ? (double)(r->tp + r->tn) / n : 0.0;
    r->precision = r->tp + r->fp ? (double)r->tp / (double)(r->tp + r->fp) : 0.0;
    r->recall = r->tp + r->fn ? (double)r->tp / (double)(r->tp + r->fn) : 0.0;
    r->f1 = r->precision + r->recall > 0 ? 2 * r->precision * r->recall / (r->precision + r->recall) : 0.0;
}

/* Time steps (documents x longest document) in one evaluation batch at most: a recurrent model's
 * activations grow with it, and a few reviews run to thousands of tokens. */
enum { EVAL_STEP_BUDGET = 16384 };

typedef struct {
    uint64_t index;
    size_t length;
} doc_length;

static int by_length(const void *a, const void *b) {
    const doc_length *x = a, *y = b;
    if (x->length != y->length) return x->length < y->length ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

void reel_evaluate(reel_model *model, reel_tokfile *file, size_t max_tokens, size_t batch_rows,
                   const reel_comm *comm, reel_eval_result *result) {
    uint64_t docs = reel_tokfile_info(file)->num_docs;
    size_t begin, count;
    reel_rank_share((size_t)docs, comm->rank, comm->size, &begin, &count);
    if (batch_rows > model->max_batch) batch_rows = model->max_batch;
    if (batch_rows == 0) batch_rows = 1;
    reel_error err = {{0}};
    /* Documents of similar length go together, so batches carry little padding; the metrics are sums and
     * do not depend on the order. */
    doc_length *order = reel_malloc((count ? count : 1) * sizeof *order);
    for (size_t i = 0; i < count; i++) {
        const uint32_t *ids;
        int32_t label;
        order[i].index = begin + i;
        if (reel_tokfile_doc(file, begin + i, &ids, &order[i].length, &label, &err) != 0)
            reel_die(&err, "re-run `reel prep`, or check the file with `reel inspect`");
        if (max_tokens && order[i].length > max_tokens) order[i].length = max_tokens;
    }
    qsort(order, count, sizeof *order, by_length);
    uint64_t *indices = reel_malloc(batch_rows * sizeof *indices);
    float *logits = reel_malloc(batch_rows * sizeof *logits);
    reel_batch_buffer buffer = {0};
    /* sums: loss, tp, fp, tn, fn (doubles hold counts exactly far beyond any corpus size) */
    double sums[5] = {0};
    for (size_t start = 0; start < count;) {
        size_t rows = 0;
        while (start + rows < count && rows < batch_rows &&
               (rows == 0 || (rows + 1) * (order[start + rows].length ? order[start + rows].length : 1) <= EVAL_STEP_BUDGET)) {
            indices[rows] = order[start + rows].index;
            rows++;
        }
        if (reel_batch_gather(&buffer, file, indices, rows, model->vocab_size, max_tokens, 0, 0, 0, &err) != 0)
            reel_die(&err, "re-run `reel prep`, or check the file with `reel inspect`");
        model->ops->forward(model, &buffer.batch, 0, logits, comm);
        sums[0] += reel_bce_logits(NULL, logits, buffer.labels, rows, 1.0f);
        for (size_t i = 0; i < rows; i++) {
            int predicted = logits[i] > 0.0f, actual = buffer.labels[i] > 0.5f;
            sums[predicted ? (actual ? 1 : 2) : (actual ? 4 : 3)] += 1.0;
        }
        start += rows;
    }
    reel_comm_sum_doubles(comm, sums, 5);
    memset(result, 0, sizeof *result);
    result->tp = (uint64_t)sums[1];
    result->fp = (uint64_t)sums[2];
    result->tn = (uint64_t)sums[3];
    result->fn = (uint64_t)sums[4];
    reel_eval_finish(result, sums[0]);
    reel_batch_buffer_free(&buffer);
    free(order);
    free(indices);
    free(logits);
}
