"""Reading what ncflab wrote (JSON, CSV, config.yaml, overrides.txt) and writing Markdown tables.
Shared by every report kind and by experiments/paper/reproduce.py, so it needs no matplotlib.
"""
import csv
import json
import math
import os

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


class BadInput(Exception):
    """What the directory holds is not what a report needs: exit code 2."""


# ---------------------------------------------------------------- reading files

def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise BadInput(f"{path}: expected a JSON file ncflab wrote, found: {error}")


def to_float(text):
    """A CSV cell as a float: empty and unparsable cells are nan."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def read_metrics(path):
    """metrics.csv → {member: {column: [values]}} (members in file order; no member column: 0)."""
    members = {}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                member = int(to_float(row.get("member", 0)))
                columns = members.setdefault(member, {})
                for key, value in row.items():
                    if key is not None:
                        columns.setdefault(key, []).append(to_float(value))
    except OSError as error:
        raise BadInput(f"{path}: expected metrics.csv of a run, found: {error}")
    return members


def read_run_files(run_dir):
    """(summary.json, metrics.csv) of a run: {"status": "unfinished"} and {} where missing."""
    summary_path = os.path.join(run_dir, "summary.json")
    summary = read_json(summary_path) if os.path.exists(summary_path) else {"status": "unfinished"}
    metrics_path = os.path.join(run_dir, "metrics.csv")
    metrics = read_metrics(metrics_path) if os.path.exists(metrics_path) else {}
    return summary, metrics


def escape_radius(run_dir):
    """train.escape_radius from the run's resolved config.yaml (None when unreadable)."""
    try:
        with open(os.path.join(run_dir, "config.yaml")) as f:
            section = None
            for line in f:
                if line and not line[0].isspace():
                    section = line.split(":")[0].strip()
                elif section == "train" and line.strip().startswith("escape_radius:"):
                    return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def read_overrides(run_dir):
    """overrides.txt → {key: value} (the last assignment of a key wins, as in ncflab)."""
    overrides = {}
    path = os.path.join(run_dir, "overrides.txt")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key:
                    overrides[key] = value
    return overrides


def config_name(directory):
    """The `name:` of config.yaml (a plain top-level line), or the directory's name."""
    path = os.path.join(directory, "config.yaml")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.startswith("name:"):
                    return line.split(":", 1)[1].strip().strip("'\"")
    return os.path.basename(os.path.abspath(directory))


def get(tree, path, default=None):
    """tree["a"]["b"] for path "a.b", or default where any part is missing or null."""
    node = tree
    for part in path.split("."):
        if not isinstance(node, dict) or node.get(part) is None:
            return default
        node = node[part]
    return node


def run_members(summary):
    """The per-member summaries: `members` for an ensemble, else the summary itself."""
    return summary.get("members") or [summary]


def finite(values):
    return [v for v in values if v is not None and math.isfinite(v)]


def positive(values):
    """Values for a log axis: non-positive ones become nan (a gap in the line)."""
    return [v if v is not None and v > 0 else math.nan for v in values]


# ---------------------------------------------------------------- formatting

def num(value, digits=6):
    """A number for a Markdown table: integers as they are, floats to `digits` significant."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}g}"
    return md(str(value))


def md(text):
    """Text for Markdown: T* must not start emphasis, | must not end a table cell."""
    return text.replace("*", "\\*").replace("|", "\\|")


def table(header, rows, align=None):
    """A Markdown table; numbers right-aligned."""
    align = align or ["---:"] * len(header)
    lines = ["| " + " | ".join(md(cell) for cell in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(num(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def facts_table(facts):
    """A two-column table of (what, value), leaving out the values that are None."""
    return table(["", "value"], [(k, v) for k, v in facts if v is not None], ["---", "---:"])
