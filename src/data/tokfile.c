/* Token-ID files: see include/reel/tokfile.h for the byte layout.
 *
 * The reader maps the whole file read-only and hands out pointers into the mapping, so a rank touches
 * only the pages of the documents it reads. Validation that is proportional to N (header, index,
 * labels) happens at open; validation proportional to T (the ids) is deferred to the first read of each
 * document, tracked in a bitmap, because a rank typically reads a fraction of a large file.
 *
 * A reel_tokfile is not safe to use from several threads at once (the bitmap is updated without locks).
 */
#include "reel/tokfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reel/util.h"

/* The format is little-endian and read by casting pointers into the mapping; a big-endian host would
 * silently read garbage, so it is refused instead. */
static int host_is_little_endian(void) {
    const uint16_t probe = 1;
    unsigned char first;
    memcpy(&first, &probe, 1);
    return first == 1;
}

static int refuse_big_endian(const char *path, reel_error *err) {
    return reel_fail(err, "%s: token files are little-endian and this host is big-endian; reel supports "
                          "only little-endian hosts", path);
}

static uint32_t load_u32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint64_t load_u64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* a * b + c into *out, or 0 on overflow: header counts come from the file and must not wrap. */
static int mul_add_u64(uint64_t a, uint64_t b, uint64_t c, uint64_t *out) {
    if (b != 0 && a > (UINT64_MAX - c) / b) return 0;
    *out = a * b + c;
    return 1;
}

/* Expected total size for the given counts, or 0 when it does not fit in 64 bits. */
static int expected_file_size(uint64_t n, uint64_t t, uint32_t c, uint64_t *size) {
    uint64_t index_bytes, label_bytes, token_bytes, total;
    if (n == UINT64_MAX || !mul_add_u64(n + 1, 8, 0, &index_bytes)) return 0;
    if (!mul_add_u64(c > 0 ? n : 0, 4, 0, &label_bytes)) return 0;
    if (!mul_add_u64(t, 4, 0, &token_bytes)) return 0;
    total = REEL_TOKFILE_HEADER_BYTES;
    if (index_bytes > UINT64_MAX - total) return 0;
    total += index_bytes;
    if (label_bytes > UINT64_MAX - total) return 0;
    total += label_bytes;
    if (token_bytes > UINT64_MAX - total) return 0;
    total += token_bytes;
    *size = total;
    return 1;
}

struct reel_tokfile {
    char *path;
    void *map;
    size_t map_bytes;
    reel_tokfile_header header;
    const uint64_t *doc_start;
    const int32_t *labels; /* NULL when num_classes == 0 */
    const uint32_t *ids;
    uint64_t ids_offset; /* byte offset of ids[0] in the file, for messages */
    uint8_t *validated;  /* one bit per document: its ids were checked against V */
    uint32_t *reversed;  /* reel_tokfile_reverse: every document's ids last to first (ids points here) */
};

void reel_tokfile_close(reel_tokfile *file) {
    if (!file) return;
    if (file->map) munmap(file->map, file->map_bytes);
    free(file->validated);
    free(file->reversed);
    free(file->path);
    free(file);
}

