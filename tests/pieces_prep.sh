# Subword pieces end to end (issue 20, section 1): reel prep --tokenizer sentencepiece on a synthetic
# fixture is deterministic (twice, on 2 and 3 ranks, and again from its own pieces.model: the same
# files); a tiny GPT
# trained a few steps on it carries the piece model in its checkpoint (/pieces, byte for byte the data's
# pieces.model), and predict, generate and export use it without the data directory: predict's
# perplexity of the test reviews as raw text equals eval's on test.tok (so raw text is encoded exactly as
# prep encoded it), generate prints text (the prime normalised, no U+2581 piece marks); a word data
# directory, or one of another piece model, against that checkpoint (eval, resume, init_from) is an
# error naming both files and what differs; a model that cuts the pieces is refused.
source "$(dirname "$0")/lib.sh"
require_h5py

reel synth --docs 600 --test-docs 100 --seed 7 "$WORK/train.tsv" "$WORK/test.tsv" >/dev/null
cut -f2 "$WORK/test.tsv" | tail -n +2 >"$WORK/test.txt"
prep_pieces() { # OUTDIR [options]
  local out=$1; shift
  reel prep --quiet --format tsv --test "$WORK/test.tsv" --valid-count 100 --tokenizer sentencepiece "$@" \
    "$WORK/train.tsv" "$out" 2>"$WORK/prep_err.txt"
}
# prep.ini's times aside, two directories hold the same bytes
same_dirs() {
  local a=$1 b=$2 f
  for f in train.tok valid.tok test.tok vocab.txt labels.txt pieces.model; do
    cmp -s "$a/$f" "$b/$f" || { echo "$f differs" >&2; return 1; }
  done
  cmp -s <(sed '/^\[time\]/,$d' "$a/prep.ini") <(sed '/^\[time\]/,$d' "$b/prep.ini") || { echo "prep.ini differs" >&2; return 1; }
}

expect_ok "prep with 400 unigram pieces" prep_pieces "$WORK/sp" --vocab-size 400
expect_ok "and again" prep_pieces "$WORK/sp2" --vocab-size 400
same_dirs "$WORK/sp" "$WORK/sp2" && pass "the same input and seed give the same files" || fail "two preps differ"
[ "$(ini_get "$WORK/sp/prep.ini" type)" = sentencepiece ] && [ "$(wc -l <"$WORK/sp/vocab.txt")" = 400 ] &&
  [ "$(sed -n 4p "$WORK/sp/vocab.txt" | cut -f1)" = "<0x00>" ] && [ "$(ini_get "$WORK/sp/prep.ini" train_unknown)" = 0 ] &&
  pass "prep.ini names the tokenizer; vocab.txt lists the 400 pieces; no <unk>" || fail "prep output: $(cat "$WORK/sp/prep.ini")"
# Several ranks (the documents encoded by the ranks in turn, rank 0 writing): the files of one process.
expect_ok "prep on 2 ranks" mpireel 2 prep --quiet --format tsv --test "$WORK/test.tsv" --valid-count 100 \
  --tokenizer sentencepiece --vocab-size 400 "$WORK/train.tsv" "$WORK/sp_2ranks"
same_dirs "$WORK/sp" "$WORK/sp_2ranks" && [ "$(ini_get "$WORK/sp_2ranks/prep.ini" ranks)" = 2 ] &&
  pass "2 ranks write the files of one process" || fail "2 ranks differ from one process"
expect_ok "prep on 3 ranks from the model" mpireel 3 prep --quiet --format tsv --test "$WORK/test.tsv" --valid-count 100 \
  --tokenizer-model "$WORK/sp/pieces.model" "$WORK/train.tsv" "$WORK/sp_3ranks"
cmp -s "$WORK/sp/train.tok" "$WORK/sp_3ranks/train.tok" && cmp -s "$WORK/sp/vocab.txt" "$WORK/sp_3ranks/vocab.txt" &&
  cmp -s "$WORK/sp/test.tok" "$WORK/sp_3ranks/test.tok" && pass "3 ranks too" || fail "3 ranks differ from one process"
