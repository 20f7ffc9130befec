#!/usr/bin/env bash
# Throughput of reel's classifiers, reel against PyTorch on the same machine in the same run.
#
# Models (--models, each KIND:SIZE):
#   lstm:H, gru:H   the course's recurrent classifier (part 2a): embeddings -> one LSTM (GRU) layer of H ->
#                   max pooling over the valid steps -> one logit. The default, lstm:500, with the default
#                   window 100 and vocabulary 8000, is the course's model.
#   cnn:F           Kim (2014)'s CNN ([model] type = cnn): embeddings -> convolutions of widths 3, 4 and 5
#                   with F filters each, ReLU, max over the valid positions -> one logit.
#   transformer:C   the Transformer encoder ([model] type = transformer): token + learned position
#                   embeddings of width C (the context: the window), 4 pre-LayerNorm blocks of 4 heads
#                   (bidirectional, padding never attended) with an MLP of 4 C (GELU, tanh form), a final
#                   LayerNorm, the mean over the review's tokens -> one logit. C must be a multiple of 4.
#                   Issue 20's shapes (IMDb reviews of 400 tokens, batch 200):
#                     --models cnn:100,transformer:256 --window 400 --vocab 30000
# Every model: Adam 1e-3, global batch 200, no dropout; embeddings 300 (--embed; the Transformer's are its
# width); each review longer than the window is read as a random run of `window` tokens (data.seq_len).
# The vocabulary is min(--vocab, the entries of DATA/vocab.txt), as reel reads it. Each layout trains
# WARMUP + STEPS steps (default 5 + 30); the warm-up steps are left out of every figure.
#
# Precision: reel's [train] precision is --precision (fp32 or bf16: the matrix products in bf16 with fp32
# accumulation); PyTorch runs in fp32, or with --torch-bf16 under torch.autocast("cpu", bfloat16) (the
# products and convolutions in bf16, parameters and Adam in fp32). One run is one precision on each side:
# the bf16 rows are a second run with --precision bf16 --torch-bf16. The table's prec column says which.
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
#   tokens/s   window tokens processed: a review contributes min(length, window). For reel, whose
#              older builds (REEL=...) did not count tokens, and whose steps read a uniform sample of the
#              training split, the figure is reviews/s x the split's mean of min(length, window) (its
#              metrics' tokens_per_s counts them since 10d7f6b). PyTorch counts the tokens
#              of its timed batches exactly (it prints the same mean, to show the two agree).
#   peak RSS   per rank / process, in MB. reel: GNU time (%M, the maximum resident set size) wraps every
#              rank under mpirun. PyTorch: getrusage(ru_maxrss) in each process, which includes the
#              PyTorch runtime itself (about 250 MB before any model).
#   vs PyTorch reel's reviews/s divided by the best PyTorch layout's reviews/s for the same model in the
#              same precision (above 1: reel is faster); when PyTorch ran only in the other precision,
#              against that, named in brackets. Reviews/s rather than tokens/s: both sides measure it exactly.
#
# Both sides build the same model, checked before any timing (a difference stops the script):
#   parameters  every reel run's logged count and every PyTorch run's count must equal the formula
#               (params_of below).
#   function    for cnn and transformer models (model_check below): a small model of the kind, with large
#               random parameters saved in a reel checkpoint, scores the same 100 reviews in `reel eval`
#               and in bench/torch_classifiers.py --check (both Transformer forms of --torch-attention);
#               the two losses must agree to float32 rounding. --no-check skips it.
#
# Usage: bench/classifiers.sh [options] [DATA_DIR]
#   DATA_DIR           a directory written by `reel prep`; default: ../shared/data/aclImdb_v1.tar.gz is
#                      prepared into a temporary directory first (about 3 s)
#   --steps N          timed steps per layout (default 30)
#   --warmup N         untimed steps before them (default 5)
#   --models LIST      comma-separated KIND:SIZE, KIND lstm, gru, cnn or transformer (default lstm:500)
#   --all              --models lstm:500,gru:500,lstm:300
#   --embed N --vocab N --window N --batch N     (defaults 300, 8000, 100, 200)
#   --no-torch         reel only
#   --precision P      reel's [train] precision: fp32 (default) or bf16
#   --torch-bf16       PyTorch under torch.autocast("cpu", dtype=torch.bfloat16)
#   --torch-attention A  PyTorch's Transformer blocks: layer (default: nn.TransformerEncoderLayer with
#                      norm_first and a key padding mask, its nn.MultiheadAttention) or matmul (the
#                      attention written out: q k^T / sqrt(D), masked_fill, softmax, @ v). Both are the
#                      same function (the model check runs both); layer was the faster in a short trial.
#   --no-check         skip the model check (the parameter counts are still checked)
#   --torch-packed     also PyTorch on a PackedSequence (its way to skip padding; bench/short.sh uses it)
#   RESULTS_OUT=FILE   (environment) also write the raw result rows there
# Run it after scripts/build, with nothing else running on the machine: the real settings take minutes,
# the Transformer's far longer (a step of transformer:256 at 400 tokens is of the order of half a minute
# to a minute on one core, in both). Memory: transformer:256 at batch 200 needed about 4.2 GB for one reel
# rank (packed batches; 6.7 GB padded) and 8 GB for one PyTorch process (each layer's attention weights
# are 200 x 4 x 400^2 floats, 0.5 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi-env

