#!/usr/bin/env bash
# Throughput of reel's classifiers, reel against PyTorch on the same machine in the same run.
#
# Models (--models, each KIND:SIZE):
#   lstm:H, gru:H   the course's recurrent classifier (part 2a): embeddings -> one LSTM (GRU) layer of H ->
#                   max pooling over the valid steps -> one logit. The default, lstm:500, with the default
#                   window 100 and vocabulary 8000, is the course's model.
#   cnn:F           Kim (2014)'s CNN ([model] type = cnn): embeddings -> convolutions of widths 3, 4 and 5
#                   with F filters each, ReLU, max over the valid positions -> one logit. Issue 20's shape:
#                   --models cnn:100 --window 400 --vocab 30003.
# Every model: embeddings 300, Adam 1e-3, global batch 200, no dropout; each review longer than the window
# is read as a random run of `window` tokens (data.seq_len). Each layout trains WARMUP + STEPS steps
# (default 5 + 30); the warm-up steps are left out of every figure.
#
# reel layouts:     1 rank x 2 OpenBLAS threads, 2 ranks x 1 thread, 1 rank x 1 thread (mpirun --bind-to
#                   none, so the 2 threads of one rank may use both cores).
# PyTorch layouts:  1 process x 1 thread, 1 process x 2 threads, DistributedDataParallel 2 processes x 1
#                   thread (gloo over 127.0.0.1), by bench/torch_classifiers.py on the same prepared data.
#
# How the figures are measured:
#   s/step     reel: with train.log_every = 1, every row of metrics.h5 is one step and its samples_per_s is
#              global batch / that step's wall time (batch gathering, forward, backward, all-reduce,
#              optimizer; not logging, checkpoints or start-up), so s/step = mean(batch / samples_per_s).
#              PyTorch: the same span of every step, timed on rank 0.
#   reviews/s  global batch / s/step.
#   tokens/s   window tokens processed: a review contributes min(length, window). reel does not count
#              tokens, and the reviews of its steps are a uniform sample of the training split, so its
#              figure is reviews/s x the split's mean of min(length, window). PyTorch counts the tokens
#              of its timed batches exactly (it prints the same mean, to show the two agree).
#   peak RSS   per rank / process, in MB. reel: GNU time (%M, the maximum resident set size) wraps every
#              rank under mpirun. PyTorch: getrusage(ru_maxrss) in each process, which includes the
#              PyTorch runtime itself (about 250 MB before any model).
#   vs PyTorch reel's reviews/s divided by the best PyTorch layout's reviews/s for the same model (above 1:
#              reel is faster). Reviews/s rather than tokens/s, since both sides measure it exactly.
#
# Usage: bench/classifiers.sh [options] [DATA_DIR]
#   DATA_DIR           a directory written by `reel prep`; default: ../shared/data/aclImdb_v1.tar.gz is
#                      prepared into a temporary directory first (about 3 s)
#   --steps N          timed steps per layout (default 30)
#   --warmup N         untimed steps before them (default 5)
#   --models LIST      comma-separated KIND:SIZE, KIND lstm, gru or cnn (default lstm:500)
#   --all              --models lstm:500,gru:500,lstm:300
#   --embed N --vocab N --window N --batch N     (defaults 300, 8000, 100, 200)
#   --no-torch         reel only
#   --precision P      reel's [train] precision: fp32 (default) or bf16
#   --torch-packed     also PyTorch on a PackedSequence (its way to skip padding; bench/short.sh uses it)
#   RESULTS_OUT=FILE   (environment) also write the raw result rows there
# Run it after scripts/build, with nothing else running on the machine: the real settings take minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env

steps=30 warmup=5 models=lstm:500 embed=300 vocab=8000 window=100 batch=200 torch=1 torch_packed=0 precision=fp32 data=""
while [ $# -gt 0 ]; do
  case $1 in
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --all) models=lstm:500,gru:500,lstm:300; shift ;;
    --embed) embed=$2; shift 2 ;;
    --vocab) vocab=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --no-torch) torch=0; shift ;;
    --torch-packed) torch_packed=1; shift ;;
    --precision) precision=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench/classifiers.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) data=$1; shift ;;
  esac
done
for n in "$steps" "$warmup" "$embed" "$vocab" "$window" "$batch"; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "bench/classifiers.sh: '$n' is not a number" >&2; exit 2; }
done
[ "$steps" -ge 1 ] || { echo "bench/classifiers.sh: --steps must be at least 1" >&2; exit 2; }

