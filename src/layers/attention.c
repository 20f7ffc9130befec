/* Multi-head self-attention in blocks with an online softmax (see include/reel/attention.h). */
#include "reel/attention.h"

#include <math.h>
#include <string.h>

#include "reel/gemm.h"
#include "reel/rng.h"
#include "vecmath.h"

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* Keys of block [j0, j0 + nk) that query i may see: all of them without the causal mask, else those
 * j <= i (none when the block starts after i). Keys at padding never enter a block. */
static size_t visible_keys(int causal, size_t i, size_t j0, size_t nk) {
    if (!causal) return nk;
    return i < j0 ? 0 : min_size(nk, i - j0 + 1);
}

/* The dropout mask of one query row, drawn as attention.h documents: key blocks of 4 per draw, the last
 * draw kept so a row visited in order costs one draw per 4 keys. */
typedef struct {
    const reel_attention_dropout *d;
    uint32_t purpose, sample, row; /* the counter's words but the key block: row = (h W + i) ceil(W / 4) */
    size_t block;                  /* the key block the words are of; SIZE_MAX: none yet */
    uint32_t words[4];
    float keep;                    /* 1 / (1 - p) */
} mask_row;

static void mask_row_start(mask_row *m, const reel_attention_dropout *d, size_t b, size_t h, size_t i) {
    m->d = d;
    m->purpose = (uint32_t)REEL_RNG_ATTENTION_DROPOUT | (d->layer << 8);
    m->sample = (uint32_t)d->sample_index[b];
    m->row = (uint32_t)((h * d->positions + i) * ((d->positions + 3) / 4));
    m->block = (size_t)-1;
    m->keep = 1.0f / (1.0f - d->p);
}

/* M_ij / (1 - p) for key j of the row: 0 (dropped) or 1 / (1 - p). */
static float mask_at(mask_row *m, size_t j) {
    if (j / 4 != m->block) {
        m->block = j / 4;
        reel_rng_block(m->words, m->d->seed, m->purpose, m->d->epoch, m->sample, m->row + (uint32_t)m->block);
    }
    return reel_rng_unit_float(m->words[j % 4]) < m->d->p ? 0.0f : m->keep;
}

size_t reel_attention_scratch_floats(size_t B, size_t T, size_t C, size_t NH, size_t Bq, size_t Bk) {
    /* a block of scores (probabilities) and one of their gradients, the running max and sum of a query
     * block (forward), D_i of one sequence's head (backward) */
    return 2 * Bq * Bk + 2 * Bq + T;
}

/* One sequence of L tokens, every head: Q, K and V rows at qkv (stride 3C), out rows at out (stride C),
 * head h's log-sum-exp at lse + h lse_stride. b: the sequence's index for the dropout mask's key. The
 * padded and the packed layouts below only differ in where a sequence's rows and statistics are. */
