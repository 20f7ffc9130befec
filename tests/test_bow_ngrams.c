/* The bag of words' word n-grams and Naive-Bayes ratios (src/models/bow.c), pinned by examples worked out
 * by hand:
 *   - the hash and the row layout: row V + h mod N, h = w0, then h = h * 116049371 + w_k modulo 2^64;
 *   - the features of each document of a batch: its words, its bigrams and trigrams, none across two
 *     documents of the batch, none holding <eod>, <unk> taking part as a word; checked through the
 *     logits against a forward written out here from the rows listed by hand;
 *   - word dropout draws for each n-gram on its own (about half the bigrams of a long document stay at
 *     p = 0.5, not the quarter that tying them to their words would leave);
 *   - the Naive-Bayes ratios of a three-document training file, counted by hand (documents holding a
 *     feature, each once);
 *   - binary features (each distinct word and n-gram once in a document's average) and the linear model
 *     (hidden_dim = 0: the average feeds the output layer), through logits against features listed by hand;
 *   - the initialisation (zero buckets, embed_init_mean) and the configuration errors.
 * The finite-difference, padding and checkpoint checks of the n-gram model are test_models' (a variant of
 * its tiny bow). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reel/catalogue.h"
#include "reel/config.h"
#include "reel/model.h"
#include "reel/tokfile.h"
#include "config_set.h"

#define SCRATCH_TEMPLATE "/tmp/reel_bow_ngrams_XXXXXX"
#include "scratch_dir.h"

enum { V = 10, BUCKETS = 11, E = 2, H = 3 };

static void test_hash_rows(void **state) {
    (void)state;
    /* 5 * 116049371 + 7 = 580246862 = 11 * 52749714 + 8: row 10 + 8 */
    assert_int_equal(reel_bow_ngram_row((const uint32_t[]){5, 7}, 2, V, BUCKETS), 18);
    /* 580246862 * 116049371 + 3 = 67337283359823805 (below 2^64) = 11 * 6121571214529436 + 9: row 19 */
    assert_int_equal(reel_bow_ngram_row((const uint32_t[]){5, 7, 3}, 3, V, BUCKETS), 19);
    /* the order matters: 7 * 116049371 + 5 = 812345602 = 11 * 73849600 + 2: row 12 */
    assert_int_equal(reel_bow_ngram_row((const uint32_t[]){7, 5}, 2, V, BUCKETS), 12);
    /* modulo 2^64: a = 4e9; a * 116049371 + a = 464197488000000000; times 116049371 plus a is
     * 53869826479335744004000000000 = 2920288148 * 2^64 + 2697910859220862976, and the remainder
     * 2697910859220862976 = 11 * 245264623565532997 + 9: row 19 */
    assert_int_equal(reel_bow_ngram_row((const uint32_t[]){4000000000u, 4000000000u, 4000000000u}, 3, V, BUCKETS),
                     19);
}

static reel_model *make_model(reel_config *cfg, const char *extra, size_t max_batch) {
    reel_config_defaults(cfg);
    config_set(cfg, "model.type=bow");
    config_set(cfg, "model.vocab_size=%d", V); /* extra may set another */
    config_set(cfg, "model.embed_dim=%d", E);
    config_set(cfg, "model.hidden_dim=%d", H);
    config_set(cfg, "model.batch_norm=false");
    config_set(cfg, "model.dropout=0");
    for (const char *p = extra; *p;) {
        size_t len = strcspn(p, " ");
        char entry[128];
        assert_true(len < sizeof entry);
        memcpy(entry, p, len);
        entry[len] = '\0';
        config_set(cfg, "model.%s", entry);
        p += len;
        while (*p == ' ') p++;
    }
    reel_model *model;
    reel_error err = {{0}};
    if (reel_model_create(&model, cfg, max_batch, &err) != 0) fail_msg("%s", err.message);
    model->ops->init(model, 3);
    return model;
}

static float *tensor(reel_model *model, const char *name) {
    size_t index = reel_store_find(&model->params, name);
    assert_true(index != (size_t)-1);
    return reel_store_view(&model->params, index);
}

/* Every parameter a distinct value, so that a wrong row changes the logits. */
static void spread(reel_model *model) {
    for (size_t i = 0; i < model->params.num_floats; i++)
        model->params.data[i] = (float)sin(1.0 + 0.7 * (double)i) * 0.9f;
}

