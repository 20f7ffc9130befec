# Three hosts made of network namespaces (tests/netns_lib.sh), joined by links capped at 1 Gbit/s, Open MPI
# over TCP between them: the communication check, a training run across the hosts against the same run
# on one host, the PBS script in a PBS environment the test provides (PBS_NODEFILE, PBS_JOBID,
# PBS_O_WORKDIR), and a rank killed on one host ending the job and resuming bit-identically.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns_lib.sh"
require_netns
make_hosts 3 1gbit || { fail "cannot make the hosts"; finish; }
pass "three hosts h1-h3 on 10.99.0.0/24, links capped at 1 Gbit/s"

make_small_data "$WORK/data" 2500
write_small_config "$WORK/small.ini" "$WORK/data"
opts=(--set train.epochs=5 --set checkpoint.every_steps=10)

expect_ok "commtest across the hosts" mpirun_hosts -np 3 --map-by node "$REEL_BIN" commtest --repeat 3 --max-size 16777216
grep -q "3 rank(s) on 3 host(s): 0=h1 1=h2 2=h3" "$WORK/out.txt" && grep -q "every sum is right" "$WORK/out.txt" \
  && pass "commtest: a rank on each host, every sum right" || { fail "commtest"; cat "$WORK/out.txt" >&2; }

expect_ok "training on 3 hosts" mpirun_hosts -np 3 --map-by node "$REEL_BIN" train "$WORK/small.ini" --run-dir "$WORK/hosts3" "${opts[@]}"
missing_hosts=""
for k in 1 2 3; do grep -q "host h$k: rank(s) $((k - 1)), 1 rank(s)" "$WORK/out.txt" || missing_hosts+=" h$k"; done
[ -z "$missing_hosts" ] && pass "the host map shows a rank on each of h1, h2, h3" \
  || { fail "no rank on$missing_hosts in the host map"; grep "host h" "$WORK/out.txt" >&2 || true; }
expect_ok "training on 1 host" mpireel 3 train "$WORK/small.ini" --run-dir "$WORK/host1" "${opts[@]}"
if "$CKPT_COMPARE" "$WORK/host1/ckpt_00000100.h5" "$WORK/hosts3/ckpt_00000100.h5" --exact >/dev/null; then
  pass "3 hosts over TCP == 3 ranks on one host, bit for bit"
elif "$CKPT_COMPARE" "$WORK/host1/ckpt_00000100.h5" "$WORK/hosts3/ckpt_00000100.h5" --tol 1e-5 >/dev/null; then
  pass "3 hosts over TCP == 3 ranks on one host, within 1e-5"
else fail "3 hosts and one host differ"; fi

# PBS: the node file lists a host once per rank; the job script reads it, the cluster's mpirun options
# come in MPIRUN_OPTIONS
printf '10.99.0.1\n10.99.0.2\n10.99.0.3\n' >"$WORK/pbs_nodefile"
expect_ok "train.pbs across the hosts" on_host 1 env REEL="$REEL_BIN" PBS_NODEFILE="$WORK/pbs_nodefile" PBS_JOBID=4242.pbs \
  PBS_O_WORKDIR="$REEL_SOURCE_DIR" CONFIG="$WORK/small.ini" RUN_DIR="$WORK/pbs" MPIRUN_OPTIONS="${MPI_NET_OPTS[*]:2}" \
  bash "$REEL_SOURCE_DIR/jobs/train.pbs" "${opts[@]}"
grep -q "reel job 4242.pbs (pbs)" "$WORK/out.txt" && grep -q "host h1: rank(s) 0, 1 rank(s)" "$WORK/out.txt" \
  && grep -q "host h3: rank(s) 2, 1 rank(s)" "$WORK/out.txt" \
  && pass "train.pbs: ranks from PBS_NODEFILE on h1-h3" || { fail "train.pbs placement"; head -5 "$WORK/out.txt" >&2; }
[ -f "$WORK/pbs/ckpt_00000060.h5" ] && "$CKPT_COMPARE" "$WORK/host1/ckpt_00000060.h5" "$WORK/pbs/ckpt_00000060.h5" --tol 1e-5 >/dev/null \
  && pass "train.pbs: the same model as the other runs" || fail "train.pbs: checkpoint"

# a rank killed on h3: the job ends within seconds; the resumed run matches the uninterrupted one. The
# kill comes once checkpoint 40 exists; the run goes on to 1,000 steps so that its ranks are still
# training then on any machine (on an idle one the 100 steps above take 0.1 s, less than the time from
# the checkpoint's appearance to the kill: the kill then found a finished run, and the "resumed" run
# was the finished one). A kill that comes after the run's end fails by name below.
long=(--set train.epochs=50 --set checkpoint.every_steps=10)
expect_ok "training on 3 hosts, 1,000 steps" mpirun_hosts -np 3 --map-by node "$REEL_BIN" train "$WORK/small.ini" \
  --run-dir "$WORK/hosts3_long" "${long[@]}"
mpirun_hosts -np 3 --map-by node "$REEL_BIN" train "$WORK/small.ini" --run-dir "$WORK/killed" "${long[@]}" \
  --set train.log_every=1 >"$WORK/killed.log" 2>&1 &
launcher=$!
# wait for checkpoint 40 (kept: keep_last = 100), or the run's end, which fails by name below
wait_while_running "$launcher" test -f "$WORK/killed/ckpt_00000040.h5" || true
victim=$(for pid in $(ip netns pids "${NETNS_PREFIX}h3"); do
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = reel ] && echo "$pid"; done | head -1)
killed_at=$EPOCHREALTIME
[ -n "$victim" ] && kill -9 "$victim"
status=0
wait "$launcher" || status=$?
took=$(awk -v a="$killed_at" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
left=0
for k in 1 2 3; do left=$((left + $(ip netns pids "${NETNS_PREFIX}h$k" | wc -l))); done
[ -n "$victim" ] && [ "$status" -ne 0 ] && [ "$left" -eq 0 ] && awk -v t="$took" 'BEGIN { exit !(t < 10) }' \
  && pass "the rank on h3 killed: the job ended in $took s (status $status), no process left on any host" \
  || fail "kill on h3: victim '$victim', status $status, $left process(es) left, $took s"
if grep -q "^training: " "$WORK/killed.log"; then
  fail "the kill came after the run had finished its 1,000 steps: nothing was interrupted"
else
  pass "the kill interrupted the run ($(grep -c '^checkpoint: step' "$WORK/killed.log") checkpoint(s) written before it)"
fi
expect_ok "resumed across the hosts" mpirun_hosts -np 3 --map-by node "$REEL_BIN" train "$WORK/small.ini" --run-dir "$WORK/killed" "${long[@]}"
grep -q "resuming from" "$WORK/out.txt" && "$CKPT_COMPARE" "$WORK/hosts3_long/ckpt_00001000.h5" "$WORK/killed/ckpt_00001000.h5" --exact >/dev/null \
  && pass "resumed after the kill: bit-identical to the uninterrupted 3-host run" || fail "the resumed 3-host run differs"
finish
