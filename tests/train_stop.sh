# Stopping to continue later: SIGUSR1 through mpirun (a scheduler's warning), SIGINT and SIGTERM to a
# single process, a burst of signals during the stop, and --time-limit. Each must end with exit status
# 75 after writing a checkpoint of the step reached, and the run continued from it must end with
# parameters bit-identical to an uninterrupted run.
source "$(dirname "$0")/lib.sh"
require_h5py

make_small_data "$WORK/data" 2500            # 20 steps per epoch
write_small_config "$WORK/small.ini" "$WORK/data"
# long enough to outlast the 8 s --time-limit below on any machine: 1,000 epochs (20,000 steps) take
# about 18 s here and could end within 8 s on a CI machine (jobs_scripts.sh saw that happen)
long=(--set train.epochs=1000000 --set checkpoint.every_steps=50)
final=600

expect_ok "uninterrupted, 2 ranks" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/full2" "${long[@]}" --set train.max_steps=$final
expect_ok "uninterrupted, 1 rank" mpireel 1 train "$WORK/small.ini" --run-dir "$WORK/full1" "${long[@]}" --set train.max_steps=$final

# wait_for FILE: until it exists (at most 30 s)
wait_for() { for _ in $(seq 300); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }

# stop_with WHAT RUN_DIR RANKS SIGNAL TARGET...: starts a run, signals it once it has passed step 100, checks
# the exit status, the message and the checkpoint, then continues the run to $final and compares.
stop_with() {
  local what=$1 dir=$2 ranks=$3 signal=$4 target=$5 count=${6:-1}
  local cmd=("$REEL_BIN" train "$WORK/small.ini" --run-dir "$dir" "${long[@]}" --set train.max_steps=100000)
  [ "$ranks" -gt 1 ] && cmd=("$MPIEXEC" -np "$ranks" --oversubscribe "${cmd[@]}")
  "${cmd[@]}" >"$WORK/stop.log" 2>&1 &
  local pid=$!
  wait_for "$dir/ckpt_00000100.h5" || fail "$what: never reached step 100"
  # mpirun: the launcher, which forwards the signal; ranks: the reel processes themselves (mpirun's
  # children, or the one process); all: both, as a scheduler signals every process of a job
  local expected=75
  for _ in $(seq "$count"); do
    case $target in
      mpirun) kill "-$signal" "$pid" ;;
      ranks) pkill "-$signal" -P "$pid" -f "reel train" 2>/dev/null || kill "-$signal" "$pid" ;;
      all) pkill "-$signal" -f "reel train .*--run-dir $dir " || true; expected=1 ;;
    esac
  done
  local status=0 start=$SECONDS
  wait "$pid" || status=$?
  if [ "$status" -eq "$expected" ]; then pass "$what: exit status $status"
  else fail "$what: exit status $status, expected $expected"; tail -5 "$WORK/stop.log" >&2; fi
  local step
  step=$(sed -n 's/^stopped at step \([0-9]*\) .*/\1/p' "$WORK/stop.log")
  if [ -n "$step" ] && [ "$step" -lt $final ] && [ -f "$dir/ckpt_$(printf %08d "$step").h5" ]; then
    pass "$what: stopped at step $step with its checkpoint ($((SECONDS - start)) s after the signal)"
  else fail "$what: no stop line or checkpoint (step '$step')"; cat "$WORK/stop.log" >&2; fi
  local resume=(train "$WORK/small.ini" --run-dir "$dir" "${long[@]}" --set train.max_steps=$final)
  if [ "$ranks" -gt 1 ]; then expect_ok "$what: continued" mpireel "$ranks" "${resume[@]}"
  else expect_ok "$what: continued" reel "${resume[@]}"; fi
  grep -q "resuming from .*ckpt_$(printf %08d "$step").h5" "$WORK/out.txt" && pass "$what: resumed at the stop" \
    || fail "$what: did not resume from the stop's checkpoint"
  if "$CKPT_COMPARE" "$WORK/full$ranks/ckpt_$(printf %08d $final).h5" "$dir/ckpt_$(printf %08d $final).h5" --exact >/dev/null; then
    pass "$what: stopped and continued == uninterrupted, bit for bit"; else fail "$what: the continued run differs"; fi
}

stop_with "SIGUSR1 through mpirun" "$WORK/usr1" 2 USR1 mpirun
stop_with "five SIGUSR1 in a row" "$WORK/burst" 2 USR1 mpirun 5
stop_with "SIGINT (Ctrl-C), one process" "$WORK/int" 1 INT ranks
stop_with "SIGTERM, one process" "$WORK/term" 1 TERM ranks
stop_with "SIGTERM to the ranks" "$WORK/term2" 2 TERM ranks
# Slurm signals every process of a job, mpirun too, which then ends with status 1 (Open MPI's own choice
# on SIGTERM) while the ranks still save and stop; the checkpoint is what matters
stop_with "SIGTERM to mpirun and the ranks" "$WORK/term3" 2 TERM all

