# Several hosts on one machine, for the multi-host tests and benchmarks (sourced after lib.sh, or on its
# own by bench/multihost.sh with WORK set): network namespaces h1..hN, each with one veth into a bridge
# that lives in a namespace of its own, addresses 10.99.0.1..N/24, so no address exists in the root
# namespace and traffic only flows between these hosts. Every process started on host k runs in its own
# UTS namespace named hk (Open MPI's daemons would otherwise collide on shared-memory files). mpirun
# runs on h1 and reaches the others through an rsh agent script that enters their namespaces. The hosts
# share this machine's cores, so ranks are not bound to cores (every host's first rank would take core 0).
#
#   make_hosts N [RATE]      create h1..hN (RATE: a tc tbf cap on every link, e.g. 1gbit; none by default)
#   on_host K COMMAND...     run a command on host k
#   HOSTFILE, MPI_NET_OPTS   a host file of the N addresses, and the mpirun options that use them
#   remove_hosts             delete everything make_hosts made (make_hosts arranges it on exit)

NETNS_PREFIX=${NETNS_PREFIX:-reelt$$}

# The tools come from packages scripts/install-deps installs, so one missing is a failure; what no package
# gives (root, the right to create namespaces inside a container) is a skip with the reason.
require_netns() {
  local tool missing=""
  for tool in ip tc unshare; do command -v "$tool" >/dev/null || missing+=" $tool"; done
  if [ -n "$missing" ]; then
    echo "FAIL: missing:$missing (ip and tc: iproute2, unshare: util-linux); run scripts/install-deps" >&2
    exit 1
  fi
  [ "$(id -u)" -eq 0 ] || { echo "SKIPPED: network namespaces need root (running as uid $(id -u))" >&2; exit 77; }
  local why
  why=$(ip netns add "${NETNS_PREFIX}probe" 2>&1) || {
    echo "SKIPPED: cannot create network namespaces here (no CAP_SYS_ADMIN?): ip netns add: $why" >&2; exit 77; }
  ip netns del "${NETNS_PREFIX}probe"
}

on_host() {
  local k=$1; shift
  ip netns exec "${NETNS_PREFIX}h$k" unshare --uts /bin/sh -c 'hostname "$0"; exec "$@"' "h$k" "$@"
}

make_hosts() {
  local n=$1 rate=${2:-}
  NUM_HOSTS=$n
  trap remove_hosts EXIT
  local bridge="${NETNS_PREFIX}br"
  ip netns add "$bridge"
  ip -n "$bridge" link add br0 type bridge
  ip -n "$bridge" link set br0 up
  for k in $(seq "$n"); do
    local ns="${NETNS_PREFIX}h$k"
    ip netns add "$ns"
    ip link add "eth$k" netns "$ns" type veth peer name "p$k" netns "$bridge"
    ip -n "$ns" addr add "10.99.0.$k/24" dev "eth$k"
    ip -n "$ns" link set "eth$k" up
    ip -n "$ns" link set lo up
    ip -n "$bridge" link set "p$k" master br0
    ip -n "$bridge" link set "p$k" up
    if [ -n "$rate" ]; then
      # the cap on both directions of the link: the host's side and the bridge's side
      ip netns exec "$ns" tc qdisc add dev "eth$k" root tbf rate "$rate" burst 4mb latency 100ms
      ip netns exec "$bridge" tc qdisc add dev "p$k" root tbf rate "$rate" burst 4mb latency 100ms
    fi
  done
  HOSTFILE="$WORK/hostfile"
  : >"$HOSTFILE"
  for k in $(seq "$n"); do echo "10.99.0.$k slots=2" >>"$HOSTFILE"; done
  # the rsh agent: `agent ADDRESS COMMAND` runs COMMAND on the host of that address
  RSH_AGENT="$WORK/rsh_agent"
  cat >"$RSH_AGENT" <<AGENT
#!/bin/sh
host=\$1; shift
k=\${host##*.}
exec ip netns exec ${NETNS_PREFIX}h\$k unshare --uts /bin/sh -c "hostname h\$k; \$*"
AGENT
  chmod +x "$RSH_AGENT"
  MPI_NET_OPTS=(--hostfile "$HOSTFILE" --mca plm_rsh_agent "$RSH_AGENT" --mca btl tcp,self
                --mca btl_tcp_if_include 10.99.0.0/24 --mca oob_tcp_if_include 10.99.0.0/24
                --mca mpi_yield_when_idle 1 --oversubscribe --bind-to none)
}

remove_hosts() {
  for ns in $(ip netns list | awk '{print $1}' | grep "^${NETNS_PREFIX}"); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}

# mpirun_hosts ARGS...: mpirun on h1 over the hosts (ranks placed by the host file, --map-by as given)
mpirun_hosts() { on_host 1 "$MPIEXEC" "${MPI_NET_OPTS[@]}" "$@"; }
