# The GPT ([model] type = gpt) trained and used end to end, tiny (width 16, 2 blocks, 2 heads, context 32,
# dropout on, and attention dropout with the window sampler, so their masks must not depend on the ranks):
# both samplers give the same model on 1, 2 and 3 ranks (3 do not divide the batch of 50) within float
# tolerance; a run stopped (REEL_STOP_AFTER_STEP) and resumed on the same world size equals an
# uninterrupted one bit for bit, and within tolerance on another world size; with rotary positions, 1 rank
# equals 2, a resume is bit for bit, and it generates; it learns; `reel predict` scores a document the
# same alone and batched with longer ones; the bad inputs are named errors; and, where the CPU has native
# bf16, a bf16 run learns and resumes.
source "$(dirname "$0")/lib.sh"
require_h5py

make_small_data "$WORK/data" 1500     # 1000 training reviews: 20 window steps of 50 per epoch

# same_model A B [ckpt_compare options]: A and B hold the same model within the tolerance of the multi-rank
# tests (train_multirank.sh, train_lm.sh: the ranks sum the same gradient terms in another order, so values
# differ by float rounding carried through the Adam steps; 1e-3 relative is far below what a wrong share or
# dropout mask gives, see the control below). And the key third of each block's attn_qkv/bias is exactly 0
# with an Adam second moment of exactly 0 in both: its true gradient is 0 (a constant added to every key
# adds q.b to every score of a query, which the softmax removes), and the backward writes that exact 0
# instead of the rounding noise (~1e-11) a summed gradient gives, which Adam (dividing by sqrt(v) + eps)
# would turn into steps of lr x noise / eps that differ with the world size (measured before the exact 0:
# 3.7e-3 relative between 1 and 3 ranks over a stream epoch, with eps 1e-8).
same_model() {
  local a=$1 b=$2; shift 2
  "$CKPT_COMPARE" "$a" "$b" --tol 1e-3 "$@" || return 1
  "$H5PY_PYTHON" - "$a" "$b" <<'PY'
import sys, h5py
C = 16
for path in sys.argv[1:3]:
    with h5py.File(path, "r") as f:
        for l in (0, 1):
            key = f[f"model/block{l}/attn_qkv/bias"][C:2 * C]
            v = f[f"optimizer/adam_v/block{l}/attn_qkv/bias"][C:2 * C]
            if (key != 0).any() or (v != 0).any():
                sys.exit(f"{path}: block{l}'s key bias moved (max |b| {abs(key).max():.3g}, Adam v {v.max():.3g}): "
                         "its gradient must be exactly 0")
PY
}

# --- 1 vs 2 vs 3 ranks, both samplers (the stream sampler packs far more rows: one epoch of it)
write_small_gpt_config "$WORK/window.ini" "$WORK/data" window
write_small_gpt_config "$WORK/stream.ini" "$WORK/data" stream
sed -i 's/^epochs = 2$/epochs = 1/' "$WORK/stream.ini"
# The window runs have attention dropout too (drawn per sample index, layer, head and position pair:
# reel/attention.h). The stream runs do not: over their 161 Adam steps, attention dropout makes a few
# gradients (block1's attn_qkv/weight, Adam v ~ 6e-13) as small as eps = 1e-6, and Adam then turns their
# rounding into diverging steps, as write_small_gpt_config describes for eps 1e-8 (measured after 40
# steps: 1 rank against 1 rank with accumulate = 2, the same masks, parts by 1.6e-3; with eps 1e-4 by
# 1.4e-6, with SGD by 1.5e-7; test_models checks that a batch's gradient is the sum of its parts').
sed -i 's/^dropout = 0.1$/dropout = 0.1\nattention_dropout = 0.1/' "$WORK/window.ini"
grep -q "^attention_dropout = 0.1$" "$WORK/window.ini" || fail "the window configuration has no attention dropout"
for sampler in window stream; do
  for n in 1 2 3; do
    expect_ok "$sampler sampler, $n rank(s)" mpireel $n train "$WORK/$sampler.ini" --run-dir "$WORK/${sampler}$n"
    cp "$WORK/out.txt" "$WORK/${sampler}$n.txt"
  done
  final=$(cd "$WORK/${sampler}1" && ls ckpt_0*.h5 | tail -1)
  eval "final_$sampler=$final"
  for n in 2 3; do
    if same_model "$WORK/${sampler}1/$final" "$WORK/${sampler}$n/$final" --ignore /@world_size_at_save; then
      pass "$sampler: 1 rank == $n ranks ($final)"; else fail "$sampler: 1 rank != $n ranks"; fi
  done
