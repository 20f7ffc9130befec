/* Tests of src/config.c: defaults, INI files, error messages (file, line, key), --set, the resolved
 * INI round trip and the schema listing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <float.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reel/catalogue.h"
#include "reel/config.h"
#include "reel/optim.h"

/* Keys of the default configuration (model type bow, objective classify): the 52 general keys, bow's 11
 * (6 of them its n-grams, Naive-Bayes scaling, binary features and initialisation) and classify's 9. --help-config lists
 * the general keys, then each model's and objective's own: the recurrent classifiers share 10, the
 * recurrent language model has 10, the gpt 9, the cnn 4, the transformer 12, classify 9 and next_token 6. */
#define NUM_GENERAL_KEYS 52
#define NUM_KEYS (NUM_GENERAL_KEYS + 11 + 9)
#define NUM_SCHEMA_ROWS (NUM_GENERAL_KEYS + 11 + 10 + 10 + 9 + 4 + 12 + 9 + 6)

/* Fields of the composed schema by name ("model.hidden_dim" lives in the bow model's options). */
static void *field(const reel_config *cfg, const char *name) {
    const void *p = reel_config_field(cfg, name);
    if (!p) fail_msg("no key %s", name);
    return (void *)p;
}
#define SIZE_OF(cfg, name) (*(size_t *)field(&(cfg), name))
#define DOUBLE_OF(cfg, name) (*(double *)field(&(cfg), name))
#define BOOL_OF(cfg, name) (*(int *)field(&(cfg), name))

#define SCRATCH_TEMPLATE "/tmp/reel_test_config_XXXXXX"
#include "scratch_dir.h"

static int initial_max_line; /* inih's line limit before any load */