# A stop on the last step of an epoch (REEL_STOP_AFTER_STEP aims it, as no signal can): the checkpoint keeps
# the epoch open, so the continued run evaluates it as the uninterrupted one did. The whole checkpoint
# (evals_since_best and best_value included), ckpt_best.h5 and the evaluation rows of metrics.h5 must
# equal the uninterrupted run's: a stop that skipped the epoch's evaluation counted one evaluation fewer.
status=0
REEL_STOP_AFTER_STEP=40 "$MPIEXEC" -np 2 --oversubscribe "$REEL_BIN" train "$WORK/small.ini" --run-dir "$WORK/edge" "${long[@]}" \
  --set train.max_steps=$final >"$WORK/edge.log" 2>&1 || status=$?
[ "$status" -eq 75 ] && grep -q "^stopped at step 40 (REEL_STOP_AFTER_STEP=40" "$WORK/edge.log" \
  && pass "stopped on the last step of epoch 2 (step 40), status 75" || { fail "edge stop: status $status"; tail -3 "$WORK/edge.log" >&2; }
expect_ok "edge stop: continued" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/edge" "${long[@]}" --set train.max_steps=$final
grep -q "resuming from .*ckpt_00000040.h5: epoch 2, step 20 of the epoch" "$WORK/out.txt" \
  && pass "edge stop: resumed with epoch 2's steps done and its evaluation to come" || fail "edge stop: $(grep resuming "$WORK/out.txt")"
"$CKPT_COMPARE" "$WORK/full2/ckpt_$(printf %08d $final).h5" "$WORK/edge/ckpt_$(printf %08d $final).h5" --exact >"$WORK/cmp.txt" \
  && "$CKPT_COMPARE" "$WORK/full2/ckpt_best.h5" "$WORK/edge/ckpt_best.h5" --exact >>"$WORK/cmp.txt" \
  && pass "edge stop: the final and the best checkpoints equal the uninterrupted run's, whole" \
  || { fail "edge stop: the continued run differs"; grep -v "^  not compared" "$WORK/cmp.txt" | grep "^  " >&2 || true; }
"$H5PY_PYTHON" - "$WORK/full2/metrics.h5" "$WORK/edge/metrics.h5" <<'PY' && pass "edge stop: the same evaluation rows" \
  || fail "edge stop: the evaluation rows differ"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r", swmr=True) for p in sys.argv[1:3])
assert sorted(a["eval"].keys()) == sorted(b["eval"].keys())
for k in a["eval"].keys():
    assert np.array_equal(a["eval"][k][:], b["eval"][k][:]), k
PY

# --time-limit: stops in time, with the checkpoint, on its own clock
start=$SECONDS
status=0
mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/limit" "${long[@]}" --time-limit 0:08 >"$WORK/limit.log" 2>&1 || status=$?
elapsed=$((SECONDS - start))
[ "$status" -eq 75 ] && pass "--time-limit: exit status 75" || fail "--time-limit: exit status $status"
grep -q "stopped at step [0-9]* (the time limit of 8 s is near" "$WORK/limit.log" && pass "--time-limit: says why it stopped" \
  || fail "--time-limit: no stop line"
# the limit counts from the start of training; the job's wall time adds mpirun's start and the exit
used=$(sed -n 's/.*the time limit of 8 s is near (\([0-9]*\) s used).*/\1/p' "$WORK/limit.log")
[ -n "$used" ] && [ "$used" -ge 5 ] && [ "$used" -lt 8 ] && [ "$elapsed" -le 12 ] \
  && pass "--time-limit: stopped after $used s of 8, not long before (the whole job: $elapsed s)" \
  || fail "--time-limit: stopped after '$used' s of 8 (the job: $elapsed s)"
step=$(sed -n 's/^stopped at step \([0-9]*\) .*/\1/p' "$WORK/limit.log")
[ -n "$step" ] && [ -f "$WORK/limit/ckpt_$(printf %08d "$step").h5" ] && pass "--time-limit: checkpoint at step $step" \
  || fail "--time-limit: no checkpoint"
expect_fail "a bad --time-limit" "--time-limit '1:2:3:4': expected seconds, or \[D-\]HH:MM:SS" \
  reel train "$WORK/small.ini" --time-limit 1:2:3:4
expect_fail "a zero --time-limit" "--time-limit '0'" reel train "$WORK/small.ini" --time-limit 0
finish
