/* reel analyze: where and how a classifier goes wrong on a labelled split (reel/analyze.h). */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "reel/analyze.h"
#include "reel/comm.h"
#include "reel/data.h"
#include "reel/generate.h"
#include "reel/infer.h"
#include "reel/loader.h"
#include "reel/objective.h"
#include "reel/tokfile.h"
#include "reel/util.h"

static void usage(FILE *out) {
    fputs("usage: [mpirun -np N] reel analyze CHECKPOINT.h5 [options]\n"
          "\n"
          "Error analysis of a classifier on a labelled split: the confusion matrix and per-class scores,\n"
          "accuracy by document length (five bins of equal counts), calibration (a reliability table of the\n"
          "predicted class's probability in ten bins, and the expected calibration error), the most confident\n"
          "mistakes with the start of their text, and the words most associated with errors (the binomial\n"
          "z-score of the errors among the documents holding a word, against the overall error rate). Printed\n"
          "as text; --json also writes it all to a file (`reel plot --reliability FILE.json` draws its\n"
          "reliability diagram). The split is spread over the ranks.\n"
          "\n"
          "options:\n"
          "  --split NAME     test (default), valid or train: DATA/NAME.tok\n"
          "  --data DIR       data directory (default: the checkpoint's [data] dir)\n"
          "  --max-tokens N   tokens read per document (default: the checkpoint's [data] max_tokens; 0: all)\n"
          "  --docs N         the split's first N documents only (default: all)\n"
          "  --top N          mistakes and words listed (default 10)\n"
          "  --min-docs N     a word is ranked from this many documents (default 20)\n"
          "  --text-chars N   characters of each mistake's text shown (default 240)\n"
          "  --json FILE      also write the analysis as JSON\n"
          "  --batch N        documents per forward pass and rank (default 256)\n"
          "  --ensemble CKPT  also run this classifier (repeatable, up to 7) and analyse the mean of the\n"
          "                   models' class probabilities: ULMFiT's forward and backward pair, or several seeds.\n"
          "                   Each reads the split as it was trained to ([data] reverse) and, without\n"
          "                   --max-tokens, to its own [data] max_tokens; all must have the same labels. Each\n"
          "                   model's own accuracy is printed first\n"
          "  -h, --help       this text\n",
          out);
}

/* The start of a document as text, at most chars bytes (not cutting a UTF-8 sequence). */
static void document_text(reel_buf *out, const reel_vocab *vocab, const uint32_t *ids, size_t length, size_t chars) {
    out->length = 0;
    size_t words = length < 2 * chars ? length : 2 * chars;
    reel_detokenize(out, vocab, ids, words);
    if (out->length > chars) {
        size_t n = chars;
        while (n > 0 && ((unsigned char)out->data[n] & 0xC0) == 0x80) n--;
        out->length = n;
        reel_buf_append(out, "...", 3);
    }
    if (!out->data) reel_buf_append(out, "", 0);
    for (char *p = out->data; *p; p++)
        if (*p == '\n' || *p == '\t') *p = ' ';
}

enum { MAX_ENSEMBLE = 8 };

/* probs (N, K) += the class probabilities of the first N documents of the model's split, each read to
 * max_tokens (0: all), this rank's share computed and the whole summed over the ranks. */
static void add_probabilities(float *probs, reel_trained *trained, reel_tokfile *file, size_t N, size_t K,
                              size_t max_tokens, size_t batch, const reel_comm *comm) {
    reel_error err = {{0}};
    size_t begin, count;
    reel_rank_share(N, comm->rank, comm->size, &begin, &count);
    reel_document *docs = reel_malloc((count ? count : 1) * sizeof *docs);
    for (size_t i = 0; i < count; i++) {
        int32_t label;
        if (reel_tokfile_doc(file, begin + i, &docs[i].ids, &docs[i].length, &label, &err) != 0)
            reel_die(&err, "re-run `reel prep`, or check the file with `reel inspect`");
        if (max_tokens && docs[i].length > max_tokens) docs[i].length = max_tokens;
    }
    float *mine = reel_calloc((N ? N : 1) * K, sizeof *mine);
    reel_predictor *predictor;
    if (reel_predictor_create(&predictor, trained->model, batch, &err) != 0) reel_die(&err, NULL);
    reel_predict_classes(predictor, docs, count, mine + begin * K);
    reel_comm_sum_floats((reel_comm *)comm, mine, N * K);
    for (size_t i = 0; i < N * K; i++) probs[i] += mine[i];
    reel_predictor_free(predictor);
    free(mine);
    free(docs);
}

