# Parity of the bag of words, the recurrent classifiers, the CNN, the recurrent language models, the GPT
# and the Transformer classifier with PyTorch: for each
# configuration below, tests/dump_batch runs one training forward and backward in reel and
# tests/torch_parity.py repeats it with PyTorch's own layers from the same parameters; logits, loss and
# every gradient must agree element by element: |reel - torch| <= 1e-4 (|torch| + 0.01 max|torch|), the
# max over each tensor (torch_parity.py says why the floor); for the bag of words also its state after the
# step (the Naive-Bayes ratios, which the twin counts from the training split itself, and batch norm's
# running statistics). Measured on this code, the worst element of
# each case as a fraction of that bound: bags of words 0.21 (batch norm), 0.018 (bigrams, 3 classes) and
# 0.0079 (NB-weighted logistic regression on trigrams, binary), recurrent classifiers 0.054-0.28 (concat pooling among them),
# CNNs 0.058 (widths 2, 3, 60) and 0.083 (widths 3, 4, 3 classes), recurrent language models
# 0.14-0.23, GPTs 0.24 (1 block, tied), 0.33 (2 blocks, untied) and 0.27 (3 blocks, 4 heads, d_ff 24), rotary
# GPTs 0.32 (2 blocks, untied) and 0.25 (1 block, 4 heads, base 100), Transformer classifiers 0.13 (one
# window, mean), 0.26 (causal, windows of 48, concat) and 0.33 (rotary, windows of 40, max, 3 classes): a
# 3.0x margin at worst; a tensor's largest difference is at most 2.1e-6 of its largest element (GPTs:
# 9.1e-7). The bf16 GPT case at the end has its own bound, derived there: measured 0.058 of it.
# torch and h5py are requirements (scripts/install-deps installs python3-torch and python3-h5py for
# /usr/bin/python3): without them the test fails, it is not skipped.
source "$(dirname "$0")/lib.sh"
require_h5py
TORCH_PYTHON=$H5PY_PYTHON
if ! why=$("$TORCH_PYTHON" -c "import torch" 2>&1); then
  echo "FAIL: $TORCH_PYTHON cannot import torch (scripts/install-deps installs python3-torch): ${why##*$'\n'}" >&2
  exit 1
fi
: "${DUMP_BATCH:?DUMP_BATCH must point at the dump_batch program (tests/cmake/core.cmake exports it)}"
[ -x "$DUMP_BATCH" ] || { echo "FAIL: $DUMP_BATCH is not built (cmake --build build --target dump_batch)" >&2; exit 1; }

# 1000 reviews (500 of them validation) are plenty for one batch and prepare in well under a second.
make_small_data "$WORK/data" 1000

# Batch: the first 8 training reviews cut to 120 tokens. Synthetic reviews are 30-200 words, so most
# are shorter than the cut and of different lengths (with this seed: 109 99 120 86 120 120 95 36): the
# batch is ragged, so padding, the reverse direction's start and `last` pooling are exercised. A batch
# of equal lengths fails the test (--require-ragged) rather than silently testing less.
DOCS=8
TOKENS=120

# write_config NAME [model]-lines...: dropout and batch norm off, since their masks and statistics are
# reel's own and the PyTorch twin has neither.
write_config() {
  local name=$1; shift
  {
    printf '[data]\ndir = %s\n[model]\nvocab_size = 600\nembed_dim = 16\nhidden_dim = 12\n' "$WORK/data"
    printf 'dropout = 0\nrnn_dropout = 0\nembed_dropout = 0\nrnn_batch_norm = false\n'
    printf '%s\n' "$@"
    printf '[train]\nseed = 11\n'
  } >"$WORK/$name.ini"
}

