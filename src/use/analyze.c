/* Error analysis of a classifier's predictions (reel/analyze.h). */
#include "reel/analyze.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reel/check.h"

static size_t predicted_class(const float *prob, size_t K) {
    size_t best = 0;
    for (size_t k = 1; k < K; k++)
        if (prob[k] > prob[best]) best = k;
    return best;
}

static int by_length_then_index(const void *a, const void *b, void *lengths) {
    const size_t *x = a, *y = b, *n = lengths;
    if (n[*x] != n[*y]) return n[*x] < n[*y] ? -1 : 1;
    return *x < *y ? -1 : *x > *y;
}

/* qsort with a context argument, without glibc's qsort_r: a stable merge sort of indices. */
static void sort_indices(size_t *items, size_t n, int (*compare)(const void *, const void *, void *), void *context) {
    if (n < 2) return;
    size_t *scratch = reel_malloc(n * sizeof *scratch);
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) scratch[k++] = compare(&items[j], &items[i], context) < 0 ? items[j++] : items[i++];
            while (i < mid) scratch[k++] = items[i++];
            while (j < hi) scratch[k++] = items[j++];
        }
        memcpy(items, scratch, n * sizeof *items);
    }
    free(scratch);
}

static int more_confident(const void *a, const void *b) {
    const reel_mistake *x = a, *y = b;
    if (x->confidence != y->confidence) return x->confidence > y->confidence ? -1 : 1;
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

static int higher_z(const void *a, const void *b) {
    const reel_error_word *x = a, *y = b;
    if (x->z != y->z) return x->z > y->z ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

void reel_analyze(reel_analysis *out, const reel_analysis_input *in) {
    memset(out, 0, sizeof *out);
    size_t N = in->num_docs, K = in->num_classes;
    out->num_docs = N;
    out->num_classes = K;
    out->confusion = reel_calloc(K * K, sizeof *out->confusion);
    out->precision = reel_calloc(K, sizeof *out->precision);
    out->recall = reel_calloc(K, sizeof *out->recall);
    out->f1 = reel_calloc(K, sizeof *out->f1);
    uint8_t *right = reel_malloc((N ? N : 1) * sizeof *right);
    reel_mistake *mistakes = reel_malloc((N ? N : 1) * sizeof *mistakes);
    for (int b = 0; b < REEL_ANALYZE_CONFIDENCE_BINS; b++) {
        out->confidence[b].low = (double)b / REEL_ANALYZE_CONFIDENCE_BINS;
        out->confidence[b].high = (double)(b + 1) / REEL_ANALYZE_CONFIDENCE_BINS;
    }
    for (size_t i = 0; i < N; i++) {
        const float *prob = in->probs + i * K;
        size_t guess = predicted_class(prob, K), truth = (size_t)in->labels[i];
        right[i] = guess == truth;
        out->correct += right[i];
        out->confusion[truth * K + guess]++;
        float confidence = prob[guess];
        int bin = (int)(confidence * REEL_ANALYZE_CONFIDENCE_BINS);
        if (bin >= REEL_ANALYZE_CONFIDENCE_BINS) bin = REEL_ANALYZE_CONFIDENCE_BINS - 1;
        if (bin < 0) bin = 0;
        out->confidence[bin].docs++;
        out->confidence[bin].correct += right[i];
        out->confidence[bin].mean_confidence += confidence;
        if (!right[i]) mistakes[out->num_mistakes++] = (reel_mistake){i, in->labels[i], (int32_t)guess, confidence};
    }
    out->accuracy = N ? (double)out->correct / (double)N : 0;
    for (size_t k = 0; k < K; k++) {
        uint64_t tp = out->confusion[k * K + k], predicted = 0, actual = 0;
        for (size_t j = 0; j < K; j++) {
            predicted += out->confusion[j * K + k];
            actual += out->confusion[k * K + j];
        }
        out->precision[k] = predicted ? (double)tp / (double)predicted : 0;
        out->recall[k] = actual ? (double)tp / (double)actual : 0;
        double sum = out->precision[k] + out->recall[k];
        out->f1[k] = sum > 0 ? 2 * out->precision[k] * out->recall[k] / sum : 0;
        out->macro_f1 += out->f1[k] / (double)K;
    }
    for (int b = 0; b < REEL_ANALYZE_CONFIDENCE_BINS; b++) {
        reel_confidence_bin *bin = &out->confidence[b];
        if (!bin->docs) continue;
        bin->mean_confidence /= (double)bin->docs;
        out->ece += (double)bin->docs / (double)N * fabs((double)bin->correct / (double)bin->docs - bin->mean_confidence);
    }

    /* accuracy by length: quintiles of the sorted lengths (a bin never splits documents of one length) */
    size_t *order = reel_malloc((N ? N : 1) * sizeof *order);
    for (size_t i = 0; i < N; i++) order[i] = i;
    sort_indices(order, N, by_length_then_index, (void *)in->lengths);
    for (size_t start = 0; start < N && out->num_length_bins < REEL_ANALYZE_LENGTH_BINS;) {
        size_t end = (out->num_length_bins + 1) * N / REEL_ANALYZE_LENGTH_BINS;
        if (end <= start) end = start + 1;
        while (end < N && in->lengths[order[end]] == in->lengths[order[end - 1]]) end++;
        if (out->num_length_bins == REEL_ANALYZE_LENGTH_BINS - 1) end = N;
        reel_length_bin *bin = &out->lengths[out->num_length_bins++];
        bin->min_length = in->lengths[order[start]];
        bin->max_length = in->lengths[order[end - 1]];
        for (size_t i = start; i < end; i++) {
            bin->docs++;
            bin->correct += right[order[i]];
        }
        start = end;
    }
    free(order);

    if (out->num_mistakes > 1) qsort(mistakes, out->num_mistakes, sizeof *mistakes, more_confident); /* may be NULL when empty */
    size_t keep = out->num_mistakes < in->top ? out->num_mistakes : in->top;
    out->mistakes = reel_realloc(mistakes, (keep ? keep : 1) * sizeof *mistakes);
    out->num_mistakes = keep;

    /* words and errors: document frequency and errors per word, each word once per document */
    size_t V = in->vocab_size;
    size_t *docs = reel_calloc(V, sizeof *docs), *errors = reel_calloc(V, sizeof *errors);
    size_t *last_seen = reel_malloc(V * sizeof *last_seen);
    for (size_t v = 0; v < V; v++) last_seen[v] = SIZE_MAX;
    for (size_t i = 0; i < N; i++)
        for (size_t t = 0; t < in->read[i]; t++) {
            uint32_t id = in->ids[i][t];
            if (id >= V || last_seen[id] == i) continue;
            last_seen[id] = i;
            docs[id]++;
            errors[id] += !right[i];
        }
    double p = N ? 1.0 - out->accuracy : 0;
    size_t candidates = 0;
    reel_error_word *words = reel_malloc((V ? V : 1) * sizeof *words);
    for (size_t v = 0; v < V && p > 0 && p < 1; v++) {
        if (docs[v] < in->min_docs || docs[v] == 0) continue;
        double expected = (double)docs[v] * p;
        double z = ((double)errors[v] - expected) / sqrt(expected * (1 - p));
        words[candidates++] = (reel_error_word){(uint32_t)v, docs[v], errors[v], z};
    }
    if (candidates > 1) qsort(words, candidates, sizeof *words, higher_z); /* may be NULL when empty */
    keep = candidates < in->top ? candidates : in->top;
    out->words = reel_realloc(words, (keep ? keep : 1) * sizeof *words);
    out->num_words = keep;
    free(docs), free(errors), free(last_seen), free(right);
}

void reel_analysis_free(reel_analysis *a) {
    free(a->confusion);
    free(a->precision);
    free(a->recall);
    free(a->f1);
    free(a->mistakes);
    free(a->words);
    memset(a, 0, sizeof *a);
}
