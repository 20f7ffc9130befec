# The Slurm and PBS job scripts outside a scheduler (where they start NP ranks themselves, or read a PBS
# node file), with stand-ins for qrerun, qsub and scontrol that record how they are called: the first
# submission trains, a resubmission continues from the newest checkpoint, the warning signal makes a job
# checkpoint and stop with status 75, PBS's time limit does the same and the job is rerun with its job id
# (resubmitted with its variables and arguments when qrerun is refused), a Slurm job stopped so is
# requeued with its job id, and neither happens when the run finished or failed; the language model and
# its fine-tuning train from the shipped configs, and the sweep's grid, smoke tests and preparation
# report what they did. tests/slurm.sh runs them under a real Slurm.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/jobs_lib.sh"

make_small_data "$WORK/data" 1500
write_small_config "$WORK/small.ini" "$WORK/data"
JOBS="$REEL_SOURCE_DIR/jobs"
# the scripts run from the repository root, as after `sbatch jobs/...` there; never requeue from here
run_job() { (cd "$REEL_SOURCE_DIR" && env REEL="$REEL_BIN" REQUEUE=0 "$@"); }

# Stand-ins for the schedulers' commands, first on PATH: each appends its arguments to $WORK/calls_NAME,
# one call a line, and exits with $STATUS_NAME (0 unless set; STATUS_qrerun=1 plays a qrerun this user
# may not run).
mkdir -p "$WORK/bin"
for command in qrerun qsub scontrol; do
  printf '#!/bin/bash\necho "$*" >>"%s/calls_%s"\nexit "${STATUS_%s:-0}"\n' "$WORK" "$command" "$command" >"$WORK/bin/$command"
  chmod +x "$WORK/bin/$command"
done
calls() { cat "$WORK/calls_$1" 2>/dev/null || true; }
# standin_job VAR=VALUE... bash SCRIPT ARGS...: a job with the stand-ins first on PATH and requeueing on
# (REQUEUE unset), no call recorded yet; run_pbs_job: the same as PBS starts a job, with a node file of 2
# ranks on this host, a job id (77.pbs unless given) and the submission directory
standin_job() {
  rm -f "$WORK"/calls_*
  (cd "$REEL_SOURCE_DIR" && env REEL="$REEL_BIN" PATH="$WORK/bin:$PATH" "$@")
}
printf 'localhost\nlocalhost\n' >"$WORK/nodefile"
run_pbs_job() { standin_job PBS_NODEFILE="$WORK/nodefile" PBS_JOBID=77.pbs PBS_O_WORKDIR="$REEL_SOURCE_DIR" "$@"; }
# preempt_job LOG VAR=VALUE... bash SCRIPT ARGS...: standin_job in the background, its output in LOG; its
# shell gets TERM (a preemption) once the log shows a checkpoint saved; sets status.
# preempt_pbs_job: the same, started as PBS would
preempt_job() {
  local log=$1 shell; shift
  rm -f "$WORK"/calls_*
  # (exec: the signal must reach the job's shell, not a subshell around it)
  (cd "$REEL_SOURCE_DIR" && exec env REEL="$REEL_BIN" PATH="$WORK/bin:$PATH" "$@") >"$log" 2>&1 &
  shell=$!
  # (a job that ended before: no signal, its status and log tell)
  wait_while_running "$shell" grep -q "^checkpoint: step" "$log" || true
  kill -TERM "$shell" 2>/dev/null || true
  status=0
  wait "$shell" || status=$?
}
preempt_pbs_job() { local log=$1; shift; preempt_job "$log" PBS_NODEFILE="$WORK/nodefile" PBS_O_WORKDIR="$REEL_SOURCE_DIR" "$@"; }