static int parse_and_validate(reel_tokfile *f, const unsigned char *bytes, uint64_t size, reel_error *err) {
    const char *path = f->path;
    if (memcmp(bytes, REEL_TOKFILE_MAGIC, sizeof REEL_TOKFILE_MAGIC) != 0) {
        char found[4 * sizeof REEL_TOKFILE_MAGIC + 1]; /* escaped: the magic of a binary file is raw bytes */
        return reel_fail(err, "%s: byte offset 0: bad magic \"%s\", expected \"REELTOK\\0\" (is this a reel token file?)",
                         path, reel_escape_bytes(found, sizeof found, bytes, sizeof REEL_TOKFILE_MAGIC));
    }
    reel_tokfile_header *h = &f->header;
    h->version = load_u32(bytes + 8);
    if (h->version != REEL_TOKFILE_VERSION)
        return reel_fail(err, "%s: byte offset 8: format version %" PRIu32 ", expected %u", path, h->version,
                         REEL_TOKFILE_VERSION);
    uint32_t header_bytes = load_u32(bytes + 12);
    if (header_bytes != REEL_TOKFILE_HEADER_BYTES)
        return reel_fail(err, "%s: byte offset 12: header size %" PRIu32 ", expected %u", path, header_bytes,
                         REEL_TOKFILE_HEADER_BYTES);
    h->num_docs = load_u64(bytes + 16);
    h->num_tokens = load_u64(bytes + 24);
    h->vocab_size = load_u32(bytes + 32);
    h->num_classes = load_u32(bytes + 36);
    h->vocab_checksum = load_u64(bytes + 40);
    for (size_t i = 48; i < REEL_TOKFILE_HEADER_BYTES; i++)
        if (bytes[i] != 0)
            return reel_fail(err, "%s: byte offset %zu: reserved header byte is 0x%02x, expected 0", path, i,
                             bytes[i]);
    if (h->num_classes > (uint32_t)INT32_MAX)
        return reel_fail(err, "%s: byte offset 36: number of classes %" PRIu32 " exceeds %d", path,
                         h->num_classes, INT32_MAX);

    uint64_t expected;
    if (!expected_file_size(h->num_docs, h->num_tokens, h->num_classes, &expected))
        return reel_fail(err,
                         "%s: byte offset 16: N=%" PRIu64 " documents and T=%" PRIu64
                         " tokens imply a file larger than 2^64 bytes; the header is corrupt",
                         path, h->num_docs, h->num_tokens);
    if (expected != size)
        return reel_fail(err,
                         "%s: file is %" PRIu64 " bytes but the header (N=%" PRIu64 ", T=%" PRIu64 ", C=%" PRIu32
                         ") requires exactly %" PRIu64 " bytes (truncated or padded file)",
                         path, size, h->num_docs, h->num_tokens, h->num_classes, expected);

    f->doc_start = (const uint64_t *)(const void *)(bytes + REEL_TOKFILE_HEADER_BYTES);
    uint64_t after_index = REEL_TOKFILE_HEADER_BYTES + 8 * (h->num_docs + 1);
    f->labels = h->num_classes > 0 ? (const int32_t *)(const void *)(bytes + after_index) : NULL;
    f->ids_offset = after_index + (h->num_classes > 0 ? 4 * h->num_docs : 0);
    f->ids = (const uint32_t *)(const void *)(bytes + f->ids_offset);

    if (f->doc_start[0] != 0)
        return reel_fail(err, "%s: byte offset %u: doc_start[0] is %" PRIu64 ", expected 0", path,
                         REEL_TOKFILE_HEADER_BYTES, f->doc_start[0]);
    for (uint64_t i = 1; i <= h->num_docs; i++) {
        if (f->doc_start[i] < f->doc_start[i - 1])
            return reel_fail(err,
                             "%s: byte offset %" PRIu64 ": doc_start[%" PRIu64 "] = %" PRIu64
                             " is less than doc_start[%" PRIu64 "] = %" PRIu64 "; the index must be non-decreasing",
                             path, REEL_TOKFILE_HEADER_BYTES + 8 * i, i, f->doc_start[i], i - 1, f->doc_start[i - 1]);
    }
    if (f->doc_start[h->num_docs] != h->num_tokens)
        return reel_fail(err,
                         "%s: byte offset %" PRIu64 ": doc_start[N=%" PRIu64 "] = %" PRIu64
                         ", expected the token count T = %" PRIu64,
                         path, REEL_TOKFILE_HEADER_BYTES + 8 * h->num_docs, h->num_docs, f->doc_start[h->num_docs],
                         h->num_tokens);
    if (f->labels) {
        for (uint64_t i = 0; i < h->num_docs; i++) {
            int32_t label = f->labels[i];
            if (label < 0 || (uint32_t)label >= h->num_classes)
                return reel_fail(err,
                                 "%s: byte offset %" PRIu64 ": label of document %" PRIu64 " is %" PRId32
                                 ", expected a class in [0, %" PRIu32 ")",
                                 path, after_index + 4 * i, i, label, h->num_classes);
        }
    }
    return 0;
}

