/* The vocabulary reader on any bytes: it loads (reserved ids in place, one token per line, a lookup that
 * finds every token at its id) or says which line is wrong. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "reel/vocab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_file(data, size, ".txt");
    reel_vocab vocab;
    reel_error err = {{0}};
    if (reel_vocab_load(&vocab, path, &err) != 0) {
        FUZZ_ASSERT(err.message[0] != '\0');
        return 0;
    }
    FUZZ_ASSERT(vocab.size >= REEL_VOCAB_RESERVED);
    FUZZ_ASSERT(strcmp(vocab.tokens[REEL_TOKEN_PAD], "<pad>") == 0 && strcmp(vocab.tokens[REEL_TOKEN_EOD], "<eod>") == 0);
    reel_vocab_index index;
    reel_vocab_index_build(&index, &vocab);
    for (size_t i = 0; i < vocab.size; i++)
        FUZZ_ASSERT(reel_vocab_find(&index, vocab.tokens[i], strlen(vocab.tokens[i])) == (int64_t)i);
    reel_vocab_index_free(&index);
    reel_vocab_free(&vocab);
    return 0;
}
