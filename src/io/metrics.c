/* src/metrics.c: the metrics file (see reel/metrics.h), an HDF5 file in SWMR mode.
 *
 * Every dataset exists from creation on, because a file in SWMR-write mode cannot gain new objects;
 * appending a row only extends datasets and writes into them. Each append is flushed so that a reader
 * (h5py with swmr=True, h5dump) sees whole rows while the run continues.
 */
#include "reel/metrics.h"

#include "h5util.h"
#include "reel/util.h"

#include <errno.h>
#include <math.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define METRICS_FORMAT "reel-metrics"
#define METRICS_FORMAT_VERSION 1u
/* Rows per chunk: 8 KiB per float64 chunk; a long run logs a few thousand rows. */
#define METRICS_CHUNK_ROWS 1024

#define MAX_COLUMNS 24

typedef struct table {
    const char *group; /* "/train" or "/eval" */
    reel_column columns[MAX_COLUMNS];
    size_t num_columns;
    hid_t datasets[MAX_COLUMNS];
    hsize_t rows;
} table;

struct reel_metrics {
    char *path;
    char objective[64]; /* the root attribute "objective": who declared the series */
    hid_t file;
    table train, eval;
};

/* ---------------------------------------------------------------------------------------------- */
/* Errors                                                                                          */

/* HDF5 prints its whole error stack to stderr by default; reel reports through reel_error instead, so
 * printing is switched off for the duration of each public call and the previous handler put back
 * (other parts of the program may rely on it). */
typedef struct quiet_errors {
    H5E_auto2_t func;
    void *data;
} quiet_errors;