int reel_tokfile_open(reel_tokfile **out, const char *path, reel_error *err) {
    *out = NULL;
    if (!host_is_little_endian()) return refuse_big_endian(path, err);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return reel_fail(err, "%s: cannot open token file: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return reel_fail(err, "%s: cannot stat token file: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return reel_fail(err, "%s: not a regular file", path);
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < REEL_TOKFILE_HEADER_BYTES + 8) {
        close(fd);
        return reel_fail(err, "%s: file is %" PRIu64 " bytes, too short for the %u-byte header and index "
                              "(expected at least %u bytes)",
                         path, size, REEL_TOKFILE_HEADER_BYTES, REEL_TOKFILE_HEADER_BYTES + 8);
    }
    if (size > SIZE_MAX) {
        close(fd);
        return reel_fail(err, "%s: file of %" PRIu64 " bytes cannot be mapped on this host", path, size);
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd); /* the mapping keeps the file alive */
    if (map == MAP_FAILED) return reel_fail(err, "%s: cannot map token file: %s", path, strerror(map_errno));

    reel_tokfile *f = reel_calloc(1, sizeof *f);
    f->path = reel_malloc(strlen(path) + 1);
    memcpy(f->path, path, strlen(path) + 1);
    f->map = map;
    f->map_bytes = (size_t)size;
    if (parse_and_validate(f, map, size, err) != 0) {
        reel_tokfile_close(f);
        return -1;
    }
    f->validated = reel_calloc((size_t)(f->header.num_docs / 8 + 1), 1);
    *out = f;
    return 0;
}

const reel_tokfile_header *reel_tokfile_info(const reel_tokfile *file) { return &file->header; }

const char *reel_tokfile_path(const reel_tokfile *file) { return file->path; }

static int check_doc_ids(reel_tokfile *f, uint64_t doc, reel_error *err) {
    uint64_t begin = f->doc_start[doc], end = f->doc_start[doc + 1];
    uint32_t v = f->header.vocab_size;
    for (uint64_t k = begin; k < end; k++) {
        if (f->ids[k] >= v)
            return reel_fail(err,
                             "%s: byte offset %" PRIu64 ": token id %" PRIu32 " (document %" PRIu64
                             ", position %" PRIu64 ") is out of range, expected < vocabulary size V=%" PRIu32,
                             f->path, f->ids_offset + 4 * k, f->ids[k], doc, k - begin, v);
    }
    f->validated[doc >> 3] |= (uint8_t)(1u << (doc & 7));
    return 0;
}

int reel_tokfile_doc(reel_tokfile *file, uint64_t doc_index, const uint32_t **ids, size_t *length,
                     int32_t *label, reel_error *err) {
    if (doc_index >= file->header.num_docs)
        return reel_fail(err, "%s: document %" PRIu64 " requested, but the file has %" PRIu64 " documents",
                         file->path, doc_index, file->header.num_docs);
    if (!(file->validated[doc_index >> 3] & (1u << (doc_index & 7))) && check_doc_ids(file, doc_index, err) != 0)
        return -1;
    uint64_t begin = file->doc_start[doc_index];
    *ids = file->ids + begin;
    *length = (size_t)(file->doc_start[doc_index + 1] - begin);
    *label = file->labels ? file->labels[doc_index] : -1;
    return 0;
}

int32_t reel_tokfile_label(const reel_tokfile *file, uint64_t doc_index) {
    REEL_CHECK(doc_index < file->header.num_docs, NULL, "%s: document %" PRIu64 " of %" PRIu64, file->path, doc_index,
               file->header.num_docs);
    return file->labels ? file->labels[doc_index] : -1;
}

size_t reel_tokfile_doc_length(const reel_tokfile *file, uint64_t doc_index) {
    REEL_CHECK(doc_index < file->header.num_docs, NULL, "%s: document %" PRIu64 " of %" PRIu64, file->path, doc_index,
               file->header.num_docs);
    return (size_t)(file->doc_start[doc_index + 1] - file->doc_start[doc_index]);
}

int reel_tokfile_reverse(reel_tokfile *file, reel_error *err) {
    if (file->reversed) return 0;
    /* checked first, where a bad id's byte offset in the file is still its position */
    if (reel_tokfile_validate_all(file, err) != 0) return -1;
    uint64_t total = file->doc_start[file->header.num_docs];
    uint32_t *copy = reel_malloc((total ? total : 1) * sizeof *copy);
    for (uint64_t d = 0; d < file->header.num_docs; d++) {
        uint64_t begin = file->doc_start[d], end = file->doc_start[d + 1];
        for (uint64_t t = begin; t < end; t++) copy[t] = file->ids[begin + end - 1 - t];
    }
    file->reversed = copy;
    file->ids = copy;
    return 0;
}

