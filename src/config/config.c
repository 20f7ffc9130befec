/* src/config.c: the configuration schema, INI loading through libinih, --set overrides and printing.
 *
 * Everything a key needs (section, name, type, storage, default, bounds, help) lives in one schema
 * table, so parsing, validation, defaults, the resolved INI text and --help-config cannot drift apart.
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

typedef enum { TYPE_STRING, TYPE_SIZE, TYPE_UINT64, TYPE_DOUBLE, TYPE_BOOL, TYPE_CHOICE } key_type;

static const char *const type_names[] = {"string", "size", "uint64", "double", "bool", "choice"};

/* Bound flags: a closed or open limit on each side. Integer keys only use BOUND_MIN. */
enum { BOUND_MIN = 1, BOUND_MIN_OPEN = 2, BOUND_MAX = 4, BOUND_MAX_OPEN = 8 };

typedef struct key_spec {
    const char *section;
    const char *key;
    key_type type;
    size_t offset;
    size_t size;             /* bytes of the field: the capacity of string fields */
    const char *default_text; /* NULL for required keys */
    int required;
    unsigned bounds;
    double lo, hi;
    const char *const *choices; /* NULL-terminated, for TYPE_CHOICE */
    const char *help;
} key_spec;

/* The _Generic terms are never evaluated; they turn a schema entry whose type does not match its
 * struct field into a compile error instead of a silent overwrite of the neighbouring field. */
#define FIELD_TYPED(field, T)                                                                          \
    .offset = offsetof(reel_config, field) + 0 * sizeof(_Generic(((reel_config *)0)->field, T : 1)),   \
    .size = sizeof(((reel_config *)0)->field)
#define FIELD_CHARS(field)                                                                             \
    .offset = offsetof(reel_config, field) + 0 * sizeof(_Generic(&((reel_config *)0)->field[0], char * : 1)), \
    .size = sizeof(((reel_config *)0)->field)

#define KEY_STRING(sec, name, field, def, req, help_text)                                              \
    {.section = sec, .key = name, .type = TYPE_STRING, FIELD_CHARS(field), .default_text = def,        \
     .required = req, .help = help_text}
#define KEY_CHOICE(sec, name, field, def, list, help_text)                                             \
    {.section = sec, .key = name, .type = TYPE_CHOICE, FIELD_CHARS(field), .default_text = def,        \
     .choices = list, .help = help_text}
#define KEY_SIZE(sec, name, field, def, bound_flags, min, help_text)                                   \
    {.section = sec, .key = name, .type = TYPE_SIZE, FIELD_TYPED(field, size_t), .default_text = def,  \
     .bounds = bound_flags, .lo = min, .help = help_text}
#define KEY_UINT64(sec, name, field, def, help_text)                                                   \
    {.section = sec, .key = name, .type = TYPE_UINT64, FIELD_TYPED(field, uint64_t),                   \
     .default_text = def, .help = help_text}
#define KEY_DOUBLE(sec, name, field, def, bound_flags, min, max, help_text)                            \
    {.section = sec, .key = name, .type = TYPE_DOUBLE, FIELD_TYPED(field, double), .default_text = def, \
     .bounds = bound_flags, .lo = min, .hi = max, .help = help_text}
#define KEY_BOOL(sec, name, field, def, help_text)                                                     \
    {.section = sec, .key = name, .type = TYPE_BOOL, FIELD_TYPED(field, int), .default_text = def,     \
     .help = help_text}

static const char *const model_types[] = {"bow", "lstm", "gru", "rnn", NULL};
static const char *const poolings[] = {"max", "mean", "last", NULL};
static const char *const optimizer_types[] = {"adam", "sgd", NULL};
static const char *const schedules[] = {"constant", "cosine", "linear", NULL};

