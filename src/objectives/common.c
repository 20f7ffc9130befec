/* What every objective shares: creation through the registry, and opening the token files of a split. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reel/objective.h"

#include "reel/data.h"

int reel_objective_create(reel_objective **out, const reel_config *cfg, reel_model *model, const reel_vocab *vocab,
                          const reel_comm *comm, size_t max_rows, int for_training, reel_error *err) {
    const reel_objective_kind *kind = reel_objective_kind_find(cfg->objective.type);
    if (!kind) return reel_fail(err, "[objective] type = '%s': unknown objective", cfg->objective.type);
    if (kind->needs != model->output)
        return reel_fail(err, "[objective] type = %s trains models with one output per %s, but model type '%s' has one "
                         "per %s; use [objective] type = %s", kind->type,
                         kind->needs == REEL_OUTPUT_DOCUMENT ? "document" : "token", cfg->model.type,
                         model->output == REEL_OUTPUT_DOCUMENT ? "document" : "token",
                         reel_model_default_objective(cfg->model.type));
    if (kind->create(out, cfg, model, vocab, comm, max_rows, for_training, err) != 0) return -1;
    (*out)->type = kind->type;
    (*out)->model = model;
    (*out)->comm = *comm;
    REEL_CHECK((*out)->ops->train_step && (*out)->ops->evaluate && (*out)->ops->train_values && (*out)->ops->describe,
               NULL, "objective '%s' lacks one of its operations", kind->type);
    return 0;
}

void reel_objective_destroy(reel_objective *obj) {
    if (!obj) return;
    if (obj->ops && obj->ops->destroy) obj->ops->destroy(obj);
    reel_store_free(&obj->carried);
    free(obj);
}

int reel_objective_eval_index(const reel_objective *obj, const char *name) {
    for (size_t i = 0; i < obj->num_eval_series; i++)
        if (strcmp(obj->eval_series[i].name, name) == 0) return (int)i;
    return -1;
}

int reel_open_split(reel_tokfile **out, const reel_config *cfg, const reel_vocab *vocab, const char *split,
                    int required, reel_error *err) {
    *out = NULL;
    char path[REEL_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s.tok", cfg->data.dir, split);
    if (!required && access(path, F_OK) != 0) return 0;
    if (reel_tokfile_open(out, path, err) != 0) return -1;
    uint64_t checksum = reel_tokfile_info(*out)->vocab_checksum; /* the header goes with the file */
    if (checksum != vocab->checksum) {
        reel_tokfile_close(*out);
        *out = NULL;
        return reel_fail(err, "%s was made with another vocabulary (checksum %016" PRIx64 ", %s/vocab.txt has %016" PRIx64
                         "); re-run `reel prep` so the token files and vocab.txt come from the same run",
                         path, checksum, cfg->data.dir, vocab->checksum);
    }
    if (cfg->data.reverse && reel_tokfile_reverse(*out, err) != 0) {
        reel_tokfile_close(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

static int by_length(const void *a, const void *b) {
    const reel_doc_length *x = a, *y = b;
    if (x->length != y->length) return x->length < y->length ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

reel_doc_length *reel_eval_order(const reel_tokfile *file, uint64_t docs, size_t max_tokens, size_t extra,
                                 const reel_comm *comm, size_t *count) {
    size_t begin;
    reel_rank_share((size_t)docs, comm->rank, comm->size, &begin, count);
    reel_doc_length *order = reel_malloc((*count ? *count : 1) * sizeof *order);
    for (size_t i = 0; i < *count; i++) {
        size_t n = reel_tokfile_doc_length(file, begin + i);
        if (max_tokens && n > max_tokens) n = max_tokens;
        order[i] = (reel_doc_length){begin + i, n + extra};
    }
    if (*count > 1) qsort(order, *count, sizeof *order, by_length); /* may be NULL when empty */
    return order;
}

size_t reel_eval_batch_rows(const reel_doc_length *order, size_t count, size_t start, size_t batch_rows) {
    size_t rows = 0;
    while (start + rows < count && rows < batch_rows &&
           (rows == 0 || (rows + 1) * (order[start + rows].length ? order[start + rows].length : 1) <= REEL_EVAL_STEP_BUDGET))
        rows++;
    return rows;
}

void reel_model_flop_rates(const reel_objective *obj, double tokens_per_s, double peak_gflops, double *model_gflops,
                           double *mfu) {
    double flops = obj->model->flops_per_token;
    *model_gflops = flops > 0 ? tokens_per_s * flops / 1e9 : NAN;
    *mfu = flops > 0 && peak_gflops > 0 ? *model_gflops / (peak_gflops * obj->comm.size) : NAN;
}
