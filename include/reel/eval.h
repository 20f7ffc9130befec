/* reel/eval.h: evaluation of a classifier on a whole split, spread over the ranks. */
#ifndef REEL_EVAL_H
#define REEL_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "reel/comm.h"
#include "reel/model.h"
#include "reel/tokfile.h"

typedef struct reel_eval_result {
    uint64_t count;                             /* documents evaluated */
    double loss;                                /* mean binary cross-entropy */
    double accuracy, precision, recall, f1;     /* two classes: of class 1; more: macro averages; 0 if undefined */
    uint64_t tp, fp, tn, fn;                    /* two classes: the confusion matrix (positive = 1) */
    size_t num_classes;
} reel_eval_result;

/* Every rank evaluates a contiguous part of the split in batches of at most batch_rows documents
 * (<= model->max_batch) and the sums are reduced, so every rank returns the same result. A bad document
 * is fatal for all ranks (a rank cannot leave the others waiting in the reduction). */
void reel_evaluate(reel_model *model, reel_tokfile *file, size_t max_tokens, size_t batch_rows,
                   const reel_comm *comm, reel_eval_result *result);

/* The result from the sums (loss, correct, then true positives, false positives and false negatives of
 * each class) reduced over the ranks. */
void reel_eval_finish(reel_eval_result *result, const double *sums, size_t num_classes);

#endif
