#include "reel/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The model registry: every model type, by name. Adding a model is adding its source file, which
 * defines its reel_model_kind (create function, [model] keys, default objective), and one line here. */
extern const reel_model_kind reel_model_kind_bow;  /* src/models/bow.c */
extern const reel_model_kind reel_model_kind_lstm; /* src/models/recurrent.c */
extern const reel_model_kind reel_model_kind_gru;
extern const reel_model_kind reel_model_kind_rnn;
extern const reel_model_kind reel_model_kind_lm;   /* src/models/lm.c */
extern const reel_model_kind reel_model_kind_gpt;  /* src/models/gpt.c */
extern const reel_model_kind reel_model_kind_cnn;  /* src/models/cnn.c */
extern const reel_model_kind reel_model_kind_transformer; /* src/models/transformer.c */

static const reel_model_kind *const model_kinds[] = {
    &reel_model_kind_bow,
    &reel_model_kind_lstm,
    &reel_model_kind_gru,
    &reel_model_kind_rnn,
    &reel_model_kind_lm,
    &reel_model_kind_gpt,
    &reel_model_kind_cnn,
    &reel_model_kind_transformer,
};
#define NUM_KINDS (sizeof model_kinds / sizeof model_kinds[0])

const reel_model_kind *reel_model_kind_find(const char *type) {
    for (size_t i = 0; i < NUM_KINDS; i++)
        if (strcmp(type, model_kinds[i]->type) == 0) return model_kinds[i];
    return NULL;
}

const char *reel_model_type_at(size_t index) { return index < NUM_KINDS ? model_kinds[index]->type : NULL; }

/* Old names of model types: still read in configurations and in the /config (and model_type) of
 * checkpoints written before the rename, and resolved to the new name, which is what a run writes back. */
static const reel_config_alias model_aliases[] = {
    {"lm", "rnn_lm"}, /* the recurrent language model, named when it was the only one */
};
#define NUM_ALIASES (sizeof model_aliases / sizeof model_aliases[0])

const char *reel_model_type_resolve(const char *name) {
    for (size_t i = 0; i < NUM_ALIASES; i++)
        if (strcmp(name, model_aliases[i].name) == 0) return model_aliases[i].type;
    return name;
}

/* The kinds' names are not constant expressions in C, so the catalogue's table is filled at run time. */
void reel_model_catalogue(reel_config_catalogue *catalogue) {
    static reel_config_type types[NUM_KINDS];
    for (size_t i = 0; i < NUM_KINDS; i++)
        types[i] = (reel_config_type){model_kinds[i]->type, model_kinds[i]->keys, model_kinds[i]->objective};
    catalogue->models = types;
    catalogue->num_models = NUM_KINDS;
    catalogue->model_aliases = model_aliases;
    catalogue->num_model_aliases = NUM_ALIASES;
}

const char *reel_model_default_objective(const char *type) {
    const reel_model_kind *kind = reel_model_kind_find(type);
    return kind ? kind->objective : NULL;
}

int reel_model_create(reel_model **out, const reel_config *cfg, size_t max_batch, reel_error *err) {
    const reel_model_kind *kind = reel_model_kind_find(cfg->model.type);
    /* the configuration only holds registered types; this guards callers that filled one by hand */
    if (!kind) return reel_fail(err, "[model] type = '%s': unknown model type", cfg->model.type);
    if (kind->create(out, cfg, max_batch, err) != 0) return -1;
    REEL_CHECK((*out)->ops->forward && (*out)->ops->backward && (*out)->ops->init, NULL,
               "model '%s' lacks forward, backward or init", cfg->model.type);
    /* Test-only: no registered model bounds its context yet, so the tests force a bound on a recurrent
     * model to drive the windowed paths of evaluation, scoring and generation. */
    const char *forced = getenv("REEL_TEST_MAX_CONTEXT");
    if (forced && *forced) {
        char *end = NULL;
        errno = 0;
        unsigned long long value = strtoull(forced, &end, 10);
        REEL_CHECK(forced[0] >= '0' && forced[0] <= '9' && *end == '\0' && errno == 0, "unset it, or give a number of tokens",
                   "REEL_TEST_MAX_CONTEXT='%s': expected a whole number", forced);
        (*out)->max_context = (size_t)value;
    }
    return 0;
}

void reel_model_destroy(reel_model *model) {
    if (!model) return;
    if (model->ops && model->ops->destroy) model->ops->destroy(model);
    reel_store_free(&model->params);
    reel_store_free(&model->state);
    free(model);
}

size_t reel_model_outputs(size_t num_classes) { return num_classes > 2 ? num_classes : 1; }

reel_model *reel_classifier_new(const char *type, const reel_model_ops *ops, void *impl, const reel_config *cfg,
                                size_t num_classes, size_t max_batch) {
    reel_model *model = reel_calloc(1, sizeof *model);
    snprintf(model->type, sizeof model->type, "%s", type);
    model->ops = ops;
    model->impl = impl;
    model->vocab_size = cfg->model.vocab_size;
    model->output = REEL_OUTPUT_DOCUMENT;
    model->num_outputs = reel_model_outputs(num_classes);
    model->max_batch = max_batch ? max_batch : 1;
    model->seed = cfg->train.seed;
    model->input_dim = cfg->model.embed_dim;
    return model;
}