done
[ "$final_window" = ckpt_00000040.h5 ] && pass "window: 40 steps" || fail "window: the last checkpoint is $final_window"
# Control: another seed gives another model, so the comparison can fail.
expect_ok "control run" mpireel 2 train "$WORK/window.ini" --run-dir "$WORK/control" --set train.seed=6
if same_model "$WORK/window1/$final_window" "$WORK/control/$final_window" --ignore /@world_size_at_save \
    --ignore /config:train.seed --ignore /train_state@seed >/dev/null; then
  fail "a different seed compared equal"; else pass "control differs"; fi

# It learns: the stream run's final test perplexity beats the unigram distribution of the training text.
line=$(grep "^test: " "$WORK/stream2.txt" | tail -1)
ppl=$(echo "$line" | grep -o 'perplexity [0-9.]*' | head -1 | awk '{print $2}')
uni=$(echo "$line" | grep -o 'unigram perplexity [0-9.]*' | awk '{print $3}')
awk -v p="$ppl" -v u="$uni" 'BEGIN { exit !(p > 0 && u > 0 && p < 0.8 * u) }' \
  && pass "test perplexity $ppl below the unigram baseline $uni" || fail "perplexity '$ppl' vs unigram '$uni'"

# --- resume: stopped after step 7 and resumed on 2 ranks, bit for bit; stopped after step 13 on 3 ranks
# and resumed on 1, within the tolerance above, for both samplers
for sampler in window stream; do
  eval "final=\$final_$sampler"
  status=0
  REEL_STOP_AFTER_STEP=7 "$MPIEXEC" -np 2 --oversubscribe "$REEL_BIN" train "$WORK/$sampler.ini" \
    --run-dir "$WORK/${sampler}_split" >"$WORK/stop.log" 2>&1 || status=$?
  [ "$status" -eq 75 ] && grep -q "^stopped at step 7 (REEL_STOP_AFTER_STEP=7" "$WORK/stop.log" \
    && [ -f "$WORK/${sampler}_split/ckpt_00000007.h5" ] && pass "$sampler: stopped after step 7 (status 75)" \
    || { fail "$sampler: the stop at step 7: status $status"; tail -3 "$WORK/stop.log" >&2; }
  expect_ok "$sampler resumed" mpireel 2 train "$WORK/$sampler.ini" --run-dir "$WORK/${sampler}_split"
  grep -q "resuming from .*ckpt_00000007.h5" "$WORK/out.txt" && pass "$sampler: resumed from step 7" \
    || fail "$sampler: did not resume from step 7"
  if "$CKPT_COMPARE" "$WORK/${sampler}2/$final" "$WORK/${sampler}_split/$final" --exact; then
    pass "$sampler resume: bit for bit"; else fail "$sampler resume differs"; fi
  status=0
  REEL_STOP_AFTER_STEP=13 "$MPIEXEC" -np 3 --oversubscribe "$REEL_BIN" train "$WORK/$sampler.ini" \
    --run-dir "$WORK/${sampler}_shrink" >"$WORK/stop.log" 2>&1 || status=$?
  [ "$status" -eq 75 ] && pass "$sampler: 3 ranks stopped after step 13" || fail "$sampler: 3 ranks, status $status"
  expect_ok "$sampler then 1 rank" mpireel 1 train "$WORK/$sampler.ini" --run-dir "$WORK/${sampler}_shrink"
  if same_model "$WORK/${sampler}1/$final" "$WORK/${sampler}_shrink/$final"; then
    pass "$sampler: 3 ranks then 1 == uninterrupted"; else fail "$sampler: 3 ranks then 1 differs"; fi
