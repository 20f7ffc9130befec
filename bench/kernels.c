/* bench_kernels: times the language model's two big pieces alone, one process, for the figures in the
 * issue notes: the decoder fused with its softmax (forward + backward) and one LSTM layer (forward +
 * backward over a window), in GFLOP/s of their matrix products, and GELU over a GPT-style MLP's hidden
 * values (4 D per position), in ns per value (--gelu-only 1 times that alone); with --attention 1 instead,
 * causal self-attention (forward + backward) at the GPT's two reference shapes.
 *   bench_kernels [--rows N] [--dim D] [--vocab K] [--steps T] [--batch B] [--slice R] [--repeat N]
 *                 [--gelu-only 0|1]
 *   bench_kernels --attention 1 [--block N] [--bf16 1] [--repeat N]
 * Defaults: the course LM's shapes on one of two ranks (window 50, 100 sequences, width 500, 8,003 words);
 * attention: (B 8, T 256) and (B 2, T 1024) with C 512, 8 heads, blocks of 64 queries and 64 keys.
 * Run it with OPENBLAS_NUM_THREADS=1 and OMP_NUM_THREADS=1 (as scripts/mpi-env sets them): with OpenMP's
 * default of one thread per core, oneDNN's idle threads spin between the many small bf16 products of the
 * attention (measured: 80% of the time in libgomp); start two at once to see what two ranks on two cores get. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/attention.h"
#include "reel/gemm.h"
#include "reel/layers.h"
#include "reel/rng.h"
#include "reel/util.h"

static void fill(float *x, size_t n, float scale, uint32_t stream) {
    for (size_t i = 0; i < n; i += 4) {
        uint32_t w[4];
        reel_rng_block(w, 1, 99, stream, (uint32_t)(i / 4), 0);
        for (size_t k = 0; k < 4 && i + k < n; k++) x[i + k] = scale * (2 * reel_rng_unit_float(w[k]) - 1);
    }
}

/* Causal attention forward + backward, best of `repeat`. Its products count 2 T^2 C each over the whole
 * (T, T) square (QK^T and PV forward; QK^T again, dP, dV, dQ and dK backward: 7 in all), half of that with
 * the causal mask, which is what is reported (blocks on the diagonal do somewhat more). */
static void bench_attention(size_t B, size_t T, size_t C, size_t NH, size_t block, size_t repeat) {
    size_t rows = B * T;
    float *qkv = malloc(rows * 3 * C * sizeof(float)), *out = malloc(rows * C * sizeof(float));
    float *dout = malloc(rows * C * sizeof(float)), *dqkv = calloc(rows * 3 * C, sizeof(float));
    float *lse = malloc(B * NH * T * sizeof(float));
    size_t floats = reel_attention_scratch_floats(B, T, C, NH, block, block);
    float *scratch = malloc(floats * sizeof(float));
    fill(qkv, rows * 3 * C, 1, 7);
    fill(dout, rows * C, 0.01f, 8);
    double best_fwd = 1e30, best_bwd = 1e30;
    for (size_t r = 0; r < repeat; r++) {
        double start = reel_now_seconds();
        reel_attention_forward(out, lse, qkv, NULL, 1, B, T, C, NH, block, block, NULL, scratch);
        double middle = reel_now_seconds();
        reel_attention_backward(dqkv, dout, out, lse, qkv, NULL, 1, B, T, C, NH, block, block, NULL, scratch);
        double end = reel_now_seconds();
        if (middle - start < best_fwd) best_fwd = middle - start;
        if (end - middle < best_bwd) best_bwd = end - middle;
    }
    double square = 2.0 * (double)B * (double)T * (double)T * (double)C / 2;
    printf("attention %s B %zu T %zu C %zu NH %zu block %zu: forward %.4f s (%.1f GFLOP/s), backward %.4f s "
           "(%.1f GFLOP/s), together %.4f s; workspace %zu floats (%.1f KiB)\n",
           reel_gemm_precision() == REEL_BF16 ? "bf16" : "fp32", B, T, C, NH, block, best_fwd,
           2 * square / best_fwd / 1e9, best_bwd, 5 * square / best_bwd / 1e9, best_fwd + best_bwd, floats,
           (double)floats * sizeof(float) / 1024);
    free(qkv), free(out), free(dout), free(dqkv), free(lse), free(scratch);
}

