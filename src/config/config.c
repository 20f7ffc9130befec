/* src/config/config.c: the configuration schema, INI loading through libinih, --set overrides and printing.
 *
 * The general keys live in one table here. The keys of each model type and objective live in their own
 * files and reach this one through the catalogue the caller passes (reel_config_catalogue: the registries
 * build it, above this layer, which knows nothing of them). The schema of a configuration is composed
 * from the general table and the tables of its model type and objective, so parsing, validation,
 * defaults, the resolved INI text and --help-config cannot drift apart.
 */
#include "reel/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "reel/util.h"

static const char *const type_names[] = {"string", "size", "uint64", "double", "bool", "choice"};

#define KEY_STRING(sec, name, field, def, help_text) REEL_KEY_STRING_OF(reel_config, sec, name, field, def, help_text)
#define KEY_CHOICE(sec, name, field, def, list, help_text)                                             \
    REEL_KEY_CHOICE_OF(reel_config, sec, name, field, def, list, help_text)
#define KEY_SIZE(sec, name, field, def, bound_flags, min, help_text)                                   \
    REEL_KEY_SIZE_OF(reel_config, sec, name, field, def, bound_flags, min, help_text)
#define KEY_UINT64(sec, name, field, def, help_text) REEL_KEY_UINT64_OF(reel_config, sec, name, field, def, help_text)
#define KEY_DOUBLE(sec, name, field, def, bound_flags, min, max, help_text)                            \
    REEL_KEY_DOUBLE_OF(reel_config, sec, name, field, def, bound_flags, min, max, help_text)
#define KEY_BOOL(sec, name, field, def, help_text) REEL_KEY_BOOL_OF(reel_config, sec, name, field, def, help_text)
#define BOUND_MIN REEL_BOUND_MIN
#define BOUND_MIN_OPEN REEL_BOUND_MIN_OPEN
#define BOUND_MAX REEL_BOUND_MAX
#define BOUND_MAX_OPEN REEL_BOUND_MAX_OPEN

static const char *const optimizer_types[] = {"adam", "sgd", "rmsprop", NULL};
static const char *const schedules[] = {"constant", "cosine", "linear", "step", "slanted_triangular", NULL};
static const char *const unfreeze_units[] = {"epochs", "steps", NULL};
static const char *const decay_modes[] = {"model", "all", "matrices", NULL};
static const char *const embedding_exchanges[] = {"auto", "dense", "sparse", NULL};
static const char *const precisions[] = {"fp32", "bf16", "auto", NULL};

/* Sections in the order of the resolved INI and of --help-config. */
static const char *const sections[] = {"data", "model", "objective", "optimizer", "train", "checkpoint"};
#define NUM_SECTIONS (sizeof sections / sizeof sections[0])

