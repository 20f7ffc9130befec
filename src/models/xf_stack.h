/* The Transformer stack both Transformer model types are built on (internal to src/models): token
 * embedding, positions, num_layers pre-LayerNorm blocks of multi-head self-attention and an MLP, and a final
 * LayerNorm. The GPT (src/models/gpt.c) reads it causally and puts its language-model output on the
 * features; the Transformer classifier (src/models/transformer.c) reads it with or without the causal
 * mask and pools the features of each document. xf_stack.c describes the computation; both models share
 * one implementation so that a classifier fine-tuned from a GPT computes exactly the GPT's features.
 *
 * Tensors (their names are the GPT's, so one model's checkpoint initialises the other by name):
 * embedding/weight (V, C), position/weight (max_context, C) unless rotary, block{l}/{ln1, attn_qkv,
 * attn_proj, ln2, mlp_fc, mlp_proj}/{weight, bias}, final_ln/{weight, bias}; groups: the embeddings 0,
 * block l group l + 1, the final norm L + 1 (the model's head, if any, above it). */
#ifndef REEL_XF_STACK_H
#define REEL_XF_STACK_H

#include <stddef.h>
#include <stdint.h>

#include "reel/attention.h"
#include "reel/config.h"
#include "reel/data.h"
#include "reel/model.h"

enum { XF_MAX_LAYERS = 96 };

/* The [model] keys of the stack; each model's options struct holds one as its member `stack`. */
typedef struct xf_stack_options {
    size_t num_layers, num_heads, d_ff, max_context;
    double dropout, attention_dropout, rotary_base;
    char positions[REEL_NAME_MAX];
} xf_stack_options;

extern const char *const xf_position_kinds[];

/* The stack's key entries for an options struct S whose member `stack` is an xf_stack_options, in two
 * runs (the GPT lists tie_weights between them); CONTEXT_HELP and DROPOUT_HELP say what max_context and
 * dropout mean for that model. */
#define XF_STACK_KEYS_SHAPE(S, CONTEXT_HELP)                                                                          \
    REEL_KEY_SIZE_OF(S, "model", "num_layers", stack.num_layers, "6", REEL_BOUND_MIN, 1, "Transformer blocks"),     \
    REEL_KEY_SIZE_OF(S, "model", "num_heads", stack.num_heads, "8", REEL_BOUND_MIN, 1,                                \
                     "attention heads per block; must divide embed_dim (the model width, d_model)"),                 \
    REEL_KEY_SIZE_OF(S, "model", "d_ff", stack.d_ff, "0", 0, 0, "width of each block's MLP; 0: 4 x embed_dim"),     \
    REEL_KEY_SIZE_OF(S, "model", "max_context", stack.max_context, "256", REEL_BOUND_MIN, 1, CONTEXT_HELP)
#define XF_STACK_KEYS_REST(S, DROPOUT_HELP)                                                                           \
    REEL_KEY_DOUBLE_OF(S, "model", "dropout", stack.dropout, "0", REEL_BOUND_MIN | REEL_BOUND_MAX_OPEN, 0, 1,      \
                       DROPOUT_HELP),                                                                                 \
    REEL_KEY_DOUBLE_OF(S, "model", "attention_dropout", stack.attention_dropout, "0",                                 \
                       REEL_BOUND_MIN | REEL_BOUND_MAX_OPEN, 0, 1,                                                    \
                       "dropout on the attention weights after the softmax, in training (0 for pretraining at this "  \
                       "scale)"),                                                                                     \
    REEL_KEY_CHOICE_OF(S, "model", "positions", stack.positions, "learned", xf_position_kinds,                        \
                       "learned: a table of max_context x embed_dim added to the token embeddings (GPT-2); rotary: "  \
                       "no table, each head's queries and keys rotated by position (RoPE, GPT-NeoX's rotate-half "    \
                       "pairing; embed_dim / num_heads must be even)"),                                               \
    REEL_KEY_DOUBLE_OF(S, "model", "rotary_base", stack.rotary_base, "10000", REEL_BOUND_MIN_OPEN, 1, 0,             \
                       "positions = rotary: the pair i of a head of width D turns by position x rotary_base^(-2i/D)")

/* Tensor indices of one block, in the order they are registered. */
typedef struct {
    size_t ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, fcproj_w, fcproj_b;
} xf_block;

/* The views of one block's activations in the arena (N rows: the batch's tokens, packed). */
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd; /* (N, C), (N), (N) */
    float *qkv;                       /* (N, 3C) */
    float *att, *lse;                 /* (N, C), (N NH) (reel/attention.h's packed layout) */
    float *mid;                       /* (N, C) the residual stream after attention */
    float *ln2, *ln2_mean, *ln2_rstd; /* (N, C), (N), (N) */
    float *fc, *act;                  /* (N, F) before and after GELU */
    float *out;                       /* (N, C) the residual stream after the block */
    float *mask_att, *mask_mlp;       /* (N, C) dropout masks, or NULL */
} xf_block_acts;

