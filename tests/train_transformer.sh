# The Transformer classifier ([model] type = transformer) trained and used end to end, tiny (width 16, 2
# blocks, context 32, every dropout, mean pooling, length buckets; from scratch on 1,000 reviews it needs
# about 3 epochs to leave chance): 1 rank equals 2 within float tolerance; a run stopped
# after step 5 and resumed equals an uninterrupted one bit for bit; it learns; reel eval reads whole
# reviews (about 4 windows of 32 tokens each), predict agrees with eval on raw text and serve with predict,
# eval --lengths and analyze run; adversarial training, VAT, class weights with early stopping and word
# vectors (embed_from) work with it; and fine-tuning from a GPT (issue 20, section 3): a causal classifier started with init_from
# a tiny GPT holds exactly the GPT's tensors (bit for bit) after steps in which they were frozen, trains
# the ones it was not told to freeze, unfreezes block by block from the top, and a bidirectional one is
# refused.
source "$(dirname "$0")/lib.sh"
require_h5py

make_small_data "$WORK/data" 1500 # vocabulary 600; reviews of about 120 tokens

cat >"$WORK/xf.ini" <<INI
[data]
dir = $WORK/data
seq_len = 32
[model]
type = transformer
vocab_size = 600
embed_dim = 16
num_layers = 2
num_heads = 2
max_context = 32
dropout = 0.1
attention_dropout = 0.1
head_dropout = 0.2
pooling = mean
[objective]
length_buckets = 4
[optimizer]
type = adam
lr = 0.003
eps = 1e-6
clip_norm = 1.0
[train]
epochs = 4
batch_size = 50
log_every = 5
seed = 5
[checkpoint]
keep_last = 100
INI

# --- 1 vs 2 ranks (the ranks sum the same gradient in another order: within float rounding), compared
# at the end of epoch 2: the model leaves chance in epoch 3, where the runs' rounding differences grow
# (measured: within 1e-3 at step 40, 0.09 apart in block0 at step 80; a wrong share or dropout mask
# already differs by far more at step 40)
for n in 1 2; do expect_ok "$n rank(s)" mpireel $n train "$WORK/xf.ini" --run-dir "$WORK/xf$n"; done
final=ckpt_00000080.h5
if "$CKPT_COMPARE" "$WORK/xf1/ckpt_00000040.h5" "$WORK/xf2/ckpt_00000040.h5" --tol 1e-3 --ignore /@world_size_at_save; then
  pass "1 rank == 2 ranks"; else fail "1 rank != 2 ranks"; fi

# --- throughput series: tokens_per_s is the tokens read (at most seq_len = 32 per review, about 120 long)
# per second, and model_gflops is it times the FLOP per token counted independently here from the
# checkpoint's tensors: 6 per parameter that multiplies (not the embedding, the positions or the head)
# plus attention's 12 L C T
"$H5PY_PYTHON" - "$WORK/xf2/metrics.h5" "$WORK/xf2/$final" <<'PY' && pass "tokens_per_s and model_gflops" || fail "tokens_per_s or model_gflops wrong"
import sys, h5py, numpy as np
m = h5py.File(sys.argv[1], "r", swmr=True)["train"]
tokens, docs, gflops = m["tokens_per_s"][:], m["samples_per_s"][:], m["model_gflops"][:]
model = h5py.File(sys.argv[2], "r")["model"]
sizes = {}
model.visit(lambda n: sizes.__setitem__(n, model[n].size) if isinstance(model[n], h5py.Dataset) else None)
matmul = sum(v for n, v in sizes.items() if not n.startswith(("embedding", "position", "output")))
flops = 6 * matmul + 12 * 2 * 16 * 32
per_doc = tokens / docs
assert len(tokens) >= 10 and np.all((per_doc > 25) & (per_doc <= 32)), per_doc
assert np.allclose(gflops, tokens * flops / 1e9, rtol=1e-9), (gflops[:3], tokens[:3] * flops / 1e9)
assert np.all(np.isnan(m["mfu"][:])), "mfu without peak_gflops"
PY