static void forward_one(float *out, float *lse, size_t lse_stride, const float *qkv, size_t L, size_t b, int causal,
                        size_t C, size_t NH, size_t Bq, size_t Bk, const reel_attention_dropout *dropout,
                        float *scratch) {
    size_t D = C / NH, ld = 3 * C;
    float scale = 1.0f / sqrtf((float)D);
    float *S = scratch, *run_max = S + Bq * Bk, *run_sum = run_max + Bq;
    for (size_t h = 0; h < NH; h++) {
        const float *Q = qkv + h * D, *K = Q + C, *V = Q + 2 * C;
        float *O = out + h * D, *head_lse = lse + h * lse_stride;
        for (size_t i0 = 0; i0 < L; i0 += Bq) {
            size_t nq = min_size(Bq, L - i0);
            for (size_t r = 0; r < nq; r++) {
                run_max[r] = -INFINITY;
                run_sum[r] = 0;
                memset(O + (i0 + r) * C, 0, D * sizeof(float));
            }
            /* the last query of the block sees keys up to itself: later key blocks are all masked */
            size_t key_end = causal ? i0 + nq : L;
            for (size_t j0 = 0; j0 < key_end; j0 += Bk) {
                size_t nk = min_size(Bk, key_end - j0);
                reel_gemm(0, 1, nq, nk, D, scale, Q + i0 * ld, ld, K + j0 * ld, ld, 0, S, nk);
                for (size_t r = 0; r < nq; r++) {
                    float *row = S + r * nk;
                    size_t seen = visible_keys(causal, i0 + r, j0, nk);
                    if (seen == 0) {
                        memset(row, 0, nk * sizeof(float));
                        continue;
                    }
                    float block_max = reel_row_max(row, seen);
                    float new_max = block_max > run_max[r] ? block_max : run_max[r];
                    float block_sum = reel_row_exp_sum(row, seen, new_max);
                    memset(row + seen, 0, (nk - seen) * sizeof(float));
                    if (new_max > run_max[r]) {
                        /* the earlier blocks' exponentials were taken against a smaller max: bring
                         * their sum and their weighted values to the new one */
                        float factor = expf(run_max[r] - new_max);
                        run_sum[r] *= factor;
                        reel_row_scale(O + (i0 + r) * C, D, factor);
                        run_max[r] = new_max;
                    }
                    run_sum[r] += block_sum;
                    if (dropout) {
                        /* the sum above (the softmax's normaliser) is of the undropped weights; the
                         * values are weighted by the dropped ones */
                        mask_row mask;
                        mask_row_start(&mask, dropout, b, h, i0 + r);
                        for (size_t c = 0; c < seen; c++) row[c] *= mask_at(&mask, j0 + c);
                    }
                }
                reel_gemm(0, 0, nq, D, nk, 1, S, nk, V + j0 * ld, ld, 1, O + i0 * C, C);
            }
            for (size_t r = 0; r < nq; r++) {
                /* every query sees at least itself, so the sum is at least exp(0) = 1 */
                reel_row_scale(O + (i0 + r) * C, D, 1.0f / run_sum[r]);
                head_lse[i0 + r] = run_max[r] + logf(run_sum[r]);
            }
        }
    }
}

void reel_attention_forward(float *out, float *lse, const float *qkv, const size_t *lengths, int causal, size_t B,
                            size_t T, size_t C, size_t NH, size_t Bq, size_t Bk, const reel_attention_dropout *dropout,
                            float *scratch) {
    if (dropout && dropout->p <= 0) dropout = NULL;
    for (size_t b = 0; b < B; b++) {
        size_t L = lengths ? min_size(lengths[b], T) : T;
        if (L < T) memset(out + (b * T + L) * C, 0, (T - L) * C * sizeof(float));
        for (size_t h = 0; h < NH; h++)
            for (size_t t = L; t < T; t++) lse[(b * NH + h) * T + t] = 0;
        forward_one(out + b * T * C, lse + b * NH * T, T, qkv + b * T * 3 * C, L, b, causal, C, NH, Bq, Bk, dropout,
                    scratch);
    }
}

void reel_attention_forward_packed(float *out, float *lse, const float *qkv, const size_t *offsets, int causal,
                                   size_t B, size_t C, size_t NH, size_t Bq, size_t Bk,
                                   const reel_attention_dropout *dropout, float *scratch) {
    if (dropout && dropout->p <= 0) dropout = NULL;
    for (size_t b = 0; b < B; b++) {
        size_t r = offsets[b] - offsets[0], L = offsets[b + 1] - offsets[b];
        forward_one(out + r * C, lse + r * NH, L, qkv + r * 3 * C, L, b, causal, C, NH, Bq, Bk, dropout, scratch);
    }
}

