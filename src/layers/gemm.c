/* The matrix product of every layer (reel/gemm.h): cblas_sgemm in fp32, oneDNN's matmul in bf16.
 *
 * The bf16 path rounds each operand into a dense bf16 copy (keeping its orientation: a transposed
 * operand is described to oneDNN by its strides, not moved) and runs a matmul primitive with fp32
 * output; alpha is the primitive's output scale, beta a sum post-op. Creating a primitive costs far more
 * than running a small one, so the primitives are kept per shape (M, N, K, transposes, ldc, alpha,
 * beta) in a per-thread table; a training run meets a few hundred shapes (the step products have one
 * height per number of sequences still running). */
#include "reel/gemm.h"

#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reel/check.h"

#define DNNL_CHECK(call)                                                                                       \
    do {                                                                                                       \
        dnnl_status_t status_ = (call);                                                                        \
        REEL_CHECK(status_ == dnnl_success, "the bf16 path needs oneDNN's matmul with bf16 inputs",           \
                   "%s failed: oneDNN status %d", #call, (int)status_);                                        \
    } while (0)

static _Thread_local reel_precision current_precision = REEL_FP32;

void reel_gemm_set_precision(reel_precision precision) { current_precision = precision; }
reel_precision reel_gemm_precision(void) { return current_precision; }

static int bf16_turned_off(void) {
    const char *off = getenv("REEL_NO_BF16");
    return off && off[0] && strcmp(off, "0") != 0;
}

int reel_bf16_supported(void) {
    if (bf16_turned_off()) return 0;
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return ((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) == (unsigned)dnnl_cpu_isa_avx512_core_bf16;
}

const char *reel_cpu_isa_name(void) {
    if (bf16_turned_off()) return "bf16 turned off by REEL_NO_BF16";
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if (((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_amx) == (unsigned)dnnl_cpu_isa_avx512_core_amx)
        return "AVX-512 with AMX";
    if (((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) == (unsigned)dnnl_cpu_isa_avx512_core_bf16)
        return "AVX-512 with BF16";
    if (((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core) == (unsigned)dnnl_cpu_isa_avx512_core)
        return "AVX-512 without BF16";
    if (((unsigned)isa & (unsigned)dnnl_cpu_isa_avx2) == (unsigned)dnnl_cpu_isa_avx2) return "AVX2 without BF16";
    return "no AVX2";
}

int reel_precision_choose(const char *setting, const char *assign, const char *requested, reel_precision *chosen,
                          reel_error *err) {
    *chosen = REEL_FP32;
    if (strcmp(requested, "fp32") == 0) return 0;
    if (strcmp(requested, "bf16") != 0 && strcmp(requested, "auto") != 0)
        return reel_fail(err, "%s '%s': expected fp32, bf16 or auto", setting, requested);
    int native = reel_bf16_supported();
    if (!native && strcmp(requested, "bf16") == 0)
        return reel_fail(err, "%s%sbf16, but this CPU (%s) has no native bf16 matrix products (AVX512_BF16 or AMX)",
                         setting, assign, reel_cpu_isa_name());
    if (!native) {
        reel_log("precision: auto: this CPU (%s) has no native bf16 products: fp32\n", reel_cpu_isa_name());
        return 0;
    }
    reel_log("precision: bf16 matrix products (oneDNN, %s); everything else stays fp32\n", reel_cpu_isa_name());
    *chosen = REEL_BF16;
    return 0;
}

/* ---- fp32 -> bf16 ---- */

/* Round to nearest, ties to even; a NaN stays a (quiet) NaN. Both results are computed and one is
 * selected, so that GCC vectorises the loops below (a branch kept them scalar). */
static inline uint16_t to_bf16(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    uint32_t quiet_nan = (bits >> 16) | 0x40u;
    uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
    return (uint16_t)((bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

/* Rounding the activations is the one pass a bf16 product adds over fp32, and it ran at SSE2 width in the
 * baseline build (18% of a bf16 GPT step's samples, mostly waiting on loads). GCC's clone for x86-64-v4
 * does the same integer arithmetic 16 floats at a time with AVX-512; the CPU picks the clone at load time,
 * and the results are the same bits either way (tests/test_gemm.c's rounding check runs whichever the
 * machine has). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__AVX512BW__)
#define ROUND_KERNEL __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define ROUND_KERNEL
#endif

/* dst (rows, cols) dense = src (rows, cols) with leading dimension ld, rounded */
ROUND_KERNEL static void round_rows(uint16_t *dst, const float *src, size_t rows, size_t cols, size_t ld) {
    for (size_t r = 0; r < rows; r++) {
        const float *in = src + r * ld;
        uint16_t *out = dst + r * cols;
        for (size_t c = 0; c < cols; c++) out[c] = to_bf16(in[c]);
    }
}

/* ---- per-thread state: the engine, the stream, the operand copies and the primitives ---- */

enum { TABLE_SIZE = 1024 };

typedef struct {
    int used;
    int trans_a, trans_b;
    size_t M, N, K, ldc;
    float alpha, beta;
    dnnl_primitive_t primitive;
    dnnl_memory_desc_t a_md, b_md, c_md;
} shape_entry;

/* A weight's bf16 copy: the matrix at data (rows, cols) with leading dimension ld, as of generation. */
enum { WEIGHT_SLOTS = 32 };

typedef struct {
    const float *data;
    size_t rows, cols, ld;
    uint64_t generation, last_use;
    uint16_t *copy;
    size_t capacity;
} weight_entry;

typedef struct {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    uint16_t *a, *b;
    size_t a_capacity, b_capacity;
    shape_entry *table;
    size_t next_victim;
    const float *params; /* the registered parameter buffer (reel_gemm_set_params) */
    size_t num_params;
    uint64_t generation, uses; /* generation: bumped by reel_gemm_params_changed; uses: an LRU clock */
    weight_entry weights[WEIGHT_SLOTS];
} bf16_state;

static _Thread_local bf16_state state;

static void ensure_state(void) {
    if (state.engine) return;
    /* oneDNN's products run on OpenMP threads, as many as the cores unless OMP_NUM_THREADS says otherwise.
     * A rank is given its threads through OPENBLAS_NUM_THREADS (ranks x threads = cores), so a rank that
     * did not also set OMP_NUM_THREADS would start a core's worth of OpenMP threads per rank, which spin
     * between the many small products on cores the other ranks use (measured: 12% of a one-rank bf16 GPT
     * step's samples in libgomp's spin loop on the second core; with two ranks bound to a core each,
     * tokens/s within noise of OMP_NUM_THREADS=1). Unless the user set OMP_NUM_THREADS, oneDNN gets the
     * rank's OpenBLAS thread count, so a rank uses the threads it was given and no more. */
    const char *omp = getenv("OMP_NUM_THREADS");
    if (!omp || !omp[0]) omp_set_num_threads(openblas_get_num_threads());
    DNNL_CHECK(dnnl_engine_create(&state.engine, dnnl_cpu, 0));
    DNNL_CHECK(dnnl_stream_create(&state.stream, state.engine, dnnl_stream_default_flags));
    state.table = reel_calloc(TABLE_SIZE, sizeof *state.table);
}

static uint16_t *reserve(uint16_t **buffer, size_t *capacity, size_t count) {
    if (count > *capacity) {
        free(*buffer);
        *buffer = reel_malloc(count * sizeof **buffer);
        *capacity = count;
    }
    return *buffer;
}

static size_t slot_of(int trans_a, int trans_b, size_t M, size_t N, size_t K, size_t ldc, float alpha, float beta) {
    uint64_t h = 1469598103934665603ull;
    uint64_t parts[] = {(uint64_t)trans_a, (uint64_t)trans_b, M, N, K, ldc};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) h = (h ^ parts[i]) * 1099511628211ull;
    uint32_t a, b;
    memcpy(&a, &alpha, sizeof a);
    memcpy(&b, &beta, sizeof b);
    h = ((h ^ a) * 1099511628211ull ^ b) * 1099511628211ull;
    return (size_t)(h % TABLE_SIZE);
}

static int matches(const shape_entry *e, int trans_a, int trans_b, size_t M, size_t N, size_t K, size_t ldc, float alpha,
                   float beta) {
    return e->used && e->trans_a == trans_a && e->trans_b == trans_b && e->M == M && e->N == N && e->K == K &&
           e->ldc == ldc && e->alpha == alpha && e->beta == beta;
}

/* The primitive of a shape: from the table (open addressing, 8 probes), or made and stored there. */
static shape_entry *primitive_for(int trans_a, int trans_b, size_t M, size_t N, size_t K, size_t ldc, float alpha,
                                  float beta) {
    size_t home = slot_of(trans_a, trans_b, M, N, K, ldc, alpha, beta), free_slot = SIZE_MAX;
    for (size_t probe = 0; probe < 8; probe++) {
        shape_entry *e = &state.table[(home + probe) % TABLE_SIZE];
        if (matches(e, trans_a, trans_b, M, N, K, ldc, alpha, beta)) return e;
        if (!e->used && free_slot == SIZE_MAX) free_slot = (home + probe) % TABLE_SIZE;
    }
    if (free_slot == SIZE_MAX) { /* all 8 taken: replace one of them in turn */
        free_slot = (home + state.next_victim++ % 8) % TABLE_SIZE;
        dnnl_primitive_destroy(state.table[free_slot].primitive);
    }
    shape_entry *e = &state.table[free_slot];
    memset(e, 0, sizeof *e);
    /* the operands' dense copies keep their orientation: op(A) (M, K) is A (M, K) with strides (K, 1),
     * or the transpose of A (K, M) with strides (1, M) */
    dnnl_dims_t a_dims = {(dnnl_dim_t)M, (dnnl_dim_t)K}, b_dims = {(dnnl_dim_t)K, (dnnl_dim_t)N};
    dnnl_dims_t c_dims = {(dnnl_dim_t)M, (dnnl_dim_t)N};
    dnnl_dims_t a_strides = {trans_a ? 1 : (dnnl_dim_t)K, trans_a ? (dnnl_dim_t)M : 1};
    dnnl_dims_t b_strides = {trans_b ? 1 : (dnnl_dim_t)N, trans_b ? (dnnl_dim_t)K : 1};
    dnnl_dims_t c_strides = {(dnnl_dim_t)ldc, 1};
    DNNL_CHECK(dnnl_memory_desc_init_by_strides(&e->a_md, 2, a_dims, dnnl_bf16, a_strides));
    DNNL_CHECK(dnnl_memory_desc_init_by_strides(&e->b_md, 2, b_dims, dnnl_bf16, b_strides));
    DNNL_CHECK(dnnl_memory_desc_init_by_strides(&e->c_md, 2, c_dims, dnnl_f32, c_strides));
    dnnl_matmul_desc_t desc;
    DNNL_CHECK(dnnl_matmul_desc_init(&desc, &e->a_md, &e->b_md, NULL, &e->c_md));
    dnnl_primitive_attr_t attr;
    DNNL_CHECK(dnnl_primitive_attr_create(&attr));
    if (alpha != 1.0f) DNNL_CHECK(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha));
    dnnl_post_ops_t post_ops = NULL;
    if (beta != 0.0f) {
        DNNL_CHECK(dnnl_post_ops_create(&post_ops));
        DNNL_CHECK(dnnl_post_ops_append_sum(post_ops, beta));
        DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, post_ops));
    }
    dnnl_primitive_desc_t pd;
    DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, state.engine, NULL));
    DNNL_CHECK(dnnl_primitive_create(&e->primitive, pd));
    dnnl_primitive_desc_destroy(pd);
    if (post_ops) dnnl_post_ops_destroy(post_ops);
    dnnl_primitive_attr_destroy(attr);
    e->used = 1;
    e->trans_a = trans_a, e->trans_b = trans_b;
    e->M = M, e->N = N, e->K = K, e->ldc = ldc;
    e->alpha = alpha, e->beta = beta;
    return e;
}

void reel_gemm_set_params(const float *params, size_t num_floats) {
    const char *copies = getenv("REEL_BF16_WEIGHT_COPIES"); /* 0: round every weight at every product */
    if (copies && strcmp(copies, "0") == 0) params = NULL;
    state.params = params;
    state.num_params = params ? num_floats : 0;
    state.generation++;
}

void reel_gemm_params_changed(void) { state.generation++; }

/* The bf16 copy of B (rows, cols; leading dimension ld): a weight's kept copy when B lies in the
 * registered parameters, else a fresh rounding into the scratch buffer. */
static const uint16_t *rounded_operand_b(const float *B, size_t rows, size_t cols, size_t ld) {
    size_t extent = (rows - 1) * ld + cols;
    int is_weight = state.params && B >= state.params && B + extent <= state.params + state.num_params;
    if (!is_weight) {
        uint16_t *b = reserve(&state.b, &state.b_capacity, rows * cols);
        round_rows(b, B, rows, cols, ld);
        return b;
    }
    state.uses++;
    weight_entry *slot = NULL;
    int same_matrix = 0;
    for (size_t i = 0; i < WEIGHT_SLOTS && !same_matrix; i++) {
        weight_entry *w = &state.weights[i];
        same_matrix = w->data == B && w->rows == rows && w->cols == cols && w->ld == ld;
        if (same_matrix || !slot || w->last_use < slot->last_use) slot = w; /* else the least recently used */
    }
    if (!same_matrix || slot->generation != state.generation) {
        slot->copy = reserve(&slot->copy, &slot->capacity, rows * cols);
        round_rows(slot->copy, B, rows, cols, ld);
        slot->data = B, slot->rows = rows, slot->cols = cols, slot->ld = ld;
        slot->generation = state.generation;
    }
    slot->last_use = state.uses;
    return slot->copy;
}

static void gemm_bf16(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
                      const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    ensure_state();
    /* the operands as stored: A is (M, K), or (K, M) when transposed; B is (K, N), or (N, K) */
    uint16_t *a = reserve(&state.a, &state.a_capacity, M * K);
    round_rows(a, A, trans_a ? K : M, trans_a ? M : K, lda);
    const uint16_t *b = rounded_operand_b(B, trans_b ? N : K, trans_b ? K : N, ldb);
    shape_entry *e = primitive_for(trans_a, trans_b, M, N, K, ldc, alpha, beta);
    dnnl_memory_t a_mem, b_mem, c_mem;
    DNNL_CHECK(dnnl_memory_create(&a_mem, &e->a_md, state.engine, a));
    DNNL_CHECK(dnnl_memory_create(&b_mem, &e->b_md, state.engine, (void *)b)); /* only read */
    DNNL_CHECK(dnnl_memory_create(&c_mem, &e->c_md, state.engine, C));
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}};
    DNNL_CHECK(dnnl_primitive_execute(e->primitive, state.stream, 3, args));
    DNNL_CHECK(dnnl_stream_wait(state.stream));
    dnnl_memory_destroy(a_mem);
    dnnl_memory_destroy(b_mem);
    dnnl_memory_destroy(c_mem);
}

void reel_gemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
               const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    if (M == 0 || N == 0) return;
    if (current_precision == REEL_BF16 && K > 0) {
        gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)M,
                (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

void reel_gemm_release(void) {
    if (!state.engine) return;
    for (size_t i = 0; i < TABLE_SIZE; i++)
        if (state.table[i].used) dnnl_primitive_destroy(state.table[i].primitive);
    free(state.table);
    for (size_t i = 0; i < WEIGHT_SLOTS; i++) free(state.weights[i].copy);
    free(state.a);
    free(state.b);
    dnnl_stream_destroy(state.stream);
    dnnl_engine_destroy(state.engine);
    memset(&state, 0, sizeof state);
}
