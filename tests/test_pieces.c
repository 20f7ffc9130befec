/* Subword vocabularies (reel/pieces.h over SentencePiece): a piece model trained on a small corpus of
 * generated sentences, BPE and unigram, holds reel's reserved ids, is the same bytes when trained again
 * with the same seed, encodes every text with no <unk> (byte fallback), and decodes back to exactly the
 * text, for the corpus and for texts it never saw (other scripts, runs of spaces, tabs, a leading
 * space). A model that is not one, and an id past the model, are named errors.
 * reel prep --tokenizer sentencepiece: every document of a fixture (HTML, entities, capitals, other
 * scripts, runs of spaces) decodes from its token file back to exactly its normalised text, the
 * vocabulary lists the model's pieces and loads with it (and not against another model), and the
 * per-split bytes and words are those of the normalised text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reel/generate.h"
#include "reel/pieces.h"
#include "reel/prep.h"
#include "reel/tokenizer.h"
#include "reel/tokfile.h"
#include "reel/util.h"
#include "reel/vocab.h"

#define SCRATCH_TEMPLATE "/tmp/reel_test_pieces_XXXXXX"
#include "scratch_dir.h"

enum { CORPUS = 3000 };

/* Words of two or three syllables (1,728 possible), a sentence of 4 to 19 of them drawn with a fixed LCG
 * from the first 300 with a skew to the frequent ones, as words are; some end with '!'. */
static const char *const syllables[] = {"ka", "lo", "mi", "ren", "tu", "sa", "vel", "dor", "qui", "ne", "pla", "gri"};

typedef struct {
    char texts[CORPUS][200];
    size_t next;
} corpus;

static void make_word(char *out, size_t index) {
    out[0] = '\0';
    size_t count = 2 + index % 2;
    for (size_t k = 0; k < count; k++, index /= 12) strcat(out, syllables[index % 12]);
}

static void make_corpus(corpus *c) {
    uint32_t state = 12345;
    for (size_t i = 0; i < CORPUS; i++) {
        char *out = c->texts[i], word[16];
        out[0] = '\0';
        state = state * 1664525u + 1013904223u;
        size_t count = 4 + (state >> 16) % 16;
        for (size_t k = 0; k < count; k++) {
            state = state * 1664525u + 1013904223u;
            double u = (double)(state >> 8) / 16777216.0;
            make_word(word, (size_t)(300 * u * u * u) * 7 + 3); /* cubed: the first words far more often */
            strcat(out, k ? " " : "");
            strcat(out, word);
        }
        strcat(out, (state >> 8) % 3 == 0 ? " !" : " .");
    }
    c->next = 0;
}

static int next_text(void *ctx, const char **text, size_t *length) {
    corpus *c = ctx;
    if (c->next == CORPUS) return 0;
    *text = c->texts[c->next];
    *length = strlen(c->texts[c->next]);
    c->next++;
    return 1;
}

static corpus the_corpus;

static reel_pieces *train(reel_pieces_kind kind, size_t vocab, char **bytes, size_t *size) {
    reel_pieces_options options = {kind, vocab, 1, 7, 0};
    reel_error err = {{0}};
    the_corpus.next = 0;
    if (reel_pieces_train(bytes, size, next_text, &the_corpus, &options, &err) != 0) fail_msg("train: %s", err.message);
    reel_pieces *pieces;
    if (reel_pieces_load(&pieces, *bytes, *size, &err) != 0) fail_msg("load: %s", err.message);
    return pieces;
}

static void round_trip(const reel_pieces *pieces, const char *text) {
    reel_error err = {{0}};
    uint32_t *ids = NULL;
    size_t capacity = 0, length = 0, text_capacity = 0;
    char *back = NULL;
    size_t count = reel_pieces_encode(pieces, text, strlen(text), &ids, &capacity, &err);
    if (count == (size_t)-1) fail_msg("encode '%s': %s", text, err.message);
    for (size_t i = 0; i < count; i++)
        if (ids[i] == 1) fail_msg("'%s': piece %zu is <unk>, though byte fallback is on", text, i);
    if (reel_pieces_decode(pieces, ids, count, &back, &length, &text_capacity, &err) != 0)
        fail_msg("decode '%s': %s", text, err.message);
    if (strlen(text) != length || memcmp(back, text, length) != 0)
        fail_msg("round trip: '%s' came back as '%s'", text, back ? back : "");
    free(ids);
    free(back);
}