/* Writes text to <tmp>/<name> and returns the path (valid until the next call with the same name). */
static const char *write_file(const char *name, const char *text) {
    static char path[REEL_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    assert_int_equal(fwrite(text, 1, strlen(text), file), strlen(text));
    assert_int_equal(fclose(file), 0);
    return path;
}

/* Loads text from a file called x.ini and requires the load to fail with exactly
 * "<path>" + expected_suffix as the message. */
static void expect_file_error(const char *text, const char *expected_suffix) {
    const char *path = write_file("x.ini", text);
    char expected[REEL_ERROR_MAX];
    snprintf(expected, sizeof expected, "%s%s", path, expected_suffix);
    reel_config cfg;
    reel_error err = {""};
    int rc = reel_config_load_file(&cfg, path, &err);
    if (rc != -1 || strcmp(err.message, expected) != 0)
        fail_msg("for input:\n%s\nexpected rc -1 and message\n  %s\ngot rc %d and\n  %s", text, expected, rc,
                 err.message);
}

/* Same, for messages whose tail is not worth pinning down: the message must contain every fragment. */
static void expect_file_error_containing(const char *text, const char *first, ...) {
    const char *path = write_file("x.ini", text);
    reel_config cfg;
    reel_error err = {""};
    int rc = reel_config_load_file(&cfg, path, &err);
    if (rc != -1) fail_msg("for input:\n%s\nexpected failure, got success", text);
    if (strncmp(err.message, path, strlen(path)) != 0) fail_msg("message does not start with the path: %s", err.message);
    va_list args;
    va_start(args, first);
    for (const char *fragment = first; fragment; fragment = va_arg(args, const char *))
        if (!strstr(err.message, fragment)) fail_msg("message\n  %s\nlacks '%s'", err.message, fragment);
    va_end(args);
}

static void expect_override_error(reel_config *cfg, const char *assignment, const char *expected) {
    reel_config before = *cfg;
    reel_error err = {""};
    int rc = reel_config_override(cfg, assignment, &err);
    if (rc != -1 || strcmp(err.message, expected) != 0)
        fail_msg("--set '%s': expected rc -1 and message\n  %s\ngot rc %d and\n  %s", assignment, expected, rc,
                 err.message);
    assert_memory_equal(&before, cfg, sizeof before); /* a rejected override changes nothing */
}

static void test_defaults(void **state) {
    (void)state;
    reel_config cfg;
    memset(&cfg, 0x5a, sizeof cfg);
    reel_config_defaults(&cfg);
    assert_string_equal(cfg.data.dir, "");
    assert_int_equal(cfg.data.max_tokens, 0);
    assert_string_equal(cfg.model.type, "bow");
    assert_int_equal(cfg.model.vocab_size, 8000);
    assert_int_equal(cfg.model.embed_dim, 256);
    assert_int_equal(SIZE_OF(cfg, "model.hidden_dim"), 256);
    assert_true(DOUBLE_OF(cfg, "model.dropout") == 0.5);
    assert_true(DOUBLE_OF(cfg, "model.word_dropout") == 0.0);
    assert_int_equal(BOOL_OF(cfg, "model.batch_norm"), 1);
    assert_string_equal(cfg.optimizer.type, "adam");
    assert_true(cfg.optimizer.lr == 1e-3);
    assert_true(cfg.optimizer.beta1 == 0.9);
    assert_true(cfg.optimizer.beta2 == 0.999);
    assert_true(cfg.optimizer.eps == 1e-8);
    assert_true(cfg.optimizer.momentum == 0.9);
    assert_int_equal(cfg.optimizer.nesterov, 0);
    assert_true(cfg.optimizer.weight_decay == 0);
    assert_true(cfg.optimizer.clip_norm == 0);
    assert_string_equal(cfg.optimizer.schedule, "constant");
    assert_int_equal(cfg.optimizer.warmup_steps, 0);
    assert_int_equal(cfg.train.epochs, 6);
    assert_int_equal(cfg.train.max_steps, 0);
    assert_int_equal(cfg.train.batch_size, 200);
    assert_true(cfg.train.seed == 42);
    assert_int_equal(cfg.train.log_every, 10);
    assert_string_equal(cfg.train.run_dir, "runs/default");
    assert_int_equal(cfg.checkpoint.every_steps, 0);
    assert_int_equal(cfg.checkpoint.keep_last, 3);
    assert_int_equal(cfg.checkpoint.keep_best, 1);
    for (int i = 0; i < NUM_KEYS; i++) {
        assert_int_equal(cfg.line_of[i], 0);
        assert_non_null(cfg.source_of[i]);
        assert_string_equal(cfg.source_of[i], "default");
    }
}

static void test_valid_file(void **state) {
    (void)state;
    const char *text = "\xEF\xBB\xBF; a comment before anything\n" /* 1 */
                       "# another comment\n"                      /* 2 */
                       "[data]\n"                                 /* 3 */
                       "dir = /data/imdb prep\n"                  /* 4 */
                       "\n"                                       /* 5 */
                       "[model]\n"                                /* 6 */
                       "  vocab_size = 20000   ; indented, inline comment\n" /* 7 */
                       "dropout=0.25\r\n"                         /* 8 */
                       "\tbatch_norm = Off\n" /* 9: indented, yet not a continuation of line 8 */
                       "[optimizer]\n"                            /* 10 */
                       "type = sgd\n"                             /* 11 */
                       "lr = 3e-4\n"                              /* 12 */
                       "nesterov = YES\n"                         /* 13 */
                       "schedule = cosine\n"                      /* 14 */
                       "[train]\n"                                /* 15 */
                       "seed = 18446744073709551615\n"            /* 16 */
                       "run_dir = runs/a b#c\n"                   /* 17 */
                       "[model]\n"                                /* 18 */
                       "hidden_dim = 64";                         /* 19, no final newline */
    const char *path = write_file("valid.ini", text);
    reel_config cfg;
    reel_error err = {""};
    int rc = reel_config_load_file(&cfg, path, &err);
    if (rc != 0) fail_msg("load failed: %s", err.message);
    assert_string_equal(cfg.data.dir, "/data/imdb prep");
    assert_int_equal(cfg.model.vocab_size, 20000);
    assert_true(DOUBLE_OF(cfg, "model.dropout") == 0.25);
    assert_int_equal(BOOL_OF(cfg, "model.batch_norm"), 0);
    assert_int_equal(SIZE_OF(cfg, "model.hidden_dim"), 64);
    assert_int_equal(cfg.model.embed_dim, 256);
    assert_string_equal(cfg.optimizer.type, "sgd");
    assert_true(cfg.optimizer.lr == 3e-4);
    assert_int_equal(cfg.optimizer.nesterov, 1);
    assert_string_equal(cfg.optimizer.schedule, "cosine");
    assert_true(cfg.train.seed == UINT64_MAX);
    assert_string_equal(cfg.train.run_dir, "runs/a b#c");
    assert_int_equal(cfg.train.epochs, 6);

    int dir = reel_config_key_index(&cfg, "data.dir"), lr = reel_config_key_index(&cfg, "optimizer.lr");
    int hidden = reel_config_key_index(&cfg, "model.hidden_dim"), epochs = reel_config_key_index(&cfg, "train.epochs");
    int vocab = reel_config_key_index(&cfg, "model.vocab_size");
    assert_true(dir >= 0 && lr >= 0 && hidden >= 0 && epochs >= 0 && vocab >= 0);
    assert_int_equal(cfg.line_of[dir], 4);
    assert_int_equal(cfg.line_of[vocab], 7);
    assert_int_equal(cfg.line_of[lr], 12);
    assert_int_equal(cfg.line_of[hidden], 19);
    assert_string_equal(cfg.source_of[lr], path);
    assert_int_equal(cfg.line_of[epochs], 0);
    assert_string_equal(cfg.source_of[epochs], "default");
}

static void test_unknown_key(void **state) {
    (void)state;
    expect_file_error("[data]\ndir = d\n[optimizer]\ntype = adam\n\n\n\n\n\n\n\nlearning_rate = 0.1\n",
                      ":12: unknown key 'learning_rate' in section [optimizer] (known keys: type, lr, beta1, "
                      "beta2, eps, momentum, nesterov, alpha, centered, rmsprop_momentum, weight_decay, decay, decay_embedding, lazy_embedding, clip_norm, schedule, warmup_steps, decay_epochs, decay_factor, "
                      "stlr_cut_frac, stlr_ratio, freeze, unfreeze_every, unfreeze_unit, layer_lr_decay)");
}

static void test_unknown_section(void **state) {
    (void)state;
    expect_file_error("[data]\ndir = d\n[trainer]\nepochs = 3\n",
                      ":3: unknown section [trainer] (known sections: data, model, objective, optimizer, train, checkpoint)");
    expect_file_error("lr = 1\n[data]\ndir = d\n",
                      ":1: key 'lr' comes before any [section] header (sections: data, model, objective, optimizer, "
                      "train, checkpoint)");
}

static void test_missing_required(void **state) {
    (void)state;
    expect_file_error("[train]\nepochs = 2\n", ": missing required key [data] dir");
    expect_file_error("", ": missing required key [data] dir");
}

static void test_duplicate_key(void **state) {
    (void)state;
    expect_file_error("[data]\ndir = d\n[model]\ndropout = 0.1\ndropout = 0.2\n",
                      ":5: [model] dropout given twice (first on line 4)");
    /* A repeated section header does not make its keys new. */
    expect_file_error("[data]\ndir = d\n[model]\ndropout = 0.1\n[train]\nepochs = 1\n[model]\ndropout = 0.3\n",
                      ":8: [model] dropout given twice (first on line 4)");
    /* An indented line is a key of its own, not a continuation of the previous value. */
    expect_file_error("[data]\ndir = d\n[model]\ndropout = 0.1\n   dropout = 0.2\n",
                      ":5: [model] dropout given twice (first on line 4)");
}

/* A file whose line 7 is "batch_size = <value>". */
static void expect_batch_size_error(const char *value, const char *expected_tail) {
    char text[512], expected[512];
    snprintf(text, sizeof text, "[data]\ndir = d\n\n; comment\n[train]\nepochs = 2\nbatch_size = %s\n", value);
    snprintf(expected, sizeof expected, ":7: [train] batch_size = '%s': %s", value, expected_tail);
    expect_file_error(text, expected);
}

static void test_integer_errors(void **state) {
    (void)state;
    const char *nonint = "expected a non-negative integer";
    expect_batch_size_error("abc", nonint);
    expect_batch_size_error("12abc", nonint);
    expect_batch_size_error("1e3", nonint);
    expect_batch_size_error("-1", nonint);
    expect_batch_size_error("+5", nonint);
    expect_batch_size_error("0x10", nonint);
    expect_batch_size_error("1.0", nonint);
    expect_batch_size_error("", nonint);
    expect_batch_size_error("18446744073709551616", "out of range (at most 18446744073709551615)");
    expect_batch_size_error("99999999999999999999999", "out of range (at most 18446744073709551615)");
    expect_batch_size_error("0", "must be >= 1");
    expect_batch_size_error("20 # half", "expected a non-negative integer (inline comments start with ' ;', not '#')");
    expect_file_error("[data]\ndir = d\n[train]\nseed = -3\n", ":4: [train] seed = '-3': expected a non-negative integer");
}

static void expect_value_error(const char *section, const char *key, const char *value, const char *tail) {
    char text[512], expected[512];
    snprintf(text, sizeof text, "[data]\ndir = d\n[%s]\n%s = %s\n", section, key, value);
    snprintf(expected, sizeof expected, ":4: [%s] %s = '%s': %s", section, key, value, tail);
    expect_file_error(text, expected);
}

static void test_double_errors_and_bounds(void **state) {
    (void)state;
    expect_value_error("optimizer", "lr", "-1", "must be > 0");
    expect_value_error("optimizer", "lr", "0", "must be > 0");
    expect_value_error("optimizer", "lr", "abc", "expected a number");
    expect_value_error("optimizer", "lr", "1e-3x", "expected a number");
    expect_value_error("optimizer", "lr", "nan", "expected a finite number");
    expect_value_error("optimizer", "lr", "inf", "expected a finite number");
    expect_value_error("optimizer", "lr", "1e999", "out of the range of a double");
    expect_value_error("optimizer", "eps", "0", "must be > 0");
    expect_value_error("optimizer", "beta1", "1", "must be in [0, 1)");
    expect_value_error("optimizer", "beta2", "-0.1", "must be in [0, 1)");
    expect_value_error("optimizer", "momentum", "1.5", "must be in [0, 1)");
    expect_value_error("optimizer", "weight_decay", "-1e-9", "must be >= 0");
    expect_value_error("optimizer", "clip_norm", "-2", "must be >= 0");
    expect_value_error("model", "dropout", "1", "must be in [0, 1)");
    /* the gpt's attention dropout and positions, in the gpt's own keys (line 5, after the type) */
    expect_file_error("[data]\ndir = d\n[model]\ntype = gpt\nattention_dropout = 1\n",
                      ":5: [model] attention_dropout = '1': must be in [0, 1)");
    expect_file_error("[data]\ndir = d\n[model]\ntype = gpt\nattention_dropout = -0.1\n",
                      ":5: [model] attention_dropout = '-0.1': must be in [0, 1)");
    expect_file_error("[data]\ndir = d\n[model]\ntype = gpt\npositions = absolute\n",
                      ":5: [model] positions = 'absolute': expected one of learned, rotary");
    expect_file_error("[data]\ndir = d\n[model]\ntype = gpt\nrotary_base = 1\n",
                      ":5: [model] rotary_base = '1': must be > 1");
    expect_value_error("model", "dropout", "-0.5", "must be in [0, 1)");
    expect_value_error("model", "word_dropout", "1", "must be in [0, 1)");
    expect_value_error("model", "vocab_size", "3", "must be >= 4");
    expect_value_error("train", "epochs", "0", "must be >= 1");
    expect_value_error("train", "log_every", "0", "must be >= 1");
    expect_value_error("checkpoint", "keep_last", "0", "must be >= 1");

    /* The edges that are allowed. */
    const char *path = write_file("edges.ini", "[data]\ndir = d\n[model]\ndropout = 0\nvocab_size = 4\n"
                                               "[optimizer]\nbeta1 = 0\nlr = 4.9e-300\nweight_decay = 0\n");
    reel_config cfg;
    reel_error err = {""};
    if (reel_config_load_file(&cfg, path, &err) != 0) fail_msg("%s", err.message);
    assert_true(DOUBLE_OF(cfg, "model.dropout") == 0.0);
    assert_int_equal(cfg.model.vocab_size, 4);
    assert_true(cfg.optimizer.lr == 4.9e-300);
}

static void test_bool_choice_string(void **state) {
    (void)state;
    const char *yes[] = {"true", "TRUE", "Yes", "on", "ON", "1"}, *no[] = {"false", "False", "no", "NO", "off", "0"};
    for (size_t i = 0; i < 6; i++) {
        for (int want = 0; want <= 1; want++) {
            char text[128];
            snprintf(text, sizeof text, "[data]\ndir = d\n[optimizer]\nnesterov = %s\n", want ? yes[i] : no[i]);
            const char *path = write_file("bool.ini", text);
            reel_config cfg;
            reel_error err = {""};
            if (reel_config_load_file(&cfg, path, &err) != 0) fail_msg("%s", err.message);
            assert_int_equal(cfg.optimizer.nesterov, want);
        }
    }
    const char *bool_tail = "expected a boolean (true/false, yes/no, on/off, 1/0)";
    expect_value_error("optimizer", "nesterov", "maybe", bool_tail);
    expect_value_error("model", "batch_norm", "2", bool_tail);
    expect_value_error("checkpoint", "keep_best", "", bool_tail);

    expect_value_error("optimizer", "type", "adamw", "expected one of adam, sgd, rmsprop");
    expect_value_error("optimizer", "type", "Adam", "expected one of adam, sgd, rmsprop");
    expect_value_error("optimizer", "schedule", "steps", "expected one of constant, cosine, linear, step, slanted_triangular");
    expect_value_error("model", "type", "svm", "expected one of bow, lstm, gru, rnn, rnn_lm, gpt, cnn, transformer");

    /* Strings: the longest that fits is accepted (on a line longer than inih's default 200), one more
     * character is an error. */
    char text[3000], value[1100];
    memset(value, 'p', sizeof value);
    value[1023] = '\0';
    snprintf(text, sizeof text, "[data]\ndir = %s\n", value);
    const char *path = write_file("long.ini", text);
    reel_config cfg;
    reel_error err = {""};
    if (reel_config_load_file(&cfg, path, &err) != 0) fail_msg("%s", err.message);
    assert_int_equal(ini_max_line, initial_max_line); /* the process-wide inih limit is restored */
    assert_int_equal(strlen(cfg.data.dir), 1023);
    value[1023] = 'p';
    value[1024] = '\0';
    snprintf(text, sizeof text, "[data]\ndir = %s\n", value);
    expect_file_error(text, ":2: [data] dir: the value has 1024 characters, more than the limit of 1023");
    snprintf(text, sizeof text, "[data]\ndir = d\n[train]\nrun_dir =\n");
    expect_file_error(text, ":4: [train] run_dir is empty: expected a non-empty string");
    snprintf(text, sizeof text, "[data]\ndir = d\n[model]\ntype = %.*s\n", 40, value);
    expect_file_error_containing(text, ":4: [model] type = 'pppp", "expected one of bow", NULL);
}

static void test_syntax_errors(void **state) {
    (void)state;
    expect_file_error("[data]\ndir = d\n[model]\nvocab_size 100\n",
                      ":4: syntax error: expected 'key = value', '[section]' or a comment, found 'vocab_size 100'");
    expect_file_error("[data]\ndir = d\n[model\n", ":3: syntax error: expected a section header '[name]', found '[model'");
    /* The first error in the file wins, whichever part noticed it. */
    expect_file_error("[data]\ndir = d\n[model]\nbroken line\n[optimizer]\nlearning_rate = 1\n",
                      ":4: syntax error: expected 'key = value', '[section]' or a comment, found 'broken line'");
    expect_file_error("[data]\ndir = d\n[optimizer]\nlearning_rate = 1\nbroken line\n",
                      ":4: unknown key 'learning_rate' in section [optimizer] (known keys: type, lr, beta1, beta2, "
                      "eps, momentum, nesterov, alpha, centered, rmsprop_momentum, weight_decay, decay, decay_embedding, lazy_embedding, clip_norm, schedule, warmup_steps, decay_epochs, decay_factor, "
                      "stlr_cut_frac, stlr_ratio, freeze, unfreeze_every, unfreeze_unit, layer_lr_decay)");

    char text[8000];
    snprintf(text, sizeof text, "[data]\ndir = d\n; %06000d\n[model]\nvocab_size = 5\n", 0);
    expect_file_error_containing(text, ":3: the line is longer than", NULL);

    reel_config cfg;
    reel_error err = {""};
    char missing[REEL_PATH_MAX];
    snprintf(missing, sizeof missing, "%s/does_not_exist.ini", tmp_dir);
    assert_int_equal(reel_config_load_file(&cfg, missing, &err), -1);
    assert_non_null(strstr(err.message, missing));
    assert_non_null(strstr(err.message, "cannot open"));
}

static void test_nul_byte(void **state) {
    (void)state;
    const char text[] = "[data]\ndir = d\n[model]\nvocab_size = 5\0junk\n";
    char path[REEL_PATH_MAX];
    snprintf(path, sizeof path, "%s/nul.ini", tmp_dir);
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    fwrite(text, 1, sizeof text - 1, file);
    fclose(file);
    reel_config cfg;
    reel_error err = {""};
    assert_int_equal(reel_config_load_file(&cfg, path, &err), -1);
    char expected[REEL_ERROR_MAX];
    snprintf(expected, sizeof expected, "%s:4: the line contains a NUL byte (is this a text file?)", path);
    assert_string_equal(err.message, expected);
    unlink(path);
}

static void test_load_string(void **state) {
    (void)state;
    reel_config cfg;
    reel_error err = {""};
    assert_int_equal(reel_config_load_string(&cfg, "[data]\ndir = d\n[train]\nepochs = x\n", "ckpt.h5:/config", &err), -1);
    assert_string_equal(err.message, "ckpt.h5:/config:4: [train] epochs = 'x': expected a non-negative integer");
    assert_int_equal(reel_config_load_string(&cfg, "[data]\ndir = d\n[train]\nepochs = 9\n", "ckpt.h5:/config", &err), 0);
    assert_int_equal(cfg.train.epochs, 9);
    assert_string_equal(cfg.source_of[reel_config_key_index(&cfg, "train.epochs")], "ckpt.h5:/config");
    /* Loading starts again from the defaults. */
    assert_int_equal(reel_config_load_string(&cfg, "[data]\ndir = e\n", NULL, &err), 0);
    assert_int_equal(cfg.train.epochs, 6);
    assert_int_equal(reel_config_load_string(&cfg, "[data]\n[x\n", NULL, &err), -1);
    assert_string_equal(err.message, "<string>:2: syntax error: expected a section header '[name]', found '[x'");
}

static void test_override(void **state) {
    (void)state;
    reel_config cfg;
    reel_error err = {""};
    assert_int_equal(reel_config_load_string(&cfg, "[data]\ndir = d\n[optimizer]\nlr = 0.1\n", "a.ini", &err), 0);
    int lr = reel_config_key_index(&cfg, "optimizer.lr"), epochs = reel_config_key_index(&cfg, "train.epochs");
    int dir = reel_config_key_index(&cfg, "data.dir"), run_dir = reel_config_key_index(&cfg, "train.run_dir");
    assert_int_equal(cfg.line_of[lr], 4);

    if (reel_config_override(&cfg, "optimizer.lr=3e-4", &err) != 0) fail_msg("%s", err.message);
    assert_true(cfg.optimizer.lr == 3e-4);
    assert_string_equal(cfg.source_of[lr], "--set");
    assert_int_equal(cfg.line_of[lr], 1);
    if (reel_config_override(&cfg, "  train.epochs = 3 ", &err) != 0) fail_msg("%s", err.message);
    assert_int_equal(cfg.train.epochs, 3);
    assert_int_equal(cfg.line_of[epochs], 2);
    if (reel_config_override(&cfg, "train.run_dir=runs/x=y;z", &err) != 0) fail_msg("%s", err.message);
    assert_string_equal(cfg.train.run_dir, "runs/x=y;z");
    assert_int_equal(cfg.line_of[run_dir], 3);
    if (reel_config_override(&cfg, "optimizer.lr=5e-4", &err) != 0) fail_msg("%s", err.message); /* later wins */
    assert_true(cfg.optimizer.lr == 5e-4);
    assert_int_equal(cfg.line_of[lr], 4);
    assert_int_equal(cfg.line_of[dir], 2);
    assert_string_equal(cfg.source_of[dir], "a.ini");

    const char *form = "': expected the form section.key=value (for example optimizer.lr=3e-4)";
    const char *bad_forms[] = {"lr=1", "optimizer.lr", "optimizer.=1", ".lr=1", "=1", "", "optimizer . =1", "lr=1.5"};
    for (size_t i = 0; i < sizeof bad_forms / sizeof bad_forms[0]; i++) {
        char expected[256];
        snprintf(expected, sizeof expected, "--set '%s%s", bad_forms[i], form);
        expect_override_error(&cfg, bad_forms[i], expected);
    }
    expect_override_error(&cfg, "trainer.epochs=3",
                          "--set 'trainer.epochs=3': unknown section [trainer] (known sections: data, model, "
                          "objective, optimizer, train, checkpoint)");
    expect_override_error(&cfg, "optimizer.learning_rate=1",
                          "--set 'optimizer.learning_rate=1': unknown key 'learning_rate' in section [optimizer] "
                          "(known keys: type, lr, beta1, beta2, eps, momentum, nesterov, alpha, centered, rmsprop_momentum, "
                          "weight_decay, decay, decay_embedding, lazy_embedding, clip_norm, "
                          "schedule, warmup_steps, decay_epochs, decay_factor, stlr_cut_frac, stlr_ratio, freeze, "
                          "unfreeze_every, unfreeze_unit, layer_lr_decay)");
    expect_override_error(&cfg, "optimizer.lr=-1",
                          "--set 'optimizer.lr=-1': [optimizer] lr = '-1': must be > 0");
    expect_override_error(&cfg, "train.batch_size=abc",
                          "--set 'train.batch_size=abc': [train] batch_size = 'abc': expected a non-negative integer");
    expect_override_error(&cfg, "train.batch_size=1e3",
                          "--set 'train.batch_size=1e3': [train] batch_size = '1e3': expected a non-negative integer");
    expect_override_error(&cfg, "model.dropout=1",
                          "--set 'model.dropout=1': [model] dropout = '1': must be in [0, 1)");
    expect_override_error(&cfg, "optimizer.type=adagrad",
                          "--set 'optimizer.type=adagrad': [optimizer] type = 'adagrad': expected one of adam, sgd, rmsprop");
    expect_override_error(&cfg, "train.run_dir=",
                          "--set 'train.run_dir=': [train] run_dir is empty: expected a non-empty string");
    /* an optional string (default empty) is unset by an empty value */
    if (reel_config_override(&cfg, "model.init_from=runs/lm/ckpt_best.h5", &err) != 0) fail_msg("%s", err.message);
    assert_string_equal(cfg.model.init_from, "runs/lm/ckpt_best.h5");
    if (reel_config_override(&cfg, "model.init_from=", &err) != 0) fail_msg("%s", err.message);
    assert_string_equal(cfg.model.init_from, "");
    expect_override_error(&cfg, "train.run_dir=a ;b",
                          "--set 'train.run_dir=a ;b': [train] run_dir = 'a ;b': a value cannot contain a line "
                          "break, a leading or trailing space, or ';' first or after a space (it could not be written back to an INI file)");
    /* found by the config fuzzer: a value starting with ';' read back as a comment */
    expect_override_error(&cfg, "train.run_dir=;a",
                          "--set 'train.run_dir=;a': [train] run_dir = ';a': a value cannot contain a line "
                          "break, a leading or trailing space, or ';' first or after a space (it could not be written back to an INI file)");
    /* the line break is quoted escaped, so the message stays one line */
    expect_override_error(&cfg, "train.run_dir=a\nb",
                          "--set 'train.run_dir=a\\nb': [train] run_dir = 'a\\nb': a value cannot contain a line "
                          "break, a leading or trailing space, or ';' first or after a space (it could not be written back to an INI file)");
}

/* Every key of a composed schema reaches its own storage and nothing else: setting it changes that
 * field's bytes (in reel_config, or in the model's or objective's options) and no other byte; and every
 * key of the schema is covered once. Checked for the default model (bow) and for the recurrent
 * classifiers' keys. */
typedef struct field_case {
    const char *assignment;
    char kind; /* s string, z size_t, u uint64_t, d double, b int */
    const char *expected;
} field_case;

#define FIELD(key, kind, value) {key "=" value, kind, value}

static const field_case general_cases[] = {
    FIELD("data.dir", 's', "/somewhere"),
    FIELD("data.seq_len", 'z', "100"),
    FIELD("data.reverse", 'b', "true"),
    FIELD("data.max_tokens", 'z', "400"),
    FIELD("model.vocab_size", 'z', "1234"),
    FIELD("model.embed_dim", 'z', "33"),
    FIELD("model.init_from", 's', "runs/lm/ckpt_best.h5"),
    FIELD("model.embed_from", 's', "vectors/imdb.vec.gz"),
    FIELD("objective.type", 's', "classify"),
    FIELD("optimizer.type", 's', "sgd"),
    FIELD("optimizer.lr", 'd', "0.5"),
    FIELD("optimizer.beta1", 'd', "0.5"),
    FIELD("optimizer.beta2", 'd', "0.75"),
    FIELD("optimizer.eps", 'd', "2"),
    FIELD("optimizer.momentum", 'd', "0.25"),
    FIELD("optimizer.nesterov", 'b', "true"),
    FIELD("optimizer.alpha", 'd', "0.875"),
    FIELD("optimizer.centered", 'b', "true"),
    FIELD("optimizer.rmsprop_momentum", 'd', "0.5"),
    FIELD("optimizer.weight_decay", 'd', "0.01"),
    FIELD("optimizer.decay", 's', "matrices"),
    FIELD("optimizer.decay_embedding", 'b', "true"),
    FIELD("optimizer.lazy_embedding", 'b', "true"),
    FIELD("optimizer.clip_norm", 'd', "5"),
    FIELD("optimizer.schedule", 's', "linear"),
    FIELD("optimizer.warmup_steps", 'z', "77"),
    FIELD("optimizer.decay_epochs", 's', "3,7"),
    FIELD("optimizer.decay_factor", 'd', "0.5"),
    FIELD("optimizer.stlr_cut_frac", 'd', "0.25"),
    FIELD("optimizer.stlr_ratio", 'd', "16"),
    FIELD("optimizer.freeze", 's', "embedding,lstm_l0"),
    FIELD("optimizer.unfreeze_every", 'z', "2"),
    FIELD("optimizer.unfreeze_unit", 's', "steps"),
    FIELD("optimizer.layer_lr_decay", 'd', "2.6"),
    FIELD("train.epochs", 'z', "11"),
    FIELD("train.max_steps", 'z', "999"),
    FIELD("train.batch_size", 'z', "64"),
    FIELD("train.accumulate", 'z', "4"),
    FIELD("train.peak_gflops", 'd', "120.5"),
    FIELD("train.seed", 'u', "12345678901234567890"),
    FIELD("train.log_every", 'z', "3"),
    FIELD("train.eval_every", 'z', "300"),
    FIELD("train.early_stopping_patience", 'z', "4"),
    FIELD("train.bucket_mb", 'd', "12.5"),
    FIELD("train.exchange_embedding", 's', "sparse"),
    FIELD("train.precision", 's', "bf16"),
    FIELD("train.run_dir", 's', "runs/other"),
    FIELD("checkpoint.every_steps", 'z', "500"),
    FIELD("checkpoint.keep_last", 'z', "9"),
    FIELD("checkpoint.keep_best", 'b', "0"),
    FIELD("checkpoint.best_metric", 's', "loss"),
};

static const field_case bow_cases[] = {
    FIELD("model.type", 's', "bow"),
    FIELD("model.hidden_dim", 'z', "65"),
    FIELD("model.dropout", 'd', "0.125"),
    FIELD("model.word_dropout", 'd', "0.375"),
    FIELD("model.batch_norm", 'b', "false"),
    FIELD("model.num_classes", 'z', "5"),
    FIELD("model.ngrams", 'z', "3"),
    FIELD("model.ngram_buckets", 'z', "77"),
    FIELD("model.nb_scaling", 'b', "true"),
    FIELD("model.embed_init_std", 'd', "0.0625"),
    FIELD("model.embed_init_mean", 'd', "0.75"),
    FIELD("model.binary", 'b', "true"),
};

static const field_case classify_cases[] = {
    FIELD("objective.adversarial", 'd', "0.5"),
    FIELD("objective.adversarial_epsilon", 'd', "0.25"),
    FIELD("objective.class_weights", 's', "1,2.5"),
    FIELD("objective.oversample", 'b', "true"),
    FIELD("objective.length_buckets", 'z', "8"),
    FIELD("objective.vat", 'd', "0.75"),
    FIELD("objective.vat_epsilon", 'd', "0.125"),
    FIELD("objective.vat_xi", 'd', "0.0625"),
    FIELD("objective.vat_unlabelled", 'z', "40"),
};

static const field_case recurrent_cases[] = {
    FIELD("model.type", 's', "lstm"),
    FIELD("model.hidden_dim", 'z', "65"),
    FIELD("model.num_classes", 'z', "5"),
    FIELD("model.num_layers", 'z', "3"),
    FIELD("model.bidirectional", 'b', "true"),
    FIELD("model.pooling", 's', "last"),
    FIELD("model.rnn_dropout", 'd', "0.25"),
    FIELD("model.embed_dropout", 'd', "0.125"),
    FIELD("model.rnn_batch_norm", 'b', "true"),
    FIELD("model.head_hidden", 'z', "50"),
    FIELD("model.dropout", 'd', "0.125"),
};

/* The value bytes of a configuration: everything before the composed schema. */
#define VALUES_END offsetof(reel_config, num_keys)

static void check_cases(const reel_config *start, const field_case *const lists[], const size_t counts[], size_t num_lists) {
    int seen[REEL_CONFIG_MAX_KEYS] = {0};
    size_t covered = 0;
    for (size_t l = 0; l < num_lists; l++)
        for (size_t c = 0; c < counts[l]; c++) {
            const field_case *fc = &lists[l][c];
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(strchr(fc->assignment, '=') - fc->assignment), fc->assignment);
            int index = reel_config_key_index(start, name);
            if (index < 0 || (size_t)index >= start->num_keys) fail_msg("no schema entry for %s", name);
            if (seen[index]++) fail_msg("%s shares index %d with another key", name, index);
            covered++;
            if (!strcmp(fc->assignment + strlen(name) + 1, start->model.type)) continue; /* the type itself */

            reel_config before = *start, after;
            size_t offset = (size_t)((const char *)reel_config_field(&before, name) - (const char *)&before);
            size_t size = before.keys[index]->size;
            /* Scramble the field first so even a value equal to the default must be written. */
            memset((char *)&before + offset, 0x5a, size);
            after = before;
            reel_error err = {""};
            if (reel_config_override(&after, fc->assignment, &err) != 0) fail_msg("%s: %s", fc->assignment, err.message);

            unsigned char expected[REEL_PATH_MAX];
            memset(expected, 0, sizeof expected);
            switch (fc->kind) {
            case 's': memcpy(expected, fc->expected, strlen(fc->expected) + 1); break;
            case 'z': { size_t v = strtoull(fc->expected, NULL, 10); memcpy(expected, &v, sizeof v); break; }
            case 'u': { uint64_t v = strtoull(fc->expected, NULL, 10); memcpy(expected, &v, sizeof v); break; }
            case 'd': { double v = strtod(fc->expected, NULL); memcpy(expected, &v, sizeof v); break; }
            case 'b': { int v = strcmp(fc->expected, "true") == 0; memcpy(expected, &v, sizeof v); break; }
            }
            if (memcmp((char *)&after + offset, expected, size) != 0)
                fail_msg("%s did not store the expected bytes at the field", fc->assignment);
            for (size_t byte = 0; byte < VALUES_END; byte++) {
                if (byte >= offset && byte < offset + size) continue;
                if (((unsigned char *)&before)[byte] != ((unsigned char *)&after)[byte])
                    fail_msg("%s changed byte %zu, outside its field", fc->assignment, byte);
            }
            assert_string_equal(after.source_of[index], "--set");
        }
    /* And the schema has no key beyond these. */
    assert_int_equal(covered, start->num_keys);
}

