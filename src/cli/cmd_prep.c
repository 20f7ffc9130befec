/* `reel prep`: corpus -> token-ID files + vocabulary (the work is in src/prep.c). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_common.h"
#include "commands.h"
#include "reel/comm.h"
#include "reel/prep.h"

static void prep_usage(FILE *out) {
    fputs(
        "usage: reel prep [options] INPUT OUTDIR\n"
        "\n"
        "Tokenizes a corpus once and writes, in OUTDIR (created if missing):\n"
        "  train.tok valid.tok test.tok unsup.tok  token-ID files (only the splits the input has; valid.tok\n"
        "                         only when the validation split is not empty)\n"
        "  vocab.txt              one '<token> TAB <count>' per line, line i = id i: <pad> <unk> <eod>, then\n"
        "                         words by decreasing count over train (including valid) + unsup, ties in\n"
        "                         byte order\n"
        "  labels.txt             class names, line i = class i (labelled input only; IMDb: neg, pos)\n"
        "  prep.ini               manifest: input, format, options, documents/tokens/unknown tokens per\n"
        "                         split, vocabulary size and checksum (16 hex digits), seconds taken.\n"
        "                         Written last: a directory without it holds no complete prep output.\n"
        "Every file is written under a temporary name and renamed into place, so a failed run never\n"
        "leaves a half-written file; outputs of an earlier run that this run does not produce are removed.\n"
        "\n"
        "INPUT formats (--format, default: detected from INPUT):\n"
        "  imdb   the IMDb archive aclImdb_v1.tar.gz, read directly without extracting it, or the extracted\n"
        "         directory (aclImdb/ itself or its parent). Reads [aclImdb/]train/{pos,neg,unsup}/ and\n"
        "         [aclImdb/]test/{pos,neg}/<id>_<rating>.txt; labels neg = 0, pos = 1; other files are\n"
        "         skipped. Detected for a .tar.gz/.tgz file or a directory holding train/ or aclImdb/.\n"
        "  tsv    UTF-8 tab-separated file with a header row, one document per row, no quoting; empty\n"
        "         lines are skipped. Class ids follow the sorted distinct label names of the training file.\n"
        "         Detected for a .tsv file.\n"
        "  text   one document per line, no labels (language-model corpora); empty lines are skipped.\n"
        "         Any other file.\n"
        "\n"
        "Documents keep a canonical order: IMDb by (label, numeric id) in each split (unsup by id), so the\n"
        "archive and the extracted directory give identical files; tsv/text in file order.\n"
        "\n"
        "options:\n"
        "  --format FMT          imdb, tsv or text (default: detect)\n"
        "  --test FILE           tsv/text: test documents (tsv: same columns, labels seen in training)\n"
        "  --unsup FILE          tsv: unlabelled documents (needs only the text column); counted in the\n"
        "                        vocabulary, written to unsup.tok\n"
        "  --text-column NAME    tsv: column holding the text (default: text)\n"
        "  --label-column NAME   tsv: column holding the label (default: label)\n"
        "  --valid-count N       move exactly N training documents to valid (default for imdb: 5000)\n"
        "  --valid-fraction F    move round(F * training documents) to valid, 0 <= F < 1 (default for\n"
        "                        tsv and text: 0.2)\n"
        "  --seed S              seed of the train/valid split, a Philox-driven shuffle (default: 42)\n"
        "  --vocab-size N        at most N vocabulary entries, the 3 reserved ones included (default: 30000)\n"
        "  --min-count K         words counted fewer than K times map to <unk> (default: 1)\n"
        "  --tokenizer T         word (default): the word tokenizer of reel/tokenizer.h; sentencepiece:\n"
        "                        subword pieces of a SentencePiece model of --vocab-size ids, trained on\n"
        "                        the normalised train (valid included) and unsup texts, seeded by --seed,\n"
        "                        with byte fallback (no <unk>); written as pieces.model, its pieces listed\n"
        "                        in vocab.txt in id order with their counts\n"
        "  --piece-model M       sentencepiece: unigram (default) or bpe\n"
        "  --tokenizer-model F   sentencepiece: use the piece model F (a pieces.model of an earlier prep)\n"
        "                        instead of training one (implies --tokenizer sentencepiece)\n"
        "  --threads T           1: one thread; 2: read and decompress the input in a second thread while\n"
        "                        tokenizing (default: 2)\n"
        "  --quiet               print nothing on success\n"
        "  -h, --help            show this help\n"
        "\n"
        "Runs on one process. Under mpirun, with words rank 0 does the work while the other ranks wait idle;\n"
        "with pieces every rank reads and normalises the input, rank 0 trains the piece model, the ranks\n"
        "encode the documents in turn and rank 0 writes the same files as one process. All ranks exit with\n"
        "rank 0's status.\n"
        "Exit status: 0 on success, 1 on an input or output error, 2 on a usage error.\n",
        out);
}

/* The option parsers of cli_common.c, their error printed as this command prints its usage errors. */
static int parse_u64(const char *option, const char *text, uint64_t min, uint64_t max, uint64_t *out) {
    reel_error err = {{0}};
    if (reel_cli_parse_u64(option, text, min, max, out, &err) == 0) return 0;
    fprintf(stderr, "reel prep: error: %s\n", err.message);
    return -1;
}

