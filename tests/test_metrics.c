/* Tests of src/metrics.c: layout and values read back with the HDF5 API, truncation on re-open,
 * readers in other processes while the writer is open (SWMR, from C and from h5py), and refusal of
 * files that are not reel metrics files.
 *
 * Readers run in separate processes started with exec (this program with --swmr-read, or python3): a
 * forked child must not use HDF5 state inherited from the parent, and a fresh process is also what a
 * user's reader is. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "reel/metrics.h"

/* The rows of a classification run, as the trainer and the classification objective declare them. */
typedef struct reel_train_row {
    uint64_t step, epoch;
    double loss, accuracy, lr, grad_norm, samples_per_s;
} reel_train_row;

typedef struct reel_eval_row {
    uint64_t step, epoch;
    uint8_t split;
    double loss, accuracy, precision, recall, f1;
    uint64_t tp, fp, tn, fn;
} reel_eval_row;

#define SCRATCH_TEMPLATE "/tmp/reel_test_metrics_XXXXXX"
#include "scratch_dir.h"


static void temp_path(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", tmp_dir, name);
    unlink(out);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Row i of a run. `resumed` marks rows written after a re-open, so they cannot be mistaken for the
 * rows that the re-open was supposed to drop. */
static reel_train_row train_row(uint64_t i, int resumed) {
    reel_train_row row = {
        .step = 10 * (i + 1),
        .epoch = i / 5,
        .loss = 1.0 / (double)(i + 1),
        .accuracy = (double)i / (double)(i + 1),
        .lr = 1e-3 * (double)(i + 1),
        .grad_norm = 2.0 / (double)(i + 3),
        .samples_per_s = (resumed ? 5000.0 : 1000.0) + (double)i,
    };
    return row;
}

static reel_eval_row eval_row(uint64_t i, int resumed) {
    reel_eval_row row = {
        .step = 40 * (i + 1),
        .epoch = i,
        .split = (uint8_t)(i % 3),
        .loss = 0.5 / (double)(i + 1),
        .accuracy = 0.25 + (double)i / 100.0,
        .precision = 0.125 * (double)(i % 8),
        .recall = resumed ? 0.75 : 0.5,
        .f1 = 1.0 / 3.0 + (double)i,
        .tp = i,
        .fp = 2 * i + (uint64_t)resumed,
        .tn = 3 * i,
        .fn = UINT64_MAX - i,
    };
    return row;
}

/* ---------------------------------------------------------------------------------------------- */
/* Reading back with the HDF5 API                                                                  */

typedef struct expected_column {
    const char *name;
    char kind; /* u: uint64, d: float64, b: uint8 */
    size_t offset;
} expected_column;

static const expected_column train_layout[] = {
    {"step", 'u', offsetof(reel_train_row, step)},         {"epoch", 'u', offsetof(reel_train_row, epoch)},
    {"loss", 'd', offsetof(reel_train_row, loss)},         {"accuracy", 'd', offsetof(reel_train_row, accuracy)},
    {"lr", 'd', offsetof(reel_train_row, lr)},             {"grad_norm", 'd', offsetof(reel_train_row, grad_norm)},
    {"samples_per_s", 'd', offsetof(reel_train_row, samples_per_s)},
};

static const expected_column eval_layout[] = {
    {"step", 'u', offsetof(reel_eval_row, step)},           {"epoch", 'u', offsetof(reel_eval_row, epoch)},
    {"split", 'b', offsetof(reel_eval_row, split)},         {"loss", 'd', offsetof(reel_eval_row, loss)},
    {"accuracy", 'd', offsetof(reel_eval_row, accuracy)},   {"precision", 'd', offsetof(reel_eval_row, precision)},
    {"recall", 'd', offsetof(reel_eval_row, recall)},       {"f1", 'd', offsetof(reel_eval_row, f1)},
    {"tp", 'u', offsetof(reel_eval_row, tp)},               {"fp", 'u', offsetof(reel_eval_row, fp)},
    {"tn", 'u', offsetof(reel_eval_row, tn)},               {"fn", 'u', offsetof(reel_eval_row, fn)},
};

#define NUM_TRAIN_COLUMNS (sizeof train_layout / sizeof train_layout[0])
#define NUM_EVAL_COLUMNS (sizeof eval_layout / sizeof eval_layout[0])

static reel_column_type column_type_of(char kind) {
    return kind == 'u' ? REEL_COLUMN_U64 : kind == 'd' ? REEL_COLUMN_F64 : REEL_COLUMN_U8;
}

/* The layout the file is opened with, built from the expected columns. */
static reel_metrics_layout file_layout(void) {
    static reel_column train[NUM_TRAIN_COLUMNS], eval[NUM_EVAL_COLUMNS];
    for (size_t c = 0; c < NUM_TRAIN_COLUMNS; c++) train[c] = (reel_column){train_layout[c].name, column_type_of(train_layout[c].kind), 0};
    for (size_t c = 0; c < NUM_EVAL_COLUMNS; c++) eval[c] = (reel_column){eval_layout[c].name, column_type_of(eval_layout[c].kind), 0};
    return (reel_metrics_layout){"classify", train, NUM_TRAIN_COLUMNS, eval, NUM_EVAL_COLUMNS};
}

/* A row struct as the values of its columns. */
static void row_values(const expected_column *layout, size_t num_columns, const void *row, reel_value *values) {
    for (size_t c = 0; c < num_columns; c++) {
        const char *field = (const char *)row + layout[c].offset;
        if (layout[c].kind == 'u') memcpy(&values[c].u, field, 8);
        else if (layout[c].kind == 'd') memcpy(&values[c].f, field, 8);
        else values[c].u = *(const uint8_t *)field;
    }
}

static int append_train_row(reel_metrics *m, const reel_train_row *row, reel_error *err) {
    reel_value values[NUM_TRAIN_COLUMNS];
    row_values(train_layout, NUM_TRAIN_COLUMNS, row, values);
    return reel_metrics_append(m, REEL_METRICS_TRAIN, values, err);
}

static int append_eval_row(reel_metrics *m, const reel_eval_row *row, reel_error *err) {
    reel_value values[NUM_EVAL_COLUMNS];
    row_values(eval_layout, NUM_EVAL_COLUMNS, row, values);
    return reel_metrics_append(m, REEL_METRICS_EVAL, values, err);
}

static reel_metrics *open_or_fail(const char *path, uint64_t keep) {
    reel_metrics *m = NULL;
    reel_error err = {""};
    reel_metrics_layout layout = file_layout();
    if (reel_metrics_open(&m, path, &layout, keep, &err) != 0) fail_msg("reel_metrics_open(%s): %s", path, err.message);
    assert_non_null(m);
    return m;
}

static void append_train(reel_metrics *m, reel_train_row row) {
    reel_error err = {""};
    if (append_train_row(m, &row, &err) != 0) fail_msg("append_train: %s", err.message);
}

static void append_eval(reel_metrics *m, reel_eval_row row) {
    reel_error err = {""};
    if (append_eval_row(m, &row, &err) != 0) fail_msg("append_eval: %s", err.message);
}

/* Checks one group: every dataset 1-D, chunked, unlimited, of the documented type, with exactly the
 * expected rows (compared bit for bit). */
static void verify_group(hid_t file, const char *group, const expected_column *layout, size_t num_columns,
                         const void *rows, size_t row_size, size_t num_rows) {
    for (size_t c = 0; c < num_columns; c++) {
        char name[64];
        snprintf(name, sizeof name, "%s/%s", group, layout[c].name);
        hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
        if (ds < 0) fail_msg("dataset %s is missing", name);
        hid_t type = H5Dget_type(ds), space = H5Dget_space(ds), dcpl = H5Dget_create_plist(ds);
        hsize_t dims[1] = {0}, max_dims[1] = {0};
        assert_int_equal(H5Sget_simple_extent_ndims(space), 1);
        H5Sget_simple_extent_dims(space, dims, max_dims);
        if (dims[0] != num_rows) fail_msg("%s has %llu rows, expected %zu", name, (unsigned long long)dims[0], num_rows);
        assert_true(max_dims[0] == H5S_UNLIMITED);
        assert_int_equal(H5Pget_layout(dcpl), H5D_CHUNKED);
        hid_t file_type = layout[c].kind == 'u' ? H5T_STD_U64LE : layout[c].kind == 'd' ? H5T_IEEE_F64LE : H5T_STD_U8LE;
        if (H5Tequal(type, file_type) <= 0) fail_msg("%s has the wrong type", name);
        size_t width = layout[c].kind == 'b' ? 1 : 8;
        unsigned char *values = calloc(num_rows + 1, width);
        hid_t mem_type = layout[c].kind == 'u' ? H5T_NATIVE_UINT64 : layout[c].kind == 'd' ? H5T_NATIVE_DOUBLE : H5T_NATIVE_UINT8;
        if (num_rows > 0) assert_true(H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0);
        for (size_t r = 0; r < num_rows; r++) {
            const unsigned char *want = (const unsigned char *)rows + r * row_size + layout[c].offset;
            if (memcmp(values + r * width, want, width) != 0) fail_msg("%s row %zu differs from what was appended", name, r);
        }
        free(values);
        H5Pclose(dcpl);
        H5Sclose(space);
        H5Tclose(type);
        H5Dclose(ds);
    }
}

static void verify_file(const char *path, const reel_train_row *train, size_t num_train, const reel_eval_row *eval,
                        size_t num_eval) {
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) fail_msg("cannot open %s for verification", path);

    hid_t attr = H5Aopen(file, "format", H5P_DEFAULT);
    assert_true(attr >= 0);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, H5T_VARIABLE);
    H5Tset_cset(str, H5T_CSET_UTF8);
    char *format = NULL;
    assert_true(H5Aread(attr, str, &format) >= 0);
    assert_string_equal(format, "reel-metrics");
    H5free_memory(format);
    H5Tclose(str);
    H5Aclose(attr);
    attr = H5Aopen(file, "format_version", H5P_DEFAULT);
    unsigned version = 0;
    assert_true(attr >= 0 && H5Aread(attr, H5T_NATIVE_UINT, &version) >= 0);
    assert_int_equal(version, 1);
    H5Aclose(attr);

    verify_group(file, "/train", train_layout, sizeof train_layout / sizeof train_layout[0], train, sizeof *train, num_train);
    verify_group(file, "/eval", eval_layout, sizeof eval_layout / sizeof eval_layout[0], eval, sizeof *eval, num_eval);
    H5Fclose(file);
}

