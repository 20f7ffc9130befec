/* The synthetic review generator; the model of the data is described in include/reel/synth.h. */
#include "reel/synth.h"

#include <Random123/philox.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reel/util.h"

static const char *const positive_words[] = {
    "good",       "great",      "excellent",   "superb",     "splendid",   "wonderful",  "delightful",
    "brilliant",  "charming",   "moving",      "fine",       "pleasant",   "enjoyable",  "gripping",
    "masterful",  "stunning",   "touching",    "witty",      "clever",     "lovely",     "beautiful",
    "compelling", "engaging",   "fresh",       "memorable",  "powerful",   "remarkable", "terrific",
    "thrilling",  "vivid",      "elegant",     "heartfelt",  "hilarious",  "inspired",   "luminous",
    "marvelous",  "nuanced",    "outstanding", "perfect",    "polished",   "rich",       "satisfying",
    "sharp",      "solid",      "stellar",     "sublime",    "tender",     "triumphant", "uplifting",
    "warm",       "amazing",    "fantastic",   "gorgeous",   "impressive", "joyful",     "magnificent",
    "refreshing", "riveting",   "smart",       "strong",
};

static const char *const negative_words[] = {
    "bad",          "awful",        "terrible",    "dreadful",  "boring",     "dull",      "weak",
    "poor",         "clumsy",       "tedious",     "bland",     "lifeless",   "messy",     "painful",
    "pointless",    "shallow",      "silly",       "sloppy",    "stale",      "stupid",    "tiresome",
    "ugly",         "unbearable",   "uneven",      "wooden",    "forgettable", "horrible", "lame",
    "lousy",        "mediocre",     "muddled",     "overlong",  "predictable", "pretentious", "ridiculous",
    "trite",        "wasteful",     "worthless",   "annoying",  "atrocious",  "bloated",   "cheap",
    "confusing",    "disappointing", "dismal",     "embarrassing", "flat",    "hollow",    "incoherent",
    "insipid",      "laughable",    "listless",    "monotonous", "plodding",  "rotten",    "sluggish",
    "tacky",        "tired",        "unfunny",     "woeful",
};

enum {
    NUM_POSITIVE = sizeof positive_words / sizeof positive_words[0],
    NUM_NEGATIVE = sizeof negative_words / sizeof negative_words[0],
};

/* Neutral words that make the text read like a review; none carries sentiment. */
static const char *const function_words[] = {
    "the",   "a",     "and",    "of",     "to",        "is",       "in",    "it",    "this",   "that",
    "was",   "with",  "for",    "as",     "on",        "but",      "film",  "movie", "story",  "plot",
    "scene", "cast",  "actors", "ending", "director",  "really",   "quite", "very",  "just",   "also",
    "some",  "one",   "all",    "there",  "at",        "by",       "an",    "be",    "has",    "its",
    "his",   "her",   "they",   "we",     "i",         "not",      "about", "more",  "what",   "when",
};
enum { NUM_FUNCTION = sizeof function_words / sizeof function_words[0] };

/* Invented neutral words: two syllables from these parts, enumerated in a fixed scrambled order. */
static const char *const onsets[] = {"b", "br", "d", "dr", "f", "g", "gl", "k", "l", "m",
                                     "n", "p", "pl", "r", "s", "st", "t", "tr", "v", "z"};
static const char *const vowels[] = {"a", "e", "i", "o", "u", "ai", "ou"};
static const char *const codas[] = {"", "n", "r", "l", "s", "m"};
enum { NUM_INVENTED = 300, INVENTED_MAX = 16 };

static char invented[NUM_INVENTED][INVENTED_MAX];
static pthread_once_t invented_once = PTHREAD_ONCE_INIT;

