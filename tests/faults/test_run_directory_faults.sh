#!/usr/bin/env bash
# A run directory under stress, with the real executable: (a) a second writer into a
# directory being written is refused ("in use", exit 2) and the first's files stay whole;
# (b) kill -9 at pseudo-random moments, then `run --resume` until finished, ends byte for
# byte as a run never stopped; (c) a killed run is not replaced without --overwrite, and
# --overwrite says what it removes; (d) kkt, flow and sweep leave a finished run's files
# alone. Usage: test_run_directory_faults.sh NCFLAB CONFIG. One line per case; exit 1 if any failed.
set -uo pipefail
ncflab=$1
config=$2
dir=$(mktemp -d)
cleanup() {  # our background processes still running (never a pid that may have been reused)
  for pid in $(jobs -p); do kill -9 "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
failures=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; failures=$((failures + 1)); }
report() { if [ -z "$why" ]; then pass "$1"; else fail "$1" "${why%; }"; fi; }

# A run of about a second of training after the ~1 s start, 20 checkpoints on the way.
settings=(data.n=20 model.widths=[6] init.scale=1e-3 train.max_steps=100000
          train.stop_at_escape=false train.log_every=1000 train.checkpoint_every=5000
          hooks.progress=false flow.enabled=false)
# A run that goes on until stopped: from δ = 1e-6 the escape is ~1e9 steps away.
endless=(data.n=20 model.widths=[6] init.scale=1e-6 train.max_steps=1000000000
         train.log_every=2000 train.checkpoint_every=20000 hooks.progress=false flow.enabled=false)

wait_for() {  # wait_for FILE [TENTHS]: until FILE exists, at most TENTHS/10 s (default 30 s)
  for _ in $(seq 1 "${2:-300}"); do
    [ -e "$1" ] && return 0
    sleep 0.1
  done
  return 1
}

last_line() { grep -v '^[[:space:]]*$' "$1" | tail -n 1; }
line_count() { grep -cv '^[[:space:]]*$' "$1"; }

# Appends to `why` when $2 (an exit code) is not 2 or stderr $3 is not one line with "$4".
expect_refusal() {
  local what=$1 code=$2 log=$3 needle=$4
  [ "$code" -eq 2 ] || why+="$what: exit code $code, expected 2 ($(last_line "$log" | cut -c 1-160)); "
  [ "$(line_count "$log")" -eq 1 ] || why+="$what: $(line_count "$log") stderr lines, expected 1; "
  grep -q -- "$needle" "$log" || why+="$what: stderr '$(last_line "$log" | cut -c 1-160)' lacks '$needle'; "
}

# Appends to `why` unless $1/metrics.csv has one header, rows of its width and steps that rise.
check_metrics() {
  local csv=$1/metrics.csv
  [ -f "$csv" ] || { why+="no metrics.csv; "; return; }
  [ "$(grep -c '^member,' "$csv")" -eq 1 ] || why+="$(grep -c '^member,' "$csv") headers in metrics.csv; "
  awk -F, 'NR == 1 { n = NF } NF != n { bad = 1 } NR > 2 && $2 + 0 <= last { bad = 1 } NR > 1 { last = $2 + 0 }
           END { exit bad }' "$csv" || why+="metrics.csv has a malformed, repeated or out-of-order row; "
  [ "$(tail -c 1 "$csv" | od -An -c | tr -d ' ')" = '\n' ] || why+="metrics.csv ends in a cut row; "
}

status_of() {  # the "status" in $1/summary.json, or "none"
  if [ -f "$1/summary.json" ]; then
    grep -o '"status": *"[a-z_]*"' "$1/summary.json" | head -n 1 | sed 's/.*"\([a-z_]*\)"$/\1/'
  else
    echo none
  fi
}

fingerprint() { (cd "$1" && find . -type f ! -name .ncflab.lock -print0 | sort -z | xargs -0 md5sum); }

seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# The uninterrupted run, timed: how long a start (to config.yaml) and a whole run take here
# scales the waits and the kill moments below to this machine's speed.
start=$EPOCHREALTIME
"$ncflab" run "$config" "${settings[@]}" --out "$dir/straight" >/dev/null 2>"$dir/straight.log" &
pid=$!
wait_for "$dir/straight/config.yaml" 600
startup=$(seconds_since "$start")
wait "$pid" || { echo "FAIL the uninterrupted run: exit code $?: $(last_line "$dir/straight.log")"; exit 1; }
whole=$(seconds_since "$start")
echo "(the uninterrupted run: config.yaml after ${startup} s, done after ${whole} s)"
# An intruder still running this long after its start was let in (a refusal comes at start-up).
patience=$(awk -v s="$startup" 'BEGIN { printf "%.1f", 2 * s + 3 }')

