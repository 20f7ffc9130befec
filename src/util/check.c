#include "reel/check.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
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

size_t reel_size_mul(size_t a, size_t b) { return b && a > SIZE_MAX / b ? SIZE_MAX : a * b; }

size_t reel_memory_limit(char *describe, size_t size) {
    /* Linux's default overcommit refuses one allocation larger than memory and swap together; memory a
     * model touches (its parameters, every step) must exist anyway */
    size_t limit = SIZE_MAX;
    const char *kind = "memory and swap";
    struct sysinfo info;
    if (sysinfo(&info) == 0) {
        unsigned long long bytes = ((unsigned long long)info.totalram + info.totalswap) * info.mem_unit;
        if (bytes < SIZE_MAX) limit = (size_t)bytes;
    }
    static const struct { int resource; const char *kind; } limits[] = {
        {RLIMIT_AS, "the address-space limit (ulimit -v)"}, {RLIMIT_DATA, "the data-segment limit (ulimit -d)"}};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        struct rlimit r;
        if (getrlimit(limits[i].resource, &r) == 0 && r.rlim_cur != RLIM_INFINITY && r.rlim_cur < limit) {
            limit = (size_t)r.rlim_cur;
            kind = limits[i].kind;
        }
    }
    if (describe && size) {
        if (limit == SIZE_MAX) snprintf(describe, size, "no known limit");
        else if (!strcmp(kind, "memory and swap"))
            snprintf(describe, size, "%.1f GiB of memory and swap", limit / 1073741824.0);
        else
            snprintf(describe, size, "%s of %.1f GiB", kind, limit / 1073741824.0);
    }
    return limit;
}

static REEL_NORETURN void report_buffer(size_t count, size_t size, const char *what, const char *sized_by,
                                       const char *outcome, const char *limit_text, const char *file, int line) {
    char hint[256];
    snprintf(hint, sizeof hint, "make %s smaller", sized_by);
    reel_fatal_at(file, line, hint, "out of memory: %s, sized by %s, needs %zu x %zu bytes (%.1f GiB): %s (%s)", what,
                  sized_by, count, size, (double)count * (double)size / 1073741824.0, outcome, limit_text);
}

void reel_require_for_at(size_t count, size_t size, const char *what, const char *sized_by, const char *file,
                         int line) {
    char limit_text[128];
    if (reel_size_mul(count, size) > reel_memory_limit(limit_text, sizeof limit_text))
        report_buffer(count, size, what, sized_by, "more than this machine can allocate", limit_text, file, line);
}

void *reel_calloc_for_at(size_t count, size_t size, const char *what, const char *sized_by, const char *file,
                         int line) {
    reel_require_for_at(count, size, what, sized_by, file, line);
    void *ptr = calloc(count ? count : 1, size ? size : 1);
    if (!ptr) {
        char limit_text[128];
        reel_memory_limit(limit_text, sizeof limit_text);
        report_buffer(count, size, what, sized_by, "the allocation failed", limit_text, file, line);
    }
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
