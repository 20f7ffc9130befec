# reel generate: a model trained on a tiny deterministic corpus reproduces it; the same seed gives the
# same text; temperature -> 0 is the greedy continuation; top-k 1 is greedy too, and so is a tiny top-p
# while top-p 1 changes nothing; and the bad inputs
# (a classifier's checkpoint, a prime longer than the model takes, a corrupt checkpoint, bad options)
# are named errors.
source "$(dirname "$0")/lib.sh"
require_h5py

# Two kinds of document, 100 of each: every word but the first follows from the words before it.
for i in $(seq 1 100); do
  echo "alpha bravo charlie delta echo foxtrot golf ."
  echo "kilo lima mike november oscar papa quebec !"
done >"$WORK/corpus.txt"
expect_ok "prep of the tiny corpus" reel prep --format text --valid-count 20 "$WORK/corpus.txt" "$WORK/data"
write_tiny_lm_config "$WORK/tiny.ini" "$WORK/data" 30
cat >>"$WORK/tiny.ini" <<INI
[checkpoint]
keep_last = 2
INI
expect_ok "train on it" mpireel 2 train "$WORK/tiny.ini" --run-dir "$WORK/run"
ckpt="$WORK/run/ckpt_best.h5"

expect_ok "greedy from 'kilo lima'" reel generate "$ckpt" --prime "kilo lima" --temperature 0 --length 8 --stop-at-eod
grep -qx '\[1\] kilo lima | mike november oscar papa quebec! <eod>' "$WORK/out.txt" && pass "reproduces the corpus" \
  || { fail "greedy continuation:"; cat "$WORK/out.txt" >&2; }
expect_ok "greedy from nothing" reel generate "$ckpt" --temperature 0 --length 10 --stop-at-eod
grep -Eqx '\[1\] \| (alpha bravo charlie delta echo foxtrot golf\.|kilo lima mike november oscar papa quebec!) <eod>' \
  "$WORK/out.txt" && pass "starts a document from nothing" || { fail "from nothing:"; cat "$WORK/out.txt" >&2; }

# The same seed, the same text; another seed, other text (at temperature 1.5 the tiny model's choices
# are spread enough that 4 samples of 30 tokens differ).
reel generate "$ckpt" --prime "alpha" --temperature 1.5 --samples 4 --length 30 --seed 11 >"$WORK/a.txt"
reel generate "$ckpt" --prime "alpha" --temperature 1.5 --samples 4 --length 30 --seed 11 >"$WORK/b.txt"
reel generate "$ckpt" --prime "alpha" --temperature 1.5 --samples 4 --length 30 --seed 12 >"$WORK/c.txt"
cmp -s "$WORK/a.txt" "$WORK/b.txt" && pass "same seed, same text" || fail "the same seed gave other text"
cmp -s <(tail -n +2 "$WORK/a.txt") <(tail -n +2 "$WORK/c.txt") && fail "another seed gave the same text" || pass "another seed, other text"
# a sample does not depend on how many are drawn with it
reel generate "$ckpt" --prime "alpha" --temperature 1.5 --samples 1 --length 30 --seed 11 >"$WORK/one.txt"
[ "$(sed -n 2p "$WORK/one.txt")" = "$(sed -n 2p "$WORK/a.txt")" ] && pass "sample 1 is the same alone" || fail "sample 1 depends on --samples"

# temperature -> 0 is the greedy choice, and so is top-k 1
reel generate "$ckpt" --prime "charlie" --temperature 0 --length 12 | tail -n +2 >"$WORK/greedy.txt"
reel generate "$ckpt" --prime "charlie" --temperature 0.001 --length 12 --seed 5 | tail -n +2 >"$WORK/cold.txt"
reel generate "$ckpt" --prime "charlie" --temperature 1 --top-k 1 --length 12 --seed 9 | tail -n +2 >"$WORK/topk.txt"
cmp -s "$WORK/greedy.txt" "$WORK/cold.txt" && pass "temperature 0.001 == greedy" || fail "temperature 0.001 differs from greedy"
cmp -s "$WORK/greedy.txt" "$WORK/topk.txt" && pass "top-k 1 == greedy" || fail "top-k 1 differs from greedy"

