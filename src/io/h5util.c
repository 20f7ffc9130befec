#include "h5util.h"

#include "reel/check.h"

#include <stdio.h>
#include <string.h>

void reel_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

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

void reel_h5_fatal(const char *call, const char *file, int line) {
    char reason[512];
    reel_h5_reason(reason, sizeof reason);
    reel_fatal_at(file, line, "the file system may be full or failing, or the HDF5 installation broken; checkpoints "
                  "written before are untouched, and the run continues from the newest when started again",
                  "HDF5 call %s failed: %s", call, reason);
}

static int write_attr(hid_t object, const char *name, hid_t type, const void *value) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(object, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t status = attr < 0 ? -1 : H5Awrite(attr, type, value);
    if (attr >= 0) H5Aclose(attr);
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
