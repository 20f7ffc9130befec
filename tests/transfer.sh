# A classifier that starts from a language model's encoder ([model] init_from): its embedding and
# recurrent tensors are the language model's, bit for bit; the head is initialised as usual; every kind
# of mismatch is an error that names the tensor; and a resumed fine-tuning run continues from its own
# checkpoint instead of reloading the language model.
source "$(dirname "$0")/lib.sh"
require_h5py

make_small_data "$WORK/data" 1500
cat >"$WORK/lm.ini" <<INI
[data]
dir = $WORK/data
seq_len = 12
[model]
type = rnn_lm
vocab_size = 600
embed_dim = 10
cell = lstm
hidden_dim = 12
num_layers = 2
rnn_batch_norm = true
rnn_dropout = 0.1
[objective]
eval_split = test
eval_docs = 100
[train]
epochs = 1
batch_size = 50
log_every = 10
INI
expect_ok "a language model" mpireel 2 train "$WORK/lm.ini" --run-dir "$WORK/lm"
lm="$WORK/lm/ckpt_00000020.h5"

cat >"$WORK/clf.ini" <<INI
[data]
dir = $WORK/data
seq_len = 24
[model]
type = lstm
vocab_size = 600
embed_dim = 10
hidden_dim = 12
num_layers = 2
rnn_batch_norm = true
rnn_dropout = 0.1
init_from = $lm
[train]
epochs = 1
batch_size = 100
log_every = 5
[checkpoint]
keep_last = 100
INI
# One step with a learning rate of 1e-30: Adam moves every weight by about 1e-30, far below a float's
# last bit for weights of this size, so the step's checkpoint holds the weights the run started from.
expect_ok "a classifier from it" mpireel 2 train "$WORK/clf.ini" --run-dir "$WORK/clf" --set train.max_steps=1 \
  --set optimizer.lr=1e-30
grep -q "starting from .*ckpt_00000020.h5: loaded embedding/weight, lstm_l0_fwd/w_ih.*batchnorm_l1/running_var; initialised as usual: output/weight, output/bias; not used from the checkpoint: decoder/bias, decoder/weight" \
  "$WORK/out.txt" && pass "the log says what was loaded and what was not" || { fail "the log of the start:"; grep "starting from" "$WORK/out.txt" >&2; }
"$H5PY_PYTHON" - "$lm" "$WORK/clf/ckpt_00000001.h5" <<'PY' && pass "embedding and LSTM weights bit-identical" || fail "weights differ"
import sys, h5py, numpy as np
lm, clf = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = []
lm["model"].visit(lambda n: names.append(n) if isinstance(lm["model"][n], h5py.Dataset) else None)
shared = [n for n in names if n.startswith(("embedding/", "lstm_l")) or n in ("batchnorm_l0/weight", "batchnorm_l0/bias",
                                                                         "batchnorm_l1/weight", "batchnorm_l1/bias")]
assert len(shared) == 13, shared  # embedding, 2 x 4 LSTM tensors, 2 x 2 batch-norm parameters
for n in shared:
    a, b = lm["model"][n][()], clf["model"][n][()]
    assert a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32)), n
assert "decoder/weight" not in clf["model"]
# the head is not the language model's: it is the classifier's own initialisation
assert clf["model/output/weight"].shape == (1, 12)
PY
# Control: without init_from the same run starts elsewhere.
expect_ok "the same classifier from scratch" mpireel 2 train "$WORK/clf.ini" --run-dir "$WORK/scratch" \
  --set train.max_steps=1 --set optimizer.lr=1e-30 --set model.init_from=
"$H5PY_PYTHON" - "$lm" "$WORK/scratch/ckpt_00000001.h5" <<'PY' && pass "control: from scratch differs" || fail "control equal"
import sys, h5py, numpy as np
lm, clf = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert not np.array_equal(lm["model/lstm_l0_fwd/w_hh"][()], clf["model/lstm_l0_fwd/w_hh"][()])
PY

# Fine-tuning trains, and a resumed run continues from its own checkpoint: the language model's file
# may be gone by then.
expect_ok "fine-tuning to step 5" mpireel 2 train "$WORK/clf.ini" --run-dir "$WORK/tune" --set train.max_steps=5
mv "$lm" "$WORK/lm_moved.h5"
expect_ok "resumed without the language model" mpireel 2 train "$WORK/clf.ini" --run-dir "$WORK/tune"
grep -q "resuming from .*tune/ckpt_00000005.h5" "$WORK/out.txt" && ! grep -q "starting from" "$WORK/out.txt" \
  && pass "resume does not reload the language model" || fail "resume reloaded, or did not resume"
mv "$WORK/lm_moved.h5" "$lm"
expect_ok "uninterrupted fine-tuning" mpireel 2 train "$WORK/clf.ini" --run-dir "$WORK/tune_full"
if "$CKPT_COMPARE" "$WORK/tune_full/ckpt_00000010.h5" "$WORK/tune/ckpt_00000010.h5" --exact; then
  pass "resumed fine-tuning == uninterrupted, bit for bit"; else fail "resumed fine-tuning differs"; fi

