# reel runs and reel plot on a small sweep: the table shows exactly the settings that differ and the
# metrics the files hold (read independently with h5py); the plots are valid PNGs of the asked size,
# change when the data changes, and can be drawn from a run that was killed mid-write; bad input.
source "$(dirname "$0")/lib.sh"
require_h5py

make_small_data "$WORK/data" 2500
write_small_config "$WORK/small.ini" "$WORK/data"
# a 2 x 2 sweep of learning rate and hidden size, one run directory per element (as a job array makes)
for lr in 0.01 0.003; do for hidden in 16 32; do
  expect_ok "sweep lr $lr hidden $hidden" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/sweep/lr${lr}_h$hidden" \
    --set optimizer.lr=$lr --set model.hidden_dim=$hidden --set train.epochs=2
done; done

# ---- reel runs ----
expect_ok "runs" reel runs "$WORK/sweep"
cp "$WORK/out.txt" "$WORK/runs.txt"
header=$(head -1 "$WORK/runs.txt")
grep -q "model.hidden_dim" <<<"$header" && grep -q "optimizer.lr" <<<"$header" && pass "the differing settings are columns" \
  || fail "missing differing settings: $header"
if grep -Eq "train.seed|model.embed_dim|train.run_dir|data.dir" <<<"$header"; then fail "settings that do not differ are shown: $header"
else pass "settings the runs share are left out"; fi
[ "$(wc -l <"$WORK/runs.txt")" -eq 5 ] && pass "a row per run" || fail "$(wc -l <"$WORK/runs.txt") lines"
expect_ok "runs --tsv --sort best" reel runs "$WORK/sweep" --tsv --sort best
# check_runs_tsv TABLE ROWS: the table (reel runs --tsv) has ROWS runs and each row's values are those of
# its run's metrics.h5, read independently with h5py; best run first. A column without a value is "-".
cat >"$WORK/check_runs.py" <<'PY'
import sys, h5py
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
head, body = rows[0], rows[1:]
col = {name: i for i, name in enumerate(head)}
assert len(body) == int(sys.argv[2]), body
pct = lambda v: f"{100 * v:.2f}%"
bests = []
for row in body:
    f = h5py.File(row[0] + "/metrics.h5", "r", swmr=True)
    split, acc, step = f["eval/split"][:], f["eval/accuracy"][:], f["eval/step"][:]
    valid = [(a, s) for a, s, sp in zip(acc, step, split) if sp == 0]
    if valid:
        best = max(valid, key=lambda x: x[0])
        best_first = next(v for v in valid if v[0] == best[0])
        assert row[col["best valid accuracy (step)"]] == f"{pct(best[0])} ({best_first[1]})", (row, best_first)
        assert row[col["last valid"]] == pct(valid[-1][0]), row
        bests.append(best[0])
    else:
        assert row[col["best valid accuracy (step)"]] == "-" and row[col["last valid"]] == "-", row
    test = [a for a, sp in zip(acc, split) if sp == 1]
    assert row[col["test"]] == (pct(test[-1]) if test else "-"), row
    assert row[col["steps"]] == str(f["train/step"][-1]), row
    assert row[col["epochs"]] == str(int(f["train/epoch"][-1]) + 1), row
assert bests == sorted(bests, reverse=True), bests
print(" | ".join("\t".join(row) for row in body))
PY
"$H5PY_PYTHON" "$WORK/check_runs.py" "$WORK/out.txt" 4 && pass "best and last values match metrics.h5, best run first" \
  || fail "runs table disagrees with metrics.h5"
expect_ok "two directories and a run" reel runs "$WORK/sweep/lr0.01_h16" "$WORK/sweep/lr0.003_h32"
[ "$(wc -l <"$WORK/out.txt")" -eq 3 ] && pass "runs given one by one" || fail "runs given one by one"

