"""Claims about KKT points of the constrained NCF: their rank-one structure (and that it is the
construction from a single-neuron KKT point), and the kinks of p = 1 nets along training."""
import csv
import json
import os

from claim_tools import RESULTS, config, number, publish


KKT_SETTINGS = [  # (name, overrides)
    ("relu", ["model.activation.alpha=0", "model.activation.p=1"]),
    ("leaky_relu_0.1", ["model.activation.alpha=0.1", "model.activation.p=1"]),
    ("leaky_relu_0.5", ["model.activation.alpha=0.5", "model.activation.p=1"]),
    ("poly_p2_alpha0.2", ["model.activation.alpha=0.2", "model.activation.p=2"]),
    ("poly_p3_alpha0.2", ["model.activation.alpha=0.2", "model.activation.p=3"]),
    # Depth 4: a few starts creep along kink manifolds for thousands of Newton steps; the cap
    # keeps the claim to minutes and reports them as unconverged.
    ("leaky_relu_0.1_depth4", ["model.activation.alpha=0.1", "model.activation.p=1", "model.widths=[6,6,6]",
                               "kkt.max_iterations=800"]),
]
KKT_DATA = [("synthetic", "kkt_synthetic.yaml"), ("breast_cancer", "kkt_breast_cancer.yaml")]


def kkt_summary(path):
    with open(path) as f:
        result = json.load(f)
    points = result["points"]
    hidden_layers = len(result["homogeneity"]["layers"]) - 1
    sv = [layer["sv_ratio"] for p in points for layer in p["layers"][:hidden_layers]]
    spread = [h["magnitude_spread"] for p in points for h in p["hidden"]]
    signs = [h["sign_fraction"] for p in points for h in p["hidden"]]
    support = [h["support"] for p in points for h in p["hidden"]]
    return {
        "L": result["homogeneity"]["total"], "restarts": result["restarts"], "converged": result["converged"],
        "unconverged": result["unconverged"], "points": len(points), "rank_one_share": result["rank_one_share"],
        "best_ncf": points[0]["ncf"] if points else None,
        "max_sv_ratio": max(sv) if sv else None,
        "max_residual": max(p["residual"] for p in points) if points else None,
        "at_kinks": sum(1 for p in points if p["kinks"] > 0),
        # Points the smooth residual alone would not certify (the kink-aware one does).
        "smooth_fails": sum(1 for p in points if p["residual"] > result["tol"]),
        "max_kink_residual": max(p["kink_residual"] for p in points) if points else None,
        "min_sign_fraction": min(signs) if signs else None,
        "max_spread": max(spread) if spread else None,
        "support": f"{min(support)}–{max(support)}" if support else "",
        "max_balance_error": max(p["balance_error"] for p in points) if points else None,
        "single_neuron_construction_share": result.get("single_neuron_construction_share"),
        "seconds": result["wall_seconds"],
    }