static void test_every_field_has_one_key(void **state) {
    (void)state;
    reel_config cfg;
    reel_config_defaults(&cfg);
    assert_int_equal(cfg.num_keys, NUM_KEYS);
    const field_case *bow_lists[] = {general_cases, bow_cases, classify_cases};
    const size_t bow_counts[] = {sizeof general_cases / sizeof general_cases[0], sizeof bow_cases / sizeof bow_cases[0],
                                 sizeof classify_cases / sizeof classify_cases[0]};
    check_cases(&cfg, bow_lists, bow_counts, 3);
    assert_int_equal(reel_config_key_index(&cfg, "optimizer.learning_rate"), -1);
    assert_int_equal(reel_config_key_index(&cfg, "lr"), -1);
    assert_int_equal(reel_config_key_index(&cfg, "optimizer"), -1);
    assert_int_equal(reel_config_key_index(&cfg, "model.pooling"), -1); /* a key of the recurrent models */

    /* The resolved INI lists exactly these keys: data.dir, model.init_from, model.embed_from,
     * optimizer.decay_epochs, optimizer.freeze, checkpoint.best_metric and objective.class_weights are unset
     * in the defaults, which makes them comment lines. */
    char *ini = reel_config_to_ini(&cfg);
    size_t assignments = 0;
    for (char *line = strtok(ini, "\n"); line; line = strtok(NULL, "\n"))
        if (line[0] != ';' && line[0] != '[' && strstr(line, " = ")) assignments++;
    free(ini);
    assert_int_equal(assignments, NUM_KEYS - 7);

    reel_error err = {""};
    if (reel_config_override(&cfg, "model.type=lstm", &err) != 0) fail_msg("%s", err.message);
    const field_case *rec_lists[] = {general_cases, recurrent_cases, classify_cases};
    const size_t rec_counts[] = {sizeof general_cases / sizeof general_cases[0],
                                 sizeof recurrent_cases / sizeof recurrent_cases[0],
                                 sizeof classify_cases / sizeof classify_cases[0]};
    check_cases(&cfg, rec_lists, rec_counts, 3);
    assert_int_equal(reel_config_key_index(&cfg, "model.word_dropout"), -1); /* bow's */
}

