/* reel predict: raw text in, predictions out, with a trained checkpoint. */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"
#include "commands.h"
#include "reel/comm.h"
#include "reel/infer.h"
#include "reel/loader.h"
#include "reel/util.h"

static void usage(FILE *out) {
    fputs("usage: reel predict CHECKPOINT.h5 [FILE|-] [options]\n"
          "\n"
          "Classifies raw text with a trained classifier, or scores it with a language model (its perplexity).\n"
          "Input: one document per line of FILE (standard input when FILE is - or absent), or with --tsv a\n"
          "tab-separated file with a header row whose --text-column holds the text (as `reel prep` reads TSV:\n"
          "no quoting, a trailing CR is dropped). Each document is tokenized exactly as `reel prep` did for the\n"
          "checkpoint, with the checkpoint's own vocabulary (no data directory needed): HTML tags removed,\n"
          "invalid UTF-8 replaced, words outside the vocabulary read as <unk> (a model of subword pieces\n"
          "encodes with the SentencePiece model its checkpoint carries: nothing is unknown).\n"
          "\n"
          "Output, one row per input document in input order (empty documents too, marked empty):\n"
          "  classifiers       line, predicted class, its probability, the probability of every class, and the\n"
          "                    start of the text\n"
          "  language models   line, tokens predicted (the document and its end), perplexity, and the text\n"
          "--json writes one JSON object per line instead, e.g.\n"
          "  {\"line\":1,\"label\":\"pos\",\"probability\":0.97,\"probabilities\":{\"neg\":0.03,\"pos\":0.97},\n"
          "   \"tokens\":12,\"unknown\":1}   (tokens read; unknown: how many of them became <unk>)\n"
          "Documents are run in batches of similar length.\n"
          "\n"
          "options:\n"
          "  --tsv                the input is TSV with a header row\n"
          "  --text-column NAME   TSV column holding the text (default: text)\n"
          "  --max-tokens N       tokens read from the start of each document, from its end for a backward\n"
          "                       model ([data] reverse) (default: the checkpoint's [data] max_tokens, the\n"
          "                       length it was validated at; 0: all)\n"
          "  --batch N            documents per forward pass (default 64)\n"
          "  --json               JSON lines instead of a table\n"
          "  --verbose            documents, tokens, time and throughput on standard error\n"
          "  -h, --help           this text\n"
          "\n"
          "Runs on one process (under mpirun, rank 0 works while the others wait). Exit status: 0 on success,\n"
          "1 on an error (unreadable checkpoint or input, a TSV without the text column), 2 on a usage error.\n",
          out);
}

typedef struct predict_run {
    reel_trained trained;
    reel_text_encoder encoder;
    reel_predictor *predictor;
    size_t max_tokens;
    int json, verbose, is_lm, header_printed;
    /* the documents of the current chunk */
    size_t count, capacity;
    uint64_t *line_of;
    char **text;
    uint32_t **ids;
    size_t *id_capacity, *unknown;
    reel_document *docs;
    float *probs;
    double *nll;
    /* totals for --verbose */
    uint64_t total_docs, total_tokens;
    double seconds;
} predict_run;

/* Documents read per chunk: enough to batch by length, few enough that output follows input closely. */
enum { CHUNK_DOCS = 1024 };

static void add_document(predict_run *r, uint64_t line, const char *text, size_t length) {
    if (r->count == r->capacity) {
        size_t n = r->capacity ? 2 * r->capacity : 64;
        r->line_of = reel_realloc(r->line_of, n * sizeof *r->line_of);
        r->text = reel_realloc(r->text, n * sizeof *r->text);
        r->ids = reel_realloc(r->ids, n * sizeof *r->ids);
        r->id_capacity = reel_realloc(r->id_capacity, n * sizeof *r->id_capacity);
        r->unknown = reel_realloc(r->unknown, n * sizeof *r->unknown);
        r->docs = reel_realloc(r->docs, n * sizeof *r->docs);
        for (size_t i = r->capacity; i < n; i++) {
            r->ids[i] = NULL;
            r->id_capacity[i] = 0;
            r->text[i] = NULL;
        }
        r->capacity = n;
    }
    size_t i = r->count++;
    r->line_of[i] = line;
    free(r->text[i]);
    r->text[i] = reel_malloc(length + 1);
    memcpy(r->text[i], text, length);
    r->text[i][length] = '\0';
    r->docs[i].length = reel_text_encode(&r->encoder, text, length, r->max_tokens, &r->ids[i], &r->id_capacity[i],
                                         &r->unknown[i], NULL);
    r->docs[i].ids = r->ids[i];
}

