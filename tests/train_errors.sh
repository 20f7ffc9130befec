# The training, evaluation and inspection front ends on bad input: each failure names the file and the
# line, field or offset, and nothing already saved is lost. Also: `reel eval` agrees with the test
# accuracy printed at the end of training, and `reel inspect` describes what it reads.
source "$(dirname "$0")/lib.sh"
require_h5py

make_small_data "$WORK/data" 1500
write_small_config "$WORK/small.ini" "$WORK/data"
sed -i 's/^epochs = 3/epochs = 2/' "$WORK/small.ini"

# --- configuration errors: file, line, key
cp "$WORK/small.ini" "$WORK/typo.ini"
sed -i 's/^lr = 0.01/learning_rate = 0.01/' "$WORK/typo.ini"
line=$(grep -n '^learning_rate' "$WORK/typo.ini" | cut -d: -f1)
expect_fail "unknown key" "typo.ini:$line: .*unknown key 'learning_rate'.*\[optimizer\]" reel train "$WORK/typo.ini"
cp "$WORK/small.ini" "$WORK/bad.ini"
sed -i 's/^batch_size = 100/batch_size = lots/' "$WORK/bad.ini"
line=$(grep -n '^batch_size' "$WORK/bad.ini" | cut -d: -f1)
expect_fail "bad value" "bad.ini:$line: .*batch_size.*'lots'" reel train "$WORK/bad.ini"
expect_fail "bad --set" "optimizer.lr.*-3" reel train "$WORK/small.ini" --set optimizer.lr=-3
expect_fail "missing config" "nothere.ini" reel train "$WORK/nothere.ini"
expect_fail "missing data" "nodata/vocab.txt" reel train "$WORK/small.ini" --set data.dir="$WORK/nodata"

# --- a good run, then eval and inspect agree with it
expect_ok "train" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/run"
train_acc=$(grep -o 'final test accuracy: [0-9.]*%' "$WORK/out.txt" | grep -o '[0-9.]*%')
[ -n "$train_acc" ] || fail "training printed no final test accuracy"
expect_ok "eval" mpireel 2 eval "$WORK/run/ckpt_00000020.h5"
eval_acc=$(grep -o '^accuracy *[0-9.]*%' "$WORK/out.txt" | grep -o '[0-9.]*%')
[ "$train_acc" = "$eval_acc" ] && pass "eval reproduces the training's test accuracy ($eval_acc)" \
  || fail "eval says $eval_acc, training said $train_acc"
expect_ok "eval on 1 rank, valid split" reel eval "$WORK/run/ckpt_best.h5" --split valid
cp "$WORK/out.txt" "$WORK/eval_valid.txt"
valid_docs=$(ini_get "$WORK/data/prep.ini" valid_docs)
check_eval_report "$WORK/eval_valid.txt" valid "$valid_docs"
valid_acc=$EVAL_ACC
# the best checkpoint's validation accuracy, as the run recorded it (2 ranks) and eval computes it (1 rank)
recorded=$("$H5PY_PYTHON" - "$WORK/run/metrics.h5" <<'PY'
import sys, h5py
f = h5py.File(sys.argv[1], "r", swmr=True)
valid = [a for a, s in zip(f["eval/accuracy"][:], f["eval/split"][:]) if s == 0]
print(f"{100 * max(valid):.2f}%")
PY
)
[ -n "$recorded" ] && [ "$recorded" = "$valid_acc" ] && pass "eval of the valid split equals the run's best validation accuracy ($recorded)" \
  || fail "eval of the valid split says $valid_acc, the run recorded '$recorded'"
expect_ok "inspect checkpoint" reel inspect "$WORK/run/ckpt_00000020.h5"
grep -Eq "/model/embedding/weight +\[[0-9]+, 16\]" "$WORK/out.txt" && pass "inspect shows tensor shapes" || fail "inspect output"
grep -q "all checksums verified" "$WORK/out.txt" && pass "inspect verifies checksums" || fail "inspect did not verify"
expect_ok "inspect metrics" reel inspect "$WORK/run/metrics.h5"
grep -q "/train/loss" "$WORK/out.txt" && pass "inspect shows metric series" || fail "inspect metrics output"
expect_ok "inspect token file" reel inspect "$WORK/data/train.tok"
# what inspect reads agrees with what prep wrote (prep.ini) and adds up
field() { awk -v key="$1" '$1 == key { print $2 }' "$WORK/out.txt"; }
train_docs=$(ini_get "$WORK/data/prep.ini" train_docs)
[ "$(field documents)" = "$train_docs" ] && [ "$(field tokens)" = "$(ini_get "$WORK/data/prep.ini" train_tokens)" ] \
  && pass "inspect: $train_docs documents, $(field tokens) tokens, as prep wrote" \
  || fail "inspect: $(field documents) documents, $(field tokens) tokens; prep.ini: $train_docs, $(ini_get "$WORK/data/prep.ini" train_tokens)"
[ "$(field classes)" = 2 ] && [ "$(awk '$1 == "class" { n += $3 } END { print n }' "$WORK/out.txt")" = "$train_docs" ] \
  && pass "inspect: 2 classes whose documents add up" || fail "inspect classes: $(grep '^ *class' "$WORK/out.txt" | tr '\n' ' ')"
