/* dump_batch CONFIG.ini OUT.h5 [DOCS] [TOKENS] [SPREAD]: builds the model CONFIG.ini describes,
 * initialised from its seed, runs one training forward and backward (the trainer's loss, mean over the
 * batch: binary cross-entropy on one logit, softmax cross-entropy on K when [model] num_classes > 2; a
 * language model: the mean next-token cross-entropy over the batch's predictions) on the first DOCS
 * (default 8) training documents cut to their first TOKENS (default 30) tokens (a language model reads
 * each as <eod> d_1 ... d_n <eod> and predicts its first TOKENS next tokens), and writes everything an
 * independent implementation needs to check reel against it:
 *   /batch/ids (B, T) int64, padded with 0     /batch/lengths (B) int64
 *   /batch/labels (B) float32 (classifiers)    /batch/targets (B, T) int64 (language models)
 *   /params/<tensor>   /grads/<tensor>         (reel's names, e.g. lstm_l0_fwd/w_ih, real shapes)
 *   /state/<tensor>    the model's state after the forward: batch-norm running statistics (updated by
 *                      this training forward), the bag of words' Naive-Bayes ratios (nb/ratio, counted
 *                      from the training split before the step, as the trainer does)
 *   /out/logits (B), or (B, K) for K > 2 classes; language models (T, B, K) whatever the model's row
 *               layout (read through reel_output_row), 0 at padding
 *   /out/loss (scalar)
 * SPREAD (default 0: the parameters as the model initialises them) adds N(0, SPREAD^2) noise to every
 * parameter after initialisation, from the config's seed: a GPT starts with zero biases, unit layer-norm
 * gains and near-uniform attention, under which a bias read from the wrong tensor or a wrong attention
 * scale changes nothing a comparison can see.
 * [train] precision is honoured as the trainer does (fp32, or bf16 matrix products); bf16 asked on a CPU
 * without native bf16 exits with status 77 and the reason (the caller skips that case).
 * Dropout must be 0 in the config (masks are reel's own random numbers). Used by tests/torch_parity.py. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/catalogue.h"
#include "reel/comm.h"
#include "reel/config.h"
#include "reel/data.h"
#include "reel/gemm.h"
#include "reel/layers.h"
#include "reel/model.h"
#include "reel/objective.h"
#include "reel/tokfile.h"
#include "reel/vocab.h"

static void write_array(hid_t file, const char *name, hid_t file_type, hid_t memory_type, int rank,
                        const hsize_t *dims, const void *data) {
    hid_t link = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(link, 1);
    hid_t space = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t dataset = H5Dcreate2(file, name, file_type, space, link, H5P_DEFAULT, H5P_DEFAULT);
    if (dataset < 0 || H5Dwrite(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        fprintf(stderr, "dump_batch: cannot write %s\n", name);
        exit(1);
    }
    H5Dclose(dataset);
    H5Sclose(space);
    H5Pclose(link);
}

static void write_store(hid_t file, const char *group, const reel_store *store, const float *buffer) {
    for (size_t i = 0; i < store->num_tensors; i++) {
        const reel_tensor_info *info = &store->tensors[i];
        hsize_t dims[REEL_TENSOR_MAX_DIMS];
        for (size_t d = 0; d < info->ndim; d++) dims[d] = info->shape[d];
        char name[256];
        snprintf(name, sizeof name, "%s/%s", group, info->name);
        write_array(file, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, (int)info->ndim, dims, buffer + info->offset);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: dump_batch CONFIG.ini OUT.h5 [DOCS] [TOKENS] [SPREAD]\n");
        return 2;
    }
    size_t docs = argc > 3 ? strtoull(argv[3], NULL, 10) : 8, tokens = argc > 4 ? strtoull(argv[4], NULL, 10) : 30;
    char *end = NULL;
    double spread = argc > 5 ? strtod(argv[5], &end) : 0.0;
    if (argc > 5 && (end == argv[5] || *end || !(spread >= 0))) {
        fprintf(stderr, "dump_batch: SPREAD '%s': expected a standard deviation >= 0\n", argv[5]);
        return 2;
    }
    MPI_Init(&argc, &argv);
    reel_error err = {{0}};
    reel_config cfg;
    if (reel_config_load_file(&cfg, argv[1], &err) != 0) reel_die(&err, NULL);
    char path[2 * REEL_PATH_MAX];
    snprintf(path, sizeof path, "%s/vocab.txt", cfg.data.dir);
    reel_vocab vocab;
    if (reel_vocab_load(&vocab, path, &err) != 0) reel_die(&err, NULL);
    if (cfg.model.vocab_size > vocab.size) cfg.model.vocab_size = vocab.size;
    snprintf(path, sizeof path, "%s/train.tok", cfg.data.dir);
    reel_tokfile *file;
    if (reel_tokfile_open(&file, path, &err) != 0) reel_die(&err, NULL);
    if (strcmp(cfg.train.precision, "bf16") == 0 && !reel_bf16_supported()) {
        fprintf(stderr, "dump_batch: %s asks [train] precision = bf16, but this CPU (%s) has no native bf16 products\n",
                argv[1], reel_cpu_isa_name());
        MPI_Finalize();
        return 77;
    }
    reel_precision precision;
    if (reel_precision_choose("[train] precision", " = ", cfg.train.precision, &precision, &err) != 0)
        reel_die(&err, NULL);
    reel_gemm_set_precision(precision);
    reel_model *model;
    if (reel_model_create(&model, &cfg, docs, &err) != 0) reel_die(&err, NULL);
    model->ops->init(model, cfg.train.seed);
    /* statistics of the training split the model keeps (the trainer computes them before the first step) */
    if (model->ops->prepare && model->ops->prepare(model, file, &err) != 0) reel_die(&err, NULL);
    if (spread > 0) {
        size_t n = model->params.num_floats;
        float *noise = malloc(n * sizeof *noise);
        /* a stream number no tensor of any model uses (init keys tensor i by its index) */
        reel_init_normal(noise, n, (float)spread, cfg.train.seed, 0xffffffffu);
        for (size_t i = 0; i < n; i++) model->params.data[i] += noise[i];
        free(noise);
    }
    /* as the trainer: bf16 copies of the weights, made once for this step */
    reel_gemm_set_params(model->params.data, model->params.num_floats);
    reel_gemm_params_changed();

    uint64_t *indices = malloc(docs * sizeof *indices);
    for (size_t i = 0; i < docs; i++) indices[i] = i;
    reel_batch_buffer buffer = {0};
    reel_comm comm;
    reel_comm_self(&comm);
    size_t K = model->num_outputs, T = 0;
    float *logits = NULL, *dlogits = NULL;
    double loss;
    memset(model->params.grad, 0, model->params.num_floats * sizeof(float));
    reel_output output;
    int lm = model->output == REEL_OUTPUT_TOKEN;
    if (!lm) {
        if (reel_batch_gather(&buffer, file, indices, docs, model->vocab_size, tokens, 0, 0, 0, &err) != 0)
            reel_die(&err, NULL);
        dlogits = calloc(docs * K, sizeof *dlogits);
        model->ops->forward(model, &buffer.batch, 1, &output, &comm);
        logits = malloc(docs * K * sizeof *logits);
        memcpy(logits, output.logits, docs * K * sizeof *logits);
        /* the mean loss the trainer uses: BCE on one logit, softmax cross-entropy on K */
        loss = reel_classify_loss(dlogits, logits, buffer.labels, docs, K, 1.0f / (float)docs, NULL) / (double)docs;
        model->ops->backward(model, &buffer.batch, dlogits, &comm);
    } else {
        /* next-token batch as the window sampler frames a document, <eod> d_1 ... d_n <eod>, from its start:
         * the first min(TOKENS, n + 1) predictions */
        reel_batch_begin(&buffer, docs, 0, 0);
        size_t total = 0;
        for (size_t b = 0; b < docs; b++) {
            const uint32_t *ids;
            size_t n;
            int32_t label;
            if (reel_tokfile_doc(file, b, &ids, &n, &label, &err) != 0) reel_die(&err, NULL);
            size_t count = n + 1 < tokens ? n + 1 : tokens;
            uint32_t *in, *target;
            reel_batch_append(&buffer, count, b, &in, &target);
            for (size_t k = 0; k < count; k++) {
                in[k] = k == 0 ? REEL_TOKEN_EOD : ids[k - 1] < model->vocab_size ? ids[k - 1] : REEL_TOKEN_UNK;
                target[k] = k == n ? REEL_TOKEN_EOD : ids[k] < model->vocab_size ? ids[k] : REEL_TOKEN_UNK;
            }
            total += count;
        }
        reel_batch_finish(&buffer);
        model->ops->forward(model, &buffer.batch, 1, &output, &comm);
        size_t N = output.rows, D = output.features_dim, B = output.B;
        T = output.T;
        /* the targets in the output's own row order (time- or batch-major: reel_output_row) */
        uint32_t *tm = calloc(N, sizeof *tm);
        for (size_t b = 0; b < B; b++)
            for (size_t k = 0; k < buffer.offsets[b + 1] - buffer.offsets[b]; k++)
                tm[reel_output_row(&output, k, b)] = buffer.targets[buffer.offsets[b] + k];
        /* logits (T, B, K) of the valid steps, 0 at padding, the plain way: one row at a time, so the dump's
         * layout is (T, B, K) whichever order the model keeps its rows in */
        logits = calloc(N * K, sizeof *logits);
        for (size_t t = 0; t < T; t++)
            for (size_t b = 0; b < B; b++) {
                size_t r = reel_output_row(&output, t, b);
                if (output.row_mask[r])
                    reel_linear_forward(logits + (t * B + b) * K, output.features + r * D, output.weight, output.bias,
                                        1, D, K);
            }
        float *scratch = malloc(reel_decoder_scratch_floats(64, D, K) * sizeof *scratch), *dfeatures = malloc(N * D * sizeof *dfeatures);
        loss = reel_decoder_softmax(dfeatures, output.dweight, output.dbias, NULL, output.features, output.weight,
                                    output.bias, tm, output.row_mask, N, D, K, 1.0f / (float)total, scratch, 64) /
               (double)total;
        model->ops->backward(model, &buffer.batch, dfeatures, &comm);
        free(scratch), free(dfeatures), free(tm);
    }

    size_t longest = 0;
    for (size_t b = 0; b < docs; b++)
        if (buffer.offsets[b + 1] - buffer.offsets[b] > longest) longest = buffer.offsets[b + 1] - buffer.offsets[b];
    if (!lm) T = longest;
    int64_t *ids = calloc(docs * (T ? T : 1), sizeof *ids), *lengths = calloc(docs, sizeof *lengths);
    int64_t *targets = calloc(docs * (T ? T : 1), sizeof *targets);
    for (size_t b = 0; b < docs; b++) {
        lengths[b] = (int64_t)(buffer.offsets[b + 1] - buffer.offsets[b]);
        for (size_t t = 0; t < (size_t)lengths[b]; t++) {
            ids[b * T + t] = buffer.ids[buffer.offsets[b] + t];
            if (lm) targets[b * T + t] = buffer.targets[buffer.offsets[b] + t];
        }
    }
    hid_t out = H5Fcreate(argv[2], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t bt[2] = {docs, T}, b1[1] = {docs}, bk[2] = {docs, K}, tbk[3] = {T, docs, K};
    write_array(out, "batch/ids", H5T_STD_I64LE, H5T_NATIVE_INT64, 2, bt, ids);
    write_array(out, "batch/lengths", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, b1, lengths);
    if (lm) {
        write_array(out, "batch/targets", H5T_STD_I64LE, H5T_NATIVE_INT64, 2, bt, targets);
        write_array(out, "out/logits", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, tbk, logits);
    } else {
        write_array(out, "batch/labels", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, b1, buffer.labels);
        write_array(out, "out/logits", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, K == 1 ? 1 : 2, K == 1 ? b1 : bk, logits);
    }
    write_array(out, "out/loss", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL, &loss);
    write_store(out, "params", &model->params, model->params.data);
    write_store(out, "grads", &model->params, model->params.grad);
    write_store(out, "state", &model->state, model->state.data);
    H5Fclose(out);
    printf("dump_batch: %zu documents of up to %zu tokens, loss %.6f -> %s\n", docs, T, loss, argv[2]);
    reel_batch_buffer_free(&buffer);
    reel_model_destroy(model);
    reel_tokfile_close(file);
    reel_vocab_free(&vocab);
    reel_gemm_set_params(NULL, 0);
    reel_gemm_release();
    free(indices), free(dlogits), free(logits), free(ids), free(lengths), free(targets);
    MPI_Finalize();
    return 0;
}