# --- resume: stopped after step 5, resumed on 2 ranks, bit for bit
status=0
REEL_STOP_AFTER_STEP=5 "$MPIEXEC" -np 2 --oversubscribe "$REEL_BIN" train "$WORK/xf.ini" --run-dir "$WORK/split" \
  >"$WORK/stop.log" 2>&1 || status=$?
[ "$status" -eq 75 ] && pass "stopped at step 5" || fail "stop at step 5: status $status"
expect_ok "resumed" mpireel 2 train "$WORK/xf.ini" --run-dir "$WORK/split"
grep -q "resuming from .*ckpt_00000005.h5" "$WORK/out.txt" && pass "resumed from step 5" || fail "did not resume from step 5"
if "$CKPT_COMPARE" "$WORK/xf2/$final" "$WORK/split/$final" --exact >/dev/null; then
  pass "resume: bit for bit"; else fail "the resumed run differs"; fi

# --- it learns, and reads whole reviews in windows
ckpt="$WORK/xf2/ckpt_best.h5"
expect_ok "eval" reel eval "$ckpt" --split test
check_eval_report "$WORK/out.txt" test 500
eval_acc=${EVAL_ACC%\%}
awk -v a="$eval_acc" 'BEGIN { exit !(a > 65) }' && pass "it learns: $EVAL_ACC on whole test reviews" \
  || fail "accuracy $EVAL_ACC: not learning"
cut -f2 "$WORK/synth_test.tsv" | tail -n +2 >"$WORK/test.txt"
cut -f1 "$WORK/synth_test.tsv" | tail -n +2 >"$WORK/labels.txt"
awk '{ n += NF } END { exit !(n / NR > 64) }' "$WORK/test.txt" && pass "test reviews span several windows" \
  || fail "the test reviews fit one window: the windows are not exercised"
expect_ok "predict" reel predict "$ckpt" "$WORK/test.txt" --json
"$H5PY_PYTHON" - "$WORK/out.txt" "$WORK/labels.txt" "$eval_acc" <<'PY' && pass "predict's accuracy equals eval's" || fail "predict and eval disagree"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
labels = [l.strip() for l in open(sys.argv[2])]
acc = 100 * sum(r["label"] == l for r, l in zip(rows, labels)) / len(rows)
assert len(rows) == len(labels) and abs(acc - float(sys.argv[3])) < 0.005, (acc, sys.argv[3])
PY
expect_ok "eval --lengths" reel eval "$ckpt" --split test --lengths 16,200
grep -q "16" "$WORK/out.txt" && pass "eval --lengths reports its cuts" || fail "eval --lengths printed no cut"
expect_ok "analyze" reel analyze "$ckpt" --split test
# served predictions equal reel predict's (texts of 1 to 3 windows and an empty one)
head -3 "$WORK/test.txt" >"$WORK/three.txt" && echo "" >>"$WORK/three.txt"
"$REEL_BIN" predict "$ckpt" "$WORK/three.txt" --json >"$WORK/three.jsonl"
start_server xf "$ckpt"
texts=$("$H5PY_PYTHON" -c "import json, sys; print(json.dumps(open(sys.argv[1]).read().split(chr(10))[:4]))" "$WORK/three.txt")
request POST /v1/predict "{\"texts\": $texts}" | head -n -1 >"$WORK/served.json"
"$H5PY_PYTHON" - "$WORK/served.json" "$WORK/three.jsonl" <<'PY' && pass "served predictions equal reel predict's" || fail "served and predicted differ"
import json, sys
served = json.load(open(sys.argv[1]))["predictions"]
local = [json.loads(l) for l in open(sys.argv[2])]
assert len(served) == 4 and len(local) == 4, (served, local)
for s, l in zip(served, local):
    if "error" in l:
        assert s["error"] == l["error"], (s, l)
        continue
    assert s["label"] == l["label"] and s["tokens"] == l["tokens"], (s, l)
    assert all(abs(s["probabilities"][k] - l["probabilities"][k]) < 1e-6 for k in l["probabilities"]), (s, l)
