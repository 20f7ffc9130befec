# Bad input that used to give unhelpful errors (issue 17, section 5): a binary file given where reel reads
# text, or text where it reads binary, is reported with the file's bytes escaped ("\x89HDF"), never raw;
# a configuration whose sizes need more memory than the machine has names the keys behind the size.
source "$(dirname "$0")/lib.sh"
require_h5py # it writes damaged checkpoints and metrics files

make_small_data "$WORK/data" 600
write_small_config "$WORK/small.ini" "$WORK/data"
expect_ok "train a checkpoint to misuse" reel train "$WORK/small.ini" --run-dir "$WORK/run" --set train.epochs=1
ckpt="$WORK/run/ckpt_best.h5"

# expect_escaped "what" "text the error must contain (fixed string)" command...: the command fails, its
# stderr contains the text, and no raw control byte or byte above 0x7e (the inputs hold no UTF-8 text).
expect_escaped() {
  local what=$1 text=$2; shift 2
  local status=0
  "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" || status=$?
  if [ "$status" -eq 0 ]; then fail "$what: expected failure, got success"; return; fi
  if LC_ALL=C grep -qP '[\x00-\x08\x0e-\x1f\x7f-\xff]' "$WORK/err.txt"; then
    fail "$what: raw bytes in the message: $(LC_ALL=C grep -P '[\x00-\x08\x0e-\x1f\x7f-\xff]' "$WORK/err.txt" | od -c | head -5)"
  elif grep -qF -- "$text" "$WORK/err.txt"; then pass "$what"
  else fail "$what: stderr lacks '$text':"; sed 's/^/    /' "$WORK/err.txt" >&2; fi
}
# copy_data NAME: a copy of the prepared data to spoil one file of
copy_data() { rm -rf "$WORK/$1"; cp -r "$WORK/data" "$WORK/$1"; }

# a checkpoint given as the configuration: its first line is quoted escaped
expect_escaped "a checkpoint as the configuration" \
  "ckpt_best.h5:1: syntax error: expected 'key = value', '[section]' or a comment, found '\\x89HDF'" \
  reel train "$ckpt"
# ... as the vocabulary
copy_data vocab_is_ckpt
cp "$ckpt" "$WORK/vocab_is_ckpt/vocab.txt"
expect_escaped "a checkpoint as the vocabulary" \
  "vocab.txt: line 1: expected <token> TAB <count>, found no TAB in '\\x89HDF\\r'" \
  reel train "$WORK/small.ini" --set "data.dir=$WORK/vocab_is_ckpt"
# ... as a token file, and a token file of other bytes: the magic found is shown
copy_data tok_is_ckpt
cp "$ckpt" "$WORK/tok_is_ckpt/train.tok"
expect_escaped "a checkpoint as a token file" \
  'train.tok: byte offset 0: bad magic "\x89HDF\r\n\x1a\n", expected "REELTOK\0"' \
  reel train "$WORK/small.ini" --set "data.dir=$WORK/tok_is_ckpt"
copy_data tok_garbage
{ printf 'PK\x03\x04\x14\x00\xff\x7f'; head -c 4000 "$WORK/data/train.tok" | tail -c 3000; } >"$WORK/tok_garbage/train.tok"
expect_escaped "a token file of garbage" \
  'train.tok: byte offset 0: bad magic "PK\x03\x04\x14\x00\xff\x7f", expected "REELTOK\0"' \
  reel train "$WORK/small.ini" --set "data.dir=$WORK/tok_garbage"
# a vocabulary count and a configuration value of control bytes
copy_data vocab_count
python3 - "$WORK/vocab_count/vocab.txt" <<'PY'
import sys
lines = open(sys.argv[1], "rb").read().split(b"\n")
lines[5] = lines[5].split(b"\t")[0] + b"\t1\x1b[31m2\xfe"
open(sys.argv[1], "wb").write(b"\n".join(lines))
PY
expect_escaped "a vocabulary count with an escape sequence" \
  "vocab.txt: line 6: count '1\\x1b[31m2\\xfe' is not a decimal number" \
  reel train "$WORK/small.ini" --set "data.dir=$WORK/vocab_count"
