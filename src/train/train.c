/* The data-parallel training loop (reel/train.h). It knows models, optimizers, checkpoints and metrics;
 * everything about the task (data, sampling, loss, metrics) belongs to the objective (reel/objective.h). */
#include "reel/train.h"

#include <cblas.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "reel/catalogue.h"
#include "reel/checkpoint.h"
#include "reel/comm.h"
#include "reel/exchange.h"
#include "reel/gemm.h"
#include "reel/metrics.h"
#include "reel/model.h"
#include "reel/objective.h"
#include "reel/optim.h"
#include "reel/util.h"
#include "reel/vectors.h"
#include "reel/vocab.h"

/* A model fine-tuned from another must read its documents in the same direction ([data] reverse): the
 * encoder's weights describe text read one way. And a classifier started from a GPT must attend causally. */
static int init_reads_same_direction(const reel_config *cfg, reel_error *err) {
    char *text = NULL;
    if (reel_checkpoint_read_config(cfg->model.init_from, &text, err) != 0) return -1;
    char source[REEL_PATH_MAX + 16];
    snprintf(source, sizeof source, "%s:/config", cfg->model.init_from);
    reel_config *trained = reel_calloc(1, sizeof *trained);
    int status = reel_config_load_string(trained, text, source, err);
    free(text);
    if (status == 0 && trained->data.reverse != cfg->data.reverse)
        status = reel_fail(err, "[model] init_from = %s was trained on documents read %s ([data] reverse = %s), but this "
                           "run reads them %s", cfg->model.init_from, trained->data.reverse ? "backward" : "forward",
                           trained->data.reverse ? "true" : "false", cfg->data.reverse ? "backward" : "forward");
    /* a GPT's blocks were trained to read what comes before each token: read bidirectionally, each token
     * would mix in what follows it, which the loaded weights never saw */
    const int *causal = reel_config_field(cfg, "model.causal");
    if (status == 0 && causal && !*causal && strcmp(trained->model.type, "gpt") == 0)
        status = reel_fail(err, "[model] init_from = %s is a gpt, whose blocks were trained causal, but [model] causal "
                           "= false reads every window in both directions; set causal = true", cfg->model.init_from);
    free(trained);
    return status;
}

enum { MAX_CONSECUTIVE_SKIPS = 10, MAX_SERIES = 24 };

/* The signal that asked the run to stop (0: none). Set by the handler, read at step boundaries. */
static volatile sig_atomic_t stop_signal = 0;
static void on_stop_signal(int signo) { stop_signal = signo; }
static const int stop_signals[] = {SIGTERM, SIGUSR1, SIGINT};
#define NUM_STOP_SIGNALS (sizeof stop_signals / sizeof stop_signals[0])

/* Everything one training run holds. */
typedef struct trainer {
    const reel_config *cfg;
    reel_comm comm;
    reel_vocab vocab;
    reel_model *model;
    reel_objective *obj;
    reel_optimizer opt;
    reel_train_state state;
    reel_metrics *metrics; /* rank 0 only */
    char *config_ini;
    reel_buf class_names;  /* labels.txt of the data (classifiers), stored in checkpoints as /labels */
    uint64_t total_steps, last_checkpoint_step;
    size_t local_rows_max;
    int best_index;        /* the eval series of the best-checkpoint criterion, or -1 */
    uint8_t *frozen;       /* (parameter tensors) named by [optimizer] freeze */
    uint8_t *frozen_now;   /* (parameter tensors) frozen at this step (gradual unfreezing releases some) */
    reel_exchange *exchange;
    int exchange_planned;
    size_t *ranges;        /* (2 * tensors) offset, count of each run of trainable tensors: what is exchanged */
    size_t num_ranges;
    size_t released;       /* frozen groups gradual unfreezing has released so far */
    int best_better;       /* +1 higher is better, -1 lower */
    /* stopping to be continued: the job's clock and what a checkpoint needs */
    double time_limit, start_seconds, slowest_step, last_save_seconds, last_eval_seconds;
    uint64_t stop_after_step; /* REEL_STOP_AFTER_STEP: stop as on a signal after this global step (tests) */
    /* the metrics layout: the trainer's columns around the objective's series */
    reel_column train_columns[MAX_SERIES], eval_columns[MAX_SERIES];
    size_t num_train_columns, num_eval_columns;
} trainer;

/* Where the ranks run: rank 0 logs each host with its ranks, ranks x OpenBLAS threads and cores, and warns
 * for every host where that exceeds the cores (ranks x spinning BLAS threads beyond the cores slow every
 * rank down badly). */
typedef struct rank_place {
    char host[MPI_MAX_PROCESSOR_NAME];
    int threads;
    int cores;
} rank_place;

static void report_placement(const trainer *t) {
    rank_place mine;
    memset(&mine, 0, sizeof mine);
    int length = 0;
    REEL_MPI_CHECK(MPI_Get_processor_name(mine.host, &length));
    mine.threads = openblas_get_num_threads();
    mine.cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int size = t->comm.size;
    rank_place *all = t->comm.rank == 0 ? reel_malloc((size_t)size * sizeof *all) : NULL;
    REEL_MPI_CHECK(MPI_Gather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, 0, t->comm.comm));
    if (t->comm.rank != 0) return;
    reel_log("reel %s: %d rank(s), %d OpenBLAS thread(s) per rank on rank 0\n", REEL_VERSION, size, mine.threads);
    uint8_t *done = reel_calloc((size_t)size, 1);
    for (int r = 0; r < size; r++) {
        if (done[r]) continue;
        reel_buf ranks = {0};
        int count = 0, threads = 0, run_start = -1;
        for (int q = r; q <= size; q++) {
            int here = q < size && !done[q] && strcmp(all[q].host, all[r].host) == 0;
            if (here) {
                done[q] = 1;
                count++;
                threads += all[q].threads;
                if (run_start < 0) run_start = q;
            }
            if (!here && run_start >= 0) { /* print runs of consecutive ranks as a-b */
                reel_buf_printf(&ranks, "%s%d", ranks.length ? "," : "", run_start);
                if (q - 1 > run_start) reel_buf_printf(&ranks, "-%d", q - 1);
                run_start = -1;
            }
        }
        reel_log("  host %s: rank(s) %s, %d rank(s) x threads = %d of %d core(s)\n", all[r].host, ranks.data ? ranks.data : "", count,
                 threads, all[r].cores);
        if (threads > all[r].cores)
            reel_warn("host %s: %d ranks with %d OpenBLAS threads in all exceed its %d cores; set OPENBLAS_NUM_THREADS "
                      "so that ranks x threads <= cores (the job scripts take it from the CPUs per task)", all[r].host,
                      count, threads, all[r].cores);
        reel_buf_free(&ranks);
    }
    free(done);
    free(all);
}

