/* vocab.txt (include/reel/vocab.h): the order prep builds (via the internal counter), the checksum,
 * save/load round trips and the errors of a malformed file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "prep/prep_internal.h"
#include "reel/vocab.h"

static char path[256];

static int setup(void **state) {
    (void)state;
    snprintf(path, sizeof path, "/tmp/reel_test_vocab_%ld.txt", (long)getpid());
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(path);
    return 0;
}

static void write_text(const char *text) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void intern_times(prep_counter *c, const char *token, int times, uint64_t add) {
    for (int i = 0; i < times; i++) prep_counter_intern(c, token, strlen(token), add);
}

static void test_order_and_tie_break(void **state) {
    (void)state;
    prep_counter *c = prep_counter_create();
    intern_times(c, "b", 3, 1);
    intern_times(c, "ab", 3, 1);
    intern_times(c, "c", 5, 1);
    intern_times(c, "a", 3, 1);
    intern_times(c, "rare", 1, 1);
    intern_times(c, "testonly", 9, 0); /* seen only in an uncounted split */
    intern_times(c, "\xC3\xA9t\xC3\xA9", 3, 1);
    prep_counter_finish(c);
    uint32_t final_id[16];
    reel_vocab v;
    prep_counter_build_vocab(c, 100, 1, &v, final_id);
    const char *expected[] = {"<pad>", "<unk>", "<eod>", "c", "a", "ab", "b", "\xC3\xA9t\xC3\xA9", "rare"};
    const uint64_t counts[] = {0, 0, 0, 5, 3, 3, 3, 3, 1};
    assert_int_equal(v.size, 9);
    for (size_t i = 0; i < v.size; i++) {
        assert_string_equal(v.tokens[i], expected[i]);
        assert_int_equal(v.counts[i], counts[i]);
    }
    /* first-seen ids: b=0 ab=1 c=2 a=3 rare=4 testonly=5 ete=6 */
    assert_int_equal(final_id[0], 6);
    assert_int_equal(final_id[2], 3);
    assert_int_equal(final_id[5], REEL_TOKEN_UNK);
    assert_true(v.checksum == reel_vocab_checksum(v.tokens, v.size));
    reel_vocab_free(&v);

    /* Capped at 3 reserved + 2 words: everything after "a" maps to <unk>, whose count is their total. */
    prep_counter_build_vocab(c, 5, 1, &v, final_id);
    assert_int_equal(v.size, 5);
    assert_string_equal(v.tokens[4], "a");
    assert_int_equal(v.counts[REEL_TOKEN_UNK], 3 + 3 + 3 + 1);
    assert_int_equal(final_id[1], REEL_TOKEN_UNK); /* ab */
    reel_vocab_free(&v);

    /* min_count 3 drops "rare". */
    prep_counter_build_vocab(c, 100, 3, &v, final_id);
    assert_int_equal(v.size, 8);
    assert_int_equal(v.counts[REEL_TOKEN_UNK], 1);
    reel_vocab_free(&v);
    prep_counter_destroy(c);
}

/* The definition (XXH64 seed 0 over "token\n" for every token), and a pinned value so that any change
 * of the definition is noticed: it would silently invalidate every token file already written. */
static void test_checksum(void **state) {
    (void)state;
    char *tokens[] = {"<pad>", "<unk>", "<eod>", "the", "\xC3\xA9t\xC3\xA9"};
    const char joined[] = "<pad>\n<unk>\n<eod>\nthe\n\xC3\xA9t\xC3\xA9\n";
    uint64_t sum = reel_vocab_checksum(tokens, 5);
    assert_true(sum == XXH64(joined, sizeof joined - 1, 0));
    assert_true(sum == UINT64_C(0x49b26d85b7c60dca));
    char *swapped[] = {"<pad>", "<unk>", "<eod>", "\xC3\xA9t\xC3\xA9", "the"};
    assert_true(reel_vocab_checksum(swapped, 5) != sum);
    assert_true(reel_vocab_checksum(tokens, 4) != sum);
}

