#include "reel/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/check.h"

void reel_store_init(reel_store *store, int trainable) {
    memset(store, 0, sizeof *store);
    store->trainable = trainable;
}

size_t reel_store_add(reel_store *store, const char *name, size_t ndim, const size_t *shape) {
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
    info->count = 1;
    for (size_t d = 0; d < ndim; d++) {
        info->shape[d] = shape[d];
        info->count *= shape[d];
    }
    info->offset = store->num_floats;
    info->group = store->group;
    store->num_floats += info->count;
    return store->num_tensors++;
}

void reel_store_set_group(reel_store *store, size_t group) { store->group = group; }

size_t reel_store_top_group(const reel_store *store) {
    size_t top = 0;
    for (size_t i = 0; i < store->num_tensors; i++)
        if (store->tensors[i].group > top) top = store->tensors[i].group;
    return top;
}

void reel_store_mark_transfer(reel_store *store, size_t first) {
    for (size_t i = first; i < store->num_tensors; i++) store->tensors[i].transfer = 1;
}

void reel_store_allocate(reel_store *store) {
    store->data = reel_calloc(store->num_floats, sizeof(float));
    if (store->trainable) store->grad = reel_calloc(store->num_floats, sizeof(float));
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

void reel_store_free(reel_store *store) {
    free(store->tensors);
    free(store->data);
    free(store->grad);
    memset(store, 0, sizeof *store);
}
