# reel eval --lengths: a unidirectional recurrent classifier reads each review once for every length
# (its state after L tokens does not depend on what follows); the table must be the same as one pass per
# length (--separate), for every pooling (max, mean, last), every cell, 1 and 2 ranks; a bidirectional
# model falls back to a pass per length. The Transformer classifier reads each review's windows of
# max_context tokens once for every length (the windows wholly inside a cut are the whole review's; a cut's
# partial last window is read off the whole window's rows when causal, and is one more short sequence of
# the same pass when bidirectional): with max_context 16, lengths inside windows, on their boundaries,
# past every review and full must give the table of a pass per length too, on 1 and 2 ranks.
source "$(dirname "$0")/lib.sh"

make_small_data "$WORK/data" 2500
lengths=10,25,60,full
config() { # config FILE CELL POOLING BIDIRECTIONAL
  cat >"$1" <<INI
[data]
dir = $WORK/data
seq_len = 30
[model]
type = $2
vocab_size = 600
embed_dim = 12
hidden_dim = 12
num_layers = 2
pooling = $3
bidirectional = $4
rnn_batch_norm = true
head_hidden = 8
[optimizer]
lr = 0.01
[train]
epochs = 2
batch_size = 100
log_every = 50
seed = 5
INI
}
table() { grep -v " lengths in " "$1"; }
for variant in lstm:max gru:mean rnn:last; do
  cell=${variant%%:*} pooling=${variant##*:}
  config "$WORK/$cell.ini" "$cell" "$pooling" false
  expect_ok "train a $cell with $pooling pooling" mpireel 2 train "$WORK/$cell.ini" --run-dir "$WORK/$cell"
  ckpt="$WORK/$cell/ckpt_best.h5"
  for np in 1 2; do
    expect_ok "$cell: one pass, $np rank(s)" mpireel "$np" eval "$ckpt" --lengths $lengths
    cp "$WORK/out.txt" "$WORK/one.txt"
    grep -q "4 lengths in .* (one pass over the documents)" "$WORK/one.txt" && pass "$cell: one pass was taken" \
      || fail "$cell: not one pass: $(tail -1 "$WORK/one.txt")"
    expect_ok "$cell: a pass per length, $np rank(s)" mpireel "$np" eval "$ckpt" --lengths $lengths --separate
    if diff <(table "$WORK/one.txt") <(table "$WORK/out.txt") >/dev/null; then
      pass "$cell, $pooling pooling, $np rank(s): the same table as a pass per length"
    else fail "$cell: the tables differ"; diff <(table "$WORK/one.txt") <(table "$WORK/out.txt") >&2; fi
  done
  # and a single length as eval has always computed it: its summary (loss, accuracy, precision, recall,
  # F1, macro F1) must be the table's row; both must be there, since two empty rows would agree
  expect_ok "$cell: length 25 alone" reel eval "$ckpt" --lengths 25 --separate
  alone=$(sed -n 's/^summary *loss \([^ ]*\) accuracy \([^ ]*\) precision \([^ ]*\) recall \([^ ]*\) F1 \([^ ]*\) macro F1 \([^ ]*\) .*/\1 \2 \3 \4 \5 \6/p' \
    "$WORK/out.txt")
  in_table=$(awk '$1 == 25 { print $2, $3, $4, $5, $6, $7 }' "$WORK/one.txt")
  if [ -z "$alone" ] || [ -z "$in_table" ]; then
    fail "$cell: length 25: a row is missing (table: '$in_table', alone: '$alone')"; sed 's/^/    /' "$WORK/out.txt" >&2
  elif [ "$in_table" = "$alone" ]; then pass "$cell: length 25 agrees with its own evaluation ($alone)"
  else fail "$cell: length 25: '$in_table' in the table vs '$alone' alone"; fi
done

# the Transformer classifier, causal and bidirectional, reviews of several windows of 16 tokens; trained
# to about 65% (at chance, small differences of its features would not show in the table's digits)
xf_lengths=8,16,20,32,45,1000,full
for causal in true false; do
  cat >"$WORK/xf_$causal.ini" <<INI
[data]
dir = $WORK/data
seq_len = 16
[model]
type = transformer
vocab_size = 600
embed_dim = 16
num_layers = 2
num_heads = 2
max_context = 16
causal = $causal
pooling = concat
[optimizer]
type = adam
lr = 0.01
[train]
epochs = 20
batch_size = 100
log_every = 50
seed = 5
INI
  expect_ok "train a transformer, causal = $causal" mpireel 2 train "$WORK/xf_$causal.ini" --run-dir "$WORK/xf_$causal"
  ckpt="$WORK/xf_$causal/ckpt_best.h5"
  for np in 1 2; do
    expect_ok "transformer, causal = $causal: one pass, $np rank(s)" mpireel "$np" eval "$ckpt" --lengths $xf_lengths
    cp "$WORK/out.txt" "$WORK/one.txt"
    grep -q "7 lengths in .* (one pass over the documents)" "$WORK/one.txt" \
      && pass "transformer, causal = $causal: one pass was taken" \
      || fail "transformer, causal = $causal: not one pass: $(tail -1 "$WORK/one.txt")"
    expect_ok "transformer, causal = $causal: a pass per length, $np rank(s)" mpireel "$np" eval "$ckpt" \
      --lengths $xf_lengths --separate
    if diff <(table "$WORK/one.txt") <(table "$WORK/out.txt") >/dev/null; then
      pass "transformer, causal = $causal, $np rank(s): the same table as a pass per length"
    else fail "transformer, causal = $causal: the tables differ"; diff <(table "$WORK/one.txt") <(table "$WORK/out.txt") >&2; fi
  done
  # the cuts cut: a length inside the reviews' first window scores otherwise than whole reviews
  short=$(awk '$1 == 8 { print $2, $3 }' "$WORK/one.txt") whole=$(awk '$1 == "full" { print $2, $3 }' "$WORK/one.txt")
  [ -n "$short" ] && [ -n "$whole" ] && [ "$short" != "$whole" ] \
    && pass "transformer, causal = $causal: length 8 ($short) differs from full ($whole)" \
    || fail "transformer, causal = $causal: length 8 '$short' vs full '$whole'"
done

config "$WORK/bi.ini" lstm max true
expect_ok "train a bidirectional LSTM" mpireel 2 train "$WORK/bi.ini" --run-dir "$WORK/bi"
expect_ok "bidirectional: eval" mpireel 2 eval "$WORK/bi/ckpt_best.h5" --lengths $lengths
grep -q "4 lengths in .* (a pass per length)" "$WORK/out.txt" && pass "a bidirectional model reads each length on its own" \
  || fail "bidirectional: $(tail -1 "$WORK/out.txt")"
finish
