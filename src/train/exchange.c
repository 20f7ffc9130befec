/* Summing the gradient over the ranks (reel/exchange.h): dense runs of trainable tensors, the embedding's
 * touched rows when that is cheaper, and buckets all-reduced while the backward pass goes on. */
#include "reel/exchange.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "reel/check.h"
#include "reel/util.h"

/* A contiguous part of the gradient exchanged in one all-reduce: its tensors belong to groups
 * [min_group, ...], and it is final once the backward has finished min_group (groups finish from the top
 * of the model down). */
typedef struct span {
    size_t offset, count;
    size_t min_group;
    int started;
    MPI_Request request;
} span;

struct reel_exchange {
    const reel_store *params;
    reel_comm comm;
    reel_embedding_exchange mode;
    size_t bucket_bytes;
    size_t embedding;        /* the tensor exchanged as rows, or SIZE_MAX */
    size_t rows, width;      /* its shape */
    int embedding_trains;
    span *spans;             /* in the order they become final; the embedding apart */
    size_t num_spans;
    span *whole;             /* without overlap, when the embedding goes dense: the same runs with the embedding
                                in its place, so that path is the one all-reduce it always was */
    size_t num_whole;
    int armed;               /* a step is under way with overlap */
    /* rows: scratch */
    uint32_t *ids, *all_ids;
    float *packed, *all_rows;
    int *counts, *displs, *row_counts, *row_displs;
    size_t all_capacity;
    reel_exchange_stats stats;
};

reel_exchange *reel_exchange_create(const reel_store *params, const reel_comm *comm, reel_embedding_exchange mode,
                                    size_t bucket_bytes) {
    reel_exchange *ex = reel_calloc(1, sizeof *ex);
    ex->params = params;
    ex->comm = *comm;
    ex->mode = mode;
    ex->bucket_bytes = bucket_bytes;
    ex->embedding = reel_store_find(params, REEL_TENSOR_EMBEDDING);
    if (ex->embedding != (size_t)-1 && params->tensors[ex->embedding].ndim == 2) {
        ex->rows = params->tensors[ex->embedding].shape[0];
        ex->width = params->tensors[ex->embedding].shape[1];
    } else {
        ex->embedding = SIZE_MAX;
    }
    size_t p = (size_t)comm->size;
    ex->counts = reel_calloc(p, sizeof *ex->counts);
    ex->displs = reel_calloc(p, sizeof *ex->displs);
    ex->row_counts = reel_calloc(p, sizeof *ex->row_counts);
    ex->row_displs = reel_calloc(p, sizeof *ex->row_displs);
    if (ex->embedding != SIZE_MAX) {
        ex->ids = reel_malloc(ex->rows * sizeof *ex->ids);
        /* as large as the embedding: an error names the keys that make it so */
        ex->packed = reel_calloc_for(reel_size_mul(ex->rows, ex->width), sizeof *ex->packed,
                                     "the packed rows of the embedding exchange", params->tensors[ex->embedding].sized_by);
    }
    return ex;
}

void reel_exchange_free(reel_exchange *ex) {
    if (!ex) return;
    free(ex->spans);
    free(ex->whole);
    free(ex->ids);
    free(ex->all_ids);
    free(ex->packed);
    free(ex->all_rows);
    free(ex->counts);
    free(ex->displs);
    free(ex->row_counts);
    free(ex->row_displs);
    free(ex);
}

/* Whether the embedding goes its own way (rows or a dense all-reduce of its own, decided each step). */
static int embedding_apart(const reel_exchange *ex) {
    return ex->embedding != SIZE_MAX && ex->embedding_trains && ex->mode != REEL_EMBEDDING_DENSE && ex->comm.size > 1;
}

/* From the last tensor to the first (the order the backward finishes them), runs of adjacent trainable
 * tensors; with buckets, a run is closed once it holds bucket_bytes. The embedding is left out when
 * keep_embedding is 0. Returns the number of runs written to spans. */
static size_t make_spans(const reel_exchange *ex, const uint8_t *frozen, int keep_embedding, size_t bucket_bytes,
                         span *spans) {
    const reel_store *p = ex->params;
    size_t count = 0;
    span *current = NULL;
    for (size_t t = p->num_tensors; t-- > 0;) {
        const reel_tensor_info *info = &p->tensors[t];
        if (frozen[t] || (t == ex->embedding && !keep_embedding) || info->count == 0) {
            current = NULL;
            continue;
        }
        int adjacent = current && info->offset + info->count == current->offset;
        int full = current && bucket_bytes && current->count * sizeof(float) >= bucket_bytes;
        if (!adjacent || full) {
            current = &spans[count++];
            *current = (span){info->offset, 0, info->group, 0, MPI_REQUEST_NULL};
        }
        current->offset = info->offset;
        current->count += info->count;
        if (info->group < current->min_group) current->min_group = info->group;
    }
    return count;
}