/* The start of a text for the table: its first 60 bytes (not cutting a UTF-8 sequence), tabs and
 * control characters as spaces. */
static void snippet(char *out, size_t size, const char *text) {
    size_t n = 0, limit = size - 4 < 60 ? size - 4 : 60;
    for (const unsigned char *p = (const unsigned char *)text; *p && n < limit; p++) {
        if (n + 1 >= limit && (*p & 0xC0) == 0x80) break;
        out[n++] = *p < 0x20 || *p == 0x7f ? ' ' : (char)*p;
    }
    while (n > 0 && ((unsigned char)out[n - 1] & 0xC0) == 0xC0) n--; /* a lead byte without its continuation */
    out[n] = '\0';
    if (text[n]) strcat(out, "...");
}

static void print_header(const predict_run *r);

static void print_chunk(predict_run *r) {
    size_t C = r->is_lm ? 0 : r->trained.num_classes;
    if (!r->header_printed) print_header(r);
    r->header_printed = 1;
    for (size_t i = 0; i < r->count; i++) {
        int empty = r->docs[i].length == 0 && !r->is_lm;
        if (r->json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "line", (double)r->line_of[i]);
            if (empty) {
                cJSON_AddStringToObject(o, "error", "empty document: no token to read");
            } else if (r->is_lm) {
                /* the document's tokens and its end are predicted */
                cJSON_AddNumberToObject(o, "tokens", (double)(r->docs[i].length + 1));
                cJSON_AddNumberToObject(o, "unknown", (double)r->unknown[i]);
                cJSON_AddNumberToObject(o, "perplexity", exp(r->nll[i] / (double)(r->docs[i].length + 1)));
                cJSON_AddNumberToObject(o, "nll", r->nll[i]);
            } else {
                const float *prob = r->probs + i * C;
                size_t best = 0;
                for (size_t k = 1; k < C; k++)
                    if (prob[k] > prob[best]) best = k;
                cJSON_AddStringToObject(o, "label", r->trained.class_names[best]);
                cJSON_AddNumberToObject(o, "probability", prob[best]);
                cJSON *all = cJSON_AddObjectToObject(o, "probabilities");
                for (size_t k = 0; k < C; k++) cJSON_AddNumberToObject(all, r->trained.class_names[k], prob[k]);
                cJSON_AddNumberToObject(o, "tokens", (double)r->docs[i].length);
                cJSON_AddNumberToObject(o, "unknown", (double)r->unknown[i]);
            }
            char *line = cJSON_PrintUnformatted(o);
            puts(line);
            cJSON_free(line);
            cJSON_Delete(o);
            continue;
        }
        char text[80];
        snippet(text, sizeof text, r->text[i]);
        printf("%-6llu", (unsigned long long)r->line_of[i]);
        if (r->is_lm) {
            printf(" %7zu %11.2f  %s\n", r->docs[i].length + 1, exp(r->nll[i] / (double)(r->docs[i].length + 1)), text);
            continue;
        }
        if (empty) {
            printf(" %-10s %8s", "(empty)", "-");
            for (size_t k = 0; k < C; k++) printf(" %8s", "-");
            printf("  %s\n", text);
            continue;
        }
        const float *prob = r->probs + i * C;
        size_t best = 0;
        for (size_t k = 1; k < C; k++)
            if (prob[k] > prob[best]) best = k;
        printf(" %-10s %8.4f", r->trained.class_names[best], prob[best]);
        for (size_t k = 0; k < C; k++) printf(" %8.4f", prob[k]);
        printf("  %s\n", text);
    }
    fflush(stdout);
}

