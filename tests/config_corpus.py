#!/usr/bin/python3
"""ncflab and the PyTorch baseline read configs and CSV data by the same rules (issue 14).

    python3 tests/config_corpus.py NCFLAB

BAD: every config (with its overrides) and every CSV file below must be refused by both:
`NCFLAB validate` (which reads the CSV too) with the exit code given and exactly one printable
stderr line holding the fragment; the baseline's load_config (and load_data for CSV data) with
InputError. GOOD: every one must be accepted by both and resolve to the same config
(`--print-config`, key by key, with the values given) and, for CSV data, the same rows, features
and label range. Exit 0 pass, 1 fail, 77 skipped (no PyYAML or torch in this Python).
Each case costs one ncflab start (about 0.7 s of CPU: LibTorch loading), so they run in parallel.
"""
import concurrent.futures
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time

for module, package in (("yaml", "python3-yaml"), ("torch", "python3-torch")):
    if importlib.util.find_spec(module) is None:  # the baseline needs both
        print(f"skipped: {sys.executable} cannot import {module} (Debian: apt-get install {package})")
        sys.exit(77)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "experiments", "pytorch"))
from baseline_defaults import compare, flatten, parse_validate_output  # noqa: E402  (tests/, this folder)
from ncflab_baseline.config import InputError, load_config  # noqa: E402
from ncflab_baseline.data import load_data  # noqa: E402

CSV = "data: {source: csv, path: data.csv, label: y}\nmodel: {widths: [3]}\n"  # a CSV case's config
MISSING, FOLDER = "missing", "folder"  # a CSV case's data.csv: absent, or a directory


def bad(text, fragment, *overrides, code=2):
    """A config (text or bytes) and overrides both must refuse; ncflab with `code` and `fragment`."""
    return text, list(overrides), None, code, fragment


def bad_csv(data, fragment, config=CSV, code=2):
    """data.csv (text, bytes, MISSING or FOLDER) both must refuse, read by `config`."""
    return config, [], data, code, fragment


