# [train] precision: the refusal on a CPU without native bf16 (forced with REEL_NO_BF16=1), auto's fallback,
# and, where the CPU has bf16, a bf16 run: it trains (its losses follow the fp32 run's), it really is
# another computation (its parameters differ from fp32's), its kept weight copies change nothing, it
# resumes bit for bit, and its checkpoints are fp32 files that `reel eval` (fp32) reads, to the figures
# the run recorded; and `reel eval --precision` (refused, auto, bf16). On a CPU without native bf16
# (or with REEL_NO_BF16=1 in the environment) the refusal and fallback checks run, and then the test
# exits 77 with the reason, so CTest shows it as not run rather than passed.
source "$(dirname "$0")/lib.sh"
require_h5py

make_small_data "$WORK/data" 2500
write_small_lstm_config "$WORK/lstm.ini" "$WORK/data"
steps=(--set train.max_steps=16)

REEL_NO_BF16=1 expect_fail "bf16 asked on a CPU without it" \
  "\[train\] precision = bf16, but this CPU \(bf16 turned off by REEL_NO_BF16\) has no native bf16 matrix products" \
  mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/refused" "${steps[@]}" --set train.precision=bf16
grep -q "hint: set \[train\] precision = fp32, or auto" "$WORK/err.txt" && pass "the refusal says what to set" \
  || fail "the refusal has no hint"
[ ! -e "$WORK/refused/ckpt_00000016.h5" ] && pass "the refused run saved nothing" || fail "the refused run trained"
REEL_NO_BF16=1 expect_ok "auto without bf16" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/auto" "${steps[@]}" \
  --set train.precision=auto
grep -q "precision: auto: this CPU (bf16 turned off by REEL_NO_BF16) has no native bf16 products: fp32" "$WORK/out.txt" && pass "auto says it runs fp32" \
  || fail "auto did not say which precision it chose"
expect_ok "fp32" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/fp32" "${steps[@]}"
"$CKPT_COMPARE" "$WORK/fp32/ckpt_00000016.h5" "$WORK/auto/ckpt_00000016.h5" --exact --ignore /config:train.precision >/dev/null \
  && pass "auto without bf16 == fp32, bit for bit" || fail "auto without bf16 differs from fp32"

# the same for reel eval: refused without native bf16 (nothing else to lose), auto falls back to fp32's figures
REEL_NO_BF16=1 expect_fail "eval: bf16 asked on a CPU without it" \
  "--precision bf16, but this CPU \(bf16 turned off by REEL_NO_BF16\) has no native bf16 matrix products" \
  reel eval "$WORK/fp32/ckpt_00000016.h5" --split test --precision bf16
grep -q "hint: use --precision fp32 (the default), or auto" "$WORK/err.txt" && pass "eval: the refusal says what to use" \
  || fail "eval: the refusal has no hint"
expect_fail "eval: an unknown precision" "--precision 'fp16': expected fp32, bf16 or auto" \
  reel eval "$WORK/fp32/ckpt_00000016.h5" --precision fp16
expect_ok "eval fp32" reel eval "$WORK/fp32/ckpt_00000016.h5" --split test
grep -v "^precision:" "$WORK/out.txt" >"$WORK/eval_plain.txt"
REEL_NO_BF16=1 expect_ok "eval auto without bf16" reel eval "$WORK/fp32/ckpt_00000016.h5" --split test --precision auto
grep -q "precision: auto: this CPU (bf16 turned off by REEL_NO_BF16) has no native bf16 products: fp32" "$WORK/out.txt" \
  && grep -v "^precision:" "$WORK/out.txt" | cmp -s - "$WORK/eval_plain.txt" \
  && pass "eval: auto without bf16 says so and gives fp32's figures" || fail "eval: auto without bf16"

# does this CPU have native bf16? auto says so in its log line (REEL_NO_BF16 as the environment has it)
mpireel 1 train "$WORK/lstm.ini" --run-dir "$WORK/probe" --set train.max_steps=1 --set train.precision=auto \
  >"$WORK/probe.txt" 2>&1 || fail "the probe run with precision auto: $(tail -1 "$WORK/probe.txt")"
