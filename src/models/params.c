#include "reel/params.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/check.h"

void reel_store_init(reel_store *store, int trainable) {
    memset(store, 0, sizeof *store);
    store->trainable = trainable;
}

size_t reel_store_add(reel_store *store, const char *name, size_t ndim, const size_t *shape) {
    return reel_store_add_sized(store, name, ndim, shape, "%s", "");
}

size_t reel_store_add_sized(reel_store *store, const char *name, size_t ndim, const size_t *shape,
                            const char *sized_by, ...) {
    REEL_CHECK(store->data == NULL, NULL, "tensor '%s' registered after the store was allocated", name);
    REEL_CHECK(ndim >= 1 && ndim <= REEL_TENSOR_MAX_DIMS, NULL, "tensor '%s' has %zu dimensions", name, ndim);
    REEL_CHECK(strlen(name) < REEL_TENSOR_NAME_MAX, NULL, "tensor name '%s' is too long", name);
    REEL_CHECK(reel_store_find(store, name) == (size_t)-1, NULL, "tensor '%s' registered twice", name);
    if (store->num_tensors == store->capacity) {
        store->capacity = store->capacity ? 2 * store->capacity : 16;
        store->tensors = reel_realloc(store->tensors, store->capacity * sizeof *store->tensors);
    }
    reel_tensor_info *info = &store->tensors[store->num_tensors];
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", name);
    info->ndim = ndim;
    va_list args;
    va_start(args, sized_by);
    vsnprintf(info->sized_by, sizeof info->sized_by, sized_by, args);
    va_end(args);
    info->count = 1;
    for (size_t d = 0; d < ndim; d++) {
        info->shape[d] = shape[d];
        info->count = reel_size_mul(info->count, shape[d]);
    }
    info->offset = store->num_floats;
    info->group = store->group;
    info->decay = 1; /* what every model did before the flag existed, so their results stay as they were */
    /* saturates: a configuration's sizes may overflow, and reel_store_allocate then refuses them */
    store->num_floats = info->count > SIZE_MAX - store->num_floats ? SIZE_MAX : store->num_floats + info->count;
    return store->num_tensors++;
}

void reel_store_set_group(reel_store *store, size_t group) { store->group = group; }

void reel_store_set_decay(reel_store *store, size_t index, int decay) {
    REEL_CHECK(index < store->num_tensors, NULL, "tensor %zu of %zu", index, store->num_tensors);
    store->tensors[index].decay = decay != 0;
}

size_t reel_store_top_group(const reel_store *store) {
    size_t top = 0;
    for (size_t i = 0; i < store->num_tensors; i++)
        if (store->tensors[i].group > top) top = store->tensors[i].group;
    return top;
}

void reel_store_mark_transfer(reel_store *store, size_t first) {
    for (size_t i = first; i < store->num_tensors; i++) store->tensors[i].transfer = 1;
}

/* The message when copies buffers of the store's layout do not fit: the total, the machine's bound, and
 * the largest tensors with the keys their shapes come from, so the user knows what to lower. */
static REEL_NORETURN void report_too_large(const reel_store *store, size_t copies, const char *what,
                                           const char *outcome, const char *limit_text) {
    enum { SHOWN = 3 };
    size_t largest[SHOWN], shown = 0;
    for (size_t i = 0; i < store->num_tensors; i++) {
        size_t at = shown < SHOWN ? shown++ : SHOWN;
        if (at == SHOWN) {
            if (store->tensors[i].count <= store->tensors[largest[SHOWN - 1]].count) continue;
            at = SHOWN - 1;
        }
        while (at > 0 && store->tensors[largest[at - 1]].count < store->tensors[i].count) {
            largest[at] = largest[at - 1];
            at--;
        }
        largest[at] = i;
    }
    char list[REEL_ERROR_MAX / 2] = "";
    size_t used = 0;
    for (size_t k = 0; k < shown && used < sizeof list; k++) {
        const reel_tensor_info *t = &store->tensors[largest[k]];
        char dims[128] = "";
        for (size_t d = 0, n = 0; d < t->ndim && n < sizeof dims; d++)
            n += (size_t)snprintf(dims + n, sizeof dims - n, "%s%zu", d ? " x " : "", t->shape[d]);
        int n = snprintf(list + used, sizeof list - used, "%s%s%s%s%s%zu floats (%.1f GiB) for %s", k ? "; " : "",
                         t->sized_by, t->sized_by[0] ? " = " : "", t->ndim > 1 ? dims : "", t->ndim > 1 ? " = " : "",
                         t->count, t->count * 4.0 / 1073741824.0, t->name);
        if (n > 0) used += (size_t)n;
    }
    const reel_tensor_info *top = &store->tensors[largest[0]];
    char hint[256];
    if (top->sized_by[0]) snprintf(hint, sizeof hint, "make %s smaller (the largest tensor, %s)", top->sized_by, top->name);
    else snprintf(hint, sizeof hint, "make the model smaller (its largest tensor is %s)", top->name);
    REEL_FATAL(hint, "out of memory: %s need %zu x %zu floats (%.1f GiB): %s (%s); the largest tensors: %s", what,
               copies, store->num_floats, (double)copies * (double)store->num_floats * 4.0 / 1073741824.0, outcome,
               limit_text, list);
}

void reel_store_require(const reel_store *store, size_t copies, const char *what) {
    char limit_text[128];
    size_t limit = reel_memory_limit(limit_text, sizeof limit_text);
    if (store->num_tensors && reel_size_mul(reel_size_mul(store->num_floats, sizeof(float)), copies) > limit)
        report_too_large(store, copies, what, "more than this machine can allocate", limit_text);
}

float *reel_store_calloc_like(const reel_store *store, size_t copies, const char *what) {
    float *buffer = calloc(store->num_floats ? store->num_floats : 1, sizeof(float));
    if (!buffer) {
        char limit_text[128];
        reel_memory_limit(limit_text, sizeof limit_text);
        report_too_large(store, copies, what, "the allocation failed", limit_text);
    }
    return buffer;
}

void reel_store_allocate(reel_store *store) {
    const char *what = store->trainable ? "the parameters and their gradients" : "the model's running statistics";
    size_t copies = store->trainable ? 2 : 1;
    /* checked before allocating: with overcommit an allocation this large might succeed and the first
     * touch end the process instead */
    reel_store_require(store, copies, what);
    store->data = reel_store_calloc_like(store, copies, what);
    if (store->trainable) store->grad = reel_store_calloc_like(store, copies, what);
}

float *reel_store_view(const reel_store *store, size_t index) {
    return store->data + store->tensors[index].offset;
}

float *reel_store_grad_view(const reel_store *store, size_t index) {
    return store->grad ? store->grad + store->tensors[index].offset : NULL;
}

size_t reel_store_find(const reel_store *store, const char *name) {
    for (size_t i = 0; i < store->num_tensors; i++)
        if (strcmp(store->tensors[i].name, name) == 0) return i;
    return (size_t)-1;
}

void reel_store_grad_ready(const reel_store *store, size_t group) {
    if (store->hooks.grad_ready) store->hooks.grad_ready(store->hooks.ctx, group);
}

void reel_store_poll(const reel_store *store) {
    if (store->hooks.poll) store->hooks.poll(store->hooks.ctx);
}

void reel_store_free(reel_store *store) {
    free(store->tensors);
    free(store->data);
    free(store->grad);
    memset(store, 0, sizeof *store);
}