static void broadcast_training_state(trainer *t) {
    reel_comm_bcast(&t->comm, t->model->params.data, t->model->params.num_floats * sizeof(float), 0);
    if (t->model->state.num_floats)
        reel_comm_bcast(&t->comm, t->model->state.data, t->model->state.num_floats * sizeof(float), 0);
    for (size_t s = 0; s < t->opt.num_slots; s++)
        reel_comm_bcast(&t->comm, t->opt.slots[s], t->opt.num_floats * sizeof(float), 0);
    reel_comm_bcast(&t->comm, &t->opt.steps_taken, sizeof t->opt.steps_taken, 0);
    reel_comm_bcast(&t->comm, t->opt.tensor_steps, t->opt.num_tensors * sizeof *t->opt.tensor_steps, 0);
    reel_comm_bcast(&t->comm, &t->state, sizeof t->state, 0);
}

/* A run started over (--resume none) or from a given checkpoint replaces whatever the run directory holds
 * of later steps: left there, an automatic resume would continue that other run, and keep_last would
 * count its checkpoints among the newest and delete this run's own. Nothing saved is deleted: the
 * checkpoints of later steps, ckpt_best.h5 unless it was saved at or before `step` (then it is of this
 * run's past), and the metrics (moved when starting over, copied otherwise, since the run keeps their
 * first `step` steps) go to run_dir/replaced_<UTC time>/, which no resume or pruning looks into. Rank 0. */
static void set_aside_later_steps(const char *run_dir, uint64_t step, const char *why) {
    char aside[REEL_PATH_MAX + 64], stamp[32];
    time_t now = time(NULL);
    struct tm utc;
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", gmtime_r(&now, &utc));
    snprintf(aside, sizeof aside, "%.*s/replaced_%s", REEL_PATH_MAX, run_dir, stamp);
    for (int n = 2; access(aside, F_OK) == 0; n++) /* a second replacement within the same second */
        snprintf(aside, sizeof aside, "%.*s/replaced_%s_%d", REEL_PATH_MAX, run_dir, stamp, n);
    uint64_t lowest, highest;
    size_t moved = reel_checkpoint_move_after(run_dir, step, aside, &lowest, &highest);
    if (moved)
        reel_log("%s: moved %zu checkpoint(s) of %s, steps %" PRIu64 " to %" PRIu64 ", after step %" PRIu64 ", to %s\n",
                 why, moved, run_dir, lowest, highest, step, aside);
    char best[REEL_PATH_MAX + 32], target[2 * REEL_PATH_MAX + 96];
    snprintf(best, sizeof best, "%.*s/ckpt_best.h5", REEL_PATH_MAX, run_dir);
    if (access(best, F_OK) == 0) {
        uint64_t best_step = 0;
        reel_error err = {{0}};
        int readable = reel_checkpoint_read_step(best, &best_step, &err) == 0;
        if (!readable || best_step > step) {
            REEL_CHECK(mkdir(aside, 0777) == 0 || errno == EEXIST, "use a new [train] run_dir", "cannot create %s: %s", aside,
                       strerror(errno));
            snprintf(target, sizeof target, "%s/ckpt_best.h5", aside);
            REEL_CHECK(rename(best, target) == 0, "move it away by hand, or use a new [train] run_dir",
                       "cannot move %s to %s: %s", best, target, strerror(errno));
            moved++;
            if (readable)
                reel_log("%s: moved %s (step %" PRIu64 ", after step %" PRIu64 ") to %s\n", why, best, best_step, step, aside);
            else
                reel_log("%s: moved %s, which does not load (%s), to %s\n", why, best, err.message, aside);
        }
    }
    char metrics[REEL_PATH_MAX + 32];
    snprintf(metrics, sizeof metrics, "%.*s/metrics.h5", REEL_PATH_MAX, run_dir);
    if (access(metrics, F_OK) != 0 || (moved == 0 && step > 0)) return; /* nothing replaced: metrics stay as they are */
    REEL_CHECK(mkdir(aside, 0777) == 0 || errno == EEXIST, "use a new [train] run_dir", "cannot create %s: %s", aside,
               strerror(errno));
    snprintf(target, sizeof target, "%s/metrics.h5", aside);
    if (step == 0) {
        REEL_CHECK(rename(metrics, target) == 0, "move it away by hand, or use a new [train] run_dir",
                   "cannot move %s to %s: %s", metrics, target, strerror(errno));
    } else {
        reel_error err = {{0}};
        reel_buf bytes = {0};
        if (reel_read_file(&bytes, metrics, (size_t)1 << 32, 0, &err) != 0 ||
            reel_write_file_atomic(target, bytes.data, bytes.length, &err) != 0)
            reel_die(&err, "make room, or use a new [train] run_dir");
        reel_buf_free(&bytes);
    }
    reel_log("%s: the metrics so far are kept as %s\n", why, target);
}

/* The checkpoint at path against the data's tokenizer: words or the same piece model. */
static int check_tokenizer(const trainer *t, const char *path, reel_error *err) {
    char vocab_path[REEL_PATH_MAX + 64];
    snprintf(vocab_path, sizeof vocab_path, "%.1023s/vocab.txt", t->cfg->data.dir);
    return reel_checkpoint_check_tokenizer(path, &t->vocab, vocab_path, err);
}

/* Loads the checkpoint at path to resume from, after checking its tokenizer against the data's, so that a
 * checkpoint of another tokenizer is named as such rather than as a vocabulary checksum mismatch. */
static int load_to_resume(trainer *t, const char *path, reel_checkpoint_slots *slots, reel_store *carried,
                          reel_error *err) {
    if (check_tokenizer(t, path, err) != 0) return -1;
    return reel_checkpoint_load(path, t->model, slots, &t->state, carried, t->vocab.checksum, err);
}

/* Rank 0 loads the checkpoint to resume from (the newest readable one unless a path was given) and
 * every rank receives its contents. Returns 1 if training resumes, 0 if it starts fresh. */
