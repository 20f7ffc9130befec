/* Setting configuration keys by name in unit tests (included after cmocka.h): keys of a model type
 * live in that model's options, so tests set them the way a user does, with --set's syntax. */
#ifndef REEL_TEST_CONFIG_SET_H
#define REEL_TEST_CONFIG_SET_H

#include <stdarg.h>
#include <stdio.h>

#include "reel/config.h"

/* config_set(&cfg, "model.hidden_dim=%zu", 5): fails the test when the assignment is refused. */
static void config_set(reel_config *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void config_set(reel_config *cfg, const char *fmt, ...) {
    char assignment[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(assignment, sizeof assignment, fmt, args);
    va_end(args);
    reel_error err = {""};
    if (reel_config_override(cfg, assignment, &err) != 0) fail_msg("--set %s: %s", assignment, err.message);
}

#endif
