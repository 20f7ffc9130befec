/* reel/analyze.h: error analysis of a classifier on a labelled split (`reel analyze`).
 *
 * From each document's class probabilities, its label and its tokens:
 *   - the confusion matrix, accuracy, per-class precision, recall and F1, macro F1;
 *   - accuracy by document length, in five bins of equal counts (quintiles of the length in tokens);
 *   - calibration: the confidence of a prediction is its largest probability; ten equal-width bins over
 *     [0, 1] give the reliability table (documents, mean confidence, accuracy) and the expected
 *     calibration error ECE = sum over bins of (documents / N) * |accuracy - mean confidence|;
 *   - the most confident mistakes;
 *   - the words most associated with errors: for each word that occurs in at least min_docs documents
 *     (counted once per document, among the tokens the model read), the binomial z-score of its
 *     documents' errors against the overall error rate p, (errors - docs * p) / sqrt(docs * p * (1 - p)).
 */
#ifndef REEL_ANALYZE_H
#define REEL_ANALYZE_H

#include <stddef.h>
#include <stdint.h>

enum { REEL_ANALYZE_LENGTH_BINS = 5, REEL_ANALYZE_CONFIDENCE_BINS = 10 };

typedef struct reel_analysis_input {
    size_t num_docs, num_classes;
    const float *probs;           /* (num_docs, num_classes) */
    const int32_t *labels;        /* (num_docs) */
    const size_t *lengths;        /* (num_docs) tokens of the whole document */
    const uint32_t *const *ids;   /* (num_docs) the tokens the model read ... */
    const size_t *read;           /* (num_docs) ... and how many */
    size_t vocab_size;            /* ids are below this */
    size_t top;                   /* mistakes and words to keep */
    size_t min_docs;              /* a word counts from this many documents */
} reel_analysis_input;

typedef struct reel_length_bin {
    size_t min_length, max_length; /* tokens, inclusive */
    size_t docs, correct;
} reel_length_bin;

typedef struct reel_confidence_bin {
    double low, high;              /* [low, high) ([low, 1] for the last) */
    size_t docs, correct;
    double mean_confidence;
} reel_confidence_bin;

typedef struct reel_mistake {
    size_t doc;                    /* index in the split */
    int32_t label, predicted;
    float confidence;
} reel_mistake;

typedef struct reel_error_word {
    uint32_t id;
    size_t docs, errors;
    double z;
} reel_error_word;

typedef struct reel_analysis {
    size_t num_docs, num_classes, correct;
    uint64_t *confusion;           /* (K, K): [true][predicted] */
    double *precision, *recall, *f1; /* (K) */
    double accuracy, macro_f1, ece;
    reel_length_bin lengths[REEL_ANALYZE_LENGTH_BINS];
    size_t num_length_bins;
    reel_confidence_bin confidence[REEL_ANALYZE_CONFIDENCE_BINS];
    reel_mistake *mistakes;        /* the most confident first */
    size_t num_mistakes;
    reel_error_word *words;        /* the highest z first */
    size_t num_words;
} reel_analysis;

void reel_analyze(reel_analysis *out, const reel_analysis_input *in);
void reel_analysis_free(reel_analysis *analysis);

#endif
