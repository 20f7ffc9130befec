/* Private HDF5 helpers shared by the checkpoint code: attributes, strings, and turning HDF5's error
 * stack into one readable sentence. */
#ifndef REEL_H5UTIL_H
#define REEL_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Silences HDF5's own printing of error stacks (reel reports errors itself). Idempotent. */
void reel_h5_quiet(void);
/* The most specific message on HDF5's current error stack, e.g. "incorrect metadata checksum"; clears
 * the stack. Call it right after the failing call: every HDF5 API call starts by clearing the stack. */
void reel_h5_reason(char *buffer, size_t size);

/* HDF5 calls that fail only when something is deeply wrong (a property list, closing what was opened, a
 * name or type query): the failure names the call, the source line and HDF5's reason, says what the user
 * can do, and ends every rank. Calls whose failure a user can cause (opening, reading, writing a file)
 * are checked where they are made and reported as recoverable errors naming the file. */
#define REEL_H5_CHECK(call)                                                                            \
    do {                                                                                               \
        if ((call) < 0) reel_h5_fatal(#call, __FILE__, __LINE__);                                      \
    } while (0)
void reel_h5_fatal(const char *call, const char *file, int line) __attribute__((noreturn));

int reel_h5_write_string_attr(hid_t object, const char *name, const char *value);
int reel_h5_write_u64_attr(hid_t object, const char *name, uint64_t value);
int reel_h5_write_f64_attr(hid_t object, const char *name, double value);
/* Return -1 when the attribute is missing or of the wrong kind. */
int reel_h5_read_string_attr(hid_t object, const char *name, char *value, size_t size);
int reel_h5_read_u64_attr(hid_t object, const char *name, uint64_t *value);
int reel_h5_read_f64_attr(hid_t object, const char *name, double *value);

#endif