static int parse_fraction(const char *option, const char *text, double *out) {
    reel_error err = {{0}};
    if (reel_cli_parse_double(option, text, 0, 1, 1, out, &err) == 0) return 0;
    fprintf(stderr, "reel prep: error: %s\n", err.message);
    return -1;
}

static void print_summary(const reel_prep_options *opts, const reel_prep_result *r) {
    printf("reel prep: %s (%s) -> %s\n", opts->input, reel_prep_format_name(r->format), opts->outdir);
    printf("  %-6s %10s %12s %8s\n", "split", "documents", "tokens", "unknown");
    for (int s = 0; s < REEL_SPLIT_COUNT; s++) {
        const reel_prep_split_stats *st = &r->split[s];
        if (!st->present) continue;
        printf("  %-6s %10" PRIu64 " %12" PRIu64 " %7.3f%%\n", reel_split_name(s), st->docs, st->tokens,
               st->tokens ? 100.0 * (double)st->unknown / (double)st->tokens : 0.0);
    }
    printf("  vocabulary: %zu entries (of %zu distinct %s), checksum %016" PRIx64 "; classes: %" PRIu32 "\n",
           r->vocab_size, r->distinct_tokens, opts->tokenizer == REEL_PREP_PIECES ? "pieces used" : "words",
           r->vocab_checksum, r->num_classes);
    if (r->skipped) printf("  skipped: %" PRIu64 " non-review files or empty lines\n", r->skipped);
    if (opts->tokenizer == REEL_PREP_PIECES)
        printf("  done in %.2f s (read and normalise %.2f s, piece model and encoding %.2f s, write %.2f s)\n",
               r->seconds, r->seconds_read, r->seconds_pieces, r->seconds_write);
    else
        printf("  done in %.2f s (read and tokenize %.2f s, write %.2f s)\n", r->seconds, r->seconds_read,
               r->seconds_write);
    fflush(stdout);
}

