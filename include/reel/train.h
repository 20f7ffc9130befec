/* reel/train.h: the data-parallel training loop.
 *
 * Every rank holds the whole model; each step every rank runs forward and backward on its share of the
 * global batch, the gradients (one contiguous buffer) are summed with one MPI_Allreduce, and every rank
 * takes the same optimizer step. The loss of a step is the mean over the GLOBAL batch (each rank scales
 * by 1 / global rows), so uneven shares are exact. Rank 0 alone writes checkpoints and metrics. */
#ifndef REEL_TRAIN_H
#define REEL_TRAIN_H

#include "reel/check.h"
#include "reel/config.h"

typedef enum { REEL_RESUME_AUTO, REEL_RESUME_NEVER, REEL_RESUME_FROM } reel_resume_mode;

typedef struct reel_train_options {
    reel_resume_mode resume;
    const char *resume_path; /* REEL_RESUME_FROM: this checkpoint */
} reel_train_options;

/* Runs (or resumes) training as cfg describes. Returns 0 on success; fatal errors end all ranks. */
int reel_train(const reel_config *cfg, const reel_train_options *options);

#endif
