/* reel runs: one table of several runs (a sweep) with the settings that differ between them and their
 * best and final metrics, read from each run directory's config.ini and metrics.h5. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_common.h"
#include "commands.h"
#include "reel/comm.h"
#include "reel/config.h"
#include "reel/metrics.h"
#include "reel/util.h"

static void usage(FILE *out) {
    fputs("usage: reel runs DIR... [--sort name|best] [--tsv]\n"
          "\n"
          "One table of runs. Each DIR is a run directory (it holds config.ini or metrics.h5), or a directory of\n"
          "run directories (a sweep: every subdirectory that is a run). The table shows the settings that differ\n"
          "between the runs (from each config.ini, the resolved configuration; run_dir left out), the steps\n"
          "and epochs done, the best validation value of each run's best-checkpoint metric ([checkpoint]\n"
          "best_metric; accuracy or perplexity by default) and its step, the last validation value, the test\n"
          "value if the run was evaluated on test, and the training time. Runs still going, or killed, are\n"
          "read as far as they got.\n"
          "\n"
          "options:\n"
          "  --sort KEY   name (default) or best: the best run first\n"
          "  --tsv        tab-separated values with a header row, for other programs\n"
          "  -h, --help   this text\n",
          out);
}

typedef struct setting {
    char *name;  /* section.key */
    char *value;
} setting;

typedef struct run_info {
    char dir[REEL_PATH_MAX];
    setting *settings;
    size_t num_settings;
    int has_metrics;
    char metric[REEL_NAME_MAX];
    int better;            /* +1 higher is better, -1 lower */
    int percent;
    double best, last_valid, test;
    uint64_t best_step, steps, epochs;
    double seconds;
} run_info;

