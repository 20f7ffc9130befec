# The gradient exchange: the library check against one all-reduce (tests/exchange_check.c, 2 and 3
# ranks), then whole training runs with buckets overlapped with the backward and the embedding as rows:
# on 2 ranks bit-identical to the plain exchange for classifiers, the language model, frozen layers with
# gradual unfreezing and adversarial training; on 3 ranks within float rounding; and a resumed run with
# both equal to an uninterrupted one bit for bit.
source "$(dirname "$0")/lib.sh"

for np in 2 3; do
  if "$MPIEXEC" -np "$np" --oversubscribe "$EXCHANGE_CHECK" >"$WORK/check$np.txt" 2>&1; then
    pass "exchange_check on $np ranks: $(grep -c '^ok' "$WORK/check$np.txt") cases"
  else fail "exchange_check on $np ranks"; cat "$WORK/check$np.txt" >&2; fi
done

make_small_data "$WORK/data" 2500
write_small_lstm_config "$WORK/lstm.ini" "$WORK/data"
steps=(--set train.max_steps=15)
# the runs differ in how gradients are exchanged, which is what must not change the result
exchange=(--ignore /config:train.exchange_embedding --ignore /config:train.bucket_mb)
same() { "$CKPT_COMPARE" "$1" "$2" --exact "${exchange[@]}" >/dev/null; }
close() { "$CKPT_COMPARE" "$1" "$2" --tol 1e-4 "${exchange[@]}" >/dev/null; }

expect_ok "plain exchange, 2 ranks" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/plain2" "${steps[@]}" --set train.exchange_embedding=dense
expect_ok "plain exchange, 3 ranks" mpireel 3 train "$WORK/lstm.ini" --run-dir "$WORK/plain3" "${steps[@]}" --set train.exchange_embedding=dense
for mode in auto sparse; do for mb in 0 0.001; do
  expect_ok "2 ranks, embedding $mode, buckets $mb MB" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/x2_${mode}_$mb" "${steps[@]}" \
    --set train.exchange_embedding=$mode --set train.bucket_mb=$mb
  same "$WORK/plain2/ckpt_00000015.h5" "$WORK/x2_${mode}_$mb/ckpt_00000015.h5" \
    && pass "2 ranks, embedding $mode, buckets $mb MB: bit-identical to the plain exchange" || fail "2 ranks, $mode, $mb: differs"
  expect_ok "3 ranks, embedding $mode, buckets $mb MB" mpireel 3 train "$WORK/lstm.ini" --run-dir "$WORK/x3_${mode}_$mb" "${steps[@]}" \
    --set train.exchange_embedding=$mode --set train.bucket_mb=$mb
  close "$WORK/plain3/ckpt_00000015.h5" "$WORK/x3_${mode}_$mb/ckpt_00000015.h5" \
    && pass "3 ranks, embedding $mode, buckets $mb MB: within float rounding of the plain exchange" || fail "3 ranks, $mode, $mb: differs"
done; done
grep -q "gradient exchange: .* of [0-9]* buckets started during the backward; the embedding as rows in 15 of 15 steps" "$WORK/out.txt" \
  && pass "the log counts the overlapped buckets and the steps that sent rows" || fail "no exchange summary: $(grep 'gradient exchange' "$WORK/out.txt")"
# The model reports its finished layers through the hooks the trainer puts in the parameter store;
# without them every bucket would wait for the end of the backward (and the results stay the same).
all_early() {
  local n; n=$(sed -n 's/.* \([0-9]*\) of \([0-9]*\) buckets started during the backward.*/\1 \2/p' "$WORK/out.txt")
  [ -n "$n" ] && [ "${n% *}" = "${n#* }" ] && [ "${n% *}" -gt 0 ]
}
all_early && pass "3 ranks, LSTM: every bucket started during the backward" \
  || fail "3 ranks, LSTM: not every bucket started during the backward: $(grep 'gradient exchange' "$WORK/out.txt")"

# auto decides each step from the rows the ranks touched: rows when all-gathering them moves fewer bytes
# than all-reducing the table (total rows x (D + 1) < 2 V D), else the table. Two runs where the answer is
# certain: 6 documents a step, each read as a window of 24 tokens, touch at most 3 x 48 rows of the 600
# (144 x 9 = 1,296 < 2 x 600 x 8 = 9,600 floats), so every step must go as rows; whole documents that
# each hold all 40 words of a 43-entry vocabulary make every rank touch at least 40 rows (3 x 40 x 9 =
# 1,080 >= 2 x 43 x 8 = 688), so no step may. (Embedding dropout is off there: a word type dropped from a
# rank's batch would leave its row untouched.)
summary() { grep "gradient exchange:" "$WORK/out.txt"; }
all_reduced() { summary | sed -n 's/.*gradient exchange: \([0-9.]*\) MB all-reduced per step.*/\1/p'; }
few=(--set train.batch_size=6 --set train.max_steps=15)
expect_ok "auto, 6 documents a step" mpireel 3 train "$WORK/lstm.ini" --run-dir "$WORK/few_auto" "${few[@]}"
few_auto=$(summary) few_auto_mb=$(all_reduced)
expect_ok "dense, 6 documents a step" mpireel 3 train "$WORK/lstm.ini" --run-dir "$WORK/few_dense" "${few[@]}" \
  --set train.exchange_embedding=dense
few_dense=$(summary) few_dense_mb=$(all_reduced)
grep -q "the embedding as rows in 15 of 15 steps" <<<"$few_auto" && pass "auto, few rows touched: rows in every step" \
  || fail "auto, few rows touched: not rows in every step: '$few_auto'"
