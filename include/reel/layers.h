/* reel/layers.h: the layer kernels, one file each under src/layers/.
 *
 * Dimension letters: B = rows in this rank's batch, C = input features, OC = output features,
 * E = embedding width, V = vocabulary rows, T = total tokens in the batch.
 * Conventions (as in every kernel here):
 *   - forward writes its outputs; backward ACCUMULATES (+=) into parameter gradients and into dinp, so
 *     the caller zeroes gradients once per step;
 *   - every pointer argument carries its shape in a comment; row-major storage;
 *   - kernels that need statistics over the global batch take a reel_comm and reduce across ranks, so
 *     results do not depend on how the batch is split.
 */
#ifndef REEL_LAYERS_H
#define REEL_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "reel/comm.h"

/* ---- embedding_bag.c: mean of the embedding rows of each document ---- */
/* out       (B, E)  out[b] = mean of row_scale[ids[t]] * weight[ids[t]] for t in [offsets[b], offsets[b+1]);
 *                   zeros if empty
 * ids       (T)     token ids, each < V
 * offsets   (B+1)   document boundaries into ids
 * weight    (V, E)
 * row_scale (V)     a weight per row (the bag of words' Naive-Bayes ratios), or NULL for 1 */
void reel_embedding_bag_forward(float *out, const uint32_t *ids, const size_t *offsets, const float *weight,
                                const float *row_scale, size_t B, size_t E);
/* dweight (V, E) += for each document b and token t in it: row_scale[ids[t]] dout[b] / length(b). Only rows
 * seen change. */
void reel_embedding_bag_backward(float *dweight, const float *dout, const uint32_t *ids, const size_t *offsets,
                                 const float *row_scale, size_t B, size_t E);

/* ---- embedding.c: the distinct embedded rows of a batch, for sequence models ---- */
/* A sequence model's first layer only needs each distinct input row once: a batch repeats tokens a lot.
 * The forward gathers the distinct rows and records, for every (t, b) step of the time-major batch,
 * which row it is; a caller projects the rows and copies each result to its steps, then sums the steps'
 * gradients per row before the backward. With a per-sequence feature mask (locked embedding dropout)
 * two occurrences of a token in different sequences differ, so rows are distinct (token, sequence)
 * pairs. Rows are numbered by first appearance, sequence by sequence: a function of the batch alone. */
#define REEL_NO_ROW SIZE_MAX
typedef struct reel_embedding_rows {
    size_t count;        /* U: distinct rows of the last forward */
    size_t steps;        /* T * B of the last forward */
    size_t capacity;     /* steps (T * B) the per-step arrays hold */
    size_t *step_row;    /* (T, B) the row of each valid step; REEL_NO_ROW at padding */
    uint32_t *token;     /* (U) */
    size_t *sequence;    /* (U) the sequence whose mask the row carries (the first one it appears in) */
    size_t vocab;        /* V */
    uint64_t *stamp;     /* (V) the generation in which token_row[v] was set */
    size_t *token_row;   /* (V) */
    uint64_t generation;
} reel_embedding_rows;
void reel_embedding_rows_init(reel_embedding_rows *rows, size_t vocab);
/* Makes room for batches of up to `steps` (T * B) steps. */
void reel_embedding_rows_reserve(reel_embedding_rows *rows, size_t steps);
void reel_embedding_rows_free(reel_embedding_rows *rows);
/* out (U, E) the distinct rows (weight row times the sequence's mask when mask is not NULL); row_mask
 * (T, B) 1 at valid steps; ids (total tokens), offsets (B+1), weight (V, E), mask (B, E) or NULL.
 * out must hold T * B rows (the case of every step distinct). */
void reel_embedding_rows_forward(reel_embedding_rows *rows, float *out, uint8_t *row_mask, const uint32_t *ids,
                                 const size_t *offsets, const float *weight, const float *mask, size_t T, size_t B,
                                 size_t E);
/* dweight (V, E) += dout (U, E) through the same mask: only the rows of the batch's tokens change. */
void reel_embedding_rows_backward(const reel_embedding_rows *rows, float *dweight, const float *dout,
                                  const float *mask, size_t E);
