/* reel inspect: recognises a file by its first bytes and prints a summary, validating as it reads. */
#include <getopt.h>
#include <hdf5.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "io/h5util.h"
#include "reel/checkpoint.h"
#include "reel/tokfile.h"
#include "reel/vocab.h"

static void usage(FILE *out) {
    fputs("usage: reel inspect FILE...\n"
          "\n"
          "Prints a summary of each FILE and validates it completely:\n"
          "  checkpoint (ckpt_*.h5)  attributes, training state, every tensor with its shape (reading each one\n"
          "                          verifies its checksum), and the stored configuration\n"
          "  metrics.h5              the series and their row counts, and the latest rows (safe while a job\n"
          "                          is writing it)\n"
          "  token file (*.tok)      header, document length statistics, and a check of every token id\n"
          "  vocab.txt               size, checksum and the most frequent tokens\n"
          "\n"
          "options:\n"
          "  -h, --help   this text\n"
          "\n"
          "Exit status 1 if any file is invalid.\n",
          out);
}

static int inspect_tokfile(const char *path, reel_error *err) {
    reel_tokfile *file;
    if (reel_tokfile_open(&file, path, err) != 0) return -1;
    const reel_tokfile_header *info = reel_tokfile_info(file);
    printf("token file %s\n  format version %" PRIu32 "\n  documents      %" PRIu64 "\n  tokens         %" PRIu64
           "\n  vocabulary     %" PRIu32 " (checksum %016" PRIx64 ")\n  classes        %" PRIu32 "\n",
           path, info->version, info->num_docs, info->num_tokens, info->vocab_size, info->vocab_checksum,
           info->num_classes);
    if (reel_tokfile_validate_all(file, err) != 0) {
        reel_tokfile_close(file);
        return -1;
    }
    size_t shortest = SIZE_MAX, longest = 0, empty = 0;
    uint64_t per_class[16] = {0};
    for (uint64_t d = 0; d < info->num_docs; d++) {
        const uint32_t *ids;
        size_t length;
        int32_t label;
        reel_tokfile_doc(file, d, &ids, &length, &label, err);
        if (length < shortest) shortest = length;
        if (length > longest) longest = length;
        empty += length == 0;
        if (label >= 0 && label < 16) per_class[label]++;
    }
    if (info->num_docs)
        printf("  length         min %zu, mean %.1f, max %zu tokens; %zu empty\n", shortest,
               (double)info->num_tokens / (double)info->num_docs, longest, empty);
    for (uint32_t c = 0; c < info->num_classes && c < 16; c++) printf("  class %-8" PRIu32 " %" PRIu64 " documents\n", c, per_class[c]);
    printf("  every token id is valid\n");
    reel_tokfile_close(file);
    return 0;
}

static int inspect_vocab(const char *path, reel_error *err) {
    reel_vocab vocab;
    if (reel_vocab_load(&vocab, path, err) != 0) return -1;
    printf("vocabulary %s\n  entries   %zu\n  checksum  %016" PRIx64 "\n", path, vocab.size, vocab.checksum);
    /* words are listed by count; pieces in the model's id order, so their 20 most frequent are found */
    size_t shown[20], count = 0;
    for (size_t i = REEL_VOCAB_RESERVED; i < vocab.size; i++) {
        if (!vocab.pieces) {
            if (count == 20) break;
            shown[count++] = i;
            continue;
        }
        size_t at = count < 20 ? count++ : 20;
        while (at > 0 && vocab.counts[shown[at - 1]] < vocab.counts[i]) {
            if (at < 20) shown[at] = shown[at - 1];
            at--;
        }
        if (at < 20) shown[at] = i;
    }
    if (vocab.pieces)
        printf("  tokenizer sentencepiece (%s beside it, %zu bytes)\n", REEL_PIECES_FILE, vocab.pieces_bytes);
    printf("  most frequent:");
    for (size_t k = 0; k < count; k++) printf(" %s(%" PRIu64 ")", vocab.tokens[shown[k]], vocab.counts[shown[k]]);
    printf("\n");
    reel_vocab_free(&vocab);
    return 0;
}

static herr_t print_series(hid_t root, const char *name, const H5O_info_t *info, void *data) {
    (void)data;
    if (info->type != H5O_TYPE_DATASET) return 0;
    hid_t dataset = H5Dopen2(root, name, H5P_DEFAULT);
    hid_t space = H5Dget_space(dataset);
    hsize_t rows = 0;
    H5Sget_simple_extent_dims(space, &rows, NULL);
    printf("  /%-22s %llu rows", name, (unsigned long long)rows);
    if (rows > 0) {
        double last = 0;
        hsize_t start = rows - 1, count = 1;
        hid_t memory = H5Screate_simple(1, &count, NULL);
        H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, NULL, &count, NULL);
        if (H5Dread(dataset, H5T_NATIVE_DOUBLE, memory, space, H5P_DEFAULT, &last) >= 0) printf(", latest %.6g", last);
        H5Sclose(memory);
    }
    printf("\n");
    H5Sclose(space);
    H5Dclose(dataset);
    return 0;
}

static int inspect_hdf5(const char *path, reel_error *err) {
    reel_h5_quiet();
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
    if (file < 0) file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        char reason[256];
        reel_h5_reason(reason, sizeof reason);
        return reel_fail(err, "%s: not a readable HDF5 file (%s)", path, reason);
    }
    char format[64] = "";
    reel_h5_read_string_attr(file, "format", format, sizeof format);
    if (strcmp(format, REEL_CHECKPOINT_FORMAT) == 0) {
        reel_h5_close_file(file);
        return reel_checkpoint_describe(path, err);
    }
    if (strcmp(format, "reel-metrics") == 0) {
        printf("metrics %s\n", path);
        H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_INC, print_series, NULL, H5O_INFO_BASIC);
        reel_h5_close_file(file);
        return 0;
    }
    reel_h5_close_file(file);
    return reel_fail(err, "%s: an HDF5 file, but neither a reel checkpoint nor a reel metrics file", path);
}

static int inspect_one(const char *path, reel_error *err) {
    FILE *file = fopen(path, "rb");
    if (!file) return reel_fail(err, "%s: cannot open", path);
    unsigned char magic[8] = {0};
    size_t got = fread(magic, 1, sizeof magic, file);
    fclose(file);
    if (got == 8 && memcmp(magic, "\x89HDF\r\n\x1a\n", 8) == 0) return inspect_hdf5(path, err);
    if (got == 8 && memcmp(magic, REEL_TOKFILE_MAGIC, 8) == 0) return inspect_tokfile(path, err);
    size_t length = strlen(path);
    if (length >= 4 && strcmp(path + length - 4, ".txt") == 0) return inspect_vocab(path, err);
    if (length >= 4 && strcmp(path + length - 4, ".tok") == 0) return inspect_tokfile(path, err);
    return reel_fail(err, "%s: not a file reel knows (expected a checkpoint or metrics .h5, a .tok file or vocab.txt)", path);
}

int reel_cmd_inspect(int argc, char **argv) {
    static const struct option options[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    if (reel_cli_rank() != 0) return 0;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", options, NULL)) != -1;) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        usage(stderr);
        return 2;
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    int status = 0;
    for (int i = optind; i < argc; i++) {
        reel_error err = {{0}};
        if (inspect_one(argv[i], &err) != 0) {
            fprintf(stderr, "reel: error: %s\n", err.message);
            status = 1;
        }
    }
    return status;
}
