/* reel/params.h: named tensors laid out in one contiguous float buffer.
 *
 * A model registers each tensor once (name "<layer>/<tensor>", shape), then reel_store_allocate makes
 * one allocation per buffer and every tensor becomes a view at a fixed offset. The same layout serves
 * the parameters, their gradients and the optimizer state, so the gradient exchange works on runs of
 * consecutive tensors of one buffer (reel/exchange.h), the optimizer is one loop, and a checkpoint writes
 * one dataset per view.
 */
#ifndef REEL_PARAMS_H
#define REEL_PARAMS_H

#include <stddef.h>

#include "reel/check.h"

#define REEL_TENSOR_NAME_MAX 64
/* The token embedding's name, which the trainer, the gradient exchange (sparse rows), the classifier's
 * frozen-embedding path and `reel export` look up; declared here, with the store, so that the gradient
 * exchange need not include the model header to find it. */
#define REEL_TENSOR_EMBEDDING "embedding/weight"
#define REEL_TENSOR_MAX_DIMS 4

typedef struct reel_tensor_info {
    char name[REEL_TENSOR_NAME_MAX]; /* "<layer>/<tensor>", e.g. "hidden/weight" */
    size_t ndim;
    size_t shape[REEL_TENSOR_MAX_DIMS];
    size_t offset; /* in floats, into the owning store's buffers */
    size_t count;  /* product of shape */
    int transfer;  /* part of an encoder another model can start from (see reel_checkpoint_init_from) */
    size_t group;  /* depth of its layer from the input: the embedding 0, each recurrent layer (with its batch
                      norm) one more, the head the highest; discriminative rates and gradual unfreezing go by it */
    char sized_by[2 * REEL_TENSOR_NAME_MAX]; /* the configuration keys its shape comes from, e.g. "[model]
                                                vocab_size x embed_dim", so an allocation that cannot be
                                                made says what to lower; "" when not given */
    int decay;     /* 1: the optimizer's weight decay applies to it. The model's choice (reel_store_add sets 1,
                      reel_store_set_decay changes it); [optimizer] decay = all | matrices overrides it */
    int frozen;    /* set by the trainer while the tensor does not train: its gradient is never used, so a
                      backward may leave it unset and skip the work only it needs */
} reel_tensor_info;

/* What the backward tells whoever consumes the gradient while it is being computed (the trainer's
 * gradient exchange, reel/exchange.h), handed in so that models and layers need not know who that is.
 * grad_ready(ctx, g): the backward has finished every tensor of group g and above. poll(ctx): called
 * between pieces of backward work (each time step of a recurrent layer) so that work started earlier can
 * move on. Either may be NULL: nothing to do. */
typedef void (*reel_grad_ready_hook)(void *ctx, size_t group);
typedef void (*reel_poll_hook)(void *ctx);
typedef struct reel_grad_hooks {
    reel_grad_ready_hook grad_ready;
    reel_poll_hook poll;
    void *ctx;
} reel_grad_hooks;

/* A set of tensors sharing one layout. `data` always exists; `grad` exists for trainable stores
 * (parameters) and is NULL for state stores (batch-norm running statistics). */
typedef struct reel_store {
    reel_tensor_info *tensors;
    size_t num_tensors;
    size_t capacity;
    size_t group; /* the group of the tensors added next (reel_store_set_group) */
    size_t num_floats; /* total, a multiple of nothing: views are packed back to back */
    float *data;
    float *grad;
    int trainable;
    reel_grad_hooks hooks; /* set by the trainer for the parameters of the model it trains; zero otherwise */
} reel_store;

void reel_store_init(reel_store *store, int trainable);
/* Registers a tensor before allocation and returns its index; shape has ndim entries. */
size_t reel_store_add(reel_store *store, const char *name, size_t ndim, const size_t *shape);
/* The same, saying which configuration keys make the shape (sized_by, printf-style), for the message
 * when the memory does not suffice. A size that overflows is kept as SIZE_MAX (the allocation refuses it). */
size_t reel_store_add_sized(reel_store *store, const char *name, size_t ndim, const size_t *shape,
                            const char *sized_by, ...) REEL_PRINTF(5, 6);
/* Allocates data (zeroed) and, for trainable stores, grad. When that is more than the machine can
 * allocate it ends the program naming the largest tensors and the keys their sizes come from. */
void reel_store_allocate(reel_store *store);
/* Ends the program with that message unless copies buffers of the store's layout fit in this machine's
 * memory; what says what the copies are ("the parameters, their gradients and the optimizer's 2 state
 * buffers"). */
void reel_store_require(const reel_store *store, size_t copies, const char *what);
/* One more zeroed buffer of the store's layout (num_floats floats), e.g. an optimizer's state; when it
 * cannot be allocated the message is reel_store_require's, copies and what saying what it was part of. */
float *reel_store_calloc_like(const reel_store *store, size_t copies, const char *what);
float *reel_store_view(const reel_store *store, size_t index);
float *reel_store_grad_view(const reel_store *store, size_t index);
/* The group of the tensors added from now on (0 at first). */
void reel_store_set_group(reel_store *store, size_t group);
/* The highest group of the store's tensors. */
size_t reel_store_top_group(const reel_store *store);
/* The backward calls these on the model's parameter store; they call the store's hooks when set. */
void reel_store_grad_ready(const reel_store *store, size_t group);
void reel_store_poll(const reel_store *store);
/* Marks tensors [first, num_tensors) as transferable: the encoder tensors a model shares by name with
 * the models it can start from, or be started from. */
void reel_store_mark_transfer(reel_store *store, size_t first);
/* Whether the optimizer's weight decay applies to tensor index (every tensor does unless its model says not). */
void reel_store_set_decay(reel_store *store, size_t index, int decay);
/* Index of the tensor called name, or (size_t)-1. */
size_t reel_store_find(const reel_store *store, const char *name);
void reel_store_free(reel_store *store);

#endif