grep -q "as rows" <<<"$few_dense" && fail "forced dense sent rows: '$few_dense'" || pass "forced dense: no rows"
[ -n "$few_dense_mb" ] && [ -n "$few_auto_mb" ] && awk -v a="$few_auto_mb" -v d="$few_dense_mb" 'BEGIN { exit !(a < d) }' \
  && pass "auto all-reduced less than dense ($few_dense_mb MB a step) when sending rows" \
  || fail "auto sending rows all-reduced as much as dense: '$few_auto' vs '$few_dense'"
close "$WORK/few_dense/ckpt_00000015.h5" "$WORK/few_auto/ckpt_00000015.h5" \
  && pass "auto as rows within float rounding of dense on 3 ranks" || fail "auto as rows differs from dense"

python3 - "$WORK/every.tsv" <<'PY'
import random, sys
rng = random.Random(4)
words = [a + b for a in "bdfgklmnpr" for b in "aeio"]  # 40 words, each a token of its own
with open(sys.argv[1], "w") as f:
    f.write("label\ttext\n")
    for i in range(300):
        rng.shuffle(words)
        f.write(("pos" if i % 2 else "neg") + "\t" + " ".join(words) + "\n")
PY
reel prep --format tsv --valid-count 30 "$WORK/every.tsv" "$WORK/every" >/dev/null
[ "$(wc -l <"$WORK/every/vocab.txt")" -eq 43 ] && pass "every document holds all 40 words (vocabulary of 43)" \
  || fail "the all-words corpus has $(wc -l <"$WORK/every/vocab.txt") vocabulary entries, not 43"
many=(--set data.dir="$WORK/every" --set data.seq_len=0 --set model.embed_dropout=0 --set train.batch_size=30 --set train.max_steps=15)
expect_ok "auto, every word in every document" mpireel 3 train "$WORK/lstm.ini" --run-dir "$WORK/many_auto" "${many[@]}"
many_auto=$(summary)
expect_ok "dense, every word in every document" mpireel 3 train "$WORK/lstm.ini" --run-dir "$WORK/many_dense" "${many[@]}" \
  --set train.exchange_embedding=dense
expect_ok "sparse, every word in every document" mpireel 3 train "$WORK/lstm.ini" --run-dir "$WORK/many_sparse" "${many[@]}" \
  --set train.exchange_embedding=sparse
grep -q "as rows" <<<"$many_auto" && fail "auto sent rows where the table is cheaper: '$many_auto'" \
  || pass "auto, every row touched: the table in every step"
grep -q "the embedding as rows in 15 of 15 steps" "$WORK/out.txt" && pass "forced sparse: rows even then" \
  || fail "forced sparse: $(summary)"
same "$WORK/many_dense/ckpt_00000015.h5" "$WORK/many_auto/ckpt_00000015.h5" \
  && pass "auto choosing the table: bit-identical to dense" || fail "auto choosing the table differs from dense"

# resumed with buckets and rows: bit for bit, on the same 3 ranks
both=(--set train.exchange_embedding=sparse --set train.bucket_mb=0.001)
expect_ok "3 ranks to step 6" mpireel 3 train "$WORK/lstm.ini" --run-dir "$WORK/resumed" --set train.max_steps=6 "${both[@]}"
expect_ok "resumed to 15" mpireel 3 train "$WORK/lstm.ini" --run-dir "$WORK/resumed" "${steps[@]}" "${both[@]}"
same "$WORK/x3_sparse_0.001/ckpt_00000015.h5" "$WORK/resumed/ckpt_00000015.h5" && pass "resume with buckets and rows: bit for bit" \
  || fail "the resumed run differs"

# the language model (its decoder's bucket goes first), frozen layers released one by one, adversarial training
write_small_lm_config "$WORK/lm.ini" "$WORK/data" stream
expect_ok "LM, plain" mpireel 2 train "$WORK/lm.ini" --run-dir "$WORK/lm_plain" --set train.max_steps=12
expect_ok "LM, buckets" mpireel 2 train "$WORK/lm.ini" --run-dir "$WORK/lm_buckets" --set train.max_steps=12 --set train.bucket_mb=0.001
all_early && pass "LM: every bucket started during the backward" \
  || fail "LM: not every bucket started during the backward: $(grep 'gradient exchange' "$WORK/out.txt")"
same "$WORK/lm_plain/ckpt_00000012.h5" "$WORK/lm_buckets/ckpt_00000012.h5" && pass "LM with buckets: bit-identical" || fail "LM with buckets differs"
frozen=(--set optimizer.freeze=embedding,lstm_l0,batchnorm_l0 --set optimizer.unfreeze_every=5 --set optimizer.unfreeze_unit=steps)
expect_ok "frozen, plain" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/fz_plain" "${steps[@]}" "${frozen[@]}"
expect_ok "frozen, buckets and rows" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/fz_x" "${steps[@]}" "${frozen[@]}" "${both[@]}"
same "$WORK/fz_plain/ckpt_00000015.h5" "$WORK/fz_x/ckpt_00000015.h5" && pass "gradual unfreezing with buckets and rows: bit-identical" \
  || fail "gradual unfreezing with buckets differs"
adv=(--set objective.adversarial=1 --set objective.adversarial_epsilon=0.05)
expect_ok "adversarial, plain" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/adv_plain" "${steps[@]}" "${adv[@]}"
expect_ok "adversarial, buckets and rows" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/adv_x" "${steps[@]}" "${adv[@]}" "${both[@]}"
same "$WORK/adv_plain/ckpt_00000015.h5" "$WORK/adv_x/ckpt_00000015.h5" \
  && pass "adversarial training (two backward passes: the exchange waits for both): bit-identical" || fail "adversarial with buckets differs"
expect_fail "a bad exchange_embedding" "exchange_embedding = 'rows': expected one of auto, dense, sparse" \
  reel train "$WORK/lstm.ini" --set train.exchange_embedding=rows
finish
