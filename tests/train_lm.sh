# The language model across ranks and stops: both samplers give the same model on 1, 2 and 3 ranks
# (within float tolerance; 3 ranks do not divide the batch of 50); a resumed run equals an uninterrupted
# one bit for bit on the same number of ranks, and within tolerance across world sizes, the streams'
# carried state included; the perplexity beats the unigram baseline; and bad input is reported.
source "$(dirname "$0")/lib.sh"
require_h5py

make_small_data "$WORK/data" 1500     # 1000 training reviews: 20 window steps of 50 per epoch
for sampler in window stream; do
  write_small_lm_config "$WORK/$sampler.ini" "$WORK/data" "$sampler"
  for n in 1 2 3; do
    expect_ok "$sampler sampler, $n rank(s)" mpireel $n train "$WORK/$sampler.ini" --run-dir "$WORK/${sampler}$n"
  done
  final=$(cd "$WORK/${sampler}1" && ls ckpt_0*.h5 | tail -1)
  eval "final_$sampler=$final"
  for n in 2 3; do
    if "$CKPT_COMPARE" "$WORK/${sampler}1/$final" "$WORK/${sampler}$n/$final" --tol 1e-3 --ignore /@world_size_at_save; then
      pass "$sampler: 1 rank == $n ranks ($final)"; else fail "$sampler: 1 rank != $n ranks"; fi
  done
done
# A last batch smaller than the number of ranks: 1001 documents in batches of 50 leave 1 for step 21, so
# two of three ranks have no rows there; nothing hangs and nothing changes.
make_small_data "$WORK/data_odd" 1501
for n in 1 3; do
  expect_ok "tiny last batch, $n rank(s)" timeout 300 "$MPIEXEC" -np $n --oversubscribe "$REEL_BIN" train "$WORK/window.ini" \
    --set data.dir="$WORK/data_odd" --set train.epochs=1 --run-dir "$WORK/odd$n"
done
if "$CKPT_COMPARE" "$WORK/odd1/ckpt_00000021.h5" "$WORK/odd3/ckpt_00000021.h5" --tol 1e-3 --ignore /@world_size_at_save; then
  pass "tiny last batch: 1 rank == 3 ranks"; else fail "tiny last batch: 1 rank != 3 ranks"; fi

# The stream sampler's checkpoints hold one carried state per stream.
"$H5PY_PYTHON" - "$WORK/stream2/$final_stream" <<'PY' && pass "checkpoint holds 50 stream states" || fail "stream state in the checkpoint"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    state = f["train_state/carried/streams/state"]
    # 50 streams; per stream (12 + 12) + (8 + 8) floats: h and c of both LSTM layers
    assert state.shape == (50, 40), state.shape
    assert abs(state[()]).max() > 0, "the carried states are all zero"
PY

# Control: another seed gives another model, so the comparison can fail (on the tensors: the seed itself
# and the world size are ignored).
expect_ok "control run" mpireel 2 train "$WORK/window.ini" --run-dir "$WORK/control" --set train.seed=6
if "$CKPT_COMPARE" "$WORK/window1/$final_window" "$WORK/control/$final_window" --tol 1e-3 --ignore /@world_size_at_save \
    --ignore /config:train.seed --ignore /train_state@seed >/dev/null; then
  fail "a different seed compared equal"; else pass "control differs"; fi

# It learns: the final test perplexity beats the unigram distribution of the training text.
mpireel 2 train "$WORK/window.ini" --run-dir "$WORK/learn" --set train.epochs=6 --set optimizer.lr=0.02 >"$WORK/learn.txt" 2>&1 \
  || fail "6 epochs"
line=$(grep "^test: " "$WORK/learn.txt" | tail -1)
ppl=$(echo "$line" | grep -o 'perplexity [0-9.]*' | head -1 | awk '{print $2}')
uni=$(echo "$line" | grep -o 'unigram perplexity [0-9.]*' | awk '{print $3}')
awk -v p="$ppl" -v u="$uni" 'BEGIN { exit !(p > 0 && u > 0 && p < 0.95 * u) }' \
  && pass "test perplexity $ppl below the unigram baseline $uni" || fail "perplexity '$ppl' vs unigram '$uni'"

# The sampled softmax: the same candidates on every rank (1 rank == 2 ranks), and it learns too.
for n in 1 2; do
  expect_ok "sampled softmax, $n rank(s)" mpireel $n train "$WORK/window.ini" --run-dir "$WORK/sampled$n" \
    --set objective.softmax=sampled --set objective.sampled=64
done
if "$CKPT_COMPARE" "$WORK/sampled1/$final_window" "$WORK/sampled2/$final_window" --tol 1e-3 --ignore /@world_size_at_save; then
  pass "sampled softmax: 1 rank == 2 ranks"; else fail "sampled softmax: 1 rank != 2 ranks"; fi
