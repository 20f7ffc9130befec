# reel serve with a GPT checkpoint (a language model of bounded context, 32 here): /healthz gives its
# max_context; /v1/generate writes what reel generate writes, and without a "length" what is left of the
# context after the prime; a prime or a length past the context is a 400 that says so; /v1/predict scores
# texts, long ones in windows, as reel predict does. A classifier's /v1/generate (404) is in serve.sh, the
# page in a browser with a GPT in serve_page.sh.
source "$(dirname "$0")/lib.sh"

make_small_data "$WORK/data" 1500
write_small_gpt_config "$WORK/gpt.ini" "$WORK/data"
expect_ok "train a GPT" reel train "$WORK/gpt.ini" --run-dir "$WORK/gpt"
ckpt="$WORK/gpt/ckpt_00000040.h5"
start_server gpt "$ckpt"

expect_status "health" 200 '"model":"gpt","objective":"next_token".*"max_context":32' GET /healthz

# the served text is reel generate's, token for token
request POST /v1/generate '{"prime": "the film", "length": 20, "temperature": 0.8, "seed": 3, "stop_at_eod": false}' \
  >"$WORK/gen.json"
reel generate "$ckpt" --prime "the film" --length 20 --temperature 0.8 --seed 3 >"$WORK/gen.txt"
# without "length": <eod>, the 2 tokens of the prime and 29 written fill the context of 32
request POST /v1/generate '{"prime": "the film", "seed": 2, "stop_at_eod": false}' >"$WORK/gen_default.json"
reel generate "$ckpt" --prime "the film" --length 29 --seed 2 >"$WORK/gen_29.txt"
python3 - "$WORK/gen.json" "$WORK/gen.txt" "$WORK/gen_default.json" "$WORK/gen_29.txt" <<'PY' \
  && pass "served generation equals reel generate's, and a request without a length fills the context" \
  || fail "served generation differs"
import json, sys
for answer, text in ((sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])):
    body, status = open(answer).read().rsplit("\n", 1)
    assert status.strip() == "200", (answer, status, body)
    served = json.loads(body)
    line = [l for l in open(text) if l.startswith("[1] ")][0]
    continuation = line.split(" |", 1)[1].strip()  # " |," when the text starts with punctuation
    assert served["samples"] == [continuation], (served, continuation)
    assert served["prime"] == "the film" and served["prime_tokens"] == 2, served
    assert len(continuation.split()) >= 10, continuation  # words, not a stray token
PY

long_prime=$(for i in $(seq 20); do printf 'the film '; done)
expect_status "a prime longer than the context" 400 \
  'the prime has 40 tokens: with the start of the document and \\"length\\" 5 that is 46, more than the model takes \(its max_context 32\)' \
  POST /v1/generate "{\"prime\": \"$long_prime\", \"length\": 5}"
expect_status "a prime that fills the context, no length" 400 \
  'the prime has 40 tokens: with the start of the document and \\"length\\" 60 that is 101, more than the model takes \(its max_context 32\)' \
  POST /v1/generate "{\"prime\": \"$long_prime\"}"
expect_status "one token past the context" 400 \
  'the prime has 2 tokens: with the start of the document and \\"length\\" 30 that is 33, more than the model takes \(its max_context 32\)' \
  POST /v1/generate '{"prime": "the film", "length": 30}'
expect_status "still serving after the refusals" 200 '"samples":\["[^"]' POST /v1/generate '{"prime": "the film", "length": 29}'

# perplexities as reel predict's, a text of several windows among short ones
long_text=$(cut -f2 "$WORK/synth_test.tsv" | sed -n 2p | cut -c1-700)
printf '%s\n' "the film was good" "$long_text" "good film the was" >"$WORK/texts.txt"
python3 -c 'import json, sys; print(json.dumps({"texts": [l.rstrip("\n") for l in open(sys.argv[1])]}))' "$WORK/texts.txt" \
  >"$WORK/texts.json"
request POST /v1/predict "$(cat "$WORK/texts.json")" | head -n -1 >"$WORK/ppl.json"
reel predict "$ckpt" "$WORK/texts.txt" --json >"$WORK/ppl.jsonl"
python3 - "$WORK/ppl.json" "$WORK/ppl.jsonl" <<'PY' && pass "served perplexity equals reel predict's" || fail "perplexities differ"
import json, sys
served = json.load(open(sys.argv[1]))["predictions"]
local = [json.loads(l) for l in open(sys.argv[2])]
assert len(served) == len(local) == 3, (served, local)
assert local[1]["tokens"] > 64, local[1]  # more than two windows of 32
for s, l in zip(served, local):
    assert s["tokens"] == l["tokens"] and abs(s["perplexity"] - l["perplexity"]) < 1e-6 * l["perplexity"], (s, l)
PY
finish