void reel_exchange_plan(reel_exchange *ex, const uint8_t *frozen) {
    size_t n = ex->params->num_tensors + 1;
    ex->embedding_trains = ex->embedding != SIZE_MAX && !frozen[ex->embedding];
    free(ex->spans);
    free(ex->whole);
    ex->spans = reel_malloc(n * sizeof *ex->spans);
    ex->whole = reel_malloc(n * sizeof *ex->whole);
    ex->num_spans = make_spans(ex, frozen, !embedding_apart(ex), ex->bucket_bytes, ex->spans);
    ex->num_whole = make_spans(ex, frozen, 1, 0, ex->whole);
}

static void start_span(reel_exchange *ex, span *s) {
    REEL_CHECK(s->count <= INT_MAX, "use [train] bucket_mb to cut the gradient into smaller buckets",
               "a bucket of %zu floats is more than one MPI call takes", s->count);
    REEL_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, ex->params->grad + s->offset, (int)s->count, MPI_FLOAT, MPI_SUM,
                                  ex->comm.comm, &s->request));
    s->started = 1;
    ex->stats.bytes_dense += (double)s->count * sizeof(float);
    ex->stats.buckets++;
}

void reel_exchange_begin(reel_exchange *ex, int overlap) {
    for (size_t i = 0; i < ex->num_spans; i++) ex->spans[i].started = 0;
    ex->armed = overlap && ex->bucket_bytes > 0 && ex->comm.size > 1;
}

void reel_exchange_ready(reel_exchange *ex, size_t group) {
    if (!ex->armed) return;
    for (size_t i = 0; i < ex->num_spans; i++)
        if (!ex->spans[i].started && ex->spans[i].min_group >= group) {
            start_span(ex, &ex->spans[i]);
            ex->stats.early_buckets++;
        }
    reel_exchange_progress(ex);
}

void reel_exchange_progress(reel_exchange *ex) {
    /* Open MPI moves a non-blocking collective only inside MPI calls: testing the requests is that call */
    for (size_t i = 0; i < ex->num_spans; i++)
        if (ex->spans[i].started && ex->spans[i].request != MPI_REQUEST_NULL) {
            int done = 0;
            REEL_MPI_CHECK(MPI_Test(&ex->spans[i].request, &done, MPI_STATUS_IGNORE));
        }
}

static void ready_hook(void *ctx, size_t group) {
    reel_exchange_ready(ctx, group); /* itself nothing unless armed */
}

/* the layers poll in every backward, also those of steps without overlap: progress only while armed */
static void poll_hook(void *ctx) {
    reel_exchange *ex = ctx;
    if (ex->armed) reel_exchange_progress(ex);
}

reel_grad_hooks reel_exchange_hooks(reel_exchange *ex) {
    return (reel_grad_hooks){ready_hook, poll_hook, ex};
}

/* Whether the embedding goes as rows this step: every rank counts its non-zero rows (ids in ex->ids) and
 * learns everyone's count; the choice depends on the counts alone, so it is the same on every rank. */
static int embedding_as_rows(reel_exchange *ex, int *mine, size_t *total) {
    size_t V = ex->rows, D = ex->width, p = (size_t)ex->comm.size;
    const float *grad = ex->params->grad + ex->params->tensors[ex->embedding].offset;
    *mine = 0;
    for (size_t v = 0; v < V; v++) {
        const float *row = grad + v * D;
        size_t e = 0;
        while (e < D && row[e] == 0.0f) e++;
        if (e < D) ex->ids[(*mine)++] = (uint32_t)v;
    }
    REEL_MPI_CHECK(MPI_Allgather(mine, 1, MPI_INT, ex->counts, 1, MPI_INT, ex->comm.comm));
    *total = 0;
    for (size_t r = 0; r < p; r++) *total += (size_t)ex->counts[r];
    /* bytes per rank: a ring all-gather of the rows, (p-1)/p x total x (D+1) x 4; a ring all-reduce of the
     * table, 2 (p-1)/p x V x D x 4 */
    return ex->mode == REEL_EMBEDDING_SPARSE || (double)*total * (double)(D + 1) < 2.0 * (double)V * (double)D;
}