printf '[optimizer]\nlr = 0.1\x08\x7f\n' >"$WORK/control.ini"
sed -n '/^\[data\]/,/^\[optimizer\]/p' "$WORK/small.ini" | grep -v '^\[optimizer\]' >"$WORK/control_head.ini"
cat "$WORK/control_head.ini" "$WORK/control.ini" >"$WORK/control_full.ini"
expect_escaped "a configuration value with control bytes" \
  "control_full.ini:11: [optimizer] lr = '0.1\\x08\\x7f': expected a number" \
  reel train "$WORK/control_full.ini"
# word vectors with a binary value, and a TSV whose header is binary
python3 - "$WORK/data/vocab.txt" "$WORK/vectors.txt" <<'PY'
import sys
word = open(sys.argv[1], encoding="utf-8").read().split("\n")[3].split("\t")[0]
open(sys.argv[2], "wb").write(word.encode() + b" " + b" ".join([b"0.5"] * 15) + b" 0.\x89\x01\n")
PY
expect_escaped "a word vector value of binary bytes" \
  "vectors.txt:1: value 16, '0.\\x89\\x01', is not a finite number" \
  reel train "$WORK/small.ini" --set "model.embed_from=$WORK/vectors.txt"
printf '\x89HDF\tlabel\nsome text\tpos\n' >"$WORK/binary_header.tsv"
expect_escaped "a TSV whose header is binary (prep)" \
  "binary_header.tsv: line 1: no column named 'text' in the header '\\x89HDF\\tlabel'" \
  reel prep --format tsv "$WORK/binary_header.tsv" "$WORK/prep_out"
expect_escaped "a TSV whose header is binary (predict)" \
  "no column 'text' in the header (its columns: '\\x89HDF', 'label')" \
  reel predict "$ckpt" "$WORK/binary_header.tsv" --tsv
