# Training options for real-world data: early stopping, class imbalance (class weights, oversampling),
# length buckets and RMSprop, each end to end: what it changes, that it does not depend on the number of ranks, that a
# resumed run equals an uninterrupted one, and the errors of its bad values.
source "$(dirname "$0")/lib.sh"
require_h5py

make_small_data "$WORK/data" 2500      # 2,000 train / 500 valid / 500 test, 20 steps per epoch
write_small_config "$WORK/small.ini" "$WORK/data"

# ---- early stopping ----
# A high rate with evaluations every 4 steps: validation accuracy peaks early, then stalls.
es=(--set optimizer.lr=0.05 --set train.epochs=40 --set train.eval_every=4 --set train.early_stopping_patience=3)
expect_ok "early stopping run" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/es" "${es[@]}"
cp "$WORK/out.txt" "$WORK/es.log"
stop_step=$(sed -n 's/.*early stopping at step \([0-9]*\):.*/\1/p' "$WORK/es.log")
if [ -n "$stop_step" ] && [ "$stop_step" -lt 800 ]; then pass "stopped early, at step $stop_step of 800"
else fail "no early stop before the last epoch"; sed 's/^/    /' "$WORK/es.log" | tail -5 >&2; fi
grep -q "final test accuracy" "$WORK/es.log" && pass "an early-stopped run is evaluated on test" \
  || fail "no final test evaluation after the early stop"
# the stop is where the patience ran out: the best of the validation rows is exactly 3 rows before the
# last one, and none after it is better
"$H5PY_PYTHON" - "$WORK/es/metrics.h5" "$stop_step" <<'PY' && pass "stopped after 3 evaluations without a better accuracy" || fail "the stop does not follow the patience"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r", swmr=True)
split, acc, step = f["eval/split"][:], f["eval/accuracy"][:], f["eval/step"][:]
valid = split == 0
acc, step = acc[valid], step[valid]
assert step[-1] == int(sys.argv[2]), (step[-1], sys.argv[2])
best = None
for i, a in enumerate(acc):
    if best is None or a > acc[best]: best = i
assert best == len(acc) - 4, f"best at row {best} of {len(acc)}: {list(acc)}"
PY
# Resubmitted (a requeued job), the finished run stays finished; a larger patience lets it go on.
expect_ok "resubmitted" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/es" "${es[@]}"
grep -q "early stopping at step $stop_step" "$WORK/out.txt" && ! grep -q "^epoch .* step" "$WORK/out.txt" \
  && pass "a resubmitted early-stopped run trains no further" || fail "the resubmitted run trained again"
expect_ok "larger patience" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/es_more" "${es[@]}" \
  --set train.early_stopping_patience=3 --set train.max_steps="$stop_step"
expect_ok "resumed with patience 6" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/es_more" "${es[@]}" \
  --set train.early_stopping_patience=6 --set train.max_steps=$((stop_step + 8))
[ -f "$WORK/es_more/ckpt_$(printf %08d $((stop_step + 8))).h5" ] && pass "a larger patience continues the run" \
  || fail "patience 6 did not continue past step $stop_step"
# Stopped half-way and resumed, the run stops at the same step with the same parameters.
expect_ok "first part" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/es_split" "${es[@]}" \
  --set train.max_steps=$((stop_step / 2))
expect_ok "resumed to the early stop" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/es_split" "${es[@]}"
grep -q "early stopping at step $stop_step:" "$WORK/out.txt" && pass "the resumed run stops at the same step" \
  || fail "the resumed run stops elsewhere"
final=ckpt_$(printf %08d "$stop_step").h5
if "$CKPT_COMPARE" "$WORK/es/$final" "$WORK/es_split/$final" --exact; then pass "early-stopped resume: bit for bit"
else fail "early-stopped resume differs"; fi
# A corpus without a validation split has nothing to stop on.
reel prep --format tsv --valid-count 0 --vocab-size 600 "$WORK/synth_train.tsv" "$WORK/novalid" >/dev/null
expect_fail "early stopping without validation" "early_stopping_patience = 3, but objective classify evaluates nothing" \
  mpireel 1 train "$WORK/small.ini" --set data.dir="$WORK/novalid" --run-dir "$WORK/es_none" "${es[@]}"

# ---- class imbalance ----
# The synthetic corpus with 1 positive review in 8 kept, in training and test alike.
awk -F'\t' 'NR == 1 || $1 == "neg" || (++p % 8) == 0' "$WORK/synth_train.tsv" >"$WORK/imb_train.tsv"
awk -F'\t' 'NR == 1 || $1 == "neg" || (++p % 8) == 0' "$WORK/synth_test.tsv" >"$WORK/imb_test.tsv"
reel prep --format tsv --test "$WORK/imb_test.tsv" --valid-count 200 --vocab-size 600 "$WORK/imb_train.tsv" \
  "$WORK/imb" >/dev/null
