#include "h5util.h"

#include "reel/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void reel_h5_quiet(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    reel_h5_track_files();
}

/* When a close's final flush fails (a full disk, a quota, an I/O error), HDF5 1.10 frees the object's
 * internals but leaves its ID registered (the library's bug, HDFGroup/hdf5 issue 2257, fixed in later
 * releases), and no API call removes that ID without closing it again. Whatever closes it later, a second
 * close, H5close or the teardown HDF5 registers with atexit (run by exit()), reads freed memory: the
 * process died of SIGSEGV after printing a correct error. So failed closes are recorded here and the
 * process then ends with _exit, skipping HDF5's teardown. A file ID that failed to close is merely
 * skipped; a dataset, group or attribute that failed to close makes every later enumeration of open
 * objects unsafe (it reads each object's file), so after one the exit cleanup touches HDF5 no more. */
#define MAX_UNCLOSABLE 64
static hid_t unclosable[MAX_UNCLOSABLE];
static size_t num_unclosable;
static int objects_broken; /* an object failed to close, or an HDF5 call failed fatally */

static int is_unclosable(hid_t id) {
    for (size_t i = 0; i < num_unclosable && i < MAX_UNCLOSABLE; i++)
        if (unclosable[i] == id) return 1;
    return 0;
}

int reel_h5_close_object(hid_t object) {
    herr_t status;
    switch (H5Iget_type(object)) {
    case H5I_DATASET: status = H5Dclose(object); break;
    case H5I_GROUP: status = H5Gclose(object); break;
    case H5I_ATTR: status = H5Aclose(object); break;
    case H5I_DATATYPE: status = H5Tclose(object); break;
    default: status = H5Oclose(object); break;
    }
    if (status < 0) objects_broken = 1;
    return status < 0 ? -1 : 0;
}

/* A dataset's close writes what its chunk cache or sieve buffer still holds; when that write fails the
 * dataset's ID dangles like a file's. Without them every H5Dwrite goes to the file at once (the writers
 * write each chunk whole, or one metrics row at a time that is flushed anyway, so nothing is lost in
 * speed), a write error comes back from that H5Dwrite, and only a file's close (its metadata) can still
 * fail, which reel_h5_close_file handles precisely. */
void reel_h5_write_through(hid_t file_access) {
    REEL_H5_CHECK(H5Pset_cache(file_access, 0, 0, 0, 0.0));
    REEL_H5_CHECK(H5Pset_sieve_buf_size(file_access, 0));
}

/* The objects still open in file; stops at the first that fails to close, its reason on the stack. */
static int close_objects_in(hid_t file) {
    unsigned types = H5F_OBJ_DATASET | H5F_OBJ_GROUP | H5F_OBJ_DATATYPE | H5F_OBJ_ATTR | H5F_OBJ_LOCAL;
    ssize_t count = H5Fget_obj_count(file, types);
    if (count <= 0) return 0;
    hid_t *ids = malloc((size_t)count * sizeof *ids); /* not reel_malloc: this also runs on the way out */
    if (!ids) return 0;
    count = H5Fget_obj_ids(file, types, (size_t)count, ids);
    int status = 0;
    for (ssize_t i = 0; i < count && status == 0; i++) status = reel_h5_close_object(ids[i]);
    free(ids);
    return status;
}

static void remember_unclosable(hid_t file) {
    /* past the array's end the ID is not remembered, but num_unclosable still says the teardown is unsafe */
    if (num_unclosable < MAX_UNCLOSABLE) unclosable[num_unclosable] = file;
    num_unclosable++;
}

int reel_h5_close_file(hid_t file) {
    if (is_unclosable(file)) return -1;
    /* With an object broken, closing a file (its flush visits every open dataset) reads freed memory: the
     * file is left open, to end with the process. */
    if (objects_broken || close_objects_in(file) != 0 || H5Fclose(file) < 0) {
        remember_unclosable(file);
        return -1;
    }
    return 0;
}

/* The exit cleanup: closes every HDF5 file still open (after a fatal error in training, rank 0's metrics
 * file is), warning about one that cannot be closed; returns nonzero when HDF5's teardown must be
 * skipped. */
