/* The tokenizer; the rules are specified in include/reel/tokenizer.h.
 *
 * Speed matters (prep tokenizes ~130 MB for IMDb), so both stages are single passes driven by 256-entry
 * byte tables, and the common case (plain ASCII) costs one table lookup and one store per byte. */
#include "reel/tokenizer.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reel/check.h"

/* Stage 1 byte actions. */
enum { N_COPY = 0, N_LT, N_AMP, N_MULTI };

/* Stage 2 byte classes. */
enum { C_SPACE = 0, C_WORD, C_DIGIT, C_PUNCT };

typedef struct {
    unsigned char action[256]; /* N_* */
    unsigned char ascii[256];  /* replacement for an N_COPY byte: lowercase, control -> space */
    unsigned char cls[256];    /* C_* */
    unsigned char word[256];   /* 1 for C_WORD and C_DIGIT */
} tables_t;

static tables_t tables;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void fill_tables(void) {
    for (int c = 0; c < 256; c++) {
        unsigned char action = N_COPY, ascii = (unsigned char)c, cls = C_PUNCT;
        if (c >= 0x80) {
            action = N_MULTI;
            cls = C_WORD;
        } else if (c < 0x20 || c == 0x7F) {
            ascii = ' ';
            cls = C_SPACE;
        } else if (c == ' ') {
            cls = C_SPACE;
        } else if (c >= 'A' && c <= 'Z') {
            ascii = (unsigned char)(c + 32);
            cls = C_WORD;
        } else if (c >= 'a' && c <= 'z') {
            cls = C_WORD;
        } else if (c >= '0' && c <= '9') {
            cls = C_DIGIT;
        } else if (c == '<') {
            action = N_LT;
        } else if (c == '&') {
            action = N_AMP;
        }
        tables.action[c] = action;
        tables.ascii[c] = ascii;
        tables.cls[c] = cls;
        tables.word[c] = cls == C_WORD || cls == C_DIGIT;
    }
}

static void init_tables(void) { pthread_once(&tables_once, fill_tables); }

void reel_tokenizer_init(reel_tokenizer *tok) { memset(tok, 0, sizeof *tok); }

void reel_tokenizer_free(reel_tokenizer *tok) {
    free(tok->norm);
    free(tok->tokens);
    memset(tok, 0, sizeof *tok);
}

static int is_ascii_letter(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }

/* Length of a valid UTF-8 sequence starting at s[0] (at most n bytes available), or 0 if invalid. */
static size_t utf8_sequence(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0; /* below: overlong */
        if (c == 0xED) hi = 0x9F; /* above: surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90; /* below: overlong */
        if (c == 0xF4) hi = 0x8F; /* above: beyond U+10FFFF */
    } else {
        return 0; /* continuation byte, C0/C1 (always overlong) or F5-FF */
    }
    if (n <= need || s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k <= need; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    return need + 1;
}

typedef struct {
    const char *text;
    size_t length;
    char decoded;
} entity_t;

static const entity_t entities[] = {
    {"&amp;", 5, '&'}, {"&lt;", 4, '<'}, {"&gt;", 4, '>'}, {"&quot;", 6, '"'}, {"&#39;", 5, '\''}, {"&nbsp;", 6, ' '},
};

static size_t normalize_into(char *out_start, const unsigned char *in, size_t n) {
    unsigned char *out = (unsigned char *)out_start;
    size_t i = 0;
    while (i < n) {
        unsigned char c = in[i];
        switch (tables.action[c]) {
        case N_COPY:
            *out++ = tables.ascii[c];
            i++;
            while (i < n && tables.action[in[i]] == N_COPY) *out++ = tables.ascii[in[i++]];
            break;
        case N_LT: {
            if (i + 1 < n && (is_ascii_letter(in[i + 1]) || in[i + 1] == '/' || in[i + 1] == '!')) {
                size_t limit = n - i < REEL_TOKENIZER_MAX_TAG ? n - i : REEL_TOKENIZER_MAX_TAG;
                size_t j = 2;
                while (j < limit && in[i + j] != '>' && in[i + j] != '<') j++;
                if (j < limit && in[i + j] == '>') {
                    *out++ = ' ';
                    i += j + 1;
                    break;
                }
            }
            *out++ = '<';
            i++;
            break;
        }
        case N_AMP: {
            size_t e = 0;
            for (; e < sizeof entities / sizeof entities[0]; e++)
                if (n - i >= entities[e].length && memcmp(in + i, entities[e].text, entities[e].length) == 0) break;
            if (e < sizeof entities / sizeof entities[0]) {
                *out++ = (unsigned char)entities[e].decoded;
                i += entities[e].length;
            } else {
                *out++ = '&';
                i++;
            }
            break;
        }
        default: { /* N_MULTI */
            size_t len = utf8_sequence(in + i, n - i);
            if (len == 0) {
                *out++ = 0xEF; /* U+FFFD */
                *out++ = 0xBF;
                *out++ = 0xBD;
                i++;
            } else if (c == 0xC3 && in[i + 1] <= 0x9E && in[i + 1] != 0x97) {
                *out++ = 0xC3; /* U+00C0-U+00DE (not U+00D7): lowercase is 0x20 above */
                *out++ = (unsigned char)(in[i + 1] + 0x20);
                i += 2;
            } else {
                memcpy(out, in + i, len);
                out += len;
                i += len;
            }
            break;
        }
        }
    }
    *out = '\0';
    return (size_t)(out - (unsigned char *)out_start);
}

