#include "reel/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "io/h5util.h"
#include "reel/util.h"

/* Chunks of at most 4 Mi floats (16 MiB): HDF5 needs chunked layout for the Fletcher-32 filter, and
 * chunks must stay under its 4 GiB limit whatever the tensor's size. */
static void chunk_shape(const reel_tensor_info *info, hsize_t *chunk) {
    size_t row = 1;
    for (size_t d = 1; d < info->ndim; d++) row *= info->shape[d];
    size_t rows = row ? (4u << 20) / row : 1;
    if (rows == 0) rows = 1;
    chunk[0] = info->shape[0] < rows ? info->shape[0] : rows;
    if (chunk[0] == 0) chunk[0] = 1;
    for (size_t d = 1; d < info->ndim; d++) chunk[d] = info->shape[d] ? info->shape[d] : 1;
}

static int write_tensor(hid_t file, const char *group, const reel_tensor_info *info, const float *values,
                        hid_t link_props) {
    char name[512];
    snprintf(name, sizeof name, "%s/%s", group, info->name);
    hsize_t dims[REEL_TENSOR_MAX_DIMS], chunk[REEL_TENSOR_MAX_DIMS];
    for (size_t d = 0; d < info->ndim; d++) dims[d] = info->shape[d];
    chunk_shape(info, chunk);
    hid_t space = H5Screate_simple((int)info->ndim, dims, NULL);
    hid_t props = H5Pcreate(H5P_DATASET_CREATE);
    REEL_H5_CHECK(H5Pset_chunk(props, (int)info->ndim, chunk));
    REEL_H5_CHECK(H5Pset_fletcher32(props));
    hid_t dataset = H5Dcreate2(file, name, H5T_IEEE_F32LE, space, link_props, props, H5P_DEFAULT);
    herr_t status = dataset < 0 ? -1 : H5Dwrite(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
    if (status < 0) reel_h5_keep_reason();
    if (dataset >= 0 && reel_h5_close_object(dataset) != 0) {
        status = -1;
        reel_h5_keep_reason();
    }
    if (props >= 0) REEL_H5_CHECK(H5Pclose(props));
    if (space >= 0) REEL_H5_CHECK(H5Sclose(space));
    return status < 0 ? -1 : 0;
}

static int write_store(hid_t file, const char *group, const reel_store *store, const float *buffer, hid_t link_props) {
    for (size_t i = 0; i < store->num_tensors; i++)
        if (write_tensor(file, group, &store->tensors[i], buffer + store->tensors[i].offset, link_props) != 0) return -1;
    return 0;
}

/* A scalar string dataset. */
static int write_text(hid_t file, const char *name, const char *text) {
    hid_t text_type = H5Tcopy(H5T_C_S1);
    REEL_H5_CHECK(H5Tset_size(text_type, strlen(text) + 1));
    hid_t scalar = H5Screate(H5S_SCALAR);
    hid_t dataset = H5Dcreate2(file, name, text_type, scalar, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t status = dataset < 0 ? -1 : H5Dwrite(dataset, text_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, text);
    if (status < 0) reel_h5_keep_reason();
    if (dataset >= 0 && reel_h5_close_object(dataset) != 0) {
        status = -1;
        reel_h5_keep_reason();
    }
    if (scalar >= 0) REEL_H5_CHECK(H5Sclose(scalar));
    if (text_type >= 0) REEL_H5_CHECK(H5Tclose(text_type));
    return status < 0 ? -1 : 0;
}

static int write_contents(hid_t file, const reel_model *model, const reel_checkpoint_slots *opt, const reel_train_state *state,
                          const reel_checkpoint_info *info) {
    hid_t root = file;
    char stamp[32], hex[24];
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    snprintf(hex, sizeof hex, "%016" PRIx64, info->vocab_checksum);
    if (reel_h5_write_string_attr(root, "format", REEL_CHECKPOINT_FORMAT) || reel_h5_write_u64_attr(root, "format_version", REEL_CHECKPOINT_VERSION) ||
        reel_h5_write_string_attr(root, "model_type", model->type) ||
        reel_h5_write_string_attr(root, "objective", info->objective ? info->objective : "") ||
        reel_h5_write_string_attr(root, "reel_version", REEL_VERSION) ||
        reel_h5_write_string_attr(root, "created_utc", stamp) ||
        reel_h5_write_u64_attr(root, "world_size_at_save", (uint64_t)info->world_size) ||
        reel_h5_write_u64_attr(root, "num_parameters", model->params.num_floats) ||
        reel_h5_write_u64_attr(root, "vocab_checksum", info->vocab_checksum) || reel_h5_write_string_attr(root, "vocab_checksum_hex", hex) ||
        reel_h5_write_string_attr(root, "tokenizer", info->vocab && info->vocab->pieces ? "sentencepiece" : "word"))
        return -1;
    if (info->vocab && info->vocab->pieces) {
        /* the piece model travels with the model, as the vocabulary does: text is encoded and decoded
         * with it and nothing else */
        if (reel_h5_write_u64_attr(root, "pieces_checksum", XXH64(info->vocab->pieces, info->vocab->pieces_bytes, 0)))
            return -1;
        hsize_t dims[1] = {info->vocab->pieces_bytes};
        hid_t space = H5Screate_simple(1, dims, NULL);
        hid_t dataset = H5Dcreate2(file, "pieces", H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        int failed = dataset < 0 || H5Dwrite(dataset, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, info->vocab->pieces) < 0;
        if (failed) reel_h5_keep_reason();
        if (dataset >= 0 && reel_h5_close_object(dataset) != 0) {
            failed = 1;
            reel_h5_keep_reason();
        }
        if (space >= 0) REEL_H5_CHECK(H5Sclose(space));
        if (failed) return -1;
    }

    /* The configuration and the vocabulary are datasets, not attributes: attributes are limited to
     * 64 KiB of header. */
    if (write_text(file, "config", info->config_ini) != 0) return -1;
    if (info->vocab) {
        reel_buf text = {0};
        size_t count = model->vocab_size < info->vocab->size ? model->vocab_size : info->vocab->size;
        for (size_t i = 0; i < count; i++) reel_buf_printf(&text, "%s\n", info->vocab->tokens[i]);
        int failed = write_text(file, "vocab", text.data ? text.data : "");
        reel_buf_free(&text);
        if (failed) return -1;
    }
    if (info->class_names && write_text(file, "labels", info->class_names) != 0) return -1;

    hid_t link_props = H5Pcreate(H5P_LINK_CREATE);
    REEL_H5_CHECK(H5Pset_create_intermediate_group(link_props, 1));
    int failed = write_store(file, "model", &model->params, model->params.data, link_props) ||
                 write_store(file, "model", &model->state, model->state.data, link_props);
    hid_t ordered = H5Pcreate(H5P_GROUP_CREATE);
    REEL_H5_CHECK(H5Pset_attr_creation_order(ordered, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED));
    hid_t group = failed ? -1 : H5Gcreate2(file, "optimizer", H5P_DEFAULT, ordered, H5P_DEFAULT);
    if (group >= 0) {
        failed = reel_h5_write_string_attr(group, "type", opt->type) || reel_h5_write_u64_attr(group, "steps_taken", *opt->steps_taken);
        for (size_t s = 0; !failed && s < opt->num_slots; s++) {
            char slot_group[64];
            snprintf(slot_group, sizeof slot_group, "optimizer/%s", opt->slot_names[s]);
            failed = write_store(file, slot_group, &model->params, opt->slots[s], link_props);
        }
        /* the updates each tensor has had (they differ from steps_taken for tensors frozen a while) */
        if (!failed) {
            hsize_t dims[1] = {opt->num_tensors};
            hid_t space = H5Screate_simple(1, dims, NULL);
            hid_t dataset = H5Dcreate2(file, "optimizer/tensor_steps", H5T_STD_U64LE, space, H5P_DEFAULT, H5P_DEFAULT,
                                       H5P_DEFAULT);
            failed = dataset < 0 || H5Dwrite(dataset, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, opt->tensor_steps) < 0;
            if (failed) reel_h5_keep_reason();
            if (dataset >= 0 && reel_h5_close_object(dataset) != 0) {
                failed = 1;
                reel_h5_keep_reason();
            }
            if (space >= 0) REEL_H5_CHECK(H5Sclose(space));
        }
        if (group >= 0 && reel_h5_close_object(group) != 0) {
            failed = 1;
            reel_h5_keep_reason();
        }
    } else {
        if (!failed) reel_h5_keep_reason();
        failed = 1;
    }
    group = failed ? -1 : H5Gcreate2(file, "train_state", H5P_DEFAULT, ordered, H5P_DEFAULT);
    if (group >= 0) {
        failed = reel_h5_write_u64_attr(group, "global_step", state->global_step) || reel_h5_write_u64_attr(group, "epoch", state->epoch) ||
                 reel_h5_write_u64_attr(group, "step_in_epoch", state->step_in_epoch) ||
                 reel_h5_write_u64_attr(group, "samples_seen", state->samples_seen) ||
                 reel_h5_write_string_attr(group, "best_metric", state->best_metric) ||
                 reel_h5_write_f64_attr(group, "best_value", state->best_value) ||
                 reel_h5_write_u64_attr(group, "best_step", state->best_step) || reel_h5_write_u64_attr(group, "seed", state->seed) ||
                 reel_h5_write_u64_attr(group, "evals_since_best", state->evals_since_best);
        if (group >= 0 && reel_h5_close_object(group) != 0) {
            failed = 1;
            reel_h5_keep_reason();
        }
        if (!failed && info->carried && info->carried->num_tensors)
            failed = write_store(file, "train_state/carried", info->carried, info->carried->data, link_props);
    } else {
        failed = 1;
    }
    if (ordered >= 0) REEL_H5_CHECK(H5Pclose(ordered));
    if (link_props >= 0) REEL_H5_CHECK(H5Pclose(link_props));
    return failed ? -1 : 0;
}

int reel_checkpoint_save(const char *path, const reel_model *model, const reel_checkpoint_slots *opt,
                         const reel_train_state *state, const reel_checkpoint_info *info, reel_error *err) {
    reel_h5_quiet();
    char temporary[4096], reason[256];
    snprintf(temporary, sizeof temporary, "%s.tmp", path);
    hid_t access = H5Pcreate(H5P_FILE_ACCESS);
    /* The newest format checksums all metadata: corruption is detected when the file is opened. */
    REEL_H5_CHECK(H5Pset_libver_bounds(access, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST));
    reel_h5_write_through(access);
    /* Attributes listed in the order written (format first), so `h5dump -A` and `reel inspect` read well. */
    hid_t creation = H5Pcreate(H5P_FILE_CREATE);
    REEL_H5_CHECK(H5Pset_attr_creation_order(creation, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED));
    hid_t file = H5Fcreate(temporary, H5F_ACC_TRUNC, creation, access);
    if (file < 0) reel_h5_reason(reason, sizeof reason);
    if (creation >= 0) REEL_H5_CHECK(H5Pclose(creation));
    if (access >= 0) REEL_H5_CHECK(H5Pclose(access));
    if (file < 0) {
        unlink(temporary); /* on a full disk the file exists, without the superblock HDF5 failed to write */
        return reel_fail(err, "%s: cannot create the checkpoint (%s)", temporary, reason);
    }
    reel_h5_take_reason(reason, sizeof reason); /* forgets a reason kept by an earlier save */
    int failed = write_contents(file, model, opt, state, info) != 0;
    if (failed) reel_h5_take_reason(reason, sizeof reason);
    /* a failed file is deleted, not flushed; the flush is checked apart from the close for its reason */
    if (!failed && H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) {
        failed = 1;
        reel_h5_reason(reason, sizeof reason);
    }
    /* On a full disk the close fails too (its flush); HDF5 then holds an ID that must not be closed
     * again, which reel_h5_close_file records so that the process ends without HDF5's teardown. */
    if (reel_h5_close_file(file) != 0 && !failed) {
        failed = 1;
        reel_h5_reason(reason, sizeof reason);
    }
    if (failed) {
        unlink(temporary);
        return reel_fail(err, "%s: writing the checkpoint failed (%s); the previous checkpoints are untouched", path, reason);
    }
    if (reel_fsync_path(temporary, err) != 0) {
        unlink(temporary);
        return -1;
    }
    if (rename(temporary, path) != 0) {
        int saved = errno;
        unlink(temporary);
        return reel_fail(err, "%s: cannot put the checkpoint in place (%s)", path, strerror(saved));
    }
    if (reel_sync_parent_dir(path, err) != 0) return -1;
    return 0;
}

/* ---- loading ---- */

static int read_tensor(hid_t file, const char *path, const char *group, const reel_tensor_info *info, float *values,
                       reel_error *err) {
    char name[512], reason[256];
    snprintf(name, sizeof name, "%s/%s", group, info->name);
    if (H5Lexists(file, group, H5P_DEFAULT) <= 0 || H5Lexists(file, name, H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return reel_fail(err, "%s: dataset /%s is missing: the checkpoint belongs to a different model", path, name);
    }
    hid_t dataset = H5Dopen2(file, name, H5P_DEFAULT);
    if (dataset < 0) {
        reel_h5_reason(reason, sizeof reason);
        return reel_fail(err, "%s: cannot open dataset /%s (%s): the file is corrupt", path, name, reason);
    }
    hid_t space = H5Dget_space(dataset);
    hsize_t dims[8];
    int ndim = H5Sget_simple_extent_ndims(space);
    int shape_ok = ndim == (int)info->ndim;
    if (shape_ok && ndim > 0) H5Sget_simple_extent_dims(space, dims, NULL);
    for (int d = 0; shape_ok && d < ndim; d++) shape_ok = dims[d] == info->shape[d];
    if (space >= 0) REEL_H5_CHECK(H5Sclose(space));
    if (!shape_ok) {
        char found[128] = "", wanted[128] = "";
        for (int d = 0; ndim > 0 && d < ndim && d < 8; d++)
            snprintf(found + strlen(found), sizeof found - strlen(found), "%s%llu", d ? ", " : "", (unsigned long long)dims[d]);
        for (size_t d = 0; d < info->ndim; d++)
            snprintf(wanted + strlen(wanted), sizeof wanted - strlen(wanted), "%s%zu", d ? ", " : "", info->shape[d]);
        if (dataset >= 0) REEL_H5_CHECK(H5Dclose(dataset));
        return reel_fail(err, "%s: dataset /%s has shape [%s], the model expects [%s]: the checkpoint belongs to a "
                         "different model configuration", path, name, found, wanted);
    }
    herr_t status = H5Dread(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
    if (status < 0) reel_h5_reason(reason, sizeof reason);
    if (dataset >= 0) REEL_H5_CHECK(H5Dclose(dataset));
    if (status < 0)
        return reel_fail(err, "%s: cannot read dataset /%s (%s): the file is corrupt (failed checksum or truncated)", path,
                         name, reason);
    return 0;
}

static int read_store(hid_t file, const char *path, const char *group, const reel_store *store, float *buffer,
                      reel_error *err) {
    for (size_t i = 0; i < store->num_tensors; i++)
        if (read_tensor(file, path, group, &store->tensors[i], buffer + store->tensors[i].offset, err) != 0) return -1;
    return 0;
}

/* Opens path and checks it is a reel checkpoint of a version this build reads. */
static hid_t open_checkpoint(const char *path, reel_error *err) {
    reel_h5_quiet();
    char reason[256], format[64];
    if (access(path, R_OK) != 0)
        return reel_fail(err, "%s: cannot read the checkpoint (%s)", path, strerror(errno));
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        reel_h5_reason(reason, sizeof reason);
        return reel_fail(err, "%s: not a readable HDF5 file (%s): it is truncated or corrupt", path, reason);
    }
    uint64_t version = 0;
    if (reel_h5_read_string_attr(file, "format", format, sizeof format) != 0 || strcmp(format, REEL_CHECKPOINT_FORMAT) != 0) {
        if (file >= 0) REEL_H5_CHECK(reel_h5_close_file(file));
        return reel_fail(err, "%s: not a reel checkpoint (root attribute 'format' is not \"" REEL_CHECKPOINT_FORMAT "\")",
                         path);
    }
    if (reel_h5_read_u64_attr(file, "format_version", &version) != 0 || version < 1 || version > REEL_CHECKPOINT_VERSION) {
        if (file >= 0) REEL_H5_CHECK(reel_h5_close_file(file));
        return reel_fail(err, "%s: checkpoint format version %" PRIu64 " is not supported (this build reads 1 to %d)", path,
                         version, REEL_CHECKPOINT_VERSION);
    }
    return file;
}

int reel_checkpoint_load(const char *path, reel_model *model, const reel_checkpoint_slots *opt, reel_train_state *state,
                         reel_store *carried, uint64_t expected_vocab_checksum, reel_error *err) {
    hid_t file = open_checkpoint(path, err);
    if (file < 0) return -1;
    uint64_t version = 0;
    reel_h5_read_u64_attr(file, "format_version", &version);
    char model_type[REEL_NAME_MAX] = "";
    uint64_t checksum = 0;
    int status = -1;
    if (reel_h5_read_string_attr(file, "model_type", model_type, sizeof model_type) != 0) {
        reel_fail(err, "%s: root attribute 'model_type' is missing", path);
        goto done;
    }
    /* a checkpoint written before a type was renamed holds the old name */
    if (strcmp(reel_model_type_resolve(model_type), model->type) != 0) {
        char shown[REEL_QUOTE_MAX]; /* the file's text, escaped: a damaged file may hold any bytes */
        reel_fail(err, "%s: the checkpoint holds a '%s' model, the configuration describes a '%s' model", path,
                  reel_escape_string(shown, sizeof shown, model_type), model->type);
        goto done;
    }
    if (reel_h5_read_u64_attr(file, "vocab_checksum", &checksum) != 0) {
        reel_fail(err, "%s: root attribute 'vocab_checksum' is missing", path);
        goto done;
    }
    if (expected_vocab_checksum != 0 && checksum != expected_vocab_checksum) {
        reel_fail(err, "%s: the checkpoint was trained with another vocabulary (checksum %016" PRIx64
                  ", the data's vocab.txt has %016" PRIx64 ")", path, checksum, expected_vocab_checksum);
        goto done;
    }
    if (read_store(file, path, "model", &model->params, model->params.data, err) != 0 ||
        read_store(file, path, "model", &model->state, model->state.data, err) != 0)
        goto done;
    if (opt) {
        char type[REEL_NAME_MAX] = "";
        hid_t group = H5Lexists(file, "optimizer", H5P_DEFAULT) > 0 ? H5Gopen2(file, "optimizer", H5P_DEFAULT) : -1;
        if (group < 0) {
            reel_fail(err, "%s: group /optimizer is missing", path);
            goto done;
        }
        int ok = reel_h5_read_string_attr(group, "type", type, sizeof type) == 0 &&
                 reel_h5_read_u64_attr(group, "steps_taken", opt->steps_taken) == 0;
        if (group >= 0) REEL_H5_CHECK(H5Gclose(group));
        if (!ok) {
            reel_fail(err, "%s: /optimizer lacks its 'type' or 'steps_taken' attribute", path);
            goto done;
        }
        if (strcmp(type, opt->type) != 0) {
            char shown[REEL_QUOTE_MAX]; /* the file's text, escaped */
            reel_fail(err, "%s: the checkpoint's optimizer is '%s', the configuration asks for '%s'", path,
                      reel_escape_string(shown, sizeof shown, type), opt->type);
            goto done;
        }
        for (size_t s = 0; s < opt->num_slots; s++) {
            char slot_group[64];
            snprintf(slot_group, sizeof slot_group, "optimizer/%s", opt->slot_names[s]);
            if (read_store(file, path, slot_group, &model->params, opt->slots[s], err) != 0) goto done;
        }
        /* checkpoints written before tensors could be frozen: every tensor had every update */
        for (size_t t = 0; t < opt->num_tensors; t++) opt->tensor_steps[t] = *opt->steps_taken;
        if (H5Lexists(file, "optimizer/tensor_steps", H5P_DEFAULT) > 0) {
            hid_t dataset = H5Dopen2(file, "optimizer/tensor_steps", H5P_DEFAULT), space = H5Dget_space(dataset);
            hssize_t n = H5Sget_simple_extent_npoints(space);
            int read = n == (hssize_t)opt->num_tensors &&
                     H5Dread(dataset, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, opt->tensor_steps) >= 0;
            if (space >= 0) REEL_H5_CHECK(H5Sclose(space));
            if (dataset >= 0) REEL_H5_CHECK(H5Dclose(dataset));
            if (!read) {
                reel_fail(err, "%s: /optimizer/tensor_steps has %lld entries, the model %zu tensors", path, (long long)n,
                          opt->num_tensors);
                goto done;
            }
        }
        H5Eclear2(H5E_DEFAULT);
    }
    if (state) {
        memset(state, 0, sizeof *state); /* every byte defined, the string's tail included */
        hid_t group = H5Lexists(file, "train_state", H5P_DEFAULT) > 0 ? H5Gopen2(file, "train_state", H5P_DEFAULT) : -1;
        int ok = group >= 0 && reel_h5_read_u64_attr(group, "global_step", &state->global_step) == 0 &&
                 reel_h5_read_u64_attr(group, "epoch", &state->epoch) == 0 &&
                 reel_h5_read_u64_attr(group, "step_in_epoch", &state->step_in_epoch) == 0 &&
                 reel_h5_read_u64_attr(group, "samples_seen", &state->samples_seen) == 0 &&
                 reel_h5_read_u64_attr(group, "best_step", &state->best_step) == 0 &&
                 reel_h5_read_u64_attr(group, "seed", &state->seed) == 0;
        if (ok && version >= 2) {
            ok = reel_h5_read_string_attr(group, "best_metric", state->best_metric, sizeof state->best_metric) == 0 &&
                 reel_h5_read_f64_attr(group, "best_value", &state->best_value) == 0;
            /* written since early stopping exists; older files resume with the count at 0 */
            if (ok && H5Aexists(group, "evals_since_best") > 0)
                ok = reel_h5_read_u64_attr(group, "evals_since_best", &state->evals_since_best) == 0;
        } else if (ok) { /* version 1: classifiers, by validation accuracy (-1 before the first) */
            double accuracy = -1;
            ok = reel_h5_read_f64_attr(group, "best_valid_accuracy", &accuracy) == 0;
            snprintf(state->best_metric, sizeof state->best_metric, "accuracy");
            state->best_value = accuracy < 0 ? NAN : accuracy;
        }
        if (group >= 0) H5Gclose(group);
        if (!ok) {
            reel_fail(err, "%s: /train_state or one of its attributes is missing", path);
            goto done;
        }
    }
    if (carried && carried->num_tensors && read_store(file, path, "train_state/carried", carried, carried->data, err) != 0)
        goto done;
    status = 0;
done:
    if (file >= 0) REEL_H5_CHECK(reel_h5_close_file(file));
    H5Eclear2(H5E_DEFAULT);
    return status;
}

/* ---- starting from another model ---- */

typedef struct {
    const reel_model *model;
    reel_buf *unused, *layers; /* checkpoint tensors this model does not take; the checkpoint's layer names */
} init_walk;

static herr_t list_model_tensor(hid_t root, const char *name, const H5O_info_t *info, void *data) {
    init_walk *walk = data;
    if (info->type != H5O_TYPE_DATASET) return 0;
    size_t p = reel_store_find(&walk->model->params, name), s = reel_store_find(&walk->model->state, name);
    int taken = (p != (size_t)-1 && walk->model->params.tensors[p].transfer) ||
                (s != (size_t)-1 && walk->model->state.tensors[s].transfer);
    if (!taken) reel_buf_printf(walk->unused, "%s%s", walk->unused->length ? ", " : "", name);
    /* the layer (the part before '/'), once */
    const char *slash = strchr(name, '/');
    int length = slash ? (int)(slash - name) : (int)strlen(name);
    char layer[REEL_TENSOR_NAME_MAX + 4];
    snprintf(layer, sizeof layer, ",%.*s,", length, name);
    char *listed = walk->layers->data ? walk->layers->data : "";
    if (!strstr(listed, layer)) reel_buf_printf(walk->layers, "%s%.*s,", walk->layers->length ? "" : ",", length, name);
    (void)root;
    return 0;
}

int reel_checkpoint_init_from(const char *path, reel_model *model, uint64_t expected_vocab_checksum, reel_buf *report,
                              reel_error *err) {
    hid_t file = open_checkpoint(path, err);
    if (file < 0) return -1;
    int status = -1;
    uint64_t checksum = 0;
    reel_buf unused = {0}, layers = {0}, loaded = {0}, kept = {0};
    float *saved_params = NULL, *saved_state = NULL;
    if (reel_h5_read_u64_attr(file, "vocab_checksum", &checksum) != 0) {
        reel_fail(err, "%s: root attribute 'vocab_checksum' is missing", path);
        goto done;
    }
    if (checksum != expected_vocab_checksum) {
        reel_fail(err, "%s: the checkpoint was trained with another vocabulary (checksum %016" PRIx64 ", the data's "
                  "vocab.txt has %016" PRIx64 "): a model can only start from one of the same `reel prep` run",
                  path, checksum, expected_vocab_checksum);
        goto done;
    }
    hid_t group = H5Lexists(file, "model", H5P_DEFAULT) > 0 ? H5Gopen2(file, "model", H5P_DEFAULT) : -1;
    if (group < 0) {
        reel_fail(err, "%s: group /model is missing", path);
        goto done;
    }
    init_walk walk = {model, &unused, &layers};
    REEL_H5_CHECK(H5Ovisit2(group, H5_INDEX_NAME, H5_ITER_INC, list_model_tensor, &walk, H5O_INFO_BASIC));
    if (group >= 0) REEL_H5_CHECK(H5Gclose(group));
    /* read into the model's buffers, but put them back if anything fails: an error leaves the model as it was */
    saved_params = reel_malloc(model->params.num_floats * sizeof(float) + 1);
    saved_state = reel_malloc(model->state.num_floats * sizeof(float) + 1);
    memcpy(saved_params, model->params.data, model->params.num_floats * sizeof(float));
    memcpy(saved_state, model->state.data, model->state.num_floats * sizeof(float));
    const reel_store *stores[2] = {&model->params, &model->state};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < stores[k]->num_tensors; i++) {
            const reel_tensor_info *info = &stores[k]->tensors[i];
            if (!info->transfer) {
                reel_buf_printf(&kept, "%s%s", kept.length ? ", " : "", info->name);
                continue;
            }
            char name[512];
            snprintf(name, sizeof name, "model/%s", info->name);
            if (H5Lexists(file, name, H5P_DEFAULT) <= 0) {
                H5Eclear2(H5E_DEFAULT);
                /* the list starts and ends with a comma: drop both for the message */
                const char *list = layers.data ? layers.data + 1 : "";
                char shown[REEL_ERROR_MAX / 2]; /* the file's group names, escaped */
                reel_fail(err, "%s: the model's %s is not in the checkpoint, whose model has the layers %s (another "
                          "cell type, more layers, or a direction or batch norm the checkpoint lacks)", path,
                          info->name,
                          reel_escape_bytes(shown, sizeof shown, list, layers.length > 1 ? layers.length - 2 : 0));
                goto restore;
            }
            if (read_tensor(file, path, "model", info, stores[k]->data + info->offset, err) != 0) goto restore;
            reel_buf_printf(&loaded, "%s%s", loaded.length ? ", " : "", info->name);
        }
    reel_buf_printf(report, "loaded %s; initialised as usual: %s; not used from the checkpoint: %s",
                    loaded.data ? loaded.data : "nothing", kept.data ? kept.data : "nothing",
                    unused.data ? unused.data : "nothing");
    status = 0;
    goto done;
restore:
    memcpy(model->params.data, saved_params, model->params.num_floats * sizeof(float));
    memcpy(model->state.data, saved_state, model->state.num_floats * sizeof(float));
done:
    free(saved_params);
    free(saved_state);
    reel_buf_free(&unused);
    reel_buf_free(&layers);
    reel_buf_free(&loaded);
    reel_buf_free(&kept);
    if (file >= 0) REEL_H5_CHECK(reel_h5_close_file(file));
    H5Eclear2(H5E_DEFAULT);
    return status;
}

/* The scalar string dataset `name` (malloc'd); *text = NULL and 0 when missing and optional. */
static int read_text(const char *path, const char *name, int required, char **text_out, reel_error *err) {
    *text_out = NULL;
    hid_t file = open_checkpoint(path, err);
    if (file < 0) return -1;
    int status = -1;
    hid_t dataset = H5Lexists(file, name, H5P_DEFAULT) > 0 ? H5Dopen2(file, name, H5P_DEFAULT) : -1;
    if (dataset < 0) {
        H5Eclear2(H5E_DEFAULT);
        if (required) reel_fail(err, "%s: dataset /%s is missing", path, name);
        else status = 0;
    } else {
        hid_t type = H5Dget_type(dataset);
        size_t size = H5Tget_class(type) == H5T_STRING ? H5Tget_size(type) : 0;
        if (size == 0) {
            reel_fail(err, "%s: /%s is not a string", path, name);
        } else {
            char *text = reel_malloc(size + 1);
            hid_t memory = H5Tcopy(H5T_C_S1);
            REEL_H5_CHECK(H5Tset_size(memory, size));
            if (H5Dread(dataset, memory, H5S_ALL, H5S_ALL, H5P_DEFAULT, text) < 0) {
                free(text);
                reel_fail(err, "%s: cannot read /%s: the file is corrupt", path, name);
            } else {
                text[size] = '\0';
                *text_out = text;
                status = 0;
            }
            if (memory >= 0) REEL_H5_CHECK(H5Tclose(memory));
        }
        if (type >= 0) REEL_H5_CHECK(H5Tclose(type));
        if (dataset >= 0) REEL_H5_CHECK(H5Dclose(dataset));
    }
    if (file >= 0) REEL_H5_CHECK(reel_h5_close_file(file));
    return status;
}

int reel_checkpoint_read_config(const char *path, char **config_ini, reel_error *err) {
    return read_text(path, "config", 1, config_ini, err);
}

int reel_checkpoint_read_class_names(const char *path, char **class_names, reel_error *err) {
    *class_names = NULL;
    return read_text(path, "labels", 0, class_names, err);
}

/* /pieces, when the file has it (*pieces NULL otherwise). */
static int read_pieces(const char *path, char **pieces, size_t *pieces_bytes, reel_error *err) {
    *pieces = NULL;
    *pieces_bytes = 0;
    hid_t file = open_checkpoint(path, err);
    if (file < 0) return -1;
    int status = 0;
    if (H5Lexists(file, "pieces", H5P_DEFAULT) > 0) {
        hid_t dataset = H5Dopen2(file, "pieces", H5P_DEFAULT);
        hid_t space = dataset >= 0 ? H5Dget_space(dataset) : -1;
        hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
        if (n < 0) {
            status = reel_fail(err, "%s: cannot read /pieces: the file is corrupt", path);
        } else {
            *pieces = reel_malloc((size_t)n + 1);
            *pieces_bytes = (size_t)n;
            if (H5Dread(dataset, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, *pieces) < 0) {
                free(*pieces);
                *pieces = NULL;
                status = reel_fail(err, "%s: cannot read /pieces: the file is corrupt", path);
            }
        }
        if (space >= 0) REEL_H5_CHECK(H5Sclose(space));
        if (dataset >= 0) REEL_H5_CHECK(H5Dclose(dataset));
    }
    H5Eclear2(H5E_DEFAULT);
    REEL_H5_CHECK(reel_h5_close_file(file));
    return status;
}

int reel_checkpoint_read_vocab(const char *path, reel_vocab *vocab, reel_error *err) {
    memset(vocab, 0, sizeof *vocab);
    char *text;
    if (read_text(path, "vocab", 0, &text, err) != 0) return -1;
    if (!text) return 0;
    hid_t file = open_checkpoint(path, err);
    if (file < 0) {
        free(text);
        return -1;
    }
    int ok = reel_h5_read_u64_attr(file, "vocab_checksum", &vocab->checksum) == 0;
    if (file >= 0) REEL_H5_CHECK(reel_h5_close_file(file));
    if (!ok) {
        free(text);
        return reel_fail(err, "%s: root attribute 'vocab_checksum' is missing", path);
    }
    size_t lines = 0;
    for (const char *p = text; *p; p++) lines += *p == '\n';
    vocab->tokens = reel_malloc((lines ? lines : 1) * sizeof *vocab->tokens);
    vocab->counts = reel_calloc(lines ? lines : 1, sizeof *vocab->counts);
    char *line = text;
    for (size_t i = 0; i < lines; i++) {
        char *newline = strchr(line, '\n');
        size_t length = (size_t)(newline - line);
        vocab->tokens[i] = reel_malloc(length + 1);
        memcpy(vocab->tokens[i], line, length);
        vocab->tokens[i][length] = '\0';
        line = newline + 1;
    }
    vocab->size = lines;
    free(text);
    char *pieces = NULL;
    size_t pieces_bytes = 0;
    if (read_pieces(path, &pieces, &pieces_bytes, err) != 0) {
        reel_vocab_free(vocab);
        return -1;
    }
    if (pieces) {
        uint64_t stored = vocab->checksum;
        char vocab_name[REEL_PATH_MAX + 16], model_name[REEL_PATH_MAX + 16];
        snprintf(vocab_name, sizeof vocab_name, "%s:/vocab", path);
        snprintf(model_name, sizeof model_name, "%s:/pieces", path);
        int rc = reel_vocab_attach_pieces(vocab, pieces, pieces_bytes, vocab_name, model_name, err);
        free(pieces);
        if (rc != 0) {
            reel_vocab_free(vocab);
            return -1;
        }
        vocab->checksum = stored; /* the data's, as for words */
    }
    return 0;
}

int reel_checkpoint_check_tokenizer(const char *path, const reel_vocab *vocab, const char *vocab_path,
                                    reel_error *err) {
    hid_t file = open_checkpoint(path, err);
    if (file < 0) return -1;
    char tokenizer[32] = "word"; /* files from before pieces */
    if (H5Aexists(file, "tokenizer") > 0) reel_h5_read_string_attr(file, "tokenizer", tokenizer, sizeof tokenizer);
    uint64_t theirs = 0;
    int has_checksum = H5Aexists(file, "pieces_checksum") > 0 && reel_h5_read_u64_attr(file, "pieces_checksum", &theirs) == 0;
    REEL_H5_CHECK(reel_h5_close_file(file));
    const char *ours = reel_vocab_tokenizer(vocab);
    char shown[REEL_QUOTE_MAX];
    if (strcmp(tokenizer, ours) != 0)
        return reel_fail(err, "%s was trained on %s tokens, but %s is a vocabulary of %s tokens: the token files and the "
                         "checkpoint come from different tokenizers (re-run `reel prep` with the checkpoint's, or use "
                         "its data directory)", path, reel_escape_string(shown, sizeof shown, tokenizer), vocab_path, ours);
    if (vocab->pieces) {
        uint64_t mine = XXH64(vocab->pieces, vocab->pieces_bytes, 0);
        if (!has_checksum || theirs != mine)
            return reel_fail(err, "%s and %s use two different SentencePiece models (the checkpoint's /pieces has checksum "
                             "%016" PRIx64 ", the data's " REEL_PIECES_FILE " %016" PRIx64 "): the same ids mean other "
                             "pieces", path, vocab_path, theirs, mine);
    }
    return 0;
}

/* ---- the run directory ---- */

void reel_checkpoint_numbered_path(char *path, size_t path_size, const char *run_dir, uint64_t step) {
    snprintf(path, path_size, "%s/ckpt_%08" PRIu64 ".h5", run_dir, step);
}

static int parse_numbered(const char *name, uint64_t *step) {
    /* exactly ckpt_<digits>.h5: temporaries (.h5.tmp) and ckpt_best.h5 do not count */
    const char *digits = name + 5;
    if (strncmp(name, "ckpt_", 5) != 0) return 0;
    size_t n = strspn(digits, "0123456789");
    if (n == 0 || strcmp(digits + n, ".h5") != 0) return 0;
    *step = strtoull(digits, NULL, 10);
    return 1;
}

typedef struct {
    uint64_t step;
    char *path;
} numbered_entry;

static int by_step_descending(const void *a, const void *b) {
    uint64_t x = ((const numbered_entry *)a)->step, y = ((const numbered_entry *)b)->step;
    return x < y ? 1 : x > y ? -1 : 0;
}

size_t reel_checkpoint_list(const char *run_dir, char ***paths) {
    *paths = NULL;
    DIR *dir = opendir(run_dir);
    if (!dir) return 0;
    numbered_entry *entries = NULL;
    size_t count = 0, capacity = 0;
    for (struct dirent *entry; (entry = readdir(dir));) {
        uint64_t step;
        if (!parse_numbered(entry->d_name, &step)) continue;
        if (count == capacity) {
            capacity = capacity ? 2 * capacity : 16;
            entries = reel_realloc(entries, capacity * sizeof *entries);
        }
        size_t length = strlen(run_dir) + strlen(entry->d_name) + 2;
        entries[count].path = reel_malloc(length);
        snprintf(entries[count].path, length, "%s/%s", run_dir, entry->d_name);
        entries[count++].step = step;
    }
    closedir(dir);
    if (count > 1) qsort(entries, count, sizeof *entries, by_step_descending); /* entries is NULL when empty */
    if (count) *paths = reel_malloc(count * sizeof **paths);
    for (size_t i = 0; i < count; i++) (*paths)[i] = entries[i].path;
    free(entries);
    return count;
}

int reel_checkpoint_latest(const char *run_dir, char *path, size_t path_size, int *found, reel_error *err) {
    char **paths;
    size_t count = reel_checkpoint_list(run_dir, &paths);
    *found = count > 0;
    if (count) snprintf(path, path_size, "%s", paths[0]);
    for (size_t i = 0; i < count; i++) free(paths[i]);
    free(paths);
    (void)err;
    return 0;
}

void reel_checkpoint_prune(const char *run_dir, size_t keep_last) {
    char **paths;
    size_t count = reel_checkpoint_list(run_dir, &paths);
    for (size_t i = 0; i < count; i++) {
        if (i >= keep_last && unlink(paths[i]) != 0) reel_warn("could not delete old checkpoint %s: %s", paths[i], strerror(errno));
        free(paths[i]);
    }
    free(paths);
}

size_t reel_checkpoint_move_after(const char *run_dir, uint64_t step, const char *dest_dir, uint64_t *lowest,
                                  uint64_t *highest) {
    char **paths;
    size_t count = reel_checkpoint_list(run_dir, &paths), moved = 0;
    *lowest = *highest = 0;
    for (size_t i = 0; i < count; i++) {
        const char *slash = strrchr(paths[i], '/'), *name = slash ? slash + 1 : paths[i];
        uint64_t at;
        if (parse_numbered(name, &at) && at > step) {
            if (moved == 0 && mkdir(dest_dir, 0777) != 0 && errno != EEXIST)
                REEL_FATAL("check the run directory's permissions and space, or use a new [train] run_dir",
                           "cannot create %s: %s", dest_dir, strerror(errno));
            char target[2 * REEL_PATH_MAX + 8];
            snprintf(target, sizeof target, "%.*s/%s", REEL_PATH_MAX, dest_dir, name);
            if (rename(paths[i], target) != 0) {
                /* left behind, a later step of another run would be resumed from: stop rather than mix */
                REEL_FATAL("move it away by hand, or use a new [train] run_dir", "cannot move %s to %s: %s", paths[i],
                           target, strerror(errno));
            }
            if (moved++ == 0) *highest = at; /* the list goes from the newest down */
            *lowest = at;
        }
        free(paths[i]);
    }
    free(paths);
    return moved;
}

int reel_checkpoint_read_step(const char *path, uint64_t *step, reel_error *err) {
    hid_t file = open_checkpoint(path, err);
    if (file < 0) return -1;
    hid_t group = H5Lexists(file, "train_state", H5P_DEFAULT) > 0 ? H5Gopen2(file, "train_state", H5P_DEFAULT) : -1;
    int ok = group >= 0 && reel_h5_read_u64_attr(group, "global_step", step) == 0;
    if (group >= 0) REEL_H5_CHECK(H5Gclose(group));
    REEL_H5_CHECK(reel_h5_close_file(file));
    return ok ? 0 : reel_fail(err, "%s: /train_state lacks its 'global_step' attribute", path);
}

/* ---- description (reel inspect) ---- */

typedef struct {
    const char *path;
    size_t datasets;
    uint64_t floats;
    int failed;
    reel_error *err;
} describe_walk;

static herr_t describe_object(hid_t root, const char *name, const H5O_info_t *info, void *data) {
    describe_walk *walk = data;
    if (info->type != H5O_TYPE_DATASET || strcmp(name, "config") == 0 || strcmp(name, "vocab") == 0 ||
        strcmp(name, "labels") == 0 || strcmp(name, "pieces") == 0 || walk->failed)
        return 0;
    hid_t dataset = H5Dopen2(root, name, H5P_DEFAULT);
    hid_t space = H5Dget_space(dataset);
    hsize_t dims[8] = {0};
    int ndim = H5Sget_simple_extent_ndims(space);
    if (ndim > 0 && ndim <= 8) H5Sget_simple_extent_dims(space, dims, NULL);
    hssize_t count = H5Sget_simple_extent_npoints(space);
    char shape[128] = "";
    for (int d = 0; d < ndim && d < 8; d++)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%llu", d ? ", " : "", (unsigned long long)dims[d]);
    /* A checkpoint stores every value: an extent beyond what the file holds is damage, and would read as
     * fill values into as much memory as it claims. */
    hsize_t stored = dataset >= 0 ? reel_h5_stored_elements(dataset) : 0;
    if (dataset >= 0 && count >= 0 && ((hsize_t)count > stored || (uint64_t)count > SIZE_MAX / sizeof(float))) {
        reel_fail(walk->err, "%s: dataset /%s claims %lld values, but the file stores at most %llu: the file is "
                  "truncated or damaged", walk->path, name, (long long)count, (unsigned long long)stored);
        walk->failed = 1;
        if (space >= 0) REEL_H5_CHECK(H5Sclose(space));
        if (dataset >= 0) REEL_H5_CHECK(H5Dclose(dataset));
        return 0;
    }
    /* Reading every value is what verifies the Fletcher-32 checksums. Not reel_malloc: a dataset too big
     * for the memory is reported with the file's name, not as the run being too big. */
    float *values = malloc((size_t)(count > 0 ? count : 1) * sizeof(float));
    double sum_squares = 0;
    herr_t status = values ? H5Dread(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) : -1;
    if (!values) {
        reel_fail(walk->err, "%s: dataset /%s has %lld values, more than there is memory for", walk->path, name,
                  (long long)count);
        walk->failed = 1;
    } else if (status < 0) {
        char reason[256];
        reel_h5_reason(reason, sizeof reason);
        reel_fail(walk->err, "%s: cannot read dataset /%s (%s): the file is corrupt", walk->path, name, reason);
        walk->failed = 1;
    } else {
        for (hssize_t i = 0; i < count; i++) sum_squares += (double)values[i] * values[i];
        printf("  /%-44s [%s]  rms %.4g\n", name, shape, count > 0 ? sqrt(sum_squares / (double)count) : 0.0);
        walk->datasets++;
        if (strncmp(name, "model/", 6) == 0) walk->floats += (uint64_t)count;
    }
    free(values);
    if (space >= 0) REEL_H5_CHECK(H5Sclose(space));
    if (dataset >= 0) REEL_H5_CHECK(H5Dclose(dataset));
    return 0;
}

static void print_attributes(hid_t object, const char *label) {
    H5O_info_t info;
    REEL_H5_CHECK(H5Oget_info2(object, &info, H5O_INFO_NUM_ATTRS));
    printf("%s\n", label);
    for (hsize_t i = 0; i < info.num_attrs; i++) {
        hid_t attr = H5Aopen_by_idx(object, ".", H5_INDEX_CRT_ORDER, H5_ITER_INC, i, H5P_DEFAULT, H5P_DEFAULT);
        if (attr < 0) attr = H5Aopen_by_idx(object, ".", H5_INDEX_NAME, H5_ITER_INC, i, H5P_DEFAULT, H5P_DEFAULT);
        char name[128];
        REEL_H5_CHECK(H5Aget_name(attr, sizeof name, name));
        hid_t type = H5Aget_type(attr);
        char text[256];
        if (H5Tget_class(type) == H5T_STRING) {
            reel_h5_read_string_attr(object, name, text, sizeof text);
        } else if (H5Tget_class(type) == H5T_FLOAT) {
            double value = 0;
            reel_h5_read_f64_attr(object, name, &value);
            snprintf(text, sizeof text, "%.6g", value);
        } else {
            uint64_t value = 0;
            reel_h5_read_u64_attr(object, name, &value);
            snprintf(text, sizeof text, "%" PRIu64, value);
        }
        printf("  %-22s %s\n", name, text);
        if (type >= 0) REEL_H5_CHECK(H5Tclose(type));
        if (attr >= 0) REEL_H5_CHECK(H5Aclose(attr));
    }
}

int reel_checkpoint_describe(const char *path, reel_error *err) {
    hid_t file = open_checkpoint(path, err);
    if (file < 0) return -1;
    printf("checkpoint %s\n", path);
    print_attributes(file, "attributes:");
    const char *groups[] = {"train_state", "optimizer"};
    for (size_t g = 0; g < 2; g++) {
        if (H5Lexists(file, groups[g], H5P_DEFAULT) <= 0) continue;
        hid_t group = H5Gopen2(file, groups[g], H5P_DEFAULT);
        char label[64];
        snprintf(label, sizeof label, "/%s:", groups[g]);
        print_attributes(group, label);
        if (group >= 0) REEL_H5_CHECK(H5Gclose(group));
    }
    printf("tensors:\n");
    describe_walk walk = {path, 0, 0, 0, err};
    REEL_H5_CHECK(H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_INC, describe_object, &walk, H5O_INFO_BASIC));
    if (file >= 0) REEL_H5_CHECK(reel_h5_close_file(file));
    if (walk.failed) return -1;
    printf("%zu datasets, %" PRIu64 " model values, all checksums verified\n", walk.datasets, walk.floats);
    char *config = NULL;
    if (reel_checkpoint_read_config(path, &config, err) != 0) return -1;
    printf("configuration:\n%s", config);
    free(config);
    return 0;
}
