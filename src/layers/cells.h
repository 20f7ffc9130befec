/* Element-wise gate math of the recurrent cells for one sequence and one step (private to recurrent.c).
 * src/layers/cells.c is compiled with -ffast-math: that is what makes GCC call glibc's vectorised expf and
 * tanhf (libmvec), which cut the LSTM's step time by a fifth. These loops are purely element-wise, so the
 * flag reorders no sums; results are within a few ulp of the scalar functions. cells.c builds an AVX2 and
 * a baseline version of each kernel: ranks on one CPU type compute identical bits; a mixed cluster may
 * differ in the last bits of the forward values (never in the parameters: every rank applies the same
 * all-reduced step).
 *
 * Forward: g holds the pre-activations on entry and the activated gates on exit. LSTM and RNN: the whole
 * sum x . W_ih^T + b_ih + h_prev . W_hh^T + b_hh. GRU: only the input part x . W_ih^T + b_ih, with r the
 * recurrent part h_prev . W_hh^T + b_hh (the reset gate scales its n block). H units each. */
#ifndef REEL_CELLS_H
#define REEL_CELLS_H

#include <stddef.h>

/* g (4H: i f g o); c_prev, c, h (H) */
void reel_lstm_cell_forward(float *g, const float *c_prev, float *c, float *h, size_t H);
/* g, r (3H: r z n); h_prev, hn, h (H); hn receives the recurrent part of n, h W_hn + b_hn */
void reel_gru_cell_forward(float *g, const float *r, const float *h_prev, float *hn, float *h, size_t H);
/* g (H); h (H) */
void reel_rnn_cell_forward(float *g, float *h, size_t H);

/* Backward for one sequence and step: dh (H) is the gradient of the step's output h (and dc (H) of its
 * cell state); writes dgx and dgh, the gradients of the input and recurrent pre-activations (the same
 * for LSTM and RNN), and dh_prev / dc_prev (H), the parts that do not go through W_hh. */
void reel_lstm_cell_backward(float *dgx, float *dc_prev, const float *dh, const float *dc, const float *g,
                             const float *c, const float *c_prev, size_t H);
void reel_gru_cell_backward(float *dgx, float *dgh, float *dh_prev, const float *dh, const float *g, const float *hn,
                            const float *h_prev, size_t H);
void reel_rnn_cell_backward(float *dgx, const float *dh, const float *g, size_t H);

#endif
