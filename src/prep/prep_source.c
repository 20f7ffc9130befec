/* Document sources for prep: the IMDb archive (libarchive, streamed), the extracted IMDb directory, TSV
 * and plain-text files. Each yields documents one at a time into a caller-owned buffer, so memory does
 * not grow with the corpus. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "prep_internal.h"
#include "reel/util.h"

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *copy = reel_malloc(n);
    memcpy(copy, s, n);
    return copy;
}

static void free_labels(prep_source *src) {
    for (size_t i = 0; i < src->num_labels; i++) free(src->label_names[i]);
    free(src->label_names);
    src->label_names = NULL;
    src->num_labels = 0;
}

static void set_imdb_labels(prep_source *src) {
    src->label_names = reel_malloc(2 * sizeof *src->label_names);
    src->label_names[0] = dup_string("neg");
    src->label_names[1] = dup_string("pos");
    src->num_labels = 2;
}

int prep_parse_imdb_name(const char *name, uint64_t *id) {
    const char *p = name;
    uint64_t value = 0;
    size_t digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        if (value > (UINT64_MAX - 9) / 10) return 0;
        value = value * 10 + (uint64_t)(*p - '0');
    }
    if (digits == 0 || *p++ != '_') return 0;
    digits = 0;
    for (; *p >= '0' && *p <= '9'; p++) digits++;
    if (digits == 0 || strcmp(p, ".txt") != 0) return 0;
    *id = value;
    return 1;
}

/* The five directories of the IMDb layout, relative to aclImdb/. */
static const struct {
    const char *dir;
    int split;
    int32_t label;
} imdb_dirs[] = {
    {"train/neg", PREP_IN_TRAIN, 0}, {"train/pos", PREP_IN_TRAIN, 1}, {"train/unsup", PREP_IN_UNSUP, -1},
    {"test/neg", PREP_IN_TEST, 0},   {"test/pos", PREP_IN_TEST, 1},
};
enum { IMDB_DIRS = sizeof imdb_dirs / sizeof imdb_dirs[0] };

/* Maps an archive member path to its directory entry and review id; -1 when it is not a review. */
static int classify_member(const char *path, uint64_t *id) {
    if (strncmp(path, "./", 2) == 0) path += 2;
    if (strncmp(path, "aclImdb/", 8) == 0) path += 8;
    for (int d = 0; d < IMDB_DIRS; d++) {
        size_t n = strlen(imdb_dirs[d].dir);
        if (strncmp(path, imdb_dirs[d].dir, n) == 0 && path[n] == '/' && !strchr(path + n + 1, '/'))
            return prep_parse_imdb_name(path + n + 1, id) ? d : -1;
    }
    return -1;
}

static int check_doc_size(const char *path, const char *member, uint64_t size, reel_error *err) {
    if (size <= PREP_MAX_DOC_BYTES) return 0;
    return reel_fail(err, "%s%s%s: document of %" PRIu64 " bytes exceeds the %zu-byte limit", path,
                     member ? ": member " : "", member ? member : "", size, PREP_MAX_DOC_BYTES);
}

/* ---- IMDb archive ---- */

typedef struct {
    prep_source base;
    struct archive *ar;
    char *path;
    uint64_t members;
} archive_source;