# --- frozen layers (the course: only the top LSTM layer, its batch norm and the head train)
frozen="embedding,lstm_l0,batchnorm_l0"
for n in 1 2; do
  expect_ok "fine-tuning with frozen layers, $n rank(s)" mpireel $n train "$WORK/clf.ini" --run-dir "$WORK/frozen$n" \
    --set optimizer.freeze=$frozen
done
"$H5PY_PYTHON" - "$lm" "$WORK/frozen2/ckpt_00000010.h5" <<'PY' && pass "frozen tensors unchanged, without optimizer state; the rest trained" || fail "freezing"
import sys, h5py, numpy as np
lm, run = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
for n in ("embedding/weight", "lstm_l0_fwd/w_ih", "lstm_l0_fwd/w_hh", "lstm_l0_fwd/b_ih", "lstm_l0_fwd/b_hh",
          "batchnorm_l0/weight", "batchnorm_l0/bias"):
    assert np.array_equal(lm["model"][n][()], run["model"][n][()]), n + " changed"
    for slot in ("adam_m", "adam_v"):
        assert not run["optimizer"][slot][n][()].any(), n + " has optimizer state"
for n in ("lstm_l1_fwd/w_hh", "batchnorm_l1/weight"):
    assert not np.array_equal(lm["model"][n][()], run["model"][n][()]), n + " did not train"
steps = run["optimizer/tensor_steps"][()]
assert steps.min() == 0 and steps.max() == 10, steps
PY
if "$CKPT_COMPARE" "$WORK/frozen1/ckpt_00000010.h5" "$WORK/frozen2/ckpt_00000010.h5" --tol 1e-3 --ignore /@world_size_at_save; then
  pass "frozen: 1 rank == 2 ranks"; else fail "frozen: 1 rank != 2 ranks"; fi
expect_ok "frozen to step 4" mpireel 2 train "$WORK/clf.ini" --run-dir "$WORK/frozen_split" --set optimizer.freeze=$frozen \
  --set train.max_steps=4
expect_ok "frozen, resumed" mpireel 2 train "$WORK/clf.ini" --run-dir "$WORK/frozen_split" --set optimizer.freeze=$frozen
if "$CKPT_COMPARE" "$WORK/frozen2/ckpt_00000010.h5" "$WORK/frozen_split/ckpt_00000010.h5" --exact; then
  pass "frozen: resume bit for bit"; else fail "frozen: resume differs"; fi
expect_fail "a layer the model lacks" "freeze: 'lstm_l7' is not a layer of model type lstm \(its layers: embedding, lstm_l0_fwd, batchnorm_l0, lstm_l1_fwd, batchnorm_l1, output\)" \
  reel train "$WORK/clf.ini" --run-dir "$WORK/bad_freeze" --set optimizer.freeze=embedding,lstm_l7

# --- gradual unfreezing: everything but the head frozen, one more group from the top every 3 steps
# (lstm_l1 with batchnorm_l1 after step 3, lstm_l0 with batchnorm_l0 after 6, the embedding after 9)
expect_ok "gradual unfreezing" mpireel 2 train "$WORK/clf.ini" --run-dir "$WORK/gradual" --set checkpoint.every_steps=1 \
  --set optimizer.freeze=embedding,lstm_l0,batchnorm_l0,lstm_l1_fwd,batchnorm_l1 --set optimizer.unfreeze_every=3 \
  --set optimizer.unfreeze_unit=steps --set train.epochs=2
grep -q "gradual unfreezing at step 3: lstm_l1_fwd, batchnorm_l1 train now" "$WORK/out.txt" && \
  grep -q "gradual unfreezing at step 9: embedding, lstm_l0_fwd, batchnorm_l0, lstm_l1_fwd, batchnorm_l1 train now" \
  "$WORK/out.txt" && pass "unfreezing is logged, by layer" \
  || fail "unfreezing not logged"
"$H5PY_PYTHON" - "$WORK/gradual" "$lm" <<'PY' && pass "groups unfreeze on schedule, from the top" || fail "unfreezing schedule"
import sys, h5py, numpy as np
def tensor(step, name):  # step 0: the language model the run started from
    path = f"{sys.argv[1]}/ckpt_{step:08d}.h5" if step else sys.argv[2]
    with h5py.File(path, "r") as f:
        return f["model"][name][()]
# the first step that changed each tensor
first = {}
for name in ("lstm_l1_fwd/w_hh", "batchnorm_l1/weight", "lstm_l0_fwd/w_hh", "batchnorm_l0/bias", "embedding/weight"):
    for step in range(1, 13):
        if not np.array_equal(tensor(step, name), tensor(step - 1, name)):
            first[name] = step
            break