static quiet_errors errors_off(void) {
    quiet_errors saved = {NULL, NULL};
    H5Eget_auto2(H5E_DEFAULT, &saved.func, &saved.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return saved;
}

static void errors_restore(quiet_errors saved) { H5Eset_auto2(H5E_DEFAULT, saved.func, saved.data); }

/* "<path>: <what> (HDF5: <innermost error>)". Call it right after the failing HDF5 call: every HDF5 API
 * call (H5Sclose included) starts by clearing the error stack. */
static int hdf5_fail(reel_error *err, const char *path, const char *fmt, ...) REEL_PRINTF(3, 4);
static int hdf5_fail(reel_error *err, const char *path, const char *fmt, ...) {
    char what[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(what, sizeof what, fmt, args);
    va_end(args);
    char reason[512];
    reel_h5_reason(reason, sizeof reason);
    return reel_fail(err, "%s: %s (HDF5: %s)", path, what, reason);
}

/* ---------------------------------------------------------------------------------------------- */
/* Layout                                                                                          */

static hid_t file_type(reel_column_type type) {
    switch (type) {
    case REEL_COLUMN_U64: return H5T_STD_U64LE;
    case REEL_COLUMN_F64: return H5T_IEEE_F64LE;
    case REEL_COLUMN_U8: return H5T_STD_U8LE;
    }
    return H5I_INVALID_HID;
}

static hid_t memory_type(reel_column_type type) {
    switch (type) {
    case REEL_COLUMN_U64: return H5T_NATIVE_UINT64;
    case REEL_COLUMN_F64: return H5T_NATIVE_DOUBLE;
    case REEL_COLUMN_U8: return H5T_NATIVE_UINT8;
    }
    return H5I_INVALID_HID;
}

static void init_tables(reel_metrics *m, const reel_metrics_layout *layout) {
    m->file = H5I_INVALID_HID;
    snprintf(m->objective, sizeof m->objective, "%s", layout->objective);
    m->train.group = "/train";
    m->train.num_columns = layout->num_train;
    memcpy(m->train.columns, layout->train, layout->num_train * sizeof *layout->train);
    m->eval.group = "/eval";
    m->eval.num_columns = layout->num_eval;
    memcpy(m->eval.columns, layout->eval, layout->num_eval * sizeof *layout->eval);
    for (size_t c = 0; c < MAX_COLUMNS; c++) {
        m->train.datasets[c] = H5I_INVALID_HID;
        m->eval.datasets[c] = H5I_INVALID_HID;
    }
}

static void close_all(reel_metrics *m) {
    table *tables[] = {&m->train, &m->eval};
    for (size_t t = 0; t < 2; t++)
        for (size_t c = 0; c < tables[t]->num_columns; c++)
            if (tables[t]->datasets[c] >= 0) {
                /* a failure (the flush of a full disk) is recorded, and the caller reports what failed first */
                reel_h5_close_object(tables[t]->datasets[c]);
                tables[t]->datasets[c] = H5I_INVALID_HID;
            }
    if (m->file >= 0) reel_h5_close_file(m->file);
    m->file = H5I_INVALID_HID;
}

static void free_metrics(reel_metrics *m) {
    if (!m) return;
    close_all(m);
    free(m->path);
    free(m);
}

/* Both creating and re-opening need the newest file format: SWMR requires it. */
static hid_t swmr_fapl(const char *path, reel_error *err) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0) {
        hdf5_fail(err, path, "cannot select the latest file format (needed for SWMR)");
        if (fapl >= 0) H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
    reel_h5_write_through(fapl); /* a full disk fails the append that met it, not the close */
    return fapl;
}

static int write_root_attributes(reel_metrics *m, reel_error *err) {
    int status = -1;
    hid_t space = H5I_INVALID_HID, str_type = H5I_INVALID_HID, attr = H5I_INVALID_HID;
    /* A variable-length UTF-8 string: h5py returns it as a str, so `f.attrs["format"] == "reel-metrics"`
     * works for users without a decode. */
    if ((space = H5Screate(H5S_SCALAR)) < 0 || (str_type = H5Tcopy(H5T_C_S1)) < 0 ||
        H5Tset_size(str_type, H5T_VARIABLE) < 0 || H5Tset_cset(str_type, H5T_CSET_UTF8) < 0) {
        hdf5_fail(err, m->path, "cannot build the type of the format attribute");
        goto done;
    }
    attr = H5Acreate2(m->file, "format", str_type, space, H5P_DEFAULT, H5P_DEFAULT);
    const char *format = METRICS_FORMAT;
    if (attr < 0 || H5Awrite(attr, str_type, &format) < 0) {
        hdf5_fail(err, m->path, "cannot write the root attribute 'format'");
        goto done;
    }
    if (reel_h5_close_object(attr) != 0) {
        attr = H5I_INVALID_HID;
        hdf5_fail(err, m->path, "cannot write the root attribute 'format'");
        goto done;
    }
    attr = H5Acreate2(m->file, "format_version", H5T_STD_U32LE, space, H5P_DEFAULT, H5P_DEFAULT);
    unsigned version = METRICS_FORMAT_VERSION;
    if (attr < 0 || H5Awrite(attr, H5T_NATIVE_UINT, &version) < 0) {
        hdf5_fail(err, m->path, "cannot write the root attribute 'format_version'");
        goto done;
    }
    if (reel_h5_close_object(attr) != 0) {
        attr = H5I_INVALID_HID;
        hdf5_fail(err, m->path, "cannot write the root attribute 'format_version'");
        goto done;
    }
    attr = H5Acreate2(m->file, "objective", str_type, space, H5P_DEFAULT, H5P_DEFAULT);
    const char *objective = m->objective;
    if (attr < 0 || H5Awrite(attr, str_type, &objective) < 0) {
        hdf5_fail(err, m->path, "cannot write the root attribute 'objective'");
        goto done;
    }
    status = 0;
done:
    if (attr >= 0 && reel_h5_close_object(attr) != 0 && status == 0)
        status = hdf5_fail(err, m->path, "cannot write the root attribute 'objective'");
    if (str_type >= 0) H5Tclose(str_type);
    if (space >= 0) H5Sclose(space);
    return status;
}

static int create_table(reel_metrics *m, table *t, reel_error *err) {
    int status = -1;
    hsize_t dims[1] = {0}, max_dims[1] = {H5S_UNLIMITED}, chunk[1] = {METRICS_CHUNK_ROWS};
    hid_t group = H5I_INVALID_HID, space = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    if ((group = H5Gcreate2(m->file, t->group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        hdf5_fail(err, m->path, "cannot create the group %s", t->group);
        goto done;
    }
    if ((space = H5Screate_simple(1, dims, max_dims)) < 0 || (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 ||
        H5Pset_chunk(dcpl, 1, chunk) < 0) {
        hdf5_fail(err, m->path, "cannot set up chunked, extendible datasets in %s", t->group);
        goto done;
    }
    for (size_t c = 0; c < t->num_columns; c++) {
        t->datasets[c] = H5Dcreate2(group, t->columns[c].name, file_type(t->columns[c].type), space, H5P_DEFAULT,
                                    dcpl, H5P_DEFAULT);
        if (t->datasets[c] < 0) {
            hdf5_fail(err, m->path, "cannot create the dataset %s/%s", t->group, t->columns[c].name);
            goto done;
        }
    }
    t->rows = 0;
    status = 0;
done:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    /* SWMR writing may not start while groups are open */
    if (group >= 0 && reel_h5_close_object(group) != 0 && status == 0)
        status = hdf5_fail(err, m->path, "cannot create the group %s", t->group);
    return status;
}

static int create_file(reel_metrics *m, reel_error *err) {
    hid_t fapl = swmr_fapl(m->path, err);
    if (fapl < 0) return -1;
    /* EXCL: a file that appeared since the existence check belongs to someone else. */
    m->file = H5Fcreate(m->path, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    int status = m->file < 0 ? hdf5_fail(err, m->path, "cannot create the metrics file") : 0;
    if (fapl >= 0) REEL_H5_CHECK(H5Pclose(fapl));
    if (status != 0) return -1;
    if (write_root_attributes(m, err) != 0) return -1;
    if (create_table(m, &m->train, err) != 0 || create_table(m, &m->eval, err) != 0) return -1;
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Re-opening                                                                                      */

/* Reads the root string attribute `name` into out ("" when it is missing or not a string). */
static int read_root_string(reel_metrics *m, const char *name, char *out, size_t size, reel_error *err) {
    out[0] = '\0';
    htri_t exists = H5Aexists(m->file, name);
    if (exists < 0) return hdf5_fail(err, m->path, "cannot look up the root attribute '%s'", name);
    if (!exists) return 0;
    int status = -1;
    hid_t attr = H5Aopen(m->file, name, H5P_DEFAULT), type = H5I_INVALID_HID, mem = H5I_INVALID_HID;
    if (attr < 0 || (type = H5Aget_type(attr)) < 0) {
        hdf5_fail(err, m->path, "cannot open the root attribute '%s'", name);
        goto done;
    }
    if (H5Tget_class(type) != H5T_STRING) {
        status = 0;
        goto done;
    }
    /* The memory type is a copy of the stored one: HDF5 does not convert between ASCII and UTF-8. */
    mem = H5Tcopy(type);
    if (H5Tis_variable_str(type) > 0) {
        char *value = NULL;
        if (mem < 0 || H5Aread(attr, mem, &value) < 0) {
            hdf5_fail(err, m->path, "cannot read the root attribute '%s'", name);
            goto done;
        }
        snprintf(out, size, "%s", value ? value : "");
        REEL_H5_CHECK(H5free_memory(value));
    } else {
        size_t len = H5Tget_size(type);
        char *value = reel_calloc(len + 1, 1);
        if (mem < 0 || H5Tset_size(mem, len + 1) < 0 || H5Tset_strpad(mem, H5T_STR_NULLTERM) < 0 ||
            H5Aread(attr, mem, value) < 0) {
            free(value);
            hdf5_fail(err, m->path, "cannot read the root attribute '%s'", name);
            goto done;
        }
        snprintf(out, size, "%s", value);
        free(value);
    }
    status = 0;
done:
    if (mem >= 0) H5Tclose(mem);
    if (type >= 0) H5Tclose(type);
    if (attr >= 0) H5Aclose(attr);
    return status;
}

static int check_format(reel_metrics *m, reel_error *err) {
    char format[64], shown[REEL_QUOTE_MAX]; /* the file's text as messages quote it, escaped */
    if (read_root_string(m, "format", format, sizeof format, err) != 0) return -1;
    if (strcmp(format, METRICS_FORMAT) != 0) {
        if (format[0])
            return reel_fail(err, "%s: not a reel metrics file (its root attribute format is '%s', expected '%s')",
                             m->path, reel_escape_string(shown, sizeof shown, format), METRICS_FORMAT);
        return reel_fail(err, "%s: not a reel metrics file (an HDF5 file without the root attribute format = '%s')",
                         m->path, METRICS_FORMAT);
    }
    unsigned version = 0;
    hid_t attr = H5I_INVALID_HID;
    if (H5Aexists(m->file, "format_version") <= 0 || (attr = H5Aopen(m->file, "format_version", H5P_DEFAULT)) < 0 ||
        H5Aread(attr, H5T_NATIVE_UINT, &version) < 0) {
        if (attr >= 0) H5Aclose(attr);
        H5Eclear2(H5E_DEFAULT);
        return reel_fail(err, "%s: damaged reel metrics file: the root attribute format_version is missing or unreadable",
                         m->path);
    }
    if (attr >= 0) REEL_H5_CHECK(H5Aclose(attr));
    if (version != METRICS_FORMAT_VERSION)
        return reel_fail(err, "%s: reel metrics format_version %u is not supported (this reel reads version %u)",
                         m->path, version, METRICS_FORMAT_VERSION);
    /* Files written before objectives declared their series hold classification series. */
    char objective[64];
    if (read_root_string(m, "objective", objective, sizeof objective, err) != 0) return -1;
    if (!objective[0]) snprintf(objective, sizeof objective, "classify");
    if (strcmp(objective, m->objective) != 0)
        return reel_fail(err, "%s: the file holds the series of objective '%s', this run trains objective '%s'",
                         m->path, reel_escape_string(shown, sizeof shown, objective), m->objective);
    return 0;
}

static int dataset_rows(reel_metrics *m, const table *t, size_t c, hsize_t *rows, reel_error *err) {
    hid_t space = H5Dget_space(t->datasets[c]);
    hsize_t dims[1] = {0};
    int ndims = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (ndims == 1 && H5Sget_simple_extent_dims(space, dims, NULL) < 0) ndims = -1;
    if (ndims < 0) {
        int status = hdf5_fail(err, m->path, "cannot read the size of %s/%s", t->group, t->columns[c].name);
        if (space >= 0) H5Sclose(space);
        return status;
    }
    if (space >= 0) REEL_H5_CHECK(H5Sclose(space));
    if (ndims != 1)
        return reel_fail(err, "%s: damaged reel metrics file: %s/%s has %d dimensions, expected 1", m->path, t->group,
                         t->columns[c].name, ndims);
    /* a damaged file can claim more rows than it stores: reading them would allocate what it claims */
    hsize_t stored = reel_h5_stored_elements(t->datasets[c]);
    if (dims[0] > stored)
        return reel_fail(err, "%s: damaged reel metrics file: %s/%s claims %llu rows, but the file stores at most %llu",
                         m->path, t->group, t->columns[c].name, (unsigned long long)dims[0], (unsigned long long)stored);
    *rows = dims[0];
    return 0;
}

static size_t column_bytes(reel_column_type type) { return type == REEL_COLUMN_U8 ? 1 : 8; }

/* The rows of one table that a resumed run keeps, read from the old file. */
typedef struct kept_rows {
    hsize_t rows;
    void *columns[MAX_COLUMNS];
} kept_rows;

static void free_kept(kept_rows *kept) {
    for (size_t c = 0; c < MAX_COLUMNS; c++) free(kept->columns[c]);
}

/* Reads the rows with step <= keep_up_to_step. Rows are in step order (steps only grow within a run, and
 * a resumed run rebuilds the file before it appends), so they are a prefix. A run killed in the middle
 * of an append leaves some columns one row longer: the complete rows are those present in every column.
 * A series the file lacks that was added to reel after files were written (reel_column.added_later,
 * e.g. macro_f1) is added, NaN (or 0 for counts) in the older rows; any other missing series is damage. */
static int read_kept_rows(reel_metrics *m, hid_t file, const table *t, uint64_t keep_up_to_step, kept_rows *kept,
                          reel_error *err) {
    hid_t datasets[MAX_COLUMNS];
    hsize_t rows = 0;
    int status = 0;
    size_t opened = 0;
    for (size_t c = 0; c < t->num_columns && status == 0; c++, opened++) {
        char name[64];
        snprintf(name, sizeof name, "%s/%s", t->group, t->columns[c].name);
        if (t->columns[c].added_later && H5Lexists(file, name, H5P_DEFAULT) <= 0) {
            H5Eclear2(H5E_DEFAULT);
            datasets[c] = H5I_INVALID_HID; /* a series newer than the file: filled in below */
            continue;
        }
        datasets[c] = H5Dopen2(file, name, H5P_DEFAULT);
        if (datasets[c] < 0) {
            H5Eclear2(H5E_DEFAULT);
            status = reel_fail(err, "%s: damaged reel metrics file: the dataset %s is missing", m->path, name);
            break;
        }
        table view = *t;
        view.datasets[c] = datasets[c];
        hsize_t n = 0;
        if (dataset_rows(m, &view, c, &n, err) != 0) status = -1;
        else if (c == 0 || n < rows) rows = n;
    }
    if (status == 0) {
        hsize_t start[1] = {0}, count[1] = {rows};
        for (size_t c = 0; c < t->num_columns && status == 0; c++) {
            kept->columns[c] = reel_malloc((size_t)(rows ? rows : 1) * column_bytes(t->columns[c].type));
            if (rows == 0) continue;
            if (datasets[c] < 0) {
                for (hsize_t r = 0; r < rows; r++) {
                    if (t->columns[c].type == REEL_COLUMN_F64) ((double *)kept->columns[c])[r] = NAN;
                    else if (t->columns[c].type == REEL_COLUMN_U64) ((uint64_t *)kept->columns[c])[r] = 0;
                    else ((uint8_t *)kept->columns[c])[r] = 0;
                }
                continue;
            }
            hid_t file_space = H5Dget_space(datasets[c]), mem_space = H5Screate_simple(1, count, NULL);
            if (file_space < 0 || mem_space < 0 ||
                H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
                H5Dread(datasets[c], memory_type(t->columns[c].type), mem_space, file_space, H5P_DEFAULT,
                        kept->columns[c]) < 0)
                status = hdf5_fail(err, m->path, "cannot read %s/%s", t->group, t->columns[c].name);
            if (mem_space >= 0) H5Sclose(mem_space);
            if (file_space >= 0) H5Sclose(file_space);
        }
    }
    for (size_t c = 0; c < opened; c++)
        if (datasets[c] >= 0) H5Dclose(datasets[c]);
    if (status != 0) return -1;
    const uint64_t *steps = kept->columns[0]; /* column 0 is "step" in both tables */
    hsize_t keep = 0;
    while (keep < rows && steps[keep] <= keep_up_to_step) keep++;
    kept->rows = keep;
    return 0;
}

static int write_kept_rows(reel_metrics *m, table *t, const kept_rows *kept, reel_error *err) {
    if (kept->rows == 0) return 0;
    hsize_t dims[1] = {kept->rows};
    for (size_t c = 0; c < t->num_columns; c++)
        if (H5Dset_extent(t->datasets[c], dims) < 0 ||
            H5Dwrite(t->datasets[c], memory_type(t->columns[c].type), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                     kept->columns[c]) < 0)
            return hdf5_fail(err, m->path, "cannot copy %s/%s", t->group, t->columns[c].name);
    t->rows = kept->rows;
    return 0;
}

/* A resumed run rebuilds the metrics file instead of opening it for writing: a job that was killed
 * leaves its file marked as open by a writer, which HDF5 then refuses to open for writing again (and its
 * superblock's end-of-file is stale). HDF5's SWMR reader accepts such a file, so the old rows up to the
 * resume step are read that way, written into a new file beside it, and the new file is renamed over the
 * old one. A file that cannot be read at all is moved aside (never deleted) and a new one started. */
static int reopen_file(reel_metrics *m, uint64_t keep_up_to_step, reel_error *err) {
    htri_t is_hdf5 = H5Fis_hdf5(m->path);
    if (is_hdf5 == 0)
        return reel_fail(err, "%s: not a reel metrics file (not an HDF5 file); remove it or choose another run directory",
                         m->path);
    kept_rows train = {0}, eval = {0};
    int readable = 0, status = -1;
    hid_t old = is_hdf5 > 0 ? H5Fopen(m->path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT) : H5I_INVALID_HID;
    if (old >= 0) {
        m->file = old; /* check_format reads m->file */
        if (check_format(m, err) != 0) {
            if (old >= 0) REEL_H5_CHECK(reel_h5_close_file(old));
            m->file = H5I_INVALID_HID;
            return -1;
        }
        readable = read_kept_rows(m, old, &m->train, keep_up_to_step, &train, err) == 0 &&
                   read_kept_rows(m, old, &m->eval, keep_up_to_step, &eval, err) == 0;
        if (old >= 0) REEL_H5_CHECK(reel_h5_close_file(old));
        m->file = H5I_INVALID_HID;
    }
    if (!readable) {
        char detail[512];
        reel_h5_reason(detail, sizeof detail);
        char aside[4200];
        snprintf(aside, sizeof aside, "%s.unreadable", m->path);
        if (rename(m->path, aside) != 0) {
            free_kept(&train);
            free_kept(&eval);
            return reel_fail(err, "%s: the metrics file cannot be read, and cannot be moved aside: %s", m->path,
                             strerror(errno));
        }
        reel_warn("%s cannot be read (%s); it was moved to %s and a new metrics file is started", m->path,
                  err && err->message[0] ? err->message : detail, aside);
        free_kept(&train); /* a table read before the other failed */
        free_kept(&eval);
        memset(&train, 0, sizeof train);
        memset(&eval, 0, sizeof eval);
    }

    /* Build the new file under a temporary name, then rename it over the old one; the open handle stays
     * valid across the rename. */
    char *final_path = m->path;
    size_t length = strlen(final_path) + 8;
    char *temporary = reel_malloc(length);
    snprintf(temporary, length, "%s.tmp", final_path);
    unlink(temporary);
    m->path = temporary;
    if (create_file(m, err) == 0 && write_kept_rows(m, &m->train, &train, err) == 0 &&
        write_kept_rows(m, &m->eval, &eval, err) == 0) {
        if (H5Fflush(m->file, H5F_SCOPE_GLOBAL) < 0)
            hdf5_fail(err, final_path, "cannot flush the rebuilt metrics file");
        else if (rename(temporary, final_path) != 0)
            reel_fail(err, "%s: cannot replace the metrics file: %s", final_path, strerror(errno));
        else
            status = 0;
    }
    if (status != 0) {
        close_all(m);
        unlink(temporary);
    }
    m->path = final_path;
    free(temporary);
    free_kept(&train);
    free_kept(&eval);
    return status;
}

/* ---------------------------------------------------------------------------------------------- */
/* Public API                                                                                      */

static int open_metrics(reel_metrics *m, uint64_t keep_up_to_step, reel_error *err) {
    struct stat st;
    if (stat(m->path, &st) == 0) {
        if (reopen_file(m, keep_up_to_step, err) != 0) return -1;
    } else if (errno == ENOENT) {
        if (create_file(m, err) != 0) return -1;
    } else {
        return reel_fail(err, "%s: cannot access the metrics file: %s", m->path, strerror(errno));
    }
    if (H5Fstart_swmr_write(m->file) < 0) return hdf5_fail(err, m->path, "cannot start SWMR writing");
    return 0;
}

int reel_metrics_open(reel_metrics **out, const char *path, const reel_metrics_layout *layout,
                      uint64_t keep_up_to_step, reel_error *err) {
    *out = NULL;
    const reel_column *const tables[2] = {layout->train, layout->eval};
    const size_t counts[2] = {layout->num_train, layout->num_eval};
    for (size_t t = 0; t < 2; t++)
        REEL_CHECK(counts[t] >= 1 && counts[t] <= MAX_COLUMNS && !strcmp(tables[t][0].name, "step") &&
                       tables[t][0].type == REEL_COLUMN_U64,
                   NULL, "a metrics table needs 1 to %d columns, the first one \"step\"", MAX_COLUMNS);
    reel_h5_track_files(); /* a fatal error while the file is open still closes it (see h5util.h) */
    quiet_errors saved = errors_off();
    reel_metrics *m = reel_calloc(1, sizeof *m);
    init_tables(m, layout);
    size_t len = strlen(path);
    m->path = reel_malloc(len + 1);
    memcpy(m->path, path, len + 1);
    int status = open_metrics(m, keep_up_to_step, err);
    if (status == 0)
        *out = m;
    else
        free_metrics(m);
    errors_restore(saved);
    return status;
}

static int append_row(reel_metrics *m, table *t, const reel_value *row, reel_error *err) {
    hsize_t at[1] = {t->rows}, one[1] = {1}, new_size[1] = {t->rows + 1};
    hid_t mem_space = H5Screate_simple(1, one, NULL);
    if (mem_space < 0) return hdf5_fail(err, m->path, "cannot create a dataspace for %s", t->group);
    int status = 0;
    /* If this fails part-way, t->rows stays put: the next append writes the same row index again, so
     * the columns cannot drift apart. */
    for (size_t c = 0; c < t->num_columns && status == 0; c++) {
        const reel_column *col = &t->columns[c];
        hid_t ds = t->datasets[c], file_space = H5I_INVALID_HID;
        uint8_t small = (uint8_t)row[c].u;
        const void *value = col->type == REEL_COLUMN_U8 ? (const void *)&small
                            : col->type == REEL_COLUMN_U64 ? (const void *)&row[c].u : (const void *)&row[c].f;
        if (H5Dset_extent(ds, new_size) < 0) {
            status = hdf5_fail(err, m->path, "cannot extend %s/%s to %llu rows", t->group, col->name,
                               (unsigned long long)new_size[0]);
        } else if ((file_space = H5Dget_space(ds)) < 0 ||
                   H5Sselect_hyperslab(file_space, H5S_SELECT_SET, at, NULL, one, NULL) < 0 ||
                   H5Dwrite(ds, memory_type(col->type), mem_space, file_space, H5P_DEFAULT, value) < 0) {
            status = hdf5_fail(err, m->path, "cannot write row %llu of %s/%s", (unsigned long long)at[0], t->group,
                               col->name);
        }
        if (file_space >= 0) H5Sclose(file_space);
    }
    if (mem_space >= 0) REEL_H5_CHECK(H5Sclose(mem_space));
    for (size_t c = 0; c < t->num_columns && status == 0; c++)
        if (H5Dflush(t->datasets[c]) < 0)
            status = hdf5_fail(err, m->path, "cannot flush %s/%s", t->group, t->columns[c].name);
    if (status == 0) t->rows++;
    return status;
}

int reel_metrics_append(reel_metrics *metrics, reel_metrics_table which, const reel_value *row, reel_error *err) {
    quiet_errors saved = errors_off();
    int status = append_row(metrics, which == REEL_METRICS_TRAIN ? &metrics->train : &metrics->eval, row, err);
    errors_restore(saved);
    return status;
}

void reel_metrics_close(reel_metrics *metrics) {
    if (!metrics) return;
    quiet_errors saved = errors_off();
    table *tables[] = {&metrics->train, &metrics->eval};
    int failed = 0;
    char detail[512] = "";
    for (size_t t = 0; t < 2; t++)
        for (size_t c = 0; c < tables[t]->num_columns; c++) {
            if (tables[t]->datasets[c] >= 0 && reel_h5_close_object(tables[t]->datasets[c]) != 0 && !failed) {
                failed = 1;
                reel_h5_reason(detail, sizeof detail);
            }
            tables[t]->datasets[c] = H5I_INVALID_HID;
        }
    if (metrics->file >= 0 && reel_h5_close_file(metrics->file) < 0 && !failed) {
        failed = 1;
        reel_h5_reason(detail, sizeof detail);
    }
    metrics->file = H5I_INVALID_HID;
    if (failed)
        reel_warn("%s: closing the metrics file failed; its last rows may be missing (HDF5: %s)", metrics->path,
                  detail);
    free_metrics(metrics);
    errors_restore(saved);
}
