"""Config: ncflab's keys and defaults, the YAML file and key.path=value overrides merged onto them;
kept apart so the baseline resolves (and writes) a config exactly as `ncflab run` does, types included.
"""
import copy
import difflib
import math
import os
import re
import sys

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("baseline: PyYAML is missing (Debian: apt-get install python3-yaml)")


class InputError(Exception):
    """Bad config, data or arguments: exit code 2."""


class StrictLoader(yaml.BaseLoader):
    """YAML read as ncflab's yaml-cpp reads a config: every scalar stays text, typed later by the key
    it sets (so 1e-3, yes, 010 and "5" mean what they mean to ncflab); a plain ~, null or nothing is
    None. Like ncflab it refuses a key twice in one mapping (PyYAML keeps the last, yaml-cpp the first)
    and a quoted value that does not close on its line (a forgotten quote swallows the next lines)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (list, dict)):
                continue  # the base class refuses an unhashable key
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"expected each key once, found '{key}' again (first at line {seen[key]})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)

    def construct_scalar(self, node):
        if node.style in ("'", '"') and node.start_mark.line != node.end_mark.line:
            raise yaml.constructor.ConstructorError(
                None, None, "expected a quoted value closed on its line, found an unclosed quote",
                node.start_mark)
        return super().construct_scalar(node)


StrictLoader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"),
                                   ["~", "n", "N", ""])
StrictLoader.add_constructor("tag:yaml.org,2002:null", lambda loader, node: None)


def load_yaml(stream):
    """The one YAML document of `stream` (text, bytes or a binary file), each key once per mapping."""
    return yaml.load(stream, Loader=StrictLoader)


# ncflab's keys and defaults (framework/include/ncflab/experiment/config.h), merged with the
# file and the overrides. A copy, so the baseline runs without the binary; the test
# tests/baseline_defaults.py ties it to ncflab (every key, value, type and the order, against
# `ncflab validate --print-config --print-keys`): change a default there, change it here.
DEFAULTS = {
    "name": "quickstart", "seed": 0, "device": "auto", "dtype": "float64", "threads": 0,
    "data": {"source": "synthetic", "n": 100, "d": 10, "inputs": "gaussian", "teacher": "neuron",
             "teacher_width": 2, "label_noise": 0.0, "sign_labels": False, "path": "", "label": "",
             "normalize": "none"},
    "model": {"kind": "feedforward", "widths": [20], "activation": {"alpha": 0.2, "p": 2}},
    "loss": "square",
    "init": {"scale": 1.0e-3},
    "train": {"integrator": "gd", "step": 1.0e-2, "max_steps": 100000, "max_time": 0.0,
              "escape_radius": 0.1, "stop_at_escape": True, "log_every": 100, "log_interval": 0.0,
              "rtol": 1.0e-8, "atol": 0.0, "kink_step": 1.0e-6, "engine": "auto",
              "sync_every": 0, "cuda_graph": True, "checkpoint_every": 10000, "snapshot_every": 0},
    "ensemble": {"seeds": 1},
    "hooks": {"kkt": True, "kkt_search": False, "kink_residual": "auto", "layers": True,
              "progress": "auto", "progress_seconds": 2.0},
    "kkt": {"restarts": 32, "tol": 1.0e-10, "max_iterations": 20000, "kink_tol": 1.0e-6,
            "rank_one_tol": 1.0e-4},
    "flow": {"rtol": 1.0e-12, "direction_tol": 1.0e-10, "stall_tol": 1.0e-10, "max_norm": 1.0e4,
             "max_steps": 1000000, "max_time": 0.0, "record_every": 10, "enabled": True},
    "launcher": {"slurm": {"partition": "", "account": "", "qos": "", "time": "", "mem": "",
                           "gres": "", "constraint": "", "cpus_per_task": 0, "extra": ""}},
}


# ncflab's checks of each key (framework/src/experiment/config_schema.h): a tuple lists a choice's
# names; a function returns what was expected, "" when the value is fine. Keys not here take any
# value of their type.
def _above(bound):
    return lambda v: "" if v > bound else f"a number > {bound:g}"


def _at_least(bound):
    return lambda v: "" if v >= bound else (f"an integer >= {bound}" if isinstance(v, int) else f"a number >= {bound:g}")


def _within(low, high):
    return lambda v: "" if low <= v <= high else (f"an integer in [{low}, {high}]" if isinstance(v, int)
                                                  else f"a number in [{low:g}, {high:g}]")


def _name(s):
    control = any(ord(c) < 0x20 or ord(c) == 0x7f for c in s)
    return "" if s and "/" not in s and len(s.encode()) <= 200 and not control else \
        "a non-empty name without '/' of at most 200 characters (and no control characters)"


def _widths(widths):
    if not widths:
        return "a non-empty list of hidden widths (depth K = len + 1 >= 2)"
    return "" if all(w >= 1 for w in widths) else "hidden widths >= 1"


SWITCH = ("auto", "true", "false")
RULES = {
    "name": _name, "seed": _at_least(0), "device": ("auto", "cpu", "cuda"), "dtype": ("float64", "float32"),
    "threads": _within(0, 1024),
    "data.source": ("synthetic", "csv"), "data.n": _at_least(1), "data.d": _at_least(1),
    "data.inputs": ("gaussian", "sphere"), "data.teacher": ("neuron", "two_layer", "random_signs"),
    "data.teacher_width": _at_least(1), "data.label_noise": _at_least(0.0),
    "data.normalize": ("none", "standardize", "sphere"),
    "model.kind": ("feedforward", "single_layer"), "model.widths": _widths,
    "model.activation.alpha": _within(-1.0, 1.0), "model.activation.p": _within(1, 100),
    "loss": ("square", "logistic"), "init.scale": _above(0.0),
    "train.integrator": ("gd", "flow"), "train.step": _above(0.0), "train.max_steps": _at_least(1),
    "train.max_time": _at_least(0.0), "train.escape_radius": _above(0.0), "train.log_every": _at_least(1),
    "train.log_interval": _at_least(0.0), "train.rtol": lambda r: "" if 0 < r < 1 else "a number in (0, 1)",
    "train.atol": _at_least(0.0), "train.kink_step": _within(0.0, 0.1),
    "train.engine": ("auto", "fused", "batched", "autograd"), "train.sync_every": _at_least(0),
    "train.checkpoint_every": _at_least(0), "train.snapshot_every": _at_least(0),
    "ensemble.seeds": _at_least(1),
    "hooks.kink_residual": SWITCH, "hooks.progress": SWITCH, "hooks.progress_seconds": _above(0.0),
    "kkt.restarts": _at_least(1), "kkt.tol": _above(0.0), "kkt.max_iterations": _at_least(1),
    "kkt.kink_tol": _above(0.0), "kkt.rank_one_tol": _above(0.0),
    "flow.rtol": _within(1e-15, 0.1), "flow.direction_tol": _within(1e-15, 0.1),
    "flow.stall_tol": _within(0.0, 0.1), "flow.max_norm": _at_least(0.0), "flow.max_steps": _at_least(1),
    "flow.max_time": _at_least(0.0), "flow.record_every": _at_least(1),
    "launcher.slurm.cpus_per_task": _within(0, 100000),
    "launcher.slurm.extra": lambda s: "" if not s or s.startswith("-") else "sbatch options, '--name=value ...'",
}
REMOVED = {"flow.kink_step": "no flow.kink_step: p = 1 flows now locate every kink crossing; delete the key",
           "flow.atol": "no flow.atol: the flow's tolerance is flow.rtol alone"}

# yaml-cpp's readings of a scalar's text (convert<bool>, convert<int64_t> with the base read from a
# 0x or 0 prefix, convert<double> by a C++ stream), as ncflab's reader applies them.
BOOLS = {"y": True, "yes": True, "true": True, "on": True, "n": False, "no": False, "false": False, "off": False}
DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
INTEGER = re.compile(r"[+-]?(?:0[xX](?P<hex>[0-9a-fA-F]+)|0(?P<octal>[0-7]*)|[1-9][0-9]*)")


def as_bool(text):
    flexible = text.islower() or text.isupper() or (text[:1].isupper() and text[1:].islower())
    return BOOLS.get(text.lower()) if flexible else None


def as_double(text):
    number = float(text) if DECIMAL.fullmatch(text) else math.nan
    return number if math.isfinite(number) else None


def as_integer(text):
    match = INTEGER.fullmatch(text)
    if match:
        number = int(text, 16 if match["hex"] is not None else 8 if match["octal"] else 10)
        if -2**63 <= number < 2**63:
            return number
    number = as_double(text)  # ncflab takes integral numbers such as 1e5 (within 9e15)
    return int(number) if number is not None and number == int(number) and abs(number) <= 9.0e15 else None


def typed(default, value):
    """`value` (a YAML node: text, None, a list or a mapping) as a value of the default's type, or
    (None, what was expected)."""
    if isinstance(default, list):
        items = value if isinstance(value, list) else [value] if isinstance(value, str) else None
        numbers = None if items is None else [as_integer(v) if isinstance(v, str) else None for v in items]
        return (numbers, "") if numbers is not None and None not in numbers else (None, "a list of integers")
    readers = ((bool, as_bool, "true or false"), (int, as_integer, "an integer"),
               (float, as_double, "a finite number"), (str, lambda text: text, "a string"))
    read, expected = next((read, expected) for kind, read, expected in readers if isinstance(default, kind))
    result = read(value) if isinstance(value, str) else None
    return result, "" if result is not None else expected


def shown(value, quoted=True):
    """A YAML node as ncflab's messages show it: 'text', [a, b], {key: value}, nothing."""
    if isinstance(value, list):
        return "[" + ", ".join(shown(item, False) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {shown(item, False)}" for key, item in value.items()) + "}"
    return ("nothing" if quoted else "~") if value is None else f"'{value}'" if quoted else value


