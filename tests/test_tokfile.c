/* Token files (include/reel/tokfile.h): round trips, every validation at open, lazy id validation and
 * the writer's all-or-nothing behaviour. Corrupt files are made by patching a valid one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "reel/tokfile.h"

static char dir[256];
static char path[512];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/reel_test_tokfile_%ld", (long)getpid());
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/split.tok", dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(path);
    unlink(tmp);
    rmdir(dir);
    return 0;
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Three documents: [5 6 7], [], [9]; labels 1 0 1; V = 10, C = 2. */
static const uint32_t doc0[] = {5, 6, 7}, doc2[] = {9};

static void write_sample(uint32_t classes) {
    reel_error err = {""};
    reel_tokfile_writer *w;
    assert_int_equal(reel_tokfile_writer_open(&w, path, 3, 4, 10, classes, 0x1122334455667788u, &err), 0);
    assert_int_equal(reel_tokfile_writer_add(w, doc0, 3, 1, &err), 0);
    assert_int_equal(reel_tokfile_writer_add(w, NULL, 0, 0, &err), 0);
    assert_int_equal(reel_tokfile_writer_add(w, doc2, 1, 1, &err), 0);
    assert_int_equal(reel_tokfile_writer_finish(w, &err), 0);
}

static void patch(long offset, const void *bytes, size_t n) {
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, offset, SEEK_SET), 0);
    assert_int_equal(fwrite(bytes, 1, n, fp), n);
    fclose(fp);
}

static void patch_u32(long offset, uint32_t v) { patch(offset, &v, 4); }
static void patch_u64(long offset, uint64_t v) { patch(offset, &v, 8); }

/* Opening must fail with a message that names the file and contains `expect`. */
static void expect_open_error(const char *expect) {
    reel_tokfile *f = (reel_tokfile *)1;
    reel_error err = {""};
    assert_int_equal(reel_tokfile_open(&f, path, &err), -1);
    assert_null(f);
    if (!strstr(err.message, path) || !strstr(err.message, expect))
        fail_msg("error \"%s\" should name %s and contain \"%s\"", err.message, path, expect);
}

static void test_round_trip(void **state) {
    (void)state;
    write_sample(2);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 64 + 8 * 4 + 4 * 3 + 4 * 4);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_false(exists(tmp));

    reel_tokfile *f;
    reel_error err = {""};
    assert_int_equal(reel_tokfile_open(&f, path, &err), 0);
    const reel_tokfile_header *h = reel_tokfile_info(f);
    assert_int_equal(h->version, 1);
    assert_int_equal(h->num_docs, 3);
    assert_int_equal(h->num_tokens, 4);
    assert_int_equal(h->vocab_size, 10);
    assert_int_equal(h->num_classes, 2);
    assert_true(h->vocab_checksum == 0x1122334455667788u);
    assert_string_equal(reel_tokfile_path(f), path);

    const uint32_t *ids;
    size_t len;
    int32_t label;
    /* Out of order on purpose: documents are independent. */
    assert_int_equal(reel_tokfile_doc(f, 2, &ids, &len, &label, &err), 0);
    assert_int_equal(len, 1);
    assert_int_equal(ids[0], 9);
    assert_int_equal(label, 1);
    assert_int_equal(reel_tokfile_doc(f, 0, &ids, &len, &label, &err), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(ids, doc0, sizeof doc0);
    assert_int_equal(label, 1);
    assert_int_equal(reel_tokfile_doc(f, 1, &ids, &len, &label, &err), 0);
    assert_int_equal(len, 0);
    assert_int_equal(label, 0);
    assert_int_equal(reel_tokfile_validate_all(f, &err), 0);
    assert_int_equal(reel_tokfile_doc(f, 3, &ids, &len, &label, &err), -1);
    assert_non_null(strstr(err.message, "document 3"));
    reel_tokfile_close(f);
}

static void test_unlabelled(void **state) {
    (void)state;
    write_sample(0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 64 + 8 * 4 + 4 * 4); /* no label array */
    reel_tokfile *f;
    reel_error err = {""};
    assert_int_equal(reel_tokfile_open(&f, path, &err), 0);
    const uint32_t *ids;
    size_t len;
    int32_t label = 7;
    assert_int_equal(reel_tokfile_doc(f, 0, &ids, &len, &label, &err), 0);
    assert_int_equal(label, -1);
    assert_int_equal(len, 3);
    reel_tokfile_close(f);
}

static void test_empty_file_of_zero_docs(void **state) {
    (void)state;
    reel_error err = {""};
    reel_tokfile_writer *w;
    assert_int_equal(reel_tokfile_writer_open(&w, path, 0, 0, 3, 2, 0, &err), 0);
    assert_int_equal(reel_tokfile_writer_finish(w, &err), 0);
    reel_tokfile *f;
    assert_int_equal(reel_tokfile_open(&f, path, &err), 0);
    assert_int_equal(reel_tokfile_info(f)->num_docs, 0);
    assert_int_equal(reel_tokfile_validate_all(f, &err), 0);
    reel_tokfile_close(f);
}

