/* tests/bf16_part.h: the main() of a unit test whose bf16 checks are a CTest test of their own (registered
 * with reel_unit_test_part NAME_bf16 ... bf16). Run without arguments it runs the fp32 group; with the
 * argument "bf16" the bf16 group alone, which exits 77 (CTest: skipped, with the reason on stderr) on a CPU
 * without native bf16, so that such a machine shows those checks as not run rather than passed
 * (REEL_NO_BF16=1 forces that path). Include after <cmocka.h> and reel/gemm.h. */
#ifndef REEL_TESTS_BF16_PART_H
#define REEL_TESTS_BF16_PART_H

#include <stdio.h>
#include <string.h>

/* what: the checks that cannot run without bf16, for the skip message */
static int run_fp32_and_bf16_parts(int argc, char **argv, const char *name, const char *what,
                                   const struct CMUnitTest *fp32, size_t num_fp32, const struct CMUnitTest *bf16,
                                   size_t num_bf16) {
    char group[64];
    if (argc > 1 && strcmp(argv[1], "bf16") == 0) {
        if (!reel_bf16_supported()) {
            fprintf(stderr, "SKIPPED: this CPU (%s) has no native bf16 matrix products: %s cannot run here\n",
                    reel_cpu_isa_name(), what);
            return 77;
        }
        snprintf(group, sizeof group, "%s_bf16", name);
        return _cmocka_run_group_tests(group, bf16, num_bf16, NULL, NULL);
    }
    if (argc > 1) {
        fprintf(stderr, "usage: %s [bf16]\n", argv[0]);
        return 2;
    }
    return _cmocka_run_group_tests(name, fp32, num_fp32, NULL, NULL);
}

#define REEL_COUNT(array) (sizeof(array) / sizeof((array)[0]))

#endif