/* For a caller that computed something per row (X values each, e.g. the rows' input projection):
 * to_steps copies row values (U, X) to steps (count, X), whose row q is the padded position positions[q]
 * (a valid step: for example the packed positions of a reel_packing); sum_steps is its gradient: row
 * values (U, X) = the sum over each row's positions of steps (count, X). */
void reel_embedding_rows_to_steps(const reel_embedding_rows *rows, float *steps, const float *row_values, size_t X,
                                  const size_t *positions, size_t count);
void reel_embedding_rows_sum_steps(const reel_embedding_rows *rows, float *row_values, const float *steps, size_t X,
                                   const size_t *positions, size_t count);

/* ---- linear.c: out = inp . weight^T + bias (reel_gemm: OpenBLAS in fp32, oneDNN in bf16) ---- */
/* out (B, OC), inp (B, C), weight (OC, C), bias (OC) or NULL */
void reel_linear_forward(float *out, const float *inp, const float *weight, const float *bias, size_t B, size_t C,
                         size_t OC);
/* dinp (B, C) += dout . weight; dweight (OC, C) += dout^T . inp; dbias (OC) += column sums of dout;
 * each skipped when its pointer is NULL. dout (B, OC) */
void reel_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                          const float *weight, size_t B, size_t C, size_t OC);

/* ---- batchnorm.c: batch normalisation over the rows of the GLOBAL batch (all ranks) ---- */
typedef struct reel_batchnorm_cache {
    float *xhat;    /* (B, C) normalised input */
    float *inv_std;     /* (C) 1 / sqrt(var + eps) of the global batch */
    double *scratch;    /* (2*C + 1) reduction buffer */
    double global_rows; /* rows in the global batch, set by the training forward */
} reel_batchnorm_cache;
/* Training mode: mean and biased variance over the global batch; running_mean/running_var (C) move
 * towards them by momentum (the running variance uses the unbiased estimate, as PyTorch does).
 * out (B, C), inp (B, C), gamma (C), beta (C); row_mask (B) or NULL: rows with mask 0 (padding) take no
 * part in the statistics, output 0 and get no gradient. running_mean = running_var = NULL leaves the
 * running statistics alone. Every rank must call it, even with B = 0. */
void reel_batchnorm_forward_train(float *out, reel_batchnorm_cache *cache, const float *inp, const float *gamma,
                                  const float *beta, float *running_mean, float *running_var, const uint8_t *row_mask,
                                  size_t B, size_t C, float momentum, float eps, const reel_comm *comm);
/* Evaluation mode: normalises with the running statistics; purely local. */
void reel_batchnorm_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                                 const float *running_mean, const float *running_var, size_t B, size_t C, float eps);
/* dinp (B, C) += ; dgamma, dbeta (C) += this rank's share; dout (B, C); row_mask as in forward. Every
 * rank must call it. */
void reel_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                             const reel_batchnorm_cache *cache, const float *gamma, const uint8_t *row_mask, size_t B,
                             size_t C, const reel_comm *comm);

/* ---- conv_maxpool.c: a 1-D convolution over each document's tokens, ReLU, max over positions ---- */
/* Kim (2014)'s text CNN, one filter width w. Documents are the ragged rows of x: document b is tokens
 * offsets[b] .. offsets[b + 1] - 1, N = offsets[B]. Window t of a document reads its tokens t .. t + w - 1
 * (one window, zeros past the end, when it is shorter than w; none when it is empty, which pools to 0).
 * pooled (B, F) = max over windows of relu(bias + sum_k x[t + k] . weight[k F + f]);
 * argmax (B, F) the winning window (first on ties; SIZE_MAX for an empty document);
 * scratch (N, w F) overwritten; x (N, E); weight (w F, E): block k holds the weights of a window's k-th
 * token; bias (F). */
void reel_conv_maxpool_forward(float *pooled, size_t *argmax, float *scratch, const float *x, const size_t *offsets,
                               size_t B, size_t E, const float *weight, const float *bias, size_t w, size_t F);
/* dx (N, E) += (skipped when NULL), dweight (w F, E) +=, dbias (F) += the gradients from dpooled (B, F),
 * through the forward's pooled (B, F) and argmax; scratch (N, w F) overwritten; the rest as forward. */