/* The general keys. [model] and [objective] type are always the first keys of their sections. */
static const reel_key general_keys[] = {
    KEY_STRING("data", "dir", data.dir, NULL, "directory written by `reel prep` (vocabulary and token files)"),
    KEY_SIZE("data", "max_tokens", data.max_tokens, "0", 0, 0, "tokens kept from the start of each document; 0 keeps all"),
    KEY_SIZE("data", "seq_len", data.seq_len, "0", 0, 0,
             "training window: a random run of seq_len tokens per document, drawn again every epoch; 0 = whole "
             "(language models: the tokens per window, predicting the next one at each)"),
    KEY_BOOL("data", "reverse", data.reverse, "false",
             "read every document from its last token to its first: a backward language model, and the "
             "classifiers fine-tuned from one (ULMFiT's backward half); max_tokens then keeps each document's last "
             "tokens"),

    {.section = "model", .key = "type", .type = REEL_KEY_CHOICE, REEL_FIELD_CHARS(reel_config, model.type),
     .default_text = "bow", .choices_from = REEL_CHOICES_MODEL_TYPES,
     .help = "the model; each type has keys of its own (listed below under its name)"},
    KEY_SIZE("model", "vocab_size", model.vocab_size, "8000", BOUND_MIN, 4,
             "token ids >= vocab_size map to <unk> (the reserved ids <pad>, <unk>, <eod> count)"),
    KEY_SIZE("model", "embed_dim", model.embed_dim, "256", BOUND_MIN, 1, "width of the token embeddings"),
    KEY_STRING("model", "init_from", model.init_from, "",
               "a checkpoint (e.g. a language model's) whose encoder tensors a fresh run starts from, by name and shape "
               "(the embedding, recurrent layers and batch norms; a gpt's embedding, positions, blocks and final norm for a "
               "transformer classifier); a resumed run continues from its own"),
    KEY_STRING("model", "embed_from", model.embed_from, "",
               "word vectors a fresh run's embedding starts from, matched by word: GloVe .txt or word2vec/fastText .vec "
               "text, plain or gzip-compressed; words without a vector keep their initialisation"),

    {.section = "objective", .key = "type", .type = REEL_KEY_CHOICE, REEL_FIELD_CHARS(reel_config, objective.type),
     .default_text = "", .choices_from = REEL_CHOICES_OBJECTIVES,
     .help = "what the model learns; not given: the model type's own (classifiers: classify; rnn_lm and gpt: next_token)"},

    KEY_CHOICE("optimizer", "type", optimizer.type, "adam", optimizer_types, "optimizer"),
    KEY_DOUBLE("optimizer", "lr", optimizer.lr, "1e-3", BOUND_MIN_OPEN, 0, 0, "peak learning rate"),
    KEY_DOUBLE("optimizer", "beta1", optimizer.beta1, "0.9", BOUND_MIN | BOUND_MAX_OPEN, 0, 1,
               "adam: decay of the first-moment estimate"),
    KEY_DOUBLE("optimizer", "beta2", optimizer.beta2, "0.999", BOUND_MIN | BOUND_MAX_OPEN, 0, 1,
               "adam: decay of the second-moment estimate"),
    KEY_DOUBLE("optimizer", "eps", optimizer.eps, "1e-8", BOUND_MIN_OPEN, 0, 0, "adam, rmsprop: added to the denominator"),
    KEY_DOUBLE("optimizer", "momentum", optimizer.momentum, "0.9", BOUND_MIN | BOUND_MAX_OPEN, 0, 1, "sgd: momentum"),
    KEY_BOOL("optimizer", "nesterov", optimizer.nesterov, "false", "sgd: Nesterov momentum"),
    KEY_DOUBLE("optimizer", "alpha", optimizer.alpha, "0.99", BOUND_MIN | BOUND_MAX_OPEN, 0, 1,
               "rmsprop: decay of the mean of squared gradients (PyTorch's alpha)"),
    KEY_BOOL("optimizer", "centered", optimizer.centered, "false",
             "rmsprop: divide by the gradient's estimated variance instead of its second moment"),
    KEY_DOUBLE("optimizer", "rmsprop_momentum", optimizer.rmsprop_momentum, "0", BOUND_MIN | BOUND_MAX_OPEN, 0, 1,
               "rmsprop: momentum of the scaled step (PyTorch's default 0; sgd has its own key, momentum)"),
    KEY_DOUBLE("optimizer", "weight_decay", optimizer.weight_decay, "0", BOUND_MIN, 0, 0,
               "adam: decoupled (AdamW); sgd, rmsprop: L2 added to the gradient"),
    KEY_CHOICE("optimizer", "decay", optimizer.decay, "model", decay_modes,
               "the tensors weight_decay applies to: model (as each model marks them; the recurrent, bag-of-words and cnn models mark all, gpt and transformer their matrices and embeddings), "
               "all, or matrices (two or more dimensions, not the embedding: no biases or norm gains)"),
    KEY_BOOL("optimizer", "decay_embedding", optimizer.decay_embedding, "false",
             "decay = matrices: the embedding decays too"),
    KEY_BOOL("optimizer", "lazy_embedding", optimizer.lazy_embedding, "false",
             "adam: update only the embedding rows whose gradient is non-zero this step (lazy Adam: the other "
             "rows and their moments wait); for large tables such as the bag of words' n-gram buckets"),
    KEY_DOUBLE("optimizer", "clip_norm", optimizer.clip_norm, "0", BOUND_MIN, 0, 0,
               "clip the global gradient norm to this; 0 disables"),
    KEY_CHOICE("optimizer", "schedule", optimizer.schedule, "constant", schedules,
               "learning-rate schedule after warm-up: constant; cosine or linear decay to 0 over the run; step "
               "(times decay_factor at each of decay_epochs); slanted_triangular (ULMFiT)"),
    KEY_SIZE("optimizer", "warmup_steps", optimizer.warmup_steps, "0", 0, 0, "steps of linear warm-up from 0"),
    KEY_STRING("optimizer", "decay_epochs", optimizer.decay_epochs, "",
               "step: comma-separated epochs (1-based) at whose start the rate is multiplied by decay_factor"),
    KEY_DOUBLE("optimizer", "decay_factor", optimizer.decay_factor, "0.1", BOUND_MIN_OPEN, 0, 0,
               "step: factor applied at each of decay_epochs"),
    KEY_DOUBLE("optimizer", "stlr_cut_frac", optimizer.stlr_cut_frac, "0.1", BOUND_MIN_OPEN | BOUND_MAX_OPEN, 0, 1,
               "slanted_triangular: share of the steps over which the rate rises"),
    KEY_DOUBLE("optimizer", "stlr_ratio", optimizer.stlr_ratio, "32", BOUND_MIN, 1, 0,
               "slanted_triangular: how much smaller the lowest rate is than the peak"),
    KEY_STRING("optimizer", "freeze", optimizer.freeze, "",
               "comma-separated layers that do not train (the part of a tensor name before '/'; lstm_l0 names both "
               "directions, e.g. embedding,lstm_l0,batchnorm_l0): no update, no optimizer state, no gradient exchange"),
    KEY_SIZE("optimizer", "unfreeze_every", optimizer.unfreeze_every, "0", 0, 0,
             "gradual unfreezing: every N unfreeze_units the highest frozen layer (with its batch norm) trains too; 0: never"),
    KEY_CHOICE("optimizer", "unfreeze_unit", optimizer.unfreeze_unit, "epochs", unfreeze_units, "unit of unfreeze_every"),
    KEY_DOUBLE("optimizer", "layer_lr_decay", optimizer.layer_lr_decay, "1", BOUND_MIN, 1, 0,
               "discriminative learning rates: each layer below the top learns at the rate of the one above divided by "
               "this (ULMFiT: 2.6); 1: one rate"),

    KEY_SIZE("train", "epochs", train.epochs, "6", BOUND_MIN, 1, "passes over the training set"),
    KEY_SIZE("train", "max_steps", train.max_steps, "0", 0, 0, "stop after this many global steps, a pause point: no final evaluation, and a larger max_steps continues the same run; 0 runs all epochs"),
    KEY_SIZE("train", "batch_size", train.batch_size, "200", BOUND_MIN, 1,
             "global batch size (documents, or parallel streams), split across the ranks"),
    KEY_SIZE("train", "accumulate", train.accumulate, "1", BOUND_MIN, 1,
             "gradient accumulation: each rank runs its share of the global batch in this many forward/backward "
             "passes and sums their gradients before the one exchange and optimizer step (a global batch larger "
             "than the ranks hold at once; the same step up to summation order for models without batch statistics); "
             "language models only"),
    KEY_DOUBLE("train", "peak_gflops", train.peak_gflops, "0", BOUND_MIN, 0, 0,
               "one rank's peak GFLOP/s (build/bench_peak measures a core's; times the threads a rank runs), to log the "
               "model FLOP utilisation of a model that states its FLOP per token (gpt); 0: not logged"),
    KEY_UINT64("train", "seed", train.seed, "42", "seed of every random choice (initialisation, shuffling, dropout)"),
    KEY_SIZE("train", "log_every", train.log_every, "10", BOUND_MIN, 1, "steps between progress lines and metric rows"),
    KEY_SIZE("train", "eval_every", train.eval_every, "0", 0, 0,
             "steps between evaluations on the validation data (each saves a checkpoint), besides the one at the end "
             "of each epoch; 0: only at the end of each epoch"),
    KEY_SIZE("train", "early_stopping_patience", train.early_stopping_patience, "0", 0, 0,
             "early stopping: end the run when the best-checkpoint metric ([checkpoint] best_metric) has not improved "
             "for this many evaluations in a row; 0: never"),
    KEY_DOUBLE("train", "bucket_mb", train.bucket_mb, "0", BOUND_MIN, 0, 0,
               "overlap the gradient exchange with the backward pass: buckets of about this many MB, each all-reduced "
               "as soon as its layers' gradients are final; 0: one exchange after the backward"),
    KEY_CHOICE("train", "exchange_embedding", train.exchange_embedding, "auto", embedding_exchanges,
               "the embedding's gradient: auto sends only the rows a step touched when that moves fewer bytes than "
               "the whole table, decided each step; dense or sparse force one way"),
    KEY_CHOICE("train", "precision", train.precision, "fp32", precisions,
               "matrix products: fp32 (OpenBLAS), bf16 (oneDNN, operands rounded to bfloat16 and fp32 accumulation; "
               "parameters, optimizer state and exchange stay fp32; needs a CPU with AVX512_BF16 or AMX) or auto "
               "(bf16 where the CPU has it, else fp32)"),
    KEY_STRING("train", "run_dir", train.run_dir, "runs/default", "directory for checkpoints, metrics and logs"),

    KEY_SIZE("checkpoint", "every_steps", checkpoint.every_steps, "0", 0, 0,
             "steps between checkpoints; 0: only those at the end of each epoch, after each eval_every evaluation and "
             "when the run ends or stops"),
    KEY_SIZE("checkpoint", "keep_last", checkpoint.keep_last, "3", BOUND_MIN, 1, "newest numbered checkpoints kept"),
    KEY_BOOL("checkpoint", "keep_best", checkpoint.keep_best, "true", "also keep the best checkpoint, by best_metric"),
    KEY_STRING("checkpoint", "best_metric", checkpoint.best_metric, "",
               "evaluation series that picks ckpt_best.h5; not given: the objective's (classify: accuracy, "
               "next_token: perplexity)"),
};
#define NUM_GENERAL (sizeof general_keys / sizeof general_keys[0])
_Static_assert(sizeof general_keys / sizeof general_keys[0] <= REEL_CONFIG_MAX_KEYS, "too many general keys");

/* Lines the INI reader accepts: enough for the longest string value plus its key and a comment.
 * inih's default (200) would reject a long data.dir that reel itself wrote into a resolved config. */
#define CONFIG_LINE_MAX (2 * REEL_PATH_MAX + 256)

/* ---------------------------------------------------------------------------------------------- */
/* The catalogue                                                                                   */

static const reel_config_type *find_type(const reel_config_type *types, size_t count, const char *name) {
    for (size_t i = 0; i < count; i++)
        if (strcmp(types[i].name, name) == 0) return &types[i];
    return NULL;
}

/* The keys of a model type / an objective of the catalogue; NULL when it has no such type. */
static const reel_key_table *model_table(const reel_config_catalogue *catalogue, const char *type) {
    const reel_config_type *found = find_type(catalogue->models, catalogue->num_models, type);
    return found ? found->keys : NULL;
}