int reel_tokfile_validate_all(reel_tokfile *file, reel_error *err) {
    for (uint64_t i = 0; i < file->header.num_docs; i++) {
        if (file->validated[i >> 3] & (1u << (i & 7))) continue;
        if (check_doc_ids(file, i, err) != 0) return -1;
    }
    return 0;
}

/* ---- writing ----
 * The counts are known up front, so the layout is fixed at open: ids stream straight to their final
 * offset while the index and labels (8+4 bytes per document) wait in memory until finish. */

struct reel_tokfile_writer {
    char *path;
    char *tmp_path;
    FILE *fp;
    uint64_t num_docs, num_tokens;
    uint32_t vocab_size, num_classes;
    uint64_t docs_written, tokens_written;
    uint64_t *doc_start; /* num_docs + 1 entries */
    int32_t *labels;     /* num_docs entries when num_classes > 0 */
};

static void writer_free(reel_tokfile_writer *w) {
    free(w->doc_start);
    free(w->labels);
    free(w->tmp_path);
    free(w->path);
    free(w);
}

void reel_tokfile_writer_abort(reel_tokfile_writer *writer) {
    if (!writer) return;
    if (writer->fp) fclose(writer->fp);
    unlink(writer->tmp_path);
    writer_free(writer);
}

int reel_tokfile_writer_open(reel_tokfile_writer **out, const char *path, uint64_t num_docs,
                             uint64_t num_tokens, uint32_t vocab_size, uint32_t num_classes,
                             uint64_t vocab_checksum, reel_error *err) {
    *out = NULL;
    if (!host_is_little_endian()) return refuse_big_endian(path, err);
    uint64_t total;
    if (!expected_file_size(num_docs, num_tokens, num_classes, &total) || num_docs >= SIZE_MAX / 8)
        return reel_fail(err, "%s: %" PRIu64 " documents and %" PRIu64 " tokens are too many for one token file",
                         path, num_docs, num_tokens);
    if (num_classes > (uint32_t)INT32_MAX)
        return reel_fail(err, "%s: %" PRIu32 " classes is more than the format allows (%d)", path, num_classes,
                         INT32_MAX);

    reel_tokfile_writer *w = reel_calloc(1, sizeof *w);
    size_t len = strlen(path);
    w->path = reel_malloc(len + 1);
    memcpy(w->path, path, len + 1);
    w->tmp_path = reel_malloc(len + 5);
    memcpy(w->tmp_path, path, len);
    memcpy(w->tmp_path + len, ".tmp", 5);
    w->num_docs = num_docs;
    w->num_tokens = num_tokens;
    w->vocab_size = vocab_size;
    w->num_classes = num_classes;
    w->doc_start = reel_malloc((size_t)(num_docs + 1) * sizeof *w->doc_start);
    w->doc_start[0] = 0;
    if (num_classes > 0) w->labels = reel_malloc((size_t)(num_docs ? num_docs : 1) * sizeof *w->labels);

    w->fp = fopen(w->tmp_path, "wb");
    if (!w->fp) {
        int e = errno;
        writer_free(w);
        return reel_fail(err, "%s.tmp: cannot create token file: %s", path, strerror(e));
    }
    setvbuf(w->fp, NULL, _IOFBF, (size_t)1 << 20);

    unsigned char header[REEL_TOKFILE_HEADER_BYTES] = {0};
    uint32_t version = REEL_TOKFILE_VERSION, header_bytes = REEL_TOKFILE_HEADER_BYTES;
    memcpy(header, REEL_TOKFILE_MAGIC, sizeof REEL_TOKFILE_MAGIC);
    memcpy(header + 8, &version, 4);
    memcpy(header + 12, &header_bytes, 4);
    memcpy(header + 16, &num_docs, 8);
    memcpy(header + 24, &num_tokens, 8);
    memcpy(header + 32, &vocab_size, 4);
    memcpy(header + 36, &num_classes, 4);
    memcpy(header + 40, &vocab_checksum, 8);
    uint64_t ids_offset = REEL_TOKFILE_HEADER_BYTES + 8 * (num_docs + 1) + (num_classes > 0 ? 4 * num_docs : 0);
    if (fwrite(header, 1, sizeof header, w->fp) != sizeof header ||
        fseeko(w->fp, (off_t)ids_offset, SEEK_SET) != 0) {
        int e = errno;
        reel_tokfile_writer_abort(w);
        return reel_fail(err, "%s.tmp: cannot write token file header: %s", path, strerror(e));
    }
    *out = w;
    return 0;
}