PY
stop_servers

# --- the other classifier options: adversarial training perturbs the embedded tokens (the loss at the
# perturbation is above the clean one), VAT, class weights with early stopping, word vectors
expect_ok "adversarial" mpireel 2 train "$WORK/xf.ini" --run-dir "$WORK/adv" --set train.max_steps=5 \
  --set objective.adversarial=1 --set objective.adversarial_epsilon=0.05
row=$(grep -m1 "adversarial loss" "$WORK/out.txt" || true)
clean=$(sed -n 's/.*| loss \([0-9.]*\) acc.*/\1/p' <<<"$row")
perturbed=$(sed -n 's/.*adversarial loss \([0-9.]*\).*/\1/p' <<<"$row")
if [ -n "$clean" ] && [ -n "$perturbed" ] && awk -v a="$perturbed" -v c="$clean" 'BEGIN { exit !(a > c) }'; then
  pass "adversarial loss $perturbed > clean loss $clean"; else fail "expected an adversarial loss above the clean one in: $row"; fi
expect_ok "vat" mpireel 2 train "$WORK/xf.ini" --run-dir "$WORK/vat" --set train.max_steps=5 --set objective.vat=1
grep -q "vat loss" "$WORK/out.txt" && pass "vat logs its loss" || fail "vat: no vat loss logged"
expect_ok "class weights, early stopping" mpireel 2 train "$WORK/xf.ini" --run-dir "$WORK/weighted" \
  --set objective.class_weights=balanced --set train.early_stopping_patience=1 --set train.eval_every=5 \
  --set train.max_steps=30
grep -q "class weights: " "$WORK/out.txt" "$WORK/err.txt" && pass "class weights in effect" || fail "no class weights line"
grep -q "early stopping at step" "$WORK/out.txt" "$WORK/err.txt" && pass "early stopping ends the run" \
  || fail "early stopping did not end the run (patience 1, evaluations every 5 steps of 30)"
expect_ok "export vectors" reel export vectors "$ckpt" "$WORK/xf.vec"
expect_ok "embed_from" reel train "$WORK/xf.ini" --run-dir "$WORK/vectors" --set model.embed_from="$WORK/xf.vec" \
  --set train.max_steps=1
grep -q "embedding from .*xf.vec: .* words have a vector" "$WORK/out.txt" "$WORK/err.txt" && pass "embed_from fills the embedding" \
  || fail "embed_from: no coverage line"

# --- fine-tuning from a GPT: a tiny untied GPT trained a few steps, then classifiers started from it
write_small_gpt_config "$WORK/gpt.ini" "$WORK/data"
expect_ok "the GPT" mpireel 2 train "$WORK/gpt.ini" --run-dir "$WORK/gpt" --set train.max_steps=6 \
  --set model.tie_weights=false --set model.positions=learned
gpt="$WORK/gpt/ckpt_00000006.h5"
tune() { # tune NAME [--set ...]: 4 steps of a causal concat classifier started from the GPT
  local name=$1; shift
  expect_ok "fine-tune $name" mpireel 2 train "$WORK/xf.ini" --run-dir "$WORK/$name" --set model.init_from="$gpt" \
    --set model.causal=true --set model.pooling=concat --set model.max_context=32 --set model.dropout=0 --set model.attention_dropout=0 \
    --set train.max_steps=4 --set optimizer.weight_decay=0.1 "$@"
}
tune frozen --set optimizer.freeze=embedding,position,block0,block1,final_ln --set checkpoint.every_steps=1
grep -q "not used from the checkpoint: decoder/weight" "$WORK/frozen/train.log" 2>/dev/null \
  || grep -rq "not used from the checkpoint: decoder/weight" "$WORK/out.txt" "$WORK/err.txt" \
  && pass "the GPT's decoder is named as not used" || fail "init_from did not report the GPT's decoder as unused"
