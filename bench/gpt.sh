#!/usr/bin/env bash
# Throughput of the GPT-style decoder ([model] type = gpt), reel against PyTorch 1.13 on the same machine in
# the same run, with the model FLOPs utilisation (MFU) of each against the measured peak of the cores.
#
# Shapes (both implementations build the same tensors; bench/torch_gpt.py is the PyTorch side):
#   reference T256   6 blocks, 8 heads, d_model 512, context 256, vocabulary 16,384, 8 sequences per rank;
#                    layouts 2 ranks x 1 thread, 1 rank x 2 threads, 1 x 1
#   reference T1024  the same model at context 1,024 (max_context = seq_len = 1,024), 2 sequences per rank
#                    (the same tokens per step as T256); 2 ranks x 1 thread
#   GPT-2 small      12 blocks, 12 heads, d_model 768, context 1,024, vocabulary 50,304, 1 sequence per rank
#                    (GPT-2 trained with 512 per step; one sequence is what a rank's memory and time allow
#                    here); 2 ranks x 1 thread
# Each shape runs reel in fp32 and bf16 ([train] precision) and PyTorch in fp32 and bf16 (torch.autocast
# on the CPU). Both train with AdamW (betas 0.9/0.95, weight decay 0.1 on the matrices and embeddings),
# the gradient norm clipped to 1, no dropout, tied output layer; reel on a synthetic token corpus with
# exactly the vocabulary (random words through `reel prep`, streamed into rows of the context), PyTorch on
# random ids of the same vocabulary. Each layout trains WARMUP + STEPS steps (T256 and T1024: 2 + 4,
# GPT-2 small: 1 + 2); the warm-up steps are left out of every figure.
#
# Layouts: reel under mpirun --bind-to none with OPENBLAS_NUM_THREADS = OMP_NUM_THREADS = threads;
# PyTorch by bench/torch_gpt.py: DistributedDataParallel 2 processes x 1 thread (gloo over 127.0.0.1,
# its default 25 MB buckets overlapping the backward), 1 process x 2 threads, 1 x 1. reel runs with its
# default single exchange after the backward ([train] bucket_mb = 0; --bucket-mb changes it).
#
# How the figures are measured:
#   tokens/s     predictions of the timed global batches / their wall time. reel: with log_every = 1 every
#                row of metrics.h5 is one step with its tokens_per_s and seconds; PyTorch: from drawing the
#                batch to the end of the optimizer step, on rank 0.
#   s/step       the timed steps' mean seconds.
#   peak RSS     per rank / process, in MB (GNU time %M for reel; getrusage in PyTorch, which includes the
#                PyTorch runtime).
#   allreduce    reel: the share of the timed steps' time from the end of a rank's backward pass to its
#                summed gradient (the exchange not hidden, and waiting for the slower rank).
#   MFU          tokens/s x FLOP per token / (ranks x threads x the peak of one core), where FLOP per token
#                = 6 N + 12 L d T (N: the parameters but the position table; L blocks, d d_model, T the
#                context), the same count for both implementations, and the peak is build/bench_peak's
#                (bench/peak.c): fp32 rows against its fp32 FMA figure, bf16 rows against the fastest bf16
#                unit it found (AMX tiles where the CPU has them, as oneDNN and PyTorch's oneDNN use for
#                bf16 products; else the AVX512_BF16 dot product).
#   ratios       at the end, reel over PyTorch for every shape, precision and layout both ran: tokens/s,
#                and the largest rank's peak RSS.
# Both sides are checked to be the same model: first (model_check below) reel's small model with large
# random parameters is scored by `reel eval` and by bench/torch_gpt.py --check on the same documents, which
# must agree to float32 rounding; then every shape's parameter count is checked three ways (the formula,
# PyTorch's model, reel's log). Either difference stops the script.
#
# Usage: bench/gpt.sh [options]
#   --steps N --warmup N    timed and warm-up steps of the two reference shapes (defaults 4 and 2)
#   --gpt2-steps N --gpt2-warmup N   the same for GPT-2 small (defaults 2 and 1)
#   --only LIST             the shapes to run, a comma-separated subset of ref256,ref1024,gpt2
#   --no-torch              reel only
#   --no-bf16               fp32 only
#   --bucket-mb X           reel's [train] bucket_mb (default 0: one exchange after the backward)
#   --quick                 tiny shapes, 1 + 2 steps: checks the script end to end in about a minute (the
#                           same as BENCH_QUICK=1 in the environment); its figures mean nothing
# Run it after scripts/build, with nothing else running on the machine. On 2 cores of a Sapphire Rapids it
# should take about 15 minutes (GPT-2 small about 5 of them) and need about 12 GB of free memory (GPT-2
# small in PyTorch on 2 processes): estimates from the kernels' rates, until a first full run says (the
# progress lines on stderr say when each run started).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env

