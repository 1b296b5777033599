#!/usr/bin/env bash
# A real `ncflab run` whose writes fail (a full disk, a quota) or whose reads fail (a bad
# sector), injected by fault_shim.c through LD_PRELOAD: exit code 1, one last stderr line
# `ncflab: failed: ...` naming the file and the system's message, no *.tmp file left, and
# nothing that looks like success (summary.json, when there, says "failed"; metrics.csv has
# no cut row). Usage: test_io_faults.sh NCFLAB SHIM CONFIG. One line per case; exit 1 if any failed.
set -uo pipefail
ncflab=$1
shim=$2
config=$3
dir=$(mktemp -d)
trap 'for pid in $(jobs -p); do kill -9 "$pid"; done; rm -rf "$dir"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# Under AddressSanitizer (GCC's shared runtime), the shim may come before the runtime.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
# Each run about a second: no reference flow (its integration costs two), 2000 steps.
settings=(train.max_steps=2000 flow.enabled=false hooks.progress=false)
failures=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; failures=$((failures + 1)); }

# Runs `ncflab ARGS...` in $dir/$name (out.log, err.log, fault.log) with the fault given by
# the FAULT_* variables; sets `code`.
faulty() {
  mkdir -p "$dir/$name"
  env NCFLAB_FAULT_PATH="$FAULT_PATH" NCFLAB_FAULT_OP="$FAULT_OP" NCFLAB_FAULT_AFTER="$FAULT_AFTER" \
    NCFLAB_FAULT_ERRNO="$FAULT_ERRNO" NCFLAB_FAULT_LOG="$dir/$name/fault.log" LD_PRELOAD="$shim" \
    "$ncflab" "$@" >"$dir/$name/out.log" 2>"$dir/$name/err.log"
  code=$?
}

# What every failed run must show: $1 the run directory, $2 the file named in the error, $3
# the system's message, $4 the statuses summary.json may hold (default: failed). Appends the
# problems found to `why`.
check_failed_run() {
  local run=$1 file=$2 message=$3 statuses=${4:-failed} last status tmps
  [ -s "$dir/$name/fault.log" ] || why+="the shim never fired (no I/O on a path with '$FAULT_PATH'); "
  [ "$code" -eq 1 ] || why+="exit code $code, expected 1; "
  last=$(grep -v '^[[:space:]]*$' "$dir/$name/err.log" | tail -n 1)
  case "$last" in
    "ncflab: failed: "*"$file"*"$message"* | "ncflab: failed: "*"$message"*"$file"*) ;;
    *) why+="last stderr line '${last:0:200}' is not 'ncflab: failed: ...' with '$file' and '$message'; " ;;
  esac
  if [ -d "$run" ]; then
    tmps=$(find "$run" -name '*.tmp' -printf '%f ')
    [ -z "$tmps" ] || why+="left ${tmps% }; "
    if [ -f "$run/summary.json" ]; then
      status=$(grep -o '"status": *"[a-z_]*"' "$run/summary.json" | head -n 1 | sed 's/.*"\([a-z_]*\)"$/\1/')
      [[ " $statuses " == *" $status "* ]] || why+="summary.json status '$status', expected $statuses; "
    fi
    if [ -f "$run/metrics.csv" ]; then
      awk -F, 'NR == 1 { n = NF } NF != n { bad = 1 } END { exit bad }' "$run/metrics.csv" ||
        why+="metrics.csv has a row with another number of cells than its header; "
      [ ! -s "$run/metrics.csv" ] || [ "$(tail -c 1 "$run/metrics.csv" | od -An -c | tr -d ' ')" = '\n' ] ||
        why+="metrics.csv ends in a cut row (no final newline); "
    fi
  fi
}

report() {  # report CASE: PASS or FAIL with what was found
  if [ -z "$why" ]; then pass "$1"; else fail "$1" "${why%; }"; fi
}

# A write fault on the run directory's file $1 after $2 bytes, errno $3 ($4 its message);
# more overrides after.
write_fault() {
  local file=$1 after=$2 errno=$3 message=$4
  shift 4
  name=write_${file%%.*} why=  # (a directory name without the file name in it)
  FAULT_PATH=$file FAULT_OP=write FAULT_AFTER=$after FAULT_ERRNO=$errno
  faulty run "$config" "${settings[@]}" "$@" --out "$dir/$name/run"
  check_failed_run "$dir/$name/run" "$file" "$message"
  report "$errno writing $file after $after bytes"
}

# The shim itself: dd sees its faults (else every case below could pass vacuously).
why=
head -c 3000 /dev/zero >"$dir/zeros"
NCFLAB_FAULT_PATH=shim_target NCFLAB_FAULT_OP=write NCFLAB_FAULT_AFTER=1000 LD_PRELOAD="$shim" \
  dd if="$dir/zeros" of="$dir/shim_target" bs=300 2>"$dir/dd.log" && why+="dd succeeded; "
grep -q "No space left on device" "$dir/dd.log" || why+="dd did not report ENOSPC; "
[ "$(wc -c <"$dir/shim_target")" -eq 1000 ] || why+="dd wrote $(wc -c <"$dir/shim_target") bytes, expected 1000; "
NCFLAB_FAULT_PATH=zeros NCFLAB_FAULT_OP=read NCFLAB_FAULT_AFTER=100 LD_PRELOAD="$shim" \
  dd if="$dir/zeros" of="$dir/read_copy" bs=64 2>"$dir/dd-read.log" && why+="dd's read succeeded; "
