"""Config: ncflab's keys and defaults, the YAML file and key.path=value overrides merged onto them;
kept apart so the baseline resolves (and writes) a config exactly as `ncflab run` does, types included.
"""
import copy
import difflib
import os
import sys

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("baseline: PyYAML is missing (Debian: apt-get install python3-yaml)")


class InputError(Exception):
    """Bad config, data or arguments: exit code 2."""


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key twice in one mapping (PyYAML keeps the last, yaml-cpp
    the first: ncflab refuses, and so does the baseline)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"'{key}' again (first at line {seen[key]})", key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml(stream):
    """The one YAML document of `stream`, each key once per mapping."""
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


def merge(base, update, prefix, where):
    for key, value in update.items():
        path = f"{prefix}{key}"
        if key not in base:
            close = difflib.get_close_matches(key, list(base), n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise InputError(f"{where}: unknown key '{path}'{hint}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise InputError(f"{where}: key '{path}' expects a mapping, got {value!r}")
            merge(base[key], value, path + ".", where)
        else:
            base[key] = typed_like(base[key], value, path, where)


def typed_like(default, value, path, where):
    """`value` as the default's type. YAML 1.1 (PyYAML) reads 1.0e4 as a string; ncflab's
    yaml-cpp reads it as a number, so numbers are parsed here."""
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise ValueError
        if isinstance(default, int):
            number = float(value)
            if number != int(number):
                raise ValueError
            return int(number)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, list):
            if not isinstance(value, list):
                # As ncflab: a number for a list of integers is that one item (model.widths=20: [20]).
                if not is_integer_list(default) or isinstance(value, (bool, dict, type(None))):
                    raise ValueError
                value = [value]
            return [typed_like(default[0], v, path, where) for v in value]
        # Strings (and switches such as hooks.progress: true|false|auto).
        return str(value).lower() if isinstance(value, bool) else str(value)
    except (TypeError, ValueError):
        kind = type(default).__name__
        raise InputError(f"{where}: key '{path}' expects {kind}, got {value!r}") from None


def is_integer_list(default):
    return all(isinstance(item, int) and not isinstance(item, bool) for item in default)


def load_config(path, overrides):
    try:
        with open(path) as f:
            text = load_yaml(f) or {}
    except OSError as e:
        raise InputError(f"{path}: cannot read the config ({e.strerror})")
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML ({e})")
    config = copy.deepcopy(DEFAULTS)
    merge(config, text, "", path)
    data_path_from_file = bool(config["data"]["path"])
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"override '{item}': expected key.path=value")
        try:
            nested = load_yaml(value) if value else ""
        except yaml.YAMLError as e:
            raise InputError(f"override '{item}': not a valid YAML value ({e})")
        for part in reversed(key.split(".")):
            nested = {part: nested}
        merge(config, nested, "", f"override '{item}'")
        if key in ("data.path", "data"):
            data_path_from_file = False
    # As ncflab: a relative data path in the file is relative to the file's folder.
    data_path = config["data"]["path"]
    if data_path and not os.path.isabs(data_path):
        base = os.path.dirname(os.path.abspath(path)) if data_path_from_file else os.getcwd()
        config["data"]["path"] = os.path.normpath(os.path.join(base, data_path))
    check_model(path, config["model"])
    if config["train"]["integrator"] != "gd":
        raise InputError(f"{path}: train.integrator: the PyTorch baseline runs gradient descent only "
                         f"(gd), got {config['train']['integrator']!r}")
    return config


def check_model(path, model):
    """ncflab's checks of the model keys the baseline relies on (`path`: the config, for messages)."""
    if model["kind"] not in ("feedforward", "single_layer"):
        raise InputError(f"{path}: model.kind must be feedforward or single_layer, got {model['kind']!r}")
    if model["kind"] == "single_layer" and len(model["widths"]) != 1:
        raise InputError(f"{path}: model.widths must be one hidden width [k] for model.kind: single_layer, "
                         f"got {model['widths']!r}")
    activation = model["activation"]
    if not (isinstance(activation["p"], int) and activation["p"] >= 1):
        raise InputError(f"{path}: model.activation.p must be an integer >= 1, got {activation['p']!r}")
    if not -1.0 <= float(activation["alpha"]) <= 1.0:
        raise InputError(f"{path}: model.activation.alpha must lie in [-1, 1], got {activation['alpha']!r}")


def write_config(config, path):
    """The resolved config as config.yaml, keys in DEFAULTS' order (as ncflab writes it)."""
    with open(path, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