static const reel_key_table *objective_table(const reel_config_catalogue *catalogue, const char *type) {
    const reel_config_type *found = find_type(catalogue->objectives, catalogue->num_objectives, type);
    return found ? found->keys : NULL;
}

/* A configuration filled by hand (not through reel_config_defaults_with) has no catalogue to compose its
 * schema from: a programming error, reported as such rather than as a crash. */
static const reel_config_catalogue *catalogue_of(const reel_config *cfg) {
    REEL_CHECK(cfg->catalogue, "start from reel_config_defaults_with", "the configuration has no catalogue of types");
    return cfg->catalogue;
}

/* ---------------------------------------------------------------------------------------------- */
/* The composed schema                                                                             */

static unsigned char *storage(reel_config *cfg, size_t index) {
    switch ((reel_key_store)cfg->store_of[index]) {
    case REEL_STORE_MODEL: return cfg->model_options;
    case REEL_STORE_OBJECTIVE: return cfg->objective_options;
    case REEL_STORE_CONFIG: break;
    }
    return (unsigned char *)cfg;
}

static char *field_of(reel_config *cfg, size_t index) { return (char *)storage(cfg, index) + cfg->keys[index]->offset; }
static const char *const_field_of(const reel_config *cfg, size_t index) {
    return field_of((reel_config *)cfg, index);
}

static int is_section(const char *section) {
    for (size_t i = 0; i < NUM_SECTIONS; i++)
        if (strcmp(sections[i], section) == 0) return 1;
    return 0;
}

static int find_key(const reel_config *cfg, const char *section, const char *key) {
    for (size_t i = 0; i < cfg->num_keys; i++)
        if (strcmp(cfg->keys[i]->section, section) == 0 && strcmp(cfg->keys[i]->key, key) == 0) return (int)i;
    return -1;
}

int reel_config_key_index(const reel_config *cfg, const char *name) {
    const char *dot = strchr(name, '.');
    if (!dot) return -1;
    for (size_t i = 0; i < cfg->num_keys; i++) {
        size_t section_len = strlen(cfg->keys[i]->section);
        if ((size_t)(dot - name) == section_len && strncmp(name, cfg->keys[i]->section, section_len) == 0 &&
            strcmp(dot + 1, cfg->keys[i]->key) == 0)
            return (int)i;
    }
    return -1;
}

const void *reel_config_field(const reel_config *cfg, const char *name) {
    int index = reel_config_key_index(cfg, name);
    return index < 0 ? NULL : const_field_of(cfg, (size_t)index);
}

static void append_table(reel_config *cfg, const char *section, const reel_key *keys, size_t count,
                         reel_key_store store) {
    for (size_t i = 0; i < count; i++) {
        if (strcmp(keys[i].section, section) != 0) continue;
        REEL_CHECK(cfg->num_keys < REEL_CONFIG_MAX_KEYS, "raise REEL_CONFIG_MAX_KEYS", "too many configuration keys");
        cfg->keys[cfg->num_keys] = &keys[i];
        cfg->store_of[cfg->num_keys] = (unsigned char)store;
        cfg->line_of[cfg->num_keys] = 0;
        cfg->source_of[cfg->num_keys] = "default";
        cfg->num_keys++;
    }
}

/* Lays out cfg->keys for cfg->model.type and cfg->objective.type (both must name registered types):
 * section by section, the general keys first, then the model's, then the objective's. Line and source
 * information is reset; values are left alone. */
static void compose(reel_config *cfg) {
    const reel_key_table *model = model_table(catalogue_of(cfg), cfg->model.type);
    const reel_key_table *objective = objective_table(catalogue_of(cfg), cfg->objective.type);
    REEL_CHECK(model && objective, NULL, "composing the schema of unknown types '%s' / '%s'", cfg->model.type,
               cfg->objective.type);
    REEL_CHECK(model->options_size <= REEL_OPTIONS_MAX && objective->options_size <= REEL_OPTIONS_MAX,
               "raise REEL_OPTIONS_MAX", "the options of model '%s' or objective '%s' do not fit", cfg->model.type,
               cfg->objective.type);
    cfg->num_keys = 0;
    for (size_t s = 0; s < NUM_SECTIONS; s++) {
        append_table(cfg, sections[s], general_keys, NUM_GENERAL, REEL_STORE_CONFIG);
        append_table(cfg, sections[s], model->keys, model->count, REEL_STORE_MODEL);
        append_table(cfg, sections[s], objective->keys, objective->count, REEL_STORE_OBJECTIVE);
    }
}

/* "data, model, ..." in order, for messages. */
static void list_sections(char *out, size_t size) {
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < NUM_SECTIONS; i++) {
        int n = snprintf(out + used, size - used, "%s%s", used ? ", " : "", sections[i]);
        if (n < 0 || (size_t)n >= size - used) return;
        used += (size_t)n;
    }
}

static void list_keys(const reel_config *cfg, const char *section, char *out, size_t size) {
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < cfg->num_keys; i++) {
        if (strcmp(cfg->keys[i]->section, section) != 0) continue;
        int n = snprintf(out + used, size - used, "%s%s", used ? ", " : "", cfg->keys[i]->key);
        if (n < 0 || (size_t)n >= size - used) return;
        used += (size_t)n;
    }
}

/* Appends to owners ("'bow', 'rnn_lm'") every type of the table list but current that has section.key;
 * returns how many it found. */
static size_t owners_in(const reel_config_type *types, size_t count, const char *current, const char *section,
                        const char *key, char *owners, size_t size) {
    size_t found = 0;
    for (size_t t = 0; t < count; t++) {
        const reel_key_table *table = types[t].keys;
        if (!strcmp(types[t].name, current)) continue;
        for (size_t i = 0; table && i < table->count; i++)
            if (!strcmp(table->keys[i].section, section) && !strcmp(table->keys[i].key, key)) {
                size_t used = strlen(owners);
                snprintf(owners + used, size - used, "%s'%s'", found ? ", " : "", types[t].name);
                found++;
                break;
            }
    }
    return found;
}

/* The unknown-key message: the known keys of the section, and which other model types (or else
 * objectives) have the key, if any: all of them, since a key is often shared by several. */
static void unknown_key_message(const reel_config *cfg, const char *section, const char *key, char *out, size_t size) {
    char list[768], owners[256] = "", shown[REEL_QUOTE_MAX]; /* the key as the file has it, escaped */
    const reel_config_catalogue *catalogue = catalogue_of(cfg);
    list_keys(cfg, section, list, sizeof list);
    reel_escape_string(shown, sizeof shown, key);
    const char *kind = "model type", *current = cfg->model.type;
    size_t found = owners_in(catalogue->models, catalogue->num_models, current, section, key, owners, sizeof owners);
    if (!found) {
        kind = "objective";
        current = cfg->objective.type;
        found = owners_in(catalogue->objectives, catalogue->num_objectives, current, section, key, owners,
                          sizeof owners);
    }
    if (found)
        snprintf(out, size, "unknown key '%s' in section [%s] for %s '%s': it is a key of %s%s %s (known keys: %s)",
                 shown, section, kind, current, kind, found > 1 ? "s" : "", owners, list);
    else
        snprintf(out, size, "unknown key '%s' in section [%s] (known keys: %s)", shown, section, list);
}

/* "> 0", ">= 1", "in [0, 1)"; "" when the key has no bounds. */
static void describe_bounds(const reel_key *spec, char *out, size_t size) {
    unsigned b = spec->bounds;
    int has_lo = (b & (BOUND_MIN | BOUND_MIN_OPEN)) != 0, has_hi = (b & (BOUND_MAX | BOUND_MAX_OPEN)) != 0;
    if (has_lo && has_hi)
        snprintf(out, size, "in %c%g, %g%c", (b & BOUND_MIN_OPEN) ? '(' : '[', spec->lo, spec->hi,
                 (b & BOUND_MAX_OPEN) ? ')' : ']');
    else if (has_lo)
        snprintf(out, size, "%s %g", (b & BOUND_MIN_OPEN) ? ">" : ">=", spec->lo);
    else if (has_hi)
        snprintf(out, size, "%s %g", (b & BOUND_MAX_OPEN) ? "<" : "<=", spec->hi);
    else
        out[0] = '\0';
}

