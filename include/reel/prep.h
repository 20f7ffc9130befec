/* reel/prep.h: turning a corpus into token-ID files (`reel prep`).
 *
 * Inputs (reel_prep_format):
 *   imdb  The Large Movie Review Dataset, either the archive aclImdb_v1.tar.gz read directly (no
 *         extraction) or the extracted directory (INPUT may be aclImdb/ itself or its parent). Only
 *         regular files named [aclImdb/]{train,test}/{pos,neg}/<id>_<rating>.txt and
 *         [aclImdb/]train/unsup/<id>_<rating>.txt are read; everything else is skipped. Labels: neg = 0,
 *         pos = 1. train/pos and train/neg must exist; test/ and train/unsup are optional.
 *   tsv   UTF-8 tab-separated values with a header row; one row per document. No quoting or escapes: a
 *         field cannot contain TAB or LF, a trailing CR is dropped, empty lines are skipped. Labels are
 *         strings; class ids are their ranks in byte-wise sorted order of the distinct labels of the
 *         training file. The test file's labels must occur in the training file. The unsup file needs
 *         only the text column.
 *   text  One document per line (empty lines skipped), no labels: language-model corpora.
 *
 * Splits and canonical order. Each input split is kept in a canonical order that does not depend on how
 * the input was stored, so the tarball and the extracted directory give byte-identical files:
 *   imdb      sorted by (label, numeric id) within each split; unsup by numeric id. Two reviews with the
 *             same id in the same directory are an error.
 *   tsv/text  file order.
 * The validation split is drawn from the labelled training documents (all training documents for text):
 * the canonical list is shuffled with a Fisher-Yates shuffle driven by Philox4x32-10 keyed by the seed,
 * and the first valid_count documents of the shuffle form valid; both train.tok and valid.tok then keep
 * the canonical order.
 *
 * Vocabulary: counted over every training document (including those moved to valid) and unsup; tokens
 * seen only in test map to <unk>. See reel/vocab.h for the order and the file format.
 *
 * Outputs in OUTDIR: train.tok, valid.tok (when valid_count > 0), test.tok and unsup.tok (when the input
 * has them), vocab.txt, labels.txt (labelled inputs: line i names class i) and prep.ini, written last,
 * whose presence marks a complete run. Every file is written under a temporary name and renamed into
 * place; prep.ini of an earlier run is removed before anything else changes, and outputs of an earlier
 * run that this run does not produce are removed at the end.
 *
 * Tokenizers (reel_prep_options.tokenizer): REEL_PREP_WORDS, reel/tokenizer.h's words counted into
 * vocab.txt as above; or REEL_PREP_PIECES, SentencePiece pieces (reel/pieces.h) over the same normalised
 * text (reel/tokenizer.h's stage 1): a piece model with vocab_size ids is trained, seeded by seed, on the
 * normalised texts of every training document (valid ones included) then of unsup, in canonical order
 * (never test), or the model of pieces_model_path is reused; it is written as pieces.model, and
 * vocab.txt lists its pieces in id order (reel/vocab.h) with their counts in the encoded train, valid
 * and unsup splits. Byte fallback spells anything the pieces lack, so no piece is <unk>.
 *
 * Several ranks (pieces only, options.comm): every rank reads and normalises the input, rank 0 trains
 * the piece model and sends it, the ranks encode the documents in turn (canonical position g by rank
 * g mod P) and send them to rank 0, which writes the same files as one process would.
 *
 * Memory is proportional to the vocabulary plus 32 bytes per document (pieces: plus the encoded pieces,
 * about 2 bytes each, held until written): documents are tokenized once,
 * streamed to unnamed temporary files in OUTDIR as provisional ids, and remapped once the vocabulary is
 * fixed.
 */
#ifndef REEL_PREP_H
#define REEL_PREP_H

#include <stddef.h>
#include <stdint.h>

#include "reel/check.h"

typedef enum { REEL_PREP_AUTO = 0, REEL_PREP_IMDB, REEL_PREP_TSV, REEL_PREP_TEXT } reel_prep_format;
typedef enum { REEL_PREP_WORDS = 0, REEL_PREP_PIECES } reel_prep_tokenizer;

