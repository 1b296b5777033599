#!/usr/bin/python3
"""The PyTorch baseline's config defaults (DEFAULTS in experiments/pytorch/ncflab_baseline/config.py)
against ncflab's own (framework/include/ncflab/config.h).

    /usr/bin/python3 tests/baseline_defaults.py NCFLAB

On a minimal config (an empty mapping: every key at its default) and with each set of
overrides below, one call of `NCFLAB validate CONFIG --print-config --print-keys` prints the
config ncflab resolves (after '# resolved config') and every key's type (after '# keys', one
`key.path: TYPE` a line, TYPE string, boolean, number, integer, list of integers or
`one of a | b | c`); the baseline's load_config resolves the same file and overrides. The
two must hold the same keys (in the same order, as both write config.yaml) with the same
values and the same types, and the baseline's keys must be the '# keys' list. The types
come from '# keys' because ncflab's YAML does not tell an integer from a double that prints
as one (1.0e4 prints as 10000), nor a bool from a switch (auto | true | false) set to true.
Exit 0 pass, 1 fail (also for an ncflab without --print-keys), 77 skipped where this Python
has no PyYAML.
"""
import os
import re
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError as e:
    print(f"skipped: {sys.executable} cannot import {e.name} (Debian: apt-get install python3-yaml)")
    sys.exit(77)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "experiments", "pytorch"))
from ncflab_baseline.config import InputError, load_config  # noqa: E402  (needs PyYAML only, not torch)

CONFIG_MARKER = "# resolved config"
KEYS_MARKER = "# keys"
# Each set resolved on top of the minimal config, by one ncflab call; values as typed on a command line.
OVERRIDE_SETS = [
    ["train.step=0.5",          # the step size: a double
     "model.widths=[3,2]",      # a list of integers
     "init.scale=1e-4",         # YAML 1.1 (PyYAML) reads 1e-4 as a string; yaml-cpp as a number
     "flow.max_norm=1e5",       # a double written like an integer
     "train.max_steps=1e5",     # an integer written like a double
     "hooks.progress=false",    # a switch (auto | true | false), not a bool
     "data.sign_labels=true"],  # a bool
    ["model.widths=20"],        # a number for a list of integers: ncflab reads [20]
]
# '# keys' types as the Python types of the baseline's values (a choice's value is its name).
TYPES = {"string": "str", "boolean": "bool", "number": "float", "integer": "int", "list of integers": "list of int"}
KEY_LINE = re.compile(r"\s*([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*):\s+(\S.*?)\s*")


class NcflabOutputError(Exception):
    """ncflab failed or printed what this test cannot read: the test fails with this message."""