def yaml_problem(error):
    """(line or None, what PyYAML found wrong, on one line)."""
    mark = getattr(error, "problem_mark", None)
    parts = [getattr(error, "context", None), getattr(error, "problem", None)]
    problem = ", ".join(part for part in parts if part) or " ".join(str(error).split())
    return (mark.line + 1 if mark is not None else None), problem


def read_tree(base, tree, prefix, where):
    """The YAML mapping `tree` onto the defaults `base`, every key known, typed and in range."""
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if key not in base:
            if path in REMOVED:
                raise InputError(f"{where(path)}: {path}: expected {REMOVED[path]}, found a removed key")
            close = difflib.get_close_matches(str(key), list(base), n=1)
            hint = f" – did you mean '{close[0]}'?" if close else ""
            raise InputError(f"{where(path)}: {path}: expected a known key{hint}, found an unknown key")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise InputError(f"{where(path)}: {path}: expected a mapping of {path} keys, found {shown(value)}")
            read_tree(base[key], value, path + ".", where)
            continue
        rule = RULES.get(path)
        result, expected = typed(base[key], value)
        if result is not None and isinstance(rule, tuple):
            expected = "" if result in rule else f"one of {' | '.join(rule)}"
        elif result is not None and rule is not None:
            expected = rule(result)
        if expected:
            raise InputError(f"{where(path)}: {path}: expected {expected}, found {shown(value)}")
        base[key] = result