# ---- (a) a second writer into a directory being written -------------------------------------
why=
"$ncflab" run "$config" "${endless[@]}" --out "$dir/busy" >/dev/null 2>"$dir/busy.log" &
first=$!
if ! wait_for "$dir/busy/metrics.csv"; then
  why+="the first run wrote no metrics.csv in 30 s; "
else
  sleep 0.3
  cp "$dir/busy/config.yaml" "$dir/busy.config"
  # Three intruders at once: a run, a resume and a KKT search into the same directory.
  "$ncflab" run "$config" "${endless[@]}" name=intruder --out "$dir/busy" >/dev/null 2>"$dir/second.log" &
  second=$!
  "$ncflab" run --resume "$dir/busy" >/dev/null 2>"$dir/resume.log" &
  resume=$!
  "$ncflab" kkt "$config" "${endless[@]}" kkt.restarts=2 name=intruder --out "$dir/busy" \
    >/dev/null 2>"$dir/kkt.log" &
  kkt=$!
  # An intruder let in trains on: stopped after $patience s.
  ( sleep "$patience"; kill -9 "$second" "$resume" "$kkt" 2>/dev/null ) &
  watchdog=$!
  for intruder in "second run:$second:second.log" "run --resume:$resume:resume.log" "kkt --out:$kkt:kkt.log"; do
    IFS=: read -r what pid log <<<"$intruder"
    wait "$pid"
    code=$?
    if [ "$code" -eq 137 ]; then why+="$what: still running after $patience s (let in); "; continue; fi
    expect_refusal "$what" "$code" "$dir/$log" "in use"
  done
  kill "$watchdog" 2>/dev/null
  wait "$watchdog" 2>/dev/null
fi
if kill -0 "$first" 2>/dev/null; then
  kill -INT "$first"
  wait "$first"
  code=$?
  [ "$code" -eq 130 ] || why+="the first run ended with $code after SIGINT, expected 130; "
else
  wait "$first"
  why+="the first run ended early (exit $?): $(last_line "$dir/busy.log" | cut -c 1-160); "
fi
check_metrics "$dir/busy"
cmp -s "$dir/busy.config" "$dir/busy/config.yaml" 2>/dev/null || why+="config.yaml is not the first run's; "
! grep -q intruder "$dir/busy/config.yaml" "$dir/busy/overrides.txt" 2>/dev/null ||
  why+="an intruder's settings are in the first run's files; "
[ "$(status_of "$dir/busy")" = interrupted ] || why+="first run's status '$(status_of "$dir/busy")', expected interrupted; "
[ ! -e "$dir/busy/kkt.json" ] || why+="the KKT search wrote kkt.json into the busy directory; "
report "(a) run, run --resume and kkt into a directory being written: exit 2 'in use'; the first's files whole"

# The same race at start-up: two runs 0.3 s apart, so both may reach the directory together.
why='' note=''
"$ncflab" run "$config" "${endless[@]}" --out "$dir/race" >/dev/null 2>"$dir/race1.log" &
one=$!
sleep 0.3
"$ncflab" run "$config" "${endless[@]}" name=intruder --out "$dir/race" >/dev/null 2>"$dir/race2.log" &
two=$!
winner=
deadline=$(awk -v p="$patience" 'BEGIN { print int(10 * p) }')
for _ in $(seq 1 "$deadline"); do
  if ! kill -0 "$two" 2>/dev/null; then winner=$one loser=$two log=race2.log; break; fi
  if ! kill -0 "$one" 2>/dev/null; then winner=$two loser=$one log=race1.log; break; fi
  sleep 0.1
done
if [ -z "$winner" ]; then
  why+="both runs still going after $patience s (both let in); "
  kill -9 "$one" "$two" 2>/dev/null
  wait "$one" "$two"
