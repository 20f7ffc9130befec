#include "cli_common.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "reel/comm.h"

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

int reel_cli_parse_u64(const char *option, const char *text, uint64_t min, uint64_t max, uint64_t *value,
                       reel_error *err) {
    /* strtoull alone would take " 12", "+12" and, worse, "-1" or " -1" as 2^64 - 1: only digits are
     * accepted, so that a typo never becomes a huge count. */
    int digits = text[0] >= '0' && text[0] <= '9';
    char *end = (char *)text;
    errno = 0;
    unsigned long long v = digits ? strtoull(text, &end, 10) : 0;
    if (digits && !*end && errno == 0 && v >= min && v <= max) {
        *value = (uint64_t)v;
        return 0;
    }
    if (max != UINT64_MAX)
        return reel_fail(err, "%s '%s': expected an integer from %" PRIu64 " to %" PRIu64, option, text, min, max);
    if (digits && !*end && errno == ERANGE)
        return reel_fail(err, "%s '%s': too large, expected at most %" PRIu64, option, text, UINT64_MAX);
    if (min == 0) return reel_fail(err, "%s '%s': expected a non-negative integer", option, text);
    if (min == 1) return reel_fail(err, "%s '%s': expected a positive integer", option, text);
    return reel_fail(err, "%s '%s': expected an integer >= %" PRIu64, option, text, min);
}

int reel_cli_parse_size(const char *option, const char *text, size_t min, size_t max, size_t *value,
                        reel_error *err) {
    uint64_t v = 0;
    /* max = SIZE_MAX is "no bound of the option's own": the message then reads as for any count */
    if (reel_cli_parse_u64(option, text, min, max == SIZE_MAX ? UINT64_MAX : (uint64_t)max, &v, err) != 0) return -1;
    if (v > SIZE_MAX) /* only where size_t is narrower than 64 bits */
        return reel_fail(err, "%s '%s': too large, expected at most %zu", option, text, (size_t)SIZE_MAX);
    *value = (size_t)v;
    return 0;
}

int reel_cli_parse_double(const char *option, const char *text, double lo, double hi, int hi_open, double *value,
                          reel_error *err) {
    char *end = (char *)text;
    errno = 0;
    /* strtod skips leading spaces: refused like the integers' */
    double v = text[0] && !strchr(" \t\n\v\f\r", text[0]) ? strtod(text, &end) : NAN;
    /* errno: an underflow to 0 or an overflow to infinity is not the number typed */
    if (end != text && !*end && errno == 0 && v >= lo && (hi_open ? v < hi : v <= hi)) {
        *value = v;
        return 0;
    }
    return reel_fail(err, "%s '%s': expected a number in [%g, %g%c", option, text, lo, hi, hi_open ? ')' : ']');
}

int reel_cli_check_split(const char *split, reel_error *err) {
    if (strcmp(split, "test") == 0 || strcmp(split, "valid") == 0 || strcmp(split, "train") == 0) return 0;
    return reel_fail(err, "--split '%s': expected test, valid or train", split);
}

const char *reel_cli_option_name(const struct option *options, int c, char *name, size_t size) {
    const char *found = "?";
    for (const struct option *opt = options; opt->name; opt++)
        if (opt->val == c) found = opt->name;
    snprintf(name, size, "--%s", found);
    return name;
}

int reel_cli_usage(void (*usage)(FILE *), int status) {
    if (reel_cli_rank() == 0) usage(status == 0 ? stdout : stderr);
    return status;
}

int reel_cli_getopt_error(const char *command, int c, char **argv) {
    /* getopt_long has already moved optind past the offending word */
    if (c == ':') fprintf(stderr, "reel %s: error: option '%s' needs a value\n", command, argv[optind - 1]);
    else fprintf(stderr, "reel %s: error: unknown option '%s' (see reel %s --help)\n", command, argv[optind - 1], command);
    return 2;
}
