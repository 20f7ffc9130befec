/* bench_peak: the measured arithmetic peak of one core, the denominator of the MFU figures of bench/gpt.sh.
 *
 *   bench_peak [--seconds S] [--sgemm N]
 *
 * Prints one line per figure, "NAME: VALUE GFLOP/s (how)" or "NAME: unsupported (why)":
 *   fp32        fused multiply-adds on 16 independent accumulators, AVX-512 (AVX2 + FMA where the CPU has
 *               no AVX-512); 2 FLOP per lane per instruction
 *   bf16        the AVX512_BF16 dot product (vdpbf16ps) on 16 independent accumulators: per fp32 lane two
 *               bf16 products added to it, counted as 2 multiply-adds = 4 FLOP
 *   bf16_amx    AMX tiles (tdpbf16ps, 16 x 16 fp32 += 16 x 32 bf16 . 32 x 16 bf16) on 4 accumulator tiles:
 *               what oneDNN uses for bf16 products where the CPU has it
 *   sgemm       OpenBLAS cblas_sgemm of two N x N matrices (default N 2048; 0 skips it), one thread: what a
 *               real kernel gets, as a check of the fp32 figure
 * Every figure is the best of 3 timed runs of about S seconds each (default 0.25) after one of the same
 * length to warm up; one thread throughout. The loops keep their operands in registers (tiles), so they
 * measure the arithmetic units alone: no model can exceed them, which is what an MFU denominator needs.
 *
 * The kernels are compiled for their instruction sets with target attributes and chosen at run time from
 * CPUID, so the binary needs no -march=native and says "unsupported" on a CPU without the instructions. */
#define _GNU_SOURCE /* syscall() for AMX's permission request */
#include <cblas.h>
#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A kernel runs `iterations` rounds and returns a value depending on every accumulator, which the caller
 * stores in a volatile so that the compiler cannot drop the loop. */
typedef float (*kernel_fn)(uint64_t iterations);

static volatile float sink;

/* GFLOP/s of kernel at flop_per_iteration: doubles the iterations until one run takes `seconds`, then the
 * best of 3 such runs. */
static double measure(kernel_fn kernel, double flop_per_iteration, double seconds) {
    uint64_t iterations = 1024;
    for (;;) {
        double start = now();
        sink = kernel(iterations);
        if (now() - start >= seconds) break;
        iterations *= 2;
    }
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double start = now();
        sink = kernel(iterations);
        double elapsed = now() - start;
        if (elapsed < best) best = elapsed;
    }
    return flop_per_iteration * (double)iterations / best / 1e9;
}

/* acc = acc * a + b converges to b / (1 - a) without overflow or denormals, whatever the count. The 16
 * accumulators are independent chains: at 4 cycles of latency and 2 FMA units, 8 keep the units busy;
 * 16 leave room for slower or wider cores. */
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

__attribute__((target("avx512f"))) static float fp32_avx512(uint64_t iterations) {
    __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(1e-4f);
#define DECLARE(i) __m512 acc##i = _mm512_set1_ps((float)(i) * 0.01f);
#define STEP(i) acc##i = _mm512_fmadd_ps(acc##i, a, b);
#define ADD(i) sum = _mm512_add_ps(sum, acc##i);
    CHAINS(DECLARE)
    for (uint64_t n = 0; n < iterations; n++) { CHAINS(STEP) }
    __m512 sum = _mm512_setzero_ps();
    CHAINS(ADD)
    return _mm512_reduce_add_ps(sum);
#undef DECLARE
#undef STEP
#undef ADD
}

/* AVX2 has 16 vector registers: 12 chains, a and b */
#define CHAINS12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

__attribute__((target("avx2,fma"))) static float fp32_avx2(uint64_t iterations) {
    __m256 a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(1e-4f);
#define DECLARE(i) __m256 acc##i = _mm256_set1_ps((float)(i) * 0.01f);
#define STEP(i) acc##i = _mm256_fmadd_ps(acc##i, a, b);
#define ADD(i) sum = _mm256_add_ps(sum, acc##i);
    CHAINS12(DECLARE)
    for (uint64_t n = 0; n < iterations; n++) { CHAINS12(STEP) }
    __m256 sum = _mm256_setzero_ps();
    CHAINS12(ADD)
    float lanes[8];
    _mm256_storeu_ps(lanes, sum);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
#undef DECLARE
#undef STEP
#undef ADD
}

/* acc += x . y pairwise in bf16: x = y = 2^-10 adds 2^-19 per lane and round, so the accumulators grow by
 * about 2 over 2^20 rounds and stay normal fp32 numbers. */
__attribute__((target("avx512f,avx512bf16"))) static float bf16_avx512(uint64_t iterations) {
    __m512 small = _mm512_set1_ps(1.0f / 1024);
    __m512bh x = _mm512_cvtne2ps_pbh(small, small), y = _mm512_cvtne2ps_pbh(small, small);
#define DECLARE(i) __m512 acc##i = _mm512_set1_ps((float)(i) * 0.01f);
#define STEP(i) acc##i = _mm512_dpbf16_ps(acc##i, x, y);
#define ADD(i) sum = _mm512_add_ps(sum, acc##i);
    CHAINS(DECLARE)
    for (uint64_t n = 0; n < iterations; n++) { CHAINS(STEP) }
    __m512 sum = _mm512_setzero_ps();
    CHAINS(ADD)
    return _mm512_reduce_add_ps(sum);
#undef DECLARE
#undef STEP
#undef ADD
}