done

# --- rotary positions (attention dropout on too): no position table; 1 rank == 2 ranks within the
# tolerance above (the keys' bias has a real gradient with rotary, so same_model's exact-zero check does not
# apply); stopped after step 7 and resumed on 2 ranks, bit for bit; and it generates (through its cache).
sed 's/^max_context = 32$/max_context = 32\npositions = rotary/' "$WORK/window.ini" >"$WORK/rotary.ini"
for n in 1 2; do
  expect_ok "rotary, $n rank(s)" mpireel $n train "$WORK/rotary.ini" --run-dir "$WORK/rotary$n"
done
if "$CKPT_COMPARE" "$WORK/rotary1/$final_window" "$WORK/rotary2/$final_window" --tol 1e-3 --ignore /@world_size_at_save; then
  pass "rotary: 1 rank == 2 ranks"; else fail "rotary: 1 rank != 2 ranks"; fi
"$H5PY_PYTHON" - "$WORK/rotary2/$final_window" <<'PY' && pass "rotary: no position table" || fail "rotary: the checkpoint's tensors"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    assert "position" not in f["model"], list(f["model"])
    assert "embedding" in f["model"] and "block1" in f["model"], list(f["model"])
PY
status=0
REEL_STOP_AFTER_STEP=7 "$MPIEXEC" -np 2 --oversubscribe "$REEL_BIN" train "$WORK/rotary.ini" \
  --run-dir "$WORK/rotary_split" >"$WORK/stop.log" 2>&1 || status=$?
[ "$status" -eq 75 ] && pass "rotary: stopped after step 7" || { fail "rotary: the stop at step 7: status $status"; tail -3 "$WORK/stop.log" >&2; }
expect_ok "rotary resumed" mpireel 2 train "$WORK/rotary.ini" --run-dir "$WORK/rotary_split"
"$CKPT_COMPARE" "$WORK/rotary2/$final_window" "$WORK/rotary_split/$final_window" --exact \
  && pass "rotary resume: bit for bit" || fail "rotary: the resumed run differs"
expect_ok "rotary: generate" reel generate "$WORK/rotary2/$final_window" --prime "the film was" --length 28 --seed 4
[ "$(grep -c '^\[1\] the film was | [^ ]' "$WORK/out.txt")" -eq 1 ] && pass "rotary: generates after the prime" \
  || { fail "rotary generate's output:"; cat "$WORK/out.txt" >&2; }

ckpt="$WORK/window1/$final_window"
# --- using it: generate writes text, the same seed the same text; eval reports a perplexity
expect_ok "generate" reel generate "$ckpt" --prime "the film was" --length 12 --samples 2 --seed 4
cp "$WORK/out.txt" "$WORK/gen_a.txt"
[ "$(grep -c '^\[[12]\] the film was | [^ ]' "$WORK/gen_a.txt")" -eq 2 ] && pass "generate: two samples after the prime" \
  || { fail "generate's output:"; cat "$WORK/gen_a.txt" >&2; }
reel generate "$ckpt" --prime "the film was" --length 12 --samples 2 --seed 4 >"$WORK/gen_b.txt" 2>/dev/null || true
cmp -s "$WORK/gen_a.txt" "$WORK/gen_b.txt" && pass "generate: the same seed, the same text" || fail "generate: the same seed gave other text"
# <eod>, a prime of 3 and 28 tokens fill the context of 32 exactly
expect_ok "generate to the end of the context" reel generate "$ckpt" --prime "the film was" --length 28
expect_ok "eval" mpireel 2 eval "$ckpt" --split test
grep -q "(gpt, objective next_token)" "$WORK/out.txt" && grep -q "^perplexity " "$WORK/out.txt" \
  && pass "eval reports a perplexity" || fail "eval: $(head -3 "$WORK/out.txt")"