/* The logit of a document whose features are rows[0..n-1] (weights ratio, NULL: 1), written out. */
static float expected_logit(reel_model *model, const size_t *rows, size_t n, const float *ratio) {
    const float *embedding = tensor(model, "embedding/weight"), *hw = tensor(model, "hidden/weight"),
                *hb = tensor(model, "hidden/bias"), *ow = tensor(model, "output/weight"), *ob = tensor(model, "output/bias");
    double mean[E] = {0}, logit = ob[0];
    for (size_t i = 0; i < n; i++)
        for (size_t e = 0; e < E; e++) mean[e] += (ratio ? ratio[rows[i]] : 1.0) * embedding[rows[i] * E + e] / (double)n;
    for (size_t h = 0; h < H; h++) {
        double z = hb[h];
        for (size_t e = 0; e < E; e++) z += hw[h * E + e] * mean[e];
        logit += ow[h] * (z > 0 ? z : 0);
    }
    return (float)logit;
}

/* Four documents: 5 7 3 | 4 1 | 6 2 8 | 9 (1 = <unk>, 2 = <eod>). Their features, by hand:
 *   5 7 3: words 5 7 3; bigrams 5 7 -> 18 and 7 3 -> 7 * 116049371 + 3 = 812345600 = 11 * 73849600 + 0 -> 10;
 *          trigram 5 7 3 -> 19 (test_hash_rows)
 *   4 1:   words 4 1; bigram 4 <unk> -> 4 * 116049371 + 1 = 464197485 = 11 * 42199771 + 4 -> 14. Across the
 *          documents the bigram 3 4 (-> 19) and the trigram 7 3 4 would join two reviews: not features.
 *   6 2 8: words 6 2 8; every n-gram holds <eod>: none
 *   9:     the word alone */
static const uint32_t ids[] = {5, 7, 3, 4, 1, 6, 2, 8, 9};
static const size_t offsets[] = {0, 3, 5, 8, 9};
static const size_t rows0[] = {5, 7, 3, 18, 10, 19}, rows1[] = {4, 1, 14}, rows2[] = {6, 2, 8}, rows3[] = {9};
static const size_t *const doc_rows[] = {rows0, rows1, rows2, rows3};
static const size_t doc_counts[] = {6, 3, 3, 1};

static void check_logits(reel_model *model, const float *ratio) {
    static const uint64_t samples[] = {0, 1, 2, 3};
    reel_batch batch = {.size = 4, .ids = ids, .offsets = offsets, .sample_index = samples};
    reel_comm comm;
    reel_comm_self(&comm);
    reel_output out;
    model->ops->forward(model, &batch, 0, &out, &comm);
    for (size_t b = 0; b < 4; b++) {
        float want = expected_logit(model, doc_rows[b], doc_counts[b], ratio);
        if (fabsf(out.logits[b] - want) > 1e-5f * (1.0f + fabsf(want)))
            fail_msg("document %zu: logit %.7g, the hand-listed features give %.7g", b, out.logits[b], want);
    }
}

static void test_features(void **state) {
    (void)state;
    reel_config cfg;
    reel_model *model = make_model(&cfg, "ngrams=3 ngram_buckets=11", 4);
    assert_int_equal(model->params.tensors[reel_store_find(&model->params, "embedding/weight")].shape[0], V + BUCKETS);
    spread(model);
    check_logits(model, NULL);
    reel_model_destroy(model);
}

/* The same with Naive-Bayes weights: each row's contribution scaled by its ratio. */
static void test_weighted_features(void **state) {
    (void)state;
    reel_config cfg;
    reel_model *model = make_model(&cfg, "ngrams=3 ngram_buckets=11 nb_scaling=true", 4);
    spread(model);
    size_t index = reel_store_find(&model->state, "nb/ratio");
    assert_true(index != (size_t)-1);
    float *ratio = reel_store_view(&model->state, index);
    for (size_t f = 0; f < V + BUCKETS; f++) ratio[f] = (float)f / 7.0f - 1.2f;
    check_logits(model, ratio);
    reel_model_destroy(model);
}