static void reserve_norm(reel_tokenizer *tok, size_t length) {
    /* Worst case: every byte invalid, each becoming the 3-byte U+FFFD; plus the terminating NUL. */
    REEL_CHECK(length < (SIZE_MAX - 1) / 3, NULL, "document of %zu bytes is too large to tokenize", length);
    size_t need = 3 * length + 1;
    if (need > tok->norm_capacity) {
        size_t cap = tok->norm_capacity ? tok->norm_capacity : 4096;
        while (cap < need) cap *= 2;
        tok->norm = reel_realloc(tok->norm, cap);
        tok->norm_capacity = cap;
    }
}

const char *reel_tokenizer_normalize(reel_tokenizer *tok, const char *text, size_t length, size_t *out_length) {
    init_tables();
    reserve_norm(tok, length);
    *out_length = normalize_into(tok->norm, (const unsigned char *)text, length);
    tok->norm_length = *out_length;
    return tok->norm;
}

static int ends_with(const char *s, size_t n, const char *suffix, size_t k) {
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Splits a word into its stem and clitics; writes 1 to 3 tokens at out and returns how many. */
static size_t split_word(const char *s, size_t n, int has_apostrophe, reel_token *out) {
    reel_token tail[2];
    size_t tails = 0;
    if (has_apostrophe) {
        static const struct {
            const char *text;
            size_t length;
        } clitics[] = {{"'s", 2}, {"'m", 2}, {"'d", 2}, {"'re", 3}, {"'ve", 3}, {"'ll", 3}};
        for (size_t c = 0; c < sizeof clitics / sizeof clitics[0]; c++) {
            /* n > length: the apostrophe is never first in a word, but keep the stem non-empty anyway. */
            if (n > clitics[c].length && ends_with(s, n, clitics[c].text, clitics[c].length)) {
                n -= clitics[c].length;
                tail[tails++] = (reel_token){s + n, clitics[c].length};
                break;
            }
        }
        if (n >= 4 && ends_with(s, n, "n't", 3)) {
            n -= 3;
            tail[tails++] = (reel_token){s + n, 3};
        }
    }
    size_t k = 0;
    out[k++] = (reel_token){s, n};
    while (tails > 0) out[k++] = tail[--tails];
    return k;
}

const reel_token *reel_tokenize(reel_tokenizer *tok, const char *text, size_t length, size_t *count) {
    size_t m;
    const unsigned char *s = (const unsigned char *)reel_tokenizer_normalize(tok, text, length, &m);
    /* Tokens never overlap and a word split into t tokens is at least t bytes long ("x's", "xn't's"),
     * so there are at most m tokens. */
    if (m + 1 > tok->token_capacity) {
        size_t cap = tok->token_capacity ? tok->token_capacity : 1024;
        while (cap < m + 1) cap *= 2;
        tok->tokens = reel_realloc(tok->tokens, cap * sizeof *tok->tokens);
        tok->token_capacity = cap;
    }
    reel_token *out = tok->tokens;
    size_t k = 0, i = 0;
    const unsigned char *cls = tables.cls, *word = tables.word;
    while (i < m) {
        unsigned char c = s[i];
        unsigned char kind = cls[c];
        if (kind == C_SPACE) {
            i++;
            continue;
        }
        size_t start = i;
        if (word[c]) {
            int apostrophe = 0;
            for (;;) {
                /* The normalised text ends with a NUL (not a word byte), so this stops at m. */
                while (word[s[i]]) i++;
                if (i + 1 >= m) break;
                unsigned char joint = s[i], next = s[i + 1];
                if ((joint == '-' || joint == '\'') && word[next]) {
                    apostrophe |= joint == '\'';
                    i++;
                    continue;
                }
                if ((joint == '.' || joint == ',') && cls[next] == C_DIGIT && cls[s[i - 1]] == C_DIGIT) {
                    i++;
                    continue;
                }
                break;
            }
            k += split_word((const char *)s + start, i - start, apostrophe, out + k);
            continue;
        }
        i++;
        if (c == '.' || c == '-')
            while (i < m && s[i] == c) i++;
        out[k++] = (reel_token){(const char *)s + start, i - start};
    }
    *count = k;
    return out;
}