/* The order here is the order of line_of/source_of, of the resolved INI text and of --help-config. */
static const key_spec schema[] = {
    KEY_STRING("data", "dir", data.dir, NULL, 1, "directory written by `reel prep` (vocabulary and token files)"),
    KEY_SIZE("data", "max_tokens", data.max_tokens, "0", 0, 0, "tokens kept from the start of each document; 0 keeps all"),
    KEY_SIZE("data", "seq_len", data.seq_len, "0", 0, 0,
             "training window: a random run of seq_len tokens per document, drawn again every epoch; 0 = whole"),

    KEY_CHOICE("model", "type", model.type, "bow", model_types,
               "bow (mean of embeddings), or a recurrent classifier: lstm, gru, rnn (tanh)"),
    KEY_SIZE("model", "vocab_size", model.vocab_size, "8000", BOUND_MIN, 4, "token ids >= vocab_size map to <unk>"),
    KEY_SIZE("model", "embed_dim", model.embed_dim, "256", BOUND_MIN, 1, "width of the token embeddings"),
    KEY_SIZE("model", "hidden_dim", model.hidden_dim, "256", BOUND_MIN, 1, "width of the hidden layer"),
    KEY_DOUBLE("model", "dropout", model.dropout, "0.5", BOUND_MIN | BOUND_MAX_OPEN, 0, 1,
               "probability of zeroing a hidden unit during training"),
    KEY_DOUBLE("model", "word_dropout", model.word_dropout, "0", BOUND_MIN | BOUND_MAX_OPEN, 0, 1,
               "probability of leaving each token out of a document's average while training (0 disables)"),
    KEY_BOOL("model", "batch_norm", model.batch_norm, "true", "batch normalisation after the hidden linear layer"),
    KEY_SIZE("model", "num_classes", model.num_classes, "0", 0, 0,
             "classes of the labels; 0 takes them from the data (2: one logit, K > 2: K logits)"),
    KEY_SIZE("model", "num_layers", model.num_layers, "1", BOUND_MIN, 1, "recurrent: stacked layers"),
    KEY_BOOL("model", "bidirectional", model.bidirectional, "false", "recurrent: a reverse direction in every layer"),
    KEY_CHOICE("model", "pooling", model.pooling, "max", poolings,
               "recurrent: pooling of the last layer's outputs over time (max, mean, last)"),
    KEY_DOUBLE("model", "rnn_dropout", model.rnn_dropout, "0", BOUND_MIN | BOUND_MAX_OPEN, 0, 1,
               "recurrent: dropout on every recurrent layer's output, one mask per sequence"),
    KEY_DOUBLE("model", "embed_dropout", model.embed_dropout, "0", BOUND_MIN | BOUND_MAX_OPEN, 0, 1,
               "recurrent: dropout on the embeddings, one mask per sequence"),
    KEY_BOOL("model", "rnn_batch_norm", model.rnn_batch_norm, "false",
             "recurrent: batch norm on every recurrent layer's output, over all valid steps"),
    KEY_SIZE("model", "head_hidden", model.head_hidden, "0", 0, 0,
             "recurrent: width of a hidden layer (ReLU, dropout) in the classifier head; 0 = none"),

    KEY_CHOICE("optimizer", "type", optimizer.type, "adam", optimizer_types, "optimizer"),
    KEY_DOUBLE("optimizer", "lr", optimizer.lr, "1e-3", BOUND_MIN_OPEN, 0, 0, "peak learning rate"),
    KEY_DOUBLE("optimizer", "beta1", optimizer.beta1, "0.9", BOUND_MIN | BOUND_MAX_OPEN, 0, 1,
               "adam: decay of the first-moment estimate"),
    KEY_DOUBLE("optimizer", "beta2", optimizer.beta2, "0.999", BOUND_MIN | BOUND_MAX_OPEN, 0, 1,
               "adam: decay of the second-moment estimate"),
    KEY_DOUBLE("optimizer", "eps", optimizer.eps, "1e-8", BOUND_MIN_OPEN, 0, 0, "adam: added to the denominator"),
    KEY_DOUBLE("optimizer", "momentum", optimizer.momentum, "0.9", BOUND_MIN | BOUND_MAX_OPEN, 0, 1, "sgd: momentum"),
    KEY_BOOL("optimizer", "nesterov", optimizer.nesterov, "false", "sgd: Nesterov momentum"),
    KEY_DOUBLE("optimizer", "weight_decay", optimizer.weight_decay, "0", BOUND_MIN, 0, 0,
               "adam: decoupled (AdamW); sgd: L2 added to the gradient"),
    KEY_DOUBLE("optimizer", "clip_norm", optimizer.clip_norm, "0", BOUND_MIN, 0, 0,
               "clip the global gradient norm to this; 0 disables"),
    KEY_CHOICE("optimizer", "schedule", optimizer.schedule, "constant", schedules,
               "learning-rate schedule after warm-up (cosine/linear decay to 0 over the run)"),
    KEY_SIZE("optimizer", "warmup_steps", optimizer.warmup_steps, "0", 0, 0, "steps of linear warm-up from 0"),

    KEY_SIZE("train", "epochs", train.epochs, "6", BOUND_MIN, 1, "passes over the training set"),
    KEY_SIZE("train", "max_steps", train.max_steps, "0", 0, 0, "stop after this many global steps; 0 runs all epochs"),
    KEY_SIZE("train", "batch_size", train.batch_size, "200", BOUND_MIN, 1, "global batch size, split across the ranks"),
    KEY_UINT64("train", "seed", train.seed, "42", "seed of every random choice (initialisation, shuffling, dropout)"),
    KEY_SIZE("train", "log_every", train.log_every, "10", BOUND_MIN, 1, "steps between progress lines and metric rows"),
    KEY_STRING("train", "run_dir", train.run_dir, "runs/default", 0, "directory for checkpoints, metrics and logs"),

    KEY_SIZE("checkpoint", "every_steps", checkpoint.every_steps, "0", 0, 0,
             "steps between checkpoints; 0 saves only at the end of each epoch and of the run"),
    KEY_SIZE("checkpoint", "keep_last", checkpoint.keep_last, "3", BOUND_MIN, 1, "newest numbered checkpoints kept"),
    KEY_BOOL("checkpoint", "keep_best", checkpoint.keep_best, "true", "also keep the best checkpoint by validation accuracy"),
};

