/* mpi_fail: makes one MPI call fail on purpose (a broadcast from a root that does not exist), with the
 * error handler reel installs, so tests/faults.sh can check what every rank's user sees: the call, the
 * source line, MPI's reason, a hint, and an end of the whole job. */
#include <mpi.h>

#include "reel/comm.h"

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int size = 1, value = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    REEL_MPI_CHECK(MPI_Bcast(&value, 1, MPI_INT, size + 5, MPI_COMM_WORLD));
    MPI_Finalize();
    return 0;
}
