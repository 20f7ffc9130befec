/* Loading a trained model from its checkpoint (reel/loader.h). */
#include "reel/loader.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "reel/catalogue.h"
#include "reel/checkpoint.h"
#include "reel/util.h"

/* The class names of a classifier: the checkpoint's /labels, else labels.txt of its data directory
 * (checkpoints from before /labels), else the class numbers. */
static int load_class_names(reel_trained *t, reel_error *err) {
    const size_t *num_classes = reel_config_field(&t->cfg, REEL_KEY_NUM_CLASSES);
    if (t->model->output != REEL_OUTPUT_DOCUMENT || !num_classes) return 0;
    size_t K = *num_classes;
    if (K == 0) K = t->model->num_outputs == 1 ? 2 : t->model->num_outputs;
    char *text = NULL;
    if (reel_checkpoint_read_class_names(t->path, &text, err) != 0) return -1;
    reel_buf file = {0};
    if (!text) {
        char path[REEL_PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/labels.txt", t->cfg.data.dir);
        reel_error ignored = {{0}};
        if (reel_read_file(&file, path, 1 << 20, 1, &ignored) == 0) text = file.data;
    }
    t->num_classes = K;
    t->class_names = reel_calloc(K, sizeof *t->class_names);
    const char *line = text;
    for (size_t k = 0; k < K; k++) {
        const char *end = line ? strchr(line, '\n') : NULL;
        size_t length = end ? (size_t)(end - line) : line ? strlen(line) : 0;
        if (length) {
            t->class_names[k] = reel_malloc(length + 1);
            memcpy(t->class_names[k], line, length);
            t->class_names[k][length] = '\0';
        } else {
            char number[24];
            snprintf(number, sizeof number, "%zu", k);
            t->class_names[k] = strdup(number);
        }
        line = end ? end + 1 : NULL;
    }
    if (text != file.data) free(text);
    reel_buf_free(&file);
    return 0;
}

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
        if (reel_vocab_load(&out->vocab, path, err) != 0 ||
            reel_checkpoint_check_tokenizer(checkpoint, &out->vocab, path, err) != 0) {
            reel_trained_free(out);
            return -1;
        }
    }
    if (reel_model_create(&out->model, &out->cfg, options->max_batch ? options->max_batch : 1, err) != 0 ||
        reel_checkpoint_load(checkpoint, out->model, NULL, NULL, NULL, out->vocab.checksum, err) != 0 ||
        load_class_names(out, err) != 0) {
        reel_trained_free(out);
        return -1;
    }
    return 0;
}

void reel_trained_free(reel_trained *trained) {
    for (size_t k = 0; k < trained->num_classes; k++) free(trained->class_names[k]);
    free(trained->class_names);
    reel_model_destroy(trained->model);
    reel_vocab_free(&trained->vocab);
    memset(trained, 0, sizeof *trained);
}
