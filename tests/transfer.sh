# A classifier that starts from a language model's encoder ([model] init_from): its embedding and
# recurrent tensors are the language model's, bit for bit; the head is initialised as usual; every kind
# of mismatch is an error that names the tensor; and a resumed fine-tuning run continues from its own
# checkpoint instead of reloading the language model.
source "$(dirname "$0")/lib.sh"

make_small_data "$WORK/data" 1500
cat >"$WORK/lm.ini" <<INI
[data]
dir = $WORK/data
seq_len = 12
[model]
type = lm
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
if [ -n "$H5PY_PYTHON" ]; then
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
fi
# Control: without init_from the same run starts elsewhere.
expect_ok "the same classifier from scratch" mpireel 2 train "$WORK/clf.ini" --run-dir "$WORK/scratch" \
  --set train.max_steps=1 --set optimizer.lr=1e-30 --set model.init_from=
if [ -n "$H5PY_PYTHON" ]; then
  "$H5PY_PYTHON" - "$lm" "$WORK/scratch/ckpt_00000001.h5" <<'PY' && pass "control: from scratch differs" || fail "control equal"
import sys, h5py, numpy as np
lm, clf = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert not np.array_equal(lm["model/lstm_l0_fwd/w_hh"][()], clf["model/lstm_l0_fwd/w_hh"][()])
PY
fi

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
