/* The option kit of the command-line front ends (src/cli/cli_common.c): which values each parser takes
 * and the exact message of each refusal, since the shell tests and users read those messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <mpi.h>
#include <unistd.h>

#include "cli_common.h"

/* Parses text as --opt in [min, max] and expects it refused with exactly message. */
static void refuse_u64(const char *text, uint64_t min, uint64_t max, const char *message) {
    reel_error err = {{0}};
    uint64_t value = 12345;
    assert_int_equal(reel_cli_parse_u64("--opt", text, min, max, &value, &err), -1);
    assert_string_equal(err.message, message);
    assert_int_equal(value, 12345); /* a refused value leaves the target as it was */
}

static uint64_t take_u64(const char *text, uint64_t min, uint64_t max) {
    reel_error err = {{0}};
    uint64_t value = 12345;
    assert_int_equal(reel_cli_parse_u64("--opt", text, min, max, &value, &err), 0);
    assert_string_equal(err.message, "");
    return value;
}

static void test_u64_good(void **state) {
    (void)state;
    assert_int_equal(take_u64("0", 0, UINT64_MAX), 0);
    assert_int_equal(take_u64("42", 0, UINT64_MAX), 42);
    assert_int_equal(take_u64("007", 1, UINT64_MAX), 7);
    assert_int_equal(take_u64("1", 1, 2), 1);
    assert_int_equal(take_u64("2", 1, 2), 2);
    assert_int_equal(take_u64("65535", 0, 65535), 65535);
    assert_true(take_u64("18446744073709551615", 0, UINT64_MAX) == UINT64_MAX);
}

static void test_u64_refused(void **state) {
    (void)state;
    refuse_u64("", 0, UINT64_MAX, "--opt '': expected a non-negative integer");
    refuse_u64("12x", 0, UINT64_MAX, "--opt '12x': expected a non-negative integer");
    refuse_u64("x", 1, UINT64_MAX, "--opt 'x': expected a positive integer");
    refuse_u64("0", 1, UINT64_MAX, "--opt '0': expected a positive integer");
    refuse_u64("3", 4, UINT64_MAX, "--opt '3': expected an integer >= 4");
    /* strtoull would read these as 2^64 - 1 or 5: only digits are taken */
    refuse_u64("-1", 0, UINT64_MAX, "--opt '-1': expected a non-negative integer");
    refuse_u64(" -1", 0, UINT64_MAX, "--opt ' -1': expected a non-negative integer");
    refuse_u64(" 5", 0, UINT64_MAX, "--opt ' 5': expected a non-negative integer");
    refuse_u64("+5", 0, UINT64_MAX, "--opt '+5': expected a non-negative integer");
    refuse_u64("5 ", 0, UINT64_MAX, "--opt '5 ': expected a non-negative integer");
    refuse_u64("1.5", 1, UINT64_MAX, "--opt '1.5': expected a positive integer");
    /* overflow: 2^64 is one past the largest */
    refuse_u64("18446744073709551616", 0, UINT64_MAX,
               "--opt '18446744073709551616': too large, expected at most 18446744073709551615");
    refuse_u64("99999999999999999999999", 1, UINT64_MAX,
               "--opt '99999999999999999999999': too large, expected at most 18446744073709551615");
    /* a bounded option names both ends, whatever was wrong */
    refuse_u64("3", 1, 2, "--opt '3': expected an integer from 1 to 2");
    refuse_u64("0", 1, 2, "--opt '0': expected an integer from 1 to 2");
    refuse_u64("two", 1, 2, "--opt 'two': expected an integer from 1 to 2");
    refuse_u64("65536", 0, 65535, "--opt '65536': expected an integer from 0 to 65535");
    refuse_u64("99999999999999999999999", 0, 65535, "--opt '99999999999999999999999': expected an integer from 0 to 65535");
}

static void test_size(void **state) {
    (void)state;
    reel_error err = {{0}};
    size_t value = 0;
    assert_int_equal(reel_cli_parse_size("--batch", "256", 1, SIZE_MAX, &value, &err), 0);
    assert_int_equal(value, 256);
    assert_int_equal(reel_cli_parse_size("--batch", "0", 1, SIZE_MAX, &value, &err), -1);
    assert_string_equal(err.message, "--batch '0': expected a positive integer");
    assert_int_equal(value, 256);
    assert_int_equal(reel_cli_parse_size("--port", "70000", 0, 65535, &value, &err), -1);
    assert_string_equal(err.message, "--port '70000': expected an integer from 0 to 65535");
    assert_int_equal(reel_cli_parse_size("--docs", "-3", 0, SIZE_MAX, &value, &err), -1);
    assert_string_equal(err.message, "--docs '-3': expected a non-negative integer");
}

static void refuse_double(const char *text, double lo, double hi, int hi_open, const char *message) {
    reel_error err = {{0}};
    double value = 0.25;
    assert_int_equal(reel_cli_parse_double("--p", text, lo, hi, hi_open, &value, &err), -1);
    assert_string_equal(err.message, message);
    assert_true(value == 0.25);
}

