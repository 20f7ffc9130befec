/* The registries' catalogue for the configuration engine (reel/catalogue.h). It lives with the
 * objectives because they are the higher of the two registries (reel/objective.h includes reel/model.h). */
#include "reel/catalogue.h"

#include <pthread.h>

#include "reel/model.h"
#include "reel/objective.h"

static reel_config_catalogue registries;
static pthread_once_t registries_once = PTHREAD_ONCE_INIT;

static void build_catalogue(void) {
    reel_model_catalogue(&registries);
    reel_objective_catalogue(&registries);
}

/* pthread_once: the table is filled exactly once whichever thread asks first, so no caller has to build
 * it before starting threads. */
const reel_config_catalogue *reel_catalogue(void) {
    pthread_once(&registries_once, build_catalogue);
    return &registries;
}

void reel_config_defaults(reel_config *cfg) { reel_config_defaults_with(cfg, reel_catalogue()); }

int reel_config_load_file(reel_config *cfg, const char *path, reel_error *err) {
    return reel_config_load_file_with(cfg, reel_catalogue(), path, err);
}

int reel_config_load_string(reel_config *cfg, const char *text, const char *source_name, reel_error *err) {
    return reel_config_load_string_with(cfg, reel_catalogue(), text, source_name, err);
}

void reel_config_print_schema(FILE *out) { reel_config_print_schema_with(out, reel_catalogue()); }