static void run_chunk(predict_run *r) {
    if (r->count == 0) return;
    double start = reel_now_seconds();
    if (r->is_lm) {
        r->nll = reel_realloc(r->nll, r->count * sizeof *r->nll);
        size_t *tokens = reel_malloc(r->count * sizeof *tokens);
        reel_score_documents(r->predictor, r->docs, r->count, r->nll, tokens);
        free(tokens);
    } else {
        r->probs = reel_realloc(r->probs, r->count * r->trained.num_classes * sizeof *r->probs);
        reel_predict_classes(r->predictor, r->docs, r->count, r->probs);
    }
    r->seconds += reel_now_seconds() - start;
    r->total_docs += r->count;
    for (size_t i = 0; i < r->count; i++) r->total_tokens += r->docs[i].length;
    print_chunk(r);
    r->count = 0;
}

static void print_header(const predict_run *r) {
    if (r->json) return;
    if (r->is_lm) {
        printf("%-6s %7s %11s  %s\n", "line", "tokens", "perplexity", "text");
        return;
    }
    printf("%-6s %-10s %8s", "line", "class", "prob");
    for (size_t k = 0; k < r->trained.num_classes; k++) printf(" %8.8s", r->trained.class_names[k]);
    printf("  %s\n", "text");
}

/* Splits a TSV line into fields in place; returns the number of fields (at most max). */
static size_t split_tabs(char *line, char **fields, size_t max) {
    size_t n = 0;
    fields[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == '\t') {
            *p = '\0';
            fields[n++] = p + 1;
        }
    return n;
}

