/* reel/config.h: the training configuration, read from an INI file (libinih) and `--set` overrides.
 *
 * Every key is declared once in a schema (src/config.c) with its section, type, default, bounds and a
 * one-line help text; the schema drives parsing, validation, `reel train --help-config` and the printed
 * resolved configuration, so they cannot disagree. Errors name the file, the line, the section and key,
 * and what was expected. Unknown sections and keys are errors (a typo must not silently train the wrong
 * model).
 */
#ifndef REEL_CONFIG_H
#define REEL_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "reel/check.h"

#define REEL_PATH_MAX 1024
#define REEL_NAME_MAX 32
#define REEL_CONFIG_MAX_KEYS 64

typedef struct reel_config {
    struct {
        char dir[REEL_PATH_MAX]; /* output directory of `reel prep` (required) */
        size_t max_tokens;       /* tokens kept from the start of each document; 0 keeps all */
        size_t seq_len;          /* training window drawn at random per document and epoch; 0 = whole */
    } data;
    struct {
        char type[REEL_NAME_MAX]; /* "bow", "lstm", "gru" or "rnn" */
        size_t vocab_size;        /* ids >= vocab_size map to <unk> */
        size_t embed_dim;
        size_t hidden_dim;
        double dropout;           /* probability of zeroing a hidden unit */
        double word_dropout;      /* probability of leaving a token out of the average while training */
        int batch_norm;           /* bow: 1 = batch norm after the hidden linear layer */
        size_t num_classes;       /* 0: from the data; 2: one logit (BCE); K > 2: K logits (softmax) */
        size_t num_layers;        /* recurrent: stacked layers */
        int bidirectional;        /* recurrent: a reverse direction in every layer */
        char pooling[REEL_NAME_MAX]; /* recurrent: "max", "mean" or "last" over time */
        double rnn_dropout;       /* recurrent: locked dropout on every layer's output */
        double embed_dropout;     /* recurrent: locked dropout on the embeddings */
        int rnn_batch_norm;       /* recurrent: batch norm on every layer's output (valid steps) */
        size_t head_hidden;       /* recurrent: hidden width of the classifier head; 0 = none */
    } model;
    struct {
        char type[REEL_NAME_MAX];     /* "adam" or "sgd" */
        double lr;
        double beta1, beta2, eps;     /* adam */
        double momentum;              /* sgd */
        int nesterov;                 /* sgd */
        double weight_decay;          /* adam: decoupled (AdamW); sgd: L2 added to the gradient */
        double clip_norm;             /* global gradient-norm clip; 0 disables */
        char schedule[REEL_NAME_MAX]; /* "constant", "cosine" or "linear" (decay to 0 over the run) */
        size_t warmup_steps;          /* linear warm-up from 0 */
    } optimizer;
    struct {
        size_t epochs;
        size_t max_steps;  /* stop after this many global steps; 0: run all epochs */
        size_t batch_size; /* global: split across the ranks */
        uint64_t seed;
        size_t log_every;  /* steps between progress lines and metric rows */
        char run_dir[REEL_PATH_MAX];
    } train;
    struct {
        size_t every_steps; /* 0: only at the end of each epoch and of the run */
        size_t keep_last;   /* newest numbered checkpoints kept; older ones are deleted */
        int keep_best;      /* 1: also keep ckpt_best.h5, the best by validation accuracy */
    } checkpoint;

    /* Where each key's value came from, for messages: the file (or "--set"/"checkpoint") and line.
     * Indexed like the schema; line 0 means the default was used. */
    unsigned int line_of[REEL_CONFIG_MAX_KEYS];
    const char *source_of[REEL_CONFIG_MAX_KEYS];
} reel_config;

/* Fills every key with its default. */
void reel_config_defaults(reel_config *cfg);
/* Defaults, then the INI file at path, then the required-key check. */
int reel_config_load_file(reel_config *cfg, const char *path, reel_error *err);
/* Same from text already in memory; source_name is used in messages (e.g. "ckpt_00000100.h5:/config"). */
int reel_config_load_string(reel_config *cfg, const char *text, const char *source_name, reel_error *err);
/* Applies one "section.key=value" override, as given to --set. */
int reel_config_override(reel_config *cfg, const char *assignment, reel_error *err);
/* The resolved configuration as INI text (malloc'd), every key present, loadable again. */
char *reel_config_to_ini(const reel_config *cfg);
/* Lists every section, key, type, default and help line (for --help-config). */
void reel_config_print_schema(FILE *out);
/* Index into line_of/source_of of the key named "section.key" (e.g. "train.batch_size"), or -1 when
 * there is no such key. */
int reel_config_key_index(const char *name);

#endif
