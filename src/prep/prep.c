/* The prep pipeline (see include/reel/prep.h for what it produces).
 *
 * Pass 1 streams the input once: each document is tokenized, its words are counted and turned into
 * provisional ids (first-seen order), and the ids go to an unnamed temporary file per input split, with
 * 24 bytes of bookkeeping per document kept in memory. Optionally a second thread reads/decompresses the
 * input while the main thread tokenizes. Then the vocabulary is fixed, and pass 2 reads each split's
 * documents back in canonical order, remaps the ids and writes the .tok files. */
#include "reel/prep.h"

#include <Random123/philox.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <limits.h>
#include <time.h>
#include <xxhash.h>

#include "prep_internal.h"
#include "reel/comm.h"
#include "reel/data.h"
#include "reel/pieces.h"
#include "reel/tokenizer.h"
#include "reel/tokfile.h"
#include "reel/vocab.h"

static const char *const split_names[REEL_SPLIT_COUNT] = {"train", "valid", "test", "unsup"};

const char *reel_split_name(int split) {
    return split >= 0 && split < REEL_SPLIT_COUNT ? split_names[split] : "?";
}

const char *reel_prep_format_name(reel_prep_format format) {
    switch (format) {
    case REEL_PREP_IMDB: return "imdb";
    case REEL_PREP_TSV: return "tsv";
    case REEL_PREP_TEXT: return "text";
    default: return "auto";
    }
}