expect_fail "a missing model on 2 ranks" "^reel prep: error: .*nowhere.model" \
  mpireel 2 prep --format tsv --tokenizer-model "$WORK/nowhere.model" "$WORK/train.tsv" "$WORK/bad"
[ "$(grep -c "error" "$WORK/err.txt")" = 1 ] && pass "the error is printed once" || fail "errors: $(cat "$WORK/err.txt")"
expect_ok "inspect the piece vocabulary" reel inspect "$WORK/sp/vocab.txt"
top=$(sort -t$'\t' -k2,2nr "$WORK/sp/vocab.txt" | head -1 | cut -f2)
grep -q "tokenizer sentencepiece (pieces.model beside it" "$WORK/out.txt" && grep -q "most frequent: [^ ]*($top) " "$WORK/out.txt" &&
  pass "inspect names the tokenizer and the most frequent piece ($top)" || fail "inspect: $(cat "$WORK/out.txt")"
expect_ok "prep from its own piece model" reel prep --quiet --format tsv --test "$WORK/test.tsv" --valid-count 100 \
  --tokenizer-model "$WORK/sp/pieces.model" "$WORK/train.tsv" "$WORK/sp3"
cmp -s "$WORK/sp/train.tok" "$WORK/sp3/train.tok" && cmp -s "$WORK/sp/vocab.txt" "$WORK/sp3/vocab.txt" &&
  pass "--tokenizer-model reproduces the token files" || fail "--tokenizer-model gave other token files"
expect_ok "prep with 400 BPE pieces" prep_pieces "$WORK/bpe" --vocab-size 400 --piece-model bpe
cmp -s "$WORK/sp/pieces.model" "$WORK/bpe/pieces.model" && fail "BPE and unigram gave the same model" || pass "BPE is another model"
expect_ok "prep with words" reel prep --quiet --format tsv --test "$WORK/test.tsv" --valid-count 100 --vocab-size 400 \
  "$WORK/train.tsv" "$WORK/words"
[ ! -e "$WORK/words/pieces.model" ] && [ "$(ini_get "$WORK/words/prep.ini" type)" = word ] &&
  [ "$(ini_get "$WORK/words/prep.ini" test_bytes)" = "$(ini_get "$WORK/sp/prep.ini" test_bytes)" ] &&
  [ "$(ini_get "$WORK/words/prep.ini" test_words)" = "$(ini_get "$WORK/sp/prep.ini" test_words)" ] &&
  pass "words: no piece model; the same text bytes and words per split" || fail "word prep.ini: $(cat "$WORK/words/prep.ini")"
expect_fail "--piece-model without pieces" "--piece-model applies to --tokenizer sentencepiece" \
  reel prep --piece-model bpe "$WORK/train.tsv" "$WORK/bad"
expect_fail "--vocab-size with --tokenizer-model" "--tokenizer-model .* fixes the pieces" \
  reel prep --tokenizer-model "$WORK/sp/pieces.model" --vocab-size 500 "$WORK/train.tsv" "$WORK/bad"
! prep_pieces "$WORK/bad" --vocab-size 100000 &&
  grep -q "training the piece model failed: .*Vocabulary size too high (100000)" "$WORK/prep_err.txt" &&
  [ "$(wc -l <"$WORK/prep_err.txt")" = 1 ] && pass "more pieces than the text has: one line of error, no trainer log" ||
  fail "prep's stderr for 100000 pieces: $(head -c 600 "$WORK/prep_err.txt")"
expect_fail "a non-model" "not a SentencePiece model" \
  reel prep --format tsv --tokenizer-model "$WORK/sp/vocab.txt" "$WORK/train.tsv" "$WORK/bad"

# A tiny GPT on the pieces.
write_small_gpt_config "$WORK/gpt.ini" "$WORK/sp"
sed -i 's/^vocab_size = 600/vocab_size = 400/' "$WORK/gpt.ini"
expect_ok "a GPT trains on pieces" reel train "$WORK/gpt.ini" --run-dir "$WORK/run" --set train.max_steps=6 \
  --set objective.eval_docs=0