steps=4 warmup=2 gpt2_steps=2 gpt2_warmup=1 torch=1 bf16=1 only=ref256,ref1024,gpt2 bucket=0
quick=${BENCH_QUICK:-0}
while [ $# -gt 0 ]; do
  case $1 in
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --gpt2-steps) gpt2_steps=$2; shift 2 ;;
    --gpt2-warmup) gpt2_warmup=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --no-torch) torch=0; shift ;;
    --no-bf16) bf16=0; shift ;;
    --bucket-mb) bucket=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/gpt.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$steps" "$warmup" "$gpt2_steps" "$gpt2_warmup"; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "bench/gpt.sh: '$n' is not a number of steps" >&2; exit 2; }
done
[ "$steps" -ge 1 ] && [ "$gpt2_steps" -ge 1 ] || { echo "bench/gpt.sh: --steps and --gpt2-steps must be at least 1" >&2; exit 2; }
[[ $bucket =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "bench/gpt.sh: --bucket-mb takes a number of MB, not '$bucket'" >&2; exit 2; }
case $quick in 0|1) ;; *) echo "bench/gpt.sh: BENCH_QUICK is 0 or 1, not '$quick'" >&2; exit 2 ;; esac

# name|blocks|heads|d_model|context|vocabulary|sequences per rank|layouts|warm-up|steps|label
if [ "$quick" = 1 ]; then
  shapes=("ref256|2|2|32|32|512|2|2x1 1x2 1x1|1|2|QUICK reference (2 x 32, 2 heads, T 32, V 512, 2 seq/rank)"
          "ref1024|2|2|32|128|512|1|2x1|1|2|QUICK long context (T 128, 1 seq/rank)"
          "gpt2|2|2|48|128|1000|1|2x1|1|2|QUICK gpt2 (2 x 48, 2 heads, T 128, V 1000, 1 seq/rank)")
  peak_args=(--seconds 0.05 --sgemm 256)
else
  shapes=("ref256|6|8|512|256|16384|8|2x1 1x2 1x1|$warmup|$steps|reference T256 (6 x 512, 8 heads, V 16384, 8 seq/rank)"
          "ref1024|6|8|512|1024|16384|2|2x1|$warmup|$steps|reference T1024 (the same model, 2 seq/rank)"
          "gpt2|12|12|768|1024|50304|1|2x1|$gpt2_warmup|$gpt2_steps|GPT-2 small (12 x 768, 12 heads, T 1024, V 50304, 1 seq/rank)")
  peak_args=()
fi
IFS=, read -ra wanted <<<"$only"
for w in "${wanted[@]}"; do
  case $w in ref256|ref1024|gpt2) ;; *) echo "bench/gpt.sh: --only takes ref256, ref1024, gpt2, not '$w'" >&2; exit 2 ;; esac
