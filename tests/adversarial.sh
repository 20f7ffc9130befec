# Adversarial training on the embeddings ([objective] adversarial): the perturbation raises the loss it
# is computed for, the option changes what is learnt, and it keeps reel's guarantees: the same model on
# 1 and 3 ranks, and a resume bit for bit. (The gradients it relies on, with respect to the
# perturbation and of every parameter under it, are checked by finite differences in test_gradcheck and
# test_recurrent.)
source "$(dirname "$0")/lib.sh"
require_h5py

make_small_data "$WORK/data" 2500      # 2000 training reviews: 20 steps of 100 per epoch
write_small_config "$WORK/bow.ini" "$WORK/data"
write_small_lstm_config "$WORK/lstm.ini" "$WORK/data"
adv=(--set objective.adversarial=1 --set objective.adversarial_epsilon=0.05)

# The first logged row of each model: the loss at the perturbed embeddings must exceed the clean loss
# (the step goes up the gradient; a wrong sign or a perturbation that never reaches the model fails).
for model in bow lstm; do
  expect_ok "$model trains adversarially" mpireel 2 train "$WORK/$model.ini" --run-dir "$WORK/${model}_adv" \
    --set train.max_steps=20 "${adv[@]}"
  row=$(grep -m1 "adversarial loss" "$WORK/out.txt" || true)
  clean=$(sed -n 's/.*| loss \([0-9.]*\) acc.*/\1/p' <<<"$row")
  perturbed=$(sed -n 's/.*adversarial loss \([0-9.]*\).*/\1/p' <<<"$row")
  if [ -n "$clean" ] && [ -n "$perturbed" ] && awk -v a="$perturbed" -v c="$clean" 'BEGIN { exit !(a > c) }'; then
    pass "$model: adversarial loss $perturbed > clean loss $clean"
  else fail "$model: expected an adversarial loss above the clean one in: $row"; fi
  if "$H5PY_PYTHON" -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r'); sys.exit(0 if len(f['train/adversarial_loss']) > 0 else 1)" \
    "$WORK/${model}_adv/metrics.h5"; then pass "$model: metrics hold train/adversarial_loss"
  else fail "$model: no train/adversarial_loss series in metrics.h5"; fi
done

# It changes the training: the same run without it ends elsewhere.
expect_ok "lstm without it" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/lstm_plain" --set train.max_steps=20
if "$CKPT_COMPARE" "$WORK/lstm_plain/ckpt_00000020.h5" "$WORK/lstm_adv/ckpt_00000020.h5" --tol 1e-3 \
    --ignore /config:objective.adversarial --ignore /config:objective.adversarial_epsilon >/dev/null; then
  fail "adversarial training left the model as plain training does"; else pass "adversarial training changes the model"; fi

# Rank independence: 1 and 3 ranks (uneven shares) train the same model, within the tolerance
# train_multirank.sh explains.
for n in 1 3; do
  expect_ok "lstm adversarial, $n rank(s)" mpireel $n train "$WORK/lstm.ini" --run-dir "$WORK/lstm_np$n" "${adv[@]}"
done
if "$CKPT_COMPARE" "$WORK/lstm_np1/ckpt_00000040.h5" "$WORK/lstm_np3/ckpt_00000040.h5" --tol 1e-3 --ignore /@world_size_at_save; then
  pass "adversarial: 1 rank == 3 ranks"; else fail "adversarial: 1 rank != 3 ranks"; fi

# Resume: stopped inside epoch 1, resumed, bit for bit against the uninterrupted run on as many ranks.
expect_ok "lstm adversarial, 2 ranks" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/lstm_full" "${adv[@]}"
expect_ok "stopped at 13" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/lstm_split" --set train.max_steps=13 "${adv[@]}"
expect_ok "resumed" mpireel 2 train "$WORK/lstm.ini" --run-dir "$WORK/lstm_split" "${adv[@]}"
if "$CKPT_COMPARE" "$WORK/lstm_full/ckpt_00000040.h5" "$WORK/lstm_split/ckpt_00000040.h5" --exact; then
  pass "adversarial resume: bit for bit"; else fail "adversarial resume differs"; fi

# Bad values are named errors.
expect_fail "a negative weight" "objective.*adversarial" reel train "$WORK/lstm.ini" --run-dir "$WORK/bad" \
  --set objective.adversarial=-1
expect_fail "a zero epsilon" "adversarial_epsilon" reel train "$WORK/lstm.ini" --run-dir "$WORK/bad" \
  --set objective.adversarial=1 --set objective.adversarial_epsilon=0
finish
