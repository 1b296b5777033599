#!/usr/bin/env bash
# Stop a cluster started by start-cluster.sh DIR. Kills only the PIDs recorded
# in DIR/pids and the jobs of this cluster, never by name, so other clusters
# and system daemons survive. Safe to run twice, or after a half-failed start.
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$(realpath -m "$1")
[[ -s $dir/pids ]] || exit 0
export PATH=$PATH:/usr/sbin SLURM_CONF=$dir/slurm.conf

# A PID counts as ours only while its command line still names DIR, so a
# recycled PID of an unrelated process is never signalled.
ours() { local c; c=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") && [[ $c == *"$dir/"* ]]; }

mapfile -t pids < <(tac "$dir/pids") # slurmd, slurmctld, munged

# Let slurmd end the jobs (TERM, KILL after KillWait) while it still can:
# slurmstepd and the job survive slurmd's death by design. Skipped when
# slurmctld is gone, as scancel would then retry for its full timeout.
if ours "${pids[1]:-0}" && timeout 10 scancel --partition=debug 2>/dev/null; then
  for _ in $(seq 30); do
    [[ -z $(timeout 5 squeue -h -t R,CG,S -o %i 2>/dev/null) ]] && break
    sleep 0.5
  done
fi

for pid in "${pids[@]}"; do ! ours "$pid" || kill -TERM "$pid" 2>/dev/null || true; done
for _ in $(seq 100); do
  alive=0
  for pid in "${pids[@]}"; do ! ours "$pid" || alive=1; done
  ((alive)) || break
  sleep 0.1
done
for pid in "${pids[@]}"; do ! ours "$pid" || kill -KILL "$pid" 2>/dev/null || true; done

# Jobs scancel could not end. Each slurmstepd keeps slurmd's log open (its
# environ and cmdline are overwritten by its process title), and its job runs
# in its session. Our own session is spared: the caller is never a job.
sid_of() { # field 6 of /proc/PID/stat; the name in (...) may hold spaces
  local s f
  s=$(<"/proc/$1/stat") && read -r -a f <<<"${s##*) }" && [[ -n ${f[3]:-} ]] && echo "${f[3]}"
}
own=$(sid_of $$)
sids=" "
while read -r fd; do
  p=${fd#/proc/} && p=${p%%/*}
  if sid=$(sid_of "$p" 2>/dev/null) && [[ $sid != "$own" ]]; then sids+="$sid "; fi
done < <(find /proc/[0-9]*/fd -lname "$dir/log/slurmd.log" 2>/dev/null || true)
if [[ $sids != " " ]]; then
  for stat in /proc/[0-9]*/stat; do
    p=${stat#/proc/} && p=${p%/stat}
    if sid=$(sid_of "$p" 2>/dev/null) && [[ $sids == *" $sid "* ]]; then
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
fi
rm -f "$dir/pids"