/* The accuracy of probs (N, K) against the file's labels. */
static double accuracy_of(const float *probs, reel_tokfile *file, size_t N, size_t K) {
    size_t correct = 0;
    for (size_t i = 0; i < N; i++) {
        size_t best = 0;
        for (size_t k = 1; k < K; k++)
            if (probs[i * K + k] > probs[i * K + best]) best = k;
        correct += (int32_t)best == reel_tokfile_label(file, i);
    }
    return N ? (double)correct / (double)N : 0;
}

static int analyze_main(int argc, char **argv, int rank) {
    static const struct option options[] = {{"split", required_argument, NULL, 's'},
                                            {"data", required_argument, NULL, 'd'},
                                            {"max-tokens", required_argument, NULL, 'm'},
                                            {"docs", required_argument, NULL, 'n'},
                                            {"top", required_argument, NULL, 't'},
                                            {"min-docs", required_argument, NULL, 'w'},
                                            {"text-chars", required_argument, NULL, 'c'},
                                            {"json", required_argument, NULL, 'j'},
                                            {"batch", required_argument, NULL, 'b'},
                                            {"ensemble", required_argument, NULL, 'e'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *split = "test", *data_dir = NULL, *json_path = NULL;
    size_t max_tokens = SIZE_MAX, max_docs = 0, top = 10, min_docs = 20, chars = 240, batch = 256;
    const char *members[MAX_ENSEMBLE];
    size_t num_members = 1; /* members[0] is the checkpoint argument */
    reel_error err = {{0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
        size_t *target = c == 'm' ? &max_tokens : c == 'n' ? &max_docs : c == 't' ? &top : c == 'w' ? &min_docs
                       : c == 'c' ? &chars : c == 'b' ? &batch : NULL;
        switch (c) {
        case 's': split = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'j': json_path = optarg; break;
        case 'e':
            if (num_members == MAX_ENSEMBLE) {
                reel_fail(&err, "--ensemble: at most %d checkpoints beside the first", MAX_ENSEMBLE - 1);
                return reel_cli_report(&err, NULL) + 1;
            }
            members[num_members++] = optarg;
            break;
        case 'm': case 'n': case 't': case 'w': case 'c': case 'b': {
            char option[64];
            reel_cli_option_name(options, c, option, sizeof option);
            if (reel_cli_parse_size(option, optarg, c == 'm' || c == 'n' || c == 't' ? 0 : 1, SIZE_MAX, target, &err) != 0)
                return reel_cli_report(&err, NULL) + 1;
            break;
        }
        case 'h': return reel_cli_usage(usage, 0);
        default: return reel_cli_usage(usage, 2);
        }
    }
    if (optind != argc - 1) return reel_cli_usage(usage, 2);
    if (reel_cli_check_split(split, &err) != 0) return reel_cli_report(&err, NULL);
    const char *checkpoint = argv[optind];
    reel_trained trained;
    reel_load_options load = {data_dir, 1, batch};
    if (reel_trained_load(&trained, checkpoint, &load, &err) != 0)
        return reel_cli_report(&err, "pass the data directory the model was trained on with --data");
    if (trained.model->output != REEL_OUTPUT_DOCUMENT) {
        reel_fail(&err, "%s is a language model (%s): analyze needs a classifier; `reel eval` reports a language "
                  "model's perplexity", checkpoint, trained.cfg.model.type);
        reel_trained_free(&trained);
        return reel_cli_report(&err, NULL);
    }
    size_t max_tokens_option = max_tokens;
    if (max_tokens == SIZE_MAX) max_tokens = trained.cfg.data.max_tokens;
    reel_tokfile *file;
    if (reel_open_split(&file, &trained.cfg, &trained.vocab, split, 1, &err) != 0) {
        reel_trained_free(&trained);
        return reel_cli_report(&err, "pass the data directory with --data");
    }
    const reel_tokfile_header *info = reel_tokfile_info(file);
    size_t K = trained.num_classes;
    if (info->num_classes != K) {
        reel_fail(&err, "%s has %" PRIu32 " classes, the model %zu: analyze needs the labelled split of the data the "
                  "model was trained on", reel_tokfile_path(file), info->num_classes, K);
        reel_tokfile_close(file);
        reel_trained_free(&trained);
        return reel_cli_report(&err, NULL);
    }
    size_t N = (size_t)info->num_docs;
    if (max_docs && max_docs < N) N = max_docs;

    /* this rank's share, then every probability summed onto every rank (each written by one rank) */
    reel_comm comm;
    reel_comm_world(&comm);
    float *probs = reel_calloc((N ? N : 1) * K, sizeof *probs);
    double start = reel_now_seconds();
    add_probabilities(probs, &trained, file, N, K, max_tokens, batch, &comm);
    double member_accuracy[MAX_ENSEMBLE] = {accuracy_of(probs, file, N, K)};
    members[0] = checkpoint;
    for (size_t m = 1; m < num_members; m++) { /* each member in its own direction and length, same labels */
        reel_trained other;
        if (reel_trained_load(&other, members[m], &load, &err) != 0)
            reel_die(&err, "pass the data directory the models were trained on with --data");
        reel_tokfile *other_file = NULL;
        if (other.model->output != REEL_OUTPUT_DOCUMENT || other.num_classes != K)
            reel_fail(&err, "--ensemble %s: a %s with %zu classes, but %s is a classifier of %zu: the members of an "
                      "ensemble classify into the same classes", members[m], other.cfg.model.type,
                      other.model->output == REEL_OUTPUT_DOCUMENT ? other.num_classes : 0, checkpoint, K);
        else if (reel_open_split(&other_file, &other.cfg, &other.vocab, split, 1, &err) == 0) {
            int same = reel_tokfile_info(other_file)->num_docs >= N;
            for (size_t i = 0; same && i < N; i++) same = reel_tokfile_label(other_file, i) == reel_tokfile_label(file, i);
            if (!same)
                reel_fail(&err, "--ensemble %s: its split %s does not hold the labels of %s for the first %zu documents: "
                          "the members must be evaluated on the same documents", members[m],
                          reel_tokfile_path(other_file), reel_tokfile_path(file), N);
        }
        if (err.message[0]) reel_die(&err, NULL);
        float *own = reel_calloc((N ? N : 1) * K, sizeof *own);
        add_probabilities(own, &other, other_file, N, K,
                          max_tokens_option == SIZE_MAX ? other.cfg.data.max_tokens : max_tokens_option, batch, &comm);
        member_accuracy[m] = accuracy_of(own, other_file, N, K);
        for (size_t i = 0; i < N * K; i++) probs[i] += own[i];
        free(own);
        reel_tokfile_close(other_file);
        reel_trained_free(&other);
    }
    for (size_t i = 0; i < N * K && num_members > 1; i++) probs[i] /= (float)num_members;
    double seconds = reel_now_seconds() - start;
    int status = 0;
    if (comm.rank != 0) goto done;

    int32_t *labels = reel_malloc((N ? N : 1) * sizeof *labels);
    size_t *lengths = reel_malloc((N ? N : 1) * sizeof *lengths), *read = reel_malloc((N ? N : 1) * sizeof *read);
    const uint32_t **ids = reel_malloc((N ? N : 1) * sizeof *ids);
    for (size_t i = 0; i < N; i++) {
        if (reel_tokfile_doc(file, i, &ids[i], &lengths[i], &labels[i], &err) != 0)
            reel_die(&err, "re-run `reel prep`, or check the file with `reel inspect`");
        read[i] = max_tokens && lengths[i] > max_tokens ? max_tokens : lengths[i];
    }
    /* the mistakes are shown from the start of their text, also for a model that read them backward */
    reel_tokfile *forward = NULL;
    const uint32_t **text_ids = ids;
    if (trained.cfg.data.reverse) {
        if (reel_tokfile_open(&forward, reel_tokfile_path(file), &err) != 0) reel_die(&err, NULL);
        text_ids = reel_malloc((N ? N : 1) * sizeof *text_ids);
        for (size_t i = 0; i < N; i++) {
            size_t length;
            int32_t label;
            if (reel_tokfile_doc(forward, i, &text_ids[i], &length, &label, &err) != 0) reel_die(&err, NULL);
        }
    }
    reel_analysis_input input = {N, K, probs, labels, lengths, ids, read, trained.vocab.size, top, min_docs};
    reel_analysis a;
    reel_analyze(&a, &input);

    char cut[32];
    snprintf(cut, sizeof cut, !max_tokens ? "all of it" : trained.cfg.data.reverse ? "its last %zu tokens" : "its first %zu tokens",
             max_tokens);
    printf("checkpoint %s (%s), split %s: %zu documents, each read to %s (%.1f s on %d rank(s))\n", checkpoint,
           trained.cfg.model.type, reel_tokfile_path(file), N, cut, seconds, comm.size);
    if (num_members > 1) {
        printf("ensemble of %zu classifiers, the mean of their class probabilities; each alone:\n", num_members);
        for (size_t m = 0; m < num_members; m++) printf("  accuracy %.2f%%  %s\n", 100 * member_accuracy[m], members[m]);
    }
    printf("accuracy %.2f%%   macro F1 %.4f   expected calibration error %.4f\n\n", 100 * a.accuracy, a.macro_f1, a.ece);
    printf("confusion matrix (rows: true class, columns: predicted)\n%12s", "");
    for (size_t k = 0; k < K; k++) printf(" %10.10s", trained.class_names[k]);
    printf("\n");
    for (size_t t = 0; t < K; t++) {
        printf("  %-10.10s", trained.class_names[t]);
        for (size_t k = 0; k < K; k++) printf(" %10" PRIu64, a.confusion[t * K + k]);
        printf("\n");
    }
    printf("\n  %-10s %10s %10s %10s\n", "class", "precision", "recall", "F1");
    for (size_t k = 0; k < K; k++)
        printf("  %-10.10s %10.4f %10.4f %10.4f\n", trained.class_names[k], a.precision[k], a.recall[k], a.f1[k]);
    printf("\naccuracy by document length (five bins of equal counts)\n  %-15s %10s %10s\n", "tokens", "documents", "accuracy");
    for (size_t b = 0; b < a.num_length_bins; b++) {
        char range[48];
        snprintf(range, sizeof range, "%zu-%zu", a.lengths[b].min_length, a.lengths[b].max_length);
        printf("  %-15s %10zu %9.2f%%\n", range, a.lengths[b].docs, 100.0 * (double)a.lengths[b].correct / (double)a.lengths[b].docs);
    }
    printf("\ncalibration (confidence: the predicted class's probability)\n  %-11s %10s %11s %10s %8s\n", "confidence",
           "documents", "mean conf.", "accuracy", "gap");
    for (int b = 0; b < REEL_ANALYZE_CONFIDENCE_BINS; b++) {
        const reel_confidence_bin *bin = &a.confidence[b];
        if (!bin->docs) continue;
        double accuracy = (double)bin->correct / (double)bin->docs;
        printf("  %.1f-%.1f     %10zu %11.4f %9.2f%% %+8.4f\n", bin->low, bin->high, bin->docs, bin->mean_confidence,
               100 * accuracy, accuracy - bin->mean_confidence);
    }
    reel_buf text = {0};
    printf("\nthe %zu most confident mistakes\n", a.num_mistakes);
    for (size_t m = 0; m < a.num_mistakes; m++) {
        const reel_mistake *x = &a.mistakes[m];
        document_text(&text, &trained.vocab, text_ids[x->doc], lengths[x->doc], chars);
        printf("  %2zu. document %zu, %s taken for %s (%.4f), %zu tokens:\n      %s\n", m + 1, x->doc,
               trained.class_names[x->label], trained.class_names[x->predicted], x->confidence, lengths[x->doc], text.data);
    }
    printf("\nwords most associated with errors (in >= %zu documents; overall error rate %.2f%%)\n  %-16s %10s %8s %11s %8s\n",
           min_docs, 100 * (1 - a.accuracy), "word", "documents", "errors", "error rate", "z");
    for (size_t w = 0; w < a.num_words; w++) {
        const reel_error_word *x = &a.words[w];
        printf("  %-16s %10zu %8zu %10.2f%% %8.2f\n", trained.vocab.tokens[x->id], x->docs, x->errors,
               100.0 * (double)x->errors / (double)x->docs, x->z);
    }

    if (json_path) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "checkpoint", checkpoint);
        cJSON_AddStringToObject(j, "model", trained.cfg.model.type);
        cJSON_AddStringToObject(j, "split", split);
        cJSON_AddNumberToObject(j, "documents", (double)N);
        cJSON_AddNumberToObject(j, "max_tokens", (double)max_tokens);
        cJSON_AddNumberToObject(j, "accuracy", a.accuracy);
        cJSON_AddNumberToObject(j, "macro_f1", a.macro_f1);
        cJSON_AddNumberToObject(j, "ece", a.ece);
        if (num_members > 1) {
            cJSON *ensemble = cJSON_AddArrayToObject(j, "ensemble");
            for (size_t m = 0; m < num_members; m++) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "checkpoint", members[m]);
                cJSON_AddNumberToObject(o, "accuracy", member_accuracy[m]);
                cJSON_AddItemToArray(ensemble, o);
            }
        }
        cJSON *classes = cJSON_AddArrayToObject(j, "classes");
        cJSON *confusion = cJSON_AddArrayToObject(j, "confusion");
        cJSON *per_class = cJSON_AddArrayToObject(j, "per_class");
        for (size_t t = 0; t < K; t++) {
            cJSON_AddItemToArray(classes, cJSON_CreateString(trained.class_names[t]));
            cJSON *row = cJSON_CreateArray();
            for (size_t k = 0; k < K; k++) cJSON_AddItemToArray(row, cJSON_CreateNumber((double)a.confusion[t * K + k]));
            cJSON_AddItemToArray(confusion, row);
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "class", trained.class_names[t]);
            cJSON_AddNumberToObject(c, "precision", a.precision[t]);
            cJSON_AddNumberToObject(c, "recall", a.recall[t]);
            cJSON_AddNumberToObject(c, "f1", a.f1[t]);
            cJSON_AddItemToArray(per_class, c);
        }
        cJSON *by_length = cJSON_AddArrayToObject(j, "by_length");
        for (size_t b = 0; b < a.num_length_bins; b++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "min_tokens", (double)a.lengths[b].min_length);
            cJSON_AddNumberToObject(x, "max_tokens", (double)a.lengths[b].max_length);
            cJSON_AddNumberToObject(x, "documents", (double)a.lengths[b].docs);
            cJSON_AddNumberToObject(x, "accuracy", (double)a.lengths[b].correct / (double)a.lengths[b].docs);
            cJSON_AddItemToArray(by_length, x);
        }
        cJSON *reliability = cJSON_AddArrayToObject(j, "reliability");
        for (int b = 0; b < REEL_ANALYZE_CONFIDENCE_BINS; b++) {
            const reel_confidence_bin *bin = &a.confidence[b];
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "low", bin->low);
            cJSON_AddNumberToObject(x, "high", bin->high);
            cJSON_AddNumberToObject(x, "documents", (double)bin->docs);
            if (bin->docs) {
                cJSON_AddNumberToObject(x, "mean_confidence", bin->mean_confidence);
                cJSON_AddNumberToObject(x, "accuracy", (double)bin->correct / (double)bin->docs);
            }
            cJSON_AddItemToArray(reliability, x);
        }
        cJSON *mistakes = cJSON_AddArrayToObject(j, "mistakes");
        for (size_t m = 0; m < a.num_mistakes; m++) {
            const reel_mistake *x = &a.mistakes[m];
            document_text(&text, &trained.vocab, text_ids[x->doc], lengths[x->doc], chars);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "document", (double)x->doc);
            cJSON_AddStringToObject(o, "label", trained.class_names[x->label]);
            cJSON_AddStringToObject(o, "predicted", trained.class_names[x->predicted]);
            cJSON_AddNumberToObject(o, "confidence", x->confidence);
            cJSON_AddNumberToObject(o, "tokens", (double)lengths[x->doc]);
            cJSON_AddStringToObject(o, "text", text.data);
            cJSON_AddItemToArray(mistakes, o);
        }
        cJSON *words = cJSON_AddArrayToObject(j, "error_words");
        for (size_t w = 0; w < a.num_words; w++) {
            const reel_error_word *x = &a.words[w];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "word", trained.vocab.tokens[x->id]);
            cJSON_AddNumberToObject(o, "documents", (double)x->docs);
            cJSON_AddNumberToObject(o, "errors", (double)x->errors);
            cJSON_AddNumberToObject(o, "z", x->z);
            cJSON_AddItemToArray(words, o);
        }
        char *printed = cJSON_Print(j);
        cJSON_Delete(j);
        reel_buf out = {0};
        reel_buf_printf(&out, "%s\n", printed);
        cJSON_free(printed);
        if (reel_write_file_atomic(json_path, out.data, out.length, &err) != 0) status = reel_cli_report(&err, NULL);
        else printf("\nwritten to %s\n", json_path);
        reel_buf_free(&out);
    }
    reel_buf_free(&text);
    reel_analysis_free(&a);
    if (forward) {
        free(text_ids);
        reel_tokfile_close(forward);
    }
    free(labels), free(lengths), free(read), free(ids);
done:
    reel_comm_bcast(&comm, &status, sizeof status, 0);
    free(probs);
    reel_tokfile_close(file);
    reel_trained_free(&trained);
    return status;
}

int reel_cmd_analyze(int argc, char **argv) { return analyze_main(argc, argv, reel_cli_rank()); }