/* Binary features in the linear model, two documents in one batch (so the marks of distinct rows must
 * start over for the second):
 *   5 7 5 7 5: words 5 7 5 7 5 and bigrams 5 7 -> 18, 7 5 -> 12 (test_hash_rows), 5 7 -> 18, 7 5 -> 12;
 *              distinct: 5 7 18 12
 *   7 7:       words 7 7, bigram 7 7 -> 7 * 116049371 + 7 = 812345604 = 11 * 73849600 + 4 -> 14; distinct: 7 14
 * The logit of the linear model is out_b + sum_e out_w[e] mean[e], mean the ratio-weighted average of the
 * rows; without binary the repeated features count as often as they occur. */
static float linear_logit(reel_model *model, const size_t *rows, size_t n, const float *ratio) {
    const float *embedding = tensor(model, "embedding/weight"), *ow = tensor(model, "output/weight"),
                *ob = tensor(model, "output/bias");
    double logit = ob[0];
    for (size_t i = 0; i < n; i++)
        for (size_t e = 0; e < E; e++) logit += ow[e] * ratio[rows[i]] * embedding[rows[i] * E + e] / (double)n;
    return (float)logit;
}

static void check_linear(int binary) {
    static const uint32_t doc_ids[] = {5, 7, 5, 7, 5, 7, 7};
    static const size_t doc_offsets[] = {0, 5, 7}, distinct0[] = {5, 7, 18, 12}, distinct1[] = {7, 14},
                        all0[] = {5, 7, 5, 7, 5, 18, 12, 18, 12}, all1[] = {7, 7, 14};
    static const uint64_t samples[] = {0, 1};
    reel_config cfg;
    reel_model *model = make_model(&cfg, binary ? "hidden_dim=0 ngrams=2 ngram_buckets=11 nb_scaling=true binary=true"
                                                : "hidden_dim=0 ngrams=2 ngram_buckets=11 nb_scaling=true", 2);
    assert_int_equal(reel_store_find(&model->params, "hidden/weight"), (size_t)-1); /* no hidden layer */
    assert_int_equal(model->params.tensors[reel_store_find(&model->params, "output/weight")].shape[1], E);
    spread(model);
    float *ratio = reel_store_view(&model->state, reel_store_find(&model->state, "nb/ratio"));
    for (size_t f = 0; f < V + BUCKETS; f++) ratio[f] = (float)f / 5.0f - 1.7f;
    reel_batch batch = {.size = 2, .ids = doc_ids, .offsets = doc_offsets, .sample_index = samples};
    reel_comm comm;
    reel_comm_self(&comm);
    reel_output out;
    model->ops->forward(model, &batch, 0, &out, &comm);
    float want[2] = {binary ? linear_logit(model, distinct0, 4, ratio) : linear_logit(model, all0, 9, ratio),
                     binary ? linear_logit(model, distinct1, 2, ratio) : linear_logit(model, all1, 3, ratio)};
    for (size_t b = 0; b < 2; b++)
        if (fabsf(out.logits[b] - want[b]) > 1e-5f * (1.0f + fabsf(want[b])))
            fail_msg("binary = %d, document %zu: logit %.7g, the hand-listed features give %.7g", binary, b,
                     out.logits[b], want[b]);
    reel_model_destroy(model);
}

static void test_linear_binary(void **state) {
    (void)state;
    check_linear(1);
    check_linear(0);
}

/* Word dropout on n-grams: one training forward and backward on a document of 400 distinct words (so 399
 * distinct bigrams), with 100,003 buckets (the expected number of bigrams sharing a row is below one); the
 * bigrams kept are the non-zero bucket rows of the embedding gradient. Each bigram draws on its own:
 * about half stay at word_dropout = 0.5 (binomial, 200 +- 10); tied to its words, a bigram would stay
 * only when both stay, about a quarter (100). */
