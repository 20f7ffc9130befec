#include "reel/train.h"

#include <cblas.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "reel/checkpoint.h"
#include "reel/comm.h"
#include "reel/data.h"
#include "reel/eval.h"
#include "reel/layers.h"
#include "reel/metrics.h"
#include "reel/model.h"
#include "reel/optim.h"
#include "reel/rng.h"
#include "reel/tokfile.h"
#include "reel/util.h"
#include "reel/vocab.h"

enum { MAX_CONSECUTIVE_SKIPS = 10 };

/* Everything one training run holds. */
typedef struct trainer {
    const reel_config *cfg;
    reel_comm comm;
    reel_vocab vocab;
    reel_tokfile *train, *valid, *test;
    reel_model *model;
    reel_optimizer opt;
    reel_train_state state;
    reel_metrics *metrics; /* rank 0 only */
    char *config_ini;
    uint64_t steps_per_epoch, total_steps, last_checkpoint_step;
    size_t local_rows_max;
    int *predicted; /* (local_rows_max) class predicted for each row of a step */
} trainer;

/* Opens data_dir/<split>.tok and checks it against the vocabulary; a missing optional split is NULL. */
static reel_tokfile *open_split(const trainer *t, const char *split, int required) {
    char path[2 * 2 * REEL_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s.tok", t->cfg->data.dir, split);
    if (!required && access(path, F_OK) != 0) return NULL;
    reel_tokfile *file;
    reel_error err = {{0}};
    if (reel_tokfile_open(&file, path, &err) != 0) reel_die(&err, "run `reel prep` to create the data directory");
    const reel_tokfile_header *info = reel_tokfile_info(file);
    if (info->vocab_checksum != t->vocab.checksum)
        REEL_FATAL("re-run `reel prep` so the token files and vocab.txt come from the same run",
                   "%s was made with another vocabulary (checksum %016" PRIx64 ", %s/vocab.txt has %016" PRIx64 ")",
                   path, info->vocab_checksum, t->cfg->data.dir, t->vocab.checksum);
    if (info->num_classes < 2)
        REEL_FATAL("train on a labelled corpus (reel prep of IMDb or of a TSV file with a label column)",
                   "%s holds no labels (%" PRIu32 " classes): a classifier needs at least 2", path, info->num_classes);
    size_t num_classes = *(const size_t *)reel_config_field(t->cfg, "model.num_classes");
    if (num_classes != info->num_classes)
        REEL_FATAL("leave [model] num_classes at 0 to take it from the data",
                   "%s has %" PRIu32 " classes, but [model] num_classes = %zu", path, info->num_classes, num_classes);
    return file;
}

static void report_threads(const trainer *t) {
    /* Ranks that share a node compete for its cores: ranks x BLAS threads beyond the core count slows
     * every rank down badly (OpenBLAS spins), so say so at start. */
    MPI_Comm node;
    MPI_Comm_split_type(t->comm.comm, MPI_COMM_TYPE_SHARED, t->comm.rank, MPI_INFO_NULL, &node);
    int ranks_on_node = 1;
    MPI_Comm_size(node, &ranks_on_node);
    MPI_Comm_free(&node);
    int threads = openblas_get_num_threads();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    reel_log("reel %s: %d rank(s), %d on this node, %d OpenBLAS thread(s) per rank, %ld core(s)\n", REEL_VERSION,
             t->comm.size, ranks_on_node, threads, cores);
    if (t->comm.rank == 0 && (long)ranks_on_node * threads > cores)
        reel_warn("%d ranks x %d OpenBLAS threads exceed the %ld cores of this node; set OPENBLAS_NUM_THREADS so "
                  "that ranks x threads <= cores", ranks_on_node, threads, cores);
}

static void broadcast_training_state(trainer *t) {
    reel_comm_bcast(&t->comm, t->model->params.data, t->model->params.num_floats * sizeof(float), 0);
    if (t->model->state.num_floats)
        reel_comm_bcast(&t->comm, t->model->state.data, t->model->state.num_floats * sizeof(float), 0);
    for (size_t s = 0; s < t->opt.num_slots; s++)
        reel_comm_bcast(&t->comm, t->opt.slots[s], t->opt.num_floats * sizeof(float), 0);
    reel_comm_bcast(&t->comm, &t->opt.steps_taken, sizeof t->opt.steps_taken, 0);
    reel_comm_bcast(&t->comm, &t->state, sizeof t->state, 0);
}

/* Rank 0 loads the checkpoint to resume from (the newest readable one unless a path was given) and
 * every rank receives its contents. Returns 1 if training resumes, 0 if it starts fresh. */
static int resume_or_init(trainer *t, const reel_train_options *options) {
    const reel_config *cfg = t->cfg;
    memset(&t->state, 0, sizeof t->state);
    t->state.best_valid_accuracy = -1.0;
    t->state.seed = cfg->train.seed;
    t->model->ops->init(t->model, cfg->train.seed);

    int resumed = 0;
    char chosen[2 * REEL_PATH_MAX + 64] = "";
    if (t->comm.rank == 0 && options->resume != REEL_RESUME_NEVER) {
        reel_error err = {{0}};
        if (options->resume == REEL_RESUME_FROM) {
            snprintf(chosen, sizeof chosen, "%s", options->resume_path);
            if (reel_checkpoint_load(chosen, t->model, &t->opt, &t->state, t->vocab.checksum, &err) != 0)
                reel_die(&err, "pass another checkpoint to --resume, or --no-resume to start over");
            resumed = 1;
        } else {
            char **paths;
            size_t count = reel_checkpoint_list(cfg->train.run_dir, &paths);
            for (size_t i = 0; i < count && !resumed; i++) {
                if (reel_checkpoint_load(paths[i], t->model, &t->opt, &t->state, t->vocab.checksum, &err) == 0) {
                    resumed = 1;
                    snprintf(chosen, sizeof chosen, "%s", paths[i]);
                } else {
                    /* A newer checkpoint that does not load is kept on disk for inspection; the run goes
                     * on from the newest one that does. */
                    reel_warn("skipping unusable checkpoint: %s", err.message);
                }
            }
            for (size_t i = 0; i < count; i++) free(paths[i]);
            free(paths);
            if (count > 0 && !resumed)
                REEL_FATAL("fix the configuration to match the checkpoints, move them away, or pass --no-resume",
                           "%s holds %zu checkpoint(s) and none can be resumed (last error above)", cfg->train.run_dir,
                           count);
        }
    }
    reel_comm_bcast(&t->comm, &resumed, sizeof resumed, 0);
    broadcast_training_state(t);
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

static void save_checkpoint(trainer *t, int also_best) {
    if (t->last_checkpoint_step == t->state.global_step && !also_best) return;
    t->last_checkpoint_step = t->state.global_step;
    if (t->comm.rank != 0) return;
    reel_checkpoint_info info = {t->config_ini, t->vocab.checksum, t->comm.size};
    char path[2 * REEL_PATH_MAX + 64];
    reel_error err = {{0}};
    double start = reel_now_seconds();
    reel_checkpoint_numbered_path(path, sizeof path, t->cfg->train.run_dir, t->state.global_step);
    if (reel_checkpoint_save(path, t->model, &t->opt, &t->state, &info, &err) != 0)
        reel_die(&err, "check free space and permissions of the run directory");
    reel_checkpoint_prune(t->cfg->train.run_dir, t->cfg->checkpoint.keep_last);
    if (also_best && t->cfg->checkpoint.keep_best) {
        snprintf(path, sizeof path, "%s/ckpt_best.h5", t->cfg->train.run_dir);
        if (reel_checkpoint_save(path, t->model, &t->opt, &t->state, &info, &err) != 0)
            reel_die(&err, "check free space and permissions of the run directory");
    }
    reel_log("checkpoint: step %" PRIu64 " saved to %s/ckpt_%08" PRIu64 ".h5%s (%.0f ms)\n", t->state.global_step,
             t->cfg->train.run_dir, t->state.global_step, also_best && t->cfg->checkpoint.keep_best ? " and ckpt_best.h5" : "",
             1e3 * (reel_now_seconds() - start));
}

static void log_eval(trainer *t, const char *split_name, uint8_t split, const reel_eval_result *r) {
    if (r->num_classes == 2)
        reel_log("%s: loss %.4f accuracy %.2f%% precision %.4f recall %.4f F1 %.4f | confusion tp %" PRIu64
                 " fp %" PRIu64 " tn %" PRIu64 " fn %" PRIu64 " (%" PRIu64 " reviews)\n", split_name, r->loss,
                 100 * r->accuracy, r->precision, r->recall, r->f1, r->tp, r->fp, r->tn, r->fn, r->count);
    else
        reel_log("%s: loss %.4f accuracy %.2f%% macro precision %.4f recall %.4f F1 %.4f (%zu classes, %" PRIu64
                 " documents)\n", split_name, r->loss, 100 * r->accuracy, r->precision, r->recall, r->f1,
                 r->num_classes, r->count);
    if (!t->metrics) return;
    reel_eval_row row = {t->state.global_step, t->state.epoch, split, r->loss, r->accuracy, r->precision, r->recall,
                         r->f1, r->tp, r->fp, r->tn, r->fn};
    reel_error err = {{0}};
    if (reel_metrics_append_eval(t->metrics, &row, &err) != 0) reel_die(&err, NULL);
}

/* One optimizer step on global batch `step` of `epoch`. Returns 0 if the step was skipped because the
 * gradient was not finite. window[] accumulates loss sum, correct count and rows for the progress line. */
static int train_step(trainer *t, const uint64_t *order, uint64_t num_train, uint64_t epoch, uint64_t step,
                      reel_batch_buffer *buffer, float *logits, float *dlogits, double *window, double *grad_norm,
                      double *lr) {
    const reel_config *cfg = t->cfg;
    uint64_t global_begin = step * cfg->train.batch_size;
    size_t global_rows = (size_t)(num_train - global_begin < cfg->train.batch_size ? num_train - global_begin
                                                                                     : cfg->train.batch_size);
    size_t local_begin, local_rows;
    reel_rank_share(global_rows, t->comm.rank, t->comm.size, &local_begin, &local_rows);
    reel_error err = {{0}};
    if (reel_batch_gather(buffer, t->train, order + global_begin + local_begin, local_rows, t->model->vocab_size,
                          cfg->data.max_tokens, cfg->data.seq_len, t->state.seed, epoch, &err) != 0)
        reel_die(&err, "re-run `reel prep`, or check the file with `reel inspect`");

    reel_store *params = &t->model->params;
    memset(params->grad, 0, params->num_floats * sizeof(float));
    t->model->ops->forward(t->model, &buffer->batch, 1, logits, &t->comm);
    double stats[2] = {reel_model_loss(t->model, dlogits, logits, buffer->labels, local_rows,
                                       1.0f / (float)global_rows, t->predicted), 0};
    for (size_t i = 0; i < local_rows; i++) stats[1] += t->predicted[i] == (int)buffer->labels[i];
    t->model->ops->backward(t->model, &buffer->batch, dlogits, &t->comm);

    reel_comm_sum_floats(&t->comm, params->grad, params->num_floats);
    reel_comm_sum_doubles(&t->comm, stats, 2);
    /* After the all-reduce every rank holds the same gradient, so this test gives the same answer on
     * every rank and they all skip or step together without another collective. */
    *grad_norm = reel_grad_norm(params->grad, params->num_floats);
    *lr = reel_schedule_lr(cfg, t->state.global_step, t->total_steps, t->steps_per_epoch);
    t->state.samples_seen += global_rows;
    if (!isfinite(*grad_norm) || !isfinite(stats[0])) return 0;
    reel_clip_grad_norm(params->grad, params->num_floats, *grad_norm, cfg->optimizer.clip_norm);
    reel_optimizer_step(&t->opt, params, *lr);
    window[0] += stats[0];
    window[1] += stats[1];
    window[2] += (double)global_rows;
    return 1;
}

static void run_epochs(trainer *t) {
    const reel_config *cfg = t->cfg;
    uint64_t num_train = reel_tokfile_info(t->train)->num_docs;
    uint64_t *order = reel_malloc(num_train * sizeof *order);
    float *logits = reel_malloc(t->local_rows_max * t->model->num_outputs * sizeof *logits);
    float *dlogits = reel_malloc(t->local_rows_max * t->model->num_outputs * sizeof *dlogits);
    t->predicted = reel_malloc(t->local_rows_max * sizeof *t->predicted);
    reel_batch_buffer buffer = {0};
    double window[3] = {0}, window_start = reel_now_seconds(), run_start = reel_now_seconds();
    uint64_t run_start_step = t->state.global_step, consecutive_skips = 0, skipped = 0;
    int stopped = 0;

    while (t->state.epoch < cfg->train.epochs && !stopped) {
        uint64_t epoch = t->state.epoch;
        double epoch_start = reel_now_seconds();
        reel_shuffle(order, num_train, t->state.seed, epoch);
        while (t->state.step_in_epoch < t->steps_per_epoch) {
            if (cfg->train.max_steps && t->state.global_step >= cfg->train.max_steps) {
                stopped = 1;
                break;
            }
            double grad_norm, lr;
            int stepped = train_step(t, order, num_train, epoch, t->state.step_in_epoch, &buffer, logits, dlogits,
                                     window, &grad_norm, &lr);
            t->state.step_in_epoch++;
            t->state.global_step++;
            if (!stepped) {
                skipped++;
                reel_log("step %" PRIu64 ": gradient norm or loss is not finite; update skipped (%" PRIu64 " in a row)\n",
                         t->state.global_step, ++consecutive_skips);
                if (consecutive_skips >= MAX_CONSECUTIVE_SKIPS)
                    REEL_FATAL("lower [optimizer] lr or set [optimizer] clip_norm", "%d consecutive steps had a "
                               "non-finite gradient; the last good checkpoint is kept", MAX_CONSECUTIVE_SKIPS);
                continue;
            }
            consecutive_skips = 0;
            if (t->state.global_step % cfg->train.log_every == 0 || t->state.step_in_epoch == t->steps_per_epoch) {
                double elapsed = reel_now_seconds() - window_start, rate = window[2] / (elapsed > 0 ? elapsed : 1e-9);
                uint64_t end = t->total_steps;
                if (cfg->train.max_steps && cfg->train.max_steps < end) end = cfg->train.max_steps;
                double per_step = (reel_now_seconds() - run_start) / (double)(t->state.global_step - run_start_step);
                char eta[32];
                reel_format_duration(eta, sizeof eta, per_step * (double)(end - t->state.global_step));
                double loss = window[2] > 0 ? window[0] / window[2] : 0, accuracy = window[2] > 0 ? window[1] / window[2] : 0;
                reel_log("epoch %" PRIu64 "/%zu step %" PRIu64 "/%" PRIu64 " | loss %.4f acc %.2f%% | lr %.3g |grad| %.3g | "
                         "%.0f reviews/s | eta %s\n", epoch + 1, cfg->train.epochs, t->state.step_in_epoch,
                         t->steps_per_epoch, loss, 100 * accuracy, lr, grad_norm, rate, eta);
                if (t->metrics) {
                    reel_train_row row = {t->state.global_step, epoch, loss, accuracy, lr, grad_norm, rate};
                    reel_error err = {{0}};
                    if (reel_metrics_append_train(t->metrics, &row, &err) != 0) reel_die(&err, NULL);
                }
                memset(window, 0, sizeof window);
                window_start = reel_now_seconds();
            }
            if (cfg->checkpoint.every_steps && t->state.global_step % cfg->checkpoint.every_steps == 0 &&
                t->state.step_in_epoch < t->steps_per_epoch)
                save_checkpoint(t, 0);
        }
        if (t->state.step_in_epoch < t->steps_per_epoch) break; /* stopped inside the epoch */

        double train_seconds = reel_now_seconds() - epoch_start;
        t->state.epoch = epoch + 1;
        t->state.step_in_epoch = 0;
        int best = 0;
        if (t->valid) {
            reel_eval_result r;
            reel_evaluate(t->model, t->valid, cfg->data.max_tokens, t->local_rows_max, &t->comm, &r);
            t->state.epoch = epoch; /* metrics rows belong to the epoch just finished */
            log_eval(t, "valid", REEL_SPLIT_VALID, &r);
            t->state.epoch = epoch + 1;
            if (r.accuracy > t->state.best_valid_accuracy) {
                t->state.best_valid_accuracy = r.accuracy;
                t->state.best_step = t->state.global_step;
                best = 1;
            }
        }
        reel_log("epoch %" PRIu64 "/%zu done: %.1f s training, %.1f s with evaluation%s\n", epoch + 1, cfg->train.epochs,
                 train_seconds, reel_now_seconds() - epoch_start, best ? ", best so far" : "");
        save_checkpoint(t, best);
    }
    save_checkpoint(t, 0);
    if (skipped) reel_log("%" PRIu64 " step(s) were skipped for non-finite gradients\n", skipped);
    reel_batch_buffer_free(&buffer);
    free(order);
    free(logits);
    free(dlogits);
    free(t->predicted);
}

int reel_train(const reel_config *requested, const reel_train_options *options) {
    trainer t = {0};
    reel_config effective = *requested;
    const reel_config *cfg = &effective;
    t.cfg = cfg;
    reel_comm_world(&t.comm);
    report_threads(&t);

    reel_error err = {{0}};
    char path[2 * 2 * REEL_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/vocab.txt", cfg->data.dir);
    if (reel_vocab_load(&t.vocab, path, &err) != 0) reel_die(&err, "run `reel prep` to create the data directory");
    if (cfg->model.vocab_size > t.vocab.size) {
        /* Rows past the data's vocabulary would never be trained; the stored configuration records the
         * size actually used, so `reel eval` rebuilds the same model. */
        reel_log("note: [model] vocab_size = %zu, but %s has %zu entries: using %zu\n", cfg->model.vocab_size, path,
                 t.vocab.size, t.vocab.size);
        effective.model.vocab_size = t.vocab.size;
    }
    /* The number of classes comes from the data unless the configuration fixes it; the stored
     * configuration records it, so `reel eval` rebuilds the same head. */
    snprintf(path, sizeof path, "%s/train.tok", cfg->data.dir);
    {
        reel_tokfile *probe;
        if (reel_tokfile_open(&probe, path, &err) != 0) reel_die(&err, "run `reel prep` to create the data directory");
        const size_t *num_classes = reel_config_field(&effective, "model.num_classes");
        if (num_classes && *num_classes == 0) {
            char value[32];
            snprintf(value, sizeof value, "%" PRIu32, reel_tokfile_info(probe)->num_classes);
            if (reel_config_set(&effective, "model.num_classes", value, "data", &err) != 0) reel_die(&err, NULL);
        }
        reel_tokfile_close(probe);
    }
    if (reel_schedule_check(cfg, &err) != 0) reel_die(&err, "`reel train --help-config` lists every key");
    t.config_ini = reel_config_to_ini(cfg);
    reel_log("--- resolved configuration ---\n%s------------------------------\n", t.config_ini);
    t.train = open_split(&t, "train", 1);
    t.valid = open_split(&t, "valid", 0);
    t.test = open_split(&t, "test", 0);
    uint64_t num_train = reel_tokfile_info(t.train)->num_docs;
    REEL_CHECK(num_train > 0, "the training split is empty", "%s/train.tok holds no documents", cfg->data.dir);
    t.steps_per_epoch = (num_train + cfg->train.batch_size - 1) / cfg->train.batch_size;
    t.total_steps = t.steps_per_epoch * cfg->train.epochs;
    t.local_rows_max = (cfg->train.batch_size + (size_t)t.comm.size - 1) / (size_t)t.comm.size;

    if (reel_model_create(&t.model, cfg, t.local_rows_max, &err) != 0) reel_die(&err, NULL);
    reel_optimizer_init(&t.opt, cfg, &t.model->params);
    if (t.comm.rank == 0 && reel_make_dirs(cfg->train.run_dir, &err) != 0)
        reel_die(&err, "set [train] run_dir to a writable directory");
    reel_comm_barrier(&t.comm);
    int resumed = resume_or_init(&t, options);
    t.model->seed = t.state.seed;
    reel_log("model %s: %zu parameters; %" PRIu64 " training reviews, %" PRIu64 " steps per epoch of %zu reviews "
             "(%zu per rank at most)\n", cfg->model.type, t.model->params.num_floats, num_train, t.steps_per_epoch,
             cfg->train.batch_size, t.local_rows_max);

    if (t.comm.rank == 0) {
        snprintf(path, sizeof path, "%s/config.ini", cfg->train.run_dir);
        FILE *out = fopen(path, "w");
        if (out) {
            fputs(t.config_ini, out);
            fclose(out);
        }
        snprintf(path, sizeof path, "%s/metrics.h5", cfg->train.run_dir);
        if (reel_metrics_open(&t.metrics, path, resumed ? t.state.global_step : 0, &err) != 0)
            reel_die(&err, "move the file away, or use a new [train] run_dir");
    }

    double start = reel_now_seconds();
    run_epochs(&t);
    reel_log("training: %.1f s\n", reel_now_seconds() - start);
    if (t.test && t.state.epoch >= cfg->train.epochs) {
        reel_eval_result r;
        reel_evaluate(t.model, t.test, cfg->data.max_tokens, t.local_rows_max, &t.comm, &r);
        log_eval(&t, "test", REEL_SPLIT_TEST, &r);
        reel_log("final test accuracy: %.2f%%\n", 100 * r.accuracy);
    }

    if (t.metrics) reel_metrics_close(t.metrics);
    reel_optimizer_free(&t.opt);
    reel_model_destroy(t.model);
    reel_tokfile_close(t.train);
    if (t.valid) reel_tokfile_close(t.valid);
    if (t.test) reel_tokfile_close(t.test);
    reel_vocab_free(&t.vocab);
    free(t.config_ini);
    return 0;
}
