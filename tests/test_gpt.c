/* The GPT's decoding (src/models/gpt.c, src/use/generate.c): its key/value cache must give what reading
 * the whole text again gives.
 *   (a) the generator with the cache and with reel_generator_recompute: the same next-token logits after
 *       the prime and at every step, and the same tokens, for a prime longer than the generator's prime
 *       chunk (the cache filled in pieces) up to the last position max_context allows, for several samples
 *       drawn apart, greedily, and for a prime cut to its last max_context tokens;
 *   (b) the features of a batch read in one forward equal those read in two pieces through the cache
 *       (batch->state), sequences of different lengths split at different places;
 *   (c) a forward past max_context, all at once or after a cache, ends the process with a message naming
 *       the sequence, the positions and the limit.
 * (a) and (b) run for learned positions and for rotary ones ([model] positions = rotary, whose cache holds
 * keys rotated at their own positions: a forward with a cache must rotate its rows at count, count + 1, ...).
 * The components (attention, layers) have their own tests; PyTorch parity is tests/torch_parity.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "reel/catalogue.h"
#include "reel/config.h"
#include "reel/data.h"
#include "reel/generate.h"
#include "reel/model.h"
#include "fdcheck.h"
#include "config_set.h"

enum { V = 23, C = 16, LAYERS = 2, HEADS = 2 };

/* The generator reads a prime PRIME_CHUNK tokens per forward (src/use/generate.c): a longer prime fills
 * the cache in more than one piece. */
enum { PRIME_CHUNK = 512 };

/* How far apart the two ways may be. Both compute the same function in float32; they differ only in the
 * order of their sums: the cache's attention sums a query's positions one by one with a two-pass softmax,
 * the blocked kernel by blocks with a running maximum, and the matrix products run on 1 row or on many
 * (OpenBLAS picks other kernels and splits by the row count). A sum of n terms in another order differs
 * by at most about n u times the sum of the terms' magnitudes (u = 2^-24, float32's unit roundoff; the
 * classic bound gamma_n = n u / (1 - n u)). Per block the longest sums are the MLP's (4C terms), the two
 * projections' and the LayerNorms' (C each, the norm's mean and variance included) and attention's (up to
 * max_context positions, whose softmax weights sum to 1, so the error is relative to the largest value),
 * in all about 7C + W terms; the L blocks add theirs, and the final norm and the output layer one more
 * C each. The weights below are bounded by 0.4 and the norm's outputs are O(1), so a relative error is
 * carried from layer to layer with a gain of order one (a C-column row of weights <= 0.4 times a unit
 * vector has norm <= 0.4 sqrt(C) = 1.6), and the residual stream adds rather than multiplies. Allowing a
 * factor of 2 for that gain over the stack, the logits may differ by
 *     2 u (L (7C + W) + 2C) times the largest logit magnitude (at least 1).
 * For W = 600 that is about 1.7e-4 relative, for W = 48 about 2.4e-5; what is measured is printed (a few
 * 1e-7 relative here, as the bound's worst case of every rounding in one direction does not happen). A
 * broken cache (a key at the wrong position, a stale value) changes logits by O(0.1) to O(1). */
static double logit_bound(size_t W) {
    const double u = 1.0 / 16777216.0;
    return 2.0 * u * (double)(LAYERS * (7 * C + W) + 2 * C);
}

/* The position kind of the models make_gpt builds: each test below runs with both. */
static const char *positions = "learned";

/* A tiny GPT of max_context W. Its weights spread over (-0.4, 0.4) and its layer-norm gains over
 * (0.6, 1.4): GPT-2's N(0, 0.02) initialisation makes attention nearly uniform and the logits nearly
 * equal, which would hide a cache that puts keys at the wrong positions and make greedy choices ties. */
