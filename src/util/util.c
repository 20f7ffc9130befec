/* Durable writes, directories, buffers and the clock (reel/util.h). */
#include "reel/util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int reel_sync_parent_dir(const char *path, reel_error *err) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        memcpy(dir, ".", 2);
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        if (n >= sizeof dir) return reel_fail(err, "%s: directory name too long", path);
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return reel_fail(err, "%s: cannot open directory to sync it: %s", dir, strerror(errno));
    int rc = 0;
    /* EINVAL: the file system cannot sync directories; the file data is already durable then. */
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        rc = reel_fail(err, "%s: cannot sync directory: %s", dir, strerror(errno));
    close(fd);
    return rc;
}

int reel_fsync_path(const char *path, reel_error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return reel_fail(err, "%s: cannot open to sync it: %s", path, strerror(errno));
    int rc = 0;
    if (fsync(fd) != 0) rc = reel_fail(err, "%s: fsync failed: %s", path, strerror(errno));
    close(fd);
    return rc;
}

int reel_make_dirs(const char *dir, reel_error *err) {
    size_t n = strlen(dir);
    char *copy = reel_malloc(n + 1);
    memcpy(copy, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (copy[i] != '/' && copy[i] != '\0') continue;
        char saved = copy[i];
        copy[i] = '\0';
        if (mkdir(copy, 0777) != 0 && errno != EEXIST) {
            reel_fail(err, "%s: cannot create the directory: %s", copy, strerror(errno));
            free(copy);
            return -1;
        }
        copy[i] = saved;
    }
    free(copy);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return reel_fail(err, "%s: exists but is not a directory", dir);
    return 0;
}

int reel_read_file(reel_buf *buf, const char *path, size_t max_bytes, int missing_ok, reel_error *err) {
    FILE *file = fopen(path, "rb");
    if (!file) {
        if (missing_ok && errno == ENOENT) return 1;
        return reel_fail(err, "%s: cannot open: %s", path, strerror(errno));
    }
    char chunk[65536];
    size_t total = 0, n;
    int status = 0;
    while ((n = fread(chunk, 1, sizeof chunk, file)) > 0) {
        total += n;
        if (total > max_bytes) {
            status = reel_fail(err, "%s: larger than %zu bytes", path, max_bytes);
            break;
        }
        reel_buf_append(buf, chunk, n);
    }
    if (status == 0 && ferror(file)) status = reel_fail(err, "%s: read error: %s", path, strerror(errno));
    fclose(file);
    if (status == 0 && buf->length == 0) reel_buf_append(buf, "", 0); /* data is a valid empty string */
    return status;
}

