/* ckpt_compare A.h5 B.h5 (--exact | --tol REL) [--ignore NAME]...: compares two checkpoints completely and
 * symmetrically. Both files must hold the same names (groups, datasets, links), every object the same
 * attributes, each with the same type and shape, and every value equal. With --exact float values must match
 * bit for bit; with --tol REL each float value (of a dataset or a float attribute) may differ by
 * REL * (max(|a|,|b|) + rms(all values of that dataset or attribute)). Everything else (integer and string
 * datasets and attributes, the configuration, link targets) must be equal exactly in both modes.
 *
 * Names: objects are "/model/embed/weight", attributes "/train_state@seed" (root: "/@format"), keys of the
 * configuration dataset "/config:train.max_steps". --ignore NAME skips the value of that attribute, dataset
 * or configuration key (it must still exist in both files with the same type and shape) and must name
 * something present, so a misspelt ignore cannot hide a difference. The values that differ between any two
 * runs (a wall-clock time, the run directory) are in not_compared[] below; each comparison prints
 * "not compared: NAME (why)" for what it skipped.
 *
 * Exit 0 when equal, 1 when anything differs (each difference printed with its name), 2 for usage errors or
 * an unreadable file. Used by the multi-rank and resume tests. */
#include <hdf5.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Values that legitimately differ between two saves of the same training state. Their presence, type and
 * shape are still compared. */
static const struct {
    const char *name, *why;
} not_compared[] = {
    {"/@created_utc", "wall-clock time of the save"},
    /* two runs compared are two directories; where a run writes does not change what it computes */
    {"/config:train.run_dir", "the run's own directory"},
};

#define MAX_IGNORES 64

typedef struct {
    const char *path[2];
    hid_t file[2];
    int exact;
    double tolerance;
    const char *ignore[MAX_IGNORES];
    int ignore_used[MAX_IGNORES];
    size_t num_ignores;
    size_t mismatches, datasets, attributes, float_values, config_keys;
} compare_state;