/* Parses the command line into opts: -1 to run, else the exit status (help 0, usage errors 2). */
static int parse_args(int argc, char **argv, reel_prep_options *out) {
    enum { O_FORMAT = 256, O_TEST, O_UNSUP, O_TEXT_COL, O_LABEL_COL, O_VALID_COUNT, O_VALID_FRACTION, O_SEED,
           O_VOCAB_SIZE, O_MIN_COUNT, O_THREADS, O_QUIET, O_TOKENIZER, O_PIECE_MODEL, O_TOKENIZER_MODEL };
    static const struct option long_options[] = {
        {"format", required_argument, NULL, O_FORMAT},
        {"test", required_argument, NULL, O_TEST},
        {"unsup", required_argument, NULL, O_UNSUP},
        {"text-column", required_argument, NULL, O_TEXT_COL},
        {"label-column", required_argument, NULL, O_LABEL_COL},
        {"valid-count", required_argument, NULL, O_VALID_COUNT},
        {"valid-fraction", required_argument, NULL, O_VALID_FRACTION},
        {"seed", required_argument, NULL, O_SEED},
        {"vocab-size", required_argument, NULL, O_VOCAB_SIZE},
        {"min-count", required_argument, NULL, O_MIN_COUNT},
        {"threads", required_argument, NULL, O_THREADS},
        {"quiet", no_argument, NULL, O_QUIET},
        {"tokenizer", required_argument, NULL, O_TOKENIZER},
        {"piece-model", required_argument, NULL, O_PIECE_MODEL},
        {"tokenizer-model", required_argument, NULL, O_TOKENIZER_MODEL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    reel_prep_options opts;
    reel_prep_options_default(&opts);
    opts.verbose = 1;
    int have_count = 0, have_fraction = 0, have_vocab_size = 0, have_min_count = 0, have_piece_model = 0;
    const char *tokenizer = NULL;
    uint64_t value;
    optind = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, ":h", long_options, NULL);
        if (c == -1) break;
        switch (c) {
        case 'h': prep_usage(stdout); return 0;
        case O_FORMAT:
            if (strcmp(optarg, "imdb") == 0) opts.format = REEL_PREP_IMDB;
            else if (strcmp(optarg, "tsv") == 0) opts.format = REEL_PREP_TSV;
            else if (strcmp(optarg, "text") == 0) opts.format = REEL_PREP_TEXT;
            else {
                fprintf(stderr, "reel prep: error: --format '%s': expected imdb, tsv or text\n", optarg);
                return 2;
            }
            break;
        case O_TEST: opts.test_path = optarg; break;
        case O_UNSUP: opts.unsup_path = optarg; break;
        case O_TEXT_COL: opts.text_column = optarg; break;
        case O_LABEL_COL: opts.label_column = optarg; break;
        case O_VALID_COUNT:
            if (parse_u64("--valid-count", optarg, 0, INT64_MAX, &value) != 0) return 2;
            opts.valid_count = (int64_t)value;
            have_count = 1;
            break;
        case O_VALID_FRACTION:
            if (parse_fraction("--valid-fraction", optarg, &opts.valid_fraction) != 0) return 2;
            have_fraction = 1;
            break;
        case O_SEED:
            if (parse_u64("--seed", optarg, 0, UINT64_MAX, &opts.seed) != 0) return 2;
            break;
        case O_VOCAB_SIZE:
            /* token ids are 32-bit */
            if (parse_u64("--vocab-size", optarg, 4, UINT32_MAX, &value) != 0) return 2;
            opts.vocab_size = (size_t)value;
            have_vocab_size = 1;
            break;
        case O_MIN_COUNT:
            if (parse_u64("--min-count", optarg, 1, UINT64_MAX, &opts.min_count) != 0) return 2;
            have_min_count = 1;
            break;
        case O_TOKENIZER:
            if (strcmp(optarg, "word") != 0 && strcmp(optarg, "sentencepiece") != 0) {
                fprintf(stderr, "reel prep: error: --tokenizer '%s': expected word or sentencepiece\n", optarg);
                return 2;
            }
            tokenizer = optarg;
            break;
        case O_PIECE_MODEL:
            if (strcmp(optarg, "bpe") != 0 && strcmp(optarg, "unigram") != 0) {
                fprintf(stderr, "reel prep: error: --piece-model '%s': expected unigram or bpe\n", optarg);
                return 2;
            }
            opts.piece_bpe = strcmp(optarg, "bpe") == 0;
            have_piece_model = 1;
            break;
        case O_TOKENIZER_MODEL: opts.pieces_model_path = optarg; break;
        case O_THREADS:
            if (parse_u64("--threads", optarg, 1, 2, &value) != 0) return 2;
            opts.threads = (int)value;
            break;
        case O_QUIET: opts.verbose = 0; break;
        default: return reel_cli_getopt_error("prep", c, argv);
        }
    }
    if (have_count && have_fraction) {
        fprintf(stderr, "reel prep: error: give --valid-count or --valid-fraction, not both\n");
        return 2;
    }
    if (opts.pieces_model_path && tokenizer && strcmp(tokenizer, "word") == 0) {
        fprintf(stderr, "reel prep: error: --tokenizer-model is a SentencePiece model; it does not go with --tokenizer word\n");
        return 2;
    }
    if ((tokenizer && strcmp(tokenizer, "sentencepiece") == 0) || opts.pieces_model_path)
        opts.tokenizer = REEL_PREP_PIECES;
    if (opts.tokenizer == REEL_PREP_WORDS && have_piece_model) {
        fprintf(stderr, "reel prep: error: --piece-model applies to --tokenizer sentencepiece\n");
        return 2;
    }
    if (opts.tokenizer == REEL_PREP_PIECES && have_min_count) {
        fprintf(stderr, "reel prep: error: --min-count applies to the word tokenizer; pieces have no <unk>\n");
        return 2;
    }
    if (opts.pieces_model_path && (have_vocab_size || have_piece_model)) {
        fprintf(stderr, "reel prep: error: --tokenizer-model %s fixes the pieces; --vocab-size and --piece-model "
                        "apply to training a model\n", opts.pieces_model_path);
        return 2;
    }
    if (argc - optind != 2) {
        fprintf(stderr, "reel prep: error: expected INPUT and OUTDIR, got %d argument(s)\n"
                        "usage: reel prep [options] INPUT OUTDIR (see reel prep --help)\n",
                argc - optind);
        return 2;
    }
    opts.input = argv[optind];
    opts.outdir = argv[optind + 1];
    *out = opts;
    return -1;
}