void reel_conv_maxpool_backward(float *dx, float *dweight, float *dbias, const float *dpooled, const float *pooled,
                                const size_t *argmax, float *scratch, const float *x, const size_t *offsets, size_t B,
                                size_t E, const float *weight, size_t w, size_t F);

/* ---- relu.c ---- */
/* out (N) = max(inp, 0); inp (N) */
void reel_relu_forward(float *out, const float *inp, size_t N);
/* dinp (N) += dout where inp > 0 */
void reel_relu_backward(float *dinp, const float *dout, const float *inp, size_t N);

/* ---- dropout.c: inverted dropout with masks drawn per sample from the counter-based generator ---- */
/* mask (B, C): 0 with probability p, else 1/(1-p); row b keyed by (seed, epoch, sample_index[b], layer),
 * so a sample's mask does not depend on which rank holds it or where it sits in the batch. */
void reel_dropout_mask(float *mask, const uint64_t *sample_index, size_t B, size_t C, float p, uint64_t seed,
                       uint64_t epoch, uint32_t layer);
/* Locked dropout: one mask row per sequence, the same at every time step.
 * out (T, B, D) = inp (T, B, D) * mask (B, D) broadcast over t */
void reel_locked_dropout_forward(float *out, const float *inp, const float *mask, size_t T, size_t B, size_t D);
/* dinp (T, B, D) += dout * mask */
void reel_locked_dropout_backward(float *dinp, const float *dout, const float *mask, size_t T, size_t B, size_t D);
/* out (N) = inp * mask */
void reel_dropout_forward(float *out, const float *inp, const float *mask, size_t N);
/* dinp (N) += dout * mask */
void reel_dropout_backward(float *dinp, const float *dout, const float *mask, size_t N);

/* ---- loss_bce.c: binary cross-entropy on logits ---- */
/* Returns the SUM over the B rows of -[y log s(z) + (1-y) log(1-s(z))], computed stably.
 * dlogits (B) = scale * (sigmoid(z) - y) when not NULL (scale = 1 / global batch size for a mean loss).
 * logits (B), labels (B) in {0, 1}. */
double reel_bce_logits(float *dlogits, const float *logits, const float *labels, size_t B, float scale);

/* ---- loss_softmax.c: softmax cross-entropy over K classes ---- */
/* Returns the SUM over the B rows of -log softmax(logits[b])[labels[b]], computed stably.
 * dlogits (B, K) = scale * (softmax - onehot) when not NULL. logits (B, K), labels (B) hold class ids. */
double reel_softmax_ce(float *dlogits, const float *logits, const float *labels, size_t B, size_t K, float scale);

/* ---- loss_kl.c: KL divergence between two sets of logits' predictions ---- */
/* Returns the SUM over the B rows of KL(p || q), p and q the predictions of p_logits and q_logits (B, K):
 * softmax over K classes, or with K = 1 the Bernoulli sigmoid(z) of one logit (reel's two-class head).
 * dq (B, K) = scale * (q - p) when not NULL: the gradient with respect to q_logits, p held constant (the
 * target of virtual adversarial training). */
double reel_kl_logits(float *dq, const float *p_logits, const float *q_logits, size_t B, size_t K, float scale);

/* ---- decoder.c: linear layer to K classes fused with softmax cross-entropy, a slice of rows at a time ---- */
/* Floats of scratch that reel_decoder_softmax needs for slices of slice_rows rows. */
size_t reel_decoder_scratch_floats(size_t slice_rows, size_t D, size_t K);
/* Returns the SUM over the valid rows of -log softmax(features[n] . weight^T + bias)[targets[n]]; adds to
 * *correct (when not NULL) the rows whose first largest logit is the target's.
 * features (N, D), weight (K, D), bias (K) or NULL, targets (N) each < K, row_mask (N): 1 at valid rows, or NULL
 * for all. When dfeatures is not NULL (training): dfeatures (N, D) = scale * the gradient (0 at padded
 * rows), dweight (K, D) += and dbias (K) += (dbias may be NULL). Never holds more than slice_rows rows
 * of logits (scratch: reel_decoder_scratch_floats floats; slice_rows <= 4096). */