#define NUM_KEYS (sizeof schema / sizeof schema[0])
_Static_assert(sizeof schema / sizeof schema[0] <= REEL_CONFIG_MAX_KEYS, "schema larger than REEL_CONFIG_MAX_KEYS");

/* Lines the INI reader accepts: enough for the longest string value plus its key and a comment.
 * inih's default (200) would reject a long data.dir that reel itself wrote into a resolved config. */
#define CONFIG_LINE_MAX (2 * REEL_PATH_MAX + 256)

/* ---------------------------------------------------------------------------------------------- */
/* Schema lookups                                                                                  */

static int is_section(const char *section) {
    for (size_t i = 0; i < NUM_KEYS; i++)
        if (strcmp(schema[i].section, section) == 0) return 1;
    return 0;
}

static int find_key(const char *section, const char *key) {
    for (size_t i = 0; i < NUM_KEYS; i++)
        if (strcmp(schema[i].section, section) == 0 && strcmp(schema[i].key, key) == 0) return (int)i;
    return -1;
}

int reel_config_key_index(const char *name) {
    const char *dot = strchr(name, '.');
    if (!dot) return -1;
    for (size_t i = 0; i < NUM_KEYS; i++) {
        size_t section_len = strlen(schema[i].section);
        if ((size_t)(dot - name) == section_len && strncmp(name, schema[i].section, section_len) == 0 &&
            strcmp(dot + 1, schema[i].key) == 0)
            return (int)i;
    }
    return -1;
}

/* "data, model, ..." in schema order, for messages. */
static void list_sections(char *out, size_t size) {
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < NUM_KEYS; i++) {
        if (i > 0 && strcmp(schema[i - 1].section, schema[i].section) == 0) continue;
        int n = snprintf(out + used, size - used, "%s%s", used ? ", " : "", schema[i].section);
        if (n < 0 || (size_t)n >= size - used) return;
        used += (size_t)n;
    }
}

static void list_keys(const char *section, char *out, size_t size) {
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < NUM_KEYS; i++) {
        if (strcmp(schema[i].section, section) != 0) continue;
        int n = snprintf(out + used, size - used, "%s%s", used ? ", " : "", schema[i].key);
        if (n < 0 || (size_t)n >= size - used) return;
        used += (size_t)n;
    }
}

/* "> 0", ">= 1", "in [0, 1)"; "" when the key has no bounds. */
static void describe_bounds(const key_spec *spec, char *out, size_t size) {
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

static int within_bounds(const key_spec *spec, double v) {
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
        if (value[i] == ';' && i > 0 && isspace((unsigned char)value[i - 1])) return 0;
    }
    return 1;
}