static const char *const unseen[] = {
    "caf\xc3\xa9 au lait, na\xc3\xafve r\xc3\xa9sum\xc3\xa9",            /* Latin-1 letters */
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe2\x98\x83 \xf0\x9f\x8e\xac", /* CJK, a snowman, an emoji */
    "two  spaces,   three, and a\ttab",
    " a leading space and a trailing one ",
    "UPPER Case Words 1984 2001",
    "",
};

static void check_model(reel_pieces_kind kind, const char *name) {
    char *bytes = NULL, *again = NULL;
    size_t size = 0, again_size = 0;
    reel_pieces *pieces = train(kind, 400, &bytes, &size);
    assert_int_equal(reel_pieces_count(pieces), 400);
    assert_string_equal(reel_pieces_spelling(pieces, 0), "<pad>");
    assert_string_equal(reel_pieces_spelling(pieces, 1), "<unk>");
    assert_string_equal(reel_pieces_spelling(pieces, 2), "<eod>");
    for (size_t i = 0; i < CORPUS; i += 7) round_trip(pieces, the_corpus.texts[i]);
    for (size_t i = 0; i < sizeof unseen / sizeof unseen[0]; i++) round_trip(pieces, unseen[i]);
    /* the pieces learnt something: the corpus's most frequent word (7 letters) is one piece, or two when
     * unigram keeps the word-start mark U+2581 apart, never its letters */
    reel_error err = {{0}};
    uint32_t *ids = NULL;
    size_t capacity = 0;
    char word[16];
    make_word(word, 3);
    size_t count = reel_pieces_encode(pieces, word, strlen(word), &ids, &capacity, &err);
    if (count > 2) fail_msg("%s: '%s' takes %zu pieces", name, word, count);
    free(ids);
    /* the same corpus and seed give the same model, byte for byte */
    reel_pieces *twin = train(kind, 400, &again, &again_size);
    assert_int_equal(again_size, size);
    assert_memory_equal(again, bytes, size);
    reel_pieces_free(twin);
    reel_pieces_free(pieces);
    free(bytes);
    free(again);
}

static void test_unigram(void **state) {
    (void)state;
    check_model(REEL_PIECES_UNIGRAM, "unigram");
}

static void test_bpe(void **state) {
    (void)state;
    check_model(REEL_PIECES_BPE, "bpe");
}

static void test_errors(void **state) {
    (void)state;
    reel_error err = {{0}};
    reel_pieces *pieces;
    assert_int_equal(reel_pieces_load(&pieces, "not a model at all", 18, &err), -1);
    assert_non_null(strstr(err.message, "not a SentencePiece model (18 bytes)"));
    char *bytes = NULL;
    size_t size = 0;
    reel_pieces_options small = {REEL_PIECES_BPE, 200, 1, 7, 0};
    assert_int_equal(reel_pieces_train(&bytes, &size, next_text, &the_corpus, &small, &err), -1);
    assert_non_null(strstr(err.message, "a piece vocabulary of 200"));
    pieces = train(REEL_PIECES_BPE, 300, &bytes, &size);
    uint32_t bad[2] = {5, 300};
    char *text = NULL;
    size_t length = 0, capacity = 0;
    assert_int_equal(reel_pieces_decode(pieces, bad, 2, &text, &length, &capacity, &err), -1);
    assert_non_null(strstr(err.message, "piece id 300 at position 1 is past the model's 300"));
    reel_pieces_free(pieces);
    free(bytes);
    free(text);
}

/* The fixture's document i: a corpus sentence dressed as a review (what normalisation changes). */
static void fixture_text(char *out, size_t size, size_t i) {
    static const char *const dress[] = {"%s<br /><br />THE END", "It&#39;s \"%s\" &amp; more", "%s  caf\xc3\xa9   ",
                                        "\xc3\x89T\xc3\x89: %s \xf0\x9f\x8e\xac", "%s"};
    snprintf(out, size, dress[i % 5], the_corpus.texts[i]);
}

enum { PREP_DOCS = 600 };

