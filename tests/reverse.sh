# [data] reverse: models that read every document last token first (a backward language model and the
# classifiers fine-tuned from one). Training and evaluation read the token files reversed (test_tokfile
# checks the reversal itself); reel predict must encode raw text the same way, so its figures equal
# reel eval's; a backward LM cannot continue a prime; a model may only start from one read in its own
# direction.
source "$(dirname "$0")/lib.sh"
require_h5py

make_small_data "$WORK/data" 2500
cut -f2 "$WORK/synth_test.tsv" | tail -n +2 >"$WORK/test.txt"
cut -f1 "$WORK/synth_test.tsv" | tail -n +2 >"$WORK/test_labels.txt"
# The bag of words, which learns this data in seconds, reading at most 60 tokens of each review (whose
# median is 121 words): the first 60 forward, the last 60 backward, so the direction shows in what it
# reads although the bag is blind to order.
write_small_config "$WORK/bow.ini" "$WORK/data"
sed -i 's/^\[data\]$/[data]\nmax_tokens = 60/' "$WORK/bow.ini"

# 1. A backward classifier: it trains to another model than the forward one, and predict on raw text
#    (cut to the same 60 tokens, taken from the end) agrees with eval to the review.
expect_ok "forward classifier" mpireel 2 train "$WORK/bow.ini" --run-dir "$WORK/fwd"
expect_ok "backward classifier" mpireel 2 train "$WORK/bow.ini" --run-dir "$WORK/bwd" --set data.reverse=true
last=$(basename "$(ls "$WORK/bwd"/ckpt_0*.h5 | sort | tail -1)")
if "$CKPT_COMPARE" "$WORK/fwd/$last" "$WORK/bwd/$last" --tol 1e-3 --ignore /config:data.reverse >/dev/null; then
  fail "reading backward trained the forward model"; else pass "reading backward trains another model"; fi
ckpt="$WORK/bwd/$last"
expect_ok "eval the backward classifier" reel eval "$ckpt" --split test
eval_acc=$(sed -n 's/^accuracy *\([0-9.]*\)%/\1/p' "$WORK/out.txt")
expect_ok "predict with it" reel predict "$ckpt" "$WORK/test.txt" --json
python3 - "$WORK/out.txt" "$WORK/test_labels.txt" "$eval_acc" <<'PY' && pass "predict's accuracy equals eval's ($eval_acc%)" || fail "predict and eval disagree on the backward classifier"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
labels = [l.strip() for l in open(sys.argv[2])]
acc = 100 * sum(r["label"] == l for r, l in zip(rows, labels)) / len(rows)
assert abs(acc - float(sys.argv[3])) < 0.005, (acc, sys.argv[3])
PY

# 1b. The forward and backward pair as an ensemble (reel analyze --ensemble): each member's accuracy is
#     eval's, and the ensemble's equals the accuracy of the mean of the two models' probabilities that
#     reel predict gives for the raw text.
expect_ok "eval the forward classifier" reel eval "$WORK/fwd/$last" --split test
fwd_acc=$(sed -n 's/^accuracy *\([0-9.]*\)%/\1/p' "$WORK/out.txt")
expect_ok "predict with the forward one" reel predict "$WORK/fwd/$last" "$WORK/test.txt" --json
cp "$WORK/out.txt" "$WORK/fwd_pred.jsonl"
expect_ok "predict with the backward one" reel predict "$ckpt" "$WORK/test.txt" --json
cp "$WORK/out.txt" "$WORK/bwd_pred.jsonl"
expect_ok "analyze the pair" mpireel 2 analyze "$WORK/fwd/$last" --ensemble "$ckpt" --json "$WORK/pair.json"
grep -q "ensemble of 2 classifiers" "$WORK/out.txt" && pass "the ensemble is announced" || fail "no ensemble line"
python3 - "$WORK/pair.json" "$fwd_acc" "$eval_acc" "$WORK/fwd_pred.jsonl" "$WORK/bwd_pred.jsonl" "$WORK/test_labels.txt" <<'PY' \
  && pass "members' accuracies are eval's, the ensemble's is the mean probabilities'" || fail "the ensemble's figures disagree"
import json, sys
pair = json.load(open(sys.argv[1]))
members = [m["accuracy"] * 100 for m in pair["ensemble"]]
assert abs(members[0] - float(sys.argv[2])) < 0.005 and abs(members[1] - float(sys.argv[3])) < 0.005, members
fwd = [json.loads(l)["probabilities"] for l in open(sys.argv[4])]
bwd = [json.loads(l)["probabilities"] for l in open(sys.argv[5])]
labels = [l.strip() for l in open(sys.argv[6])]
mean = [{k: (f[k] + b[k]) / 2 for k in f} for f, b in zip(fwd, bwd)]
acc = sum(max(m, key=m.get) == l for m, l in zip(mean, labels)) / len(labels)
assert abs(acc - pair["accuracy"]) < 0.0025, (acc, pair["accuracy"])  # a near tie may round either way: one review
assert pair["accuracy"] != pair["ensemble"][0]["accuracy"] or pair["accuracy"] != pair["ensemble"][1]["accuracy"]
PY
# 2. A backward language model: predict's perplexity of the test text equals eval's; it cannot generate.
write_small_lm_config "$WORK/lm.ini" "$WORK/data"
expect_ok "backward language model" mpireel 2 train "$WORK/lm.ini" --run-dir "$WORK/lm" --set data.reverse=true \
  --set objective.eval_docs=0
lm=$(ls "$WORK/lm"/ckpt_0*.h5 | sort | tail -1)
expect_ok "eval it" reel eval "$lm" --split test
eval_ppl=$(sed -n 's/^perplexity *\([0-9.]*\)$/\1/p' "$WORK/out.txt")
expect_ok "score the test text" reel predict "$lm" "$WORK/test.txt" --json
python3 - "$WORK/out.txt" "$eval_ppl" <<'PY' && pass "predict's perplexity equals eval's ($eval_ppl)" || fail "perplexities differ for the backward LM"
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ppl = math.exp(sum(r["nll"] for r in rows) / sum(r["tokens"] for r in rows))
assert abs(ppl - float(sys.argv[2])) / float(sys.argv[2]) < 1e-4, (ppl, sys.argv[2])
PY
expect_fail "a language model in an ensemble" "--ensemble .*: a rnn_lm with 0 classes" \
  reel analyze "$ckpt" --ensemble "$lm"
expect_fail "a backward LM does not generate" "backward language model .* cannot continue a prime" \
  reel generate "$lm" --prime "the movie" --length 5

# 3. Starting from a model read the other way is a named error, before any step.
expect_fail "a forward run from a backward model" "init_from = .*bwd/$last was trained on documents read backward" \
  mpireel 2 train "$WORK/bow.ini" --run-dir "$WORK/mixed" --set "model.init_from=$ckpt"
expect_ok "a backward run from it" mpireel 2 train "$WORK/bow.ini" --run-dir "$WORK/bwd2" --set "model.init_from=$ckpt" \
  --set data.reverse=true --set train.max_steps=2
finish