/* Validates value for schema[index] and stores it in cfg; loc ("x.ini:12", "--set") starts every
 * message. */
static int set_value(reel_config *cfg, size_t index, const char *value, const char *loc, reel_error *err) {
    const key_spec *spec = &schema[index];
    char *field = (char *)cfg + spec->offset;
    char bounds[64];
    describe_bounds(spec, bounds, sizeof bounds);

    switch (spec->type) {
    case TYPE_STRING: {
        size_t len = strlen(value);
        if (len == 0)
            return reel_fail(err, "%s: [%s] %s is empty: expected a non-empty string", loc, spec->section, spec->key);
        if (len >= spec->size)
            return reel_fail(err, "%s: [%s] %s: the value has %zu characters, more than the limit of %zu", loc,
                             spec->section, spec->key, len, spec->size - 1);
        if (!representable_in_ini(value))
            return reel_fail(err,
                             "%s: [%s] %s = '%s': a value cannot contain a line break, a leading or trailing "
                             "space, or ';' after a space (it could not be written back to an INI file)",
                             loc, spec->section, spec->key, value);
        memset(field, 0, spec->size);
        memcpy(field, value, len + 1);
        return 0;
    }
    case TYPE_CHOICE: {
        char choices[256];
        size_t used = 0;
        for (const char *const *c = spec->choices; *c; c++) {
            if (strcmp(value, *c) == 0) {
                memset(field, 0, spec->size);
                memcpy(field, *c, strlen(*c) + 1);
                return 0;
            }
            int n = snprintf(choices + used, sizeof choices - used, "%s%s", used ? ", " : "", *c);
            if (n > 0 && (size_t)n < sizeof choices - used) used += (size_t)n;
        }
        return reel_fail(err, "%s: [%s] %s = '%s': expected one of %s%s", loc, spec->section, spec->key, value,
                         choices, comment_hint(value));
    }
    case TYPE_SIZE:
    case TYPE_UINT64: {
        uint64_t v = 0, max = spec->type == TYPE_SIZE ? (uint64_t)SIZE_MAX : UINT64_MAX;
        int overflow = 0;
        if (parse_unsigned(value, max, &v, &overflow) != 0) {
            if (overflow)
                return reel_fail(err, "%s: [%s] %s = '%s': out of range (at most %llu)", loc, spec->section,
                                 spec->key, value, (unsigned long long)max);
            return reel_fail(err, "%s: [%s] %s = '%s': expected a non-negative integer%s", loc, spec->section,
                             spec->key, value, comment_hint(value));
        }
        if (!within_bounds(spec, (double)v))
            return reel_fail(err, "%s: [%s] %s = '%s': must be %s", loc, spec->section, spec->key, value, bounds);
        if (spec->type == TYPE_SIZE)
            *(size_t *)(void *)field = (size_t)v;
        else
            *(uint64_t *)(void *)field = v;
        return 0;
    }
    case TYPE_DOUBLE: {
        char *end = NULL;
        errno = 0;
        double v = strtod(value, &end);
        if (end == value || *end != '\0')
            return reel_fail(err, "%s: [%s] %s = '%s': expected a number%s", loc, spec->section, spec->key, value,
                             comment_hint(value));
        if (errno == ERANGE)
            return reel_fail(err, "%s: [%s] %s = '%s': out of the range of a double", loc, spec->section,
                             spec->key, value);
        if (!isfinite(v))
            return reel_fail(err, "%s: [%s] %s = '%s': expected a finite number", loc, spec->section, spec->key,
                             value);
        if (!within_bounds(spec, v))
            return reel_fail(err, "%s: [%s] %s = '%s': must be %s", loc, spec->section, spec->key, value, bounds);
        *(double *)(void *)field = v;
        return 0;
    }
    case TYPE_BOOL: {
        int v = 0;
        if (parse_bool(value, &v) != 0)
            return reel_fail(err, "%s: [%s] %s = '%s': expected a boolean (true/false, yes/no, on/off, 1/0)%s",
                             loc, spec->section, spec->key, value, comment_hint(value));
        *(int *)(void *)field = v;
        return 0;
    }
    }
    return reel_fail(err, "%s: [%s] %s: unsupported key type", loc, spec->section, spec->key);
}

