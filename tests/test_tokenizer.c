/* Tokenizer rules (include/reel/tokenizer.h): a table of inputs and the expected tokens, joined by
 * single spaces (tokens never contain spaces), plus large inputs, bounds and determinism. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "reel/tokenizer.h"

#define FFFD "\xEF\xBF\xBD"

typedef struct {
    const char *input;
    size_t length; /* 0: strlen(input) */
    const char *expected;
} case_t;

/* Joined tokens of text[0..length), tokenized from an exact-size heap copy so that a read past the end
 * is caught by AddressSanitizer builds. */
static char *tokenize_joined(reel_tokenizer *tok, const char *text, size_t length) {
    char *copy = malloc(length ? length : 1);
    memcpy(copy, text, length);
    size_t count;
    const reel_token *tokens = reel_tokenize(tok, copy, length, &count);
    size_t total = 1;
    for (size_t i = 0; i < count; i++) total += tokens[i].length + 1;
    char *out = malloc(total);
    size_t pos = 0;
    for (size_t i = 0; i < count; i++) {
        assert_true(tokens[i].length > 0);
        if (i) out[pos++] = ' ';
        memcpy(out + pos, tokens[i].text, tokens[i].length);
        pos += tokens[i].length;
    }
    out[pos] = '\0';
    free(copy);
    return out;
}

static void run_cases(const case_t *cases, size_t n) {
    reel_tokenizer tok;
    reel_tokenizer_init(&tok);
    for (size_t i = 0; i < n; i++) {
        size_t length = cases[i].length ? cases[i].length : strlen(cases[i].input);
        char *got = tokenize_joined(&tok, cases[i].input, length);
        if (strcmp(got, cases[i].expected) != 0)
            fail_msg("case %zu: input \"%s\"\n  expected \"%s\"\n  got      \"%s\"", i, cases[i].input,
                     cases[i].expected, got);
        free(got);
    }
    reel_tokenizer_free(&tok);
}

#define RUN(table) run_cases(table, sizeof table / sizeof table[0])

static void test_words_and_punctuation(void **state) {
    (void)state;
    static const case_t cases[] = {
        {"Hello, World!", 0, "hello , world !"},
        {"  spaced\tout\nwords\r\n", 0, "spaced out words"},
        {"", 0, ""},
        {"   \t\n ", 0, ""},
        {"a(b)c", 0, "a ( b ) c"},
        {"x_y", 0, "x _ y"},
        {"what?!", 0, "what ? !"},
        {"Wait... what", 0, "wait ... what"},
        {"a..b", 0, "a .. b"},
        {"end.", 0, "end ."},
        {"....", 0, "...."},
        {"yes -- no", 0, "yes -- no"},
        {"yes--no", 0, "yes -- no"},
        {"a---b", 0, "a --- b"},
        {"- item", 0, "- item"},
        {"well-made film", 0, "well-made film"},
        {"state-of-the-art", 0, "state-of-the-art"},
        {"covid-19", 0, "covid-19"},
        {"trailing- dash", 0, "trailing - dash"},
        {"-leading", 0, "- leading"},
        {"3.5 stars", 0, "3.5 stars"},
        {"1,000 votes", 0, "1,000 votes"},
        {"1,000.50", 0, "1,000.50"},
        {"10.5%", 0, "10.5 %"},
        {"ends in 1.", 0, "ends in 1 ."},
        {".5", 0, ". 5"},
        {"a,b", 0, "a , b"},
        {"a.b", 0, "a . b"},
        {"5,b", 0, "5 , b"},
        {"$20", 0, "$ 20"},
    };
    RUN(cases);
}

static void test_clitics_and_quotes(void **state) {
    (void)state;
    static const case_t cases[] = {
        {"don't", 0, "do n't"},
        {"can't", 0, "ca n't"},
        {"won't", 0, "wo n't"},
        {"isn't", 0, "is n't"},
        {"DON'T", 0, "do n't"},
        {"it's", 0, "it 's"},
        {"they're", 0, "they 're"},
        {"I've", 0, "i 've"},
        {"we'll", 0, "we 'll"},
        {"he'd", 0, "he 'd"},
        {"I'm", 0, "i 'm"},
        {"film's", 0, "film 's"},
        {"shouldn't've", 0, "should n't 've"},
        {"n't", 0, "n't"},
        {"o'brien", 0, "o'brien"},
        {"rock'n'roll", 0, "rock'n'roll"},
        {"'hello'", 0, "' hello '"},
        {"\"quoted\"", 0, "\" quoted \""},
        {"dogs' toys", 0, "dogs ' toys"},
        {"'s", 0, "' s"},
        {"the 90's", 0, "the 90 's"},
        {"I don't think it's \"great\".", 0, "i do n't think it 's \" great \" ."},
    };
    RUN(cases);
}

