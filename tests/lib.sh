# Shared helpers for the shell tests (sourced). CTest sets REEL_BIN, REEL_SOURCE_DIR, REEL_SHARED_DATA,
# MPIEXEC and the Open MPI variables; each test works in its own scratch directory.
set -euo pipefail
: "${REEL_BIN:?REEL_BIN must point at the reel program}"
TEST_NAME=$(basename "${BASH_SOURCE[1]}" .sh)
WORK="$PWD/work_$TEST_NAME"
rm -rf "$WORK" && mkdir -p "$WORK"
cd "$WORK"

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }
finish() {
  if [ "$failures" -ne 0 ]; then echo "$TEST_NAME: $failures check(s) failed" >&2; exit 1; fi
  echo "$TEST_NAME: all checks passed"
}

reel() { "$REEL_BIN" "$@"; }
mpireel() { local np=$1; shift; "$MPIEXEC" -np "$np" --oversubscribe "$REEL_BIN" "$@"; }

# expect_fail "what" "regex the error must match" command...: the command must exit non-zero and its
# stderr must match the regex (extended grep).
expect_fail() {
  local what=$1 pattern=$2; shift 2
  local status=0
  "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" || status=$?
  if [ "$status" -eq 0 ]; then fail "$what: expected failure, got success"; return; fi
  if grep -Eq -- "$pattern" "$WORK/err.txt"; then pass "$what"; else
    fail "$what: stderr does not match /$pattern/:"; sed 's/^/    /' "$WORK/err.txt" >&2; fi
}

# expect_ok "what" command...: the command must succeed.
expect_ok() {
  local what=$1; shift
  if "$@" >"$WORK/out.txt" 2>"$WORK/err.txt"; then pass "$what"; else
    fail "$what: exit status $?"; sed 's/^/    /' "$WORK/err.txt" >&2; fi
}

# H5PY_PYTHON: the interpreter with Debian's packages, where scripts/install-deps puts python3-h5py (a
# python3 earlier on PATH, a pyenv or a virtual environment, may lack it). Tests whose checks read HDF5
# files call require_h5py first: h5py is a requirement of theirs, not an option, so its absence fails
# the test loudly instead of passing it with those checks left out.
H5PY_PYTHON=/usr/bin/python3
require_h5py() {
  local why
  if ! why=$("$H5PY_PYTHON" -c "import h5py, numpy" 2>&1); then
    echo "FAIL: $TEST_NAME reads HDF5 files with h5py, but $H5PY_PYTHON cannot import it" \
      "(scripts/install-deps installs python3-h5py): ${why##*$'\n'}" >&2
    exit 1
  fi
}

# ini_get FILE KEY: the value of "KEY = value" in an INI file reel wrote (prep.ini, config.ini).
# wait_while_running PID CHECK...: runs CHECK (a command) every 20 ms until it succeeds or process PID
# has ended, however slow the machine; a cap of 10 minutes only keeps a hung launch from hanging the
# suite. Returns CHECK's success, so a caller that needs the condition can say which way it went.
wait_while_running() {
  local pid=$1 deadline=$((SECONDS + 600)); shift
  until "$@"; do
    kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}
ini_get() { awk -F' = ' -v key="$2" '$1 == key { print $2 }' "$1"; }

# check_eval_report OUT SPLIT DOCS: the classifier report of `reel eval` saved in OUT names the split's
# token file, its confusion counts cover the split's DOCS documents, and the accuracy it prints is the
# counts' (to the printed two decimals). Sets EVAL_ACC to the printed accuracy ("88.42%").
check_eval_report() {
  local out=$1 split=$2 docs=$3 tp fp tn fn
  grep -q "^checkpoint .*, split $split (.*/$split.tok)\$" "$out" && pass "eval names the $split split" \
    || fail "eval does not name the $split split: $(head -1 "$out")"
  read -r tp fp tn fn < <(awk '$1 ~ /^(tp|fp|tn|fn)$/ { v[$1] = $2 } END { print v["tp"], v["fp"], v["tn"], v["fn"] }' "$out")
  EVAL_ACC=$(grep -o '^accuracy *[0-9.]*%' "$out" | grep -o '[0-9.]*%' || true)
  [ $((tp + fp + tn + fn)) -eq "$docs" ] && grep -q "($docs reviews)\$" "$out" \
    && pass "eval counts the $docs documents of the $split split" || fail "eval's counts $tp+$fp+$tn+$fn, the $split split has $docs"
  [ "$(awk -v a=$((tp + tn)) -v n="$docs" 'BEGIN { printf "%.2f%%", 100 * a / n }')" = "$EVAL_ACC" ] \
    && pass "the accuracy ($EVAL_ACC) is that of the counts" || fail "accuracy $EVAL_ACC from counts $tp $fp $tn $fn"
}