# a checkpoint whose model type (an HDF5 attribute) holds control bytes, as a damaged file might
cp "$ckpt" "$WORK/odd_type.h5"
"$H5PY_PYTHON" - "$WORK/odd_type.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs["model_type"] = np.bytes_(b"bow\x1b[2J\x07")
PY
printf 'a fine film\n' >"$WORK/one.txt"
expect_escaped "a checkpoint's model type with control bytes" \
  "odd_type.h5: the checkpoint holds a 'bow\x1b[2J\x07' model, the configuration describes a 'bow' model" \
  reel predict "$WORK/odd_type.h5" "$WORK/one.txt"
# a run directory whose metrics file has a foreign format attribute with control and non-UTF-8 bytes
cp -r "$WORK/run" "$WORK/odd_metrics"
"$H5PY_PYTHON" - "$WORK/odd_metrics/metrics.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs["format"] = np.bytes_(b"reel\x1b[31m\xff")
PY
expect_escaped "a metrics file whose format attribute holds control bytes" \
  "metrics.h5: not a reel metrics file (its root attribute format is 'reel\x1b[31m\xff', expected 'reel-metrics')" \
  reel train "$WORK/small.ini" --run-dir "$WORK/odd_metrics"

# sizes beyond the machine: the error names the tensor or buffer and the keys its size comes from, and
# comes before anything is allocated (an address-space limit makes the bound the same on every machine;
# a timeout, that nothing is touched on the way)
# expect_oom "what" "text (fixed string)" reel arguments...: status 1 (an error, not a crash) within 60 s
# AddressSanitizer reserves terabytes of address space at start, so under it (the sanitizer build) no
# address-space limit can be set: the bound is then the machine's memory and swap, and the checks that
# need a bound between the parameters and the optimizer's state cannot be made.
UNDER_ASAN=0
ldd "$REEL_BIN" 2>/dev/null | grep -q libasan && UNDER_ASAN=1
LIMIT_KB=4000000 LIMIT_TEXT="3.8 GiB"
expect_oom() {
  local what=$1 text=$2; shift 2
  local status=0 bound="(the address-space limit (ulimit -v) of $LIMIT_TEXT)"
  if [ "$UNDER_ASAN" = 1 ]; then
    if [ -n "${NEEDS_LIMIT:-}" ]; then echo "not checked under AddressSanitizer (needs ulimit -v): $what" >&2; return; fi
    bound="GiB of memory and swap)"
    timeout 60 "$REEL_BIN" "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" || status=$?
  else
    (ulimit -v "$LIMIT_KB"; timeout 60 "$REEL_BIN" "$@") >"$WORK/out.txt" 2>"$WORK/err.txt" || status=$?
  fi
  if [ "$status" -ne 1 ]; then fail "$what: exit status $status, expected 1"; sed 's/^/    /' "$WORK/err.txt" >&2
  elif ! grep -qF "${OUTCOME:-more than this machine can allocate} " "$WORK/err.txt" || ! grep -qF "$bound" "$WORK/err.txt"; then
    fail "$what: no machine bound in:"; sed 's/^/    /' "$WORK/err.txt" >&2
  elif grep -qF -- "$text" "$WORK/err.txt"; then pass "$what"
  else fail "$what: stderr lacks '$text':"; sed 's/^/    /' "$WORK/err.txt" >&2; fi
}
V=$(wc -l <"$WORK/data/vocab.txt") # the vocabulary in effect: the data's, smaller than [model] vocab_size
expect_oom "an absurd embedding (vocab_size x embed_dim > 10^12 floats)" \
  "[model] vocab_size x embed_dim = $V x 5000000000 = $((V * 5000000000)) floats" \
  train "$WORK/small.ini" --set model.embed_dim=5000000000
grep -qF "out of memory: the parameters and their gradients need 2 x " "$WORK/err.txt" \
  && grep -qF "floats for embedding/weight" <(sed 's/ ([0-9.]* GiB)//g' "$WORK/err.txt") \
  && pass "the message says what the floats are and which tensor" || fail "message: $(cat "$WORK/err.txt")"
grep -qF "hint: make [model] vocab_size x embed_dim smaller (the largest tensor, embedding/weight)" "$WORK/err.txt" \
  && pass "the hint names the keys" || fail "hint: $(grep hint "$WORK/err.txt")"
expect_oom "an absurd hidden layer" \
  "[model] hidden_dim x embed_dim = 100000000000 x 16 = 1600000000000 floats (5960.5 GiB) for hidden/weight" \
  train "$WORK/small.ini" --set model.hidden_dim=100000000000
expect_oom "an absurd batch (activations)" \
  "out of memory: the mean embeddings, sized by [train] batch_size (per rank) x [model] embed_dim, needs 160000000000 x 4 bytes (596.0 GiB)" \
  train "$WORK/small.ini" --set train.batch_size=10000000000
write_small_lm_config "$WORK/lm.ini" "$WORK/data"
expect_oom "an absurd recurrent layer (layer_dims)" \
  "(4 gates x [model] layer_dims item 2) x [model] layer_dims item 2 = 1200000000 x 300000000 = 360000000000000000 floats" \
  train "$WORK/lm.ini" --set model.layer_dims=12,300000000 --set model.weight_dropout=0
expect_oom "an absurd recurrent layer with weight_dropout (its copy of w_hh comes first)" \
  "out of memory: a copy of w_hh for weight_dropout, sized by (4 gates x [model] layer_dims item 2) x [model] layer_dims item 2, needs 360000000000000000 x 4 bytes" \
  train "$WORK/lm.ini" --set model.layer_dims=12,300000000
expect_oom "sizes whose product overflows" \
  "floats (68719476736.0 GiB)" \
  train "$WORK/small.ini" --set model.embed_dim=100000000000000 --set model.hidden_dim=100000000000000
# parameters and gradients that fit (2 x 350 M floats, 2.6 GiB, allocated but untouched) but not with
# Adam's two state buffers: the optimizer refuses before allocating them; SGD's one buffer fits, and the
# embedding exchange's copy of the embedding is what does not (alone it is below the bound, so the
# allocation is tried and fails)
LIMIT_KB=5000000 LIMIT_TEXT="4.8 GiB"
NEEDS_LIMIT=1 expect_oom "parameters that fit, but not with Adam's state" \
  "out of memory: the parameters, their gradients and adam's 2 state buffers need 4 x $((V * 700000 + 24 * 700000 + 73)) floats" \
  train "$WORK/small.ini" --set model.embed_dim=700000 --set train.batch_size=10
if [ "$UNDER_ASAN" = 0 ]; then
  grep -qF "the largest tensors: [model] vocab_size x embed_dim = $V x 700000" "$WORK/err.txt" \
    && pass "... naming the embedding" || fail "optimizer message: $(cat "$WORK/err.txt")"
fi
NEEDS_LIMIT=1 OUTCOME="the allocation failed" expect_oom "the embedding exchange's buffer (less than the bound alone)" \
  "out of memory: the packed rows of the embedding exchange, sized by [model] vocab_size x embed_dim, needs $((V * 700000)) x 4 bytes" \
  train "$WORK/small.ini" --set model.embed_dim=700000 --set train.batch_size=10 --set optimizer.type=sgd
finish