static int close_open_files(void) {
    if (objects_broken) return 1;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    ssize_t count = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_FILE);
    hid_t *ids = count > 0 ? malloc((size_t)count * sizeof *ids) : NULL;
    if (ids) count = H5Fget_obj_ids(H5F_OBJ_ALL, H5F_OBJ_FILE, (size_t)count, ids);
    for (ssize_t i = 0; ids && i < count && !objects_broken; i++) {
        if (is_unclosable(ids[i])) continue;
        char name[1024] = "";
        if (H5Fget_name(ids[i], name, sizeof name) < 0) snprintf(name, sizeof name, "an HDF5 file");
        if (reel_h5_close_file(ids[i]) != 0) {
            char reason[512];
            reel_h5_reason(reason, sizeof reason);
            reel_warn("%s: closing the file failed (%s); what was written last may be missing", name, reason);
        }
    }
    free(ids);
    /* (more open files than memory for their list are left to HDF5's teardown, safe when nothing failed) */
    return num_unclosable > 0 || objects_broken;
}

void reel_h5_track_files(void) { reel_at_exit(close_open_files); }

/* The innermost record of HDF5's error stack is the specific one ("unable to open file: name = ...,
 * errno = 2, error message = 'No such file or directory"); the outer ones only repeat the API call.
 * Walked upward, record 0 is the innermost. */
static herr_t keep_innermost(unsigned n, const H5E_error2_t *record, void *data) {
    char *buffer = data;
    if (n != 0) return 0;
    char minor[128] = "";
    if (H5Eget_msg(record->min_num, NULL, minor, sizeof minor) < 0) minor[0] = '\0';
    if (record->desc && record->desc[0])
        snprintf(buffer, 512, "%s%s%s", record->desc, minor[0] ? "; " : "", minor);
    else
        snprintf(buffer, 512, "%s", minor);
    return 0;
}

void reel_h5_reason(char *buffer, size_t size) {
    char innermost[512] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost, innermost);
    /* A failed read or write of the file driver carries the system's reason inside a long record
     * ("file write failed: time = ..., errno = 28, error message = 'No space left on device', buf = ..."):
     * the reason and the operation are what a user needs. */
    const char *quoted = strstr(innermost, "error message = '");
    const char *colon = strchr(innermost, ':');
    if (quoted && colon) {
        quoted += strlen("error message = '");
        const char *end = strchr(quoted, '\'');
        snprintf(buffer, size, "%.*s (%.*s)", end ? (int)(end - quoted) : 200, quoted, (int)(colon - innermost), innermost);
    } else {
        snprintf(buffer, size, "%s", innermost[0] ? innermost : "no detail from HDF5");
    }
    H5Eclear2(H5E_DEFAULT);
}

static char kept_reason[512];

void reel_h5_keep_reason(void) {
    if (!kept_reason[0]) reel_h5_reason(kept_reason, sizeof kept_reason);
}

void reel_h5_take_reason(char *buffer, size_t size) {
    if (kept_reason[0]) {
        snprintf(buffer, size, "%s", kept_reason);
        kept_reason[0] = '\0';
        H5Eclear2(H5E_DEFAULT);
    } else {
        reel_h5_reason(buffer, size);
    }
}

void reel_h5_fatal(const char *call, const char *file, int line) {
    char reason[512];
    reel_h5_reason(reason, sizeof reason);
    objects_broken = 1; /* a call that should never fail did: nothing HDF5 holds is trusted to close */
    reel_fatal_at(file, line, "the file system may be full or failing, or the HDF5 installation broken; checkpoints "
                  "written before are untouched, and the run continues from the newest when started again",
                  "HDF5 call %s failed: %s", call, reason);
}

hsize_t reel_h5_stored_elements(hid_t dataset) {
    hsize_t bytes = H5Dget_storage_size(dataset), chunk_elements = 0;
    hid_t type = H5Dget_type(dataset), creation = H5Dget_create_plist(dataset);
    size_t element = type >= 0 ? H5Tget_size(type) : 0;
    if (creation >= 0 && H5Pget_layout(creation) == H5D_CHUNKED) {
        hsize_t chunk[H5S_MAX_RANK];
        int rank = H5Pget_chunk(creation, H5S_MAX_RANK, chunk);
        chunk_elements = rank > 0 ? 1 : 0;
        for (int d = 0; d < rank; d++) chunk_elements *= chunk[d];
    }
    if (creation >= 0) REEL_H5_CHECK(H5Pclose(creation));
    if (type >= 0) REEL_H5_CHECK(H5Tclose(type));
    H5Eclear2(H5E_DEFAULT);
    return (element ? bytes / element : 0) + chunk_elements;
}

