/* Internal pieces of the prep pipeline (src/prep/): document sources and word counting. Not part of
 * the public API. */
#ifndef REEL_PREP_INTERNAL_H
#define REEL_PREP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "reel/check.h"
#include "reel/util.h"
#include "reel/vocab.h"

/* ---- document sources (prep_source.c) ---- */

/* Input splits as read (valid is carved out of train later). */
enum { PREP_IN_TRAIN = 0, PREP_IN_TEST, PREP_IN_UNSUP, PREP_IN_COUNT };

/* Largest document accepted; anything bigger is almost certainly not a review or a line of text. */
#define PREP_MAX_DOC_BYTES ((size_t)256 << 20)

typedef struct prep_doc {
    int split;     /* PREP_IN_* */
    int32_t label; /* imdb: 0 neg, 1 pos; tsv: index in the source's label table (first-seen order); -1 */
    uint64_t key;  /* imdb: review id; tsv/text: position in its file */
    reel_buf text; /* owned by the slot and reused */
} prep_doc;

typedef struct prep_source prep_source;
struct prep_source {
    /* Fills doc with the next document: 1 when there is one, 0 at the end, -1 on error. */
    int (*next)(prep_source *src, prep_doc *doc, reel_error *err);
    void (*destroy)(prep_source *src);
    /* Label names in first-seen order (tsv) or class order (imdb); NULL/0 for text. Read after the end. */
    char **label_names;
    size_t num_labels;
    uint64_t skipped; /* archive members or files ignored, or empty lines skipped */
    int has_split[PREP_IN_COUNT]; /* the input provides this split (even if it turns out empty) */
};

int prep_open_imdb_archive(prep_source **out, const char *path, reel_error *err);
int prep_open_imdb_dir(prep_source **out, const char *root, reel_error *err);
/* train_path is required; test_path and unsup_path may be NULL. */
int prep_open_tsv(prep_source **out, const char *train_path, const char *test_path, const char *unsup_path,
                  const char *text_column, const char *label_column, reel_error *err);
int prep_open_text(prep_source **out, const char *train_path, const char *test_path, reel_error *err);

/* Parses "<id>_<rating>.txt"; returns 1 and the id when name has that form. */
int prep_parse_imdb_name(const char *name, uint64_t *id);

/* ---- word counting with provisional ids (prep_counter.c) ---- */

typedef struct prep_counter prep_counter;
prep_counter *prep_counter_create(void);
void prep_counter_destroy(prep_counter *counter);
/* Returns the provisional id of the token (ids are given in first-seen order) and adds `add` to its
 * count. */
uint32_t prep_counter_intern(prep_counter *counter, const char *token, size_t length, uint64_t add);
size_t prep_counter_size(const prep_counter *counter);
/* Completes the counts after the last prep_counter_intern; required before the two functions below. */
void prep_counter_finish(prep_counter *counter);
/* Distinct tokens with a non-zero count (seen in a counted split). */
size_t prep_counter_distinct_counted(const prep_counter *counter);
/* Fixes the vocabulary: the tokens counted at least min_count times, by decreasing count then byte
 * order, capped at max_size entries including the reserved ones. Fills vocab (tokens malloc'd) and
 * final_id[provisional id] (<unk> for the rest; the array has prep_counter_size entries). */
void prep_counter_build_vocab(const prep_counter *counter, size_t max_size, uint64_t min_count, reel_vocab *vocab,
                              uint32_t *final_id);

#endif