static void assert_same_double(double a, double b, const char *what) {
    if (memcmp(&a, &b, sizeof a) != 0) fail_msg("%s: %.17g != %.17g after the round trip", what, a, b);
}

static void test_round_trip(void **state) {
    (void)state;
    reel_config a;
    reel_config_defaults(&a);
    /* Whole strings are replaced (as loading does), so the byte comparison below sees no leftovers. */
    memset(a.optimizer.type, 0, sizeof a.optimizer.type);
    memset(a.optimizer.schedule, 0, sizeof a.optimizer.schedule);
    memset(a.train.run_dir, 0, sizeof a.train.run_dir);
    char long_dir[REEL_PATH_MAX];
    memset(long_dir, 'q', sizeof long_dir);
    long_dir[0] = '/';
    long_dir[sizeof long_dir - 1] = '\0';
    snprintf(a.data.dir, sizeof a.data.dir, "%s", long_dir); /* a line well past inih's default limit */
    a.data.max_tokens = SIZE_MAX;
    a.model.vocab_size = 123457;
    DOUBLE_OF(a, "model.dropout") = 0.1 + 0.2;
    BOOL_OF(a, "model.batch_norm") = 0;
    snprintf(a.optimizer.type, sizeof a.optimizer.type, "sgd");
    a.optimizer.lr = 3e-4;
    a.optimizer.beta1 = 1.0 / 3.0;
    a.optimizer.beta2 = nextafter(1.0, 0.0);
    a.optimizer.eps = DBL_MIN;
    a.optimizer.momentum = 0.0;
    a.optimizer.nesterov = 1;
    snprintf(a.optimizer.decay, sizeof a.optimizer.decay, "matrices");
    a.optimizer.decay_embedding = 1;
    a.optimizer.weight_decay = 1e300;
    a.optimizer.clip_norm = nextafter(1.0, 2.0);
    snprintf(a.optimizer.schedule, sizeof a.optimizer.schedule, "cosine");
    a.optimizer.warmup_steps = 1;
    a.train.seed = UINT64_MAX;
    a.train.batch_size = 7;
    snprintf(a.train.run_dir, sizeof a.train.run_dir, "runs/with space#hash;semi=eq:colon");
    a.checkpoint.keep_best = 0;

    char *ini = reel_config_to_ini(&a);
    assert_true(strncmp(ini, "; Resolved reel configuration", 29) == 0);
    reel_config b;
    reel_error err = {""};
    if (reel_config_load_string(&b, ini, "resolved", &err) != 0) fail_msg("%s\n--- text ---\n%s", err.message, ini);

    assert_string_equal(a.data.dir, b.data.dir);
    assert_true(a.data.max_tokens == b.data.max_tokens);
    assert_string_equal(a.model.type, b.model.type);
    assert_true(a.model.vocab_size == b.model.vocab_size);
    assert_true(a.model.embed_dim == b.model.embed_dim);
    assert_true(SIZE_OF(a, "model.hidden_dim") == SIZE_OF(b, "model.hidden_dim"));
    assert_same_double(DOUBLE_OF(a, "model.dropout"), DOUBLE_OF(b, "model.dropout"), "model.dropout");
    assert_int_equal(BOOL_OF(a, "model.batch_norm"), BOOL_OF(b, "model.batch_norm"));
    assert_string_equal(a.optimizer.type, b.optimizer.type);
    assert_same_double(a.optimizer.lr, b.optimizer.lr, "optimizer.lr");
    assert_same_double(a.optimizer.beta1, b.optimizer.beta1, "optimizer.beta1");
    assert_same_double(a.optimizer.beta2, b.optimizer.beta2, "optimizer.beta2");
    assert_same_double(a.optimizer.eps, b.optimizer.eps, "optimizer.eps");
    assert_same_double(a.optimizer.momentum, b.optimizer.momentum, "optimizer.momentum");
    assert_int_equal(a.optimizer.nesterov, b.optimizer.nesterov);
    assert_string_equal(a.optimizer.decay, b.optimizer.decay);
    assert_int_equal(a.optimizer.decay_embedding, b.optimizer.decay_embedding);
    assert_same_double(a.optimizer.weight_decay, b.optimizer.weight_decay, "optimizer.weight_decay");
    assert_same_double(a.optimizer.clip_norm, b.optimizer.clip_norm, "optimizer.clip_norm");
    assert_string_equal(a.optimizer.schedule, b.optimizer.schedule);
    assert_true(a.optimizer.warmup_steps == b.optimizer.warmup_steps);
    assert_true(a.train.epochs == b.train.epochs);
    assert_true(a.train.max_steps == b.train.max_steps);
    assert_true(a.train.batch_size == b.train.batch_size);
    assert_true(a.train.seed == b.train.seed);
    assert_true(a.train.log_every == b.train.log_every);
    assert_string_equal(a.train.run_dir, b.train.run_dir);
    assert_true(a.checkpoint.every_steps == b.checkpoint.every_steps);
    assert_true(a.checkpoint.keep_last == b.checkpoint.keep_last);
    assert_int_equal(a.checkpoint.keep_best, b.checkpoint.keep_best);
    /* The values part of the struct as a whole, padding included (both start from zeroed memory). */
    assert_memory_equal(&a, &b, VALUES_END);
    for (size_t i = 0; i < b.num_keys; i++) {
        /* every key was written out, but for the unset optional strings (comment lines) */
        if (!strcmp(b.keys[i]->key, "decay_epochs") || !strcmp(b.keys[i]->key, "best_metric") ||
            !strcmp(b.keys[i]->key, "init_from") || !strcmp(b.keys[i]->key, "embed_from") ||
            !strcmp(b.keys[i]->key, "freeze") || !strcmp(b.keys[i]->key, "class_weights"))
            continue;
        assert_true(b.line_of[i] > 0);
        assert_string_equal(b.source_of[i], "resolved");
    }
    /* Doubles are written in their shortest exact form. */
    assert_non_null(strstr(ini, "\nlr = 0.0003\n"));
    assert_non_null(strstr(ini, "\ndropout = 0.30000000000000004\n"));

    /* The text of the reloaded configuration is the same text. */
    char *again = reel_config_to_ini(&b);
    assert_string_equal(ini, again);
    free(again);
    free(ini);

    /* An unset required key stays detectable after a round trip. */
    reel_config c;
    reel_config_defaults(&c);
    ini = reel_config_to_ini(&c);
    assert_int_equal(reel_config_load_string(&b, ini, "resolved", &err), -1);
    assert_string_equal(err.message, "resolved: missing required key [data] dir");
    free(ini);
}

