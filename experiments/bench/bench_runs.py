"""bench.py's models and how it runs ncflab and the anchors: fixed-step runs, checked
summaries, failures an anchor's cell reports instead of stopping the bench."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
QUICKSTART = os.path.join(HERE, "..", "quickstart.yaml")
BASELINE = os.path.join(HERE, "..", "pytorch", "baseline.py")
TORCH_GD = os.path.join(HERE, "torch_gd.py")
JAX_GD = os.path.join(HERE, "jax_gd.py")
TORCH2_PYTHON = os.path.join(REPO, ".deps", "torch2", "bin", "python")
JAX_PYTHON = os.path.join(REPO, ".deps", "jax", "bin", "python")

MODELS = {
    # δ = 1e-4: every member stays before its escape (near step 37 800 for member 0)
    # for all timed steps; past escape this step size makes GD diverge.
    "quickstart": {"label": "quickstart: widths 20, n=100, d=10, p=2", "overrides": ["init.scale=1e-4"]},
    "wide": {"label": "wide: widths 100,100, n=1000, d=10, Leaky ReLU",
             "overrides": ["model.widths=[100,100]", "data.n=1000", "model.activation.alpha=0.2",
                           "model.activation.p=1", "init.scale=1e-2", "train.step=1e-4"]},
    # L = 3 (three layers of degree 1): escape near t ~ T*/δ, far beyond the timed steps'
    # t = 200 at δ = 1e-4, η = 1e-2 (‖w‖/δ stays O(1), see the line under the table).
    "heldout": {"label": "heldout: widths 12,12, n=40, d=8, Leaky ReLU α=0.1",
                "overrides": ["model.widths=[12,12]", "data.n=40", "data.d=8", "model.activation.alpha=0.1",
                              "model.activation.p=1", "init.scale=1e-4", "train.step=1e-2"]},
}


def fixed_steps(steps):
    """Train exactly `steps` steps, log only the first and last, no hooks, no flow."""
    return [f"train.max_steps={steps}", "train.stop_at_escape=false", "train.escape_radius=1e300",
            f"train.log_every={steps}", "hooks.kkt=false", "hooks.layers=false", "hooks.progress=false",
            "flow.enabled=false", "train.checkpoint_every=0"]


class AnchorFailed(Exception):
    pass


def summary_of(directory):
    with open(os.path.join(directory, "summary.json")) as f:
        return json.load(f)


def checked(summary, steps, who):
    if summary["status"] != "max_steps" or summary["iterations"] != steps:
        raise AnchorFailed(f"{who} ended with {summary['status']} after {summary['iterations']} of {steps} steps")
    return summary


def last_line(text, limit=200):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip()[:limit] if lines else "no output"


def run_checked(command, who, env=None):
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if done.returncode != 0:
        raise AnchorFailed(f"{who} exited with {done.returncode}: {last_line(done.stderr)}")
    return done.stdout


def run_ncflab(ncflab, directory, overrides, steps):
    subprocess.run([ncflab, "run", QUICKSTART, *overrides, *fixed_steps(steps), "--out", directory], check=True,
                   stdout=subprocess.DEVNULL)
    try:
        return checked(summary_of(directory), steps, "ncflab")
    except AnchorFailed as e:
        sys.exit(f"bench: {e}")


def run_baseline(python, directory, init, overrides, steps):
    run_checked([python, BASELINE, QUICKSTART, *overrides, *fixed_steps(steps), "--init", init,
                 "--out", directory], "the baseline")
    return checked(summary_of(directory), steps, "the baseline")


def run_json(command, who):
    """Run an anchor script that prints one JSON object (also when it fails: "error")."""
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        result = json.loads(last_line(done.stdout, None)) if done.stdout.strip() else None
    except ValueError:
        result = None
    if result is not None and result.get("error"):
        raise AnchorFailed(result["error"])
    if done.returncode != 0 or result is None:
        if result is not None and not result.get("finite", True):
            raise AnchorFailed(f"{who}: weights not finite (diverged)")
        raise AnchorFailed(f"{who} exited with {done.returncode}: {last_line(done.stderr)}")
    return result