static reel_model *make_gpt(size_t W, uint32_t stream) {
    reel_config cfg;
    reel_config_defaults(&cfg);
    config_set(&cfg, "model.type=gpt");
    config_set(&cfg, "model.vocab_size=%d", V);
    config_set(&cfg, "model.embed_dim=%d", C);
    config_set(&cfg, "model.num_layers=%d", LAYERS);
    config_set(&cfg, "model.num_heads=%d", HEADS);
    config_set(&cfg, "model.max_context=%zu", W);
    config_set(&cfg, "data.seq_len=%zu", W < 16 ? W : 16);
    config_set(&cfg, "model.positions=%s", positions);
    reel_model *model;
    reel_error err = {{0}};
    if (reel_model_create(&model, &cfg, 8, &err) != 0) fail_msg("%s", err.message);
    assert_int_equal(model->decode, REEL_DECODE_CACHE);
    /* rotary has no position table: the positions come from the rotation alone */
    int has_table = 0;
    for (size_t t = 0; t < model->params.num_tensors; t++)
        has_table |= strcmp(model->params.tensors[t].name, "position/weight") == 0;
    assert_int_equal(has_table, strcmp(positions, "learned") == 0);
    model->ops->init(model, 3);
    for (size_t t = 0; t < model->params.num_tensors; t++) {
        reel_tensor_info *info = &model->params.tensors[t];
        int gain = strstr(info->name, "ln") && strstr(info->name, "/weight");
        fill(model->params.data + info->offset, info->count, gain ? 0.6f : -0.4f, gain ? 1.4f : 0.4f,
             (uint32_t)(stream + t));
    }
    return model;
}

/* A prime of n tokens: ids past the reserved ones, in an irregular order. */
static uint32_t *make_prime(size_t n) {
    uint32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    assert_non_null(ids);
    for (size_t i = 0; i < n; i++) ids[i] = (uint32_t)(REEL_VOCAB_RESERVED + (i * 7 + i * i / 3) % (V - REEL_VOCAB_RESERVED));
    return ids;
}

/* The largest |a - b| over n logits, and the largest |a| (at least 1): the scale of the bound. */
static void logit_gap(const float *a, const float *b, size_t n, double *gap, double *scale) {
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > *gap) *gap = d;
        if (fabs(a[i]) > *scale) *scale = fabs(a[i]);
    }
}

/* Primes two generators of `samples` samples on the same model, one with the cache and one recomputing,
 * with a prime of prime_len tokens, then takes `steps` steps with both; at every point their logits agree
 * within the bound and the tokens drawn are the same. Returns how many different tokens were drawn in
 * all (so a caller can tell the text was not one token over and over). */
static size_t compare_decoding(reel_model *model, size_t prime_len, size_t samples, size_t steps,
                               const reel_sampling *sampling, const char *what) {
    reel_generator *cached, *full;
    reel_error err = {{0}};
    assert_int_equal(reel_generator_create(&cached, model, samples, &err), 0);
    assert_int_equal(reel_generator_create(&full, model, samples, &err), 0);
    reel_generator_recompute(full);
    uint32_t *prime = make_prime(prime_len);
    reel_generator_prime(cached, prime, prime_len);
    reel_generator_prime(full, prime, prime_len);
    size_t n = samples * model->num_outputs;
    double gap = 0, scale = 1, bound = logit_bound(model->max_context);
    uint32_t *a = calloc(samples, sizeof *a), *b = calloc(samples, sizeof *b);
    int seen[V] = {0};
    for (size_t step = 0;; step++) {
        /* the logits of the next draw: after the prime (step 0), then after each token fed back */
        logit_gap(reel_generator_logits(full), reel_generator_logits(cached), n, &gap, &scale);
        if (gap > bound * scale)
            fail_msg("%s: after %zu steps: logits differ by %.3g, more than %.3g", what, step, gap, bound * scale);
        if (step == steps) break;
        reel_generator_step(cached, sampling, step, a);
        reel_generator_step(full, sampling, step, b);
        for (size_t s = 0; s < samples; s++) {
            if (a[s] != b[s]) fail_msg("%s: step %zu sample %zu: the cache drew %u, recomputing %u", what, step, s, a[s], b[s]);
            seen[a[s]] = 1;
        }
    }
    printf("%s (%s): %zu samples, prime %zu, %zu steps: max |logit difference| %.3g (bound %.3g, logits up to %.3g)\n",
           what, positions, samples, prime_len, steps, gap, bound * scale, scale);
    size_t distinct = 0;
    for (size_t k = 0; k < V; k++) distinct += (size_t)seen[k];
    free(a);
    free(b);
    free(prime);
    reel_generator_free(cached);
    reel_generator_free(full);
    return distinct;
}

/* (a) A prime longer than the prime chunk, so the cache is filled in two pieces, then steps up to the last
 * position max_context allows (<eod>, the prime and every token fed back: W tokens read); three samples
 * drawn with a temperature, so each sample's cache holds its own text. */