# reel predict scores each document in windows of max_context, batched with others; a document's score must
# not depend on the longer documents batched with it (their padding and windows): batch-major rows
# (reel_output_row) read as time-major gave a 2-token line a perplexity of 1e38 next to a 100-token one
cut -f2 "$WORK/synth_test.tsv" | sed -n '2,4p' | cut -c1-700 >"$WORK/long.txt"
printf 'the film\nthis movie was\n' >"$WORK/short.txt"
cat "$WORK/short.txt" "$WORK/long.txt" >"$WORK/mixed.txt"
expect_ok "predict short documents" reel predict "$ckpt" "$WORK/short.txt" --json
cp "$WORK/out.txt" "$WORK/short.json"
expect_ok "predict them with long ones" reel predict "$ckpt" "$WORK/mixed.txt" --json
cp "$WORK/out.txt" "$WORK/mixed.json"
# The same up to summation order (a batch of other rows runs the matrix products with other kernels:
# measured 7e-9 relative); 1e-6 relative is far below what reading another row gives (a factor of 1e35)
"$H5PY_PYTHON" - "$WORK/short.json" "$WORK/mixed.json" <<'PY' && pass "predict: a document scores the same alone and next to long ones" \
  || fail "predict: the scores depend on the batch"
import sys, json
alone = [json.loads(l) for l in open(sys.argv[1])]
mixed = [json.loads(l) for l in open(sys.argv[2])]
assert len(alone) == 2 and len(mixed) == 5, (len(alone), len(mixed))
assert all(m["tokens"] > 64 for m in mixed[2:]), "the long documents do not span several windows of 32"
for a, m in zip(alone, mixed):
    assert a["tokens"] == m["tokens"], (a, m)
    assert abs(a["nll"] - m["nll"]) <= 1e-6 * abs(a["nll"]), f"line {a['line']}: alone {a}, batched {m}"
PY

# --- bad input
expect_fail "num_heads not dividing embed_dim" \
  "\[model\] num_heads = 3 does not divide embed_dim = 16: every head takes embed_dim / num_heads columns" \
  reel train "$WORK/window.ini" --set model.num_heads=3 --run-dir "$WORK/bad1"
expect_fail "rotary with an odd head width" \
  "\[model\] positions = rotary needs an even head width, but embed_dim / num_heads = 16 / 16 = 1: rotary turns each head's values in pairs" \
  reel train "$WORK/window.ini" --set model.positions=rotary --set model.num_heads=16 --run-dir "$WORK/bad4"
expect_fail "attention dropout of 1" "\[model\] attention_dropout = '1': must be in \[0, 1\)" \
  reel train "$WORK/window.ini" --set model.attention_dropout=1 --run-dir "$WORK/bad5"
expect_fail "seq_len past max_context" \
  "\[data\] seq_len = 40 is longer than \[model\] max_context = 32: a gpt reads at most max_context positions" \
  reel train "$WORK/window.ini" --set data.seq_len=40 --run-dir "$WORK/bad2"
expect_fail "generate: a prime longer than max_context" \
  "--prime has 40 tokens: with the start of the document and --length 5 that is 46, more than the model takes \(its max_context 32\)" \
  reel generate "$ckpt" --prime "$(for i in $(seq 20); do printf 'the film '; done)" --length 5
grep -q "hint: shorten the prime or --length: the model reads no more than its max_context tokens" "$WORK/err.txt" \
  && ! grep -q "raise --max-context" "$WORK/err.txt" && pass "the hint does not offer --max-context, which cannot raise the model's" \
  || fail "generate's hint: $(grep hint "$WORK/err.txt")"
expect_fail "generate: one token past the context" \
  "--prime has 3 tokens: with the start of the document and --length 29 that is 33, more than the model takes \(its max_context 32\)" \
  reel generate "$ckpt" --prime "the film was" --length 29
# a GPT where a classifier is needed: error analysis, and a recurrent classifier starting from its encoder
expect_fail "analyze a GPT" "$final_window is a language model \(gpt\): analyze needs a classifier" \
  reel analyze "$ckpt" --split test