REEL=${REEL:-build/reel}
[ -x "$REEL" ] || { echo "bench/classifiers.sh: $REEL is missing; run scripts/build" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "bench/classifiers.sh: GNU time (/usr/bin/time) is needed for memory" >&2; exit 1; }

# Python: h5py and numpy read reel's metrics and token files; torch is needed for the reference only.
source bench/common.sh
find_python bench/classifiers.sh

work=$(mktemp -d /tmp/reel-bench-lstm-XXXXXX)
trap 'rm -rf "$work"' EXIT
prepare_imdb bench/classifiers.sh "$REEL" "$work"
[ -f "$data/train.tok" ] || { echo "bench/classifiers.sh: $data/train.tok is missing (not a \`reel prep\` directory)" >&2; exit 1; }

# Mean window length over the training split: the tokens a review contributes on average.
window_mean=$("$PY" - "$data/train.tok" "$window" <<'PY'
import sys
import numpy as np
path, window = sys.argv[1], int(sys.argv[2])
n = int(np.fromfile(path, dtype=np.uint64, count=1, offset=16)[0])  # header: document count at byte 16
starts = np.fromfile(path, dtype=np.uint64, count=n + 1, offset=64).astype(np.int64)  # index after 64 bytes
print(f"{np.minimum(np.diff(starts), window).mean():.3f}")
PY
)

results=$work/results.txt
: >"$results"

# fp32 is the default, left unsaid so that a build older than the option (REEL=...) runs the same config
precision_line=""
[ "$precision" = fp32 ] || precision_line="precision = $precision"

# model_section KIND SIZE: the [model] keys of one benchmarked model (after type, vocab_size, embed_dim).
model_section() {
  case $1 in
    cnn) printf 'widths = 3,4,5\nfilters = %s\ndropout = 0\n' "$2" ;;
    *) printf 'hidden_dim = %s\nnum_layers = 1\npooling = max\ndropout = 0\nrnn_dropout = 0\nembed_dropout = 0\nrnn_batch_norm = false\n' "$2" ;;
  esac
}

# run_reel CELL HIDDEN RANKS THREADS: one reel layout; appends a line to $results.
run_reel() {
  local cell=$1 hidden=$2 ranks=$3 threads=$4
  local name=reel_${cell}${hidden}_${ranks}x${threads} cfg=$work/${cell}${hidden}.ini
  local label="$ranks rank$([ "$ranks" = 1 ] || echo s) x $threads thread$([ "$threads" = 1 ] || echo s)"
  cat >"$cfg" <<INI
[data]
dir = $data
seq_len = $window
[model]
type = $cell
vocab_size = $vocab
embed_dim = $embed
$(model_section "$cell" "$hidden")
[optimizer]
type = adam
lr = 1e-3
[train]
epochs = 1
max_steps = $((warmup + steps))
batch_size = $batch
log_every = 1
$precision_line
seed = 42
[checkpoint]
keep_last = 1
keep_best = false
INI
  echo "reel $cell $hidden: $label" >&2
  # Each rank runs under GNU time, which writes its peak RSS (kB) to NAME.rss.RANK.
  if ! OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads mpirun -np "$ranks" --bind-to none -x OPENBLAS_NUM_THREADS -x OMP_NUM_THREADS \
      sh -c 'exec /usr/bin/time -f %M -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' "$work/$name.rss" \
      "$REEL" train "$cfg" --no-resume --run-dir "$work/$name" >"$work/$name.log" 2>&1; then
    echo "bench/classifiers.sh: reel failed; the end of its log:" >&2; tail -5 "$work/$name.log" >&2
    echo "$cell:$hidden|reel|$label|failed" >>"$results"
    return
  fi
  local rss
  rss=$(rss_per_rank "$work/$name.rss" "$ranks")
  local figures
  if ! figures=$("$PY" - "$work/$name/metrics.h5" "$warmup" "$steps" "$batch" "$window_mean" <<'PY'
import sys
import h5py
import numpy as np
path, warmup, steps, batch, window_mean = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
with h5py.File(path, "r") as f:
    step, rate = f["train/step"][()], f["train/samples_per_s"][()]
timed = rate[step > warmup]
if len(timed) != steps:
    sys.exit(f"{path}: {len(timed)} timed rows, expected {steps} (a skipped step?)")
s_per_step = float(np.mean(batch / timed))
print(f"{s_per_step:.4f}|{batch / s_per_step:.2f}|{batch / s_per_step * window_mean:.0f}")
PY
  ); then
    echo "$cell:$hidden|reel|$label|failed" >>"$results"
    return
  fi
  echo "$cell:$hidden|reel|$label|$figures|$rss" >>"$results"
}

