/* reel plot: training curves from metrics.h5 and reliability diagrams from reel analyze, drawn by
 * gnuplot (Debian's gnuplot-nox, its pngcairo terminal). reel writes the data and the script; gnuplot
 * draws. */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_common.h"
#include "commands.h"
#include "reel/comm.h"
#include "reel/config.h"
#include "reel/metrics.h"
#include "reel/util.h"

static void usage(FILE *out) {
    fputs("usage: reel plot RUN_DIR... -o FILE.png [options]\n"
          "       reel plot --reliability ANALYSIS.json -o FILE.png\n"
          "\n"
          "Draws training curves from each RUN_DIR/metrics.h5 (also while the run is going, or after it was\n"
          "killed): the loss, the objective's measure (accuracy; perplexity on a log scale for language models),\n"
          "the learning rate, the gradient norm, the throughput and the share of time in the gradient\n"
          "all-reduce, against the step. Training values are lines, validation values points; several runs are\n"
          "overlaid, a colour each. With --reliability, draws the reliability diagram that `reel analyze --json`\n"
          "wrote (accuracy against confidence per bin, and how many predictions fall in each bin).\n"
          "Drawn by gnuplot (Debian package gnuplot-nox).\n"
          "\n"
          "options:\n"
          "  -o, --output FILE     the PNG to write (required); written under a temporary name, then renamed\n"
          "  --reliability FILE    draw the reliability diagram of this `reel analyze --json` file\n"
          "  --size WxH            pixels (default 1500x900; 900x800 for --reliability)\n"
          "  --title TEXT          the figure's title (default: the runs' names)\n"
          "  -h, --help            this text\n",
          out);
}

/* gnuplot single-quoted string: a quote is written twice. */
static void quoted(reel_buf *out, const char *text) {
    reel_buf_append(out, "'", 1);
    for (const char *p = text; *p; p++) {
        if (*p == '\'') reel_buf_append(out, "''", 2);
        else if (*p != '\n') reel_buf_append(out, p, 1);
    }
    reel_buf_append(out, "'", 1);
}

/* The name a run is shown by: its directory's last component. */
static const char *run_name(const char *dir, char *buffer, size_t size) {
    snprintf(buffer, size, "%s", dir);
    size_t n = strlen(buffer);
    while (n > 1 && buffer[n - 1] == '/') buffer[--n] = '\0';
    const char *slash = strrchr(buffer, '/');
    return slash ? slash + 1 : buffer;
}

static int find_gnuplot(char *path, size_t size) {
    const char *dirs = getenv("PATH");
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", dirs ? dirs : "/usr/bin:/bin");
    for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        snprintf(path, size, "%s/gnuplot", dir);
        if (access(path, X_OK) == 0) return 0;
    }
    return -1;
}

/* Runs gnuplot on script, which writes temporary; renames it to output on success. */
static int run_gnuplot(const reel_buf *script, const char *temporary, const char *output, reel_error *err) {
    char gnuplot[1024];
    if (find_gnuplot(gnuplot, sizeof gnuplot) != 0)
        return reel_fail(err, "gnuplot is not installed: reel plot draws with it (apt-get install gnuplot-nox, or "
                         "scripts/install-deps)");
    /* an unwritable destination is named here, not left to gnuplot's terse message */
    FILE *probe = fopen(temporary, "wb");
    if (!probe) return reel_fail(err, "%s: cannot write: %s", output, strerror(errno));
    fclose(probe);
    char command[1100];
    snprintf(command, sizeof command, "'%s'", gnuplot);
    FILE *pipe = popen(command, "w");
    if (!pipe) return reel_fail(err, "cannot start gnuplot: %s", strerror(errno));
    fwrite(script->data, 1, script->length, pipe);
    int status = pclose(pipe);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        unlink(temporary);
        return reel_fail(err, "gnuplot failed (exit status %d; its message is above)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    if (rename(temporary, output) != 0) {
        unlink(temporary);
        return reel_fail(err, "%s: cannot write: %s", output, strerror(errno));
    }
    return 0;
}

typedef struct panel {
    const char *title;
    const char *series;      /* train series (NULL: none) */
    const char *valid_series; /* eval series on the validation split (NULL: none) */
    int log_scale;
    double scale;            /* values are multiplied by this (100 for percentages) */
} panel;