static void test_print_schema(void **state) {
    (void)state;
    FILE *out = tmpfile();
    assert_non_null(out);
    reel_config_print_schema(out);
    rewind(out);
    char line[1024];
    size_t rows = 0, type_column = 0;
    while (fgets(line, sizeof line, out)) {
        if (rows == 0) {
            assert_true(strncmp(line, "for ", 4) == 0);
            assert_non_null(strstr(line, " section "));
            char *type = strstr(line, "type");
            assert_non_null(type);
            type_column = (size_t)(type - line);
        } else {
            /* Aligned: the type column starts at the same place on every row. */
            assert_true(strlen(line) > type_column);
            assert_true(line[type_column] != ' ' && line[type_column - 1] == ' ');
        }
        rows++;
    }
    fclose(out);
    assert_int_equal(rows, 1 + NUM_SCHEMA_ROWS);

    out = tmpfile();
    reel_config_print_schema(out);
    rewind(out);
    int found_lr = 0, found_dir = 0, found_type = 0, found_pooling = 0;
    while (fgets(line, sizeof line, out)) {
        char owner[64], section[64], key[64], type[64], def[64], allowed[64];
        if (sscanf(line, "%63s %63s %63s %63s %63s %63s", owner, section, key, type, def, allowed) != 6) continue;
        /* a key of the recurrent classifiers is listed once, for the three types that share it */
        if (!strcmp(section, "model") && !strcmp(key, "pooling"))
            found_pooling += !strcmp(owner, "lstm|gru|rnn") && !strcmp(allowed, "max|mean|last|concat");
        if (strcmp(owner, "all") != 0) continue;
        if (!strcmp(section, "optimizer") && !strcmp(key, "lr"))
            found_lr = !strcmp(type, "double") && !strcmp(def, "1e-3") && !strcmp(allowed, ">");
        if (!strcmp(section, "data") && !strcmp(key, "dir")) found_dir = !strcmp(def, "(required)");
        if (!strcmp(section, "optimizer") && !strcmp(key, "type"))
            found_type = !strcmp(type, "choice") && !strcmp(allowed, "adam|sgd|rmsprop");
    }
    fclose(out);
    assert_true(found_lr);
    assert_true(found_dir);
    assert_true(found_type);
    assert_int_equal(found_pooling, 1);
}

