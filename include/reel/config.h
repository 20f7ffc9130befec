/* reel/config.h: the training configuration, read from an INI file (libinih) and `--set` overrides.
 *
 * Every key is declared once, with its section, type, default, bounds and a one-line help text. The
 * general keys (data, optimizer, train, checkpoint, and the [model]/[objective] keys every model and
 * objective has) are declared in src/config/config.c and stored in the fields of reel_config. Each model
 * type and each objective declares its own keys in its own source file (a reel_key_table registered
 * with the model or objective), stored in an options struct private to that file, which reel_config
 * holds as an opaque block (model_options, objective_options); the offsets of its keys point into it.
 * So a model's keys exist only for that model: `[model] word_dropout` is an error for an LSTM, with a
 * message that says which model it belongs to.
 *
 * The schema in effect (the "composed" keys) is therefore a function of [model] type and [objective]
 * type, which are read first. It drives parsing, validation, `reel train --help-config` and the printed
 * resolved configuration, so they cannot disagree. Errors name the file, the line, the section and key,
 * and what was expected. Unknown sections and keys are errors (a typo must not silently train the
 * wrong model).
 */
#ifndef REEL_CONFIG_H
#define REEL_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "reel/check.h"

#define REEL_PATH_MAX 1024
#define REEL_NAME_MAX 32
#define REEL_LIST_MAX 128   /* comma-separated lists held as strings (e.g. splits, per-layer widths) */
#define REEL_CONFIG_MAX_KEYS 96
#define REEL_OPTIONS_MAX 512 /* bytes of a model's or an objective's options struct */

typedef enum { REEL_KEY_STRING, REEL_KEY_SIZE, REEL_KEY_UINT64, REEL_KEY_DOUBLE, REEL_KEY_BOOL, REEL_KEY_CHOICE } reel_key_type;

/* Bound flags: a closed or open limit on each side. Integer keys only use REEL_BOUND_MIN. */
enum { REEL_BOUND_MIN = 1, REEL_BOUND_MIN_OPEN = 2, REEL_BOUND_MAX = 4, REEL_BOUND_MAX_OPEN = 8 };

/* Where a key's value lives: a field of reel_config, or of the model's or the objective's options. */
typedef enum { REEL_STORE_CONFIG = 0, REEL_STORE_MODEL = 1, REEL_STORE_OBJECTIVE = 2 } reel_key_store;

typedef struct reel_key {
    const char *section;
    const char *key;
    reel_key_type type;
    size_t offset;              /* of the field in its storage */
    size_t size;                /* bytes of the field: the capacity of string fields */
    const char *default_text;   /* NULL for a required key */
    unsigned bounds;
    double lo, hi;
    const char *const *choices; /* NULL-terminated, for REEL_KEY_CHOICE; NULL: the choices come from the catalogue */
    /* REEL_KEY_CHOICE without choices: which types of the catalogue (below) are the choices; the model
     * types also accept their old names, stored as the type they stand for */
    enum { REEL_CHOICES_LISTED = 0, REEL_CHOICES_MODEL_TYPES, REEL_CHOICES_OBJECTIVES } choices_from;
    const char *help;
} reel_key;

typedef struct reel_key_table {
    const reel_key *keys;
    size_t count;
    size_t options_size; /* bytes of the options struct the offsets point into (<= REEL_OPTIONS_MAX) */
} reel_key_table;

/* The model types and objectives the configuration can name, with their key tables. The registries
 * (above this layer: src/models, src/objectives) build it and hand it in, so that this layer needs no
 * knowledge of them (reel/catalogue.h has the registries' catalogue and wrappers that pass it). */
typedef struct reel_config_type {
    const char *name;
    const reel_key_table *keys;
    const char *objective; /* a model type's: the objective trained when [objective] type is not given */
} reel_config_type;

typedef struct reel_config_alias {
    const char *name; /* an old name still read ("lm") */
    const char *type; /* the type it stands for ("rnn_lm") */
} reel_config_alias;

typedef struct reel_config_catalogue {
    const reel_config_type *models;
    size_t num_models;
    const reel_config_alias *model_aliases;
    size_t num_model_aliases;
    const reel_config_type *objectives;
    size_t num_objectives;
} reel_config_catalogue;

/* Declaring keys. The _Generic terms are never evaluated; they turn an entry whose type does not match
 * its field into a compile error instead of a silent overwrite of the neighbouring field.
 * S is the struct that holds the field: reel_config for general keys, the options struct otherwise. */
#define REEL_FIELD_TYPED(S, field, T)                                                                   \
    .offset = offsetof(S, field) + 0 * sizeof(_Generic(((S *)0)->field, T : 1)), .size = sizeof(((S *)0)->field)
#define REEL_FIELD_CHARS(S, field)                                                                      \
    .offset = offsetof(S, field) + 0 * sizeof(_Generic(&((S *)0)->field[0], char * : 1)),               \
    .size = sizeof(((S *)0)->field)
