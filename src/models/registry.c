#include "reel/model.h"

#include "reel/layers.h"

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

size_t reel_model_outputs(size_t num_classes) { return num_classes > 2 ? num_classes : 1; }

double reel_model_loss(const reel_model *model, float *dlogits, const float *logits, const float *labels, size_t B,
                       float scale, int *predicted) {
    size_t K = model->num_outputs;
    if (predicted)
        for (size_t b = 0; b < B; b++) {
            const float *z = logits + b * K;
            size_t best = 0;
            for (size_t k = 1; k < K; k++)
                if (z[k] > z[best]) best = k;
            predicted[b] = K == 1 ? z[0] > 0.0f : (int)best;
        }
    return K == 1 ? reel_bce_logits(dlogits, logits, labels, B, scale) : reel_softmax_ce(dlogits, logits, labels, B, K, scale);
}