static int write_attr(hid_t object, const char *name, hid_t type, const void *value) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(object, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t status = attr < 0 ? -1 : H5Awrite(attr, type, value);
    if (status < 0) reel_h5_keep_reason();
    if (attr >= 0 && reel_h5_close_object(attr) != 0) {
        status = -1;
        reel_h5_keep_reason();
    }
    if (space >= 0) REEL_H5_CHECK(H5Sclose(space));
    return status < 0 ? -1 : 0;
}

int reel_h5_write_string_attr(hid_t object, const char *name, const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1);
    REEL_H5_CHECK(H5Tset_size(type, strlen(value) + 1));
    REEL_H5_CHECK(H5Tset_strpad(type, H5T_STR_NULLTERM));
    int status = write_attr(object, name, type, value);
    if (type >= 0) REEL_H5_CHECK(H5Tclose(type));
    return status;
}

int reel_h5_write_u64_attr(hid_t object, const char *name, uint64_t value) {
    return write_attr(object, name, H5T_STD_U64LE, &value);
}

int reel_h5_write_f64_attr(hid_t object, const char *name, double value) {
    return write_attr(object, name, H5T_IEEE_F64LE, &value);
}

static int read_attr(hid_t object, const char *name, hid_t memory_type, H5T_class_t expected, void *value) {
    if (H5Aexists(object, name) <= 0) return -1;
    hid_t attr = H5Aopen(object, name, H5P_DEFAULT);
    if (attr < 0) return -1;
    hid_t type = H5Aget_type(attr);
    int status = H5Tget_class(type) == expected && H5Aread(attr, memory_type, value) >= 0 ? 0 : -1;
    if (type >= 0) REEL_H5_CHECK(H5Tclose(type));
    if (attr >= 0) REEL_H5_CHECK(H5Aclose(attr));
    return status;
}

int reel_h5_read_u64_attr(hid_t object, const char *name, uint64_t *value) {
    return read_attr(object, name, H5T_NATIVE_UINT64, H5T_INTEGER, value);
}

int reel_h5_read_f64_attr(hid_t object, const char *name, double *value) {
    return read_attr(object, name, H5T_NATIVE_DOUBLE, H5T_FLOAT, value);
}

int reel_h5_read_string_attr(hid_t object, const char *name, char *value, size_t size) {
    if (H5Aexists(object, name) <= 0) return -1;
    hid_t attr = H5Aopen(object, name, H5P_DEFAULT);
    if (attr < 0) return -1;
    hid_t type = H5Aget_type(attr);
    int status = -1;
    if (H5Tget_class(type) == H5T_STRING && H5Tis_variable_str(type) > 0) {
        char *stored = NULL;
        hid_t memory = H5Tcopy(type); /* same character set: HDF5 does not convert ASCII <-> UTF-8 */
        if (H5Aread(attr, memory, &stored) >= 0) {
            snprintf(value, size, "%s", stored ? stored : "");
            status = 0;
        }
        if (stored) H5free_memory(stored);
        if (memory >= 0) REEL_H5_CHECK(H5Tclose(memory));
    } else if (H5Tget_class(type) == H5T_STRING) {
        size_t stored = H5Tget_size(type);
        hid_t memory = H5Tcopy(H5T_C_S1);
        REEL_H5_CHECK(H5Tset_size(memory, stored + 1));
        char buffer[stored + 1];
        if (H5Aread(attr, memory, buffer) >= 0) {
            buffer[stored] = '\0';
            snprintf(value, size, "%s", buffer);
            status = 0;
        }
        if (memory >= 0) REEL_H5_CHECK(H5Tclose(memory));
    }
    if (type >= 0) REEL_H5_CHECK(H5Tclose(type));
    if (attr >= 0) REEL_H5_CHECK(H5Aclose(attr));
    return status;
}