double reel_decoder_softmax(float *dfeatures, float *dweight, float *dbias, double *correct, const float *features,
                            const float *weight, const float *bias, const uint32_t *targets, const uint8_t *row_mask,
                            size_t N, size_t D, size_t K, float scale, float *scratch, size_t slice_rows);

/* The sampled softmax (Jean et al. 2015, as TensorFlow's sampled_softmax_loss), a cheaper training
 * objective: S candidate classes are drawn for a whole batch from q, the log-uniform distribution over
 * class ids (q(k) = log((k+2)/(k+1)) / log(K+1): ids are sorted by frequency); each row's logits are its
 * target's and the candidates', each minus log(S q(id)); a candidate equal to the row's target is left
 * out. The loss is -log softmax over those logits at the target: a biased estimate of the full
 * softmax's loss (higher or lower), so evaluation always uses the full one. Only the target's and the
 * candidates' weight rows get gradient. */
/* candidates (S) drawn from (seed, epoch, step), the same on every rank; log_expected (S) = log(S q(id)) */
void reel_sampled_candidates(uint32_t *candidates, float *log_expected, size_t S, size_t K, uint64_t seed,
                             uint64_t epoch, uint64_t step);
/* q(k) for K classes */
double reel_sampled_probability(size_t k, size_t K);
size_t reel_sampled_scratch_floats(size_t slice_rows, size_t D, size_t S);
/* Returns the SUM over the valid rows of the sampled loss; dfeatures (N, D) = scale * its gradient (0 at
 * padded rows), dweight (K, D) += and dbias (K) += (may be NULL) on the rows of the targets and the
 * candidates. Shapes as reel_decoder_softmax; candidates and log_expected (S). */
double reel_decoder_sampled(float *dfeatures, float *dweight, float *dbias, const float *features, const float *weight,
                            const float *bias, const uint32_t *targets, const uint8_t *row_mask, size_t N, size_t D,
                            size_t K, const uint32_t *candidates, const float *log_expected, size_t S, float scale,
                            float *scratch, size_t slice_rows);

/* ---- pool.c: pooling over the valid time steps of each sequence ---- */
typedef enum reel_pool_mode {
    REEL_POOL_MAX = 0,
    REEL_POOL_MEAN = 1,
    REEL_POOL_LAST = 2,
    REEL_POOL_CONCAT = 3 /* ULMFiT's concat pooling: last, max and mean side by side, 3 D wide */
} reel_pool_mode;
/* The pooled width of D-wide outputs: D, or 3 D for concat. */
size_t reel_pool_width(reel_pool_mode mode, size_t D);
/* out (B, W) from seq (T, B, D) over steps t < lengths[b], W = reel_pool_width(mode, D); an empty sequence
 * gives zeros. max: argmax (B, D) records the winning step (first one on ties) for backward; mean; last:
 * columns [0, reverse_from) take step lengths[b] - 1 (where a forward direction ends), columns
 * [reverse_from, D) take step 0 (where a reverse direction ends); concat: [last | max | mean], each part
 * as its own mode computes it (argmax for its max part). */
void reel_pool_forward(reel_pool_mode mode, float *out, size_t *argmax, const float *seq, const size_t *lengths,
                       size_t T, size_t B, size_t D, size_t reverse_from);
/* Every prefix at once, for one direction (reverse_from = D): out (num_cuts, B, W), row (c, b) equal bit
 * for bit to reel_pool_forward over the first min(cuts[c], lengths[b]) steps (cuts[c] = 0: all of
 * them), from one sweep over each sequence (the running max, sum or last step read off at each cut) instead
 * of a sweep per cut. No argmax: evaluation only. */
void reel_pool_forward_cuts(reel_pool_mode mode, float *out, const float *seq, const size_t *lengths, const size_t *cuts,
                            size_t num_cuts, size_t T, size_t B, size_t D);
/* dseq (T, B, D) += the gradient of out from dout (B, W); padding gets none. */
void reel_pool_backward(reel_pool_mode mode, float *dseq, const float *dout, const size_t *argmax,
                        const size_t *lengths, size_t T, size_t B, size_t D, size_t reverse_from);

