/* Word counting for prep: a hash table from token bytes to a provisional id (first-seen order).
 *
 * This is the hot loop of prep (one lookup per token, ~27 M for IMDb) and it is bound by memory latency:
 * the table is many MB. So a slot holds the full hash and the bytes of short tokens, making a lookup
 * one cache miss instead of three, and word frequencies being Zipfian, a small direct-mapped cache of
 * recently seen tokens (256 KB, about half of L2) answers most lookups with no miss at all. Counts live in
 * their own array indexed by id; frequent words get small ids (they are seen first), so their counts
 * share hot lines.
 */
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL /* lets the compiler specialise XXH3 for the short keys seen here */
#include <xxhash.h>

#include "prep_internal.h"

enum { CACHE_BITS = 13, INLINE_KEY = 16, CACHE_KEY = 15 };

/* One slot of the main table or of the front cache. Tokens of up to INLINE_KEY bytes are compared
 * against the copy held here, so a lookup touches one cache line; longer ones are compared against
 * the arena. */
typedef struct {
    uint64_t hash;
    uint32_t id1;    /* id + 1; 0 marks an empty slot */
    uint32_t length;
    char key[INLINE_KEY];
} slot_t;

/* A front-cache line also accumulates the count of its token, so a hit touches nothing else; the
 * pending count is added to counts[] when the line is reused and at the end. */
typedef struct {
    uint64_t hash;
    uint32_t id1; /* id + 1; 0 marks an empty line */
    uint32_t pending;
    uint8_t length; /* <= CACHE_KEY */
    char key[CACHE_KEY];
} cache_t;

typedef struct {
    size_t offset; /* of the token bytes in the arena */
    size_t length;
} entry_t;

struct prep_counter {
    slot_t *slots;
    size_t mask;
    entry_t *entries; /* by id */
    uint64_t *counts; /* by id */
    size_t size, capacity;
    char *arena;
    size_t arena_used, arena_capacity;
    cache_t cache[1u << CACHE_BITS];
    int flushed; /* prep_counter_finish was called: counts[] is complete */
};

prep_counter *prep_counter_create(void) {
    prep_counter *c = reel_calloc(1, sizeof *c);
    size_t slots = (size_t)1 << 16;
    c->slots = reel_calloc(slots, sizeof *c->slots);
    c->mask = slots - 1;
    c->capacity = slots / 2;
    c->entries = reel_malloc(c->capacity * sizeof *c->entries);
    c->counts = reel_malloc(c->capacity * sizeof *c->counts);
    c->arena_capacity = (size_t)1 << 20;
    c->arena = reel_malloc(c->arena_capacity);
    return c;
}

void prep_counter_destroy(prep_counter *c) {
    if (!c) return;
    free(c->slots);
    free(c->entries);
    free(c->counts);
    free(c->arena);
    free(c);
}

size_t prep_counter_size(const prep_counter *c) { return c->size; }

size_t prep_counter_distinct_counted(const prep_counter *c) {
    size_t n = 0;
    REEL_CHECK(c->flushed, NULL, "prep_counter_finish must be called before reading counts");
    for (size_t i = 0; i < c->size; i++) n += c->counts[i] > 0;
    return n;
}

/* Doubles the table (kept at most half full, so linear probing stays short). */
static void grow_slots(prep_counter *c) {
    size_t count = (c->mask + 1) * 2, mask = count - 1;
    slot_t *slots = reel_calloc(count, sizeof *slots);
    for (size_t i = 0; i <= c->mask; i++) {
        if (!c->slots[i].id1) continue;
        size_t pos = (size_t)c->slots[i].hash & mask;
        while (slots[pos].id1) pos = (pos + 1) & mask;
        slots[pos] = c->slots[i];
    }
    free(c->slots);
    c->slots = slots;
    c->mask = mask;
    c->capacity = count / 2;
    c->entries = reel_realloc(c->entries, c->capacity * sizeof *c->entries);
    c->counts = reel_realloc(c->counts, c->capacity * sizeof *c->counts);
}

