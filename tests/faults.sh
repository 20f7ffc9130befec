# Faults: a rank killed with SIGKILL at a random step (as when a node dies) must end the whole job within
# seconds with a non-zero status, leave no rank behind, and the next run must resume from the newest
# complete checkpoint and end bit-identical to an uninterrupted run. Also: a bit-flipped newest
# checkpoint is named and skipped; a failed MPI call names itself and ends every rank.
# REEL_FAULT_TRIALS sets the number of kill trials (default 3; the `long` label runs 20).
source "$(dirname "$0")/lib.sh"

trials=${REEL_FAULT_TRIALS:-3}
make_small_data "$WORK/data" 2500            # 20 steps per epoch
write_small_config "$WORK/small.ini" "$WORK/data"
# The kill lands once the log shows a step between 20 and 220 (the 20 ms poll may add a few steps); the
# run goes on to 1,000 so that the ranks are still alive when the log shows the target step, also on a
# fast machine (300 steps took 0.7 s, and a trial once found no rank left to kill).
final=1000
steps_logged() { [ "$(grep -c '^epoch [0-9]*/100 step' "$WORK/trial.log" 2>/dev/null)" -ge "$1" ]; }
opts=(--set train.epochs=100 --set checkpoint.every_steps=7 --set train.max_steps=$final)
expect_ok "uninterrupted" mpireel 3 train "$WORK/small.ini" --run-dir "$WORK/full" "${opts[@]}"
reference="$WORK/full/ckpt_$(printf %08d $final).h5"

identical=0
for trial in $(seq "$trials"); do
  dir="$WORK/trial$trial"
  target=$((20 + RANDOM % 200))        # the kill comes once the log shows this step (a few steps later at most)
  victim=$((RANDOM % 3))
  "$MPIEXEC" -np 3 --oversubscribe "$REEL_BIN" train "$WORK/small.ini" --run-dir "$dir" "${opts[@]}" \
    --set train.log_every=1 >"$WORK/trial.log" 2>&1 &
  launcher=$!
  # one progress line per step (log_every = 1): wait for the target step's, or the run's end (a run
  # that ended first fails below by its rank count, not by a silent early kill)
  wait_while_running "$launcher" steps_logged "$target" || true
  # the ranks are mpirun's children, in rank order of their start; pick one at random
  pids=($(pgrep -P "$launcher" -f "reel train" | sort -n || true))
  if [ "${#pids[@]}" -ne 3 ]; then fail "trial $trial: found ${#pids[@]} ranks"; continue; fi
  killed_at=$EPOCHREALTIME
  kill -9 "${pids[$victim]}"
  status=0
  wait "$launcher" || status=$?
  took=$(awk -v a="$killed_at" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
  left=$(pgrep -f "reel train .*--run-dir $dir " | wc -l || true)
  if [ "$status" -ne 0 ] && [ "$left" -eq 0 ] && awk -v t="$took" 'BEGIN { exit !(t < 10) }'; then
    pass "trial $trial: rank $victim killed after step $target: the job ended in $took s with status $status, no rank left"
  else fail "trial $trial: status $status, $left rank(s) left, ended after $took s"; fi
  newest=$(ls "$dir" | grep -E '^ckpt_[0-9]+\.h5$' | sort | tail -1)
  expect_ok "trial $trial: resumed" mpireel 3 train "$WORK/small.ini" --run-dir "$dir" "${opts[@]}"
  grep -q "resuming from $dir/$newest" "$WORK/out.txt" && pass "trial $trial: resumed from the newest checkpoint ($newest)" \
    || fail "trial $trial: did not resume from $newest: $(grep resuming "$WORK/out.txt")"
  if "$CKPT_COMPARE" "$reference" "$dir/ckpt_$(printf %08d $final).h5" --exact >/dev/null; then
    identical=$((identical + 1)); pass "trial $trial: bit-identical to the uninterrupted run"
  else fail "trial $trial: the resumed run differs"; fi
  rm -rf "$dir"
done
echo "kill trials: $identical of $trials resumed bit-identically"

# A bit flipped inside the newest checkpoint's data: found by its checksum, named, skipped.
expect_ok "a run to flip" mpireel 3 train "$WORK/small.ini" --run-dir "$WORK/flip" "${opts[@]}" --set train.max_steps=70
python3 - "$WORK/flip/ckpt_00000070.h5" <<'PY'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
data[len(data) // 2] ^= 0x10          # inside the tensors, far from the superblock
open(path, "wb").write(data)
PY
expect_ok "resume past the flipped checkpoint" mpireel 3 train "$WORK/small.ini" --run-dir "$WORK/flip" "${opts[@]}"
grep -q "skipping unusable checkpoint: .*ckpt_00000070.h5" "$WORK/err.txt" && pass "the flipped checkpoint is named" \
  || fail "no warning about the flipped checkpoint: $(cat "$WORK/err.txt")"
grep -q "resuming from .*ckpt_00000063.h5" "$WORK/out.txt" && pass "the previous checkpoint is used" || fail "did not fall back"
if "$CKPT_COMPARE" "$WORK/full/ckpt_$(printf %08d $final).h5" "$WORK/flip/ckpt_$(printf %08d $final).h5" --exact >/dev/null; then
  pass "and the run ends bit-identical to the uninterrupted one"
else fail "the run resumed past the flipped checkpoint differs"; fi

# A failed MPI call: named, with the source line and MPI's reason, and the whole job ends.
status=0
"$MPIEXEC" -np 2 --oversubscribe "$MPI_FAIL" >"$WORK/mpi.out" 2>"$WORK/mpi.err" || status=$?
[ "$status" -ne 0 ] && grep -q "MPI call MPI_Bcast(&value, 1, MPI_INT, size + 5, MPI_COMM_WORLD) failed: MPI_ERR_ROOT" "$WORK/mpi.err" \
  && grep -q "(at .*mpi_fail.c:[0-9]*)" "$WORK/mpi.err" && grep -q "hint: " "$WORK/mpi.err" \
  && pass "a failed MPI call names itself, its line and MPI's reason, and ends the job (status $status)" \
  || { fail "MPI failure report"; cat "$WORK/mpi.err" >&2; }
finish