write_config lstm_max       "type = lstm" "pooling = max"
write_config lstm2_bi_mean  "type = lstm" "num_layers = 2" "bidirectional = true" "pooling = mean" "head_hidden = 8"
write_config gru_bi_last    "type = gru" "bidirectional = true" "pooling = last"
write_config rnn2_max       "type = rnn" "num_layers = 2" "pooling = max"
write_config rnn_bi_last_head "type = rnn" "bidirectional = true" "pooling = last" "head_hidden = 8"
# K logits and softmax cross-entropy. The corpus has two labels, so class 2 is never the target, but its
# logit still receives gradient through the softmax: every row of the output layer is compared.
write_config gru_bi_max_3class "type = gru" "bidirectional = true" "pooling = max" "num_classes = 3"
# ULMFiT's concat pooling (last, max, mean side by side), bidirectional, into a hidden head layer
write_config lstm_bi_concat_head "type = lstm" "bidirectional = true" "pooling = concat" "head_hidden = 8"
# Kim's CNN: widths 2, 3 and 60, 16 filters each, one logit (the batch's documents shorter than 60 tokens
# have one zero-padded window of that width, the longer ones several); and widths 3 and 4 into 3 classes
write_cnn_config() {
  local name=$1; shift
  {
    printf '[data]\ndir = %s\n[model]\ntype = cnn\nvocab_size = 600\nembed_dim = 16\ndropout = 0\n' "$WORK/data"
    printf '%s\n' "$@"
    printf '[train]\nseed = 11\n'
  } >"$WORK/$name.ini"
}
write_cnn_config cnn_2_3_60 "widths = 2,3,60" "filters = 16"
write_cnn_config cnn_34_3class "widths = 3,4" "filters = 5" "num_classes = 3"
# Language models (the dropouts default to non-zero and batch norm to on: both off here), untied, tied,
# tied with a projection (the last width differs from the embedding's), and per-layer widths.
write_lm_config() {
  local name=$1; shift
  {
    printf '[data]\ndir = %s\n[model]\ntype = rnn_lm\nvocab_size = 600\nembed_dim = 16\n' "$WORK/data"
    printf 'rnn_dropout = 0\nrnn_batch_norm = false\n'
    printf '%s\n' "$@"
    printf '[train]\nseed = 11\n'
  } >"$WORK/$name.ini"
}
write_lm_config lm_lstm2 "cell = lstm" "layer_dims = 12,10"
write_lm_config lm_gru_tied "cell = gru" "layer_dims = 16" "tie_weights = true"
write_lm_config lm_lstm_tied_proj "cell = lstm" "layer_dims = 12,8" "tie_weights = true"
write_lm_config lm_rnn "cell = rnn" "layer_dims = 10,10"
# GPTs (src/models/gpt.c) of 1, 2 and 3 blocks, tied and untied, the last with 4 heads of width 4 and an
# MLP narrower than the default 4 x embed_dim. max_context (128) is longer than the batch (120 tokens at
# most), so the position rows past it must get no gradient, and seq_len is the batch's cut.
write_gpt_config() {
  local name=$1; shift
  {
    printf '[data]\ndir = %s\nseq_len = %s\n[model]\ntype = gpt\nvocab_size = 600\nembed_dim = 16\n' "$WORK/data" "$TOKENS"
    printf 'max_context = 128\ndropout = 0\n'
    printf '%s\n' "$@"
    printf '[train]\nseed = 11\n'
  } >"$WORK/$name.ini"
}
write_gpt_config gpt1_tied "num_layers = 1" "num_heads = 2"
write_gpt_config gpt2_untied "num_layers = 2" "num_heads = 2" "tie_weights = false"
write_gpt_config gpt3_tied_ff24 "num_layers = 3" "num_heads = 4" "d_ff = 24"
# Rotary positions (no position table; the twin rotates q and k as tests/torch_parity.py writes RoPE out):
# 2 blocks of 2 heads of width 8, untied, at the default base, and 1 block of 4 heads of width 4 at base
# 100, where every pair turns by a large angle within the batch's 120 positions.
write_gpt_config gpt2_rotary_untied "num_layers = 2" "num_heads = 2" "tie_weights = false" "positions = rotary"
write_gpt_config gpt1_rotary_4heads "num_layers = 1" "num_heads = 4" "positions = rotary" "rotary_base = 100"
# The Transformer classifier (src/models/transformer.c on the GPT's blocks): bidirectional, one window
# (max_context 128), mean pooling; causal with windows of 48 tokens (the reviews of 86 to 120 tokens read
# in 2 or 3 windows, the one of 36 in one), concat pooling (last, max and mean over the whole review); and
# 1 block of 4 rotary heads (base 100), bidirectional, windows of 40, max pooling, into 3 classes. The twin
# pools each review's tokens over all its windows at once, by the pooling's definition.
write_xf_config() {
  local name=$1; shift
  {
    printf '[data]\ndir = %s\nseq_len = %s\n[model]\ntype = transformer\nvocab_size = 600\nembed_dim = 16\n' \
      "$WORK/data" "$TOKENS"
    printf 'dropout = 0\n'
    printf '%s\n' "$@"
    printf '[train]\nseed = 11\n'
  } >"$WORK/$name.ini"
}
write_xf_config xf2_mean "num_layers = 2" "num_heads = 2" "max_context = 128"
write_xf_config xf2_causal_concat_w48 "num_layers = 2" "num_heads = 2" "max_context = 48" "causal = true" \
  "pooling = concat"