/* Each model type has its own keys: another model's key is an error that names its owner, wherever the
 * type is given in the file; --set model.type switches the keys and carries given values over. */
/* The recurrent LM was type lm before it was rnn_lm: the old name still loads (from a file, from the
 * /config of an old checkpoint, from --set), brings rnn_lm's keys and objective, and is stored (so written
 * back) as rnn_lm. */
static void test_model_type_alias(void **state) {
    (void)state;
    reel_config cfg;
    reel_error err = {""};
    if (reel_config_load_string(&cfg, "[data]\ndir = d\n[model]\ntype = lm\ncell = gru\ntie_weights = true\n",
                                "ckpt.h5:/config", &err) != 0)
        fail_msg("%s", err.message);
    assert_string_equal(cfg.model.type, "rnn_lm");
    assert_string_equal(cfg.objective.type, "next_token");
    assert_string_equal((const char *)reel_config_field(&cfg, "model.cell"), "gru");
    assert_int_equal(cfg.line_of[reel_config_key_index(&cfg, "model.type")], 4);
    /* written back under the new name */
    char *ini = reel_config_to_ini(&cfg);
    assert_non_null(strstr(ini, "\ntype = rnn_lm\n"));
    assert_null(strstr(ini, "\ntype = lm\n"));
    free(ini);

    assert_int_equal(reel_config_load_string(&cfg, "[data]\ndir = d\n", "a.ini", &err), 0);
    if (reel_config_override(&cfg, "model.type=lm", &err) != 0) fail_msg("%s", err.message);
    assert_string_equal(cfg.model.type, "rnn_lm");
    assert_non_null(reel_config_field(&cfg, "model.tie_weights"));
    assert_string_equal(reel_model_type_resolve("lm"), "rnn_lm");
    assert_string_equal(reel_model_type_resolve("lstm"), "lstm");

    /* --help-config lists the type by its name, and the old name beside it */
    FILE *out = tmpfile();
    reel_config_print_schema(out);
    rewind(out);
    char line[1024];
    int listed = 0;
    while (fgets(line, sizeof line, out))
        listed |= strstr(line, " model ") && strstr(line, "|rnn_lm|") && strstr(line, " (old name lm = rnn_lm) ") != NULL;
    fclose(out);
    assert_true(listed);
}