/* ---- recurrent.c: one direction of one recurrent layer (plain tanh RNN, GRU or LSTM) ---- */
/* Time-major sequences: row (t, b) of a (T, B, X) buffer is at (t * B + b) * X. Sequence b is valid for
 * t < lengths[b]. Past its length a sequence keeps its state: in the forward direction out[t] repeats the
 * last valid state; the reverse direction runs from t = T-1 down to 0, so it stays at the zero initial
 * state until it reaches the last valid token. Padding therefore changes no valid output and no gradient.
 * Gate order and formulas are PyTorch's (LSTM: i f g o; GRU: r z n with n = tanh(x W_in + b_in +
 * r * (h W_hn + b_hn))), so weights can be exchanged with it. G = gates: RNN 1, GRU 3, LSTM 4. */
typedef enum reel_cell { REEL_CELL_RNN = 0, REEL_CELL_GRU = 1, REEL_CELL_LSTM = 2 } reel_cell;
size_t reel_cell_gates(reel_cell cell);

/* Packed sequences. Padding every sequence of a batch to the longest and computing every row at every
 * step wastes most of the work on short, uneven texts, so the layer orders the batch's sequences by
 * length, longest first (ties in batch order): at step t the sequences still inside their document are
 * the first n[t] of that order, and every per-position buffer of the cache is packed, step t's n[t] rows
 * one after another (the layout of PyTorch's PackedSequence). The caller's tensors stay padded: the input
 * is gathered into the packed order and the output scattered back. When every sequence is T long the
 * two layouts are the same and nothing is copied. */
typedef struct reel_packing {
    size_t T, B, N;   /* steps, sequences, real positions (the sum of the lengths, each at most T) */
    size_t *order;    /* (B) the batch row of the i-th longest sequence */
    size_t *length;   /* (B) its length (at most T) */
    size_t *active;   /* (T) n[t]: sequences still inside their document at step t */
    size_t *offset;   /* (T + 1) packed position of step t's first row; offset[T] = N */
    size_t *padded;   /* (N) the padded position t * B + order[i] of packed position offset[t] + i */
    int identity;     /* every sequence is T long: packed positions are the padded ones */
    size_t capacity_T, capacity_B, capacity_N;
} reel_packing;

/* Orders the sequences of lengths (B) for T steps (lengths above T count as T). */
void reel_packing_build(reel_packing *pk, const size_t *lengths, size_t T, size_t B);
void reel_packing_free(reel_packing *pk);

typedef struct reel_recurrent_cache {
    reel_cell cell;
    size_t rows, B, H;   /* capacity: T * B <= rows, B <= B */
    reel_packing pack;   /* of the batch of the last forward (reel_recurrent_pack) */
    /* per real position, packed (N <= rows): */
    float *gates;        /* (N, G*H) activated gates, kept for backward */
    float *hidden_part;  /* GRU: (N, H) h W_hn + b_hn */
    float *cell_state;   /* LSTM: (N, H) c_t */
    float *h;            /* (N, H) outputs (unused when the packing is the identity: out is written directly) */
    float *h_prev;       /* (N, H) the state each position's step started from: its recurrent input */
    float *x, *dx;       /* (N, C) the input and its gradient (reel_recurrent_forward/backward; not identity) */
    size_t x_width;      /* C of x and dx */
    float *dgates_x;     /* (N, G*H) gradient of the input pre-activations (allocated by backward) */
    float *dgates_h;     /* (N, G*H) of the recurrent ones (GRU; the same buffer as dgates_x otherwise) */
    /* per sequence, in the packed order: */
    float *step;         /* (B, G*H) GRU: recurrent pre-activations of one step; LSTM/RNN: summed biases */
    float *dh, *dh_prev, *dc, *dc_prev, *zeros; /* (B, H) each */
    float *h0_packed, *c0_packed; /* (B, H) h0 and c0 in the packed order */
    float *c_last;       /* LSTM: (B, H), in batch order: each sequence's cell state after its last step in
                          * processing order (the initial one when it has no step), as out[T-1] is for h */
    /* The state before the first step in processing order, set by the caller before a forward: (B, H)
     * each, NULL for zeros (c0: LSTM only). Truncated backpropagation through time: backward uses h0 for
     * the gradient of w_hh but sends no gradient into it. */
    const float *h0, *c0;
    /* Called before each step of backward when not NULL, set by the caller after the allocation: lets work
     * the caller started earlier (the gradient exchange's buckets, reel_grad_hooks) move on while this
     * layer works, without the layer knowing what that work is. */
    void (*poll)(void *ctx);
    void *poll_ctx;
} reel_recurrent_cache;

