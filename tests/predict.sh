# reel predict: raw text in, predictions out. Checked against reel eval on the same documents (the
# accuracy of a classifier, the perplexity of a language model), for every input form, and each bad
# input.
source "$(dirname "$0")/lib.sh"

make_small_data "$WORK/data" 2500
write_small_config "$WORK/small.ini" "$WORK/data"
expect_ok "train a classifier" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/bow"
ckpt="$WORK/bow/ckpt_best.h5"

# The test split as raw text, the way a user has it: the TSV prep read, and its text column alone.
cut -f2 "$WORK/synth_test.tsv" | tail -n +2 >"$WORK/test.txt"
cut -f1 "$WORK/synth_test.tsv" | tail -n +2 >"$WORK/test_labels.txt"

# 1. Predictions agree with `reel eval` on the same documents: the same accuracy, to the review.
expect_ok "eval" reel eval "$ckpt" --split test
eval_acc=$(sed -n 's/^accuracy *\([0-9.]*\)%/\1/p' "$WORK/out.txt")
expect_ok "predict the text file" reel predict "$ckpt" "$WORK/test.txt" --json
cp "$WORK/out.txt" "$WORK/pred.jsonl"
[ "$(wc -l <"$WORK/pred.jsonl")" -eq "$(wc -l <"$WORK/test.txt")" ] && pass "one output line per input line" \
  || fail "$(wc -l <"$WORK/pred.jsonl") outputs for $(wc -l <"$WORK/test.txt") lines"
python3 - "$WORK/pred.jsonl" "$WORK/test_labels.txt" "$eval_acc" <<'PY' && pass "predict's accuracy equals eval's ($eval_acc%)" || fail "predict and eval disagree"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
labels = [l.strip() for l in open(sys.argv[2])]
assert [r["line"] for r in rows] == list(range(1, len(rows) + 1))
for r in rows:
    p = r["probabilities"]
    assert abs(p["neg"] + p["pos"] - 1) < 1e-5, r
    assert r["label"] == max(p, key=p.get) and r["probability"] == p[r["label"]], r
acc = 100 * sum(r["label"] == l for r, l in zip(rows, labels)) / len(rows)
assert abs(acc - float(sys.argv[3])) < 0.005, (acc, sys.argv[3])
PY
# the TSV read by its text column gives the same predictions, and so do standard input, a batch of 1
# (no batching by length) and the table
expect_ok "predict the TSV" reel predict "$ckpt" "$WORK/synth_test.tsv" --tsv --json
python3 - "$WORK/pred.jsonl" "$WORK/out.txt" <<'PY' && pass "TSV input: the same predictions (line numbers count the header)" || fail "TSV predictions differ"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) and all(x["line"] + 1 == y["line"] for x, y in zip(a, b))
assert all(x["probabilities"] == y["probabilities"] for x, y in zip(a, b))
PY
head -50 "$WORK/test.txt" | "$REEL_BIN" predict "$ckpt" --batch 1 --json >"$WORK/one.jsonl" 2>"$WORK/err.txt" \
  && python3 - "$WORK/pred.jsonl" "$WORK/one.jsonl" <<'PY' && pass "standard input, one document per forward: the same" || fail "batching changed a prediction"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])][:50]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(b) == 50
for x, y in zip(a, b):
    for k in x["probabilities"]:
        assert abs(x["probabilities"][k] - y["probabilities"][k]) < 1e-5, (x, y)
PY
expect_ok "table" reel predict "$ckpt" "$WORK/test.txt" --verbose
head -1 "$WORK/out.txt" | grep -Eq '^line +class +prob +neg +pos +text' && pass "the table names the classes" \
  || fail "table header: $(head -1 "$WORK/out.txt")"
grep -Eq '^[0-9]+ documents, [0-9]+ tokens in [0-9.]+ s of model time: [0-9.]+ documents/s' "$WORK/err.txt" \
  && pass "--verbose reports throughput" || fail "no throughput line"