done
selected() { local w; for w in "${wanted[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }

REEL=${REEL:-build/reel}
PEAK=${PEAK:-build/bench_peak}
for tool in "$REEL" "$PEAK"; do
  [ -x "$tool" ] || { echo "bench/gpt.sh: $tool is missing; run scripts/build" >&2; exit 1; }
done
command -v /usr/bin/time >/dev/null || { echo "bench/gpt.sh: GNU time (/usr/bin/time) is needed for memory" >&2; exit 1; }
source bench/common.sh
find_python bench/gpt.sh

work=$(mktemp -d /tmp/reel-bench-gpt-XXXXXX)
trap 'rm -rf "$work"' EXIT
results=$work/results.txt
: >"$results"

# minutes:seconds since the start, on the progress lines: how long each run took
elapsed() { printf '%d:%02d' $((SECONDS / 60)) $((SECONDS % 60)); }
SECONDS=0

# ---- the peak of one core ----
echo "measuring the peak of one core ($PEAK)" >&2
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$PEAK" "${peak_args[@]}" >"$work/peak.txt"
peak_of() { awk -v k="$1:" '$1 == k && $2 ~ /^[0-9.]+$/ { print $2 }' "$work/peak.txt"; }
peak_fp32=$(peak_of fp32) peak_bf16=$(peak_of bf16_amx)
bf16_unit="AMX tiles"
[ -n "$peak_bf16" ] || { peak_bf16=$(peak_of bf16); bf16_unit="AVX512_BF16 dot products"; }
[ -n "$peak_fp32" ] || { echo "bench/gpt.sh: $PEAK measured no fp32 peak:" >&2; cat "$work/peak.txt" >&2; exit 1; }
if [ "$bf16" = 1 ] && [ -z "$peak_bf16" ]; then
  echo "bench/gpt.sh: this CPU has no bf16 unit ($PEAK): bf16 lines skipped" >&2
  bf16=0
fi
precisions=(fp32)
[ "$bf16" = 0 ] || precisions+=(bf16)

# ---- the corpora: `reel prep` of random words, exactly V - 3 of them (V with the reserved ids) ----
# make_data V TOKENS [WORDS VALID]: $work/data_V_TOKENS_WORDS with a vocabulary of exactly V entries, at
# least TOKENS training tokens in documents of WORDS words (default 1,000) and VALID of them (default 1)
# held out as valid; sets data to it.
make_data() {
  local vocab=$1 tokens=$2 words=${3:-1000} valid=${4:-1}
  data=$work/data_${vocab}_${tokens}_$words
  [ -d "$data" ] && return 0
  "$PY" - "$work/corpus.txt" "$vocab" "$tokens" "$words" <<'PY'
import sys
import numpy as np
path, vocab, tokens, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(vocab)
words = np.array([f"w{i}" for i in range(vocab - 3)])
# every word at least once (so that the vocabulary has them all), then uniformly random ones
ids = np.concatenate([rng.permutation(vocab - 3), rng.integers(0, vocab - 3, size=max(tokens, 0))])
with open(path, "w") as f:
    for start in range(0, len(ids), per):
        f.write(" ".join(words[ids[start:start + per]]) + "\n")
PY
  "$REEL" prep --quiet --format text --vocab-size "$vocab" --valid-count "$valid" "$work/corpus.txt" "$data"
  local got
  got=$(wc -l <"$data/vocab.txt")
  [ "$got" = "$vocab" ] || { echo "bench/gpt.sh: $data/vocab.txt has $got entries, expected $vocab" >&2; exit 1; }
  rm -f "$work/corpus.txt"
}

# write_ini FILE DATA L H C T V: reel's configuration of a shape, trained as bench/torch_gpt.py trains.
write_ini() {
  cat >"$1" <<EOF
[data]
dir = $2
seq_len = $6
[model]
type = gpt
vocab_size = $7
embed_dim = $5
num_layers = $3
num_heads = $4
max_context = $6
tie_weights = true
dropout = 0
[objective]
type = next_token
sampler = stream
train_splits = train
eval_split = valid
[optimizer]
type = adam
lr = 3e-4
beta1 = 0.9
beta2 = 0.95
weight_decay = 0.1
clip_norm = 1.0
[train]
epochs = 1000
log_every = 1
bucket_mb = $bucket
[checkpoint]
every_steps = 0
keep_best = false
EOF
}

# ---- the same function on both sides ----
# A small model of reel's (2 blocks of 32, 2 heads, context 32, V 512) is saved after one step, its
# parameters replaced by large random ones (N(0, 0.5), layer-norm gains 1 + that: every parameter moves
# the loss, the GELU's tanh form and the norms' eps visibly among them) and scored by `reel eval` and by
# bench/torch_gpt.py --check on the same held-out documents (20 words each). Their perplexities agreed
# to 3e-7 (float32 rounding); PyTorch's exact GELU moved its figure by 7e-5, eps 1e-4 by 2e-5: the limit
# is 5e-6 between the logs of the two.
model_check() {
  echo "checking that bench/torch_gpt.py computes reel's function" >&2
  make_data 512 4000 20 30
  write_ini "$work/check.ini" "$data" 2 2 32 32 512
  local run=$work/check
  if ! "$REEL" train "$work/check.ini" --no-resume --run-dir "$run" --set train.max_steps=1 >"$run.log" 2>&1; then
    echo "bench/gpt.sh: reel train of the check model failed:" >&2; tail -5 "$run.log" >&2; exit 1
  fi
  "$PY" - "$run/ckpt_00000001.h5" <<'PY'
import sys
import h5py
import numpy as np
rng = np.random.default_rng(7)
def replace(name, dataset):
    if isinstance(dataset, h5py.Dataset):
        value = rng.normal(0.0, 0.5, dataset.shape)
        if name.split("/")[-2] in ("ln1", "ln2", "final_ln") and name.endswith("/weight"):
            value += 1.0
        dataset[...] = value.astype(np.float32)
with h5py.File(sys.argv[1], "r+") as f:
    f["model"].visititems(replace)
PY
  local reel_ppl torch_ppl
  reel_ppl=$("$REEL" eval "$run/ckpt_00000001.h5" --split valid 2>"$run.err" | awk '$1 == "perplexity" { print $2 }') || true
  [ -n "$reel_ppl" ] || { echo "bench/gpt.sh: reel eval of the check model printed no perplexity:" >&2; tail -5 "$run.err" >&2; exit 1; }
  torch_ppl=$("$PY" bench/torch_gpt.py --layers 2 --heads 2 --width 32 --context 32 --vocab 512 \
              --check "$run/ckpt_00000001.h5" "$data/valid.tok" 2>"$run.err" | sed -n 's/^CHECK perplexity=\([^ ]*\) .*/\1/p') || true
  [ -n "$torch_ppl" ] || { echo "bench/gpt.sh: torch_gpt.py --check failed:" >&2; tail -5 "$run.err" >&2; exit 1; }
  if ! awk -v a="$reel_ppl" -v b="$torch_ppl" 'BEGIN { d = log(a) - log(b); exit !(d <= 5e-6 && d >= -5e-6) }'; then
    echo "bench/gpt.sh: PyTorch's model is not reel's: on the same parameters and documents reel eval gives" \
         "perplexity $reel_ppl, bench/torch_gpt.py $torch_ppl (the limit: 5e-6 apart in their logs)" >&2
    exit 1
  fi
  echo "model check: perplexity $reel_ppl (reel eval) and $torch_ppl (PyTorch) on the same parameters" >"$work/check.txt"
  rm -rf "$run"
}

# ---- one shape ----
# flop_per_token L C T V: 6 N + 12 L C T, N = V C (the tied embedding) + L (12 C^2 + 13 C) + 2 C (the final
# norm): per block ln1 2C, qkv 3C^2 + 3C, proj C^2 + C, ln2 2C, fc 4C^2 + 4C, fc_proj 4C^2 + C.
params_of() { echo "$(( $4 * $2 + $1 * (12 * $2 * $2 + 13 * $2) + 2 * $2 ))"; }

run_shape() {
  local name=$1 L=$2 H=$3 C=$4 T=$5 V=$6 per=$7 layouts=$8 wu=$9 st=${10} label=${11}
  local N flop
  N=$(params_of "$L" "$C" "$T" "$V")
  flop=$(( 6 * N + 12 * L * C * T ))
  echo "== $label: N = $N parameters but the positions, $flop FLOP per token" >&2
  echo "#shape|$name|$label|$N|$flop" >>"$results"
  # twice the tokens the steps read on 2 ranks: no epoch ends (and evaluates) among them
  local tokens=$(( 2 * (wu + st) * 2 * per * (T + 1) ))
  make_data "$V" "$tokens"
  local ini=$work/$name.ini
  write_ini "$ini" "$data" "$L" "$H" "$C" "$T" "$V"
  local layout precision
  for precision in "${precisions[@]}"; do
    for layout in $layouts; do run_reel "$name" "$ini" "$precision" "${layout%x*}" "${layout#*x}" "$per" "$wu" "$st" "$N" "$T" "$C"; done
  done
  [ "$torch" = 1 ] || return 0
  for precision in "${precisions[@]}"; do
    for layout in $layouts; do
      local args=(--layers "$L" --heads "$H" --width "$C" --context "$T" --vocab "$V" --batch "$per" --warmup "$wu" --steps "$st")
      [ "$precision" = fp32 ] || args+=(--bf16)
      if [ "${layout%x*}" = 1 ]; then args+=(--threads "${layout#*x}"); else args+=(--ddp "${layout%x*}"); fi
      run_torch "$name" "$precision" "$layout" "$N" "$T" "$C" "${args[@]}"
    done
  done
}

# run_reel SHAPE INI PRECISION RANKS THREADS PER_RANK WARMUP STEPS N T C: appends a line to $results.
run_reel() {
  local shape=$1 ini=$2 precision=$3 ranks=$4 threads=$5 per=$6 wu=$7 st=$8 N=$9 T=${10} C=${11}
  local run=$work/reel_${shape}_${precision}_${ranks}x${threads} layout=${ranks}x${threads}
  echo "reel: $shape $precision $ranks rank(s) x $threads thread(s) (at $(elapsed))" >&2
  # oneDNN (bf16) threads with OpenMP: as many threads as OpenBLAS
  if ! OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads mpirun -np "$ranks" --bind-to none -x OPENBLAS_NUM_THREADS -x OMP_NUM_THREADS \
      sh -c 'exec /usr/bin/time -f %M -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' "$run.rss" \
      "$REEL" train "$ini" --no-resume --run-dir "$run" --set "train.batch_size=$((per * ranks))" \
      --set "train.max_steps=$((wu + st))" --set "train.precision=$precision" >"$run.log" 2>&1; then
    echo "bench/gpt.sh: reel failed; the end of its log:" >&2; tail -5 "$run.log" >&2
    echo "$shape|reel|$precision|$layout|failed" >>"$results"
    return
  fi
  # the same model as the formula: reel's count includes the position table (T x C)
  local logged
  logged=$(sed -n 's/^model gpt, objective next_token: \([0-9]*\) parameters.*/\1/p' "$run.log")
  if [ "$logged" != "$((N + T * C))" ]; then
    echo "bench/gpt.sh: reel's $shape model has ${logged:-an unlogged number of} parameters, the formula $((N + T * C))" \
         "(N $N + positions $((T * C))): not the model the FLOP count describes" >&2
    exit 1
  fi
  local rss
  rss=$(rss_per_rank "$run.rss" "$ranks")
  local figures
  if ! figures=$(timed_figures "$run/metrics.h5" "$wu" "$st" 1); then
    echo "$shape|reel|$precision|$layout|failed" >>"$results"
    return
  fi
  echo "$shape|reel|$precision|$layout|$figures|$rss" >>"$results"
  # which unit oneDNN multiplies reel's bf16 with (its own detection, as reel logs it)
  [ "$precision" = fp32 ] || [ -s "$work/isa.txt" ] ||
    sed -n 's/^precision: bf16 matrix products (\(oneDNN, [^)]*\)).*/\1/p' "$run.log" >"$work/isa.txt"
  rm -rf "$run" # the checkpoint of GPT-2 small is 1.5 GB
}

# run_torch SHAPE PRECISION LAYOUT N T C ARGS...: one PyTorch layout.
run_torch() {
  local shape=$1 precision=$2 layout=$3 N=$4 T=$5 C=$6; shift 6
  echo "PyTorch: $shape $precision $layout (at $(elapsed))" >&2
  local out
  if ! out=$("$PY" bench/torch_gpt.py "$@" 2>"$work/torch.err"); then
    echo "bench/gpt.sh: torch_gpt.py failed:" >&2; tail -5 "$work/torch.err" >&2
    echo "$shape|PyTorch|$precision|$layout|failed" >>"$results"
    return
  fi
  local line
  line=$(echo "$out" | awk -v s="$shape" -v p="$precision" -v l="$layout" -v n="$N" -v tc="$((T * C))" '/^RESULT/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      if (v["parameters"] - v["positions"] != n || v["positions"] != tc) {
        printf "model|%s parameters, %s of them positions; the formula: %s and %s\n", v["parameters"], v["positions"], n, tc
        exit
      }
      k = split(v["rss_kb"], r, ","); rss = ""
      for (i = 1; i <= k; i++) rss = rss (i > 1 ? "/" : "") sprintf("%.0f", r[i] / 1024)
      printf "%s|PyTorch|%s|%s|%.3f|%.1f|-|%s\n", s, p, l, v["s_per_step"], v["tokens_per_s"], rss }')
  case $line in
    model\|*) echo "bench/gpt.sh: PyTorch's $shape model has ${line#model|}: not the model the FLOP count describes" >&2; exit 1 ;;
    "") echo "bench/gpt.sh: torch_gpt.py printed no RESULT line" >&2; echo "$shape|PyTorch|$precision|$layout|failed" >>"$results" ;;
    *) echo "$line" >>"$results" ;;
  esac
}