static void test_model_keys(void **state) {
    (void)state;
    expect_file_error("[data]\ndir = d\n[model]\nword_dropout = 0.5\ntype = lstm\n",
                      ":4: unknown key 'word_dropout' in section [model] for model type 'lstm': it is a key of model "
                      "types 'bow', 'rnn_lm' (known keys: type, vocab_size, embed_dim, init_from, embed_from, hidden_dim, "
                      "num_layers, bidirectional, pooling, rnn_dropout, embed_dropout, rnn_batch_norm, head_hidden, "
                      "dropout, num_classes)");
    expect_file_error_containing("[data]\ndir = d\n[model]\npooling = max\n",
                                 ":4: unknown key 'pooling' in section [model] for model type 'bow': it is a key of "
                                 "model types 'lstm', 'gru', 'rnn', 'transformer'", NULL);
    /* an unknown type is reported at its own line, before any key that would depend on it */
    expect_file_error_containing("[data]\ndir = d\n[model]\nhidden_dim = 5\ntype = svm\n",
                                 ":5: [model] type = 'svm': expected one of bow, lstm, gru, rnn", NULL);

    reel_config cfg;
    reel_error err = {""};
    assert_int_equal(reel_config_load_string(&cfg, "[data]\ndir = d\n[model]\nhidden_dim = 7\ndropout = 0.25\n",
                                             "a.ini", &err), 0);
    assert_string_equal(cfg.objective.type, "classify");
    if (reel_config_override(&cfg, "model.type=gru", &err) != 0) fail_msg("%s", err.message);
    assert_string_equal(cfg.model.type, "gru");
    assert_int_equal(SIZE_OF(cfg, "model.hidden_dim"), 7);         /* given: carried over */
    assert_true(DOUBLE_OF(cfg, "model.dropout") == 0.25);
    assert_int_equal(SIZE_OF(cfg, "model.num_layers"), 1);          /* gru's default */
    assert_int_equal(cfg.line_of[reel_config_key_index(&cfg, "model.hidden_dim")], 4);
    assert_string_equal(cfg.source_of[reel_config_key_index(&cfg, "model.hidden_dim")], "a.ini");

    assert_int_equal(reel_config_load_string(&cfg, "[data]\ndir = d\n[model]\nword_dropout = 0.5\n", "b.ini", &err), 0);
    reel_config before = cfg;
    assert_int_equal(reel_config_override(&cfg, "model.type=lstm", &err), -1);
    assert_string_equal(err.message, "--set 'model.type=lstm': b.ini:4: unknown key 'word_dropout' in section [model] "
                                     "for model type 'lstm': it is a key of model types 'bow', 'rnn_lm' (known keys: type, "
                                     "vocab_size, embed_dim, init_from, embed_from, hidden_dim, num_layers, "
                                     "bidirectional, pooling, rnn_dropout, embed_dropout, rnn_batch_norm, head_hidden, "
                                     "dropout, num_classes)");
    assert_memory_equal(&before, &cfg, sizeof cfg); /* refused: nothing changed */
}

