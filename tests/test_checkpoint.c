/* HDF5 checkpoints: exact round trip, and every way a checkpoint can be wrong is reported, not loaded. */
#include <hdf5.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "reel/catalogue.h"
#include "reel/checkpoint.h"
#include "config_set.h"
#include "reel/config.h"
#include "reel/model.h"
#include "reel/optim.h"

static char dir[256];

static reel_model *make_model(size_t hidden, reel_optimizer *opt) {
    reel_config cfg;
    reel_config_defaults(&cfg);
    cfg.model.vocab_size = 50;
    cfg.model.embed_dim = 8;
    config_set(&cfg, "model.hidden_dim=%zu", hidden);
    reel_model *model;
    reel_error err;
    assert_int_equal(reel_model_create(&model, &cfg, 4, &err), 0);
    model->ops->init(model, 11);
    if (opt) reel_optimizer_init(opt, &cfg, &model->params);
    return model;
}

static const reel_train_state sample_state = {123, 2, 17, 24600, "accuracy", 0.875, 100, 42};

static void save_sample(const char *path, reel_model *model, reel_optimizer *opt) {
    for (size_t i = 0; i < model->params.num_floats; i++) model->params.grad[i] = 0.01f * (float)(i % 7);
    reel_optimizer_step(opt, &model->params, 1e-3);
    for (size_t i = 0; i < model->state.num_floats; i++) model->state.data[i] = (float)i * 0.5f;
    reel_checkpoint_info info = {"[data]\ndir = somewhere\n", "classify", 0x1234abcdULL, NULL, NULL, 2};
    reel_error err;
    reel_checkpoint_slots slots = reel_optimizer_checkpoint_slots(opt);
    assert_int_equal(reel_checkpoint_save(path, model, &slots, &sample_state, &info, &err), 0);
}

static void test_round_trip(void **state) {
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/round.h5", dir);
    reel_optimizer opt_a, opt_b;
    reel_model *a = make_model(16, &opt_a), *b = make_model(16, &opt_b);
    save_sample(path, a, &opt_a);
    struct stat st;
    char temporary[320];
    snprintf(temporary, sizeof temporary, "%s.tmp", path);
    assert_int_equal(stat(temporary, &st), -1); /* no temporary left behind */

    memset(b->params.data, 0, b->params.num_floats * sizeof(float));
    reel_train_state loaded;
    reel_error err;
    reel_checkpoint_slots slots_b = reel_optimizer_checkpoint_slots(&opt_b);
    assert_int_equal(reel_checkpoint_load(path, b, &slots_b, &loaded, NULL, 0x1234abcdULL, &err), 0);
    assert_memory_equal(a->params.data, b->params.data, a->params.num_floats * sizeof(float));
    assert_memory_equal(a->state.data, b->state.data, a->state.num_floats * sizeof(float));
    for (size_t s = 0; s < opt_a.num_slots; s++)
        assert_memory_equal(opt_a.slots[s], opt_b.slots[s], opt_a.num_floats * sizeof(float));
    assert_int_equal(opt_b.steps_taken, 1);
    assert_int_equal(opt_b.num_tensors, opt_a.num_tensors);
    assert_memory_equal(opt_a.tensor_steps, opt_b.tensor_steps, opt_a.num_tensors * sizeof *opt_a.tensor_steps);
    assert_memory_equal(&loaded, &sample_state, sizeof loaded);
    char *config;
    assert_int_equal(reel_checkpoint_read_config(path, &config, &err), 0);
    assert_string_equal(config, "[data]\ndir = somewhere\n");
    free(config);
    reel_optimizer_free(&opt_a);
    reel_optimizer_free(&opt_b);
    reel_model_destroy(a);
    reel_model_destroy(b);
}

