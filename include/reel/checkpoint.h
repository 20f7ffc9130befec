/* reel/checkpoint.h: HDF5 checkpoints, written by rank 0 only.
 *
 * Layout (`h5ls -r` and `h5dump -A` show it):
 *   /                       attributes: format = "reel-checkpoint", format_version = 2, model_type,
 *                           objective, reel_version, created_utc, world_size_at_save, num_parameters,
 *                           vocab_checksum (uint64) and vocab_checksum_hex, tokenizer ("word" or
 *                           "sentencepiece"; absent in older files: word) and, for pieces,
 *                           pieces_checksum (uint64, XXH64 seed 0 of /pieces' bytes)
 *   /config                 string: the resolved INI configuration the run used
 *   /vocab                  string: the model's vocabulary, token i on line i (the first vocab_size
 *                           entries of vocab.txt), so a checkpoint can be used without the data directory
 *   /pieces                 uint8 {bytes}, vocabularies of pieces only: the SentencePiece model (the data
 *                           directory's pieces.model, byte for byte), with which /vocab's pieces encode
 *                           and decode text; /vocab then lists all of them (a piece model is never cut)
 *   /labels                 string, classifiers whose data named their classes: class i's name on line i
 *                           (labels.txt of the data directory, e.g. neg, pos); absent in older files
 *   /model/<layer>/<name>   float32, the tensor's real shape: parameters (e.g. /model/hidden/weight
 *                           {H, E}) and saved state (/model/batchnorm/running_mean {H})
 *   /optimizer              attributes: type, steps_taken
 *   /optimizer/<slot>/<layer>/<name>   the optimizer state per parameter (slots adam_m, adam_v; momentum;
 *                           rmsprop_square, rmsprop_mean, momentum)
 *   /optimizer/tensor_steps uint64 {tensors}: the updates each tensor has had (Adam's bias correction;
 *                           they differ from steps_taken for tensors frozen a while); absent in older files
 *   /train_state            attributes: global_step, epoch, step_in_epoch, samples_seen, best_metric,
 *                           best_value (NaN before the first evaluation), best_step, seed,
 *                           evals_since_best (early stopping; absent in older files: 0)
 *   /train_state/carried/<name>   float32: what the objective carries from step to step, e.g. the
 *                           recurrent state of every stream of a language model ({streams, width})
 * Every tensor dataset (/model and the optimizer slots) carries HDF5's Fletcher-32 checksum, and the file
 * uses the newest HDF5 format, whose metadata is checksummed too, so a bit flip in a tensor or a
 * truncation is reported instead of loaded (the strings and tensor_steps have no Fletcher-32 filter).
 * Version 1 files (before objectives) are read too: their best_valid_accuracy is best_value of
 * "accuracy", and they have no /vocab.
 *
 * Saving is atomic: the file is written as <path>.tmp, flushed, fsync'ed, renamed over <path>, and the
 * directory is fsync'ed; a crash leaves either the old file or the new one, never half of one.
 * A run directory holds ckpt_<step, 8 digits>.h5 (the newest K are kept) and ckpt_best.h5.
 */
#ifndef REEL_CHECKPOINT_H
#define REEL_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "reel/check.h"
#include "reel/model.h"
#include "reel/util.h"
#include "reel/vocab.h"

#define REEL_CHECKPOINT_FORMAT "reel-checkpoint"
#define REEL_CHECKPOINT_VERSION 2

/* Where training stands. Nothing here depends on the number of ranks: the sample stream is a function of
 * (seed, epoch, step), so a checkpoint resumes on any world size. */
typedef struct reel_train_state {
    uint64_t global_step;       /* optimizer steps taken */
    uint64_t epoch;             /* epoch of the next step, 0-based */
    uint64_t step_in_epoch;     /* next step within that epoch */
    uint64_t samples_seen;      /* training samples consumed, over all ranks */
    char best_metric[REEL_NAME_MAX]; /* the evaluation series that picks the best checkpoint */
    double best_value;          /* its best value so far; NaN before the first evaluation */
    uint64_t best_step;
    uint64_t seed;
    uint64_t evals_since_best;  /* evaluations since best_value last improved (early stopping) */
} reel_train_state;

typedef struct reel_checkpoint_info {
    const char *config_ini;  /* stored as /config */
    const char *objective;   /* the objective's type */
    uint64_t vocab_checksum;
    const reel_vocab *vocab; /* its first model->vocab_size tokens are stored as /vocab; NULL: none */
    const reel_store *carried; /* stored under /train_state/carried; NULL or empty: none */
    int world_size;
    const char *class_names;   /* stored as /labels: one class name per line; NULL: none */
} reel_checkpoint_info;

/* The optimizer's state as the checkpoint reads and writes it, provided by the optimizer
 * (reel_optimizer_checkpoint_slots): named buffers of the parameters' layout (reel/params.h), each
 * stored as /optimizer/<name>/<layer>/<tensor> like the parameters, and the counts of updates. The
 * pointers are the optimizer's own: a load writes into them. */
