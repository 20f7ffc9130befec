/* The token-file reader on any bytes: it opens a file or says why not; once open, every document reads
 * (or is reported bad) without reading outside the file. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_common.h"
#include "reel/tokfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_file(data, size, ".tok");
    reel_tokfile *file;
    reel_error err = {{0}};
    if (reel_tokfile_open(&file, path, &err) != 0) {
        FUZZ_ASSERT(err.message[0] != '\0');
        return 0;
    }
    const reel_tokfile_header *h = reel_tokfile_info(file);
    uint64_t tokens = 0;
    for (uint64_t d = 0; d < h->num_docs && d < 100000; d++) {
        const uint32_t *ids;
        size_t length;
        int32_t label;
        if (reel_tokfile_doc(file, d, &ids, &length, &label, &err) != 0) break;
        FUZZ_ASSERT(length == reel_tokfile_doc_length(file, d));
        FUZZ_ASSERT(h->num_classes == 0 ? label == -1 : (label >= 0 && (uint32_t)label < h->num_classes));
        FUZZ_ASSERT(label == reel_tokfile_label(file, d));
        for (size_t i = 0; i < length; i++) FUZZ_ASSERT(ids[i] < h->vocab_size);
        tokens += length;
    }
    FUZZ_ASSERT(tokens <= h->num_tokens);
    reel_tokfile_close(file);
    return 0;
}
