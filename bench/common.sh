# Sourced by the benchmark scripts.

# prepare_imdb NAME REEL WORK: when $data is empty, prepares ../shared/data/aclImdb_v1.tar.gz with REEL
# into WORK/imdb and sets data to it (NAME: the script, for messages); a given $data is left alone.
prepare_imdb() {
  local name=$1 reel=$2 work=$3 archive=../shared/data/aclImdb_v1.tar.gz
  [ -z "$data" ] || return 0
  [ -f "$archive" ] || { echo "$name: $archive is missing; give a prepared data directory" >&2; exit 1; }
  echo "preparing $archive into $work/imdb"
  "$reel" prep "$archive" "$work/imdb" >/dev/null
  data=$work/imdb
}

# find_python NAME: sets PY to a python3 with h5py and numpy (Debian's /usr/bin/python3 first, since the
# python3 on PATH may be a bare interpreter); with $torch = 1 and no torch there, says so and sets torch=0.
find_python() {
  local name=$1 candidate
  PY=""
  for candidate in /usr/bin/python3 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c "import h5py, numpy" 2>/dev/null; then PY=$candidate; break; fi
  done
  [ -n "$PY" ] || { echo "$name: no python3 with h5py and numpy (apt-get install python3-h5py)" >&2; exit 1; }
  if [ "${torch:-0}" = 1 ] && ! "$PY" -c "import torch" 2>/dev/null; then
    echo "$name: $PY cannot import torch: PyTorch lines skipped (apt-get install python3-torch)" >&2
    torch=0
  fi
}

# rss_per_rank PREFIX RANKS: the peak RSS in MB of each rank, from GNU time's %M files PREFIX.0, PREFIX.1,
# ..., joined by '/'.
rss_per_rank() {
  local prefix=$1 ranks=$2 rss="" r
  for ((r = 0; r < ranks; r++)); do rss+="${rss:+/}$(awk 'END {printf "%.0f", $1 / 1024}' "$prefix.$r")"; done
  echo "$rss"
}

# timed_figures METRICS WARMUP STEPS DECIMALS: from a reel run's metrics.h5 logged every step, the timed
# steps' (those after WARMUP) mean seconds per step, tokens/s (with DECIMALS decimals) and the all-reduce's
# share of their time, as "s/step|tokens/s|share%". Fails when the file has not exactly STEPS timed rows.
timed_figures() {
  "$PY" - "$@" <<'PY'
import sys
import h5py
path, warmup, steps, decimals = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with h5py.File(path, "r") as f:
    step, rate, seconds, share = (f["train/" + k][()] for k in ("step", "tokens_per_s", "seconds", "allreduce_share"))
timed = step > warmup
if timed.sum() != steps:
    sys.exit(f"{path}: {timed.sum()} timed rows, expected {steps} (a skipped step?)")
tokens, total = float((rate[timed] * seconds[timed]).sum()), float(seconds[timed].sum())
print(f"{total / steps:.3f}|{tokens / total:.{decimals}f}|{100 * float((share[timed] * seconds[timed]).sum()) / total:.1f}%")
PY
}
