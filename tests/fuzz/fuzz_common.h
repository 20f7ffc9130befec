/* Shared by the libFuzzer targets: inputs that readers take from a file are written to one scratch file
 * per process (under TMPDIR, on tmpfs when possible), and a broken invariant aborts so libFuzzer keeps
 * the input. */
#ifndef REEL_FUZZ_COMMON_H
#define REEL_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define FUZZ_ASSERT(cond)                                                                              \
    do {                                                                                               \
        if (!(cond)) {                                                                                 \
            fprintf(stderr, "fuzz invariant broken: %s (%s:%d)\n", #cond, __FILE__, __LINE__);          \
            abort();                                                                                   \
        }                                                                                              \
    } while (0)

/* The path of this process's scratch file, holding data[0..size). */
static inline const char *fuzz_write_file(const uint8_t *data, size_t size, const char *suffix) {
    static char path[512];
    if (!path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/reel_fuzz_%d%s", dir && dir[0] ? dir : "/tmp", (int)getpid(), suffix);
    }
    FILE *file = fopen(path, "wb");
    FUZZ_ASSERT(file);
    FUZZ_ASSERT(fwrite(data, 1, size, file) == size);
    FUZZ_ASSERT(fclose(file) == 0);
    return path;
}

#endif