BAD = [
    # Malformed YAML: quotes, brackets, tabs, indentation, documents, aliases, the root's type.
    bad('name: "base\nseed: 3\ntrain: {step: 0.1}\n', ":1: name: expected a quoted value closed on its line"),
    bad("name: 'base\nseed: 3\n", ":1: name: expected a quoted value closed on its line"),
    bad('name: "base\n  run"\n', ":1: name: expected a quoted value closed on its line"),
    bad("model:\n  widths: [20, 20\ntrain: {step: 0.1}\n", "expected valid YAML"),
    bad("train:\n\tstep: 0.1\n", "expected valid YAML"),
    bad("train:\n  step: 0.1\n   max_steps: 10\n", "expected valid YAML"),
    bad("init: {scale: *delta}\n", "expected valid YAML"),
    bad("name: x\n---\nseed: 2\n", ":2: expected one YAML document"),
    bad("name: x\n...\nseed: 2\n", "expected one YAML document"),
    bad("", "expected a mapping of config keys, found an empty document"),
    bad("seed:5\n", "expected a mapping of config keys"),
    bad("- name: x\n- seed: 1\n", "expected a mapping of config keys"),
    bad("train:\n  <<: {step: 0.1}\n", "train.<<: expected a known key"),
    bad("train:\nstep: 0.1\n", "train: expected a mapping of train keys, found nothing"),
    bad("hooks:\n  # kkt: false\n", "hooks: expected a mapping of hooks keys, found nothing"),
    bad(b"name: caf\xe9\n", "UTF-8"),
    # Duplicate keys, at every level and spelling.
    bad("seed: 0\nname: x\nseed: 7\n", ":3: seed: expected each key once"),
    bad('seed: 0\n"seed": 7\n', ":2: seed: expected each key once"),
    bad("train:\n  step: 0.1\ntrain:\n  max_steps: 5\n", ":3: train: expected each key once"),
    bad("train:\n  step: 0.1\n  step: 0.2\n", ":3: train.step: expected each key once"),
    bad("model: {widths: [4], widths: [5]}\n", "model.widths: expected each key once"),
    bad("model:\n  activation:\n    p: 2\n    alpha: 0.1\n    p: 3\n", ":5: model.activation.p: expected each key once"),
    # Unknown keys and misspellings, at every level; removed keys.
    bad("trian:\n  step: 0.1\n", "trian: expected a known key"),
    bad("lr: 0.1\n", "lr: expected a known key"),
    bad("train:\n  stpe: 0.1\n", "train.stpe: expected a known key"),
    bad("model:\n  width: [20]\n", "model.width: expected a known key"),
    bad("model:\n  activation: {alpah: 0.1}\n", "model.activation.alpah: expected a known key"),
    bad("flow:\n  kink_step: 1.0e-3\n", "flow.kink_step: expected no flow.kink_step"),
    # Wrong types: strings, floats, bools, lists, mappings and nothing where another type goes.
    bad("seed: abc\n", "seed: expected an integer, found 'abc'"),
    bad("seed: true\n", "seed: expected an integer, found 'true'"),
    bad("seed: 1_000\n", "seed: expected an integer, found '1_000'"),
    bad("seed: 99999999999999999999\n", "seed: expected an integer"),
    bad("train:\n  step: fast\n", "train.step: expected a finite number, found 'fast'"),
    bad("train:\n  step: [0.1]\n", "train.step: expected a finite number, found [0.1]"),
    bad("train:\n  step:\n", "train.step: expected a finite number, found nothing"),
    bad("name: [a, b]\n", "name: expected a string"),
    bad("data:\n  label:\n", "data.label: expected a string, found nothing"),
    bad("model:\n  widths: [20.5]\n", "model.widths: expected a list of integers"),
    bad('model:\n  widths: "20, 20"\n', "model.widths: expected a list of integers"),
    bad("train:\n  stop_at_escape: maybe\n", "train.stop_at_escape: expected true or false"),
    bad("data:\n  sign_labels: tRue\n", "data.sign_labels: expected true or false"),
    bad("device: gpu\n", "device: expected one of auto | cpu | cuda, found 'gpu'"),
    bad("hooks:\n  progress: yes\n", "hooks.progress: expected one of auto | true | false"),
    bad("train:\n  integrator: euler\n", "train.integrator: expected one of gd | flow"),
    bad("model:\n  activation: relu\n", "model.activation: expected a mapping of model.activation keys"),
    # Out of range.
    bad("seed: -1\n", "seed: expected an integer >= 0"),
    bad("threads: 2000\n", "threads: expected an integer in [0, 1024]"),
    bad('name: ""\n', "name: expected a non-empty name"),
    bad("name: runs/a\n", "name: expected a non-empty name without '/'"),
    bad(f"name: {'x' * 201}\n", "name: expected a non-empty name without '/' of at most 200 characters"),
    bad("data:\n  n: 0\n", "data.n: expected an integer >= 1, found '0'"),
    bad("model:\n  widths: []\n", "model.widths: expected a non-empty list of hidden widths"),
    bad("model:\n  widths: [20, 0]\n", "model.widths: expected hidden widths >= 1"),
    bad("model:\n  activation: {alpha: 1.5}\n", "model.activation.alpha: expected a number in [-1, 1]"),
    bad("model:\n  activation: {p: 0}\n", "model.activation.p: expected an integer in [1, 100]"),
    bad("model:\n  activation: {p: 1.5}\n", "model.activation.p: expected an integer, found '1.5'"),
    bad("model: {widths: [4, 4, 4, 4, 4], activation: {p: 1000}}\n", "model.activation.p: expected an integer in [1, 100]"),
    # Gradients at w_0 scale like delta^(L-1): below the dtype's smallest normal nothing trains.
    bad("init: {scale: 1.0e-160}\nmodel: {widths: [4], activation: {p: 2}}\n",
        "init.scale: expected delta with delta^(L-1) above float64's smallest normal number"),
    bad("dtype: float32\ninit: {scale: 1.0e-3}\nmodel: {widths: [4, 4, 4], activation: {p: 2}}\n",
        "init.scale: expected delta with delta^(L-1) above float32's smallest normal number"),
    bad("model: {kind: single_layer, widths: [20, 20]}\n", "model.widths: expected exactly one hidden width"),
    bad("init:\n  scale: -1.0e-3\n", "init.scale: expected a number > 0"),
    bad("train:\n  step: 0\n", "train.step: expected a number > 0"),
    bad("train:\n  max_steps: 0\n", "train.max_steps: expected an integer >= 1"),
    bad("train:\n  log_every: 0\n", "train.log_every: expected an integer >= 1"),
    bad("train:\n  escape_radius: 0\n", "train.escape_radius: expected a number > 0"),
    bad("train:\n  rtol: 1\n", "train.rtol: expected a number in (0, 1)"),
    bad("ensemble:\n  seeds: 0\n", "ensemble.seeds: expected an integer >= 1"),
    bad("flow:\n  max_norm: -1\n", "flow.max_norm: expected a number >= 0"),
    bad("flow:\n  rtol: 0.5\n", "flow.rtol: expected a number in [1e-15, 0.1]"),
    # Rules across keys.
    bad("data:\n  source: csv\n", "data.path: expected a CSV file path for data.source: csv"),
    bad("loss: logistic\n", "data.sign_labels: expected true for loss: logistic"),
    # NaN and infinity, however spelled, and numbers beyond a double.
    bad("train:\n  step: .nan\n", "train.step: expected a finite number, found '.nan'"),
    bad("train:\n  step: nan\n", "train.step: expected a finite number, found 'nan'"),
    bad("flow:\n  max_norm: .inf\n", "flow.max_norm: expected a finite number, found '.inf'"),
    bad("train:\n  escape_radius: 1e999\n", "train.escape_radius: expected a finite number, found '1e999'"),
    # Overrides: malformed, unknown keys, bad YAML values, wrong types and ranges.
    bad("name: x\n", "expected an override key.path=value, found 'train.step'", "train.step"),
    bad("name: x\n", "expected an override key.path=value, found '=3'", "=3"),
    bad("name: x\n", "train.step: expected a value after '='", "train.step="),
    bad("name: x\n", "train.stpe: expected a known key", "train.stpe=0.1"),
    bad("name: x\n", "train.step: expected valid YAML", "train.step=[0.1"),
    bad("name: x\n", "train..step: expected a dotted key path", "train..step=0.1"),
    bad("name: x\n", "seed: expected an integer, found {value: 3}", "seed.value=3"),
    bad("name: x\n", "train: expected a mapping of train keys", "train=0.1"),
    bad("name: x\n", "train.step: expected a finite number, found 'abc'", "train.step=abc"),
    bad("name: x\n", "model.widths: expected a list of integers, found '20,20'", "model.widths=20,20"),
    bad("name: x\n", "train.step: expected each key once", "train={step: 0.1, step: 0.2}"),
    bad("name: x\n", "argument was not expected: --seed=3", "--seed=3"),
    # CSV data: missing, empty, unreadable or not comma-separated.
    bad_csv(MISSING, "data.path: expected a readable CSV file"),
    bad_csv(FOLDER, "data.path: expected a readable CSV file"),
    bad_csv("", "expected a header row of column names, found an empty file"),
    bad_csv("x1,x2,y\n", "expected at least one data row, found only a header"),
    bad_csv("y\n1\n2\n", "header: expected at least two columns"),
    bad_csv("x1;x2;y\n1;2;3\n", "header: expected at least two columns"),
    bad_csv(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff3\xd41\xd21\xe6\x02\x00", "data.csv"),
    bad_csv("x1,x2,y\n".encode("utf-16"), "data.csv"),
    # CSV header: empty, repeated or missing names; no header at all.
    bad_csv("x1,x2,y,\n1,2,3,\n", "header column 4: expected a column name, found an empty cell"),
    bad_csv("x1,,y\n1,2,3\n", "header column 2: expected a column name, found an empty cell"),
    bad_csv("y,x2,y\n1,2,3\n", "header column 3: expected distinct column names, found 'y' again (column 1 too)"),
    bad_csv("a,b,c\n1,2,3\n", "data.label: expected a column named 'y' (columns: a, b, c)"),
    bad_csv("1.0,2.0,3.0\n4.0,5.0,6.0\n", "data.label: expected a column named 'y'"),
    # CSV rows: ragged, empty or non-numeric cells, NaN, infinity, overflow, trailing garbage.
    bad_csv("x1,x2,y\n1,2,3\n4,5\n", ":3: row: expected 3 cells like the header, found 2 cells"),
    bad_csv("x1,x2,y\n1,2,3,4\n", ":2: row: expected 3 cells like the header, found 4 cells"),
    bad_csv("x1,x2,y\n1,2,3,\n", ":2: row: expected 3 cells like the header, found 4 cells"),
    bad_csv("x1,x2,y\n1,5,2,3\n", ":2: row: expected 3 cells like the header, found 4 cells"),
    bad_csv("x1,x2,y\n1,2,3\n# end of data\n", ":3: row: expected 3 cells like the header, found 1 cells"),
    bad_csv("x1,x2,y\n1,2,3\n,,\n", ":3: column 'x1': expected a number, found an empty cell"),
    bad_csv("x1,x2,y\n1,,3\n", ":2: column 'x2': expected a number, found an empty cell"),
    bad_csv("x1,x2,y\n1,abc,3\n", ":2: column 'x2': expected a number, found 'abc'"),
    bad_csv("x1,x2,y\n1,2,NA\n", ":2: column 'y': expected a number, found 'NA'"),
    bad_csv("x1,x2,y\n1,2.5abc,3\n", ":2: column 'x2': expected a number, found '2.5abc'"),
    bad_csv("x1,x2,y\n1,1_000,3\n", ":2: column 'x2': expected a number, found '1_000'"),
    bad_csv("x1,x2,y\n1,0x10,3\n", ":2: column 'x2': expected a number, found '0x10'"),
    bad_csv("x1,x2,y\n1,2,3\n4,nan,6\n", ":3: column 'x2': expected a finite number, found 'nan'"),
    bad_csv("x1,x2,y\n1,2,inf\n", ":2: column 'y': expected a finite number, found 'inf'"),
    bad_csv("x1,x2,y\n1,1e999,3\n", ":2: column 'x2': expected a finite number, found '1e999'"),
    # CSV data that the config's other keys cannot use.
    bad_csv("x1,x2,y\n1,2,1\n3,4,0\n", "labels in {-1, +1} for loss: logistic", config=CSV + "loss: logistic\n"),
    bad_csv("x1,x2,y\n1,2,1\n0,0,2\n", "data.normalize: expected inputs without all-zero rows",
            config=CSV.replace("label: y", "label: y, normalize: sphere")),
]

# (config, overrides, data.csv or None, {key.path: value} both must resolve): both must accept these.
GOOD = [
    # Hydra's merge: a section override keeps the file's other keys of that section.
    ("train: {max_steps: 123, step: 0.1}\ndata: {n: 7, d: 3}\n", ["train={step: 0.5}", "data={n: 9}"], None,
     {"train.step": 0.5, "train.max_steps": 123, "data.n": 9, "data.d": 3}),
    # Quoted numbers, integers written as doubles, a number for the widths, YAML's other booleans.
    ('seed: "7"\nthreads: 4.0\ntrain: {step: "0.05", max_steps: "1e3", log_every: 1.0e2, stop_at_escape: off}\n'
     'hooks: {kkt: No, progress: "false"}\nmodel: {widths: 20, activation: {alpha: "-0.5", p: "3"}}\n', [], None,
     {"seed": 7, "threads": 4, "train.step": 0.05, "train.max_steps": 1000, "train.log_every": 100,
      "train.stop_at_escape": False, "hooks.kkt": False, "hooks.progress": "false", "model.widths": [20],
      "model.activation.alpha": -0.5, "model.activation.p": 3}),
    # Windows line endings, comments everywhere, explicit document markers.
    ("--- # the run\r\nname: crlf_run # a comment\r\nseed: 3\r\ntrain:\r\n  # the step\r\n  step: 0.05\r\n...\r\n",
     [], None, {"name": "crlf_run", "seed": 3, "train.step": 0.05}),
    # Anchors and aliases; a UTF-8 name.
    ("name: café-δ\nkkt: {tol: &tight 1.0e-12}\nflow: {direction_tol: *tight, rtol: *tight}\n", [], None,
     {"name": "café-δ", "kkt.tol": 1e-12, "flow.direction_tol": 1e-12, "flow.rtol": 1e-12}),
    # Overrides typed as in a file; one replaces the file's bad value before it is read.
    ("name: base\ntrain:\n  step: fast\n", ["train.step=0.1", "name=run_2", "model.widths=[3,2]", "init.scale=1e-4",
                                            "hooks.progress=false", "data.sign_labels=yes"], None,
     {"train.step": 0.1, "name": "run_2", "model.widths": [3, 2], "init.scale": 1e-4, "hooks.progress": "false",
      "data.sign_labels": True}),
    # CSV: CRLF, blanks around cells, quoted names, the label first, signs and exponents, no last newline.
    (CSV, [], '"y", "x1" ,x2\r\n1, +2.5e0 ,3\r\n-1,4,.5', {"data.label": "y"}),
    # CSV: blank lines in the middle and at the end; no data.label, so the last column.
    ("data: {source: csv, path: data.csv}\n", [], "x1,x2,t\n1,2,3\n\n  \n4,5,6\n\n", {"data.label": ""}),
    # CSV: Excel's "CSV UTF-8" starts with a byte-order mark.
    (CSV, [], "\ufeffy,x1\n1,2\n-1,3\n", {}),
    # CSV: labels in {-1, +1} for the logistic loss, standardised inputs.
    (CSV.replace("label: y", "label: y, normalize: standardize") + "loss: logistic\n", [],
     "x1,x2,y\n1,2,1\n3,5,-1\n0,0,1\n", {"loss": "logistic"}),
]


def write_case(work, config, data):
    """exp.yaml and data.csv of a case in its own folder; returns the config's path."""
    path = os.path.join(work, "exp.yaml")
    with open(path, "wb") as f:
        f.write(config if isinstance(config, bytes) else config.encode())
    if data == FOLDER:
        os.mkdir(os.path.join(work, "data.csv"))
    elif data is not None and data != MISSING:
        with open(os.path.join(work, "data.csv"), "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
    return path


def baseline(config, overrides):
    """The baseline's config and, for CSV data, (inputs, labels), as `ncflab validate` reads both."""
    resolved = load_config(config, overrides)
    return resolved, load_data(resolved, None, None) if resolved["data"]["source"] == "csv" else None


def check_bad(ncflab, case, work):
    text, overrides, data, code, fragment = case
    config = write_case(work, text, data)
    done = subprocess.run([ncflab, "validate", config, *overrides], capture_output=True)
    problems = [] if done.returncode == code else [f"ncflab exited {done.returncode}, not {code}"]
    try:
        lines = [line for line in done.stderr.decode().splitlines() if line.strip()]
    except UnicodeDecodeError:
        lines = []
    if len(lines) != 1 or fragment not in lines[0] or not lines[0].isprintable():
        problems.append(f"ncflab said {done.stderr!r}, expected one printable line with {fragment!r}")
    try:
        baseline(config, overrides)
        problems.append("the baseline accepted it")
    except InputError:
        pass
    except Exception as e:  # a traceback is a failure too
        problems.append(f"the baseline raised {type(e).__name__}: {e}")
    return problems


def check_good(ncflab, case, work):
    text, overrides, data, expected = case
    config = write_case(work, text, data)
    done = subprocess.run([ncflab, "validate", config, *overrides, "--print-config", "--print-keys"],
                          capture_output=True, text=True)
    if done.returncode != 0 or done.stderr.strip():
        return [f"ncflab exited {done.returncode}: {done.stderr.strip()!r}"]
    try:
        resolved, table = baseline(config, overrides)
    except InputError as e:
        return [f"the baseline refused it: {e}"]
    ours, types = parse_validate_output(done.stdout)
    theirs = flatten(resolved)
    problems = compare("resolved", ours, theirs, types)
    problems += [f"{key}: {theirs.get(key)!r} in both, expected {value!r}" for key, value in expected.items()
                 if theirs.get(key) != value]
    if table is not None:  # "csv: PATH (R rows, F features, label 'y')" and "labels in [a, b]"
        shape = re.search(r"\((\d+) rows, (\d+) features", done.stdout)
        span = re.search(r"labels in \[(\S+), (\S+)\]", done.stdout)
        inputs, labels = table
        mine = ((str(inputs.shape[0]), str(inputs.shape[1])),
                (f"{labels.min().item():.4g}", f"{labels.max().item():.4g}"))
        if (shape and shape.groups(), span and span.groups()) != mine:
            problems.append(f"data: ncflab {shape and shape.groups()} {span and span.groups()}, baseline {mine}")
    return problems


def main():
    ncflab = sys.argv[1]
    if not os.access(ncflab, os.X_OK):
        print(f"FAILED: cannot run {ncflab}")
        return 1
    start = time.monotonic()
    cases = [(check_bad, case) for case in BAD] + [(check_good, case) for case in GOOD]
    with tempfile.TemporaryDirectory() as work, concurrent.futures.ThreadPoolExecutor(min(4, os.cpu_count() or 2)) as pool:
        folders = [os.path.join(work, str(i)) for i in range(len(cases))]
        for folder in folders:
            os.mkdir(folder)
        results = list(pool.map(lambda job, folder: job[0](ncflab, job[1], folder), cases, folders))
    failures = [f"{'GOOD' if check is check_good else 'BAD'} {case[0]!r} {case[1]} data={case[2]!r}:\n    " +
                "\n    ".join(problems) for (check, case), problems in zip(cases, results) if problems]
    configs = sum(case[2] is None for case in BAD)
    print(f"{configs} bad configs and {len(BAD) - configs} bad CSV files refused, {len(GOOD)} good ones accepted, "
          f"by ncflab and the baseline alike, unless listed below ({time.monotonic() - start:.0f} s)")
    if failures:
        print("\n".join([f"FAILED ({len(failures)}):"] + failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
