"""Reading what ncflab wrote (JSON, CSV, config.yaml, overrides.txt) and writing Markdown tables.
Shared by every report kind and by experiments/paper/reproduce.py, so it needs no matplotlib.
"""
import csv
import io
import json
import math
import os

from .shapes import RUN_SUMMARY, problem

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


class BadInput(Exception):
    """What the directory holds is not what a report needs: exit code 2."""


# ---------------------------------------------------------------- reading files
#
# A file that is not what ncflab writes is refused with one line (BadInput: exit 2). A CSV file
# cut short (a run killed mid-row, a file copied while written) is read up to its last complete
# row; the reader adds a note to `notes`, a list of (path, text) that the report shows as a
# warning on stderr and in report.md.

METRICS_COLUMNS = ("member", "step", "time", "rescaled_time", "loss", "norm", "norm_over_delta")


def read_text(path, what):
    """The whole of a text file ncflab wrote (`what` names it in messages); "" when empty."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return f.read()
    except OSError as error:
        raise BadInput(f"{path}: expected a readable {what} file, found an error: "
                       f"{error.strerror or error}")
    except UnicodeDecodeError as error:
        raise BadInput(f"{path}: expected {what} text, found bytes that are not UTF-8 "
                       f"(at byte {error.start})")


def read_json(path, shape=None):
    """A JSON file ncflab wrote, with the shape `shape` (shapes.py) where given."""
    text = read_text(path, "JSON")
    if not text.strip():
        raise BadInput(f"{path}: expected JSON, found an empty file")
    try:
        value = json.loads(text)
    except ValueError as error:  # json.JSONDecodeError
        # Cut short (a copy made while it was written): an object or a list begun, the error
        # on the last line, which does not close one as ncflab's files end.
        rest = text[getattr(error, "pos", 0):].rstrip()
        cut = (text.lstrip().startswith(("{", "[")) and "\n" not in rest
               and not rest.endswith(("}", "]")))
        where = f":{error.lineno}" if hasattr(error, "lineno") else ""
        what = "JSON cut short" if cut else "text that is not JSON"
        raise BadInput(f"{path}{where}: expected JSON, found {what} "
                       f"({getattr(error, 'msg', error)}, column {getattr(error, 'colno', '?')})")
    message = problem(path, value, shape) if shape is not None else None
    if message:
        raise BadInput(message)
    return value


def parse_row(header, row, numeric):
    """(the row's cells, as floats where `numeric`; what is wrong with it, or None)."""
    if len(row) != len(header):
        return row, f"expected {len(header)} cells like the header, found {len(row)}"
    if not numeric:
        return row, None
    values = []
    for name, cell in zip(header, row):
        try:
            values.append(float(cell))
        except ValueError:
            return row, f"{name}: expected a number, found '{cell[:40]}'"
    return values, None


def read_csv(path, what, columns=(), numeric=True, notes=None, allow_empty=False):
    """(header, rows) of a CSV file ncflab wrote (`what` names its rows in messages): rows of
    floats where `numeric` (else of strings), the header holding `columns`. A bad header, a bad
    line before the last, or no rows at all (unless `allow_empty`) is BadInput."""
    text = read_text(path, "CSV")
    if not text.strip():
        raise BadInput(f"{path}: expected a header and rows of {what}, found an empty file")
    reader = csv.reader(io.StringIO(text))
    lines = []  # (line number, cells) without blank lines
    try:
        for row in reader:
            if row:
                lines.append((reader.line_num, row))
    except csv.Error as error:
        raise BadInput(f"{path}:{reader.line_num}: expected CSV text, found {error}")
    cut = not text.endswith("\n")
    (_, header), body = lines[0], lines[1:]
    if cut and not body:
        raise BadInput(f"{path}: expected a header and rows of {what}, found only a cut header line")
    missing = [name for name in columns if name not in header]
    if missing or len(set(header)) != len(header):
        expected = f"the columns {', '.join(columns)}" if missing else "each column once"
        raise BadInput(f"{path}:1: expected {expected}, found '{','.join(header)[:120]}'")
    rows = complete_rows(path, what, header, body, cut, numeric, notes, allow_empty)
    if not rows and not allow_empty:
        raise BadInput(f"{path}: expected rows of {what} under the header, found only the header")
    return header, rows


def complete_rows(path, what, header, body, cut, numeric, notes, allow_empty):
    """The rows of `body` (line number, cells) up to the last complete one. The last line may be
    cut (the file ends without a newline: a run killed mid-row, a copy made while it was
    written) or unusable: it is left out with a note in `notes`. A bad line before it is not."""
    rows = []
    for index, (number, row) in enumerate(body):
        row, bad = parse_row(header, row, numeric)
        if index == len(body) - 1 and (bad or cut):
            if not rows and not allow_empty:
                raise BadInput(f"{path}: expected rows of {what}, found only a "
                               f"{'cut' if cut else 'broken'} line {number} under the header")
            if notes is not None:
                last = "last line cut" if cut else f"last line {number} unusable: {bad}"
                kept = f"{len(rows)} row{'' if len(rows) == 1 else 's'}"
                notes.append((path, f"truncated after {kept} ({last})"))
            break
        if bad:
            raise BadInput(f"{path}:{number}: {bad}")
        rows.append(row)
    return rows


def read_metrics(path, notes=None, columns=METRICS_COLUMNS, what="metrics", allow_empty=False):
    """metrics.csv (or the flow's flow_trajectory.csv) → {member: {column: [values]}} (members in
    file order; no member column: 0). Refuses what ncflab does not write (BadInput); a cut last
    line is left out with a note (see read_csv)."""
    header, rows = read_csv(path, what, columns, numeric=True, notes=notes, allow_empty=allow_empty)
    members = {}
    has_member = "member" in header
    for values in rows:
        member = values[header.index("member")] if has_member else 0
        if not (math.isfinite(member) and member >= 0 and member == int(member)):
            raise BadInput(f"{path}: member: expected a member index 0, 1, ..., found '{member:g}'")
        columns_of = members.setdefault(int(member), {})
        for key, value in zip(header, values):
            columns_of.setdefault(key, []).append(value)
    return members


def read_run_files(run_dir, notes=None, in_sweep=False):
    """(summary.json, metrics.csv) of a run: {"status": "unfinished"} and {} where missing.
    A metrics.csv without rows is refused unless the run failed, or is a sweep's point that has
    not finished (no summary.json yet)."""
    summary_path = os.path.join(run_dir, "summary.json")
    has_summary = os.path.exists(summary_path)
    summary = read_json(summary_path, RUN_SUMMARY) if has_summary else {"status": "unfinished"}
    metrics_path = os.path.join(run_dir, "metrics.csv")
    allow_empty = summary["status"] == "failed" or (in_sweep and not has_summary)
    metrics = (read_metrics(metrics_path, notes, allow_empty=allow_empty)
               if os.path.exists(metrics_path) else {})
    return summary, metrics


def notes_markdown(notes, directory):
    """report.md's warnings, one per note: the files read only in part."""
    lines = []
    for path, text in notes:
        name = os.path.relpath(path, directory)
        lines += [f"> **Warning:** `{name}` {md(text)}: this report uses its complete rows only.", ""]
    return lines


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
        with open(path, errors="replace") as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key:
                    overrides[key] = value
    return overrides


def config_name(directory):
    """The `name:` of config.yaml (a plain top-level line), or the directory's name."""
    path = os.path.join(directory, "config.yaml")
    if os.path.exists(path):
        with open(path, errors="replace") as f:
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
