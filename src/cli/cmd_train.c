/* reel train: thin front end over reel_train(). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "reel/catalogue.h"
#include "reel/config.h"
#include "reel/train.h"

static void usage(FILE *out) {
    fputs("usage: mpirun -np N reel train CONFIG.ini [options]\n"
          "\n"
          "Trains the model CONFIG.ini describes with its objective (a classifier on labelled documents, or a\n"
          "language model on the next token) on the data directory made by `reel prep`, data-parallel over the\n"
          "MPI ranks (also runs without mpirun, as one rank). The global batch ([train] batch_size) is split\n"
          "across the ranks; results do not depend on the number of ranks.\n"
          "\n"
          "If the run directory already holds checkpoints (ckpt_<step>.h5), training resumes from the newest one\n"
          "that loads, with the same sample stream, on any number of ranks (newer ones that do not load are moved\n"
          "to RUN_DIR/replaced_<UTC time>/ with a warning). Rank 0 writes into the run directory:\n"
          "  config.ini        the resolved configuration\n"
          "  ckpt_<step>.h5    checkpoints (the newest [checkpoint] keep_last are kept), ckpt_best.h5 (the best\n"
          "                    by [checkpoint] best_metric: validation accuracy, or perplexity for language models)\n"
          "  metrics.h5        training and evaluation metrics, readable while the job runs\n"
          "                    (h5py.File(path, 'r', swmr=True))\n"
          "\n"
          "options:\n"
          "  --set SECTION.KEY=VALUE   override one configuration key (repeatable), e.g. --set optimizer.lr=3e-4\n"
          "  --run-dir DIR             same as --set train.run_dir=DIR\n"
          "  --resume auto|none|PATH   auto (default): continue from the run directory's newest checkpoint;\n"
          "                            none: start over; PATH: continue from this checkpoint. With none or PATH\n"
          "                            the run directory's checkpoints of later steps (all of them for none;\n"
          "                            ckpt_best.h5 too if it is later or does not load) go to\n"
          "                            RUN_DIR/replaced_<UTC time>/ with the metrics so far: they belong to the\n"
          "                            run being replaced, and nothing saved is deleted\n"
          "  --no-resume               same as --resume none\n"
          "  --time-limit T            this job's time: stop with a checkpoint early enough to save it (T in seconds,\n"
          "                            or [D-]HH:MM:SS / MM:SS as Slurm writes it, e.g. 23:55:00)\n"
          "  --help-config             list every configuration key with its default and meaning, by model type\n"
          "                            and objective\n"
          "  -h, --help                this text\n"
          "\n"
          "Stopping to continue later: SIGTERM, SIGUSR1 or SIGINT (a scheduler's warning before a time limit or a\n"
          "preemption, or Ctrl-C), or a near --time-limit, make every rank stop at the next step boundary after a\n"
          "checkpoint is written. Exit status: 0 when the run is over (every epoch, max_steps, or early stopping);\n"
          "75 when it stopped to be continued (run the same command again, or requeue the job: it resumes where\n"
          "it stopped); 1 on an error; 2 on a usage error.\n"
          "\n"
          "Set OPENBLAS_NUM_THREADS so that ranks per node x threads <= cores per node.\n",
          out);
}

/* Seconds from "90", "1:30", "2:00:00" or "1-00:00:00" (Slurm's [D-]HH:MM:SS); -1 when malformed. */
static double parse_duration(const char *text) {
    long days = 0, parts[3] = {0, 0, 0};
    int count = 0;
    const char *p = text, *dash = strchr(text, '-');
    if (dash) {
        char *end;
        days = strtol(text, &end, 10);
        if (end != dash || days < 0) return -1;
        p = dash + 1;
    }
    while (*p) {
        if (count == 3 || *p < '0' || *p > '9') return -1;
        char *end;
        parts[count++] = strtol(p, &end, 10);
        p = end;
        if (*p == ':') p++;
        else if (*p) return -1;
    }
    if (count == 0 || (dash && count < 2)) return -1;
    double seconds = 0;
    for (int i = 0; i < count; i++) seconds = seconds * 60 + (double)parts[i];
    if (dash && count == 2) seconds *= 60; /* D-HH:MM */
    return seconds + 86400.0 * (double)days;
}

int reel_cmd_train(int argc, char **argv) {
    enum { OPT_SET = 1000, OPT_RUN_DIR, OPT_RESUME, OPT_NO_RESUME, OPT_HELP_CONFIG, OPT_TIME_LIMIT };
    static const struct option options[] = {
        {"set", required_argument, NULL, OPT_SET},       {"run-dir", required_argument, NULL, OPT_RUN_DIR},
        {"resume", required_argument, NULL, OPT_RESUME}, {"no-resume", no_argument, NULL, OPT_NO_RESUME},
        {"help-config", no_argument, NULL, OPT_HELP_CONFIG}, {"help", no_argument, NULL, 'h'},
        {"time-limit", required_argument, NULL, OPT_TIME_LIMIT},
        {NULL, 0, NULL, 0}};
    /* Overrides are applied after the file is read, in the order given. */
    const char *overrides[256];
    size_t num_overrides = 0;
    char run_dir_override[4200] = "";
    reel_train_options train_options = {REEL_RESUME_AUTO, NULL, 0};
    int rank = reel_cli_rank();
    reel_error err = {{0}};

    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
        switch (c) {
        case OPT_SET:
            if (num_overrides == sizeof overrides / sizeof overrides[0]) {
                reel_fail(&err, "too many --set options (at most 256)");
                return reel_cli_report(&err, NULL);
            }
            overrides[num_overrides++] = optarg;
            break;
        case OPT_RUN_DIR:
            snprintf(run_dir_override, sizeof run_dir_override, "train.run_dir=%s", optarg);
            break;
        case OPT_RESUME:
            if (strcmp(optarg, "auto") == 0) train_options.resume = REEL_RESUME_AUTO;
            else if (strcmp(optarg, "none") == 0) train_options.resume = REEL_RESUME_NEVER;
            else {
                train_options.resume = REEL_RESUME_FROM;
                train_options.resume_path = optarg;
            }
            break;
        case OPT_NO_RESUME: train_options.resume = REEL_RESUME_NEVER; break;
        case OPT_TIME_LIMIT:
            train_options.time_limit = parse_duration(optarg);
            if (!(train_options.time_limit > 0)) {
                reel_fail(&err, "--time-limit '%s': expected seconds, or [D-]HH:MM:SS / MM:SS (e.g. 3600, 23:55:00, "
                          "1-12:00:00)", optarg);
                return reel_cli_report(&err, NULL) + 1;
            }
            break;
        case OPT_HELP_CONFIG:
            if (rank == 0) reel_config_print_schema(stdout);
            return 0;
        case 'h': return reel_cli_usage(usage, 0);
        default: return reel_cli_usage(usage, 2);
        }
    }
    if (optind != argc - 1) {
        if (rank == 0) {
            fprintf(stderr, "reel train: expected exactly one CONFIG.ini argument\n");
            usage(stderr);
        }
        return 2;
    }
    reel_config cfg;
    if (reel_config_load_file(&cfg, argv[optind], &err) != 0)
        return reel_cli_report(&err, "`reel train --help-config` lists every key");
    for (size_t i = 0; i < num_overrides; i++)
        if (reel_config_override(&cfg, overrides[i], &err) != 0)
            return reel_cli_report(&err, "`reel train --help-config` lists every key");
    if (run_dir_override[0] && reel_config_override(&cfg, run_dir_override, &err) != 0) return reel_cli_report(&err, NULL);
    return reel_train(&cfg, &train_options);
}