static void test_html(void **state) {
    (void)state;
    static const case_t cases[] = {
        {"a<br />b", 0, "a b"},
        {"one<br /><br />two", 0, "one two"},
        {"<i>Great</i> film", 0, "great film"},
        {"<!-- note -->ok", 0, "ok"},
        {"<p class=\"x\">text</p>", 0, "text"},
        {"x < y", 0, "x < y"},
        {"a<3", 0, "a < 3"},
        {"<b unclosed", 0, "< b unclosed"},
        {"<a <b>c", 0, "< a c"},
        {"a>b", 0, "a > b"},
        {"<", 0, "<"},
        {"<b", 0, "< b"},
        {"&amp; &lt; &gt; &quot; &#39; &nbsp;", 0, "& < > \" '"},
        {"Tom&amp;Jerry", 0, "tom & jerry"},
        {"&lt;i&gt;", 0, "< i >"},
        {"&amp;lt;", 0, "& lt ;"},
        {"&copy;", 0, "& copy ;"},
        {"&AMP;", 0, "& amp ;"},
        {"it&#39;s", 0, "it 's"},
        {"a&nbsp;b", 0, "a b"},
        {"&amp", 0, "& amp"},
    };
    RUN(cases);
}

/* The tag limit: a tag of exactly REEL_TOKENIZER_MAX_TAG bytes is removed, one byte longer is text. */
static void test_tag_length_limit(void **state) {
    (void)state;
    char text[REEL_TOKENIZER_MAX_TAG + 8];
    reel_tokenizer tok;
    reel_tokenizer_init(&tok);
    for (size_t tag_len = REEL_TOKENIZER_MAX_TAG; tag_len <= REEL_TOKENIZER_MAX_TAG + 1; tag_len++) {
        text[0] = '<';
        memset(text + 1, 'a', tag_len - 2);
        text[tag_len - 1] = '>';
        memcpy(text + tag_len, "zz", 2);
        char *got = tokenize_joined(&tok, text, tag_len + 2);
        if (tag_len == REEL_TOKENIZER_MAX_TAG) {
            assert_string_equal(got, "zz");
        } else {
            assert_int_equal(strncmp(got, "< aaa", 5), 0);
            assert_string_equal(got + strlen(got) - 5, " > zz");
        }
        free(got);
    }
    reel_tokenizer_free(&tok);
}

static void test_lowercase(void **state) {
    (void)state;
    static const case_t cases[] = {
        {"ABC xyz", 0, "abc xyz"},
        {"\xC3\x89T\xC3\x89", 0, "\xC3\xA9t\xC3\xA9"},                 /* ÉTÉ -> été */
        {"\xC3\x80\xC3\x9E", 0, "\xC3\xA0\xC3\xBE"},                   /* ÀÞ -> àþ */
        {"2\xC3\x97" "3", 0, "2\xC3\x97" "3"},                         /* × is not a letter: unchanged */
        {"\xC3\x9F", 0, "\xC3\x9F"},                                   /* ß unchanged */
        {"\xCE\xA9mega", 0, "\xCE\xA9mega"},                           /* Greek capital omega unchanged */
        {"caf\xC3\xA9", 0, "caf\xC3\xA9"},
        {"\xF0\x9F\x98\x80!", 0, "\xF0\x9F\x98\x80 !"},                /* valid 4-byte character */
        {"na\xC3\xAFve-ish", 0, "na\xC3\xAFve-ish"},
        {"\xE2\x80\x9Cquoted\xE2\x80\x9D", 0, "\xE2\x80\x9Cquoted\xE2\x80\x9D"}, /* curly quotes are word chars */
    };
    RUN(cases);
}

static void test_invalid_utf8(void **state) {
    (void)state;
    static const case_t cases[] = {
        {"\x80", 0, FFFD},                                    /* continuation byte without a lead */
        {"a\xBF" "b", 0, "a" FFFD "b"},
        {"\xFF", 0, FFFD},                                    /* never valid */
        {"\xF5\x80\x80\x80", 0, FFFD FFFD FFFD FFFD},         /* lead above U+10FFFF */
        {"\xC0\xAF", 0, FFFD FFFD},                           /* overlong 2-byte */
        {"\xC1\xBF", 0, FFFD FFFD},
        {"\xE0\x80\xAF", 0, FFFD FFFD FFFD},                  /* overlong 3-byte */
        {"\xF0\x80\x80\xAF", 0, FFFD FFFD FFFD FFFD},         /* overlong 4-byte */
        {"\xED\xA0\x80", 0, FFFD FFFD FFFD},                  /* surrogate U+D800 */
        {"\xF4\x90\x80\x80", 0, FFFD FFFD FFFD FFFD},         /* U+110000 */
        {"\xE2\x82", 0, FFFD FFFD},                           /* truncated by the end of the text */
        {"\xE2\x82" "a", 0, FFFD FFFD "a"},                   /* truncated by an ASCII byte */
        {"\xE2\x82 x", 0, FFFD FFFD " x"},
        {"\xC3", 0, FFFD},
        {"\xF0\x9F\x98", 0, FFFD FFFD FFFD},
        {"ok \xC3\x28 done", 0, "ok " FFFD " ( done"},
        {"a\0b", 3, "a b"},                                   /* NUL is a control character: a space */
        {"a\x01" "b\x7F" "c", 0, "a b c"},
    };
    RUN(cases);
}