# ---- reel plot ----
png_size() { python3 -c "
import struct, sys
data = open(sys.argv[1], 'rb').read(24)
assert data[:8] == b'\x89PNG\r\n\x1a\n' and data[12:16] == b'IHDR', 'not a PNG'
print('%dx%d' % struct.unpack('>II', data[16:24]))" "$1"; }
expect_ok "plot the sweep" reel plot "$WORK"/sweep/* -o "$WORK/sweep.png"
[ "$(png_size "$WORK/sweep.png")" = 1500x900 ] && pass "a 1500x900 PNG of four runs" || fail "sweep.png: $(png_size "$WORK/sweep.png")"
expect_ok "plot one run" reel plot "$WORK/sweep/lr0.01_h16" -o "$WORK/one.png" --size 800x600 --title "one run"
[ "$(png_size "$WORK/one.png")" = 800x600 ] && pass "--size is applied" || fail "one.png: $(png_size "$WORK/one.png")"
# the same run drawn again is the same file (so a difference below means other data); another run's
# metrics, in a directory of the same name (the legend names runs by their directory), drawn at the same
# size with the same title, is another picture: only the data differ
expect_ok "plot the run again" reel plot "$WORK/sweep/lr0.01_h16" -o "$WORK/one_again.png" --size 800x600 --title "one run"
cmp -s "$WORK/one.png" "$WORK/one_again.png" && pass "the same run, the same picture" || fail "the same run drawn twice differs"
mkdir -p "$WORK/other" && cp -r "$WORK/sweep/lr0.003_h32" "$WORK/other/lr0.01_h16"
expect_ok "plot another run" reel plot "$WORK/other/lr0.01_h16" -o "$WORK/other.png" --size 800x600 --title "one run"
[ "$(png_size "$WORK/other.png")" = 800x600 ] || fail "other.png: $(png_size "$WORK/other.png")"
cmp -s "$WORK/other.png" "$WORK/one.png" && fail "different runs, the same picture" || pass "other runs, another picture"
cp "$WORK/one.png" "$WORK/one_before.png"
expect_ok "train the run further" mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/sweep/lr0.01_h16" \
  --set optimizer.lr=0.01 --set model.hidden_dim=16 --set train.epochs=4
expect_ok "plot it again" reel plot "$WORK/sweep/lr0.01_h16" -o "$WORK/one.png" --size 800x600 --title "one run"
cmp -s "$WORK/one_before.png" "$WORK/one.png" && fail "more data, the same picture" || pass "more data, another picture"
ls "$WORK"/*.tmp.png >/dev/null 2>&1 && fail "a temporary PNG was left" || pass "no temporary file left"

# a run killed mid-way: its metrics file is still drawn
(mpireel 2 train "$WORK/small.ini" --run-dir "$WORK/killed" --set train.epochs=300 --set train.log_every=1 \
  >"$WORK/killed.log" 2>&1 &)
for _ in $(seq 100); do grep -q "epoch 2/300" "$WORK/killed.log" 2>/dev/null && break; sleep 0.2; done
pkill -9 -f "run-dir $WORK/killed" || true
sleep 1
expect_ok "plot a killed run" reel plot "$WORK/killed" -o "$WORK/killed.png"
[ "$(png_size "$WORK/killed.png")" = 1500x900 ] && pass "a killed run's metrics are drawn" || fail "killed.png"
expect_ok "runs lists the killed run" reel runs "$WORK/killed"
[ "$(wc -l <"$WORK/out.txt")" -eq 2 ] && [ "$(sed -n 2p "$WORK/out.txt" | awk '{print $1}')" = "$WORK/killed" ] \
  && pass "the listing has the killed run's row" || { fail "no row of the killed run:"; sed 's/^/    /' "$WORK/out.txt" >&2; }
expect_ok "runs --tsv of the killed run" reel runs "$WORK/killed" --tsv
"$H5PY_PYTHON" "$WORK/check_runs.py" "$WORK/out.txt" 1 && pass "the killed run's values are those of its metrics.h5" \
  || fail "the killed run's row disagrees with its metrics.h5"
column() { awk -F'\t' -v name="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i } NR == 2 { print $c }' "$WORK/out.txt"; }
[ "$(column steps)" -gt 0 ] && [ "$(column test)" = "-" ] \
  && pass "the killed run trained ($(column steps) steps) and has no test value" \
  || fail "the killed run's row: $(sed -n 2p "$WORK/out.txt")"

# the reliability diagram of reel analyze
expect_ok "analyze" reel analyze "$WORK/sweep/lr0.01_h16/ckpt_best.h5" --json "$WORK/analysis.json"
expect_ok "plot the reliability" reel plot --reliability "$WORK/analysis.json" -o "$WORK/reliability.png"
[ "$(png_size "$WORK/reliability.png")" = 900x800 ] && pass "a reliability diagram" || fail "reliability.png"

# bad input
expect_fail "no -o" "give the PNG to write with -o FILE.png" reel plot "$WORK/sweep/lr0.01_h16"
expect_fail "not a run directory" "data: no metrics.h5 in it" reel plot "$WORK/data" -o "$WORK/x.png"
expect_fail "bad --size" "--size '10x10': expected WIDTHxHEIGHT" reel plot "$WORK/killed" -o "$WORK/x.png" --size 10x10
echo '{"accuracy": 1}' >"$WORK/other.json"
expect_fail "a JSON without the table" "other.json: no \"reliability\" table" reel plot --reliability "$WORK/other.json" -o "$WORK/x.png"
echo 'nonsense' >"$WORK/bad.json"
expect_fail "not JSON" "bad.json: not JSON" reel plot --reliability "$WORK/bad.json" -o "$WORK/x.png"
expect_fail "an unwritable output" "cannot write" reel plot "$WORK/killed" -o "$WORK/no_dir/x.png"
[ ! -e "$WORK/x.png" ] && pass "no picture from bad input" || fail "a picture was written from bad input"
expect_fail "runs of a missing directory" "nowhere: no such directory" reel runs "$WORK/nowhere"
expect_fail "runs of a directory without runs" "data: neither a run directory" reel runs "$WORK/data"
expect_fail "runs --sort" "--sort 'speed': expected name or best" reel runs "$WORK/sweep" --sort speed
finish
