/* Small helpers shared by the subcommands: error reporting, the parsers of option values and the tail of
 * every getopt loop, so that each command accepts and rejects values the same way and says so in the same
 * words. */
#ifndef REEL_CLI_COMMON_H
#define REEL_CLI_COMMON_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "reel/check.h"

/* Rank of this process in MPI_COMM_WORLD. */
int reel_cli_rank(void);
/* Prints err on rank 0 only (every rank reaches the same deterministic error, so one copy is enough)
 * and returns exit status 1. */
int reel_cli_report(const reel_error *err, const char *hint);

/* Parses text, the value given to option (named as typed, e.g. "--batch"), as a decimal integer in
 * [min, max]: digits only, so an empty value, a sign, a space, trailing garbage and a value past max (or
 * past 2^64 - 1) fail. Returns 0, or -1 with err naming the option, the value and what was expected, e.g.
 * "--batch '0': expected a positive integer". max = UINT64_MAX means no upper bound of the option's own. */
int reel_cli_parse_u64(const char *option, const char *text, uint64_t min, uint64_t max, uint64_t *value,
                       reel_error *err);
/* The same for a size_t target (max at most SIZE_MAX). */
int reel_cli_parse_size(const char *option, const char *text, size_t min, size_t max, size_t *value,
                        reel_error *err);
/* Parses text as a finite decimal number in [lo, hi] (hi_open: [lo, hi)); the error reads
 * "--top-p '1.5': expected a number in [1e-09, 1]". */
int reel_cli_parse_double(const char *option, const char *text, double lo, double hi, int hi_open, double *value,
                          reel_error *err);
/* Checks a --split value: test, valid or train (the labelled splits a checkpoint can be scored on). */
int reel_cli_check_split(const char *split, reel_error *err);

/* "--NAME" of the entry of a getopt_long table whose val is c, for the parsers' messages, written into
 * name (size bytes); "--?" if no entry has it. Returns name. */
const char *reel_cli_option_name(const struct option *options, int c, char *name, size_t size);

/* The end of a getopt loop and the operand check of the MPI-aware commands: rank 0 prints the usage text
 * (to standard output for status 0, i.e. --help, otherwise to standard error); returns status. */
int reel_cli_usage(void (*usage)(FILE *), int status);
/* The end of the getopt loop of the commands that parse with ":h" and opterr = 0 (prep, synth): reports
 * c, getopt's ':' (a missing value) or '?' (an unknown option), as "reel COMMAND: error: ..." on standard
 * error and returns the usage status 2. */
int reel_cli_getopt_error(const char *command, int c, char **argv);

#endif