static int resume_or_init(trainer *t, const reel_train_options *options) {
    const reel_config *cfg = t->cfg;
    memset(&t->state, 0, sizeof t->state);
    t->state.best_value = NAN;
    snprintf(t->state.best_metric, sizeof t->state.best_metric, "%s",
             t->best_index >= 0 ? t->obj->eval_series[t->best_index].name : "");
    t->state.seed = cfg->train.seed;
    t->model->ops->init(t->model, cfg->train.seed);
    reel_train_state fresh = t->state;

    int resumed = 0;
    char chosen[2 * REEL_PATH_MAX + 64] = "";
    reel_store *carried = &t->obj->carried;
    reel_checkpoint_slots slots = reel_optimizer_checkpoint_slots(&t->opt);
    if (t->comm.rank == 0 && options->resume != REEL_RESUME_NEVER) {
        reel_error err = {{0}};
        if (options->resume == REEL_RESUME_FROM) {
            snprintf(chosen, sizeof chosen, "%s", options->resume_path);
            if (load_to_resume(t, chosen, &slots, carried, &err) != 0)
                reel_die(&err, "pass another checkpoint to --resume, or --no-resume to start over");
            resumed = 1;
        } else {
            char **paths;
            size_t count = reel_checkpoint_list(cfg->train.run_dir, &paths), skipped = 0;
            for (size_t i = 0; i < count && !resumed; i++) {
                if (load_to_resume(t, paths[i], &slots, carried, &err) == 0) {
                    resumed = 1;
                    snprintf(chosen, sizeof chosen, "%s", paths[i]);
                } else {
                    /* The run goes on from the newest checkpoint that loads; a newer one that does not is
                     * moved aside below, kept for inspection. */
                    reel_warn("skipping unusable checkpoint: %s", err.message);
                    skipped++;
                }
            }
            for (size_t i = 0; i < count; i++) free(paths[i]);
            free(paths);
            /* Unusable newer checkpoints must not stay among this run's own: keep_last would count them as
             * the newest and delete the checkpoints this run writes. */
            if (resumed && skipped) set_aside_later_steps(cfg->train.run_dir, t->state.global_step, "resuming past unusable checkpoints");
            if (count > 0 && !resumed)
                REEL_FATAL("fix the configuration to match the checkpoints, move them away, or pass --no-resume",
                           "%s holds %zu checkpoint(s) and none can be resumed (last error above)", cfg->train.run_dir,
                           count);
        }
        /* A best value kept by another criterion cannot be compared with this one's: start it again. */
        if (resumed && strcmp(t->state.best_metric, fresh.best_metric) != 0) {
            reel_log("note: the checkpoint chose its best by '%s'; this run chooses by '%s'\n", t->state.best_metric,
                     fresh.best_metric);
            snprintf(t->state.best_metric, sizeof t->state.best_metric, "%s", fresh.best_metric);
            t->state.best_value = NAN;
            t->state.evals_since_best = 0;
        }
    }
    if (t->comm.rank == 0 && options->resume == REEL_RESUME_NEVER)
        set_aside_later_steps(cfg->train.run_dir, 0, "starting over (--resume none)");
    else if (t->comm.rank == 0 && options->resume == REEL_RESUME_FROM)
        set_aside_later_steps(cfg->train.run_dir, t->state.global_step, "resuming from a given checkpoint");
    /* A fresh run may start from another model's encoder; a resumed one continues from its own. */
    if (t->comm.rank == 0 && !resumed && cfg->model.init_from[0]) {
        reel_buf report = {0};
        reel_error err = {{0}};
        if (init_reads_same_direction(cfg, &err) != 0)
            reel_die(&err, "fine-tune a backward language model with [data] reverse = true, a forward one without");
        if (check_tokenizer(t, cfg->model.init_from, &err) != 0 ||
            reel_checkpoint_init_from(cfg->model.init_from, t->model, t->vocab.checksum, &report, &err) != 0)
            reel_die(&err, "start from a checkpoint of the same data and encoder ([model] init_from)");
        reel_log("starting from %s: %s\n", cfg->model.init_from, report.data);
        reel_buf_free(&report);
    }
    if (t->comm.rank == 0 && !resumed && cfg->model.embed_from[0]) {
        size_t index = reel_store_find(&t->model->params, REEL_TENSOR_EMBEDDING);
        REEL_CHECK(index != (size_t)-1, NULL, "model type %s has no embedding/weight", cfg->model.type);
        const reel_tensor_info *info = &t->model->params.tensors[index];
        reel_vectors_report report;
        reel_error err = {{0}};
        /* the word rows: the bag of words' n-gram buckets follow them in the same table */
        if (reel_vectors_load(cfg->model.embed_from, &t->vocab, t->model->vocab_size, reel_store_view(&t->model->params, index),
                              info->shape[1], &report, &err) != 0)
            reel_die(&err, "give word vectors of this vocabulary's words and of width [model] embed_dim");
        reel_log("embedding from %s: %zu of %zu words have a vector (%.1f%%; the file holds %zu of width %zu); the others "
                 "keep their initialisation\n", cfg->model.embed_from, report.matched, report.candidates,
                 100.0 * (double)report.matched / (double)(report.candidates ? report.candidates : 1), report.lines, report.width);
    }
    reel_comm_bcast(&t->comm, &resumed, sizeof resumed, 0);
    broadcast_training_state(t);
    if (resumed && t->obj->ops->import_state) t->obj->ops->import_state(t->obj);
    if (resumed) {
        reel_log("resuming from %s: epoch %" PRIu64 ", step %" PRIu64 " of the epoch, global step %" PRIu64
                 ", %" PRIu64 " samples seen\n", chosen, t->state.epoch + 1, t->state.step_in_epoch,
                 t->state.global_step, t->state.samples_seen);
        if (t->state.seed != cfg->train.seed)
            reel_log("note: the checkpoint's seed %" PRIu64 " is kept (the configuration says %" PRIu64 ")\n",
                     t->state.seed, cfg->train.seed);
    }
    t->last_checkpoint_step = resumed ? t->state.global_step : UINT64_MAX;
    return resumed;
}

/* A checkpoint or the metrics could not be written (a full disk, a quota, permissions): the run stops,
 * naming what is kept to continue from once there is room. */
static REEL_NORETURN void write_failed(const trainer *t, const reel_error *err) {
    char latest[2 * REEL_PATH_MAX + 64], hint[4 * REEL_PATH_MAX];
    int found = 0;
    reel_error ignored = {{0}};
    reel_checkpoint_latest(t->cfg->train.run_dir, latest, sizeof latest, &found, &ignored);
    if (found)
        snprintf(hint, sizeof hint, "make room (or fix the permissions) in %s, then run the same command again: it "
                 "resumes from %s", t->cfg->train.run_dir, latest);
    else
        snprintf(hint, sizeof hint, "make room (or fix the permissions) in %s, then run the same command again",
                 t->cfg->train.run_dir);
    reel_die(err, hint);
}

/* A collective: the objective's carried state is gathered from every rank first. */
static void save_checkpoint(trainer *t, int also_best) {
    if (t->last_checkpoint_step == t->state.global_step && !also_best) return;
    t->last_checkpoint_step = t->state.global_step;
    if (t->obj->ops->export_state) t->obj->ops->export_state(t->obj);
    if (t->comm.rank != 0) return;
    reel_checkpoint_info info = {t->config_ini, t->obj->type, t->vocab.checksum, &t->vocab, &t->obj->carried,
                                 t->comm.size, t->class_names.length ? t->class_names.data : NULL};
    reel_checkpoint_slots slots = reel_optimizer_checkpoint_slots(&t->opt);
    char path[2 * REEL_PATH_MAX + 64];
    reel_error err = {{0}};
    double start = reel_now_seconds();
    reel_checkpoint_numbered_path(path, sizeof path, t->cfg->train.run_dir, t->state.global_step);
    if (reel_checkpoint_save(path, t->model, &slots, &t->state, &info, &err) != 0) write_failed(t, &err);
    reel_checkpoint_prune(t->cfg->train.run_dir, t->cfg->checkpoint.keep_last);
    if (also_best && t->cfg->checkpoint.keep_best) {
        snprintf(path, sizeof path, "%s/ckpt_best.h5", t->cfg->train.run_dir);
        if (reel_checkpoint_save(path, t->model, &slots, &t->state, &info, &err) != 0) write_failed(t, &err);
    }
    t->last_save_seconds = reel_now_seconds() - start;
    reel_log("checkpoint: step %" PRIu64 " saved to %s/ckpt_%08" PRIu64 ".h5%s (%.0f ms)\n", t->state.global_step,
             t->cfg->train.run_dir, t->state.global_step, also_best && t->cfg->checkpoint.keep_best ? " and ckpt_best.h5" : "",
             1e3 * t->last_save_seconds);
}