/* One process, or rank 0 alone while the others wait (words under mpirun). */
static int prep_main(int argc, char **argv) {
    reel_prep_options opts;
    int status = parse_args(argc, argv, &opts);
    if (status >= 0) return status;
    reel_prep_result result;
    reel_error err = {""};
    if (reel_prep_run(&opts, &result, &err) != 0) {
        fprintf(stderr, "reel prep: error: %s\n", err.message);
        return 1;
    }
    if (opts.verbose) print_summary(&opts, &result);
    return 0;
}

/* Pieces under mpirun: rank 0 parses the command line and says what to do; with pieces every rank
 * takes part (reel/prep.h), rank 0 printing; every rank exits with rank 0's status. */
int reel_cmd_prep(int argc, char **argv) {
    reel_comm world;
    reel_comm_world(&world);
    if (world.size == 1) return prep_main(argc, argv);
    int decision[2] = {0, 0}; /* 0: exit with decision[1]; 1: rank 0 alone; 2: every rank */
    reel_prep_options opts;
    if (world.rank == 0) {
        int status = parse_args(argc, argv, &opts);
        decision[0] = status >= 0 ? 0 : opts.tokenizer == REEL_PREP_PIECES ? 2 : 1;
        decision[1] = status;
    }
    reel_comm_bcast(&world, decision, sizeof decision, 0);
    if (decision[0] == 0) return decision[1];
    if (decision[0] == 1) return reel_comm_run_on_rank0(prep_main, argc, argv);
    if (world.rank != 0) {
        int status = parse_args(argc, argv, &opts); /* as on rank 0, where it succeeded */
        REEL_CHECK(status < 0, NULL, "rank %d read the command line otherwise than rank 0", world.rank);
    }
    opts.comm = &world;
    reel_prep_result result;
    reel_error err = {""};
    int status = 0;
    if (reel_prep_run(&opts, &result, &err) != 0) {
        /* rank 0 names the error of the input, which every rank meets; another rank's own is its own */
        if (world.rank == 0)
            fprintf(stderr, "reel prep: error: %s\n", err.message);
        else if (!strstr(err.message, "another rank of the prep failed"))
            fprintf(stderr, "reel prep: rank %d: error: %s\n", world.rank, err.message);
        status = 1;
    } else if (world.rank == 0 && opts.verbose) {
        print_summary(&opts, &result);
        printf("  on %d ranks\n", world.size);
    }
    /* rank 0 writes after the others are done: they wait for its status without spinning */
    MPI_Request request;
    REEL_MPI_CHECK(MPI_Ibcast(&status, 1, MPI_INT, 0, world.comm, &request));
    for (int done = 0; !done;) {
        REEL_MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
        if (!done) nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    return status;
}
