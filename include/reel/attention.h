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
 * Not implemented: attention dropout (nanoGPT's default for pretraining at this scale is 0; a dropout
 * would draw its mask from reel_rng_block keyed by (seed, b, h, i, j) so the backward can regenerate it). */
#ifndef REEL_ATTENTION_H
#define REEL_ATTENTION_H

#include <stddef.h>

/* Floats of workspace the forward and the backward need for these shapes (the same buffer serves both). */
size_t reel_attention_scratch_floats(size_t B, size_t T, size_t C, size_t NH, size_t Bq, size_t Bk);

/* out     (B, T, C)   written: the attention of every head, zero at padding
 * lse     (B, NH, T)  written: log sum_j exp(s_ij) per query row, kept for the backward; 0 at padding
 * qkv     (B, T, 3C)
 * lengths (B) or NULL
 * scratch (reel_attention_scratch_floats(B, T, C, NH, Bq, Bk)) overwritten
 * NH divides C; Bq, Bk >= 1. */
void reel_attention_forward(float *out, float *lse, const float *qkv, const size_t *lengths, int causal, size_t B,
                            size_t T, size_t C, size_t NH, size_t Bq, size_t Bk, float *scratch);

/* dqkv    (B, T, 3C)  += the gradient of sum(out * dout) with respect to qkv; rows at padding unchanged
 * dout    (B, T, C)   rows at padding are ignored
 * out     (B, T, C), lse (B, NH, T): the forward's results for this qkv
 * the rest as for the forward: the same causal and lengths; the block sizes may differ from the forward's. */
void reel_attention_backward(float *dqkv, const float *dout, const float *out, const float *lse, const float *qkv,
                             const size_t *lengths, int causal, size_t B, size_t T, size_t C, size_t NH, size_t Bq,
                             size_t Bk, float *scratch);

#endif