/* ---- metrics ---- */

static void layout_metrics(trainer *t) {
    const reel_objective *obj = t->obj;
    REEL_CHECK(obj->num_train_series + 6 <= MAX_SERIES && obj->num_eval_series + 3 <= MAX_SERIES, NULL,
               "objective '%s' declares too many series", obj->type);
    size_t n = 0;
    t->train_columns[n++] = (reel_column){"step", REEL_COLUMN_U64, 0};
    t->train_columns[n++] = (reel_column){"epoch", REEL_COLUMN_U64, 0};
    for (size_t i = 0; i < obj->num_train_series; i++)
        t->train_columns[n++] = (reel_column){obj->train_series[i].name, obj->train_series[i].type,
                                              obj->train_series[i].added_later};
    t->train_columns[n++] = (reel_column){"lr", REEL_COLUMN_F64, 0};
    t->train_columns[n++] = (reel_column){"grad_norm", REEL_COLUMN_F64, 0};
    t->train_columns[n++] = (reel_column){"allreduce_share", REEL_COLUMN_F64, 0};
    t->train_columns[n++] = (reel_column){"seconds", REEL_COLUMN_F64, 0};
    t->num_train_columns = n;
    n = 0;
    t->eval_columns[n++] = (reel_column){"step", REEL_COLUMN_U64, 0};
    t->eval_columns[n++] = (reel_column){"epoch", REEL_COLUMN_U64, 0};
    t->eval_columns[n++] = (reel_column){"split", REEL_COLUMN_U8, 0};
    for (size_t i = 0; i < obj->num_eval_series; i++)
        t->eval_columns[n++] = (reel_column){obj->eval_series[i].name, obj->eval_series[i].type,
                                             obj->eval_series[i].added_later};
    t->num_eval_columns = n;
}

static void append_metrics(trainer *t, reel_metrics_table table, const reel_value *row) {
    if (!t->metrics) return;
    reel_error err = {{0}};
    if (reel_metrics_append(t->metrics, table, row, &err) != 0) write_failed(t, &err);
}

/* Evaluates split (its first max_docs documents; 0: all), logs it and appends its metrics row for the
 * epoch `epoch`; values receives the objective's eval series. */
static void evaluate(trainer *t, const char *split, size_t max_docs, uint8_t split_code, uint64_t epoch,
                     reel_value *values) {
    reel_eval_request request = {split, t->cfg->data.max_tokens, max_docs, t->local_rows_max};
    reel_gemm_params_changed();
    t->obj->ops->evaluate(t->obj, &request, values);
    reel_buf line = {0};
    t->obj->ops->describe(t->obj, REEL_METRICS_EVAL, values, &line);
    reel_log("%s: %s\n", split, line.data);
    reel_buf_free(&line);
    reel_value row[MAX_SERIES];
    row[0].u = t->state.global_step;
    row[1].u = epoch;
    row[2].u = split_code;
    memcpy(row + 3, values, t->obj->num_eval_series * sizeof *values);
    append_metrics(t, REEL_METRICS_EVAL, row);
}

/* Validation during training: returns 1 when this evaluation is the best so far by the criterion. */
static int validate(trainer *t, uint64_t epoch) {
    if (!t->obj->valid_split) return 0;
    reel_value values[MAX_SERIES];
    double start = reel_now_seconds();
    evaluate(t, t->obj->valid_split, t->obj->valid_docs, t->obj->valid_split_code, epoch, values);
    t->last_eval_seconds = reel_now_seconds() - start;
    if (t->best_index < 0) return 0;
    const reel_series *series = &t->obj->eval_series[t->best_index];
    double value = series->type == REEL_COLUMN_F64 ? values[t->best_index].f : (double)values[t->best_index].u;
    int best = isnan(t->state.best_value) || (t->best_better > 0 ? value > t->state.best_value : value < t->state.best_value);
    if (best) {
        t->state.best_value = value;
        t->state.best_step = t->state.global_step;
        t->state.evals_since_best = 0;
    } else {
        t->state.evals_since_best++;
    }
    return best;
}

/* Early stopping: the best-checkpoint metric has not improved for [train] early_stopping_patience
 * evaluations. A function of the saved state, so a finished run that is resubmitted (a requeued job)
 * stays finished, and one resumed with a larger patience goes on. */
static int patience_exhausted(const trainer *t) {
    size_t patience = t->cfg->train.early_stopping_patience;
    return patience && t->state.evals_since_best >= patience;
}

static void log_early_stop(const trainer *t) {
    const reel_series *series = &t->obj->eval_series[t->best_index];
    reel_log("early stopping at step %" PRIu64 ": %s has not improved for %" PRIu64 " evaluations (best %.6g at step %"
             PRIu64 ", kept in ckpt_best.h5)\n", t->state.global_step, series->name, t->state.evals_since_best,
             series->percent ? 100 * t->state.best_value : t->state.best_value, t->state.best_step);
}

/* ---- frozen layers, layer-wise rates ---- */

/* Whether a tensor belongs to the layer called name: its name up to the '/' is name, or name followed
 * by '_' and more (lstm_l0 names both directions, lstm_l0_fwd and lstm_l0_bwd). */
static int same_layer(const char *tensor, const char *name) {
    size_t n = strlen(name);
    return strncmp(tensor, name, n) == 0 && (tensor[n] == '/' || (tensor[n] == '_' && strchr(tensor + n, '/')));
}

/* Appends to out the layers (a tensor name's first component: embedding, block0, lstm_l1_fwd) of the
 * tensors that pick selects (every tensor for a NULL pick), each once, in the store's order. */
static void append_layer_names(reel_buf *out, const reel_store *p, const unsigned char *pick) {
    const char *previous = NULL;
    size_t previous_length = 0;
    for (size_t i = 0; i < p->num_tensors; i++) {
        if (pick && !pick[i]) continue;
        const char *name = p->tensors[i].name, *slash = strchr(name, '/');
        size_t length = slash ? (size_t)(slash - name) : strlen(name);
        if (previous && length == previous_length && strncmp(previous, name, length) == 0) continue;
        reel_buf_printf(out, "%s%.*s", out->length ? ", " : "", (int)length, name);
        previous = name;
        previous_length = length;
    }
}