write_xf_config xf1_rotary_max_w40_3class "num_layers = 1" "num_heads = 4" "max_context = 40" "pooling = max" \
  "positions = rotary" "rotary_base = 100" "num_classes = 3"
# The bag of words (src/models/bow.c): words into a hidden layer with batch norm (training statistics;
# the running ones it leaves are compared too); bigrams into a hidden layer without it, 3 classes; and
# NB-weighted logistic regression as configs/imdb_bow_linear.ini has it (width 1, trigrams, Naive-Bayes
# ratios, binary features; the twin counts the ratios from the training split itself). 53 and 211 buckets
# are few enough that n-grams share rows, so a row's gradient sums several features.
write_bow_config() {
  local name=$1; shift
  {
    printf '[data]\ndir = %s\n[model]\ntype = bow\nvocab_size = 600\ndropout = 0\n' "$WORK/data"
    printf '%s\n' "$@"
    printf '[train]\nseed = 11\n'
  } >"$WORK/$name.ini"
}
write_bow_config bow_bn "embed_dim = 16" "hidden_dim = 12"
write_bow_config bow_bigram_3class "embed_dim = 8" "hidden_dim = 6" "batch_norm = false" "ngrams = 2" \
  "ngram_buckets = 53" "num_classes = 3"
write_bow_config bow_nblr "embed_dim = 1" "hidden_dim = 0" "batch_norm = false" "ngrams = 3" "ngram_buckets = 211" \
  "nb_scaling = true" "binary = true"
cases=(bow_bn bow_bigram_3class bow_nblr lstm_max lstm2_bi_mean gru_bi_last rnn2_max rnn_bi_last_head gru_bi_max_3class lstm_bi_concat_head cnn_2_3_60 cnn_34_3class lm_lstm2 lm_gru_tied lm_lstm_tied_proj lm_rnn
       gpt1_tied gpt2_untied gpt3_tied_ff24 gpt2_rotary_untied gpt1_rotary_4heads
       xf2_mean xf2_causal_concat_w48 xf1_rotary_max_w40_3class)
# A GPT as initialised has zero biases, unit layer-norm gains and scores of about 0.01, so attention is
# nearly uniform: a bias read from the wrong tensor would change nothing and a wrong attention scale
# little. dump_batch's SPREAD adds N(0, 0.2^2) to every parameter: scores of order 1, biases and gains
# that matter. The recurrent cases keep their initial parameters (SPREAD 0).
# The bags' n-gram rows start at 0, where a feature hashed to the wrong row would change no logit: they
# get the spread too.
spread() { case $1 in gpt* | xf* | bow*) echo 0.2 ;; *) echo 0 ;; esac; }

# Negative control: the first dump checked against a configuration that pools by mean instead of max.
# Such a twin computes another function, and the check must say so.
write_config lstm_max_as_mean "type = lstm" "pooling = mean"
# and a language model dumped with locked dropout (reel's masks), checked as if it had none
write_lm_config lm_lstm2_dropped "cell = lstm" "layer_dims = 12,10"
sed -i 's/^rnn_dropout = 0$/rnn_dropout = 0.3/' "$WORK/lm_lstm2_dropped.ini"
"$DUMP_BATCH" "$WORK/lm_lstm2_dropped.ini" "$WORK/lm_lstm2_dropped.h5" "$DOCS" "$TOKENS" >/dev/null 2>&1 \
  || fail "dump_batch lm_lstm2_dropped"