# (a small bag of words that, unweighted, predicts the majority class for every test review)
imb=(--set data.dir="$WORK/imb" --set train.epochs=8 --set optimizer.lr=0.01 --set model.batch_norm=false)
macro_f1() { sed -n 's/^macro_f1 *//p' "$WORK/out.txt"; }
last_ckpt() { ls "$1" | grep -E '^ckpt_[0-9]+\.h5$' | sort | tail -1; }
expect_ok "unweighted" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/imb_plain" "${imb[@]}"
expect_ok "eval unweighted" reel eval "$WORK/imb_plain/$(last_ckpt "$WORK/imb_plain")" --split test
plain=$(macro_f1)
expect_ok "balanced weights" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/imb_weighted" "${imb[@]}" \
  --set objective.class_weights=balanced
grep -q "class weights: class 0: .* documents, weight 0.5" "$WORK/out.txt" && pass "the weights are logged" \
  || fail "no class weights in the log"
expect_ok "eval weighted" reel eval "$WORK/imb_weighted/$(last_ckpt "$WORK/imb_weighted")" --split test
weighted=$(macro_f1)
expect_ok "oversampled" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/imb_over" "${imb[@]}" \
  --set objective.oversample=true
grep -q "oversampling: every class .* times per epoch" "$WORK/out.txt" && pass "oversampling is logged" \
  || fail "no oversampling line in the log"
last=$(last_ckpt "$WORK/imb_over")
[[ "$last" > "$(last_ckpt "$WORK/imb_plain")" ]] && pass "an oversampled epoch is longer ($last)" \
  || fail "oversampling did not lengthen the epoch ($last)"
expect_ok "eval oversampled" reel eval "$WORK/imb_over/$last" --split test
over=$(macro_f1)
echo "test macro F1: unweighted $plain, balanced weights $weighted, oversampled $over"
awk -v a="$plain" -v b="$weighted" 'BEGIN { exit !(b > a + 0.02) }' && pass "class weights raise macro F1 ($plain -> $weighted)" \
  || fail "class weights do not raise macro F1 ($plain -> $weighted)"
awk -v a="$plain" -v b="$over" 'BEGIN { exit !(b > a + 0.02) }' && pass "oversampling raises macro F1 ($plain -> $over)" \
  || fail "oversampling does not raise macro F1 ($plain -> $over)"
# both together: 1 rank equals 3, and a resumed run equals an uninterrupted one bit for bit
both=("${imb[@]}" --set objective.class_weights=1,3 --set objective.oversample=true --set model.batch_norm=true)
expect_ok "weighted+oversampled, 1 rank" mpireel 1 train "$WORK/small.ini" --run-dir "$WORK/both1" "${both[@]}" --set train.max_steps=20
expect_ok "weighted+oversampled, 3 ranks" mpireel 3 train "$WORK/small.ini" --run-dir "$WORK/both3" "${both[@]}" --set train.max_steps=20
if "$CKPT_COMPARE" "$WORK/both1/ckpt_00000020.h5" "$WORK/both3/ckpt_00000020.h5" --tol 1e-4 --ignore /@world_size_at_save; then
  pass "weights and oversampling: 1 rank == 3 ranks"; else fail "1 rank and 3 ranks differ"; fi
expect_ok "weighted+oversampled, 3 ranks, to step 9" mpireel 3 train "$WORK/small.ini" --run-dir "$WORK/both_split" \
  "${both[@]}" --set train.max_steps=9
expect_ok "resumed to step 20" mpireel 3 train "$WORK/small.ini" --run-dir "$WORK/both_split" "${both[@]}" --set train.max_steps=20
if "$CKPT_COMPARE" "$WORK/both3/ckpt_00000020.h5" "$WORK/both_split/ckpt_00000020.h5" --exact; then
  pass "weights and oversampling: resume bit for bit"; else fail "weighted, oversampled resume differs"; fi
# bad values name the key and what was expected
expect_fail "three weights for two classes" "class_weights = '1,2,3': 3 weight\(s\), but the data has 2 classes" \
  mpireel 1 train "$WORK/small.ini" --run-dir "$WORK/bad" --set objective.class_weights=1,2,3
expect_fail "a weight that is not a number" "class_weights = '1,heavy': weight 2 is 'heavy', expected a positive number" \
  mpireel 1 train "$WORK/small.ini" --run-dir "$WORK/bad" --set objective.class_weights=1,heavy