/* Reads [optimizer] freeze: every name must be a layer of the model. */
static void choose_frozen(trainer *t) {
    const reel_store *p = &t->model->params;
    t->frozen = reel_calloc(p->num_tensors, 1);
    t->ranges = reel_malloc(2 * (p->num_tensors + 1) * sizeof *t->ranges);
    char names[32][REEL_NAME_MAX];
    reel_error err = {{0}};
    int count = reel_config_split_list(t->cfg->optimizer.freeze, "[optimizer] freeze", names, 32, &err);
    if (count < 0) reel_die(&err, NULL);
    for (int n = 0; n < count; n++) {
        int found = 0;
        for (size_t i = 0; i < p->num_tensors; i++)
            if (same_layer(p->tensors[i].name, names[n])) found = t->frozen[i] = 1;
        if (!found) {
            reel_buf layers = {0};
            append_layer_names(&layers, p, NULL);
            REEL_FATAL("name layers of the model", "[optimizer] freeze: '%s' is not a layer of model type %s (its "
                       "layers: %s)", names[n], t->cfg->model.type, layers.data);
        }
    }
}

/* Each tensor's learning-rate multiplier at the current step, and the runs of trainable tensors whose
 * gradients are exchanged. Frozen tensors get 0; with gradual unfreezing, the frozen groups are released
 * from the top, one every unfreeze_every epochs or steps; with layer_lr_decay d, a tensor of group g
 * learns at lr / d^(top - g). A function of the step alone, so a resumed run has the same rates. */
static void update_rates(trainer *t) {
    const reel_config *cfg = t->cfg;
    const reel_store *p = &t->model->params;
    size_t top = reel_store_top_group(p), released = 0;
    if (cfg->optimizer.unfreeze_every) {
        uint64_t progress = strcmp(cfg->optimizer.unfreeze_unit, "steps") == 0 ? t->state.global_step : t->state.epoch;
        released = (size_t)(progress / cfg->optimizer.unfreeze_every);
    }
    /* the frozen groups, from the top: release the first `released` of them */
    size_t lowest_released = SIZE_MAX, seen = 0;
    for (size_t g = top + 1; g-- > 0 && seen < released;) {
        int any = 0;
        for (size_t i = 0; i < p->num_tensors; i++) any |= t->frozen[i] && p->tensors[i].group == g;
        if (any) {
            seen++;
            lowest_released = g;
        }
    }
    if (seen != t->released) {
        /* by layer, not by tensor: a GPT's blocks are a dozen tensors each */
        reel_buf names = {0};
        unsigned char *pick = reel_calloc(p->num_tensors, 1);
        for (size_t i = 0; i < p->num_tensors; i++) pick[i] = t->frozen[i] && p->tensors[i].group >= lowest_released;
        append_layer_names(&names, p, pick);
        free(pick);
        if (names.length) reel_log("gradual unfreezing at step %" PRIu64 ": %s train now\n", t->state.global_step, names.data);
        reel_buf_free(&names);
        t->released = seen;
    }
    t->num_ranges = 0;
    int changed = 0;
    for (size_t i = 0; i < p->num_tensors; i++) {
        int frozen = t->frozen[i] && (lowest_released == SIZE_MAX || p->tensors[i].group < lowest_released);
        t->model->params.tensors[i].frozen = frozen;
        changed |= t->frozen_now[i] != frozen;
        t->frozen_now[i] = (uint8_t)frozen;
        t->opt.lr_scale[i] = frozen ? 0.0f : (float)pow(cfg->optimizer.layer_lr_decay, -(double)(top - p->tensors[i].group));
        if (frozen) continue;
        if (t->num_ranges && t->ranges[2 * t->num_ranges - 2] + t->ranges[2 * t->num_ranges - 1] == p->tensors[i].offset)
            t->ranges[2 * t->num_ranges - 1] += p->tensors[i].count;
        else {
            t->ranges[2 * t->num_ranges] = p->tensors[i].offset;
            t->ranges[2 * t->num_ranges + 1] = p->tensors[i].count;
            t->num_ranges++;
        }
    }
    if (changed || !t->exchange_planned) {
        reel_exchange_plan(t->exchange, t->frozen_now);
        t->exchange_planned = 1;
    }
}

/* ---- the loop ---- */

typedef struct step_result {
    int stepped;        /* 0: the gradient was not finite and the update was skipped */
    int stop;           /* a rank was asked to stop (a signal, or the time limit is near) */
    double grad_norm, lr;
    double seconds, allreduce_seconds;
} step_result;

/* Whether this rank should ask the run to stop after this step: a signal came, or the time limit is
 * near. Near means the time left would not cover two of the slowest steps, the last evaluation, two
 * checkpoint saves (before the first save: an estimate from the size of what is saved, at 200 MB/s),
 * and a slack of 1 s plus 2% of the limit (at most a minute) for what nobody measured. */
static int wants_stop(const trainer *t) {
    if (stop_signal) return 1;
    if (t->stop_after_step && t->state.global_step + 1 == t->stop_after_step) return 1; /* the step being taken */
    if (t->time_limit <= 0) return 0;
    double state_bytes = (double)(t->model->params.num_floats * (1 + t->opt.num_slots) * sizeof(float));
    double save = t->last_save_seconds > 0 ? t->last_save_seconds : 0.2 + state_bytes / 200e6;
    double slack = 1.0 + (0.02 * t->time_limit < 60 ? 0.02 * t->time_limit : 60);
    double margin = 2 * t->slowest_step + t->last_eval_seconds + 2 * save + slack;
    return reel_now_seconds() - t->start_seconds + margin >= t->time_limit;
}

/* One optimizer step on global batch `step` of `epoch`; sums receives the objective's step sums,
 * reduced over the ranks (sums has room for one more value: the ranks' stop requests travel in the same
 * reduction). */
static step_result train_step(trainer *t, uint64_t epoch, uint64_t step, double *sums) {
    const reel_config *cfg = t->cfg;
    step_result r = {0};
    double start = reel_now_seconds();
    reel_store *params = &t->model->params;
    memset(params->grad, 0, params->num_floats * sizeof(float));
    memset(sums, 0, t->obj->num_train_sums * sizeof *sums);
    reel_gemm_params_changed(); /* the last step (or a load) changed them: bf16 copies are made anew */
    /* The gradients of the trainable tensors are exchanged (reel/exchange.h): with buckets, while the
     * backward goes on; the embedding's touched rows alone when that is cheaper; a frozen tensor's gradient
     * is never used. */
    reel_exchange_begin(t->exchange, !t->obj->multi_pass);
    uint64_t samples = t->obj->ops->train_step(t->obj, epoch, step, sums);
    double reduce_start = reel_now_seconds();
    reel_exchange_finish(t->exchange);
    sums[t->obj->num_train_sums] = wants_stop(t);
    reel_comm_sum_doubles(&t->comm, sums, t->obj->num_train_sums + 1);
    r.stop = sums[t->obj->num_train_sums] > 0;
    r.allreduce_seconds = reel_now_seconds() - reduce_start;
    /* After the all-reduce every rank holds the same gradient, so this test gives the same answer on
     * every rank and they all skip or step together without another collective. */
    if (t->num_ranges == 1) {
        r.grad_norm = reel_grad_norm(params->grad + t->ranges[0], t->ranges[1]);
    } else {
        double squares = 0;
        for (size_t k = 0; k < t->num_ranges; k++) {
            double part = reel_grad_norm(params->grad + t->ranges[2 * k], t->ranges[2 * k + 1]);
            squares += part * part;
        }
        r.grad_norm = sqrt(squares);
    }
    r.lr = reel_schedule_lr(cfg, t->state.global_step, t->total_steps, t->obj->steps_per_epoch);
    t->state.samples_seen += samples;
    r.stepped = isfinite(r.grad_norm) && isfinite(sums[0]);
    if (r.stepped) {
        reel_clip_grad_norm(params->grad, params->num_floats, r.grad_norm, cfg->optimizer.clip_norm);
        reel_optimizer_step(&t->opt, params, r.lr);
    }
    r.seconds = reel_now_seconds() - start;
    if (r.seconds > t->slowest_step) t->slowest_step = r.seconds;
    return r;
}