static void test_cache_long_prime(void **state) {
    (void)state;
    size_t W = 600, prime_len = PRIME_CHUNK + 40, steps = W - 1 - prime_len;
    reel_model *model = make_gpt(W, 100);
    reel_sampling sampling = {.temperature = 1.0, .top_k = 0, .top_p = 1.0, .seed = 11};
    reel_error err = {{0}};
    assert_int_equal(reel_generator_fits(model, 0, prime_len, "--prime", steps, "--length", &err), 0);
    size_t distinct = compare_decoding(model, prime_len, 3, steps, &sampling, "long prime, sampled");
    assert_true(distinct >= 3);
    reel_model_destroy(model);
}

/* (a) Greedy decoding from a short prime to the end of the context: identical tokens. */
static void test_cache_greedy(void **state) {
    (void)state;
    size_t W = 48, prime_len = 5;
    /* (with rotary, the weights of stream 200 repeat one token greedily: another stream) */
    reel_model *model = make_gpt(W, strcmp(positions, "rotary") ? 200 : 250);
    reel_sampling greedy = {.temperature = 0, .top_k = 0, .top_p = 1.0, .seed = 1};
    size_t distinct = compare_decoding(model, prime_len, 2, W - 1 - prime_len, &greedy, "short prime, greedy");
    printf("greedy: %zu different tokens\n", distinct);
    assert_true(distinct >= 2);
    reel_model_destroy(model);
}

/* (a) A prime longer than max_context: both read its last W tokens (<eod> falls off), the cache in two
 * pieces (W > PRIME_CHUNK). The cache is then full, so only the logits after the prime and the first draw
 * are compared; a second prime with one token more shifts the window, and its logits must differ from the
 * first (the comparison is not of two constant outputs). */
static void test_cache_cut_prime(void **state) {
    (void)state;
    size_t W = PRIME_CHUNK + 20, prime_len = W + 30;
    reel_model *model = make_gpt(W, 300);
    reel_sampling sampling = {.temperature = 1.0, .top_k = 0, .top_p = 1.0, .seed = 5};
    compare_decoding(model, prime_len, 2, 0, &sampling, "cut prime");
    /* the cut keeps the LAST W tokens: the same last W - 1 tokens of the prime preceded by <eod> (no cut)
     * read other positions' tokens, so their logits differ from the cut prime's */
    reel_generator *cut, *uncut;
    reel_error err = {{0}};
    assert_int_equal(reel_generator_create(&cut, model, 1, &err), 0);
    assert_int_equal(reel_generator_create(&uncut, model, 1, &err), 0);
    uint32_t *prime = make_prime(prime_len);
    reel_generator_prime(cut, prime, prime_len);
    reel_generator_prime(uncut, prime + prime_len - (W - 1), W - 1);
    double gap = 0, scale = 1;
    logit_gap(reel_generator_logits(cut), reel_generator_logits(uncut), V, &gap, &scale);
    printf("cut prime vs <eod> and its last W - 1 tokens: max |logit difference| %.3g\n", gap);
    assert_true(gap > 1e-3);
    free(prime);
    reel_generator_free(cut);
    reel_generator_free(uncut);
    reel_model_destroy(model);
}

/* (b) Three sequences of 9, 4 and 7 tokens read in one forward, then in two pieces through the cache (split
 * after 5, 1 and 7 tokens: the last sequence's second piece is empty), so every batch is padded. */
