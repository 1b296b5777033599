#!/usr/bin/python3
"""The PyTorch baseline's config defaults (DEFAULTS in experiments/pytorch/baseline.py)
against ncflab's own (framework/include/ncflab/config.h).

    /usr/bin/python3 tests/baseline_defaults.py NCFLAB

On a minimal config (an empty mapping: every key at its default) and with a few overrides,
`NCFLAB validate --print-config` prints the config ncflab resolves, and baseline.py's
load_config resolves the same file and overrides. The two must hold the same keys (in the
same order, as both write config.yaml) with the same values and the same types.
ncflab's YAML does not tell an integer from a double that prints as one (1.0e4 prints as
10000), nor a bool from a switch (auto | true | false) set to true: the type of such a key
(and of a list) is asked of ncflab itself, whose answer to a word given for the key is
"an integer", "a finite number", "true or false", "a list of integers" or "one of ...", or
taking it as a string. Printed with a '.' or an exponent, a value is a double; any other
word, a string or a choice.
Exit 0 pass, 1 fail, 77 skipped where this Python has no torch or PyYAML.
"""
import concurrent.futures
import importlib.util
import os
import re
import subprocess
import sys
import tempfile

try:
    import torch  # noqa: F401  (baseline.py needs it to import)
    import yaml
except ImportError as e:
    print(f"skipped: {sys.executable} cannot import {e.name} (Debian: apt-get install python3-torch python3-yaml)")
    sys.exit(77)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BASELINE = os.path.join(ROOT, "experiments", "pytorch", "baseline.py")
MARKER = "# resolved config"
PROBE = "ncflab_type_probe"  # not a number, a bool or a list: every typed key refuses it
# Resolved together on top of the minimal config; each value as typed on a command line.
OVERRIDES = [
    "train.step=0.5",          # the step size: a double
    "model.widths=[3,2]",      # a list of integers
    "init.scale=1e-4",         # YAML 1.1 (PyYAML) reads 1e-4 as a string; yaml-cpp as a number
    "flow.max_norm=1e5",       # a double written like an integer
    "train.max_steps=1e5",     # an integer written like a double
    "hooks.progress=false",    # a switch (auto | true | false), not a bool
    "data.sign_labels=true",   # a bool
]