else
  wait "$loser"
  expect_refusal "the refused one of two runs 0.3 s apart" "$?" "$dir/$log" "in use"
  # Either may win (start-up times vary); exactly one is refused.
  [ "$winner" = "$one" ] || note=" (here the later run won)"
  wait_for "$dir/race/metrics.csv" 100
  kill -INT "$winner" 2>/dev/null
  wait "$winner"
  code=$?
  [ "$code" -eq 130 ] || why+="the winner ended with $code after SIGINT, expected 130; "
  check_metrics "$dir/race"
  winner_name=quickstart
  [ "$winner" = "$one" ] || winner_name=intruder
  grep -q "^name: $winner_name\$" "$dir/race/config.yaml" 2>/dev/null || why+="config.yaml is not the winner's; "
fi
report "(a) two runs started 0.3 s apart into one directory: one exits 2 'in use', the other's files whole$note"

# ---- (b) kill -9 at pseudo-random moments, resume until finished ------------------------------
# Three kills per repetition, each after a start (of the run, or of the resume that follows):
# sN at N × the start-up time measured above (loading, or writing the inputs), c as soon as
# config.yaml appears (before the first checkpoint), kN once this process has replaced
# checkpoint.pt N times (training, whatever this machine's speed; a run writes 20), w as
# soon as weights_final.pt appears (the final writes). Fixed pseudo-random draws, so a
# failure can be replayed.
kills=(s0.31 k7 k2  c s0.88 k5  k13 k3 w)
# Waits (at most 30 s) until process $1 is gone or the command after it succeeds.
poll_until() {
  local pid=$1
  shift
  for _ in $(seq 1 1500); do
    kill -0 "$pid" 2>/dev/null || return
    "$@" && return
    sleep 0.02
  done
}
# Waits until process $1 has replaced checkpoint.pt $2 times ($3: its inode before) or is gone.
checkpoints() {
  local pid=$1 left=$2 last=$3 now
  while [ "$left" -gt 0 ] && kill -0 "$pid" 2>/dev/null; do
    now=$(stat -c %i "$run/checkpoint.pt" 2>/dev/null)
    if [ -n "$now" ] && [ "$now" != "$last" ]; then left=$((left - 1)) last=$now; fi
    sleep 0.01
  done
}
for repetition in 0 1 2; do
  why=
  run=$dir/killed_$repetition
  phases=
  command=(run "$config" "${settings[@]}" --out "$run")
  for kill_index in 0 1 2; do
    when=${kills[$((repetition * 3 + kill_index))]}
    inode=$(stat -c %i "$run/checkpoint.pt" 2>/dev/null)
    "$ncflab" "${command[@]}" >/dev/null 2>"$run.log" &
    pid=$!
    case $when in
      s*) delay=$(awk -v f="${when#s}" -v s="$startup" 'BEGIN { printf "%.2f", f * s }')
          label="$delay s after start"
          sleep "$delay" ;;
      c) label="as config.yaml appears"
         poll_until "$pid" test -e "$run/config.yaml" ;;
      k*) label="after ${when#k} new checkpoints"
          checkpoints "$pid" "${when#k}" "$inode" ;;
      w) label="as weights_final.pt appears"
         poll_until "$pid" test -e "$run/weights_final.pt" ;;
    esac
    if kill -9 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null
      if [ ! -f "$run/config.yaml" ]; then phase="no config.yaml yet"
      elif [ ! -f "$run/checkpoint.pt" ]; then phase="no checkpoint yet"
      else phase="with a checkpoint"; fi
      [ ! -e "$run/weights_final.pt" ] || phase="with weights_final.pt"
      [ "$(status_of "$run")" != max_steps ] || phase="after it finished"
      [ "$phase" != "after it finished" ] || [ ! -e "$run/checkpoint.pt" ] ||
        phase="after it finished, before its checkpoint was removed"
    else
      wait "$pid"
      code=$?
      phase="too late: exit $code"
      if [ "$code" -ne 0 ]; then
        grep -q "in use" "$run.log" && why+="stale lock after kill -9; "
        why+="'ncflab ${command[*]:0:2}' exit $code: $(last_line "$run.log" | cut -c 1-160); "
        break
      fi
    fi
    phases+="$label ($phase), "
    # Finished. A kill between the final summary and the checkpoint's removal leaves the
    # checkpoint: a resume then finishes again from it, to the same files, and removes it.
    [ "$(status_of "$run")" = max_steps ] && [ ! -e "$run/checkpoint.pt" ] && break
    # A directory with a config resumes (from its checkpoint, or from the start without one).
    if [ -f "$run/config.yaml" ]; then command=(run --resume "$run"); fi
    if [ "$kill_index" -eq 2 ]; then
      "$ncflab" "${command[@]}" >/dev/null 2>"$run.log"
      code=$?
      [ "$code" -eq 0 ] || why+="'ncflab ${command[*]:0:2}' exit $code: $(last_line "$run.log" | cut -c 1-160); "
    fi
  done
  [ "$(status_of "$run")" = max_steps ] || why+="status '$(status_of "$run")', expected max_steps; "
  for file in weights_final.pt metrics.csv; do
    cmp -s "$dir/straight/$file" "$run/$file" || why+="$file differs from the uninterrupted run's; "
  done
  [ ! -e "$run/checkpoint.pt" ] || why+="checkpoint.pt left in the finished run; "
  report "(b) kill -9 ${phases%, }; resumed: identical to an uninterrupted run"