typedef enum { RUN_FINISHED, RUN_MAX_STEPS, RUN_INTERRUPTED } run_end;

/* Trains until every epoch is done, early stopping ends the run, max_steps is reached, or a stop is
 * asked for (a signal, the time limit). */
static run_end run_epochs(trainer *t) {
    const reel_config *cfg = t->cfg;
    reel_objective *obj = t->obj;
    size_t num_sums = obj->num_train_sums;
    double *sums = reel_calloc(num_sums + 1, sizeof *sums), *window = reel_calloc(num_sums, sizeof *window);
    double window_start = reel_now_seconds(), run_start = reel_now_seconds(), window_step_seconds = 0,
           window_allreduce_seconds = 0;
    uint64_t run_start_step = t->state.global_step, consecutive_skips = 0, skipped = 0, steps_per_epoch = obj->steps_per_epoch;
    int stopped = 0, interrupted = 0;

    if (patience_exhausted(t)) {
        log_early_stop(t);
        stopped = 1;
    }
    while (t->state.epoch < cfg->train.epochs && !stopped) {
        uint64_t epoch = t->state.epoch;
        double epoch_start = reel_now_seconds();
        /* An epoch whose steps are all done (a run stopped on its last step) only has its evaluation left */
        if (t->state.step_in_epoch < steps_per_epoch) obj->ops->begin_epoch(obj, epoch);
        while (t->state.step_in_epoch < steps_per_epoch) {
            if (cfg->train.max_steps && t->state.global_step >= cfg->train.max_steps) {
                stopped = 1;
                break;
            }
            update_rates(t);
            step_result r = train_step(t, epoch, t->state.step_in_epoch, sums);
            t->state.step_in_epoch++;
            t->state.global_step++;
            if (!r.stepped) {
                skipped++;
                reel_log("step %" PRIu64 ": gradient norm or loss is not finite; update skipped (%" PRIu64 " in a row)\n",
                         t->state.global_step, ++consecutive_skips);
                if (consecutive_skips >= MAX_CONSECUTIVE_SKIPS)
                    REEL_FATAL("lower [optimizer] lr or set [optimizer] clip_norm", "%d consecutive steps had a "
                               "non-finite gradient; the last good checkpoint is kept", MAX_CONSECUTIVE_SKIPS);
                continue;
            }
            consecutive_skips = 0;
            for (size_t i = 0; i < num_sums; i++) window[i] += sums[i];
            window_step_seconds += r.seconds;
            window_allreduce_seconds += r.allreduce_seconds;
            if (t->state.global_step % cfg->train.log_every == 0 || t->state.step_in_epoch == steps_per_epoch) {
                double elapsed = reel_now_seconds() - window_start;
                uint64_t end = t->total_steps;
                double per_step = (reel_now_seconds() - run_start) / (double)(t->state.global_step - run_start_step);
                char eta[32];
                reel_format_duration(eta, sizeof eta, per_step * (double)(end - t->state.global_step));
                reel_value row[MAX_SERIES];
                row[0].u = t->state.global_step;
                row[1].u = epoch;
                obj->ops->train_values(obj, window, elapsed, row + 2);
                size_t n = 2 + obj->num_train_series;
                row[n++].f = r.lr;
                row[n++].f = r.grad_norm;
                row[n++].f = window_step_seconds > 0 ? window_allreduce_seconds / window_step_seconds : 0;
                row[n++].f = elapsed;
                reel_buf line = {0};
                obj->ops->describe(obj, REEL_METRICS_TRAIN, row + 2, &line);
                reel_log("epoch %" PRIu64 "/%zu step %" PRIu64 "/%" PRIu64 " | %s | lr %.3g |grad| %.3g | allreduce "
                         "%.1f%% | eta %s\n", epoch + 1, cfg->train.epochs, t->state.step_in_epoch, steps_per_epoch,
                         line.data, r.lr, r.grad_norm, 100 * row[n - 2].f, eta);
                reel_buf_free(&line);
                append_metrics(t, REEL_METRICS_TRAIN, row);
                memset(window, 0, num_sums * sizeof *window);
                window_step_seconds = window_allreduce_seconds = 0;
                window_start = reel_now_seconds();
            }
            int inside = t->state.step_in_epoch < steps_per_epoch;
            double pause = reel_now_seconds();
            if (cfg->train.eval_every && t->state.global_step % cfg->train.eval_every == 0 && inside) {
                int best = validate(t, epoch);
                save_checkpoint(t, best);
                if (patience_exhausted(t)) {
                    log_early_stop(t);
                    stopped = 1;
                    break;
                }
            }
            if (cfg->checkpoint.every_steps && t->state.global_step % cfg->checkpoint.every_steps == 0 && inside)
                save_checkpoint(t, 0);
            window_start += reel_now_seconds() - pause; /* throughput counts training time only */
            if (r.stop) {
                interrupted = stopped = 1;
                break;
            }
        }
        /* Stopped on the last step of an epoch: the epoch's evaluation is not run now (there may be no time
         * for it); the checkpoint keeps the epoch open with all its steps done, so the resumed run starts
         * with that evaluation, as an uninterrupted run would have done it: the same metrics row, best
         * checkpoint and early-stopping count. (Advancing to the next epoch here skipped the evaluation for
         * good: a resumed run's count of evaluations without improvement came out one lower.) */
        if (interrupted) break;
        if (t->state.step_in_epoch < steps_per_epoch) break; /* stopped inside the epoch */

        double train_seconds = reel_now_seconds() - epoch_start, pause = reel_now_seconds();
        t->state.epoch = epoch + 1;
        t->state.step_in_epoch = 0;
        int best = validate(t, epoch); /* metrics rows belong to the epoch just finished */
        reel_log("epoch %" PRIu64 "/%zu done: %.1f s training, %.1f s with evaluation%s\n", epoch + 1, cfg->train.epochs,
                 train_seconds, reel_now_seconds() - epoch_start, best ? ", best so far" : "");
        save_checkpoint(t, best);
        window_start += reel_now_seconds() - pause;
        if (patience_exhausted(t)) {
            log_early_stop(t);
            stopped = 1;
        }
    }
    save_checkpoint(t, 0);
    if (skipped) reel_log("%" PRIu64 " step(s) were skipped for non-finite gradients\n", skipped);
    free(sums);
    free(window);
    if (interrupted) {
        int signo = stop_signal;
        char why[96];
        if (signo)
            snprintf(why, sizeof why, "%s received", signo == SIGTERM ? "SIGTERM" : signo == SIGUSR1 ? "SIGUSR1" : "SIGINT");
        else if (t->stop_after_step && t->stop_after_step == t->state.global_step)
            snprintf(why, sizeof why, "REEL_STOP_AFTER_STEP=%" PRIu64, t->stop_after_step);
        else
            snprintf(why, sizeof why, "the time limit of %.0f s is near (%.0f s used)", t->time_limit,
                     reel_now_seconds() - t->start_seconds);
        reel_log("stopped at step %" PRIu64 " (%s; on rank 0 or another): the checkpoint above continues the run; run the "
                 "same command again, or requeue the job (exit status %d)\n", t->state.global_step, why, REEL_TRAIN_STOPPED);
        return RUN_INTERRUPTED;
    }
    if (t->state.epoch >= cfg->train.epochs || patience_exhausted(t)) return RUN_FINISHED;
    return RUN_MAX_STEPS;
}