if "$CKPT_COMPARE" "$WORK/sampled1/$final_window" "$WORK/window1/$final_window" --tol 1e-3 --ignore /config:objective.softmax \
    --ignore /config:objective.sampled >/dev/null; then
  fail "the sampled softmax trained the same model as the full one"; else pass "sampled differs from full"; fi
mpireel 2 train "$WORK/window.ini" --run-dir "$WORK/sampled_learn" --set train.epochs=6 --set optimizer.lr=0.02 \
  --set objective.softmax=sampled --set objective.sampled=200 >"$WORK/sampled_learn.txt" 2>&1 || fail "6 sampled epochs"
line=$(grep "^test: " "$WORK/sampled_learn.txt" | tail -1)
ppl=$(echo "$line" | grep -o 'perplexity [0-9.]*' | head -1 | awk '{print $2}')
uni=$(echo "$line" | grep -o 'unigram perplexity [0-9.]*' | awk '{print $3}')
awk -v p="$ppl" -v u="$uni" 'BEGIN { exit !(p > 0 && p < 0.95 * u) }' \
  && pass "sampled softmax: test perplexity $ppl (full softmax) below the unigram $uni" || fail "sampled: '$ppl' vs '$uni'"

# Resume: stopped inside epoch 1 and resumed, bit for bit, for both samplers; and across world sizes.
for sampler in window stream; do
  eval "final=\$final_$sampler"
  expect_ok "$sampler to 7" mpireel 2 train "$WORK/$sampler.ini" --run-dir "$WORK/${sampler}_split" --set train.max_steps=7
  expect_ok "$sampler resumed" mpireel 2 train "$WORK/$sampler.ini" --run-dir "$WORK/${sampler}_split"
  if "$CKPT_COMPARE" "$WORK/${sampler}2/$final" "$WORK/${sampler}_split/$final" --exact; then
    pass "$sampler resume: bit for bit"; else fail "$sampler resume differs"; fi
  expect_ok "$sampler 3 ranks to 13" mpireel 3 train "$WORK/$sampler.ini" --run-dir "$WORK/${sampler}_shrink" --set train.max_steps=13
  expect_ok "$sampler then 1 rank" mpireel 1 train "$WORK/$sampler.ini" --run-dir "$WORK/${sampler}_shrink"
  if "$CKPT_COMPARE" "$WORK/${sampler}1/$final" "$WORK/${sampler}_shrink/$final" --tol 1e-3; then
    pass "$sampler: 3 ranks then 1 == uninterrupted"; else fail "$sampler: 3 ranks then 1 differs"; fi
done
# The old name of the model type: a checkpoint written before the recurrent LM was renamed holds
# type = lm in its /config and model_type = "lm"; made here from the window run's stop at step 7 by
# rewriting both. It evaluates like the same checkpoint under rnn_lm, and resumed with a configuration that
# says type = lm it ends bit for bit where the uninterrupted run did, its config written back as rnn_lm.
mkdir -p "$WORK/old_name" "$WORK/new_name"
cp "$WORK/window_split/ckpt_00000007.h5" "$WORK/old_name/" && cp "$WORK/window_split/ckpt_00000007.h5" "$WORK/new_name/"
"$H5PY_PYTHON" - "$WORK/old_name/ckpt_00000007.h5" <<'PY' && pass "a checkpoint with the old type name" || fail "rewriting the type to lm"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    text = f["config"][()].decode()
    assert text.count("\ntype = rnn_lm\n") == 1, "no type = rnn_lm in /config"
    del f["config"]
    f.create_dataset("config", data=np.bytes_(text.replace("\ntype = rnn_lm\n", "\ntype = lm\n").encode()))
    assert f.attrs["model_type"] == b"rnn_lm", f.attrs["model_type"]
    f.attrs["model_type"] = np.bytes_(b"lm")
PY
sed 's/^type = rnn_lm$/type = lm/' "$WORK/window.ini" >"$WORK/window_old_name.ini"
grep -qx 'type = lm' "$WORK/window_old_name.ini" || fail "window_old_name.ini does not say type = lm"
for name in old_name new_name; do
  expect_ok "eval, $name" mpireel 2 eval "$WORK/$name/ckpt_00000007.h5" --split test
  cp "$WORK/out.txt" "$WORK/eval_$name.txt"
done
head -1 "$WORK/eval_old_name.txt" | grep -q "ckpt_00000007.h5 (rnn_lm, objective next_token)" \
  && pass "the old name is read as rnn_lm" || fail "eval of the old name: $(head -1 "$WORK/eval_old_name.txt")"
grep -q '^perplexity ' "$WORK/eval_old_name.txt" && cmp -s <(tail -n +2 "$WORK/eval_old_name.txt") <(tail -n +2 "$WORK/eval_new_name.txt") \
  && pass "type = lm evaluates as rnn_lm" || { fail "eval differs between lm and rnn_lm:"; diff "$WORK/eval_old_name.txt" "$WORK/eval_new_name.txt" >&2; }