static void fill_invented(void) {
    const size_t no = sizeof onsets / sizeof onsets[0], nv = sizeof vowels / sizeof vowels[0],
                 nc = sizeof codas / sizeof codas[0];
    const size_t combos = no * nv * nc * no * nv; /* 117600 */
    for (size_t i = 0; i < NUM_INVENTED; i++) {
        /* 7919 is prime and does not divide combos, so i -> i * 7919 mod combos is one-to-one and the
         * words are distinct while spread over all the parts. */
        size_t k = (i * 7919 + 12345) % combos;
        size_t v2 = k % nv, o2 = (k / nv) % no, c1 = (k / nv / no) % nc, v1 = (k / nv / no / nc) % nv,
               o1 = k / nv / no / nc / nv;
        snprintf(invented[i], INVENTED_MAX, "%s%s%s%s%s", onsets[o1], vowels[v1], codas[c1], onsets[o2], vowels[v2]);
    }
}

static void build_invented(void) { pthread_once(&invented_once, fill_invented); }

/* Neutral words in one numbering: the function words, then the invented ones. */
enum { NUM_NEUTRAL = NUM_FUNCTION + NUM_INVENTED, SUCCESSORS = 4 };

static const char *neutral_word(uint32_t i) { return i < NUM_FUNCTION ? function_words[i] : invented[i - NUM_FUNCTION]; }

/* The k-th usual successor of neutral word w: a fixed pseudo-random neutral word (a multiplicative hash),
 * the same in every document. This is the text's structure: a language model can learn it, a bag of
 * words is blind to it. */
static uint32_t successor(uint32_t w, uint32_t k) {
    uint32_t h = (w * SUCCESSORS + k + 1) * 2654435761u;
    return (h >> 8) % NUM_NEUTRAL;
}

/* Strength of sentiment word w: six levels from 0.5 to 2.0, interleaved across the list. */
static double strength(size_t w) { return 0.5 + 0.3 * (double)((w * 7) % 6); }

/* ---- randomness: a counter-based stream for one document ---- */

typedef struct {
    philox4x32_key_t key;
    philox4x32_ctr_t ctr;
    philox4x32_ctr_t out;
    int used; /* words of out already consumed */
} rng_t;

static void rng_init(rng_t *r, uint64_t seed, uint32_t stream, uint64_t index) {
    r->key = (philox4x32_key_t){{(uint32_t)seed, (uint32_t)(seed >> 32)}};
    r->ctr = (philox4x32_ctr_t){{(uint32_t)index, (uint32_t)(index >> 32), stream, 0}};
    r->used = 4;
}

static uint32_t rng_u32(rng_t *r) {
    if (r->used == 4) {
        r->out = philox4x32(r->ctr, r->key);
        r->ctr.v[3]++;
        r->used = 0;
    }
    return r->out.v[r->used++];
}

/* Uniform in [0, 1). */
static double rng_unit(rng_t *r) { return (double)rng_u32(r) * (1.0 / 4294967296.0); }

static uint32_t rng_below(rng_t *r, uint32_t n) { return (uint32_t)(((uint64_t)rng_u32(r) * n) >> 32); }