int reel_tokfile_writer_add(reel_tokfile_writer *w, const uint32_t *ids, size_t length, int32_t label,
                            reel_error *err) {
    if (w->docs_written >= w->num_docs)
        return reel_fail(err, "%s: document %" PRIu64 " added, but the writer was opened for %" PRIu64 " documents",
                         w->path, w->docs_written, w->num_docs);
    if ((uint64_t)length > w->num_tokens - w->tokens_written)
        return reel_fail(err,
                         "%s: document %" PRIu64 " has %zu tokens, more than the %" PRIu64
                         " left of the %" PRIu64 " promised at open",
                         w->path, w->docs_written, length, w->num_tokens - w->tokens_written, w->num_tokens);
    if (w->num_classes > 0 && (label < 0 || (uint32_t)label >= w->num_classes))
        return reel_fail(err, "%s: document %" PRIu64 " has label %" PRId32 ", expected a class in [0, %" PRIu32 ")",
                         w->path, w->docs_written, label, w->num_classes);
    for (size_t k = 0; k < length; k++)
        if (ids[k] >= w->vocab_size)
            return reel_fail(err,
                             "%s: document %" PRIu64 " position %zu: token id %" PRIu32
                             " is out of range, expected < vocabulary size V=%" PRIu32,
                             w->path, w->docs_written, k, ids[k], w->vocab_size);
    if (length > 0 && fwrite(ids, sizeof *ids, length, w->fp) != length)
        return reel_fail(err, "%s.tmp: write failed: %s", w->path, strerror(errno));
    if (w->labels) w->labels[w->docs_written] = label;
    w->tokens_written += length;
    w->docs_written++;
    w->doc_start[w->docs_written] = w->tokens_written;
    return 0;
}

/* The writer is released whether or not this succeeds; on failure the temporary is removed. */
int reel_tokfile_writer_finish(reel_tokfile_writer *w, reel_error *err) {
    if (w->docs_written != w->num_docs || w->tokens_written != w->num_tokens) {
        reel_fail(err,
                  "%s: writer finished after %" PRIu64 " documents and %" PRIu64 " tokens, but %" PRIu64
                  " documents and %" PRIu64 " tokens were promised at open",
                  w->path, w->docs_written, w->tokens_written, w->num_docs, w->num_tokens);
        reel_tokfile_writer_abort(w);
        return -1;
    }
    int ok = fseeko(w->fp, REEL_TOKFILE_HEADER_BYTES, SEEK_SET) == 0 &&
             fwrite(w->doc_start, 8, (size_t)w->num_docs + 1, w->fp) == (size_t)w->num_docs + 1 &&
             (!w->labels || fwrite(w->labels, 4, (size_t)w->num_docs, w->fp) == (size_t)w->num_docs) &&
             fflush(w->fp) == 0 && fsync(fileno(w->fp)) == 0;
    if (!ok) {
        reel_fail(err, "%s.tmp: cannot write the token file index: %s", w->path, strerror(errno));
        reel_tokfile_writer_abort(w);
        return -1;
    }
    int closed = fclose(w->fp);
    w->fp = NULL;
    if (closed != 0) {
        reel_fail(err, "%s.tmp: cannot close the token file: %s", w->path, strerror(errno));
        reel_tokfile_writer_abort(w);
        return -1;
    }
    if (rename(w->tmp_path, w->path) != 0) {
        reel_fail(err, "%s: cannot rename %s into place: %s", w->path, w->tmp_path, strerror(errno));
        reel_tokfile_writer_abort(w);
        return -1;
    }
    int rc = reel_sync_parent_dir(w->path, err);
    writer_free(w);
    return rc;
}