/* Room for any batch of at most `rows` = T * B time steps and at most B sequences. */
void reel_recurrent_cache_alloc(reel_recurrent_cache *cache, reel_cell cell, size_t rows, size_t B, size_t H);
void reel_recurrent_cache_free(reel_recurrent_cache *cache);

/* out (T, B, H); inp (T, B, C); lengths (B); w_ih (G*H, C); w_hh (G*H, H); b_ih, b_hh (G*H);
 * reverse = 1 runs from the end of each sequence to its start. The input projection followed by the steps
 * (the two functions below). */
void reel_recurrent_forward(reel_recurrent_cache *cache, float *out, const float *inp, const size_t *lengths,
                            const float *w_ih, const float *w_hh, const float *b_ih, const float *b_hh, size_t T,
                            size_t B, size_t C, size_t H, int reverse);
/* dinp (T, B, C) += (skipped when NULL); dw_ih, dw_hh, db_ih, db_hh +=; dout (T, B, H) is the gradient of
 * the loss with respect to out. Must follow the forward of the same batch (it reads out and the cache). */
void reel_recurrent_backward(reel_recurrent_cache *cache, float *dinp, float *dw_ih, float *dw_hh, float *db_ih,
                             float *db_hh, const float *dout, const float *out, const float *inp,
                             const size_t *lengths, const float *w_ih, const float *w_hh, size_t T, size_t B,
                             size_t C, size_t H, int reverse);

/* The two halves, for a caller that computes the input projection itself (the recurrent model does, for
 * its first layer, once per distinct token instead of once per position).
 * pack: orders the batch (cache->pack) before the caller fills cache->gates.
 * bias (G*H) = the bias that belongs in the input projection: b_ih + b_hh for LSTM and RNN, b_ih for GRU.
 * forward_steps: cache->gates (N, G*H) must hold, at packed position q, inp[pack.padded[q]] . w_ih^T + that
 * bias on entry; runs the steps.
 * backward_steps: dw_hh, db_ih, db_hh +=, and leaves in cache->dgates_x (N, G*H) the gradient of the
 * input pre-activations at each packed position, from which dinp = dgates_x . w_ih, dw_ih = dgates_x^T . inp. */
void reel_recurrent_pack(reel_recurrent_cache *cache, const size_t *lengths, size_t T, size_t B);
void reel_recurrent_input_bias(float *bias, reel_cell cell, const float *b_ih, const float *b_hh, size_t H);
void reel_recurrent_forward_steps(reel_recurrent_cache *cache, float *out, const size_t *lengths, const float *w_hh,
                                  const float *b_hh, size_t T, size_t B, size_t H, int reverse);
void reel_recurrent_backward_steps(reel_recurrent_cache *cache, float *dw_hh, float *db_ih, float *db_hh,
                                   const float *dout, const float *out, const size_t *lengths, const float *w_hh,
                                   size_t T, size_t B, size_t H, int reverse);

/* ==== Transformer layers (GPT-style decoder) ==== */
/* Extra letters: N = rows (positions) a row-wise kernel sees, T = positions of a window, P = rows of the
 * position table. Same conventions as above: backward ACCUMULATES into dinp and parameter gradients. */

/* ---- layernorm.c: layer normalisation over the last dimension (PyTorch's layer_norm, biased variance) ---- */
#define REEL_LAYERNORM_EPS 1e-5f /* PyTorch's default */
/* out (N, C) = (inp - mean) * rstd * gamma + beta, row by row; inp (N, C), gamma (C), beta (C);
 * mean (N) and rstd (N) = 1 / sqrt(var + eps) are kept for the backward. out may not alias inp. */
