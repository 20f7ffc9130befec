/* reel export: what other tools read. `text`: a prepared corpus as the text reel tokenized (one document
 * per line), for example for fastText to train word vectors on; `vectors`: a checkpoint's embedding in
 * the .vec text format. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "reel/comm.h"
#include "reel/loader.h"
#include "reel/tokfile.h"
#include "reel/vectors.h"

static void usage(FILE *out) {
    fputs("usage: reel export text DATA_DIR OUT.txt [--splits train,valid,unsup]\n"
          "       reel export vectors CHECKPOINT.h5 OUT.vec\n"
          "\n"
          "text     writes the documents of the token files of a `reel prep` directory as the tokens reel made of\n"
          "         them, separated by spaces, one document per line (words outside the vocabulary as <unk>):\n"
          "         a corpus for other tools, e.g. `fasttext skipgram -input OUT.txt -output vectors -dim 300`,\n"
          "         whose vectors [model] embed_from then reads. Default splits: train,valid,unsup (the\n"
          "         splits the directory lacks are skipped). A directory of SentencePiece pieces is written as\n"
          "         its pieces (U+2581 marking a space), the units its models read.\n"
          "vectors  writes the embedding of a checkpoint (a classifier's or a language model's) as word2vec /\n"
          "         fastText text: a header '<words> <width>', then one word and its values per line.\n"
          "\n"
          "options:\n"
          "  --splits LIST   text: the splits to write, comma-separated (default train,valid,unsup)\n"
          "  -h, --help      this text\n",
          out);
}

static int export_text(const char *dir, const char *out_path, const char *splits, reel_error *err) {
    char path[REEL_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    reel_vocab vocab;
    if (reel_vocab_load(&vocab, path, err) != 0) return -1;
    char temporary[REEL_PATH_MAX + 8];
    snprintf(temporary, sizeof temporary, "%s.tmp", out_path);
    FILE *out = fopen(temporary, "wb");
    if (!out) {
        reel_vocab_free(&vocab);
        return reel_fail(err, "%s: cannot create: %s", temporary, strerror(errno));
    }
    char names[16][REEL_NAME_MAX];
    int count = reel_config_split_list(splits, "--splits", names, 16, err), status = count < 0 ? -1 : 0;
    size_t docs = 0, tokens = 0;
    for (int s = 0; s < count && status == 0; s++) {
        snprintf(path, sizeof path, "%s/%s.tok", dir, names[s]);
        FILE *probe = fopen(path, "rb");
        if (!probe) continue; /* a split this corpus does not have */
        fclose(probe);
        reel_tokfile *file;
        if (reel_tokfile_open(&file, path, err) != 0) {
            status = -1;
            break;
        }
        if (reel_tokfile_info(file)->vocab_checksum != vocab.checksum) {
            status = reel_fail(err, "%s was made with another vocabulary than %s/vocab.txt", path, dir);
            reel_tokfile_close(file);
            break;
        }
        for (uint64_t d = 0; d < reel_tokfile_info(file)->num_docs && status == 0; d++) {
            const uint32_t *ids;
            size_t length;
            int32_t label;
            if (reel_tokfile_doc(file, d, &ids, &length, &label, err) != 0) {
                status = -1;
                break;
            }
            for (size_t k = 0; k < length; k++) {
                if (k) fputc(' ', out);
                fputs(vocab.tokens[ids[k]], out);
            }
            fputc('\n', out);
            docs++, tokens += length;
        }
        reel_tokfile_close(file);
    }
    if (fclose(out) != 0 && status == 0) status = reel_fail(err, "%s: write failed: %s", temporary, strerror(errno));
    if (status == 0 && rename(temporary, out_path) != 0)
        status = reel_fail(err, "%s: cannot rename into place: %s", out_path, strerror(errno));
    if (status != 0) remove(temporary);
    else printf("%s: %zu documents, %zu tokens\n", out_path, docs, tokens);
    reel_vocab_free(&vocab);
    return status;
}

static int export_vectors(const char *checkpoint, const char *out_path, reel_error *err) {
    reel_trained trained;
    reel_load_options load = {NULL, 0, 1};
    if (reel_trained_load(&trained, checkpoint, &load, err) != 0) return -1;
    size_t index = reel_store_find(&trained.model->params, REEL_TENSOR_EMBEDDING);
    int status = -1;
    if (index == (size_t)-1) {
        reel_fail(err, "%s: the model has no embedding/weight", checkpoint);
    } else {
        const reel_tensor_info *info = &trained.model->params.tensors[index];
        /* the word rows only: the bag of words' n-gram buckets (after them) are no word's */
        size_t rows = trained.model->vocab_size;
        status = reel_vectors_save(out_path, &trained.vocab, reel_store_view(&trained.model->params, index), rows,
                                   info->shape[1], err);
        if (status == 0) printf("%s: %zu vectors of width %zu\n", out_path, rows, info->shape[1]);
    }
    reel_trained_free(&trained);
    return status;
}

static int export_main(int argc, char **argv) {
    static const struct option options[] = {{"splits", required_argument, NULL, 's'}, {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *splits = "train,valid,unsup";
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
        switch (c) {
        case 's': splits = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    reel_error err = {{0}};
    if (argc - optind == 3 && strcmp(argv[optind], "text") == 0)
        return export_text(argv[optind + 1], argv[optind + 2], splits, &err) ? reel_cli_report(&err, NULL) : 0;
    if (argc - optind == 3 && strcmp(argv[optind], "vectors") == 0)
        return export_vectors(argv[optind + 1], argv[optind + 2], &err) ? reel_cli_report(&err, NULL) : 0;
    usage(stderr);
    return 2;
}

int reel_cmd_export(int argc, char **argv) { return reel_comm_run_on_rank0(export_main, argc, argv); }