static void test_double(void **state) {
    (void)state;
    reel_error err = {{0}};
    double value = 0;
    assert_int_equal(reel_cli_parse_double("--p", "0.5", 0, 1, 1, &value, &err), 0);
    assert_true(value == 0.5);
    assert_int_equal(reel_cli_parse_double("--p", "0", 0, 1, 1, &value, &err), 0);
    assert_true(value == 0.0);
    assert_int_equal(reel_cli_parse_double("--p", "1", 1e-9, 1, 0, &value, &err), 0);
    assert_true(value == 1.0);
    assert_int_equal(reel_cli_parse_double("--p", "1e3", 0, 1e6, 0, &value, &err), 0);
    assert_true(value == 1000.0);
    assert_string_equal(err.message, "");
    refuse_double("1", 0, 1, 1, "--p '1': expected a number in [0, 1)");
    refuse_double("1.5", 1e-9, 1, 0, "--p '1.5': expected a number in [1e-09, 1]");
    refuse_double("0", 1e-9, 1, 0, "--p '0': expected a number in [1e-09, 1]");
    refuse_double("-0.1", 0, 1, 1, "--p '-0.1': expected a number in [0, 1)");
    refuse_double("", 0, 1, 1, "--p '': expected a number in [0, 1)");
    refuse_double("half", 0, 1, 1, "--p 'half': expected a number in [0, 1)");
    refuse_double("0.5x", 0, 1, 1, "--p '0.5x': expected a number in [0, 1)");
    refuse_double(" 0.5", 0, 1, 1, "--p ' 0.5': expected a number in [0, 1)");
    refuse_double("nan", 0, 1, 1, "--p 'nan': expected a number in [0, 1)");
    refuse_double("inf", 0, 1e6, 0, "--p 'inf': expected a number in [0, 1e+06]");
    /* overflow and underflow: strtod's ERANGE, not the number typed */
    refuse_double("1e999", 0, 1e6, 0, "--p '1e999': expected a number in [0, 1e+06]");
    refuse_double("1e-400", 0, 1, 1, "--p '1e-400': expected a number in [0, 1)");
}

static void test_split(void **state) {
    (void)state;
    reel_error err = {{0}};
    assert_int_equal(reel_cli_check_split("test", &err), 0);
    assert_int_equal(reel_cli_check_split("valid", &err), 0);
    assert_int_equal(reel_cli_check_split("train", &err), 0);
    assert_string_equal(err.message, "");
    assert_int_equal(reel_cli_check_split("unsup", &err), -1);
    assert_string_equal(err.message, "--split 'unsup': expected test, valid or train");
    assert_int_equal(reel_cli_check_split("", &err), -1);
    assert_string_equal(err.message, "--split '': expected test, valid or train");
    assert_int_equal(reel_cli_check_split("Test", &err), -1);
}

static FILE *usage_stream;
static int usage_calls;
static void record_usage(FILE *out) {
    usage_stream = out;
    usage_calls++;
}

static void test_usage(void **state) {
    (void)state;
    /* --help goes to standard output with status 0, a usage error to standard error with its status */
    assert_int_equal(reel_cli_usage(record_usage, 0), 0);
    assert_ptr_equal(usage_stream, stdout);
    assert_int_equal(reel_cli_usage(record_usage, 2), 2);
    assert_ptr_equal(usage_stream, stderr);
    assert_int_equal(usage_calls, 2);
}

static void test_option_name(void **state) {
    (void)state;
    static const struct option options[] = {{"max-body", required_argument, NULL, 'b'},
                                            {"port", required_argument, NULL, 'p'},
                                            {NULL, 0, NULL, 0}};
    char name[16];
    assert_string_equal(reel_cli_option_name(options, 'p', name, sizeof name), "--port");
    assert_string_equal(reel_cli_option_name(options, 'b', name, sizeof name), "--max-body");
    assert_string_equal(reel_cli_option_name(options, 'x', name, sizeof name), "--?");
}

/* What reel_cli_getopt_error(command, c, argv) writes to standard error, with optind as getopt_long
 * leaves it (just past the offending word). */
static void getopt_error_text(const char *command, int c, char **argv, int next, char *text, size_t size) {
    fflush(stderr);
    FILE *capture = tmpfile();
    assert_non_null(capture);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(capture), STDERR_FILENO) >= 0);
    optind = next;
    assert_int_equal(reel_cli_getopt_error(command, c, argv), 2);
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    rewind(capture);
    size_t n = fread(text, 1, size - 1, capture);
    text[n] = '\0';
    fclose(capture);
}

static void test_getopt_error(void **state) {
    (void)state;
    char *argv[] = {"prep", "--bogus", "--seed", NULL};
    char text[256];
    getopt_error_text("prep", ':', argv, 3, text, sizeof text);
    assert_string_equal(text, "reel prep: error: option '--seed' needs a value\n");
    getopt_error_text("synth", '?', argv, 2, text, sizeof text);
    assert_string_equal(text, "reel synth: error: unknown option '--bogus' (see reel synth --help)\n");
}

int main(void) {
    MPI_Init(NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u64_good), cmocka_unit_test(test_u64_refused), cmocka_unit_test(test_size),
        cmocka_unit_test(test_double),   cmocka_unit_test(test_split),       cmocka_unit_test(test_usage),
        cmocka_unit_test(test_option_name), cmocka_unit_test(test_getopt_error),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Finalize();
    return failed;
}
