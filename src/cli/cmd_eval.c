/* reel eval: evaluates a checkpoint on one split, spread over the MPI ranks. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "reel/checkpoint.h"
#include "reel/comm.h"
#include "reel/config.h"
#include "reel/eval.h"
#include "reel/model.h"
#include "reel/vocab.h"

static void usage(FILE *out) {
    fputs("usage: [mpirun -np N] reel eval CHECKPOINT.h5 [options]\n"
          "\n"
          "Rebuilds the model from the configuration stored in the checkpoint, loads its weights and reports loss,\n"
          "accuracy, precision, recall, F1 and the confusion matrix (positive class = label 1) on one split.\n"
          "The split is spread over the ranks.\n"
          "\n"
          "options:\n"
          "  --split NAME     valid, test (default) or train: reads DATA/NAME.tok\n"
          "  --data DIR       data directory (default: the checkpoint's [data] dir)\n"
          "  --batch N        documents per forward pass and rank (default 256)\n"
          "  -h, --help       this text\n",
          out);
}

int reel_cmd_eval(int argc, char **argv) {
    static const struct option options[] = {{"split", required_argument, NULL, 's'},
                                            {"data", required_argument, NULL, 'd'},
                                            {"batch", required_argument, NULL, 'b'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *split = "test", *data_dir = NULL;
    size_t batch = 256;
    int rank = reel_cli_rank();
    reel_error err = {{0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
        switch (c) {
        case 's': split = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'b': {
            char *end;
            unsigned long long value = strtoull(optarg, &end, 10);
            if (*end || value == 0) {
                reel_fail(&err, "--batch '%s': expected a positive integer", optarg);
                return reel_cli_report(&err, NULL);
            }
            batch = (size_t)value;
            break;
        }
        case 'h':
            if (rank == 0) usage(stdout);
            return 0;
        default:
            if (rank == 0) usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        if (rank == 0) usage(stderr);
        return 2;
    }
    if (strcmp(split, "valid") != 0 && strcmp(split, "test") != 0 && strcmp(split, "train") != 0) {
        reel_fail(&err, "--split '%s': expected valid, test or train", split);
        return reel_cli_report(&err, NULL);
    }
    const char *checkpoint = argv[optind];
    char *config_text = NULL;
    if (reel_checkpoint_read_config(checkpoint, &config_text, &err) != 0) return reel_cli_report(&err, NULL);
    reel_config cfg;
    char source[REEL_PATH_MAX + 16];
    snprintf(source, sizeof source, "%s:/config", checkpoint);
    int status = reel_config_load_string(&cfg, config_text, source, &err);
    free(config_text);
    if (status != 0) return reel_cli_report(&err, NULL);
    if (data_dir) snprintf(cfg.data.dir, sizeof cfg.data.dir, "%s", data_dir);

    reel_vocab vocab;
    char path[2 * 2 * REEL_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/vocab.txt", cfg.data.dir);
    if (reel_vocab_load(&vocab, path, &err) != 0) return reel_cli_report(&err, "pass the data directory with --data");
    reel_model *model;
    if (reel_model_create(&model, &cfg, batch, &err) != 0) return reel_cli_report(&err, NULL);
    if (reel_checkpoint_load(checkpoint, model, NULL, NULL, vocab.checksum, &err) != 0) return reel_cli_report(&err, NULL);
    snprintf(path, sizeof path, "%s/%s.tok", cfg.data.dir, split);
    reel_tokfile *file;
    if (reel_tokfile_open(&file, path, &err) != 0) return reel_cli_report(&err, NULL);
    if (reel_tokfile_info(file)->vocab_checksum != vocab.checksum) {
        reel_fail(&err, "%s was made with another vocabulary than %s/vocab.txt", path, cfg.data.dir);
        return reel_cli_report(&err, "re-run `reel prep`");
    }
    reel_comm comm;
    reel_comm_world(&comm);
    reel_eval_result r;
    reel_evaluate(model, file, cfg.data.max_tokens, batch, &comm, &r);
    if (rank == 0) {
        printf("checkpoint %s, split %s (%s)\n", checkpoint, split, path);
        printf("reviews    %" PRIu64 "\nloss       %.4f\naccuracy   %.2f%%\nprecision  %.4f\nrecall     %.4f\n"
               "F1         %.4f\n", r.count, r.loss, 100 * r.accuracy, r.precision, r.recall, r.f1);
        printf("confusion  predicted:   pos      neg\n           actual pos %7" PRIu64 "  %7" PRIu64
               "\n           actual neg %7" PRIu64 "  %7" PRIu64 "\n", r.tp, r.fn, r.fp, r.tn);
    }
    reel_tokfile_close(file);
    reel_model_destroy(model);
    reel_vocab_free(&vocab);
    return 0;
}
