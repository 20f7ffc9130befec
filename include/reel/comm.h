/* reel/comm.h: the few collectives reel uses, over one MPI communicator.
 *
 * Every MPI call goes through REEL_MPI_CHECK: reel sets MPI_ERRORS_RETURN on MPI_COMM_WORLD (main), so a
 * failed call returns here, and the check names the call, the source line and MPI's reason, says what a
 * user can do, and ends every rank with MPI_Abort (a failed collective leaves the others waiting). So
 * these functions return nothing. Counts are size_t and split into INT_MAX pieces, since MPI counts are
 * int. */
#ifndef REEL_COMM_H
#define REEL_COMM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

typedef struct reel_comm {
    MPI_Comm comm;
    int rank;
    int size;
} reel_comm;

#define REEL_MPI_CHECK(call)                                                                           \
    do {                                                                                               \
        int reel_mpi_status_ = (call);                                                                 \
        if (reel_mpi_status_ != MPI_SUCCESS) reel_mpi_fail(reel_mpi_status_, #call, __FILE__, __LINE__); \
    } while (0)
/* Reports a failed MPI call and aborts every rank. */
void reel_mpi_fail(int status, const char *call, const char *file, int line) __attribute__((noreturn));

void reel_comm_world(reel_comm *comm);
/* A communicator of the calling process alone (single-rank kernels and tests). */
void reel_comm_self(reel_comm *comm);

void reel_comm_sum_floats(const reel_comm *comm, float *values, size_t count);   /* in place */
void reel_comm_sum_doubles(const reel_comm *comm, double *values, size_t count); /* in place */
void reel_comm_max_int(const reel_comm *comm, int *value);
void reel_comm_bcast(const reel_comm *comm, void *data, size_t bytes, int root);
void reel_comm_barrier(const reel_comm *comm);

/* Runs fn on rank 0 of MPI_COMM_WORLD while the other ranks wait without spinning (polling a
 * non-blocking broadcast every 20 ms), and returns fn's status on every rank. For the commands that
 * do their work in one process (prep, synth, inspect) but may be started under mpirun. */
int reel_comm_run_on_rank0(int (*fn)(int argc, char **argv), int argc, char **argv);

#endif
