#include "reel/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/check.h"

void reel_optimizer_init(reel_optimizer *opt, const reel_config *cfg, const reel_store *params) {
    memset(opt, 0, sizeof *opt);
    snprintf(opt->type, sizeof opt->type, "%s", cfg->optimizer.type);
    opt->num_floats = params->num_floats;
    opt->beta1 = cfg->optimizer.beta1;
    opt->beta2 = cfg->optimizer.beta2;
    opt->eps = cfg->optimizer.eps;
    opt->momentum = cfg->optimizer.momentum;
    opt->weight_decay = cfg->optimizer.weight_decay;
    opt->nesterov = cfg->optimizer.nesterov;
    opt->alpha = cfg->optimizer.alpha;
    opt->centered = cfg->optimizer.centered;
    opt->lazy_embedding = cfg->optimizer.lazy_embedding;
    if (strcmp(opt->type, "adam") == 0) {
        opt->num_slots = 2;
        opt->slot_names[0] = "adam_m";
        opt->slot_names[1] = "adam_v";
    } else if (strcmp(opt->type, "sgd") == 0) {
        opt->num_slots = 1;
        opt->slot_names[0] = "momentum";
    } else if (strcmp(opt->type, "rmsprop") == 0) {
        /* only the state the settings use exists (as in PyTorch), so a checkpoint holds no dead slots */
        opt->momentum = cfg->optimizer.rmsprop_momentum;
        opt->slot_names[opt->num_slots++] = "rmsprop_square";
        if (opt->centered) opt->slot_names[opt->num_slots++] = "rmsprop_mean";
        if (opt->momentum > 0) opt->slot_names[opt->num_slots++] = "momentum";
    } else {
        REEL_FATAL("use adam, sgd or rmsprop", "[optimizer] type = '%s' is not an optimizer", opt->type);
    }
    /* the state is as large as the parameters once per slot: checked with them (and their gradients), so a
     * model that only just fits without the optimizer is refused here, naming its largest tensors */
    char what[128];
    snprintf(what, sizeof what, "the parameters, their gradients and %s's %zu state buffer%s", opt->type,
             opt->num_slots, opt->num_slots == 1 ? "" : "s");
    reel_store_require(params, 2 + opt->num_slots, what);
    for (size_t s = 0; s < opt->num_slots; s++) opt->slots[s] = reel_store_calloc_like(params, 2 + opt->num_slots, what);
    opt->num_tensors = params->num_tensors;
    opt->tensors = params->tensors;
    opt->lr_scale = reel_malloc(opt->num_tensors * sizeof *opt->lr_scale);
    for (size_t t = 0; t < opt->num_tensors; t++) opt->lr_scale[t] = 1.0f;
    opt->tensor_steps = reel_calloc(opt->num_tensors, sizeof *opt->tensor_steps);
    opt->decays = reel_malloc((opt->num_tensors ? opt->num_tensors : 1) * sizeof *opt->decays);
    for (size_t t = 0; t < opt->num_tensors; t++) opt->decays[t] = reel_optimizer_decays(cfg, &opt->tensors[t]);
}

int reel_optimizer_decays(const reel_config *cfg, const reel_tensor_info *info) {
    if (strcmp(cfg->optimizer.decay, "all") == 0) return 1;
    if (strcmp(cfg->optimizer.decay, "matrices") == 0) {
        /* GPT practice: biases and norm gains (one dimension) keep their scale; the embedding is a matrix
         * but decays only by choice */
        if (strcmp(info->name, REEL_TENSOR_EMBEDDING) == 0) return cfg->optimizer.decay_embedding;
        return info->ndim >= 2;
    }
    return info->decay;
}

int reel_optimizer_check(const reel_config *cfg, reel_error *err) {
    if (cfg->optimizer.lazy_embedding && strcmp(cfg->optimizer.type, "adam") != 0)
        return reel_fail(err, "[optimizer] lazy_embedding = true with type = %s: only adam has the lazy row update; "
                         "set it to false or use adam", cfg->optimizer.type);
    /* only true is refused: a run directory's resolved config.ini writes every key, false included, and must
     * read back as the configuration it records */
    if (cfg->optimizer.decay_embedding && strcmp(cfg->optimizer.decay, "matrices") != 0)
        return reel_fail(err, "[optimizer] decay_embedding = true, but decay = %s: it only chooses whether the "
                         "embedding decays with decay = matrices", cfg->optimizer.decay);
    return 0;
}