static int within_bounds(const reel_key *spec, double v) {
    unsigned b = spec->bounds;
    if ((b & BOUND_MIN) && !(v >= spec->lo)) return 0;
    if ((b & BOUND_MIN_OPEN) && !(v > spec->lo)) return 0;
    if ((b & BOUND_MAX) && !(v <= spec->hi)) return 0;
    if ((b & BOUND_MAX_OPEN) && !(v < spec->hi)) return 0;
    return 1;
}

/* Source names outlive the caller's strings (source_of keeps pointing at them), so each distinct name
 * is copied once and kept for the life of the process; a run loads a handful at most. */
static const char *intern_name(const char *name) {
    typedef struct interned {
        struct interned *next;
        char name[];
    } interned;
    static interned *head;
    for (interned *p = head; p; p = p->next)
        if (strcmp(p->name, name) == 0) return p->name;
    size_t len = strlen(name);
    interned *node = reel_malloc(sizeof *node + len + 1);
    memcpy(node->name, name, len + 1);
    node->next = head;
    head = node;
    return node->name;
}

/* ---------------------------------------------------------------------------------------------- */
/* Values                                                                                          */

/* Parses a whole decimal integer; signs, exponents, hex and trailing text are all rejected, because
 * strtoull would silently wrap "-1" and stop early on "12abc". */