/* The normalised text is always valid UTF-8 whatever the input: every byte value in every position. */
static void test_normalize_is_valid_utf8(void **state) {
    (void)state;
    reel_tokenizer tok;
    reel_tokenizer_init(&tok);
    unsigned char text[4096];
    uint32_t x = 12345;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof text; i++) {
            x = x * 1664525u + 1013904223u;
            text[i] = (unsigned char)(x >> 24);
        }
        size_t n;
        const unsigned char *s = (const unsigned char *)reel_tokenizer_normalize(&tok, (const char *)text,
                                                                                   sizeof text, &n);
        assert_true(n <= 3 * sizeof text);
        assert_int_equal(s[n], 0);
        for (size_t i = 0; i < n;) {
            unsigned char c = s[i];
            size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            assert_true(c < 0x80 || (c >= 0xC2 && c <= 0xF4));
            assert_true(i + len <= n);
            for (size_t k = 1; k < len; k++) assert_int_equal(s[i + k] & 0xC0, 0x80);
            i += len;
        }
        size_t count;
        const reel_token *tokens = reel_tokenize(&tok, (const char *)text, sizeof text, &count);
        for (size_t i = 0; i < count; i++) {
            assert_true(tokens[i].length > 0);
            assert_null(memchr(tokens[i].text, ' ', tokens[i].length));
        }
    }
    reel_tokenizer_free(&tok);
}

static void test_one_megabyte(void **state) {
    (void)state;
    const size_t mb = (size_t)1 << 20;
    char *text = malloc(mb);
    reel_tokenizer tok;
    reel_tokenizer_init(&tok);
    size_t count;

    /* "Word<br />" repeated over 1 MB (rounded down to whole repeats): every tag removed. */
    const size_t whole = mb - mb % 10;
    for (size_t i = 0; i < whole; i++) text[i] = "Word<br />"[i % 10];
    const reel_token *tokens = reel_tokenize(&tok, text, whole, &count);
    assert_int_equal(count, whole / 10);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(tokens[i].length, 4);
        assert_memory_equal(tokens[i].text, "word", 4);
    }

    /* One 1 MB word. */
    memset(text, 'A', mb);
    tokens = reel_tokenize(&tok, text, mb, &count);
    assert_int_equal(count, 1);
    assert_int_equal(tokens[0].length, mb);
    assert_int_equal(tokens[0].text[mb - 1], 'a');

    /* 1 MB of invalid bytes: 3 MB of U+FFFD, one word. */
    memset(text, 0xFF, mb);
    tokens = reel_tokenize(&tok, text, mb, &count);
    assert_int_equal(count, 1);
    assert_int_equal(tokens[0].length, 3 * mb);

    /* 1 MB of punctuation: one token per byte, the largest token count. */
    memset(text, '!', mb);
    tokens = reel_tokenize(&tok, text, mb, &count);
    assert_int_equal(count, mb);
    free(text);
    reel_tokenizer_free(&tok);
}

static void test_deterministic(void **state) {
    (void)state;
    const char *text = "It's <b>GREAT</b> -- isn't it? 3.5/5 &amp; \xC3\x89t\xC3\xA9 \xFF ... don't";
    reel_tokenizer a, b;
    reel_tokenizer_init(&a);
    reel_tokenizer_init(&b);
    char *first = tokenize_joined(&a, text, strlen(text));
    /* b has been used on other documents (bigger and smaller) first: leftovers must not matter. */
    char *big = malloc(100000);
    memset(big, 'x', 100000);
    free(tokenize_joined(&b, big, 100000));
    free(tokenize_joined(&b, "short", 5));
    char *second = tokenize_joined(&b, text, strlen(text));
    char *third = tokenize_joined(&a, text, strlen(text));
    assert_string_equal(first, second);
    assert_string_equal(first, third);
    assert_string_equal(first, "it 's great -- is n't it ? 3.5 / 5 & \xC3\xA9t\xC3\xA9 " FFFD " ... do n't");
    free(first);
    free(second);
    free(third);
    free(big);
    reel_tokenizer_free(&a);
    reel_tokenizer_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_words_and_punctuation),
        cmocka_unit_test(test_clitics_and_quotes),
        cmocka_unit_test(test_html),
        cmocka_unit_test(test_tag_length_limit),
        cmocka_unit_test(test_lowercase),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_normalize_is_valid_utf8),
        cmocka_unit_test(test_one_megabyte),
        cmocka_unit_test(test_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
