# A throwaway single-node Slurm for the tests (sourced after lib.sh): munged, slurmctld and slurmd from
# Debian's slurm-wlm and munge, started without systemd, with every file in $WORK/slurm and ports of
# their own on loopback, so nothing of the machine's own Slurm (if any) is touched. stop_slurm (run on
# exit) cancels the jobs and ends the daemons.

# Skips the test (77) only when Slurm cannot be had here (no root to run slurmd); a missing package is a
# failure, since scripts/install-deps installs it.
require_slurm() {
  local missing=""
  [ "$(id -u)" -eq 0 ] || { echo "SKIPPED: running slurmd needs root" >&2; exit 77; }
  for program in slurmctld slurmd sbatch scontrol munged; do command -v "$program" >/dev/null || missing+=" $program"; done
  [ -z "$missing" ] || { echo "FAIL: Slurm is not installed (missing:$missing); scripts/install-deps installs slurm-wlm and munge" >&2; exit 1; }
  id munge >/dev/null 2>&1 || { echo "FAIL: no munge user (the munge package creates it; run scripts/install-deps)" >&2; exit 1; }
}

free_port() {
  local port
  while :; do
    # (below Linux's ephemeral range, 32768 and up, which outgoing connections take without listening)
    port=$((20000 + RANDOM % 12000))
    ss -ltn 2>/dev/null | grep -q ":$port " || { echo "$port"; return; }
  done
}

start_slurm() {
  SLURM_DIR="$WORK/slurm"
  rm -rf "$SLURM_DIR" && mkdir -p "$SLURM_DIR/munge" "$SLURM_DIR/state" "$SLURM_DIR/spool"
  # munged insists on its own user, a private key and a socket directory others can traverse
  chown munge:munge "$SLURM_DIR/munge" && chmod 711 "$SLURM_DIR/munge"
  head -c 1024 /dev/urandom >"$SLURM_DIR/munge/key"
  chown munge:munge "$SLURM_DIR/munge/key" && chmod 400 "$SLURM_DIR/munge/key"
  runuser -u munge -- munged --socket="$SLURM_DIR/munge/socket" --key-file="$SLURM_DIR/munge/key" \
    --log-file="$SLURM_DIR/munge/log" --pid-file="$SLURM_DIR/munge/pid" --seed-file="$SLURM_DIR/munge/seed" \
    || { fail "munged did not start: $(tail -2 "$SLURM_DIR/munge/log")"; finish; }
  # (nproc follows OMP_NUM_THREADS, which the tests set to 1 for oneDNN: the machine's cores without it)
  cat >"$SLURM_DIR/slurm.conf" <<CONF
ClusterName=reeltest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
AuthInfo=socket=$SLURM_DIR/munge/socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/slurmctld.log
SlurmdLogFile=$SLURM_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
KillWait=15
MinJobAge=3600
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$SLURM_DIR/slurm.conf"
  trap stop_slurm EXIT
  slurmctld -i || { fail "slurmctld did not start: $(tail -3 "$SLURM_DIR/slurmctld.log")"; finish; }
  # the controller answers before the node daemon registers with it
  for _ in $(seq 150); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
  scontrol ping 2>/dev/null | grep -q UP || { fail "slurmctld never answered: $(scontrol ping 2>&1)"; slurm_logs; finish; }
  slurmd -N localhost || { fail "slurmd did not start: $(tail -3 "$SLURM_DIR/slurmd.log")"; finish; }
  # Up to 60 s for the node to register (a loaded machine can be slow); a node daemon that died on the
  # way is started once more, and the failure shows both daemons' logs.
  local tries
  for tries in $(seq 300); do
    sinfo -h -o %t 2>/dev/null | grep -q idle && break
    if [ "$tries" -eq 100 ] && ! kill -0 "$(cat "$SLURM_DIR/slurmd.pid" 2>/dev/null)" 2>/dev/null; then
      echo "note: slurmd had exited (log: $(tail -1 "$SLURM_DIR/slurmd.log")); starting it again" >&2
      slurmd -N localhost || true
    fi
    sleep 0.2
  done
  sinfo -h -o %t | grep -q idle && pass "a Slurm of one node is up ($(sinfo -h -o '%c CPUs, partition %P'))" \
    || { fail "the node never became idle: $(sinfo 2>&1)"; slurm_logs; finish; }
}

# the last lines of the daemons' logs and whether they run, for a failure's report
slurm_logs() {
  local daemon
  for daemon in slurmctld slurmd; do
    echo "--- $daemon ($(kill -0 "$(cat "$SLURM_DIR/$daemon.pid" 2>/dev/null)" 2>/dev/null && echo running || echo "not running")), last lines of its log:" >&2
    tail -15 "$SLURM_DIR/$daemon.log" 2>/dev/null | sed 's/^/    /' >&2
  done
}

stop_slurm() {
  scancel --full --signal=KILL --user=root 2>/dev/null || true
  for pid_file in "$SLURM_DIR/slurmd.pid" "$SLURM_DIR/slurmctld.pid" "$SLURM_DIR/munge/pid"; do
    [ -f "$pid_file" ] && kill "$(cat "$pid_file")" 2>/dev/null || true
  done
  sleep 0.5
  for pid_file in "$SLURM_DIR/slurmd.pid" "$SLURM_DIR/slurmctld.pid" "$SLURM_DIR/munge/pid"; do
    [ -f "$pid_file" ] && kill -9 "$(cat "$pid_file")" 2>/dev/null || true
  done
  pkill -9 -f "reel .*--run-dir $WORK/" 2>/dev/null || true
}

# job_field JOB FIELD: a field of scontrol show job (JobState, Restarts, ExitCode, ...)
job_field() { scontrol show job "$1" -o 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }

# wait_job JOB STATE [SECONDS]: until the job is in STATE (a requeued job waiting for its begin time is
# started 3 s later, once: Slurm holds requeued jobs back 2 minutes, which only slows the test; starting
# it in the second of its requeue fails, as slurmd refuses the job's credential, revoked in that second)
wait_job() {
  local job=$1 state=$2 limit=${3:-180} t=0 restarts_moved=-1
  while [ "$t" -lt $((limit * 5)) ]; do
    local now
    now=$(job_field "$job" JobState)
    [ "$now" = "$state" ] && return 0
    case $now in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) [ "$state" != "$now" ] && return 1 ;; esac
    if [ "$now" = PENDING ] && [ "$(job_field "$job" Reason)" = BeginTime ]; then
      local restarts
      restarts=$(job_field "$job" Restarts)
      if [ "$restarts" != "$restarts_moved" ]; then
        scontrol update JobId="$job" StartTime=now+3 >/dev/null 2>&1 && restarts_moved=$restarts
      fi
    fi
    sleep 0.2
    t=$((t + 1))
  done
  return 1
}