steps=30 warmup=5 models=lstm:500 embed=300 vocab=8000 window=100 batch=200 torch=1 torch_packed=0 precision=fp32 data=""
torch_bf16=0 torch_attention=layer check=1
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
    --torch-bf16) torch_bf16=1; shift ;;
    --torch-attention) torch_attention=$2; shift 2 ;;
    --no-check) check=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench/classifiers.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) data=$1; shift ;;
  esac
done
for n in "$steps" "$warmup" "$embed" "$vocab" "$window" "$batch"; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "bench/classifiers.sh: '$n' is not a number" >&2; exit 2; }
done
[ "$steps" -ge 1 ] || { echo "bench/classifiers.sh: --steps must be at least 1" >&2; exit 2; }
case $precision in fp32|bf16) ;; *) echo "bench/classifiers.sh: --precision is fp32 or bf16, not '$precision'" >&2; exit 2 ;; esac
case $torch_attention in matmul|layer) ;; *) echo "bench/classifiers.sh: --torch-attention is matmul or layer, not '$torch_attention'" >&2; exit 2 ;; esac
IFS=, read -r -a model_list <<<"$models"
for model in "${model_list[@]}"; do
  [[ $model =~ ^(lstm|gru|cnn|transformer):[0-9]+$ ]] || { echo "bench/classifiers.sh: bad model '$model' (KIND:SIZE)" >&2; exit 2; }
  [[ $model != transformer:* ]] || [ $(( ${model#*:} % 4 )) = 0 ] ||
    { echo "bench/classifiers.sh: $model: the width must be a multiple of the 4 heads" >&2; exit 2; }
done

REEL=${REEL:-build/reel}
[ -x "$REEL" ] || { echo "bench/classifiers.sh: $REEL is missing; run scripts/build" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "bench/classifiers.sh: GNU time (/usr/bin/time) is needed for memory" >&2; exit 1; }

# Python: h5py and numpy read reel's metrics and token files; torch is needed for the reference only.
source bench/common.sh
find_python bench/classifiers.sh

work=$(mktemp -d /tmp/reel-bench-classifiers-XXXXXX)
trap 'rm -rf "$work"' EXIT
prepare_imdb bench/classifiers.sh "$REEL" "$work"
[ -f "$data/train.tok" ] || { echo "bench/classifiers.sh: $data/train.tok is missing (not a \`reel prep\` directory)" >&2; exit 1; }
# reel trains with min(vocab_size, the entries of vocab.txt) rows (train.c says so in its log); PyTorch
# and the parameter counts must use the same number
data_vocab=$(wc -l <"$data/vocab.txt")
if [ "$data_vocab" -lt "$vocab" ]; then
  echo "bench/classifiers.sh: $data/vocab.txt has $data_vocab entries: --vocab $vocab reads as $data_vocab, as in reel" >&2
  vocab=$data_vocab
fi

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

# model_section KIND SIZE: the [model] keys of one benchmarked model (after type and vocab_size).
model_section() {
  case $1 in
    cnn) printf 'embed_dim = %s\nwidths = 3,4,5\nfilters = %s\ndropout = 0\n' "$embed" "$2" ;;
    transformer) printf 'embed_dim = %s\nnum_layers = 4\nnum_heads = 4\nd_ff = %s\nmax_context = %s\npositions = learned\n' \
                        "$2" $((4 * $2)) "$window"
                 printf 'causal = false\npooling = mean\ndropout = 0\nattention_dropout = 0\nhead_dropout = 0\n' ;;
    *) printf 'embed_dim = %s\nhidden_dim = %s\nnum_layers = 1\npooling = max\ndropout = 0\nrnn_dropout = 0\nembed_dropout = 0\nrnn_batch_norm = false\n' "$embed" "$2" ;;
  esac
}

# params_of KIND SIZE [EMBED [LAYERS [CONTEXT]]]: the parameters of a benchmarked model, the count both sides must
# have. lstm/gru (G = 4/3 gates): V E + G H (E + H) + 2 G H (PyTorch's two biases, which reel keeps too)
# + H + 1; cnn: V E + sum over w = 3, 4, 5 of (w E F + F) + 3 F + 1; transformer (width C, L blocks,
# context T): V C + T C + L (12 C^2 + 13 C) (ln1 2C, qkv 3C^2 + 3C, proj C^2 + C, ln2 2C, mlp 8C^2 + 5C)
# + 2 C (final norm) + C + 1.
params_of() {
  local kind=$1 n=$2 e=${3:-$embed} layers=${4:-4} context=${5:-$window}
  case $kind in
    lstm) echo $(( vocab * e + 4 * n * (e + n) + 8 * n + n + 1 )) ;;
    gru) echo $(( vocab * e + 3 * n * (e + n) + 6 * n + n + 1 )) ;;
    cnn) echo $(( vocab * e + 12 * e * n + 3 * n + 3 * n + 1 )) ;;
    transformer) echo $(( vocab * n + context * n + layers * (12 * n * n + 13 * n) + 2 * n + n + 1 )) ;;
  esac
}

