#include "reel/comm.h"

#include "reel/check.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

void reel_mpi_fail(int status, const char *call, const char *file, int line) {
    char reason[MPI_MAX_ERROR_STRING] = "";
    int length = 0, rank = -1;
    MPI_Error_string(status, reason, &length);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank); /* unchecked: this is the failure path already */
    fprintf(stderr, "reel: error: rank %d: MPI call %s failed: %s\n"
            "  hint: a rank or its node may have died, or the network between the nodes failed; the other ranks' "
            "output and the scheduler's log tell which. The run continues from its newest checkpoint when "
            "started again.\n  (at %s:%d)\n", rank, call, reason, file, line);
    int skip_teardown = reel_run_exit_cleanups(); /* this rank's open files closed before MPI_Abort kills it */
    fflush(NULL);
    MPI_Abort(MPI_COMM_WORLD, 1);
    if (skip_teardown) _exit(1);
    exit(1);
}

void reel_comm_world(reel_comm *comm) {
    comm->comm = MPI_COMM_WORLD;
    REEL_MPI_CHECK(MPI_Comm_rank(comm->comm, &comm->rank));
    REEL_MPI_CHECK(MPI_Comm_size(comm->comm, &comm->size));
}

void reel_comm_self(reel_comm *comm) {
    comm->comm = MPI_COMM_SELF;
    comm->rank = 0;
    comm->size = 1;
}

void reel_comm_sum_floats(const reel_comm *comm, float *values, size_t count) {
    if (comm->size == 1) return;
    for (size_t done = 0; done < count;) {
        int piece = count - done > INT_MAX ? INT_MAX : (int)(count - done);
        REEL_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values + done, piece, MPI_FLOAT, MPI_SUM, comm->comm));
        done += (size_t)piece;
    }
}

void reel_comm_sum_doubles(const reel_comm *comm, double *values, size_t count) {
    if (comm->size == 1) return;
    for (size_t done = 0; done < count;) {
        int piece = count - done > INT_MAX ? INT_MAX : (int)(count - done);
        REEL_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values + done, piece, MPI_DOUBLE, MPI_SUM, comm->comm));
        done += (size_t)piece;
    }
}

void reel_comm_max_int(const reel_comm *comm, int *value) {
    if (comm->size == 1) return;
    REEL_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, value, 1, MPI_INT, MPI_MAX, comm->comm));
}

void reel_comm_bcast(const reel_comm *comm, void *data, size_t bytes, int root) {
    if (comm->size == 1) return;
    char *bytes_ptr = data;
    for (size_t done = 0; done < bytes;) {
        int piece = bytes - done > INT_MAX ? INT_MAX : (int)(bytes - done);
        REEL_MPI_CHECK(MPI_Bcast(bytes_ptr + done, piece, MPI_BYTE, root, comm->comm));
        done += (size_t)piece;
    }
}

void reel_comm_barrier(const reel_comm *comm) {
    if (comm->size > 1) REEL_MPI_CHECK(MPI_Barrier(comm->comm));
}

int reel_comm_run_on_rank0(int (*fn)(int argc, char **argv), int argc, char **argv) {
    int rank = 0, size = 1;
    REEL_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    REEL_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    int status = rank == 0 ? fn(argc, argv) : 0;
    if (size == 1) return status;
    /* A blocking MPI_Bcast busy-waits in Open MPI and would take a core from rank 0 on a small machine. */
    MPI_Request request;
    REEL_MPI_CHECK(MPI_Ibcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD, &request));
    for (;;) {
        int done = 0;
        REEL_MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
        if (done) break;
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return status;
}
