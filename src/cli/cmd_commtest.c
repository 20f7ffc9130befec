/* reel commtest: a communication smoke test to run before a long job. Every rank reports its host; then
 * all-reduces of growing sizes (the operation training relies on) are checked for the right sums and
 * timed. A job whose network or MPI setup is broken fails here in seconds, with a message, instead of
 * hanging an hour into training. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"
#include "commands.h"
#include "reel/comm.h"
#include "reel/util.h"

static void usage(FILE *out) {
    fputs("usage: mpirun [-np N] reel commtest [--max-size BYTES] [--repeat N]\n"
          "\n"
          "Checks and times the gradient exchange before a long job: every rank reports its host, then\n"
          "MPI_Allreduce sums float buffers of 4 KiB, 64 KiB, 1 MiB, 16 MiB and 64 MiB (up to --max-size) --repeat\n"
          "times each. Every element of every result is checked against the exact sum. Printed per size: the\n"
          "median and best time, and the bus bandwidth of a ring all-reduce, 2 (p-1)/p x bytes / time, which\n"
          "is comparable across rank counts. Exit status: 0 when every sum is right, 1 otherwise (or when MPI\n"
          "fails), 2 on a usage error.\n"
          "\n"
          "options:\n"
          "  --max-size BYTES   largest buffer (default 67108864)\n"
          "  --repeat N         timed repetitions per size, after one untimed (default 10)\n"
          "  -h, --help         this text\n",
          out);
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int reel_cmd_commtest(int argc, char **argv) {
    static const struct option options[] = {{"max-size", required_argument, NULL, 's'},
                                            {"repeat", required_argument, NULL, 'r'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    size_t max_size = (size_t)64 << 20, repeat = 10;
    reel_comm comm;
    reel_comm_world(&comm);
    reel_error err = {{0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
        switch (c) {
        case 's':
        case 'r':
            if (reel_cli_parse_size(c == 's' ? "--max-size" : "--repeat", optarg, 1, SIZE_MAX,
                                    c == 's' ? &max_size : &repeat, &err) != 0)
                return reel_cli_report(&err, NULL) + 1;
            break;
        case 'h': return reel_cli_usage(usage, 0);
        default: return reel_cli_usage(usage, 2);
        }
    }
    /* who is where */
    char host[MPI_MAX_PROCESSOR_NAME] = "";
    int length = 0;
    REEL_MPI_CHECK(MPI_Get_processor_name(host, &length));
    char *hosts = comm.rank == 0 ? reel_malloc((size_t)comm.size * MPI_MAX_PROCESSOR_NAME) : NULL;
    REEL_MPI_CHECK(MPI_Gather(host, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, hosts, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0, comm.comm));
    if (comm.rank == 0) {
        size_t distinct = 0;
        for (int r = 0; r < comm.size; r++) {
            int seen = 0;
            for (int q = 0; q < r; q++) seen |= strcmp(hosts + (size_t)q * MPI_MAX_PROCESSOR_NAME, hosts + (size_t)r * MPI_MAX_PROCESSOR_NAME) == 0;
            distinct += !seen;
        }
        printf("reel commtest: %d rank(s) on %zu host(s):", comm.size, distinct);
        for (int r = 0; r < comm.size; r++) printf(" %d=%s", r, hosts + (size_t)r * MPI_MAX_PROCESSOR_NAME);
        printf("\n%10s %12s %12s %14s  %s\n", "bytes", "median ms", "best ms", "bus GB/s", "sums");
        fflush(stdout);
    }
    free(hosts);

    static const size_t sizes[] = {4096, 65536, 1 << 20, 16 << 20, 64 << 20};
    int all_right = 1;
    double *times = reel_malloc(repeat * sizeof *times);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0] && sizes[s] <= max_size; s++) {
        size_t n = sizes[s] / sizeof(float);
        float *buffer = reel_malloc(n * sizeof *buffer);
        /* element i of rank r is (r + 1) * (1 + i % 7): the sum is exact in float for any rank count used */
        double ranks_sum = (double)comm.size * (comm.size + 1) / 2.0;
        int right = 1;
        for (size_t k = 0; k <= repeat; k++) {
            for (size_t i = 0; i < n; i++) buffer[i] = (float)((comm.rank + 1) * (1 + (int)(i % 7)));
            REEL_MPI_CHECK(MPI_Barrier(comm.comm));
            double start = reel_now_seconds();
            reel_comm_sum_floats(&comm, buffer, n);
            double elapsed = reel_now_seconds() - start;
            /* the slowest rank's time is the collective's */
            REEL_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &elapsed, 1, MPI_DOUBLE, MPI_MAX, comm.comm));
            if (k > 0) times[k - 1] = elapsed;
            for (size_t i = 0; i < n && right; i++) right = buffer[i] == (float)(ranks_sum * (double)(1 + (int)(i % 7)));
        }
        int everywhere = right;
        REEL_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &everywhere, 1, MPI_INT, MPI_MIN, comm.comm));
        all_right &= everywhere;
        qsort(times, repeat, sizeof *times, by_value);
        if (comm.rank == 0) {
            double median = times[repeat / 2];
            double bus = comm.size > 1 ? 2.0 * (comm.size - 1) / comm.size * (double)sizes[s] / median / 1e9 : 0;
            printf("%10zu %12.3f %12.3f %14.2f  %s\n", sizes[s], 1e3 * median, 1e3 * times[0], bus,
                   everywhere ? "right" : "WRONG");
            fflush(stdout);
        }
        free(buffer);
    }
    free(times);
    if (comm.rank == 0) {
        if (all_right) printf("every sum is right\n");
        else fprintf(stderr, "reel: error: an all-reduce returned a wrong sum: the MPI installation or the network "
                     "corrupts data; do not train on these nodes\n");
    }
    return all_right ? 0 : 1;
}
