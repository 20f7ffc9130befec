/* The recurrent encoder shared by the recurrent classifiers and the language model (private to
 * src/models): embedding (V, E) -> stacked recurrent layers (tanh RNN, GRU or LSTM), each with its own
 * width and optionally bidirectional, with optional batch norm and locked dropout on every layer's
 * output. Its output is the last layer's (T, B, D) sequence, time-major, for a head to read (pooling and
 * a classifier, or a decoder over the vocabulary).
 *
 * The tensors are named the same in every model that uses it (embedding/weight, <cell>_l<i>_<fwd|bwd>/
 * w_ih, w_hh, b_ih, b_hh, batchnorm_l<i>/weight, bias, running_mean, running_var), and marked
 * transferable, so a classifier can start from the encoder of a language model by name.
 *
 * Regularisers (all rank-independent: masks are keyed by sample, epoch and step, never by rank):
 *   input_dropout   locked dropout on the embeddings, one mask per sequence
 *   word_dropout    whole words: each vocabulary row is dropped (zeroed, the others scaled by 1/(1-p))
 *                   for a whole global batch, as AWD-LSTM's embedding dropout
 *   rnn_dropout     locked dropout on every layer's output, one mask per sequence
 *   weight_dropout  DropConnect on every w_hh, one mask per global batch (AWD-LSTM's weight drop)
 *
 * The first layer's input projection, x . W_ih^T, depends only on the token (and, under input dropout,
 * on the sequence's mask), and a batch repeats tokens a lot: 100 IMDb windows of 100 tokens hold about
 * 1,900 distinct tokens and 6,400 distinct (token, review) pairs among 9,800 positions. So the first
 * layer projects each distinct input row once and copies the result to its positions; backward sums the
 * positions' gradients per distinct row before the two products for dW_ih and the embedding. Word
 * dropout keeps that grouping (it scales a token's row the same everywhere in the batch).
 *
 * Carried state: a batch with a state buffer starts each sequence from the state it holds and leaves
 * the final state there (unidirectional stacks only): per sequence, layer by layer, h (H_l) and for the
 * LSTM c (H_l).
 */
#ifndef REEL_RNN_STACK_H
#define REEL_RNN_STACK_H

#include <stddef.h>
#include <stdint.h>

#include "reel/layers.h"
#include "reel/model.h"

enum { RNN_STACK_MAX_LAYERS = 16 };

typedef struct rnn_stack_options {
    reel_cell cell;
    size_t vocab, E;
    size_t num_layers;
    size_t H[RNN_STACK_MAX_LAYERS]; /* units of each layer, per direction */
    const char *width_key;          /* the key H comes from, for messages ("[model] hidden_dim"; NULL: that) */
    size_t dirs;                    /* 1, or 2 for bidirectional layers */
    int batch_norm;
    float input_dropout, word_dropout, rnn_dropout, weight_dropout;
} rnn_stack_options;

typedef struct rnn_layer {
    size_t H, D, C;                            /* units per direction, output width (dirs * H), input width */
    size_t w_ih[2], w_hh[2], b_ih[2], b_hh[2]; /* tensor indices per direction */
    size_t bn_w, bn_b, bn_mean, bn_var;
    reel_recurrent_cache cache[2];
    reel_batchnorm_cache bn;
    float *dir_out[2]; /* (T, B, H) */
    float *cat;        /* (T, B, D) both directions side by side (unused with one direction) */
    float *normed;     /* (T, B, D) after batch norm */
    float *dropped;    /* (T, B, D) after locked dropout */
    float *mask;       /* (B, D) */
    float *h0, *c0;    /* (B, H) the carried state the layer starts from */
    float *w_hh_dropped[2], *w_hh_mask[2], *dw_hh_dropped[2]; /* (G*H, H) weight dropout */
    const float *input, *output; /* what the layer read and what it passed on, in the last forward */
} rnn_layer;

typedef struct rnn_stack {
    rnn_stack_options o;
    size_t embedding; /* tensor index */
    rnn_layer layers[RNN_STACK_MAX_LAYERS];
    size_t cap_rows, cap_B, T, B; /* capacity: T * B <= cap_rows time steps, B <= cap_B sequences */
    int training;                 /* the last forward was in training mode */
    int carried;                  /* the last forward started from a carried state */
    size_t *lengths;              /* (B) */
    uint8_t *row_mask;            /* (T, B) 1 for valid steps */
    reel_embedding_rows rows;     /* the distinct input rows of the first layer */
    float *embedded;              /* (U, E) the distinct rows, dropout applied */
    float *projected;             /* (U, G*H_0) their input projection; in backward, its gradient */
    float *embed_mask;            /* (B, E) input dropout */
    float *row_scale;             /* (U) word dropout: 0 or 1/(1-p) per distinct row */
    float *grad_a, *grad_b;       /* (T, B, widest) ping-pong gradient buffers */
    float *d_dir[2];              /* (T, B, widest H) */
    const float *output;          /* (T, B, D) of the last layer, after the last forward */
    size_t D;                     /* its width */
    /* Perturbed inputs (adversarial training; see input_delta, input_grad and frozen_statistics in
     * reel/model.h), set by the model before a forward or backward. The first layer's input at a step
     * is then (distinct row + that token's delta) times the sequence's input-dropout mask: its
     * projection is the distinct row's plus delta . w_ih^T, one more product over all the steps, and
     * the gradient of each step's input is one more product in backward. */
    const float *input_delta;     /* (total tokens, E) or NULL */
    float *input_grad;            /* (total tokens, E) or NULL */
    int frozen_statistics;
    int perturbed;                /* the last forward added input_delta */
    float *delta_steps;           /* (T, B, E) each step's delta, input dropout applied; 0 at padding */
    float *d_input_steps;         /* (T, B, E) the gradient of each step's first-layer input */
} rnn_stack;

/* Registers the encoder's tensors in params (and batch-norm statistics in state). */
void rnn_stack_create(rnn_stack *s, const rnn_stack_options *options, reel_store *params, reel_store *state);
void rnn_stack_free(rnn_stack *s);
/* Floats of carried state per sequence. */
size_t rnn_stack_state_width(const rnn_stack *s);
/* The forward over batch (training: dropout and global batch-norm statistics, a collective); s->output
 * then holds the last layer's (T, B, D) outputs, T the longest sequence of the batch. seed keys the
 * dropout masks. */
void rnn_stack_forward(rnn_stack *s, const reel_store *params, const reel_store *state, const reel_batch *batch,
                       int training, uint64_t seed, const reel_comm *comm);
/* The buffer (T, B, D) the head fills with the gradient of s->output before rnn_stack_backward. */
float *rnn_stack_output_grad(rnn_stack *s);
/* Accumulates the encoder's gradients into params->grad from rnn_stack_output_grad(s) (which it
 * consumes); must follow a training forward on the same batch. */
void rnn_stack_backward(rnn_stack *s, const reel_store *params, const reel_batch *batch, const reel_comm *comm);

/* The capacity, in time steps (T * B), to allocate when `needed` exceeds `current`: at least double
 * `current` (up to the evaluation batches' REEL_EVAL_STEP_BUDGET), so that evaluation, whose batches
 * sorted by length grow step by step, reallocates a few times instead of at nearly every batch (every
 * reallocation touches fresh pages: 15% of an evaluation's time went to page faults). */
size_t rnn_stack_capacity(size_t needed, size_t current);

#endif