# reel_parameters LOG: the count reel logs ("model KIND, objective classify: N parameters; ...")
reel_parameters() { sed -n 's/^model [a-z]*, objective [a-z_]*: \([0-9]*\) parameters.*/\1/p' "$1"; }

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
    echo "$cell:$hidden|reel|$label|failed||||$precision" >>"$results"
    return
  fi
  local logged expected
  logged=$(reel_parameters "$work/$name.log") expected=$(params_of "$cell" "$hidden")
  if [ "$logged" != "$expected" ]; then
    echo "bench/classifiers.sh: reel's $cell:$hidden has ${logged:-an unlogged number of} parameters, the formula" \
         "$expected: not the model the PyTorch side builds" >&2
    exit 1
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
    echo "$cell:$hidden|reel|$label|failed||||$precision" >>"$results"
    return
  fi
  echo "$cell:$hidden|reel|$label|$figures|$rss|$precision" >>"$results"
}

# torch_model_args CELL SIZE: the model options of bench/torch_classifiers.py for it
torch_model_args() { echo --cell "$1" --hidden "$2" --embed "$embed" --vocab "$vocab" --window "$window" --attention "$torch_attention"; }

# run_torch CELL HIDDEN LABEL ARGS...: one PyTorch layout.
run_torch() {
  local cell=$1 hidden=$2 label=$3; shift 3
  local tprec=fp32
  [ "$torch_bf16" = 0 ] || { tprec=bf16; set -- "$@" --bf16; }
  echo "PyTorch $cell $hidden $tprec: $label" >&2
  local out
  # shellcheck disable=SC2046 # the model's options are words without spaces
  if ! out=$("$PY" bench/torch_classifiers.py --data "$data" $(torch_model_args "$cell" "$hidden") \
      --batch "$batch" --steps "$steps" --warmup "$warmup" "$@" 2>"$work/torch.err"); then
    echo "bench/classifiers.sh: torch_classifiers.py failed:" >&2; tail -5 "$work/torch.err" >&2
    echo "$cell:$hidden|PyTorch|$label|failed||||$tprec" >>"$results"
    return
  fi
  local line
  line=$(echo "$out" | awk -v m="$cell:$hidden" -v l="$label" -v p="$tprec" -v n="$(params_of "$cell" "$hidden")" '/^RESULT/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      if (v["parameters"] != n) { printf "model|%s parameters, the formula %s\n", v["parameters"], n; exit }
      k = split(v["rss_kb"], r, ","); rss = ""
      for (i = 1; i <= k; i++) rss = rss (i > 1 ? "/" : "") sprintf("%.0f", r[i] / 1024)
      printf "%s|PyTorch|%s|%.4f|%.2f|%.0f|%s|%s\n", m, l, v["s_per_step"], v["reviews_per_s"], v["tokens_per_s"], rss, p
      printf "PyTorch window mean %s\n", v["window_mean"] > "/dev/stderr" }')
  case $line in
    model\|*) echo "bench/classifiers.sh: PyTorch's $cell:$hidden has ${line#model|}: not reel's model" >&2; exit 1 ;;
    "") echo "bench/classifiers.sh: torch_classifiers.py printed no RESULT line" >&2
        echo "$cell:$hidden|PyTorch|$label|failed||||$tprec" >>"$results" ;;
    *) echo "$line" >>"$results" ;;
  esac
}