static void differ(compare_state *s, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void differ(compare_state *s, const char *format, ...) {
    va_list args;
    va_start(args, format);
    printf("  ");
    vprintf(format, args);
    printf("\n");
    va_end(args);
    s->mismatches++;
}

/* 1 when name is one of the --ignore names, which it marks used: the name exists in both files. Looked up
 * before the type and shape are compared, so an ignored value of another type in the other file is reported
 * as that difference, not also as an --ignore naming nothing. */
static int ignored(compare_state *s, const char *name) {
    int found = 0;
    for (size_t i = 0; i < s->num_ignores; i++)
        if (strcmp(name, s->ignore[i]) == 0) s->ignore_used[i] = found = 1;
    return found;
}

/* 1 when the value called name is not to be compared (and says so once); is_ignored from ignored(). */
static int skipped(const char *name, int is_ignored) {
    for (size_t i = 0; i < sizeof not_compared / sizeof not_compared[0]; i++)
        if (strcmp(name, not_compared[i].name) == 0) {
            printf("  not compared: %s (%s)\n", name, not_compared[i].why);
            return 1;
        }
    if (is_ignored) printf("  not compared: %s (--ignore)\n", name);
    return is_ignored;
}

/* ---- the objects of a file ---- */

/* What a name in the file is: the object a hard link leads to, or a soft or external link (whose target
 * is then its value). */
typedef enum { KIND_GROUP, KIND_DATASET, KIND_DATATYPE, KIND_OTHER_OBJECT, KIND_SOFT_LINK, KIND_EXTERNAL_LINK } kind;

typedef struct {
    char *name; /* "/" for the root, else "/group/dataset" */
    kind kind;
} entry;

typedef struct {
    entry *entries;
    size_t count, capacity;
} entry_list;

static int add_entry(entry_list *list, const char *name, kind k) {
    if (list->count == list->capacity) {
        list->capacity = list->capacity ? 2 * list->capacity : 64;
        list->entries = realloc(list->entries, list->capacity * sizeof *list->entries);
        if (!list->entries) return -1;
    }
    size_t length = strlen(name) + 2;
    char *full = malloc(length);
    if (!full) return -1;
    snprintf(full, length, "/%s", name);
    list->entries[list->count++] = (entry){full, k};
    return 0;
}

/* Every link, not every object: a soft link present in one file only is a difference too. */
static herr_t collect_link(hid_t root, const char *name, const H5L_info_t *info, void *data) {
    kind k = KIND_OTHER_OBJECT;
    if (info->type == H5L_TYPE_SOFT) {
        k = KIND_SOFT_LINK;
    } else if (info->type == H5L_TYPE_EXTERNAL) {
        k = KIND_EXTERNAL_LINK;
    } else if (info->type == H5L_TYPE_HARD) {
        H5O_info_t object;
        if (H5Oget_info_by_name2(root, name, &object, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return -1;
        k = object.type == H5O_TYPE_GROUP     ? KIND_GROUP
            : object.type == H5O_TYPE_DATASET ? KIND_DATASET
            : object.type == H5O_TYPE_NAMED_DATATYPE ? KIND_DATATYPE : KIND_OTHER_OBJECT;
    }
    return add_entry(data, name, k);
}

static int by_name(const void *a, const void *b) { return strcmp(((const entry *)a)->name, ((const entry *)b)->name); }

static void free_entries(entry_list *list) {
    for (size_t i = 0; i < list->count; i++) free(list->entries[i].name);
    free(list->entries);
}

static const char *kind_name(kind k) {
    static const char *const names[] = {"group", "dataset", "named datatype", "object", "soft link", "external link"};
    return names[k];
}

/* ---- values: a dataset or an attribute ---- */

typedef struct {
    hid_t id;
    int is_attribute;
} item;

static hid_t item_type(item it) { return it.is_attribute ? H5Aget_type(it.id) : H5Dget_type(it.id); }
static hid_t item_space(item it) { return it.is_attribute ? H5Aget_space(it.id) : H5Dget_space(it.id); }
static herr_t item_read(item it, hid_t memory_type, void *buffer) {
    return it.is_attribute ? H5Aread(it.id, memory_type, buffer)
                           : H5Dread(it.id, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer);
}

/* Equal types; a fixed-length string's length is part of its value, not of its type (the configuration
 * of a run writing to "r1" is one byte shorter than that of one writing to "r10"), so fixed strings need
 * only the same character set and padding, and their contents are compared as values. */
static int same_type(hid_t a, hid_t b) {
    if (H5Tget_class(a) == H5T_STRING && H5Tget_class(b) == H5T_STRING && H5Tis_variable_str(a) == 0 &&
        H5Tis_variable_str(b) == 0)
        return H5Tget_cset(a) == H5Tget_cset(b) && H5Tget_strpad(a) == H5Tget_strpad(b);
    return H5Tequal(a, b) > 0;
}

static void describe_type(hid_t type, char *text, size_t size) {
    size_t bytes = H5Tget_size(type);
    switch (H5Tget_class(type)) {
    case H5T_INTEGER:
        snprintf(text, size, "%s%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int", 8 * bytes);
        break;
    case H5T_FLOAT:
        snprintf(text, size, "float%zu", 8 * bytes);
        break;
    case H5T_STRING:
        if (H5Tis_variable_str(type) > 0) snprintf(text, size, "variable-length string");
        else snprintf(text, size, "string of %zu bytes", bytes);
        break;
    default:
        snprintf(text, size, "HDF5 type class %d of %zu bytes", (int)H5Tget_class(type), bytes);
    }
    /* two integers or floats of the same size can still differ in byte order */
    H5T_order_t order = H5Tget_order(type);
    if (order == H5T_ORDER_BE) snprintf(text + strlen(text), size - strlen(text), " big-endian");
}

/* Element count of an item, after checking both have the same type and shape; -1 when they differ. */
static hssize_t same_type_and_shape(compare_state *s, const char *name, item a, item b) {
    hid_t ta = item_type(a), tb = item_type(b), sa = item_space(a), sb = item_space(b);
    hssize_t count = -1;
    if (ta < 0 || tb < 0 || sa < 0 || sb < 0) {
        differ(s, "%s: cannot read its type or shape", name);
    } else if (!same_type(ta, tb)) {
        char type_a[64], type_b[64];
        describe_type(ta, type_a, sizeof type_a);
        describe_type(tb, type_b, sizeof type_b);
        differ(s, "%s: different types (%s vs %s)", name, type_a, type_b);
    } else {
        int rank_a = H5Sget_simple_extent_ndims(sa), rank_b = H5Sget_simple_extent_ndims(sb);
        hsize_t dims_a[H5S_MAX_RANK] = {0}, dims_b[H5S_MAX_RANK] = {0};
        if (rank_a > 0) H5Sget_simple_extent_dims(sa, dims_a, NULL);
        if (rank_b > 0) H5Sget_simple_extent_dims(sb, dims_b, NULL);
        int same = rank_a >= 0 && rank_a == rank_b && H5Sget_simple_extent_type(sa) == H5Sget_simple_extent_type(sb) &&
                   (rank_a <= 0 || memcmp(dims_a, dims_b, (size_t)rank_a * sizeof dims_a[0]) == 0);
        if (!same) {
            char shape_a[128] = "", shape_b[128] = "";
            for (int d = 0; d < rank_a && d < H5S_MAX_RANK; d++)
                snprintf(shape_a + strlen(shape_a), sizeof shape_a - strlen(shape_a), "%s%llu", d ? ", " : "",
                         (unsigned long long)dims_a[d]);
            for (int d = 0; d < rank_b && d < H5S_MAX_RANK; d++)
                snprintf(shape_b + strlen(shape_b), sizeof shape_b - strlen(shape_b), "%s%llu", d ? ", " : "",
                         (unsigned long long)dims_b[d]);
            differ(s, "%s: different shapes ([%s] vs [%s])", name, shape_a, shape_b);
        } else {
            count = H5Sget_simple_extent_npoints(sa);
        }
    }
    if (ta >= 0) H5Tclose(ta);
    if (tb >= 0) H5Tclose(tb);
    if (sa >= 0) H5Sclose(sa);
    if (sb >= 0) H5Sclose(sb);
    return count;
}

/* Float values: bit for bit, or within the tolerance in --tol mode, for datasets and float attributes alike
 * (/train_state@best_value is a validation metric: a sum whose order depends on the world size). The bits
 * are those of the file's own precision (float32 read as float), so -0 against +0 or two NaN payloads
 * count as different. */
static void compare_floats(compare_state *s, const char *name, item a, item b, size_t count, int with_tolerance) {
    hid_t type = item_type(a);
    size_t size = H5Tget_size(type);
    H5Tclose(type);
    size_t width = size <= sizeof(float) ? sizeof(float) : sizeof(double);
    hid_t memory = width == sizeof(float) ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
    unsigned char *raw_a = malloc((count ? count : 1) * width), *raw_b = malloc((count ? count : 1) * width);
    if (size > sizeof(double)) {
        differ(s, "%s: %zu-byte floats cannot be compared", name, size);
    } else if (item_read(a, memory, raw_a) < 0 || item_read(b, memory, raw_b) < 0) {
        differ(s, "%s: cannot read its values", name);
    } else {
#define VALUE(raw, i) (width == sizeof(float) ? (double)((const float *)(raw))[i] : ((const double *)(raw))[i])
        double sum_squares = 0, max_abs = 0;
        size_t finite = 0, differing = 0, bad = 0, first = 0;
        /* rms over the finite values: one NaN must not make the allowance NaN (and every check pass) */
        for (size_t i = 0; i < count; i++) {
            double x = VALUE(raw_a, i);
            if (isfinite(x)) sum_squares += x * x, finite++;
        }
        double rms = finite ? sqrt(sum_squares / (double)finite) : 0;
        for (size_t i = 0; i < count; i++) {
            if (memcmp(raw_a + i * width, raw_b + i * width, width) == 0) continue;
            if (!differing++) first = i;
            double x = VALUE(raw_a, i), y = VALUE(raw_b, i), diff = fabs(x - y);
            if (diff > max_abs || isnan(diff)) max_abs = diff;
            /* NaN and infinities are within no tolerance: only the same bits match them */
            int within = with_tolerance && isfinite(x) && isfinite(y) &&
                         diff <= s->tolerance * (fmax(fabs(x), fabs(y)) + rms);
            if (!within) bad++;
        }
        s->float_values += count;
        if (differing) {
            printf("  %s: %zu of %zu values differ, max |a-b| %.3g (rms %.3g), first [%zu] %.9g vs %.9g%s\n", name,
                   differing, count, max_abs, rms, first, VALUE(raw_a, first), VALUE(raw_b, first),
                   bad ? "  <-- beyond tolerance" : "");
            if (bad) s->mismatches++;
        }
#undef VALUE
    }
    free(raw_a);
    free(raw_b);
}

static void compare_integers(compare_state *s, const char *name, item a, item b, size_t count, int is_signed) {
    uint64_t *x = malloc((count ? count : 1) * sizeof *x), *y = malloc((count ? count : 1) * sizeof *y);
    hid_t memory = is_signed ? H5T_NATIVE_INT64 : H5T_NATIVE_UINT64;
    if (item_read(a, memory, x) < 0 || item_read(b, memory, y) < 0) {
        differ(s, "%s: cannot read its values", name);
    } else {
        size_t differing = 0, first = 0;
        for (size_t i = 0; i < count; i++)
            if (x[i] != y[i] && !differing++) first = i;
        if (differing && is_signed)
            differ(s, "%s: %zu of %zu values differ, first [%zu] %" PRId64 " vs %" PRId64, name, differing, count,
                   first, (int64_t)x[first], (int64_t)y[first]);
        else if (differing)
            differ(s, "%s: %zu of %zu values differ, first [%zu] %" PRIu64 " vs %" PRIu64, name, differing, count,
                   first, x[first], y[first]);
    }
    free(x);
    free(y);
}

static void compare_variable_strings(compare_state *s, const char *name, item a, item b, size_t count) {
    char **x = calloc(count ? count : 1, sizeof *x), **y = calloc(count ? count : 1, sizeof *y);
    hid_t memory = H5Tcopy(H5T_C_S1);
    H5Tset_size(memory, H5T_VARIABLE);
    if (item_read(a, memory, x) < 0 || item_read(b, memory, y) < 0) {
        differ(s, "%s: cannot read its values", name);
    } else {
        for (size_t i = 0; i < count; i++)
            if (strcmp(x[i] ? x[i] : "", y[i] ? y[i] : "") != 0) {
                differ(s, "%s: [%zu] \"%.60s\" vs \"%.60s\"", name, i, x[i] ? x[i] : "", y[i] ? y[i] : "");
                break;
            }
    }
    for (size_t i = 0; i < count; i++) H5free_memory(x[i]), H5free_memory(y[i]); /* allocated by the library */
    H5Tclose(memory);
    free(x);
    free(y);
}

/* The configuration (one "key = value" per line under [section] headers) is compared key by key, so a
 * difference names the key and --ignore can skip one key instead of the whole configuration. */
typedef struct {
    char **keys, **values;
    size_t count;
    char *other_lines; /* comments and anything else, compared as text */
} config_entries;

static void parse_config(const char *text, config_entries *c) {
    size_t lines = 1;
    for (const char *p = text; *p; p++) lines += *p == '\n';
    c->keys = calloc(lines, sizeof *c->keys);
    c->values = calloc(lines, sizeof *c->values);
    /* every line is stored with a "\n", also a last line that had none: one byte more than the text */
    c->other_lines = calloc(strlen(text) + 2, 1);
    c->count = 0;
    char section[128] = "";
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t length = end ? (size_t)(end - line) : strlen(line);
        char *buffer = strndup(line, length);
        char *equals = strstr(buffer, " = ");
        const char *key = buffer;
        /* a key without a value is written as a comment "; key = (not set)" */
        if (equals && buffer[0] == ';' && strcmp(equals, " = (not set)") == 0) key = buffer + 2;
        if (buffer[0] == '[' && length > 2 && buffer[length - 1] == ']') {
            snprintf(section, sizeof section, "%.*s", (int)(length - 2), buffer + 1);
        } else if (equals && (key != buffer || buffer[0] != ';')) {
            *equals = '\0';
            size_t size = strlen(section) + strlen(key) + 2;
            c->keys[c->count] = malloc(size);
            snprintf(c->keys[c->count], size, "%s.%s", section, key);
            c->values[c->count++] = strdup(equals + 3);
        } else {
            strcat(c->other_lines, buffer);
            strcat(c->other_lines, "\n");
        }
        free(buffer);
        line += length + (end ? 1 : 0);
    }
}

static void free_config(config_entries *c) {
    for (size_t i = 0; i < c->count; i++) free(c->keys[i]), free(c->values[i]);
    free(c->keys);
    free(c->values);
    free(c->other_lines);
}

static void compare_config(compare_state *s, const char *name, const char *text_a, const char *text_b) {
    config_entries c[2];
    parse_config(text_a, &c[0]);
    parse_config(text_b, &c[1]);
    char key_name[512];
    for (int f = 0; f < 2; f++)
        for (size_t i = 0; i < c[f].count; i++) {
            size_t j = 0;
            while (j < c[1 - f].count && strcmp(c[f].keys[i], c[1 - f].keys[j]) != 0) j++;
            snprintf(key_name, sizeof key_name, "%s:%s", name, c[f].keys[i]);
            if (j == c[1 - f].count) {
                differ(s, "only in %s: %s", f == 0 ? "A" : "B", key_name);
            } else if (f == 0) {
                s->config_keys++;
                if (!skipped(key_name, ignored(s, key_name)) && strcmp(c[0].values[i], c[1].values[j]) != 0)
                    differ(s, "%s: \"%s\" vs \"%s\"", key_name, c[0].values[i], c[1].values[j]);
            }
        }
    if (strcmp(c[0].other_lines, c[1].other_lines) != 0) differ(s, "%s: the comment lines differ", name);
    free_config(&c[0]);
    free_config(&c[1]);
}

static void compare_fixed_strings(compare_state *s, const char *name, item a, item b, size_t count) {
    hid_t types[2] = {item_type(a), item_type(b)};
    size_t sizes[2] = {H5Tget_size(types[0]), H5Tget_size(types[1])};
    char *x = calloc(count * sizes[0] + 1, 1), *y = calloc(count * sizes[1] + 1, 1);
    if (item_read(a, types[0], x) < 0 || item_read(b, types[1], y) < 0) {
        differ(s, "%s: cannot read its values", name);
    } else if (strcmp(name, "/config") == 0 && count == 1) {
        compare_config(s, name, x, y);
    } else {
        /* each element up to its length, then padding that must be the same in both */
        for (size_t i = 0; i < count; i++) {
            const char *u = x + i * sizes[0], *v = y + i * sizes[1];
            size_t length_u = strnlen(u, sizes[0]), length_v = strnlen(v, sizes[1]);
            if (length_u != length_v || memcmp(u, v, length_u) != 0) {
                differ(s, "%s: [%zu] \"%.*s\" vs \"%.*s\"", name, i, (int)(length_u < 60 ? length_u : 60), u,
                       (int)(length_v < 60 ? length_v : 60), v);
                break;
            }
        }
    }
    H5Tclose(types[0]);
    H5Tclose(types[1]);
    free(x);
    free(y);
}

/* Any other fixed-size type (enum, compound, opaque...): byte for byte in the file's representation. */
static void compare_bytes(compare_state *s, const char *name, item a, item b, size_t count) {
    hid_t memory = item_type(a);
    size_t size = H5Tget_size(memory);
    unsigned char *x = calloc(count * size + 1, 1), *y = calloc(count * size + 1, 1);
    if (item_read(a, memory, x) < 0 || item_read(b, memory, y) < 0) differ(s, "%s: cannot read its values", name);
    else if (memcmp(x, y, count * size) != 0) differ(s, "%s: the values differ", name);
    H5Tclose(memory);
    free(x);
    free(y);
}

static void compare_item(compare_state *s, const char *name, item a, item b) {
    int is_ignored = ignored(s, name); /* before the type and shape: see ignored() */
    hssize_t count = same_type_and_shape(s, name, a, b);
    if (count < 0 || skipped(name, is_ignored)) return;
    hid_t type = item_type(a);
    H5T_class_t class = H5Tget_class(type);
    size_t size = H5Tget_size(type);
    if (class == H5T_FLOAT)
        compare_floats(s, name, a, b, (size_t)count, !s->exact);
    else if (class == H5T_INTEGER && size <= 8)
        compare_integers(s, name, a, b, (size_t)count, H5Tget_sign(type) == H5T_SGN_2);
    else if (class == H5T_STRING && H5Tis_variable_str(type) > 0)
        compare_variable_strings(s, name, a, b, (size_t)count);
    else if (class == H5T_STRING)
        compare_fixed_strings(s, name, a, b, (size_t)count);
    else if (H5Tdetect_class(type, H5T_VLEN) > 0 || H5Tdetect_class(type, H5T_REFERENCE) > 0 ||
             H5Tdetect_class(type, H5T_STRING) > 0)
        /* their bytes are pointers or addresses: equal values would not compare equal */
        differ(s, "%s: a type this tool cannot compare (class %d)", name, (int)class);
    else
        compare_bytes(s, name, a, b, (size_t)count);
    H5Tclose(type);
}

/* ---- attributes ---- */

typedef struct {
    char **names;
    size_t count, capacity;
} name_list;

static herr_t collect_attribute(hid_t object, const char *name, const H5A_info_t *info, void *data) {
    (void)object;
    (void)info;
    name_list *list = data;
    if (list->count == list->capacity) {
        list->capacity = list->capacity ? 2 * list->capacity : 16;
        list->names = realloc(list->names, list->capacity * sizeof *list->names);
        if (!list->names) return -1;
    }
    list->names[list->count++] = strdup(name);
    return 0;
}

static int contains(const name_list *list, const char *name) {
    for (size_t i = 0; i < list->count; i++)
        if (strcmp(list->names[i], name) == 0) return 1;
    return 0;
}

static void compare_attributes(compare_state *s, const char *object_name, hid_t object_a, hid_t object_b) {
    name_list lists[2] = {{0}, {0}};
    hid_t objects[2] = {object_a, object_b};
    for (int f = 0; f < 2; f++)
        if (H5Aiterate2(objects[f], H5_INDEX_NAME, H5_ITER_INC, NULL, collect_attribute, &lists[f]) < 0)
            differ(s, "%s: cannot list the attributes in %s", object_name, s->path[f]);
    char name[1024];
    for (int f = 0; f < 2; f++)
        for (size_t i = 0; i < lists[f].count; i++) {
            snprintf(name, sizeof name, "%s@%s", object_name, lists[f].names[i]);
            if (!contains(&lists[1 - f], lists[f].names[i])) {
                differ(s, "only in %s: attribute %s", f == 0 ? "A" : "B", name);
                continue;
            }
            if (f == 1) continue; /* common attributes: compared once */
            hid_t a = H5Aopen(object_a, lists[f].names[i], H5P_DEFAULT), b = H5Aopen(object_b, lists[f].names[i], H5P_DEFAULT);
            if (a < 0 || b < 0) differ(s, "%s: cannot open the attribute", name);
            else compare_item(s, name, (item){a, 1}, (item){b, 1});
            s->attributes++;
            if (a >= 0) H5Aclose(a);
            if (b >= 0) H5Aclose(b);
        }
    for (int f = 0; f < 2; f++) {
        for (size_t i = 0; i < lists[f].count; i++) free(lists[f].names[i]);
        free(lists[f].names);
    }
}

/* ---- the whole files ---- */

/* A soft or external link's value is its target. */
static void compare_link_targets(compare_state *s, const char *name) {
    char *targets[2] = {NULL, NULL};
    for (int f = 0; f < 2; f++) {
        H5L_info_t info;
        if (H5Lget_info(s->file[f], name + 1, &info, H5P_DEFAULT) < 0) break;
        targets[f] = calloc(info.u.val_size + 1, 1);
        if (H5Lget_val(s->file[f], name + 1, targets[f], info.u.val_size, H5P_DEFAULT) < 0) break;
    }
    int is_ignored = ignored(s, name);
    if (!targets[0] || !targets[1])
        differ(s, "%s: cannot read the link", name);
    else if (!skipped(name, is_ignored) && strcmp(targets[0], targets[1]) != 0)
        differ(s, "%s: links to \"%s\" vs \"%s\"", name, targets[0], targets[1]);
    free(targets[0]);
    free(targets[1]);
}

static void compare_object(compare_state *s, const char *name, kind k) {
    if (k == KIND_SOFT_LINK || k == KIND_EXTERNAL_LINK) {
        compare_link_targets(s, name);
        return;
    }
    const char *relative = strcmp(name, "/") == 0 ? "." : name + 1;
    hid_t a = H5Oopen(s->file[0], relative, H5P_DEFAULT), b = H5Oopen(s->file[1], relative, H5P_DEFAULT);
    if (a < 0 || b < 0) {
        differ(s, "%s: cannot open it in %s", name, s->path[a < 0 ? 0 : 1]);
    } else {
        compare_attributes(s, name, a, b);
        if (k == KIND_DATASET) {
            compare_item(s, name, (item){a, 0}, (item){b, 0});
            s->datasets++;
        }
    }
    if (a >= 0) H5Oclose(a);
    if (b >= 0) H5Oclose(b);
}

static void compare_files(compare_state *s) {
    entry_list lists[2] = {{0}, {0}};
    for (int f = 0; f < 2; f++) {
        add_entry(&lists[f], "", KIND_GROUP); /* the root: its attributes */
        if (H5Lvisit(s->file[f], H5_INDEX_NAME, H5_ITER_INC, collect_link, &lists[f]) < 0)
            differ(s, "cannot list the objects of %s", s->path[f]);
        qsort(lists[f].entries, lists[f].count, sizeof *lists[f].entries, by_name);
    }
    size_t i = 0, j = 0;
    while (i < lists[0].count || j < lists[1].count) {
        const entry *x = i < lists[0].count ? &lists[0].entries[i] : NULL, *y = j < lists[1].count ? &lists[1].entries[j] : NULL;
        int order = !x ? 1 : !y ? -1 : strcmp(x->name, y->name);
        if (order < 0) {
            differ(s, "only in A: %s (%s)", x->name, kind_name(x->kind));
            i++;
        } else if (order > 0) {
            differ(s, "only in B: %s (%s)", y->name, kind_name(y->kind));
            j++;
        } else {
            /* in both files: an --ignore of it is used even when its kinds differ (a difference all the same) */
            if (x->kind != y->kind) {
                ignored(s, x->name);
                differ(s, "%s: a %s in A, a %s in B", x->name, kind_name(x->kind), kind_name(y->kind));
            } else {
                compare_object(s, x->name, x->kind);
            }
            i++;
            j++;
        }
    }
    free_entries(&lists[0]);
    free_entries(&lists[1]);
}

static int usage(const char *problem) {
    fprintf(stderr, "ckpt_compare: %s\nusage: ckpt_compare A.h5 B.h5 (--exact | --tol REL) [--ignore NAME]...\n",
            problem);
    return 2;
}

int main(int argc, char **argv) {
    compare_state s = {0};
    int modes = 0;
    size_t files = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--exact") == 0) {
            s.exact = 1;
            modes++;
        } else if (strcmp(argv[i], "--tol") == 0 && i + 1 < argc) {
            char *end;
            s.tolerance = strtod(argv[++i], &end);
            if (*end != '\0' || !(s.tolerance > 0) || !isfinite(s.tolerance)) return usage("--tol needs a positive number");
            modes++;
        } else if (strcmp(argv[i], "--ignore") == 0 && i + 1 < argc) {
            if (s.num_ignores == MAX_IGNORES) return usage("too many --ignore");
            s.ignore[s.num_ignores++] = argv[++i];
        } else if (argv[i][0] == '-') {
            return usage("unknown option or missing value");
        } else if (files < 2) {
            s.path[files++] = argv[i];
        } else {
            return usage("more than two files");
        }
    }
    if (files != 2) return usage("give two checkpoints");
    if (modes != 1) return usage("give exactly one of --exact and --tol REL");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* each failure is reported here, naming the object */
    for (int f = 0; f < 2; f++) {
        s.file[f] = H5Fopen(s.path[f], H5F_ACC_RDONLY, H5P_DEFAULT);
        if (s.file[f] < 0) {
            fprintf(stderr, "ckpt_compare: cannot open %s as an HDF5 file\n", s.path[f]);
            return 2;
        }
    }
    printf("comparing A=%s with B=%s (%s)\n", s.path[0], s.path[1], s.exact ? "bit for bit" : "with tolerance");
    compare_files(&s);
    H5Fclose(s.file[0]);
    H5Fclose(s.file[1]);
    for (size_t i = 0; i < s.num_ignores; i++)
        if (!s.ignore_used[i]) differ(&s, "--ignore %s: no such value in both files", s.ignore[i]);
    if (s.datasets == 0) differ(&s, "no dataset in either file");
    printf("%zu datasets (%zu float values), %zu attributes, %zu configuration keys compared: %s\n", s.datasets,
           s.float_values, s.attributes, s.config_keys, s.mismatches ? "DIFFERENT" : "equal");
    return s.mismatches ? 1 : 0;
}