/* Loads path into a fresh model and expects failure with every fragment in its message. */
static void expect_load_error(const char *path, size_t hidden, uint64_t vocab, const char *fragment1,
                              const char *fragment2) {
    reel_optimizer opt;
    reel_model *model = make_model(hidden, &opt);
    reel_train_state loaded;
    reel_error err = {{0}};
    reel_checkpoint_slots slots = reel_optimizer_checkpoint_slots(&opt);
    assert_int_equal(reel_checkpoint_load(path, model, &slots, &loaded, NULL, vocab, &err), -1);
    printf("expected error: %s\n", err.message);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, fragment1));
    if (fragment2) assert_non_null(strstr(err.message, fragment2));
    reel_optimizer_free(&opt);
    reel_model_destroy(model);
}

static void copy_file(const char *from, const char *to, long keep_bytes) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buffer[4096];
    long total = 0;
    for (size_t got; (got = fread(buffer, 1, sizeof buffer, in)) > 0;) {
        if (keep_bytes >= 0 && total + (long)got > keep_bytes) got = (size_t)(keep_bytes - total);
        fwrite(buffer, 1, got, out);
        total += (long)got;
        if (keep_bytes >= 0 && total >= keep_bytes) break;
    }
    fclose(in);
    fclose(out);
}

static void test_truncated(void **state) {
    (void)state;
    char good[300], bad[300];
    snprintf(good, sizeof good, "%s/good.h5", dir);
    snprintf(bad, sizeof bad, "%s/truncated.h5", dir);
    reel_optimizer opt;
    reel_model *model = make_model(16, &opt);
    save_sample(good, model, &opt);
    struct stat st;
    stat(good, &st);
    for (int fraction = 1; fraction <= 3; fraction++) {
        copy_file(good, bad, (long)st.st_size * fraction / 4);
        expect_load_error(bad, 16, 0, "corrupt", NULL);
    }
    reel_optimizer_free(&opt);
    reel_model_destroy(model);
}

/* File offset of the first chunk of dataset name, found through HDF5 itself. */
static haddr_t chunk_address(const char *path, const char *name, hsize_t *size) {
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dataset = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t space = H5Dget_space(dataset);
    hsize_t offset[2];
    unsigned mask;
    haddr_t address = HADDR_UNDEF;
    assert_true(H5Dget_chunk_info(dataset, space, 0, offset, &mask, &address, size) >= 0);
    H5Sclose(space);
    H5Dclose(dataset);
    H5Fclose(file);
    return address;
}

static void flip_byte(const char *path, long offset) {
    FILE *file = fopen(path, "r+b");
    assert_non_null(file);
    fseek(file, offset, SEEK_SET);
    int byte = fgetc(file);
    fseek(file, offset, SEEK_SET);
    fputc(byte ^ 0x10, file);
    fclose(file);
}

static void test_bit_flips(void **state) {
    (void)state;
    char good[300], bad[300];
    snprintf(good, sizeof good, "%s/good.h5", dir);
    snprintf(bad, sizeof bad, "%s/flipped.h5", dir);
    const char *datasets[] = {"/model/embedding/weight", "/model/batchnorm/bias", "/optimizer/adam_v/output/weight"};
    for (size_t i = 0; i < 3; i++) {
        copy_file(good, bad, -1);
        hsize_t size;
        haddr_t address = chunk_address(bad, datasets[i], &size);
        flip_byte(bad, (long)(address + size / 2));
        expect_load_error(bad, 16, 0, datasets[i], "corrupt");
    }
    /* a flip in the superblock (metadata, checksummed by the newest format) */
    copy_file(good, bad, -1);
    flip_byte(bad, 20);
    expect_load_error(bad, 16, 0, "corrupt", NULL);
}

