# Resume equals uninterrupted. With the same number of ranks, bit for bit: a stop inside an epoch and a
# stop exactly at an epoch boundary. Across world sizes (2 -> 1 and 1 -> 2), within float tolerance,
# since the sample stream depends only on (seed, epoch, step).
source "$(dirname "$0")/lib.sh"

# python3-h5py (scripts/install-deps) reads the metrics files below: without it the test fails
require_h5py
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

# --resume none: starts from scratch although the run directory holds a longer run, and first moves that
# run's checkpoints (ckpt_best.h5 too) and metrics to replaced_<time>/; with keep_last = 3 they would otherwise be the newest three,
# pruning would delete every checkpoint of the new run, and the next automatic resume would continue the
# old run. The new run equals a fresh one bit for bit, and an automatic resume then continues it.
ck=(--set checkpoint.every_steps=10 --set checkpoint.keep_last=3)
expect_ok "a run to 50 (keep_last 3)" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/over" --set train.max_steps=50 "${ck[@]}"
expect_ok "fresh, to 25" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/fresh" --set train.max_steps=25 "${ck[@]}"
cp -a "$WORK/over" "$WORK/over_before"
expect_ok "--resume none over it, to 25" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/over" --set train.max_steps=25 "${ck[@]}" \
  --resume none
grep -q "resuming from" "$WORK/out.txt" && fail "--resume none resumed: $(grep 'resuming from' "$WORK/out.txt")" \
  || pass "--resume none: no resume"
grep -q "starting over (--resume none): moved 3 checkpoint(s) of .*/over, steps 30 to 50, after step 0, to .*/over/replaced_" "$WORK/out.txt" \
  && grep -q "starting over (--resume none): moved .*/over/ckpt_best.h5 (step 40, after step 0) to .*/over/replaced_" "$WORK/out.txt" \
  && pass "--resume none says which checkpoints of the old run it set aside" || { fail "--resume none: no message of what was set aside"; \
  grep -E "starting over|moved" "$WORK/out.txt" >&2 || true; }
aside=$(ls -d "$WORK"/over/replaced_* 2>/dev/null | head -1)
[ -n "$aside" ] && [ "$(cd "$aside" && ls | tr '\n' ' ')" = "ckpt_00000030.h5 ckpt_00000040.h5 ckpt_00000050.h5 ckpt_best.h5 metrics.h5 " ] \
  && cmp -s "$aside/ckpt_00000050.h5" "$WORK/over_before/ckpt_00000050.h5" && cmp -s "$aside/metrics.h5" "$WORK/over_before/metrics.h5" \
  && pass "--resume none: the old run's checkpoints and metrics are kept, unchanged, in $(basename "$aside")" \
  || fail "--resume none: the old run is not kept whole: $(ls "$WORK/over" "$aside" 2>&1 | tr '\n' ' ')"
listing=$(cd "$WORK/over" && ls ckpt_*.h5 | tr '\n' ' ')
[ "$listing" = "ckpt_00000010.h5 ckpt_00000020.h5 ckpt_00000025.h5 ckpt_best.h5 " ] \
  && pass "--resume none: only the new run's checkpoints are left ($listing)" || fail "--resume none left: $listing"
for f in ckpt_00000010.h5 ckpt_00000025.h5 ckpt_best.h5; do
  "$CKPT_COMPARE" "$WORK/fresh/$f" "$WORK/over/$f" --exact >/dev/null && pass "--resume none: $f equals a fresh run's, bit for bit" \
    || fail "--resume none: $f differs from a fresh run's"
done
"$H5PY_PYTHON" - "$WORK/over/metrics.h5" "$WORK/fresh/metrics.h5" <<'PY' && pass "--resume none: metrics.h5 holds the new run only" \
  || fail "--resume none: metrics.h5 is not the new run's"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r", swmr=True) for p in sys.argv[1:3])