static int exchange_mode(const reel_config *cfg) {
    if (strcmp(cfg->train.exchange_embedding, "dense") == 0) return REEL_EMBEDDING_DENSE;
    if (strcmp(cfg->train.exchange_embedding, "sparse") == 0) return REEL_EMBEDDING_SPARSE;
    return REEL_EMBEDDING_AUTO;
}

/* The best-checkpoint criterion: [checkpoint] best_metric, or the objective's own. */
static void choose_criterion(trainer *t) {
    const char *name = t->cfg->checkpoint.best_metric[0] ? t->cfg->checkpoint.best_metric : t->obj->best_metric;
    t->best_index = reel_objective_eval_index(t->obj, name);
    if (t->best_index < 0 || t->obj->eval_series[t->best_index].better == 0) {
        reel_buf list = {0};
        for (size_t i = 0; i < t->obj->num_eval_series; i++)
            if (t->obj->eval_series[i].better) reel_buf_printf(&list, "%s%s", list.length ? ", " : "", t->obj->eval_series[i].name);
        REEL_FATAL("set [checkpoint] best_metric to one of the series listed", "[checkpoint] best_metric = '%s': "
                   "objective %s has no such evaluation series to rank checkpoints by (it has: %s)", name, t->obj->type,
                   list.data ? list.data : "none");
    }
    t->best_better = t->obj->eval_series[t->best_index].better;
}