int reel_write_file_atomic(const char *path, const void *data, size_t length, reel_error *err) {
    size_t n = strlen(path);
    char *tmp = reel_malloc(n + 5);
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        reel_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    const char *p = data;
    size_t left = length;
    while (left > 0) {
        ssize_t wrote = write(fd, p, left);
        if (wrote < 0 && errno == EINTR) continue;
        if (wrote <= 0) {
            reel_fail(err, "%s: write failed after %zu of %zu bytes: %s", tmp, length - left, length,
                      wrote < 0 ? strerror(errno) : "no progress");
            goto fail;
        }
        p += wrote;
        left -= (size_t)wrote;
    }
    if (fsync(fd) != 0) {
        reel_fail(err, "%s: fsync failed: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        reel_fail(err, "%s: close failed: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        reel_fail(err, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        goto fail;
    }
    free(tmp);
    return reel_sync_parent_dir(path, err);
fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
    free(tmp);
    return -1;
}

void reel_buf_reserve(reel_buf *buf, size_t capacity) {
    if (capacity <= buf->capacity) return;
    size_t grown = buf->capacity ? buf->capacity : 256;
    while (grown < capacity) grown = grown > SIZE_MAX / 2 ? capacity : grown * 2;
    buf->data = reel_realloc(buf->data, grown);
    buf->capacity = grown;
}

void reel_buf_append(reel_buf *buf, const void *bytes, size_t length) {
    reel_buf_reserve(buf, buf->length + length + 1);
    if (length) memcpy(buf->data + buf->length, bytes, length);
    buf->length += length;
    buf->data[buf->length] = '\0';
}

void reel_buf_printf(reel_buf *buf, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    int need = vsnprintf(NULL, 0, fmt, args);
    va_end(args);
    REEL_CHECK(need >= 0, NULL, "invalid format string '%s'", fmt);
    reel_buf_reserve(buf, buf->length + (size_t)need + 1);
    va_start(args, fmt);
    vsnprintf(buf->data + buf->length, (size_t)need + 1, fmt, args);
    va_end(args);
    buf->length += (size_t)need;
}

void reel_buf_free(reel_buf *buf) {
    free(buf->data);
    buf->data = NULL;
    buf->length = buf->capacity = 0;
}

double reel_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void reel_format_duration(char *out, size_t size, double seconds) {
    if (!isfinite(seconds) || seconds < 0) seconds = 0;
    unsigned long s = (unsigned long)(seconds + 0.5);
    snprintf(out, size, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
}

size_t reel_utf8_invalid_at(const void *bytes, size_t length, const char **why) {
    const unsigned char *s = bytes;
    const char *fault = NULL;
    size_t i = 0;
    while (i < length) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t code, min;
        if (c >= 0xc2 && c <= 0xdf) need = 1, code = c & 0x1fu, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef) need = 2, code = c & 0x0fu, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4) need = 3, code = c & 0x07u, min = 0x10000;
        else {
            /* 0x80-0xbf only continue a sequence; 0xc0, 0xc1 can only start overlong forms; 0xf5-0xff
             * would encode beyond U+10FFFF or are not UTF-8 at all */
            fault = c < 0xc0 ? "a continuation byte without a lead byte"
                    : c < 0xc2 ? "an overlong encoding"
                               : "a byte that never occurs in UTF-8";
            break;
        }
        size_t k = 1;
        for (; k <= need; k++) {
            if (i + k >= length) {
                fault = "a sequence cut short by the end";
                break;
            }
            if ((s[i + k] & 0xc0u) != 0x80) {
                fault = "a sequence cut short";
                break;
            }
            code = (code << 6) | (s[i + k] & 0x3fu);
        }
        if (fault) break;
        if (code < min) fault = "an overlong encoding";
        else if (code >= 0xd800 && code <= 0xdfff) fault = "a UTF-16 surrogate";
        else if (code > 0x10ffff) fault = "a code point above U+10FFFF";
        if (fault) break;
        i += need + 1;
    }
    if (why) *why = fault ? fault : "";
    return fault ? i : length;
}

/* The quoted form of the character or byte at s[i]: its text in piece, its length returned, the bytes it
 * stands for in *take. */
static size_t escape_piece(const unsigned char *s, size_t i, size_t length, char piece[5], size_t *take) {
    unsigned char c = s[i];
    *take = 1;
    /* a well-formed UTF-8 character from U+00A0 up (not a C1 control) is text, quoted as it is */
    size_t seq = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    if (seq && i + seq <= length && reel_utf8_invalid_at(s + i, seq, NULL) == seq && !(c == 0xc2 && s[i + 1] < 0xa0)) {
        memcpy(piece, s + i, seq);
        piece[seq] = '\0';
        *take = seq;
        return seq;
    }
    if (c == '\\') memcpy(piece, "\\\\", 3);
    else if (c == '\n') memcpy(piece, "\\n", 3);
    else if (c == '\r') memcpy(piece, "\\r", 3);
    else if (c == '\t') memcpy(piece, "\\t", 3);
    else if (c >= 0x20 && c < 0x7f) piece[0] = (char)c, piece[1] = '\0';
    else snprintf(piece, 5, "\\x%02x", c);
    return strlen(piece);
}

char *reel_escape_bytes(char *out, size_t size, const void *bytes, size_t length) {
    const unsigned char *s = bytes;
    char piece[5];
    size_t used = 0, take, whole = 0;
    if (size == 0) return out;
    for (size_t i = 0; i < length && whole < size; i += take) whole += escape_piece(s, i, length, piece, &take);
    /* cut short: every piece written leaves room for the "..." that ends the text */
    size_t reserve = whole + 1 <= size ? 0 : 3;
    for (size_t i = 0; i < length; i += take) {
        size_t n = escape_piece(s, i, length, piece, &take);
        if (used + n + reserve + 1 > size) break;
        memcpy(out + used, piece, n);
        used += n;
    }
    if (reserve && used + 4 <= size) {
        memcpy(out + used, "...", 3);
        used += 3;
    }
    out[used] = '\0';
    return out;
}

char *reel_escape_string(char *out, size_t size, const char *text) {
    return reel_escape_bytes(out, size, text, strlen(text));
}
