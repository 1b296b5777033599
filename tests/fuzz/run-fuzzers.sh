#!/usr/bin/env bash
# Fuzzes ncflab's input readers for a bounded time: each libFuzzer target of a build
# configured with NCFLAB_FUZZ=ON (the `sanitize` preset), all at once, one core each.
#   tests/fuzz/run-fuzzers.sh BUILD_DIR SECONDS [TARGET...]    (TARGET: config, csv; default both)
# Exits 1 when a target found a crash, a sanitizer report, a hang (-timeout) or ran out of
# memory (-rss_limit_mb), and prints where the input that did it went (and, if small, the
# input itself as base64). Found inputs go to BUILD_DIR/fuzz/TARGET/corpus, never to the
# seed corpora in tests/fuzz/corpus.
set -uo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 BUILD_DIR SECONDS [TARGET...]" >&2
  exit 2
fi
build=$(cd "$1" && pwd) || exit 2
seconds=$2
shift 2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config csv)
source_dir=$(cd "$(dirname "$0")/../.." && pwd)

# Per input: 10 s before it counts as a hang (a LibTorch-loaded process under ASan parses
# a config in milliseconds); 2 GB of memory (LibTorch and ASan's shadow take ~0.5 GB).
# halt_on_error: the first sanitizer report ends the run as a finding.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export OMP_NUM_THREADS=1

# The config's keys and their choices as a dictionary: libFuzzer splices them in, which
# finds the readers' checks far sooner than random bytes spelling `train:`.
dictionary() {
  "$build/ncflab" validate "$source_dir/experiments/quickstart.yaml" --print-keys 2>/dev/null |
    sed -n '/^# keys$/,$p' | sed 1d | tr -s ' .:|' '\n' | grep -E '^[A-Za-z_][A-Za-z0-9_]*$' |
    sort -u | sed 's/.*/"&"/'
  printf '"%s"\n' ': ' '- ' '[' ']' '{' '}' ', ' '#' '~' 'null' 'true' 'false' '1.0e-3' '-1' \
    '0' '1e308' '.inf' '.nan' '&a' '*a' '<<: ' '!!str' '"' "'" '|' '>' '---' '...'
}

pids=()
for target in "${targets[@]}"; do
  binary="$build/tests/fuzz/fuzz_$target"
  if [ ! -x "$binary" ]; then
    echo "run-fuzzers: no $binary (configure with -DNCFLAB_FUZZ=ON, e.g. cmake --preset sanitize)" >&2
    exit 2
  fi
  work="$build/fuzz/$target"
  rm -rf "$work/artifacts"
  mkdir -p "$work/corpus" "$work/artifacts"
  options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096
           -print_final_stats=1 -artifact_prefix="$work/artifacts/")
  if [ "$target" = config ]; then
    dictionary > "$work/config.dict"
    [ -s "$work/config.dict" ] && options+=(-dict="$work/config.dict")
  fi
  # Generous outer limit: -max_total_time is checked between inputs.
  timeout --kill-after=10 $((seconds + 120)) \
    "$binary" "${options[@]}" "$work/corpus" "$source_dir/tests/fuzz/corpus/$target" \
    > "$work/log" 2>&1 &
  pids+=($!)
done

status=0
for i in "${!targets[@]}"; do
  wait "${pids[$i]}"
  rc=$?
  target=${targets[$i]}
  work="$build/fuzz/$target"
  stats=$(grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$work/log" |
          sed 's/^stat:://; s/: */=/' | tr '\n' ' ')
  findings=$(find "$work/artifacts" -type f | sort)
  if [ $rc -eq 0 ] && [ -z "$findings" ]; then
    echo "fuzz_$target: no findings in ${seconds} s (${stats% }; corpus $work/corpus)"
    continue
  fi
  status=1
  echo "fuzz_$target: FAILED (exit $rc); its output: $work/log" >&2
  grep -E 'ERROR: |SUMMARY: |runtime error: |fuzz_(config|csv): ' "$work/log" | head -n 20 >&2
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "  the run did not end in time (hang)" >&2
  for file in $findings; do
    echo "  input: $file ($(stat -c %s "$file") bytes); replay: $build/tests/fuzz/fuzz_$target $file" >&2
    [ "$(stat -c %s "$file")" -le 4096 ] && echo "  base64: $(base64 -w0 "$file")" >&2
  done
done
exit $status
