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