static int plot_runs(char **dirs, size_t count, const char *output, int width, int height, const char *title,
                     reel_error *err) {
    reel_metrics_data *runs = reel_calloc(count, sizeof *runs);
    int status = 0;
    for (size_t r = 0; r < count && status == 0; r++) {
        char path[REEL_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/metrics.h5", dirs[r]);
        if (access(path, F_OK) != 0)
            status = reel_fail(err, "%s: no metrics.h5 in it: give run directories written by `reel train`", dirs[r]);
        else status = reel_metrics_read(&runs[r], path, err);
    }
    if (status != 0) {
        for (size_t r = 0; r < count; r++) reel_metrics_data_free(&runs[r]);
        free(runs);
        return -1;
    }
    int lm = strcmp(runs[0].objective, "next_token") == 0;
    for (size_t r = 1; r < count; r++)
        if (strcmp(runs[r].objective, runs[0].objective) != 0) lm = -1;
    panel panels[6] = {
        {"loss", "loss", "loss", 0, 1},
        {lm == 1 ? "perplexity" : "accuracy (%)", lm == 1 ? "perplexity" : "accuracy", lm == 1 ? "perplexity" : "accuracy",
         lm == 1, lm == 1 ? 1 : 100},
        {"learning rate", "lr", NULL, 0, 1},
        {"gradient norm (before clipping)", "grad_norm", NULL, 1, 1},
        {lm == 1 ? "tokens per second" : "samples per second", lm == 1 ? "tokens_per_s" : "samples_per_s", NULL, 0, 1},
        {"time in the gradient all-reduce (%)", "allreduce_share", NULL, 0, 100},
    };
    if (lm < 0) { /* runs of different objectives: loss and the shared series only */
        panels[1] = (panel){"(runs of different objectives)", NULL, NULL, 0, 1};
        panels[4] = panels[1];
    }

    char temporary[REEL_PATH_MAX + 16];
    snprintf(temporary, sizeof temporary, "%s.tmp.png", output);
    reel_buf s = {0}, names = {0};
    reel_buf_printf(&s, "set terminal pngcairo noenhanced size %d,%d font 'DejaVu Sans,10' linewidth 1.5\nset output ", width, height);
    quoted(&s, temporary);
    reel_buf_printf(&s, "\nset grid lc rgb '#dddddd'\nset key top right font ',9' opaque\nset xlabel 'step'\n"
                        "set format y '%%g'\n");
    for (size_t r = 0; r < count; r++) {
        char buffer[REEL_PATH_MAX];
        reel_buf_printf(&names, "%s%s", r ? ", " : "", run_name(dirs[r], buffer, sizeof buffer));
    }
    reel_buf_printf(&s, "set multiplot layout 2,3 title ");
    quoted(&s, title ? title : names.data);
    reel_buf_printf(&s, " font ',13'\n");
    /* the data: one block per run and table, the train block holding every panel's train series in order */
    for (size_t r = 0; r < count; r++) {
        const reel_metrics_data *d = &runs[r];
        const double *step = reel_metrics_series(d, REEL_METRICS_TRAIN, "step");
        reel_buf_printf(&s, "$train%zu << EOD\n", r);
        for (size_t i = 0; step && i < d->rows[REEL_METRICS_TRAIN]; i++) {
            reel_buf_printf(&s, "%.17g", step[i]);
            for (int p = 0; p < 6; p++) {
                const double *v = panels[p].series ? reel_metrics_series(d, REEL_METRICS_TRAIN, panels[p].series) : NULL;
                double x = v ? v[i] * panels[p].scale : NAN;
                if (panels[p].log_scale && !(x > 0)) x = NAN;
                reel_buf_printf(&s, isfinite(x) ? " %.9g" : " NaN", x);
            }
            reel_buf_printf(&s, "\n");
        }
        reel_buf_printf(&s, "EOD\n$valid%zu << EOD\n", r);
        const double *estep = reel_metrics_series(d, REEL_METRICS_EVAL, "step");
        const double *split = reel_metrics_series(d, REEL_METRICS_EVAL, "split");
        for (size_t i = 0; estep && split && i < d->rows[REEL_METRICS_EVAL]; i++) {
            if (split[i] != REEL_SPLIT_VALID) continue;
            reel_buf_printf(&s, "%.17g", estep[i]);
            for (int p = 0; p < 6; p++) {
                const double *v = panels[p].valid_series ? reel_metrics_series(d, REEL_METRICS_EVAL, panels[p].valid_series) : NULL;
                double x = v ? v[i] * panels[p].scale : NAN;
                reel_buf_printf(&s, isfinite(x) ? " %.9g" : " NaN", x);
            }
            reel_buf_printf(&s, "\n");
        }
        reel_buf_printf(&s, "EOD\n");
    }
    for (int p = 0; p < 6; p++) {
        /* rising curves (accuracy) keep the legend out of their way at the bottom */
        int rising = panels[p].series && strcmp(panels[p].series, "accuracy") == 0;
        reel_buf_printf(&s, "set title '%s'\n%s\nset key %s right\n", panels[p].title,
                        panels[p].log_scale ? "set logscale y" : "unset logscale y", rising ? "bottom" : "top");
        int any = 0;
        for (size_t r = 0; r < count; r++) {
            any |= panels[p].series && reel_metrics_series(&runs[r], REEL_METRICS_TRAIN, panels[p].series) != NULL &&
                   runs[r].rows[REEL_METRICS_TRAIN] > 0;
        }
        if (!any) {
            reel_buf_printf(&s, "set label 1 'no data' at graph 0.5,0.5 center\nplot [0:1] NaN notitle\nunset label 1\n");
            continue;
        }
        reel_buf_printf(&s, "plot ");
        int first = 1;
        for (size_t r = 0; r < count; r++) {
            char buffer[REEL_PATH_MAX];
            const char *name = run_name(dirs[r], buffer, sizeof buffer);
            reel_buf_printf(&s, "%s$train%zu using 1:%d with lines lc %zu title ", first ? "" : ", ", r, p + 2, r + 1);
            reel_buf tag = {0};
            reel_buf_printf(&tag, "%s%s", name, panels[p].valid_series ? " train" : "");
            quoted(&s, tag.data);
            first = 0;
            int has_valid = 0;
            const double *split = reel_metrics_series(&runs[r], REEL_METRICS_EVAL, "split");
            for (size_t i = 0; split && i < runs[r].rows[REEL_METRICS_EVAL]; i++) has_valid |= split[i] == REEL_SPLIT_VALID;
            if (panels[p].valid_series && has_valid) {
                reel_buf_printf(&s, ", $valid%zu using 1:%d with linespoints lc %zu dt 2 pt 7 ps 0.8 title ", r, p + 2, r + 1);
                tag.length = 0;
                reel_buf_printf(&tag, "%s valid", name);
                quoted(&s, tag.data);
            }
            reel_buf_free(&tag);
        }
        reel_buf_printf(&s, "\n");
    }
    reel_buf_printf(&s, "unset multiplot\nset output\n");
    status = run_gnuplot(&s, temporary, output, err);
    reel_buf_free(&s);
    reel_buf_free(&names);
    for (size_t r = 0; r < count; r++) reel_metrics_data_free(&runs[r]);
    free(runs);
    return status;
}

static int plot_reliability(const char *path, const char *output, int width, int height, const char *title,
                            reel_error *err) {
    reel_buf text = {0};
    if (reel_read_file(&text, path, 64u << 20, 0, err) != 0) return -1;
    const char *end = NULL;
    cJSON *json = cJSON_ParseWithLengthOpts(text.data, text.length, &end, 0);
    const cJSON *bins = json ? cJSON_GetObjectItemCaseSensitive(json, "reliability") : NULL;
    const cJSON *ece = json ? cJSON_GetObjectItemCaseSensitive(json, "ece") : NULL;
    if (!json || !cJSON_IsArray(bins) || !cJSON_IsNumber(ece)) {
        int status = reel_fail(err, "%s: %s", path, !json ? "not JSON" : "no \"reliability\" table and \"ece\": give the file "
                               "`reel analyze --json` wrote");
        cJSON_Delete(json);
        reel_buf_free(&text);
        return status;
    }
    char temporary[REEL_PATH_MAX + 16];
    snprintf(temporary, sizeof temporary, "%s.tmp.png", output);
    reel_buf s = {0};
    reel_buf_printf(&s, "set terminal pngcairo noenhanced size %d,%d font 'DejaVu Sans,11' linewidth 1.5\nset output ", width, height);
    quoted(&s, temporary);
    reel_buf_printf(&s, "\n$bins << EOD\n");
    int index = 0;
    for (const cJSON *bin = bins->child; bin; bin = bin->next, index++) {
        const cJSON *low = cJSON_GetObjectItemCaseSensitive(bin, "low"), *high = cJSON_GetObjectItemCaseSensitive(bin, "high");
        const cJSON *docs = cJSON_GetObjectItemCaseSensitive(bin, "documents");
        const cJSON *conf = cJSON_GetObjectItemCaseSensitive(bin, "mean_confidence");
        const cJSON *acc = cJSON_GetObjectItemCaseSensitive(bin, "accuracy");
        if (!cJSON_IsNumber(low) || !cJSON_IsNumber(high) || !cJSON_IsNumber(docs)) {
            cJSON_Delete(json);
            reel_buf_free(&text);
            reel_buf_free(&s);
            return reel_fail(err, "%s: reliability bin %d lacks low, high or documents", path, index);
        }
        double middle = (low->valuedouble + high->valuedouble) / 2;
        if (cJSON_IsNumber(conf) && cJSON_IsNumber(acc))
            reel_buf_printf(&s, "%.6g %.6g %.6g %.0f\n", middle, conf->valuedouble, acc->valuedouble, docs->valuedouble);
        else
            reel_buf_printf(&s, "%.6g NaN NaN %.0f\n", middle, docs->valuedouble);
    }
    reel_buf_printf(&s, "EOD\nset multiplot layout 2,1 title ");
    reel_buf heading = {0};
    const cJSON *checkpoint = cJSON_GetObjectItemCaseSensitive(json, "checkpoint");
    reel_buf_printf(&heading, "%s (expected calibration error %.4f)", title ? title : cJSON_IsString(checkpoint) ?
                    checkpoint->valuestring : path, ece->valuedouble);
    quoted(&s, heading.data);
    reel_buf_printf(&s, " font ',12'\n"
                        "set size 1,0.68\nset origin 0,0.3\nset grid lc rgb '#dddddd'\nset key top left\n"
                        "set xrange [0:1]\nset yrange [0:1]\nset xlabel 'confidence (the predicted class''s probability)'\n"
                        "set ylabel 'accuracy'\nset title 'reliability'\n"
                        "plot x with lines dt 2 lc rgb '#888888' title 'perfect calibration', "
                        "$bins using 2:3 with linespoints pt 7 ps 1.2 lc rgb '#2f5bd3' title 'model'\n"
                        "set size 1,0.3\nset origin 0,0\nset title 'predictions per confidence bin'\nset yrange [0:*]\n"
                        "set ylabel 'documents'\nset xlabel 'confidence'\nset style fill solid 0.6\nset boxwidth 0.09\n"
                        "plot $bins using 1:4 with boxes lc rgb '#2f5bd3' notitle\nunset multiplot\nset output\n");
    int status = run_gnuplot(&s, temporary, output, err);
    reel_buf_free(&heading);
    reel_buf_free(&s);
    reel_buf_free(&text);
    cJSON_Delete(json);
    return status;
}

static int plot_main(int argc, char **argv) {
    static const struct option options[] = {{"output", required_argument, NULL, 'o'},
                                            {"reliability", required_argument, NULL, 'r'},
                                            {"size", required_argument, NULL, 's'},
                                            {"title", required_argument, NULL, 't'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *output = NULL, *reliability = NULL, *title = NULL;
    int width = 0, height = 0;
    reel_error err = {{0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "ho:", options, NULL)) != -1;) {
        switch (c) {
        case 'o': output = optarg; break;
        case 'r': reliability = optarg; break;
        case 't': title = optarg; break;
        case 's': {
            char tail;
            if (sscanf(optarg, "%dx%d%c", &width, &height, &tail) != 2 || width < 200 || height < 200 || width > 10000 ||
                height > 10000) {
                reel_fail(&err, "--size '%s': expected WIDTHxHEIGHT in pixels, each 200 to 10000 (e.g. 1500x900)", optarg);
                return reel_cli_report(&err, NULL) + 1;
            }
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!output) {
        reel_fail(&err, "give the PNG to write with -o FILE.png");
        return reel_cli_report(&err, NULL) + 1;
    }
    int status;
    if (reliability) {
        if (optind != argc) {
            usage(stderr);
            return 2;
        }
        status = plot_reliability(reliability, output, width ? width : 900, height ? height : 800, title, &err);
    } else {
        if (optind == argc) {
            usage(stderr);
            return 2;
        }
        status = plot_runs(argv + optind, (size_t)(argc - optind), output, width ? width : 1500, height ? height : 900,
                           title, &err);
    }
    if (status != 0) return reel_cli_report(&err, NULL);
    printf("written to %s\n", output);
    return 0;
}

int reel_cmd_plot(int argc, char **argv) { return reel_comm_run_on_rank0(plot_main, argc, argv); }
