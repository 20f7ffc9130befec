# More than two classes: K logits with softmax cross-entropy, for the bag-of-words and the LSTM models,
# from a TSV corpus with three labels through prep, training, evaluation and inspection.
source "$(dirname "$0")/lib.sh"

reel synth --docs 2400 --test-docs 600 --seed 3 "$WORK/two_train.tsv" "$WORK/two_test.tsv" >/dev/null
# every third review becomes class "mixed", marked by a word the other classes never use
for split in train test; do
  awk -F'\t' 'BEGIN { OFS = "\t" } NR == 1 { print; next } NR % 3 == 0 { print "mixed", $2 " lukewarm lukewarm"; next } { print }' \
    "$WORK/two_$split.tsv" >"$WORK/three_$split.tsv"
done
expect_ok "prep of a 3-class corpus" reel prep --format tsv --test "$WORK/three_test.tsv" --valid-count 400 \
  --vocab-size 600 "$WORK/three_train.tsv" "$WORK/data"
[ "$(tr '\n' ' ' <"$WORK/data/labels.txt")" = "mixed neg pos " ] && pass "labels mixed, neg, pos" || fail "labels.txt"

write_small_config "$WORK/bow.ini" "$WORK/data"
expect_ok "bow, 3 classes, 2 ranks" mpireel 2 train "$WORK/bow.ini" --run-dir "$WORK/bow" --set train.epochs=8
grep -q "num_classes = 3" "$WORK/bow/config.ini" && pass "num_classes taken from the data" || fail "num_classes not recorded"
valid=$(grep -o 'valid: loss [0-9.]* accuracy [0-9.]*' "$WORK/out.txt" | tail -1 | awk '{print $5}')
# chance is 1/3; after 8 epochs this small model reaches about 82% (the two-class corpus alone: ~70% after 3)
awk -v a="$valid" 'BEGIN { exit !(a >= 75) }' && pass "3-class validation accuracy $valid%" || fail "3-class accuracy '$valid'"
grep -q "macro precision" "$WORK/out.txt" && pass "macro metrics reported" || fail "no macro metrics"
expect_ok "inspect" reel inspect "$WORK/bow/ckpt_00000160.h5"
grep -Eq "/model/output/weight +\[3, 24\]" "$WORK/out.txt" && pass "three logits" || fail "output layer shape"
expect_ok "eval" reel eval "$WORK/bow/ckpt_best.h5"
grep -q "^summary .*macro precision.*(3 classes)" "$WORK/out.txt" && pass "eval reports 3 classes" || fail "eval output"
expect_fail "num_classes that contradicts the data" "has 3 classes, but \[model\] num_classes = 2" \
  reel train "$WORK/bow.ini" --run-dir "$WORK/bad" --set model.num_classes=2

# The LSTM reads whole reviews: the class's marker is at the end of reviews of up to 200 words, which
# the small configuration's cut (60 tokens) and training windows (24) would hide. One layer of 16 without
# dropout learns it within 2 epochs: measured, 66.67% on test after 4 (every "mixed" review found, the
# sentiment of the others, weaker in this corpus, not yet), where chance is 33.3% and a model that has
# not learnt the marker stays at 31-36% (measured with the dropouts on, or after 1 epoch). 55% is a
# margin no such model reaches.
write_small_lstm_config "$WORK/lstm.ini" "$WORK/data"
lstm=(--set train.epochs=4 --set data.seq_len=0 --set data.max_tokens=0 --set model.num_layers=1 --set model.embed_dim=16
      --set model.hidden_dim=16 --set model.rnn_batch_norm=false --set model.rnn_dropout=0 --set model.embed_dropout=0
      --set model.dropout=0 --set optimizer.lr=0.02)
expect_ok "lstm, 3 classes, 2 ranks" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/lstm" "${lstm[@]}"
final=$(grep -o 'final test accuracy: [0-9.]*%' "$WORK/out.txt" | grep -o '[0-9.]*')
awk -v a="$final" 'BEGIN { exit !(a >= 55) }' && pass "3-class lstm: test accuracy $final% (chance 33.3%)" \
  || fail "3-class lstm: test accuracy '$final%' (expected >= 55%)"
grep -q "^test: .*(3 classes)$" "$WORK/out.txt" && pass "3-class lstm: the test evaluation reports 3 classes" \
  || fail "3-class lstm: $(grep '^test:' "$WORK/out.txt")"
expect_ok "inspect the lstm" reel inspect "$WORK/lstm/ckpt_00000080.h5"
grep -Eq "/model/output/weight +\[3, 8\]" "$WORK/out.txt" && pass "3-class lstm: three logits (from the head of 8)" || fail "3-class lstm: output layer shape"
expect_ok "eval of the lstm" reel eval "$WORK/lstm/ckpt_00000080.h5" --split test
grep -q "^summary .*accuracy $final% .*(3 classes)$" "$WORK/out.txt" \
  && pass "3-class lstm: eval of the last checkpoint reproduces the run's test accuracy" \
  || fail "3-class lstm: eval says $(grep '^summary' "$WORK/out.txt"), the run $final%"
finish