# start_server NAME CHECKPOINT [options]: starts reel serve on a free loopback port (the port file it writes
# once listening); sets PORT and PID, and the test fails if it does not start. Every server started is
# killed when the test exits.
SERVER_PIDS=()
stop_servers() { for pid in "${SERVER_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; }
start_server() {
  local name=$1 ckpt=$2; shift 2
  [ ${#SERVER_PIDS[@]} -gt 0 ] || trap stop_servers EXIT
  rm -f "$WORK/$name.port"
  "$REEL_BIN" serve "$ckpt" --port 0 --port-file "$WORK/$name.port" "$@" 2>"$WORK/$name.log" &
  PID=$!
  SERVER_PIDS+=("$PID")
  for _ in $(seq 100); do [ -s "$WORK/$name.port" ] && break; sleep 0.1; done
  PORT=$(cat "$WORK/$name.port" 2>/dev/null || echo 0)
  [ "$PORT" -gt 0 ] || { fail "$name did not start"; cat "$WORK/$name.log" >&2; finish; }
}

# request METHOD PATH [BODY]: asks the server start_server started (PORT); prints the body, then the status
# on the last line
request() {
  if [ $# -ge 3 ]; then curl -s -w '\n%{http_code}' -X "$1" "http://127.0.0.1:$PORT$2" -H 'Content-Type: application/json' --data-binary "$3"
  else curl -s -w '\n%{http_code}' -X "$1" "http://127.0.0.1:$PORT$2"; fi
}
# expect_status WHAT STATUS REGEX METHOD PATH [BODY]
expect_status() {
  local what=$1 status=$2 pattern=$3; shift 3
  local answer code
  answer=$(request "$@")
  code=$(tail -1 <<<"$answer")
  # the body is matched without a pipe: grep -q leaves at its first match, and head, still writing a long
  # body (the page) into the closed pipe, would fail the check under pipefail
  if [ "$code" = "$status" ] && grep -Eq -- "$pattern" <<<"${answer%$'\n'*}"; then pass "$what ($code)"
  else fail "$what: expected $status and /$pattern/, got $code: $(head -n -1 <<<"$answer" | head -c 300)"; fi
}

# Real-data tests call this first: it exits 77 (CTest: skipped) with a clear message when the archive
# is absent.
require_imdb() {
  IMDB_ARCHIVE="$REEL_SHARED_DATA/aclImdb_v1.tar.gz"
  if [ ! -f "$IMDB_ARCHIVE" ]; then
    echo "SKIPPED: $IMDB_ARCHIVE is missing; real-data tests need the IMDb archive in ../shared/data" >&2
    exit 77
  fi
}

# make_small_data DIR [TRAIN_DOCS]: a synthetic labelled corpus prepared into DIR (vocabulary 600).
make_small_data() {
  local dir=$1 docs=${2:-2500}
  reel synth --docs "$docs" --test-docs 500 --seed 7 "$WORK/synth_train.tsv" "$WORK/synth_test.tsv" >/dev/null
  reel prep --format tsv --test "$WORK/synth_test.tsv" --valid-count 500 --vocab-size 600 \
    "$WORK/synth_train.tsv" "$dir" >/dev/null
}

# write_small_config FILE DATA_DIR: a small bag-of-words configuration that trains in seconds.
write_small_config() {
  cat >"$1" <<INI
[data]
dir = $2
[model]
type = bow
vocab_size = 600
embed_dim = 16
hidden_dim = 24
dropout = 0.5
batch_norm = true
[optimizer]
type = adam
lr = 0.01
[train]
epochs = 3
batch_size = 100
log_every = 5
seed = 5
[checkpoint]
keep_last = 100
INI
}

# write_small_lstm_config FILE DATA_DIR: a small 2-layer bidirectional LSTM with every option that draws
# random numbers or reduces across ranks (training windows, locked dropout, batch norm over valid steps,
# a hidden head with dropout), so rank-independence and resume are tested where they are hardest.
write_small_lstm_config() {
  cat >"$1" <<INI
[data]
dir = $2
seq_len = 24
max_tokens = 60
[model]
type = lstm
vocab_size = 600
embed_dim = 8
hidden_dim = 8
num_layers = 2
bidirectional = true
pooling = max
embed_dropout = 0.1
rnn_dropout = 0.2
rnn_batch_norm = true
head_hidden = 8
dropout = 0.3
[optimizer]
type = adam
lr = 0.01
clip_norm = 1.0
[train]
epochs = 2
batch_size = 100
log_every = 5
seed = 5
[checkpoint]
keep_last = 100
INI
}

# write_tiny_lm_config FILE DATA_DIR EPOCHS: a one-layer LSTM language model (width 32, no dropout or batch
# norm, vocabulary 100) that learns a tiny deterministic corpus in seconds, trained on windows, evaluated on
# the valid split. Callers may append further sections.
write_tiny_lm_config() {
  cat >"$1" <<INI
[data]
dir = $2
[model]
type = rnn_lm
vocab_size = 100
embed_dim = 16
hidden_dim = 32
num_layers = 1
rnn_batch_norm = false
rnn_dropout = 0
[objective]
sampler = window
eval_split = valid
[optimizer]
lr = 0.02
[train]
epochs = $3
batch_size = 20
log_every = 50
seed = 3
INI
}

# write_small_lm_config FILE DATA_DIR [SAMPLER]: a small 2-layer LSTM language model with every option
# that draws random numbers or reduces across ranks (locked, input, word and weight dropout, batch norm
# over valid steps, tied weights with a projection), so rank-independence and resume are tested where
# they are hardest. The default sampler is window; stream carries the state across windows.
write_small_lm_config() {
  cat >"$1" <<INI
[data]
dir = $2
seq_len = 12
[model]
type = rnn_lm
vocab_size = 600
embed_dim = 10
layer_dims = 12,8
rnn_batch_norm = true
rnn_dropout = 0.2
input_dropout = 0.1
word_dropout = 0.1
weight_dropout = 0.2
tie_weights = true
[objective]
sampler = ${3:-window}
eval_split = test
eval_docs = 100
[optimizer]
type = adam
lr = 0.01
clip_norm = 1.0
[train]
epochs = 2
batch_size = 50
log_every = 5
seed = 5
[checkpoint]
keep_last = 100
INI
}

# write_small_gpt_config FILE DATA_DIR [SAMPLER]: a tiny GPT (width 16, 2 blocks of 2 heads, context 32,
# dropout 0.1, so its masks must not depend on the ranks) that trains in seconds; the default sampler is
# window. Adam's eps is 1e-6, not its default 1e-8: with 1e-8, weights whose gradient is itself ~1e-8 (a sum
# of much larger terms that nearly cancel, so its rounding is a few 1e-3 of it) take normalised steps of
# lr x g / (|g| + eps) whose size follows that rounding, and runs on 1 and 2 ranks part by 2e-3 relative
# within 5 steps (measured with dropout 0.1; one SGD step agrees to 7e-7, so the masks and shares are the
# same): a comparison across world sizes would measure Adam's conditioning, not rank-independence.
write_small_gpt_config() {
  cat >"$1" <<INI
[data]
dir = $2
seq_len = 16
[model]
type = gpt
vocab_size = 600
embed_dim = 16
num_layers = 2
num_heads = 2
max_context = 32
dropout = 0.1
[objective]
sampler = ${3:-window}
eval_split = test
eval_docs = 100
[optimizer]
type = adam
lr = 0.01
eps = 1e-6
clip_norm = 1.0
weight_decay = 0.1
[train]
epochs = 2
batch_size = 50
log_every = 5
seed = 5
[checkpoint]
keep_last = 100
INI
}