# ---- both sides compute the same function ----
# model_check KIND: a small model of the kind (CNN: embeddings 16, 8 filters per width; Transformer: width
# 16, 2 blocks of 2 heads, context 64) is trained one step by reel on DATA, its parameters replaced by large
# random ones (N(0, 0.5), LayerNorm gains 1 + that, the output layer's weights x 40 so that the logits are
# in the hundreds: the loss is then nearly a sum of logits, each parameter moves it, and reel eval's 4
# decimals are 7 significant digits), and the mean loss of 100 training reviews cut to 64 tokens (the first
# 50 of each label, alternating) is computed by `reel eval` and by bench/torch_classifiers.py --check
# (every attention form for the Transformer). They must agree to float32 rounding: |difference| <= 5e-5
# (reel's printed rounding) + 2e-6 of the loss. Measured: the Transformer 47.7063 (reel) and 47.706261
# (both PyTorch forms), the CNN 342.0317 and 342.031708, within the printed rounding. PyTorch's exact GELU
# instead of the tanh form gave 47.712414, no key padding mask 47.679493, LayerNorm eps 1e-4 moved a
# similar check by 5e-3, the CNN's filter bank read filters-major 316.52.
check_data=""
make_check_data() {
  [ -z "$check_data" ] || return 0
  check_data=$work/check_data
  mkdir -p "$check_data"
  cp "$data/vocab.txt" "$check_data/"
  [ ! -f "$data/labels.txt" ] || cp "$data/labels.txt" "$check_data/"
  "$PY" - "$data/train.tok" "$check_data/test.tok" <<'PY'
import sys
import numpy as np
source, target = sys.argv[1], sys.argv[2]
raw = np.fromfile(source, dtype=np.uint8)
header = raw[:64].copy()
n = int(header[16:24].view(np.uint64)[0])
classes = int(header[36:40].view(np.uint32)[0])
if classes != 2:
    sys.exit(f"{source}: {classes} classes; the model check needs two")
starts = raw[64:64 + 8 * (n + 1)].view(np.uint64).astype(np.int64)
labels = raw[64 + 8 * (n + 1):64 + 8 * (n + 1) + 4 * n].view(np.int32)
ids = raw[64 + 8 * (n + 1) + 4 * n:].view(np.uint32)
picked = np.stack([np.flatnonzero(labels == 0)[:50], np.flatnonzero(labels == 1)[:50]], axis=1).reshape(-1)
if len(picked) != 100:
    sys.exit(f"{source}: fewer than 50 reviews of each label")
docs = [ids[starts[d]:starts[d] + min(starts[d + 1] - starts[d], 64)] for d in picked]
offsets = np.concatenate(([0], np.cumsum([len(d) for d in docs]))).astype(np.uint64)
header[16:24] = np.array([len(docs)], dtype=np.uint64).view(np.uint8)
header[24:32] = np.array([offsets[-1]], dtype=np.uint64).view(np.uint8)
with open(target, "wb") as f:
    for part in (header, offsets, labels[picked].astype(np.int32), np.concatenate(docs).astype(np.uint32)):
        f.write(part.tobytes())
PY
}