# and the 2-block GPT (2 heads of width 8) checked as if it had 4 heads of width 4: the same tensors, but
# other heads and another scale
write_gpt_config gpt2_untied_as_4heads "num_layers = 2" "num_heads = 4" "tie_weights = false"
# and the 4-head rotary GPT (base 100) checked as if its base were 10,000: the same tensors, other angles
write_gpt_config gpt1_rotary_4heads_as_base10000 "num_layers = 1" "num_heads = 4" "positions = rotary"
# and the causal Transformer classifier checked as bidirectional (the same tensors, every token visible),
# and the rotary one checked as if it read each review in one window (the same tensors, no windows)
write_xf_config xf2_causal_concat_w48_as_bidirectional "num_layers = 2" "num_heads = 2" "max_context = 48" \
  "pooling = concat"
write_xf_config xf1_rotary_max_w40_3class_as_one_window "num_layers = 1" "num_heads = 4" "max_context = 128" \
  "pooling = max" "positions = rotary" "rotary_base = 100" "num_classes = 3"

# and the linear bag checked as if it counted repeated features (the same tensors, other averages) and
# as if it had bigrams only (the same tensors, no trigram rows)
write_bow_config bow_nblr_as_counted "embed_dim = 1" "hidden_dim = 0" "batch_norm = false" "ngrams = 3" \
  "ngram_buckets = 211" "nb_scaling = true"
write_bow_config bow_nblr_as_bigrams "embed_dim = 1" "hidden_dim = 0" "batch_norm = false" "ngrams = 2" \
  "ngram_buckets = 211" "nb_scaling = true" "binary = true"

pairs=()
for name in "${cases[@]}"; do
  if "$DUMP_BATCH" "$WORK/$name.ini" "$WORK/$name.h5" "$DOCS" "$TOKENS" "$(spread "$name")" >"$WORK/dump_$name.txt" 2>&1; then
    pairs+=("$WORK/$name.ini" "$WORK/$name.h5")
  else
    fail "dump_batch $name:"; sed 's/^/    /' "$WORK/dump_$name.txt" >&2
  fi
done
[ "$failures" -eq 0 ] || finish

# One python process for every case: importing torch costs more than all the models together.
status=0
OMP_NUM_THREADS=1 "$TORCH_PYTHON" "$REEL_SOURCE_DIR/tests/torch_parity.py" --tolerance 1e-4 --floor 1e-2 --require-ragged \
  --expect-mismatch "$WORK/lstm_max_as_mean.ini" "$WORK/lstm_max.h5" \
  --expect-mismatch "$WORK/bow_nblr_as_counted.ini" "$WORK/bow_nblr.h5" \
  --expect-mismatch "$WORK/bow_nblr_as_bigrams.ini" "$WORK/bow_nblr.h5" \
  --expect-mismatch "$WORK/lm_lstm2.ini" "$WORK/lm_lstm2_dropped.h5" \
  --expect-mismatch "$WORK/gpt2_untied_as_4heads.ini" "$WORK/gpt2_untied.h5" \
  --expect-mismatch "$WORK/gpt1_rotary_4heads_as_base10000.ini" "$WORK/gpt1_rotary_4heads.h5" \
  --expect-mismatch "$WORK/xf2_causal_concat_w48_as_bidirectional.ini" "$WORK/xf2_causal_concat_w48.h5" \
  --expect-mismatch "$WORK/xf1_rotary_max_w40_3class_as_one_window.ini" "$WORK/xf1_rotary_max_w40_3class.h5" \
  "${pairs[@]}" >"$WORK/parity.txt" 2>&1 || status=$?
cat "$WORK/parity.txt"
if [ "$status" -eq 0 ]; then
  pass "reel matches PyTorch on ${#cases[@]} configurations; $(grep -o 'max elementwise difference.*' "$WORK/parity.txt")"
else
  fail "torch_parity.py exited with status $status (see above)"
fi

