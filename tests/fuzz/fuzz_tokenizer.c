/* The tokenizer on any bytes: it must never fail or read outside its input, and what it promises in
 * reel/tokenizer.h must hold: tokens are non-empty, hold no whitespace or control character, never mix
 * letters with '<' or '>', and the normalised text is valid UTF-8. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "reel/tokenizer.h"

/* Length of the valid UTF-8 sequence at s (of n bytes), or 0. */
static size_t utf8_sequence(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (len == 0 || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (len == 3 && c == 0xE0 && s[1] < 0xA0) return 0;           /* overlong */
    if (len == 3 && c == 0xED && s[1] >= 0xA0) return 0;          /* surrogate */
    if (len == 4 && c == 0xF0 && s[1] < 0x90) return 0;           /* overlong */
    if (len == 4 && c == 0xF4 && s[1] >= 0x90) return 0;          /* above U+10FFFF */
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static reel_tokenizer tok;
    size_t norm_length = 0, count = 0;
    const char *norm = reel_tokenizer_normalize(&tok, (const char *)data, size, &norm_length);
    FUZZ_ASSERT(strlen(norm) == norm_length);
    for (size_t i = 0; i < norm_length;) {
        size_t len = utf8_sequence((const unsigned char *)norm + i, norm_length - i);
        FUZZ_ASSERT(len > 0);
        i += len;
    }
    const reel_token *tokens = reel_tokenize(&tok, (const char *)data, size, &count);
    for (size_t t = 0; t < count; t++) {
        FUZZ_ASSERT(tokens[t].length > 0);
        int letter = 0, angle = 0;
        for (size_t i = 0; i < tokens[t].length; i++) {
            unsigned char c = (unsigned char)tokens[t].text[i];
            FUZZ_ASSERT(c > 0x20 && c != 0x7F);
            letter |= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
            angle |= c == '<' || c == '>';
        }
        FUZZ_ASSERT(!(letter && angle));
    }
    return 0;
}
