/* The objective registry: every objective, by name. Adding an objective is adding its source file,
 * which defines its reel_objective_kind, and one line here. */
#include "reel/objective.h"

#include <string.h>

extern const reel_objective_kind reel_objective_kind_classify;   /* src/objectives/classify.c */
extern const reel_objective_kind reel_objective_kind_next_token; /* src/objectives/next_token.c */

static const reel_objective_kind *const objective_kinds[] = {
    &reel_objective_kind_classify,
    &reel_objective_kind_next_token,
};
#define NUM_KINDS (sizeof objective_kinds / sizeof objective_kinds[0])

const reel_objective_kind *reel_objective_kind_find(const char *type) {
    for (size_t i = 0; i < NUM_KINDS; i++)
        if (strcmp(type, objective_kinds[i]->type) == 0) return objective_kinds[i];
    return NULL;
}

/* As reel_model_catalogue: the kinds' names are not constant expressions, so the table is filled here. */
void reel_objective_catalogue(reel_config_catalogue *catalogue) {
    static reel_config_type types[NUM_KINDS];
    for (size_t i = 0; i < NUM_KINDS; i++) types[i] = (reel_config_type){objective_kinds[i]->type, objective_kinds[i]->keys, NULL};
    catalogue->objectives = types;
    catalogue->num_objectives = NUM_KINDS;
}