# bf16: the 2-block untied GPT with [train] precision = bf16 (every matrix product in bf16, reel/gemm.h),
# against the same fp32 twin. Its bound follows from the one of a product and the depth:
#  - a bf16 product's element is within g sum_k |a_ik b_kj| of the exact one, g = 2u + u^2, u = 2^-8;
#    the bound scales with the operands' magnitudes, not with the element (which may cancel to 0), so
#    the comparison is against the tensor's scale: --floor 1, |reel - torch| <= tol (|torch| + max|torch|).
#  - the products a compared value depends on in sequence, for L blocks: forward, 6 per block (qkv,
#    Q K^T, P V, attn_proj, mlp_fc, mlp_proj) and the output layer; backward, the output layer's input
#    gradient, 6 per block (mlp_proj, mlp_fc, attn_proj, dO V^T, dS K, qkv; attention's recomputed
#    scores and dV are side branches of lesser depth), and the weight gradient: 12 L + 3 (27 for L = 2).
#  - to first order the errors of the products in a chain add, as long as nothing between them amplifies
#    an error relative to its tensor's scale; everything between them is fp32: LayerNorm rescales to
#    unit variance, softmax moves each probability by at most twice the scores' largest error relative
#    to itself (scores of order 1 here), GELU's slope is at most 1.13, the residual sums add. Hence
#    tol = (12 L + 3) g, a worst case that adds every product's full bound.
# Measured: 1.2e-2 of the scale (logits), 0.058 of the bound. Dropping the twin's 1/sqrt(D) gives 0.87
# of the scale (4.1 times the bound), reel's (attention.c, scale 1) 0.83 (3.9 times). Being a worst case,
# it does not see an error below it, such as a forward scale 10% too large (0.17 of the scale in the twin):
# the fp32 cases above do (3.8e4 times their bound).
# A CPU without native bf16 (or REEL_NO_BF16=1) skips this case, with the reason; the rest has run.
BF16_LAYERS=2
bf16_tolerance=$(awk -v L="$BF16_LAYERS" 'BEGIN { u = 2 ^ -8; printf "%.6g", (12 * L + 3) * (2 * u + u * u) }')
write_gpt_config gpt2_untied_bf16 "num_layers = $BF16_LAYERS" "num_heads = 2" "tie_weights = false"
write_gpt_config gpt2_untied_bf16_as_4heads "num_layers = $BF16_LAYERS" "num_heads = 4" "tie_weights = false"
sed -i 's/^seed = 11$/seed = 11\nprecision = bf16/' "$WORK/gpt2_untied_bf16.ini"
dump_status=0
"$DUMP_BATCH" "$WORK/gpt2_untied_bf16.ini" "$WORK/gpt2_untied_bf16.h5" "$DOCS" "$TOKENS" "$(spread gpt)" \
  >"$WORK/dump_gpt2_untied_bf16.txt" 2>&1 || dump_status=$?
if [ "$dump_status" -eq 77 ]; then
  echo "SKIPPED (the bf16 case only): $(grep -o 'this CPU.*' "$WORK/dump_gpt2_untied_bf16.txt")" >&2
elif [ "$dump_status" -ne 0 ]; then
  fail "dump_batch gpt2_untied_bf16:"; sed 's/^/    /' "$WORK/dump_gpt2_untied_bf16.txt" >&2
elif ! grep -q "precision: bf16" "$WORK/dump_gpt2_untied_bf16.txt"; then
  fail "dump_batch gpt2_untied_bf16 did not say it multiplies in bf16"
else
  status=0
  OMP_NUM_THREADS=1 "$TORCH_PYTHON" "$REEL_SOURCE_DIR/tests/torch_parity.py" --tolerance "$bf16_tolerance" --floor 1 \
    --require-ragged --expect-mismatch "$WORK/gpt2_untied_bf16_as_4heads.ini" "$WORK/gpt2_untied_bf16.h5" \
    "$WORK/gpt2_untied_bf16.ini" "$WORK/gpt2_untied_bf16.h5" >"$WORK/parity_bf16.txt" 2>&1 || status=$?
  cat "$WORK/parity_bf16.txt"
  if [ "$status" -eq 0 ]; then
    pass "reel in bf16 matches the fp32 PyTorch GPT within (12 L + 3)(2u + u^2) = $bf16_tolerance of each tensor's scale"
  else
    fail "torch_parity.py (bf16) exited with status $status (see above)"
  fi
fi
finish