assert list(a["train/step"][:]) == list(b["train/step"][:]), (list(a["train/step"][:]), list(b["train/step"][:]))
assert np.array_equal(a["train/loss"][:], b["train/loss"][:])
PY
expect_ok "then an automatic resume to 50" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/over" --set train.max_steps=50 "${ck[@]}"
grep -q "resuming from .*/over/ckpt_00000025.h5" "$WORK/out.txt" && "$CKPT_COMPARE" "$WORK/full2/$final" "$WORK/over/$final" --exact \
  --ignore /config:checkpoint.every_steps --ignore /config:checkpoint.keep_last >/dev/null && pass "after --resume none the run continues from its own step 25 and ends as an uninterrupted run" \
  || fail "after --resume none: $(grep 'resuming from' "$WORK/out.txt"), ckpt 50 vs uninterrupted"

# --resume PATH: from that checkpoint, not the newest. The run directory's later steps are another
# future (lr 0.05 after step 20); resumed from step 20 with the original configuration the run ends as
# the uninterrupted one, bit for bit, and none of the other future is left among the run's checkpoints
# (it is kept in replaced_<time>/). Also from another run's
# directory into a new one.
expect_ok "branch: to 20" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/branch" --set train.max_steps=20
expect_ok "branch: another future to 50" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/branch" --set train.max_steps=50 \
  --set checkpoint.every_steps=10 --set optimizer.lr=0.05
"$CKPT_COMPARE" "$WORK/full2/$final" "$WORK/branch/$final" --exact >/dev/null 2>&1 \
  && fail "the other future equals the uninterrupted run: the check below could not tell" || pass "the other future differs"
expect_ok "--resume PATH (step 20 of 50)" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/branch" --set train.max_steps=50 \
  --resume "$WORK/branch/ckpt_00000020.h5"
grep -q "resuming from $WORK/branch/ckpt_00000020.h5: epoch 2, step 0 of the epoch, global step 20" "$WORK/out.txt" \
  && pass "--resume PATH: resumes from that checkpoint" || { fail "--resume PATH: $(grep 'resuming from' "$WORK/out.txt")"; }
grep -q "resuming from a given checkpoint: moved 3 checkpoint(s) of .*/branch, steps 30 to 50, after step 20, to .*/branch/replaced_" "$WORK/out.txt" \
  && pass "--resume PATH: the later checkpoints named as set aside" || { fail "--resume PATH: no message of what was set aside"; \
  grep -E "moved" "$WORK/out.txt" >&2 || true; }
aside=$(ls -d "$WORK"/branch/replaced_* 2>/dev/null | head -1)
[ -n "$aside" ] && [ -f "$aside/ckpt_00000050.h5" ] && [ -f "$aside/metrics.h5" ] \
  && pass "--resume PATH: the other future's checkpoints and metrics are kept in $(basename "$aside")" \
  || fail "--resume PATH: the other future is not kept: $(ls "$WORK/branch" "$aside" 2>&1 | tr '\n' ' ')"
"$CKPT_COMPARE" "$WORK/full2/$final" "$WORK/branch/$final" --exact && pass "--resume PATH: bit for bit the uninterrupted run" \
  || fail "--resume PATH: differs from the uninterrupted run"
[ ! -e "$WORK/branch/ckpt_00000030.h5" ] && pass "--resume PATH: no checkpoint of the other future is left" \
  || fail "--resume PATH: ckpt_00000030.h5 of the other future is still there"
expect_ok "--resume PATH into a new directory" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/fork" --set train.max_steps=50 \
  --resume "$WORK/mid/ckpt_00000025.h5"
grep -q "resuming from $WORK/mid/ckpt_00000025.h5" "$WORK/out.txt" && "$CKPT_COMPARE" "$WORK/full2/$final" "$WORK/fork/$final" --exact \
  >/dev/null && pass "--resume PATH of another directory: bit for bit the uninterrupted run" || fail "--resume PATH into a new directory"
# a bad PATH is an error naming it, and moves nothing
before=$(ls "$WORK/branch" | tr '\n' ' ')
expect_fail "--resume a missing file" "$WORK/nothere.h5: cannot read the checkpoint \(No such file or directory\)" \
  reel train "$WORK/small.ini" --run-dir "$WORK/branch" --resume "$WORK/nothere.h5"
head -c 1000 "$WORK/full2/$final" >"$WORK/cut.h5"
expect_fail "--resume a truncated file" "$WORK/cut.h5: not a readable HDF5 file .*truncated or corrupt" \
  reel train "$WORK/small.ini" --run-dir "$WORK/branch" --resume "$WORK/cut.h5"
