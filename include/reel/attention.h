/* reel/attention.h: multi-head self-attention computed in blocks with an online softmax (FlashAttention-2's
 * recurrence), forward and backward, without ever holding the (T, T) scores of a sequence.
 *
 * Layout: BATCH-MAJOR rows, row b * T + t is token t of sequence b (attention works within a sequence,
 * unlike the recurrent kernels' time-major t * B + b). Dimension letters: B sequences, T tokens per
 * sequence, C model width, NH heads, D = C / NH per head, Bq and Bk the query and key block sizes.
 * qkv (B, T, 3C) holds q, k and v side by side: q of head h at columns h D .. h D + D - 1, k at C + h D ..,
 * v at 2C + h D ..; out (B, T, C) holds the heads concatenated (head h at columns h D ..). Scores are
 * q . k / sqrt(D).
 *
 * Packed layout (the _packed entry points, FlashAttention's "varlen"): the sequences' tokens one after
 * another without padding, sequence b at rows offsets[b] - offsets[0] .. offsets[b + 1] - offsets[0] - 1 of
 * qkv (N, 3C), out (N, C) and dout, N = offsets[B] - offsets[0]; lse (N NH) holds head h of sequence b
 * at (offsets[b] - offsets[0]) NH + h L_b + i (L_b its length). A sequence is computed by the very same
 * code in both layouts (so with every length T the two agree bit for bit, row for row), and i, j in the
 * dropout key below are positions within the sequence, so its results do not depend on the layout.
 *
 * Masks: with causal, token i sees tokens j <= i; without, every token of its sequence (the encoder of a
 * classifier). lengths (B), or NULL for all T: tokens t >= lengths[b] are padding, never attended to;
 * their outputs are zero, their log-sum-exp is 0 and they get no gradient (nor does their dout count).
 *
 * How: for each sequence, head and block of Bq queries, the key blocks are visited in order keeping a
 * running max m and sum l of exp(s - m) per query row; the output block in `out` is rescaled by
 * exp(m_old - m_new) whenever the max grows, and divided by l at the end. Key blocks wholly above the
 * diagonal are skipped in the causal case. The forward keeps only lse = m + log(l) per row (B, NH, T); the
 * backward visits key blocks outside and query blocks inside, recomputes each block's probabilities as
 * exp(s - lse), and uses D_i = dout_i . out_i for the softmax's gradient, so it too holds only one block of
 * scores. Every product is reel_gemm (fp32 or bf16) reading Q, K and V in place through the leading
 * dimension 3C and accumulating straight into out / dqkv through C / 3C: nothing is copied.
 *
 * Workspace: reel_attention_scratch_floats() floats, given by the caller: two Bq x Bk blocks, 2 Bq row
 * statistics and T values of D_i; it grows with T only through D_i, never as T^2.
 * Blocks of 64 to 128 measured fastest here (bench_kernels --attention 1): 128 in bf16, whose products pay
 * a rounding of both operands and a oneDNN call each, so fewer and larger ones pay.
 *
 * Dropout on the attention weights (training; NULL or p = 0: none), FlashAttention-2's: with z_ij the mask
 * M_ij / (1 - p), M_ij in {0, 1}, out_i = sum_j p_ij z_ij v_j, where p_ij is the softmax of the undropped
 * scores (the normaliser and lse are the undropped ones). The backward regenerates the same mask: dv_j
 * takes p_ij z_ij, the gradient of p_ij is z_ij dout_i . v_j, and D_i = dout_i . out_i still equals
 * sum_j p_ij (its gradient), so nothing else changes. The mask is a function of its key alone, never of
 * the rank, the batch's composition or padding, or the block sizes:
 *   weight (i, j) of head h of sequence b (i the query's position in its sequence, j the key's) is dropped
 *   when reel_rng_unit_float(w[j % 4]) < p, where w = reel_rng_block(seed,
 *   REEL_RNG_ATTENTION_DROPOUT | layer << 8, epoch, (uint32_t)sample_index[b],
 *   (h W + i) ceil(W / 4) + j / 4), W = `positions` (i, j < W; the caller keeps NH W ceil(W / 4) <= 2^32).
 * It costs one Philox block per 4 weights, in the forward and again in the backward. */
#ifndef REEL_ATTENTION_H
#define REEL_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

/* What the kernels need to drop attention weights (see above). */
typedef struct reel_attention_dropout {
    float p;                      /* the probability of dropping a weight: 0 <= p < 1 (0: none) */
    uint64_t seed;                /* the model's seed */
    uint32_t epoch;               /* the batch's epoch */
    const uint64_t *sample_index; /* (B) each sequence's sample index */
    uint32_t layer;               /* the block (< 2^24) */
    size_t positions;             /* W: every position is below it (the model's max_context) */
} reel_attention_dropout;

/* Floats of workspace the forward and the backward need for these shapes (the same buffer serves both). */
size_t reel_attention_scratch_floats(size_t B, size_t T, size_t C, size_t NH, size_t Bq, size_t Bk);

/* out     (B, T, C)   written: the attention of every head, zero at padding
 * lse     (B, NH, T)  written: log sum_j exp(s_ij) per query row, kept for the backward; 0 at padding
 * qkv     (B, T, 3C)
 * lengths (B) or NULL
 * dropout NULL (none) or the mask's key (T <= dropout->positions)
 * scratch (reel_attention_scratch_floats(B, T, C, NH, Bq, Bk)) overwritten
 * NH divides C; Bq, Bk >= 1. */
void reel_attention_forward(float *out, float *lse, const float *qkv, const size_t *lengths, int causal, size_t B,
                            size_t T, size_t C, size_t NH, size_t Bq, size_t Bk, const reel_attention_dropout *dropout,
                            float *scratch);

/* dqkv    (B, T, 3C)  += the gradient of sum(out * dout) with respect to qkv; rows at padding unchanged
 * dout    (B, T, C)   rows at padding are ignored
 * out     (B, T, C), lse (B, NH, T): the forward's results for this qkv
 * the rest as for the forward: the same causal, lengths and dropout; the block sizes may differ from the
 * forward's. */
void reel_attention_backward(float *dqkv, const float *dout, const float *out, const float *lse, const float *qkv,
                             const size_t *lengths, int causal, size_t B, size_t T, size_t C, size_t NH, size_t Bq,
                             size_t Bk, const reel_attention_dropout *dropout, float *scratch);

/* The packed layout (see above): offsets (B + 1); scratch for T = the longest sequence. */
void reel_attention_forward_packed(float *out, float *lse, const float *qkv, const size_t *offsets, int causal,
                                   size_t B, size_t C, size_t NH, size_t Bq, size_t Bk,
                                   const reel_attention_dropout *dropout, float *scratch);
void reel_attention_backward_packed(float *dqkv, const float *dout, const float *out, const float *lse,
                                    const float *qkv, const size_t *offsets, int causal, size_t B, size_t C, size_t NH,
                                    size_t Bq, size_t Bk, const reel_attention_dropout *dropout, float *scratch);

#endif