static int is_run(const char *dir) {
    char path[REEL_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.ini", dir);
    if (access(path, F_OK) == 0) return 1;
    snprintf(path, sizeof path, "%s/metrics.h5", dir);
    return access(path, F_OK) == 0;
}

static int collect_setting(void *user, const char *section, const char *name, const char *value) {
    run_info *run = user;
    run->settings = reel_realloc(run->settings, (run->num_settings + 1) * sizeof *run->settings);
    size_t length = strlen(section) + strlen(name) + 2;
    setting *s = &run->settings[run->num_settings++];
    s->name = reel_malloc(length);
    snprintf(s->name, length, "%s.%s", section, name);
    s->value = strdup(value);
    return 1;
}

static const char *setting_of(const run_info *run, const char *name) {
    for (size_t i = 0; i < run->num_settings; i++)
        if (strcmp(run->settings[i].name, name) == 0) return run->settings[i].value;
    return NULL;
}

static int load_run(run_info *run, reel_error *err) {
    char path[REEL_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.ini", run->dir);
    if (access(path, F_OK) == 0) {
        int line = ini_parse(path, collect_setting, run);
        if (line != 0) return reel_fail(err, "%s:%d: cannot read the run's configuration", path, line > 0 ? line : 0);
    }
    run->best = run->last_valid = run->test = NAN;
    snprintf(path, sizeof path, "%s/metrics.h5", run->dir);
    if (access(path, F_OK) != 0) return 0;
    reel_metrics_data d;
    if (reel_metrics_read(&d, path, err) != 0) return -1;
    run->has_metrics = 1;
    const char *chosen = setting_of(run, "checkpoint.best_metric");
    int lm = strcmp(d.objective, "next_token") == 0;
    snprintf(run->metric, sizeof run->metric, "%s", chosen && chosen[0] ? chosen : lm ? "perplexity" : "accuracy");
    run->better = strcmp(run->metric, "perplexity") == 0 || strcmp(run->metric, "loss") == 0 ? -1 : 1;
    run->percent = strcmp(run->metric, "accuracy") == 0;
    const double *step = reel_metrics_series(&d, REEL_METRICS_TRAIN, "step");
    const double *epoch = reel_metrics_series(&d, REEL_METRICS_TRAIN, "epoch");
    const double *seconds = reel_metrics_series(&d, REEL_METRICS_TRAIN, "seconds");
    size_t n = d.rows[REEL_METRICS_TRAIN];
    if (n && step) run->steps = (uint64_t)step[n - 1];
    if (n && epoch) run->epochs = (uint64_t)epoch[n - 1] + 1;
    for (size_t i = 0; seconds && i < n; i++) run->seconds += seconds[i];
    const double *estep = reel_metrics_series(&d, REEL_METRICS_EVAL, "step");
    const double *split = reel_metrics_series(&d, REEL_METRICS_EVAL, "split");
    const double *value = reel_metrics_series(&d, REEL_METRICS_EVAL, run->metric);
    for (size_t i = 0; estep && split && value && i < d.rows[REEL_METRICS_EVAL]; i++) {
        if (split[i] == REEL_SPLIT_TEST) run->test = value[i];
        if (split[i] != REEL_SPLIT_VALID || !isfinite(value[i])) continue;
        run->last_valid = value[i];
        if (isnan(run->best) || (run->better > 0 ? value[i] > run->best : value[i] < run->best)) {
            run->best = value[i];
            run->best_step = (uint64_t)estep[i];
        }
    }
    reel_metrics_data_free(&d);
    return 0;
}

static void free_run(run_info *run) {
    for (size_t i = 0; i < run->num_settings; i++) {
        free(run->settings[i].name);
        free(run->settings[i].value);
    }
    free(run->settings);
}

static int by_name(const void *a, const void *b) { return strcmp(((const run_info *)a)->dir, ((const run_info *)b)->dir); }

static int by_best(const void *a, const void *b) {
    const run_info *x = a, *y = b;
    int nx = isnan(x->best), ny = isnan(y->best);
    if (nx != ny) return nx - ny; /* runs without an evaluation last */
    if (!nx && x->best != y->best) return (x->better > 0 ? x->best > y->best : x->best < y->best) ? -1 : 1;
    return strcmp(x->dir, y->dir);
}

static void format_value(char *out, size_t size, double value, int percent) {
    if (isnan(value)) snprintf(out, size, "-");
    else if (percent) snprintf(out, size, "%.2f%%", 100 * value);
    else snprintf(out, size, "%.4g", value);
}

static int add_dir(run_info **runs, size_t *count, const char *dir, reel_error *err) {
    struct stat info;
    if (stat(dir, &info) != 0 || !S_ISDIR(info.st_mode))
        return reel_fail(err, "%s: %s", dir, errno == ENOENT || stat(dir, &info) != 0 ? "no such directory" : "not a directory");
    if (is_run(dir)) {
        *runs = reel_realloc(*runs, (*count + 1) * sizeof **runs);
        memset(&(*runs)[*count], 0, sizeof **runs);
        snprintf((*runs)[(*count)++].dir, REEL_PATH_MAX, "%s", dir);
        return 0;
    }
    DIR *d = opendir(dir);
    if (!d) return reel_fail(err, "%s: cannot list: %s", dir, strerror(errno));
    size_t found = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char child[REEL_PATH_MAX];
        snprintf(child, sizeof child, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", e->d_name);
        if (stat(child, &info) != 0 || !S_ISDIR(info.st_mode) || !is_run(child)) continue;
        *runs = reel_realloc(*runs, (*count + 1) * sizeof **runs);
        memset(&(*runs)[*count], 0, sizeof **runs);
        snprintf((*runs)[(*count)++].dir, REEL_PATH_MAX, "%s", child);
        found++;
    }
    closedir(d);
    if (!found)
        return reel_fail(err, "%s: neither a run directory (no config.ini or metrics.h5) nor a directory of runs", dir);
    return 0;
}

static int runs_main(int argc, char **argv) {
    static const struct option options[] = {{"sort", required_argument, NULL, 's'},
                                            {"tsv", no_argument, NULL, 't'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    int sort_best = 0, tsv = 0;
    reel_error err = {{0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
        switch (c) {
        case 's':
            if (strcmp(optarg, "name") != 0 && strcmp(optarg, "best") != 0) {
                reel_fail(&err, "--sort '%s': expected name or best", optarg);
                return reel_cli_report(&err, NULL) + 1;
            }
            sort_best = optarg[0] == 'b';
            break;
        case 't': tsv = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind == argc) {
        usage(stderr);
        return 2;
    }
    run_info *runs = NULL;
    size_t count = 0;
    int status = 0;
    for (int i = optind; i < argc && status == 0; i++) status = add_dir(&runs, &count, argv[i], &err);
    for (size_t r = 0; r < count && status == 0; r++) status = load_run(&runs[r], &err);
    if (status != 0) {
        for (size_t r = 0; r < count; r++) free_run(&runs[r]);
        free(runs);
        return reel_cli_report(&err, NULL);
    }
    if (count > 1) qsort(runs, count, sizeof *runs, sort_best ? by_best : by_name); /* may be NULL when empty */

    /* the settings that differ: in the order of the first run that has them */
    const char **differing = NULL;
    size_t num_differing = 0;
    for (size_t r = 0; r < count; r++)
        for (size_t i = 0; i < runs[r].num_settings; i++) {
            const char *name = runs[r].settings[i].name;
            if (strcmp(name, "train.run_dir") == 0) continue;
            int listed = 0;
            for (size_t k = 0; k < num_differing; k++) listed |= strcmp(differing[k], name) == 0;
            if (listed) continue;
            int differs = 0;
            for (size_t q = 0; q < count && !differs; q++) {
                const char *a = setting_of(&runs[q], name), *b = runs[r].settings[i].value;
                differs = !a || strcmp(a, b) != 0;
            }
            if (!differs) continue;
            differing = reel_realloc(differing, (num_differing + 1) * sizeof *differing);
            differing[num_differing++] = name;
        }

    /* the cells, then the widths */
    size_t columns = 1 + num_differing + 6;
    char **cells = reel_calloc((count + 1) * columns, sizeof *cells);
    const char *metric = count ? runs[0].metric : "accuracy";
    for (size_t r = 1; r < count; r++)
        if (strcmp(runs[r].metric, metric) != 0) metric = "best metric";
    char best_title[64];
    snprintf(best_title, sizeof best_title, "best valid %s (step)", metric);
    const char *fixed[] = {"steps", "epochs", best_title, "last valid", "test", "time"};
    cells[0] = strdup("run");
    for (size_t k = 0; k < num_differing; k++) cells[1 + k] = strdup(differing[k]);
    for (int k = 0; k < 6; k++) cells[1 + num_differing + (size_t)k] = strdup(fixed[k]);
    for (size_t r = 0; r < count; r++) {
        const run_info *run = &runs[r];
        char **row = cells + (r + 1) * columns;
        char text[128], value[64];
        row[0] = strdup(run->dir);
        for (size_t k = 0; k < num_differing; k++) {
            const char *v = setting_of(run, differing[k]);
            row[1 + k] = strdup(v ? (v[0] ? v : "\"\"") : "-");
        }
        char **tail = row + 1 + num_differing;
        snprintf(text, sizeof text, "%llu", (unsigned long long)run->steps);
        tail[0] = strdup(run->has_metrics ? text : "-");
        snprintf(text, sizeof text, "%llu", (unsigned long long)run->epochs);
        tail[1] = strdup(run->has_metrics ? text : "-");
        format_value(value, sizeof value, run->best, run->percent);
        if (!isnan(run->best)) snprintf(text, sizeof text, "%s (%llu)", value, (unsigned long long)run->best_step);
        tail[2] = strdup(isnan(run->best) ? "-" : text);
        format_value(value, sizeof value, run->last_valid, run->percent);
        tail[3] = strdup(value);
        format_value(value, sizeof value, run->test, run->percent);
        tail[4] = strdup(value);
        reel_format_duration(text, sizeof text, run->seconds);
        tail[5] = strdup(run->has_metrics ? text : "-");
    }
    size_t *width = reel_calloc(columns, sizeof *width);
    for (size_t r = 0; r <= count; r++)
        for (size_t c = 0; c < columns; c++)
            if (strlen(cells[r * columns + c]) > width[c]) width[c] = strlen(cells[r * columns + c]);
    for (size_t r = 0; r <= count; r++) {
        for (size_t c = 0; c < columns; c++) {
            const char *cell = cells[r * columns + c];
            if (tsv) printf("%s%s", c ? "\t" : "", cell);
            else if (c == 0) printf("%-*s", (int)width[c], cell);
            else printf("  %*s", (int)width[c], cell);
        }
        printf("\n");
    }
    if (!tsv && count > 1 && num_differing == 0) printf("(the runs' configurations are the same)\n");
    for (size_t i = 0; i < (count + 1) * columns; i++) free(cells[i]);
    free(cells);
    free(width);
    free(differing);
    for (size_t r = 0; r < count; r++) free_run(&runs[r]);
    free(runs);
    return 0;
}

int reel_cmd_runs(int argc, char **argv) { return reel_comm_run_on_rank0(runs_main, argc, argv); }