#define REEL_KEY_STRING_OF(S, sec, name, field, def, help_text)                                         \
    {.section = sec, .key = name, .type = REEL_KEY_STRING, REEL_FIELD_CHARS(S, field), .default_text = def, .help = help_text}
#define REEL_KEY_CHOICE_OF(S, sec, name, field, def, list, help_text)                                   \
    {.section = sec, .key = name, .type = REEL_KEY_CHOICE, REEL_FIELD_CHARS(S, field), .default_text = def, \
     .choices = list, .help = help_text}
#define REEL_KEY_SIZE_OF(S, sec, name, field, def, bound_flags, min, help_text)                         \
    {.section = sec, .key = name, .type = REEL_KEY_SIZE, REEL_FIELD_TYPED(S, field, size_t), .default_text = def, \
     .bounds = bound_flags, .lo = min, .help = help_text}
#define REEL_KEY_UINT64_OF(S, sec, name, field, def, help_text)                                         \
    {.section = sec, .key = name, .type = REEL_KEY_UINT64, REEL_FIELD_TYPED(S, field, uint64_t), .default_text = def, \
     .help = help_text}
#define REEL_KEY_DOUBLE_OF(S, sec, name, field, def, bound_flags, min, max, help_text)                  \
    {.section = sec, .key = name, .type = REEL_KEY_DOUBLE, REEL_FIELD_TYPED(S, field, double), .default_text = def, \
     .bounds = bound_flags, .lo = min, .hi = max, .help = help_text}
#define REEL_KEY_BOOL_OF(S, sec, name, field, def, help_text)                                           \
    {.section = sec, .key = name, .type = REEL_KEY_BOOL, REEL_FIELD_TYPED(S, field, int), .default_text = def, \
     .help = help_text}

typedef struct reel_config {
    struct {
        char dir[REEL_PATH_MAX]; /* output directory of `reel prep` (required) */
        size_t max_tokens;       /* tokens kept from the start of each document; 0 keeps all */
        size_t seq_len;          /* training window drawn at random per document and epoch; 0 = whole */
        int reverse;             /* every document read last token first */
    } data;
    struct {
        char type[REEL_NAME_MAX]; /* a model type of the catalogue */
        size_t vocab_size;        /* ids >= vocab_size map to <unk> */
        size_t embed_dim;
        char init_from[REEL_PATH_MAX]; /* a checkpoint whose encoder a fresh run starts from; "": none */
        char embed_from[REEL_PATH_MAX]; /* word vectors (GloVe / word2vec / fastText text) a fresh run's embedding starts from */
    } model;
    struct {
        char type[REEL_NAME_MAX]; /* an objective of the catalogue; "" in the file: the model's own */
    } objective;
    struct {
        char type[REEL_NAME_MAX];     /* "adam", "sgd" or "rmsprop" */
        double lr;
        double beta1, beta2, eps;     /* adam (eps: rmsprop too) */
        double momentum;              /* sgd */
        int nesterov;                 /* sgd */
        double alpha;                 /* rmsprop: decay of the squared-gradient average */
        int centered;                 /* rmsprop */
        double rmsprop_momentum;      /* rmsprop */
        double weight_decay;          /* adam: decoupled (AdamW); sgd, rmsprop: L2 added to the gradient */
        char decay[REEL_NAME_MAX];    /* which tensors weight_decay applies to: "model" (each tensor's flag as
                                         its model set it), "all", "matrices" (2+ dimensions, not the embedding) */
        int decay_embedding;          /* decay = matrices: the embedding decays too */
        int lazy_embedding;           /* adam: only the embedding rows with a gradient this step move */
        double clip_norm;             /* global gradient-norm clip; 0 disables */
        char schedule[REEL_NAME_MAX]; /* see reel/optim.h */
        size_t warmup_steps;          /* linear warm-up from 0 */
        char decay_epochs[REEL_LIST_MAX]; /* step: epochs at which the rate is multiplied by decay_factor */
        double decay_factor;
        double stlr_cut_frac;         /* slanted triangular: share of the steps spent rising */
        double stlr_ratio;            /* slanted triangular: peak / lowest rate */
        char freeze[REEL_LIST_MAX];   /* layers (tensor name before '/') that do not train */
        size_t unfreeze_every;        /* gradual unfreezing: one more frozen group from the top every N units */
        char unfreeze_unit[REEL_NAME_MAX]; /* "epochs" or "steps" */
        double layer_lr_decay;        /* discriminative rates: each group below the top gets lr / decay^depth */
    } optimizer;
    struct {
        size_t epochs;
        size_t max_steps;  /* stop after this many global steps; 0: run all epochs */
        size_t batch_size; /* global: split across the ranks */
        size_t accumulate; /* micro-batches a rank runs its share in, per optimizer step */
        double peak_gflops; /* one rank's peak (bench/peak), for the model FLOP utilisation; 0: not reported */
        uint64_t seed;
        size_t log_every;  /* steps between progress lines and metric rows */
        size_t eval_every; /* steps between evaluations inside an epoch; 0: at the end of each epoch only */
        size_t early_stopping_patience; /* evaluations without improvement that end the run; 0: never */
        double bucket_mb;  /* gradient buckets all-reduced during the backward; 0: one exchange after it */
        char exchange_embedding[REEL_NAME_MAX]; /* "auto", "dense" or "sparse" (reel/exchange.h) */
        char precision[REEL_NAME_MAX]; /* "fp32", "bf16" or "auto" (reel/gemm.h) */
        char run_dir[REEL_PATH_MAX];
    } train;
    struct {
        size_t every_steps; /* 0: only at the end of each epoch and of the run */
        size_t keep_last;   /* newest numbered checkpoints kept; older ones are deleted */
        int keep_best;      /* 1: also keep ckpt_best.h5, the best by best_metric */
        char best_metric[REEL_NAME_MAX]; /* an evaluation series of the objective; "": the objective's own */
    } checkpoint;

    /* The options of the model type and of the objective, laid out by their own key tables. */
    _Alignas(16) unsigned char model_options[REEL_OPTIONS_MAX];
    _Alignas(16) unsigned char objective_options[REEL_OPTIONS_MAX];

    /* The composed schema: every key in effect, in the order of --help-config and of the resolved INI.
     * Where each key's value came from, for messages: the file (or "--set", "checkpoint", "data") and
     * line; line 0 means the default was used. */
    size_t num_keys;
    const reel_key *keys[REEL_CONFIG_MAX_KEYS];
    unsigned char store_of[REEL_CONFIG_MAX_KEYS]; /* reel_key_store */
    unsigned int line_of[REEL_CONFIG_MAX_KEYS];
    const char *source_of[REEL_CONFIG_MAX_KEYS];
    /* the types the configuration can name; it must outlive cfg (the registries' is static) */
    const reel_config_catalogue *catalogue;
} reel_config;