static double rng_gauss(rng_t *r) {
    double u1 = 1.0 - rng_unit(r); /* in (0, 1], so the log is finite */
    double u2 = rng_unit(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- text assembly ---- */

static void put(reel_synth_doc *doc, const char *s, size_t n) {
    if (doc->length + n + 1 > doc->capacity) {
        size_t cap = doc->capacity ? doc->capacity : 1024;
        while (cap < doc->length + n + 1) cap *= 2;
        doc->text = reel_realloc(doc->text, cap);
        doc->capacity = cap;
    }
    memcpy(doc->text + doc->length, s, n);
    doc->length += n;
    doc->text[doc->length] = '\0';
}

static void put_word(reel_synth_doc *doc, const char *word, int capitalise) {
    if (doc->length > 0) put(doc, " ", 1);
    size_t start = doc->length;
    put(doc, word, strlen(word));
    if (capitalise && doc->text[start] >= 'a' && doc->text[start] <= 'z') doc->text[start] -= 32;
}

/* Words of a short text: log-normal around 7 (a median of 7, a mean of about 9), from 2 to 55, so the
 * tokens (punctuation included) run from 3 to about 60 with a mean of about 10, as tweets and one-line
 * reviews do. */
static uint32_t short_text_words(rng_t *r) {
    double words = exp(log(7.0) + 0.7 * rng_gauss(r));
    return words < 2.0 ? 2 : words > 55.0 ? 55 : (uint32_t)lround(words);
}

void reel_synth_generate(uint64_t seed, uint32_t stream, uint64_t index, reel_synth_kind kind, reel_synth_doc *doc) {
    build_invented();
    rng_t r;
    rng_init(&r, seed, stream, index);
    doc->length = 0;
    put(doc, "", 0);
    uint32_t words = kind == REEL_SYNTH_SHORT ? short_text_words(&r) : 30 + rng_below(&r, 171);
    /* a short text has a few words to show its sentiment: sentiment words come twice as often */
    double sentiment_rate = kind == REEL_SYNTH_SHORT ? 0.24 : 0.12;
    int lean = rng_below(&r, 2) ? 1 : -1;
    double score = 0.0;
    uint32_t written = 0, sentence_left = 0, previous = UINT32_MAX;
    while (written < words) {
        int capitalise = 0;
        if (sentence_left == 0) {
            sentence_left = 5 + rng_below(&r, 10);
            capitalise = 1;
        }
        if (rng_unit(&r) < sentiment_rate) {
            int agree = rng_unit(&r) < 0.7;
            int polarity = agree ? lean : -lean;
            size_t w = rng_below(&r, polarity > 0 ? NUM_POSITIVE : NUM_NEGATIVE);
            int negated = written + 1 < words && rng_unit(&r) < 0.05;
            if (negated) {
                put_word(doc, "not", capitalise);
                capitalise = 0;
                written++;
            }
            put_word(doc, polarity > 0 ? positive_words[w] : negative_words[w], capitalise);
            score += (negated ? -1.0 : 1.0) * polarity * strength(w);
        } else {
            /* a usual successor of the previous neutral word, or a fresh one */
            uint32_t w;
            if (previous != UINT32_MAX && rng_unit(&r) < 0.8)
                w = successor(previous, rng_below(&r, SUCCESSORS));
            else
                w = rng_unit(&r) < 0.4 ? rng_below(&r, NUM_FUNCTION) : NUM_FUNCTION + rng_below(&r, NUM_INVENTED);
            put_word(doc, neutral_word(w), capitalise);
            previous = w;
        }
        written++;
        if (--sentence_left == 0 || written >= words)
            put(doc, rng_unit(&r) < 0.9 ? "." : "!", 1);
        else if (rng_unit(&r) < 0.05)
            put(doc, ",", 1);
    }
    doc->score = score;
    doc->label = score + REEL_SYNTH_NOISE * rng_gauss(&r) > 0.0;
}

void reel_synth_doc_free(reel_synth_doc *doc) {
    free(doc->text);
    memset(doc, 0, sizeof *doc);
}

int reel_synth_write_tsv(const char *path, uint64_t seed, uint32_t stream, reel_synth_kind kind, uint64_t docs,
                         uint64_t *positive, reel_error *err) {
    size_t n = strlen(path);
    char *tmp = reel_malloc(n + 5);
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        reel_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    reel_synth_doc doc = {0};
    uint64_t pos = 0;
    int ok = fputs("label\ttext\n", fp) >= 0;
    for (uint64_t i = 0; ok && i < docs; i++) {
        reel_synth_generate(seed, stream, i, kind, &doc);
        pos += (uint64_t)doc.label;
        ok = fputs(doc.label ? "pos\t" : "neg\t", fp) >= 0 && fwrite(doc.text, 1, doc.length, fp) == doc.length &&
             fputc('\n', fp) != EOF;
    }
    reel_synth_doc_free(&doc);
    ok = ok && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    int saved = errno;
    if (fclose(fp) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    if (!ok) {
        reel_fail(err, "%s: write failed: %s", tmp, strerror(saved));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        reel_fail(err, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    if (positive) *positive = pos;
    return reel_sync_parent_dir(path, err);
}
