/* reel/loader.h: a trained model, ready for use (evaluation, generation, prediction, serving).
 *
 * A checkpoint holds everything needed to rebuild its model: the resolved configuration (/config), the
 * weights and state (/model) and the model's vocabulary (/vocab). Loading reads the configuration,
 * builds the model it describes, and loads the weights, so every command that uses a trained model
 * starts from one call. */
#ifndef REEL_LOADER_H
#define REEL_LOADER_H

#include <stddef.h>

#include "reel/check.h"
#include "reel/config.h"
#include "reel/model.h"
#include "reel/vocab.h"

typedef struct reel_trained {
    char path[REEL_PATH_MAX];
    reel_config cfg;   /* the checkpoint's configuration, with [data] dir replaced when asked */
    reel_vocab vocab;  /* the data directory's vocab.txt (with_data) or the checkpoint's /vocab */
    reel_model *model; /* weights loaded, evaluation mode */
    /* classifiers: the name of each class (the checkpoint's /labels, else the data directory's labels.txt,
     * else "0", "1", ...); num_classes 0 for language models */
    size_t num_classes;
    char **class_names;
} reel_trained;

typedef struct reel_load_options {
    const char *data_dir; /* NULL: the checkpoint's [data] dir */
    int with_data;        /* 1: the caller reads token files: load vocab.txt of the data directory and check
                             the checkpoint was trained with it; 0: the checkpoint's own /vocab (falls back to
                             the data directory for checkpoints that have none) */
    size_t max_batch;     /* rows per forward pass the model is built for */
} reel_load_options;

/* Errors name the checkpoint and what is wrong with it (not a reel checkpoint, corrupt, another
 * vocabulary than the data's, a configuration this build cannot read). */
int reel_trained_load(reel_trained *out, const char *checkpoint, const reel_load_options *options, reel_error *err);
void reel_trained_free(reel_trained *trained);

#endif