# train.sbatch outside any scheduler; train.pbs as PBS starts it, where a run that finishes (status 0)
# must not be rerun
for script in train.sbatch train.pbs; do
  run="$WORK/run_$script"
  [ "$script" = train.pbs ] && start=run_pbs_job || start=run_job
  # the first "allocation" ends after 2 epochs; the resubmitted job finishes the 3rd
  sed "s/^epochs = 3/epochs = 2/" "$WORK/small.ini" >"$WORK/first.ini"
  expect_ok "$script: first submission" $start CONFIG="$WORK/first.ini" RUN_DIR="$run" bash "$JOBS/$script"
  [ -f "$run/ckpt_00000020.h5" ] && pass "$script: checkpoint written" || fail "$script: no checkpoint after 20 steps"
  grep -q "OPENBLAS_NUM_THREADS=1" "$WORK/out.txt" && pass "$script: reports BLAS threads" || fail "$script: no thread report"
  not_rerun=$(calls qrerun)$(calls qsub)
  expect_ok "$script: resubmission" $start CONFIG="$WORK/small.ini" RUN_DIR="$run" bash "$JOBS/$script"
  grep -q "resuming from .*ckpt_00000020.h5" "$WORK/out.txt" && pass "$script: resumed" || fail "$script: did not resume"
  [ -f "$run/ckpt_00000030.h5" ] && pass "$script: continued to the end" || fail "$script: no final checkpoint"
done
not_rerun+=$(calls qrerun)$(calls qsub)
[ -z "$not_rerun" ] && pass "train.pbs: the runs that finished (status 0) were neither rerun nor resubmitted" \
  || fail "train.pbs finished, yet qrerun or qsub was called: '$not_rerun'"

# the scheduler's warning (USR1 to the job's shell): passed to mpirun and the ranks, checkpoint, status 75.
# The long run must outlast the 7 s time limit below on any machine: this small model runs ~100 epochs
# a second on 2 slow cores, and a CI machine did all of 1000 epochs within 7 s, so 10^6 epochs.
sed 's/^epochs = 3/epochs = 1000000/' "$WORK/small.ini" >"$WORK/long.ini"
(cd "$REEL_SOURCE_DIR" && exec env REEL="$REEL_BIN" REQUEUE=0 CONFIG="$WORK/long.ini" RUN_DIR="$WORK/warned" \
   bash "$JOBS/train.sbatch") >"$WORK/warned.log" 2>&1 &
shell=$!
wait_while_running "$shell" test -f "$WORK/warned/ckpt_00000040.h5" || true
kill -USR1 "$shell" 2>/dev/null || true
status=0
wait "$shell" || status=$?
[ "$status" -eq 75 ] && grep -q "USR1 (the time limit is near): stopping with a checkpoint" "$WORK/warned.log" \
  && grep -q "stopped before its end (status 75); run it again" "$WORK/warned.log" \
  && pass "train.sbatch: the warning signal stops it with a checkpoint (status 75)" \
  || { fail "train.sbatch on USR1: status $status"; tail -5 "$WORK/warned.log" >&2; }
step=$(sed -n 's/^stopped at step \([0-9]*\) .*/\1/p' "$WORK/warned.log")
[ -n "$step" ] && [ -f "$WORK/warned/ckpt_$(printf %08d "$step").h5" ] && pass "train.sbatch: checkpoint at the stop (step $step)" \
  || fail "train.sbatch: no checkpoint at the stop"

# PBS: a node file names the ranks' hosts; the walltime becomes reel's --time-limit; the job stopped by
# it is rerun: qrerun of its own job id, once, and no resubmission besides
status=0
run_pbs_job PBS_WALLTIME=7 CONFIG="$WORK/long.ini" RUN_DIR="$WORK/pbs_limit" bash "$JOBS/train.pbs" >"$WORK/pbs.log" 2>&1 || status=$?
grep -q "reel job 77.pbs (pbs)" "$WORK/pbs.log" && grep -q -- "-np 2 --hostfile .*reel_hosts" "$WORK/pbs.log" \
  && pass "train.pbs: ranks from PBS_NODEFILE" || fail "train.pbs: node file not used: $(head -1 "$WORK/pbs.log")"
hosts_file=$(sed -n 's/^reel job .* --hostfile \([^ ]*\).*/\1/p' "$WORK/pbs.log")
[ -n "$hosts_file" ] && [ ! -e "$hosts_file" ] && pass "train.pbs: its host list ($hosts_file) removed at the end" \
  || fail "train.pbs: the host list '$hosts_file' left behind"
[ "$status" -eq 75 ] && grep -q "the time limit of 7 s is near" "$WORK/pbs.log" \
  && pass "train.pbs: PBS_WALLTIME stops it in time with a checkpoint (status 75)" || { fail "train.pbs time limit: $status"; tail -3 "$WORK/pbs.log" >&2; }
