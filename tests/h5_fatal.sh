# Errors that end reel while an HDF5 file is open end it with exit status 1 and a message naming the file,
# never with a signal or a bare "out of memory": damaged metrics and checkpoint files whose datasets claim
# more values than the file holds (reel runs, reel plot, reel inspect read them, and a resumed run), and a training run that
# fails while its metrics file is open, which must leave that file closed. (A full disk: full_disk.sh.)
source "$(dirname "$0")/lib.sh"

require_h5py # it damages the files here

# expect_error WHAT REGEX COMMAND...: exit status exactly 1 (not a signal), stderr matching REGEX.
expect_error() {
  local what=$1 pattern=$2 status=0; shift 2
  "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" || status=$?
  if [ "$status" -gt 128 ]; then fail "$what: killed by signal $((status - 128))"
  elif [ "$status" -ne 1 ]; then fail "$what: exit status $status, expected 1"
  elif grep -Eq -- "$pattern" "$WORK/err.txt"; then pass "$what"
  else fail "$what: stderr does not match /$pattern/:"; sed 's/^/    /' "$WORK/err.txt" >&2; fi
}

make_small_data "$WORK/data" 1000
write_small_config "$WORK/small.ini" "$WORK/data"
expect_ok "a short run" reel train "$WORK/small.ini" --run-dir "$WORK/run" --set train.epochs=1
expect_ok "reel runs reads it" reel runs "$WORK/run"

# A series whose extent claims 2^40 rows the file never stored: reading it would take 8 TiB of fill values.
mkdir -p "$WORK/damaged"
cp "$WORK/run/metrics.h5" "$WORK/damaged/metrics.h5"
"$H5PY_PYTHON" - "$WORK/damaged/metrics.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f["train/loss"].resize((2**40,))
PY
claim="damaged/metrics\.h5: /train/loss claims 1099511627776 rows, but the file stores at most [0-9]+: the file is damaged"
expect_error "reel runs: a series longer than its file" "$claim" reel runs "$WORK/damaged"
expect_error "reel plot: the same" "$claim" reel plot "$WORK/damaged" -o "$WORK/plot.png"

# The same damaged series met by a resumed run: the metrics file is moved aside as unreadable (naming the
# series) and a new one started, instead of allocating what the extent claims.
cp -r "$WORK/run" "$WORK/resumed" && cp "$WORK/damaged/metrics.h5" "$WORK/resumed/metrics.h5"
expect_ok "a run resumed over the damaged metrics file" reel train "$WORK/small.ini" --run-dir "$WORK/resumed" --set train.epochs=2
grep -q "metrics.h5 cannot be read (.*/train/loss claims 1099511627776 rows, but the file stores at most [0-9]*); it was moved to .*metrics.h5.unreadable" \
  "$WORK/err.txt" && [ -f "$WORK/resumed/metrics.h5.unreadable" ] && reel runs "$WORK/resumed" >/dev/null 2>&1 \
  && pass "resume: the damaged metrics file moved aside, named, and a new one readable" \
  || { fail "resume over a damaged metrics file:"; sed 's/^/    /' "$WORK/err.txt" >&2; }

# A checkpoint dataset of 2^40 values with nothing stored.
cp "$WORK/run/ckpt_best.h5" "$WORK/damaged.h5"
"$H5PY_PYTHON" - "$WORK/damaged.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f.create_dataset("model/extra", shape=(2**40,), chunks=(1024,), dtype="f4")
PY
expect_error "reel inspect: a checkpoint dataset larger than its file" \
  "damaged\.h5: dataset /model/extra claims 1099511627776 values, but the file stores at most [0-9]+: the file is truncated or damaged" \
  reel inspect "$WORK/damaged.h5"

# A run that diverges ends with an error while its metrics file is open: the file is closed on the way out
# (h5dump, which does not read as SWMR, refuses a file a writer left open). One process only: with several
# ranks every rank fails at once, and another rank's MPI_Abort may end rank 0 before it has closed the file.
expect_error "a diverging run" "consecutive steps had a non-finite gradient" \
  reel train "$WORK/small.ini" --run-dir "$WORK/diverged" --set optimizer.lr=1e30
h5dump -H "$WORK/diverged/metrics.h5" >/dev/null 2>&1 && pass "its metrics file was closed" ||
  fail "its metrics file was left open"
reel runs "$WORK/diverged" >/dev/null 2>&1 && pass "and reads back" || fail "its metrics file does not read back"
finish
