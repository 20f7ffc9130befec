#!/usr/bin/env bash
# Short, uneven texts against IMDb windows: tokens/s of the same recurrent classifier on both.
#
# On IMDb training windows almost every review fills the window, so a batch has little padding; on short
# texts (tweets, one-line reviews: 3 to 60 tokens, about 10 on average) a batch padded to its longest
# text is mostly padding. reel computes only the real tokens (packed sequences: at each step only the
# sequences still inside their text take part), so its tokens/s on short texts should stay close to
# its tokens/s on windows (target: at least 70%).
#
# Workloads, both through bench/classifiers.sh with the same model (course part 2a: vocabulary 8000, embeddings
# 300, one LSTM layer of 500, max pooling) and the same global batch (200):
#   windows  the IMDb archive prepared by `reel prep`, window 100 tokens
#   short    `reel synth --short` (--docs documents, default 50,000) written as TSV and prepared by
#            `reel prep` through the TSV path, window 100 (longer than any text, so nothing is cut)
# tokens/s = reviews/s x the mean of min(length, window): the real tokens, never the padding.
#
# Usage: bench/short.sh [options] [IMDB_DATA_DIR]
#   IMDB_DATA_DIR   a `reel prep` directory of the IMDb archive; default: ../shared/data/aclImdb_v1.tar.gz
#                   prepared into a temporary directory (about 3 s)
#   --docs N        short texts to generate (default 50000)
#   --steps N, --warmup N, --models LIST     passed to bench/classifiers.sh (defaults 30, 5, lstm:500)
#   --no-torch      reel only (otherwise PyTorch padded, and on the short texts also packed, as
#                   bench/classifiers.sh --torch-packed)
#   REEL=path       the reel binary (default build/reel), e.g. an older build for a before/after table
# Run it after scripts/build, with nothing else running on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

docs=50000 lstm_args=() torch_args=(--torch-packed) imdb=""
while [ $# -gt 0 ]; do
  case $1 in
    --docs) docs=$2; shift 2 ;;
    --steps|--warmup|--models) lstm_args+=("$1" "$2"); shift 2 ;;
    --no-torch) torch_args=(--no-torch); shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench/short.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) imdb=$1; shift ;;
  esac
done
[[ $docs =~ ^[0-9]+$ ]] && [ "$docs" -ge 1000 ] || { echo "bench/short.sh: --docs must be a number >= 1000" >&2; exit 2; }

REEL=${REEL:-build/reel}
[ -x "$REEL" ] || { echo "bench/short.sh: $REEL is missing; run scripts/build" >&2; exit 1; }
export REEL
work=$(mktemp -d /tmp/reel-bench-short-XXXXXX)
trap 'rm -rf "$work"' EXIT

source bench/common.sh
data=$imdb
prepare_imdb bench/short.sh build/reel "$work"
imdb=$data
echo "writing $docs short texts and preparing them through the TSV path"
build/reel synth --short --docs "$docs" "$work/short.tsv" >/dev/null
build/reel prep "$work/short.tsv" "$work/short" --vocab-size 8000 >/dev/null

# PyTorch packed only on the short texts: windows have almost no padding to skip, and PyTorch's packed
# LSTM on the CPU runs far slower than its padded one there
windows_torch=("${torch_args[@]}")
[ "${torch_args[0]}" = --torch-packed ] && windows_torch=()
RESULTS_OUT=$work/windows.rows bench/classifiers.sh "${lstm_args[@]}" "${windows_torch[@]}" "$imdb" >"$work/windows.txt"
RESULTS_OUT=$work/short.rows bench/classifiers.sh "${lstm_args[@]}" "${torch_args[@]}" "$work/short" >"$work/short.txt"

echo
echo "== IMDb windows ($imdb)"
sed -n '/^== /,$p' "$work/windows.txt"
echo
echo "== short texts (reel synth --short --docs $docs)"
sed -n '/^== /,$p' "$work/short.txt"
echo
echo "== short texts' tokens/s as a share of the windows' (same model, layout and implementation)"
awk -F'|' '
  FNR == 1 { file++ }
  $4 != "failed" { key = $1 "|" $2 "|" $3; tokens[file, key] = $6; if (file == 1) order[++n] = key }
  END {
    printf "%-10s %-8s %-32s %14s %14s %7s\n", "model", "impl", "layout", "windows tok/s", "short tok/s", "share"
    for (i = 1; i <= n; i++) {
      k = order[i]; split(k, f, "|")
      if (!((2, k) in tokens)) continue
      printf "%-10s %-8s %-32s %14.0f %14.0f %6.0f%%\n", f[1], f[2], f[3], tokens[1, k], tokens[2, k], 100 * tokens[2, k] / tokens[1, k]
    }
  }' "$work/windows.rows" "$work/short.rows"