expect_fail "a zero weight" "class_weights = '0,1': weight 1 is '0', expected a positive number" \
  mpireel 1 train "$WORK/small.ini" --run-dir "$WORK/bad" --set objective.class_weights=0,1
[ ! -e "$WORK/bad/ckpt_00000001.h5" ] && pass "a bad weight trains nothing" || fail "a bad weight trained anyway"

# ---- length buckets ----
# The small LSTM on whole documents (up to 60 tokens: uneven lengths), batches from pools of 4 sorted by
# length: 1 rank equals 2 within rounding, a resumed run equals an uninterrupted one bit for bit, and
# the batches differ from the plain shuffle's (so the run does too).
write_small_lstm_config "$WORK/lstm.ini" "$WORK/data"
lb=(--set data.seq_len=0 --set objective.length_buckets=4 --set train.max_steps=12)
expect_ok "length buckets, 1 rank" mpireel 1 train "$WORK/lstm.ini" --run-dir "$WORK/lb1" "${lb[@]}"
grep -q "length buckets: pools of 4 batches sorted by length" "$WORK/out.txt" && pass "the log names the buckets"   || fail "no length-bucket line in the log"
expect_ok "length buckets, 2 ranks" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/lb2" "${lb[@]}"
if "$CKPT_COMPARE" "$WORK/lb1/ckpt_00000012.h5" "$WORK/lb2/ckpt_00000012.h5" --tol 1e-4 --ignore /@world_size_at_save; then
  pass "length buckets: 1 rank == 2 ranks"; else fail "length buckets: 1 rank and 2 ranks differ"; fi
expect_ok "length buckets, to step 5" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/lb_split" "${lb[@]}" --set train.max_steps=5
expect_ok "length buckets, resumed" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/lb_split" "${lb[@]}"
if "$CKPT_COMPARE" "$WORK/lb2/ckpt_00000012.h5" "$WORK/lb_split/ckpt_00000012.h5" --exact; then
  pass "length buckets: resume bit for bit"; else fail "length buckets: the resumed run differs"; fi
expect_ok "no length buckets" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/lb0" "${lb[@]}" --set objective.length_buckets=0
if ! "$CKPT_COMPARE" "$WORK/lb0/ckpt_00000012.h5" "$WORK/lb2/ckpt_00000012.h5" --tol 1e-4 --ignore /config:objective.length_buckets \
    >/dev/null 2>&1; then
  pass "length buckets change the batches"; else fail "length buckets changed nothing"; fi

# ---- RMSprop ----
rms=(--set optimizer.type=rmsprop --set optimizer.lr=0.01 --set optimizer.centered=true
     --set optimizer.rmsprop_momentum=0.5 --set train.max_steps=30)
expect_ok "rmsprop, 2 ranks" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/rms" "${rms[@]}"
acc=$(sed -n 's/^valid: loss [0-9.]* accuracy \([0-9.]*\)%.*/\1/p' "$WORK/out.txt" | tail -1)  # after epoch 1
awk -v a="$acc" 'BEGIN { exit !(a > 75) }' && pass "rmsprop learns (validation accuracy $acc%)" || fail "rmsprop did not learn ($acc%)"
# the listing goes to a file: grep -q leaving a pipe early would end h5ls with SIGPIPE (a failure under pipefail)
h5ls -r "$WORK/rms/ckpt_00000030.h5" >"$WORK/h5ls.txt" && grep -q "/optimizer/rmsprop_mean/" "$WORK/h5ls.txt" && pass "checkpoint holds the rmsprop state" \
  || fail "no rmsprop state in the checkpoint"
expect_ok "rmsprop to 13" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/rms_split" "${rms[@]}" --set train.max_steps=13
expect_ok "rmsprop resumed" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/rms_split" "${rms[@]}"
if "$CKPT_COMPARE" "$WORK/rms/ckpt_00000030.h5" "$WORK/rms_split/ckpt_00000030.h5" --exact; then
  pass "rmsprop resume: bit for bit"; else fail "rmsprop resume differs"; fi
# ---- weight decay per tensor ----
# One AdamW step from the same initialisation and batch: the gradient is the same in every run, so a tensor
# weight decay leaves out must come out bit-identical to a run without weight decay (the no-decay formula;
# tests/test_core.c checks both formulas value by value), and one it applies to must differ. decay =
# matrices: only the matrices other than the embedding decay (bow: hidden/weight, output/weight), not the
# biases or the batch norm's gain; decay_embedding = true adds the embedding; the default (decay = model:
# bow marks every tensor) decays the biases and gains too.
wd1=(--set train.max_steps=1 --set optimizer.lr=0.05)
expect_ok "no weight decay, 1 step" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/wd0" "${wd1[@]}"
expect_ok "decay = matrices, 1 step" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/wdm" "${wd1[@]}" \
  --set optimizer.weight_decay=0.5 --set optimizer.decay=matrices