/* Inline byte comparison: tokens are a few bytes long, shorter than the cost of calling memcmp. */
static int same_bytes(const char *a, const char *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static int slot_matches(const prep_counter *c, const slot_t *s, uint64_t h, const char *token, size_t length) {
    if (s->hash != h || s->length != length) return 0;
    const char *bytes = length <= INLINE_KEY ? s->key : c->arena + c->entries[s->id1 - 1].offset;
    return same_bytes(bytes, token, length);
}

static void fill_slot(slot_t *s, uint64_t h, uint32_t id, const char *token, size_t length) {
    s->hash = h;
    s->id1 = id + 1;
    s->length = (uint32_t)length;
    if (length <= INLINE_KEY) memcpy(s->key, token, length);
}

static uint32_t lookup_table(prep_counter *c, const char *token, size_t length, uint64_t h) {
    size_t pos = (size_t)h & c->mask;
    for (; c->slots[pos].id1; pos = (pos + 1) & c->mask)
        if (slot_matches(c, &c->slots[pos], h, token, length)) return c->slots[pos].id1 - 1;
    REEL_CHECK(c->size < UINT32_MAX - 1 && length <= UINT32_MAX, NULL, "more than %u distinct tokens, or one of "
               "more than 4 GB", UINT32_MAX - 2);
    if (c->size + 1 > c->capacity) {
        grow_slots(c);
        pos = (size_t)h & c->mask;
        while (c->slots[pos].id1) pos = (pos + 1) & c->mask;
    }
    if (c->arena_used + length > c->arena_capacity) {
        size_t cap = c->arena_capacity;
        while (cap < c->arena_used + length) cap *= 2;
        c->arena = reel_realloc(c->arena, cap);
        c->arena_capacity = cap;
    }
    memcpy(c->arena + c->arena_used, token, length);
    uint32_t id = (uint32_t)c->size++;
    c->entries[id] = (entry_t){c->arena_used, length};
    c->counts[id] = 0;
    c->arena_used += length;
    fill_slot(&c->slots[pos], h, id, token, length);
    return id;
}

uint32_t prep_counter_intern(prep_counter *c, const char *token, size_t length, uint64_t add) {
    uint64_t h = XXH3_64bits(token, length);
    c->flushed = 0;
    cache_t *line = &c->cache[h & ((1u << CACHE_BITS) - 1)];
    if (line->id1 && line->hash == h && line->length == length && same_bytes(line->key, token, length) &&
        line->pending < UINT32_MAX) {
        line->pending += (uint32_t)add;
        return line->id1 - 1;
    }
    uint32_t id = lookup_table(c, token, length, h);
    if (length > CACHE_KEY) {
        c->counts[id] += add;
        return id;
    }
    if (line->id1) c->counts[line->id1 - 1] += line->pending;
    line->hash = h;
    line->id1 = id + 1;
    line->pending = (uint32_t)add;
    line->length = (uint8_t)length;
    memcpy(line->key, token, length);
    return id;
}

/* Moves the counts still pending in the front cache into counts[]. */
static void flush_cache(prep_counter *c) {
    for (size_t i = 0; i < (1u << CACHE_BITS); i++) {
        if (c->cache[i].id1) c->counts[c->cache[i].id1 - 1] += c->cache[i].pending;
        c->cache[i].pending = 0;
    }
}

void prep_counter_finish(prep_counter *c) {
    flush_cache(c);
    c->flushed = 1;
}

/* qsort has no context argument, so the comparison reads the table through this pointer; prep builds
 * one vocabulary at a time. */
static const prep_counter *sort_counter;

static int by_count_then_bytes(const void *pa, const void *pb) {
    uint32_t ia = *(const uint32_t *)pa, ib = *(const uint32_t *)pb;
    uint64_t ca = sort_counter->counts[ia], cb = sort_counter->counts[ib];
    if (ca != cb) return ca > cb ? -1 : 1;
    const entry_t *a = &sort_counter->entries[ia], *b = &sort_counter->entries[ib];
    size_t n = a->length < b->length ? a->length : b->length;
    int cmp = memcmp(sort_counter->arena + a->offset, sort_counter->arena + b->offset, n);
    if (cmp != 0) return cmp;
    return a->length < b->length ? -1 : a->length > b->length;
}

void prep_counter_build_vocab(const prep_counter *c, size_t max_size, uint64_t min_count, reel_vocab *vocab,
                              uint32_t *final_id) {
    static const char *const reserved[REEL_VOCAB_RESERVED] = {"<pad>", "<unk>", "<eod>"};
    REEL_CHECK(c->flushed, NULL, "prep_counter_finish must be called before reading counts");
    if (min_count < 1) min_count = 1; /* a word never counted (seen only in test) is never in the vocab */
    uint32_t *order = reel_malloc((c->size ? c->size : 1) * sizeof *order);
    size_t candidates = 0;
    uint64_t unknown = 0;
    for (size_t i = 0; i < c->size; i++) {
        final_id[i] = REEL_TOKEN_UNK;
        unknown += c->counts[i];
        if (c->counts[i] >= min_count) order[candidates++] = (uint32_t)i;
    }
    sort_counter = c;
    if (candidates > 1) qsort(order, candidates, sizeof *order, by_count_then_bytes); /* may be NULL when empty */
    sort_counter = NULL;

    size_t keep = max_size > REEL_VOCAB_RESERVED ? max_size - REEL_VOCAB_RESERVED : 0;
    if (keep > candidates) keep = candidates;
    memset(vocab, 0, sizeof *vocab);
    vocab->size = REEL_VOCAB_RESERVED + keep;
    vocab->tokens = reel_calloc(vocab->size, sizeof *vocab->tokens);
    vocab->counts = reel_calloc(vocab->size, sizeof *vocab->counts);
    for (size_t r = 0; r < REEL_VOCAB_RESERVED; r++) {
        vocab->tokens[r] = reel_malloc(strlen(reserved[r]) + 1);
        memcpy(vocab->tokens[r], reserved[r], strlen(reserved[r]) + 1);
    }
    for (size_t r = 0; r < keep; r++) {
        const entry_t *e = &c->entries[order[r]];
        size_t id = REEL_VOCAB_RESERVED + r;
        vocab->tokens[id] = reel_malloc(e->length + 1);
        memcpy(vocab->tokens[id], c->arena + e->offset, e->length);
        vocab->tokens[id][e->length] = '\0';
        vocab->counts[id] = c->counts[order[r]];
        unknown -= c->counts[order[r]];
        final_id[order[r]] = (uint32_t)id;
    }
    vocab->counts[REEL_TOKEN_UNK] = unknown;
    vocab->checksum = reel_vocab_checksum(vocab->tokens, vocab->size);
    free(order);
}