static int archive_next(prep_source *s, prep_doc *doc, reel_error *err) {
    archive_source *a = (archive_source *)s;
    for (;;) {
        struct archive_entry *entry;
        int r = archive_read_next_header(a->ar, &entry);
        if (r == ARCHIVE_EOF) return 0;
        if (r < ARCHIVE_WARN)
            return reel_fail(err, "%s: cannot read the archive after %" PRIu64 " members: %s", a->path, a->members,
                             archive_error_string(a->ar));
        a->members++;
        if (archive_entry_filetype(entry) != AE_IFREG) continue;
        const char *name = archive_entry_pathname(entry);
        uint64_t id = 0;
        int d = name ? classify_member(name, &id) : -1;
        if (d < 0) {
            s->skipped++;
            continue;
        }
        int64_t size = archive_entry_size_is_set(entry) ? archive_entry_size(entry) : 0;
        if (size < 0) size = 0;
        if (check_doc_size(a->path, name, (uint64_t)size, err) != 0) return -1;
        reel_buf *text = &doc->text;
        text->length = 0;
        reel_buf_reserve(text, (size_t)size + 1);
        for (;;) {
            if (text->capacity - text->length < 2) reel_buf_reserve(text, text->capacity * 2);
            la_ssize_t got = archive_read_data(a->ar, text->data + text->length, text->capacity - text->length - 1);
            if (got == 0) break;
            if (got < 0)
                return reel_fail(err, "%s: member %s: cannot read its data: %s", a->path, name,
                                 archive_error_string(a->ar));
            text->length += (size_t)got;
            if (check_doc_size(a->path, name, text->length, err) != 0) return -1;
        }
        text->data[text->length] = '\0';
        doc->split = imdb_dirs[d].split;
        doc->label = imdb_dirs[d].label;
        doc->key = id;
        s->has_split[doc->split] = 1;
        return 1;
    }
}

static void archive_destroy(prep_source *s) {
    archive_source *a = (archive_source *)s;
    if (a->ar) archive_read_free(a->ar);
    free_labels(s);
    free(a->path);
    free(a);
}

int prep_open_imdb_archive(prep_source **out, const char *path, reel_error *err) {
    *out = NULL;
    archive_source *a = reel_calloc(1, sizeof *a);
    a->base.next = archive_next;
    a->base.destroy = archive_destroy;
    a->path = dup_string(path);
    a->ar = archive_read_new();
    REEL_CHECK(a->ar != NULL, NULL, "out of memory creating a libarchive reader");
    archive_read_support_filter_all(a->ar);
    archive_read_support_format_tar(a->ar);
    /* Large reads: the archive is streamed once, and bigger blocks mean fewer calls into zlib. */
    if (archive_read_open_filename(a->ar, path, (size_t)1 << 20) != ARCHIVE_OK) {
        reel_fail(err, "%s: cannot open as a tar archive: %s", path, archive_error_string(a->ar));
        archive_destroy(&a->base);
        return -1;
    }
    set_imdb_labels(&a->base);
    *out = &a->base;
    return 0;
}

/* ---- extracted IMDb directory ---- */

typedef struct {
    prep_source base;
    char *root;
    int dir_index; /* into imdb_dirs; IMDB_DIRS at the end */
    DIR *dir;
    int present[IMDB_DIRS];
    reel_buf path;
} dir_source;

static int read_whole_file(const char *path, reel_buf *text, reel_error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return reel_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return reel_fail(err, "%s: not a regular file", path);
    }
    if (check_doc_size(path, NULL, (uint64_t)st.st_size, err) != 0) {
        close(fd);
        return -1;
    }
    text->length = 0;
    reel_buf_reserve(text, (size_t)st.st_size + 1);
    for (;;) {
        if (text->capacity - text->length < 2) reel_buf_reserve(text, text->capacity * 2);
        ssize_t got = read(fd, text->data + text->length, text->capacity - text->length - 1);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int e = errno;
            close(fd);
            return reel_fail(err, "%s: read failed at byte offset %zu: %s", path, text->length, strerror(e));
        }
        if (got == 0) break;
        text->length += (size_t)got;
        if (check_doc_size(path, NULL, text->length, err) != 0) {
            close(fd);
            return -1;
        }
    }
    close(fd);
    text->data[text->length] = '\0';
    return 0;
}