def apply_override(tree, item):
    """key.path=value into the YAML tree, as ncflab does it: before any key is read (so an override
    replaces a bad value of the file), a mapping merged into the section it names (Hydra). Returns
    the key path."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise InputError(f"command line: expected an override key.path=value, found '{item}'")
    parts = key.split(".")
    if "" in parts:
        raise InputError(f"command line: {key}: expected a dotted key path like train.step, found '{item}'")
    try:
        value = load_yaml(text)
    except yaml.YAMLError as e:
        raise InputError(f"override '{item}': {key}: {yaml_problem(e)[1]}")
    if value is None:
        raise InputError(f"override '{item}': {key}: expected a value after '=', found nothing")
    for part in parts[:-1]:
        if tree.get(part) is None:
            tree[part] = {}
        elif not isinstance(tree[part], dict):
            raise InputError(f"override '{item}': {key}: expected '{part}' to be a section, "
                             f"found {shown(tree[part])}")
        tree = tree[part]
    if isinstance(value, dict) and isinstance(tree.get(parts[-1]), dict):
        merge_into(tree[parts[-1]], value)
    else:
        tree[parts[-1]] = value
    return key


def merge_into(section, update):
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(section.get(key), dict):
            merge_into(section[key], value)
        else:
            section[key] = value


def load_config(path, overrides):
    try:
        with open(path, "rb") as f:  # bytes: PyYAML finds the encoding and refuses what is not UTF
            tree = load_yaml(f)
    except OSError as e:
        raise InputError(f"{path}: expected a readable YAML config file, found {e.strerror}")
    except yaml.YAMLError as e:
        line, problem = yaml_problem(e)
        raise InputError(f"{path}{f':{line}' if line else ''}: {problem}")
    if tree is None:
        raise InputError(f"{path}: expected a mapping of config keys, found an empty document")
    if not isinstance(tree, dict):
        raise InputError(f"{path}: expected a mapping of config keys, found {shown(tree)}")
    source = {apply_override(tree, item): item for item in overrides}  # key path → the override

    def where(key):  # the override that set `key` or one of its sections, else the file
        below = [item for set_key, item in source.items() if (key + ".").startswith(set_key + ".")
                 or set_key.startswith(key + ".")]
        return f"override '{below[-1]}'" if below else path

    config = copy.deepcopy(DEFAULTS)
    read_tree(config, tree, "", where)
    # As ncflab: a relative data path in the file is relative to the file's folder.
    data_path = config["data"]["path"]
    if data_path and not os.path.isabs(data_path):
        from_command_line = "data.path" in source or "data" in source
        base = os.getcwd() if from_command_line else os.path.dirname(os.path.abspath(path))
        config["data"]["path"] = os.path.normpath(os.path.join(base, data_path))
    check_config(path, config)
    if config["train"]["integrator"] != "gd":
        raise InputError(f"{path}: train.integrator: the PyTorch baseline runs gradient descent only "
                         f"(gd), got {config['train']['integrator']!r}")
    return config


def check_config(path, config):
    """ncflab's rules across keys (check_config in framework/src/experiment/config.cpp)."""
    data, model = config["data"], config["model"]
    if data["source"] == "csv" and not data["path"]:
        raise InputError(f"{path}: data.path: expected a CSV file path for data.source: csv, found none")
    if config["loss"] == "logistic" and data["source"] == "synthetic" and data["teacher"] != "random_signs" \
            and not data["sign_labels"]:
        raise InputError(f"{path}: data.sign_labels: expected true for loss: logistic (labels must be +1 or -1), "
                         f"found false")
    if model["kind"] == "single_layer" and len(model["widths"]) != 1:
        raise InputError(f"{path}: model.widths: expected exactly one hidden width [k] for model.kind: "
                         f"single_layer, found {model['widths']}")
    p, depth = model["activation"]["p"], len(model["widths"]) + 1
    total = p if model["kind"] == "single_layer" else 0  # L = sum over layers of p^(K-l)
    for layer in range(depth if model["kind"] == "feedforward" else 0):
        total += p ** layer
        if total > 1e15:
            break
    if total > 1e15:
        raise InputError(f"{path}: model: expected a total degree L = sum p^(K-l) below 1e15, "
                         f"found p = {p} with depth {depth}")
    # Gradients at w_0 scale like delta^(L-1): below the dtype's smallest normal nothing trains.
    smallest = 1.1754943508222875e-38 if config["dtype"] == "float32" else 2.2250738585072014e-308
    delta = config["init"]["scale"]
    if total > 1 and (total - 1) * math.log10(delta) < math.log10(smallest):
        raise InputError(f"{path}: init.scale: expected delta with delta^(L-1) above "
                         f"{config['dtype']}'s smallest normal number {smallest:.3g}, found {delta:g} "
                         f"with L = {total:g}")


def write_config(config, path):
    """The resolved config as config.yaml, keys in DEFAULTS' order (as ncflab writes it)."""
    with open(path, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