static void test_save_load_round_trip(void **state) {
    (void)state;
    char *tokens[] = {"<pad>", "<unk>", "<eod>", "a", "the", "\xC3\xA9t\xC3\xA9"};
    uint64_t counts[] = {0, 17, 0, 100, 100, 2};
    reel_vocab v = {6, tokens, counts, 0};
    reel_error err = {""};
    assert_int_equal(reel_vocab_save(&v, path, &err), 0);
    reel_vocab loaded;
    assert_int_equal(reel_vocab_load(&loaded, path, &err), 0);
    assert_int_equal(loaded.size, 6);
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(loaded.tokens[i], tokens[i]);
        assert_int_equal(loaded.counts[i], counts[i]);
    }
    assert_true(loaded.checksum == reel_vocab_checksum(tokens, 6));
    reel_vocab_free(&loaded);

    /* The file is exactly the documented format. */
    FILE *fp = fopen(path, "rb");
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    assert_string_equal(buf, "<pad>\t0\n<unk>\t17\n<eod>\t0\na\t100\nthe\t100\n\xC3\xA9t\xC3\xA9\t2\n");

    /* A missing final newline is accepted. */
    write_text("<pad>\t0\n<unk>\t0\n<eod>\t0\nx\t1");
    assert_int_equal(reel_vocab_load(&loaded, path, &err), 0);
    assert_int_equal(loaded.size, 4);
    reel_vocab_free(&loaded);
}

static void expect_load_error(const char *text, const char *expect) {
    write_text(text);
    reel_vocab v;
    reel_error err = {""};
    assert_int_equal(reel_vocab_load(&v, path, &err), -1);
    if (!strstr(err.message, path) || !strstr(err.message, expect))
        fail_msg("error \"%s\" should name %s and contain \"%s\"", err.message, path, expect);
    assert_int_equal(v.size, 0);
    assert_null(v.tokens);
}

static void test_malformed(void **state) {
    (void)state;
    expect_load_error("<pad>\t0\n<unk>\t0\n<eod>\t0\nthe 5\n", "line 4: expected <token> TAB <count>, found no TAB");
    expect_load_error("<pad>\t0\n<unk>\t0\n<eod>\t0\nthe\t5x\n", "line 4: count '5x' is not a decimal number");
    expect_load_error("<pad>\t0\n<unk>\t0\n<eod>\t0\nthe\t\n", "line 4: count '' is not a decimal number");
    expect_load_error("<pad>\t0\n<unk>\t0\n<eod>\t0\nthe\t99999999999999999999\n", "line 4: count");
    expect_load_error("<pad>\t0\n<unk>\t0\n<eod>\t0\n\t5\n", "line 4: empty token");
    expect_load_error("<pad>\t0\n<unk>\t0\n<eod>\t0\nthe\t5\n\na\t1\n", "line 5: expected <token> TAB");
    expect_load_error("<pad>\t0\n<eod>\t0\n<unk>\t0\n", "line 2: reserved id 1 must be '<unk>', found '<eod>'");
    expect_load_error("<pad>\t0\n<unk>\t0\n", "expected at least the 3 reserved entries");
    expect_load_error("", "line 1: file ends after 0 lines");
    expect_load_error("<pad>\t0\n<unk>\t0\n<eod>\t0\na\t1\nb\t2\n", "line 5: 'b' (count 2) is out of order");
    expect_load_error("<pad>\t0\n<unk>\t0\n<eod>\t0\nb\t2\na\t2\n", "line 5: 'a' (count 2) is out of order");
    expect_load_error("<pad>\t0\n<unk>\t0\n<eod>\t0\na\t3\nb\t2\na\t1\n", "line 6: token 'a' already appears on line 4");
    expect_load_error("<pad>\t0\n<unk>\t0\n<eod>\t0\na\xFF\t3\n", "line 4: token is not valid UTF-8");
    expect_load_error("<pad>\t0\n<unk>\t0\n<eod>\t0\na\t3\r\n", "line 4: contains a NUL or CR byte");

    reel_vocab v;
    reel_error err = {""};
    assert_int_equal(reel_vocab_load(&v, "/nonexistent-reel/vocab.txt", &err), -1);
    assert_non_null(strstr(err.message, "/nonexistent-reel/vocab.txt"));
}

static void test_save_rejects_unwritable_tokens(void **state) {
    (void)state;
    char *tokens[] = {"<pad>", "<unk>", "<eod>", "tab\there"};
    uint64_t counts[] = {0, 0, 0, 1};
    reel_vocab v = {4, tokens, counts, 0};
    reel_error err = {""};
    unlink(path);
    assert_int_equal(reel_vocab_save(&v, path, &err), -1);
    assert_non_null(strstr(err.message, "token id 3"));
    assert_int_equal(access(path, F_OK), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_tie_break),
        cmocka_unit_test(test_checksum),
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_save_rejects_unwritable_tokens),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