typedef struct xf_stack {
    size_t L, NH, C, F, W;     /* blocks, heads, width, MLP width, max_context */
    float dropout, attention_dropout;
    int causal;                /* 1: token t attends to tokens <= t; 0: to every token of its sequence */
    int rotary;                /* positions = rotary: no position table (wpe unused) */
    float *rope_cos, *rope_sin; /* (W, D/2) each: rotary's tables, made once */
    size_t wte, wpe, lnf_w, lnf_b;
    xf_block blocks[XF_MAX_LAYERS];
    /* the arena and its views for the current batch (or chunk of it) */
    float *arena;
    size_t arena_floats;
    size_t rows;               /* the rows of the views below */
    size_t block_slots;        /* blocks with their own views: L in training, 1 in evaluation */
    float *x0, *mask_emb;      /* (N, C) the embedded input; its dropout mask or NULL */
    xf_block_acts acts[XF_MAX_LAYERS];
    float *lnf, *lnf_mean, *lnf_rstd; /* (N, C), (N), (N) the features */
    float *dres, *dln, *dqkv, *datt, *dact, *dfc; /* backward: (N, C), (N, C), (N, 3C), (N, C), (N, F), (N, F) */
    float *scratch;            /* attention workspace */
    /* the batch: B sequences packed, sequence b at rows offsets[b] .. offsets[b + 1] - 1, N = offsets[B]
     * rows in all; T the longest sequence */
    size_t B, T, N;
    size_t *lengths;           /* (B) */
    size_t *offsets;           /* (B + 1) */
    size_t lengths_cap, offsets_cap;
    const float *features;     /* (N, C): lnf, or all_features in a chunked evaluation */
    float *all_features;       /* (N, C) the whole batch's features, a chunk of sequences at a time */
    size_t all_features_cap;
    uint8_t *row_mask;         /* (B T) the padded layout's valid rows (xf_stack_padded_features) */
    float *padded, *packed;    /* (B T, C), (N, C): the layout conversions of sequences of unequal lengths */
    size_t row_mask_cap, padded_cap, packed_cap;
    size_t *pos0;              /* (B) cached positions before this forward (decoding), else zeros */
    size_t pos0_cap;
} xf_stack;

/* Checks the options against the model width C (the errors name the keys), fills m's sizes and registers
 * the stack's tensors in model->params (groups 0 .. L + 1, all of them marked transferable). The caller
 * registers its own tensors after, then allocates the stores. */
int xf_stack_create(xf_stack *m, reel_model *model, const xf_stack_options *o, size_t C, int causal, reel_error *err);
/* Floats of one sequence's key/value cache (decoding, REEL_DECODE_CACHE). */
size_t xf_stack_cache_floats(const xf_stack *m);
/* The forward over the batch's sequences (each at most max_context tokens with its cache): leaves the
 * features PACKED, the sequences' tokens one after another without padding (sequence b at rows
 * m->offsets[b] .. m->offsets[b + 1] - 1, m->N rows, as the batch's own ids), in m->features, and the
 * batch's shape in m->B, m->T (the longest sequence), m->lengths and m->offsets. Nothing is computed for
 * padding: there is none. state: the batch's caches (evaluation only), or NULL. A training forward keeps
 * what the backward needs; adds model->input_delta to the embedded tokens when set. */
void xf_stack_forward(xf_stack *m, reel_model *model, const reel_batch *batch, int training, float *state);
/* The last forward's features in the padded batch-major layout (B T rows, row b * T + t, zeros at
 * padding; REEL_ROWS_BATCH_MAJOR), with its valid rows in m->row_mask: the GPT's per-token output. They
 * are m->features themselves when every sequence is T long. */
const float *xf_stack_padded_features(xf_stack *m);
/* A gradient (B T, C) in that padded layout as packed rows (N, C) for xf_stack_backward (the same pointer
 * when every sequence is T long); padding rows are not read. */
const float *xf_stack_packed_rows(xf_stack *m, const float *padded);
/* The backward of the last training forward from the packed features' gradient (N, C): adds every stack
 * tensor's gradient, reports groups L + 1 down to 0 ready, and fills model->input_grad when set. */
void xf_stack_backward(xf_stack *m, reel_model *model, const reel_batch *batch, const float *dfeatures);
/* GPT-2's initialisation of every tensor of the store (see xf_stack.c), the model's own too. */
void xf_stack_init(reel_store *p, const xf_stack *m, uint64_t seed);
void xf_stack_free(xf_stack *m);

#endif