if ! grep -q "precision: bf16" "$WORK/probe.txt"; then
  [ "$failures" -eq 0 ] || finish
  cpu=$(grep -o 'this CPU ([^)]*)' "$WORK/probe.txt" | head -1)
  echo "SKIPPED: ${cpu:-this CPU} has no native bf16 matrix products: the bf16 runs cannot be checked here" \
    "(the refusal and auto's fallback to fp32 above passed)" >&2
  exit 77
fi
expect_ok "bf16, 2 ranks" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/bf16" "${steps[@]}" --set train.precision=bf16
grep -q "precision: bf16 matrix products" "$WORK/out.txt" && pass "the log names bf16" || fail "no bf16 line"
if "$CKPT_COMPARE" "$WORK/fp32/ckpt_00000016.h5" "$WORK/bf16/ckpt_00000016.h5" --tol 1e-7 --ignore /config:train.precision \
    >/dev/null 2>&1; then
  fail "bf16 parameters equal fp32's: the bf16 path was not taken"; else pass "bf16 is another computation"; fi
# the training losses of the two runs, step by step: bf16 rounds each product's operands to 8 bits, so
# a loss moves by about 1% (measured: under 0.5%); 5% relative is a bound no broken product stays within
"$H5PY_PYTHON" - "$WORK/fp32/metrics.h5" "$WORK/bf16/metrics.h5" <<'PY' && pass "bf16 losses follow fp32's within 5%" || fail "bf16 losses differ"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r", swmr=True)["train/loss"][:] for p in sys.argv[1:3])
assert len(a) == len(b) and len(a) > 0, (len(a), len(b))
worst = float(np.max(np.abs(a - b) / np.abs(a)))
print(f"largest relative difference of the training losses: {worst:.4f}")
assert worst < 0.05, worst
PY
# the weights' bf16 copies (made once per step) give the same run as rounding every weight at every product
REEL_BF16_WEIGHT_COPIES=0 expect_ok "bf16 without weight copies" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/bf16_nocopy" \
  "${steps[@]}" --set train.precision=bf16
"$CKPT_COMPARE" "$WORK/bf16/ckpt_00000016.h5" "$WORK/bf16_nocopy/ckpt_00000016.h5" --exact >/dev/null \
  && pass "bf16: weight copies kept per step change nothing, bit for bit" || fail "bf16: kept weight copies change the run"
expect_ok "bf16 to step 7" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/bf16_split" "${steps[@]}" --set train.precision=bf16 \
  --set train.max_steps=7
expect_ok "bf16 resumed" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/bf16_split" "${steps[@]}" --set train.precision=bf16
"$CKPT_COMPARE" "$WORK/bf16/ckpt_00000016.h5" "$WORK/bf16_split/ckpt_00000016.h5" --exact >/dev/null \
  && pass "bf16: resume bit for bit" || fail "bf16: the resumed run differs"
expect_ok "reel eval (fp32) of a bf16 checkpoint" reel eval "$WORK/bf16/ckpt_00000016.h5" --split test
grep -q "^checkpoint .*bf16/ckpt_00000016.h5 .*, split test (.*/data/test.tok)$" "$WORK/out.txt" \
  && grep -q "^summary .*| confusion tp [0-9]* fp [0-9]* tn [0-9]* fn [0-9]* (500 reviews)$" "$WORK/out.txt" \
  && pass "the bf16 checkpoint evaluates on the 500 test reviews" || { fail "eval of the bf16 checkpoint:"; cat "$WORK/out.txt" >&2; }