[ "$(calls qrerun)" = 77.pbs ] && [ -z "$(calls qsub)" ] && grep -q "rerun (qrerun 77.pbs), it will resume" "$WORK/pbs.log" \
  && pass "train.pbs: stopped by the walltime, the job is rerun (qrerun 77.pbs)" \
  || fail "train.pbs stopped by the walltime: qrerun '$(calls qrerun)', qsub '$(calls qsub)'"
# a run that fails (status 1: no such configuration) is not rerun: it would fail again
status=0
run_pbs_job CONFIG="$WORK/nowhere.ini" RUN_DIR="$WORK/pbs_failed" bash "$JOBS/train.pbs" >"$WORK/pbs.log" 2>&1 || status=$?
[ "$status" -eq 1 ] && grep -q "nowhere.ini: cannot open the configuration file" "$WORK/pbs.log" && [ -z "$(calls qrerun)$(calls qsub)" ] \
  && pass "train.pbs: a failed run (status 1) is neither rerun nor resubmitted" \
  || fail "train.pbs failed: status $status, qrerun '$(calls qrerun)', qsub '$(calls qsub)'"

# the sweep's grid: element 3 of 2 x 2 is the second rate and the second size. (SLURM_JOB_ID alone does not
# make mpirun look for a Slurm allocation: the scripts take it for a Slurm job, finished here, so not
# requeued.)
expect_ok "sweep.sbatch, element 3" standin_job SLURM_JOB_ID=4243 SLURM_ARRAY_JOB_ID=4240 SLURM_ARRAY_TASK_ID=3 \
  CONFIG="$WORK/small.ini" SWEEP_DIR="$WORK/sweep" LRS="0.01 0.003" HIDDENS="16 32" bash "$JOBS/sweep.sbatch"
grep -q "^reel job 4240_3 (slurm) on " "$WORK/out.txt" && [ -z "$(calls scontrol)" ] \
  && pass "sweep.sbatch: element 4240_3 finished (status 0), not requeued" || fail "sweep.sbatch finished: scontrol '$(calls scontrol)'"
[ -f "$WORK/sweep/lr0.003_h32/ckpt_00000030.h5" ] && grep -q "hidden_dim = 32" "$WORK/sweep/lr0.003_h32/config.ini" \
  && pass "sweep.sbatch: element 3 trains lr 0.003, hidden 32 in its own run directory" || fail "sweep.sbatch grid"
expect_fail "sweep.sbatch past the grid" "element 4 is past the 2 x 2 grid" run_job SLURM_ARRAY_TASK_ID=4 \
  CONFIG="$WORK/small.ini" SWEEP_DIR="$WORK/sweep" LRS="0.01 0.003" HIDDENS="16 32" bash "$JOBS/sweep.sbatch"
# Slurm's requeue: an element preempted after a checkpoint (75) requeues its own job id, once; a run
# that fails (1) is not requeued
preempt_job "$WORK/requeue.log" SLURM_JOB_ID=4242 SLURM_ARRAY_JOB_ID=4240 SLURM_ARRAY_TASK_ID=1 CONFIG="$WORK/long.ini" \
  SWEEP_DIR="$WORK/sweep_requeue" LRS="0.01" HIDDENS="16 32" bash "$JOBS/sweep.sbatch"
[ "$status" -eq 75 ] && grep -q "^reel job 4240_1 (slurm) on " "$WORK/requeue.log" && [ "$(calls scontrol)" = "requeue 4242" ] \
  && grep -q "^reel job 4240_1: stopped before its end; requeued (scontrol requeue)" "$WORK/requeue.log" \
  && [ -n "$(ls "$WORK/sweep_requeue/lr0.01_h32/"ckpt_*.h5 2>/dev/null)" ] \
  && pass "sweep.sbatch: element 4240_1 preempted (75) is requeued as job 4242 (scontrol requeue 4242)" \
  || { fail "sweep.sbatch preempted: status $status, scontrol '$(calls scontrol)'"; tail -5 "$WORK/requeue.log" >&2; }
status=0
standin_job SLURM_JOB_ID=4244 CONFIG="$WORK/nowhere.ini" RUN_DIR="$WORK/slurm_failed" bash "$JOBS/train.sbatch" >"$WORK/failed.log" 2>&1 || status=$?
[ "$status" -eq 1 ] && grep -q "^reel job 4244 (slurm) on " "$WORK/failed.log" && [ -z "$(calls scontrol)" ] \
  && pass "train.sbatch: a failed run (status 1) is not requeued" || fail "train.sbatch failed: status $status, scontrol '$(calls scontrol)'"

