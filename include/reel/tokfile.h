/* reel/tokfile.h: token-ID files, the output of `reel prep` and the input of training.
 *
 * One file holds one split (train.tok, valid.tok, test.tok, unsup.tok). A rank reads only the documents
 * it needs: the file is memory-mapped, the header and document index are validated at open, and the ids
 * of a document are validated the first time that document is read.
 *
 * Byte layout (all integers little-endian; reel refuses to run on a big-endian host):
 *
 *   offset             size        field
 *   0                  8           magic, the bytes "REELTOK" followed by one 0 byte
 *   8                  4           uint32 format version, currently 1
 *   12                 4           uint32 header size in bytes, currently 64
 *   16                 8           uint64 N, number of documents
 *   24                 8           uint64 T, total number of tokens in all documents
 *   32                 4           uint32 V, vocabulary size: every token id is < V
 *   36                 4           uint32 C, number of classes; 0 means the documents carry no labels
 *   40                 8           uint64 vocabulary checksum (reel_vocab_checksum of the vocab.txt used)
 *   48                 16          reserved, must be zero
 *   64                 8*(N+1)     uint64 doc_start[N+1]: document i is tokens [doc_start[i], doc_start[i+1]);
 *                                  doc_start[0] = 0, non-decreasing, doc_start[N] = T
 *   64+8*(N+1)         4*N         int32 label[N], each in [0, C); present only when C > 0
 *   after the labels   4*T         uint32 token ids
 *
 * The file size must be exactly 64 + 8*(N+1) + (C > 0 ? 4*N : 0) + 4*T bytes.
 * Documents appear in a canonical order fixed by `reel prep` (see prep.h), so the same corpus always
 * gives the same bytes whether it was read from a tarball or from a directory.
 */
#ifndef REEL_TOKFILE_H
#define REEL_TOKFILE_H

#include <stddef.h>
#include <stdint.h>

#include "reel/check.h"

#define REEL_TOKFILE_MAGIC "REELTOK"
#define REEL_TOKFILE_VERSION 1u
#define REEL_TOKFILE_HEADER_BYTES 64u

typedef struct reel_tokfile_header {
    uint32_t version;
    uint64_t num_docs;
    uint64_t num_tokens;
    uint32_t vocab_size;
    uint32_t num_classes;
    uint64_t vocab_checksum;
} reel_tokfile_header;

/* ---- reading ---- */
typedef struct reel_tokfile reel_tokfile; /* opaque: a validated, memory-mapped token file */

/* Opens and maps path; validates magic, version, header size, reserved bytes, file size, the document
 * index and every label. On failure returns -1 and err names the file, the byte offset and what was
 * expected. */
int reel_tokfile_open(reel_tokfile **out, const char *path, reel_error *err);
void reel_tokfile_close(reel_tokfile *file);
const reel_tokfile_header *reel_tokfile_info(const reel_tokfile *file);
const char *reel_tokfile_path(const reel_tokfile *file);

/* Document doc_index: *ids points into the mapping, *length is its number of tokens, *label its class
 * (-1 when the file has no labels). The first read of each document checks every id against V; an id out
 * of range returns -1 with the file, the byte offset of the id, its value and V in err. */
int reel_tokfile_doc(reel_tokfile *file, uint64_t doc_index, const uint32_t **ids, size_t *length,
                     int32_t *label, reel_error *err);

/* The class of document doc_index, validated at open (-1 when the file has no labels); its ids are not
 * read. */
int32_t reel_tokfile_label(const reel_tokfile *file, uint64_t doc_index);

/* The number of tokens of document doc_index, from the validated index (its ids are not read). */
size_t reel_tokfile_doc_length(const reel_tokfile *file, uint64_t doc_index);

/* From now on every document reads last token first ([data] reverse: a backward language model and the
 * classifiers fine-tuned from one). Checks every id first (as reel_tokfile_validate_all), then keeps a
 * reversed copy of the ids in memory: the file's size again, for as long as it is open. */
int reel_tokfile_reverse(reel_tokfile *file, reel_error *err);

/* Checks every document's ids (what `reel inspect` does); returns -1 at the first bad one. */
int reel_tokfile_validate_all(reel_tokfile *file, reel_error *err);

/* ---- writing ---- */
typedef struct reel_tokfile_writer reel_tokfile_writer;

/* Creates path (through a temporary name, renamed on finish) for exactly num_docs documents and
 * num_tokens tokens, which the caller knows in advance. */
int reel_tokfile_writer_open(reel_tokfile_writer **out, const char *path, uint64_t num_docs,
                             uint64_t num_tokens, uint32_t vocab_size, uint32_t num_classes,
                             uint64_t vocab_checksum, reel_error *err);
/* Appends the next document (label is ignored when num_classes == 0). */
int reel_tokfile_writer_add(reel_tokfile_writer *writer, const uint32_t *ids, size_t length, int32_t label,
                            reel_error *err);
/* Checks that the promised counts were written, flushes, fsyncs and renames into place. It releases the
 * writer whether it succeeds or fails (on failure the temporary is removed): do not call
 * reel_tokfile_writer_abort afterwards. */
int reel_tokfile_writer_finish(reel_tokfile_writer *writer, reel_error *err);
/* Abandons the file: the temporary is removed and nothing appears under the real name. */
void reel_tokfile_writer_abort(reel_tokfile_writer *writer);

#endif