# run_torch CELL HIDDEN LABEL ARGS...: one PyTorch layout.
run_torch() {
  local cell=$1 hidden=$2 label=$3; shift 3
  echo "PyTorch $cell $hidden: $label" >&2
  local out
  if ! out=$("$PY" bench/torch_classifiers.py --data "$data" --cell "$cell" --hidden "$hidden" --embed "$embed" \
      --vocab "$vocab" --window "$window" --batch "$batch" --steps "$steps" --warmup "$warmup" "$@" 2>"$work/torch.err"); then
    echo "bench/classifiers.sh: torch_classifiers.py failed:" >&2; tail -5 "$work/torch.err" >&2
    echo "$cell:$hidden|PyTorch|$label|failed" >>"$results"
    return
  fi
  echo "$out" | awk -v m="$cell:$hidden" -v l="$label" '/^RESULT/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      n = split(v["rss_kb"], r, ","); rss = ""
      for (i = 1; i <= n; i++) rss = rss (i > 1 ? "/" : "") sprintf("%.0f", r[i] / 1024)
      printf "%s|PyTorch|%s|%.4f|%.2f|%.0f|%s\n", m, l, v["s_per_step"], v["reviews_per_s"], v["tokens_per_s"], rss
      printf "PyTorch window mean %s\n", v["window_mean"] > "/dev/stderr" }' >>"$results"
}

IFS=, read -r -a model_list <<<"$models"
for model in "${model_list[@]}"; do
  cell=${model%%:*} hidden=${model#*:}
  [[ $cell =~ ^(lstm|gru|cnn)$ && $hidden =~ ^[0-9]+$ ]] || { echo "bench/classifiers.sh: bad model '$model' (KIND:SIZE)" >&2; exit 2; }
  run_reel "$cell" "$hidden" 1 2
  run_reel "$cell" "$hidden" 2 1
  run_reel "$cell" "$hidden" 1 1
  if [ "$torch" = 1 ]; then
    run_torch "$cell" "$hidden" "1 process x 1 thread" --threads 1
    run_torch "$cell" "$hidden" "1 process x 2 threads" --threads 2
    run_torch "$cell" "$hidden" "DDP 2 processes x 1 thread" --ddp 2
    if [ "$torch_packed" = 1 ]; then
      run_torch "$cell" "$hidden" "1 process x 2 threads, packed" --threads 2 --packed
      run_torch "$cell" "$hidden" "DDP 2 x 1, packed" --ddp 2 --packed
    fi
  fi
done

# the raw rows (MODEL|IMPL|LAYOUT|S_PER_STEP|REVIEWS_PER_S|TOKENS_PER_S|RSS) for a script that compares runs
[ -z "${RESULTS_OUT:-}" ] || cp "$results" "$RESULTS_OUT"
echo
echo "== $(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) cores; window $window, batch $batch, embed $embed, vocab $vocab; $steps timed steps after $warmup warm-up"
echo "   mean window tokens per review over $data/train.tok: $window_mean (reel's tokens/s = reviews/s x this)"
awk -F'|' '
  { row[NR] = $0; if ($2 == "PyTorch" && $4 != "failed" && $5 > best[$1]) best[$1] = $5 }
  END {
    printf "%-10s %-8s %-28s %9s %10s %10s %14s %11s\n", "model", "impl", "layout", "s/step", "reviews/s",
           "tokens/s", "peak RSS MB", "vs PyTorch"
    for (i = 1; i <= NR; i++) {
      split(row[i], f, "|")
      if (f[4] == "failed") { printf "%-10s %-8s %-28s %9s\n", f[1], f[2], f[3], "failed"; continue }
      ratio = (f[2] == "reel" && best[f[1]] > 0) ? sprintf("%.2fx", f[5] / best[f[1]]) : ""
      printf "%-10s %-8s %-28s %9.3f %10.1f %10.0f %14s %11s\n", f[1], f[2], f[3], f[4], f[5], f[6], f[7], ratio
    }
  }' "$results"
