/* Compiled with -ffast-math (see cells.h and CMakeLists.txt). */
#include "cells.h"

#include <math.h>

/* Each kernel is built twice, for the x86-64-v3 level (AVX2 + FMA) and for baseline x86-64, and the
 * loader picks one by the CPU's features (GCC function multi-versioning): on AVX2 machines the gate loops run 8 lanes wide and call
 * glibc's 8-lane expf/tanhf, without the whole build having to assume AVX2 (-DREEL_NATIVE=ON does). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__AVX2__)
#define CELL_KERNEL __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CELL_KERNEL
#endif

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

CELL_KERNEL void reel_lstm_cell_forward(float *restrict g, const float *restrict c_prev, float *restrict c, float *restrict h,
                            size_t H) {
    for (size_t j = 0; j < H; j++) {
        float i_gate = sigmoid(g[j]), f_gate = sigmoid(g[H + j]);
        float g_gate = tanhf(g[2 * H + j]), o_gate = sigmoid(g[3 * H + j]);
        g[j] = i_gate, g[H + j] = f_gate, g[2 * H + j] = g_gate, g[3 * H + j] = o_gate;
        c[j] = f_gate * c_prev[j] + i_gate * g_gate;
        h[j] = o_gate * tanhf(c[j]);
    }
}

CELL_KERNEL void reel_gru_cell_forward(float *restrict g, const float *restrict r, const float *restrict h_prev,
                           float *restrict hn, float *restrict h, size_t H) {
    for (size_t j = 0; j < H; j++) {
        float r_gate = sigmoid(g[j] + r[j]), z_gate = sigmoid(g[H + j] + r[H + j]);
        hn[j] = r[2 * H + j];
        float n_gate = tanhf(g[2 * H + j] + r_gate * hn[j]);
        g[j] = r_gate, g[H + j] = z_gate, g[2 * H + j] = n_gate;
        h[j] = (1.0f - z_gate) * n_gate + z_gate * h_prev[j];
    }
}

CELL_KERNEL void reel_rnn_cell_forward(float *restrict g, float *restrict h, size_t H) {
    for (size_t j = 0; j < H; j++) {
        g[j] = tanhf(g[j]);
        h[j] = g[j];
    }
}

CELL_KERNEL void reel_lstm_cell_backward(float *restrict dgx, float *restrict dc_prev, const float *restrict dh,
                             const float *restrict dc, const float *restrict g, const float *restrict c,
                             const float *restrict c_prev, size_t H) {
    for (size_t j = 0; j < H; j++) {
        float i_gate = g[j], f_gate = g[H + j], g_gate = g[2 * H + j], o_gate = g[3 * H + j];
        float tanh_c = tanhf(c[j]);
        float dcell = dc[j] + dh[j] * o_gate * (1.0f - tanh_c * tanh_c);
        dgx[j] = dcell * g_gate * i_gate * (1.0f - i_gate);
        dgx[H + j] = dcell * c_prev[j] * f_gate * (1.0f - f_gate);
        dgx[2 * H + j] = dcell * i_gate * (1.0f - g_gate * g_gate);
        dgx[3 * H + j] = dh[j] * tanh_c * o_gate * (1.0f - o_gate);
        dc_prev[j] = dcell * f_gate;
    }
}

CELL_KERNEL void reel_gru_cell_backward(float *restrict dgx, float *restrict dgh, float *restrict dh_prev,
                            const float *restrict dh, const float *restrict g, const float *restrict hn,
                            const float *restrict h_prev, size_t H) {
    for (size_t j = 0; j < H; j++) {
        float r_gate = g[j], z_gate = g[H + j], n_gate = g[2 * H + j];
        float dn_pre = dh[j] * (1.0f - z_gate) * (1.0f - n_gate * n_gate);
        float dz_pre = dh[j] * (h_prev[j] - n_gate) * z_gate * (1.0f - z_gate);
        float dr_pre = dn_pre * hn[j] * r_gate * (1.0f - r_gate);
        dgx[j] = dgh[j] = dr_pre;
        dgx[H + j] = dgh[H + j] = dz_pre;
        dgx[2 * H + j] = dn_pre;
        dgh[2 * H + j] = dn_pre * r_gate;
        dh_prev[j] = dh[j] * z_gate;
    }
}

CELL_KERNEL void reel_rnn_cell_backward(float *restrict dgx, const float *restrict dh, const float *restrict g, size_t H) {
    for (size_t j = 0; j < H; j++) dgx[j] = dh[j] * (1.0f - g[j] * g[j]);
}