ckpt="$WORK/run/ckpt_00000006.h5"
"$H5PY_PYTHON" - "$ckpt" "$WORK/sp/pieces.model" <<'PY' && pass "the checkpoint holds the piece model" || fail "no /pieces"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
assert f["pieces"][()].tobytes() == open(sys.argv[2], "rb").read()
assert f.attrs["tokenizer"] in ("sentencepiece", b"sentencepiece"), f.attrs["tokenizer"]
assert len(f["vocab"][()].decode().splitlines()) == 400
PY

# Raw text through the checkpoint's piece model: predict's perplexity equals eval's on test.tok.
expect_ok "eval on test" reel eval "$ckpt" --split test
eval_ppl=$(sed -n 's/^perplexity *\([0-9.]*\)$/\1/p' "$WORK/out.txt")
cp "$WORK/out.txt" "$WORK/eval_pieces.txt"

# Bits per byte and perplexity per word: the total loss over the test text's bytes and words, which
# prep.ini records and are the same for both tokenizers; so a word-level GPT and the piece-level one
# are compared on the same denominators. A part of the split has neither (NaN).
write_small_gpt_config "$WORK/gpt_words.ini" "$WORK/words"
expect_ok "a GPT trains on words" reel train "$WORK/gpt_words.ini" --run-dir "$WORK/run_words" --set train.max_steps=6 \
  --set objective.eval_docs=0
expect_ok "eval it on test" reel eval "$WORK/run_words/ckpt_00000006.h5" --split test
cp "$WORK/out.txt" "$WORK/eval_words.txt"
"$H5PY_PYTHON" - "$WORK/eval_pieces.txt" "$WORK/eval_words.txt" "$(ini_get "$WORK/sp/prep.ini" test_bytes)" \
  "$(ini_get "$WORK/sp/prep.ini" test_words)" <<'PY' && pass "bits per byte and word perplexity of both models" || fail "bits per byte"
import math, sys
nbytes, words = int(sys.argv[3]), int(sys.argv[4])
for path in sys.argv[1:3]:
    v = dict(l.split(None, 1) for l in open(path) if l[:1].isalpha() and len(l.split()) >= 2)
    loss, tokens = float(v["loss"]), int(v["tokens"])
    total = loss * tokens  # nats over every prediction
    bpb, wppl = float(v["bits_per_byte"]), float(v["word_perplexity"])
    assert abs(bpb - total / math.log(2) / nbytes) <= 2e-4 * bpb, (path, bpb, total / math.log(2) / nbytes)
    assert abs(math.log(wppl) - total / words) <= 2e-4 * math.log(wppl), (path, wppl, math.exp(total / words))
    print(path, "tokens", tokens, "bits per byte", bpb, "word perplexity", wppl)
PY
expect_ok "eval on half the test split" reel eval "$ckpt" --split test --docs 50
grep -q '^bits_per_byte *nan$' "$WORK/out.txt" && pass "no bits per byte for part of a split" || fail "bits per byte of a part: $(grep bits "$WORK/out.txt")"
mv "$WORK/sp" "$WORK/sp_moved" # no data directory for the use commands
expect_ok "score the test reviews as raw text" reel predict "$ckpt" "$WORK/test.txt" --json
"$H5PY_PYTHON" - "$WORK/out.txt" "$eval_ppl" <<'PY' && pass "predict's perplexity equals eval's ($eval_ppl)" || fail "predict and eval disagree"
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 100 and all(r["unknown"] == 0 for r in rows)
ppl = math.exp(sum(r["nll"] for r in rows) / sum(r["tokens"] for r in rows))
assert abs(ppl - float(sys.argv[2])) / float(sys.argv[2]) < 1e-4, (ppl, sys.argv[2])
PY
expect_ok "generate" reel generate "$ckpt" --prime "The FILM was <br /> great" --length 8 --samples 2 --seed 1
grep -q 'prime "the film was   great"' "$WORK/out.txt" && ! grep -q $'\u2581' "$WORK/out.txt" &&
  grep -q '^\[2\] the film was   great |' "$WORK/out.txt" && pass "generate prints decoded text" ||
  { fail "generate's text:"; cat "$WORK/out.txt" >&2; }
