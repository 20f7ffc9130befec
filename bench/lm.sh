#!/usr/bin/env bash
# Throughput of the course's language model, reel against PyTorch on the same machine in the same run.
#
# Model (configs/imdb_lm.ini, course part 3a): vocabulary 8,003 (8,000 words and the reserved ids),
# embedding 500, 3 LSTM layers of 500 with batch norm and locked dropout 0.3 after each, decoder over the
# vocabulary; a random window of 50 predictions per review; global batch 200; Adam 1e-3; the training
# text of train, valid and unsup (75,000 reviews). Each layout trains WARMUP + STEPS steps (default
# 3 + 20); the warm-up steps are left out of every figure.
#
# reel layouts:     2 ranks x 1 OpenBLAS thread, 1 rank x 2 threads, 1 rank x 1 thread (mpirun --bind-to
#                   none), with the full softmax, and with --sampled also the sampled softmax.
# PyTorch layouts:  DistributedDataParallel 2 processes x 1 thread (gloo over 127.0.0.1), 1 process x 2
#                   threads, 1 process x 1 thread, by bench/torch_lm.py on the same prepared data.
#
# How the figures are measured:
#   tokens/s   predictions of the timed global batches / their wall time. reel: with train.log_every =
#              1 every row of metrics.h5 is one step, with its tokens_per_s and the seconds it took
#              (batch gathering, forward, decoder and softmax, backward, all-reduce, optimizer; not
#              logging, evaluation or checkpoints). PyTorch: the same span of every step, on rank 0.
#   allreduce  reel: the share of the timed steps' time from the end of a rank's backward pass to its
#              summed gradient (the exchange's wait: the all-reduce not hidden behind the backward, and
#              waiting for the slower rank).
#   peak RSS   per rank / process, in MB (GNU time %M for reel; getrusage in PyTorch, which includes the
#              PyTorch runtime).
#   vs PyTorch reel's tokens/s over the best PyTorch layout's.
#
# Usage: bench/lm.sh [options] [DATA_DIR]
#   DATA_DIR           a directory written by `reel prep` of IMDb; default: ../shared/data/aclImdb_v1.tar.gz
#                      is prepared into a temporary directory first (about 3 s)
#   --steps N --warmup N   (defaults 20 and 3)
#   --sampled N        also train reel with the sampled softmax of N candidates (e.g. 1024)
#   --no-torch         reel only
#   --precision P      reel's [train] precision: fp32 (default) or bf16 (PyTorch stays fp32)
#   --reel-only-2x1    reel 2 ranks x 1 thread only (quick checks)
# Run it after scripts/build, with nothing else running on the machine: it takes about 20 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env

steps=20 warmup=3 torch=1 data="" sampled=0 quick=0 precision=fp32
while [ $# -gt 0 ]; do
  case $1 in
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --sampled) sampled=$2; shift 2 ;;
    --no-torch) torch=0; shift ;;
    --precision) precision=$2; shift 2 ;;
    --reel-only-2x1) quick=1; torch=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench/lm.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) data=$1; shift ;;
  esac
done
case $precision in fp32|bf16) ;; *) echo "bench/lm.sh: --precision is fp32 or bf16, not '$precision'" >&2; exit 2 ;; esac
for n in "$steps" "$warmup" "$sampled"; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "bench/lm.sh: '$n' is not a number" >&2; exit 2; }
done

REEL=${REEL:-build/reel}
[ -x "$REEL" ] || { echo "bench/lm.sh: $REEL is missing; run scripts/build" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "bench/lm.sh: GNU time (/usr/bin/time) is needed for memory" >&2; exit 1; }
source bench/common.sh
find_python bench/lm.sh

work=$(mktemp -d /tmp/reel-bench-lm-XXXXXX)
trap 'rm -rf "$work"' EXIT
prepare_imdb bench/lm.sh "$REEL" "$work"
for split in train valid unsup; do
  [ -f "$data/$split.tok" ] || { echo "bench/lm.sh: $data/$split.tok is missing (an IMDb \`reel prep\` directory)" >&2; exit 1; }
done

results=$work/results.txt
: >"$results"