def kkt(runner, checks):
    rows = []
    for data, config_name in KKT_DATA:
        for name, overrides in KKT_SETTINGS:
            directory = runner.directory("kkt", f"{data}_{name}")
            if not (runner.resume and os.path.exists(os.path.join(directory, "kkt.json"))):
                runner.ncflab_command("kkt", config(config_name), *overrides, "--out", directory)
                runner.ncflab_command("report", directory)
            rows.append((data, name, kkt_summary(os.path.join(directory, "kkt.json"))))
            if (data, name) in (("synthetic", "leaky_relu_0.1"), ("breast_cancer", "poly_p2_alpha0.2")):
                publish(os.path.join(directory, "report"), "kkt", f"{data}_{name}")
    header = ["data", "activation", "L", "converged / starts", "distinct points", "rank-one share",
              "single-neuron construction share",
              "max σ₂/σ₁ (hidden)", "min sign fraction", "max magnitude spread", "support",
              "max balance error", "points at kinks", "smooth residual > tol", "max smooth residual",
              "max kink-aware residual", "best N", "seconds"]
    lines = ["# KKT points of the constrained NCF: structure", "",
             "Measured by `experiments/paper/reproduce.py kkt` (100 random starts per row). Rank one: "
             "σ₂/σ₁ < kkt.rank_one_tol = 1e-4 in every hidden layer. Single-neuron construction: rank one, "
             "within 1e-4 of the theorem's construction from its own input direction b, and b a KKT point "
             "(kink-aware for p = 1) of the single-neuron problem with the chain's signs. Sign fraction: share of a hidden "
             "singular vector's non-zero entries with the majority sign (1: one sign). Magnitude spread: "
             "(max − min)/max of its non-zero entries (0: equal magnitudes). Support: non-zero entries of "
             "the hidden singular vectors.", "",
             "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for data, name, s in rows:
        lines.append("| " + " | ".join([data, name, str(s["L"]), f"{s['converged']} / {s['restarts']}",
                                         str(s["points"]), number(s["rank_one_share"]),
                                         number(s["single_neuron_construction_share"]), number(s["max_sv_ratio"]),
                                         number(s["min_sign_fraction"]), number(s["max_spread"]), s["support"],
                                         number(s["max_balance_error"]), str(s["at_kinks"]),
                                         str(s["smooth_fails"]), number(s["max_residual"]),
                                         number(s["max_kink_residual"]), number(s["best_ncf"], 8),
                                         f"{s['seconds']:.0f}"]) + " |")
    os.makedirs(os.path.join(RESULTS, "kkt"), exist_ok=True)
    with open(os.path.join(RESULTS, "kkt", "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(RESULTS, "kkt", "summary.json"), "w") as f:
        json.dump([{"data": d, "activation": n, **s} for d, n, s in rows], f, indent=2)
    for data, name, s in rows:
        row = f"{data} {name}"
        checks.band(f"{row}: converged starts", s["converged"] / s["restarts"], 0.9, 1.0,
                    "projected ascent with the kink-aware Newton method converges from random starts")
        checks.band(f"{row}: rank-one share", s["rank_one_share"], 0.9, 1.0,
                    "SPEC §1: KKT points of feed-forward (polynomial) Leaky ReLU nets are very often rank one")
        checks.band(f"{row}: share that is the construction of a single-neuron KKT point",
                    s["single_neuron_construction_share"], 0.9, 1.0,
                    "rank-one KKT points are the theorem's construction from a KKT point b of the single-neuron problem")
        checks.band(f"{row}: max balance error", s["max_balance_error"], 0.0, 1e-8,
                    "‖W_l‖² = q_l/L at every KKT point (Euler per layer)")
        if "relu" in name and "poly" not in name:
            checks.band(f"{row}: min sign fraction of the hidden vectors", s["min_sign_fraction"], 0.999, 1.0,
                        "hidden singular vectors of a rank-one KKT point have entries of one sign")
        else:
            checks.band(f"{row}: max magnitude spread of the hidden vectors", s["max_spread"], 0.0, 1e-3,
                        "for p > 1 their non-zero entries are equal in magnitude")


def kinks(runner, checks):
    run = runner.directory("kinks")
    runner.ncflab_command("run", config("kinks_L3_leaky_relu.yaml"), "--out", run)
    runner.ncflab_command("report", run)
    publish(os.path.join(run, "report"), "kinks")
    with open(os.path.join(run, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    differences = [abs(float(r["kink_residual"]) - float(r["kkt_residual"])) / float(r["kkt_residual"]) for r in rows]
    checks.band("largest relative difference of kink-aware and smooth residual along training", max(differences),
                0.0, 1e-12, "no preactivation reaches a kink before escape: the two residuals are one number")
    checks.band("smooth residual at escape over at step 0", float(rows[-1]["kkt_residual"]) / float(rows[0]["kkt_residual"]),
                0.0, 1e-2, "the direction approaches a KKT point before escape (SPEC §1)")
    # With a loose kink tolerance the kinks the direction approaches show before escape.
    loose = runner.directory("kinks_loose")
    runner.ncflab_command("run", config("kinks_L3_leaky_relu.yaml"), "kkt.kink_tol=1e-2", "--out", loose)
    with open(os.path.join(loose, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    drops = [(1 - float(r["kink_residual"]) / float(r["kkt_residual"]), int(r["step"])) for r in rows]
    drop, at = max(drops)
    with open(os.path.join(RESULTS, "kinks", "kink_tol_1e-2.md"), "w") as f:
        f.write(f"# kinks with kkt.kink_tol = 1e-2\n\nLargest relative drop of the kink-aware residual below the smooth "
                f"one along training: {drop:.3f} at step {at} (of {rows[-1]['step']}).\n")
    checks.band("kink_tol = 1e-2: largest relative drop of the kink-aware below the smooth residual", drop, 0.01, 1.0,
                "near escape the direction is near a kinked KKT point: a loose tolerance sees its kinks")
