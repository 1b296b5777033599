#!/usr/bin/env bash
# SIGINT/SIGTERM outside training (issue 14, item 6): the KKT search, the `flow` command, a
# run's reference flow and sweep planning stop between two steps with one line naming the
# phase and exit 128 + signal; an interrupted run leaves summary.json status "interrupted".
#   bash tests/faults/test_interrupts.sh NCFLAB CONFIG
set -uo pipefail
ncflab=$1
config=$2
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
failures=0

# Starts `ncflab ARGS...` in the background, waits for FILE to be non-empty (the command is
# then past its setup, with its handlers installed, and inside the long phase), sends SIGNAL,
# and checks exit code and message.
interrupt_when() {
  local name=$1 file=$2 signal=$3 code=$4 phase=$5
  shift 5
  "$ncflab" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  local pid=$!
  for _ in $(seq 1 600); do
    [ -s "$file" ] && break
    sleep 0.05
  done
  sleep 0.3
  kill "-$signal" "$pid"
  wait "$pid"
  local got=$?
  local lines
  lines=$(grep -v "^sweep: planning:" "$work/$name.err" | grep -c .)  # progress lines aside
  if [ "$got" = "$code" ] && [ "$lines" = 1 ] &&
    grep -q "interrupted by SIG$signal during $phase" "$work/$name.err"; then
    echo "PASS $name: SIG$signal during $phase -> exit $code, one line"
  else
    echo "FAIL $name: exit $got (expected $code), stderr: $(cat "$work/$name.err")"
    failures=$((failures + 1))
  fi
}

big=("model.widths=[50]" "data.n=400")  # a reference flow of several seconds
interrupt_when kkt "$work/kkt/config.yaml" INT 130 "the KKT search" \
  kkt "$config" kkt.restarts=20000 --out "$work/kkt"
interrupt_when flow "$work/flow/config.yaml" TERM 143 "the NCF flow" \
  flow "$config" "${big[@]}" --out "$work/flow"
interrupt_when run "$work/run/weights_init.pt" INT 130 "the NCF flow" \
  run "$config" "${big[@]}" --out "$work/run"
if grep -q '"status": "interrupted"' "$work/run/summary.json" 2>/dev/null; then
  echo "PASS run: summary.json says interrupted"
else
  echo "FAIL run: summary.json: $(cat "$work/run/summary.json" 2>&1)"
  failures=$((failures + 1))
fi
# 40 000 grid points take seconds to check and more to write as run directories (both are
# "sweep planning", and plan.json comes last); the signal comes after the first progress line
# ("sweep: planning: N of 40000 points checked", or "... run directories written", once a
# second), in either half.
interrupt_when sweep "$work/sweep.err" INT 130 "sweep planning" \
  sweep "$config" "seed=range(0,200,1)" "init.scale=range(0.0001,0.0201,0.0001)" \
  --out "$work/sweep"
if [ -e "$work/sweep/plan.json" ]; then
  echo "FAIL sweep: a plan was written after the interrupt"
  failures=$((failures + 1))
fi
[ "$failures" = 0 ] || { echo "test_interrupts: $failures case(s) failed"; exit 1; }