def load_baseline():
    spec = importlib.util.spec_from_file_location("ncflab_baseline", BASELINE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_ncflab(ncflab, config, overrides, print_config=True):
    args = [ncflab, "validate", config, *overrides] + (["--print-config"] if print_config else [])
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ncflab_config(ncflab, config, overrides):
    """ncflab's resolved config as nested dicts of the scalars' text (lists of text)."""
    done = run_ncflab(ncflab, config, overrides)
    if done.returncode != 0:
        raise RuntimeError(f"ncflab validate {' '.join(overrides)} exited {done.returncode}:\n{done.stderr}")
    lines = done.stdout.splitlines()
    if MARKER not in lines:
        raise RuntimeError(f"ncflab validate --print-config printed no '{MARKER}' line:\n{done.stdout}")
    # BaseLoader: every scalar as its text, typed below with the type ncflab gives the key.
    return yaml.load("\n".join(lines[lines.index(MARKER) + 1:]), Loader=yaml.BaseLoader)


def flatten(tree, prefix=""):
    """{"a": {"b": 1}} → {"a.b": 1}, in the tree's order."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


EXPECTATIONS = {"an integer": "int", "a finite number": "float", "true or false": "bool",
                "a list of integers": "list of int"}


FLOAT_TEXT = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][-+]?\d+|\.\d+[eE][-+]?\d+)")


def printed_type(text):
    """The type that ncflab's text for a value shows, or None where only ncflab can tell."""
    if isinstance(text, list) or text in ("true", "false") or re.fullmatch(r"[-+]?\d+", text):
        return None
    return "float" if FLOAT_TEXT.fullmatch(text) else "str"


def ncflab_type(ncflab, config, key):
    """The type ncflab reads `key` as, from how it answers a word for it (about 1 s a call:
    LibTorch's start)."""
    done = run_ncflab(ncflab, config, [f"{key}={PROBE}"], print_config=False)
    if done.returncode == 0:
        return "str"
    match = re.search(rf"{re.escape(key)}: expected (.*?), found", done.stderr)
    if done.returncode == 2 and match:
        expected = match.group(1)
        if expected in EXPECTATIONS:
            return EXPECTATIONS[expected]
        if expected.startswith("one of "):
            return "str"  # a choice: its name
    raise RuntimeError(f"{key}: cannot tell ncflab's type from its answer to {key}={PROBE} "
                       f"(exit {done.returncode}):\n{done.stderr}")


def typed(text, kind):
    """ncflab's printed text as a value of `kind`."""
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        return {"true": True, "false": False}[text]
    if kind == "list of int":
        return [int(item) for item in text]
    return text


def python_type(value):
    if isinstance(value, list):
        kinds = {type(item).__name__ for item in value}
        return "list of " + (kinds.pop() if len(kinds) == 1 else "mixed") if kinds else "list of int"
    return type(value).__name__  # bool before int: type(), not isinstance


def compare(label, ours, theirs, types):
    """Failures of the baseline's flattened config `theirs` against ncflab's text `ours`."""
    failures = []
    for key in ours:
        if key not in theirs:
            failures.append(f"{label}: key '{key}' is in ncflab's config, not in the baseline's (DEFAULTS)")
    for key in theirs:
        if key not in ours:
            failures.append(f"{label}: key '{key}' is in the baseline's config (DEFAULTS), not in ncflab's")
    shared_ours = [k for k in ours if k in theirs]
    shared_theirs = [k for k in theirs if k in ours]
    if shared_ours != shared_theirs:
        failures.append(f"{label}: keys in a different order:\n  ncflab   {shared_ours}\n  baseline {shared_theirs}")
    for key in shared_ours:
        kind = types[key]
        try:
            expected = typed(ours[key], kind)
        except (ValueError, TypeError, KeyError):
            failures.append(f"{label}: key '{key}': ncflab printed {ours[key]!r}, not a {kind}")
            continue
        value = theirs[key]
        if python_type(value) != kind:
            failures.append(f"{label}: key '{key}': ncflab has {kind} {expected!r}, "
                            f"the baseline {python_type(value)} {value!r}")
        elif value != expected:
            failures.append(f"{label}: key '{key}': ncflab {expected!r}, baseline {value!r}")
    return failures


def main():
    ncflab = sys.argv[1]
    baseline = load_baseline()
    failures = []
    with tempfile.TemporaryDirectory() as work:
        # The minimal config: ncflab refuses an empty document, an empty mapping is valid.
        config = os.path.join(work, "minimal.yaml")
        with open(config, "w") as f:
            f.write("{}\n")
        defaults = flatten(ncflab_config(ncflab, config, []))
        types = {key: printed_type(text) for key, text in defaults.items()}
        ask = [key for key, kind in types.items() if kind is None]
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            answers = pool.map(lambda key: ncflab_type(ncflab, config, key), ask)
            overridden = pool.submit(lambda: flatten(ncflab_config(ncflab, config, OVERRIDES)))
            types.update(zip(ask, answers))
            overridden = overridden.result()
        failures += compare("defaults", defaults, flatten(baseline.load_config(config, [])), types)
        try:
            theirs = flatten(baseline.load_config(config, OVERRIDES))
            failures += compare("with the overrides", overridden, theirs, types)
        except baseline.InputError as e:
            failures.append(f"ncflab takes the overrides {' '.join(OVERRIDES)}, the baseline refuses them: {e}")
    print(f"{len(types)} keys ({', '.join(f'{k} {t}' for k, t in types.items())}; {len(ask)} types asked "
          f"of ncflab); defaults and {len(OVERRIDES)} overrides compared")
    if failures:
        print("\n".join(["FAILED:"] + failures))
        return 1
    print("baseline.py's DEFAULTS resolve as ncflab's config does")
    return 0


if __name__ == "__main__":
    sys.exit(main())