void reel_config_defaults(reel_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NUM_KEYS; i++) {
        cfg->source_of[i] = "default";
        if (!schema[i].default_text) continue;
        reel_error err;
        if (set_value(cfg, i, schema[i].default_text, "default", &err) != 0)
            REEL_FATAL(NULL, "the built-in default is invalid: %s", err.message);
    }
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
    if (src->error_line) return 1;
    char list[512];
    if (section[0] == '\0') {
        list_sections(list, sizeof list);
        source_fail(src, "%s:%u: key '%s' comes before any [section] header (sections: %s)", src->name,
                    src->line, key, list);
        return 0;
    }
    if (!is_section(section)) {
        list_sections(list, sizeof list);
        source_fail(src, "%s:%u: unknown section [%s] (known sections: %s)", src->name,
                    src->section_line ? src->section_line : src->line, section, list);
        return 0;
    }
    int index = find_key(section, key);
    if (index < 0) {
        list_keys(section, list, sizeof list);
        source_fail(src, "%s:%u: unknown key '%s' in section [%s] (known keys: %s)", src->name, src->line, key,
                    section, list);
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
    if (n > max)
        snprintf(out, size, "%.*s...", (int)max, p);
    else
        snprintf(out, size, "%.*s", (int)n, p);
}

static int parse_text(reel_config *cfg, const char *text, size_t len, const char *name, reel_error *err) {
    reel_config_defaults(cfg);
    ini_source *src = reel_calloc(1, sizeof *src);
    src->cfg = cfg;
    src->name = intern_name(name);
    src->text = text;
    src->len = len;

    /* The line limit is a process-wide setting of this (Debian) inih build; it is raised only for the
     * duration of the parse. */
    int saved_max_line = ini_max_line;
    if (ini_max_line < CONFIG_LINE_MAX) ini_max_line = CONFIG_LINE_MAX;
    int rc = ini_parse_stream(read_line, src, on_pair, src);
    ini_max_line = saved_max_line;

    int status = 0;
    if (rc == -2) REEL_FATAL(NULL, "out of memory while parsing %s", name);
    if (rc > 0 && (src->error_line == 0 || (unsigned)rc < src->error_line)) {
        char quoted[128];
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
        for (size_t i = 0; i < NUM_KEYS; i++) {
            if (schema[i].required && !src->given[i]) {
                status = reel_fail(err, "%s: missing required key [%s] %s", name, schema[i].section, schema[i].key);
                break;
            }
        }
    }
    free(src);
    return status;
}

int reel_config_load_string(reel_config *cfg, const char *text, const char *source_name, reel_error *err) {
    return parse_text(cfg, text, strlen(text), source_name ? source_name : "<string>", err);
}