# top-p (nucleus sampling): with P = 1e-6 the nucleus is the most likely token alone, so every sample at
# temperature 1.5 is the greedy text, which plain sampling with the same seed is not (the check can tell
# a top-p that is ignored); top-p 1 keeps every token, the same text as no top-p. Which tokens a nucleus
# holds for given probabilities is tested on the sampler itself (tests/test_sampling.c), and below on the
# model's probabilities.
reel generate "$ckpt" --prime "alpha" --temperature 0 --samples 4 --length 30 | tail -n +2 >"$WORK/greedy4.txt"
reel generate "$ckpt" --prime "alpha" --temperature 1.5 --top-p 1e-6 --samples 4 --length 30 --seed 11 | tail -n +2 >"$WORK/topp.txt"
reel generate "$ckpt" --prime "alpha" --temperature 1.5 --top-p 1 --samples 4 --length 30 --seed 11 | tail -n +2 >"$WORK/topp1.txt"
cmp -s "$WORK/greedy4.txt" "$WORK/topp.txt" && pass "top-p 1e-6 at temperature 1.5 == greedy, in all 4 samples" \
  || { fail "top-p 1e-6 differs from greedy:"; diff "$WORK/greedy4.txt" "$WORK/topp.txt" >&2 || true; }
cmp -s "$WORK/greedy4.txt" <(tail -n +2 "$WORK/a.txt") && fail "plain sampling at temperature 1.5 is greedy: top-p 1e-6 was not tested" \
  || pass "plain sampling with the same seed is not greedy"
cmp -s "$WORK/topp1.txt" <(tail -n +2 "$WORK/a.txt") && pass "top-p 1 == no top-p" || fail "top-p 1 changed the text"
grep -q "top-p 1e-06," <(reel generate "$ckpt" --top-p 1e-6 --length 1) && pass "the header shows top-p" || fail "top-p not in the header"

# The nucleus of the model's own probabilities: reel does not print them, so this recomputes them from
# the checkpoint's tensors (the one-layer LSTM and decoder in numpy, float64) along each sample's own
# tokens, and every token drawn with top-p 0.8 must lie in the nucleus there (widened by 1e-6 for float
# rounding). The same forward must give reel's greedy text, so it is the model's forward; and enough
# positions must leave 5% or more outside the nucleus that a sampler ignoring top-p would be caught.
cat >"$WORK/nucleus.py" <<'PY'
import sys, h5py, numpy as np
ckpt, vocab_path, samples_path, temperature, top_p = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
m = h5py.File(ckpt, "r")["model"]
E = m["embedding/weight"][()].astype(np.float64)
W_ih, W_hh, b_ih, b_hh = (m["lstm_l0_fwd/" + n][()].astype(np.float64) for n in ("w_ih", "w_hh", "b_ih", "b_hh"))
W_d, b_d = m["decoder/weight"][()].astype(np.float64), m["decoder/bias"][()].astype(np.float64)
H = W_hh.shape[1]
words = [line.split("\t")[0] for line in open(vocab_path, encoding="utf-8")]
ids = {w: i for i, w in enumerate(words)}
sigmoid = lambda x: 1 / (1 + np.exp(-x))

def step(h, c, token):
    g = W_ih @ E[token] + b_ih + W_hh @ h + b_hh
    i, f, u, o = sigmoid(g[:H]), sigmoid(g[H:2 * H]), np.tanh(g[2 * H:3 * H]), sigmoid(g[3 * H:])
    c = f * c + i * u
    return o * np.tanh(c), c

def tokens(text):
    return [ids[t] for t in text.replace(".", " . ").replace("!", " ! ").split()]

checked = greedy_checked = open_positions = 0
for line in open(samples_path, encoding="utf-8"):
    prime, drawn = line.split("] ", 1)[1].split("|", 1)
    h, c = np.zeros(H), np.zeros(H)
    for t in [ids["<eod>"]] + tokens(prime):
        h, c = step(h, c, t)
    for k, t in enumerate(tokens(drawn)):
        logits = W_d @ h + b_d
        logits[ids["<pad>"]] = logits[ids["<unk>"]] = -np.inf
        if temperature == 0:
            top2 = np.sort(logits)[-2:]
            if top2[1] - top2[0] > 1e-4:   # a clear argmax (float32 in reel, float64 here)
                assert t == int(np.argmax(logits)), f"{line.strip()}: token {k} is {words[t]}, the argmax is {words[int(np.argmax(logits))]}"
                greedy_checked += 1
        else:
            p = np.exp((logits - logits.max()) / temperature)
            p /= p.sum()
            order = np.argsort(-p, kind="stable")
            cum = np.cumsum(p[order])
            # the nucleus, widened by float rounding: no token reel may draw is left out
            size = int(np.searchsorted(cum, min(top_p + 1e-6, 1.0) - 1e-12) + 1)
            nucleus = set(order[:size].tolist())
            assert t in nucleus, f"{line.strip()}: token {k} '{words[t]}' (p {p[t]:.4f}) is outside the nucleus {[words[i] for i in order[:size]]}"
            open_positions += 1 - cum[size - 1] >= 0.05   # a sampler without top-p would leave it 5% of the time or more
            checked += 1
        h, c = step(h, c, t)
