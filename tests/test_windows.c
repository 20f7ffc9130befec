/* The windows of a bounded context (reel/windows.h), exhaustively on small lengths, contexts and strides:
 * the scored ranges of the windows tile the sequence (every position scored exactly once, in order); a
 * window reads no more than max_context positions and as many as the sequence has up to that; every
 * position has the left context the header promises; max_context 0 is one window, the whole sequence;
 * a bad stride is refused with an error naming it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "reel/windows.h"

enum { MAX_LENGTH = 40, MAX_CONTEXT = 13 };

static void check_case(size_t L, size_t W, size_t S) {
    char where[96];
    snprintf(where, sizeof where, "length %zu, max_context %zu, stride %zu", L, W, S);
    size_t n = reel_windows_count(L, W, S);
    int scored[MAX_LENGTH] = {0};
    size_t next = 0; /* the first position not scored yet */
    for (size_t k = 0; k < n; k++) {
        reel_window w = reel_windows_at(L, W, S, k);
        if (w.score_from != next) fail_msg("%s: window %zu scores from %zu, expected %zu", where, k, w.score_from, next);
        if (w.start > w.score_from || w.end > L || (L > 0 && w.score_from >= w.end))
            fail_msg("%s: window %zu is [%zu, %zu) scoring from %zu", where, k, w.start, w.end, w.score_from);
        size_t read = w.end - w.start, allowed = W == 0 || L < W ? L : W;
        if (read != allowed) fail_msg("%s: window %zu reads %zu positions, expected %zu", where, k, read, allowed);
        for (size_t p = w.score_from; p < w.end; p++) {
            scored[p]++;
            size_t promised = W == 0 ? p : (p < W - S ? p : W - S);
            if (p - w.start < promised)
                fail_msg("%s: position %zu has %zu of left context, fewer than %zu", where, p, p - w.start, promised);
        }
        next = w.end;
    }
    if (next != L) fail_msg("%s: the windows end at %zu", where, next);
    for (size_t p = 0; p < L; p++)
        if (scored[p] != 1) fail_msg("%s: position %zu scored %d times", where, p, scored[p]);
}

static void test_every_small_case(void **state) {
    (void)state;
    for (size_t L = 0; L <= MAX_LENGTH; L++)
        for (size_t W = 1; W <= MAX_CONTEXT; W++)
            for (size_t S = 1; S <= W; S++) check_case(L, W, S);
}

static void test_unbounded(void **state) {
    (void)state;
    for (size_t L = 0; L <= MAX_LENGTH; L++)
        for (size_t S = 0; S <= 3; S++) {
            assert_int_equal(reel_windows_count(L, 0, S), 1);
            reel_window w = reel_windows_at(L, 0, S, 0);
            assert_int_equal(w.start, 0);
            assert_int_equal(w.score_from, 0);
            assert_int_equal(w.end, L);
            check_case(L, 0, S);
            assert_int_equal(reel_windows_check(0, S, NULL), 0);
        }
}

/* A few cases by hand, so that the tiling above is not only self-consistent. */
static void test_known_windows(void **state) {
    (void)state;
    /* 10 positions, windows of 4, stride 2: ends 4, 6, 8, 10 */
    static const size_t expected[][3] = {{0, 0, 4}, {2, 4, 6}, {4, 6, 8}, {6, 8, 10}};
    assert_int_equal(reel_windows_count(10, 4, 2), 4);
    for (size_t k = 0; k < 4; k++) {
        reel_window w = reel_windows_at(10, 4, 2, k);
        assert_int_equal(w.start, expected[k][0]);
        assert_int_equal(w.score_from, expected[k][1]);
        assert_int_equal(w.end, expected[k][2]);
    }
    /* 9 positions, windows of 4, stride 3: ends 4, 7, 9; the last one aligned on the end */
    reel_window last = reel_windows_at(9, 4, 3, 2);
    assert_int_equal(reel_windows_count(9, 4, 3), 3);
    assert_int_equal(last.start, 5);
    assert_int_equal(last.score_from, 7);
    assert_int_equal(last.end, 9);
    assert_int_equal(reel_windows_default_stride(8), 4);
    assert_int_equal(reel_windows_default_stride(1), 1);
}

static void test_bad_stride(void **state) {
    (void)state;
    reel_error err = {{0}};
    assert_int_equal(reel_windows_check(4, 0, &err), -1);
    assert_non_null(strstr(err.message, "stride 0"));
    assert_non_null(strstr(err.message, "max_context 4"));
    assert_int_equal(reel_windows_check(4, 5, &err), -1);
    assert_non_null(strstr(err.message, "stride 5"));
    for (size_t S = 1; S <= 4; S++) assert_int_equal(reel_windows_check(4, S, &err), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_small_case),
        cmocka_unit_test(test_unbounded),
        cmocka_unit_test(test_known_windows),
        cmocka_unit_test(test_bad_stride),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
