#!/usr/bin/python3
"""`ncflab report` on damaged copies of real run, sweep, kkt and flow directories (issue 14).

    python3 tests/report_faults.py NCFLAB

A file that is not JSON, JSON of the wrong shape, or a CSV file without rows is bad input: exit
2 and one line on stderr naming the file, never a traceback. A CSV file cut short is reported from
its complete rows, with one warning line on stderr and a warning in report.md.

A few cases go through `ncflab report` (the exit code and stderr as the binary passes them on);
the rest call report.py's main in this process, which saves a second of start-up each, and the
variants of a cut CSV file only read the directory (inputs.py), as the report does before drawing.
Runs under /usr/bin/python3 when this Python has no matplotlib; exit 77 (skipped) when neither has.
"""
import contextlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
QUICKSTART = os.path.join(ROOT, "experiments", "quickstart.yaml")
REPORT = os.path.join(ROOT, "experiments", "report")
# Small and quick: the reference flow at a looser tolerance is 1 s faster and still blows up.
SMALL = ["data.n=20", "model.widths=[4]", "hooks.progress=false", "flow.rtol=1e-8"]
DEBIAN_PYTHON = "/usr/bin/python3"

if importlib.util.find_spec("matplotlib") is None:
    if sys.executable != DEBIAN_PYTHON and os.path.exists(DEBIAN_PYTHON) and subprocess.run(
            [DEBIAN_PYTHON, "-c", "import matplotlib"], stderr=subprocess.DEVNULL).returncode == 0:
        os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON, os.path.abspath(__file__), *sys.argv[1:]])
    print(f"skipped: {sys.executable} cannot import matplotlib (Debian: apt-get install python3-matplotlib)")
    sys.exit(77)

sys.path.insert(0, REPORT)
from ncflab_report.cli import main as report_main  # noqa: E402  (after the path)
from ncflab_report.inputs import kind_of, read_inputs  # noqa: E402


# ---------------------------------------------------------------- damage

def write(path, text):
    with open(path, "w" if isinstance(text, str) else "wb") as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read()


def edit_json(name, change):
    """A damage that loads the file's JSON, lets `change` edit it and writes it back."""
    def damage(directory):
        path = os.path.join(directory, name)
        with open(path) as f:
            value = json.load(f)
        change(value)
        write(path, json.dumps(value))
    return damage


def replace(name, text):
    return lambda directory: write(os.path.join(directory, name), text)