model_check() {
  local kind=$1 run=$work/check_$1 size shape
  case $kind in
    cnn) size=8 shape=(--embed 16) ;;
    transformer) size=16 shape=(--layers 2 --heads 2) ;;
  esac
  echo "checking that bench/torch_classifiers.py computes reel's $kind" >&2
  make_check_data
  {
    printf '[data]\ndir = %s\nseq_len = 64\n[model]\ntype = %s\nvocab_size = %s\n' "$data" "$kind" "$vocab"
    case $kind in
      cnn) printf 'embed_dim = 16\nwidths = 3,4,5\nfilters = 8\ndropout = 0\n' ;;
      transformer) printf 'embed_dim = 16\nnum_layers = 2\nnum_heads = 2\nmax_context = 64\npooling = mean\ndropout = 0\n' ;;
    esac
    printf '[optimizer]\ntype = adam\n[train]\nbatch_size = 8\nmax_steps = 1\n[checkpoint]\nkeep_best = false\n'
  } >"$run.ini"
  if ! "$REEL" train "$run.ini" --no-resume --run-dir "$run" >"$run.log" 2>&1; then
    echo "bench/classifiers.sh: reel train of the $kind check model failed:" >&2; tail -5 "$run.log" >&2; exit 1
  fi
  local expected
  if [ "$kind" = cnn ]; then expected=$(params_of cnn 8 16); else expected=$(params_of transformer 16 16 2 64); fi
  [ "$(reel_parameters "$run.log")" = "$expected" ] ||
    { echo "bench/classifiers.sh: reel's $kind check model has $(reel_parameters "$run.log") parameters, the formula $expected" >&2; exit 1; }
  "$PY" - "$run/ckpt_00000001.h5" <<'PY'
import sys
import h5py
import numpy as np
rng = np.random.default_rng(7)
def replace(name, dataset):
    if isinstance(dataset, h5py.Dataset):
        value = rng.normal(0.0, 0.5, dataset.shape)
        if name.split("/")[-2:-1] in (["ln1"], ["ln2"], ["final_ln"]) and name.endswith("/weight"):
            value += 1.0
        if name == "output/weight":
            value *= 40.0
        dataset[...] = value.astype(np.float32)
with h5py.File(sys.argv[1], "r+") as f:
    f["model"].visititems(replace)