void reel_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                            const float *beta, size_t N, size_t C, float eps);
/* dinp (N, C) +=, dgamma (C) +=, dbeta (C) += from dout (N, C); inp, mean, rstd as the forward left them. */
void reel_layernorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                             const float *mean, const float *rstd, const float *gamma, size_t N, size_t C);

/* ---- gelu.c: GELU in GPT-2's tanh form, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as PyTorch's
 * gelu(approximate='tanh') (computed as x sigmoid(2 u), accurate on the negative tail too: see gelu.c) ---- */
/* out (N), inp (N); out may be inp */
void reel_gelu_forward(float *out, const float *inp, size_t N);
/* dinp (N) += dout (N) * gelu'(inp (N)) */
void reel_gelu_backward(float *dinp, const float *dout, const float *inp, size_t N);

/* ---- position.c: learned position embeddings added to the token embeddings ---- */
/* out (B, T, C) = tok (B, T, C) + wpe[pos0 + t] for t < T; wpe (P, C) with pos0 + T <= P (the caller
 * checks: the kernel does not know P). pos0 > 0 is a window that starts later in its text. out may be tok. */
void reel_position_forward(float *out, const float *tok, const float *wpe, size_t pos0, size_t B, size_t T, size_t C);
/* dtok (B, T, C) += dout (B, T, C) when dtok is not NULL; dwpe (P, C) rows pos0 .. pos0+T-1 += the sum of
 * dout over the batch. */
void reel_position_backward(float *dtok, float *dwpe, const float *dout, size_t pos0, size_t B, size_t T, size_t C);

/* ---- rotary.c: rotary position embeddings (RoPE, Su et al. 2021) on the queries and keys of each head ----
 * Pairing: GPT-NeoX's and LLaMA's "rotate half" (as Hugging Face's LLaMA): a head's D values (D even) form
 * the D/2 pairs (x_i, x_{i + D/2}), i < D/2, and at position pos pair i turns by theta_i = pos base^(-2i/D):
 *     y_i = x_i cos theta_i - x_{i+D/2} sin theta_i,   y_{i+D/2} = x_i sin theta_i + x_{i+D/2} cos theta_i.
 * (GPT-J and the paper pair neighbours (x_{2i}, x_{2i+1}): a permutation of the head's columns, so the
 * same family of models, but other numbers for given weights.) A query at position m and a key at n then
 * score q . R(n - m) k: attention sees only their distance. The angles are tabulated once per model. */
/* cos_table (P, D/2), sin_table (P, D/2) written: row pos, column i = cos, sin of pos base^(-2i/D),
 * computed in double and rounded once. */
void reel_rotary_tables(float *cos_table, float *sin_table, size_t P, size_t D, double base);
/* x (B, T, ld) rotated IN PLACE: in row b * T + t, each of the first `heads` groups of D columns (head h at
 * columns h D ..; `heads` D <= ld), at position pos0[b] + t (pos0 NULL: t), for t < lengths[b] (lengths
 * NULL: all T); rows at padding are left as they are. The tables have pos0[b] + lengths[b] <= P rows (the
 * caller checks). The model passes its qkv rows (ld = 3C) with heads = 2 NH: the queries' and the keys'
 * heads, which lie side by side. */
void reel_rotary_forward(float *x, size_t ld, size_t heads, size_t D, const float *cos_table, const float *sin_table,
                         const size_t *pos0, const size_t *lengths, size_t B, size_t T);
/* dx (B, T, ld): the gradient with respect to the rotated values becomes, IN PLACE, the gradient with
 * respect to the values before the rotation (the inverse rotation: the map is orthogonal). The same rows
 * and arguments as the forward. Unlike the other kernels it transforms rather than accumulates: it has
 * no parameters, and the model's gradient buffer (dqkv) is turned where it lies. */
void reel_rotary_backward(float *dx, size_t ld, size_t heads, size_t D, const float *cos_table,
                          const float *sin_table, const size_t *pos0, const size_t *lengths, size_t B, size_t T);

#endif
