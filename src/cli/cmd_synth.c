/* `reel synth`: writes the synthetic labelled corpus described in include/reel/synth.h. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "reel/comm.h"
#include "reel/prep.h"
#include "reel/synth.h"

static void synth_usage(FILE *out) {
    fputs("usage: reel synth [--docs N] [--test-docs M] [--seed S] [--short] OUT.tsv [OUT_TEST.tsv]\n"
          "\n"
          "Writes a synthetic movie-review corpus as TSV (header 'label<TAB>text', labels neg/pos) for demos\n"
          "and tests; feed it to 'reel prep OUT.tsv OUTDIR --test OUT_TEST.tsv'. Reviews are 30-200 words of\n"
          "neutral (partly invented) words plus positive and negative words of different strengths, some\n"
          "negated by 'not'; the label is the sign of their summed polarity plus Gaussian noise. A model that\n"
          "knew the generator would reach about 95% accuracy, a bag of words about 92%: learnable, but not\n"
          "trivially.\n"
          "\n"
          "options:\n"
          "  --docs N        training documents written to OUT.tsv (default: 20000)\n"
          "  --test-docs M   test documents written to OUT_TEST.tsv, if that file is given (default: 5000)\n"
          "  --seed S        seed (default: 42). Document i depends only on the seed and i, so a larger\n"
          "                  --docs keeps the first documents unchanged; test documents are a separate draw.\n"
          "  --short         short texts instead: 2-55 words (median 7; about 10 tokens on average), with\n"
          "                  sentiment words twice as often, like tweets or one-line reviews\n"
          "  -h, --help      show this help\n"
          "\n"
          "Each file is written under a temporary name and renamed into place. Runs on one process (under\n"
          "mpirun, rank 0 writes while the other ranks wait). Exit status: 0 on success, 1 on a write\n"
          "error, 2 on a usage error.\n",
          out);
}

/* cli_common.c's parser, its error printed as this command prints its usage errors. */
static int parse_count(const char *option, const char *text, uint64_t *out) {
    reel_error err = {{0}};
    if (reel_cli_parse_u64(option, text, 0, UINT64_MAX, out, &err) == 0) return 0;
    fprintf(stderr, "reel synth: error: %s\n", err.message);
    return -1;
}

static int synth_main(int argc, char **argv) {
    enum { O_DOCS = 256, O_TEST_DOCS, O_SEED, O_SHORT };
    static const struct option long_options[] = {
        {"docs", required_argument, NULL, O_DOCS},
        {"test-docs", required_argument, NULL, O_TEST_DOCS},
        {"seed", required_argument, NULL, O_SEED},
        {"short", no_argument, NULL, O_SHORT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t docs = 20000, test_docs = 5000, seed = 42;
    reel_synth_kind kind = REEL_SYNTH_REVIEWS;
    optind = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, ":h", long_options, NULL);
        if (c == -1) break;
        switch (c) {
        case 'h': synth_usage(stdout); return 0;
        case O_DOCS:
            if (parse_count("--docs", optarg, &docs) != 0) return 2;
            break;
        case O_TEST_DOCS:
            if (parse_count("--test-docs", optarg, &test_docs) != 0) return 2;
            break;
        case O_SEED:
            if (parse_count("--seed", optarg, &seed) != 0) return 2;
            break;
        case O_SHORT: kind = REEL_SYNTH_SHORT; break;
        default: return reel_cli_getopt_error("synth", c, argv);
        }
    }
    int files = argc - optind;
    if (files < 1 || files > 2) {
        fprintf(stderr, "reel synth: error: expected OUT.tsv and optionally OUT_TEST.tsv, got %d argument(s)\n"
                        "usage: reel synth [--docs N] [--test-docs M] [--seed S] [--short] OUT.tsv [OUT_TEST.tsv]\n",
                files);
        return 2;
    }
    const char *paths[2] = {argv[optind], files == 2 ? argv[optind + 1] : NULL};
    const uint64_t counts[2] = {docs, test_docs};
    for (int s = 0; s < files; s++) {
        reel_error err = {""};
        uint64_t positive = 0;
        if (reel_synth_write_tsv(paths[s], seed, s == 0 ? REEL_SYNTH_TRAIN : REEL_SYNTH_TEST, kind, counts[s], &positive,
                                 &err) != 0) {
            fprintf(stderr, "reel synth: error: %s\n", err.message);
            return 1;
        }
        printf("reel synth: wrote %s: %" PRIu64 " %s documents (%" PRIu64 " pos, %" PRIu64 " neg), seed %" PRIu64
               "\n",
               paths[s], counts[s], s == 0 ? "training" : "test", positive, counts[s] - positive, seed);
    }
    return 0;
}

int reel_cmd_synth(int argc, char **argv) { return reel_comm_run_on_rank0(synth_main, argc, argv); }