[ "$torch" = 0 ] || model_check
for entry in "${shapes[@]}"; do
  IFS='|' read -r name L H C T V per layouts wu st label <<<"$entry"
  selected "$name" || continue
  run_shape "$name" "$L" "$H" "$C" "$T" "$V" "$per" "$layouts" "$wu" "$st" "$label"
done

echo
echo "== $(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) cores; GPT ([model] type = gpt) against PyTorch" \
     "$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo '(none)')$([ "$quick" = 0 ] || echo '; QUICK MODE: tiny shapes, the figures mean nothing')"
echo "peak of one core ($PEAK):"
sed 's/^/  /' "$work/peak.txt"
echo "the whole run took $(elapsed)"
echo "MFU against fp32 $peak_fp32 GFLOP/s per core$([ -z "$peak_bf16" ] || echo ", bf16 $peak_bf16 GFLOP/s per core ($bf16_unit)")"
[ ! -s "$work/isa.txt" ] || echo "reel's bf16 products: $(cat "$work/isa.txt")"
[ ! -s "$work/check.txt" ] || cat "$work/check.txt"
awk -F'|' -v pf="$peak_fp32" -v pb="${peak_bf16:-0}" '
  function layout_name(l,   a) { split(l, a, "x"); return a[1] " x " a[2] }
  $1 == "#shape" { flop[$2] = $5; order[++shapes] = $2; label[$2] = $3 " -- " $5 / 1e6 " MFLOP per token"; next }
  { row[$1, ++count[$1]] = $0; if ($5 != "failed") { rate[$1, $2, $3, $4] = $6; n = split($8, r, "/"); m = 0
      for (i = 1; i <= n; i++) if (r[i] + 0 > m) m = r[i] + 0
      rss[$1, $2, $3, $4] = m } }
  END {
    for (s = 1; s <= shapes; s++) {
      sh = order[s]
      printf "\n%s\n", label[sh]
      printf "%-8s %-5s %-7s %10s %9s %14s %10s %7s\n", "impl", "prec", "layout", "tokens/s", "s/step", "peak RSS MB", "allreduce", "MFU"
      for (i = 1; i <= count[sh]; i++) {
        split(row[sh, i], f, "|")
        if (f[5] == "failed") { printf "%-8s %-5s %-7s %10s\n", f[2], f[3], layout_name(f[4]), "failed"; continue }
        split(f[4], lt, "x")
        peak = (f[3] == "bf16" ? pb : pf)
        mfu = peak > 0 ? sprintf("%.1f%%", 100 * f[6] * flop[sh] / (lt[1] * lt[2] * peak * 1e9)) : "-"
        printf "%-8s %-5s %-7s %10.0f %9.3f %14s %10s %7s\n", f[2], f[3], layout_name(f[4]), f[6], f[5], f[8], f[7], mfu
      }
    }
    printf "\nreel / PyTorch (the same shape, precision and layout): tokens/s, and the largest peak RSS per rank\n"
    any = 0
    for (s = 1; s <= shapes; s++) {
      sh = order[s]
      for (i = 1; i <= count[sh]; i++) {
        split(row[sh, i], f, "|")
        if (f[2] != "reel" || f[5] == "failed" || !((sh, "PyTorch", f[3], f[4]) in rate)) continue
        t = rate[sh, "PyTorch", f[3], f[4]]; m = rss[sh, "PyTorch", f[3], f[4]]
        # (parenthesised: a bare > among the arguments of printf redirects the output to a file)
        printf "  %-8s %-5s %-7s  tokens/s %6.2fx   peak RSS %6.2fx\n", sh, f[3], layout_name(f[4]), f[6] / t,
               (m > 0 ? rss[sh, "reel", f[3], f[4]] / m : 0)
        any = 1
      }
    }
    if (!any) print "  (no pair: PyTorch did not run)"
  }' "$results"
