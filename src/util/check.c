#include "reel/check.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int reel_fail(reel_error *err, const char *fmt, ...) {
    if (err) {
        va_list args;
        va_start(args, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, args);
        va_end(args);
    }
    return -1;
}

/* Ends the process group: with several MPI ranks an exit() on one rank would leave the others blocked
 * in their next collective, so MPI_Abort is the only safe way out. */
/* MPI calls here are unchecked on purpose: this is the way out after a failure, MPI's included. */
static REEL_NORETURN void reel_exit_all(void) {
    int initialized = 0, finalized = 0, size = 1;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    fflush(stdout);
    fflush(stderr);
    if (initialized && !finalized) {
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        if (size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
        MPI_Finalize();
    }
    exit(1);
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