static void test_bad_header(void **state) {
    (void)state;
    write_sample(2);
    patch(0, "REELTOX", 7);
    expect_open_error("byte offset 0: bad magic");

    write_sample(2);
    patch_u32(8, 2);
    expect_open_error("byte offset 8: format version 2, expected 1");

    write_sample(2);
    patch_u32(12, 128);
    expect_open_error("byte offset 12: header size 128, expected 64");

    write_sample(2);
    patch(50, "\x01", 1);
    expect_open_error("byte offset 50: reserved header byte");

    write_sample(2);
    patch_u64(16, UINT64_MAX / 4); /* N so large that the size overflows */
    expect_open_error("header is corrupt");
}

static void test_size_mismatch(void **state) {
    (void)state;
    write_sample(2);
    assert_int_equal(truncate(path, 64 + 8 * 4 + 4 * 3 + 4 * 4 - 4), 0); /* payload cut short */
    expect_open_error("requires exactly 124 bytes");

    write_sample(2);
    FILE *fp = fopen(path, "ab");
    fputs("junk", fp);
    fclose(fp);
    expect_open_error("file is 128 bytes but the header");

    write_sample(2);
    patch_u64(24, 5); /* T says 5 tokens, the file holds 4 */
    expect_open_error("requires exactly 128 bytes");

    write_sample(2);
    assert_int_equal(truncate(path, 20), 0);
    expect_open_error("too short");
}

static void test_bad_index(void **state) {
    (void)state;
    write_sample(2);
    patch_u64(64 + 8 * 2, 2); /* doc_start = 0 3 2 4: decreasing at entry 2 */
    expect_open_error("byte offset 80: doc_start[2] = 2 is less than doc_start[1] = 3");

    write_sample(2);
    patch_u64(64, 1);
    expect_open_error("byte offset 64: doc_start[0] is 1, expected 0");

    write_sample(2);
    patch_u64(64 + 8 * 3, 3); /* last entry must equal T = 4 */
    expect_open_error("byte offset 88: doc_start[N=3] = 3, expected the token count T = 4");
}

static void test_label_out_of_range(void **state) {
    (void)state;
    write_sample(2);
    patch_u32(64 + 8 * 4 + 4, 2); /* label of document 1 */
    expect_open_error("byte offset 100: label of document 1 is 2, expected a class in [0, 2)");
    write_sample(2);
    patch_u32(64 + 8 * 4, (uint32_t)-1);
    expect_open_error("byte offset 96: label of document 0 is -1");
}

static void test_id_out_of_range(void **state) {
    (void)state;
    write_sample(2);
    /* ids start at 64 + 32 + 12 = 108; document 0 position 2 is at 116. */
    patch_u32(116, 10);
    reel_tokfile *f;
    reel_error err = {""};
    assert_int_equal(reel_tokfile_open(&f, path, &err), 0); /* ids are checked lazily */
    const uint32_t *ids;
    size_t len;
    int32_t label;
    assert_int_equal(reel_tokfile_doc(f, 2, &ids, &len, &label, &err), 0); /* a good document still reads */
    assert_int_equal(reel_tokfile_doc(f, 0, &ids, &len, &label, &err), -1);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, "byte offset 116"));
    assert_non_null(strstr(err.message, "token id 10"));
    assert_non_null(strstr(err.message, "V=10"));
    /* still refused on a second read: a bad document never becomes "validated" */
    err.message[0] = '\0';
    assert_int_equal(reel_tokfile_doc(f, 0, &ids, &len, &label, &err), -1);
    assert_non_null(strstr(err.message, "byte offset 116"));
    err.message[0] = '\0';
    assert_int_equal(reel_tokfile_validate_all(f, &err), -1);
    assert_non_null(strstr(err.message, "byte offset 116"));
    reel_tokfile_close(f);
}

/* [data] reverse: every document reads last token first, labels and lengths unchanged, an empty one still
 * empty; reversing twice is once; a bad id is named at its offset in the file, before any reversal. */