def cut_json(name):
    """The first half of the file, as a copy made while it was written would hold."""
    def damage(directory):
        path = os.path.join(directory, name)
        text = read(path)
        write(path, text[:len(text) // 2])
    return damage


def csv_lines(directory, name):
    return read(os.path.join(directory, name)).splitlines(keepends=True)


def cut_csv(name, keep_rows, keep_chars=None):
    """Header, `keep_rows` rows, then the first `keep_chars` characters of the next row (half of
    it by default): a file copied, or a run killed, while a row was written."""
    def damage(directory):
        lines = csv_lines(directory, name)
        assert len(lines) > keep_rows + 1, f"{name} has {len(lines) - 1} rows"
        cut = lines[1 + keep_rows]
        write(os.path.join(directory, name),
              "".join(lines[:1 + keep_rows]) + cut[:len(cut) // 2 if keep_chars is None else keep_chars])
    return damage


def set_row(name, index, change):
    """Row `index` (1 = the first under the header) of a CSV file rewritten by `change(cells)`."""
    def damage(directory):
        lines = csv_lines(directory, name)
        cells = lines[index].rstrip("\n").split(",")
        lines[index] = ",".join(change(cells)) + "\n"
        write(os.path.join(directory, name), "".join(lines))
    return damage


def keep_lines(name, count):
    return lambda directory: write(os.path.join(directory, name),
                                   "".join(csv_lines(directory, name)[:count]))


def append_line(name, text):
    return lambda directory: write(os.path.join(directory, name),
                                   "".join(csv_lines(directory, name)) + text)


def append_changed_copy(name, change):
    """The last row again, rewritten by `change(cells)`, as a new last line."""
    def damage(directory):
        lines = csv_lines(directory, name)
        cells = lines[-1].rstrip("\n").split(",")
        write(os.path.join(directory, name), "".join(lines) + ",".join(change(cells)) + "\n")
    return damage


def drop_final_newline(name):
    return lambda directory: write(os.path.join(directory, name),
                                   "".join(csv_lines(directory, name)).rstrip("\n"))


def delete_key(key):
    def change(value):
        del value[key]
    return change


def set_key(path, new):
    """Sets value[a][b]... (path "a.b", list indices as numbers) to `new`."""
    def change(value):
        node = value
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        for part in parents:
            node = node[part]
        node[last] = new
    return change


# ---------------------------------------------------------------- the cases

POINT = "001_init.scale=0.01"  # the sweep's second point
FIRST = "000_init.scale=0.03"
VIA_NCFLAB = "ncflab"  # the case goes through `ncflab report`; else report.py's main here

# (how, source directory, damage, file the one error line names, fragment of that line)
BAD = [
    (VIA_NCFLAB, "run", replace("summary.json", "[1, 2]\n"),
     "summary.json", ": expected a JSON object (a run's summary), found a list of 2 items"),
    ("", "run", replace("summary.json", "42\n"),
     "summary.json", ": expected a JSON object (a run's summary), found the number 42"),
    ("", "run", replace("summary.json", '"escaped"\n'), "summary.json", ": expected a JSON object"),
    ("", "run", edit_json("summary.json", delete_key("status")),
     "summary.json", ": status: expected a string, found no such key"),
    ("", "run", edit_json("summary.json", delete_key("homogeneity")),
     "summary.json", ": homogeneity: expected an object"),
    ("", "run", edit_json("summary.json", delete_key("final")),
     "summary.json", ": final: expected an object"),
    ("", "run", edit_json("summary.json", set_key("final.loss", "abc")),
     "summary.json", ": final.loss: expected a number or null, found the string \"abc\""),
    ("", "run", edit_json("summary.json", set_key("layers", {})),
     "summary.json", ": layers: expected a list of layer objects, found an empty object"),
    ("", "run", edit_json("summary.json", set_key("layers.0", 3)),
     "summary.json", ": layers[0]: expected an object per layer, found the number 3"),
    ("", "run", edit_json("summary.json", set_key("homogeneity.total", "3")),
     "summary.json", ": homogeneity.total: expected an integer"),
    ("", "run", edit_json("summary.json", set_key("status", None)),
     "summary.json", ": status: expected a string, found null"),
    ("", "run", replace("summary.json", "status: escaped\n"),
     "summary.json", ":1: expected JSON, found text that is not JSON"),
    ("", "run", cut_json("summary.json"), "summary.json", ": expected JSON, found JSON cut short"),
    ("", "run", replace("summary.json", ""), "summary.json", ": expected JSON, found an empty file"),
    ("", "run", replace("metrics.csv", ""),
     "metrics.csv", ": expected a header and rows of metrics, found an empty file"),
    (VIA_NCFLAB, "run", keep_lines("metrics.csv", 1),
     "metrics.csv", ": expected rows of metrics under the header, found only the header"),
    ("", "run", cut_csv("metrics.csv", 0),
     "metrics.csv", ": expected rows of metrics, found only a cut line 2 under the header"),
    ("", "run", set_row("metrics.csv", 2, lambda cells: cells[:3]),
     "metrics.csv", ":3: expected {cells} cells like the header, found 3"),
    ("", "run", set_row("metrics.csv", 2, lambda cells: cells + ["1"]),
     "metrics.csv", ":3: expected {cells} cells like the header"),
    ("", "run", set_row("metrics.csv", 2, lambda cells: cells[:4] + ["abc"] + cells[5:]),
     "metrics.csv", ":3: loss: expected a number, found 'abc'"),
    ("", "run", set_row("metrics.csv", 2, lambda cells: ["0.5"] + cells[1:]),
     "metrics.csv", ": member: expected a member index"),
    ("", "run", set_row("metrics.csv", 0, lambda cells: ["member", "stp"] + cells[2:]),
     "metrics.csv", ":1: expected the columns member, step, time"),
    ("", "run", replace("metrics.csv", b"member,step\n\xff\xfe\x00\x01\n"),
     "metrics.csv", ": expected CSV text, found bytes that are not UTF-8"),
    ("", "kkt", replace("kkt.json", "[]\n"),
     "kkt.json", ": expected a JSON object (the kkt.json of `ncflab kkt`), found an empty list"),
    ("", "kkt", edit_json("kkt.json", delete_key("points")),
     "kkt.json", ": points: expected a list of KKT point objects, found no such key"),
    ("", "kkt", edit_json("kkt.json", set_key("points.0.ncf", "high")),
     "kkt.json", ": points[0].ncf: expected a number, found the string \"high\""),
    ("", "kkt", edit_json("kkt.json", set_key("points.0.layers.0.singular_values", [1.0, None])),
     "kkt.json", ": points[0].layers[0].singular_values[1]: expected a number, found null"),
    ("", "kkt", cut_json("kkt.json"), "kkt.json", ": expected JSON, found JSON cut short"),
    ("", "flow", edit_json("flow.json", delete_key("outcome")),
     "flow.json", ": outcome: expected a string, found no such key"),
    ("", "flow", edit_json("flow.json", set_key("blowup_time", "soon")),
     "flow.json", ": blowup_time: expected a number or null, found the string \"soon\""),
    ("", "flow", keep_lines("flow_trajectory.csv", 1),
     "flow_trajectory.csv",
     ": expected rows of the flow's trajectory under the header, found only the header"),
    ("", "sweep", keep_lines("sweep.csv", 1),
     "sweep.csv", ": expected rows of a sweep's runs under the header, found only the header"),
    ("", "sweep", replace("sweep.csv", "a,b\n1,2\n"),
     "sweep.csv", ":1: expected the columns run, directory, status"),
    ("", "sweep", replace(f"{POINT}/summary.json", "[]\n"),
     f"{POINT}/summary.json", ": expected a JSON object (a run's summary), found an empty list"),
    ("", "sweep", keep_lines(f"{POINT}/metrics.csv", 1),
     f"{POINT}/metrics.csv", ": expected rows of metrics under the header, found only the header"),
]

# Reported in full: (how, source directory, damages, [(file cut short, rows kept, how its last
# line is described)] in the order the report reads them, figures the report must still draw).
CUT = [
    (VIA_NCFLAB, "run", [cut_csv("metrics.csv", 3)], [("metrics.csv", 3, "last line cut")],
     ["norm.png", "layers.png"]),
    ("", "flow", [cut_csv("flow_trajectory.csv", 5)], [("flow_trajectory.csv", 5, "last line cut")],
     ["flow.png"]),
    ("", "sweep", [cut_csv("sweep.csv", 1), cut_csv(f"{FIRST}/metrics.csv", 2)],
     [("sweep.csv", 1, "last line cut"), (f"{FIRST}/metrics.csv", 2, "last line cut")], ["norm.png"]),
]

UNUSABLE = "last line {last_line} unusable: "
# Only read, as the report does before it draws: (source directory, damage, [(file, rows kept,
# last line)]); no damage: the intact directories, read without a note.
READ = [
    ("run", None, []),
    ("sweep", None, []),
    ("kkt", None, []),
    ("flow", None, []),
    ("run", cut_csv("metrics.csv", 1, keep_chars=9), [("metrics.csv", 1, "last line cut")]),
    ("run", cut_csv("metrics.csv", 2, keep_chars=2), [("metrics.csv", 2, "last line cut")]),
    ("run", drop_final_newline("metrics.csv"), [("metrics.csv", "{rows_less_one}", "last line cut")]),
    ("run", append_line("metrics.csv", "0,400,4\n"),
     [("metrics.csv", "{rows}", UNUSABLE + "expected {cells} cells like the header, found 3")]),
    ("run", append_line("metrics.csv", "0,400,4,0.0\x00\x00\x00"),  # a crash's zeros
     [("metrics.csv", "{rows}", "last line cut")]),
    ("run", append_changed_copy("metrics.csv", lambda cells: cells[:4] + ["8.4e"] + cells[5:]),
     [("metrics.csv", "{rows}", UNUSABLE + "loss: expected a number, found '8.4e'")]),
    ("sweep", cut_csv(f"{POINT}/metrics.csv", 1), [(f"{POINT}/metrics.csv", 1, "last line cut")]),
]


# ---------------------------------------------------------------- checking

def lines_of(text):
    return [line for line in text.splitlines() if line.strip()]


def via_ncflab(ncflab, directory):
    """(exit code, stderr lines) of `ncflab report DIR` with this Python."""
    done = subprocess.run([ncflab, "report", directory, "--python", sys.executable],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return done.returncode, lines_of(done.stderr)


def in_process(directory):
    """(exit code, stderr lines) of report.py's main here; an exception is a failure (report.py
    would print it as `ncflab: failed: ...` with exit code 1)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = report_main(["report.py", directory])
    except Exception as error:
        return f"an exception ({type(error).__name__}: {error})", lines_of(err.getvalue())
    return code, lines_of(err.getvalue())


def warning_text(rows, last):
    """What the warning says after the file's name (the same on stderr and in report.md)."""
    return f"truncated after {rows} row{'' if rows == 1 else 's'} ({last})"


def described(cuts):
    return ", ".join(f"{name} {warning_text(rows, last)}" for name, rows, last in cuts)


def check_bad(result, directory, name, fragment):
    code, lines = result
    expected = f"ncflab: error: {os.path.join(directory, name)}"
    if code != 2:
        return f"exit {code}, not 2; stderr {lines}"
    if len(lines) != 1 or not lines[0].startswith(expected) or fragment not in lines[0]:
        return f"stderr {lines}, expected one line '{expected}...{fragment}...'"
    if os.path.exists(os.path.join(directory, "report")):
        return "bad input, yet report/ was written"
    return None


def check_cut(result, directory, cuts, figures):
    code, lines = result
    warnings = [f"ncflab: warning: {os.path.join(directory, name)}: {warning_text(rows, last)}"
                for name, rows, last in cuts]
    if code != 0:
        return f"exit {code}, not 0; stderr {lines}"
    if lines != warnings:
        return f"stderr {lines}, expected {warnings}"
    markdown = read(os.path.join(directory, "report", "report.md"))
    for name, rows, last in cuts:
        note = f"> **Warning:** `{name}` {warning_text(rows, last)}"
        if note not in markdown:
            return f"report.md has no {note!r}:\n{markdown[:600]}"
    missing = [f for f in figures if not os.path.exists(os.path.join(directory, "report", f))]
    return f"no {', '.join(missing)} in report/" if missing else None


def check_read(directory, cuts):
    notes = []
    try:
        read_inputs(kind_of(directory), directory, notes)
    except Exception as error:
        return f"reading raised {type(error).__name__}: {error}"
    expected = [(os.path.join(directory, name), warning_text(rows, last)) for name, rows, last in cuts]
    return None if notes == expected else f"notes {notes}, expected {expected}"


# ---------------------------------------------------------------- running

def make_sources(ncflab, work):
    """One small real directory of each kind, made side by side: {kind: path}."""
    out = {kind: os.path.join(work, kind) for kind in ("run", "sweep", "kkt", "flow")}
    commands = {
        "run": ["run", QUICKSTART, *SMALL, "init.scale=0.01", "train.max_steps=300", "train.log_every=50"],
        "sweep": ["sweep", QUICKSTART, *SMALL, "init.scale=0.03,0.01", "train.max_steps=200",
                  "train.log_every=50"],
        "kkt": ["kkt", QUICKSTART, *SMALL, "kkt.restarts=2"],
        "flow": ["flow", QUICKSTART, *SMALL],
    }
    started = {kind: subprocess.Popen([ncflab, *args, "--out", out[kind]], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
               for kind, args in commands.items()}
    for kind, process in started.items():
        output = process.communicate()[0]
        if process.returncode != 0:
            sys.exit(f"FAILED: ncflab {' '.join(commands[kind])} exited {process.returncode}:\n{output}")
    return out


class Copies:
    """Damaged copies of the source directories, numbered in the order they are made."""

    def __init__(self, sources, work):
        self.sources, self.work, self.count = sources, work, 0

    def make(self, kind, *damages):
        directory = os.path.join(self.work, "cases", f"{self.count:02d}_{kind}")
        self.count += 1
        shutil.copytree(self.sources[kind], directory)
        for damage in damages:
            damage(directory)
        return directory


def sizes_of(run_dir):
    """What the cases' texts refer to: the run's metrics.csv cells per row and rows."""
    lines = csv_lines(run_dir, "metrics.csv")
    rows = len(lines) - 1
    return {"cells": len(lines[0].split(",")), "rows": rows, "rows_less_one": rows - 1,
            "last_line": rows + 2}


def fill(cuts, sizes):
    return [(name, int(str(rows).format(**sizes)), last.format(**sizes)) for name, rows, last in cuts]


def main():
    ncflab = os.path.abspath(sys.argv[1])
    begun = time.monotonic()
    with tempfile.TemporaryDirectory() as work:
        sources = make_sources(ncflab, work)
        sizes = sizes_of(sources["run"])
        copies = Copies(sources, work)
        checks = []  # (what, how, directory, check(result) -> problem)
        for how, kind, damage, name, fragment in BAD:
            fragment = fragment.format(**sizes)
            directory = copies.make(kind, damage)
            checks.append((f"{kind}: {name} ...{fragment}", how, directory,
                           lambda result, d=directory, n=name, f=fragment: check_bad(result, d, n, f)))
        for how, kind, damages, cuts, figures in CUT:
            cuts = fill(cuts, sizes)
            directory = copies.make(kind, *damages)
            checks.append((f"{kind}: {described(cuts)}", how, directory,
                           lambda result, d=directory, c=cuts, f=figures: check_cut(result, d, c, f)))
        for kind, damage, cuts in READ:
            cuts = fill(cuts, sizes)
            directory = copies.make(kind, *[damage] if damage else [])
            checks.append((f"{kind} read: {described(cuts) or 'intact'}",
                           "read", directory, lambda result, d=directory, c=cuts: check_read(d, c)))
        # `ncflab report` side by side with the in-process cases (one matplotlib at a time).
        with ThreadPoolExecutor(max_workers=4) as pool:
            started = {i: pool.submit(via_ncflab, ncflab, directory)
                       for i, (_, how, directory, _) in enumerate(checks) if how == VIA_NCFLAB}
            here = {i: in_process(directory)
                    for i, (_, how, directory, _) in enumerate(checks) if how == ""}
            results = [started[i].result() if i in started else here.get(i) for i in range(len(checks))]
        failures = [f"{what}{' (ncflab report)' if how == VIA_NCFLAB else ''}: {problem}"
                    for (what, how, _, check), result in zip(checks, results)
                    for problem in [check(result)] if problem]
    for failure in failures:
        print(f"FAILED: {failure}")
    print(f"report_faults: {len(checks) - len(failures)} of {len(checks)} cases passed "
          f"({time.monotonic() - begun:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