int reel_config_load_file(reel_config *cfg, const char *path, reel_error *err) {
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
    int status = parse_text(cfg, text, len, path, err);
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
    char list[512];

    char *eq = strchr(copy, '=');
    char *dot = eq ? memchr(copy, '.', (size_t)(eq - copy)) : NULL;
    char *section = copy, *section_end = dot, *key = dot ? dot + 1 : NULL, *key_end = eq;
    if (dot) {
        trim_in_place(&section, &section_end);
        trim_in_place(&key, &key_end);
    }
    if (!eq || !dot || section == section_end || key == key_end) {
        status = reel_fail(err, "--set '%s': expected the form section.key=value (for example optimizer.lr=3e-4)",
                           assignment);
        goto done;
    }
    *section_end = '\0';
    *key_end = '\0';
    char *value = eq + 1, *value_end = copy + len;
    trim_in_place(&value, &value_end);
    *value_end = '\0';

    if (!is_section(section)) {
        list_sections(list, sizeof list);
        status = reel_fail(err, "--set '%s': unknown section [%s] (known sections: %s)", assignment, section, list);
        goto done;
    }
    int index = find_key(section, key);
    if (index < 0) {
        list_keys(section, list, sizeof list);
        status = reel_fail(err, "--set '%s': unknown key '%s' in section [%s] (known keys: %s)", assignment, key,
                           section, list);
        goto done;
    }
    /* The assignment as typed leads the message: it is what the user will search the command line for. */
    char loc[REEL_ERROR_MAX];
    snprintf(loc, sizeof loc, "--set '%s'", assignment);
    if (set_value(cfg, (size_t)index, value, loc, err) != 0) {
        status = -1;
        goto done;
    }
    /* line_of of a --set value is its position among the overrides applied so far (1 for the first),
     * so it stays distinguishable from 0, "default". */
    unsigned ordinal = 1;
    for (size_t i = 0; i < NUM_KEYS; i++)
        if (cfg->source_of[i] && strcmp(cfg->source_of[i], "--set") == 0 && cfg->line_of[i] >= ordinal)
            ordinal = cfg->line_of[i] + 1;
    cfg->line_of[index] = ordinal;
    cfg->source_of[index] = "--set";
done:
    free(copy);
    return status;
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

static void format_value(const reel_config *cfg, const key_spec *spec, char *out, size_t size) {
    const char *field = (const char *)cfg + spec->offset;
    switch (spec->type) {
    case TYPE_STRING:
    case TYPE_CHOICE:
        snprintf(out, size, "%s", field);
        break;
    case TYPE_SIZE:
        snprintf(out, size, "%zu", *(const size_t *)(const void *)field);
        break;
    case TYPE_UINT64:
        snprintf(out, size, "%llu", (unsigned long long)*(const uint64_t *)(const void *)field);
        break;
    case TYPE_DOUBLE:
        format_double(*(const double *)(const void *)field, out, size);
        break;
    case TYPE_BOOL:
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
    for (size_t i = 0; i < NUM_KEYS; i++) {
        const key_spec *spec = &schema[i];
        if (i == 0 || strcmp(schema[i - 1].section, spec->section) != 0) append(&buf, "\n[%s]\n", spec->section);
        format_value(cfg, spec, value, sizeof value);
        if (value[0] == '\0' && spec->type == TYPE_STRING)
            /* Writing "dir = " would load back as an "empty value" error; a comment makes the reload
             * fail with the message that is actually true, "missing required key". */
            append(&buf, "; %s = (not set)\n", spec->key);
        else
            append(&buf, "%s = %s\n", spec->key, value);
    }
    return buf.data;
}

void reel_config_print_schema(FILE *out) {
    static const char *const headers[] = {"section", "key", "type", "default", "allowed", "description"};
    enum { COLUMNS = 6 };
    char cells[NUM_KEYS][COLUMNS - 1][256];
    size_t width[COLUMNS];
    for (size_t c = 0; c < COLUMNS; c++) width[c] = strlen(headers[c]);

    for (size_t i = 0; i < NUM_KEYS; i++) {
        const key_spec *spec = &schema[i];
        snprintf(cells[i][0], sizeof cells[i][0], "%s", spec->section);
        snprintf(cells[i][1], sizeof cells[i][1], "%s", spec->key);
        snprintf(cells[i][2], sizeof cells[i][2], "%s", type_names[spec->type]);
        snprintf(cells[i][3], sizeof cells[i][3], "%s", spec->required ? "(required)" : spec->default_text);
        char *allowed = cells[i][4];
        size_t size = sizeof cells[i][4];
        if (spec->type == TYPE_CHOICE) {
            size_t used = 0;
            allowed[0] = '\0';
            for (const char *const *c = spec->choices; *c; c++) {
                int n = snprintf(allowed + used, size - used, "%s%s", used ? "|" : "", *c);
                if (n > 0 && (size_t)n < size - used) used += (size_t)n;
            }
        } else if (spec->type == TYPE_STRING) {
            snprintf(allowed, size, "up to %zu chars", spec->size - 1);
        } else if (spec->type == TYPE_BOOL) {
            snprintf(allowed, size, "true|false");
        } else {
            describe_bounds(spec, allowed, size);
            if (!allowed[0]) snprintf(allowed, size, "-");
        }
        for (size_t c = 0; c < COLUMNS - 1; c++)
            if (strlen(cells[i][c]) > width[c]) width[c] = strlen(cells[i][c]);
    }

    for (size_t c = 0; c < COLUMNS - 1; c++) fprintf(out, "%-*s  ", (int)width[c], headers[c]);
    fprintf(out, "%s\n", headers[COLUMNS - 1]);
    for (size_t i = 0; i < NUM_KEYS; i++) {
        for (size_t c = 0; c < COLUMNS - 1; c++) fprintf(out, "%-*s  ", (int)width[c], cells[i][c]);
        fprintf(out, "%s\n", schema[i].help);
    }
}
