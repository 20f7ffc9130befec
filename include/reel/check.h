/* reel/check.h: the two tiers of error handling used everywhere in reel.
 *
 * 1. Recoverable errors (bad input files, bad configuration values, corrupt checkpoints) are reported
 *    through a reel_error filled by the callee, and a return value of -1. The message names the user's
 *    file, the line or field or byte offset, and what was expected, so callers (and tests) can print or
 *    inspect it. Nothing is printed by the callee.
 * 2. Fatal errors (out of memory, broken invariants, failed MPI calls) go through REEL_FATAL / REEL_CHECK:
 *    they print the message, a hint for the user and the source location, then end every rank
 *    (MPI_Abort when MPI is running with more than one rank), so no rank is left waiting in a collective.
 */
#ifndef REEL_CHECK_H
#define REEL_CHECK_H

#include <stddef.h>
#include <stdio.h>

#if defined(__GNUC__)
#define REEL_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#define REEL_NORETURN __attribute__((noreturn))
#else
#define REEL_PRINTF(fmt_index, first_arg)
#define REEL_NORETURN
#endif

#define REEL_ERROR_MAX 1024

typedef struct reel_error {
    char message[REEL_ERROR_MAX]; /* "" when no error was recorded */
} reel_error;

/* Records a formatted message in err (which may be NULL) and returns -1, so a callee can write
 * `return reel_fail(err, "%s: ...", path);`. */
int reel_fail(reel_error *err, const char *fmt, ...) REEL_PRINTF(2, 3);

/* Prints "reel: error: <message>", "  hint: <hint>" (when hint is not NULL) and the source location,
 * runs the exit cleanups, then ends all ranks with exit status 1. */
REEL_NORETURN void reel_fatal_at(const char *file, int line, const char *hint, const char *fmt, ...)
    REEL_PRINTF(4, 5);

/* Prints a recoverable error that the program cannot continue from, then ends all ranks. */
REEL_NORETURN void reel_die(const reel_error *err, const char *hint);

/* Cleanups for the way out of the process. A cleanup closes what a library still holds open (HDF5 files,
 * so that they are left complete) and returns nonzero when that library's own teardown, which exit()
 * runs, must be skipped because it would crash on something that could not be closed. The cleanups run
 * once: on the fatal paths (before MPI_Abort ends the other ranks) and in reel_exit. */
void reel_at_exit(int (*cleanup)(void));
/* Runs the cleanups (the first call only; a call made while they run, from a failure inside one, does
 * not run them again) and returns nonzero when the process must end with _exit instead of exit. */
int reel_run_exit_cleanups(void);
/* main's way out: runs the cleanups, then ends the process with status (exit, or _exit after flushing
 * every stdio stream when a cleanup asked for it). */
REEL_NORETURN void reel_exit(int status);

#define REEL_FATAL(hint, ...) reel_fatal_at(__FILE__, __LINE__, (hint), __VA_ARGS__)
#define REEL_CHECK(cond, hint, ...)                                                                    \
    do {                                                                                               \
        if (!(cond)) reel_fatal_at(__FILE__, __LINE__, (hint), __VA_ARGS__);                           \
    } while (0)

/* Allocation that never returns NULL: on failure it reports the size and the call site, then aborts. */
void *reel_malloc_at(size_t bytes, const char *file, int line);
void *reel_calloc_at(size_t count, size_t size, const char *file, int line);
void *reel_realloc_at(void *ptr, size_t bytes, const char *file, int line);
#define reel_malloc(bytes) reel_malloc_at((bytes), __FILE__, __LINE__)
#define reel_calloc(count, size) reel_calloc_at((count), (size), __FILE__, __LINE__)
#define reel_realloc(ptr, bytes) reel_realloc_at((ptr), (bytes), __FILE__, __LINE__)

/* a x b, or SIZE_MAX when the product overflows (sizes from a configuration can be absurd). */
size_t reel_size_mul(size_t a, size_t b);
/* The bytes one allocation of this process can have at most: the machine's memory and swap, or the
 * address-space or data-segment limit (ulimit -v, ulimit -d) when lower. describe (may be NULL) receives
 * what the bound is, e.g. "15.6 GiB of memory and swap". */
size_t reel_memory_limit(char *describe, size_t size);
/* reel_calloc for a buffer whose size comes from the configuration: when count x size is more than the
 * machine can allocate, or the allocation fails, the error says what the buffer is and the keys its size
 * comes from (sized_by, e.g. "[train] batch_size x [model] hidden_dim") and asks to lower them, instead
 * of only the bytes. */
void *reel_calloc_for_at(size_t count, size_t size, const char *what, const char *sized_by, const char *file,
                         int line);
#define reel_calloc_for(count, size, what, sized_by)                                                  \
    reel_calloc_for_at((count), (size), (what), (sized_by), __FILE__, __LINE__)
/* Only the check of reel_calloc_for, for a buffer another function allocates. */
void reel_require_for_at(size_t count, size_t size, const char *what, const char *sized_by, const char *file,
                         int line);
#define reel_require_for(count, size, what, sized_by)                                                 \
    reel_require_for_at((count), (size), (what), (sized_by), __FILE__, __LINE__)

/* Rank-0-only informational output on stdout (all ranks print when MPI is not initialised). */
void reel_log(const char *fmt, ...) REEL_PRINTF(1, 2);
/* Warning on stderr, printed by the calling rank. */
void reel_warn(const char *fmt, ...) REEL_PRINTF(1, 2);

#endif
