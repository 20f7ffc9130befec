/* Small helpers shared by the subcommands. */
#ifndef REEL_CLI_COMMON_H
#define REEL_CLI_COMMON_H

#include "reel/check.h"

/* Rank of this process in MPI_COMM_WORLD. */
int reel_cli_rank(void);
/* Prints err on rank 0 only (every rank reaches the same deterministic error, so one copy is enough)
 * and returns exit status 1. */
int reel_cli_report(const reel_error *err, const char *hint);

#endif
