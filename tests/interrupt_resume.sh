#!/usr/bin/env bash
# Ctrl-C on a real `ncflab run`, then `ncflab run --resume`: exit code 130, status
# "interrupted" with a checkpoint, and after the resume the same weights_final.pt and
# metrics.csv, byte for byte, as a run that was never interrupted. Arguments after the
# config are more overrides (e.g. train.integrator=flow).
set -euo pipefail
ncflab=$1
config=$2
shift 2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
settings=(data.n=20 model.widths=[6] init.scale=1e-3 train.max_steps=1000000
          train.stop_at_escape=false train.log_every=1000 train.checkpoint_every=100000
          hooks.progress=false "$@")

"$ncflab" run "$config" "${settings[@]}" --out "$dir/straight" >/dev/null
"$ncflab" run "$config" "${settings[@]}" --out "$dir/cut" >/dev/null &
pid=$!
# Interrupt once training is under way (a few metrics rows written).
for _ in $(seq 1 400); do
  if [ -f "$dir/cut/metrics.csv" ] && [ "$(wc -l <"$dir/cut/metrics.csv")" -gt 3 ]; then break; fi
  sleep 0.02
done
kill -INT "$pid"
set +e
wait "$pid"
code=$?
set -e
if [ "$code" -ne 130 ]; then echo "expected exit code 130 after SIGINT, got $code"; exit 1; fi
grep -q '"status": "interrupted"' "$dir/cut/summary.json" || { echo "summary not interrupted"; exit 1; }
[ -f "$dir/cut/checkpoint.pt" ] || { echo "no checkpoint after SIGINT"; exit 1; }
[ ! -f "$dir/cut/weights_final.pt" ] || { echo "an interrupted run must not look finished"; exit 1; }

"$ncflab" run --resume "$dir/cut" >/dev/null
grep -q '"status": "max_steps"' "$dir/cut/summary.json" || { echo "resumed run did not finish"; exit 1; }
cmp "$dir/straight/weights_final.pt" "$dir/cut/weights_final.pt"
cmp "$dir/straight/metrics.csv" "$dir/cut/metrics.csv"
echo "interrupt + resume: identical weights and metrics"