grep -q "vocabulary *$(ini_get "$WORK/data/prep.ini" size) (checksum $(ini_get "$WORK/data/prep.ini" checksum))" "$WORK/out.txt" \
  && grep -q "every token id is valid" "$WORK/out.txt" && pass "inspect: the vocabulary's size and checksum, ids valid" \
  || fail "inspect vocabulary line: $(grep vocabulary "$WORK/out.txt")"

# --- a corrupt newest checkpoint: resume falls back to the previous one and keeps the bad file, set aside
cp -r "$WORK/run" "$WORK/run_corrupt"
size=$(stat -c %s "$WORK/run_corrupt/ckpt_00000020.h5")
truncate -s $((size / 2)) "$WORK/run_corrupt/ckpt_00000020.h5"
expect_ok "resume past a truncated checkpoint" reel train "$WORK/small.ini" --run-dir "$WORK/run_corrupt" --set train.epochs=3
grep -q "skipping unusable checkpoint: .*ckpt_00000020.h5.*truncated" "$WORK/err.txt" && pass "names the bad checkpoint" \
  || fail "no warning naming the truncated checkpoint"
grep -q "resuming from .*ckpt_00000010.h5" "$WORK/out.txt" && pass "resumed from the previous checkpoint" || fail "wrong resume point"
[ "$(stat -c %s "$WORK"/run_corrupt/replaced_*/ckpt_00000020.h5 2>/dev/null)" = "$((size / 2))" ] \
  && pass "the truncated checkpoint is kept in replaced_<time>/" || fail "the truncated checkpoint is gone: $(ls -R "$WORK/run_corrupt" | tr '\n' ' ')"
cp "$WORK/run/ckpt_00000020.h5" "$WORK/cut.h5" && truncate -s $((size / 3)) "$WORK/cut.h5"
expect_fail "inspect a truncated checkpoint" "cut.h5.*truncated" reel inspect "$WORK/cut.h5"
expect_fail "eval a truncated checkpoint" "cut.h5.*truncated" reel eval "$WORK/cut.h5"

# --- checkpoints of another model in the run directory: refuse, naming the tensor, and keep the files
expect_fail "resume with another hidden size" "none can be resumed" reel train "$WORK/small.ini" --run-dir "$WORK/run" --set model.hidden_dim=32
grep -q "hidden/weight has shape \[24, 16\], the model expects \[32, 16\]" "$WORK/err.txt" && pass "names the mismatching tensor" \
  || fail "shape mismatch not explained"
[ -f "$WORK/run/ckpt_00000020.h5" ] && pass "checkpoints kept" || fail "a checkpoint disappeared"

# --- a version 1 checkpoint (before objectives: best_valid_accuracy, no /vocab) still resumes and evaluates
mkdir -p "$WORK/run_v1" && cp "$WORK/run/ckpt_00000010.h5" "$WORK/run_v1/"
"$H5PY_PYTHON" - "$WORK/run_v1/ckpt_00000010.h5" <<'PY' || fail "rewriting a checkpoint as version 1"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs["format_version"] = np.uint64(1)
    del f.attrs["objective"]
    del f["vocab"]
    state = f["train_state"]
    accuracy = state.attrs["best_value"]
    del state.attrs["best_metric"], state.attrs["best_value"]
    state.attrs["best_valid_accuracy"] = np.float64(accuracy)
PY
expect_ok "resume from a version 1 checkpoint" reel train "$WORK/small.ini" --run-dir "$WORK/run_v1"
grep -q "resuming from .*run_v1/ckpt_00000010.h5" "$WORK/out.txt" && pass "version 1 resumes" || fail "version 1 did not resume"
expect_ok "eval of a version 1 checkpoint" reel eval "$WORK/run_v1/ckpt_00000010.h5"
# the same weights as the version 2 file it was made from: the same figures, line for line
tail -n +2 "$WORK/out.txt" >"$WORK/eval_v1.txt"
expect_ok "eval of the version 2 original" reel eval "$WORK/run/ckpt_00000010.h5"
tail -n +2 "$WORK/out.txt" | cmp -s - "$WORK/eval_v1.txt" && grep -q "^accuracy *[0-9.]*%" "$WORK/eval_v1.txt" \
  && pass "version 1 evaluates as its original ($(grep -o '^accuracy *[0-9.]*%' "$WORK/eval_v1.txt" | tr -s ' '))" \
  || { fail "version 1 evaluates otherwise:"; diff <(tail -n +2 "$WORK/out.txt") "$WORK/eval_v1.txt" >&2; }

# --- data errors
cp -r "$WORK/data" "$WORK/data_badid"
file="$WORK/data_badid/train.tok"
size=$(stat -c %s "$file")
printf '\xff\xff\x00\x00' | dd of="$file" bs=1 seek=$((size - 4)) conv=notrunc status=none
expect_fail "token id past the vocabulary" "train.tok.*offset $((size - 4)).*65535" \
  mpireel 2 train "$WORK/small.ini" --set data.dir="$WORK/data_badid" --run-dir "$WORK/run_badid"
cp -r "$WORK/data" "$WORK/data_badvocab"
sed -i '10s/^[^\t]*/zzzz/' "$WORK/data_badvocab/vocab.txt"
expect_fail "vocabulary mismatch" "train.tok was made with another vocabulary" \
  reel train "$WORK/small.ini" --set data.dir="$WORK/data_badvocab" --run-dir "$WORK/run_badvocab"
expect_fail "eval with another vocabulary" "another vocabulary" reel eval "$WORK/run/ckpt_00000020.h5" --data "$WORK/data_badvocab"
finish
