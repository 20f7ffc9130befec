# Word vectors: GloVe text, word2vec / fastText .vec with its header, gzip-compressed, into the embedding
# by word ([model] embed_from), with the coverage reported; every malformed file is an error naming the
# file and the line; `reel export vectors` writes what embed_from reads back bit for bit; `reel export
# text` writes the corpus as reel tokenized it, and fastText (Debian's package) trains vectors on it that
# reel then loads.
source "$(dirname "$0")/lib.sh"

require_h5py
make_small_data "$WORK/data" 1500
write_small_config "$WORK/bow.ini" "$WORK/data"   # embed_dim 16
# 40 words of the vocabulary (ids 3..42) and 5 the vocabulary lacks, with values a decimal writes exactly
"$H5PY_PYTHON" - "$WORK/data/vocab.txt" "$WORK" <<'PY'
import sys, gzip
words = [line.split("\t")[0] for line in open(sys.argv[1], encoding="utf-8")][3:43]
rows = [(w, [round((i * 16 + d) % 97 / 64 - 0.75, 6) for d in range(16)]) for i, w in enumerate(words)]
rows += [(f"zzz{i}", [0.5] * 16) for i in range(5)]
body = "".join(w + " " + " ".join(f"{v:.6f}" for v in vec) + "\n" for w, vec in rows)
open(f"{sys.argv[2]}/glove.txt", "w").write(body)
open(f"{sys.argv[2]}/vectors.vec", "w").write(f"{len(rows)} 16\n" + body)
with gzip.open(f"{sys.argv[2]}/vectors.vec.gz", "wt") as f:
    f.write(f"{len(rows)} 16\n" + body)
PY

# equal_rows RUN_CHECKPOINT VECTORS: prints "E of M": of the M rows the file's words have in the
# embedding (the file's words that are in the vocabulary), E equal its values exactly
equal_rows() {
  "$H5PY_PYTHON" - "$1" "$2" "$WORK/data/vocab.txt" <<'PY'
import sys, h5py, numpy as np
words = [line.split("\t")[0] for line in open(sys.argv[3], encoding="utf-8")]
ids = {w: i for i, w in enumerate(words)}
emb = h5py.File(sys.argv[1], "r")["model/embedding/weight"][()]
matched = equal = 0
for line in open(sys.argv[2]):
    fields = line.split()
    if len(fields) == 2:
        continue
    word, values = fields[0], np.array([np.float32(float(v)) for v in fields[1:]], dtype=np.float32)
    if word in ids and ids[word] < emb.shape[0]:
        matched += 1
        equal += bool(np.array_equal(emb[ids[word]], values))
print(f"{equal} of {matched}")
PY
}

for file in glove.txt vectors.vec vectors.vec.gz; do
  expect_ok "embedding from $file" reel train "$WORK/bow.ini" --run-dir "$WORK/run_$file" --set model.embed_from="$WORK/$file" \
    --set optimizer.freeze=embedding --set train.max_steps=3
  grep -q "embedding from .*$file: 40 of 473 words have a vector (8.5%; the file holds 45 of width 16)" "$WORK/out.txt" \
    && pass "$file: coverage reported" || { fail "$file: coverage line"; grep "embedding from" "$WORK/out.txt" >&2 || true; }
  rows=$(equal_rows "$WORK/run_$file/ckpt_00000003.h5" "$WORK/glove.txt" 2>&1)
  [ "$rows" = "40 of 40" ] && pass "$file: rows are the vectors (frozen: $rows equal)" || fail "$file: rows: $rows equal the vectors"
done
expect_ok "trained, not frozen" reel train "$WORK/bow.ini" --run-dir "$WORK/trained" --set model.embed_from="$WORK/glove.txt" \
  --set train.max_steps=3
# the 40 words are the vocabulary's most frequent, so every one is in the first batches and moves
rows=$(equal_rows "$WORK/trained/ckpt_00000003.h5" "$WORK/glove.txt" 2>&1)
[ "$rows" = "0 of 40" ] && pass "without freezing the embedding trains (0 of 40 rows still the vectors)" \
  || fail "not frozen: $rows rows still equal the vectors (expected 0 of 40)"

# --- errors, each naming the file and the line
head -5 "$WORK/glove.txt" >"$WORK/bad_value.txt"; echo "$(head -1 "$WORK/glove.txt" | cut -d' ' -f1) $(printf '0.1 %.0s' $(seq 15)) x1" >>"$WORK/bad_value.txt"
expect_fail "a value that is not a number" "bad_value.txt:6: value 16, 'x1', is not a finite number" \
  reel train "$WORK/bow.ini" --run-dir "$WORK/e1" --set model.embed_from="$WORK/bad_value.txt"
