"""Batched gradient descent in JAX: an anchor for bench.py (jit, vmap over members, lax.scan).

    .deps/jax/bin/python experiments/bench/jax_gd.py INPUT.npz --steps N --step ETA --alpha A \\
        --p P [--loss square|logistic] [--out final.npz]

INPUT.npz (bench.py writes it from a ncflab run's weights_init.pt and data.pt, since this
venv has no torch) holds W1, ..., WK shaped [S, k_l, k_{l-1}], inputs [n, d] and labels [n].
The same gradient descent as ncflab's, in float64 (jax_enable_x64): a member's loss is a sum
over samples, 0.5·Σ(H−y)² (square) or Σ softplus(−yH) (logistic), of
H(X) = W_K σ(...σ(X W1ᵀ)...), σ(z) = max(z,0)^p − α·max(−z,0)^p; its gradient by jax.grad,
vmap over the S members, the N steps as one lax.scan, the whole under jax.jit. Compiled
ahead of time (lower().compile(), reported as compile_seconds); then only the compiled
N-step program is timed, up to block_until_ready. Feed-forward models only.

Prints one JSON object: jax version, devices, steps, seconds, steps_per_second (ensemble
steps: one advances all S members), compile_seconds, finite. Writes the final weights (same
keys) to --out as .npz.
"""
import argparse
import json
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help=".npz with W1..WK, inputs, labels")
    parser.add_argument("--steps", type=int, required=True, help="gradient-descent steps to time")
    parser.add_argument("--step", type=float, required=True, help="step size η")
    parser.add_argument("--alpha", type=float, required=True, help="σ's negative slope α")
    parser.add_argument("--p", type=int, required=True, help="σ's power p")
    parser.add_argument("--loss", choices=["square", "logistic"], default="square")
    parser.add_argument("--out", help="write the final weights here (.npz)")
    return parser.parse_args(argv)


def make_train(alpha, p, loss, eta, steps):
    def sigma(z):
        if p == 1:
            return jnp.where(z > 0, z, alpha * z)
        return jnp.maximum(z, 0) ** p - alpha * jnp.maximum(-z, 0) ** p

    def member_loss(ws, x, y):  # one member: ws a tuple of [k_l, k_{l-1}]
        h = x
        for w in ws[:-1]:
            h = sigma(h @ w.T)
        outputs = (h @ ws[-1].T)[:, 0]
        if loss == "square":
            return 0.5 * jnp.sum((outputs - y) ** 2)
        return jnp.sum(jax.nn.softplus(-y * outputs))

    gradients = jax.vmap(jax.grad(member_loss), in_axes=(0, None, None))  # ws [S, ...] -> grads [S, ...]

    def train(ws, x, y):
        def body(ws, _):
            return tuple(w - eta * g for w, g in zip(ws, gradients(ws, x, y))), None

        return lax.scan(body, ws, None, length=steps)[0]

    return jax.jit(train)


def main(argv):
    args = parse(argv)
    saved = np.load(args.input)
    keys = sorted((k for k in saved.files if k.startswith("W")), key=lambda k: int(k[1:]))
    ws = tuple(jnp.asarray(saved[k], dtype=jnp.float64) for k in keys)
    x, y = jnp.asarray(saved["inputs"], jnp.float64), jnp.asarray(saved["labels"], jnp.float64)
    train = make_train(args.alpha, args.p, args.loss, args.step, args.steps)
    started = time.perf_counter()
    compiled = train.lower(ws, x, y).compile()
    compile_seconds = time.perf_counter() - started
    jax.block_until_ready((ws, x, y))
    started = time.perf_counter()
    final = jax.block_until_ready(compiled(ws, x, y))
    seconds = time.perf_counter() - started
    final = [np.asarray(w) for w in final]
    result = {"jax": jax.__version__, "devices": [str(d) for d in jax.devices()], "members": int(ws[0].shape[0]),
              "steps": args.steps, "compile_seconds": compile_seconds, "seconds": seconds,
              "steps_per_second": args.steps / seconds if seconds > 0 else float("inf"),
              "finite": all(bool(np.isfinite(w).all()) for w in final)}
    if args.out:
        np.savez(args.out, **dict(zip(keys, final)))
    print(json.dumps(result))
    return 0 if result["finite"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
