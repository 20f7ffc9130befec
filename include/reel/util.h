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

/* Seconds on a monotonic clock. */
double reel_now_seconds(void);
/* "h:mm:ss" for a duration in seconds (negative or non-finite: 0:00:00). */
void reel_format_duration(char *out, size_t size, double seconds);

#endif