# run_reel RANKS THREADS SOFTMAX: one reel layout; appends a line to $results.
run_reel() {
  local ranks=$1 threads=$2 softmax=$3
  local name=reel_${ranks}x${threads}_${softmax}
  local label="$ranks rank$([ "$ranks" = 1 ] || echo s) x $threads thread$([ "$threads" = 1 ] || echo s)"
  local extra=()
  [ "$softmax" = full ] || extra=(--set objective.softmax=sampled --set "objective.sampled=$sampled")
  echo "reel: $label, $softmax softmax" >&2
  # oneDNN (bf16) threads with OpenMP: as many threads as OpenBLAS
  if ! OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads mpirun -np "$ranks" --bind-to none -x OPENBLAS_NUM_THREADS -x OMP_NUM_THREADS \
      sh -c 'exec /usr/bin/time -f %M -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' "$work/$name.rss" \
      "$REEL" train configs/imdb_lm.ini --no-resume --run-dir "$work/$name" --set "data.dir=$data" \
      --set "train.max_steps=$((warmup + steps))" --set train.log_every=1 --set checkpoint.every_steps=0 \
      --set checkpoint.keep_best=false --set "train.precision=$precision" "${extra[@]}" >"$work/$name.log" 2>&1; then
    echo "bench/lm.sh: reel failed; the end of its log:" >&2; tail -5 "$work/$name.log" >&2
    echo "reel|$label|$softmax|failed" >>"$results"
    return
  fi
  local rss
  rss=$(rss_per_rank "$work/$name.rss" "$ranks")
  local figures
  if ! figures=$(timed_figures "$work/$name/metrics.h5" "$warmup" "$steps" 0); then
    echo "reel|$label|$softmax|failed" >>"$results"
    return
  fi
  echo "reel|$label|$softmax|$figures|$rss" >>"$results"
}

# run_torch LABEL ARGS...: one PyTorch layout.
run_torch() {
  local label=$1; shift
  echo "PyTorch: $label" >&2
  local out
  if ! out=$("$PY" bench/torch_lm.py --data "$data" --steps "$steps" --warmup "$warmup" "$@" 2>"$work/torch.err"); then
    echo "bench/lm.sh: torch_lm.py failed:" >&2; tail -5 "$work/torch.err" >&2
    echo "PyTorch|$label|full|failed" >>"$results"
    return
  fi
  echo "$out" | awk -v l="$label" '/^RESULT/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      n = split(v["rss_kb"], r, ","); rss = ""
      for (i = 1; i <= n; i++) rss = rss (i > 1 ? "/" : "") sprintf("%.0f", r[i] / 1024)
      printf "PyTorch|%s|full|%.3f|%.0f|-|%s\n", l, v["s_per_step"], v["tokens_per_s"], rss }' >>"$results"
}

run_reel 2 1 full
[ "$sampled" = 0 ] || run_reel 2 1 sampled
if [ "$quick" = 0 ]; then
  run_reel 1 2 full
  run_reel 1 1 full
  [ "$sampled" = 0 ] || run_reel 1 1 sampled
fi
if [ "$torch" = 1 ]; then
  run_torch "DDP 2 processes x 1 thread" --ddp 2
  run_torch "1 process x 2 threads" --threads 2
  run_torch "1 process x 1 thread" --threads 1
fi

echo
echo "== $(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) cores; course LM (3 x LSTM 500, embedding 500, vocabulary 8003, window 50, batch 200);" \
     "reel in $precision; $steps timed steps after $warmup warm-up"
awk -F'|' '
  { row[NR] = $0; if ($1 == "PyTorch" && $4 != "failed" && $5 > best) best = $5 }
  END {
    printf "%-8s %-28s %-8s %8s %10s %10s %14s %11s\n", "impl", "layout", "softmax", "s/step", "tokens/s", "allreduce",
           "peak RSS MB", "vs PyTorch"
    for (i = 1; i <= NR; i++) {
      split(row[i], f, "|")
      if (f[4] == "failed") { printf "%-8s %-28s %-8s %8s\n", f[1], f[2], f[3], "failed"; continue }
      ratio = (f[1] == "reel" && best > 0) ? sprintf("%.2fx", f[5] / best) : ""
      printf "%-8s %-28s %-8s %8.3f %10.0f %10s %14s %11s\n", f[1], f[2], f[3], f[4], f[5], f[6], f[7], ratio
    }
  }' "$results"