static void run_prep(const char *outdir, const char *model, reel_prep_result *result) {
    char input[4200];
    snprintf(input, sizeof input, "%s/fixture.tsv", tmp_dir);
    FILE *fp = fopen(input, "w");
    assert_non_null(fp);
    fputs("label\ttext\n", fp);
    char text[512];
    for (size_t i = 0; i < PREP_DOCS; i++) {
        fixture_text(text, sizeof text, i);
        fprintf(fp, "%s\t%s\n", i % 2 ? "pos" : "neg", text);
    }
    fclose(fp);
    reel_prep_options o;
    reel_prep_options_default(&o);
    o.input = input;
    o.outdir = outdir;
    o.format = REEL_PREP_TSV;
    o.valid_count = 0; /* train.tok in file order */
    o.tokenizer = REEL_PREP_PIECES;
    o.vocab_size = model ? 30000 : 350;
    o.pieces_model_path = model;
    reel_error err = {{0}};
    if (reel_prep_run(&o, result, &err) != 0) fail_msg("prep: %s", err.message);
}

static void test_prep_round_trip(void **state) {
    (void)state;
    char outdir[4200], path[4300];
    snprintf(outdir, sizeof outdir, "%s/data", tmp_dir);
    reel_prep_result result;
    run_prep(outdir, NULL, &result);
    reel_vocab vocab;
    reel_error err = {{0}};
    snprintf(path, sizeof path, "%s/vocab.txt", outdir);
    if (reel_vocab_load(&vocab, path, &err) != 0) fail_msg("vocab: %s", err.message);
    assert_non_null(vocab.processor);
    assert_int_equal(vocab.size, 350);
    assert_int_equal(vocab.checksum, result.vocab_checksum);
    reel_tokfile *tok;
    snprintf(path, sizeof path, "%s/train.tok", outdir);
    if (reel_tokfile_open(&tok, path, &err) != 0) fail_msg("%s", err.message);
    assert_int_equal(reel_tokfile_info(tok)->num_docs, PREP_DOCS);
    assert_int_equal(reel_tokfile_info(tok)->vocab_checksum, vocab.checksum);
    reel_tokenizer tokenizer;
    reel_tokenizer_init(&tokenizer);
    uint64_t bytes = 0, words = 0, tokens = 0;
    char text[512], *back = NULL;
    size_t back_capacity = 0;
    for (size_t i = 0; i < PREP_DOCS; i++) {
        fixture_text(text, sizeof text, i);
        size_t norm_length, count;
        reel_tokenize(&tokenizer, text, strlen(text), &count);
        words += count;
        const char *norm = reel_tokenizer_normalize(&tokenizer, text, strlen(text), &norm_length);
        bytes += norm_length;
        const uint32_t *ids;
        size_t length, back_length = 0;
        int32_t label;
        if (reel_tokfile_doc(tok, i, &ids, &length, &label, &err) != 0) fail_msg("%s", err.message);
        tokens += length;
        for (size_t k = 0; k < length; k++)
            if (ids[k] == REEL_TOKEN_UNK) fail_msg("document %zu: piece %zu is <unk>", i, k);
        if (reel_pieces_decode(vocab.processor, ids, length, &back, &back_length, &back_capacity, &err) != 0)
            fail_msg("%s", err.message);
        if (back_length != norm_length || memcmp(back, norm, norm_length) != 0)
            fail_msg("document %zu: '%.*s' decodes as '%s'", i, (int)norm_length, norm, back ? back : "");
    }
    assert_int_equal(result.split[REEL_SPLIT_TRAIN].bytes, bytes);
    assert_int_equal(result.split[REEL_SPLIT_TRAIN].words, words);
    assert_int_equal(result.split[REEL_SPLIT_TRAIN].tokens, tokens);
    assert_true(tokens > words); /* pieces, not words: 350 of them cannot hold every word */
    free(back);
    reel_tokenizer_free(&tokenizer);
    reel_tokfile_close(tok);

    /* the same pieces again from the written model: the same vocabulary and token file */
    char again[4200], model[4300];
    snprintf(again, sizeof again, "%s/again", tmp_dir);
    snprintf(model, sizeof model, "%s/%s", outdir, REEL_PIECES_FILE);
    reel_prep_result second;
    run_prep(again, model, &second);
    assert_int_equal(second.vocab_checksum, result.vocab_checksum);
    reel_buf a = {0}, b = {0};
    snprintf(path, sizeof path, "%s/train.tok", again);
    assert_int_equal(reel_read_file(&a, path, (size_t)1 << 30, 0, &err), 0);
    snprintf(path, sizeof path, "%s/train.tok", outdir);
    assert_int_equal(reel_read_file(&b, path, (size_t)1 << 30, 0, &err), 0);
    assert_int_equal(a.length, b.length);
    assert_memory_equal(a.data, b.data, a.length);
    reel_buf_free(&a);
    reel_buf_free(&b);

    /* generated pieces as text: a continuation keeps its first space after the prime, an <eod> between
     * two documents is spelt out */
    const char *sentence = "renkaka rentumi dorquiren lokagri";
    uint32_t *ids = NULL;
    size_t capacity = 0, count = reel_pieces_encode(vocab.processor, sentence, strlen(sentence), &ids, &capacity, &err);
    assert_true(count >= 2 && count != (size_t)-1);
    size_t k = count - 1; /* the last word's first piece starts with the space mark */
    while (k > 0 && strncmp(vocab.tokens[ids[k]], "\xe2\x96\x81", 3) != 0) k--;
    assert_true(k > 0);
    reel_buf prime = {0}, rest = {0}, doc2 = {0};
    reel_detokenize(&prime, &vocab, ids, k);
    reel_detokenize_after(&rest, &vocab, ids, k, ids + k, count - k);
    assert_int_equal(prime.length + rest.length, strlen(sentence));
    assert_memory_equal(prime.data, sentence, prime.length);
    assert_string_equal(rest.data, sentence + prime.length);
    assert_int_equal(rest.data[0], ' ');
    uint32_t two[64];
    assert_true(2 * k + 1 < 64);
    memcpy(two, ids, k * sizeof *ids);
    two[k] = REEL_TOKEN_EOD;
    memcpy(two + k + 1, ids, k * sizeof *ids);
    reel_detokenize(&doc2, &vocab, two, 2 * k + 1);
    char expected[256];
    snprintf(expected, sizeof expected, "%s <eod> %s", prime.data, prime.data);
    assert_string_equal(doc2.data, expected);
    reel_buf_free(&prime);
    reel_buf_free(&rest);
    reel_buf_free(&doc2);
    free(ids);
    reel_vocab_free(&vocab);
}

