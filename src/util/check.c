#include "reel/check.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int reel_fail(reel_error *err, const char *fmt, ...) {
    if (err) {
        va_list args;
        va_start(args, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, args);
        va_end(args);
    }
    return -1;
}

#define MAX_CLEANUPS 4
static int (*cleanups[MAX_CLEANUPS])(void);
static size_t num_cleanups;
enum { CLEANUPS_NOT_RUN, CLEANUPS_RUNNING, CLEANUPS_DONE };
static int cleanup_state = CLEANUPS_NOT_RUN, cleanup_skip_teardown;

void reel_at_exit(int (*cleanup)(void)) {
    for (size_t i = 0; i < num_cleanups; i++)
        if (cleanups[i] == cleanup) return;
    REEL_CHECK(num_cleanups < MAX_CLEANUPS, NULL, "more than %d exit cleanups registered", MAX_CLEANUPS);
    cleanups[num_cleanups++] = cleanup;
}

int reel_run_exit_cleanups(void) {
    /* A failure inside a cleanup comes back here through the fatal path: what that cleanup was closing is
     * in an unknown state, so the libraries' teardown is skipped rather than trusted. */
    if (cleanup_state == CLEANUPS_RUNNING) return 1;
    if (cleanup_state == CLEANUPS_DONE) return cleanup_skip_teardown;
    cleanup_state = CLEANUPS_RUNNING;
    int skip = 0;
    for (size_t i = 0; i < num_cleanups; i++) skip |= cleanups[i]() != 0;
    cleanup_skip_teardown = skip;
    cleanup_state = CLEANUPS_DONE;
    return skip;
}

/* Ends the process: exit() normally; _exit() when a cleanup said a library's atexit teardown would crash
 * (stdio is flushed first, which is all of exit()'s work that reel relies on). */
static REEL_NORETURN void end_process(int status, int skip_teardown) {
    fflush(NULL);
    if (skip_teardown) _exit(status);
    exit(status);
}

void reel_exit(int status) { end_process(status, reel_run_exit_cleanups()); }

/* Ends the process group: with several MPI ranks an exit() on one rank would leave the others blocked
 * in their next collective, so MPI_Abort is the only safe way out. The cleanups run first, so the files
 * this rank holds open are closed before MPI_Abort kills it. */
/* MPI calls here are unchecked on purpose: this is the way out after a failure, MPI's included. */
static REEL_NORETURN void reel_exit_all(void) {
    int skip_teardown = reel_run_exit_cleanups();
    int initialized = 0, finalized = 0, size = 1;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    fflush(NULL);
    if (initialized && !finalized) {
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        if (size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
        MPI_Finalize();
    }
    end_process(1, skip_teardown);
}

void reel_fatal_at(const char *file, int line, const char *hint, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fputs("reel: error: ", stderr);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
    if (hint && *hint) fprintf(stderr, "  hint: %s\n", hint);
    fprintf(stderr, "  (reported at %s:%d)\n", file, line);
    reel_exit_all();
}

void reel_die(const reel_error *err, const char *hint) {
    fprintf(stderr, "reel: error: %s\n", err->message[0] ? err->message : "unknown error");
    if (hint && *hint) fprintf(stderr, "  hint: %s\n", hint);
    reel_exit_all();
}

void *reel_malloc_at(size_t bytes, const char *file, int line) {
    void *ptr = malloc(bytes ? bytes : 1);
    if (!ptr) reel_fatal_at(file, line, "reduce the batch size or the model size", "out of memory allocating %zu bytes", bytes);
    return ptr;
}

void *reel_calloc_at(size_t count, size_t size, const char *file, int line) {
    void *ptr = calloc(count ? count : 1, size ? size : 1);
    if (!ptr)
        reel_fatal_at(file, line, "reduce the batch size or the model size", "out of memory allocating %zu x %zu bytes",
                      count, size);
    return ptr;
}

void *reel_realloc_at(void *old, size_t bytes, const char *file, int line) {
    void *ptr = realloc(old, bytes ? bytes : 1);
    if (!ptr) reel_fatal_at(file, line, "reduce the batch size or the model size", "out of memory reallocating %zu bytes", bytes);
    return ptr;
}

static int reel_is_rank0(void) {
    int initialized = 0, finalized = 0, rank = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank == 0;
}

void reel_log(const char *fmt, ...) {
    if (!reel_is_rank0()) return;
    va_list args;
    va_start(args, fmt);
    vfprintf(stdout, fmt, args);
    va_end(args);
    fflush(stdout);
}

void reel_warn(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fputs("reel: warning: ", stderr);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
}
