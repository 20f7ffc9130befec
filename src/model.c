#include "reel/model.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *type;
    int (*create)(reel_model **out, const reel_config *cfg, size_t max_batch, reel_error *err);
} reel_model_kind;

static const reel_model_kind model_kinds[] = {
    {"bow", reel_bow_create},
    {"lstm", reel_recurrent_model_create},
    {"gru", reel_recurrent_model_create},
    {"rnn", reel_recurrent_model_create},
};

int reel_model_create(reel_model **out, const reel_config *cfg, size_t max_batch, reel_error *err) {
    for (size_t i = 0; i < sizeof model_kinds / sizeof model_kinds[0]; i++)
        if (strcmp(cfg->model.type, model_kinds[i].type) == 0) {
            if (model_kinds[i].create(out, cfg, max_batch, err) != 0) return -1;
            REEL_CHECK((*out)->ops->forward && (*out)->ops->backward && (*out)->ops->init, NULL,
                       "model '%s' lacks forward, backward or init", cfg->model.type);
            return 0;
        }
    return reel_fail(err, "[model] type = '%s': unknown model type (known: bow, lstm, gru, rnn)", cfg->model.type);
}

void reel_model_destroy(reel_model *model) {
    if (!model) return;
    if (model->ops && model->ops->destroy) model->ops->destroy(model);
    reel_store_free(&model->params);
    reel_store_free(&model->state);
    free(model);
}
