/* reel/train.h: the data-parallel training loop.
 *
 * Every rank holds the whole model; each step every rank runs forward and backward on its share of the
 * global batch, the gradients of the tensors that train are summed over the ranks (reel/exchange.h: in
 * buckets that may start during the backward, and the embedding's touched rows alone when that moves
 * fewer bytes than its table), and every rank takes the same optimizer step. The loss of a step is the mean over the GLOBAL batch (each rank scales
 * by 1 / global rows), so uneven shares are exact. Rank 0 alone writes checkpoints and metrics. */
#ifndef REEL_TRAIN_H
#define REEL_TRAIN_H

#include "reel/check.h"
#include "reel/config.h"

typedef enum { REEL_RESUME_AUTO, REEL_RESUME_NEVER, REEL_RESUME_FROM } reel_resume_mode;

/* What reel_train returns, and `reel train` exits with:
 *   REEL_TRAIN_DONE (0)      the run is over: every epoch done, max_steps reached, or stopped early by
 *                            early stopping;
 *   REEL_TRAIN_STOPPED (75)  it stopped before that, to be continued: SIGTERM, SIGUSR1 or SIGINT came (a
 *                            scheduler's warning before a time limit or a preemption, or Ctrl-C), or the
 *                            --time-limit was near; a checkpoint of the step reached was written first, so
 *                            running the same command again continues the run (75 is EX_TEMPFAIL, "try
 *                            again later"; the job scripts requeue the job on it).
 * Fatal errors end every rank with status 1. */
enum { REEL_TRAIN_DONE = 0, REEL_TRAIN_STOPPED = 75 };

typedef struct reel_train_options {
    reel_resume_mode resume;
    const char *resume_path; /* REEL_RESUME_FROM: this checkpoint */
    double time_limit;       /* seconds this process may run (0: no limit): training stops, with a checkpoint,
                                early enough to save it before the limit */
} reel_train_options;

/* Runs (or resumes) training as cfg describes. Returns REEL_TRAIN_DONE or REEL_TRAIN_STOPPED. Signals:
 * while it runs, SIGTERM, SIGUSR1 and SIGINT only set a flag; at the next step boundary every rank
 * learns of it in the step's own reduction (no extra collective), the checkpoint is written, and the
 * call returns REEL_TRAIN_STOPPED. Further signals during the save change nothing (the checkpoint is
 * written atomically in any case). The previous handlers are restored on return. */
int reel_train(const reel_config *cfg, const reel_train_options *options);

#endif
