# Nothing may depend on the number of ranks: the same global batch on 1, 2 and 3 ranks (3 does not divide
# the batch of 100, so shares are uneven) must give the same parameters, batch-norm statistics and
# optimizer state within float tolerance; and a last batch smaller than the number of ranks (some ranks
# get no rows at all) must neither hang nor change the result.
source "$(dirname "$0")/lib.sh"

make_small_data "$WORK/data" 2500      # 2000 training reviews: 20 steps of 100 per epoch
write_small_config "$WORK/small.ini" "$WORK/data"

expect_ok "1 rank trains" mpireel 1 train "$WORK/small.ini" --run-dir "$WORK/np1"
expect_ok "2 ranks train" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/np2"
expect_ok "3 ranks train (uneven shares)" mpireel 3 train "$WORK/small.ini" --run-dir "$WORK/np3"
final=ckpt_00000060.h5
for n in 1 2 3; do [ -f "$WORK/np$n/$final" ] || fail "np$n wrote no $final"; done

# Tolerance: the ranks sum the same gradient terms in a different order (and batch norm reduces its
# statistics across ranks), so values differ by float rounding, which 60 Adam steps carry forward;
# 1e-3 relative is far below what a wrong share, mask or statistic produces (see the control below).
# Everything else must be equal but the world size each run records in its checkpoints.
ranks=(--ignore /@world_size_at_save)
if "$CKPT_COMPARE" "$WORK/np1/$final" "$WORK/np2/$final" --tol 1e-3 "${ranks[@]}"; then pass "1 rank == 2 ranks"; else fail "1 rank != 2 ranks"; fi
if "$CKPT_COMPARE" "$WORK/np1/$final" "$WORK/np3/$final" --tol 1e-3 "${ranks[@]}"; then pass "1 rank == 3 ranks"; else fail "1 rank != 3 ranks"; fi

# Control: the comparison must be able to fail. Another seed gives another sample stream (the seed itself,
# recorded twice, is ignored: the tensors must differ).
expect_ok "control run" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/control" --set train.seed=6
if "$CKPT_COMPARE" "$WORK/np1/$final" "$WORK/control/$final" --tol 1e-3 "${ranks[@]}" --ignore /config:train.seed \
    --ignore /train_state@seed >/dev/null; then
  fail "a different seed compared equal: the comparison cannot detect a difference"; else pass "control differs"; fi

# A final batch of 1 review on 3 ranks: 2001 training reviews, batch 100 -> 21 steps, the last with 1 row.
make_small_data "$WORK/data_odd" 2501
for n in 1 3; do
  expect_ok "odd data, $n rank(s)" timeout 300 "$MPIEXEC" -np $n --oversubscribe "$REEL_BIN" train "$WORK/small.ini" \
    --set data.dir="$WORK/data_odd" --set train.epochs=1 --run-dir "$WORK/odd$n"
done
if "$CKPT_COMPARE" "$WORK/odd1/ckpt_00000021.h5" "$WORK/odd3/ckpt_00000021.h5" --tol 1e-3 "${ranks[@]}"; then
  pass "tiny last batch: 1 rank == 3 ranks"; else fail "tiny last batch: 1 rank != 3 ranks"; fi

# The same for a stacked bidirectional LSTM (windows, locked dropout, batch norm over valid steps).
write_small_lstm_config "$WORK/lstm.ini" "$WORK/data"
for n in 1 2 3; do expect_ok "lstm, $n rank(s)" mpireel $n train "$WORK/lstm.ini" --run-dir "$WORK/lstm$n"; done
for n in 2 3; do
  if "$CKPT_COMPARE" "$WORK/lstm1/ckpt_00000040.h5" "$WORK/lstm$n/ckpt_00000040.h5" --tol 1e-3 "${ranks[@]}"; then
    pass "lstm: 1 rank == $n ranks"; else fail "lstm: 1 rank != $n ranks"; fi
done
finish
