/* reel/data.h: turning documents of a token file into this rank's share of a batch.
 *
 * Sharding rule: an epoch's order is a seeded shuffle of the whole split (reel_shuffle); global batch k
 * is positions [k*B, (k+1)*B) of that order (the last one may be shorter); each rank takes a contiguous
 * share of the batch (reel_rank_share). Every sample is seen exactly once per epoch over all ranks, all
 * ranks run the same number of steps, and the stream of global batches does not depend on the number of
 * ranks, so a run can resume on a different world size. */
#ifndef REEL_DATA_H
#define REEL_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "reel/check.h"
#include "reel/tokfile.h"

/* This rank's share of a batch. */
typedef struct reel_batch {
    size_t size;                  /* B: sequences (documents, windows or streams) */
    const uint32_t *ids;          /* (total tokens) token ids, already mapped into the model's vocabulary */
    const size_t *offsets;        /* (B+1) sequence boundaries into ids */
    const float *labels;          /* (B) classification: the class of each document; NULL otherwise */
    const uint32_t *targets;      /* (total tokens) next-token prediction: the token after each input token;
                                     NULL otherwise */
    const uint64_t *sample_index; /* (B) a number unique to each sequence in its epoch: keys its random numbers */
    uint64_t epoch;               /* keys the random numbers too */
    uint64_t step;                /* the global batch within the epoch: keys random numbers shared by the
                                     whole batch (masks on weights or on vocabulary rows) */
    float *state;                 /* (B, model->decode_width) or NULL: each sequence continues from this state
                                     instead of starting afresh, and the forward leaves each sequence's updated
                                     state here: a recurrent model's final state (truncated backpropagation
                                     through time, generation step by step), a Transformer's key/value cache
                                     (evaluation only: generation) */
} reel_batch;

/* The most time steps (documents x the longest) in one evaluation batch (reel_eval_batch_rows); a model
 * may size its buffers by it. A recurrent model's activations grow with the steps (about
 * 8 KB per step for an LSTM of 500 units), and a few reviews run to thousands of tokens; too small a
 * budget leaves long reviews in batches of a handful of rows, where the per-step recurrent product runs
 * far below the machine's speed. */
enum { REEL_EVAL_STEP_BUDGET = 32768 };

/* Length buckets: order (n) is an epoch's shuffled order of documents, cut into global batches of
 * `batch`. Each pool of pool_batches consecutive batches is sorted by length (lengths[doc], stable in the
 * shuffled order) and cut into batches of similar lengths; the order of the pool's batches is shuffled
 * (the epoch's last batch, when shorter, stays last, so every other batch keeps `batch` documents), and
 * so are the documents inside each batch, so that no rank's contiguous share always gets a batch's
 * shortest. A function of (seed, epoch, lengths) alone: the same on any number of ranks, and the same
 * when an epoch is resumed. scratch: pool_batches * (batch + 1) values. */
void reel_bucket_by_length(uint64_t *order, uint64_t n, const uint64_t *lengths, size_t batch, size_t pool_batches,
                           uint64_t seed, uint64_t epoch, uint64_t *scratch);

/* This rank's rows [*begin, *begin + *count) of a global batch of total rows: the first total % size ranks
 * take one row more than the others. A rank may get 0 rows; it still joins every collective. */
void reel_rank_share(size_t total, int rank, int size, size_t *begin, size_t *count);

typedef struct reel_batch_buffer {
    uint32_t *ids;
    uint32_t *targets; /* next-token batches: aligned with ids */
    size_t ids_capacity;
    size_t *offsets;
    float *labels;
    uint64_t *sample_index;
    size_t capacity;
    reel_batch batch; /* views into the buffers above */
} reel_batch_buffer;

/* Fills buf->batch with documents doc_indices[0..count) of file: ids >= vocab_limit become <unk>; a
 * document longer than `window` (when window > 0) is cut to a random run of window tokens, whose start is
 * drawn from (seed, epoch, document index) so it is new every epoch and the same on any number of ranks;
 * otherwise it is cut to its first max_tokens tokens (0 keeps all). A bad document (id past the file's
 * vocabulary) returns -1 with the file and byte offset in err. */
int reel_batch_gather(reel_batch_buffer *buf, reel_tokfile *file, const uint64_t *doc_indices, size_t count,
                      size_t vocab_limit, size_t max_tokens, size_t window, uint64_t seed, uint64_t epoch,
                      reel_error *err);
void reel_batch_buffer_free(reel_batch_buffer *buf);

/* Building a next-token batch sequence by sequence: begin empties the buffer for up to `rows`
 * sequences; append adds one sequence of `length` tokens and returns where its input ids and its
 * targets go (*ids, *targets: `length` each, for the caller to fill before the next append, which may
 * move them); finish sets buf->batch (labels NULL, targets set). */
void reel_batch_begin(reel_batch_buffer *buf, size_t rows, uint64_t epoch, uint64_t step);
void reel_batch_append(reel_batch_buffer *buf, size_t length, uint64_t sample_index, uint32_t **ids, uint32_t **targets);
void reel_batch_finish(reel_batch_buffer *buf);

/* (src/prep/prep.c) From data_dir/prep.ini: the bytes of the normalised text and the word tokens of split's documents
 * (`<split>_bytes`, `<split>_words`). Returns 0, or 1 when the manifest does not have them (a directory
 * prepared before they were recorded, or no prep.ini), leaving both 0. */
int reel_prep_split_text(const char *data_dir, const char *split, uint64_t *bytes, uint64_t *words);

#endif