enum { REEL_SPLIT_TRAIN = 0, REEL_SPLIT_VALID, REEL_SPLIT_TEST, REEL_SPLIT_UNSUP, REEL_SPLIT_COUNT };

/* "train", "valid", "test", "unsup". */
const char *reel_split_name(int split);
/* "auto", "imdb", "tsv", "text". */
const char *reel_prep_format_name(reel_prep_format format);

typedef struct reel_prep_options {
    const char *input;  /* archive, directory or file */
    const char *outdir; /* created (with parents) when missing */
    reel_prep_format format;
    const char *test_path;      /* tsv, text: optional test file */
    const char *unsup_path;     /* tsv: optional unlabelled file */
    const char *text_column;    /* tsv: default "text" */
    const char *label_column;   /* tsv: default "label" */
    int64_t valid_count;        /* documents moved from train to valid; -1: from valid_fraction */
    double valid_fraction;      /* used when valid_count < 0; < 0: default (imdb 5000 docs, others 0.2) */
    uint64_t seed;              /* of the train/valid shuffle; default 42 */
    size_t vocab_size;          /* maximum entries, reserved ids included; default 30000 */
    uint64_t min_count;         /* words counted fewer times map to <unk>; default 1 */
    int threads;                /* 2: read/decompress in a second thread (default); 1: one thread */
    reel_prep_tokenizer tokenizer; /* default REEL_PREP_WORDS */
    int piece_bpe;              /* pieces: 1 BPE, 0 unigram (default) */
    const char *pieces_model_path; /* pieces: a serialized piece model to use instead of training one */
    const struct reel_comm *comm; /* pieces under mpirun: every rank calls reel_prep_run with the same options
                                     and this communicator; rank 0 writes the files (NULL: one process) */
    int verbose;                /* 1: print a summary on stdout */
} reel_prep_options;

typedef struct reel_prep_split_stats {
    int present;     /* the file was written */
    uint64_t docs;
    uint64_t tokens;
    uint64_t unknown; /* tokens mapped to <unk> */
    uint64_t bytes;   /* UTF-8 bytes of the documents' normalised text (reel/tokenizer.h's stage 1) */
    uint64_t words;   /* the word tokenizer's tokens in that text (equal to tokens for words) */
} reel_prep_split_stats;

typedef struct reel_prep_result {
    reel_prep_format format;
    reel_prep_split_stats split[REEL_SPLIT_COUNT];
    size_t vocab_size;      /* entries written to vocab.txt */
    uint64_t vocab_checksum;
    size_t distinct_tokens; /* distinct words seen in the counted splits */
    uint32_t num_classes;   /* 0 for unlabelled input */
    uint64_t skipped;       /* ignored archive members/files (imdb) or skipped empty lines (tsv/text) */
    double seconds;         /* whole run */
    double seconds_read;    /* pass 1: read, tokenize, count */
    double seconds_pieces;  /* pieces: training (or loading) the piece model and encoding every document */
    double seconds_piece_model; /* of which training (or reading) the model and sending it to the ranks */
    double seconds_write;   /* pass 2: remap and write the .tok files, vocab, labels, manifest */
} reel_prep_result;

void reel_prep_options_default(reel_prep_options *opts);

/* Resolves REEL_PREP_AUTO: a .tar.gz/.tgz file or a directory holding train/ or aclImdb/train/ is imdb,
 * a .tsv file is tsv, any other file is text. Fails when input is missing or is a directory without
 * the IMDb layout. */
int reel_prep_detect_format(const char *input, reel_prep_format *format, reel_error *err);

/* Runs the whole pipeline. On failure err says why, prep.ini is absent, no temporary file remains, and
 * any output this run had already renamed into place is removed again (so the directory never mixes
 * two runs under a manifest); files of an earlier run that this run had not replaced yet are kept. */
int reel_prep_run(const reel_prep_options *opts, reel_prep_result *result, reel_error *err);

#endif