void reel_prep_options_default(reel_prep_options *opts) {
    memset(opts, 0, sizeof *opts);
    opts->format = REEL_PREP_AUTO;
    opts->valid_count = -1;
    opts->valid_fraction = -1.0;
    opts->seed = 42;
    opts->vocab_size = 30000;
    opts->min_count = 1;
    opts->threads = 2;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Where the IMDb layout starts inside a directory input: the directory itself or its aclImdb/. */
static int imdb_root(const char *input, reel_buf *root, reel_error *err) {
    root->length = 0;
    reel_buf_printf(root, "%s/train", input);
    if (is_dir(root->data)) {
        root->length = 0;
        reel_buf_printf(root, "%s", input);
        return 0;
    }
    root->length = 0;
    reel_buf_printf(root, "%s/aclImdb", input);
    if (is_dir(root->data)) return 0;
    return reel_fail(err,
                     "%s: directory holds neither train/ nor aclImdb/; expected the extracted IMDb layout "
                     "(aclImdb/train/pos, aclImdb/train/neg, optional aclImdb/train/unsup, aclImdb/test/pos, "
                     "aclImdb/test/neg), or give a .tar.gz archive, a .tsv file or a text file",
                     input);
}

int reel_prep_detect_format(const char *input, reel_prep_format *format, reel_error *err) {
    struct stat st;
    if (stat(input, &st) != 0) return reel_fail(err, "%s: cannot open input: %s", input, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        reel_buf root = {0};
        int rc = imdb_root(input, &root, err);
        reel_buf_free(&root);
        if (rc == 0) *format = REEL_PREP_IMDB;
        return rc;
    }
    if (ends_with(input, ".tar.gz") || ends_with(input, ".tgz"))
        *format = REEL_PREP_IMDB;
    else if (ends_with(input, ".tsv"))
        *format = REEL_PREP_TSV;
    else
        *format = REEL_PREP_TEXT;
    return 0;
}

/* ---- the reader thread: a bounded queue of tokenized documents ----
 * Reading (for the archive: gzip decompression) plus tokenizing take about as long as counting plus
 * writing, so the reader thread does the first two and the main thread the rest. */

enum { QUEUE_SLOTS = 64 };
/* A slot that had to hold a huge document gives its memory back after use, so a few outliers do not
 * keep QUEUE_SLOTS times their size allocated. */
#define SLOT_KEEP_BYTES ((size_t)4 << 20)

typedef struct {
    prep_doc doc;
    reel_tokenizer tok;
    const reel_token *tokens;
    size_t count;
    int status; /* what src->next returned */
} doc_slot;

typedef struct {
    prep_source *src;
    doc_slot slots[QUEUE_SLOTS];
    reel_error error;  /* the producer's, when a status is -1 */
    size_t head, tail; /* consumed / produced so far; slots in [head, tail) are full */
    int stop;          /* the consumer gave up */
    int threaded;
    pthread_mutex_t mutex;
    pthread_cond_t not_empty, not_full;
    pthread_t thread;
} doc_queue;

static void fill_slot(prep_source *src, doc_slot *slot, reel_error *err) {
    slot->status = src->next(src, &slot->doc, err);
    slot->count = 0;
    if (slot->status == 1)
        slot->tokens = reel_tokenize(&slot->tok, slot->doc.text.data ? slot->doc.text.data : "",
                                     slot->doc.text.length, &slot->count);
}

static void *producer_main(void *arg) {
    doc_queue *q = arg;
    for (;;) {
        pthread_mutex_lock(&q->mutex);
        while (q->tail - q->head == QUEUE_SLOTS && !q->stop) pthread_cond_wait(&q->not_full, &q->mutex);
        int stop = q->stop;
        doc_slot *slot = &q->slots[q->tail % QUEUE_SLOTS];
        pthread_mutex_unlock(&q->mutex);
        if (stop) return NULL;
        /* The slot is outside [head, tail), so the consumer does not touch it while it is filled. */
        fill_slot(q->src, slot, &q->error);
        pthread_mutex_lock(&q->mutex);
        q->tail++;
        pthread_cond_signal(&q->not_empty);
        pthread_mutex_unlock(&q->mutex);
        if (slot->status <= 0) return NULL;
    }
}

static void queue_start(doc_queue *q, prep_source *src, int threaded) {
    q->src = src;
    q->threaded = threaded;
    if (!threaded) return;
    pthread_mutex_init(&q->mutex, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    int rc = pthread_create(&q->thread, NULL, producer_main, q);
    REEL_CHECK(rc == 0, NULL, "cannot start the reader thread: %s", strerror(rc));
}

/* The next slot; its status is 1 for a document (valid until queue_release), 0 at the end, -1 on
 * error (copied to err). */
static doc_slot *queue_take(doc_queue *q, reel_error *err) {
    if (!q->threaded) {
        fill_slot(q->src, &q->slots[0], err);
        return &q->slots[0];
    }
    pthread_mutex_lock(&q->mutex);
    while (q->head == q->tail) pthread_cond_wait(&q->not_empty, &q->mutex);
    doc_slot *slot = &q->slots[q->head % QUEUE_SLOTS];
    pthread_mutex_unlock(&q->mutex);
    if (slot->status < 0 && err) *err = q->error;
    return slot;
}

static void queue_release(doc_queue *q, doc_slot *slot) {
    if (slot->doc.text.capacity > SLOT_KEEP_BYTES || slot->tok.norm_capacity > 3 * SLOT_KEEP_BYTES) {
        reel_buf_free(&slot->doc.text);
        reel_tokenizer_free(&slot->tok);
    }
    if (!q->threaded) return;
    pthread_mutex_lock(&q->mutex);
    q->head++;
    pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->mutex);
}

/* Stops the producer (if it is still running) and frees the slots. */
static void queue_finish(doc_queue *q) {
    if (q->threaded) {
        pthread_mutex_lock(&q->mutex);
        q->stop = 1;
        pthread_cond_signal(&q->not_full);
        pthread_mutex_unlock(&q->mutex);
        pthread_join(q->thread, NULL);
        pthread_mutex_destroy(&q->mutex);
        pthread_cond_destroy(&q->not_empty);
        pthread_cond_destroy(&q->not_full);
        q->threaded = 0;
    }
    for (size_t i = 0; i < QUEUE_SLOTS; i++) {
        reel_buf_free(&q->slots[i].doc.text);
        reel_tokenizer_free(&q->slots[i].tok);
    }
}

/* ---- pipeline state ---- */

typedef struct {
    uint64_t key;
    uint64_t offset; /* of the document's first byte in the split's temporary file */
    uint32_t length; /* tokens */
    int32_t label;   /* as read (tsv: first-seen label index) */
    uint32_t bytes;  /* of its encoded ids (pieces, before encoding: of its normalised text) */
    uint32_t text_bytes; /* of its normalised text */
    uint32_t words;      /* word tokens in it */
} doc_rec;

typedef struct {
    doc_rec *recs;
    size_t count, capacity;
    FILE *tmp; /* provisional ids (see encode_ids), unnamed */
    uint64_t bytes;
} in_split;

typedef struct {
    const reel_prep_options *opts;
    reel_prep_result *result;
    reel_prep_format format;
    reel_buf path; /* scratch for file names */
    prep_source *src;
    in_split in[PREP_IN_COUNT];
    prep_counter *counter;
    uint32_t *final_id;
    int32_t *class_of; /* source label index -> class id */
    uint32_t num_classes;
    reel_vocab vocab;
    char *written[REEL_SPLIT_COUNT + 3]; /* outputs renamed into place by this run */
    char *pieces;        /* pieces: the serialized piece model */
    size_t pieces_bytes;
    size_t num_written;
    double start; /* reel_now_seconds() at the start of the run */
} prep_ctx;

static const char *out_path(prep_ctx *ctx, const char *name) {
    ctx->path.length = 0;
    reel_buf_printf(&ctx->path, "%s/%s", ctx->opts->outdir, name);
    return ctx->path.data;
}

static void remember_written(prep_ctx *ctx, const char *path) {
    size_t n = strlen(path) + 1;
    ctx->written[ctx->num_written] = reel_malloc(n);
    memcpy(ctx->written[ctx->num_written++], path, n);
}

/* An unlinked file in OUTDIR: it disappears by itself when closed, even if prep is killed. */
static int open_temp_file(prep_ctx *ctx, int split, const char *kind, FILE **out, reel_error *err) {
    static const char *const names[PREP_IN_COUNT] = {"train", "test", "unsup"};
    ctx->path.length = 0;
    reel_buf_printf(&ctx->path, "%s/.reel-prep-%ld-%s.%s.tmp", ctx->opts->outdir, (long)getpid(), names[split], kind);
    FILE *fp = fopen(ctx->path.data, "w+b");
    if (!fp) return reel_fail(err, "%s: cannot create a temporary file: %s", ctx->path.data, strerror(errno));
    unlink(ctx->path.data);
    setvbuf(fp, NULL, _IOFBF, (size_t)1 << 20);
    *out = fp;
    return 0;
}

static int open_temp(prep_ctx *ctx, int split, reel_error *err) {
    return open_temp_file(ctx, split, ctx->opts->tokenizer == REEL_PREP_PIECES ? "text" : "ids", &ctx->in[split].tmp,
                          err);
}

/* ---- pass 1 ---- */

/* Provisional ids go to the temporary files as LEB128 varints: ids are in first-seen order, so frequent
 * words have small ids and a token takes under 2 bytes on average instead of 4. Writing to the page
 * cache costs real time on small machines, and this halves it. Returns the number of bytes used. */
static size_t encode_ids(const uint32_t *ids, size_t count, unsigned char *out) {
    unsigned char *p = out;
    for (size_t i = 0; i < count; i++) {
        uint32_t v = ids[i];
        while (v >= 0x80) {
            *p++ = (unsigned char)(v | 0x80);
            v >>= 7;
        }
        *p++ = (unsigned char)v;
    }
    return (size_t)(p - out);
}

/* Decodes exactly count ids from in[0..bytes); 0 when the bytes do not hold them (a corrupt temporary). */
static int decode_ids(const unsigned char *in, size_t bytes, uint32_t *ids, size_t count) {
    const unsigned char *p = in, *end = in + bytes;
    for (size_t i = 0; i < count; i++) {
        uint32_t v = 0;
        for (unsigned shift = 0;; shift += 7) {
            if (p == end || shift > 28) return 0;
            unsigned char b = *p++;
            v |= (uint32_t)(b & 0x7F) << shift;
            if (!(b & 0x80)) break;
        }
        ids[i] = v;
    }
    return p == end;
}

static int pass_tokenize(prep_ctx *ctx, reel_error *err) {
    int pieces = ctx->opts->tokenizer == REEL_PREP_PIECES;
    doc_queue *q = reel_calloc(1, sizeof *q);
    uint32_t *ids = NULL;
    unsigned char *encoded = NULL;
    size_t ids_capacity = 0;
    int rc = 0;
    queue_start(q, ctx->src, ctx->opts->threads >= 2);
    for (;;) {
        doc_slot *slot = queue_take(q, err);
        if (slot->status <= 0) {
            rc = slot->status;
            break;
        }
        const prep_doc *doc = &slot->doc;
        size_t count = slot->count;
        REEL_CHECK(count <= UINT32_MAX, NULL, "document with %zu tokens", count);
        if (count > ids_capacity) {
            ids_capacity = count * 2;
            ids = reel_realloc(ids, ids_capacity * sizeof *ids);
            encoded = reel_realloc(encoded, ids_capacity * 5);
        }
        in_split *in = &ctx->in[doc->split];
        size_t bytes;
        const void *out;
        if (pieces) {
            /* the normalised text waits for the piece model; its pieces are counted once they exist */
            bytes = slot->tok.norm_length;
            out = slot->tok.norm;
        } else {
            uint64_t add = doc->split == PREP_IN_TEST ? 0 : 1;
            for (size_t i = 0; i < count; i++)
                ids[i] = prep_counter_intern(ctx->counter, slot->tokens[i].text, slot->tokens[i].length, add);
            bytes = count ? encode_ids(ids, count, encoded) : 0;
            out = encoded;
        }
        REEL_CHECK(bytes <= UINT32_MAX && slot->tok.norm_length <= UINT32_MAX, NULL, "document with %zu tokens", count);
        if (bytes > 0 && fwrite(out, 1, bytes, in->tmp) != bytes) {
            rc = reel_fail(err, "%s: cannot write a temporary file: %s", ctx->opts->outdir, strerror(errno));
            break;
        }
        if (in->count == in->capacity) {
            in->capacity = in->capacity ? in->capacity * 2 : 1024;
            in->recs = reel_realloc(in->recs, in->capacity * sizeof *in->recs);
        }
        in->recs[in->count++] = (doc_rec){doc->key,           in->bytes, pieces ? 0 : (uint32_t)count, doc->label,
                                          (uint32_t)bytes,    (uint32_t)slot->tok.norm_length, (uint32_t)count};
        in->bytes += bytes;
        queue_release(q, slot);
    }
    queue_finish(q);
    free(q);
    free(ids);
    free(encoded);
    if (rc != 0) return -1;
    for (int s = 0; s < PREP_IN_COUNT; s++)
        if (ctx->in[s].tmp && fflush(ctx->in[s].tmp) != 0)
            return reel_fail(err, "%s: cannot write a temporary file: %s", ctx->opts->outdir, strerror(errno));
    return 0;
}

/* ---- labels ---- */

static char *const *sort_names;
static int by_name(const void *a, const void *b) {
    return strcmp(sort_names[*(const size_t *)a], sort_names[*(const size_t *)b]);
}

/* TSV classes are the sorted label names, so the ids do not depend on which label comes first. */
static void fix_classes(prep_ctx *ctx) {
    size_t n = ctx->src->num_labels;
    ctx->num_classes = (uint32_t)n;
    if (n == 0) return;
    size_t *order = reel_malloc(n * sizeof *order);
    for (size_t i = 0; i < n; i++) order[i] = i;
    sort_names = ctx->src->label_names;
    if (n > 1) qsort(order, n, sizeof *order, by_name); /* may be NULL when empty */
    sort_names = NULL;
    ctx->class_of = reel_malloc(n * sizeof *ctx->class_of);
    for (size_t c = 0; c < n; c++) ctx->class_of[order[c]] = (int32_t)c;
    free(order);
}

static int write_labels(prep_ctx *ctx, reel_error *err) {
    reel_buf text = {0};
    size_t n = ctx->src->num_labels;
    for (size_t c = 0; c < n; c++)
        for (size_t i = 0; i < n; i++)
            if (ctx->class_of[i] == (int32_t)c) reel_buf_printf(&text, "%s\n", ctx->src->label_names[i]);
    const char *path = out_path(ctx, "labels.txt");
    int rc = reel_write_file_atomic(path, text.data, text.length, err);
    reel_buf_free(&text);
    if (rc == 0) remember_written(ctx, path);
    return rc;
}

/* ---- pass 2 ---- */

static int by_label_then_key(const void *pa, const void *pb) {
    const doc_rec *a = pa, *b = pb;
    if (a->label != b->label) return a->label < b->label ? -1 : 1;
    return a->key < b->key ? -1 : a->key > b->key;
}

static int by_key(const void *pa, const void *pb) {
    const doc_rec *a = pa, *b = pb;
    return a->key < b->key ? -1 : a->key > b->key;
}

static int canonical_order(prep_ctx *ctx, int split, reel_error *err) {
    in_split *in = &ctx->in[split];
    int imdb = ctx->format == REEL_PREP_IMDB;
    if (in->count > 1) qsort(in->recs, in->count, sizeof *in->recs, imdb ? by_label_then_key : by_key); /* may be NULL when empty */
    if (!imdb) return 0;
    for (size_t i = 1; i < in->count; i++) {
        const doc_rec *a = &in->recs[i - 1], *b = &in->recs[i];
        if (a->label == b->label && a->key == b->key) {
            static const char *const dirs[PREP_IN_COUNT] = {"train", "test", "train/unsup"};
            return reel_fail(err, "%s: two reviews with id %" PRIu64 " in %s%s; ids must be unique in a directory",
                             ctx->opts->input, a->key, dirs[split], a->label < 0 ? "" : a->label ? "/pos" : "/neg");
        }
    }
    return 0;
}

/* Marks exactly `count` of the n canonical training documents as validation: the first `count` of a
 * Fisher-Yates shuffle drawn from Philox keyed by the seed (the same seed always picks the same set). */
static uint8_t *choose_valid(size_t n, size_t count, uint64_t seed) {
    uint8_t *is_valid = reel_calloc(n ? n : 1, 1);
    uint32_t *perm = reel_malloc((n ? n : 1) * sizeof *perm);
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    philox4x32_key_t key = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
    for (size_t i = n; i > 1; i--) {
        philox4x32_ctr_t ctr = {{(uint32_t)i, (uint32_t)((uint64_t)i >> 32), 0x76616c69u /* "vali" */, 0}};
        philox4x32_ctr_t r = philox4x32(ctr, key);
        uint64_t bits = (uint64_t)r.v[0] << 32 | r.v[1];
        size_t j = (size_t)(bits % i); /* bias below n / 2^64: irrelevant here */
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < count; i++) is_valid[perm[i]] = 1;
    free(perm);
    return is_valid;
}

typedef struct {
    reel_tokfile_writer *writer;
    const char *name;
    int out_split;
} out_file;

static int open_output(prep_ctx *ctx, out_file *out, int split, uint64_t docs, uint64_t tokens, uint32_t classes,
                       reel_error *err) {
    char name[32];
    snprintf(name, sizeof name, "%s.tok", split_names[split]);
    out->out_split = split;
    return reel_tokfile_writer_open(&out->writer, out_path(ctx, name), docs, tokens, (uint32_t)ctx->vocab.size,
                                    classes, ctx->vocab.checksum, err);
}

static int finish_output(prep_ctx *ctx, out_file *out, reel_error *err) {
    char name[32];
    snprintf(name, sizeof name, "%s.tok", split_names[out->out_split]);
    reel_tokfile_writer *w = out->writer;
    out->writer = NULL;
    if (reel_tokfile_writer_finish(w, err) != 0) return -1;
    remember_written(ctx, out_path(ctx, name));
    ctx->result->split[out->out_split].present = 1;
    return 0;
}

/* rec's bytes from its split's temporary file (descriptor fd) into out. */
static int read_back(prep_ctx *ctx, int fd, const doc_rec *rec, unsigned char *out, reel_error *err) {
    size_t got = 0;
    while (got < rec->bytes) {
        ssize_t n = pread(fd, out + got, rec->bytes - got, (off_t)(rec->offset + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            return reel_fail(err, "%s: cannot read back a temporary file: %s", ctx->opts->outdir,
                             n < 0 ? strerror(errno) : "unexpected end of file");
        got += (size_t)n;
    }
    return 0;
}

/* ---- pieces ---- */

/* SentencePiece's trainer threads: a fixed number, since its sums (unigram's expected counts) are split
 * by thread, so the model's bytes depend on it; not on --threads. */
enum { PIECE_TRAIN_THREADS = 2 };

/* The training texts handed to the trainer: the normalised train documents, then unsup, in canonical
 * order (test never). */
typedef struct {
    prep_ctx *ctx;
    int split;
    size_t index;
    unsigned char *buf;
    size_t capacity;
    int failed;
    reel_error err;
} text_walk;

static int next_training_text(void *arg, const char **text, size_t *length) {
    text_walk *w = arg;
    while (w->split < PREP_IN_COUNT && !w->failed) {
        in_split *in = &w->ctx->in[w->split];
        if (w->split == PREP_IN_TEST || w->index >= in->count) {
            w->split++;
            w->index = 0;
            continue;
        }
        const doc_rec *rec = &in->recs[w->index++];
        if (rec->bytes == 0) continue;
        if (rec->bytes > w->capacity) {
            w->capacity = (size_t)rec->bytes * 2;
            w->buf = reel_realloc(w->buf, w->capacity);
        }
        if (read_back(w->ctx, fileno(in->tmp), rec, w->buf, &w->err) != 0) {
            w->failed = 1;
            return 0;
        }
        *text = (const char *)w->buf;
        *length = rec->bytes;
        return 1;
    }
    return 0;
}

/* ---- several ranks ----
 * Under mpirun with pieces, every rank reads and normalises the whole input (a gzip stream cannot be
 * split, and this is the cheap part), rank 0 trains the piece model and sends it to the others, and
 * the documents are encoded by the ranks in turn: the document at canonical position g (train, test,
 * unsup, in the order pass 2 writes them) by rank g mod P. Rank 0 collects the pieces and the counts
 * and writes everything, as one process would: the same bytes. The other ranks wait without spinning
 * (polling every 5 ms), since a busy wait would take a core from the work. */

static void wait_quietly(MPI_Request *request) {
    for (;;) {
        int done = 0;
        REEL_MPI_CHECK(MPI_Test(request, &done, MPI_STATUS_IGNORE));
        if (done) return;
        struct timespec pause = {0, 5 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

static void bcast_quietly(const reel_comm *comm, void *data, size_t bytes) {
    for (size_t done = 0; done < bytes;) {
        int piece = bytes - done > INT_MAX ? INT_MAX : (int)(bytes - done);
        MPI_Request request;
        REEL_MPI_CHECK(MPI_Ibcast((char *)data + done, piece, MPI_BYTE, 0, comm->comm, &request));
        wait_quietly(&request);
        done += (size_t)piece;
    }
}

/* Every rank's rc: -1 on every rank when any failed (the others' errors say "rank N failed"). */
static int agree(const reel_comm *comm, int rc, reel_error *err) {
    if (!comm || comm->size == 1) return rc;
    int failed = rc != 0, any = 0;
    MPI_Request request;
    REEL_MPI_CHECK(MPI_Iallreduce(&failed, &any, 1, MPI_INT, MPI_MAX, comm->comm, &request));
    wait_quietly(&request);
    if (any && rc == 0) reel_fail(err, "another rank of the prep failed (its error is printed by rank 0 or itself)");
    return any ? -1 : 0;
}

static void send_quietly(const reel_comm *comm, const void *data, size_t bytes, int tag) {
    for (size_t done = 0; done < bytes;) {
        int piece = bytes - done > INT_MAX ? INT_MAX : (int)(bytes - done);
        MPI_Request request;
        REEL_MPI_CHECK(MPI_Isend((const char *)data + done, piece, MPI_BYTE, 0, tag, comm->comm, &request));
        wait_quietly(&request);
        done += (size_t)piece;
    }
}

static void recv_all(const reel_comm *comm, void *data, size_t bytes, int from, int tag) {
    for (size_t done = 0; done < bytes;) {
        int piece = bytes - done > INT_MAX ? INT_MAX : (int)(bytes - done);
        REEL_MPI_CHECK(MPI_Recv((char *)data + done, piece, MPI_BYTE, from, tag, comm->comm, MPI_STATUS_IGNORE));
        done += (size_t)piece;
    }
}

/* One rank's encoded documents: for each, its pieces and the bytes of their varint encoding, then all
 * the encoded bytes in document order. */
typedef struct {
    uint32_t *lengths; /* (docs, 2): pieces, bytes */
    size_t docs;
    unsigned char *bytes;
    size_t used, capacity;
    size_t next_doc, next_byte; /* reading back on rank 0 */
} encoded_share;

/* Rank 0 gets every rank's share (its own is in shares[0] already). */
static void gather_shares(const reel_comm *comm, encoded_share *shares) {
    if (comm->rank != 0) {
        encoded_share *mine = &shares[0];
        uint64_t header[2] = {mine->docs, mine->used};
        send_quietly(comm, header, sizeof header, 1);
        send_quietly(comm, mine->lengths, mine->docs * 2 * sizeof *mine->lengths, 2);
        send_quietly(comm, mine->bytes, mine->used, 3);
        return;
    }
    for (int r = 1; r < comm->size; r++) {
        uint64_t header[2];
        recv_all(comm, header, sizeof header, r, 1);
        encoded_share *share = &shares[r];
        share->docs = (size_t)header[0];
        share->used = (size_t)header[1];
        share->lengths = reel_malloc((share->docs ? share->docs : 1) * 2 * sizeof *share->lengths);
        share->bytes = reel_malloc(share->used ? share->used : 1);
        recv_all(comm, share->lengths, share->docs * 2 * sizeof *share->lengths, r, 2);
        recv_all(comm, share->bytes, share->used, r, 3);
    }
}

/* The piece model: trained (or read) by rank 0, sent to the other ranks. */
static int obtain_model(prep_ctx *ctx, const char **model_name, reel_error *err) {
    const reel_prep_options *o = ctx->opts;
    const reel_comm *comm = o->comm;
    int rc = 0;
    *model_name = o->pieces_model_path ? o->pieces_model_path : "the trained piece model";
    if (!comm || comm->rank == 0) {
        if (o->pieces_model_path) {
            reel_buf model = {0};
            rc = reel_read_file(&model, o->pieces_model_path, (size_t)1 << 30, 0, err);
            ctx->pieces = model.data ? model.data : reel_malloc(1);
            ctx->pieces_bytes = model.length;
        } else {
            text_walk walk = {ctx, PREP_IN_TRAIN, 0, NULL, 0, 0, {{0}}};
            reel_pieces_options po = {o->piece_bpe ? REEL_PIECES_BPE : REEL_PIECES_UNIGRAM, o->vocab_size,
                                      PIECE_TRAIN_THREADS, o->seed, 0};
            rc = reel_pieces_train(&ctx->pieces, &ctx->pieces_bytes, next_training_text, &walk, &po, err);
            free(walk.buf);
            if (walk.failed) {
                *err = walk.err;
                rc = -1;
            }
        }
    }
    if (!comm || comm->size == 1) return rc;
    uint64_t header[2] = {rc != 0, ctx->pieces_bytes};
    bcast_quietly(comm, header, sizeof header);
    if (header[0]) return comm->rank == 0 ? -1 : reel_fail(err, "another rank of the prep failed: rank 0 could not make the piece model");
    if (comm->rank != 0) {
        ctx->pieces_bytes = (size_t)header[1];
        ctx->pieces = reel_malloc(ctx->pieces_bytes ? ctx->pieces_bytes : 1);
    }
    bcast_quietly(comm, ctx->pieces, ctx->pieces_bytes);
    return 0;
}

/* Trains or reads the piece model, makes ctx->vocab its pieces, and replaces every split's normalised
 * texts by their piece ids (the provisional ids' encoding, with final_id the identity), counting the
 * pieces of the counted splits. With several ranks, returns 1 on the ranks other than 0 once their
 * share is sent: rank 0 alone goes on to write. */
static int build_pieces(prep_ctx *ctx, reel_error *err) {
    const reel_prep_options *o = ctx->opts;
    const reel_comm *comm = o->comm && o->comm->size > 1 ? o->comm : NULL;
    int P = comm ? comm->size : 1, rank = comm ? comm->rank : 0;
    const char *model_name;
    double t0 = reel_now_seconds();
    if (obtain_model(ctx, &model_name, err) != 0) return -1;
    ctx->result->seconds_piece_model = reel_now_seconds() - t0;
    reel_pieces *processor = NULL;
    reel_error why = {{0}};
    if (reel_pieces_load(&processor, ctx->pieces, ctx->pieces_bytes, &why) != 0)
        return reel_fail(err, "%s: %s", model_name, why.message);
    size_t n = reel_pieces_count(processor);
    ctx->vocab.size = n;
    ctx->vocab.tokens = reel_calloc(n, sizeof *ctx->vocab.tokens);
    ctx->vocab.counts = reel_calloc(n, sizeof *ctx->vocab.counts);
    for (size_t id = 0; id < n; id++) ctx->vocab.tokens[id] = strdup(reel_pieces_spelling(processor, id));
    reel_pieces_free(processor);
    if (reel_vocab_attach_pieces(&ctx->vocab, ctx->pieces, ctx->pieces_bytes, "its spellings", model_name, err) != 0)
        return -1;

    /* this rank's documents, encoded in memory (about 2 bytes a piece) */
    encoded_share *shares = reel_calloc((size_t)P, sizeof *shares);
    encoded_share *mine = &shares[0];
    uint64_t total_docs = 0;
    for (int s = 0; s < PREP_IN_COUNT; s++) total_docs += ctx->in[s].count;
    mine->lengths = reel_malloc((total_docs / (uint64_t)P + 1) * 2 * sizeof *mine->lengths);
    uint32_t *ids = NULL;
    size_t ids_capacity = 0, text_capacity = 0;
    unsigned char *text = NULL;
    int rc = 0;
    uint64_t g = 0;
    for (int s = 0; s < PREP_IN_COUNT && rc == 0; s++) {
        in_split *in = &ctx->in[s];
        for (size_t i = 0; i < in->count && rc == 0; i++, g++) {
            if (g % (uint64_t)P != (uint64_t)rank) continue;
            doc_rec *rec = &in->recs[i];
            if (rec->bytes + (size_t)1 > text_capacity) {
                text_capacity = (size_t)rec->bytes * 2 + 1;
                text = reel_realloc(text, text_capacity);
            }
            if ((rc = read_back(ctx, fileno(in->tmp), rec, text, err)) != 0) break;
            size_t count = reel_pieces_encode(ctx->vocab.processor, (const char *)text, rec->bytes, &ids, &ids_capacity, err);
            if (count == (size_t)-1) {
                rc = -1;
                break;
            }
            REEL_CHECK(count <= UINT32_MAX / 5, NULL, "document with %zu pieces", count);
            if (s != PREP_IN_TEST)
                for (size_t k = 0; k < count; k++) ctx->vocab.counts[ids[k]]++;
            if (mine->used + count * 5 + 1 > mine->capacity) {
                mine->capacity = (mine->used + count * 5 + 1) * 2;
                mine->bytes = reel_realloc(mine->bytes, mine->capacity);
            }
            size_t bytes = count ? encode_ids(ids, count, mine->bytes + mine->used) : 0;
            mine->used += bytes;
            mine->lengths[2 * mine->docs] = (uint32_t)count;
            mine->lengths[2 * mine->docs + 1] = (uint32_t)bytes;
            mine->docs++;
        }
    }
    free(ids);
    free(text);
    rc = agree(comm, rc, err);
    if (rc == 0 && comm) {
        gather_shares(comm, shares);
        /* the counts of every rank's documents, summed on rank 0 */
        uint64_t *sum = rank == 0 ? reel_calloc(n, sizeof *sum) : NULL;
        REEL_MPI_CHECK(MPI_Reduce(ctx->vocab.counts, sum, (int)n, MPI_UINT64_T, MPI_SUM, 0, comm->comm));
        if (rank == 0) {
            memcpy(ctx->vocab.counts, sum, n * sizeof *sum);
            free(sum);
        }
    }
    /* rank 0 (or the one process): the documents into new temporary files, in canonical order */
    g = 0;
    for (int s = 0; s < PREP_IN_COUNT && rc == 0 && rank == 0; s++) {
        in_split *in = &ctx->in[s];
        FILE *out = NULL;
        if ((rc = open_temp_file(ctx, s, "ids", &out, err)) != 0) break;
        uint64_t written = 0;
        for (size_t i = 0; i < in->count; i++, g++) {
            encoded_share *from = &shares[g % (uint64_t)P];
            doc_rec *rec = &in->recs[i];
            REEL_CHECK(from->next_doc < from->docs, NULL, "a rank sent fewer documents than it owns");
            uint32_t count = from->lengths[2 * from->next_doc], bytes = from->lengths[2 * from->next_doc + 1];
            if (bytes > 0 && fwrite(from->bytes + from->next_byte, 1, bytes, out) != bytes) {
                rc = reel_fail(err, "%s: cannot write a temporary file: %s", o->outdir, strerror(errno));
                break;
            }
            from->next_doc++;
            from->next_byte += bytes;
            rec->offset = written;
            rec->bytes = bytes;
            rec->length = count;
            written += bytes;
        }
        if (rc == 0 && fflush(out) != 0)
            rc = reel_fail(err, "%s: cannot write a temporary file: %s", o->outdir, strerror(errno));
        fclose(in->tmp);
        in->tmp = out;
        in->bytes = written;
    }
    for (int r = 0; r < P; r++) {
        free(shares[r].lengths);
        free(shares[r].bytes);
    }
    free(shares);
    if (rc != 0) return -1;
    if (rank != 0) return 1;
    ctx->final_id = reel_malloc(n * sizeof *ctx->final_id);
    for (size_t id = 0; id < n; id++) ctx->final_id[id] = (uint32_t)id;
    for (size_t id = 0; id < n; id++) ctx->result->distinct_tokens += ctx->vocab.counts[id] > 0;
    return 0;
}

/* Writes the documents of one input split; for train, those marked in is_valid go to valid.tok. */
static int write_split(prep_ctx *ctx, int in_index, const uint8_t *is_valid, reel_error *err) {
    in_split *in = &ctx->in[in_index];
    int labelled = ctx->num_classes > 0 && in_index != PREP_IN_UNSUP;
    uint32_t classes = labelled ? ctx->num_classes : 0;
    int first = in_index == PREP_IN_TRAIN ? REEL_SPLIT_TRAIN : in_index == PREP_IN_TEST ? REEL_SPLIT_TEST
                                                                                          : REEL_SPLIT_UNSUP;
    uint64_t docs[2] = {0, 0}, tokens[2] = {0, 0};
    for (size_t i = 0; i < in->count; i++) {
        int v = is_valid && is_valid[i];
        docs[v]++;
        tokens[v] += in->recs[i].length;
    }
    out_file outs[2] = {{NULL, NULL, 0}, {NULL, NULL, 0}};
    int nouts = is_valid && docs[1] > 0 ? 2 : 1;
    uint32_t *ids = NULL;
    unsigned char *encoded = NULL;
    size_t ids_capacity = 0, encoded_capacity = 0;
    int rc = -1;
    if (open_output(ctx, &outs[0], first, docs[0], tokens[0], classes, err) != 0) goto done;
    if (nouts == 2 && open_output(ctx, &outs[1], REEL_SPLIT_VALID, docs[1], tokens[1], classes, err) != 0) goto done;

    int fd = fileno(in->tmp);
    for (size_t i = 0; i < in->count; i++) {
        const doc_rec *rec = &in->recs[i];
        if (rec->length > ids_capacity || rec->bytes > encoded_capacity) {
            ids_capacity = (size_t)rec->length * 2;
            ids = reel_realloc(ids, ids_capacity * sizeof *ids);
            encoded_capacity = (size_t)rec->bytes * 2;
            encoded = reel_realloc(encoded, encoded_capacity);
        }
        if (read_back(ctx, fd, rec, encoded, err) != 0) goto done;
        REEL_CHECK(decode_ids(encoded, rec->bytes, ids, rec->length), "the disk may be failing",
                   "temporary file of %s is corrupt", ctx->opts->outdir);
        uint64_t unknown = 0;
        for (size_t k = 0; k < rec->length; k++) {
            ids[k] = ctx->final_id[ids[k]];
            unknown += ids[k] == REEL_TOKEN_UNK;
        }
        int v = nouts == 2 && is_valid[i];
        int32_t label = labelled ? (ctx->class_of ? ctx->class_of[rec->label] : rec->label) : -1;
        if (reel_tokfile_writer_add(outs[v].writer, ids, rec->length, label, err) != 0) goto done;
        reel_prep_split_stats *st = &ctx->result->split[outs[v].out_split];
        st->docs++;
        st->tokens += rec->length;
        st->unknown += unknown;
        st->bytes += rec->text_bytes;
        st->words += rec->words;
    }
    for (int o = 0; o < nouts; o++)
        if (finish_output(ctx, &outs[o], err) != 0) goto done;
    rc = 0;
done:
    for (int o = 0; o < 2; o++)
        if (outs[o].writer) reel_tokfile_writer_abort(outs[o].writer);
    free(ids);
    free(encoded);
    return rc;
}

/* ---- manifest ---- */

static void ini_split_lines(reel_buf *ini, const reel_prep_result *r) {
    for (int s = 0; s < REEL_SPLIT_COUNT; s++) {
        const reel_prep_split_stats *st = &r->split[s];
        if (!st->present) continue;
        reel_buf_printf(ini, "%s_docs = %" PRIu64 "\n%s_tokens = %" PRIu64 "\n%s_unknown = %" PRIu64 "\n",
                        split_names[s], st->docs, split_names[s], st->tokens, split_names[s], st->unknown);
        reel_buf_printf(ini, "%s_unknown_rate = %.6f\n", split_names[s],
                        st->tokens ? (double)st->unknown / (double)st->tokens : 0.0);
        reel_buf_printf(ini, "%s_bytes = %" PRIu64 "\n%s_words = %" PRIu64 "\n", split_names[s], st->bytes,
                        split_names[s], st->words);
    }
}

static int write_manifest(prep_ctx *ctx, size_t valid_count, reel_error *err) {
    const reel_prep_options *o = ctx->opts;
    const reel_prep_result *r = ctx->result;
    reel_buf ini = {0};
    reel_buf_printf(&ini, "; written by reel prep " REEL_VERSION " after every other file of this directory\n");
    reel_buf_printf(&ini, "[source]\ninput = %s\nformat = %s\n", o->input, reel_prep_format_name(ctx->format));
    if (o->test_path) reel_buf_printf(&ini, "test = %s\n", o->test_path);
    if (o->unsup_path) reel_buf_printf(&ini, "unsup = %s\n", o->unsup_path);
    reel_buf_printf(&ini, "\n[options]\nseed = %" PRIu64 "\nvalid_count = %zu\n", o->seed, valid_count);
    if (o->valid_count < 0 && o->valid_fraction >= 0) reel_buf_printf(&ini, "valid_fraction = %g\n", o->valid_fraction);
    if (!o->pieces_model_path) reel_buf_printf(&ini, "vocab_size = %zu\n", o->vocab_size);
    if (!ctx->pieces) reel_buf_printf(&ini, "min_count = %" PRIu64 "\n", o->min_count);
    if (ctx->format == REEL_PREP_TSV)
        reel_buf_printf(&ini, "text_column = %s\nlabel_column = %s\n", o->text_column ? o->text_column : "text",
                        o->label_column ? o->label_column : "label");
    uint64_t docs = 0, tokens = 0, unknown = 0;
    for (int s = 0; s < REEL_SPLIT_COUNT; s++) {
        docs += r->split[s].docs;
        tokens += r->split[s].tokens;
        unknown += r->split[s].unknown;
    }
    reel_buf_printf(&ini, "\n[splits]\n");
    ini_split_lines(&ini, r);
    reel_buf_printf(&ini, "total_docs = %" PRIu64 "\ntotal_tokens = %" PRIu64 "\nskipped = %" PRIu64 "\n", docs,
                    tokens, r->skipped);
    reel_buf_printf(&ini, "\n[vocab]\nsize = %zu\nchecksum = %016" PRIx64 "\ndistinct_words = %zu\nclasses = %" PRIu32
                          "\nunknown_rate = %.6f\n",
                    r->vocab_size, r->vocab_checksum, r->distinct_tokens, r->num_classes,
                    tokens ? (double)unknown / (double)tokens : 0.0);
    if (ctx->pieces) {
        reel_buf_printf(&ini, "\n[tokenizer]\ntype = sentencepiece\nmodel = %s\nmodel_bytes = %zu\nmodel_checksum = %016" PRIx64 "\n",
                        REEL_PIECES_FILE, ctx->pieces_bytes, (uint64_t)XXH64(ctx->pieces, ctx->pieces_bytes, 0));
        if (o->pieces_model_path)
            reel_buf_printf(&ini, "trained = no\nfrom = %s\n", o->pieces_model_path);
        else
            reel_buf_printf(&ini, "trained = yes\npiece_model = %s\ntrain_threads = %d\n", o->piece_bpe ? "bpe" : "unigram",
                            PIECE_TRAIN_THREADS);
    } else {
        reel_buf_printf(&ini, "\n[tokenizer]\ntype = word\n");
    }
    reel_buf_printf(&ini, "\n[time]\nseconds = %.3f\nseconds_read = %.3f\nseconds_write = %.3f\n",
                    reel_now_seconds() - ctx->start, r->seconds_read, r->seconds_write);
    if (ctx->pieces)
        reel_buf_printf(&ini, "seconds_pieces = %.3f\nseconds_piece_model = %.3f\n", r->seconds_pieces,
                        r->seconds_piece_model);
    if (o->comm && o->comm->size > 1) reel_buf_printf(&ini, "ranks = %d\n", o->comm->size);
    const char *path = out_path(ctx, "prep.ini");
    int rc = reel_write_file_atomic(path, ini.data, ini.length, err);
    reel_buf_free(&ini);
    return rc;
}

/* ---- driver ---- */

static int open_source(prep_ctx *ctx, reel_error *err) {
    const reel_prep_options *o = ctx->opts;
    if (ctx->format == REEL_PREP_IMDB) {
        if (o->test_path || o->unsup_path || o->text_column || o->label_column)
            return reel_fail(err, "--test, --unsup, --text-column and --label-column apply to tsv/text input, not "
                                  "to the IMDb layout (which has its own test/ and train/unsup/)");
        struct stat st;
        if (stat(o->input, &st) != 0) return reel_fail(err, "%s: cannot open input: %s", o->input, strerror(errno));
        if (!S_ISDIR(st.st_mode)) return prep_open_imdb_archive(&ctx->src, o->input, err);
        reel_buf root = {0};
        int rc = imdb_root(o->input, &root, err);
        if (rc == 0) rc = prep_open_imdb_dir(&ctx->src, root.data, err);
        reel_buf_free(&root);
        return rc;
    }
    if (is_dir(o->input))
        return reel_fail(err, "%s: is a directory; --format %s expects a file", o->input,
                         reel_prep_format_name(ctx->format));
    if (ctx->format == REEL_PREP_TSV)
        return prep_open_tsv(&ctx->src, o->input, o->test_path, o->unsup_path, o->text_column ? o->text_column : "text",
                             o->label_column ? o->label_column : "label", err);
    if (o->unsup_path || o->text_column || o->label_column)
        return reel_fail(err, "--unsup, --text-column and --label-column apply to tsv input; text input is "
                              "unlabelled, one document per line");
    return prep_open_text(&ctx->src, o->input, o->test_path, err);
}

static int resolve_valid_count(prep_ctx *ctx, size_t *valid_count, reel_error *err) {
    const reel_prep_options *o = ctx->opts;
    size_t n = ctx->in[PREP_IN_TRAIN].count;
    if (o->valid_count >= 0) {
        if ((uint64_t)o->valid_count > n)
            return reel_fail(err, "--valid-count %" PRId64 " is more than the %zu training documents of %s",
                             o->valid_count, n, o->input);
        *valid_count = (size_t)o->valid_count;
        return 0;
    }
    if (o->valid_fraction >= 0) {
        *valid_count = (size_t)floor(o->valid_fraction * (double)n + 0.5);
    } else if (ctx->format == REEL_PREP_IMDB) {
        if (n < 5000)
            return reel_fail(err, "%s: only %zu training documents, fewer than the default --valid-count of 5000 "
                                  "for imdb; set --valid-count or --valid-fraction", o->input, n);
        *valid_count = 5000;
    } else {
        *valid_count = (size_t)floor(0.2 * (double)n + 0.5);
    }
    if (*valid_count > n) *valid_count = n;
    return 0;
}

static void remove_stale_outputs(prep_ctx *ctx) {
    for (int s = 0; s < REEL_SPLIT_COUNT; s++) {
        if (ctx->result->split[s].present) continue;
        char name[32];
        snprintf(name, sizeof name, "%s.tok", split_names[s]);
        unlink(out_path(ctx, name));
    }
    if (ctx->num_classes == 0) unlink(out_path(ctx, "labels.txt"));
    if (!ctx->pieces) unlink(out_path(ctx, REEL_PIECES_FILE));
}

static int run(prep_ctx *ctx, reel_error *err) {
    const reel_prep_options *o = ctx->opts;
    reel_prep_result *r = ctx->result;
    if (o->vocab_size <= REEL_VOCAB_RESERVED || o->vocab_size > UINT32_MAX)
        return reel_fail(err, "--vocab-size %zu: expected more than %d (the reserved ids) and at most %u", o->vocab_size,
                         REEL_VOCAB_RESERVED, UINT32_MAX);
    if (o->valid_count < 0 && o->valid_fraction >= 1.0)
        return reel_fail(err, "--valid-fraction %g: expected a value in [0, 1)", o->valid_fraction);
    ctx->format = o->format;
    if (ctx->format == REEL_PREP_AUTO && reel_prep_detect_format(o->input, &ctx->format, err) != 0) return -1;
    r->format = ctx->format;
    if (open_source(ctx, err) != 0) return -1;
    if (reel_make_dirs(o->outdir, err) != 0) return -1;
    /* Without a manifest the directory reads as incomplete until this run has finished. */
    int writer = !o->comm || o->comm->rank == 0; /* several ranks: rank 0 writes (see build_pieces) */
    if (writer && unlink(out_path(ctx, "prep.ini")) != 0 && errno != ENOENT)
        return reel_fail(err, "%s: cannot remove the old manifest: %s", ctx->path.data, strerror(errno));
    for (int s = 0; s < PREP_IN_COUNT; s++)
        if (open_temp(ctx, s, err) != 0) return -1;

    ctx->counter = prep_counter_create();
    double t0 = reel_now_seconds();
    if (agree(o->comm, pass_tokenize(ctx, err), err) != 0) return -1;
    double t1 = reel_now_seconds();
    r->seconds_read = t1 - t0;
    r->skipped = ctx->src->skipped;
    if (ctx->in[PREP_IN_TRAIN].count == 0)
        return reel_fail(err, "%s: no training documents found%s", o->input,
                         ctx->format == REEL_PREP_IMDB
                             ? "; expected members aclImdb/train/pos/<id>_<rating>.txt and aclImdb/train/neg/..."
                             : "");
    for (int s = 0; s < PREP_IN_COUNT; s++)
        if (canonical_order(ctx, s, err) != 0) return -1;
    size_t valid_count = 0;
    if (resolve_valid_count(ctx, &valid_count, err) != 0) return -1;

    fix_classes(ctx);
    r->num_classes = ctx->num_classes;
    if (o->tokenizer == REEL_PREP_PIECES) {
        double tp = reel_now_seconds();
        int built = build_pieces(ctx, err);
        if (built < 0) return -1;
        if (built == 1) return 0; /* another rank's share is with rank 0 */
        r->seconds_pieces = reel_now_seconds() - tp;
    } else {
        prep_counter_finish(ctx->counter);
        size_t distinct = prep_counter_size(ctx->counter);
        ctx->final_id = reel_malloc((distinct ? distinct : 1) * sizeof *ctx->final_id);
        prep_counter_build_vocab(ctx->counter, o->vocab_size, o->min_count, &ctx->vocab, ctx->final_id);
        r->distinct_tokens = prep_counter_distinct_counted(ctx->counter);
    }
    r->vocab_size = ctx->vocab.size;
    r->vocab_checksum = ctx->vocab.checksum;
    prep_counter_destroy(ctx->counter);
    ctx->counter = NULL;

    uint8_t *is_valid = choose_valid(ctx->in[PREP_IN_TRAIN].count, valid_count, o->seed);
    int rc = write_split(ctx, PREP_IN_TRAIN, is_valid, err);
    free(is_valid);
    if (rc != 0) return -1;
    for (int s = PREP_IN_TEST; s < PREP_IN_COUNT; s++) {
        if (!ctx->src->has_split[s] && ctx->in[s].count == 0) continue;
        if (write_split(ctx, s, NULL, err) != 0) return -1;
    }
    if (ctx->pieces) { /* before vocab.txt, which needs it beside it to load */
        const char *pieces_path = out_path(ctx, REEL_PIECES_FILE);
        if (reel_write_file_atomic(pieces_path, ctx->pieces, ctx->pieces_bytes, err) != 0) return -1;
        remember_written(ctx, pieces_path);
    }
    const char *vocab_path = out_path(ctx, "vocab.txt");
    if (reel_vocab_save(&ctx->vocab, vocab_path, err) != 0) return -1;
    remember_written(ctx, vocab_path);
    if (ctx->num_classes > 0 && write_labels(ctx, err) != 0) return -1;
    remove_stale_outputs(ctx);
    r->seconds_write = reel_now_seconds() - t1 - r->seconds_pieces;
    return write_manifest(ctx, valid_count, err);
}

int reel_prep_run(const reel_prep_options *opts, reel_prep_result *result, reel_error *err) {
    prep_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    memset(result, 0, sizeof *result);
    ctx.start = reel_now_seconds();
    ctx.opts = opts;
    ctx.result = result;
    int rc = run(&ctx, err);
    result->seconds = reel_now_seconds() - ctx.start;
    if (rc != 0) /* a partial set of outputs would mix this run with an earlier one */
        for (size_t i = 0; i < ctx.num_written; i++) unlink(ctx.written[i]);
    for (size_t i = 0; i < ctx.num_written; i++) free(ctx.written[i]);
    for (int s = 0; s < PREP_IN_COUNT; s++) {
        if (ctx.in[s].tmp) fclose(ctx.in[s].tmp);
        free(ctx.in[s].recs);
    }
    if (ctx.src) ctx.src->destroy(ctx.src);
    prep_counter_destroy(ctx.counter);
    reel_vocab_free(&ctx.vocab);
    free(ctx.pieces);
    free(ctx.final_id);
    free(ctx.class_of);
    reel_buf_free(&ctx.path);
    return rc;
}

/* One "key = unsigned" line of an INI text; 0 when there is none. */
static int ini_u64(const char *text, const char *key, uint64_t *value) {
    size_t k = strlen(key);
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (strncmp(line, key, k) != 0 || strncmp(line + k, " = ", 3) != 0) continue;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(line + k + 3, &end, 10);
        if (errno || end == line + k + 3 || (*end != '\n' && *end != '\0')) return 0;
        *value = v;
        return 1;
    }
    return 0;
}

int reel_prep_split_text(const char *data_dir, const char *split, uint64_t *bytes, uint64_t *words) {
    *bytes = *words = 0;
    reel_buf path = {0}, text = {0};
    reel_buf_printf(&path, "%s/prep.ini", data_dir);
    reel_error err = {{0}};
    int found = 0;
    if (reel_read_file(&text, path.data, (size_t)1 << 20, 1, &err) == 0 && text.data) {
        char key[64];
        uint64_t b = 0, w = 0;
        snprintf(key, sizeof key, "%s_bytes", split);
        found = ini_u64(text.data, key, &b);
        snprintf(key, sizeof key, "%s_words", split);
        found = found && ini_u64(text.data, key, &w);
        if (found) *bytes = b, *words = w;
    }
    reel_buf_free(&path);
    reel_buf_free(&text);
    return found ? 0 : 1;
}
