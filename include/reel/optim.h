/* reel/optim.h: optimizers over the flat parameter buffer, with PyTorch's semantics and defaults:
 *   adam: m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps),
 *         with weight decay decoupled (AdamW: p -= lr * wd * p before the update);
 * weight decay (wd) applies to the tensors [optimizer] decay chooses (reel_optimizer_decays), 0 for the others;
 *   sgd:  g += wd * p;  buf = momentum * buf + g;  p -= lr * (nesterov ? g + momentum * buf : buf);
 *   rmsprop: g += wd * p;  v = alpha v + (1-alpha) g^2;  centered: a = alpha a + (1-alpha) g and the
 *         denominator is sqrt(v - a^2) + eps, else sqrt(v) + eps;  momentum > 0: buf = momentum * buf +
 *         g / denominator, p -= lr * buf;  else p -= lr * g / denominator.
 * Their state ("slots") has the parameters' layout, so checkpoints store it tensor by tensor. */
#ifndef REEL_OPTIM_H
#define REEL_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "reel/checkpoint.h"
#include "reel/config.h"
#include "reel/params.h"

enum { REEL_OPTIM_MAX_SLOTS = 3 };

typedef struct reel_optimizer {
    char type[REEL_NAME_MAX];                       /* "adam", "sgd" or "rmsprop" */
    size_t num_slots;                               /* adam: 2, sgd: 1, rmsprop: 1 to 3 */
    const char *slot_names[REEL_OPTIM_MAX_SLOTS];   /* "adam_m", "adam_v" / "momentum" / "rmsprop_square",
                                                       then "rmsprop_mean" (centered), "momentum" (momentum > 0) */
    float *slots[REEL_OPTIM_MAX_SLOTS];             /* (num_floats) each */
    size_t num_floats;
    uint64_t steps_taken;                           /* optimizer steps taken */
    double beta1, beta2, eps, momentum, weight_decay, alpha;
    int nesterov, centered;
    int lazy_embedding; /* adam: the embedding's rows with an all-zero gradient are skipped (no moment decay,
                           no weight decay); the step count and its bias correction stay the tensor's */
    /* Per tensor of the parameters' layout (num_tensors): a multiplier of the learning rate (layer-wise
     * rates; 0: the tensor is frozen: no update, its state untouched, no weight decay), and the updates it
     * has had, for Adam's bias correction, which PyTorch also keeps per parameter (a layer unfrozen late
     * starts its correction afresh). */
    size_t num_tensors;
    const reel_tensor_info *tensors;
    float *lr_scale;
    uint64_t *tensor_steps;
    int *decays;                                    /* (num_tensors) 1: weight_decay applies to the tensor */
} reel_optimizer;

void reel_optimizer_init(reel_optimizer *opt, const reel_config *cfg, const reel_store *params);
/* Whether weight decay applies to tensor info under cfg's [optimizer] decay and decay_embedding. */
int reel_optimizer_decays(const reel_config *cfg, const reel_tensor_info *info);
/* Checks the [optimizer] keys that depend on each other (decay_embedding needs decay = matrices). */
int reel_optimizer_check(const reel_config *cfg, reel_error *err);
void reel_optimizer_free(reel_optimizer *opt);
/* The state a checkpoint saves and loads: views of opt's own buffers and counts, valid while opt lives. */
reel_checkpoint_slots reel_optimizer_checkpoint_slots(reel_optimizer *opt);
/* One update of params->data from params->grad with learning rate lr (times each tensor's lr_scale). */
void reel_optimizer_step(reel_optimizer *opt, reel_store *params, double lr);

/* The learning rate at global step `step` (0-based) of total_steps, steps_per_epoch to an epoch: linear
 * warm-up over warmup_steps, then
 *   constant;
 *   cosine or linear: decay to 0 at total_steps;
 *   step: lr times decay_factor for each of decay_epochs (1-based) the step's epoch has reached;
 *   slanted_triangular (ULMFiT): a linear rise from lr / stlr_ratio to lr over the first stlr_cut_frac of
 *     the steps, then a linear fall back to lr / stlr_ratio at total_steps. */
double reel_schedule_lr(const reel_config *cfg, uint64_t step, uint64_t total_steps, uint64_t steps_per_epoch);
/* Checks what the schedule needs beyond the single keys (step: a valid decay_epochs list). */
int reel_schedule_check(const reel_config *cfg, reel_error *err);

/* Euclidean norm of the whole gradient (accumulated in double). */
double reel_grad_norm(const float *grad, size_t count);
/* Scales grad so its norm is at most max_norm (no-op when max_norm <= 0); returns the factor used. */
double reel_clip_grad_norm(float *grad, size_t count, double norm, double max_norm);

#endif