/* The embedding as rows: every rank's non-zero rows gathered and summed in rank order. */
static void exchange_rows(reel_exchange *ex, int mine, size_t total) {
    size_t V = ex->rows, D = ex->width, p = (size_t)ex->comm.size;
    float *grad = ex->params->grad + ex->params->tensors[ex->embedding].offset;
    if (total > ex->all_capacity) {
        ex->all_capacity = total;
        ex->all_ids = reel_realloc(ex->all_ids, total * sizeof *ex->all_ids);
        ex->all_rows = reel_realloc(ex->all_rows, total * D * sizeof *ex->all_rows);
    }
    for (int i = 0; i < mine; i++) memcpy(ex->packed + (size_t)i * D, grad + (size_t)ex->ids[i] * D, D * sizeof(float));
    size_t at = 0;
    for (size_t r = 0; r < p; r++) {
        ex->displs[r] = (int)at;
        ex->row_counts[r] = ex->counts[r] * (int)D;
        ex->row_displs[r] = (int)(at * D);
        at += (size_t)ex->counts[r];
    }
    REEL_CHECK(total * D <= INT_MAX, "exchange the embedding dense ([train] exchange_embedding = dense)",
               "%zu rows of %zu floats are more than one MPI call takes", total, D);
    REEL_MPI_CHECK(MPI_Allgatherv(ex->ids, mine, MPI_UINT32_T, ex->all_ids, ex->counts, ex->displs, MPI_UINT32_T,
                                  ex->comm.comm));
    REEL_MPI_CHECK(MPI_Allgatherv(ex->packed, mine * (int)D, MPI_FLOAT, ex->all_rows, ex->row_counts, ex->row_displs,
                                  MPI_FLOAT, ex->comm.comm));
    /* the sum in rank order: the same on every rank */
    memset(grad, 0, V * D * sizeof(float));
    for (size_t i = 0; i < total; i++) {
        float *target = grad + (size_t)ex->all_ids[i] * D;
        const float *row = ex->all_rows + i * D;
        for (size_t e = 0; e < D; e++) target[e] += row[e];
    }
    ex->stats.sparse_steps++;
    ex->stats.bytes_sparse += (double)(total - (size_t)mine) * (double)(D * sizeof(float) + sizeof(uint32_t));
}

static void all_reduce_spans(reel_exchange *ex, span *spans, size_t count) {
    for (size_t i = 0; i < count; i++) {
        reel_comm_sum_floats(&ex->comm, ex->params->grad + spans[i].offset, spans[i].count);
        ex->stats.bytes_dense += (double)spans[i].count * sizeof(float);
    }
}

void reel_exchange_finish(reel_exchange *ex) {
    double start = reel_now_seconds();
    ex->stats.steps++;
    if (ex->comm.size > 1) {
        int mine = 0, rows = 0;
        size_t total = 0;
        if (embedding_apart(ex)) rows = embedding_as_rows(ex, &mine, &total);
        if (!ex->armed) {
            /* no overlap: the whole gradient in as few all-reduces as the frozen layers allow, the embedding
             * with the rest unless it goes as rows */
            if (embedding_apart(ex) && rows) {
                all_reduce_spans(ex, ex->spans, ex->num_spans);
                exchange_rows(ex, mine, total);
            } else {
                all_reduce_spans(ex, ex->whole, ex->num_whole);
            }
        } else {
            for (size_t i = 0; i < ex->num_spans; i++)
                if (!ex->spans[i].started) start_span(ex, &ex->spans[i]);
            if (embedding_apart(ex)) {
                if (rows) exchange_rows(ex, mine, total);
                else {
                    size_t offset = ex->params->tensors[ex->embedding].offset, count = ex->rows * ex->width;
                    span table = {offset, count, 0, 0, MPI_REQUEST_NULL};
                    all_reduce_spans(ex, &table, 1);
                }
            }
            for (size_t i = 0; i < ex->num_spans; i++)
                if (ex->spans[i].request != MPI_REQUEST_NULL)
                    REEL_MPI_CHECK(MPI_Wait(&ex->spans[i].request, MPI_STATUS_IGNORE));
        }
    }
    ex->armed = 0;
    ex->stats.wait_seconds += reel_now_seconds() - start;
}

const reel_exchange_stats *reel_exchange_get_stats(const reel_exchange *ex) { return &ex->stats; }