[ "$(ls "$WORK/branch" | tr '\n' ' ')" = "$before" ] && pass "a bad --resume moved nothing" \
  || fail "a bad --resume changed the run directory: $before -> $(ls "$WORK/branch" | tr '\n' ' ')"

# An automatic resume past an unusable newer checkpoint sets it aside: left among the run's own with
# keep_last = 1, it would stay the newest and pruning would delete every checkpoint the run writes.
expect_ok "a run to 40 (keep_last 3)" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/bad_newest" --set train.max_steps=40 \
  --set checkpoint.every_steps=10 --set checkpoint.keep_last=3
head -c 2000 "$WORK/bad_newest/ckpt_00000040.h5" >"$WORK/cut40.h5" && mv "$WORK/cut40.h5" "$WORK/bad_newest/ckpt_00000040.h5"
printf 'not a checkpoint\n' >"$WORK/bad_newest/ckpt_00000060.h5"
expect_ok "resumed past them to 50 with keep_last 1" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/bad_newest" --set train.max_steps=50 \
  --set checkpoint.every_steps=10 --set checkpoint.keep_last=1
grep -q "resuming from .*/bad_newest/ckpt_00000030.h5" "$WORK/out.txt" \
  && [ "$(cd "$WORK/bad_newest" && ls ckpt_0*.h5 | tr '\n' ' ')" = "ckpt_00000050.h5 " ] \
  && pass "resumed past unusable checkpoints: the run keeps its own newest checkpoint" \
  || fail "resumed past unusable checkpoints: $(grep 'resuming from' "$WORK/out.txt"); left: $(ls "$WORK/bad_newest" | tr '\n' ' ')"
aside=$(ls -d "$WORK"/bad_newest/replaced_* 2>/dev/null | head -1)
[ -n "$aside" ] && [ -f "$aside/ckpt_00000040.h5" ] && [ -f "$aside/ckpt_00000060.h5" ] \
  && grep -q "resuming past unusable checkpoints: moved 2 checkpoint(s)" "$WORK/out.txt" \
  && pass "the unusable checkpoints are kept in $(basename "$aside")" || fail "the unusable checkpoints are not kept: $(ls -R "$WORK/bad_newest" | tr '\n' ' ')"

# The stacked bidirectional LSTM: stopped inside epoch 1 and resumed, bit for bit.
write_small_lstm_config "$WORK/lstm.ini" "$WORK/data"
expect_ok "lstm uninterrupted" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/lstm_full" --set train.max_steps=30
expect_ok "lstm to 13" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/lstm_split" --set train.max_steps=13
expect_ok "lstm resumed to 30" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/lstm_split" --set train.max_steps=30
if "$CKPT_COMPARE" "$WORK/lstm_full/ckpt_00000030.h5" "$WORK/lstm_split/ckpt_00000030.h5" --exact; then
  pass "lstm resume: bit for bit"; else fail "lstm resume differs"; fi
before=$(ls "$WORK/branch" | tr '\n' ' ')
expect_fail "--resume another model's checkpoint" \
  "$WORK/lstm_full/ckpt_00000030.h5: the checkpoint holds a 'lstm' model, the configuration describes a 'bow' model" \
  reel train "$WORK/small.ini" --run-dir "$WORK/branch" --resume "$WORK/lstm_full/ckpt_00000030.h5"
[ "$(ls "$WORK/branch" | tr '\n' ' ')" = "$before" ] && pass "another model's --resume moved nothing" \
  || fail "another model's --resume changed the run directory: $before -> $(ls "$WORK/branch" | tr '\n' ' ')"

# The metrics file holds each step once, even though the stopped runs logged up to their stop.
"$H5PY_PYTHON" - "$WORK/mid/metrics.h5" "$WORK/full2/metrics.h5" <<'PY' && pass "metrics continue without duplicates" || fail "metrics differ"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r", swmr=True) for p in sys.argv[1:3])
sa, sb = a["train/step"][:], b["train/step"][:]
assert list(sa) == sorted(set(sa)), f"duplicate or unordered steps: {list(sa)}"
assert np.array_equal(sa, sb), f"{list(sa)} vs {list(sb)}"
assert np.array_equal(a["train/loss"][:], b["train/loss"][:])
PY
finish