static int dir_next(prep_source *s, prep_doc *doc, reel_error *err) {
    dir_source *ds = (dir_source *)s;
    while (ds->dir_index < IMDB_DIRS) {
        if (!ds->dir) {
            if (!ds->present[ds->dir_index]) {
                ds->dir_index++;
                continue;
            }
            ds->path.length = 0;
            reel_buf_printf(&ds->path, "%s/%s", ds->root, imdb_dirs[ds->dir_index].dir);
            ds->dir = opendir(ds->path.data);
            if (!ds->dir) return reel_fail(err, "%s: cannot open directory: %s", ds->path.data, strerror(errno));
        }
        errno = 0;
        struct dirent *de = readdir(ds->dir);
        if (!de) {
            if (errno != 0)
                return reel_fail(err, "%s/%s: cannot list directory: %s", ds->root, imdb_dirs[ds->dir_index].dir,
                                 strerror(errno));
            closedir(ds->dir);
            ds->dir = NULL;
            ds->dir_index++;
            continue;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        uint64_t id;
        if (!prep_parse_imdb_name(de->d_name, &id)) {
            s->skipped++;
            continue;
        }
        ds->path.length = 0;
        reel_buf_printf(&ds->path, "%s/%s/%s", ds->root, imdb_dirs[ds->dir_index].dir, de->d_name);
        if (read_whole_file(ds->path.data, &doc->text, err) != 0) return -1;
        doc->split = imdb_dirs[ds->dir_index].split;
        doc->label = imdb_dirs[ds->dir_index].label;
        doc->key = id;
        s->has_split[doc->split] = 1;
        return 1;
    }
    return 0;
}

static void dir_destroy(prep_source *s) {
    dir_source *ds = (dir_source *)s;
    if (ds->dir) closedir(ds->dir);
    reel_buf_free(&ds->path);
    free_labels(s);
    free(ds->root);
    free(ds);
}

static int is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int prep_open_imdb_dir(prep_source **out, const char *root, reel_error *err) {
    *out = NULL;
    dir_source *ds = reel_calloc(1, sizeof *ds);
    ds->base.next = dir_next;
    ds->base.destroy = dir_destroy;
    ds->root = dup_string(root);
    for (int d = 0; d < IMDB_DIRS; d++) {
        ds->path.length = 0;
        reel_buf_printf(&ds->path, "%s/%s", root, imdb_dirs[d].dir);
        ds->present[d] = is_directory(ds->path.data);
        if (!ds->present[d] && imdb_dirs[d].split == PREP_IN_TRAIN && imdb_dirs[d].label >= 0) {
            reel_fail(err,
                      "%s: %s/ is missing; expected the extracted IMDb layout: train/pos/ and train/neg/ (plus "
                      "optional train/unsup/, test/pos/, test/neg/) holding <id>_<rating>.txt files",
                      root, imdb_dirs[d].dir);
            dir_destroy(&ds->base);
            return -1;
        }
    }
    set_imdb_labels(&ds->base);
    *out = &ds->base;
    return 0;
}

/* ---- TSV and plain text ---- */

typedef struct {
    char *path;
    int split;
    FILE *fp;
    uint64_t line_no; /* of the last line read */
    uint64_t docs;
    size_t num_fields;  /* tsv: fields in the header */
    long text_field;    /* tsv */
    long label_field;   /* tsv: -1 when labels are not read from this file */
} line_file;

typedef struct {
    prep_source base;
    int is_tsv;
    line_file files[PREP_IN_COUNT];
    size_t num_files, current;
    char *line;
    size_t line_capacity;
} lines_source;

/* Reads the next line without its LF (and a CR before it); returns its length, or -1 at the end. */
static int64_t read_line(lines_source *ls, line_file *f, reel_error *err, int *failed) {
    errno = 0;
    ssize_t n = getline(&ls->line, &ls->line_capacity, f->fp);
    if (n < 0) {
        REEL_CHECK(errno != ENOMEM, NULL, "%s: out of memory reading line %" PRIu64, f->path, f->line_no + 1);
        if (ferror(f->fp)) {
            *failed = 1;
            reel_fail(err, "%s: read error after line %" PRIu64 ": %s", f->path, f->line_no, strerror(errno));
        }
        return -1;
    }
    f->line_no++;
    if (n > 0 && ls->line[n - 1] == '\n') n--;
    if (n > 0 && ls->line[n - 1] == '\r') n--;
    ls->line[n] = '\0';
    if ((size_t)n > PREP_MAX_DOC_BYTES) {
        *failed = 1;
        reel_fail(err, "%s: line %" PRIu64 ": %zd bytes exceeds the %zu-byte document limit", f->path, f->line_no,
                  n, PREP_MAX_DOC_BYTES);
    }
    return n;
}

static size_t count_fields(const char *line, size_t n) {
    size_t fields = 1;
    for (const char *p = line; (p = memchr(p, '\t', (size_t)(line + n - p))) != NULL; p++) fields++;
    return fields;
}

/* Start and length of field k of a line known to have enough fields. */
static const char *field_at(const char *line, size_t n, size_t k, size_t *len) {
    const char *start = line, *end = line + n;
    for (size_t i = 0; i < k; i++) start = (const char *)memchr(start, '\t', (size_t)(end - start)) + 1;
    const char *tab = memchr(start, '\t', (size_t)(end - start));
    *len = (size_t)((tab ? tab : end) - start);
    return start;
}

static long find_column(lines_source *ls, size_t n, const char *name) {
    size_t fields = count_fields(ls->line, n), len;
    for (size_t k = 0; k < fields; k++) {
        const char *f = field_at(ls->line, n, k, &len);
        if (len == strlen(name) && memcmp(f, name, len) == 0) return (long)k;
    }
    return -1;
}

static int label_index(lines_source *ls, line_file *f, const char *label, size_t len, int32_t *out,
                       reel_error *err) {
    enum { MAX_CLASSES = 1000 };
    prep_source *s = &ls->base;
    for (size_t i = 0; i < s->num_labels; i++)
        if (strlen(s->label_names[i]) == len && memcmp(s->label_names[i], label, len) == 0) {
            *out = (int32_t)i;
            return 0;
        }
    char shown[REEL_QUOTE_MAX]; /* the label as messages quote it: escaped, at most 80 bytes of it */
    reel_escape_bytes(shown, sizeof shown, label, len > 80 ? 80 : len);
    if (len == 0)
        return reel_fail(err, "%s: line %" PRIu64 ": empty label, expected a class name", f->path, f->line_no);
    if (f->split != PREP_IN_TRAIN)
        return reel_fail(err, "%s: line %" PRIu64 ": label '%s' does not occur in the training file %s", f->path,
                         f->line_no, shown, ls->files[0].path);
    if (s->num_labels >= MAX_CLASSES)
        return reel_fail(err,
                         "%s: line %" PRIu64 ": label '%s' would be class number %d; more than %d distinct labels "
                         "suggests the wrong --label-column",
                         f->path, f->line_no, shown, MAX_CLASSES + 1, MAX_CLASSES);
    s->label_names = reel_realloc(s->label_names, (s->num_labels + 1) * sizeof *s->label_names);
    char *name = reel_malloc(len + 1);
    memcpy(name, label, len);
    name[len] = '\0';
    s->label_names[s->num_labels] = name;
    *out = (int32_t)s->num_labels++;
    return 0;
}

static int lines_next(prep_source *s, prep_doc *doc, reel_error *err) {
    lines_source *ls = (lines_source *)s;
    while (ls->current < ls->num_files) {
        line_file *f = &ls->files[ls->current];
        int failed = 0;
        int64_t n = read_line(ls, f, err, &failed);
        if (failed) return -1;
        if (n < 0) {
            ls->current++;
            continue;
        }
        if (n == 0) {
            s->skipped++;
            continue;
        }
        const char *text = ls->line;
        size_t text_len = (size_t)n;
        doc->label = -1;
        if (ls->is_tsv) {
            size_t fields = count_fields(ls->line, (size_t)n);
            if (fields != f->num_fields)
                return reel_fail(err,
                                 "%s: line %" PRIu64 ": expected %zu tab-separated fields as in the header, found %zu",
                                 f->path, f->line_no, f->num_fields, fields);
            text = field_at(ls->line, (size_t)n, (size_t)f->text_field, &text_len);
            if (f->label_field >= 0) {
                size_t label_len;
                const char *label = field_at(ls->line, (size_t)n, (size_t)f->label_field, &label_len);
                if (label_index(ls, f, label, label_len, &doc->label, err) != 0) return -1;
            }
        }
        doc->text.length = 0;
        reel_buf_append(&doc->text, text, text_len);
        doc->split = f->split;
        doc->key = f->docs++;
        return 1;
    }
    return 0;
}

static void lines_destroy(prep_source *s) {
    lines_source *ls = (lines_source *)s;
    for (size_t i = 0; i < ls->num_files; i++) {
        if (ls->files[i].fp) fclose(ls->files[i].fp);
        free(ls->files[i].path);
    }
    free(ls->line);
    free_labels(s);
    free(ls);
}

/* Opens every file up front, so a missing test file is reported before any work is done. */
static int add_file(lines_source *ls, const char *path, int split, const char *role, reel_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) return reel_fail(err, "%s: cannot open the %s file: %s", path, role, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return reel_fail(err, "%s: the %s file is a directory, expected a %s file", path, role,
                         ls->is_tsv ? "TSV" : "text");
    line_file *f = &ls->files[ls->num_files];
    f->fp = fopen(path, "rb");
    if (!f->fp) return reel_fail(err, "%s: cannot open the %s file: %s", path, role, strerror(errno));
    ls->num_files++;
    f->path = dup_string(path);
    f->split = split;
    f->label_field = -1;
    ls->base.has_split[split] = 1;
    return 0;
}

static int read_tsv_header(lines_source *ls, line_file *f, const char *text_column, const char *label_column,
                           reel_error *err) {
    int failed = 0;
    int64_t n = read_line(ls, f, err, &failed);
    if (failed) return -1;
    if (n < 0) return reel_fail(err, "%s: line 1: the file is empty, expected a header row", f->path);
    f->num_fields = count_fields(ls->line, (size_t)n);
    f->text_field = find_column(ls, (size_t)n, text_column);
    char header[REEL_QUOTE_MAX]; /* the header as messages quote it: escaped, cut short when long */
    if (f->text_field < 0)
        return reel_fail(err, "%s: line 1: no column named '%s' in the header '%s' (set --text-column)", f->path,
                         text_column, reel_escape_bytes(header, sizeof header, ls->line, (size_t)n));
    if (label_column) {
        f->label_field = find_column(ls, (size_t)n, label_column);
        if (f->label_field < 0)
            return reel_fail(err, "%s: line 1: no column named '%s' in the header '%s' (set --label-column)", f->path,
                             label_column, reel_escape_bytes(header, sizeof header, ls->line, (size_t)n));
    }
    return 0;
}

static lines_source *new_lines_source(int is_tsv) {
    lines_source *ls = reel_calloc(1, sizeof *ls);
    ls->base.next = lines_next;
    ls->base.destroy = lines_destroy;
    ls->is_tsv = is_tsv;
    return ls;
}

int prep_open_tsv(prep_source **out, const char *train_path, const char *test_path, const char *unsup_path,
                  const char *text_column, const char *label_column, reel_error *err) {
    *out = NULL;
    lines_source *ls = new_lines_source(1);
    const char *paths[PREP_IN_COUNT] = {train_path, test_path, unsup_path};
    const char *roles[PREP_IN_COUNT] = {"training", "test", "unsup"};
    for (int split = 0; split < PREP_IN_COUNT; split++) {
        if (!paths[split]) continue;
        if (add_file(ls, paths[split], split, roles[split], err) != 0 ||
            read_tsv_header(ls, &ls->files[ls->num_files - 1], text_column,
                            split == PREP_IN_UNSUP ? NULL : label_column, err) != 0) {
            lines_destroy(&ls->base);
            return -1;
        }
    }
    *out = &ls->base;
    return 0;
}

int prep_open_text(prep_source **out, const char *train_path, const char *test_path, reel_error *err) {
    *out = NULL;
    lines_source *ls = new_lines_source(0);
    if (add_file(ls, train_path, PREP_IN_TRAIN, "training", err) != 0 ||
        (test_path && add_file(ls, test_path, PREP_IN_TEST, "test", err) != 0)) {
        lines_destroy(&ls->base);
        return -1;
    }
    *out = &ls->base;
    return 0;
}