grep -q "Input/output error" "$dir/dd-read.log" || why+="dd did not report EIO; "
[ "$(wc -c <"$dir/read_copy")" -eq 100 ] || why+="dd read $(wc -c <"$dir/read_copy") bytes, expected 100; "
report "the shim fails dd's writes (ENOSPC after 1000 bytes) and reads (EIO after 100)"

# Sanity: the same run without the shim, and with it but no matching path (same bytes).
why=
"$ncflab" run "$config" "${settings[@]}" train.log_every=10 --out "$dir/plain" >/dev/null 2>"$dir/plain.log" ||
  why+="exit code $? without the shim: $(tail -n 1 "$dir/plain.log"); "
grep -q '"status": "max_steps"' "$dir/plain/summary.json" 2>/dev/null || why+="status is not max_steps; "
NCFLAB_FAULT_PATH=no-such-file NCFLAB_FAULT_OP=write LD_PRELOAD="$shim" "$ncflab" run "$config" \
  "${settings[@]}" train.log_every=10 --out "$dir/idle" >/dev/null 2>&1 || why+="exit code $? with an idle shim; "
for file in metrics.csv weights_final.pt; do
  cmp -s "$dir/plain/$file" "$dir/idle/$file" || why+="$file differs under an idle shim; "
done
report "without faults: exit 0, and an idle shim changes no byte"

# Full disk on each file a run writes. metrics.csv: 200 rows (~60 KB), so the fault hits
# mid-run (its stream writes ~8 KB at a time) and cuts a row in the middle.
write_fault metrics.csv 4096 ENOSPC "No space left on device" train.log_every=10
write_fault summary.json 100 ENOSPC "No space left on device"
write_fault checkpoint.pt 1000 ENOSPC "No space left on device" train.checkpoint_every=500
write_fault weights_final.pt 1000 ENOSPC "No space left on device"
write_fault config.yaml 200 ENOSPC "No space left on device"
write_fault data.pt 2000 EDQUOT "Disk quota exceeded"

# fsync: only where ncflab calls it (a delayed-allocation file system reports a full disk there).
name=fsync_checkpoint why=
FAULT_PATH=checkpoint.pt FAULT_OP=fsync FAULT_AFTER=0 FAULT_ERRNO=ENOSPC
faulty run "$config" "${settings[@]}" train.checkpoint_every=500 --out "$dir/$name/run"
if [ ! -s "$dir/$name/fault.log" ] && [ "$code" -eq 0 ]; then
  echo "SKIP ENOSPC from fsync of checkpoint.pt: ncflab calls no fsync on it"
else
  check_failed_run "$dir/$name/run" checkpoint.pt "No space left on device"
  report "ENOSPC from fsync of checkpoint.pt"
fi

# Read faults: the CSV data file (after its header and a row) and the config itself.
awk 'BEGIN { srand(1); print "x1,x2,x3,y"
  for (i = 0; i < 40; i++) printf "%.6f,%.6f,%.6f,%.6f\n", rand() - 0.5, rand() - 0.5, rand() - 0.5, rand() - 0.5 }' \
  >"$dir/points.csv"
name=read_csv why=
FAULT_PATH=points.csv FAULT_OP=read FAULT_AFTER=64 FAULT_ERRNO=EIO
faulty run "$config" "${settings[@]}" data.source=csv "data.path=$dir/points.csv" --out "$dir/$name/run"
check_failed_run "$dir/$name/run" points.csv "Input/output error"
report "EIO reading the CSV data file after 64 bytes"

name=read_config why=
cp "$config" "$dir/input_config.yaml"
FAULT_PATH=input_config.yaml FAULT_OP=read FAULT_AFTER=0 FAULT_ERRNO=EIO
faulty run "$dir/input_config.yaml" "${settings[@]}" --out "$dir/$name/run"
check_failed_run "$dir/$name/run" input_config.yaml "Input/output error"
report "EIO reading the config file"

# --resume whose checkpoint cannot be read: a failure (not a fresh start), checkpoint kept.
name=read_checkpoint why=
# (From δ = 1e-6 the escape is ~1e9 steps away: the run goes on until stopped.)
"$ncflab" run "$config" "${settings[@]}" train.max_steps=100000000 init.scale=1e-6 \
  train.checkpoint_every=500 --out "$dir/$name/run" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 1500); do
  [ -f "$dir/$name/run/checkpoint.pt" ] && break
  sleep 0.02
done
kill -INT "$pid"
wait "$pid"
interrupted=$?
if [ "$interrupted" -ne 130 ] || [ ! -f "$dir/$name/run/checkpoint.pt" ]; then
  fail "EIO reading checkpoint.pt on --resume" "no interrupted run to resume (exit $interrupted)"
else
  cp "$dir/$name/run/checkpoint.pt" "$dir/checkpoint.before"
  FAULT_PATH=checkpoint.pt FAULT_OP=read FAULT_AFTER=200 FAULT_ERRNO=EIO
  faulty run --resume "$dir/$name/run"
  check_failed_run "$dir/$name/run" checkpoint.pt "Input/output error" "failed interrupted"
  cmp -s "$dir/checkpoint.before" "$dir/$name/run/checkpoint.pt" || why+="checkpoint.pt not kept as it was; "
  report "EIO reading checkpoint.pt on --resume"
fi

[ "$failures" -eq 0 ] || { echo "io_faults: $failures case(s) failed"; exit 1; }
echo "io_faults: all cases passed"
