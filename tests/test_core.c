/* Counter-based RNG, epoch shuffle, rank shares and the optimizers, against independent references; the
 * UTF-8 check and the escaping of quoted bytes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reel/catalogue.h"
#include "reel/config.h"
#include "reel/data.h"
#include "reel/optim.h"
#include "reel/params.h"
#include "reel/rng.h"
#include "reel/util.h"

static void test_philox_known_answers(void **state) {
    (void)state;
    /* Philox4x32-10 known-answer vectors published with Random123 (kat_vectors):
     * counter 0, key 0 and counter all-ones, key all-ones. */
    uint32_t out[4];
    reel_rng_block(out, 0, 0, 0, 0, 0);
    assert_int_equal(out[0], 0x6627e8d5u);
    assert_int_equal(out[1], 0xe169c58du);
    assert_int_equal(out[2], 0xbc57ac4cu);
    assert_int_equal(out[3], 0x9b00dbd8u);
    reel_rng_block(out, UINT64_MAX, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
    assert_int_equal(out[0], 0x408f276du);
    assert_int_equal(out[1], 0x41c83b0eu);
    assert_int_equal(out[2], 0xa20bc7c6u);
    assert_int_equal(out[3], 0x6d5451fdu);
}

static void test_shuffle(void **state) {
    (void)state;
    enum { N = 1000 };
    uint64_t a[N], b[N], c[N];
    reel_shuffle(a, N, 42, 0);
    reel_shuffle(b, N, 42, 0);
    reel_shuffle(c, N, 42, 1);
    assert_memory_equal(a, b, sizeof a); /* deterministic */
    assert_memory_not_equal(a, c, sizeof a); /* differs per epoch */
    char seen[N] = {0};
    size_t fixed_points = 0;
    for (size_t i = 0; i < N; i++) {
        assert_true(a[i] < N);
        assert_false(seen[a[i]]);
        seen[a[i]] = 1;
        fixed_points += a[i] == i;
    }
    assert_true(fixed_points < 10); /* a real shuffle has about one fixed point */
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void test_rank_share_covers_batch(void **state) {
    (void)state;
    for (size_t total = 0; total < 30; total++)
        for (int size = 1; size <= 7; size++) {
            size_t next = 0, smallest = SIZE_MAX, largest = 0;
            for (int rank = 0; rank < size; rank++) {
                size_t begin, count;
                reel_rank_share(total, rank, size, &begin, &count);
                assert_int_equal(begin, next); /* contiguous, in rank order */
                next = begin + count;
                if (count < smallest) smallest = count;
                if (count > largest) largest = count;
            }
            assert_int_equal(next, total);
            assert_true(largest - smallest <= 1);
        }
}

/* Length buckets: a permutation of the epoch's order; pools of K batches whose batches span narrow
 * length ranges (every batch of a pool lies inside the pool's sorted run of its size); deterministic;
 * the epoch's short last batch stays last; another epoch gives another order. */
static void test_length_buckets(void **state) {
    (void)state;
    enum { DOCS = 1030, BATCH = 20, K = 8 };
    uint64_t lengths[DOCS], order[DOCS], again[DOCS], other[DOCS], scratch[K * (BATCH + 1)];
    for (size_t i = 0; i < DOCS; i++) {
        uint32_t w[4];
        reel_rng_block(w, 5, REEL_RNG_SYNTH, (uint32_t)i, 0, 0);
        lengths[i] = 3 + w[0] % 200;
    }
    reel_shuffle(order, DOCS, 42, 3);
    uint64_t shuffled[DOCS];
    memcpy(shuffled, order, sizeof order);
    memcpy(again, order, sizeof order);
    reel_shuffle(other, DOCS, 42, 4);
    reel_bucket_by_length(order, DOCS, lengths, BATCH, K, 42, 3, scratch);
    reel_bucket_by_length(again, DOCS, lengths, BATCH, K, 42, 3, scratch);
    reel_bucket_by_length(other, DOCS, lengths, BATCH, K, 42, 4, scratch);
    assert_memory_equal(order, again, sizeof order);
    assert_memory_not_equal(order, other, sizeof order);
    /* each pool holds the same documents as before, and every batch is a run of the pool's sorted lengths */
    uint64_t spread_sum = 0, batches = 0;
    for (size_t start = 0; start < DOCS; start += K * BATCH) {
        size_t count = DOCS - start < K * BATCH ? DOCS - start : K * BATCH;
        uint64_t before[K * BATCH], after[K * BATCH], sorted_lengths[K * BATCH];
        memcpy(before, shuffled + start, count * sizeof *before);
        memcpy(after, order + start, count * sizeof *after);
        qsort(before, count, sizeof *before, compare_u64);
        qsort(after, count, sizeof *after, compare_u64);
        assert_memory_equal(before, after, count * sizeof *before);
        for (size_t i = 0; i < count; i++) sorted_lengths[i] = lengths[order[start + i]];
        qsort(sorted_lengths, count, sizeof *sorted_lengths, compare_u64);
        for (size_t first = 0; first < count; first += BATCH) {
            size_t rows = count - first < BATCH ? count - first : BATCH;
            uint64_t low = UINT64_MAX, high = 0;
            for (size_t i = 0; i < rows; i++) {
                uint64_t length = lengths[order[start + first + i]];
                low = length < low ? length : low;
                high = length > high ? length : high;
            }
            /* the batch's lengths are `rows` consecutive values of the pool's sorted lengths */
            int found = 0;
            for (size_t at = 0; at + rows <= count && !found; at++)
                found = sorted_lengths[at] == low && sorted_lengths[at + rows - 1] == high;
            assert_true(found);
            spread_sum += high - low;
            batches++;
        }
    }
    /* random batches of 20 from 3..202 span about 180; sorted runs of a pool of 160, about 25 */
    assert_true(spread_sum / batches < 40);
    /* the short last batch (1030 = 51 * 20 + 10) is still the last 10 positions: the pool's longest 10 */
    uint64_t last_pool_min_of_last = UINT64_MAX;
    for (size_t i = DOCS - 10; i < DOCS; i++)
        if (lengths[order[i]] < last_pool_min_of_last) last_pool_min_of_last = lengths[order[i]];
    for (size_t i = 960; i < DOCS - 10; i++) assert_true(lengths[order[i]] <= last_pool_min_of_last);
}

static void make_store(reel_store *store, float value, float gradient) {
    reel_store_init(store, 1);
    reel_store_add(store, "w", 1, (size_t[]){3});
    reel_store_allocate(store);
    for (size_t i = 0; i < 3; i++) {
        store->data[i] = value * (float)(i + 1);
        store->grad[i] = gradient * (float)(i + 1);
    }
}

/* The optimizer both Adam tests check: AdamW with weight decay 0.01, the other settings the defaults. */
static void adamw_config(reel_config *cfg) {
    reel_config_defaults(cfg);
    snprintf(cfg->optimizer.type, sizeof cfg->optimizer.type, "adam");
    cfg->optimizer.weight_decay = 0.01;
}

static void test_adam_matches_formula(void **state) {
    (void)state;
    reel_config cfg;
    adamw_config(&cfg);
    reel_store store;
    make_store(&store, 1.0f, 0.5f);
    reel_optimizer opt;
    reel_optimizer_init(&opt, &cfg, &store);
    /* Two steps with gradient g_i = 0.5 (i+1), written out in double from the AdamW definition. */
    double p[3] = {1, 2, 3}, m[3] = {0}, v[3] = {0};
    for (int t = 1; t <= 2; t++) {
        reel_optimizer_step(&opt, &store, 1e-2);
        for (int i = 0; i < 3; i++) {
            double g = 0.5 * (i + 1);
            p[i] -= 1e-2 * 0.01 * p[i];
            m[i] = 0.9 * m[i] + 0.1 * g;
            v[i] = 0.999 * v[i] + 0.001 * g * g;
            double mhat = m[i] / (1 - pow(0.9, t)), vhat = v[i] / (1 - pow(0.999, t));
            p[i] -= 1e-2 * mhat / (sqrt(vhat) + 1e-8);
        }
    }
    for (int i = 0; i < 3; i++) assert_float_equal(store.data[i], p[i], 1e-6);
    assert_int_equal(opt.steps_taken, 2);
    reel_optimizer_free(&opt);
    reel_store_free(&store);
}

/* Per-tensor rates: a frozen tensor (scale 0) keeps its values and gets no state; a tensor at half the
 * rate follows AdamW at lr / 2; one unfrozen after a step starts its bias correction at its own first
 * update (as PyTorch's per-parameter step count does). */
static void test_adam_per_tensor_rates(void **state) {
    (void)state;
    reel_config cfg;
    adamw_config(&cfg);
    reel_store store;
    reel_store_init(&store, 1);
    reel_store_add(&store, "low/w", 1, (size_t[]){2});
    reel_store_add(&store, "mid/w", 1, (size_t[]){2});
    reel_store_add(&store, "top/w", 1, (size_t[]){2});
    reel_store_allocate(&store);
    for (size_t i = 0; i < 6; i++) {
        store.data[i] = 1.0f + (float)i;
        store.grad[i] = 0.25f * (float)(i + 1);
    }
    reel_optimizer opt;
    reel_optimizer_init(&opt, &cfg, &store);
    double p[6], m[6] = {0}, v[6] = {0};
    for (int i = 0; i < 6; i++) p[i] = 1.0 + i;
    int t_of[3] = {0, 0, 0};
    for (int step = 1; step <= 3; step++) {
        /* low frozen throughout, mid at half the rate, top at the full rate but frozen for step 1 */
        opt.lr_scale[0] = 0.0f, opt.lr_scale[1] = 0.5f, opt.lr_scale[2] = step == 1 ? 0.0f : 1.0f;
        reel_optimizer_step(&opt, &store, 1e-2);
        for (int k = 1; k < 3; k++) {
            if (opt.lr_scale[k] == 0.0f) continue;
            int t = ++t_of[k];
            double lr = 1e-2 * opt.lr_scale[k];
            for (int i = 2 * k; i < 2 * k + 2; i++) {
                double g = 0.25 * (i + 1);
                p[i] -= lr * 0.01 * p[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                p[i] -= lr * (m[i] / (1 - pow(0.9, t))) / (sqrt(v[i] / (1 - pow(0.999, t))) + 1e-8);
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        assert_true(store.data[i] == (float)(1 + i)); /* frozen: untouched */
        assert_true(opt.slots[0][i] == 0.0f && opt.slots[1][i] == 0.0f); /* and no optimizer state */
    }
    for (int i = 2; i < 6; i++) assert_float_equal(store.data[i], p[i], 1e-6);
    assert_int_equal(opt.steps_taken, 3);
    assert_int_equal(opt.tensor_steps[0], 0);
    assert_int_equal(opt.tensor_steps[1], 3);
    assert_int_equal(opt.tensor_steps[2], 2);
    reel_optimizer_free(&opt);
    reel_store_free(&store);
}

/* Lazy Adam ([optimizer] lazy_embedding): an embedding of 4 rows of 3 and a matrix "other/w" of the same
 * shape, two AdamW steps; row 1 of the embedding has a gradient at step 1 only, row 3 never, rows 0 and 2
 * at both. The rows with a gradient follow the dense update bit for bit (the same arithmetic: a store
 * stepped without the option beside it); a row without one keeps its value and moments (no moment decay,
 * no weight decay), so row 1 after step 2 is its value after step 1; the other tensor is dense as before
 * (its zero-gradient row still decays); and the default keeps every row dense. */
static void test_adam_lazy_embedding(void **state) {
    (void)state;
    reel_store stores[2];
    reel_optimizer opts[2];
    reel_config cfg;
    for (int lazy = 0; lazy < 2; lazy++) {
        adamw_config(&cfg);
        cfg.optimizer.lazy_embedding = lazy;
        reel_store *store = &stores[lazy];
        reel_store_init(store, 1);
        reel_store_add(store, REEL_TENSOR_EMBEDDING, 2, (size_t[]){4, 3});
        reel_store_add(store, "other/w", 2, (size_t[]){4, 3});
        reel_store_allocate(store);
        for (size_t i = 0; i < 24; i++) store->data[i] = 0.5f + 0.125f * (float)i;
        reel_optimizer_init(&opts[lazy], &cfg, store);
    }
    float after_step1[2][3];
    for (int step = 1; step <= 2; step++)
        for (int lazy = 0; lazy < 2; lazy++) {
            reel_store *store = &stores[lazy];
            for (size_t i = 0; i < 24; i++) {
                size_t row = (i % 12) / 3;
                int has = row == 0 || row == 2 || (row == 1 && step == 1);
                store->grad[i] = has ? 0.25f * (float)(i + 1) * (step == 2 ? -1.0f : 1.0f) : 0.0f;
            }
            reel_optimizer_step(&opts[lazy], store, 1e-2);
            if (step == 1) memcpy(after_step1[lazy], store->data + 3, sizeof after_step1[lazy]);
        }
    const reel_store *dense = &stores[0], *lazy = &stores[1];
    const float *dm = opts[0].slots[0], *lm = opts[1].slots[0], *lv = opts[1].slots[1];
    for (size_t i = 0; i < 12; i++) {
        size_t row = i / 3;
        if (row == 0 || row == 2) {
            assert_memory_equal(&lazy->data[i], &dense->data[i], sizeof(float)); /* stepped as dense */
            assert_memory_equal(&lm[i], &dm[i], sizeof(float));
        } else if (row == 1) {
            assert_memory_equal(&lazy->data[i], &after_step1[1][i - 3], sizeof(float)); /* waited at step 2 */
            assert_memory_equal(&after_step1[1][i - 3], &after_step1[0][i - 3], sizeof(float));
            if (lazy->data[i] == dense->data[i]) fail_msg("row 1 moved at step 2 under lazy_embedding");
            assert_true(lm[i] != 0.0f && dm[i] == 0.9f * lm[i]); /* its first moment did not decay */
        } else {
            assert_true(lazy->data[i] == 0.5f + 0.125f * (float)i); /* never a gradient: untouched */
            assert_true(lm[i] == 0.0f && lv[i] == 0.0f);
            if (dense->data[i] == lazy->data[i]) fail_msg("the dense step left row 3 undecayed: the test checks nothing");
        }
    }
    /* the other tensor: dense in both, bit for bit */
    assert_memory_equal(lazy->data + 12, dense->data + 12, 12 * sizeof(float));
    for (int k = 0; k < 2; k++) {
        reel_optimizer_free(&opts[k]);
        reel_store_free(&stores[k]);
    }
    /* only adam has it */
    adamw_config(&cfg);
    cfg.optimizer.lazy_embedding = 1;
    snprintf(cfg.optimizer.type, sizeof cfg.optimizer.type, "sgd");
    reel_error err = {{0}};
    assert_int_equal(reel_optimizer_check(&cfg, &err), -1);
    assert_non_null(strstr(err.message, "[optimizer] lazy_embedding = true with type = sgd: only adam"));
}

/* Weight decay per tensor: four tensors, the embedding, a matrix, a bias and a norm gain the model marked
 * as not decaying; under each [optimizer] decay setting two AdamW steps must follow the formula with the
 * decay term for exactly the tensors that setting names, and the plain Adam formula for the others. */
static void test_adam_decay_per_tensor(void **state) {
    (void)state;
    static const struct {
        const char *mode;
        int decay_embedding;
        int expected[4]; /* embedding, matrix, bias, gain */
    } cases[] = {
        {"model", 0, {1, 1, 1, 0}},
        {"all", 0, {1, 1, 1, 1}},
        {"matrices", 0, {0, 1, 0, 0}},
        {"matrices", 1, {1, 1, 0, 0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        reel_config cfg;
        adamw_config(&cfg);
        cfg.optimizer.weight_decay = 0.5; /* large, so the decay term is far above float rounding */
        snprintf(cfg.optimizer.decay, sizeof cfg.optimizer.decay, "%s", cases[c].mode);
        cfg.optimizer.decay_embedding = cases[c].decay_embedding;
        reel_store store;
        reel_store_init(&store, 1);
        size_t first[5];
        first[0] = 0;
        reel_store_add(&store, REEL_TENSOR_EMBEDDING, 2, (size_t[]){3, 2});
        reel_store_add(&store, "hidden/weight", 2, (size_t[]){2, 2});
        reel_store_add(&store, "hidden/bias", 1, (size_t[]){2});
        size_t gain = reel_store_add(&store, "norm/gain", 1, (size_t[]){2});
        reel_store_set_decay(&store, gain, 0);
        reel_store_allocate(&store);
        for (size_t t = 0; t < 4; t++) first[t + 1] = first[t] + store.tensors[t].count;
        double p[14], m[14] = {0}, v[14] = {0};
        for (size_t i = 0; i < store.num_floats; i++) {
            p[i] = store.data[i] = 0.5f + 0.25f * (float)i;
            store.grad[i] = 0.125f * (float)(i % 5 + 1) * (i % 2 ? -1.0f : 1.0f);
        }
        reel_optimizer opt;
        reel_optimizer_init(&opt, &cfg, &store);
        for (size_t t = 0; t < 4; t++) assert_int_equal(opt.decays[t], cases[c].expected[t]);
        for (int step = 1; step <= 2; step++) {
            reel_optimizer_step(&opt, &store, 1e-2);
            for (size_t t = 0; t < 4; t++)
                for (size_t i = first[t]; i < first[t + 1]; i++) {
                    double g = store.grad[i];
                    if (cases[c].expected[t]) p[i] -= 1e-2 * 0.5 * p[i];
                    m[i] = 0.9 * m[i] + 0.1 * g;
                    v[i] = 0.999 * v[i] + 0.001 * g * g;
                    p[i] -= 1e-2 * (m[i] / (1 - pow(0.9, step))) / (sqrt(v[i] / (1 - pow(0.999, step))) + 1e-8);
                }
        }
        /* the decay term moves a value by 5e-3 of itself (at least 2.5e-3) per step: 1e-5 tells the two formulas
         * apart and leaves room for float rounding */
        for (size_t i = 0; i < store.num_floats; i++) assert_float_equal(store.data[i], p[i], 1e-5);
        reel_optimizer_free(&opt);
        reel_store_free(&store);
    }
}

/* decay_embedding only means something with decay = matrices: given with another mode it is an error
 * naming both keys. */
static void test_decay_embedding_needs_matrices(void **state) {
    (void)state;
    reel_config cfg;
    adamw_config(&cfg);
    reel_error err = {{0}};
    assert_int_equal(reel_optimizer_check(&cfg, &err), 0); /* not given: fine */
    int index = reel_config_key_index(&cfg, "optimizer.decay_embedding");
    assert_true(index >= 0);
    cfg.line_of[index] = 3;
    cfg.optimizer.decay_embedding = 1;
    assert_int_equal(reel_optimizer_check(&cfg, &err), -1);
    assert_non_null(strstr(err.message, "decay_embedding"));
    assert_non_null(strstr(err.message, "decay = model"));
    snprintf(cfg.optimizer.decay, sizeof cfg.optimizer.decay, "matrices");
    assert_int_equal(reel_optimizer_check(&cfg, &err), 0);
}

static void test_sgd_momentum_matches_formula(void **state) {
    (void)state;
    for (int nesterov = 0; nesterov <= 1; nesterov++) {
        reel_config cfg;
        reel_config_defaults(&cfg);
        snprintf(cfg.optimizer.type, sizeof cfg.optimizer.type, "sgd");
        cfg.optimizer.momentum = 0.9;
        cfg.optimizer.nesterov = nesterov;
        cfg.optimizer.weight_decay = 0.1;
        reel_store store;
        make_store(&store, 1.0f, 0.5f);
        reel_optimizer opt;
        reel_optimizer_init(&opt, &cfg, &store);
        double p[3] = {1, 2, 3}, buf[3] = {0};
        for (int t = 0; t < 3; t++) {
            reel_optimizer_step(&opt, &store, 0.1);
            for (int i = 0; i < 3; i++) {
                double g = 0.5 * (i + 1) + 0.1 * p[i];
                buf[i] = 0.9 * buf[i] + g;
                p[i] -= 0.1 * (nesterov ? g + 0.9 * buf[i] : buf[i]);
            }
        }
        for (int i = 0; i < 3; i++) assert_float_equal(store.data[i], p[i], 1e-5);
        reel_optimizer_free(&opt);
        reel_store_free(&store);
    }
}

/* RMSprop against PyTorch's definition, written out in double: plain with its defaults (alpha 0.99, eps
 * 1e-8, no momentum), and centered with momentum and L2 weight decay; only the slots in use exist. */
static void test_rmsprop_matches_formula(void **state) {
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        reel_config cfg;
        reel_config_defaults(&cfg);
        snprintf(cfg.optimizer.type, sizeof cfg.optimizer.type, "rmsprop");
        int centered = variant == 1;
        double momentum = variant == 1 ? 0.8 : 0.0, wd = variant == 1 ? 0.05 : 0.0;
        cfg.optimizer.centered = centered;
        cfg.optimizer.rmsprop_momentum = momentum;
        cfg.optimizer.weight_decay = wd;
        reel_store store;
        make_store(&store, 1.0f, 0.5f);
        reel_optimizer opt;
        reel_optimizer_init(&opt, &cfg, &store);
        assert_int_equal(opt.num_slots, variant == 1 ? 3 : 1);
        assert_string_equal(opt.slot_names[0], "rmsprop_square");
        double p[3] = {1, 2, 3}, v[3] = {0}, a[3] = {0}, buf[3] = {0};
        for (int t = 0; t < 4; t++) {
            /* the gradient changes between steps, so the centered variance is not zero */
            for (int i = 0; i < 3; i++) store.grad[i] = (float)(0.5 * (i + 1) * (t % 2 ? -1.0 : 1.5));
            reel_optimizer_step(&opt, &store, 1e-2);
            for (int i = 0; i < 3; i++) {
                double g = (float)(0.5 * (i + 1) * (t % 2 ? -1.0 : 1.5)) + wd * p[i];
                v[i] = 0.99 * v[i] + 0.01 * g * g;
                double denominator = v[i];
                if (centered) {
                    a[i] = 0.99 * a[i] + 0.01 * g;
                    denominator -= a[i] * a[i];
                }
                denominator = sqrt(denominator) + 1e-8;
                if (momentum > 0) {
                    buf[i] = momentum * buf[i] + g / denominator;
                    p[i] -= 1e-2 * buf[i];
                } else {
                    p[i] -= 1e-2 * g / denominator;
                }
            }
        }
        for (int i = 0; i < 3; i++) assert_float_equal(store.data[i], p[i], 1e-5);
        reel_optimizer_free(&opt);
        reel_store_free(&store);
    }
}

static void test_clip_and_schedule(void **state) {
    (void)state;
    float grad[2] = {3, 4};
    double norm = reel_grad_norm(grad, 2);
    assert_float_equal(norm, 5.0, 1e-9);
    reel_clip_grad_norm(grad, 2, norm, 1.0);
    assert_float_equal(reel_grad_norm(grad, 2), 1.0, 1e-5);
    reel_clip_grad_norm(grad, 2, 1.0, 10.0); /* below the limit: unchanged */
    assert_float_equal(grad[0], 0.6, 1e-5);

    reel_config cfg;
    reel_config_defaults(&cfg);
    cfg.optimizer.lr = 1.0;
    cfg.optimizer.warmup_steps = 10;
    snprintf(cfg.optimizer.schedule, sizeof cfg.optimizer.schedule, "cosine");
    assert_float_equal(reel_schedule_lr(&cfg, 0, 110, 11), 0.1, 1e-12);
    assert_float_equal(reel_schedule_lr(&cfg, 9, 110, 11), 1.0, 1e-12);
    assert_float_equal(reel_schedule_lr(&cfg, 10, 110, 11), 1.0, 1e-12);
    assert_float_equal(reel_schedule_lr(&cfg, 60, 110, 11), 0.5, 1e-12);
    assert_float_equal(reel_schedule_lr(&cfg, 110, 110, 11), 0.0, 1e-12);
    snprintf(cfg.optimizer.schedule, sizeof cfg.optimizer.schedule, "linear");
    assert_float_equal(reel_schedule_lr(&cfg, 35, 110, 11), 0.75, 1e-12);
    snprintf(cfg.optimizer.schedule, sizeof cfg.optimizer.schedule, "constant");
    assert_float_equal(reel_schedule_lr(&cfg, 100, 110, 11), 1.0, 1e-12);

    /* step decay (course: divide by 10 at epoch 50): 11 steps per epoch, decay at the start of epochs 3
     * and 5; warm-up still comes first */
    snprintf(cfg.optimizer.schedule, sizeof cfg.optimizer.schedule, "step");
    snprintf(cfg.optimizer.decay_epochs, sizeof cfg.optimizer.decay_epochs, "3, 5");
    cfg.optimizer.decay_factor = 0.1;
    reel_error err = {{0}};
    assert_int_equal(reel_schedule_check(&cfg, &err), 0);
    assert_float_equal(reel_schedule_lr(&cfg, 5, 110, 11), 0.6, 1e-12);   /* warm-up */
    assert_float_equal(reel_schedule_lr(&cfg, 21, 110, 11), 1.0, 1e-12);  /* epoch 2 */
    assert_float_equal(reel_schedule_lr(&cfg, 22, 110, 11), 0.1, 1e-12);  /* epoch 3 */
    assert_float_equal(reel_schedule_lr(&cfg, 43, 110, 11), 0.1, 1e-12);  /* epoch 4 */
    assert_float_equal(reel_schedule_lr(&cfg, 44, 110, 11), 0.01, 1e-12); /* epoch 5 */
    snprintf(cfg.optimizer.decay_epochs, sizeof cfg.optimizer.decay_epochs, "%s", "");
    assert_int_equal(reel_schedule_check(&cfg, &err), -1);
    assert_non_null(strstr(err.message, "decay_epochs"));
    snprintf(cfg.optimizer.decay_epochs, sizeof cfg.optimizer.decay_epochs, "%s", "3,x");
    assert_int_equal(reel_schedule_check(&cfg, &err), -1);
    assert_non_null(strstr(err.message, "'x' is not a positive integer"));

    /* slanted triangular (Howard & Ruder 2018, eq. 3): no warm-up; 100 steps, cut at 10, ratio 32 */
    cfg.optimizer.warmup_steps = 0;
    snprintf(cfg.optimizer.schedule, sizeof cfg.optimizer.schedule, "slanted_triangular");
    cfg.optimizer.stlr_cut_frac = 0.1;
    cfg.optimizer.stlr_ratio = 32;
    for (uint64_t t = 0; t <= 100; t += 5) {
        double cut = 10, p = t < cut ? t / cut : 1 - (t - cut) / (cut * (1 / 0.1 - 1));
        assert_float_equal(reel_schedule_lr(&cfg, t, 100, 11), (1 + p * 31) / 32, 1e-12);
    }
    assert_float_equal(reel_schedule_lr(&cfg, 10, 100, 11), 1.0, 1e-12);
    assert_float_equal(reel_schedule_lr(&cfg, 0, 100, 11), 1.0 / 32, 1e-12);
}

/* Each fault at its offset, with its description; well-formed text of every length passes. */
static void test_utf8_invalid_at(void **state) {
    (void)state;
    static const struct {
        const char *bytes;
        size_t at;
        const char *why;
    } cases[] = {
        {"plain ascii", 11, ""},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xac \xf4\x8f\xbf\xbf", 19, ""},
        {"a\xff" "b", 1, "a byte that never occurs in UTF-8"},
        {"ab\x80", 2, "a continuation byte without a lead byte"},
        {"\xc0\xaf", 0, "an overlong encoding"},
        {"xy\xe0\x80\xaf", 2, "an overlong encoding"},
        {"\xf0\x8f\xbf\xbf", 0, "an overlong encoding"},
        {"\xed\xa0\x80", 0, "a UTF-16 surrogate"},
        {"\xf4\x90\x80\x80", 0, "a code point above U+10FFFF"},
        {"ok\xe2\x82", 2, "a sequence cut short by the end"},
        {"ok\xe2(x", 2, "a sequence cut short"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = NULL;
        size_t length = strlen(cases[i].bytes);
        assert_int_equal(reel_utf8_invalid_at(cases[i].bytes, length, &why), cases[i].at);
        assert_string_equal(why, cases[i].why);
    }
}

static void test_escape_bytes(void **state) {
    (void)state;
    char out[64];
    static const unsigned char hdf5[] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n', 0, 0x7f, '\\', '\t'};
    assert_string_equal(reel_escape_bytes(out, sizeof out, hdf5, sizeof hdf5), "\\x89HDF\\r\\n\\x1a\\n\\x00\\x7f\\\\\\t");
    /* text stays text: UTF-8 characters, but not C1 controls (U+0085) nor a cut or overlong sequence */
    assert_string_equal(reel_escape_string(out, sizeof out, "caf\xc3\xa9 \xc2\x85 \xe2\x82 \xc0\xaf"),
                        "caf\xc3\xa9 \\xc2\\x85 \\xe2\\x82 \\xc0\\xaf");
    /* too long: ends with "...", never half an escape */
    assert_string_equal(reel_escape_string(out, 12, "abcdefghijklmnop"), "abcdefgh...");
    assert_string_equal(reel_escape_bytes(out, 12, "abcdef\xff\xffgh", 10), "abcdef...");
    assert_string_equal(reel_escape_string(out, 12, "abcdefghijk"), "abcdefghijk");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_known_answers), cmocka_unit_test(test_shuffle),
        cmocka_unit_test(test_rank_share_covers_batch),
        cmocka_unit_test(test_length_buckets), cmocka_unit_test(test_adam_matches_formula),
        cmocka_unit_test(test_sgd_momentum_matches_formula), cmocka_unit_test(test_clip_and_schedule),
        cmocka_unit_test(test_adam_per_tensor_rates), cmocka_unit_test(test_adam_decay_per_tensor),
        cmocka_unit_test(test_adam_lazy_embedding),
        cmocka_unit_test(test_decay_embedding_needs_matrices), cmocka_unit_test(test_rmsprop_matches_formula),
        cmocka_unit_test(test_utf8_invalid_at), cmocka_unit_test(test_escape_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
