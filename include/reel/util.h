/* reel/util.h: small services every stage of the pipeline uses: durable file writes, directories, a
 * growable buffer and the clock. */
#ifndef REEL_UTIL_H
#define REEL_UTIL_H

#include <stddef.h>

#include "reel/check.h"

/* Writes data to "<path>.tmp", fsyncs it, renames it to path and fsyncs the directory, so readers see
 * either the old file or the complete new one. The temporary is removed on failure. */
int reel_write_file_atomic(const char *path, const void *data, size_t length, reel_error *err);

/* fsyncs the directory holding path, so a rename into it survives a crash. File systems that cannot
 * sync directories (EINVAL, EROFS) count as success: the file data is durable then. */
int reel_sync_parent_dir(const char *path, reel_error *err);
/* fsyncs the file at path. */
int reel_fsync_path(const char *path, reel_error *err);

/* Creates dir and its missing parents (mkdir -p); an existing directory is fine. */
int reel_make_dirs(const char *dir, reel_error *err);

/* A growable byte buffer (never shrinks, so steady-state appends allocate nothing). data is always
 * NUL-terminated after an append. */
typedef struct reel_buf {
    char *data;
    size_t length;
    size_t capacity;
} reel_buf;

void reel_buf_reserve(reel_buf *buf, size_t capacity);
void reel_buf_append(reel_buf *buf, const void *bytes, size_t length);
void reel_buf_printf(reel_buf *buf, const char *fmt, ...) REEL_PRINTF(2, 3);
void reel_buf_free(reel_buf *buf);

/* Reads a whole file (up to max_bytes; larger is an error naming the file) into buf (appended, so the
 * caller may reuse buf). A missing file is an error unless missing_ok, when it returns 1 and reads
 * nothing. */
int reel_read_file(reel_buf *buf, const char *path, size_t max_bytes, int missing_ok, reel_error *err);

/* The byte offset of the first sequence in bytes[0, length) that is not well-formed UTF-8 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF, no sequence cut short), or length when all of it
 * is. why (may be NULL) is set to a short description of the fault, e.g. "an overlong encoding". */
size_t reel_utf8_invalid_at(const void *bytes, size_t length, const char **why);

/* Writes bytes[0, length) to out (size bytes, always NUL-terminated) for quoting in a message: printable
 * ASCII and well-formed UTF-8 characters (U+00A0 and up) as they are, the backslash as "\\", a line feed,
 * carriage return and tab as \n, \r, \t, and every other byte (controls, bytes that are not UTF-8) as
 * "\xNN", so an error quoting a file never prints a binary file's raw bytes to a terminal. When out is
 * too small the text ends with "..." (an escape is never cut in half). Returns out. */
char *reel_escape_bytes(char *out, size_t size, const void *bytes, size_t length);
/* The same for a NUL-terminated string. */
char *reel_escape_string(char *out, size_t size, const char *text);
/* Room for the escaped form of a quote of up to REEL_QUOTE_BYTES bytes (4 characters per byte, "..." and
 * the NUL). */
#define REEL_QUOTE_BYTES 64
#define REEL_QUOTE_MAX (4 * REEL_QUOTE_BYTES + 4)

/* Seconds on a monotonic clock. */
double reel_now_seconds(void);
/* "h:mm:ss" for a duration in seconds (negative or non-finite: 0:00:00). */
void reel_format_duration(char *out, size_t size, double seconds);

#endif