/* One sequence's backward, its rows and statistics placed as forward_one's. */
static void backward_one(float *dqkv, const float *dout, const float *out, const float *lse, size_t lse_stride,
                         const float *qkv, size_t L, size_t b, int causal, size_t C, size_t NH, size_t Bq, size_t Bk,
                         const reel_attention_dropout *dropout, float *scratch) {
    size_t D = C / NH, ld = 3 * C;
    float scale = 1.0f / sqrtf((float)D);
    float *P = scratch, *dP = P + Bq * Bk, *Di = dP + Bq * Bk + 2 * Bq;
    for (size_t h = 0; h < NH; h++) {
        const float *Q = qkv + h * D, *K = Q + C, *V = Q + 2 * C;
        const float *O = out + h * D, *dO = dout + h * D;
        const float *head_lse = lse + h * lse_stride;
        float *dQ = dqkv + h * D, *dK = dQ + C, *dV = dQ + 2 * C;
        /* d softmax: ds_ij = p_ij (dp_ij - sum_k p_ik dp_ik), and sum_k p_ik dp_ik = dout_i . out_i */
        for (size_t i = 0; i < L; i++) {
            float s = 0;
            for (size_t d = 0; d < D; d++) s += dO[i * C + d] * O[i * C + d];
            Di[i] = s;
        }
        /* key blocks outside: a key block's dK and dV are complete after one pass over the queries */
        for (size_t j0 = 0; j0 < L; j0 += Bk) {
            size_t nk = min_size(Bk, L - j0);
            /* with the causal mask, queries before j0 see none of these keys */
            for (size_t i0 = causal ? j0 / Bq * Bq : 0; i0 < L; i0 += Bq) {
                size_t nq = min_size(Bq, L - i0);
                reel_gemm(0, 1, nq, nk, D, scale, Q + i0 * ld, ld, K + j0 * ld, ld, 0, P, nk);
                for (size_t r = 0; r < nq; r++) {
                    float *row = P + r * nk;
                    size_t seen = visible_keys(causal, i0 + r, j0, nk);
                    reel_row_exp_sum(row, seen, head_lse[i0 + r]);
                    memset(row + seen, 0, (nk - seen) * sizeof(float));
                }
                reel_gemm(0, 1, nq, nk, D, 1, dO + i0 * C, C, V + j0 * ld, ld, 0, dP, nk);
                if (dropout) {
                    /* out_i = sum_j p_ij z_ij v_j (z the mask over 1 - p): the gradient of p_ij is
                     * z_ij dout_i . v_j, and sum_j p_ij z_ij dout_i . v_j is still dout_i . out_i = D_i;
                     * dV takes the dropped weights p_ij z_ij */
                    for (size_t r = 0; r < nq; r++) {
                        mask_row mask;
                        mask_row_start(&mask, dropout, b, h, i0 + r);
                        size_t seen = visible_keys(causal, i0 + r, j0, nk);
                        for (size_t c = 0; c < seen; c++) {
                            float z = mask_at(&mask, j0 + c), p = P[r * nk + c];
                            dP[r * nk + c] = p * (z * dP[r * nk + c] - Di[i0 + r]);
                            P[r * nk + c] = p * z;
                        }
                        for (size_t c = seen; c < nk; c++) dP[r * nk + c] = 0;
                    }
                } else {
                    for (size_t r = 0; r < nq; r++)
                        for (size_t c = 0; c < nk; c++) dP[r * nk + c] = P[r * nk + c] * (dP[r * nk + c] - Di[i0 + r]);
                }
                reel_gemm(1, 0, nk, D, nq, 1, P, nk, dO + i0 * C, C, 1, dV + j0 * ld, ld);
                reel_gemm(0, 0, nq, D, nk, scale, dP, nk, K + j0 * ld, ld, 1, dQ + i0 * ld, ld);
                reel_gemm(1, 0, nk, D, nq, scale, dP, nk, Q + i0 * ld, ld, 1, dK + j0 * ld, ld);
            }
        }
    }
}

void reel_attention_backward(float *dqkv, const float *dout, const float *out, const float *lse, const float *qkv,
                             const size_t *lengths, int causal, size_t B, size_t T, size_t C, size_t NH, size_t Bq,
                             size_t Bk, const reel_attention_dropout *dropout, float *scratch) {
    if (dropout && dropout->p <= 0) dropout = NULL;
    for (size_t b = 0; b < B; b++) {
        size_t L = lengths ? min_size(lengths[b], T) : T;
        backward_one(dqkv + b * T * 3 * C, dout + b * T * C, out + b * T * C, lse + b * NH * T, T, qkv + b * T * 3 * C,
                     L, b, causal, C, NH, Bq, Bk, dropout, scratch);
    }
}

void reel_attention_backward_packed(float *dqkv, const float *dout, const float *out, const float *lse,
                                    const float *qkv, const size_t *offsets, int causal, size_t B, size_t C, size_t NH,
                                    size_t Bq, size_t Bk, const reel_attention_dropout *dropout, float *scratch) {
    if (dropout && dropout->p <= 0) dropout = NULL;
    for (size_t b = 0; b < B; b++) {
        size_t r = offsets[b] - offsets[0], L = offsets[b + 1] - offsets[b];
        backward_one(dqkv + r * 3 * C, dout + r * C, out + r * C, lse + r * NH, L, qkv + r * 3 * C, L, b, causal, C, NH,
                     Bq, Bk, dropout, scratch);
    }
}
