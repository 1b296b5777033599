#!/usr/bin/python3
"""ncflab and the PyTorch baseline read configs by the same rules (issue 14, strict YAML).

    python3 tests/config_corpus.py NCFLAB

Every bad config below must be refused by both: `ncflab validate` with exit code 2 and the
message fragment given, the baseline's load_config with InputError. Section overrides merge into
the file's section in both (Hydra). Exit 77 (skipped) where this Python has no PyYAML.
"""
import importlib.util
import os
import subprocess
import sys
import tempfile

if importlib.util.find_spec("yaml") is None:  # the baseline's config reader needs PyYAML
    print(f"skipped: {sys.executable} cannot import yaml (Debian: apt-get install python3-yaml)")
    sys.exit(77)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "experiments", "pytorch"))
from ncflab_baseline.config import InputError, load_config  # noqa: E402

# (config text, overrides, fragment of ncflab's one-line message)
BAD = [
    ("seed: 0\nname: x\nseed: 7\n", [], ":3: seed: expected each key once"),
    ("train:\n  step: 0.1\ntrain:\n  max_steps: 5\n", [], ":3: train: expected each key once"),
    ("train:\n  step: 0.1\n  step: 0.2\n", [], ":3: train.step: expected each key once"),
    ("model: {widths: [4], widths: [5]}\n", [], "model.widths: expected each key once"),
    ("name: x\n---\nseed: 2\n", [], ":3: expected one YAML document"),
    ('name: "base\nseed: 3\ntrain: {step: 0.1}\n', [], ":1: name: expected a quoted value closed on its line"),
    ("name: 'base\nseed: 3\n", [], ":1: name: expected a quoted value closed on its line"),
    ("trian:\n  step: 0.1\n", [], "trian: expected a known key"),
    ("flow:\n  kink_step: 1.0e-3\n", [], "flow.kink_step: expected no flow.kink_step"),
    ("name: x\n", ["train={step: 0.1, step: 0.2}"], "train.step: expected each key once"),
]


def ncflab_refuses(ncflab, path, overrides, fragment):
    done = subprocess.run([ncflab, "validate", path, *overrides], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if done.returncode != 2:
        return f"ncflab exited {done.returncode}, not 2"
    if len(lines) != 1 or fragment not in lines[0]:
        return f"ncflab said {done.stderr.strip()!r}, expected one line with {fragment!r}"
    return None


def baseline_refuses(path, overrides):
    try:
        load_config(path, overrides)
    except InputError:
        return None
    return "the baseline accepted it"


def main():
    ncflab = sys.argv[1]
    failures = []
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "exp.yaml")
        for text, overrides, fragment in BAD:
            with open(path, "w") as f:
                f.write(text)
            for problem in (ncflab_refuses(ncflab, path, overrides, fragment), baseline_refuses(path, overrides)):
                if problem:
                    failures.append(f"{text!r} {overrides}: {problem}")
        # Hydra's merge: a section override keeps the file's other keys of that section, in both.
        with open(path, "w") as f:
            f.write("train: {max_steps: 123, step: 0.1}\ndata: {n: 7, d: 3}\n")
        overrides = ["train={step: 0.5}", "data={n: 9}"]
        config = load_config(path, overrides)
        got = (config["train"]["step"], config["train"]["max_steps"], config["data"]["n"], config["data"]["d"])
        if got != (0.5, 123, 9, 3):
            failures.append(f"baseline section merge: train.step, train.max_steps, data.n, data.d = {got}")
        done = subprocess.run([ncflab, "validate", path, *overrides, "--print-config"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        for line in ("  step: 0.5", "  max_steps: 123", "  n: 9", "  d: 3"):
            if line not in done.stdout.splitlines():
                failures.append(f"ncflab section merge: no line {line!r} in --print-config")
    print(f"{len(BAD)} bad configs, each refused by both; section overrides merge in both")
    if failures:
        print("\n".join(["FAILED:"] + failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