static int predict_main(int argc, char **argv) {
    static const struct option options[] = {{"tsv", no_argument, NULL, 't'},
                                            {"text-column", required_argument, NULL, 'c'},
                                            {"max-tokens", required_argument, NULL, 'm'},
                                            {"batch", required_argument, NULL, 'b'},
                                            {"json", no_argument, NULL, 'j'},
                                            {"verbose", no_argument, NULL, 'v'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    int tsv = 0, json = 0, verbose = 0;
    const char *text_column = "text";
    size_t max_tokens = SIZE_MAX; /* SIZE_MAX: not given */
    size_t batch = 64;
    reel_error err = {{0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
        switch (c) {
        case 't': tsv = 1; break;
        case 'c': text_column = optarg; break;
        case 'j': json = 1; break;
        case 'v': verbose = 1; break;
        case 'm':
        case 'b':
            if (reel_cli_parse_size(c == 'b' ? "--batch" : "--max-tokens", optarg, c == 'b', SIZE_MAX,
                                    c == 'b' ? &batch : &max_tokens, &err) != 0)
                return reel_cli_report(&err, NULL) + 1;
            break;
        case 'h': return reel_cli_usage(usage, 0);
        default: return reel_cli_usage(usage, 2);
        }
    }
    if (optind != argc - 1 && optind != argc - 2) return reel_cli_usage(usage, 2);
    const char *checkpoint = argv[optind];
    const char *input = optind == argc - 2 ? argv[optind + 1] : "-";

    predict_run r = {0};
    r.json = json;
    r.verbose = verbose;
    reel_load_options load = {NULL, 0, batch};
    if (reel_trained_load(&r.trained, checkpoint, &load, &err) != 0)
        return reel_cli_report(&err, "give a checkpoint written by `reel train`");
    r.is_lm = r.trained.model->output == REEL_OUTPUT_TOKEN;
    r.max_tokens = max_tokens != SIZE_MAX ? max_tokens : r.is_lm ? 0 : r.trained.cfg.data.max_tokens;
    reel_text_encoder_init(&r.encoder, &r.trained.vocab, r.trained.model->vocab_size);
    r.encoder.reverse = r.trained.cfg.data.reverse;
    if (reel_predictor_create(&r.predictor, r.trained.model, batch, &err) != 0) {
        reel_trained_free(&r.trained);
        return reel_cli_report(&err, NULL);
    }

    FILE *in = strcmp(input, "-") == 0 ? stdin : fopen(input, "rb");
    int status = 0;
    if (!in) {
        reel_fail(&err, "%s: cannot open: %s", input, strerror(errno));
        status = reel_cli_report(&err, NULL);
    }
    const char *input_name = in == stdin ? "standard input" : input;
    /* an interactive terminal gets each answer as soon as its line is read */
    size_t chunk = in && isatty(fileno(in)) ? 1 : CHUNK_DOCS;
    char *line = NULL;
    size_t line_capacity = 0;
    ssize_t length;
    uint64_t line_number = 0;
    size_t column = 0, columns = 0;
    while (in && status == 0 && (length = getline(&line, &line_capacity, in)) >= 0) {
        line_number++;
        if (length > 0 && line[length - 1] == '\n') line[--length] = '\0';
        if (length > 0 && line[length - 1] == '\r') line[--length] = '\0';
        if (!tsv) {
            add_document(&r, line_number, line, (size_t)length);
        } else if (line_number == 1) {
            char *fields[256];
            columns = split_tabs(line, fields, 256);
            column = columns;
            for (size_t f = 0; f < columns; f++)
                if (strcmp(fields[f], text_column) == 0) column = f;
            if (column == columns) {
                reel_buf names = {0};
                char shown[REEL_QUOTE_MAX]; /* a column name as the file has it, escaped */
                for (size_t f = 0; f < columns; f++)
                    reel_buf_printf(&names, "%s'%s'", f ? ", " : "", reel_escape_string(shown, sizeof shown, fields[f]));
                reel_fail(&err, "%s: line 1: no column '%s' in the header (its columns: %s); name the text column "
                          "with --text-column", input_name, text_column, names.data);
                reel_buf_free(&names);
                status = reel_cli_report(&err, NULL);
            }
        } else {
            if (length == 0) continue; /* as prep reads TSV: empty lines are no rows */
            char *fields[256];
            size_t n = split_tabs(line, fields, 256);
            if (n <= column) {
                reel_fail(&err, "%s: line %llu: %zu field(s), but the text column '%s' is field %zu of the header's %zu",
                          input_name, (unsigned long long)line_number, n, text_column, column + 1, columns);
                status = reel_cli_report(&err, NULL);
                break;
            }
            add_document(&r, line_number, fields[column], strlen(fields[column]));
        }
        if (r.count >= chunk) run_chunk(&r);
    }
    if (in && status == 0 && ferror(in)) {
        reel_fail(&err, "%s: read error: %s", input_name, strerror(errno));
        status = reel_cli_report(&err, NULL);
    }
    if (status == 0 && tsv && line_number == 0) {
        reel_fail(&err, "%s: empty: a TSV input needs a header row naming its columns", input_name);
        status = reel_cli_report(&err, NULL);
    }
    if (status == 0) run_chunk(&r);
    if (status == 0 && verbose)
        fprintf(stderr, "%llu documents, %llu tokens in %.3f s of model time: %.1f documents/s, %.0f tokens/s\n",
                (unsigned long long)r.total_docs, (unsigned long long)r.total_tokens, r.seconds,
                r.seconds > 0 ? (double)r.total_docs / r.seconds : 0.0,
                r.seconds > 0 ? (double)r.total_tokens / r.seconds : 0.0);
    if (in && in != stdin) fclose(in);
    free(line);
    for (size_t i = 0; i < r.capacity; i++) {
        free(r.ids[i]);
        free(r.text[i]);
    }
    free(r.line_of);
    free(r.text);
    free(r.ids);
    free(r.id_capacity);
    free(r.unknown);
    free(r.docs);
    free(r.probs);
    free(r.nll);
    reel_predictor_free(r.predictor);
    reel_text_encoder_free(&r.encoder);
    reel_trained_free(&r.trained);
    return status;
}

int reel_cmd_predict(int argc, char **argv) { return reel_comm_run_on_rank0(predict_main, argc, argv); }
