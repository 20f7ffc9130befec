# The Slurm and PBS job scripts outside a scheduler (where they start NP ranks themselves, or read a PBS
# node file): the first submission trains, a resubmission continues from the newest checkpoint, the
# warning signal makes a job checkpoint and stop with status 75, PBS's time limit does the same, and the
# sweep's grid, smoke test and preparation scripts do their work. tests/slurm.sh runs them under a real
# Slurm.
source "$(dirname "$0")/lib.sh"

make_small_data "$WORK/data" 1500
write_small_config "$WORK/small.ini" "$WORK/data"
JOBS="$REEL_SOURCE_DIR/jobs"
# the scripts run from the repository root, as after `sbatch jobs/...` there; never requeue from here
run_job() { (cd "$REEL_SOURCE_DIR" && env REEL="$REEL_BIN" REQUEUE=0 "$@"); }

for script in train.sbatch train.pbs; do
  run="$WORK/run_$script"
  # the first "allocation" ends after 2 epochs; the resubmitted job finishes the 3rd
  sed "s/^epochs = 3/epochs = 2/" "$WORK/small.ini" >"$WORK/first.ini"
  expect_ok "$script: first submission" run_job CONFIG="$WORK/first.ini" RUN_DIR="$run" bash "$JOBS/$script"
  [ -f "$run/ckpt_00000020.h5" ] && pass "$script: checkpoint written" || fail "$script: no checkpoint after 20 steps"
  grep -q "OPENBLAS_NUM_THREADS=1" "$WORK/out.txt" && pass "$script: reports BLAS threads" || fail "$script: no thread report"
  expect_ok "$script: resubmission" run_job CONFIG="$WORK/small.ini" RUN_DIR="$run" bash "$JOBS/$script"
  grep -q "resuming from .*ckpt_00000020.h5" "$WORK/out.txt" && pass "$script: resumed" || fail "$script: did not resume"
  [ -f "$run/ckpt_00000030.h5" ] && pass "$script: continued to the end" || fail "$script: no final checkpoint"
done

# the scheduler's warning (USR1 to the job's shell): passed to mpirun and the ranks, checkpoint, status 75.
# The long run must outlast the 7 s time limit below on any machine: this small model runs ~100 epochs
# a second on 2 slow cores, and a CI machine did all of 1000 epochs within 7 s, so 10^6 epochs.
sed 's/^epochs = 3/epochs = 1000000/' "$WORK/small.ini" >"$WORK/long.ini"
(cd "$REEL_SOURCE_DIR" && exec env REEL="$REEL_BIN" REQUEUE=0 CONFIG="$WORK/long.ini" RUN_DIR="$WORK/warned" \
   bash "$JOBS/train.sbatch") >"$WORK/warned.log" 2>&1 &
shell=$!
for _ in $(seq 300); do [ -f "$WORK/warned/ckpt_00000040.h5" ] && break; sleep 0.1; done
kill -USR1 "$shell"
status=0
wait "$shell" || status=$?
[ "$status" -eq 75 ] && grep -q "USR1 (the time limit is near): stopping with a checkpoint" "$WORK/warned.log" \
  && grep -q "stopped before its end (status 75); run it again" "$WORK/warned.log" \
  && pass "train.sbatch: the warning signal stops it with a checkpoint (status 75)" \
  || { fail "train.sbatch on USR1: status $status"; tail -5 "$WORK/warned.log" >&2; }
step=$(sed -n 's/^stopped at step \([0-9]*\) .*/\1/p' "$WORK/warned.log")
[ -n "$step" ] && [ -f "$WORK/warned/ckpt_$(printf %08d "$step").h5" ] && pass "train.sbatch: checkpoint at the stop (step $step)" \
  || fail "train.sbatch: no checkpoint at the stop"

# PBS: a node file names the ranks' hosts; the walltime becomes reel's --time-limit
printf 'localhost\nlocalhost\n' >"$WORK/nodefile"
status=0
run_job PBS_NODEFILE="$WORK/nodefile" PBS_JOBID=77.pbs PBS_O_WORKDIR="$REEL_SOURCE_DIR" PBS_WALLTIME=7 \
  CONFIG="$WORK/long.ini" RUN_DIR="$WORK/pbs_limit" bash "$JOBS/train.pbs" >"$WORK/pbs.log" 2>&1 || status=$?
grep -q "reel job 77.pbs (pbs)" "$WORK/pbs.log" && grep -q -- "-np 2 --hostfile .*reel_hosts" "$WORK/pbs.log" \
  && pass "train.pbs: ranks from PBS_NODEFILE" || fail "train.pbs: node file not used: $(head -1 "$WORK/pbs.log")"
[ "$status" -eq 75 ] && grep -q "the time limit of 7 s is near" "$WORK/pbs.log" \
  && pass "train.pbs: PBS_WALLTIME stops it in time with a checkpoint (status 75)" || { fail "train.pbs time limit: $status"; tail -3 "$WORK/pbs.log" >&2; }

# the sweep's grid: element 3 of 2 x 2 is the second rate and the second size
expect_ok "sweep.sbatch, element 3" run_job SLURM_ARRAY_TASK_ID=3 CONFIG="$WORK/small.ini" SWEEP_DIR="$WORK/sweep" \
  LRS="0.01 0.003" HIDDENS="16 32" bash "$JOBS/sweep.sbatch"
[ -f "$WORK/sweep/lr0.003_h32/ckpt_00000030.h5" ] && grep -q "hidden_dim = 32" "$WORK/sweep/lr0.003_h32/config.ini" \
  && pass "sweep.sbatch: element 3 trains lr 0.003, hidden 32 in its own run directory" || fail "sweep.sbatch grid"
expect_fail "sweep.sbatch past the grid" "element 4 is past the 2 x 2 grid" run_job SLURM_ARRAY_TASK_ID=4 \
  CONFIG="$WORK/small.ini" SWEEP_DIR="$WORK/sweep" LRS="0.01 0.003" HIDDENS="16 32" bash "$JOBS/sweep.sbatch"
expect_ok "smoke.sbatch" run_job bash "$JOBS/smoke.sbatch"
grep -q "every sum is right" "$WORK/out.txt" && pass "smoke.sbatch: every sum is right" || fail "smoke.sbatch"
expect_ok "prep.pbs" run_job INPUT="$WORK/synth_test.tsv" OUT="$WORK/prep_job" PREP_OPTIONS="--valid-count 50" bash "$JOBS/prep.pbs"
[ -f "$WORK/prep_job/prep.ini" ] && pass "prep.pbs: prepared" || fail "prep.pbs"
expect_fail "a missing program" "is not there: build reel first" env REEL="$WORK/nowhere/reel" bash -c "cd '$REEL_SOURCE_DIR' && bash jobs/train.sbatch"
finish
