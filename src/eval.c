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

void reel_evaluate(reel_model *model, reel_tokfile *file, size_t max_tokens, size_t batch_rows,
                   const reel_comm *comm, reel_eval_result *result) {
    uint64_t docs = reel_tokfile_info(file)->num_docs;
    size_t begin, count;
    reel_rank_share((size_t)docs, comm->rank, comm->size, &begin, &count);
    if (batch_rows > model->max_batch) batch_rows = model->max_batch;
    uint64_t *indices = reel_malloc((batch_rows ? batch_rows : 1) * sizeof *indices);
    float *logits = reel_malloc((batch_rows ? batch_rows : 1) * sizeof *logits);
    reel_batch_buffer buffer = {0};
    /* sums: loss, tp, fp, tn, fn (doubles hold counts exactly far beyond any corpus size) */
    double sums[5] = {0};
    reel_error err = {{0}};
    for (size_t start = 0; start < count; start += batch_rows) {
        size_t rows = count - start < batch_rows ? count - start : batch_rows;
        for (size_t i = 0; i < rows; i++) indices[i] = begin + start + i;
        if (reel_batch_gather(&buffer, file, indices, rows, model->vocab_size, max_tokens, 0, &err) != 0)
            reel_die(&err, "re-run `reel prep`, or check the file with `reel inspect`");
        model->ops->forward(model, &buffer.batch, 0, logits, comm);
        sums[0] += reel_bce_logits(NULL, logits, buffer.labels, rows, 1.0f);
        for (size_t i = 0; i < rows; i++) {
            int predicted = logits[i] > 0.0f, actual = buffer.labels[i] > 0.5f;
            sums[predicted ? (actual ? 1 : 2) : (actual ? 4 : 3)] += 1.0;
        }
    }
    reel_comm_sum_doubles(comm, sums, 5);
    memset(result, 0, sizeof *result);
    result->tp = (uint64_t)sums[1];
    result->fp = (uint64_t)sums[2];
    result->tn = (uint64_t)sums[3];
    result->fn = (uint64_t)sums[4];
    reel_eval_finish(result, sums[0]);
    reel_batch_buffer_free(&buffer);
    free(indices);
    free(logits);
}