# 2. What prep would make of odd text: empty lines, markup only, invalid UTF-8, CRLF, a very long line.
{
  printf 'A wonderful, elegant film.\r\n'
  printf '\n'
  printf '<br /><br />\n'
  printf 'bad \xff\xfe bytes and a broken \xe2\x82 sequence\n'
  head -c 400000 /dev/zero | tr '\0' 'a' | sed 's/aaaaaaa/word /g'; printf '\n'
} >"$WORK/odd.txt"
expect_ok "odd input" reel predict "$ckpt" "$WORK/odd.txt" --json --max-tokens 0
python3 - "$WORK/out.txt" <<'PY' && pass "empty, markup-only, invalid UTF-8 and very long documents are handled" || fail "odd input mishandled"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 5, rows
assert "label" in rows[0] and rows[0]["tokens"] == 6, rows[0]        # a wonderful , elegant film . (the CR is no token)
assert rows[1]["error"].startswith("empty document") and rows[2]["error"].startswith("empty document")
assert "label" in rows[3] and rows[3]["tokens"] >= 6, rows[3]
assert rows[4]["tokens"] > 50000, rows[4]["tokens"]                     # --max-tokens 0 reads it all
PY
expect_ok "--max-tokens cuts" reel predict "$ckpt" "$WORK/odd.txt" --json --max-tokens 7
grep -q '"line":5,.*"tokens":7,' "$WORK/out.txt" && pass "--max-tokens 7 reads 7 tokens" || fail "--max-tokens ignored"

# 3. A language model scores text: the perplexity of the test documents equals eval's.
write_small_lm_config "$WORK/lm.ini" "$WORK/data"
expect_ok "train a language model" mpireel 2 train "$WORK/lm.ini" --run-dir "$WORK/lm" --set objective.eval_docs=0
lm=$(ls "$WORK/lm"/ckpt_0*.h5 | sort | tail -1)
expect_ok "eval the language model" reel eval "$lm" --split test
eval_ppl=$(sed -n 's/^perplexity *\([0-9.]*\)$/\1/p' "$WORK/out.txt")
expect_ok "score the test text" reel predict "$lm" "$WORK/test.txt" --json
python3 - "$WORK/out.txt" "$eval_ppl" <<'PY' && pass "predict's perplexity equals eval's ($eval_ppl)" || fail "perplexities differ"
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
nll = sum(r["nll"] for r in rows); tokens = sum(r["tokens"] for r in rows)
ppl = math.exp(nll / tokens)
assert abs(ppl - float(sys.argv[2])) / float(sys.argv[2]) < 1e-4, (ppl, sys.argv[2])
PY
expect_ok "LM table" reel predict "$lm" "$WORK/odd.txt"
head -1 "$WORK/out.txt" | grep -Eq '^line +tokens +perplexity +text' && pass "a language model's table" || fail "LM table header"

# 4. Bad input: each a clear error naming the file, the line or what was expected.
expect_fail "missing input" "nothing.txt: cannot open: No such file" reel predict "$ckpt" "$WORK/nothing.txt"
expect_fail "TSV without the column" "line 1: no column 'body' in the header \(its columns: 'label', 'text'\)" \
  reel predict "$ckpt" "$WORK/synth_test.tsv" --tsv --text-column body
printf 'id\ttext\n1\tfine\n2\n' >"$WORK/short.tsv"
expect_fail "TSV row without the text field" "short.tsv: line 3: 1 field\(s\), but the text column 'text' is field 2" \
  reel predict "$ckpt" "$WORK/short.tsv" --tsv
: >"$WORK/empty.tsv"
expect_fail "empty TSV" "empty.tsv: empty: a TSV input needs a header row" reel predict "$ckpt" "$WORK/empty.tsv" --tsv
echo "not a checkpoint" >"$WORK/fake.h5"
expect_fail "not a checkpoint" "fake.h5" reel predict "$WORK/fake.h5" "$WORK/test.txt"
expect_fail "bad --batch" "--batch '0': expected a positive integer" reel predict "$ckpt" --batch 0
finish