static size_t bigram_rows_kept(double word_dropout) {
    enum { LENGTH = 400, WORDS = 1000, MANY = 100003 };
    reel_config cfg;
    char extra[160];
    snprintf(extra, sizeof extra, "vocab_size=%d ngrams=2 ngram_buckets=%d word_dropout=%g", WORDS, MANY, word_dropout);
    reel_model *model = make_model(&cfg, extra, 1);
    spread(model);
    uint32_t doc[LENGTH];
    for (size_t t = 0; t < LENGTH; t++) doc[t] = (uint32_t)(3 + t);
    const size_t offs[] = {0, LENGTH};
    const uint64_t sample[] = {12};
    reel_batch batch = {.size = 1, .ids = doc, .offsets = offs, .sample_index = sample, .epoch = 2};
    reel_comm comm;
    reel_comm_self(&comm);
    reel_output out;
    memset(model->params.grad, 0, model->params.num_floats * sizeof(float));
    model->ops->forward(model, &batch, 1, &out, &comm);
    float dlogit = 1.0f;
    model->ops->backward(model, &batch, &dlogit, &comm);
    const float *grad = model->params.grad + model->params.tensors[reel_store_find(&model->params, "embedding/weight")].offset;
    size_t kept = 0;
    for (size_t r = WORDS; r < WORDS + MANY; r++) kept += grad[r * E] != 0.0f || grad[r * E + 1] != 0.0f;
    reel_model_destroy(model);
    return kept;
}

static void test_ngram_dropout(void **state) {
    (void)state;
    size_t all = bigram_rows_kept(0.0), kept = bigram_rows_kept(0.5);
    printf("bigram rows of 399 bigrams: %zu without word dropout, %zu kept at 0.5\n", all, kept);
    assert_true(all >= 397 && all <= 399); /* a collision or two at most */
    if (kept < 160 || kept > 240)
        fail_msg("%zu of %zu bigrams kept at word_dropout 0.5: each should stay with probability 0.5 on its own",
                 kept, all);
}

/* Naive-Bayes ratios of three training documents (tokfile vocabulary 12, model vocab_size 10, so id 11 is
 * <unk> to the model), ngrams = 2, 11 buckets:
 *   label 1: 5 5 7    words 5, 7; bigrams 5 5 -> 5 * 116049371 + 5 = 580246860 = 11 * 52749714 + 6 -> 16,
 *                     5 7 -> 18
 *   label 1: 5 11     words 5, <unk>; bigram 5 <unk> -> 580246856 = 11 * 52749714 + 2 -> 12
 *   label 0: 7 3      words 7, 3; bigram 7 3 -> 10
 * p (documents of class 1 holding the row, each once): 5: 2, 7: 1, <unk>: 1, 16: 1, 18: 1, 12: 1 (sum 7);
 * q: 7: 1, 3: 1, 10: 1 (sum 3). Over the 21 rows, sum (p + 1) = 28 and sum (q + 1) = 24, so
 *   ratio = log((p + 1) / 28) - log((q + 1) / 24) = log(24 (p + 1) / (28 (q + 1))):
 *   5: log(72/28), 7: log(48/56), 3: log(24/56), <unk>: log(48/28), 16: log(48/28), 10: log(24/56),
 *   a row no document holds (0, 9, 20): log(24/28). */
static void test_nb_ratios(void **state) {
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/train.tok", tmp_dir);
    reel_error err = {{0}};
    reel_tokfile_writer *w;
    assert_int_equal(reel_tokfile_writer_open(&w, path, 3, 7, 12, 2, 0, &err), 0);
    assert_int_equal(reel_tokfile_writer_add(w, (const uint32_t[]){5, 5, 7}, 3, 1, &err), 0);
    assert_int_equal(reel_tokfile_writer_add(w, (const uint32_t[]){5, 11}, 2, 1, &err), 0);
    assert_int_equal(reel_tokfile_writer_add(w, (const uint32_t[]){7, 3}, 2, 0, &err), 0);
    assert_int_equal(reel_tokfile_writer_finish(w, &err), 0);
    reel_tokfile *file;
    assert_int_equal(reel_tokfile_open(&file, path, &err), 0);
    reel_config cfg;
    reel_model *model = make_model(&cfg, "ngrams=2 ngram_buckets=11 nb_scaling=true", 4);
    if (model->ops->prepare(model, file, &err) != 0) fail_msg("%s", err.message);
    const float *ratio = reel_store_view(&model->state, reel_store_find(&model->state, "nb/ratio"));
    const struct {
        size_t row;
        double want;
    } expected[] = {{5, log(72.0 / 28)}, {7, log(48.0 / 56)}, {3, log(24.0 / 56)}, {1, log(48.0 / 28)},
                    {16, log(48.0 / 28)}, {18, log(48.0 / 28)}, {12, log(48.0 / 28)}, {10, log(24.0 / 56)},
                    {0, log(24.0 / 28)}, {9, log(24.0 / 28)}, {20, log(24.0 / 28)}};
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        if (fabs(ratio[expected[i].row] - expected[i].want) > 1e-6)
            fail_msg("ratio of row %zu: %.7g, by hand %.7g", expected[i].row, ratio[expected[i].row], expected[i].want);
    reel_model_destroy(model);
    /* three classes (three logits): the ratios are defined for two, refused by name */
    model = make_model(&cfg, "ngrams=2 ngram_buckets=11 nb_scaling=true num_classes=3", 4);
    assert_int_equal(model->ops->prepare(model, file, &err), -1);
    if (!strstr(err.message, "[model] nb_scaling = true needs two classes")) fail_msg("%s", err.message);
    reel_model_destroy(model);
    reel_tokfile_close(file);
}

