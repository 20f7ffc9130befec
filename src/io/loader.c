/* Loading a trained model from its checkpoint (reel/loader.h). */
#include "reel/loader.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "reel/checkpoint.h"

int reel_trained_load(reel_trained *out, const char *checkpoint, const reel_load_options *options, reel_error *err) {
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", checkpoint);
    char *config_text = NULL;
    if (reel_checkpoint_read_config(checkpoint, &config_text, err) != 0) return -1;
    char source[REEL_PATH_MAX + 16];
    snprintf(source, sizeof source, "%s:/config", checkpoint);
    int status = reel_config_load_string(&out->cfg, config_text, source, err);
    free(config_text);
    if (status != 0) return -1;
    if (options->data_dir) snprintf(out->cfg.data.dir, sizeof out->cfg.data.dir, "%s", options->data_dir);

    if (!options->with_data) {
        if (reel_checkpoint_read_vocab(checkpoint, &out->vocab, err) != 0) return -1;
        if (out->vocab.size && out->vocab.size < out->cfg.model.vocab_size) {
            reel_fail(err, "%s: /vocab has %zu tokens, the model %zu", checkpoint, out->vocab.size, out->cfg.model.vocab_size);
            reel_trained_free(out);
            return -1;
        }
    }
    if (out->vocab.size == 0) {
        char path[REEL_PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/vocab.txt", out->cfg.data.dir);
        if (reel_vocab_load(&out->vocab, path, err) != 0) {
            reel_trained_free(out);
            return -1;
        }
    }
    if (reel_model_create(&out->model, &out->cfg, options->max_batch ? options->max_batch : 1, err) != 0 ||
        reel_checkpoint_load(checkpoint, out->model, NULL, NULL, NULL, out->vocab.checksum, err) != 0) {
        reel_trained_free(out);
        return -1;
    }
    return 0;
}

void reel_trained_free(reel_trained *trained) {
    reel_model_destroy(trained->model);
    reel_vocab_free(&trained->vocab);
    memset(trained, 0, sizeof *trained);
}
