/* exchange_check: the gradient exchange (reel/exchange.h) against one MPI_Allreduce of the whole buffer,
 * run under mpirun by tests/exchange.sh. A small store of tensors in four groups, a gradient that
 * differs on every rank, and an embedding whose rows are touched sparsely or densely; every mode
 * (dense, sparse, auto) with and without buckets, the groups reported final from the top down as a
 * backward does. On 2 ranks the result must equal the reference bit for bit; on more, to float
 * rounding (1e-6 relative). A frozen tensor keeps its local gradient. Exits 1 on a mismatch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/comm.h"
#include "reel/exchange.h"
#include "reel/params.h"
#include "reel/rng.h"

static int failures = 0;

static void fill(reel_store *p, int rank, double touched_share, uint32_t round) {
    size_t embedding = reel_store_find(p, REEL_TENSOR_EMBEDDING);
    const reel_tensor_info *e = &p->tensors[embedding];
    for (size_t i = 0; i < p->num_floats; i++) {
        uint32_t w[4];
        reel_rng_block(w, 99, REEL_RNG_INIT, (uint32_t)rank, round, (uint32_t)i);
        p->grad[i] = (reel_rng_unit_float(w[0]) - 0.5f) * (float)(1 + i % 5);
        if (i >= e->offset && i < e->offset + e->count) {
            size_t row = (i - e->offset) / e->shape[1];
            uint32_t r[4];
            reel_rng_block(r, 7, REEL_RNG_INIT, (uint32_t)rank, round + 1000, (uint32_t)row);
            if (reel_rng_unit_float(r[0]) >= touched_share) p->grad[i] = 0.0f; /* this rank did not touch the row */
        }
    }
}

static void check(const char *what, const float *got, const float *want, size_t n, int ranks, int rank) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        int same = ranks == 2 ? memcmp(&got[i], &want[i], sizeof(float)) == 0
                              : fabsf(got[i] - want[i]) <= 1e-6f * fmaxf(1.0f, fabsf(want[i]));
        bad += !same;
    }
    if (bad && rank == 0) {
        fprintf(stderr, "FAIL: %s: %zu of %zu values differ from one all-reduce\n", what, bad, n);
        failures++;
    } else if (rank == 0) {
        printf("ok: %s: %s one all-reduce\n", what, ranks == 2 ? "bit-identical to" : "within 1e-6 of");
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    reel_comm comm;
    reel_comm_world(&comm);
    reel_store p;
    reel_store_init(&p, 1);
    reel_store_add(&p, REEL_TENSOR_EMBEDDING, 2, (size_t[]){200, 6});
    reel_store_set_group(&p, 1);
    reel_store_add(&p, "l1/w", 1, (size_t[]){40});
    reel_store_add(&p, "l1/b", 1, (size_t[]){8});
    reel_store_set_group(&p, 2);
    reel_store_add(&p, "l2/w", 1, (size_t[]){30});
    reel_store_set_group(&p, 3);
    reel_store_add(&p, "head/w", 2, (size_t[]){3, 4});
    reel_store_allocate(&p);
    float *want = malloc(p.num_floats * sizeof *want), *local = malloc(p.num_floats * sizeof *local);
    static const char *const mode_names[] = {"auto", "dense", "sparse"};
    static const double shares[] = {0.05, 0.9}; /* few rows touched (rows pay), most (the table pays) */
    uint32_t round = 0;
    for (int mode = 0; mode < 3; mode++)
        for (int bucketed = 0; bucketed < 2; bucketed++)
            for (int s = 0; s < 2; s++) {
                reel_exchange *ex = reel_exchange_create(&p, &comm, (reel_embedding_exchange)mode, bucketed ? 64 : 0);
                uint8_t frozen[5] = {0};
                reel_exchange_plan(ex, frozen);
                p.hooks = reel_exchange_hooks(ex); /* as the trainer does */
                fill(&p, comm.rank, shares[s], ++round);
                memcpy(want, p.grad, p.num_floats * sizeof *want);
                MPI_Allreduce(MPI_IN_PLACE, want, (int)p.num_floats, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
                reel_exchange_begin(ex, 1);
                for (size_t g = 4; g-- > 0;) {
                    reel_store_grad_ready(&p, g); /* what the backward reports, top group first */
                    reel_store_poll(&p);
                }
                reel_exchange_finish(ex);
                char what[160];
                const reel_exchange_stats *st = reel_exchange_get_stats(ex);
                snprintf(what, sizeof what, "%s, %s, %.0f%% of the rows touched (the embedding went as %s)",
                         mode_names[mode], bucketed ? "64-byte buckets during the backward" : "after the backward",
                         100 * shares[s], st->sparse_steps ? "rows" : "part of a dense all-reduce");
                check(what, p.grad, want, p.num_floats, comm.size, comm.rank);
                /* auto picks rows exactly when they move fewer bytes */
                if (mode == REEL_EMBEDDING_AUTO && comm.size > 1 && (st->sparse_steps == 1) != (s == 0) && comm.rank == 0) {
                    fprintf(stderr, "FAIL: auto chose %s with %.0f%% of the rows touched\n",
                            st->sparse_steps ? "rows" : "the table", 100 * shares[s]);
                    failures++;
                }
                if (bucketed && comm.size > 1 && st->early_buckets != st->buckets && comm.rank == 0) {
                    fprintf(stderr, "FAIL: only %llu of %llu buckets started during the backward\n",
                            (unsigned long long)st->early_buckets, (unsigned long long)st->buckets);
                    failures++;
                }
                reel_exchange_free(ex);
            }
    /* a frozen layer (l1) is not exchanged: its gradient stays this rank's own */
    reel_exchange *ex = reel_exchange_create(&p, &comm, REEL_EMBEDDING_AUTO, 64);
    uint8_t frozen[5] = {0, 1, 1, 0, 0};
    reel_exchange_plan(ex, frozen);
    p.hooks = reel_exchange_hooks(ex);
    fill(&p, comm.rank, 0.05, ++round);
    memcpy(local, p.grad, p.num_floats * sizeof *local);
    memcpy(want, p.grad, p.num_floats * sizeof *want);
    MPI_Allreduce(MPI_IN_PLACE, want, (int)p.num_floats, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    size_t l1 = p.tensors[1].offset, l1_count = p.tensors[1].count + p.tensors[2].count;
    memcpy(want + l1, local + l1, l1_count * sizeof *want);
    reel_exchange_begin(ex, 1);
    for (size_t g = 4; g-- > 0;) reel_store_grad_ready(&p, g);
    reel_exchange_finish(ex);
    check("a frozen layer keeps its own gradient, the rest is summed", p.grad, want, p.num_floats, comm.size, comm.rank);
    reel_exchange_free(ex);
    free(want);
    free(local);
    reel_store_free(&p);
    int status = failures;
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return status ? 1 : 0;
}