done

# ---- (c) a killed run and a new run into its directory ----------------------------------------
why=
run=$dir/replaced
# The killed run is an endless one: a short run can finish (and remove its checkpoint) between
# two looks for checkpoint.pt on a fast machine. The new run is the short one.
"$ncflab" run "$config" "${endless[@]}" --out "$run" >/dev/null 2>&1 &
pid=$!
if wait_for "$run/checkpoint.pt" 300; then
  kill -9 "$pid"
  wait "$pid" 2>/dev/null
  cp "$run/checkpoint.pt" "$dir/checkpoint.before"
  "$ncflab" run "$config" "${settings[@]}" --out "$run" >/dev/null 2>"$dir/again.log"
  expect_refusal "without --overwrite" "$?" "$dir/again.log" "--overwrite"
  cmp -s "$dir/checkpoint.before" "$run/checkpoint.pt" || why+="checkpoint.pt not kept by the refusal; "
  "$ncflab" run "$config" "${settings[@]}" --out "$run" --overwrite >/dev/null 2>"$dir/overwrite.log"
  code=$?
  [ "$code" -eq 0 ] || why+="with --overwrite: exit code $code ($(last_line "$dir/overwrite.log" | cut -c 1-160)); "
  grep -i "removing" "$dir/overwrite.log" | grep -q "checkpoint.pt" ||
    why+="--overwrite did not say it removes checkpoint.pt; "
  cmp -s "$dir/straight/weights_final.pt" "$run/weights_final.pt" || why+="the new run's weights differ; "
else
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  why+="no checkpoint.pt within 30 s; "
fi
report "(c) after kill -9: a new run needs --overwrite (exit 2, checkpoint kept), which names what it removes"

# ---- (d) kkt, flow and sweep with --out a finished run ---------------------------------------
finished=$dir/finished
before=$(fingerprint "$dir/straight")
for command in kkt flow sweep; do
  why=
  rm -rf "$finished"
  cp -a "$dir/straight" "$finished"
  case $command in
    kkt) extra=(kkt.restarts=4) ;;
    flow) extra=(flow.max_steps=100) ;;
    sweep) extra=("seed=1,2") ;;
  esac
  "$ncflab" "$command" "$config" "${settings[@]}" "${extra[@]}" --out "$finished" >/dev/null 2>"$dir/$command.log"
  code=$?
  if [ "$code" -eq 0 ] && [ "$command" != sweep ]; then
    [ -f "$finished/$command/$command.json" ] || why+="exit 0 but no $command/$command.json; "
    rm -rf "${finished:?}/$command"
  else
    expect_refusal "$command" "$code" "$dir/$command.log" "$finished"
  fi
  after=$(fingerprint "$finished")
  [ "$before" = "$after" ] || why+="the run's files changed: $(diff <(echo "$before") <(echo "$after") |
    grep '^[<>]' | awk '{ print $1 $3 }' | sort -u | tr '\n' ' '); "
  if [ "$command" = sweep ]; then
    report "(d) sweep --out a finished run: exit 2, nothing touched (exit $code)"
  else
    report "(d) $command --out a finished run: into $command/ or exit 2, the run's files untouched (exit $code)"
  fi
done

[ "$failures" -eq 0 ] || { echo "run_directory_faults: $failures case(s) failed"; exit 1; }
echo "run_directory_faults: all cases passed"