expect_ok "resumed from type = lm" mpireel 2 train "$WORK/window_old_name.ini" --run-dir "$WORK/old_name"
if "$CKPT_COMPARE" "$WORK/window2/$final_window" "$WORK/old_name/$final_window" --exact; then
  pass "type = lm resumes bit for bit as rnn_lm"; else fail "the resume from type = lm differs"; fi
grep -qx 'type = rnn_lm' "$WORK/old_name/config.ini" && pass "the resumed run writes type = rnn_lm" \
  || fail "$WORK/old_name/config.ini: $(grep '^type' "$WORK/old_name/config.ini")"
# Dropping the carried state on resume must be detectable: zero it in a copy of the stop's checkpoint.
mkdir -p "$WORK/zeroed" && cp "$WORK/stream_split/ckpt_00000007.h5" "$WORK/zeroed/"
"$H5PY_PYTHON" - "$WORK/zeroed/ckpt_00000007.h5" <<'PY' || fail "zeroing the carried state"
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f["train_state/carried/streams/state"][...] = 0
PY
mpireel 2 train "$WORK/stream.ini" --run-dir "$WORK/zeroed" >/dev/null 2>&1 || fail "resume from the zeroed state"
if "$CKPT_COMPARE" "$WORK/stream2/$final_stream" "$WORK/zeroed/$final_stream" --exact >/dev/null; then
  fail "a resume without the carried state equals the uninterrupted run: the state is not used"
else pass "the carried state matters"; fi

# --- bad input
mkdir -p "$WORK/nounsup" && cp "$WORK/data"/* "$WORK/nounsup/"
expect_fail "a split the data lacks" "nounsup/unsup.tok.*needed by \[objective\] train_splits = train,unsup" \
  reel train "$WORK/window.ini" --set data.dir="$WORK/nounsup" --set objective.train_splits=train,unsup --run-dir "$WORK/bad1"
expect_fail "stream sampler without a window" "sampler = stream needs \[data\] seq_len" \
  reel train "$WORK/stream.ini" --set data.seq_len=0 --run-dir "$WORK/bad2"
# the keys of another objective are refused by name; a model and an objective that do not fit, too
expect_fail "keys of another objective" "window.ini:[0-9]+: unknown key 'sampler' in section \[objective\] for objective 'classify': it is a key of objective 'next_token'" \
  reel train "$WORK/window.ini" --set objective.type=classify --run-dir "$WORK/bad3"
grep -v "^sampler\|^eval_split\|^eval_docs" "$WORK/window.ini" >"$WORK/plain_lm.ini"
expect_fail "a classifier objective for a language model" "trains models with one output per document.*use \[objective\] type = next_token" \
  reel train "$WORK/plain_lm.ini" --set objective.type=classify --run-dir "$WORK/bad3"
write_small_lstm_config "$WORK/lstm.ini" "$WORK/data"
expect_fail "a language-model objective for a classifier" "objective\] type = next_token trains models with one output per token" \
  reel train "$WORK/lstm.ini" --set objective.type=next_token --run-dir "$WORK/bad4"
expect_fail "best metric the objective lacks" "best_metric = 'f1'.*has no such evaluation series.*perplexity" \
  reel train "$WORK/window.ini" --set checkpoint.best_metric=f1 --run-dir "$WORK/bad5"
cp -r "$WORK/data" "$WORK/data_badvocab"
sed -i '10s/^[^\t]*/zzzz/' "$WORK/data_badvocab/vocab.txt"
expect_fail "vocabulary mismatch" "train.tok was made with another vocabulary" \
  reel train "$WORK/window.ini" --set data.dir="$WORK/data_badvocab" --run-dir "$WORK/bad6"
expect_fail "evaluate a language model with another vocabulary" "another vocabulary" \
  reel eval "$WORK/window1/$final_window" --data "$WORK/data_badvocab"
# a classifier's run directory is not a language model's: its metrics file is refused, and kept
write_small_config "$WORK/bow.ini" "$WORK/data"
expect_ok "a classifier" reel train "$WORK/bow.ini" --run-dir "$WORK/mixed" --set train.epochs=1
expect_fail "a language model in a classifier's run directory" "none can be resumed|another objective|holds the series of objective 'classify'" \
  reel train "$WORK/window.ini" --run-dir "$WORK/mixed"
[ -f "$WORK/mixed/metrics.h5" ] && [ -f "$WORK/mixed/ckpt_00000010.h5" ] && pass "the classifier's files are kept" \
  || fail "a file of the classifier's run disappeared"

# eval of a language-model checkpoint reports perplexity
expect_ok "eval" mpireel 2 eval "$WORK/window1/$final_window" --split test
grep -q "^perplexity " "$WORK/out.txt" && grep -q "^unigram_perplexity " "$WORK/out.txt" && pass "eval reports perplexity" \
  || fail "eval output lacks perplexity"
finish
