/* reel/metrics.h: the run's metrics file, written by rank 0 only.
 *
 * metrics.h5 holds extendible, chunked 1-D datasets, appended and flushed at every log interval and
 * every evaluation. The file is in HDF5's SWMR mode, so h5py can read it while the job runs:
 *     h5py.File("runs/x/metrics.h5", "r", swmr=True)
 *
 *   /train/step, /train/epoch                 uint64
 *   /train/loss, /train/accuracy, /train/lr, /train/grad_norm, /train/samples_per_s   float64
 *   /eval/step, /eval/epoch                   uint64
 *   /eval/split                               uint8   (0 = valid, 1 = test, 2 = train)
 *   /eval/loss, /eval/accuracy, /eval/precision, /eval/recall, /eval/f1   float64
 *   /eval/tp, /eval/fp, /eval/tn, /eval/fn    uint64  (binary confusion matrix, positive class = 1)
 * Root attributes: format = "reel-metrics", format_version = 1.
 */
#ifndef REEL_METRICS_H
#define REEL_METRICS_H

#include <stdint.h>

#include "reel/check.h"

typedef struct reel_metrics reel_metrics;

typedef struct reel_train_row {
    uint64_t step, epoch;
    double loss, accuracy, lr, grad_norm, samples_per_s;
} reel_train_row;

enum { REEL_SPLIT_VALID = 0, REEL_SPLIT_TEST = 1, REEL_SPLIT_TRAIN = 2 };

typedef struct reel_eval_row {
    uint64_t step, epoch;
    uint8_t split;
    double loss, accuracy, precision, recall, f1;
    uint64_t tp, fp, tn, fn;
} reel_eval_row;

/* Opens path for appending, creating it when missing. When the file exists, rows whose step is greater
 * than keep_up_to_step are dropped first: they were logged after the checkpoint the run resumes from,
 * and the resumed run logs them again. */
int reel_metrics_open(reel_metrics **out, const char *path, uint64_t keep_up_to_step, reel_error *err);
int reel_metrics_append_train(reel_metrics *metrics, const reel_train_row *row, reel_error *err);
int reel_metrics_append_eval(reel_metrics *metrics, const reel_eval_row *row, reel_error *err);
void reel_metrics_close(reel_metrics *metrics);

#endif
