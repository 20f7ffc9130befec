#!/usr/bin/env bash
# The gradient exchange across hosts: step time, the exchange time the backward does not hide, and the
# share it hides, for 1, 2 and 3 hosts (one rank each) joined by links capped at 1 Gbit/s, with and
# without buckets overlapped with the backward ([train] bucket_mb) and the embedding sent as rows
# ([train] exchange_embedding). The hosts are network namespaces of this machine (tests/netns_lib.sh), so
# they share its 2 cores: with 3 ranks every step is slower, and the overlap has more compute to hide
# behind. Needs root, and a data directory of the IMDb archive made by `reel prep`.
#
# How the figures are measured (train.log_every = 1, so each row of metrics.h5 is one step):
#   s/step        mean of the rows' training seconds after WARMUP steps (batch, forward, backward,
#                 exchange, optimizer)
#   exposed ms    mean time per step in the exchange's finish (what the backward did not hide), from the
#                 run's summary line
#   hidden        1 - exposed (with buckets) / exposed (the same embedding choice without buckets)
#   MB/step       floats all-reduced per step x 4, plus the rows received when the embedding went as rows
#
# Usage: bench/multihost.sh DATA_DIR [--steps N] [--warmup N] [--models lstm,lm] [--rate 1gbit]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
data=${1:?usage: bench/multihost.sh DATA_DIR [--steps N] [--warmup N] [--models lstm,lm] [--rate 1gbit]}
shift
steps=8 warmup=2 models=lstm,lm rate=1gbit
while [ $# -gt 0 ]; do
  case $1 in
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
source scripts/mpi-env
export OPENBLAS_NUM_THREADS=1
WORK=$(mktemp -d /tmp/reel_multihost.XXXXXX)
MPIEXEC=${MPIEXEC:-mpirun}
source tests/netns_lib.sh
require_netns
make_hosts 3 "$rate"
PYTHON=/usr/bin/python3

# run NAME MODEL HOSTS EMBEDDING BUCKET_MB: one timed run; prints a table row
run() {
  local name=$1 model=$2 hosts=$3 embedding=$4 bucket=$5
  local config=configs/imdb_lstm.ini
  [ "$model" = lm ] && config=configs/imdb_lm.ini
  local dir="$WORK/$name"
  mpirun_hosts -np "$hosts" --map-by node "$ROOT/build/reel" train "$ROOT/$config" --run-dir "$dir" \
    --set data.dir="$(realpath "$data")" --set train.max_steps=$((warmup + steps)) --set train.log_every=1 \
    --set train.exchange_embedding="$embedding" --set train.bucket_mb="$bucket" --set checkpoint.keep_best=false \
    >"$dir.log" 2>&1 || { echo "run $name failed:"; tail -5 "$dir.log"; return 1; }
  local per_step exposed mb rows
  per_step=$("$PYTHON" -c "
import h5py, sys
f = h5py.File(sys.argv[1], 'r', swmr=True)
s = f['train/seconds'][int(sys.argv[2]):]
print(f'{s.mean():.3f}')" "$dir/metrics.h5" "$warmup")
  exposed=$(sed -n 's/.*, \([0-9.]*\) ms per step not hidden.*/\1/p' "$dir.log")
  mb=$(sed -n 's/^gradient exchange: \([0-9.]*\) MB all-reduced per step.*/\1/p' "$dir.log")
  rows=$(sed -n 's/.*(\([0-9.]*\) MB received per such step).*/\1/p' "$dir.log")
  printf '%-5s %5s %-10s %7s %9s %12s %12s\n' "$model" "$hosts" "$embedding" "$bucket" "$per_step" "${exposed:--}" \
    "${mb:-0}${rows:++$rows}"
  echo "$model $hosts $embedding $bucket $per_step ${exposed:-0}" >>"$WORK/results.txt"
}

printf '%-5s %5s %-10s %7s %9s %12s %12s\n' model hosts embedding bucket s/step "exposed ms" "MB/step"
IFS=, read -r -a model_list <<<"$models"
for model in "${model_list[@]}"; do
  bucket_mb=4
  [ "$model" = lm ] && bucket_mb=8
  run "${model}_h1" "$model" 1 dense 0
  for hosts in 2 3; do
    for embedding in dense auto; do
      for bucket in 0 "$bucket_mb"; do run "${model}_h${hosts}_${embedding}_$bucket" "$model" "$hosts" "$embedding" "$bucket"; done
    done
  done
done
echo
echo "hidden share of the exchange (1 - exposed with buckets / exposed without):"
awk '{ key = $1 " " $2 " " $3; if ($4 == 0) plain[key] = $6; else bucketed[key] = $6 }
     END { for (k in bucketed) if (plain[k] > 0) printf "  %-22s %5.1f%%  (%s -> %s ms)\n", k, 100 * (1 - bucketed[k] / plain[k]), plain[k], bucketed[k] }' \
  "$WORK/results.txt" | sort
[ -n "${KEEP:-}" ] && echo "runs kept in $WORK" || rm -rf "$WORK"
