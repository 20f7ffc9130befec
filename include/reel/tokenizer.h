/* reel/tokenizer.h: the word tokenizer used by `reel prep`.
 *
 * Deterministic, allocation-free after warm-up (the tokenizer keeps its scratch buffers between
 * documents), and safe on any byte string: it never reads outside [text, text + length) and never fails.
 * A document goes through two stages.
 *
 * 1. Normalisation, one left-to-right pass over the raw bytes; what it emits is never re-scanned:
 *    - HTML tags: '<' followed by an ASCII letter, '/' or '!', up to the first '>' such that the whole tag
 *      is at most REEL_TOKENIZER_MAX_TAG (256) bytes and contains no other '<', is replaced by one space.
 *      So "<br />", "<i>", "</i>" and "<!-- x -->" vanish; "a < b" and "x<3" are kept as text.
 *    - Entities: "&amp;" "&lt;" "&gt;" "&quot;" "&#39;" become & < > " ' and "&nbsp;" becomes an ASCII
 *      space. Only these exact lowercase spellings are decoded; anything else is left as written. A
 *      decoded '<' never starts a tag ("&lt;i&gt;" gives the tokens < i >).
 *    - Invalid UTF-8: every byte that does not begin a complete, valid UTF-8 sequence (a continuation
 *      byte without a lead, a lead byte C0, C1 or F5-FF, a sequence cut short by the end of the text or
 *      by a non-continuation byte, an overlong form, a surrogate U+D800-U+DFFF, a code point above
 *      U+10FFFF) is replaced by U+FFFD, and decoding resumes at the next byte. So the truncated sequence
 *      E2 82 followed by 'a' gives U+FFFD U+FFFD 'a'. The output is always valid UTF-8.
 *    - Lowercasing: ASCII A-Z, and the Latin-1 capitals U+00C0-U+00DE except U+00D7 (the multiplication
 *      sign), each mapped to the code point 0x20 above it (so "ÉTÉ" becomes "été"). Other scripts are
 *      left as they are.
 *    - ASCII control characters (0x00-0x1F, 0x7F) become spaces.
 *
 * 2. Splitting (Penn-Treebank-like rules, applied to the normalised text):
 *    - Word characters are ASCII letters and digits and every non-ASCII character (including U+FFFD and
 *      non-ASCII punctuation such as curly quotes). All other printable ASCII characters are punctuation;
 *      spaces separate tokens and are dropped.
 *    - A word is a maximal run of word characters, which may also contain: a '-' or '\'' that has a word
 *      character on both sides ("well-made", "o'brien"), and a '.' or ',' that has a digit on both sides
 *      ("3.5", "1,000", "1,000.50").
 *    - Each punctuation character is its own token, except that a run of two or more '.' is one token
 *      ("..", "...") and a run of two or more '-' is one token ("--"). So a quote or apostrophe that
 *      starts or ends a word is its own token: "'hello'" gives ' hello '.
 *    - Clitics: a word ending in one of 's 'm 'd 're 've 'll has that ending split off as a separate token
 *      ("it's" -> it 's, "they're" -> they 're, "i'm" -> i 'm, "film's" -> film 's); then a word of four
 *      or more bytes ending in n't has n't split off ("don't" -> do n't, "can't" -> ca n't, "won't" ->
 *      wo n't, "shouldn't've" -> should n't 've).
 *
 * Tokens therefore never contain whitespace or control characters and never mix letters with '<' or
 * '>', so the reserved vocabulary spellings (<pad>, <unk>, <eod>) can never be produced.
 */
#ifndef REEL_TOKENIZER_H
#define REEL_TOKENIZER_H

#include <stddef.h>

#define REEL_TOKENIZER_MAX_TAG 256

typedef struct reel_token {
    const char *text; /* points into the tokenizer's scratch buffer; not NUL-terminated */
    size_t length;
} reel_token;

/* Scratch space reused from one document to the next. Zero-initialise it (or call
 * reel_tokenizer_init) before first use; one tokenizer must not be used by two threads at once. */
typedef struct reel_tokenizer {
    char *norm;          /* normalised text of the last document */
    size_t norm_capacity;
    size_t norm_length;  /* its bytes */
    reel_token *tokens;  /* tokens of the last document */
    size_t token_capacity;
} reel_tokenizer;

void reel_tokenizer_init(reel_tokenizer *tok);
void reel_tokenizer_free(reel_tokenizer *tok);

/* Tokenizes text[0..length) (any bytes, NUL included). Returns the tokens and stores their number in
 * *count; the array and the token bytes stay valid until the next call on the same tokenizer. Never
 * fails (running out of memory is fatal). */
const reel_token *reel_tokenize(reel_tokenizer *tok, const char *text, size_t length, size_t *count);

/* Stage 1 alone: writes the normalised text of text[0..length) into the tokenizer's buffer and returns
 * it (NUL-terminated), its length in *out_length. Exposed for tests and diagnostics. */
const char *reel_tokenizer_normalize(reel_tokenizer *tok, const char *text, size_t length, size_t *out_length);

#endif
