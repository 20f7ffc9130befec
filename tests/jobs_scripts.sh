# The Slurm and PBS job scripts, run as a scheduler would run them (here outside one, where they start
# 2 ranks themselves): the first submission trains, a resubmission continues from the newest checkpoint
# instead of starting over.
source "$(dirname "$0")/lib.sh"

make_small_data "$WORK/data" 1500
write_small_config "$WORK/small.ini" "$WORK/data"

for script in train_bow.sbatch train_bow.pbs; do
  run="$WORK/run_$script"
  # the first "allocation" ends after 2 epochs; the resubmitted job finishes the 3rd
  sed "s/^epochs = 3/epochs = 2/" "$WORK/small.ini" >"$WORK/first.ini"
  expect_ok "$script: first submission" env REEL="$REEL_BIN" CONFIG="$WORK/first.ini" RUN_DIR="$run" \
    bash "$REEL_SOURCE_DIR/jobs/$script"
  [ -f "$run/ckpt_00000020.h5" ] && pass "$script: checkpoint written" || fail "$script: no checkpoint after 20 steps"
  grep -q "OPENBLAS_NUM_THREADS=1" "$WORK/out.txt" && pass "$script: reports BLAS threads" || fail "$script: no thread report"
  expect_ok "$script: resubmission" env REEL="$REEL_BIN" CONFIG="$WORK/small.ini" RUN_DIR="$run" \
    bash "$REEL_SOURCE_DIR/jobs/$script"
  grep -q "resuming from .*ckpt_00000020.h5" "$WORK/out.txt" && pass "$script: resumed" || fail "$script: did not resume"
  [ -f "$run/ckpt_00000030.h5" ] && pass "$script: continued to the end" || fail "$script: no final checkpoint"
done
finish