# reel eval --precision bf16, on a small bag of words trained for it (its confident logits make a bf16
# product's rounding visible at the table's 4 decimals: measured, all 5 losses of 6 reviews move by 1e-4 to
# 4e-3; the LSTM above, after 16 steps, predicts near 0.5 and hides it)
write_small_config "$WORK/bow.ini" "$WORK/data"
expect_ok "a bag of words to evaluate" mpireel 2 train "$WORK/bow.ini" --run-dir "$WORK/bow"
# The LSTM above, after 16 steps, predicts one class for every review (a broken checkpoint could too), so
# reading a bf16 run's checkpoint back is judged on this bag of words trained in bf16 (3 epochs: it
# learns, measured 74.0% on test): `reel eval` of its last checkpoint, in fp32 and in bf16, gives the
# figures the run recorded for its test evaluation (in bf16, on 2 ranks) in metrics.h5: the same
# confusion counts within 5 of the 500 reviews and the loss within 1% (measured: the same counts, the
# loss 0.5225 against 0.5224), 65% accuracy or more (chance: 50%).
expect_ok "a bag of words trained in bf16" mpireel 2 train "$WORK/bow.ini" --run-dir "$WORK/bow_bf16" --set train.precision=bf16
for precision in fp32 bf16; do
  expect_ok "eval ($precision) of the bf16 bag of words" reel eval "$WORK/bow_bf16/ckpt_00000060.h5" --split test --precision $precision
  "$H5PY_PYTHON" - "$WORK/bow_bf16/metrics.h5" "$WORK/out.txt" <<'PY' \
    && pass "eval ($precision) of a bf16 checkpoint gives the run's test figures" || fail "eval ($precision) of a bf16 checkpoint"
import re, sys, h5py
f = h5py.File(sys.argv[1], "r", swmr=True)
test = [i for i, s in enumerate(f["eval/split"][:]) if s == 1]
assert len(test) == 1, f"{len(test)} test evaluations recorded"
row = {k: f["eval/" + k][test[0]] for k in ("loss", "accuracy", "tp", "fp", "tn", "fn")}
text = open(sys.argv[2]).read()
m = re.search(r"^summary +loss ([0-9.]+) accuracy ([0-9.]+)% .*\| confusion tp (\d+) fp (\d+) tn (\d+) fn (\d+) \((\d+) reviews\)$",
              text, re.M)
assert m, text
loss, acc = float(m[1]), float(m[2])
counts = [int(m[i]) for i in range(3, 7)]
recorded = [int(row[k]) for k in ("tp", "fp", "tn", "fn")]
print(f"eval: loss {loss} accuracy {acc}% {counts}; the run recorded loss {row['loss']:.4f} "
      f"accuracy {100 * row['accuracy']:.2f}% {recorded}")
assert sum(counts) == int(m[7]) == sum(recorded) == 500, (counts, m[7], recorded)
assert sum(abs(a - b) for a, b in zip(counts, recorded)) <= 2 * 5, (counts, recorded)
assert abs(loss - row["loss"]) <= 0.01 * row["loss"], (loss, row["loss"])
assert acc == round(100 * (counts[0] + counts[2]) / 500, 2), acc
assert acc >= 65, acc
PY
done

eval_args=(eval "$WORK/bow/ckpt_00000060.h5" --split test --docs 6 --lengths 5,10,20,40,full)
expect_ok "eval in fp32" reel "${eval_args[@]}"
grep -E '^ +(5|10|20|40|full) ' "$WORK/out.txt" >"$WORK/eval_fp32.txt"
expect_ok "eval in bf16" reel "${eval_args[@]}" --precision bf16
grep -q "precision: bf16 matrix products" "$WORK/out.txt" && pass "eval: the log names bf16" || fail "eval: no bf16 line"
grep -E '^ +(5|10|20|40|full) ' "$WORK/out.txt" >"$WORK/eval_bf16.txt"
# columns: length loss accuracy ...; the losses within 5% of fp32's (the bound of the training check
# above), and most of them moved (else the bf16 path was not taken)
paste "$WORK/eval_fp32.txt" "$WORK/eval_bf16.txt" | awk '
  { a = $2; b = $(NF / 2 + 2); if (a != b) differ++; d = (a > b ? a - b : b - a) / a; if (d > worst) worst = d; n++ }
  END { printf "eval: %d of %d losses differ in bf16, the largest by %.5f relative\n", differ, n, worst
        exit !(n == 5 && differ >= 3 && worst < 0.05) }' \
  && pass "eval in bf16: losses within 5% of fp32's, not identical" || fail "eval in bf16: losses $(cat "$WORK/eval_bf16.txt")"
finish