PY
  local reel_loss torch_loss attention
  reel_loss=$("$REEL" eval "$run/ckpt_00000001.h5" --data "$check_data" --split test 2>"$run.err" | awk '$1 == "loss" { print $2 }') || true
  [ -n "$reel_loss" ] || { echo "bench/classifiers.sh: reel eval of the $kind check model printed no loss:" >&2; tail -5 "$run.err" >&2; exit 1; }
  for attention in $([ "$kind" = transformer ] && echo matmul layer || echo -); do
    # shellcheck disable=SC2046
    torch_loss=$("$PY" bench/torch_classifiers.py --data "$data" --cell "$kind" --hidden "$size" "${shape[@]}" \
                 --vocab "$vocab" --window 64 $([ "$attention" = - ] || echo --attention "$attention") \
                 --check "$run/ckpt_00000001.h5" "$check_data/test.tok" --check-docs 100 --check-tokens 64 2>"$run.err" |
                 sed -n 's/^CHECK loss=\([^ ]*\) .*/\1/p') || true
    [ -n "$torch_loss" ] || { echo "bench/classifiers.sh: torch_classifiers.py --check ($kind) failed:" >&2; tail -5 "$run.err" >&2; exit 1; }
    if ! awk -v a="$reel_loss" -v b="$torch_loss" 'BEGIN { d = a - b; l = 5e-5 + 2e-6 * (b < 0 ? -b : b); exit !(d <= l && -d <= l) }'; then
      echo "bench/classifiers.sh: PyTorch's $kind$([ "$attention" = - ] || echo " ($attention)") is not reel's: on the same" \
           "parameters and reviews reel eval gives the loss $reel_loss, bench/torch_classifiers.py $torch_loss" \
           "(the limit: 5e-5 + 2e-6 of the loss apart)" >&2
      exit 1
    fi
    echo "model check $kind$([ "$attention" = - ] || echo " ($attention)"): loss $reel_loss (reel eval) and $torch_loss (PyTorch) on the same parameters" >>"$work/check.txt"
  done
  rm -rf "$run"
}

if [ "$torch" = 1 ] && [ "$check" = 1 ]; then
  for kind in cnn transformer; do
    [[ ",$models," != *",$kind:"* ]] || model_check "$kind"
  done
fi

for model in "${model_list[@]}"; do
  cell=${model%%:*} hidden=${model#*:}
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

# the raw rows (MODEL|IMPL|LAYOUT|S_PER_STEP|REVIEWS_PER_S|TOKENS_PER_S|RSS|PRECISION) for a script that
# compares runs
[ -z "${RESULTS_OUT:-}" ] || cp "$results" "$RESULTS_OUT"
attention_note=""
[[ ",$models," != *,transformer:* ]] || attention_note=", PyTorch's Transformer attention: $torch_attention"
echo
echo "== $(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) cores; window $window, batch $batch, embed $embed, vocab $vocab; $steps timed steps after $warmup warm-up;" \
     "PyTorch $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo '(none)')$attention_note"
echo "   mean window tokens per review over $data/train.tok: $window_mean (reel's tokens/s = reviews/s x this)"
[ ! -s "$work/check.txt" ] || cat "$work/check.txt"
awk -F'|' '
  { row[NR] = $0; if ($2 == "PyTorch" && $4 != "failed" && $5 > best[$1, $8]) best[$1, $8] = $5 }
  END {
    printf "%-16s %-8s %-5s %-28s %9s %10s %10s %14s %14s\n", "model", "impl", "prec", "layout", "s/step", "reviews/s",
           "tokens/s", "peak RSS MB", "vs PyTorch"
    for (i = 1; i <= NR; i++) {
      split(row[i], f, "|")
      if (f[4] == "failed") { printf "%-16s %-8s %-5s %-28s %9s\n", f[1], f[2], f[8], f[3], "failed"; continue }
      # against the best PyTorch layout in the same precision, else in the other (named)
      ratio = ""
      if (f[2] == "reel") {
        other = f[8] == "fp32" ? "bf16" : "fp32"
        if (best[f[1], f[8]] > 0) ratio = sprintf("%.2fx", f[5] / best[f[1], f[8]])
        else if (best[f[1], other] > 0) ratio = sprintf("%.2fx (%s)", f[5] / best[f[1], other], other)
      }
      printf "%-16s %-8s %-5s %-28s %9.3f %10.1f %10.0f %14s %14s\n", f[1], f[2], f[8], f[3], f[4], f[5], f[6], f[7], ratio
    }
  }' "$results"