expect_ok "export the piece vectors" reel export vectors "$ckpt" "$WORK/v.vec"
[ "$(head -1 "$WORK/v.vec")" = "400 16" ] && grep -q $'^\u2581' "$WORK/v.vec" && pass "400 piece vectors" || fail "vectors: $(head -1 "$WORK/v.vec")"
# reel serve: the same encoding and decoding as predict and generate
start_server pieces "$ckpt"
request POST /v1/generate '{"prime": "The FILM was <br /> great", "length": 8, "seed": 1, "stop_at_eod": false}' >"$WORK/gen.json"
reel generate "$ckpt" --prime "The FILM was <br /> great" --length 8 --seed 1 >"$WORK/gen.txt"
head -3 "$WORK/test.txt" >"$WORK/three.txt"
python3 -c 'import json, sys; print(json.dumps({"texts": [l.rstrip("\n") for l in open(sys.argv[1])]}))' "$WORK/three.txt" >"$WORK/three.json"
request POST /v1/predict "$(cat "$WORK/three.json")" | head -n -1 >"$WORK/served.json"
reel predict "$ckpt" "$WORK/three.txt" --json >"$WORK/three.jsonl"
"$H5PY_PYTHON" - "$WORK/gen.json" "$WORK/gen.txt" "$WORK/served.json" "$WORK/three.jsonl" <<'PY' \
  && pass "serve generates and scores as generate and predict" || fail "serve differs"
import json, sys
body, status = open(sys.argv[1]).read().rsplit("\n", 1)
assert status.strip() == "200", body
served = json.loads(body)
line = [l.rstrip("\n") for l in open(sys.argv[2]) if l.startswith("[1] ")][0]
assert served["prime"] == "the film was   great", served
assert line == "[1] " + served["prime"] + " |" + served["samples"][0], (line, served)
ppl = [p["perplexity"] for p in json.load(open(sys.argv[3]))["predictions"]]
local = [json.loads(l)["perplexity"] for l in open(sys.argv[4])]
assert len(ppl) == 3 and all(abs(a - b) <= 1e-6 * b for a, b in zip(ppl, local)), (ppl, local)
PY
mv "$WORK/sp_moved" "$WORK/sp"

# Mismatches, named.
expect_fail "eval on a word directory" "ckpt_00000006.h5 was trained on sentencepiece tokens, but .*words/vocab.txt is a vocabulary of word tokens" \
  reel eval "$ckpt" --data "$WORK/words"
expect_fail "eval on another piece model" "ckpt_00000006.h5 and .*bpe/vocab.txt use two different SentencePiece models" \
  reel eval "$ckpt" --data "$WORK/bpe"
expect_fail "resume on another piece model" "two different SentencePiece models" \
  reel train "$WORK/gpt.ini" --run-dir "$WORK/run2" --set "data.dir=$WORK/bpe" --resume "$ckpt"
expect_fail "init_from with words" "was trained on sentencepiece tokens, but .*words/vocab.txt is a vocabulary of word tokens" \
  reel train "$WORK/gpt.ini" --run-dir "$WORK/run3" --set "data.dir=$WORK/words" --set "model.init_from=$ckpt"
# a run directory continued (automatic resume) on another piece model: every checkpoint is refused by
# name, and nothing is moved or lost
before=$(cd "$WORK/run" && ls)
expect_fail "automatic resume on another piece model" "skipping unusable checkpoint: .*ckpt_00000006.h5 and .*bpe/vocab.txt use two different SentencePiece models" \
  reel train "$WORK/gpt.ini" --run-dir "$WORK/run" --set "data.dir=$WORK/bpe"
[ "$(cd "$WORK/run" && ls)" = "$before" ] && pass "the refused run directory is as it was" \
  || fail "the run directory changed: $(cd "$WORK/run" && ls | tr '\n' ' ')"
cp "$WORK/bpe/pieces.model" "$WORK/sp3/pieces.model"
expect_fail "a vocabulary beside another model" "piece id [0-9]+ is .* in .*sp3/pieces.model but .* in .*sp3/vocab.txt" \
  reel eval "$ckpt" --data "$WORK/sp3"
expect_fail "a model that cuts the pieces" "vocab_size = 300, but .*vocabulary of 400 SentencePiece pieces" \
  reel train "$WORK/gpt.ini" --run-dir "$WORK/run4" --set model.vocab_size=300
finish
