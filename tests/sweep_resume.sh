#!/usr/bin/env bash
# A real `ncflab sweep` stopped by SIGTERM (as scancel stops a task) and by SIGKILL (a node
# that dies), then `ncflab sweep --resume`: every point ends with the same weights_final.pt
# and metrics.csv, byte for byte, as in a sweep never stopped; so does the same grid run as
# local processes (--launcher local --jobs 2), the code path of SLURM's array tasks.
set -euo pipefail
ncflab=$1
config=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# Two batches (one per seed) of two δ each, ~1 s of training per batch here: long enough
# after its first checkpoint for a stop to land inside the batch on a faster machine.
grid=("init.scale=0.01,0.003" "seed=1,2" hooks.progress=false train.stop_at_escape=false
      train.step=2e-3 train.max_steps=120000 train.log_every=1500 train.checkpoint_every=6000)

fail() { echo "sweep_resume: $*"; exit 1; }

same_points() {  # same_points REFERENCE OTHER
  local n=0
  for point in "$1"/0*/; do
    name=$(basename "$point")
    cmp "$point/weights_final.pt" "$2/$name/weights_final.pt" || fail "$2/$name: other weights"
    cmp "$point/metrics.csv" "$2/$name/metrics.csv" || fail "$2/$name: other metrics"
    n=$((n + 1))
  done
  [ "$n" -eq 4 ] || fail "expected 4 points in $1, found $n"
}

# Starts the sweep into $1, waits for batch $2's checkpoint, sends signal $3; sets `code`.
stop_during_batch() {
  "$ncflab" sweep "$config" "${grid[@]}" --out "$1" >"$1.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 1500); do
    [ -f "$1/checkpoints/batch_00$2.pt" ] && break
    sleep 0.02
  done
  [ -f "$1/checkpoints/batch_00$2.pt" ] || fail "no checkpoint of batch $2 in $1"
  kill "-$3" "$pid"
  set +e
  wait "$pid"
  code=$?
  set -e
}

"$ncflab" sweep "$config" "${grid[@]}" --out "$dir/straight" >/dev/null 2>&1

stop_during_batch "$dir/term" 0 TERM
[ "$code" -eq 143 ] || fail "expected exit 143 after SIGTERM, got $code"
grep -q '"status": "interrupted"' "$dir/term/000_init.scale=0.01_seed=1/summary.json" ||
  fail "the stopped batch's summary is not 'interrupted'"
set +e
"$ncflab" sweep --collect "$dir/term" >"$dir/collect.log"
code=$?
set -e
[ "$code" -eq 1 ] || fail "--collect of an unfinished sweep: expected exit 1, got $code"
grep -q "not finished" "$dir/collect.log" || fail "--collect does not list the unfinished runs"
"$ncflab" sweep --resume "$dir/term" >"$dir/term-resume.log" 2>&1 ||
  fail "resume after SIGTERM failed: $(tail -3 "$dir/term-resume.log")"
grep -q "continuing 2 runs" "$dir/term-resume.log" || fail "the resume restarted the batch"
same_points "$dir/straight" "$dir/term"

stop_during_batch "$dir/kill" 1 KILL
[ -f "$dir/kill/000_init.scale=0.01_seed=1/weights_final.pt" ] || fail "batch 0 not kept"
"$ncflab" sweep --resume "$dir/kill" >"$dir/kill-resume.log" 2>&1 ||
  fail "resume after SIGKILL failed: $(tail -3 "$dir/kill-resume.log")"
grep -q "1 of 2 tasks not finished" "$dir/kill-resume.log" || fail "the resume reran batch 0"
same_points "$dir/straight" "$dir/kill"

"$ncflab" sweep "$config" "${grid[@]}" --out "$dir/local" --launcher local --jobs 2 \
  >"$dir/local.log" 2>&1 || fail "--launcher local failed: $(tail -3 "$dir/local.log")"
same_points "$dir/straight" "$dir/local"
# Every column but the two timings (wall_seconds, steps_per_second).
cut -d, -f1-18 "$dir/straight/sweep.csv" >"$dir/a.csv"
cut -d, -f1-18 "$dir/local/sweep.csv" >"$dir/b.csv"
cmp "$dir/a.csv" "$dir/b.csv" || fail "sweep.csv differs between in-process and local tasks"
echo "sweep stopped by SIGTERM and SIGKILL, resumed, and run as local processes: identical"