# The language model and its fine-tuning, with the shipped configs shrunk by arguments after the script
# (they go to reel train): lm.sbatch trains the LM to its end; finetune.sbatch starts from its best
# checkpoint (1000 training documents, batch 50: 30 steps of train and valid; then 10 of 100).
lm_job_args "$WORK/data"
expect_ok "lm.sbatch" run_job RUN_DIR="$WORK/lm" bash "$JOBS/lm.sbatch" "${LM_ARGS[@]}"
grep -q "^reel job local (none) .*, mpirun -np 2\$" "$WORK/out.txt" && grep -q "^model rnn_lm, objective next_token" "$WORK/out.txt" \
  && pass "lm.sbatch: the language model of configs/imdb_lm.ini on 2 ranks" || fail "lm.sbatch: $(head -1 "$WORK/out.txt")"
check_lm "lm.sbatch" "$WORK/out.txt" "$WORK/lm" 30
finetune_job_args "$WORK/data" "$WORK/lm/ckpt_best.h5"
expect_ok "finetune.sbatch" run_job RUN_DIR="$WORK/finetune" bash "$JOBS/finetune.sbatch" "${FINETUNE_ARGS[@]}"
check_finetune "finetune.sbatch" "$WORK/out.txt" "$WORK/lm/ckpt_best.h5" "$WORK/finetune/ckpt_00000010.h5"

# lm.pbs under PBS Pro (which exports ompthreads as OMP_NUM_THREADS: 2 here, against the tests' 1) is
# preempted after its first checkpoint: it stops with a checkpoint (75), and, qrerun refused (as for a
# user without the operator's privilege), submits itself again: its variables and TIME_LIMIT in qsub -v,
# its arguments in a file of the run directory.
preempt_pbs_job "$WORK/lm_pbs.log" PBS_JOBID=78.pbs OMP_NUM_THREADS=2 STATUS_qrerun=1 TIME_LIMIT=01:00:00 \
  RUN_DIR="$WORK/lm_pbs" bash "$JOBS/lm.pbs" "${LM_ARGS[@]}" --set train.epochs=1000000
step=$(sed -n 's/^stopped at step \([0-9]*\) .*/\1/p' "$WORK/lm_pbs.log")
[ "$status" -eq 75 ] && grep -q "TERM: stopping with a checkpoint" "$WORK/lm_pbs.log" && [ -n "$step" ] \
  && [ -f "$WORK/lm_pbs/ckpt_$(printf %08d "$step").h5" ] \
  && pass "lm.pbs: preempted (TERM), it stops with a checkpoint of step $step (status 75)" \
  || { fail "lm.pbs on TERM: status $status, stopped at '$step'"; tail -5 "$WORK/lm_pbs.log" >&2; }
grep -q "^reel job 78.pbs (pbs) on .*: OPENBLAS_NUM_THREADS=2, mpirun -np 2 --hostfile [^ ]* --bind-to none\$" "$WORK/lm_pbs.log" \
  && grep -q "^reel .*: 2 rank(s), 2 OpenBLAS thread(s) per rank" "$WORK/lm_pbs.log" \
  && pass "lm.pbs: 2 BLAS threads per rank from PBS Pro's OMP_NUM_THREADS" || fail "lm.pbs threads: $(grep '^reel' "$WORK/lm_pbs.log" | head -2)"
args_file="$WORK/lm_pbs/job_args"
[ "$(calls qrerun)" = 78.pbs ] \
  && [ "$(calls qsub)" = "-v CONFIG=configs/imdb_lm.ini,RUN_DIR=$WORK/lm_pbs,REEL_HOME=$REEL_SOURCE_DIR,REEL=$REEL_BIN,TIME_LIMIT=01:00:00,REEL_JOB_ARGS=$args_file $REEL_SOURCE_DIR/jobs/lm.pbs" ] \
  && grep -q "qrerun 78.pbs failed (status 1)" "$WORK/lm_pbs.log" \
  && pass "lm.pbs: qrerun refused, submitted again with its variables (qsub $(calls qsub))" \
  || fail "lm.pbs resubmission: qrerun '$(calls qrerun)', qsub '$(calls qsub)'"