/* The initialisation: bucket rows start at 0 under the words' normal noise; embed_init_mean moves every
 * row, words and buckets. */
static void test_init(void **state) {
    (void)state;
    reel_config cfg;
    reel_model *model = make_model(&cfg, "ngrams=2 ngram_buckets=11 embed_init_std=0.5", 4);
    const float *table = tensor(model, "embedding/weight");
    double sum2 = 0;
    for (size_t i = 0; i < V * E; i++) sum2 += (double)table[i] * table[i];
    for (size_t i = V * E; i < (V + BUCKETS) * E; i++)
        if (table[i] != 0.0f) fail_msg("bucket entry %zu starts at %g, not 0", i - V * E, table[i]);
    assert_true(sum2 > 0);
    reel_model_destroy(model);
    model = make_model(&cfg, "ngrams=2 ngram_buckets=11 embed_init_std=0 embed_init_mean=0.75", 4);
    table = tensor(model, "embedding/weight");
    for (size_t i = 0; i < (V + BUCKETS) * E; i++)
        if (table[i] != 0.75f) fail_msg("entry %zu starts at %g, not embed_init_mean 0.75", i, table[i]);
    reel_model_destroy(model);
}

static void expect_refused(const char *extra, const char *pattern) {
    reel_config cfg;
    reel_config_defaults(&cfg);
    config_set(&cfg, "model.type=bow");
    config_set(&cfg, "model.vocab_size=%d", V);
    char assignment[128];
    for (const char *p = extra; *p;) {
        size_t len = strcspn(p, " ");
        snprintf(assignment, sizeof assignment, "model.%.*s", (int)len, p);
        config_set(&cfg, "%s", assignment);
        p += len;
        while (*p == ' ') p++;
    }
    reel_model *model = NULL;
    reel_error err = {{0}};
    if (reel_model_create(&model, &cfg, 4, &err) == 0) fail_msg("%s: accepted", extra);
    if (!strstr(err.message, pattern)) fail_msg("%s: the error '%s' does not say '%s'", extra, err.message, pattern);
    printf("%s: %s\n", extra, err.message);
}

static void test_bad_config(void **state) {
    (void)state;
    expect_refused("ngrams=4 ngram_buckets=5", "[model] ngrams = 4: use 1 (words), 2 (and bigrams) or 3");
    expect_refused("ngrams=2", "[model] ngrams = 2 needs ngram_buckets");
    expect_refused("ngram_buckets=100", "[model] ngram_buckets = 100 with ngrams = 1");
    expect_refused("ngrams=2 ngram_buckets=4294967290", "vocab_size + ngram_buckets must stay below 2^32");
    /* a linear model has no hidden layer for batch norm or dropout (both on by default) */
    expect_refused("hidden_dim=0", "[model] hidden_dim = 0 (a linear model, no hidden layer) with batch_norm = true");
    expect_refused("hidden_dim=0 batch_norm=false", "with dropout = 0.5: dropout zeroes hidden units; set dropout = 0");
    reel_config cfg;
    reel_config_defaults(&cfg);
    reel_error err = {{0}};
    if (reel_config_override(&cfg, "model.ngrams=0", &err) == 0) fail_msg("ngrams = 0 accepted");
    printf("ngrams=0: %s\n", err.message);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_rows),        cmocka_unit_test(test_features),
        cmocka_unit_test(test_weighted_features), cmocka_unit_test(test_ngram_dropout),
        cmocka_unit_test(test_nb_ratios),        cmocka_unit_test(test_init),
        cmocka_unit_test(test_bad_config),       cmocka_unit_test(test_linear_binary),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