/* AMX: the tile configuration (palette 1), 64 bytes as the instruction reads them. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* Tiles 0-3 accumulate (16 rows of 16 fp32), 4-5 are A (16 rows of 32 bf16), 6-7 are B (16 rows of 16
 * bf16 pairs): the 2 x 2 blocking of a real kernel, every product independent of the one before it. */
__attribute__((target("amx-tile,amx-bf16"))) static float bf16_amx(uint64_t iterations) {
    static uint16_t operand[16 * 32]; /* bf16 2^-10: 0x3a80 */
    static float result[16 * 16];
    for (size_t i = 0; i < 16 * 32; i++) operand[i] = 0x3a80;
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, operand, 64);
    _tile_loadd(5, operand, 64);
    _tile_loadd(6, operand, 64);
    _tile_loadd(7, operand, 64);
    for (uint64_t n = 0; n < iterations; n++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    float sum = 0;
    _tile_stored(0, result, 64);
    sum += result[0];
    _tile_stored(3, result, 64);
    sum += result[255];
    _tile_release();
    return sum;
}

/* CPUID bits (Intel SDM vol. 2, CPUID leaf 07H). */
static int cpuid_bit(unsigned leaf, unsigned subleaf, int reg, unsigned bit) {
    unsigned r[4];
    if (!__get_cpuid_count(leaf, subleaf, &r[0], &r[1], &r[2], &r[3])) return 0;
    return (r[reg] >> bit) & 1u;
}
enum { EAX, EBX, ECX, EDX };

/* Linux hands out AMX's tile state only on request (arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA, state
 * component 18); without it the first tile instruction is a SIGILL. */
static int amx_permitted(void) {
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

static double sgemm_rate(int n, double seconds) {
    size_t count = (size_t)n * (size_t)n;
    float *a = malloc(count * sizeof(float)), *b = malloc(count * sizeof(float)), *c = malloc(count * sizeof(float));
    if (!a || !b || !c) {
        fprintf(stderr, "bench_peak: cannot allocate 3 matrices of %d x %d\n", n, n);
        exit(1);
    }
    for (size_t i = 0; i < count; i++) a[i] = b[i] = (float)(i % 17) / 17.0f - 0.5f;
    double flop = 2.0 * (double)n * (double)n * (double)n, best = 1e30, spent = 0;
    /* the first product warms up (OpenBLAS's buffers, the pages of c); then at least 3 more, for at least
     * `seconds` in all */
    for (int r = 0; r < 4 || spent < seconds; r++) {
        double start = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double elapsed = now() - start;
        if (r > 0) {
            spent += elapsed;
            if (elapsed < best) best = elapsed;
        }
    }
    sink = c[count / 2];
    free(a), free(b), free(c);
    return flop / best / 1e9;
}

int main(int argc, char **argv) {
    double seconds = 0.25;
    long n = 2048;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = strtod(argv[++i], &end);
            if (*end || !(seconds > 0 && seconds <= 60)) {
                fprintf(stderr, "bench_peak: --seconds takes a number of seconds in (0, 60], not '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--sgemm") && i + 1 < argc) {
            n = strtol(argv[++i], &end, 10);
            if (*end || n < 0 || n > 16384) {
                fprintf(stderr, "bench_peak: --sgemm takes a matrix size from 0 (skip) to 16384, not '%s'\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: bench_peak [--seconds S] [--sgemm N]\n");
            return !strcmp(argv[i], "-h") || !strcmp(argv[i], "--help") ? 0 : 2;
        }
    }
    __builtin_cpu_init();
    /* __builtin_cpu_supports checks that the OS saves the vector state too (XGETBV), not only CPUID */
    int avx512 = __builtin_cpu_supports("avx512f"), avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int avx512_bf16 = avx512 && cpuid_bit(7, 1, EAX, 5);
    int amx = cpuid_bit(7, 0, EDX, 22) && cpuid_bit(7, 0, EDX, 24); /* AMX-BF16 and AMX-TILE */

    if (avx512)
        printf("fp32: %.1f GFLOP/s (AVX-512 FMA, 16 chains)\n", measure(fp32_avx512, 16.0 * 16 * 2, seconds));
    else if (avx2)
        printf("fp32: %.1f GFLOP/s (AVX2 FMA, 12 chains)\n", measure(fp32_avx2, 12.0 * 8 * 2, seconds));
    else
        printf("fp32: unsupported (neither AVX-512 nor AVX2 with FMA)\n");
    if (avx512_bf16)
        printf("bf16: %.1f GFLOP/s (AVX512_BF16 vdpbf16ps, 16 chains, 2 FLOP per multiply-add)\n",
               measure(bf16_avx512, 16.0 * 16 * 2 * 2, seconds));
    else
        printf("bf16: unsupported (the CPU has no AVX512_BF16)\n");
    if (!amx)
        printf("bf16_amx: unsupported (the CPU has no AMX-BF16)\n");
    else if (!amx_permitted())
        printf("bf16_amx: unsupported (the kernel refused the AMX tile state: Linux before 5.16?)\n");
    else
        printf("bf16_amx: %.1f GFLOP/s (AMX tdpbf16ps, 4 accumulator tiles, 2 FLOP per multiply-add)\n",
               measure(bf16_amx, 4.0 * 16 * 16 * 32 * 2, seconds));
    if (n > 0) {
        openblas_set_num_threads(1);
        printf("sgemm: %.1f GFLOP/s (OpenBLAS cblas_sgemm %ld x %ld, 1 thread)\n", sgemm_rate((int)n, seconds), n, n);
    }
    return 0;
}
