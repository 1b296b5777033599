#!/usr/bin/env bash
# `ncflab sweep --launcher slurm` on a real single-node SLURM cluster started for this test
# (start-cluster.sh; exit 77, skipped, where that cannot be done):
#  1. a 2×3 grid through a SLURM job array gives the local sweep's sweep.csv, every cell but
#     the two timings;
#  2. a job cancelled with scancel mid-run and resumed with `sweep --resume --launcher slurm`
#     ends with every point's weights and metrics byte for byte those of a sweep never
#     stopped;
#  3. an sbatch option SLURM refuses is a one-line exit 2.
set -euo pipefail
ncflab=$1
config=$2
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
cluster="$dir/cluster"
set +e
bash "$here/start-cluster.sh" "$cluster"
code=$?
set -e
if [ "$code" -ne 0 ]; then
  rm -rf "$dir"
  exit "$code"  # 77: skipped (not root, no packages)
fi
trap 'bash "$here/stop-cluster.sh" "$cluster"; rm -rf "$dir"' EXIT
# shellcheck source=/dev/null
source "$cluster/env.sh"

fail() { echo "test_sweep_slurm: $*"; exit 1; }

# Every column of sweep.csv but the timings (wall_seconds, steps_per_second: the last two).
numbers() { cut -d, -f1-18 "$1/sweep.csv"; }

same_points() {  # same_points REFERENCE OTHER
  for point in "$1"/0*/; do
    name=$(basename "$point")
    cmp "$point/weights_final.pt" "$2/$name/weights_final.pt" || fail "$2/$name: other weights"
    cmp "$point/metrics.csv" "$2/$name/metrics.csv" || fail "$2/$name: other metrics"
  done
}

# 1. The 2×3 grid: 3 batches (a seed each, its two δ together), 3 array tasks.
grid=("init.scale=0.01,0.003" "seed=1,2,3" hooks.progress=false)
"$ncflab" sweep "$config" "${grid[@]}" --out "$dir/local" >/dev/null 2>&1
# A lab's config keys reach the job script (and the job runs with them).
"$ncflab" sweep "$config" "${grid[@]}" launcher.slurm.time=10:00 launcher.slurm.cpus_per_task=1 \
  --launcher slurm --poll 0.5 --out "$dir/slurm" \
  >"$dir/slurm.log" 2>&1 || fail "the SLURM sweep failed: $(tail -5 "$dir/slurm.log")"
grep -q -- "^#SBATCH --time=10:00$" "$dir/slurm/slurm/sweep.sbatch" ||
  fail "launcher.slurm.time did not reach the job script"
grep -q "tasks 0 pending, 0 running, 3 done, 0 failed" "$dir/slurm.log" ||
  fail "no final progress line: $(tail -3 "$dir/slurm.log")"
[ "$(numbers "$dir/local" | wc -l)" -eq 7 ] || fail "expected 6 rows"
diff <(numbers "$dir/local") <(numbers "$dir/slurm") || fail "SLURM and local sweep.csv differ"
echo "2x3 grid: SLURM's sweep.csv equals the local one"

# 2. scancel mid-run, then resume through SLURM.
long=("init.scale=0.01,0.003" "seed=1,2" hooks.progress=false train.stop_at_escape=false
      train.step=2e-3 train.max_steps=120000 train.log_every=1500 train.checkpoint_every=6000)
"$ncflab" sweep "$config" "${long[@]}" --out "$dir/straight" >/dev/null 2>&1
"$ncflab" sweep "$config" "${long[@]}" --launcher slurm --no-wait --out "$dir/cancel" \
  >"$dir/cancel.log" 2>&1 || fail "submission failed: $(tail -3 "$dir/cancel.log")"
job=$(cat "$dir/cancel/slurm/job_id")
for _ in $(seq 1 1500); do
  [ -f "$dir/cancel/checkpoints/batch_000.pt" ] && break
  sleep 0.02
done
[ -f "$dir/cancel/checkpoints/batch_000.pt" ] || fail "no task reached its first checkpoint"
scancel "$job"
for _ in $(seq 1 300); do
  [ -z "$(squeue --noheader --jobs="$job" 2>/dev/null)" ] && break
  sleep 0.1
done
set +e
"$ncflab" sweep --collect "$dir/cancel" >"$dir/collect.log" 2>&1
code=$?
set -e
[ "$code" -eq 1 ] || fail "--collect after scancel: expected exit 1 (unfinished), got $code"
"$ncflab" sweep --resume "$dir/cancel" --launcher slurm --poll 0.5 >"$dir/resume.log" 2>&1 ||
  fail "the resumed SLURM sweep failed: $(tail -5 "$dir/resume.log")"
grep -q "continuing 2 runs" "$dir/cancel/slurm/task_0.log" ||
  fail "task 0 restarted its batch instead of continuing it"
same_points "$dir/straight" "$dir/cancel"
echo "scancel + resume through SLURM: identical weights and metrics"

# 3. An sbatch option SLURM refuses.
set +e
"$ncflab" sweep "$config" "${grid[@]}" --launcher slurm --sbatch=--no-such-option \
  --out "$dir/refused" >"$dir/refused.out" 2>"$dir/refused.err"
code=$?
set -e
[ "$code" -eq 2 ] || fail "a refused sbatch option: expected exit 2, got $code"
[ "$(wc -l <"$dir/refused.err")" -eq 1 ] || fail "expected one line: $(cat "$dir/refused.err")"
grep -q "sbatch" "$dir/refused.err" || fail "the error does not name sbatch"
echo "refused sbatch option: exit 2, $(cat "$dir/refused.err")"