static void test_prep_mismatch(void **state) {
    (void)state;
    char dir[4200], path[4300], other[4300];
    snprintf(dir, sizeof dir, "%s/data", tmp_dir);
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    /* the vocabulary without its model */
    snprintf(other, sizeof other, "%s/%s", dir, REEL_PIECES_FILE);
    char moved[4300];
    snprintf(moved, sizeof moved, "%s/moved.model", tmp_dir);
    assert_int_equal(rename(other, moved), 0);
    reel_vocab vocab;
    reel_error err = {{0}};
    assert_int_equal(reel_vocab_load(&vocab, path, &err), -1);
    assert_non_null(strstr(err.message, "lists the pieces of a SentencePiece model, which must be beside it"));
    assert_non_null(strstr(err.message, REEL_PIECES_FILE));
    /* beside a model of other pieces (trained on the bare corpus, not the fixture) */
    char *bytes = NULL;
    size_t size = 0;
    reel_pieces *pieces = train(REEL_PIECES_UNIGRAM, 350, &bytes, &size);
    reel_pieces_free(pieces);
    assert_int_equal(reel_write_file_atomic(other, bytes, size, &err), 0);
    free(bytes);
    assert_int_equal(reel_vocab_load(&vocab, path, &err), -1);
    if (!strstr(err.message, "come from different prep runs") || !strstr(err.message, "piece id"))
        fail_msg("unexpected message: %s", err.message);
    assert_int_equal(rename(moved, other), 0);
    assert_int_equal(reel_vocab_load(&vocab, path, &err), 0);
    reel_vocab_free(&vocab);
}

/* The scratch directory holds the two prep outputs' directories. */
static int remove_all(void **state) {
    const char *subdirs[] = {"data", "again"};
    for (size_t d = 0; d < 2; d++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/%s", tmp_dir, subdirs[d]);
        DIR *h = opendir(dir);
        if (!h) continue;
        for (struct dirent *entry; (entry = readdir(h));) {
            char path[4500];
            snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
            if (entry->d_name[0] != '.') unlink(path);
        }
        closedir(h);
        rmdir(dir);
    }
    return remove_dir(state);
}

int main(void) {
    make_corpus(&the_corpus);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_unigram), cmocka_unit_test(test_bpe),
                                       cmocka_unit_test(test_errors), cmocka_unit_test(test_prep_round_trip),
                                       cmocka_unit_test(test_prep_mismatch)};
    return cmocka_run_group_tests(tests, setup_dir, remove_all);
}