typedef struct reel_checkpoint_slots {
    const char *type;               /* the optimizer's name: stored, and a load of another is refused */
    size_t num_slots;
    const char *const *slot_names;  /* (num_slots) e.g. "adam_m" */
    float *const *slots;            /* (num_slots) each of the parameters' num_floats */
    uint64_t *steps_taken;          /* optimizer steps taken */
    size_t num_tensors;             /* of the parameters' layout */
    uint64_t *tensor_steps;         /* (num_tensors) the updates each tensor has had */
} reel_checkpoint_slots;

int reel_checkpoint_save(const char *path, const reel_model *model, const reel_checkpoint_slots *opt,
                         const reel_train_state *state, const reel_checkpoint_info *info, reel_error *err);

/* Loads the model's tensors (every one must exist with exactly the model's shape), and when opt is not
 * NULL the optimizer state, and when state is not NULL the training state, and when carried is not NULL
 * and has tensors, those (the checkpoint must hold them with the same shapes). expected_vocab_checksum 0
 * skips the vocabulary check. Errors name the file and the dataset or attribute at fault. */
int reel_checkpoint_load(const char *path, reel_model *model, const reel_checkpoint_slots *opt, reel_train_state *state,
                         reel_store *carried, uint64_t expected_vocab_checksum, reel_error *err);

/* The stored /vocab (version 2 files) as a vocabulary of the model's tokens, whose checksum is the one
 * of the whole vocab.txt the model was trained with (its counts are 0); vocab->size = 0 and 0 returned
 * when the file has none. Free with reel_vocab_free. */
int reel_checkpoint_read_vocab(const char *path, reel_vocab *vocab, reel_error *err);

/* Whether the checkpoint at path was trained with the tokenizer of vocab (read from vocab_path): both
 * words, or both pieces of the same piece model. Else an error naming both files and what differs (word
 * against sentencepiece, or the two piece models' checksums); 0 when they agree (the vocabulary checksum
 * is compared by the loads). */
int reel_checkpoint_check_tokenizer(const char *path, const reel_vocab *vocab, const char *vocab_path,
                                    reel_error *err);

/* Starts model from another model's checkpoint (fine-tuning a classifier from a language model): every
 * transferable tensor of the model (its encoder: parameters and saved state such as batch-norm
 * statistics) is read from the checkpoint's tensor of the same name, which must exist with the same
 * shape; the model's other tensors keep their values. Nothing else is read: no optimizer state, no step.
 * A vocabulary other than expected_vocab_checksum, a missing tensor (another cell type, more layers, a
 * direction or a batch norm the checkpoint lacks) or another shape (another width or vocabulary size)
 * is an error naming the tensor (and both shapes), and the model is left as it was. report receives
 * what was loaded, what was left to its initialisation and which checkpoint tensors were not used. */
int reel_checkpoint_init_from(const char *path, reel_model *model, uint64_t expected_vocab_checksum, reel_buf *report,
                              reel_error *err);

/* The stored /labels text (malloc'd), or *class_names = NULL and 0 when the file has none. */
int reel_checkpoint_read_class_names(const char *path, char **class_names, reel_error *err);

/* The stored /config text (malloc'd), to rebuild the model a checkpoint belongs to. */
int reel_checkpoint_read_config(const char *path, char **config_ini, reel_error *err);

/* Path of the numbered checkpoint with the highest step in run_dir; returns 0 and *found = 0 if none. */
int reel_checkpoint_latest(const char *run_dir, char *path, size_t path_size, int *found, reel_error *err);
/* Numbered checkpoints in run_dir from newest to oldest (malloc'd array of malloc'd paths). */
size_t reel_checkpoint_list(const char *run_dir, char ***paths);
/* Deletes all but the newest keep_last numbered checkpoints. */
void reel_checkpoint_prune(const char *run_dir, size_t keep_last);
void reel_checkpoint_numbered_path(char *path, size_t path_size, const char *run_dir, uint64_t step);
/* Moves run_dir's numbered checkpoints of steps after `step` into dest_dir (created when the first one
 * moves; same file system, so each move is a rename): a run that starts over, or from an earlier
 * checkpoint, must not find the future it abandons among its own checkpoints (resuming would continue
 * that future, and pruning would keep its checkpoints as the newest and delete the run's own), but what
 * was saved is kept. Returns how many moved, with the lowest and highest step moved. A file that cannot
 * be moved is fatal. */
size_t reel_checkpoint_move_after(const char *run_dir, uint64_t step, const char *dest_dir, uint64_t *lowest,
                                  uint64_t *highest);
/* The global step a checkpoint was saved at (/train_state's global_step). */
int reel_checkpoint_read_step(const char *path, uint64_t *step, reel_error *err);

/* Prints a summary (attributes, tensors with shapes, configuration) to stdout; validates as it reads. */
int reel_checkpoint_describe(const char *path, reel_error *err);

#endif