[ -f "$args_file" ] && printf '%s\0' "${LM_ARGS[@]}" --set train.epochs=1000000 | cmp -s - "$args_file" \
  && pass "lm.pbs: its arguments kept for the next job, each whole" || fail "lm.pbs: the arguments file $args_file"
# The job qsub was asked for, started as PBS would start it (those variables, no arguments): it takes
# the arguments back, resumes the same model from the stop, and, preempted in turn, is rerun (qrerun
# accepted this time) and not submitted again.
read -r _ variables script <<<"$(calls qsub)"
IFS=, read -r -a variables <<<"$variables"
preempt_pbs_job "$WORK/lm_pbs2.log" PBS_JOBID=79.pbs "${variables[@]}" bash "$script"
model_line=$(grep "^model rnn_lm, objective next_token: " "$WORK/lm_pbs.log" || echo "(none)")
[ "$status" -eq 75 ] && grep -q "^reel job: the arguments of the job that submitted this one ($args_file): ${LM_ARGS[*]} --set train.epochs=1000000\$" "$WORK/lm_pbs2.log" \
  && grep -q "^resuming from $WORK/lm_pbs/ckpt_$(printf %08d "$step").h5" "$WORK/lm_pbs2.log" && grep -qxF "$model_line" "$WORK/lm_pbs2.log" \
  && [ "$(calls qrerun)" = 79.pbs ] && [ -z "$(calls qsub)" ] \
  && pass "lm.pbs resubmitted: its arguments restored, resumed from step $step, rerun (qrerun 79.pbs) when preempted" \
  || { fail "lm.pbs resubmitted: status $status, qrerun '$(calls qrerun)', qsub '$(calls qsub)'"; grep -v '^[a-z_0-9]* = \|^;\|^\[\|^$' "$WORK/lm_pbs2.log" | head -8 >&2; }

# finetune.pbs from the same LM, to its end: the log says what it loaded; finished, it is not rerun
finetune_job_args "$WORK/data" "$WORK/lm/ckpt_best.h5"
expect_ok "finetune.pbs" run_pbs_job RUN_DIR="$WORK/finetune_pbs" bash "$JOBS/finetune.pbs" "${FINETUNE_ARGS[@]}"
check_finetune "finetune.pbs" "$WORK/out.txt" "$WORK/lm/ckpt_best.h5" "$WORK/finetune_pbs/ckpt_00000010.h5"
[ -z "$(calls qrerun)$(calls qsub)" ] && pass "finetune.pbs: finished, neither rerun nor resubmitted" \
  || fail "finetune.pbs finished, yet: qrerun '$(calls qrerun)', qsub '$(calls qsub)'"

# the smoke tests: reel commtest on the 2 ranks of NP (Slurm's script) or of the node file (PBS's)
expect_ok "smoke.sbatch" run_job bash "$JOBS/smoke.sbatch"
check_commtest "smoke.sbatch" "$WORK/out.txt" 2
expect_ok "smoke.pbs" run_pbs_job bash "$JOBS/smoke.pbs"
grep -q -- "-np 2 --hostfile" "$WORK/out.txt" && check_commtest "smoke.pbs" "$WORK/out.txt" 2 || fail "smoke.pbs: $(head -1 "$WORK/out.txt")"

# preparation, the options through PREP_OPTIONS: 50 of the 500 documents to valid, a vocabulary of 100
expect_ok "prep.pbs" run_job INPUT="$WORK/synth_test.tsv" OUT="$WORK/prep_job" PREP_OPTIONS="--valid-count 50 --vocab-size 100" bash "$JOBS/prep.pbs"
check_prep "prep.pbs" "$WORK/out.txt" "$WORK/synth_test.tsv" "$WORK/prep_job" 50 100
expect_ok "prep.sbatch" run_job INPUT="$WORK/synth_test.tsv" OUT="$WORK/prep_job_slurm" PREP_OPTIONS="--valid-count 70 --vocab-size 150" bash "$JOBS/prep.sbatch"
check_prep "prep.sbatch" "$WORK/out.txt" "$WORK/synth_test.tsv" "$WORK/prep_job_slurm" 70 150
expect_fail "a missing program" "is not there: build reel first" env REEL="$WORK/nowhere/reel" bash -c "cd '$REEL_SOURCE_DIR' && bash jobs/train.sbatch"
finish