int main(int argc, char **argv) {
    size_t T = 50, B = 100, D = 500, K = 8003, slice = 512, repeat = 5, attention = 0, block = 64, bf16 = 0;
    int gelu_only = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        size_t v = strtoull(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--dim")) D = v;
        else if (!strcmp(argv[i], "--vocab")) K = v;
        else if (!strcmp(argv[i], "--steps")) T = v;
        else if (!strcmp(argv[i], "--batch")) B = v;
        else if (!strcmp(argv[i], "--slice")) slice = v;
        else if (!strcmp(argv[i], "--repeat")) repeat = v;
        else if (!strcmp(argv[i], "--attention")) attention = v;
        else if (!strcmp(argv[i], "--block")) block = v;
        else if (!strcmp(argv[i], "--bf16")) bf16 = v;
        else if (!strcmp(argv[i], "--gelu-only")) gelu_only = v != 0;
        else {
            fprintf(stderr, "bench_kernels: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    MPI_Init(&argc, &argv);
    if (attention) {
        if (bf16 && !reel_bf16_supported()) {
            fprintf(stderr, "bench_kernels: this CPU (%s) has no native bf16\n", reel_cpu_isa_name());
            MPI_Finalize();
            return 1;
        }
        reel_gemm_set_precision(bf16 ? REEL_BF16 : REEL_FP32);
        bench_attention(8, 256, 512, 8, block, repeat);
        bench_attention(2, 1024, 512, 8, block, repeat);
        MPI_Finalize();
        return 0;
    }
    size_t N = T * B;
    /* GELU over a GPT-style MLP's hidden activations: N positions of 4 D values */
    size_t G4 = 4 * N * D;
    float *g_in = malloc(G4 * sizeof(float)), *g_out = malloc(G4 * sizeof(float)), *g_din = calloc(G4, sizeof(float));
    fill(g_in, G4, 3, 7);
    double best_gf = 1e30, best_gb = 1e30;
    for (size_t r = 0; r < repeat; r++) {
        double start = reel_now_seconds();
        reel_gelu_forward(g_out, g_in, G4);
        double middle = reel_now_seconds();
        reel_gelu_backward(g_din, g_out, g_in, G4);
        double end = reel_now_seconds();
        if (middle - start < best_gf) best_gf = middle - start;
        if (end - middle < best_gb) best_gb = end - middle;
    }
    printf("gelu             %zu values: forward %.4f s (%.2f ns/value), backward %.4f s (%.2f ns/value)\n", G4,
           best_gf, best_gf / (double)G4 * 1e9, best_gb, best_gb / (double)G4 * 1e9);
    free(g_in);
    free(g_out);
    free(g_din);
    if (gelu_only) {
        MPI_Finalize();
        return 0;
    }

    float *x = malloc(N * D * sizeof(float)), *w = malloc(K * D * sizeof(float)), *bias = calloc(K, sizeof(float));
    float *dx = malloc(N * D * sizeof(float)), *dw = calloc(K * D, sizeof(float)), *db = calloc(K, sizeof(float));
    float *scratch = malloc(reel_decoder_scratch_floats(slice, D, K) * sizeof(float));
    uint32_t *targets = malloc(N * sizeof *targets);
    fill(x, N * D, 1, 1);
    fill(w, K * D, 0.1f, 2);
    for (size_t i = 0; i < N; i++) targets[i] = (uint32_t)(i * 7919 % K);
    double best = 1e30;
    for (size_t r = 0; r < repeat; r++) {
        double start = reel_now_seconds();
        reel_decoder_softmax(dx, dw, db, NULL, x, w, bias, targets, NULL, N, D, K, 1.0f / (float)N, scratch, slice);
        double seconds = reel_now_seconds() - start;
        if (seconds < best) best = seconds;
    }
    double flops = 6.0 * (double)N * (double)D * (double)K;
    printf("decoder+softmax  N %zu D %zu K %zu slice %zu: %.3f s, %.1f GFLOP/s\n", N, D, K, slice, best, flops / best / 1e9);

    /* one LSTM layer of D units over a window, input width D */
    size_t G = 4, GH = G * D;
    float *inp = malloc(N * D * sizeof(float)), *out = malloc(N * D * sizeof(float)), *dout = malloc(N * D * sizeof(float));
    float *w_ih = malloc(GH * D * sizeof(float)), *w_hh = malloc(GH * D * sizeof(float));
    float *b_ih = calloc(GH, sizeof(float)), *b_hh = calloc(GH, sizeof(float));
    float *dinp = calloc(N * D, sizeof(float)), *dw_ih = calloc(GH * D, sizeof(float)), *dw_hh = calloc(GH * D, sizeof(float));
    float *db_ih = calloc(GH, sizeof(float)), *db_hh = calloc(GH, sizeof(float));
    size_t *lengths = malloc(B * sizeof *lengths);
    for (size_t b = 0; b < B; b++) lengths[b] = T;
    fill(inp, N * D, 1, 3);
    fill(w_ih, GH * D, 0.05f, 4);
    fill(w_hh, GH * D, 0.05f, 5);
    fill(dout, N * D, 0.01f, 6);
    reel_recurrent_cache cache;
    reel_recurrent_cache_alloc(&cache, REEL_CELL_LSTM, N, B, D);
    double best_fwd = 1e30, best_bwd = 1e30;
    for (size_t r = 0; r < repeat; r++) {
        double start = reel_now_seconds();
        reel_recurrent_forward(&cache, out, inp, lengths, w_ih, w_hh, b_ih, b_hh, T, B, D, D, 0);
        double middle = reel_now_seconds();
        reel_recurrent_backward(&cache, dinp, dw_ih, dw_hh, db_ih, db_hh, dout, out, inp, lengths, w_ih, w_hh, T, B, D, D, 0);
        double end = reel_now_seconds();
        if (middle - start < best_fwd) best_fwd = middle - start;
        if (end - middle < best_bwd) best_bwd = end - middle;
    }
    double fwd_flops = 2.0 * (double)N * GH * D * 2, bwd_flops = 2 * fwd_flops;
    printf("lstm layer       T %zu B %zu H %zu: forward %.3f s (%.1f GFLOP/s), backward %.3f s (%.1f GFLOP/s)\n", T, B, D,
           best_fwd, fwd_flops / best_fwd / 1e9, best_bwd, bwd_flops / best_bwd / 1e9);
    reel_recurrent_cache_free(&cache);

    MPI_Finalize();
    return 0;
}