expected = {"lstm_l1_fwd/w_hh": 4, "batchnorm_l1/weight": 4, "lstm_l0_fwd/w_hh": 7, "batchnorm_l0/bias": 7,
            "embedding/weight": 10}
assert first == expected, first
PY
# --- discriminative rates: one plain SGD step from the same start, with and without layer_lr_decay 2.6.
# The gradient of that step is the same in both, so each tensor moves by lr x 2.6^-(top - its group) x
# the gradient: exactly the undiscounted move times the factor (groups: embedding 0, lstm_l0 1, lstm_l1
# 2, the head 3). A large rate keeps the moves far above the weights' float resolution.
for decay in 1 2.6; do
  expect_ok "one SGD step, layer_lr_decay $decay" mpireel 2 train "$WORK/clf.ini" --run-dir "$WORK/decay$decay" \
    --set optimizer.layer_lr_decay=$decay --set train.max_steps=1 --set optimizer.type=sgd --set optimizer.momentum=0 \
    --set optimizer.lr=0.5
done
"$H5PY_PYTHON" - "$lm" "$WORK/decay1/ckpt_00000001.h5" "$WORK/decay2.6/ckpt_00000001.h5" <<'PY' \
    && pass "discriminative rates follow lr / 2.6^depth" || fail "discriminative rates"
import sys, h5py, numpy as np
lm, plain, decayed = (h5py.File(p, "r") for p in sys.argv[1:4])
def move(f, name):
    return f["model"][name][()].astype(np.float64) - lm["model"][name][()]
# Each stored weight is rounded to float32, so a move is known to within the spacing of the floats
# around the weights before and after it (np.spacing): the decayed move must be the plain one times the
# factor to within two spacings, and the moves must be far larger than that for the check to mean
# something.
for name, depth in (("embedding/weight", 3), ("lstm_l0_fwd/w_hh", 2), ("batchnorm_l0/weight", 2), ("lstm_l1_fwd/w_ih", 1)):
    a, b = move(plain, name), move(decayed, name)
    start = lm["model"][name][()].astype(np.float64)
    largest = np.maximum(np.abs(start), np.maximum(np.abs(start + a), np.abs(start + b))).astype(np.float32)
    ulp = np.spacing(largest).astype(np.float64)
    error = np.abs(b - a * 2.6 ** -depth)
    assert (error <= 2 * ulp).all(), (name, float((error / ulp).max()))
    assert np.abs(a).max() > 1000 * ulp.max(), (name, "moves too small to test")
# the head (group 3) learns at the full rate in both: the same move
assert np.allclose(plain["model/output/weight"][()], decayed["model/output/weight"][()], rtol=1e-6, atol=1e-9)
PY

# --- mismatches: each names the tensor
expect_fail "another width" "lstm_l0_fwd/w_ih has shape \[48, 10\], the model expects \[64, 10\]" \
  reel train "$WORK/clf.ini" --run-dir "$WORK/bad1" --set model.hidden_dim=16
expect_fail "another cell type" "the model's gru_l0_fwd/w_ih is not in the checkpoint, whose model has the layers .*lstm_l0_fwd" \
  reel train "$WORK/clf.ini" --run-dir "$WORK/bad2" --set model.type=gru
expect_fail "more layers" "the model's lstm_l2_fwd/w_ih is not in the checkpoint" \
  reel train "$WORK/clf.ini" --run-dir "$WORK/bad3" --set model.num_layers=3
expect_fail "a direction the checkpoint lacks" "the model's lstm_l0_bwd/w_ih is not in the checkpoint" \
  reel train "$WORK/clf.ini" --run-dir "$WORK/bad4" --set model.bidirectional=true
expect_fail "another vocabulary size" "embedding/weight has shape \[476, 10\], the model expects \[300, 10\]" \
  reel train "$WORK/clf.ini" --run-dir "$WORK/bad5" --set model.vocab_size=300
# the same corpus prepared with a smaller vocabulary (it has 476 words): another checksum
reel prep --format tsv --test "$WORK/synth_test.tsv" --valid-count 500 --vocab-size 300 "$WORK/synth_train.tsv" \
  "$WORK/data_other" >/dev/null
expect_fail "another vocabulary" "ckpt_00000020.h5: the checkpoint was trained with another vocabulary" \
  reel train "$WORK/clf.ini" --run-dir "$WORK/bad6" --set data.dir="$WORK/data_other" --set model.vocab_size=300
expect_fail "a missing checkpoint" "nothere.h5" reel train "$WORK/clf.ini" --run-dir "$WORK/bad7" --set model.init_from="$WORK/nothere.h5"
for d in bad1 bad2 bad3 bad4 bad5 bad6 bad7; do [ -z "$(ls "$WORK/$d" 2>/dev/null | grep ckpt_)" ] || fail "$d wrote a checkpoint"; done
finish
