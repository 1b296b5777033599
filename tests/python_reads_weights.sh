#!/usr/bin/env bash
# Python's torch.load reads the weights a run writes: a dict {"W1": …, "WK": …} of float64
# tensors [S, k_l, k_{l−1}]. Skipped (exit 77) where Debian's python3-torch is missing.
set -euo pipefail
ncflab=$1
config=$2
python=/usr/bin/python3
if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "skipped: $python cannot import torch (apt-get install python3-torch)"
  exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$ncflab" run "$config" data.n=20 model.widths=[4] ensemble.seeds=3 init.scale=0.01 \
  hooks.progress=false --out "$dir/run" >/dev/null
"$python" - "$dir/run" <<'PY'
import json, sys, torch
run = sys.argv[1]
init = torch.load(f"{run}/weights_init.pt")
final = torch.load(f"{run}/weights_final.pt")
assert list(init) == ["W1", "W2"], list(init)
assert init["W1"].shape == (3, 4, 10) and init["W2"].shape == (3, 1, 4), init["W1"].shape
assert all(t.dtype == torch.float64 for t in list(init.values()) + list(final.values()))
norms = sum(w.square().sum((1, 2)) for w in init.values()).sqrt()
assert torch.allclose(norms, torch.full((3,), 0.01, dtype=torch.float64), rtol=0, atol=1e-15), norms
summary = json.load(open(f"{run}/summary.json"))
for s, member in enumerate(summary["members"]):
    norm = sum(w[s].square().sum() for w in final.values()).sqrt().item()
    assert abs(norm - member["final"]["norm"]) <= 1e-12 * norm, (norm, member["final"]["norm"])
print("torch.load reads weights_init.pt and weights_final.pt")
PY
