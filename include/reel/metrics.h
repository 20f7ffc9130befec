/* reel/metrics.h: the run's metrics file, written by rank 0 only.
 *
 * metrics.h5 holds two tables, /train (one row per log interval) and /eval (one row per evaluation),
 * each a set of extendible, chunked 1-D datasets of equal length, one per named series, appended and
 * flushed at every row. Which series exist is declared by the run: the trainer's own (step, epoch, lr,
 * grad_norm, allreduce_share: the share of the steps' time from the end of this rank's backward to the
 * end of the gradient exchange, waiting for slower ranks included, seconds: the training time the row
 * covers; split for evaluations) and those of the objective being trained (classification: loss,
 * accuracy, samples_per_s, adversarial_loss under adversarial training; evaluations also precision,
 * recall, f1, tp, fp, tn, fn, macro_f1; language model: loss, perplexity, accuracy, tokens_per_s;
 * evaluations also tokens, unigram_perplexity). Readers find a series by name:
 *     h5py.File("runs/x/metrics.h5", "r", swmr=True)["train/loss"][:]
 * The file is in HDF5's SWMR mode, so it can be read while the job runs.
 *
 *   /train/<series>, /eval/<series>   uint64 (steps, epochs, counts), float64 or uint8 (eval split:
 *                                     0 = valid, 1 = test, 2 = train)
 * Root attributes: format = "reel-metrics", format_version = 1, objective = the objective's name.
 */
#ifndef REEL_METRICS_H
#define REEL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "reel/check.h"

typedef struct reel_metrics reel_metrics;

typedef enum { REEL_COLUMN_U64, REEL_COLUMN_F64, REEL_COLUMN_U8 } reel_column_type;

typedef struct reel_column {
    const char *name;
    reel_column_type type;
    int added_later; /* 1: a series added after metrics files were first written; a resumed run whose file
                        lacks it adds it (NaN or 0 in the older rows) instead of calling the file damaged */
} reel_column;

/* One value of a row: .u for uint64 and uint8 columns, .f for float64 ones. */
typedef union reel_value {
    uint64_t u;
    double f;
} reel_value;

typedef enum { REEL_METRICS_TRAIN = 0, REEL_METRICS_EVAL = 1 } reel_metrics_table;

enum { REEL_SPLIT_VALID = 0, REEL_SPLIT_TEST = 1, REEL_SPLIT_TRAIN = 2 };

/* The columns of both tables. Column 0 of each is "step" (uint64): rows are in step order. */
typedef struct reel_metrics_layout {
    const char *objective;
    const reel_column *train;
    size_t num_train;
    const reel_column *eval;
    size_t num_eval;
} reel_metrics_layout;

/* Opens path for appending, creating it when missing. When the file exists, rows whose step is greater
 * than keep_up_to_step are dropped first: they were logged after the checkpoint the run resumes from,
 * and the resumed run logs them again. A file of another objective is refused. */
int reel_metrics_open(reel_metrics **out, const char *path, const reel_metrics_layout *layout,
                      uint64_t keep_up_to_step, reel_error *err);
/* Appends one row: row[c] is the value of column c of the table. */
int reel_metrics_append(reel_metrics *metrics, reel_metrics_table table, const reel_value *row, reel_error *err);
void reel_metrics_close(reel_metrics *metrics);

/* ---- reading (reel plot, reel runs) ----
 * A finished run's file, or one being written or left by a killed job (the file is opened as an HDF5
 * SWMR reader). Every series comes back as doubles; a table's rows are those complete in every series. */
typedef struct reel_series_data {
    char name[64];
    double *values; /* (rows of its table) */
} reel_series_data;

typedef struct reel_metrics_data {
    char objective[64];
    size_t rows[2];                 /* [REEL_METRICS_TRAIN], [REEL_METRICS_EVAL] */
    size_t num_series[2];
    reel_series_data *series[2];
} reel_metrics_data;

int reel_metrics_read(reel_metrics_data *out, const char *path, reel_error *err);
/* The values of series name in a table, or NULL when the file has no such series. */
const double *reel_metrics_series(const reel_metrics_data *data, reel_metrics_table table, const char *name);
void reel_metrics_data_free(reel_metrics_data *data);

#endif
