# A full disk during a checkpoint: the run stops with a message naming the checkpoint, the reason and the
# checkpoint it will resume from; nothing saved before is lost (every checkpoint still validates, no
# temporary file is left); once there is room, the same command continues to the same parameters as an
# uninterrupted run. The full disk is a small tmpfs, which needs root to mount.
source "$(dirname "$0")/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIPPED: mounting the small tmpfs that plays the full disk needs root" >&2
  exit 77
fi
mkdir -p "$WORK/disk"
mount -t tmpfs -o size=640k tmpfs "$WORK/disk" || { echo "SKIPPED: cannot mount a tmpfs here" >&2; exit 77; }
trap 'umount "$WORK/disk" 2>/dev/null || true' EXIT

make_small_data "$WORK/data" 2500
write_small_config "$WORK/small.ini" "$WORK/data"
opts=(--set train.epochs=10 --set checkpoint.every_steps=10)   # 200 steps
expect_ok "uninterrupted" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/full" "${opts[@]}"

expect_fail "the disk fills up" "ckpt_[0-9]*\.h5: writing the checkpoint failed \(No space left on device" \
  mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/disk/run" "${opts[@]}"
grep -q "hint: make room (or fix the permissions) in .*disk/run, then run the same command again: it resumes from .*ckpt_[0-9]*\.h5" \
  "$WORK/err.txt" && pass "the hint names the checkpoint to resume from" || fail "no hint: $(cat "$WORK/err.txt")"
kept=$(ls "$WORK/disk/run" | grep -cE '^ckpt_[0-9]+\.h5$' || true)
[ "$kept" -ge 1 ] && pass "$kept checkpoint(s) saved before the disk filled" || fail "no checkpoint saved at all"
ls "$WORK/disk/run" | grep -q '\.tmp$' && fail "a temporary file was left: $(ls "$WORK/disk/run")" || pass "no temporary file left"
for f in "$WORK"/disk/run/ckpt_*.h5; do
  reel inspect "$f" >/dev/null 2>&1 && pass "$(basename "$f") is intact" || fail "$(basename "$f") does not validate"
done

mount -o remount,size=64m "$WORK/disk"
expect_ok "with room again, the same command" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/disk/run" "${opts[@]}"
grep -q "resuming from" "$WORK/out.txt" && pass "it resumed" || fail "it started over"
if "$CKPT_COMPARE" "$WORK/full/ckpt_00000200.h5" "$WORK/disk/run/ckpt_00000200.h5" --exact >/dev/null; then
  pass "and ended bit-identical to the uninterrupted run"; else fail "the continued run differs"; fi
finish
