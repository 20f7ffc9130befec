/* bench_exchange: what exchanging an embedding gradient costs per step, dense and sparse, on the ranks it
 * runs on (mpirun -np 2 build/bench_exchange ...).
 *   dense    one MPI_Allreduce of the whole (V, E) gradient, as reel's exchange does for the table when
 *            that moves fewer bytes than its rows ([train] exchange_embedding = dense, or auto's choice)
 *   sparse   each rank sends only the rows its share of the batch touched: an MPI_Allgather of the row
 *            counts, then an MPI_Allgatherv of the row ids and one of the rows; every rank then adds the
 *            rows up (a row touched by several ranks is summed)
 *   whole    one MPI_Allreduce of `--params` floats: the whole gradient of the model
 * usage: bench_exchange [--vocab V] [--dim E] [--rows R] [--params N] [--repeat N]
 * --rows: distinct rows one rank touches per step (the course LM on IMDb, window 50, 100 windows a rank:
 * about 2,300 of 8,003; count them with bench/lm.sh's data). Prints the best of --repeat times. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double best_of(double *times, int n) {
    double best = times[0];
    for (int i = 1; i < n; i++)
        if (times[i] < best) best = times[i];
    return best;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    size_t V = 8003, E = 500, R = 2300, P = 14026003;
    int repeat = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        size_t v = strtoull(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--vocab")) V = v;
        else if (!strcmp(argv[i], "--dim")) E = v;
        else if (!strcmp(argv[i], "--rows")) R = v;
        else if (!strcmp(argv[i], "--params")) P = v;
        else if (!strcmp(argv[i], "--repeat")) repeat = (int)v;
    }
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    float *dense = calloc(V * E, sizeof(float)), *whole = calloc(P, sizeof(float));
    float *rows = malloc(R * E * sizeof(float)), *all_rows = malloc((size_t)size * R * E * sizeof(float));
    uint32_t *ids = malloc(R * sizeof *ids), *all_ids = malloc((size_t)size * R * sizeof *all_ids);
    for (size_t r = 0; r < R; r++) ids[r] = (uint32_t)((r * 7 + (size_t)rank * 3) % V);
    for (size_t i = 0; i < R * E; i++) rows[i] = 0.001f * (float)(i % 13);
    int *counts = malloc((size_t)size * sizeof *counts), *displs = malloc((size_t)size * sizeof *displs);
    int *row_counts = malloc((size_t)size * sizeof *row_counts), *row_displs = malloc((size_t)size * sizeof *row_displs);
    double t_dense[64], t_sparse[64], t_whole[64];
    if (repeat < 1) repeat = 1;
    if (repeat > 64) repeat = 64;
    for (int k = 0; k < repeat; k++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double start = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, dense, (int)(V * E), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        t_dense[k] = MPI_Wtime() - start;

        MPI_Barrier(MPI_COMM_WORLD);
        start = MPI_Wtime();
        int mine = (int)R;
        MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
        int total = 0;
        for (int r = 0; r < size; r++) {
            displs[r] = total;
            row_counts[r] = counts[r] * (int)E;
            row_displs[r] = total * (int)E;
            total += counts[r];
        }
        MPI_Allgatherv(ids, mine, MPI_UINT32_T, all_ids, counts, displs, MPI_UINT32_T, MPI_COMM_WORLD);
        MPI_Allgatherv(rows, mine * (int)E, MPI_FLOAT, all_rows, row_counts, row_displs, MPI_FLOAT, MPI_COMM_WORLD);
        memset(dense, 0, V * E * sizeof(float)); /* the summed rows land in a dense gradient, as the optimizer wants */
        for (int i = 0; i < total; i++) {
            float *target = dense + (size_t)all_ids[i] * E, *source = all_rows + (size_t)i * E;
            for (size_t e = 0; e < E; e++) target[e] += source[e];
        }
        t_sparse[k] = MPI_Wtime() - start;

        MPI_Barrier(MPI_COMM_WORLD);
        start = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, whole, (int)P, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        t_whole[k] = MPI_Wtime() - start;
    }
    if (rank == 0)
        printf("%d ranks; embedding %zu x %zu (%.1f MB): dense allreduce %.2f ms; sparse, %zu rows a rank (%.1f MB "
               "a rank): %.2f ms; the whole gradient, %zu floats (%.1f MB): %.2f ms\n",
               size, V, E, (double)V * E * 4 / 1e6, 1e3 * best_of(t_dense, repeat), R, (double)R * E * 4 / 1e6,
               1e3 * best_of(t_sparse, repeat), P, (double)P * 4 / 1e6, 1e3 * best_of(t_whole, repeat));
    MPI_Finalize();
    return 0;
}