write_small_lstm_config "$WORK/lstm.ini" "$WORK/data"
expect_fail "a classifier from a GPT's encoder" \
  "$final_window: the model's lstm_l0_fwd/w_ih is not in the checkpoint, whose model has the layers block0,block1,embedding,final_ln,position" \
  reel train "$WORK/lstm.ini" --set model.embed_dim=16 --set model.init_from="$ckpt" --run-dir "$WORK/bad3"
[ ! -e "$WORK/bad3/ckpt_00000001.h5" ] && pass "the refused classifier saved nothing" || fail "the refused classifier trained"
# a truncated checkpoint
cp "$ckpt" "$WORK/cut.h5" && truncate -s $(($(stat -c %s "$ckpt") / 2)) "$WORK/cut.h5"
expect_fail "generate: a truncated checkpoint" "cut.h5.*(truncated|corrupt)" reel generate "$WORK/cut.h5"
expect_fail "eval: a truncated checkpoint" "cut.h5.*(truncated|corrupt)" reel eval "$WORK/cut.h5" --split test

# --- bf16, where the CPU has it (probed as bf16.sh does: precision auto says what it chose)
mpireel 1 train "$WORK/window.ini" --run-dir "$WORK/probe" --set train.max_steps=1 --set train.precision=auto \
  >"$WORK/probe.txt" 2>&1 || fail "the probe run with precision auto: $(tail -1 "$WORK/probe.txt")"
if ! grep -q "precision: bf16" "$WORK/probe.txt"; then
  [ "$failures" -eq 0 ] || finish
  cpu=$(grep -o 'this CPU ([^)]*)' "$WORK/probe.txt" | head -1)
  echo "SKIPPED: ${cpu:-this CPU} has no native bf16 matrix products: the GPT's bf16 run cannot be checked here" \
    "(every other check above passed)" >&2
  exit 77
fi
bf=(--set train.precision=bf16 --set train.log_every=1) # a loss logged at every step for the check below
expect_ok "bf16, 2 ranks" mpireel 2 train "$WORK/window.ini" --run-dir "$WORK/bf16" "${bf[@]}"
grep -q "precision: bf16 matrix products" "$WORK/out.txt" && pass "the log names bf16" || fail "no bf16 line"
if "$CKPT_COMPARE" "$WORK/window2/$final_window" "$WORK/bf16/$final_window" --tol 1e-7 --ignore /config:train.precision \
    --ignore /config:train.log_every >/dev/null 2>&1; then fail "bf16 parameters equal fp32's: the bf16 path was not taken"; else pass "bf16 is another computation"; fi
# it learns: the mean training loss of the last 10 steps is below that of the first 10 (measured: about
# 6.2 falling to 5.7 in fp32 and bf16 alike)
"$H5PY_PYTHON" - "$WORK/bf16/metrics.h5" <<'PY' && pass "bf16: the training loss falls" || fail "bf16: the loss does not fall"
import sys, h5py, numpy as np
loss = h5py.File(sys.argv[1], "r", swmr=True)["train/loss"][:]
assert len(loss) >= 20 and np.all(np.isfinite(loss)), loss
first, last = float(np.mean(loss[:5])), float(np.mean(loss[-5:]))
print(f"bf16 training loss: first steps {first:.4f}, last steps {last:.4f}")
assert last < first - 0.2, (first, last)
PY
status=0
REEL_STOP_AFTER_STEP=7 "$MPIEXEC" -np 2 --oversubscribe "$REEL_BIN" train "$WORK/window.ini" --run-dir "$WORK/bf16_split" \
  "${bf[@]}" >"$WORK/stop.log" 2>&1 || status=$?
[ "$status" -eq 75 ] && pass "bf16: stopped after step 7" || { fail "bf16: the stop at step 7: status $status"; tail -3 "$WORK/stop.log" >&2; }
expect_ok "bf16 resumed" mpireel 2 train "$WORK/window.ini" --run-dir "$WORK/bf16_split" "${bf[@]}"
"$CKPT_COMPARE" "$WORK/bf16/$final_window" "$WORK/bf16_split/$final_window" --exact \
  && pass "bf16: resume bit for bit" || fail "bf16: the resumed run differs"
finish
