#!/usr/bin/env bash
# Start a throw-away single-node SLURM cluster (munged + slurmctld + slurmd)
# whose every file lives in DIR, for tests that need a real scheduler.
#
#   tests/slurm/start-cluster.sh DIR   # exit 0: up; 77: cannot run here (skip); 1: failed
#   source DIR/env.sh                  # point sbatch/squeue/scancel/... at it
#   tests/slurm/stop-cluster.sh DIR
#
# The daemons keep running after this script exits; their PIDs are in DIR/pids.
set -euo pipefail

skip() { echo "start-cluster: skipped: $*" >&2; exit 77; }
die() { echo "start-cluster: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 DIR"
here=$(cd "$(dirname "$0")" && pwd)
# slurmd must be root to run jobs as the submitting user.
[[ $(id -u) -eq 0 ]] || skip "slurmd needs root"

export PATH=$PATH:/usr/sbin
missing() {
  local c
  for c in slurmctld slurmd sbatch munged; do command -v "$c" >/dev/null || return 0; done
  return 1
}
if missing; then
  pkgs=(slurmctld slurmd slurm-client munge)
  export DEBIAN_FRONTEND=noninteractive
  apt_install() { apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; }
  command -v apt-get >/dev/null || skip "slurm not installed and no apt-get"
  # A fresh CI image may have no package lists yet; only pay for update then.
  apt_install || { apt-get update -qq && apt_install; } || skip "could not install ${pkgs[*]}"
  ! missing || skip "slurm still missing after installing ${pkgs[*]}"
  # The packages' own units skip slurmd/slurmctld without /etc/slurm/slurm.conf,
  # and a system munged would use the default socket, not ours.
fi

mkdir -p "$1"
dir=$(realpath "$1")
# slurm.conf has no quoting, and munge/slurmstepd sockets live under DIR
# (sun_path is 108 bytes), so keep DIR plain and short.
[[ $dir =~ ^[A-Za-z0-9_./+-]+$ ]] || die "DIR must not contain spaces or odd characters: $dir"
((${#dir} <= 60)) || die "DIR too long for unix sockets (${#dir} > 60 chars): $dir"
if [[ -s $dir/pids ]]; then
  while read -r pid; do
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || continue
    [[ $cmd != *"$dir/"* ]] || die "a cluster already runs in $dir (stop-cluster.sh first)"
  done <"$dir/pids"
fi
rm -rf "$dir/munge" "$dir/state" "$dir/spool" "$dir/log" "$dir/pids"
mkdir -m 0700 "$dir/state" "$dir/spool" "$dir/log"
# Clients of any user need to reach the socket; munged rejects group/other-writable dirs.
mkdir -m 0755 "$dir/munge"
: >"$dir/pids"

# Our own munged and key, so nothing depends on (or disturbs) a system munge.
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1 count=1024 status=none
chmod 0400 "$dir/munge/munge.key"
sock=$dir/munge/munge.socket.2
# -F keeps munged in the foreground, so $! is the daemon's own PID; setsid
# detaches all daemons from the caller's session and terminal signals.
setsid munged -F --force --socket="$sock" --key-file="$dir/munge/munge.key" \
  --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
  --seed-file="$dir/munge/munged.seed" </dev/null >>"$dir/log/munged.out" 2>&1 &
echo $! >>"$dir/pids"

# Listening TCP ports, as /proc/net/tcp* writes them (hex); needs no ss.
listening=" $(awk '$4 == "0A" { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null | tr '\n' ' ' || true)"
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    [[ $listening == *" $(printf %04X "$p") "* || " $* " == *" $p "* ]] || { echo "$p"; return; }
  done
}
ctld_port=$(free_port)
slurmd_port=$(free_port "$ctld_port")

host=$(hostname -s)
cpus=$(nproc)
# Declaring more memory than slurmd detects would drain the node.
mem=$(awk '/^MemTotal:/ { m = int($2 / 1024) - 512; print (m < 256 ? 256 : m) }' /proc/meminfo)
# Explicit 127.0.0.1 addresses: no reliance on the hostname resolving.
cat >"$dir/slurm.conf" <<EOF
ClusterName=ncflabtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
# cred_expire also delays a requeued job's restart (default 120 s + 1).
AuthInfo=socket=$sock,cred_expire=30
MailProg=/bin/true
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
# Passes every 5 s, not 30/60: a job whose BeginTime passed (a requeue) starts soon.
SchedulerParameters=bf_interval=5,sched_interval=5
# CR_CPU: several 1-CPU array tasks can run side by side even on 2 cores.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=30
KillWait=10
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

cat >"$dir/env.sh" <<EOF
# source me: Slurm clients read everything else (ports, munge socket) from here.
export SLURM_CONF=$dir/slurm.conf
export PATH=\$PATH:/usr/sbin
EOF
export SLURM_CONF=$dir/slurm.conf

stop_and_fail() {
  echo "start-cluster: $*" >&2
  for f in "$dir"/log/*.out; do # daemons in -D mode log everything to stderr too
    [[ -s $f ]] && { echo "==> $f <==" >&2; tail -n 20 "$f" >&2; }
  done
  "$here/stop-cluster.sh" "$dir" >&2 || true
  exit 1
}

for _ in $(seq 50); do
  [[ -S $sock ]] && break
  sleep 0.1
done
munge -n -S "$sock" | unmunge -S "$sock" >/dev/null 2>&1 || stop_and_fail "munged did not come up"

# Daemons (and every slurmstepd) keep their cwd: not the caller's directory.
cd "$dir"
# -c: ignore state from an earlier cluster in the same DIR.
setsid slurmctld -D -c -f "$dir/slurm.conf" </dev/null >>"$dir/log/slurmctld.out" 2>&1 &
echo $! >>"$dir/pids"
setsid slurmd -D -f "$dir/slurm.conf" -N "$host" </dev/null >>"$dir/log/slurmd.out" 2>&1 &
echo $! >>"$dir/pids"

state=
for _ in $(seq 60); do
  state=$(sinfo -h -o %T 2>/dev/null || true)
  [[ $state == idle ]] && break
  sleep 0.5
done
[[ $state == idle ]] || stop_and_fail "node not idle after 30 s (state: '${state:-no answer}')"
echo "slurm test cluster up: SLURM_CONF=$dir/slurm.conf (source $dir/env.sh)"
