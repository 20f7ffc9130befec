#include "cli_common.h"

#include <mpi.h>

#include "reel/comm.h"
#include <stdio.h>

int reel_cli_rank(void) {
    int rank = 0;
    REEL_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    return rank;
}

int reel_cli_report(const reel_error *err, const char *hint) {
    if (reel_cli_rank() == 0) {
        fprintf(stderr, "reel: error: %s\n", err->message);
        if (hint) fprintf(stderr, "  hint: %s\n", hint);
    }
    return 1;
}