/* Fills every key with its default (model type bow and its objective) and keeps catalogue in cfg: the
 * types [model] type and [objective] type can name. */
void reel_config_defaults_with(reel_config *cfg, const reel_config_catalogue *catalogue);
/* Defaults, then the INI file at path, then the required-key check. */
int reel_config_load_file_with(reel_config *cfg, const reel_config_catalogue *catalogue, const char *path,
                               reel_error *err);
/* Same from text already in memory; source_name is used in messages (e.g. "ckpt_00000100.h5:/config"). */
int reel_config_load_string_with(reel_config *cfg, const reel_config_catalogue *catalogue, const char *text,
                                 const char *source_name, reel_error *err);
/* Applies one "section.key=value" override, as given to --set. Changing [model] type or [objective]
 * type switches to that type's keys; values already given for the old type carry over when the new
 * type has the same key, and are an error naming where they were given otherwise. */
int reel_config_override(reel_config *cfg, const char *assignment, reel_error *err);
/* Sets "section.key" to value as something the program worked out (e.g. the number of classes of the
 * data); source names where it came from in messages and in the printed configuration. */
int reel_config_set(reel_config *cfg, const char *name, const char *value, const char *source, reel_error *err);
/* The resolved configuration as INI text (malloc'd), every key present, loadable again. */
char *reel_config_to_ini(const reel_config *cfg);
/* Lists every section, key, type, default and help line (for --help-config): the general keys, then
 * those of each model type and each objective of catalogue. */
void reel_config_print_schema_with(FILE *out, const reel_config_catalogue *catalogue);
/* Index into keys/line_of/source_of of the key named "section.key" (e.g. "train.batch_size") in cfg's
 * composed schema, or -1 when there is no such key. */
int reel_config_key_index(const reel_config *cfg, const char *name);
/* The storage of key "section.key" (a size_t, uint64_t, double, int or char array as the key's type
 * says), or NULL when cfg has no such key. */
const void *reel_config_field(const reel_config *cfg, const char *name);
/* The options of the model / the objective, laid out by their key tables. */
static inline const void *reel_config_model_options(const reel_config *cfg) { return cfg->model_options; }
static inline const void *reel_config_objective_options(const reel_config *cfg) { return cfg->objective_options; }

/* Comma-separated lists held in string keys: splits "a,b,c" into at most max items (spaces around
 * items are dropped); returns the count, or -1 with err naming the key when there are too many, or an
 * item is empty. */
int reel_config_split_list(const char *list, const char *key_name, char items[][REEL_NAME_MAX], size_t max,
                           reel_error *err);
/* The same for lists of positive integers ("500,500,400"). */
int reel_config_size_list(const char *list, const char *key_name, size_t *values, size_t max, reel_error *err);

#endif