static void test_reverse(void **state) {
    (void)state;
    write_sample(2);
    reel_tokfile *f;
    reel_error err = {""};
    assert_int_equal(reel_tokfile_open(&f, path, &err), 0);
    for (int twice = 0; twice < 2; twice++) assert_int_equal(reel_tokfile_reverse(f, &err), 0);
    const uint32_t *ids;
    size_t len;
    int32_t label;
    assert_int_equal(reel_tokfile_doc(f, 0, &ids, &len, &label, &err), 0);
    assert_int_equal(len, 3);
    assert_int_equal(label, 1);
    assert_int_equal(ids[0], 7), assert_int_equal(ids[1], 6), assert_int_equal(ids[2], 5);
    assert_int_equal(reel_tokfile_doc(f, 1, &ids, &len, &label, &err), 0);
    assert_int_equal(len, 0);
    assert_int_equal(label, 0);
    assert_int_equal(reel_tokfile_doc(f, 2, &ids, &len, &label, &err), 0);
    assert_int_equal(len, 1);
    assert_int_equal(ids[0], 9);
    assert_int_equal(reel_tokfile_doc_length(f, 0), 3);
    reel_tokfile_close(f);

    patch_u32(116, 10); /* document 0's last id, as in test_id_out_of_range */
    assert_int_equal(reel_tokfile_open(&f, path, &err), 0);
    assert_int_equal(reel_tokfile_reverse(f, &err), -1);
    assert_non_null(strstr(err.message, "byte offset 116"));
    assert_non_null(strstr(err.message, "token id 10"));
    reel_tokfile_close(f);
}

static void test_missing_file(void **state) {
    (void)state;
    unlink(path);
    expect_open_error("cannot open");
}

static void test_writer_abort_and_errors(void **state) {
    (void)state;
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(path);
    reel_error err = {""};
    reel_tokfile_writer *w;

    assert_int_equal(reel_tokfile_writer_open(&w, path, 2, 3, 10, 2, 0, &err), 0);
    assert_true(exists(tmp));
    assert_int_equal(reel_tokfile_writer_add(w, doc0, 3, 0, &err), 0);
    reel_tokfile_writer_abort(w);
    assert_false(exists(tmp));
    assert_false(exists(path));

    /* Promised counts not met: finish fails and nothing appears. */
    assert_int_equal(reel_tokfile_writer_open(&w, path, 2, 3, 10, 2, 0, &err), 0);
    assert_int_equal(reel_tokfile_writer_add(w, doc0, 3, 0, &err), 0);
    assert_int_equal(reel_tokfile_writer_finish(w, &err), -1);
    assert_non_null(strstr(err.message, "promised"));
    assert_false(exists(tmp));
    assert_false(exists(path));

    /* Each bad add is refused with a reason; the writer stays usable. */
    assert_int_equal(reel_tokfile_writer_open(&w, path, 1, 3, 10, 2, 0, &err), 0);
    const uint32_t too_big[] = {1, 10, 2};
    assert_int_equal(reel_tokfile_writer_add(w, too_big, 3, 0, &err), -1);
    assert_non_null(strstr(err.message, "token id 10"));
    assert_int_equal(reel_tokfile_writer_add(w, doc0, 3, 2, &err), -1);
    assert_non_null(strstr(err.message, "label 2"));
    const uint32_t four[] = {1, 2, 3, 4};
    assert_int_equal(reel_tokfile_writer_add(w, four, 4, 0, &err), -1);
    assert_non_null(strstr(err.message, "more than the 3 left"));
    assert_int_equal(reel_tokfile_writer_add(w, doc0, 3, 1, &err), 0);
    assert_int_equal(reel_tokfile_writer_add(w, doc2, 1, 1, &err), -1);
    assert_non_null(strstr(err.message, "opened for 1 documents"));
    reel_tokfile_writer_abort(w);
    assert_false(exists(tmp));
    assert_false(exists(path));

    /* A directory that does not exist. */
    assert_int_equal(reel_tokfile_writer_open(&w, "/nonexistent-reel-dir/x.tok", 0, 0, 3, 0, 0, &err), -1);
    assert_non_null(strstr(err.message, "/nonexistent-reel-dir/x.tok"));
}

/* An existing file is replaced only when finish succeeds. */
static void test_replace_is_atomic(void **state) {
    (void)state;
    write_sample(2);
    reel_error err = {""};
    reel_tokfile_writer *w;
    assert_int_equal(reel_tokfile_writer_open(&w, path, 1, 1, 10, 0, 0, &err), 0);
    assert_int_equal(reel_tokfile_writer_add(w, doc2, 1, 0, &err), 0);
    reel_tokfile_writer_abort(w);
    reel_tokfile *f;
    assert_int_equal(reel_tokfile_open(&f, path, &err), 0);
    assert_int_equal(reel_tokfile_info(f)->num_docs, 3); /* still the old file */
    reel_tokfile_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_unlabelled),
        cmocka_unit_test(test_empty_file_of_zero_docs),
        cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_size_mismatch),
        cmocka_unit_test(test_bad_index),
        cmocka_unit_test(test_label_out_of_range),
        cmocka_unit_test(test_id_out_of_range),
        cmocka_unit_test(test_reverse),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_writer_abort_and_errors),
        cmocka_unit_test(test_replace_is_atomic),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
