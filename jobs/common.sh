# Sourced by every job script in jobs/ (Slurm and PBS): the environment reel needs on a cluster, the
# mpirun command for the allocation, and running `reel train` so that a stop before the time limit or a
# preemption turns into a requeue. Nothing here needs changing per job: the scripts' headers and the
# variables below (given with sbatch --export / qsub -v) say what to run.
#
#   REEL       the reel program (default: build/reel of the repository)
#   NP         ranks when no scheduler gives them (default 2); inside an allocation the scheduler decides
#   TIME_LIMIT PBS: the job's walltime as reel train --time-limit takes it, when the scheduler does not
#              export it (Torque exports PBS_WALLTIME); reel then checkpoints and stops before it is up
#   REQUEUE    0 disables the automatic requeue after a stop (default 1)
#   REEL_JOB_ARGS  set by a job that submitted itself again (qsub): the file holding its arguments

# The repository: where the job was submitted from (Slurm starts the job there; PBS starts it in $HOME
# and says where in PBS_O_WORKDIR; both run a copy of the script, so its own path says nothing).
# Submit from the repository root, or set REEL_HOME.
REEL_HOME=${REEL_HOME:-${PBS_O_WORKDIR:-$PWD}}
cd "$REEL_HOME"
REEL=${REEL:-$REEL_HOME/build/reel}
[ -x "$REEL" ] || { echo "reel job: $REEL is not there: build reel first (scripts/build), or set REEL" >&2; exit 1; }

# The arguments after the job script (sourced without arguments, this file sees the script's). qsub has
# no portable way to give a script arguments, so a job that submits itself again (reel_train) leaves its
# own in a file named by REEL_JOB_ARGS, and they are restored here, for the script, when it got none.
JOB_ARGS=("$@")
if [ $# -eq 0 ] && [ -n "${REEL_JOB_ARGS:-}" ]; then
  [ -f "$REEL_JOB_ARGS" ] || { echo "reel job: REEL_JOB_ARGS names $REEL_JOB_ARGS, which is not there" >&2; exit 1; }
  mapfile -d '' -t JOB_ARGS <"$REEL_JOB_ARGS"
  set -- "${JOB_ARGS[@]}"
  echo "reel job: the arguments of the job that submitted this one ($REEL_JOB_ARGS): ${JOB_ARGS[*]}"
fi

# One OpenBLAS thread per CPU the scheduler gives each rank: ranks x threads must not exceed the cores,
# or every rank slows down (OpenBLAS threads spin). Slurm: --cpus-per-task; PBS Pro: ompthreads (it
# exports OMP_NUM_THREADS); else 1.
export OPENBLAS_NUM_THREADS=${SLURM_CPUS_PER_TASK:-${OMP_NUM_THREADS:-${OPENBLAS_NUM_THREADS:-1}}}
export OMP_NUM_THREADS=$OPENBLAS_NUM_THREADS
# HDF5's file locks fail on many NFS and Lustre mounts ("unable to lock file"); only rank 0 ever writes
# reel's files, so locking is not needed.
export HDF5_USE_FILE_LOCKING=FALSE
# Containers and some clusters run jobs as root, which Open MPI refuses unless told.
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

# The ranks: inside a Slurm allocation Open MPI reads it (nodes, tasks) itself; with a PBS node file,
# one rank per line of it (PBS lists each host once per MPI process); otherwise NP ranks on this host.
MPIRUN=(mpirun)
if [ -n "${SLURM_JOB_ID:-}" ]; then
  JOB_ID=$SLURM_JOB_ID
  [ -n "${SLURM_ARRAY_JOB_ID:-}" ] && JOB_ID=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}
  SCHEDULER=slurm
elif [ -n "${PBS_NODEFILE:-}" ] && [ -f "${PBS_NODEFILE}" ]; then
  JOB_ID=${PBS_JOBID:-pbs}
  SCHEDULER=pbs
  # PBS lists a host once per rank; Open MPI reads a host listed once as all of its cores, so the list
  # becomes "host slots=N", hosts in their order (rank 0 on the first)
  HOSTS_FILE=$(mktemp "${TMPDIR:-/tmp}/reel_hosts.XXXXXX")
  trap 'rm -f "$HOSTS_FILE"' EXIT      # (every job would leave one behind)
  awk '!($1 in count) { order[n++] = $1 } { count[$1]++ } END { for (i = 0; i < n; i++) print order[i] " slots=" count[order[i]] }' \
    "$PBS_NODEFILE" >"$HOSTS_FILE"
  MPIRUN+=(-np "$(wc -l <"$PBS_NODEFILE")" --hostfile "$HOSTS_FILE")
else
  JOB_ID=${PBS_JOBID:-local}
  SCHEDULER=none
  MPIRUN+=(-np "${NP:-2}")