tune partial --set optimizer.freeze=embedding,position,block0
tune gradual --set optimizer.freeze=embedding,position,block0,block1,final_ln --set optimizer.unfreeze_every=1 \
  --set optimizer.unfreeze_unit=steps
grep -q "gradual unfreezing at step 1: final_ln train now" "$WORK/err.txt" "$WORK/out.txt" \
  && grep -q "gradual unfreezing at step 2: block1, final_ln train now" "$WORK/err.txt" "$WORK/out.txt" \
  && pass "gradual unfreezing: final_ln, then block1" || fail "gradual unfreezing did not release final_ln then block1"
"$H5PY_PYTHON" - "$gpt" "$WORK/frozen/ckpt_00000004.h5" "$WORK/partial/ckpt_00000004.h5" \
  "$WORK/gradual/ckpt_00000004.h5" "$WORK/frozen/ckpt_00000001.h5" <<'PY' && pass "fine-tuned: the GPT's tensors bit for bit where frozen, trained elsewhere" || fail "fine-tuning from the GPT"
import sys, h5py, numpy as np
gpt = h5py.File(sys.argv[1], "r")["model"]
names = []
gpt.visit(lambda n: names.append(n) if isinstance(gpt[n], h5py.Dataset) else None)
stack = [n for n in names if n != "decoder/weight"]
assert len(stack) == 2 + 2 * 12 + 2, stack
def load(path):
    f = h5py.File(path, "r")["model"]
    out = {}
    f.visit(lambda n: out.__setitem__(n, f[n][()]) if isinstance(f[n], h5py.Dataset) else None)
    return out
same = lambda a, b: a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
frozen, partial, gradual = (load(p) for p in sys.argv[2:5])
for n in stack:  # every one of the GPT's tensors, loaded and never moved
    assert same(frozen[n], gpt[n][()]), f"frozen: {n} is not the GPT's"
assert "decoder/weight" not in frozen and set(frozen) == set(stack) | {"output/weight", "output/bias"}, sorted(frozen)
for n in stack:
    moved = not same(partial[n], gpt[n][()])
    assert moved == (n.startswith("block1/") or n.startswith("final_ln/")), f"partial: {n} moved={moved}"
for n in stack:  # released: final_ln at step 1, block1 at step 2, block0 at step 3, the embeddings at 4
    moved = not same(gradual[n], gpt[n][()])
    assert moved == (not n.startswith(("embedding/", "position/"))), f"gradual: {n} moved={moved}"
first = load(sys.argv[5])
for n in stack:
    assert same(first[n], gpt[n][()]), f"after step 1: {n} is not the GPT's"
assert not same(first["output/weight"], frozen["output/weight"]), "the head did not train"
PY
# training windows longer than the context would share their dropout masks: refused, at creation when
# seq_len says so, and when a whole review reaches the model (seq_len = 0)
expect_fail "seq_len past max_context with dropout" "seq_len = 64 is longer than \\[model\\] max_context = 32" \
  mpireel 1 train "$WORK/xf.ini" --run-dir "$WORK/long" --set data.seq_len=64
expect_fail "whole reviews in training with dropout" "a training document of [0-9]+ tokens is longer than max_context = 32" \
  mpireel 1 train "$WORK/xf.ini" --run-dir "$WORK/whole" --set data.seq_len=0
expect_fail "init_from a GPT, bidirectional" "init_from = .* is a gpt, whose blocks were trained causal.*causal = true" \
  mpireel 1 train "$WORK/xf.ini" --run-dir "$WORK/bidir" --set model.init_from="$gpt" --set train.max_steps=1
finish