void reel_optimizer_free(reel_optimizer *opt) {
    for (size_t s = 0; s < opt->num_slots; s++) free(opt->slots[s]);
    free(opt->lr_scale);
    free(opt->tensor_steps);
    free(opt->decays);
    memset(opt, 0, sizeof *opt);
}

reel_checkpoint_slots reel_optimizer_checkpoint_slots(reel_optimizer *opt) {
    return (reel_checkpoint_slots){.type = opt->type,
                                   .num_slots = opt->num_slots,
                                   .slot_names = opt->slot_names,
                                   .slots = opt->slots,
                                   .steps_taken = &opt->steps_taken,
                                   .num_tensors = opt->num_tensors,
                                   .tensor_steps = opt->tensor_steps};
}

/* Adam on the floats [begin, end) of one tensor, its t-th update at learning rate lr. */
static void adam_range(reel_optimizer *opt, float *param, const float *grad, size_t begin, size_t end, double lr,
                       uint64_t t, double weight_decay) {
    double correction1 = 1.0 - pow(opt->beta1, (double)t);
    double correction2 = 1.0 - pow(opt->beta2, (double)t);
    float b1 = (float)opt->beta1, b2 = (float)opt->beta2, eps = (float)opt->eps;
    float step_size = (float)(lr / correction1);
    float inv_sqrt_correction2 = (float)(1.0 / sqrt(correction2));
    float decay = (float)(1.0 - lr * weight_decay);
    float *m = opt->slots[0], *v = opt->slots[1];
    for (size_t i = begin; i < end; i++) {
        float g = grad[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        param[i] = param[i] * decay - step_size * m[i] / (sqrtf(v[i]) * inv_sqrt_correction2 + eps);
    }
}

/* Lazy Adam on a (rows, width) tensor at [begin, begin + rows * width): the rows whose gradient is all
 * zero keep their values and moments, the others take the step adam_range takes (the same t). After the
 * gradient exchange every rank holds the same gradient, so every rank skips the same rows. */
static void adam_rows(reel_optimizer *opt, float *param, const float *grad, size_t begin, size_t rows, size_t width,
                      double lr, uint64_t t, double weight_decay) {
    for (size_t r = 0; r < rows; r++) {
        size_t at = begin + r * width, e = 0;
        while (e < width && grad[at + e] == 0.0f) e++;
        if (e < width) adam_range(opt, param, grad, at, at + width, lr, t, weight_decay);
    }
}

static void sgd_range(reel_optimizer *opt, float *param, const float *grad, size_t begin, size_t end, double lr,
                      double weight_decay) {
    float momentum = (float)opt->momentum, wd = (float)weight_decay, rate = (float)lr;
    float *buf = opt->slots[0];
    for (size_t i = begin; i < end; i++) {
        float g = grad[i] + wd * param[i];
        buf[i] = momentum * buf[i] + g;
        float direction = opt->nesterov ? g + momentum * buf[i] : buf[i];
        param[i] -= rate * direction;
    }
}

/* RMSprop as PyTorch defines it (torch.optim.RMSprop): L2 weight decay added to the gradient, the
 * squared-gradient average v, the gradient average a when centered, momentum on the scaled step. */
static void rmsprop_range(reel_optimizer *opt, float *param, const float *grad, size_t begin, size_t end, double lr,
                          double weight_decay) {
    float alpha = (float)opt->alpha, eps = (float)opt->eps, wd = (float)weight_decay, rate = (float)lr;
    float momentum = (float)opt->momentum;
    size_t slot = 0;
    float *square = opt->slots[slot++];
    float *mean = opt->centered ? opt->slots[slot++] : NULL;
    float *buf = momentum > 0 ? opt->slots[slot++] : NULL;
    for (size_t i = begin; i < end; i++) {
        float g = grad[i] + wd * param[i];
        square[i] = alpha * square[i] + (1.0f - alpha) * g * g;
        float variance = square[i];
        if (mean) {
            mean[i] = alpha * mean[i] + (1.0f - alpha) * g;
            variance -= mean[i] * mean[i];
            if (variance < 0.0f) variance = 0.0f; /* >= 0 in exact arithmetic; rounding must not make a NaN */
        }
        float scaled = g / (sqrtf(variance) + eps);
        if (buf) {
            buf[i] = momentum * buf[i] + scaled;
            scaled = buf[i];
        }
        param[i] -= rate * scaled;
    }
}

void reel_optimizer_step(reel_optimizer *opt, reel_store *params, double lr) {
    REEL_CHECK(params->num_floats == opt->num_floats, NULL, "optimizer built for %zu floats, given %zu",
               opt->num_floats, params->num_floats);
    opt->steps_taken++;
    for (size_t t = 0; t < opt->num_tensors; t++) {
        if (opt->lr_scale[t] == 0.0f) continue; /* frozen */
        const reel_tensor_info *info = &opt->tensors[t];
        double rate = lr * (double)opt->lr_scale[t];
        opt->tensor_steps[t]++;
        size_t begin = info->offset, end = info->offset + info->count;
        double wd = opt->decays[t] ? opt->weight_decay : 0.0;
        if (opt->type[0] == 'a' && opt->lazy_embedding && info->ndim == 2 && strcmp(info->name, REEL_TENSOR_EMBEDDING) == 0)
            adam_rows(opt, params->data, params->grad, begin, info->shape[0], info->shape[1], rate, opt->tensor_steps[t], wd);
        else if (opt->type[0] == 'a') adam_range(opt, params->data, params->grad, begin, end, rate, opt->tensor_steps[t], wd);
        else if (opt->type[0] == 'r') rmsprop_range(opt, params->data, params->grad, begin, end, rate, wd);
        else sgd_range(opt, params->data, params->grad, begin, end, rate, wd);
    }
}

int reel_schedule_check(const reel_config *cfg, reel_error *err) {
    size_t epochs[64];
    if (strcmp(cfg->optimizer.schedule, "step") != 0) return 0;
    int count = reel_config_size_list(cfg->optimizer.decay_epochs, "[optimizer] decay_epochs", epochs, 64, err);
    if (count < 0) return -1;
    if (count == 0)
        return reel_fail(err, "[optimizer] schedule = step needs decay_epochs, the epochs (1-based) at whose start the "
                         "rate is multiplied by decay_factor (e.g. decay_epochs = 50)");
    return 0;
}

double reel_schedule_lr(const reel_config *cfg, uint64_t step, uint64_t total_steps, uint64_t steps_per_epoch) {
    double base = cfg->optimizer.lr;
    uint64_t warmup = cfg->optimizer.warmup_steps;
    const char *schedule = cfg->optimizer.schedule;
    if (step < warmup) return base * (double)(step + 1) / (double)warmup;
    if (strcmp(schedule, "step") == 0) {
        size_t epochs[64];
        int count = reel_config_size_list(cfg->optimizer.decay_epochs, "decay_epochs", epochs, 64, NULL);
        uint64_t epoch = steps_per_epoch ? step / steps_per_epoch + 1 : 1; /* 1-based, as the key counts */
        double rate = base;
        for (int i = 0; i < count; i++)
            if (epoch >= epochs[i]) rate *= cfg->optimizer.decay_factor;
        return rate;
    }
    if (strcmp(schedule, "constant") == 0 || total_steps <= warmup) return base;
    double progress = (double)(step - warmup) / (double)(total_steps - warmup);
    if (progress > 1.0) progress = 1.0;
    if (strcmp(schedule, "cosine") == 0) return base * 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
    if (strcmp(schedule, "slanted_triangular") == 0) {
        /* Howard & Ruder (2018): a linear rise over the first cut_frac of the steps, then a linear decay
         * to base / ratio at the end. */
        double cut = cfg->optimizer.stlr_cut_frac, ratio = cfg->optimizer.stlr_ratio;
        double p = progress < cut ? progress / cut : 1.0 - (progress - cut) / (1.0 - cut);
        return base * (1.0 + p * (ratio - 1.0)) / ratio;
    }
    return base * (1.0 - progress); /* linear */
}

double reel_grad_norm(const float *grad, size_t count) {
    /* Eight independent partial sums, combined in a fixed order: the loop vectorises (a single running
     * sum cannot be reordered without -ffast-math) and the result stays deterministic. */
    double partial[8] = {0};
    size_t i = 0;
    for (; i + 8 <= count; i += 8)
        for (size_t k = 0; k < 8; k++) partial[k] += (double)grad[i + k] * grad[i + k];
    for (; i < count; i++) partial[0] += (double)grad[i] * grad[i];
    double sum = ((partial[0] + partial[1]) + (partial[2] + partial[3])) + ((partial[4] + partial[5]) + (partial[6] + partial[7]));
    return sqrt(sum);
}

double reel_clip_grad_norm(float *grad, size_t count, double norm, double max_norm) {
    if (max_norm <= 0.0 || norm <= max_norm) return 1.0;
    float factor = (float)(max_norm / (norm + 1e-6));
    for (size_t i = 0; i < count; i++) grad[i] *= factor;
    return factor;
}
