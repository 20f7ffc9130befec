# The job scripts under a real Slurm (Debian's slurm-wlm and munge, one node on loopback): a training
# job runs to the end, its BLAS threads from the allocation's CPUs per task; a job warned before its
# time limit (the USR1 of --signal, sent here with scancel --signal) checkpoints, requeues itself and
# resumes; a job preempted by a requeue from outside (Slurm sends SIGTERM to every process of the job)
# resumes too; both end bit-identical to an uninterrupted run. Also the job array sweep, the
# communication smoke test and preparation (their reports checked), the language model and the
# fine-tuning that depends on it, and the PBS script submitted through slurm-wlm-torque's qsub (which
# sets none of PBS's variables).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/slurm_lib.sh"
source "$(dirname "$0")/jobs_lib.sh"
require_slurm
start_slurm

make_small_data "$WORK/data" 2500                # 20 steps per epoch
write_small_config "$WORK/small.ini" "$WORK/data"
# a run long enough to be interrupted: 2,400 steps; a checkpoint every 50
sed 's/^epochs = 3/epochs = 120/; s/^keep_last = 100/keep_last = 3\nevery_steps = 50/' "$WORK/small.ini" >"$WORK/long.ini"
final=ckpt_00002400.h5
JOBS="$REEL_SOURCE_DIR/jobs"
submit() { sbatch --parsable --chdir="$REEL_SOURCE_DIR" --output="$WORK/job-%j.out" "$@"; }
# wait_saved DIR STEP: until DIR holds a checkpoint of step STEP or later (keep_last = 3 deletes older
# ones, so on a fast machine a poll can miss any one file), at most 60 s; fails if the job never got there
wait_saved() {
  local dir=$1 step=$2 f n
  for _ in $(seq 600); do
    for f in "$dir"/ckpt_[0-9]*.h5; do
      [ -e "$f" ] || continue
      n=${f##*/ckpt_}; n=${n%.h5}
      [ $((10#$n)) -ge "$step" ] && return 0
    done
    sleep 0.1
  done
  return 1
}

# 1. A training job, start to end. Its 1 CPU per task, not the 3 threads of the environment it was
# submitted from, sets the ranks' BLAS threads.
job=$(submit --export=ALL,OPENBLAS_NUM_THREADS=3,OMP_NUM_THREADS=3,REEL="$REEL_BIN",CONFIG="$WORK/small.ini",RUN_DIR="$WORK/plain" \
  "$JOBS/train.sbatch")
wait_job "$job" COMPLETED 120 && [ "$(job_field "$job" ExitCode)" = 0:0 ] && [ "$(job_field "$job" Restarts)" = 0 ] \
  && pass "train.sbatch: completed, not requeued (job $job)" \
  || { fail "train.sbatch: $(job_field "$job" JobState) $(job_field "$job" ExitCode), restarts $(job_field "$job" Restarts)"; cat "$WORK/job-$job.out" >&2; }
grep -q "^reel job $job (slurm) on .*: OPENBLAS_NUM_THREADS=1, mpirun\$" "$WORK/job-$job.out" \
  && grep -q "^reel .*: 2 rank(s), 1 OpenBLAS thread(s) per rank" "$WORK/job-$job.out" \
  && pass "train.sbatch: 1 thread per rank from the allocation's 1 CPU per task (submitted with 3)" \
  || fail "train.sbatch: threads: $(grep '^reel' "$WORK/job-$job.out" | head -2)"
grep -q "host .*: rank(s) 0-1, 2 rank(s)" "$WORK/job-$job.out" && pass "train.sbatch: 2 ranks from the allocation" \
  || fail "train.sbatch: ranks"
[ -f "$WORK/plain/ckpt_00000060.h5" ] && reel inspect "$WORK/plain/ckpt_00000060.h5" >/dev/null && reel inspect "$WORK/plain/metrics.h5" >/dev/null \
  && pass "train.sbatch: the checkpoint and metrics validate" || fail "train.sbatch: checkpoint or metrics"

# the reference: the long run uninterrupted, on 2 ranks outside Slurm
expect_ok "uninterrupted reference" mpireel 2 train "$WORK/long.ini" --run-dir "$WORK/reference"

# 2. Warned before the time limit: checkpoint, requeue itself, resume, finish.
start=$SECONDS
job=$(submit --export=ALL,REEL="$REEL_BIN",CONFIG="$WORK/long.ini",RUN_DIR="$WORK/warned" "$JOBS/train.sbatch")
wait_saved "$WORK/warned" 200 || fail "warned job: no checkpoint of step 200 within 60 s ($(job_field "$job" JobState))"
scancel --signal=USR1 --batch "$job" || fail "warned job: the signal could not be sent ($(job_field "$job" JobState))"
wait_job "$job" COMPLETED 240 && [ "$(job_field "$job" Restarts)" = 1 ] && [ "$(job_field "$job" ExitCode)" = 0:0 ] \
  && pass "warned job: requeued once and completed ($((SECONDS - start)) s)" \
  || { fail "warned job: $(job_field "$job" JobState), restarts $(job_field "$job" Restarts)"; cat "$WORK/job-$job.out" >&2; }
log="$WORK/job-$job.out"
grep -q "USR1 (the time limit is near): stopping with a checkpoint" "$log" && grep -q "^stopped at step [0-9]* (SIGUSR1 received" "$log" \
  && grep -q "requeued (scontrol requeue)" "$log" && grep -q "resuming from $WORK/warned/ckpt_" "$log" \
  && pass "warned job: stopped on USR1, requeued, resumed (the log: $(sed -n 's/^stopped at step \([0-9]*\).*/stopped at \1/p' "$log"))" \
  || { fail "warned job: log"; cat "$log" >&2; }
"$CKPT_COMPARE" "$WORK/reference/$final" "$WORK/warned/$final" --exact >/dev/null && pass "warned job: bit-identical to the uninterrupted run" \
  || fail "warned job: differs from the uninterrupted run"

# 3. Preempted: requeued from outside, every process gets SIGTERM; Slurm itself puts it back.
job=$(submit --export=ALL,REEL="$REEL_BIN",CONFIG="$WORK/long.ini",RUN_DIR="$WORK/preempted" "$JOBS/train.sbatch")
wait_saved "$WORK/preempted" 200 || fail "preempted job: no checkpoint of step 200 within 60 s ($(job_field "$job" JobState))"
scontrol requeue "$job" || fail "preempted job: the requeue failed ($(job_field "$job" JobState))"
wait_job "$job" COMPLETED 240 && [ "$(job_field "$job" Restarts)" = 1 ] \
  && pass "preempted job: requeued by Slurm and completed" \
  || { fail "preempted job: $(job_field "$job" JobState), restarts $(job_field "$job" Restarts)"; cat "$WORK/job-$job.out" >&2; }
# (mpirun, signalled too, stops relaying the ranks' output, so the stop line may not reach the log; the
# checkpoint it resumes from is the evidence)
resumed=$(sed -n 's/^resuming from .*ckpt_0*\([0-9]*\)\.h5.*/\1/p' "$WORK/job-$job.out")
[ -n "$resumed" ] && [ "$resumed" -gt 200 ] && pass "preempted job: resumed from step $resumed, saved when the requeue came" \
  || fail "preempted job: resumed from '$resumed'"
"$CKPT_COMPARE" "$WORK/reference/$final" "$WORK/preempted/$final" --exact >/dev/null && pass "preempted job: bit-identical to the uninterrupted run" \
  || fail "preempted job: differs from the uninterrupted run"

# 4. The sweep: a job array of 2 rates x 2 sizes, a run directory each.
job=$(submit --array=0-3 --export=ALL,REEL="$REEL_BIN",CONFIG="$WORK/small.ini",SWEEP_DIR="$WORK/sweep",LRS="0.01 0.003",HIDDENS="16 32" \
  --time=00:10:00 "$JOBS/sweep.sbatch")
for _ in $(seq 900); do [ "$(squeue -h -j "$job" 2>/dev/null | wc -l)" -eq 0 ] && break; sleep 0.2; done
expect_ok "reel runs on the sweep" reel runs "$WORK/sweep"
[ "$(tail -n +2 "$WORK/out.txt" | wc -l)" -eq 4 ] && grep -q "lr0.003_h32" "$WORK/out.txt" \
  && head -1 "$WORK/out.txt" | grep -q "model.hidden_dim" && head -1 "$WORK/out.txt" | grep -q "optimizer.lr" \
  && pass "sweep.sbatch: 4 elements, a run directory each, their settings in the table" || { fail "sweep"; cat "$WORK/out.txt" >&2; }

# 5. The smoke test and preparation (the script's 2 CPUs for its one task: 2 threads).
job=$(submit --nodes=1 --ntasks-per-node=2 --export=ALL,REEL="$REEL_BIN" "$JOBS/smoke.sbatch")
wait_job "$job" COMPLETED 120 && pass "smoke.sbatch: completed" || fail "smoke.sbatch: $(job_field "$job" JobState)"
check_commtest "smoke.sbatch" "$WORK/job-$job.out" 2
job=$(submit --export=ALL,REEL="$REEL_BIN",INPUT="$WORK/synth_train.tsv",OUT="$WORK/prepared",PREP_OPTIONS="--vocab-size 200 --valid-count 100" \
  "$JOBS/prep.sbatch")
wait_job "$job" COMPLETED 120 && pass "prep.sbatch: completed" || fail "prep.sbatch: $(job_field "$job" JobState)"
check_prep "prep.sbatch" "$WORK/job-$job.out" "$WORK/synth_train.tsv" "$WORK/prepared" 100 200
grep -q "^reel job $job (slurm) on .*: OPENBLAS_NUM_THREADS=2, " "$WORK/job-$job.out" \
  && pass "prep.sbatch: 2 threads from its 2 CPUs per task" || fail "prep.sbatch: threads: $(grep '^reel job' "$WORK/job-$job.out")"

# 6. The language model and, once it has ended well (--dependency=afterok, as the scripts say), its
# fine-tuning, from the shipped configs shrunk by arguments after the script. The LM runs 1 rank of 2
# CPUs: 2 BLAS threads, which mpirun must leave unbound to be used.
lm_job_args "$WORK/data"
lm=$(submit --ntasks-per-node=1 --cpus-per-task=2 --export=ALL,REEL="$REEL_BIN",RUN_DIR="$WORK/lm" "$JOBS/lm.sbatch" "${LM_ARGS[@]}")
finetune_job_args "$WORK/data" "$WORK/lm/ckpt_best.h5"
job=$(submit --dependency=afterok:"$lm" --export=ALL,REEL="$REEL_BIN",RUN_DIR="$WORK/finetune" "$JOBS/finetune.sbatch" "${FINETUNE_ARGS[@]}")
wait_job "$lm" COMPLETED 120 && pass "lm.sbatch: completed (job $lm)" \
  || { fail "lm.sbatch: $(job_field "$lm" JobState) $(job_field "$lm" ExitCode)"; tail -5 "$WORK/job-$lm.out" >&2; }
grep -q "^reel job $lm (slurm) on .*: OPENBLAS_NUM_THREADS=2, mpirun --bind-to none\$" "$WORK/job-$lm.out" \
  && grep -q "^reel .*: 1 rank(s), 2 OpenBLAS thread(s) per rank" "$WORK/job-$lm.out" \
  && pass "lm.sbatch: 2 threads for its rank from the allocation's 2 CPUs per task" \
  || fail "lm.sbatch: threads: $(grep '^reel' "$WORK/job-$lm.out" | head -2)"
# (2,000 training and 500 validation documents, batch 50)
check_lm "lm.sbatch" "$WORK/job-$lm.out" "$WORK/lm" 50
wait_job "$job" COMPLETED 120 && pass "finetune.sbatch: completed after the LM (job $job)" \
  || { fail "finetune.sbatch: $(job_field "$job" JobState) ($(job_field "$job" Reason))"; tail -5 "$WORK/job-$job.out" >&2; }
check_finetune "finetune.sbatch" "$WORK/job-$job.out" "$WORK/lm/ckpt_best.h5" "$WORK/finetune/ckpt_00000020.h5"

# 7. The PBS script through qsub of slurm-wlm-torque: no PBS_* variables, Slurm's underneath.
if command -v qsub >/dev/null; then
  (cd "$REEL_SOURCE_DIR" && qsub -o "$WORK/pbs.out" -e "$WORK/pbs.err" \
     -v REEL="$REEL_BIN",CONFIG="$WORK/small.ini",RUN_DIR="$WORK/pbs" "$JOBS/train.pbs") >"$WORK/qsub.txt" 2>&1
  job=$(grep -o '[0-9]*' "$WORK/qsub.txt" | head -1)
  wait_job "$job" COMPLETED 120 && [ -f "$WORK/pbs/ckpt_00000060.h5" ] && pass "train.pbs through qsub: completed (job $job)" \
    || { fail "train.pbs through qsub: $(cat "$WORK/qsub.txt")"; cat "$WORK/pbs.out" "$WORK/pbs.err" >&2; }
else
  echo "note: qsub of slurm-wlm-torque is absent; the PBS script is tested in tests/multihost.sh"
fi
finish
