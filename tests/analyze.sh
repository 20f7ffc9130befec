# reel analyze: every figure recomputed independently in Python from the probabilities reel predict
# gives for the same documents (accuracy, confusion, ECE and the reliability table, accuracy by length
# quintile, the ranking of mistakes, the words' z-scores), the same analysis on 1 and 3 ranks, and the
# bad inputs.
source "$(dirname "$0")/lib.sh"

make_small_data "$WORK/data" 2500
write_small_config "$WORK/small.ini" "$WORK/data"
expect_ok "train a classifier" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/bow" --set train.epochs=1
ckpt="$WORK/bow/ckpt_best.h5"

expect_ok "analyze" reel analyze "$ckpt" --json "$WORK/analysis.json" --top 15 --min-docs 10
cp "$WORK/out.txt" "$WORK/analysis.txt"
for section in "confusion matrix" "accuracy by document length" "calibration" "most confident mistakes" \
               "words most associated with errors" "expected calibration error"; do
  grep -q "$section" "$WORK/analysis.txt" && pass "the report has: $section" || fail "no '$section' in the report"
done

tail -n +2 "$WORK/synth_test.tsv" >"$WORK/test_rows.tsv"
cut -f2 "$WORK/test_rows.tsv" >"$WORK/test.txt"
expect_ok "predict the same documents" reel predict "$ckpt" "$WORK/test.txt" --json
python3 - "$WORK/analysis.json" "$WORK/out.txt" "$WORK/test_rows.tsv" <<'PY' && pass "every figure matches an independent computation" || fail "analysis figures differ"
import json, math, re, sys
a = json.load(open(sys.argv[1]))
pred = [json.loads(l) for l in open(sys.argv[2])]
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[3])]
classes = a["classes"]
labels = [classes.index(r[0]) for r in rows]
probs = [[p["probabilities"][c] for c in classes] for p in pred]
lengths = [p["tokens"] for p in pred]
N = len(labels)
assert a["documents"] == N
guess = [max(range(len(classes)), key=lambda k: (p[k], -k)) for p in probs]
right = [g == l for g, l in zip(guess, labels)]
close = lambda x, y, tol=1e-6: abs(x - y) <= tol
assert close(a["accuracy"], sum(right) / N), (a["accuracy"], sum(right) / N)
for t in range(2):
    for k in range(2):
        assert a["confusion"][t][k] == sum(1 for g, l in zip(guess, labels) if l == t and g == k)
# reliability and ECE, ten bins of the predicted class's probability
ece = 0
for b, row in enumerate(a["reliability"]):
    members = [i for i in range(N) if min(int(probs[i][guess[i]] * 10), 9) == b]
    assert row["documents"] == len(members), (b, row, len(members))
    if members:
        conf = sum(probs[i][guess[i]] for i in members) / len(members)
        acc = sum(right[i] for i in members) / len(members)
        assert close(row["mean_confidence"], conf, 1e-5) and close(row["accuracy"], acc), (row, conf, acc)
        ece += len(members) / N * abs(acc - conf)
assert close(a["ece"], ece, 1e-5), (a["ece"], ece)
# length quintiles: sorted by (length, index), a bin never splits one length
order = sorted(range(N), key=lambda i: (lengths[i], i))
start, bins = 0, []
for b in range(5):
    if start >= N: break
    end = max((b + 1) * N // 5, start + 1)
    while end < N and lengths[order[end]] == lengths[order[end - 1]]: end += 1
    if b == 4: end = N
    members = order[start:end]
    bins.append((lengths[members[0]], lengths[members[-1]], len(members), sum(right[i] for i in members) / len(members)))
    start = end
got = [(x["min_tokens"], x["max_tokens"], x["documents"], x["accuracy"]) for x in a["by_length"]]
assert len(got) == len(bins) and all(g[:3] == b[:3] and close(g[3], b[3]) for g, b in zip(got, bins)), (got, bins)
# mistakes: the wrong predictions by falling confidence
wrong = sorted((i for i in range(N) if not right[i]), key=lambda i: (-probs[i][guess[i]], i))[:15]
assert [m["document"] for m in a["mistakes"]] == wrong, ([m["document"] for m in a["mistakes"]], wrong)
for m in a["mistakes"]:
    assert m["label"] == classes[labels[m["document"]]] and m["predicted"] == classes[guess[m["document"]]]
# words: counts from the raw text (the synthetic corpus's words are plain lowercase letters), z by the formula
p = 1 - sum(right) / N
zs = [w["z"] for w in a["error_words"]]
assert zs == sorted(zs, reverse=True) and len(zs) == 15
for w in a["error_words"]:
    docs = [i for i, r in enumerate(rows) if re.search(r"(?<![a-z])" + re.escape(w["word"]) + r"(?![a-z'])", r[1].lower())]
    assert w["documents"] == len(docs) >= 10, (w, len(docs))
    assert w["errors"] == sum(not right[i] for i in docs), w
    assert close(w["z"], (w["errors"] - len(docs) * p) / math.sqrt(len(docs) * p * (1 - p)), 1e-9), w
PY
expect_ok "analyze on 3 ranks" mpireel 3 analyze "$ckpt" --json "$WORK/analysis3.json" --top 15 --min-docs 10
python3 - "$WORK/analysis.json" "$WORK/analysis3.json" <<'PY' && pass "3 ranks give the same analysis" || fail "3 ranks differ"
import json, sys
# Counts, documents, labels and words are equal; a probability can differ in its last bits (a document's
# forward pass runs in a batch whose size depends on the number of ranks, and OpenBLAS blocks a product of
# another height differently, so the sums are taken in another order): figures from probabilities agree
# to 1e-6.
def same(x, y):
    if isinstance(x, float) or isinstance(y, float):
        return abs(x - y) <= 1e-6 * max(1.0, abs(x), abs(y))
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
    if isinstance(x, list):
        return isinstance(y, list) and len(x) == len(y) and all(same(u, v) for u, v in zip(x, y))
    return x == y
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert same(a, b), [k for k in a if not same(a[k], b[k])]
PY
expect_ok "--max-tokens and --docs" reel analyze "$ckpt" --max-tokens 20 --docs 100 --json "$WORK/short.json"
python3 -c "
import json,sys; a = json.load(open(sys.argv[1])); assert a['documents'] == 100 and a['max_tokens'] == 20" "$WORK/short.json" \
  && pass "--docs and --max-tokens are applied" || fail "--docs/--max-tokens ignored"

# bad input
write_small_lm_config "$WORK/lm.ini" "$WORK/data"
expect_ok "train a language model" mpireel 1 train "$WORK/lm.ini" --run-dir "$WORK/lm" --set train.max_steps=3
expect_fail "a language model" "is a language model \(rnn_lm\): analyze needs a classifier" \
  reel analyze "$(ls "$WORK/lm"/ckpt_0*.h5 | head -1)"
expect_fail "an unknown split" "--split 'unsup': expected test, valid or train" reel analyze "$ckpt" --split unsup
mkdir -p "$WORK/partial" && cp "$WORK/data/vocab.txt" "$WORK/data/train.tok" "$WORK/partial/"
expect_fail "a data directory without the split" "partial/test.tok" reel analyze "$ckpt" --data "$WORK/partial"
expect_fail "an unwritable --json" "no_dir/a.json" reel analyze "$ckpt" --json "$WORK/no_dir/a.json"
finish
