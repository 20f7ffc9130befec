/* reel: the command-line front end. Each subcommand lives in its own cmd_<name>.c; this file only
 * initialises MPI and dispatches. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "reel/check.h"
#include "reel/comm.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} reel_command;

static const reel_command commands[] = {
    {"prep", reel_cmd_prep, "turn a corpus (IMDb archive, TSV, plain text) into token-ID files and a vocabulary"},
    {"synth", reel_cmd_synth, "write a synthetic labelled corpus (TSV) that a model can learn, for demos and tests"},
    {"train", reel_cmd_train, "train a model from a config file, data-parallel over the MPI ranks; resumes"},
    {"eval", reel_cmd_eval, "evaluate a checkpoint on a split: accuracy and F1, or perplexity"},
    {"predict", reel_cmd_predict, "classify raw text with a trained classifier, or score it with a language model"},
    {"serve", reel_cmd_serve, "serve a trained model over HTTP: a JSON API and a page to try it"},
    {"analyze", reel_cmd_analyze, "error analysis of a classifier: mistakes, calibration, length, words"},
    {"plot", reel_cmd_plot, "draw training curves of runs (metrics.h5), or a reliability diagram, as PNG"},
    {"runs", reel_cmd_runs, "compare runs (a sweep): the settings that differ, best and final metrics"},
    {"generate", reel_cmd_generate, "write text with a language model: a prime, a temperature, top-k, top-p"},
    {"export", reel_cmd_export, "write a corpus as reel tokenized it, or a checkpoint's embedding as word vectors"},
    {"commtest", reel_cmd_commtest, "check and time the gradient exchange between the ranks before a long job"},
    {"inspect", reel_cmd_inspect, "summarise and validate a checkpoint, token file, vocabulary or metrics file"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: reel <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'reel <command> --help' describes a command. Version " REEL_VERSION ".\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("reel " REEL_VERSION "\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        /* a failed MPI_Init aborts on its own (MPI's default handler is in force until the next line) */
        MPI_Init(&argc, &argv);
        /* failures come back to reel's checks (REEL_MPI_CHECK), which say what failed and abort every rank */
        REEL_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
        int status = commands[i].run(argc - 1, argv + 1);
        REEL_MPI_CHECK(MPI_Finalize());
        reel_exit(status); /* not return: an HDF5 file that failed to close must not reach HDF5's teardown */
    }
    fprintf(stderr, "reel: error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