int reel_train(const reel_config *requested, const reel_train_options *options) {
    trainer t = {0};
    t.start_seconds = reel_now_seconds();
    t.time_limit = options->time_limit;
    /* A signal's arrival cannot be aimed at a step; the tests of stops at chosen steps (the last step of an
     * epoch) use this instead. The same path as a signal from there on. */
    const char *stop_after = getenv("REEL_STOP_AFTER_STEP");
    t.stop_after_step = stop_after ? strtoull(stop_after, NULL, 10) : 0;
    /* From here on a stop signal is a request to checkpoint and stop at the next step boundary. */
    struct sigaction previous[NUM_STOP_SIGNALS], handler;
    memset(&handler, 0, sizeof handler);
    handler.sa_handler = on_stop_signal;
    sigemptyset(&handler.sa_mask);
    handler.sa_flags = SA_RESTART;
    stop_signal = 0;
    for (size_t i = 0; i < NUM_STOP_SIGNALS; i++) sigaction(stop_signals[i], &handler, &previous[i]);
    reel_config effective = *requested;
    const reel_config *cfg = &effective;
    t.cfg = cfg;
    reel_comm_world(&t.comm);
    report_placement(&t);

    reel_error err = {{0}};
    char path[REEL_PATH_MAX + 64];
    snprintf(path, sizeof path, "%.1023s/vocab.txt", cfg->data.dir);
    if (reel_vocab_load(&t.vocab, path, &err) != 0) reel_die(&err, "run `reel prep` to create the data directory");
    if (cfg->model.vocab_size > t.vocab.size) {
        /* Rows past the data's vocabulary would never be trained; the stored configuration records the
         * size actually used, so `reel eval` rebuilds the same model. */
        reel_log("note: [model] vocab_size = %zu, but %s has %zu entries: using %zu\n", cfg->model.vocab_size, path,
                 t.vocab.size, t.vocab.size);
        effective.model.vocab_size = t.vocab.size;
    }
    if (t.vocab.pieces && cfg->model.vocab_size < t.vocab.size) {
        reel_fail(&err, "[model] vocab_size = %zu, but %s is a vocabulary of %zu SentencePiece pieces, whose ids are not "
                  "ordered by frequency: a text needs all of them", cfg->model.vocab_size, path, t.vocab.size);
        char hint[128];
        snprintf(hint, sizeof hint, "set [model] vocab_size = %zu, or prep with --vocab-size %zu", t.vocab.size,
                 cfg->model.vocab_size);
        reel_die(&err, hint);
    }
    const reel_objective_kind *kind = reel_objective_kind_find(cfg->objective.type);
    REEL_CHECK(kind, NULL, "unknown objective '%s'", cfg->objective.type);
    if (kind->resolve && kind->resolve(&effective, &t.vocab, &err) != 0) reel_die(&err, "run `reel prep` to create the data directory");
    if (reel_schedule_check(cfg, &err) != 0 || reel_optimizer_check(cfg, &err) != 0)
        reel_die(&err, "`reel train --help-config` lists every key");
    reel_precision precision;
    if (reel_precision_choose("[train] precision", " = ", cfg->train.precision, &precision, &err) != 0)
        reel_die(&err, "set [train] precision = fp32, or auto (bf16 where the CPU has it)");
    reel_gemm_set_precision(precision);
    t.config_ini = reel_config_to_ini(cfg);
    reel_log("--- resolved configuration ---\n%s------------------------------\n", t.config_ini);
    t.local_rows_max = (cfg->train.batch_size + (size_t)t.comm.size - 1) / (size_t)t.comm.size;

    if (reel_model_create(&t.model, cfg, t.local_rows_max, &err) != 0) reel_die(&err, NULL);
    if (reel_objective_create(&t.obj, cfg, t.model, &t.vocab, &t.comm, t.local_rows_max, 1, &err) != 0)
        reel_die(&err, NULL);
    if (cfg->train.early_stopping_patience && !t.obj->valid_split)
        REEL_FATAL("set [train] early_stopping_patience = 0, or prepare the data with a validation split",
                   "[train] early_stopping_patience = %zu, but objective %s evaluates nothing during training (no "
                   "validation split in %s)", cfg->train.early_stopping_patience, t.obj->type, cfg->data.dir);
    /* The run's length, over which cosine, linear and slanted-triangular schedules run their course: the
     * epochs, or max_steps when that ends the run first (a schedule over the epochs alone stayed near its
     * peak for a run that max_steps cut short). */
    t.total_steps = t.obj->steps_per_epoch * cfg->train.epochs;
    if (cfg->train.max_steps && cfg->train.max_steps < t.total_steps) t.total_steps = cfg->train.max_steps;
    if (t.model->output == REEL_OUTPUT_DOCUMENT) {
        /* the class names travel with the model, so `reel predict` can name what it predicts */
        snprintf(path, sizeof path, "%.1023s/labels.txt", cfg->data.dir);
        if (reel_read_file(&t.class_names, path, 1 << 20, 1, &err) < 0) reel_die(&err, "re-run `reel prep`");
    }
    choose_criterion(&t);
    layout_metrics(&t);
    reel_optimizer_init(&t.opt, cfg, &t.model->params);
    reel_gemm_set_params(t.model->params.data, t.model->params.num_floats);
    choose_frozen(&t);
    t.frozen_now = reel_calloc(t.model->params.num_tensors, 1);
    t.exchange = reel_exchange_create(&t.model->params, &t.comm, (reel_embedding_exchange)exchange_mode(cfg),
                                      (size_t)(cfg->train.bucket_mb * 1048576.0));
    /* the model's backward reports its finished groups to the exchange through these */
    t.model->params.hooks = reel_exchange_hooks(t.exchange);
    if (t.comm.rank == 0 && reel_make_dirs(cfg->train.run_dir, &err) != 0)
        reel_die(&err, "set [train] run_dir to a writable directory");
    reel_comm_barrier(&t.comm);
    int resumed = resume_or_init(&t, options);
    t.model->seed = t.state.seed;
    reel_log("model %s, objective %s: %zu parameters; %" PRIu64 " steps per epoch of %zu %ss (%zu per rank at most)\n",
             cfg->model.type, t.obj->type, t.model->params.num_floats, t.obj->steps_per_epoch, cfg->train.batch_size,
             t.obj->sample_name, t.local_rows_max);

    if (t.comm.rank == 0) {
        snprintf(path, sizeof path, "%.1023s/config.ini", cfg->train.run_dir);
        if (reel_write_file_atomic(path, t.config_ini, strlen(t.config_ini), &err) != 0) reel_warn("%s", err.message);
        snprintf(path, sizeof path, "%.1023s/metrics.h5", cfg->train.run_dir);
        reel_metrics_layout layout = {t.obj->type, t.train_columns, t.num_train_columns, t.eval_columns, t.num_eval_columns};
        if (reel_metrics_open(&t.metrics, path, &layout, resumed ? t.state.global_step : 0, &err) != 0)
            reel_die(&err, "if the disk is full, make room and run the same command again; otherwise move the file "
                     "away, or use a new [train] run_dir");
    }

    double start = reel_now_seconds();
    run_end end = run_epochs(&t);
    reel_log("training: %.1f s\n", reel_now_seconds() - start);
    /* max_steps is a pause point (a larger one continues the same run, bit for bit), so it gets no final
     * evaluation, and the step it stops at was validated only if eval_every divides it: say so, since a
     * schedule decayed over max_steps makes this checkpoint the one a user wants */
    if (end == RUN_MAX_STEPS && t.obj->final_split) {
        char best[96] = "no evaluation so far";
        if (!isnan(t.state.best_value))
            snprintf(best, sizeof best, "the best checkpoint is of the evaluations so far, at step %" PRIu64,
                     t.state.best_step);
        reel_log("max_steps = %" PRIu64 " reached: no final %s evaluation (%s); `reel eval %s/ckpt_%08" PRIu64
                 ".h5` evaluates the last model\n", t.state.global_step, t.obj->final_split, best, cfg->train.run_dir,
                 t.state.global_step);
    }
    if (t.obj->final_split && end == RUN_FINISHED) {
        reel_value values[MAX_SERIES];
        evaluate(&t, t.obj->final_split, 0, REEL_SPLIT_TEST, t.state.epoch, values);
        const reel_series *series = &t.obj->eval_series[t.best_index];
        double value = series->type == REEL_COLUMN_F64 ? values[t.best_index].f : (double)values[t.best_index].u;
        if (series->percent)
            reel_log("final %s %s: %.2f%%\n", t.obj->final_split, series->name, 100 * value);
        else
            reel_log("final %s %s: %.4g\n", t.obj->final_split, series->name, value);
    }

    if (t.metrics) reel_metrics_close(t.metrics);
    reel_optimizer_free(&t.opt);
    if (t.comm.rank == 0 && t.comm.size > 1) {
        const reel_exchange_stats *x = reel_exchange_get_stats(t.exchange);
        reel_log("gradient exchange: %.2f MB all-reduced per step, %.1f ms per step not hidden by the backward%s",
                 x->steps ? x->bytes_dense / 1e6 / (double)x->steps : 0.0,
                 x->steps ? 1e3 * x->wait_seconds / (double)x->steps : 0.0, x->sparse_steps || x->buckets ? "" : "\n");
        if (x->buckets)
            reel_log("; %" PRIu64 " of %" PRIu64 " buckets started during the backward%s", x->early_buckets, x->buckets,
                     x->sparse_steps ? "" : "\n");
        if (x->sparse_steps)
            reel_log("; the embedding as rows in %" PRIu64 " of %" PRIu64 " steps (%.1f MB received per such step)\n",
                     x->sparse_steps, x->steps, x->bytes_sparse / 1e6 / (double)x->sparse_steps);
    }
    t.model->params.hooks = (reel_grad_hooks){0}; /* the exchange they point to goes */
    reel_exchange_free(t.exchange);
    free(t.frozen);
    free(t.frozen_now);
    free(t.ranges);
    reel_objective_destroy(t.obj);
    reel_model_destroy(t.model);
    reel_vocab_free(&t.vocab);
    free(t.config_ini);
    reel_buf_free(&t.class_names);
    /* No rank leaves before rank 0 has written and closed everything: mpirun ends the whole job as soon as
     * one rank exits with a non-zero status (75 after a stop), which would cut rank 0's last save short. */
    reel_gemm_set_precision(REEL_FP32);
    reel_gemm_release();
    reel_comm_barrier(&t.comm);
    /* After a stop signal the handlers stay: more of a burst (mpirun forwards each signal it gets, a
     * scheduler may signal every process) can still arrive while the process ends, and the default
     * action would kill it with that signal instead of the stop status. */
    if (!stop_signal)
        for (size_t i = 0; i < NUM_STOP_SIGNALS; i++) sigaction(stop_signals[i], &previous[i], NULL);
    return end == RUN_INTERRUPTED ? REEL_TRAIN_STOPPED : REEL_TRAIN_DONE;
}