head -3 "$WORK/glove.txt" >"$WORK/short.txt"; echo "word 0.1 0.2 0.3" >>"$WORK/short.txt"
expect_fail "a short line" "short.txt:4: 4 fields: expected a word and 16 values \(the width of the first vector\)" \
  reel train "$WORK/bow.ini" --run-dir "$WORK/e2" --set model.embed_from="$WORK/short.txt"
expect_fail "another width" "glove.txt:1: the vectors have 16 values, but \[model\] embed_dim = 8" \
  reel train "$WORK/bow.ini" --run-dir "$WORK/e3" --set model.embed_from="$WORK/glove.txt" --set model.embed_dim=8
{ echo "99 16"; tail -n +2 "$WORK/vectors.vec"; } >"$WORK/header.vec"
expect_fail "a header that does not match" "header.vec: the header announces 99 vectors, the file holds 45" \
  reel train "$WORK/bow.ini" --run-dir "$WORK/e4" --set model.embed_from="$WORK/header.vec"
grep "^zzz" "$WORK/glove.txt" >"$WORK/foreign.txt"
expect_fail "no word of the vocabulary" "foreign.txt: none of its 5 words is in the vocabulary" \
  reel train "$WORK/bow.ini" --run-dir "$WORK/e5" --set model.embed_from="$WORK/foreign.txt"
expect_fail "a missing file" "nothere.vec: cannot read the vectors: Failed to open '.*/nothere.vec'" reel train "$WORK/bow.ini" --run-dir "$WORK/e6" --set model.embed_from="$WORK/nothere.vec"
for d in e1 e2 e3 e4 e5 e6; do [ -z "$(ls "$WORK/$d" 2>/dev/null | grep ckpt_)" ] || fail "$d wrote a checkpoint"; done

# --- export: a checkpoint's embedding, read back bit for bit
expect_ok "export vectors" reel export vectors "$WORK/trained/ckpt_00000003.h5" "$WORK/exported.vec"
[ "$(head -1 "$WORK/exported.vec")" = "476 16" ] && pass "export header" || fail "export header: $(head -1 "$WORK/exported.vec")"
expect_ok "embedding from the export" reel train "$WORK/bow.ini" --run-dir "$WORK/reread" --set model.embed_from="$WORK/exported.vec" \
  --set optimizer.freeze=embedding --set train.max_steps=1
"$H5PY_PYTHON" - "$WORK/trained/ckpt_00000003.h5" "$WORK/reread/ckpt_00000001.h5" <<'PY' && pass "export round trip: bit for bit (but the reserved rows)" || fail "round trip"
import sys, h5py, numpy as np
a = h5py.File(sys.argv[1], "r")["model/embedding/weight"][()]
b = h5py.File(sys.argv[2], "r")["model/embedding/weight"][()]
assert np.array_equal(a[3:].view(np.uint32), b[3:].view(np.uint32))  # <pad>, <unk>, <eod> are never matched
PY

# --- export text, and fastText vectors trained on it
expect_ok "export text" reel export text "$WORK/data" "$WORK/corpus.txt"
docs=$(wc -l <"$WORK/corpus.txt")
[ "$docs" -eq 1500 ] && pass "one line per document (train, valid: 1500)" || fail "export text: $docs lines"
# fastText comes with scripts/install-deps: without it this is a failure, not a skip
if command -v fasttext >/dev/null; then
  fasttext skipgram -input "$WORK/corpus.txt" -output "$WORK/ft" -dim 16 -epoch 2 -minCount 1 -thread 1 -verbose 0 \
    >"$WORK/fasttext.log" 2>&1 || { fail "fasttext skipgram"; tail -5 "$WORK/fasttext.log" >&2; }
  expect_ok "embedding from fastText's vectors" reel train "$WORK/bow.ini" --run-dir "$WORK/ft_run" --set model.embed_from="$WORK/ft.vec"
  grep -Eq "embedding from .*ft.vec: 473 of 473 words have a vector" "$WORK/out.txt" && pass "fastText covers the vocabulary" \
    || { fail "fastText coverage"; grep "embedding from" "$WORK/out.txt" >&2 || true; }
else
  fail "fasttext is not installed: Debian's fasttext trains the vectors of the last check (run scripts/install-deps)"
fi
finish
