/* reel eval: evaluates a checkpoint on one split, spread over the MPI ranks, with the objective it was
 * trained with. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "reel/comm.h"
#include "reel/gemm.h"
#include "reel/loader.h"
#include "reel/objective.h"
#include "reel/util.h"

static void usage(FILE *out) {
    fputs("usage: [mpirun -np N] reel eval CHECKPOINT.h5 [options]\n"
          "\n"
          "Rebuilds the model from the configuration stored in the checkpoint, loads its weights and evaluates it\n"
          "on one split with the objective it was trained with. Classifiers: loss, accuracy, precision, recall,\n"
          "F1 and the confusion matrix (positive class = label 1), and the F1 averaged over the classes (macro);\n"
          "with more than two classes, macro-averaged precision, recall and F1. Language models: loss,\n"
          "perplexity (full softmax), next-token accuracy, the unigram distribution's perplexity (a baseline),\n"
          "and bits per byte and perplexity per word (which do not depend on the tokenizer; NaN unless the\n"
          "whole split is read whole). The split is spread over the ranks.\n"
          "\n"
          "options:\n"
          "  --split NAME     valid, test (default) or train: reads DATA/NAME.tok\n"
          "  --data DIR       data directory (default: the checkpoint's [data] dir)\n"
          "  --batch N        documents per forward pass and rank (default 256)\n"
          "  --docs N         only the split's first N documents (default: all)\n"
          "  --lengths LIST   evaluate once per length, keeping each review's first L tokens, and print a table;\n"
          "                   comma-separated, 0 or 'full' for whole reviews (e.g. 50,100,200,400,full).\n"
          "                   Default: the checkpoint's [data] max_tokens. A unidirectional recurrent classifier\n"
          "                   reads each review once for all lengths (its state after L tokens does not depend\n"
          "                   on what follows), and so does the Transformer classifier (the windows inside L\n"
          "                   are the whole review's); other models read it once per length\n"
          "  --separate       one pass per length even when one pass would do (the same figures, slower)\n"
          "  --precision P    fp32 (default), bf16 or auto: the matrix products in bfloat16 with fp32\n"
          "                   accumulation, about twice as fast where the CPU has AVX512_BF16 or AMX; the\n"
          "                   figures move in their last digits (bf16 stops with an error on other CPUs,\n"
          "                   auto falls back to fp32)\n"
          "  -h, --help       this text\n",
          out);
}

int reel_cmd_eval(int argc, char **argv) {
    static const struct option options[] = {{"split", required_argument, NULL, 's'},
                                            {"data", required_argument, NULL, 'd'},
                                            {"batch", required_argument, NULL, 'b'},
                                            {"lengths", required_argument, NULL, 'l'},
                                            {"docs", required_argument, NULL, 'n'},
                                            {"separate", no_argument, NULL, 'S'},
                                            {"precision", required_argument, NULL, 'p'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *split = "test", *data_dir = NULL, *length_list = NULL, *precision_name = "fp32";
    size_t batch = 256, max_docs = 0;
    int separate = 0;
    int rank = reel_cli_rank();
    reel_error err = {{0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
        switch (c) {
        case 's': split = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'l': length_list = optarg; break;
        case 'S': separate = 1; break;
        case 'p': precision_name = optarg; break;
        case 'b':
        case 'n':
            if (reel_cli_parse_size(c == 'b' ? "--batch" : "--docs", optarg, 1, SIZE_MAX, c == 'b' ? &batch : &max_docs,
                                    &err) != 0)
                return reel_cli_report(&err, NULL);
            break;
        case 'h': return reel_cli_usage(usage, 0);
        default: return reel_cli_usage(usage, 2);
        }
    }
    if (optind != argc - 1) return reel_cli_usage(usage, 2);
    if (reel_cli_check_split(split, &err) != 0) return reel_cli_report(&err, NULL);
    reel_precision precision;
    if (reel_precision_choose("--precision", " ", precision_name, &precision, &err) != 0)
        return reel_cli_report(&err, "use --precision fp32 (the default), or auto (bf16 where the CPU has it)");
    const char *checkpoint = argv[optind];
    reel_trained trained;
    reel_load_options load = {data_dir, 1, batch};
    if (reel_trained_load(&trained, checkpoint, &load, &err) != 0)
        return reel_cli_report(&err, "pass the data directory with --data");
    const reel_config *cfg = &trained.cfg;
    reel_comm comm;
    reel_comm_world(&comm);
    reel_objective *obj;
    if (reel_objective_create(&obj, cfg, trained.model, &trained.vocab, &comm, batch, 0, &err) != 0) {
        reel_trained_free(&trained);
        return reel_cli_report(&err, NULL);
    }
    /* the weights do not change during an evaluation: their bf16 copies are made once */
    reel_gemm_set_precision(precision);
    reel_gemm_set_params(trained.model->params.data, trained.model->params.num_floats);
    reel_gemm_params_changed();
    size_t lengths[64], num_lengths = 0;
    if (!length_list) {
        lengths[num_lengths++] = cfg->data.max_tokens;
    } else {
        char copy[1024];
        snprintf(copy, sizeof copy, "%s", length_list);
        for (char *save = NULL, *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
            size_t value = 0;
            reel_error item_err = {{0}}; /* the message below names the whole list */
            if ((strcmp(item, "full") != 0 && reel_cli_parse_size("--lengths", item, 0, SIZE_MAX, &value, &item_err) != 0) ||
                num_lengths == 64) {
                reel_fail(&err, "--lengths '%s': expected up to 64 comma-separated token counts (0 or full: whole reviews)",
                          length_list);
                return reel_cli_report(&err, NULL);
            }
            lengths[num_lengths++] = value;
        }
    }
    if (rank == 0) printf("checkpoint %s (%s, objective %s), split %s (%s/%s.tok)\n", checkpoint, cfg->model.type,
                          obj->type, split, cfg->data.dir, split);
    /* the table of several lengths shows the fractional series; a single evaluation shows them all */
    if (num_lengths > 1 && rank == 0) {
        printf("%8s", "length");
        for (size_t s = 0; s < obj->num_eval_series; s++)
            if (obj->eval_series[s].type == REEL_COLUMN_F64) printf(" %10s", obj->eval_series[s].name);
        printf("\n");
    }
    /* every length from one pass when the model allows it */
    reel_value *all = NULL;
    double start = reel_now_seconds();
    if (num_lengths > 1 && !separate && obj->ops->evaluate_cuts) {
        all = reel_malloc(num_lengths * obj->num_eval_series * sizeof *all);
        reel_eval_request request = {split, 0, max_docs, batch};
        if (obj->ops->evaluate_cuts(obj, &request, lengths, num_lengths, all) != 0) {
            free(all);
            all = NULL;
        }
    }
    for (size_t i = 0; i < num_lengths; i++) {
        reel_value values[32];
        reel_eval_request request = {split, lengths[i], max_docs, batch};
        if (all) memcpy(values, all + i * obj->num_eval_series, obj->num_eval_series * sizeof *values);
        else obj->ops->evaluate(obj, &request, values);
        if (rank != 0) continue;
        char label[32];
        snprintf(label, sizeof label, lengths[i] ? "%zu" : "full", lengths[i]);
        if (num_lengths > 1) {
            printf("%8s", label);
            for (size_t s = 0; s < obj->num_eval_series; s++) {
                if (obj->eval_series[s].type != REEL_COLUMN_F64) continue;
                if (obj->eval_series[s].percent) printf(" %9.2f%%", 100 * values[s].f);
                else printf(" %10.4f", values[s].f);
            }
            printf("\n");
            continue;
        }
        printf("%-19s%s tokens\n", "length", label);
        for (size_t s = 0; s < obj->num_eval_series; s++) {
            const reel_series *series = &obj->eval_series[s];
            if (series->type != REEL_COLUMN_F64) printf("%-19s%" PRIu64 "\n", series->name, values[s].u);
            else if (series->percent) printf("%-19s%.2f%%\n", series->name, 100 * values[s].f);
            else printf("%-19s%.4f\n", series->name, values[s].f);
        }
        reel_buf summary = {0};
        obj->ops->describe(obj, REEL_METRICS_EVAL, values, &summary);
        printf("%-19s%s\n", "summary", summary.data);
        reel_buf_free(&summary);
    }
    if (num_lengths > 1 && rank == 0)
        printf("%zu lengths in %.1f s (%s)\n", num_lengths, reel_now_seconds() - start,
               all ? "one pass over the documents" : "a pass per length");
    free(all);
    reel_objective_destroy(obj);
    reel_gemm_set_params(NULL, 0);
    reel_gemm_set_precision(REEL_FP32);
    reel_gemm_release();
    reel_trained_free(&trained);
    return 0;
}