print(f"{greedy_checked} greedy draws the argmax" if temperature == 0 else
      f"{checked} draws in the nucleus ({open_positions} with 5% or more outside it)")
PY
reel generate "$ckpt" --prime "alpha" --temperature 0 --samples 2 --length 30 | tail -n +2 >"$WORK/greedy2.txt"
reel generate "$ckpt" --prime "alpha" --temperature 1.5 --top-p 0.8 --samples 8 --length 30 --seed 11 | tail -n +2 >"$WORK/nucleus.txt"
status=0 greedy=$("$H5PY_PYTHON" "$WORK/nucleus.py" "$ckpt" "$WORK/data/vocab.txt" "$WORK/greedy2.txt" 0 1 2>&1) || status=$?
nucleus_status=0 nucleus=$("$H5PY_PYTHON" "$WORK/nucleus.py" "$ckpt" "$WORK/data/vocab.txt" "$WORK/nucleus.txt" 1.5 0.8 2>&1) \
  || nucleus_status=$?
open=$(sed -n 's/.*(\([0-9]*\) with 5%.*/\1/p' <<<"$nucleus")
argmax=$(sed -n 's/^\([0-9]*\) greedy draws the argmax$/\1/p' <<<"$greedy")
if [ "$status" -ne 0 ]; then fail "the forward here is not reel's (greedy text): $(tail -1 <<<"$greedy")"
elif [ "$nucleus_status" -ne 0 ]; then fail "top-p 0.8: $(tail -1 <<<"$nucleus")"
elif [ "${argmax:-0}" -ge 50 ] && [ "${open:-0}" -ge 20 ]; then
  pass "top-p 0.8: $nucleus; greedy: $argmax draws the argmax of the same forward"
else fail "top-p 0.8: the check is too weak here: $nucleus; greedy: $greedy"; fi

# words outside the vocabulary are reported and read as <unk>, which is never drawn
expect_ok "unknown words in the prime" reel generate "$ckpt" --prime "alpha zulu xray" --length 50 --temperature 3
grep -q "2 word(s) of the prime are not in the model's vocabulary.*zulu, xray" "$WORK/err.txt" && pass "unknown words named" \
  || fail "unknown words not reported"
# 50 tokens drawn at temperature 3 (an empty sample would pass the check vacuously)
drawn=$(sed -n 2p "$WORK/out.txt" | sed 's/^.*| //')
if [ "$(wc -w <<<"$drawn")" -lt 20 ]; then fail "the sample at temperature 3 is too short to check: '$drawn'"
elif grep -qE '<unk>|<pad>' <<<"$drawn"; then fail "drew <unk> or <pad>: $drawn"
else pass "never draws <unk> or <pad> ($(wc -w <<<"$drawn") words drawn at temperature 3)"; fi

# bad input
write_small_config "$WORK/bow.ini" "$WORK/data"
make_small_data "$WORK/labelled" 600
expect_ok "a classifier" reel train "$WORK/bow.ini" --set data.dir="$WORK/labelled" --set train.epochs=1 --run-dir "$WORK/bow"
expect_fail "generate from a classifier" "ckpt_best.h5: model type 'bow' is a classifier.*needs a language model" \
  reel generate "$WORK/bow/ckpt_best.h5"
expect_fail "a prime longer than the model takes" "--prime has 8 tokens.*more than the model takes \(--max-context 10\)" \
  reel generate "$ckpt" --prime "alpha bravo charlie delta echo foxtrot golf ." --length 5 --max-context 10
cp "$ckpt" "$WORK/cut.h5" && truncate -s $(($(stat -c %s "$ckpt") / 2)) "$WORK/cut.h5"
expect_fail "a corrupt checkpoint" "cut.h5.*(truncated|corrupt)" reel generate "$WORK/cut.h5"
expect_fail "a bad temperature" "--temperature '-1'" reel generate "$ckpt" --temperature -1
expect_fail "top-p 0" "--top-p '0': expected a number in \[1e-09, 1\]" reel generate "$ckpt" --top-p 0
expect_fail "top-p above 1" "--top-p '1.5': expected a number in \[1e-09, 1\]" reel generate "$ckpt" --top-p 1.5
expect_fail "top-p not a number" "--top-p 'half': expected a number in \[1e-09, 1\]" reel generate "$ckpt" --top-p half
expect_fail "no checkpoint" "nothere.h5" reel generate "$WORK/nothere.h5"
finish
