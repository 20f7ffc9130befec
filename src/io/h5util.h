/* Private HDF5 helpers shared by the checkpoint code: attributes, strings, and turning HDF5's error
 * stack into one readable sentence. */
#ifndef REEL_H5UTIL_H
#define REEL_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Silences HDF5's own printing of error stacks (reel reports errors itself) and registers the exit
 * cleanup below (reel_h5_track_files). Idempotent; called before opening or creating a file. */
void reel_h5_quiet(void);
/* Registers (once) the exit cleanup that closes every HDF5 file still open when the process ends on a
 * fatal path, so that a file being written (the metrics) is left complete, and that makes the process
 * skip HDF5's own teardown when a file could not be closed (see reel_h5_close_file). */
void reel_h5_track_files(void);
/* Closes the objects still open in file, then the file (H5Fclose with objects open would only mark it to
 * close later). Returns -1 when a close failed, HDF5's reason on its error stack. A failed close is
 * typically the final flush of a full disk; HDF5 1.10 then leaves an ID that must never be closed again,
 * so it is remembered and the process ends without HDF5's teardown (see h5util.c). */
int reel_h5_close_file(hid_t file);
/* Closes a dataset, group, attribute or named type: -1 when the close failed (for a dataset, writing its
 * cached chunks), HDF5's reason on its error stack; recorded like a failed file close. Every object of a
 * file being written is closed through it. */
int reel_h5_close_object(hid_t object);
/* Makes a file access property list write data straight to the file: no chunk cache and no sieve buffer,
 * so a full disk fails the H5Dwrite that met it, not a later H5Dclose (see h5util.c). */
void reel_h5_write_through(hid_t file_access);
/* The most specific message on HDF5's current error stack, e.g. "incorrect metadata checksum"; clears
 * the stack. Call it right after the failing call: every HDF5 API call starts by clearing the stack. */
void reel_h5_reason(char *buffer, size_t size);

/* A writer calls reel_h5_keep_reason right after a call fails: the first failure's reason is kept across
 * the closes that follow it (each clears the stack), until reel_h5_take_reason hands it over (or, when
 * none was kept, the current stack's reason) and forgets it. */
void reel_h5_keep_reason(void);
void reel_h5_take_reason(char *buffer, size_t size);

/* HDF5 calls that fail only when something is deeply wrong (a property list, closing what was opened, a
 * name or type query): the failure names the call, the source line and HDF5's reason, says what the user
 * can do, and ends every rank. Calls whose failure a user can cause (opening, reading, writing a file)
 * are checked where they are made and reported as recoverable errors naming the file. */
#define REEL_H5_CHECK(call)                                                                            \
    do {                                                                                               \
        if ((call) < 0) reel_h5_fatal(#call, __FILE__, __LINE__);                                      \
    } while (0)
void reel_h5_fatal(const char *call, const char *file, int line) __attribute__((noreturn));

/* The elements of dataset its file actually stores (allocated bytes over the element size), plus one
 * chunk for a chunked dataset (a writer stopped in an append leaves its last rows unwritten). A reader
 * checks a dataset's extent against it before allocating memory for it: unwritten parts read as fill
 * values, so a damaged extent could claim terabytes. */
hsize_t reel_h5_stored_elements(hid_t dataset);

int reel_h5_write_string_attr(hid_t object, const char *name, const char *value);
int reel_h5_write_u64_attr(hid_t object, const char *name, uint64_t value);
int reel_h5_write_f64_attr(hid_t object, const char *name, double value);
/* Return -1 when the attribute is missing or of the wrong kind. */
int reel_h5_read_string_attr(hid_t object, const char *name, char *value, size_t size);
int reel_h5_read_u64_attr(hid_t object, const char *name, uint64_t *value);
int reel_h5_read_f64_attr(hid_t object, const char *name, double *value);

#endif
