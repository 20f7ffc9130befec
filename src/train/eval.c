#include "reel/eval.h"

#include <stdlib.h>
#include <string.h>

#include "reel/data.h"
#include "reel/layers.h"

static double ratio(double numerator, double denominator) { return denominator > 0 ? numerator / denominator : 0.0; }

void reel_eval_finish(reel_eval_result *r, const double *sums, size_t num_classes) {
    memset(r, 0, sizeof *r);
    const double *per_class = sums + 2; /* tp, fp, fn of class k at 3k, 3k+1, 3k+2 */
    double n = 0;
    for (size_t k = 0; k < num_classes; k++) n += per_class[3 * k] + per_class[3 * k + 2];
    r->num_classes = num_classes;
    r->count = (uint64_t)n;
    r->loss = ratio(sums[0], n);
    r->accuracy = ratio(sums[1], n);
    size_t first = num_classes == 2 ? 1 : 0; /* two classes: the positive class alone */
    for (size_t k = first; k < num_classes; k++) {
        double tp = per_class[3 * k], fp = per_class[3 * k + 1], fn = per_class[3 * k + 2];
        double precision = ratio(tp, tp + fp), recall = ratio(tp, tp + fn);
        r->precision += precision;
        r->recall += recall;
        r->f1 += ratio(2 * precision * recall, precision + recall);
    }
    double averaged = (double)(num_classes - first);
    r->precision /= averaged, r->recall /= averaged, r->f1 /= averaged;
    if (num_classes == 2) {
        r->tp = (uint64_t)per_class[3];
        r->fp = (uint64_t)per_class[4];
        r->fn = (uint64_t)per_class[5];
        r->tn = (uint64_t)per_class[0];
    }
}

/* Time steps (documents x longest document) in one evaluation batch at most: a recurrent model's
 * activations grow with it (about 8 KB per step for an LSTM of 500 units), and a few reviews run to
 * thousands of tokens. Too small a budget leaves long reviews in batches of a handful of rows, where the
 * per-step recurrent product runs far below the machine's speed. */
enum { EVAL_STEP_BUDGET = 32768 };

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
    size_t classes = reel_tokfile_info(file)->num_classes;
    if (classes < 2) classes = 2;
    uint64_t *indices = reel_malloc(batch_rows * sizeof *indices);
    float *logits = reel_malloc(batch_rows * model->num_outputs * sizeof *logits);
    int *predicted = reel_malloc(batch_rows * sizeof *predicted);
    reel_batch_buffer buffer = {0};
    /* sums: loss, correct, then tp, fp, fn per class (doubles hold counts exactly far beyond any corpus) */
    size_t num_sums = 2 + 3 * classes;
    double *sums = reel_calloc(num_sums, sizeof *sums);
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
        sums[0] += reel_model_loss(model, NULL, logits, buffer.labels, rows, 1.0f, predicted);
        for (size_t i = 0; i < rows; i++) {
            size_t guess = (size_t)predicted[i], actual = (size_t)buffer.labels[i];
            if (guess >= classes) guess = classes - 1;
            if (guess == actual) {
                sums[1] += 1.0;
                sums[2 + 3 * actual] += 1.0;
            } else {
                sums[2 + 3 * guess + 1] += 1.0;
                sums[2 + 3 * actual + 2] += 1.0;
            }
        }
        start += rows;
    }
    reel_comm_sum_doubles(comm, sums, num_sums);
    reel_eval_finish(result, sums, classes);
    free(sums);
    free(predicted);
    reel_batch_buffer_free(&buffer);
    free(order);
    free(indices);
    free(logits);
}