/* Every configuration the project ships (configs/*.ini) loads, with its model's keys and its schedule
 * accepted: a README command must not meet an unknown key or a value out of range. */
static void test_shipped_configs(void **state) {
    (void)state;
    const char *source = getenv("REEL_SOURCE_DIR");
    assert_non_null(source); /* set by CTest (tests/CMakeLists.txt) */
    char dir_path[4096];
    snprintf(dir_path, sizeof dir_path, "%s/configs", source);
    DIR *dir = opendir(dir_path);
    assert_non_null(dir);
    size_t checked = 0;
    for (struct dirent *entry; (entry = readdir(dir));) {
        size_t n = strlen(entry->d_name);
        if (n < 5 || strcmp(entry->d_name + n - 4, ".ini") != 0) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir_path, entry->d_name);
        reel_config cfg;
        reel_error err = {{0}};
        if (reel_config_load_file(&cfg, path, &err) != 0 || reel_schedule_check(&cfg, &err) != 0)
            fail_msg("%s: %s", path, err.message);
        checked++;
    }
    closedir(dir);
    assert_true(checked >= 10);
}

/* The configuration layer knows the model types and objectives only through the catalogue it is given:
 * a catalogue of made-up types (one of them named bow, the general table's default type) gives their
 * keys, choices, old names and default objective, and none of the registries'. */
typedef struct toy_options {
    size_t width, depth;
    double margin;
} toy_options;
static const reel_key toy_bow_keys[] = {
    REEL_KEY_SIZE_OF(toy_options, "model", "width", width, "7", REEL_BOUND_MIN, 1, "toy bow: width"),
};
static const reel_key toy_keys[] = {
    REEL_KEY_SIZE_OF(toy_options, "model", "depth", depth, "2", REEL_BOUND_MIN, 1, "toy: depth"),
};
static const reel_key score_keys[] = {
    REEL_KEY_DOUBLE_OF(toy_options, "objective", "margin", margin, "0.5", REEL_BOUND_MIN_OPEN, 0, 0, "score: margin"),
};
static const reel_key_table toy_bow_table = {toy_bow_keys, 1, sizeof(toy_options)};
static const reel_key_table toy_table = {toy_keys, 1, sizeof(toy_options)};
static const reel_key_table score_table = {score_keys, 1, sizeof(toy_options)};
static const reel_key_table rank_table = {NULL, 0, 0};
static const reel_config_type toy_models[] = {{"bow", &toy_bow_table, "score"}, {"toy", &toy_table, "rank"}};
static const reel_config_alias toy_aliases[] = {{"old_toy", "toy"}};
static const reel_config_type toy_objectives[] = {{"score", &score_table, NULL}, {"rank", &rank_table, NULL}};
static const reel_config_catalogue toy_catalogue = {toy_models, 2, toy_aliases, 1, toy_objectives, 2};

static void test_catalogue(void **state) {
    (void)state;
    reel_config cfg;
    reel_error err = {""};
    reel_config_defaults_with(&cfg, &toy_catalogue);
    assert_ptr_equal(cfg.catalogue, &toy_catalogue);
    assert_string_equal(cfg.model.type, "bow");
    assert_string_equal(cfg.objective.type, "score");
    assert_int_equal(SIZE_OF(cfg, "model.width"), 7);
    assert_true(DOUBLE_OF(cfg, "objective.margin") == 0.5);
    assert_int_equal(reel_config_key_index(&cfg, "model.hidden_dim"), -1); /* the registered bow's key */
    assert_int_equal(reel_config_key_index(&cfg, "objective.label_smoothing"), -1);

    /* an old name of the catalogue loads as its type, with that type's keys */
    if (reel_config_load_string_with(&cfg, &toy_catalogue, "[data]\ndir = d\n[model]\ntype = old_toy\ndepth = 5\n",
                                     "t.ini", &err) != 0)
        fail_msg("%s", err.message);
    assert_string_equal(cfg.model.type, "toy");
    assert_string_equal(cfg.objective.type, "rank"); /* the type's own objective, from the catalogue */
    assert_int_equal(SIZE_OF(cfg, "model.depth"), 5);
    assert_int_equal(reel_config_key_index(&cfg, "model.width"), -1);

    /* the choices are the catalogue's types, not the registries' */
    assert_int_equal(reel_config_load_string_with(&cfg, &toy_catalogue, "[data]\ndir = d\n[model]\ntype = lstm\n",
                                                  "t.ini", &err), -1);
    assert_string_equal(err.message, "t.ini:4: [model] type = 'lstm': expected one of bow, toy");
    assert_int_equal(reel_config_load_string_with(&cfg, &toy_catalogue, "[data]\ndir = d\n[objective]\ntype = classify\n",
                                                  "t.ini", &err), -1);
    assert_string_equal(err.message, "t.ini:4: [objective] type = 'classify': expected one of score, rank");

    /* another type's key names its owner from the catalogue; --set switches within it */
    assert_int_equal(reel_config_load_string_with(&cfg, &toy_catalogue, "[data]\ndir = d\n", "t.ini", &err), 0);
    assert_int_equal(reel_config_override(&cfg, "model.depth=3", &err), -1);
    assert_string_equal(err.message, "--set 'model.depth=3': unknown key 'depth' in section [model] for model type "
                                     "'bow': it is a key of model type 'toy' (known keys: type, vocab_size, "
                                     "embed_dim, init_from, embed_from, width)");
    if (reel_config_override(&cfg, "model.type=toy", &err) != 0 || reel_config_override(&cfg, "model.depth=3", &err) != 0)
        fail_msg("%s", err.message);
    assert_int_equal(SIZE_OF(cfg, "model.depth"), 3);

    /* --help-config lists the catalogue's types and old names, and nothing of the registries */
    FILE *out = tmpfile();
    assert_non_null(out);
    reel_config_print_schema_with(out, &toy_catalogue);
    rewind(out);
    char line[1024];
    int width = 0, depth = 0, margin = 0, model_type = 0, objective_type = 0, own_rows = 0;
    while (fgets(line, sizeof line, out)) {
        char owner[64], section[64], key[64];
        if (sscanf(line, "%63s %63s %63s", owner, section, key) != 3) continue;
        width += !strcmp(owner, "bow") && !strcmp(key, "width");
        depth += !strcmp(owner, "toy") && !strcmp(key, "depth");
        margin += !strcmp(owner, "objective") && !strcmp(section, "score") && !strcmp(key, "objective");
        model_type += !strcmp(section, "model") && !strcmp(key, "type") && strstr(line, " bow|toy (old name old_toy = toy) ");
        objective_type += !strcmp(section, "objective") && !strcmp(key, "type") && strstr(line, " score|rank ");
        /* the rows of types (not the general keys, not the header): the three above, no registered type's */
        own_rows += strcmp(owner, "all") != 0 && strcmp(owner, "for") != 0;
    }
    fclose(out);
    assert_int_equal(width, 1);
    assert_int_equal(depth, 1);
    assert_int_equal(margin, 1);
    assert_int_equal(model_type, 1);
    assert_int_equal(objective_type, 1);
    assert_int_equal(own_rows, 3);
}

int main(void) {
    initial_max_line = ini_max_line;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_valid_file),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_unknown_section),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_integer_errors),
        cmocka_unit_test(test_double_errors_and_bounds),
        cmocka_unit_test(test_bool_choice_string),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_load_string),
        cmocka_unit_test(test_override),
        cmocka_unit_test(test_every_field_has_one_key),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_print_schema),
        cmocka_unit_test(test_model_type_alias), cmocka_unit_test(test_model_keys),
        cmocka_unit_test(test_shipped_configs),
        cmocka_unit_test(test_catalogue),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