def flatten(tree, prefix=""):
    """{"a": {"b": 1}} → {"a.b": 1}, in the tree's order."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def parse_keys(lines):
    """'# keys' lines as {key.path: Python type name}, in their order; blank lines skipped."""
    types = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        match = KEY_LINE.fullmatch(line)
        if not match:
            raise NcflabOutputError(f"'{KEYS_MARKER}' line {number} is not 'key.path: TYPE': {line!r}")
        key, kind = match.groups()
        if key in types:
            raise NcflabOutputError(f"'{KEYS_MARKER}' lists key '{key}' twice")
        if kind in TYPES:
            types[key] = TYPES[kind]
        elif kind.startswith("one of ") and all(choice.strip() for choice in kind[len("one of "):].split("|")):
            types[key] = "str"
        else:
            raise NcflabOutputError(f"'{KEYS_MARKER}': key '{key}' has a type this test does not know: {kind!r}")
    if not types:
        raise NcflabOutputError(f"'{KEYS_MARKER}' lists no keys")
    return types


def parse_validate_output(text):
    """`validate --print-config --print-keys` output as (ncflab's resolved config flattened to
    {key.path: the scalar's text (a list: of texts)}, {key.path: type} from '# keys')."""
    lines = text.splitlines()
    if CONFIG_MARKER not in lines:
        raise NcflabOutputError(f"ncflab validate printed no '{CONFIG_MARKER}' line:\n{text}")
    start = lines.index(CONFIG_MARKER)
    if KEYS_MARKER not in lines[start + 1:]:
        raise NcflabOutputError(f"ncflab validate printed no '{KEYS_MARKER}' line after '{CONFIG_MARKER}' "
                                f"(an ncflab without --print-keys?):\n{text}")
    end = lines.index(KEYS_MARKER, start + 1)
    try:  # BaseLoader: every scalar as its text, typed below with the type '# keys' gives the key
        config = yaml.load("\n".join(lines[start + 1:end]), Loader=yaml.BaseLoader)
    except yaml.YAMLError as e:
        raise NcflabOutputError(f"ncflab's '{CONFIG_MARKER}' is not valid YAML ({e}):\n{text}")
    if not isinstance(config, dict):
        raise NcflabOutputError(f"ncflab's '{CONFIG_MARKER}' is not a mapping:\n{text}")
    return flatten(config), parse_keys(lines[end + 1:])


def ncflab_validate(ncflab, config, overrides):
    """ncflab's resolved config and key types for `config` with `overrides` (one call: about 1 s,
    LibTorch's start)."""
    args = [ncflab, "validate", config, *overrides, "--print-config", "--print-keys"]
    try:
        done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as e:
        raise NcflabOutputError(f"cannot run {ncflab}: {e}")
    if done.returncode != 0 and "--print-keys" in done.stderr:
        raise NcflabOutputError(f"{ncflab} does not know --print-keys (built before the flag? rebuild it): "
                                f"{done.stderr.strip()}")
    if done.returncode != 0:
        raise NcflabOutputError(f"ncflab validate {' '.join(overrides)} exited {done.returncode}:\n{done.stderr}")
    return parse_validate_output(done.stdout)


def typed(text, kind):
    """ncflab's printed text as a value of `kind`."""
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        return {"true": True, "false": False}[text]
    if kind == "list of int" and isinstance(text, list):
        return [int(item) for item in text]
    if kind == "str" and isinstance(text, str):
        return text
    raise TypeError(kind)  # a list for a scalar, a scalar for a list


def python_type(value):
    if isinstance(value, list):
        kinds = {type(item).__name__ for item in value}
        return "list of " + (kinds.pop() if len(kinds) == 1 else "mixed") if kinds else "list of int"
    return type(value).__name__  # bool before int: type(), not isinstance


def compare_keys(label, ours, theirs, types):
    """Failures of the key lists: ncflab's resolved config, its '# keys' and the baseline's."""
    baseline = "the baseline's config (DEFAULTS)"
    # (keys, where they are, keys they must also be in, where those are)
    pairs = [(ours, "ncflab's config", theirs, "the baseline's (DEFAULTS)"),
             (theirs, baseline, ours, "ncflab's"),
             (types, f"ncflab's '{KEYS_MARKER}'", theirs, "the baseline's (DEFAULTS)"),
             (theirs, baseline, types, f"ncflab's '{KEYS_MARKER}'"),
             (ours, f"ncflab's '{CONFIG_MARKER}'", types, f"its '{KEYS_MARKER}'"),
             (types, f"ncflab's '{KEYS_MARKER}'", ours, f"its '{CONFIG_MARKER}'")]
    failures = [f"{label}: key '{key}' is in {where}, not in {other_where}"
                for keys, where, others, other_where in pairs for key in keys if key not in others]
    listed, printed = [k for k in types if k in ours], [k for k in ours if k in types]
    if listed != printed:
        key, where = first_difference(listed, printed)
        failures.append(f"{label}: ncflab's '{KEYS_MARKER}' lists key '{key}' where its '{CONFIG_MARKER}' "
                        f"has '{where}': not in the same order")
    shared_ours, shared_theirs = [k for k in ours if k in theirs], [k for k in theirs if k in ours]
    if shared_ours != shared_theirs:
        key, where = first_difference(shared_ours, shared_theirs)
        failures.append(f"{label}: keys in a different order: ncflab has key '{key}' where the baseline has "
                        f"'{where}'\n  ncflab   {shared_ours}\n  baseline {shared_theirs}")
    return failures


def first_difference(a, b):
    """The first pair of keys where two orders of the same keys part."""
    return next((x, y) for x, y in zip(a, b) if x != y)


def compare(label, ours, theirs, types):
    """Failures of the baseline's flattened config `theirs` against ncflab's text `ours`."""
    failures = compare_keys(label, ours, theirs, types)
    for key in [k for k in ours if k in theirs and k in types]:
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


def check(ncflab, config, overrides):
    """(failures, ncflab's key types) for `config` with `overrides`."""
    label = f"with {' '.join(overrides)}" if overrides else "defaults"
    ours, types = ncflab_validate(ncflab, config, overrides)
    try:
        theirs = flatten(load_config(config, overrides))
    except InputError as e:
        return [f"ncflab takes the overrides {' '.join(overrides)}, the baseline refuses them: {e}"], types
    return compare(label, ours, theirs, types), types


def main():
    ncflab = sys.argv[1]
    failures = []
    with tempfile.TemporaryDirectory() as work:
        # The minimal config: ncflab refuses an empty document, an empty mapping is valid.
        config = os.path.join(work, "minimal.yaml")
        with open(config, "w") as f:
            f.write("{}\n")
        try:
            failures, types = check(ncflab, config, [])
            for overrides in OVERRIDE_SETS:
                failures += check(ncflab, config, overrides)[0]
        except NcflabOutputError as e:
            print(f"FAILED: {e}")
            return 1
    print(f"{len(types)} keys ({', '.join(f'{k} {t}' for k, t in types.items())}); defaults and "
          f"{len(OVERRIDE_SETS)} override sets ({sum(map(len, OVERRIDE_SETS))} overrides) compared")
    if failures:
        print("\n".join(["FAILED:"] + failures))
        return 1
    print("the baseline's DEFAULTS resolve as ncflab's config does")
    return 0


if __name__ == "__main__":
    sys.exit(main())