static void test_other_model_or_vocab(void **state) {
    (void)state;
    char good[300];
    snprintf(good, sizeof good, "%s/good.h5", dir);
    expect_load_error(good, 32, 0, "/model/hidden/weight", "shape [16, 8], the model expects [32, 8]");
    expect_load_error(good, 16, 0x9999ULL, "another vocabulary", "0000000000009999");
    char other[300];
    snprintf(other, sizeof other, "%s/other.h5", dir);
    hid_t file = H5Fcreate(other, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(file);
    expect_load_error(other, 16, 0, "not a reel checkpoint", NULL);
    snprintf(other, sizeof other, "%s/not_hdf5.h5", dir);
    FILE *text = fopen(other, "w");
    fputs("hello\n", text);
    fclose(text);
    expect_load_error(other, 16, 0, "not a readable HDF5 file", NULL);
    snprintf(other, sizeof other, "%s/missing.h5", dir);
    expect_load_error(other, 16, 0, "cannot read", NULL);
}

static void test_failed_save_keeps_old_file(void **state) {
    (void)state;
    char path[300], temporary[320];
    snprintf(path, sizeof path, "%s/keep.h5", dir);
    snprintf(temporary, sizeof temporary, "%s.tmp", path);
    reel_optimizer opt;
    reel_model *model = make_model(16, &opt);
    save_sample(path, model, &opt);
    /* a directory squatting on the temporary name makes the next save fail */
    assert_int_equal(mkdir(temporary, 0755), 0);
    reel_checkpoint_info info = {"x", "classify", 1, NULL, NULL, 1};
    reel_error err;
    reel_checkpoint_slots slots = reel_optimizer_checkpoint_slots(&opt);
    assert_int_equal(reel_checkpoint_save(path, model, &slots, &sample_state, &info, &err), -1);
    assert_non_null(strstr(err.message, "keep.h5"));
    rmdir(temporary);
    reel_train_state loaded;
    assert_int_equal(reel_checkpoint_load(path, model, &slots, &loaded, NULL, 0x1234abcdULL, &err), 0);
    reel_optimizer_free(&opt);
    reel_model_destroy(model);
}

static void test_run_directory(void **state) {
    (void)state;
    char run[300], path[400];
    snprintf(run, sizeof run, "%s/run", dir);
    mkdir(run, 0755);
    reel_optimizer opt;
    reel_model *model = make_model(16, &opt);
    uint64_t steps[] = {5, 100, 20, 7};
    for (size_t i = 0; i < 4; i++) {
        reel_checkpoint_numbered_path(path, sizeof path, run, steps[i]);
        save_sample(path, model, &opt);
    }
    snprintf(path, sizeof path, "%s/ckpt_best.h5", run); /* neither counted nor pruned */
    save_sample(path, model, &opt);
    snprintf(path, sizeof path, "%s/ckpt_00000999.h5.tmp", run); /* a leftover temporary: ignored */
    fclose(fopen(path, "w"));
    int found;
    reel_error err;
    assert_int_equal(reel_checkpoint_latest(run, path, sizeof path, &found, &err), 0);
    assert_true(found);
    assert_non_null(strstr(path, "ckpt_00000100.h5"));
    reel_checkpoint_prune(run, 2);
    char **paths;
    size_t count = reel_checkpoint_list(run, &paths);
    assert_int_equal(count, 2);
    assert_non_null(strstr(paths[0], "ckpt_00000100.h5"));
    assert_non_null(strstr(paths[1], "ckpt_00000020.h5"));
    for (size_t i = 0; i < count; i++) free(paths[i]);
    free(paths);
    snprintf(path, sizeof path, "%s/ckpt_best.h5", run);
    assert_int_equal(access(path, F_OK), 0);
    reel_optimizer_free(&opt);
    reel_model_destroy(model);
}

int main(void) {
    snprintf(dir, sizeof dir, "%s/work_checkpoint", getenv("TMPDIR") ? getenv("TMPDIR") : ".");
    mkdir(dir, 0755);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),           cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bit_flips),            cmocka_unit_test(test_other_model_or_vocab),
        cmocka_unit_test(test_failed_save_keeps_old_file), cmocka_unit_test(test_run_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
