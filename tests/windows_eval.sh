# A language model of bounded context (max_context W) in `reel eval`, `reel predict` and `reel generate`.
# No model type bounds its context yet, so REEL_TEST_MAX_CONTEXT forces a bound on a small recurrent LM.
# Evaluation slides windows over each document (reel/windows.h) and must agree with predict's scores
# (which test_windows_lm checks against one forward per window): the same loss and the same number of
# tokens, each token scored once; a bound changes the loss, and a bound longer than every document gives
# the unbounded output exactly; two ranks print one rank's figures. Generation refuses a prime and length past the model's bound, which
# --max-context may lower but not raise.
source "$(dirname "$0")/lib.sh"

# Two kinds of document in which every word follows from the ones before it: a model that has learnt them
# predicts far worse from a few tokens of context than from the whole document.
for i in $(seq 1 60); do
  echo "alpha bravo charlie delta echo foxtrot golf . hotel india juliet"
  echo "kilo lima mike november oscar papa quebec ! romeo sierra"
done >"$WORK/corpus.txt"
for i in $(seq 1 100); do
  echo "alpha bravo charlie delta echo foxtrot golf . hotel india juliet"
  echo "kilo lima mike november oscar papa quebec ! romeo sierra tango alpha lima"
done >"$WORK/test.txt"
expect_ok "prep" reel prep --format text --valid-count 20 --test "$WORK/test.txt" "$WORK/corpus.txt" "$WORK/data"
write_tiny_lm_config "$WORK/lm.ini" "$WORK/data" 4
expect_ok "train a language model" reel train "$WORK/lm.ini" --run-dir "$WORK/lm"
lm="$WORK/lm/ckpt_best.h5"

value() { sed -n "s/^$1 *\([0-9.]*\).*$/\1/p" "$2"; }
expect_ok "eval, unbounded" reel eval "$lm" --split test
cp "$WORK/out.txt" "$WORK/eval_full.txt"
for W in 4 9; do
  expect_ok "eval, max_context $W" env REEL_TEST_MAX_CONTEXT=$W "$REEL_BIN" eval "$lm" --split test --batch 7
  cp "$WORK/out.txt" "$WORK/eval_$W.txt"
  expect_ok "predict, max_context $W" env REEL_TEST_MAX_CONTEXT=$W "$REEL_BIN" predict "$lm" "$WORK/test.txt" --json
  python3 - "$WORK/out.txt" "$(value loss "$WORK/eval_$W.txt")" "$(value tokens "$WORK/eval_$W.txt")" \
    "$(value loss "$WORK/eval_full.txt")" "$(value tokens "$WORK/eval_full.txt")" <<'PY' \
    && pass "max_context $W: eval's loss and tokens equal predict's, and differ from the unbounded loss" \
    || fail "max_context $W: eval and predict disagree"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
nll = sum(r["nll"] for r in rows); tokens = sum(r["tokens"] for r in rows)
loss, eval_tokens, full_loss, full_tokens = float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
assert len(rows) == 200, len(rows)
assert tokens == eval_tokens == full_tokens, (tokens, eval_tokens, full_tokens)
# eval prints 4 decimals
assert abs(nll / tokens - loss) < 1.5e-4, (nll / tokens, loss)
assert abs(loss - full_loss) > 1e-3, (loss, full_loss)
PY
done
# the windows of a document stay on the rank that holds it: two ranks give one rank's figures
expect_ok "eval, max_context 4, two ranks" env REEL_TEST_MAX_CONTEXT=4 "$MPIEXEC" -np 2 --oversubscribe "$REEL_BIN" eval "$lm" --split test --batch 7
cmp -s "$WORK/out.txt" "$WORK/eval_4.txt" && pass "max_context 4: two ranks print one rank's evaluation" \
  || fail "max_context 4: two ranks differ: $(diff "$WORK/out.txt" "$WORK/eval_4.txt" | head -6)"
expect_ok "eval, max_context past every document" env REEL_TEST_MAX_CONTEXT=100000 "$REEL_BIN" eval "$lm" --split test
cmp -s "$WORK/out.txt" "$WORK/eval_full.txt" && pass "a bound past every document: the unbounded output" \
  || fail "a bound past every document changed eval: $(diff "$WORK/out.txt" "$WORK/eval_full.txt" | head -4)"

# generation: the model's bound, lowered by --max-context, never raised by it
gen() { env REEL_TEST_MAX_CONTEXT=6 "$REEL_BIN" generate "$lm" --seed 2 "$@"; }
expect_ok "generate within the bound" gen --prime "alpha bravo" --length 3
expect_fail "a prime and length past the model's bound" "--prime has 2 tokens: .* that is 7, more than the model takes \(its max_context 6\)" \
  gen --prime "alpha bravo" --length 4
expect_fail "--max-context lowers the bound" "more than the model takes \(--max-context 5\)" \
  gen --prime "alpha bravo" --length 3 --max-context 5
expect_fail "--max-context does not raise it" "more than the model takes \(its max_context 6\)" \
  gen --prime "alpha bravo" --length 4 --max-context 50
expect_ok "an unbounded model: no limit" reel generate "$lm" --prime "alpha bravo" --length 300

# the server's /v1/generate: the model's bound, a 400 past it
REEL_TEST_MAX_CONTEXT=6 start_server serve "$lm"
post() { curl -s -o "$WORK/answer.txt" -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/v1/generate" \
           -H 'Content-Type: application/json' --data-binary "$1"; }
code=$(post '{"prime": "alpha bravo", "length": 3, "stop_at_eod": false}')
[ "$code" = 200 ] && grep -q '"samples"' "$WORK/answer.txt" && pass "/v1/generate within the bound (200)" \
  || fail "/v1/generate within the bound: $code $(head -c 300 "$WORK/answer.txt")"
code=$(post '{"prime": "alpha bravo", "length": 4}')
[ "$code" = 400 ] && grep -q 'the prime has 2 tokens: with the start of the document and \\"length\\" 4 that is 7, more than the model takes (its max_context 6)' "$WORK/answer.txt" \
  && pass "/v1/generate past the model's bound (400)" || fail "/v1/generate past the bound: $code $(head -c 300 "$WORK/answer.txt")"
finish
