"""Batched gradient descent in PyTorch: an anchor for bench.py, eager or torch.compile'd (2.x).

    .deps/torch2/bin/python experiments/bench/torch_gd.py --init RUN_DIR/weights_init.pt \\
        --data RUN_DIR/data.pt --steps N --step ETA --alpha A --p P [--loss square|logistic] \\
        [--mode eager|compile] [--device cpu|cuda] [--out weights_final.pt]

Trains all S members of a ncflab run at once, the way a competent PyTorch user would write
it: one weight tensor per layer shaped [S, k_l, k_{l-1}] (ncflab's weights_init.pt as it
is), batched matmuls over the members (torch.matmul / bmm), a hand-written backward pass
(no autograd: the gradient of H(X) = W_K σ(...σ(X W1ᵀ)...) by the chain rule, checked once
against autograd before training, "autograd_check" in the output), in-place updates
w -= η·g under inference_mode, float64, and no host synchronisation inside the step loop
(finiteness is checked once, after it; with --device cuda the clock stops after one
synchronize). Loss: a sum over samples, 0.5·Σ(H−y)² (square) or Σ softplus(−yH)
(logistic); σ(z) = max(z,0)^p − α·max(−z,0)^p. Feed-forward models only (not
model.kind: single_layer).

--mode compile wraps the step function in torch.compile(fullgraph=True, dynamic=False)
(Inductor, which writes and builds C++ on a CPU). Compilation happens on warm-up steps taken
from a copy of the weights; the timed loop then runs N steps from weights_init.pt, so only
the step loop is timed and compile_seconds is reported apart, with inductor_cache: hit when
Inductor's on-disk cache (by default under /tmp) already held the compiled step from an
earlier run, miss when it was generated and built now. When torch.compile fails, the output
has "error" with the reason and the exit code is 3.

Prints one JSON object: mode, torch version, threads, steps, seconds, steps_per_second
(ensemble steps: one advances all S members), compile_seconds, finite, autograd_check.
Writes the final weights (a dict of the same keys as weights_init.pt) to --out.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.jit._pickle
import torch.nn.functional as F


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", required=True, help="weights_init.pt of a ncflab run")
    parser.add_argument("--data", required=True, help="data.pt of the same run")
    parser.add_argument("--steps", type=int, required=True, help="gradient-descent steps to time")
    parser.add_argument("--step", type=float, required=True, help="step size η")
    parser.add_argument("--alpha", type=float, required=True, help="σ's negative slope α")
    parser.add_argument("--p", type=int, required=True, help="σ's power p")
    parser.add_argument("--loss", choices=["square", "logistic"], default="square")
    parser.add_argument("--mode", choices=["eager", "compile"], default="eager")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first, on a copy of the weights")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: all cores)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda, cuda:N (synchronised once, after the loop)")
    parser.add_argument("--out", help="write the final weights here (.pt)")
    return parser.parse_args(argv)


def make_gradient(alpha, p, loss):
    """∇L by the chain rule: a list of [S, k_l, k_{l-1}] for ws (a list of such); x [n, d], y [n]."""

    def sigma_and_slope(z):
        # σ(z) = s(z)·|z|^p with s = 1 (z > 0) or −α (z < 0); σ'(z) = p·|z|^(p−1)·(1 or α).
        slope = torch.where(z > 0, z.new_ones(()), z.new_full((), alpha))  # float64 α
        if p == 1:
            return z * slope, slope
        power = z.abs() ** (p - 1) * slope
        return z * power, p * power

    def gradient(ws, x, y):
        hidden, out = ws[:-1], ws[-1]
        hs, slopes = [x], []
        h = x
        for w in hidden:  # z_l = h_{l−1} W_lᵀ: [S, n, k_l] (x [n, d] broadcasts over the members)
            h, slope = sigma_and_slope(torch.matmul(h, w.transpose(-1, -2)))
            hs.append(h)
            slopes.append(slope)
        outputs = torch.matmul(h, out.transpose(-1, -2)).squeeze(-1)  # H: [S, n]
        if loss == "square":
            g = outputs - y  # ∂/∂H of 0.5·Σ(H − y)²
        else:
            g = -y * torch.sigmoid(-y * outputs)  # ∂/∂H of Σ softplus(−yH)
        grads = [torch.matmul(g.unsqueeze(-2), h)]  # ∂L/∂W_K: [S, 1, k]
        dh = g.unsqueeze(-1) * out  # ∂L/∂h_{K−1}: [S, n, k]
        for l in range(len(hidden) - 1, -1, -1):
            dz = dh * slopes[l]
            grads.append(torch.matmul(dz.transpose(-1, -2), hs[l]))  # ∂L/∂W_l: [S, k_l, k_{l−1}]
            if l > 0:
                dh = torch.matmul(dz, hidden[l])
        return grads[::-1]

    return gradient


def make_step(gradient, eta):
    """One gradient-descent step, in place: w -= η·g for every layer."""

    def step(ws, x, y):
        for w, g in zip(ws, gradient(ws, x, y)):
            w.sub_(g, alpha=eta)

    return step


def autograd_check(ws, x, y, alpha, p, loss, gradient):
    """Largest relative difference, over members and layers, between the hand-written gradient
    and autograd's of the loss written the plain way (as ncflab_baseline/model.py does)."""
    with torch.inference_mode():
        ours = gradient(ws, x, y)
    leaves = [w.clone().requires_grad_(True) for w in ws]
    h = x
    for w in leaves[:-1]:
        z = torch.matmul(h, w.transpose(-1, -2))
        h = torch.clamp(z, min=0) ** p - alpha * torch.clamp(-z, min=0) ** p
    outputs = torch.matmul(h, leaves[-1].transpose(-1, -2)).squeeze(-1)
    value = 0.5 * ((outputs - y) ** 2).sum() if loss == "square" else F.softplus(-y * outputs).sum()
    theirs = torch.autograd.grad(value, leaves)
    return max(float(((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).max())
               for a, b in zip(ours, theirs))


def load(path):
    """A dict of tensors that ncflab wrote (plain, so torch.load's weights-only default reads it)."""
    return torch.load(path, map_location="cpu")


def inductor_cache():
    """Whether Inductor's FX graph cache served the compiled step (hit: compile_seconds is mostly
    Dynamo's tracing) or it was built now (miss: C++ generated and compiled)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return "unknown"
    hits, misses = counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"]
    return "miss" if misses else "hit" if hits else "unknown"


def main(argv):
    args = parse(argv)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    saved, data = load(args.init), load(args.data)
    keys = sorted(saved, key=lambda k: int(k[1:]))  # W1, W2, ..., WK
    device = torch.device(args.device)
    initial = [saved[k].to(device, torch.float64).contiguous() for k in keys]
    x = data["inputs"].to(device, torch.float64).contiguous()
    y = data["labels"].to(device, torch.float64).contiguous()
    gradient = make_gradient(args.alpha, args.p, args.loss)
    step = make_step(gradient, args.step)
    result = {"mode": args.mode, "torch": torch.__version__, "device": str(device),
              "threads": torch.get_num_threads(), "members": int(initial[0].shape[0]), "steps": args.steps,
              "compile_seconds": 0.0}
    result["autograd_check"] = autograd_check(initial, x, y, args.alpha, args.p, args.loss, gradient)
    if args.mode == "compile":
        step = torch.compile(step, dynamic=False, fullgraph=True)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    # Warm-up (and, in compile mode, compilation) on a copy, so the timed steps start from w0.
    scratch = [w.clone() for w in initial]
    started = time.perf_counter()
    try:
        with torch.inference_mode():
            for _ in range(max(1, args.warmup)):
                step(scratch, x, y)
            synchronize()
    except Exception as e:  # noqa: BLE001 - any failure of the compiler is the anchor's result
        if args.mode != "compile":
            raise
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        result["error"] = f"{type(e).__name__}: {reason}"[:300]
        print(json.dumps(result))
        return 3
    if args.mode == "compile":
        result["compile_seconds"] = time.perf_counter() - started
        result["inductor_cache"] = inductor_cache()
    ws = [w.clone() for w in initial]
    with torch.inference_mode():
        synchronize()
        started = time.perf_counter()
        for _ in range(args.steps):
            step(ws, x, y)
        synchronize()
        seconds = time.perf_counter() - started
    result["seconds"] = seconds
    result["steps_per_second"] = args.steps / seconds if seconds > 0 else float("inf")
    result["finite"] = all(bool(torch.isfinite(w).all()) for w in ws)
    if args.out:
        torch.save({k: w.cpu() for k, w in zip(keys, ws)}, args.out)
    print(json.dumps(result))
    return 0 if result["finite"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
