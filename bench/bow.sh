#!/usr/bin/env bash
# Benchmark of issue 2's acceptance figures on the real IMDb archive (../shared/data/aclImdb_v1.tar.gz):
#   1. `reel prep` of the whole archive, three times (seconds each);
#   2. `mpirun -np 2 reel train configs/imdb_bow.ini`: seconds per epoch and the final test accuracy,
#      for each seed given (default: 42).
# Usage: bench/bow.sh [SEED...]     (after scripts/build; nothing else may run on the machine meanwhile)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env
archive=../shared/data/aclImdb_v1.tar.gz
[ -f "$archive" ] || { echo "bench/bow.sh: $archive is missing" >&2; exit 1; }
work=$(mktemp -d /tmp/reel-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== prep of the whole archive"
for i in 1 2 3; do
  rm -rf "$work/imdb"
  start=$(date +%s.%N)
  build/reel prep "$archive" "$work/imdb" >/dev/null
  echo "prep run $i: $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s (wall, whole process)"
done

seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(42)
for seed in "${seeds[@]}"; do
  echo "== train, 2 ranks x $OPENBLAS_NUM_THREADS BLAS thread(s), seed $seed"
  mpirun -np 2 build/reel train configs/imdb_bow.ini --no-resume --set data.dir="$work/imdb" \
    --set train.seed="$seed" --run-dir "$work/run_$seed" >"$work/log_$seed.txt"
  grep -o 'epoch [0-9]*/[0-9]* done: [0-9.]* s training' "$work/log_$seed.txt"
  awk '/done: [0-9.]* s training/ {for (i = 1; i <= NF; i++) if ($i == "done:") {s += $(i + 1); n++}}
       END {printf "mean seconds per epoch (training): %.2f\n", s / n}' "$work/log_$seed.txt"
  grep 'final test accuracy' "$work/log_$seed.txt"
done
