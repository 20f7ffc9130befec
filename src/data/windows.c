/* Windows of a bounded context (reel/windows.h). */
#include "reel/windows.h"

int reel_windows_check(size_t max_context, size_t stride, reel_error *err) {
    if (max_context > 0 && (stride == 0 || stride > max_context))
        return reel_fail(err, "window stride %zu: expected 1 to the model's max_context %zu (a stride past the context "
                         "would leave positions unscored)", stride, max_context);
    return 0;
}

size_t reel_windows_default_stride(size_t max_context) { return max_context > 1 ? max_context / 2 : 1; }

/* A stride past the context would leave positions unscored, and 0 would never end: a caller's bug. */
static void require_stride(size_t max_context, size_t stride) {
    reel_error err = {{0}};
    if (reel_windows_check(max_context, stride, &err) != 0) REEL_FATAL(NULL, "%s", err.message);
}

size_t reel_windows_count(size_t length, size_t max_context, size_t stride) {
    require_stride(max_context, stride);
    if (max_context == 0 || length <= max_context) return 1;
    /* one window per stride past the first, the last one reaching the end */
    return 1 + (length - max_context + stride - 1) / stride;
}

/* End of window k (k may be -1 through the caller's k == 0 test). */
static size_t window_end(size_t length, size_t max_context, size_t stride, size_t k) {
    size_t end = max_context + k * stride;
    return end < length ? end : length;
}

reel_window reel_windows_at(size_t length, size_t max_context, size_t stride, size_t k) {
    require_stride(max_context, stride);
    reel_window w;
    if (max_context == 0) {
        w.start = w.score_from = 0;
        w.end = length;
        return w;
    }
    w.end = window_end(length, max_context, stride, k);
    w.start = w.end > max_context ? w.end - max_context : 0;
    w.score_from = k == 0 ? 0 : window_end(length, max_context, stride, k - 1);
    return w;
}