fi
# Open MPI binds each rank to a single core when it starts 2 ranks or fewer, and OpenBLAS, seeing one
# core, then runs one thread whatever OPENBLAS_NUM_THREADS says: with more threads per rank the ranks are
# left unbound (the scheduler still confines the job to its CPUs).
[ "$OPENBLAS_NUM_THREADS" = 1 ] || MPIRUN+=(--bind-to none)
# Extra mpirun options for this cluster (e.g. --mca btl_tcp_if_include ib0), as one string.
if [ -n "${MPIRUN_OPTIONS:-}" ]; then read -r -a extra <<<"$MPIRUN_OPTIONS"; MPIRUN+=("${extra[@]}"); fi

echo "reel job $JOB_ID ($SCHEDULER) on $(hostname): OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS, ${MPIRUN[*]}"

# reel_run ARGS...: runs `mpirun reel ARGS...` and returns its status. Slurm's warning signal (USR1, sent
# to this shell by --signal=B:USR1@SECONDS) and a TERM are passed on to mpirun, which passes them to the
# ranks: reel then writes a checkpoint at the next step boundary and stops with status 75.
reel_run() {
  "${MPIRUN[@]}" "$REEL" "$@" &
  local pid=$! status=0
  trap 'echo "reel job $JOB_ID: USR1 (the time limit is near): stopping with a checkpoint"; kill -USR1 $pid 2>/dev/null' USR1
  trap 'echo "reel job $JOB_ID: TERM: stopping with a checkpoint"; kill -USR1 $pid 2>/dev/null' TERM
  # wait returns early (status > 128) when a trapped signal arrives: wait again until mpirun is done
  while :; do
    status=0
    wait "$pid" || status=$?
    kill -0 "$pid" 2>/dev/null || break
  done
  trap - USR1 TERM
  return "$status"
}

# reel_train ARGS...: reel_run train ARGS..., then on status 75 (stopped to be continued, after a
# checkpoint) puts the job back in the queue, where it resumes from that checkpoint. Exits with the
# final status.
reel_train() {
  local status=0
  reel_run train "$@" || status=$?
  if [ "$status" -eq 75 ]; then
    local scheduler=$SCHEDULER
    [ "${REQUEUE:-1}" = 0 ] && scheduler=none
    case $scheduler in
      slurm)
        echo "reel job $JOB_ID: stopped before its end; requeued (scontrol requeue), it will resume from its checkpoint"
        scontrol requeue "$SLURM_JOB_ID"     # an array element has a job id of its own
        ;;
      pbs)
        # qrerun ends this job and queues it again, with its variables and arguments. Many sites keep it
        # for operators, and a job submitted with -r n is not rerunnable: then qrerun fails, and the job
        # is submitted anew, with the variables below and its arguments in a file of the run directory.
        local rerun=0
        if [ -n "${PBS_JOBID:-}" ] && command -v qrerun >/dev/null; then
          echo "reel job $JOB_ID: stopped before its end; rerun (qrerun $PBS_JOBID), it will resume from its checkpoint"
          qrerun "$PBS_JOBID" && rerun=1 || echo "reel job $JOB_ID: qrerun $PBS_JOBID failed (status $?)"
        fi
        if [ "$rerun" = 0 ] && [ -n "${JOB_SCRIPT:-}" ] && command -v qsub >/dev/null; then
          echo "reel job $JOB_ID: stopped before its end; submitted again (qsub $JOB_SCRIPT)"
          local args_file=""
          if [ "${#JOB_ARGS[@]}" -gt 0 ]; then
            args_file="$(cd "$RUN_DIR" && pwd)/job_args"
            printf '%s\0' "${JOB_ARGS[@]}" >"$args_file"
          fi
          # TIME_LIMIT too: without it a PBS that exports no PBS_WALLTIME would end the next job unwarned
          qsub -v "CONFIG=${CONFIG:-},RUN_DIR=${RUN_DIR:-},REEL_HOME=$REEL_HOME,REEL=$REEL${TIME_LIMIT:+,TIME_LIMIT=$TIME_LIMIT}${args_file:+,REEL_JOB_ARGS=$args_file}" \
            "$REEL_HOME/$JOB_SCRIPT"
        elif [ "$rerun" = 0 ]; then
          echo "reel job $JOB_ID: stopped before its end (status 75), neither rerun nor submitted again; submit it again to continue from its checkpoint"
        fi
        ;;
      *) echo "reel job $JOB_ID: stopped before its end (status 75); run it again to continue from its checkpoint" ;;
    esac
  fi
  exit "$status"
}

# PBS has no warning signal before the walltime: give reel the time limit instead, so it stops in time.
TIME_LIMIT_ARGS=()
if [ -n "${TIME_LIMIT:-}" ]; then TIME_LIMIT_ARGS=(--time-limit "$TIME_LIMIT")
elif [ "$SCHEDULER" = pbs ] && [ -n "${PBS_WALLTIME:-}" ]; then TIME_LIMIT_ARGS=(--time-limit "$PBS_WALLTIME"); fi
