/* The sampler of reel generate (reel_sample_logits) against a nucleus computed here on its own: for
 * logits of known probabilities, a temperature, top-k and top-p, every draw lies in the nucleus (the
 * fewest most likely tokens, among the top k, whose probability reaches top_p of theirs), every token of
 * the nucleus is drawn, each about as often as its probability renormalised over the nucleus says, and
 * <pad> and <unk> never are, though their logits are the largest. The draws are keyed by (seed, sample,
 * position), so the counts are the same on every run: the tolerance is statistical, not for flakiness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "reel/generate.h"
#include "reel/vocab.h"

enum { K = 12, DRAWS = 20000 };

/* Probabilities of the ten drawable ids (<eod> and nine words), given to the ids in a shuffled order so
 * that the sampler's sort matters. No running sum of them lies near the top_p values used below. */
static const double probs[] = {0.30, 0.20, 0.15, 0.10, 0.08, 0.07, 0.05, 0.03, 0.015, 0.005};
static const uint32_t ids[] = {7, 2, 11, 4, 9, 3, 10, 5, 8, 6};

static void make_logits(float *logits) {
    for (size_t k = 0; k < K; k++) logits[k] = -1e30f;
    logits[REEL_TOKEN_PAD] = logits[REEL_TOKEN_UNK] = 50.0f; /* the most likely, yet never drawn */
    for (size_t i = 0; i < sizeof probs / sizeof probs[0]; i++) logits[ids[i]] = (float)log(probs[i]);
}

/* in_nucleus[k] = 1 for the nucleus's tokens and share[k] their probability renormalised over it */
static size_t nucleus(const float *logits, double temperature, size_t top_k, double top_p, int *in_nucleus, double *share) {
    double p[K];
    uint32_t order[K];
    size_t n = 0;
    double top = -INFINITY;
    for (uint32_t k = REEL_TOKEN_EOD; k < K; k++) top = fmax(top, logits[k]);
    for (uint32_t k = REEL_TOKEN_EOD; k < K; k++) {
        order[n] = k;
        p[k] = exp(((double)logits[k] - top) / temperature);
        n++;
    }
    for (size_t i = 0; i < n; i++) /* most likely first (insertion sort: ten values) */
        for (size_t j = i; j > 0 && p[order[j]] > p[order[j - 1]]; j--) {
            uint32_t swap = order[j];
            order[j] = order[j - 1];
            order[j - 1] = swap;
        }
    if (top_k && top_k < n) n = top_k;
    double mass = 0, kept = 0;
    for (size_t i = 0; i < n; i++) mass += p[order[i]];
    size_t m = 0;
    while (m < n && kept < top_p * mass) kept += p[order[m++]];
    memset(in_nucleus, 0, K * sizeof *in_nucleus);
    for (size_t k = 0; k < K; k++) share[k] = 0;
    for (size_t i = 0; i < m; i++) {
        in_nucleus[order[i]] = 1;
        share[order[i]] = p[order[i]] / kept;
    }
    return m;
}

static void check(double temperature, size_t top_k, double top_p, size_t expected_size) {
    float logits[K], scratch[K];
    make_logits(logits);
    int in_nucleus[K];
    double share[K];
    size_t size = nucleus(logits, temperature, top_k, top_p, in_nucleus, share);
    if (size != expected_size)
        fail_msg("temperature %g, top-k %zu, top-p %g: the nucleus here has %zu tokens, the test expects %zu", temperature,
                 top_k, top_p, size, expected_size);
    reel_sampling sampling = {temperature, top_k, top_p, 7};
    size_t counts[K] = {0};
    for (uint64_t position = 0; position < DRAWS; position++) {
        memcpy(scratch, logits, sizeof logits);
        uint32_t drawn = reel_sample_logits(scratch, K, &sampling, 0, position);
        if (drawn >= K || !in_nucleus[drawn])
            fail_msg("temperature %g, top-k %zu, top-p %g: position %llu drew id %u, outside the nucleus of %zu", temperature,
                     top_k, top_p, (unsigned long long)position, drawn, size);
        counts[drawn]++;
    }
    for (size_t k = 0; k < K; k++) {
        if (!in_nucleus[k]) continue;
        double expected = DRAWS * share[k], sigma = sqrt(DRAWS * share[k] * (1 - share[k]));
        if (counts[k] == 0 || fabs((double)counts[k] - expected) > 5 * sigma + 1)
            fail_msg("temperature %g, top-k %zu, top-p %g: id %zu drawn %zu times of %d, expected %.0f +- %.0f", temperature,
                     top_k, top_p, k, counts[k], DRAWS, expected, 5 * sigma + 1);
    }
}

/* running sums of probs: 0.30 0.50 0.65 0.75 0.83 0.90 0.95 0.98 0.995 1 */
static void test_top_p(void **state) {
    (void)state;
    check(1, 0, 1e-6, 1);  /* the most likely token alone */
    check(1, 0, 0.45, 2);  /* 0.30 < 0.45 <= 0.50 */
    check(1, 0, 0.70, 4);  /* 0.65 < 0.70 <= 0.75 */
    check(1, 0, 0.93, 7);  /* 0.90 < 0.93 <= 0.95 */
    check(1, 0, 1.0, 10);  /* every drawable token */
}

/* the nucleus is taken over the tempered probabilities: top-p 0.76 keeps 5 tokens at temperature 1
 * (0.75 < 0.76 <= 0.83); at temperature 2 the probabilities are proportional to sqrt(probs), whose
 * normalised running sums are 0.193 0.351 0.487 0.599 0.699 0.792 ..., so 6; at 0.5 to probs squared,
 * 0.507 0.733 0.859 ..., so 3 */
static void test_top_p_after_temperature(void **state) {
    (void)state;
    check(1, 0, 0.76, 5);
    check(2, 0, 0.76, 6);
    check(0.5, 0, 0.76, 3);
}

/* top-k first, then top-p of what top-k kept: 0.70 of the top 5's 0.83 is 0.581, reached by 3 tokens */
static void test_top_k_then_top_p(void **state) {
    (void)state;
    check(1, 5, 0.70, 3);
    check(1, 3, 1.0, 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_top_p),
        cmocka_unit_test(test_top_p_after_temperature),
        cmocka_unit_test(test_top_k_then_top_p),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
