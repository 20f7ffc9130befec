# Resume equals uninterrupted. With the same number of ranks, bit for bit: a stop inside an epoch and a
# stop exactly at an epoch boundary. Across world sizes (2 -> 1 and 1 -> 2), within float tolerance,
# since the sample stream depends only on (seed, epoch, step).
source "$(dirname "$0")/lib.sh"

make_small_data "$WORK/data" 2500      # 20 steps per epoch, 3 epochs = 60 steps
write_small_config "$WORK/small.ini" "$WORK/data"
final=ckpt_00000050.h5

expect_ok "uninterrupted, 2 ranks" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/full2" --set train.max_steps=50
expect_ok "uninterrupted, 1 rank" mpireel 1 train "$WORK/small.ini" --run-dir "$WORK/full1" --set train.max_steps=50

# stopped at step 25 (inside epoch 2), then resumed to 50, on 2 ranks
expect_ok "first half" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/mid" --set train.max_steps=25
[ -f "$WORK/mid/ckpt_00000025.h5" ] || fail "no checkpoint at the stop"
expect_ok "resumed" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/mid" --set train.max_steps=50
grep -q "resuming from .*ckpt_00000025.h5" "$WORK/out.txt" && pass "says where it resumes" || fail "no resume message"
if "$CKPT_COMPARE" "$WORK/full2/$final" "$WORK/mid/$final" --exact; then pass "resume inside an epoch: bit for bit"
else fail "resume inside an epoch differs"; fi

# stopped exactly at the end of epoch 1 (step 20), resumed to 50
expect_ok "first epoch" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/edge" --set train.max_steps=20
expect_ok "resumed at the boundary" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/edge" --set train.max_steps=50
if "$CKPT_COMPARE" "$WORK/full2/$final" "$WORK/edge/$final" --exact; then pass "resume at an epoch boundary: bit for bit"
else fail "resume at an epoch boundary differs"; fi

# three stops in a row (every_steps checkpoints in between must not disturb anything)
for stop in 7 33 50; do
  expect_ok "chunk to $stop" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/chunks" --set train.max_steps=$stop \
    --set checkpoint.every_steps=4
done
# (the configurations differ in the checkpoint interval only)
if "$CKPT_COMPARE" "$WORK/full2/$final" "$WORK/chunks/$final" --exact --ignore /config:checkpoint.every_steps; then pass "three stops: bit for bit"
else fail "three stops differ"; fi

# across world sizes (the last save's world size is recorded: 1 against 2)
expect_ok "2 ranks to 25" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/shrink" --set train.max_steps=25
expect_ok "then 1 rank to 50" mpireel 1 train "$WORK/small.ini" --run-dir "$WORK/shrink" --set train.max_steps=50
if "$CKPT_COMPARE" "$WORK/full2/$final" "$WORK/shrink/$final" --tol 1e-3 --ignore /@world_size_at_save; then pass "2 ranks then 1 == uninterrupted"
else fail "2 ranks then 1 differs"; fi
expect_ok "1 rank to 25" mpireel 1 train "$WORK/small.ini" --run-dir "$WORK/grow" --set train.max_steps=25
expect_ok "then 2 ranks to 50" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/grow" --set train.max_steps=50
if "$CKPT_COMPARE" "$WORK/full1/$final" "$WORK/grow/$final" --tol 1e-3 --ignore /@world_size_at_save; then pass "1 rank then 2 == uninterrupted"
else fail "1 rank then 2 differs"; fi

# The stacked bidirectional LSTM: stopped inside epoch 1 and resumed, bit for bit.
write_small_lstm_config "$WORK/lstm.ini" "$WORK/data"
expect_ok "lstm uninterrupted" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/lstm_full" --set train.max_steps=30
expect_ok "lstm to 13" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/lstm_split" --set train.max_steps=13
expect_ok "lstm resumed to 30" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/lstm_split" --set train.max_steps=30
if "$CKPT_COMPARE" "$WORK/lstm_full/ckpt_00000030.h5" "$WORK/lstm_split/ckpt_00000030.h5" --exact; then
  pass "lstm resume: bit for bit"; else fail "lstm resume differs"; fi

# The metrics file holds each step once, even though the stopped runs logged up to their stop.
if [ -n "$H5PY_PYTHON" ]; then
  "$H5PY_PYTHON" - "$WORK/mid/metrics.h5" "$WORK/full2/metrics.h5" <<'PY' && pass "metrics continue without duplicates" || fail "metrics differ"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r", swmr=True) for p in sys.argv[1:3])
sa, sb = a["train/step"][:], b["train/step"][:]
assert list(sa) == sorted(set(sa)), f"duplicate or unordered steps: {list(sa)}"
assert np.array_equal(sa, sb), f"{list(sa)} vs {list(sb)}"
assert np.array_equal(a["train/loss"][:], b["train/loss"][:])
PY
else
  echo "note: python3-h5py absent, metrics continuity not checked"
fi
finish