/* ---------------------------------------------------------------------------------------------- */
/* Child processes                                                                                 */

/* Runs argv[0] (looked up in PATH) with argv and returns its exit status, or -1 when it did not exit
 * normally. Output goes to this test's output unless quiet. */
static int run(char *const argv[], int quiet) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (quiet) {
            int null_fd = open("/dev/null", O_WRONLY);
            dup2(null_fd, 1);
            dup2(null_fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) assert_int_equal(errno, EINTR);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static pid_t start(char *const argv[]) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int finish(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) assert_int_equal(errno, EINTR);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* `test_metrics --swmr-read PATH MIN_ROWS FINAL_ROWS TIMEOUT_MS`: opens PATH as an SWMR reader and
 * polls /train/loss and /train/step until it has seen FINAL_ROWS rows, checking every visible row each
 * time. Exit status: 0 ok, 2 cannot open, 3 timed out, 4 wrong value, 5 too many or too few rows. */
static int swmr_reader_main(int argc, char **argv) {
    if (argc != 6) return 64;
    const char *path = argv[2];
    hsize_t min_rows = strtoull(argv[3], NULL, 10), final_rows = strtoull(argv[4], NULL, 10);
    long timeout_ms = strtol(argv[5], NULL, 10);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
    if (file < 0) {
        fprintf(stderr, "swmr reader: cannot open %s\n", path);
        return 2;
    }
    hid_t loss = H5Dopen2(file, "/train/loss", H5P_DEFAULT), step = H5Dopen2(file, "/train/step", H5P_DEFAULT);
    if (loss < 0 || step < 0) return 2;
    hsize_t seen = 0;
    for (long waited = 0;; waited += 5) {
        if (H5Drefresh(loss) < 0 || H5Drefresh(step) < 0) return 2;
        hsize_t n_loss = 0, n_step = 0;
        hid_t space = H5Dget_space(loss);
        H5Sget_simple_extent_dims(space, &n_loss, NULL);
        H5Sclose(space);
        space = H5Dget_space(step);
        H5Sget_simple_extent_dims(space, &n_step, NULL);
        H5Sclose(space);
        hsize_t n = n_loss < n_step ? n_loss : n_step;
        if (n < min_rows || n > final_rows || n < seen) {
            fprintf(stderr, "swmr reader: %llu rows visible, expected between %llu and %llu\n", (unsigned long long)n,
                    (unsigned long long)(seen > min_rows ? seen : min_rows), (unsigned long long)final_rows);
            return 5;
        }
        seen = n;
        if (n > 0) {
            double *l = malloc(n * sizeof *l);
            uint64_t *s = malloc(n * sizeof *s);
            hid_t mem = H5Screate_simple(1, &n, NULL), file_space = H5Dget_space(loss);
            hsize_t start0 = 0;
            H5Sselect_hyperslab(file_space, H5S_SELECT_SET, &start0, NULL, &n, NULL);
            herr_t rc = H5Dread(loss, H5T_NATIVE_DOUBLE, mem, file_space, H5P_DEFAULT, l);
            H5Sclose(file_space);
            file_space = H5Dget_space(step);
            H5Sselect_hyperslab(file_space, H5S_SELECT_SET, &start0, NULL, &n, NULL);
            if (rc >= 0) rc = H5Dread(step, H5T_NATIVE_UINT64, mem, file_space, H5P_DEFAULT, s);
            H5Sclose(file_space);
            H5Sclose(mem);
            if (rc < 0) return 2;
            for (hsize_t i = 0; i < n; i++) {
                reel_train_row want = train_row(i, 0);
                if (l[i] != want.loss || s[i] != want.step) {
                    fprintf(stderr, "swmr reader: row %llu is (step %llu, loss %.17g), expected (%llu, %.17g)\n",
                            (unsigned long long)i, (unsigned long long)s[i], l[i], (unsigned long long)want.step,
                            want.loss);
                    return 4;
                }
            }
            free(l);
            free(s);
        }
        if (n == final_rows) break;
        if (waited >= timeout_ms) {
            fprintf(stderr, "swmr reader: still %llu of %llu rows after %ld ms\n", (unsigned long long)n,
                    (unsigned long long)final_rows, timeout_ms);
            return 3;
        }
        sleep_ms(5);
    }
    H5Dclose(loss);
    H5Dclose(step);
    H5Fclose(file);
    return 0;
}

/* `test_metrics --killed-writer PATH ROWS`: appends ROWS train rows and exits without closing, like a
 * job killed by the scheduler. */
static int killed_writer_main(int argc, char **argv) {
    if (argc != 4) return 64;
    reel_metrics *m = NULL;
    reel_error err = {""};
    reel_metrics_layout layout = file_layout();
    if (reel_metrics_open(&m, argv[2], &layout, UINT64_MAX, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return 2;
    }
    unsigned long rows = strtoul(argv[3], NULL, 10);
    for (unsigned long i = 0; i < rows; i++) {
        reel_train_row row = train_row(i, 0);
        if (append_train_row(m, &row, &err) != 0) return 3;
    }
    _exit(0);
}

/* ---------------------------------------------------------------------------------------------- */
/* Tests                                                                                           */

static void test_append_reopen_truncate(void **state) {
    (void)state;
    char path[256];
    temp_path(path, sizeof path, "run.h5");
    reel_train_row train[64];
    reel_eval_row eval[16];

    reel_metrics *m = open_or_fail(path, 0);
    for (size_t i = 0; i < 25; i++) append_train(m, train[i] = train_row(i, 0));
    for (size_t i = 0; i < 7; i++) append_eval(m, eval[i] = eval_row(i, 0));
    reel_metrics_close(m);
    verify_file(path, train, 25, eval, 7);

    /* Resume from the checkpoint at step 120: train rows 10..120 (12) and eval rows 40, 80, 120 (3) stay. */
    m = open_or_fail(path, 120);
    reel_metrics_close(m);
    verify_file(path, train, 12, eval, 3);

    m = open_or_fail(path, 120);
    for (size_t i = 12; i < 20; i++) append_train(m, train[i] = train_row(i, 1));
    for (size_t i = 3; i < 5; i++) append_eval(m, eval[i] = eval_row(i, 1));
    reel_metrics_close(m);
    verify_file(path, train, 20, eval, 5);

    /* A step beyond every row keeps everything; a step before every row keeps nothing. */
    m = open_or_fail(path, UINT64_MAX);
    reel_metrics_close(m);
    verify_file(path, train, 20, eval, 5);
    m = open_or_fail(path, 5);
    reel_metrics_close(m);
    verify_file(path, train, 0, eval, 0);
    m = open_or_fail(path, 5);
    append_train(m, train[0] = train_row(0, 0));
    reel_metrics_close(m);
    verify_file(path, train, 1, eval, 0);
}

/* Reads dataset name of file as doubles (count values at most); returns how many it has. */
static size_t read_doubles(const char *path, const char *name, double *values, size_t count) {
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0) fail_msg("%s has no %s", path, name);
    hid_t space = H5Dget_space(ds);
    hsize_t rows = (hsize_t)H5Sget_simple_extent_npoints(space);
    assert_true(rows <= count);
    if (rows) assert_true(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0);
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(file);
    return (size_t)rows;
}

/* A series added to reel after a run's file was written (macro_f1, say): resuming adds it, NaN in the
 * older rows, and keeps every other row; a series not marked as added later and missing from the file
 * is damage (test_refuses_other_files). */
static void test_added_series(void **state) {
    (void)state;
    char path[256];
    temp_path(path, sizeof path, "older.h5");
    reel_train_row train[8];
    reel_eval_row eval[4];
    reel_metrics *m = open_or_fail(path, 0);
    for (size_t i = 0; i < 6; i++) append_train(m, train[i] = train_row(i, 0));
    for (size_t i = 0; i < 3; i++) append_eval(m, eval[i] = eval_row(i, 0));
    reel_metrics_close(m);

    reel_metrics_layout layout = file_layout();
    reel_column eval_columns[NUM_EVAL_COLUMNS + 1];
    memcpy(eval_columns, layout.eval, NUM_EVAL_COLUMNS * sizeof *eval_columns);
    eval_columns[NUM_EVAL_COLUMNS] = (reel_column){"macro_f1", REEL_COLUMN_F64, 1};
    layout.eval = eval_columns;
    layout.num_eval = NUM_EVAL_COLUMNS + 1;
    reel_error err = {""};
    /* resumed at step 80: eval rows 40 and 80 stay */
    if (reel_metrics_open(&m, path, &layout, 80, &err) != 0) fail_msg("%s", err.message);
    reel_value values[NUM_EVAL_COLUMNS + 1];
    eval[2] = eval_row(2, 1);
    row_values(eval_layout, NUM_EVAL_COLUMNS, &eval[2], values);
    values[NUM_EVAL_COLUMNS].f = 0.625;
    if (reel_metrics_append(m, REEL_METRICS_EVAL, values, &err) != 0) fail_msg("%s", err.message);
    reel_metrics_close(m);

    char aside[300];
    struct stat info;
    snprintf(aside, sizeof aside, "%s.unreadable", path);
    assert_int_not_equal(stat(aside, &info), 0); /* not treated as damaged */
    double macro[8], accuracy[8];
    assert_int_equal(read_doubles(path, "eval/macro_f1", macro, 8), 3);
    assert_true(isnan(macro[0]) && isnan(macro[1]));
    assert_true(macro[2] == 0.625);
    assert_int_equal(read_doubles(path, "eval/accuracy", accuracy, 8), 3);
    for (size_t i = 0; i < 3; i++) assert_true(accuracy[i] == eval[i].accuracy);
    assert_int_equal(read_doubles(path, "train/loss", accuracy, 8), 6); /* train rows at steps 10..60, all kept */
}

/* A run killed in the middle of an append: the columns that got the extra row are cut back to the
 * complete rows. */
static void test_ragged_columns_are_repaired(void **state) {
    (void)state;
    char path[256];
    temp_path(path, sizeof path, "ragged.h5");
    reel_train_row train[8];
    reel_eval_row eval[1];
    reel_metrics *m = open_or_fail(path, 0);
    for (size_t i = 0; i < 4; i++) append_train(m, train[i] = train_row(i, 0));
    reel_metrics_close(m);

    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(file, "/train/step", H5P_DEFAULT);
    hsize_t five[1] = {5};
    assert_true(H5Dset_extent(ds, five) >= 0);
    H5Dclose(ds);
    H5Fclose(file);

    m = open_or_fail(path, UINT64_MAX);
    append_train(m, train[4] = train_row(4, 1));
    reel_metrics_close(m);
    verify_file(path, train, 5, eval, 0);
}

static void test_concurrent_readers(void **state) {
    (void)state;
    char path[256];
    temp_path(path, sizeof path, "live.h5");
    reel_metrics *m = open_or_fail(path, 0);
    for (size_t i = 0; i < 30; i++) append_train(m, train_row(i, 0));
    append_eval(m, eval_row(0, 0));

    /* The writer is open and in SWMR mode; a separate process reads what has been appended. */
    char *reader[] = {"/proc/self/exe", "--swmr-read", path, "30", "30", "0", NULL};
    assert_int_equal(run(reader, 0), 0);

    /* A reader that keeps polling sees the rows appended after it opened the file, and never a row
     * with wrong contents. */
    char *poller[] = {"/proc/self/exe", "--swmr-read", path, "30", "80", "60000", NULL};
    pid_t pid = start(poller);
    for (size_t i = 30; i < 80; i++) {
        append_train(m, train_row(i, 0));
        sleep_ms(2);
    }
    assert_int_equal(finish(pid), 0);

    /* The reader must not report the final count before it is there. */
    char *too_early[] = {"/proc/self/exe", "--swmr-read", path, "80", "81", "200", NULL};
    assert_int_equal(run(too_early, 1), 3);

    reel_metrics_close(m);
}

/* What users do: h5py.File(path, "r", swmr=True) while the run is writing. */
static const char h5py_reader[] =
    "import sys, h5py\n"
    "path, n = sys.argv[1], int(sys.argv[2])\n"
    "with h5py.File(path, 'r', swmr=True) as f:\n"
    "    fmt = f.attrs['format']\n"
    "    if isinstance(fmt, bytes): fmt = fmt.decode()\n"
    "    if fmt != 'reel-metrics' or int(f.attrs['format_version']) != 1:\n"
    "        sys.exit('bad root attributes: %r %r' % (fmt, f.attrs['format_version']))\n"
    "    loss, step = f['train/loss'], f['train/step']\n"
    "    loss.refresh(); step.refresh()\n"
    "    if loss.shape != (n,) or step.shape != (n,):\n"
    "        sys.exit('shapes %s %s, expected (%d,)' % (loss.shape, step.shape, n))\n"
    "    for i, (l, s) in enumerate(zip(loss[:], step[:])):\n"
    "        if l != 1.0 / (i + 1) or s != 10 * (i + 1):\n"
    "            sys.exit('row %d: loss %r step %r' % (i, l, s))\n"
    "    if f['eval/split'].dtype != 'uint8' or f['eval/tp'].dtype != 'uint64':\n"
    "        sys.exit('eval dtypes %s %s' % (f['eval/split'].dtype, f['eval/tp'].dtype))\n"
    "    if f['eval/f1'].shape != (1,) or f['eval/f1'][0] != 1.0 / 3.0:\n"
    "        sys.exit('eval/f1 %r' % (f['eval/f1'][:],))\n"
    "print('h5py (swmr=True) read %d rows while the writer was open' % n)\n";

/* h5py is a requirement of this test, not an option (scripts/install-deps installs python3-h5py): its
 * absence fails here instead of passing with the read untested. /usr/bin/python3 is the interpreter with
 * Debian's packages; a python3 earlier on PATH (pyenv, a virtual environment) may lack them. */
static void test_h5py_reader(void **state) {
    (void)state;
    const char *python = "/usr/bin/python3";
    char *probe[] = {(char *)python, "-c", "import h5py", NULL};
    if (run(probe, 0) != 0)
        fail_msg("%s cannot import h5py (scripts/install-deps installs python3-h5py): the h5py SWMR read "
                 "cannot be tested", python);
    char path[256];
    temp_path(path, sizeof path, "h5py.h5");
    reel_metrics *m = open_or_fail(path, 0);
    for (size_t i = 0; i < 17; i++) append_train(m, train_row(i, 0));
    append_eval(m, eval_row(0, 0));
    char *reader[] = {(char *)python, "-c", (char *)h5py_reader, path, "17", NULL};
    assert_int_equal(run(reader, 0), 0);
    /* And again after more rows, through a new reader. */
    for (size_t i = 17; i < 40; i++) append_train(m, train_row(i, 0));
    reader[4] = "40";
    assert_int_equal(run(reader, 0), 0);
    reel_metrics_close(m);
}

static void expect_open_error(const char *path, uint64_t keep, const char *expected_tail) {
    char expected[REEL_ERROR_MAX];
    snprintf(expected, sizeof expected, "%s%s", path, expected_tail);
    reel_metrics *m = NULL;
    reel_error err = {""};
    reel_metrics_layout layout = file_layout();
    int rc = reel_metrics_open(&m, path, &layout, keep, &err);
    if (rc != -1 || strcmp(err.message, expected) != 0)
        fail_msg("expected rc -1 and\n  %s\ngot rc %d and\n  %s", expected, rc, err.message);
    assert_null(m);
}

static void test_refuses_other_files(void **state) {
    (void)state;
    char path[256];

    temp_path(path, sizeof path, "other.h5");
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[1] = {3};
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t ds = H5Dcreate2(file, "weights", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(ds);
    H5Sclose(space);
    H5Fclose(file);
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    expect_open_error(path, 0, ": not a reel metrics file (an HDF5 file without the root attribute format = 'reel-metrics')");
    assert_int_equal(stat(path, &after), 0);
    assert_true(before.st_size == after.st_size); /* left alone, not truncated */

    temp_path(path, sizeof path, "foreign.h5");
    file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    space = H5Screate(H5S_SCALAR);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, 8);
    hid_t attr = H5Acreate2(file, "format", str, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, str, "keras\0\0\0");
    H5Aclose(attr);
    H5Tclose(str);
    H5Sclose(space);
    H5Fclose(file);
    expect_open_error(path, 0, ": not a reel metrics file (its root attribute format is 'keras', expected 'reel-metrics')");

    temp_path(path, sizeof path, "notes.txt");
    FILE *text = fopen(path, "w");
    fputs("step,loss\n1,0.5\n", text);
    fclose(text);
    expect_open_error(path, 0, ": not a reel metrics file (not an HDF5 file); remove it or choose another run directory");

    /* A metrics file of a future version, and one with a dataset missing. */
    temp_path(path, sizeof path, "v2.h5");
    reel_metrics_close(open_or_fail(path, 0));
    file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    attr = H5Aopen(file, "format_version", H5P_DEFAULT);
    unsigned two = 2;
    H5Awrite(attr, H5T_NATIVE_UINT, &two);
    H5Aclose(attr);
    H5Fclose(file);
    expect_open_error(path, 0, ": reel metrics format_version 2 is not supported (this reel reads version 1)");

    temp_path(path, sizeof path, "partial.h5");
    reel_metrics_close(open_or_fail(path, 0));
    file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(H5Ldelete(file, "/eval/f1", H5P_DEFAULT) >= 0);
    H5Fclose(file);
    /* A damaged reel metrics file must not stop a resumed run: it is moved aside, intact, and a new one
     * is started. */
    struct stat damaged;
    assert_int_equal(stat(path, &damaged), 0);
    reel_metrics *m = open_or_fail(path, 0);
    append_train(m, train_row(0, 1));
    reel_metrics_close(m);
    char aside[300];
    snprintf(aside, sizeof aside, "%s.unreadable", path);
    assert_int_equal(stat(aside, &after), 0);
    assert_true(after.st_size == damaged.st_size);
    reel_train_row fresh[1] = {train_row(0, 1)};
    verify_file(path, fresh, 1, NULL, 0);
}

/* HDF5 failures come back as messages naming the file and the operation, with HDF5's own reason, and
 * nothing is printed: HDF5's default handler would dump its whole error stack on stderr. */
static void test_hdf5_errors_are_reported_not_printed(void **state) {
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/no_such_dir/metrics.h5", tmp_dir);

    H5E_auto2_t func_before = NULL, func_after = NULL;
    void *data_before = NULL, *data_after = NULL;
    H5Eget_auto2(H5E_DEFAULT, &func_before, &data_before);

    char capture[256];
    temp_path(capture, sizeof capture, "stderr.txt");
    fflush(stderr);
    int saved_stderr = dup(2), fd = open(capture, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    reel_metrics *m = NULL;
    reel_error err = {""};
    reel_metrics_layout layout = file_layout();
    int rc = reel_metrics_open(&m, path, &layout, 0, &err);
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    close(fd);

    assert_int_equal(rc, -1);
    char expected_start[512];
    snprintf(expected_start, sizeof expected_start, "%s: cannot create the metrics file (HDF5: ", path);
    if (strncmp(err.message, expected_start, strlen(expected_start)) != 0)
        fail_msg("unexpected message: %s", err.message);
    if (!strstr(err.message, "No such file or directory")) fail_msg("the reason is missing: %s", err.message);
    struct stat st;
    assert_int_equal(stat(capture, &st), 0);
    if (st.st_size != 0) fail_msg("%lld bytes were printed on stderr", (long long)st.st_size);

    H5Eget_auto2(H5E_DEFAULT, &func_after, &data_after);
    assert_true(func_before == func_after && data_before == data_after);
}

/* A job killed while writing leaves the file marked as open by a writer; resuming must still work with
 * no manual step, keep the flushed rows up to the resume step, and go on appending. */
static void test_killed_writer(void **state) {
    (void)state;
    char path[256];
    temp_path(path, sizeof path, "killed.h5");
    char *writer[] = {"/proc/self/exe", "--killed-writer", path, "6", NULL};
    assert_int_equal(run(writer, 0), 0);

    /* HDF5 itself refuses a read-write open of such a file: that is the situation being handled. */
    H5E_auto2_t func;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &func, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t direct = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Eset_auto2(H5E_DEFAULT, func, data);
    assert_true(direct < 0);

    reel_metrics *m = open_or_fail(path, 40); /* resume at step 40: rows 0..3 (steps 10..40) stay */
    reel_train_row train[6];
    reel_eval_row eval[1];
    for (size_t i = 0; i < 6; i++) train[i] = train_row(i, 0);
    train[4] = train_row(4, 1); /* the resumed run logs steps 4 and 5 again, with other values */
    train[5] = train_row(5, 1);
    reel_error err = {""};
    assert_int_equal(append_train_row(m, &train[4], &err), 0);
    assert_int_equal(append_train_row(m, &train[5], &err), 0);
    reel_metrics_close(m);
    verify_file(path, train, 6, eval, 0);
    char temporary[300];
    snprintf(temporary, sizeof temporary, "%s.tmp", path);
    assert_int_equal(access(temporary, F_OK), -1);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--swmr-read") == 0) return swmr_reader_main(argc, argv);
    if (argc > 1 && strcmp(argv[1], "--killed-writer") == 0) return killed_writer_main(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_reopen_truncate),
        cmocka_unit_test(test_ragged_columns_are_repaired),
        cmocka_unit_test(test_added_series),
        cmocka_unit_test(test_concurrent_readers),
        cmocka_unit_test(test_h5py_reader),
        cmocka_unit_test(test_refuses_other_files),
        cmocka_unit_test(test_hdf5_errors_are_reported_not_printed),
        cmocka_unit_test(test_killed_writer),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
