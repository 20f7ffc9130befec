/* The checkpoint reader on any bytes (mutations of a real checkpoint, tests/fuzz/corpus/checkpoint):
 * reading the configuration, the vocabulary and the tensors of the model it describes either succeeds
 * or fails with a message naming the file; it never crashes, and every HDF5 object reel opened is closed
 * again whatever failed (HDF5 itself keeps some memory of a corrupt object header on its error paths:
 * tests/fuzz/lsan.supp leaves that to HDF5, and this open-object count is what checks reel). HDF5's
 * metadata checksums (the newest file format) and Fletcher-32 on the data catch most damage before reel
 * looks at it. */
#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "reel/catalogue.h"
#include "reel/checkpoint.h"
#include "reel/config.h"
#include "reel/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_file(data, size, ".h5");
    reel_error err = {{0}};
    char *config_text = NULL;
    if (reel_checkpoint_read_config(path, &config_text, &err) != 0) {
        FUZZ_ASSERT(err.message[0] != '\0');
        FUZZ_ASSERT(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);
        return 0;
    }
    reel_config cfg;
    int loaded = reel_config_load_string(&cfg, config_text, "checkpoint", &err) == 0;
    free(config_text);
    reel_vocab vocab;
    if (reel_checkpoint_read_vocab(path, &vocab, &err) == 0) reel_vocab_free(&vocab);
    char *labels = NULL;
    if (reel_checkpoint_read_class_names(path, &labels, &err) == 0) free(labels);
    /* only models of a sane size: the fuzzer may raise the widths in the stored configuration, and a model
     * of a billion parameters is not a reader's bug */
    FUZZ_ASSERT(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);
    if (!loaded || cfg.model.vocab_size > 5000 || cfg.model.embed_dim > 256) return 0;
    static const char *const widths[] = {"model.hidden_dim", "model.head_hidden", "model.num_layers", "model.num_classes"};
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
        const size_t *value = reel_config_field(&cfg, widths[i]);
        if (value && *value > 512) return 0;
    }
    reel_model *model;
    if (reel_model_create(&model, &cfg, 2, &err) != 0) return 0;
    if (model->params.num_floats <= (1u << 22)) {
        reel_train_state state;
        if (reel_checkpoint_load(path, model, NULL, &state, NULL, 0, &err) != 0) FUZZ_ASSERT(err.message[0] != '\0');
    }
    reel_model_destroy(model);
    FUZZ_ASSERT(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);
    return 0;
}