static int parse_unsigned(const char *text, uint64_t max, uint64_t *out, int *overflow) {
    *overflow = 0;
    if (!isdigit((unsigned char)text[0])) return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end != '\0') return -1;
    if (errno == ERANGE || v > max) {
        *overflow = 1;
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static int parse_bool(const char *text, int *out) {
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* inih strips " ;" comments but not "#" after a value, so "lr = 1e-3 # peak" reaches us whole; saying
 * why saves the user staring at a number that looks right. */
static const char *comment_hint(const char *value) {
    const char *hash = strchr(value, '#');
    if (hash && hash > value && isspace((unsigned char)hash[-1]))
        return " (inline comments start with ' ;', not '#')";
    return "";
}

/* A string value must come back unchanged when the resolved configuration is written as INI and read
 * again; inih trims values and cuts them at " ;", and a line break would end the line. */
static int representable_in_ini(const char *value) {
    size_t len = strlen(value);
    if (len == 0) return 1;
    if (isspace((unsigned char)value[0]) || isspace((unsigned char)value[len - 1])) return 0;
    for (size_t i = 0; i < len; i++) {
        if (iscntrl((unsigned char)value[i]) && value[i] != '\t') return 0;
        /* the resolved INI writes "key = value": a ';' first would follow that space and read as a comment */
        if (value[i] == ';' && (i == 0 || isspace((unsigned char)value[i - 1]))) return 0;
    }
    return 1;
}

/* The old names spec accepts for its choices (only model types have any); their count in *count. */
static const reel_config_alias *aliases_of(const reel_config_catalogue *catalogue, const reel_key *spec, size_t *count) {
    *count = spec->choices_from == REEL_CHOICES_MODEL_TYPES ? catalogue->num_model_aliases : 0;
    return *count ? catalogue->model_aliases : NULL;
}

/* The choice an old name (alias) of spec stands for, or value itself. */
static const char *resolve_alias(const reel_config_catalogue *catalogue, const reel_key *spec, const char *value) {
    size_t count = 0;
    const reel_config_alias *aliases = aliases_of(catalogue, spec, &count);
    for (size_t i = 0; i < count; i++)
        if (strcmp(value, aliases[i].name) == 0) return aliases[i].type;
    return value;
}

/* The index-th choice of a choice key, NULL past the last: its own list, or the catalogue's types. */
static const char *choice_of(const reel_config_catalogue *catalogue, const reel_key *spec, size_t index) {
    if (spec->choices) {
        for (size_t i = 0; i < index; i++)
            if (!spec->choices[i]) return NULL;
        return spec->choices[index];
    }
    switch (spec->choices_from) {
    case REEL_CHOICES_MODEL_TYPES: return index < catalogue->num_models ? catalogue->models[index].name : NULL;
    case REEL_CHOICES_OBJECTIVES: return index < catalogue->num_objectives ? catalogue->objectives[index].name : NULL;
    case REEL_CHOICES_LISTED: break;
    }
    return NULL;
}

/* Validates value for key spec and stores it at field; loc ("x.ini:12", "--set") starts every message.
 * catalogue gives the choices of the [model] and [objective] type keys. */
static int store_value(const reel_config_catalogue *catalogue, const reel_key *spec, char *field, const char *value,
                       const char *loc, reel_error *err) {
    char bounds[64], shown[REEL_QUOTE_MAX]; /* the value as messages quote it: a binary file's bytes escaped */
    describe_bounds(spec, bounds, sizeof bounds);
    reel_escape_string(shown, sizeof shown, value);

    switch (spec->type) {
    case REEL_KEY_STRING: {
        size_t len = strlen(value);
        if (len == 0 && spec->default_text && spec->default_text[0] == '\0') { /* an optional key: unset it */
            memset(field, 0, spec->size);
            return 0;
        }
        if (len == 0)
            return reel_fail(err, "%s: [%s] %s is empty: expected a non-empty string", loc, spec->section, spec->key);
        if (len >= spec->size)
            return reel_fail(err, "%s: [%s] %s: the value has %zu characters, more than the limit of %zu", loc,
                             spec->section, spec->key, len, spec->size - 1);
        if (!representable_in_ini(value))
            return reel_fail(err,
                             "%s: [%s] %s = '%s': a value cannot contain a line break, a leading or trailing "
                             "space, or ';' first or after a space (it could not be written back to an INI file)",
                             loc, spec->section, spec->key, shown);
        memset(field, 0, spec->size);
        memcpy(field, value, len + 1);
        return 0;
    }
    case REEL_KEY_CHOICE: {
        char choices[256];
        size_t used = 0;
        for (size_t i = 0; choice_of(catalogue, spec, i); i++) {
            const char *c = choice_of(catalogue, spec, i);
            if (strcmp(value, c) == 0) {
                memset(field, 0, spec->size);
                memcpy(field, c, strlen(c) + 1);
                return 0;
            }
            int n = snprintf(choices + used, sizeof choices - used, "%s%s", used ? ", " : "", c);
            if (n > 0 && (size_t)n < sizeof choices - used) used += (size_t)n;
        }
        const char *resolved = resolve_alias(catalogue, spec, value);
        if (resolved != value) {
            memset(field, 0, spec->size);
            memcpy(field, resolved, strlen(resolved) + 1);
            return 0;
        }
        return reel_fail(err, "%s: [%s] %s = '%s': expected one of %s%s", loc, spec->section, spec->key, shown,
                         choices, comment_hint(value));
    }
    case REEL_KEY_SIZE:
    case REEL_KEY_UINT64: {
        uint64_t v = 0, max = spec->type == REEL_KEY_SIZE ? (uint64_t)SIZE_MAX : UINT64_MAX;
        int overflow = 0;
        if (parse_unsigned(value, max, &v, &overflow) != 0) {
            if (overflow)
                return reel_fail(err, "%s: [%s] %s = '%s': out of range (at most %llu)", loc, spec->section,
                                 spec->key, shown, (unsigned long long)max);
            return reel_fail(err, "%s: [%s] %s = '%s': expected a non-negative integer%s", loc, spec->section,
                             spec->key, shown, comment_hint(value));
        }
        if (!within_bounds(spec, (double)v))
            return reel_fail(err, "%s: [%s] %s = '%s': must be %s", loc, spec->section, spec->key, shown, bounds);
        if (spec->type == REEL_KEY_SIZE)
            *(size_t *)(void *)field = (size_t)v;
        else
            *(uint64_t *)(void *)field = v;
        return 0;
    }
    case REEL_KEY_DOUBLE: {
        char *end = NULL;
        errno = 0;
        double v = strtod(value, &end);
        if (end == value || *end != '\0')
            return reel_fail(err, "%s: [%s] %s = '%s': expected a number%s", loc, spec->section, spec->key, shown,
                             comment_hint(value));
        if (errno == ERANGE)
            return reel_fail(err, "%s: [%s] %s = '%s': out of the range of a double", loc, spec->section,
                             spec->key, shown);
        if (!isfinite(v))
            return reel_fail(err, "%s: [%s] %s = '%s': expected a finite number", loc, spec->section, spec->key,
                             shown);
        if (!within_bounds(spec, v))
            return reel_fail(err, "%s: [%s] %s = '%s': must be %s", loc, spec->section, spec->key, shown, bounds);
        *(double *)(void *)field = v;
        return 0;
    }
    case REEL_KEY_BOOL: {
        int v = 0;
        if (parse_bool(value, &v) != 0)
            return reel_fail(err, "%s: [%s] %s = '%s': expected a boolean (true/false, yes/no, on/off, 1/0)%s",
                             loc, spec->section, spec->key, shown, comment_hint(value));
        *(int *)(void *)field = v;
        return 0;
    }
    }
    return reel_fail(err, "%s: [%s] %s: unsupported key type", loc, spec->section, spec->key);
}

static int set_value(reel_config *cfg, size_t index, const char *value, const char *loc, reel_error *err) {
    return store_value(catalogue_of(cfg), cfg->keys[index], field_of(cfg, index), value, loc, err);
}

/* The default of one key; "" leaves an optional string key empty (and, for [objective] type, lets the
 * model decide). */
static void set_default(reel_config *cfg, size_t index) {
    const reel_key *spec = cfg->keys[index];
    cfg->line_of[index] = 0;
    cfg->source_of[index] = "default";
    if (!spec->default_text || spec->default_text[0] == '\0') {
        memset(field_of(cfg, index), 0, spec->size);
        return;
    }
    reel_error err;
    if (set_value(cfg, index, spec->default_text, "default", &err) != 0)
        REEL_FATAL(NULL, "the built-in default is invalid: %s", err.message);
}

/* The value of key index as it would be written to an INI file. */
static void format_value(const reel_config *cfg, size_t index, char *out, size_t size);

/* Switches cfg to the keys of model type model_type and objective objective_type ("" = the model's own):
 * the options of a changed type are reset to its defaults, and every value that was given (not a
 * default) carries over to the key of the same name; a given value whose key the new types lack is an
 * error naming where it was given. On error cfg is unchanged. */
static int switch_types(reel_config *cfg, const char *model_type, const char *objective_type, reel_error *err) {
    const reel_config_catalogue *catalogue = catalogue_of(cfg);
    const reel_config_type *model = find_type(catalogue->models, catalogue->num_models, model_type);
    const char *objective = objective_type[0] ? objective_type : model ? model->objective : NULL;
    REEL_CHECK(objective && objective_table(catalogue, objective), NULL, "model type '%s' has no usable objective",
               model_type);
    reel_config *next = reel_malloc(sizeof *next);
    *next = *cfg;
    /* whole fields replaced, as loading any string value does */
    char model_copy[REEL_NAME_MAX] = {0}, objective_copy[REEL_NAME_MAX] = {0};
    snprintf(model_copy, sizeof model_copy, "%s", model_type);
    snprintf(objective_copy, sizeof objective_copy, "%s", objective);
    memcpy(next->model.type, model_copy, sizeof model_copy);
    memcpy(next->objective.type, objective_copy, sizeof objective_copy);
    int model_changed = strcmp(cfg->model.type, next->model.type) != 0 || cfg->num_keys == 0;
    int objective_changed = strcmp(cfg->objective.type, next->objective.type) != 0 || cfg->num_keys == 0;
    compose(next);
    for (size_t i = 0; i < next->num_keys; i++) {
        reel_key_store store = (reel_key_store)next->store_of[i];
        if ((store == REEL_STORE_MODEL && model_changed) || (store == REEL_STORE_OBJECTIVE && objective_changed))
            set_default(next, i);
    }
    int status = 0;
    for (size_t i = 0; i < cfg->num_keys && status == 0; i++) {
        const reel_key *old = cfg->keys[i];
        int j = find_key(next, old->section, old->key);
        if (cfg->line_of[i] == 0) { /* a default: the new key keeps its own default */
            if (j >= 0 && next->store_of[j] == REEL_STORE_CONFIG) next->source_of[j] = cfg->source_of[i];
            continue;
        }
        if (j < 0) {
            char message[1024];
            unknown_key_message(next, old->section, old->key, message, sizeof message);
            status = reel_fail(err, "%s:%u: %s", cfg->source_of[i], cfg->line_of[i], message);
            break;
        }
        char value[REEL_PATH_MAX + 64];
        format_value(cfg, i, value, sizeof value);
        if (next->keys[j] != old || next->store_of[j] != cfg->store_of[i]) {
            char loc[REEL_PATH_MAX + 32];
            snprintf(loc, sizeof loc, "%s:%u", cfg->source_of[i], cfg->line_of[i]);
            if (!(value[0] == '\0' && old->type == REEL_KEY_STRING)) status = set_value(next, (size_t)j, value, loc, err);
        }
        next->line_of[j] = cfg->line_of[i];
        next->source_of[j] = cfg->source_of[i];
    }
    if (status == 0) *cfg = *next;
    free(next);
    return status;
}

void reel_config_defaults_with(reel_config *cfg, const reel_config_catalogue *catalogue) {
    REEL_CHECK(catalogue, NULL, "reel_config_defaults_with needs a catalogue of types");
    memset(cfg, 0, sizeof *cfg);
    cfg->catalogue = catalogue;
    /* the general keys first, so that [model] type has its default before the model's keys are known */
    cfg->num_keys = 0;
    for (size_t s = 0; s < NUM_SECTIONS; s++) append_table(cfg, sections[s], general_keys, NUM_GENERAL, REEL_STORE_CONFIG);
    for (size_t i = 0; i < cfg->num_keys; i++) set_default(cfg, i);
    char model_type[REEL_NAME_MAX];
    snprintf(model_type, sizeof model_type, "%s", cfg->model.type);
    cfg->model.type[0] = '\0'; /* so that switch_types sees a change and lays out the model's defaults */
    cfg->num_keys = 0;
    reel_error err;
    if (switch_types(cfg, model_type, "", &err) != 0) REEL_FATAL(NULL, "the built-in defaults: %s", err.message);
    /* the objective chosen for the model is a default too */
    int objective = reel_config_key_index(cfg, "objective.type");
    cfg->line_of[objective] = 0;
    cfg->source_of[objective] = "default";
}

/* ---------------------------------------------------------------------------------------------- */
/* INI parsing                                                                                     */

typedef struct ini_source {
    reel_config *cfg;
    const char *name; /* interned */
    const char *text;
    size_t len, pos;
    unsigned line;         /* lines handed to inih so far: the line inih is working on */
    unsigned section_line; /* line of the latest "[section]" header */
    unsigned given[REEL_CONFIG_MAX_KEYS]; /* line of each key in this source; 0: not given */
    unsigned error_line;   /* line being read when the first error was found; 0: none */
    reel_error error;
    /* the first pass only looks for the two keys the schema depends on */
    int prescan;
    char model_type[REEL_NAME_MAX], objective_type[REEL_NAME_MAX];
} ini_source;

static void source_fail(ini_source *src, const char *fmt, ...) REEL_PRINTF(2, 3);
static void source_fail(ini_source *src, const char *fmt, ...) {
    if (src->error_line) return; /* the first error is the one worth reading */
    src->error_line = src->line;
    va_list args;
    va_start(args, fmt);
    vsnprintf(src->error.message, sizeof src->error.message, fmt, args);
    va_end(args);
}

/* inih's fgets-style reader: hands over exactly one physical line per call, which is what lets the
 * handler know its line number (this inih is built without INI_HANDLER_LINENO). Leading blanks are
 * dropped so that inih never takes an indented line for a multi-line continuation of the previous key:
 * that would report a plain indented key as given twice. */
static char *read_line(char *buf, int size, void *stream) {
    ini_source *src = stream;
    if (src->pos >= src->len) return NULL;
    const char *start = src->text + src->pos;
    const char *newline = memchr(start, '\n', src->len - src->pos);
    size_t n = newline ? (size_t)(newline - start) : src->len - src->pos;
    src->pos += n + (newline != NULL);
    src->line++;

    if (src->line == 1 && n >= 3 && memcmp(start, "\xEF\xBB\xBF", 3) == 0) {
        start += 3;
        n -= 3;
    }
    while (n > 0 && isspace((unsigned char)*start)) {
        start++;
        n--;
    }
    if (memchr(start, '\0', n)) {
        source_fail(src, "%s:%u: the line contains a NUL byte (is this a text file?)", src->name, src->line);
        n = 0;
    } else if (size < 1 || n >= (size_t)size) {
        source_fail(src, "%s:%u: the line is longer than %d characters", src->name, src->line, size - 1);
        n = 0;
    }
    if (n > 0 && *start == '[') src->section_line = src->line;
    memcpy(buf, start, n);
    buf[n] = '\0';
    return buf;
}

static int on_pair(void *user, const char *section, const char *key, const char *value) {
    ini_source *src = user;
    if (src->prescan) {
        if (!strcmp(key, "type") && (!strcmp(section, "model") || !strcmp(section, "objective"))) {
            /* an old name of a type brings the keys of the type it stands for */
            int index = find_key(src->cfg, section, key);
            const char *type = index >= 0 ? resolve_alias(catalogue_of(src->cfg), src->cfg->keys[index], value) : value;
            snprintf(!strcmp(section, "model") ? src->model_type : src->objective_type, REEL_NAME_MAX, "%s", type);
        }
        return 1;
    }
    if (src->error_line) return 1;
    char list[512], shown[REEL_QUOTE_MAX]; /* a key or section as messages quote it, escaped */
    if (section[0] == '\0') {
        list_sections(list, sizeof list);
        source_fail(src, "%s:%u: key '%s' comes before any [section] header (sections: %s)", src->name,
                    src->line, reel_escape_string(shown, sizeof shown, key), list);
        return 0;
    }
    if (!is_section(section)) {
        list_sections(list, sizeof list);
        source_fail(src, "%s:%u: unknown section [%s] (known sections: %s)", src->name,
                    src->section_line ? src->section_line : src->line,
                    reel_escape_string(shown, sizeof shown, section), list);
        return 0;
    }
    int index = find_key(src->cfg, section, key);
    if (index < 0) {
        char message[1024];
        unknown_key_message(src->cfg, section, key, message, sizeof message);
        source_fail(src, "%s:%u: %s", src->name, src->line, message);
        return 0;
    }
    if (src->given[index]) {
        source_fail(src, "%s:%u: [%s] %s given twice (first on line %u)", src->name, src->line, section, key,
                    src->given[index]);
        return 0;
    }
    char loc[REEL_PATH_MAX + 32];
    snprintf(loc, sizeof loc, "%s:%u", src->name, src->line);
    reel_error value_error;
    if (set_value(src->cfg, (size_t)index, value, loc, &value_error) != 0) {
        source_fail(src, "%s", value_error.message);
        return 0;
    }
    src->given[index] = src->line;
    src->cfg->line_of[index] = src->line;
    src->cfg->source_of[index] = src->name;
    return 1;
}

/* Returns line (1-based) of text, trimmed and cut short for quoting in a message. */
static void quote_line(const char *text, size_t len, unsigned line, char *out, size_t size) {
    const char *p = text, *end = text + len;
    for (unsigned l = 1; l < line && p < end; l++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop = nl ? nl : end;
    while (p < stop && isspace((unsigned char)*p)) p++;
    while (stop > p && isspace((unsigned char)stop[-1])) stop--;
    size_t n = (size_t)(stop - p), max = 60;
    /* escaped: a binary file given as a configuration must not print raw bytes */
    reel_escape_bytes(out, size > 3 ? size - 3 : size, p, n > max ? max : n);
    if (n > max && size > 3) strcat(out, "...");
}

static int parse_text(reel_config *cfg, const reel_config_catalogue *catalogue, const char *text, size_t len,
                      const char *name, reel_error *err) {
    reel_config_defaults_with(cfg, catalogue);
    ini_source *src = reel_calloc(1, sizeof *src);
    src->cfg = cfg;
    src->name = intern_name(name);
    src->text = text;
    src->len = len;

    /* The line limit is a process-wide setting of this (Debian) inih build; it is raised only for the
     * duration of the parse. */
    int saved_max_line = ini_max_line;
    if (ini_max_line < CONFIG_LINE_MAX) ini_max_line = CONFIG_LINE_MAX;
    /* First pass: the model type and objective, which decide the keys. An unknown type is left for the
     * second pass to report, at its line. */
    src->prescan = 1;
    ini_parse_stream(read_line, src, on_pair, src);
    const char *model_type = model_table(catalogue, src->model_type) ? src->model_type : cfg->model.type;
    const char *objective_type = objective_table(catalogue, src->objective_type) ? src->objective_type : "";
    reel_error switch_error;
    if (switch_types(cfg, model_type, objective_type, &switch_error) != 0)
        REEL_FATAL(NULL, "switching the schema of the defaults: %s", switch_error.message);
    src->prescan = 0;
    src->error_line = 0; /* the second pass finds (and reports) the same line errors again */
    src->error.message[0] = '\0';
    src->pos = 0;
    src->line = 0;
    src->section_line = 0;
    int rc = ini_parse_stream(read_line, src, on_pair, src);
    ini_max_line = saved_max_line;

    int status = 0;
    if (rc == -2) REEL_FATAL(NULL, "out of memory while parsing %s", name);
    if (rc > 0 && (src->error_line == 0 || (unsigned)rc < src->error_line)) {
        char quoted[REEL_QUOTE_MAX];
        quote_line(text, len, (unsigned)rc, quoted, sizeof quoted);
        if (quoted[0] == '[')
            status = reel_fail(err, "%s:%d: syntax error: expected a section header '[name]', found '%s'", name,
                               rc, quoted);
        else
            status = reel_fail(err, "%s:%d: syntax error: expected 'key = value', '[section]' or a comment, found '%s'",
                               name, rc, quoted);
    } else if (src->error_line) {
        status = reel_fail(err, "%s", src->error.message);
    } else if (rc != 0) {
        status = reel_fail(err, "%s: the INI parser failed (code %d)", name, rc);
    } else {
        for (size_t i = 0; i < cfg->num_keys; i++) {
            if (!cfg->keys[i]->default_text && !src->given[i]) {
                status = reel_fail(err, "%s: missing required key [%s] %s", name, cfg->keys[i]->section,
                                   cfg->keys[i]->key);
                break;
            }
        }
    }
    free(src);
    return status;
}

int reel_config_load_string_with(reel_config *cfg, const reel_config_catalogue *catalogue, const char *text,
                                 const char *source_name, reel_error *err) {
    return parse_text(cfg, catalogue, text, strlen(text), source_name ? source_name : "<string>", err);
}

int reel_config_load_file_with(reel_config *cfg, const reel_config_catalogue *catalogue, const char *path,
                               reel_error *err) {
    FILE *file = fopen(path, "rb");
    if (!file) return reel_fail(err, "%s: cannot open the configuration file: %s", path, strerror(errno));
    size_t capacity = 4096, len = 0;
    char *text = reel_malloc(capacity);
    for (;;) {
        size_t n = fread(text + len, 1, capacity - len, file);
        len += n;
        if (len < capacity) break;
        capacity *= 2;
        text = reel_realloc(text, capacity);
    }
    int read_error = ferror(file);
    fclose(file);
    if (read_error) {
        free(text);
        return reel_fail(err, "%s: error while reading the configuration file", path);
    }
    int status = parse_text(cfg, catalogue, text, len, path, err);
    free(text);
    return status;
}

/* ---------------------------------------------------------------------------------------------- */
/* --set overrides                                                                                 */

static void trim_in_place(char **start, char **end) {
    while (*start < *end && isspace((unsigned char)**start)) (*start)++;
    while (*end > *start && isspace((unsigned char)(*end)[-1])) (*end)--;
}

int reel_config_override(reel_config *cfg, const char *assignment, reel_error *err) {
    size_t len = strlen(assignment);
    char *copy = reel_malloc(len + 1);
    memcpy(copy, assignment, len + 1);
    int status = 0;
    char list[512], shown[REEL_QUOTE_MAX], shown_section[REEL_QUOTE_MAX];
    /* the assignment as messages quote it: as typed, but a control byte escaped (a line break in a value
     * would otherwise split the message) */
    reel_escape_string(shown, sizeof shown, assignment);

    char *eq = strchr(copy, '=');
    char *dot = eq ? memchr(copy, '.', (size_t)(eq - copy)) : NULL;
    char *section = copy, *section_end = dot, *key = dot ? dot + 1 : NULL, *key_end = eq;
    if (dot) {
        trim_in_place(&section, &section_end);
        trim_in_place(&key, &key_end);
    }
    if (!eq || !dot || section == section_end || key == key_end) {
        status = reel_fail(err, "--set '%s': expected the form section.key=value (for example optimizer.lr=3e-4)",
                           shown);
        goto done;
    }
    *section_end = '\0';
    *key_end = '\0';
    char *value = eq + 1, *value_end = copy + len;
    trim_in_place(&value, &value_end);
    *value_end = '\0';

    if (!is_section(section)) {
        list_sections(list, sizeof list);
        status = reel_fail(err, "--set '%s': unknown section [%s] (known sections: %s)", shown,
                           reel_escape_string(shown_section, sizeof shown_section, section), list);
        goto done;
    }
    int index = find_key(cfg, section, key);
    if (index < 0) {
        char message[1024];
        unknown_key_message(cfg, section, key, message, sizeof message);
        status = reel_fail(err, "--set '%s': %s", shown, message);
        goto done;
    }
    /* The assignment as typed leads the message: it is what the user will search the command line for. */
    char loc[REEL_ERROR_MAX];
    snprintf(loc, sizeof loc, "--set '%s'", shown);
    int is_type = !strcmp(key, "type") && (!strcmp(section, "model") || !strcmp(section, "objective"));
    if (is_type) {
        /* validated first, so that switching never sees an unknown type */
        char checked[REEL_NAME_MAX];
        if (store_value(catalogue_of(cfg), cfg->keys[index], checked, value, loc, err) != 0) {
            status = -1;
            goto done;
        }
        int model = !strcmp(section, "model");
        char objective_type[REEL_NAME_MAX];
        /* a new model type brings its own objective unless the objective was chosen explicitly */
        int objective_given = cfg->line_of[reel_config_key_index(cfg, "objective.type")] != 0;
        snprintf(objective_type, sizeof objective_type, "%s", model ? (objective_given ? cfg->objective.type : "") : checked);
        reel_error why = {{0}};
        if (switch_types(cfg, model ? checked : cfg->model.type, objective_type, &why) != 0) {
            status = reel_fail(err, "--set '%s': %s", shown, why.message);
            goto done;
        }
        index = find_key(cfg, section, key);
    } else if (set_value(cfg, (size_t)index, value, loc, err) != 0) {
        status = -1;
        goto done;
    }
    /* line_of of a --set value is its position among the overrides applied so far (1 for the first),
     * so it stays distinguishable from 0, "default". */
    unsigned ordinal = 1;
    for (size_t i = 0; i < cfg->num_keys; i++)
        if (cfg->source_of[i] && strcmp(cfg->source_of[i], "--set") == 0 && cfg->line_of[i] >= ordinal)
            ordinal = cfg->line_of[i] + 1;
    cfg->line_of[index] = ordinal;
    cfg->source_of[index] = "--set";
done:
    free(copy);
    return status;
}

int reel_config_set(reel_config *cfg, const char *name, const char *value, const char *source, reel_error *err) {
    int index = reel_config_key_index(cfg, name);
    if (index < 0) return reel_fail(err, "%s: no configuration key %s for model type '%s'", source, name, cfg->model.type);
    if (set_value(cfg, (size_t)index, value, source, err) != 0) return -1;
    cfg->line_of[index] = 1;
    cfg->source_of[index] = intern_name(source);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Printing                                                                                        */

typedef struct text_buffer {
    char *data;
    size_t len, capacity;
} text_buffer;

static void append(text_buffer *buf, const char *fmt, ...) REEL_PRINTF(2, 3);
static void append(text_buffer *buf, const char *fmt, ...) {
    for (;;) {
        va_list args;
        va_start(args, fmt);
        int n = vsnprintf(buf->data + buf->len, buf->capacity - buf->len, fmt, args);
        va_end(args);
        REEL_CHECK(n >= 0, NULL, "formatting the configuration failed");
        if ((size_t)n < buf->capacity - buf->len) {
            buf->len += (size_t)n;
            return;
        }
        buf->capacity = 2 * buf->capacity + (size_t)n;
        buf->data = reel_realloc(buf->data, buf->capacity);
    }
}

/* The shortest of %.15g..%.17g that reads back to the same bits: 0.9 rather than 0.90000000000000002,
 * and %.17g (always exact) when nothing shorter is. */
static void format_double(double v, char *out, size_t size) {
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(out, size, "%.*g", digits, v);
        if (strtod(out, NULL) == v && signbit(strtod(out, NULL)) == signbit(v)) return;
    }
}

static void format_value(const reel_config *cfg, size_t index, char *out, size_t size) {
    const reel_key *spec = cfg->keys[index];
    const char *field = const_field_of(cfg, index);
    switch (spec->type) {
    case REEL_KEY_STRING:
    case REEL_KEY_CHOICE:
        snprintf(out, size, "%s", field);
        break;
    case REEL_KEY_SIZE:
        snprintf(out, size, "%zu", *(const size_t *)(const void *)field);
        break;
    case REEL_KEY_UINT64:
        snprintf(out, size, "%llu", (unsigned long long)*(const uint64_t *)(const void *)field);
        break;
    case REEL_KEY_DOUBLE:
        format_double(*(const double *)(const void *)field, out, size);
        break;
    case REEL_KEY_BOOL:
        snprintf(out, size, "%s", *(const int *)(const void *)field ? "true" : "false");
        break;
    }
}

char *reel_config_to_ini(const reel_config *cfg) {
    text_buffer buf = {reel_malloc(4096), 0, 4096};
    buf.data[0] = '\0';
    append(&buf, "; Resolved reel configuration: every key with the value in effect, defaults included.\n"
                 "; Loading this text again gives the same configuration.\n");
    char value[REEL_PATH_MAX + 64];
    for (size_t i = 0; i < cfg->num_keys; i++) {
        const reel_key *spec = cfg->keys[i];
        if (i == 0 || strcmp(cfg->keys[i - 1]->section, spec->section) != 0) append(&buf, "\n[%s]\n", spec->section);
        format_value(cfg, i, value, sizeof value);
        if (value[0] == '\0' && spec->type == REEL_KEY_STRING)
            /* Writing "dir = " would load back as an "empty value" error; a comment loads back as the
             * default: empty for an optional key, and "missing required key" for a required one. */
            append(&buf, "; %s = (not set)\n", spec->key);
        else
            append(&buf, "%s = %s\n", spec->key, value);
    }
    return buf.data;
}

/* One row of --help-config. */
typedef struct schema_row {
    const char *owner;
    const reel_key *key;
} schema_row;

void reel_config_print_schema_with(FILE *out, const reel_config_catalogue *catalogue) {
    static const char *const headers[] = {"for", "section", "key", "type", "default", "allowed", "description"};
    enum { COLUMNS = 7, MAX_ROWS = 512 };
    static schema_row rows[MAX_ROWS];
    static char owners[64][256];
    size_t num_rows = 0, num_owners = 0;
    for (size_t i = 0; i < NUM_GENERAL; i++) rows[num_rows++] = (schema_row){"all", &general_keys[i]};
    /* one group per distinct key table; types that share a table share the group (lstm|gru|rnn) */
    for (int kind = 0; kind < 2; kind++) {
        const reel_config_type *types = kind == 0 ? catalogue->models : catalogue->objectives;
        size_t num_types = kind == 0 ? catalogue->num_models : catalogue->num_objectives;
        for (size_t t = 0; t < num_types; t++) {
            const reel_key_table *table = types[t].keys;
            int seen = 0;
            for (size_t u = 0; u < t; u++) seen |= types[u].keys == table;
            if (seen || !table || table->count == 0 || num_owners == 64) continue;
            char *owner = owners[num_owners++];
            size_t used = (size_t)snprintf(owner, 256, "%s", kind == 0 ? "" : "objective ");
            for (size_t u = t; u < num_types; u++)
                if (types[u].keys == table && used < 256)
                    used += (size_t)snprintf(owner + used, 256 - used, "%s%s", u == t ? "" : "|", types[u].name);
            for (size_t i = 0; i < table->count && num_rows < MAX_ROWS; i++) rows[num_rows++] = (schema_row){owner, &table->keys[i]};
        }
    }

    static char cells[MAX_ROWS][COLUMNS - 1][256];
    size_t width[COLUMNS];
    for (size_t c = 0; c < COLUMNS; c++) width[c] = strlen(headers[c]);
    for (size_t r = 0; r < num_rows; r++) {
        const reel_key *spec = rows[r].key;
        snprintf(cells[r][0], sizeof cells[r][0], "%s", rows[r].owner);
        snprintf(cells[r][1], sizeof cells[r][1], "%s", spec->section);
        snprintf(cells[r][2], sizeof cells[r][2], "%s", spec->key);
        snprintf(cells[r][3], sizeof cells[r][3], "%s", type_names[spec->type]);
        snprintf(cells[r][4], sizeof cells[r][4], "%s",
                 !spec->default_text ? "(required)" : spec->default_text[0] ? spec->default_text : "(none)");
        char *allowed = cells[r][5];
        size_t size = sizeof cells[r][5];
        if (spec->type == REEL_KEY_CHOICE) {
            size_t used = 0;
            allowed[0] = '\0';
            for (size_t i = 0; choice_of(catalogue, spec, i); i++) {
                int n = snprintf(allowed + used, size - used, "%s%s", used ? "|" : "", choice_of(catalogue, spec, i));
                if (n > 0 && (size_t)n < size - used) used += (size_t)n;
            }
            size_t num_aliases = 0;
            const reel_config_alias *aliases = aliases_of(catalogue, spec, &num_aliases);
            for (size_t i = 0; i < num_aliases; i++) {
                int n = snprintf(allowed + used, size - used, " (old name %s = %s)", aliases[i].name, aliases[i].type);
                if (n > 0 && (size_t)n < size - used) used += (size_t)n;
            }
        } else if (spec->type == REEL_KEY_STRING) {
            snprintf(allowed, size, "up to %zu chars", spec->size - 1);
        } else if (spec->type == REEL_KEY_BOOL) {
            snprintf(allowed, size, "true|false");
        } else {
            describe_bounds(spec, allowed, size);
            if (!allowed[0]) snprintf(allowed, size, "-");
        }
        for (size_t c = 0; c < COLUMNS - 1; c++)
            if (strlen(cells[r][c]) > width[c]) width[c] = strlen(cells[r][c]);
    }

    for (size_t c = 0; c < COLUMNS - 1; c++) fprintf(out, "%-*s  ", (int)width[c], headers[c]);
    fprintf(out, "%s\n", headers[COLUMNS - 1]);
    for (size_t r = 0; r < num_rows; r++) {
        for (size_t c = 0; c < COLUMNS - 1; c++) fprintf(out, "%-*s  ", (int)width[c], cells[r][c]);
        fprintf(out, "%s\n", rows[r].key->help);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Lists in string keys                                                                            */

int reel_config_split_list(const char *list, const char *key_name, char items[][REEL_NAME_MAX], size_t max,
                           reel_error *err) {
    size_t count = 0;
    const char *p = list;
    char shown[REEL_QUOTE_MAX]; /* the list as messages quote it, escaped */
    reel_escape_string(shown, sizeof shown, list);
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (a == b) return reel_fail(err, "%s = '%s': an item of the list is empty", key_name, shown);
        if (count == max) return reel_fail(err, "%s = '%s': more than %zu items", key_name, shown, max);
        if ((size_t)(b - a) >= REEL_NAME_MAX) {
            char item[REEL_QUOTE_MAX];
            return reel_fail(err, "%s = '%s': item '%s' is too long", key_name, shown,
                             reel_escape_bytes(item, sizeof item, a, (size_t)(b - a)));
        }
        snprintf(items[count++], REEL_NAME_MAX, "%.*s", (int)(b - a), a);
        p = comma ? comma + 1 : end;
        if (comma && !*p) return reel_fail(err, "%s = '%s': an item of the list is empty", key_name, shown);
    }
    return (int)count;
}

int reel_config_size_list(const char *list, const char *key_name, size_t *values, size_t max, reel_error *err) {
    char (*items)[REEL_NAME_MAX] = reel_malloc((max ? max : 1) * sizeof *items);
    int count = reel_config_split_list(list, key_name, items, max, err);
    char shown[REEL_QUOTE_MAX], item[REEL_QUOTE_MAX]; /* as messages quote them, escaped */
    for (int i = 0; i < count; i++) {
        uint64_t v = 0;
        int overflow = 0;
        if (parse_unsigned(items[i], SIZE_MAX, &v, &overflow) != 0 || v == 0) {
            count = reel_fail(err, "%s = '%s': '%s' is not a positive integer", key_name,
                              reel_escape_string(shown, sizeof shown, list),
                              reel_escape_string(item, sizeof item, items[i]));
            break;
        }
        values[i] = (size_t)v;
    }
    free(items);
    return count;
}
