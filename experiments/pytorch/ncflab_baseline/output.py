"""The run's files as ncflab writes them: metrics.csv, summary.json, weights_*.pt (W1, ..., WK
stacked over members); same columns, keys and number formatting, so the two runs diff cleanly.
"""
import json
import math

import torch


def number(x):
    """As ncflab writes a double: shortest round-trip digits, integral values without '.0'."""
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return "nan"
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def json_number(x):
    return x if x is None or math.isfinite(x) else None


def member_summary(outcome, rows, delta, flow_result, degrees):
    degree = sum(degrees)
    last = rows[-1]
    summary = {"status": outcome["status"], "delta": delta, "steps": outcome["steps"], "time": outcome["time"]}
    blowup = None
    if flow_result is not None:
        summary["ncf_flow"] = flow_result
        blowup = flow_result["blowup_time"]
        if blowup is not None and degree > 2:
            summary["predicted_escape_time"] = blowup / delta ** (degree - 2)
    else:
        summary["ncf_flow"] = None
    escape = outcome["escape"]
    if escape is not None:
        ratio = escape["rescaled_time"] / blowup if blowup else math.nan
        summary["escape"] = dict(escape, rescaled_time_over_blowup_time=json_number(ratio))
    else:
        summary["escape"] = None
    summary["final"] = {"loss": outcome["loss"], "norm": outcome["norm"], "norm_over_delta": outcome["norm"] / delta,
                        "gradient_norm": outcome["gradient_norm"], "cos_to_kkt": None}
    for key in ("ncf", "kkt_residual", "kink_residual", "cos_to_flow"):
        summary["final"][key] = json_number(last.get(key, math.nan))
    summary["layers"] = [{"norm": json_number(last.get(f"layer{l + 1}_norm", math.nan)),
                          "share": json_number(last.get(f"layer{l + 1}_share", math.nan)),
                          "kkt_share": q / degree,
                          "sv_ratio": json_number(last.get(f"layer{l + 1}_sv_ratio", math.nan))}
                         for l, q in enumerate(degrees)]
    return summary


def write_metrics(path, names, rows):
    rows = sorted(rows, key=lambda r: (r["step"], r["member"]))  # ncflab's order: by step, then member
    with open(path, "w") as f:
        f.write(",".join(["member", "step", "time"] + names) + "\n")
        for r in rows:
            f.write(",".join([str(r["member"]), str(r["step"]), number(r["time"])] +
                             [number(r[name]) for name in names]) + "\n")


def save_weights(path, members):
    """members[s][l]: member s's layer l; saved as {"W1": [S, k1, d], ...} in float64 on the CPU."""
    torch.save({f"W{l + 1}": torch.stack([m[l] for m in members]).to("cpu", torch.float64)
                for l in range(len(members[0]))}, path)


def write_trajectory(path, outcomes, every, layers, step_size):
    """weights_trajectory.pt from the members' snapshots (taken out of `outcomes`). As ncflab's
    ensemble: snapshots at 0, N, 2N, … and the last step of any member; a member that finished
    earlier keeps its final weights."""
    members = len(outcomes)
    snapshots = [s.pop("snapshots") for s in outcomes]
    last = max(o["steps"] for o in outcomes)
    steps = list(range(0, last + 1, every)) + ([] if last % every == 0 else [last])
    trajectory = {"step": torch.tensor(steps, dtype=torch.int64)}
    # Each member's t: k·η, frozen at its last step once it finished.
    trajectory["time"] = torch.tensor([[min(t, o["steps"]) * step_size for o in outcomes] for t in steps],
                                      dtype=torch.float64)
    for l in range(layers):
        trajectory[f"W{l + 1}"] = torch.stack([
            torch.stack([snapshots[m][min(t, outcomes[m]["steps"])][l] for m in range(members)])
            for t in steps])
    torch.save(trajectory, path)


def run_summary(summaries, degrees, device, training_seconds, iterations):
    """summary.json's content: member 0's summary, the ensemble's status, the degrees, every
    member's summary (S > 1) and the timing."""
    summary = dict(summaries[0])
    statuses = [m["status"] for m in summaries]
    summary["status"] = ("diverged" if "diverged" in statuses else
                         "escaped" if all(x == "escaped" for x in statuses) else "max_steps")
    summary["homogeneity"] = {"total": sum(degrees), "layers": degrees}
    if len(summaries) > 1:
        summary["members"] = summaries
    summary.update({"engine": "pytorch", "device": str(device), "wall_seconds": training_seconds,
                    "steps_per_second": iterations / training_seconds if training_seconds > 0 else 0.0,
                    "iterations": iterations})
    return summary


def write_summary(path, summary):
    with open(path, "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")
