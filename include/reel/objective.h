/* reel/objective.h: what a model is trained to do. */
#ifndef REEL_OBJECTIVE_H
#define REEL_OBJECTIVE_H

#include "reel/config.h"

typedef struct reel_objective_kind {
    const char *type;
    const reel_key_table *keys; /* its [objective] keys beyond type */
} reel_objective_kind;

const reel_objective_kind *reel_objective_kind_find(const char *type);

#endif
