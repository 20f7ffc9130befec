/* reel/windows.h: a document read through a model of bounded context (reel_model.max_context).
 *
 * A sequence of `length` positions is read in windows of at most max_context positions, each window from
 * the model's start state, the window k ending at min(max_context + k * stride, length) and starting
 * max_context before its end (or at 0): consecutive windows overlap by max_context - stride, and window k
 * scores only the positions past the end of window k - 1. So every position is scored exactly once, and
 * position p is scored with at least min(p, max_context - stride) positions of left context (the last
 * window is aligned on the end of the document, not cut short, so it gives its positions more). This is
 * the usual sliding-window perplexity: a smaller stride costs more forwards and gives more context.
 * max_context = 0 (an unbounded model): one window, the whole sequence, whatever the stride. */
#ifndef REEL_WINDOWS_H
#define REEL_WINDOWS_H

#include <stddef.h>

#include "reel/check.h"

typedef struct reel_window {
    size_t start;      /* first position the model reads */
    size_t score_from; /* first position scored (start <= score_from < end) */
    size_t end;        /* one past the last position read and scored */
} reel_window;

/* 0 when stride suits max_context (1 <= stride <= max_context; any stride when max_context is 0), else
 * an error naming both. */
int reel_windows_check(size_t max_context, size_t stride, reel_error *err);
/* The stride the evaluation paths use: half the context, so every scored position after the first window
 * sees at least half a window of left context, for about two forwards per position. */
size_t reel_windows_default_stride(size_t max_context);
/* Windows of a sequence of `length` positions (1 for length 0: an empty window). A stride that
 * reel_windows_check refuses is a fatal error here (a caller's bug, not a user's input). */
size_t reel_windows_count(size_t length, size_t max_context, size_t stride);
/* Window k < reel_windows_count(...). */
reel_window reel_windows_at(size_t length, size_t max_context, size_t stride, size_t k);

#endif