expect_ok "decay = matrices with the embedding, 1 step" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/wde" "${wd1[@]}" \
  --set optimizer.weight_decay=0.5 --set optimizer.decay=matrices --set optimizer.decay_embedding=true
expect_ok "decay = model (every tensor), 1 step" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/wda" "${wd1[@]}" \
  --set optimizer.weight_decay=0.5
grep -q '^decay = matrices$' "$WORK/wdm/config.ini" && pass "the resolved config says decay = matrices" \
  || fail "decay = matrices missing from $WORK/wdm/config.ini"
"$H5PY_PYTHON" - "$WORK" <<'PY' && pass "decay per tensor: exactly the chosen tensors decay" || fail "decay per tensor"
import glob, sys, h5py, numpy as np
work = sys.argv[1]
def tensors(run):
    (path,) = glob.glob(f"{work}/{run}/ckpt_0*.h5")
    out = {}
    with h5py.File(path, "r") as f:
        f["model"].visititems(lambda name, d: out.__setitem__(name, d[()]) if isinstance(d, h5py.Dataset) else None)
    return out
base = tensors("wd0")
changed = {run: {n for n, v in base.items() if not np.array_equal(v, tensors(run)[n])} for run in ("wdm", "wde", "wda")}
# What decay can move at all: with every tensor decaying (wda), the trained tensors whose initial values are
# not all 0 (AdamW scales the value before the step; the running statistics and the zero-initialised output
# bias are not moved). It must hold a norm gain (1-D, initialised to 1) and every matrix, or the check below
# says nothing about them.
movable = changed["wda"]
assert "batchnorm/weight" in movable, sorted(movable)
assert all(n in movable for n, v in base.items() if v.ndim >= 2), sorted(movable)
want = {"wdm": {n for n in movable if base[n].ndim >= 2 and n != "embedding/weight"},
        "wde": {n for n in movable if base[n].ndim >= 2}}
bad = [f"{run}: changed by weight decay {sorted(changed[run])}, expected {sorted(w)}" for run, w in want.items()
       if changed[run] != w]
if bad:
    sys.exit("\n".join(bad))
PY
expect_fail "decay_embedding without decay = matrices" "decay_embedding = true, but decay = all" \
  mpireel 1 train "$WORK/small.ini" --run-dir "$WORK/wd_bad" --set optimizer.decay=all --set optimizer.decay_embedding=true

# ---- a decaying schedule runs its course by max_steps when that ends the run first ----
# linear decay, no warm-up, over 10 steps of a 5-epoch (100-step) configuration: the rate of step k
# (0-based) is lr (1 - k / 10), so the tenth step's is lr / 10, and the metrics' rows say so; a schedule
# over the epochs would still be at 0.91 lr there.
sched=(--set optimizer.schedule=linear --set optimizer.lr=0.01 --set train.epochs=5 --set train.max_steps=10
       --set train.log_every=1)
expect_ok "linear schedule cut by max_steps" mpireel 1 train "$WORK/small.ini" --run-dir "$WORK/sched" "${sched[@]}"
# max_steps is a pause point without a final evaluation; the log says so and names the last checkpoint
grep -q "max_steps = 10 reached: no final test evaluation (no evaluation so far); \`reel eval .*/sched/ckpt_00000010.h5\`" \
  "$WORK/err.txt" "$WORK/out.txt" && pass "the log names the unevaluated last model" || fail "no max_steps note in the log"
# a run directory's resolved config.ini writes every key (decay_embedding = false with decay = model among
# them) and must train again as given
expect_ok "resolved config.ini trains again" mpireel 1 train "$WORK/sched/config.ini" --run-dir "$WORK/resolved_again" \
  --set train.max_steps=1
"$H5PY_PYTHON" - "$WORK/sched/metrics.h5" <<'PY' && pass "the schedule ends at max_steps" || fail "the schedule ignores max_steps"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r", swmr=True)
step, lr = f["train/step"][:], f["train/lr"][:]
expected = 0.01 * (1 - (step.astype(float) - 1) / 10)
assert len(step) == 10 and np.allclose(lr, expected, rtol=1e-6), list(zip(step, lr, expected))
PY

finish
