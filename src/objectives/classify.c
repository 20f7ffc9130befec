/* Document classification: one label per document. */
#include "reel/objective.h"

static const reel_key_table classify_keys = {NULL, 0, 0};

const reel_objective_kind reel_objective_kind_classify = {"classify", &classify_keys};
