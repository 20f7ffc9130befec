/* reel/exchange.h: summing the gradient over the ranks after each step.
 *
 * The gradient is one contiguous buffer (reel/params.h). What is exchanged: every tensor that trains
 * (frozen ones are skipped), as runs of consecutive trainable tensors. Two refinements:
 *
 * Sparse embedding rows. A step touches only the rows of the embedding whose tokens occur in the batch
 * (an IMDb batch of the course LSTM: about 1,300 of 8,000 rows per rank). Each step every rank counts its
 * non-zero rows (a scan of the embedding gradient), the counts are gathered (one small MPI_Allgather), and
 * when sending every rank's rows (ids and values, MPI_Allgatherv) moves fewer bytes than the ring
 * all-reduce of the whole table, 2 (p-1)/p V D floats, the rows are exchanged and summed in rank order;
 * otherwise the table is all-reduced with the rest. The choice is the same on every rank (it depends on
 * the gathered counts alone). On 2 ranks both give the same bits (a + b, 0 + a); on more, the order of
 * the additions may differ from MPI's, so results agree to float rounding. A tied decoder makes every
 * row non-zero, and the dense path is chosen.
 *
 * Overlap with the backward pass (bucket_bytes > 0). The trainable ranges are cut into buckets of about
 * bucket_bytes, in the order the backward finishes them (from the top of the model down). The model
 * reports each group whose gradient is final (reel_exchange_ready, through the hooks of reel_exchange_hooks
 * that the trainer puts in the model's parameter store: reel_store_grad_ready); when every tensor of a
 * bucket is, its non-blocking all-reduce starts, and reel_exchange_progress (called by the layers between
 * pieces of work, reel_store_poll) lets Open MPI move it, since it makes no progress on its own.
 * reel_exchange_finish waits for the rest. A bucket is a part of the buffer all-reduced on its own, so
 * MPI may add the ranks' values in another order than for the whole buffer: on 2 ranks the bits are the
 * same, on more they agree to float rounding.
 */
#ifndef REEL_EXCHANGE_H
#define REEL_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "reel/comm.h"
#include "reel/params.h"

typedef enum { REEL_EMBEDDING_AUTO = 0, REEL_EMBEDDING_DENSE, REEL_EMBEDDING_SPARSE } reel_embedding_exchange;

typedef struct reel_exchange_stats {
    uint64_t steps, sparse_steps;  /* steps exchanged, and those whose embedding went as rows */
    double bytes_dense;            /* floats all-reduced x 4, summed over the steps */
    double bytes_sparse;           /* bytes of rows this rank received, summed over the steps */
    double wait_seconds;           /* time in reel_exchange_finish: what the backward did not hide */
    uint64_t buckets, early_buckets; /* buckets all-reduced, and those started during the backward */
} reel_exchange_stats;

typedef struct reel_exchange reel_exchange;

reel_exchange *reel_exchange_create(const reel_store *params, const reel_comm *comm, reel_embedding_exchange mode,
                                    size_t bucket_bytes);
void reel_exchange_free(reel_exchange *ex);
/* The tensors that train (frozen[t] = 0); called again whenever that changes (gradual unfreezing). */
void reel_exchange_plan(reel_exchange *ex, const uint8_t *frozen);

/* One step: begin before the backward (overlap = 0 when the gradient accumulates over several backward
 * passes, as under adversarial training), ready as groups become final, finish after the backward.
 * Without overlap, finish does all the work. Collectives: every rank calls them in step. */
void reel_exchange_begin(reel_exchange *ex, int overlap);
void reel_exchange_ready(reel_exchange *ex, size_t group);
void reel_exchange_progress(reel_exchange *ex);
void reel_exchange_finish(reel_exchange *ex);

const reel_exchange_stats *reel_exchange_get_stats(const reel_exchange *ex);

/* The hooks for the parameter store whose gradient ex exchanges (reel_store.hooks): grad_ready is
 * reel_exchange_ready, poll reel_exchange_progress, both doing nothing unless a step with overlap is under
 * way (between reel_exchange_begin(ex, 1) and reel_exchange_finish). The trainer sets them after creating
 * ex and clears them before freeing it. */
reel_grad_hooks reel_exchange_hooks(reel_exchange *ex);

#endif
