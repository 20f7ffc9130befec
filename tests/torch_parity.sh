# Parity of the recurrent classifiers and language models with PyTorch: for each configuration below, tests/dump_batch runs
# one training forward and backward in reel and tests/torch_parity.py repeats it with PyTorch's own
# layers from the same parameters; logits, loss and every gradient must agree element by element:
# |reel - torch| <= 1e-4 (|torch| + 0.01 max|torch|), the max over each tensor (torch_parity.py says why
# the floor). Measured on this code: at most 2.8e-5 of that bound's scale, i.e. a 3.6x margin; a tensor's
# largest difference is at most 2.1e-6 of its largest element.
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
cases=(lstm_max lstm2_bi_mean gru_bi_last rnn2_max rnn_bi_last_head gru_bi_max_3class lm_lstm2 lm_gru_tied lm_lstm_tied_proj lm_rnn)

# Negative control: the first dump checked against a configuration that pools by mean instead of max.
# Such a twin computes another function, and the check must say so.
write_config lstm_max_as_mean "type = lstm" "pooling = mean"
# and a language model dumped with locked dropout (reel's masks), checked as if it had none
write_lm_config lm_lstm2_dropped "cell = lstm" "layer_dims = 12,10"
sed -i 's/^rnn_dropout = 0$/rnn_dropout = 0.3/' "$WORK/lm_lstm2_dropped.ini"
"$DUMP_BATCH" "$WORK/lm_lstm2_dropped.ini" "$WORK/lm_lstm2_dropped.h5" "$DOCS" "$TOKENS" >/dev/null 2>&1 \
  || fail "dump_batch lm_lstm2_dropped"

pairs=()
for name in "${cases[@]}"; do
  if "$DUMP_BATCH" "$WORK/$name.ini" "$WORK/$name.h5" "$DOCS" "$TOKENS" >"$WORK/dump_$name.txt" 2>&1; then
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
  --expect-mismatch "$WORK/lm_lstm2.ini" "$WORK/lm_lstm2_dropped.h5" "${pairs[@]}" >"$WORK/parity.txt" 2>&1 || status=$?
cat "$WORK/parity.txt"
if [ "$status" -eq 0 ]; then
  pass "reel matches PyTorch on ${#cases[@]} configurations; $(grep -o 'max elementwise difference.*' "$WORK/parity.txt")"
else
  fail "torch_parity.py exited with status $status (see above)"
fi
finish