static void test_features_in_pieces(void **state) {
    (void)state;
    size_t W = 12;
    reel_model *model = make_gpt(W, 400);
    const size_t lengths[] = {9, 4, 7}, split[] = {5, 1, 7};
    enum { B = 3 };
    uint32_t *text = make_prime(20);
    reel_comm comm;
    reel_comm_self(&comm);
    reel_batch_buffer whole = {0}, piece = {0};
    reel_batch_begin(&whole, B, 0, 0);
    for (size_t b = 0; b < B; b++) {
        uint32_t *ids, *targets;
        reel_batch_append(&whole, lengths[b], 10 + b, &ids, &targets);
        memcpy(ids, text + b, lengths[b] * sizeof *ids);
        memset(targets, 0, lengths[b] * sizeof *targets);
    }
    reel_batch_finish(&whole);
    reel_output out;
    model->ops->forward(model, &whole.batch, 0, &out, &comm);
    assert_int_equal(out.layout, REEL_ROWS_BATCH_MAJOR);
    size_t D = out.features_dim;
    float *expected = calloc(B * W * D, sizeof *expected);
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < lengths[b]; t++)
            memcpy(expected + (b * W + t) * D, out.features + reel_output_row(&out, t, b) * D, D * sizeof(float));
    float *cache = calloc(B * model->decode_width, sizeof *cache);
    double gap = 0, apart = 0, scale = 1;
    for (int second = 0; second < 2; second++) {
        reel_batch_begin(&piece, B, 0, 0);
        for (size_t b = 0; b < B; b++) {
            size_t from = second ? split[b] : 0, to = second ? lengths[b] : split[b];
            uint32_t *ids, *targets;
            reel_batch_append(&piece, to - from, 10 + b, &ids, &targets);
            memcpy(ids, text + b + from, (to - from) * sizeof *ids);
            memset(targets, 0, (to - from) * sizeof *targets);
        }
        reel_batch_finish(&piece);
        piece.batch.state = cache;
        model->ops->forward(model, &piece.batch, 0, &out, &comm);
        for (size_t b = 0; b < B; b++) {
            size_t from = second ? split[b] : 0, to = second ? lengths[b] : split[b];
            for (size_t t = from; t < to; t++)
                logit_gap(expected + (b * W + t) * D, out.features + reel_output_row(&out, t - from, b) * D, D, &gap,
                          &scale);
        }
        if (second) {
            /* the same second pieces read without the cache (from position 0, without what came before)
             * give other features: the comparison above can fail */
            piece.batch.state = NULL;
            model->ops->forward(model, &piece.batch, 0, &out, &comm);
            for (size_t b = 0; b < B; b++)
                for (size_t t = split[b]; t < lengths[b]; t++) {
                    double g = 0, s = 1;
                    logit_gap(expected + (b * W + t) * D, out.features + reel_output_row(&out, t - split[b], b) * D, D,
                              &g, &s);
                    if (g > apart) apart = g;
                }
        }
    }
    /* each cache counts the positions it holds */
    for (size_t b = 0; b < B; b++) assert_int_equal((size_t)cache[b * model->decode_width], lengths[b]);
    printf("features in one forward vs two through the cache (%s): max |difference| %.3g (bound %.3g); without the "
           "cache %.3g\n", positions, gap, logit_bound(W) * scale, apart);
    assert_true(gap <= logit_bound(W) * scale);
    assert_true(apart > 1e-2);
    free(cache);
    free(expected);
    free(text);
    reel_batch_buffer_free(&whole);
    reel_batch_buffer_free(&piece);
    reel_model_destroy(model);
}

/* An evaluation forward of more rows than it runs at once (src/models/gpt.c's EVAL_CHUNK_ROWS, 4,096)
 * goes through the stack a chunk of whole sequences at a time into one batch-major output: each sequence's
 * features must be those it has alone (the same products on fewer rows: within the bound above), and its
 * padding must stay masked. 90 ragged sequences padded to 60 positions: 5,400 rows, two chunks. */
static void test_chunked_evaluation(void **state) {
    (void)state;
    enum { B = 90, W = 64, LONGEST = 60 };
    reel_model *model = make_gpt(W, 500);
    uint32_t *text = make_prime(200);
    reel_comm comm;
    reel_comm_self(&comm);
    reel_batch_buffer all = {0}, one = {0};
    size_t lengths[B];
    reel_batch_begin(&all, B, 0, 0);
    for (size_t b = 0; b < B; b++) {
        lengths[b] = b == 7 ? LONGEST : 1 + (b * 37) % (LONGEST - 1);
        uint32_t *ids, *targets;
        reel_batch_append(&all, lengths[b], b, &ids, &targets);
        memcpy(ids, text + b, lengths[b] * sizeof *ids);
        memset(targets, 0, lengths[b] * sizeof *targets);
    }
    reel_batch_finish(&all);
    reel_output out;
    model->ops->forward(model, &all.batch, 0, &out, &comm);
    assert_int_equal(out.rows, (size_t)B * LONGEST);
    size_t D = out.features_dim;
    float *got = malloc(out.rows * D * sizeof *got);
    uint8_t *mask = malloc(out.rows);
    memcpy(got, out.features, out.rows * D * sizeof *got);
    memcpy(mask, out.row_mask, out.rows);
    reel_output whole = out;
    double gap = 0, scale = 1;
    for (size_t b = 0; b < B; b++) {
        reel_batch_begin(&one, 1, 0, 0);
        uint32_t *ids, *targets;
        reel_batch_append(&one, lengths[b], b, &ids, &targets);
        memcpy(ids, text + b, lengths[b] * sizeof *ids);
        memset(targets, 0, lengths[b] * sizeof *targets);
        reel_batch_finish(&one);
        model->ops->forward(model, &one.batch, 0, &out, &comm);
        for (size_t t = 0; t < LONGEST; t++) {
            size_t row = reel_output_row(&whole, t, b);
            if (mask[row] != (t < lengths[b])) fail_msg("sequence %zu step %zu: row mask %d", b, t, mask[row]);
            if (t < lengths[b]) logit_gap(out.features + reel_output_row(&out, t, 0) * D, got + row * D, D, &gap, &scale);
        }
    }
    printf("chunked evaluation of %zu rows vs each sequence alone: max |difference| %.3g (bound %.3g)\n", whole.rows,
           gap, logit_bound(W) * scale);
    assert_true(gap <= logit_bound(W) * scale);
    free(got);
    free(mask);
    free(text);
    reel_batch_buffer_free(&all);
    reel_batch_buffer_free(&one);
    reel_model_destroy(model);
}

