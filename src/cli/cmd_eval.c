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
          "accuracy, precision, recall, F1 and the confusion matrix (positive class = label 1) on one split; with\n"
          "more than two classes, macro-averaged precision, recall and F1.\n"
          "The split is spread over the ranks.\n"
          "\n"
          "options:\n"
          "  --split NAME     valid, test (default) or train: reads DATA/NAME.tok\n"
          "  --data DIR       data directory (default: the checkpoint's [data] dir)\n"
          "  --batch N        documents per forward pass and rank (default 256)\n"
          "  --lengths LIST   evaluate once per length, keeping each review's first L tokens, and print a table;\n"
          "                   comma-separated, 0 or 'full' for whole reviews (e.g. 50,100,200,400,full).\n"
          "                   Default: the checkpoint's [data] max_tokens\n"
          "  -h, --help       this text\n",
          out);
}

int reel_cmd_eval(int argc, char **argv) {
    static const struct option options[] = {{"split", required_argument, NULL, 's'},
                                            {"data", required_argument, NULL, 'd'},
                                            {"batch", required_argument, NULL, 'b'},
                                            {"lengths", required_argument, NULL, 'l'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *split = "test", *data_dir = NULL, *length_list = NULL;
    size_t batch = 256;
    int rank = reel_cli_rank();
    reel_error err = {{0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
        switch (c) {
        case 's': split = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'l': length_list = optarg; break;
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
    size_t lengths[64], num_lengths = 0;
    if (!length_list) {
        lengths[num_lengths++] = cfg.data.max_tokens;
    } else {
        char copy[1024];
        snprintf(copy, sizeof copy, "%s", length_list);
        for (char *save = NULL, *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
            char *end;
            unsigned long long value = strcmp(item, "full") == 0 ? 0 : strtoull(item, &end, 10);
            if ((strcmp(item, "full") != 0 && (*end || end == item)) || num_lengths == 64) {
                reel_fail(&err, "--lengths '%s': expected up to 64 comma-separated token counts (0 or full: whole reviews)",
                          length_list);
                return reel_cli_report(&err, NULL);
            }
            lengths[num_lengths++] = (size_t)value;
        }
    }
    reel_comm comm;
    reel_comm_world(&comm);
    if (rank == 0) printf("checkpoint %s, split %s (%s)\n", checkpoint, split, path);
    if (num_lengths > 1 && rank == 0) printf("%8s %9s %8s %8s %9s %8s\n", "length", "accuracy", "loss", "F1", "precision", "recall");
    for (size_t i = 0; i < num_lengths; i++) {
        reel_eval_result r;
        reel_evaluate(model, file, lengths[i], batch, &comm, &r);
        if (rank != 0) continue;
        char label[32];
        snprintf(label, sizeof label, lengths[i] ? "%zu" : "full", lengths[i]);
        if (num_lengths > 1) {
            printf("%8s %8.2f%% %8.4f %8.4f %9.4f %8.4f\n", label, 100 * r.accuracy, r.loss, r.f1, r.precision, r.recall);
            continue;
        }
        printf("length     %s tokens\nreviews    %" PRIu64 "\nloss       %.4f\naccuracy   %.2f%%\nprecision  %.4f\n"
               "recall     %.4f\nF1         %.4f\n", label, r.count, r.loss, 100 * r.accuracy, r.precision, r.recall, r.f1);
        if (r.num_classes == 2)
            printf("confusion  predicted:   pos      neg\n           actual pos %7" PRIu64 "  %7" PRIu64
                   "\n           actual neg %7" PRIu64 "  %7" PRIu64 "\n", r.tp, r.fn, r.fp, r.tn);
        else
            printf("classes    %zu (precision, recall and F1 are macro averages)\n", r.num_classes);
    }
    reel_tokfile_close(file);
    reel_model_destroy(model);
    reel_vocab_free(&vocab);
    return 0;
}