/* Runs a forward of one sequence of `length` tokens after `cached` tokens went through the cache, in a
 * child process; returns its exit status (-1: killed by a signal) and its standard error in msg. */
static int forward_in_child(size_t W, size_t cached, size_t length, char *msg, size_t msg_size) {
    int pipe_fd[2];
    assert_int_equal(pipe(pipe_fd), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipe_fd[0]);
        dup2(pipe_fd[1], 2);
        reel_model *model = make_gpt(W, 500);
        reel_comm comm;
        reel_comm_self(&comm);
        float *cache = calloc(model->decode_width, sizeof *cache);
        uint32_t *text = make_prime(cached + length);
        reel_batch_buffer buf = {0};
        reel_output out;
        for (int part = 0; part < 2; part++) {
            size_t n = part ? length : cached;
            if (!n) continue;
            reel_batch_begin(&buf, 1, 0, 0);
            uint32_t *ids, *targets;
            reel_batch_append(&buf, n, 0, &ids, &targets);
            memcpy(ids, text + (part ? cached : 0), n * sizeof *ids);
            memset(targets, 0, n * sizeof *targets);
            reel_batch_finish(&buf);
            buf.batch.state = cached ? cache : NULL;
            model->ops->forward(model, &buf.batch, 0, &out, &comm);
        }
        _exit(0); /* the forward went through: the parent reports it */
    }
    close(pipe_fd[1]);
    size_t got = 0;
    for (ssize_t r; got + 1 < msg_size && (r = read(pipe_fd[0], msg + got, msg_size - 1 - got)) > 0;) got += (size_t)r;
    msg[got] = '\0';
    close(pipe_fd[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* (c) More positions than max_context is a fatal error with a clear message, not a read past the position
 * table or the cache; exactly max_context is fine. */
static void test_past_max_context(void **state) {
    (void)state;
    char msg[2048];
    assert_int_equal(forward_in_child(8, 0, 8, msg, sizeof msg), 0);
    assert_int_equal(forward_in_child(8, 5, 3, msg, sizeof msg), 0);
    assert_int_equal(forward_in_child(8, 0, 9, msg, sizeof msg), 1);
    printf("9 positions at once: %s", msg);
    assert_non_null(strstr(msg, "reel: error: gpt: sequence 0 of the batch reads 9 positions (0 cached), more than "
                                "its max_context 8"));
    assert_int_equal(forward_in_child(8, 6, 3, msg, sizeof msg), 1);
    printf("3 positions after 6 cached: %s", msg);
    assert_non_null(strstr(msg, "reads 9 positions (6 cached), more than its max_context 8"));
}

/* Setup of the second run of (a) and (b): rotary positions (cmocka names them as the first run; their
 * lines say "rotary"). */
static int use_rotary(void **state) {
    (void)state;
    positions = "rotary";
    return 0;
}

/* One process, communicator MPI_COMM_SELF (MPI is not started), as test_lm. */
int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_long_prime),
        cmocka_unit_test(test_cache_greedy),
        cmocka_unit_test(test_cache_cut_prime),
        cmocka_unit_test(test_features_in_pieces),
        cmocka_unit_test(test_chunked_evaluation),
        cmocka_unit_test(test_past_max_context),
        cmocka_unit_test_setup(test_cache_long_prime, use_rotary),
        cmocka_unit_test_setup(test_cache_greedy, use_rotary),
        cmocka_unit_test_setup(test_features_in_pieces, use_rotary),
        cmocka_unit_test_setup(test_chunked_evaluation, use_rotary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
