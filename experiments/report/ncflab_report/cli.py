"""main(argv): read and check DIR's files (inputs.py), then write DIR/report/ (figures and
report.md). report.py calls it; exit codes as ncflab's: 0 done, 2 bad input, 1 failure.
"""
import importlib
import os
import sys

from .common import EXIT_BAD_INPUT, EXIT_FAILURE, BadInput
from .inputs import kind_of, read_inputs


def missing_matplotlib(reason):
    """The one line for a Python that cannot import matplotlib."""
    return (f"ncflab: error: {sys.executable} cannot import matplotlib ({reason}); "
            "install it with `apt-get install python3-matplotlib`")


def report_function(kind):
    """report_<kind> of the module that draws it; importing it imports matplotlib."""
    return getattr(importlib.import_module(f".{kind}", __package__), f"report_{kind}")


def main(argv):
    if len(argv) != 2 or argv[1].startswith("-"):
        print("usage: report.py DIR  (a run, sweep, kkt or flow directory of ncflab)", file=sys.stderr)
        return EXIT_BAD_INPUT
    directory = argv[1]
    if not os.path.isdir(directory):
        print(f"ncflab: error: {directory}: expected a directory ncflab wrote, found "
              f"{'a file' if os.path.exists(directory) else 'nothing'}", file=sys.stderr)
        return EXIT_BAD_INPUT
    kind = kind_of(directory)
    if kind is None:
        print(f"ncflab: error: {directory}: expected a run directory (metrics.csv, summary.json), "
              "a sweep (sweep.csv), kkt.json or flow.json, found none of them", file=sys.stderr)
        return EXIT_BAD_INPUT
    notes = []  # (path, text) of files read in part: warnings here and in report.md
    try:
        inputs = read_inputs(kind, directory, notes)
    except BadInput as error:  # before anything is written
        print(f"ncflab: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        report = report_function(kind)
    except ImportError as error:
        print(missing_matplotlib(error), file=sys.stderr)
        return EXIT_FAILURE
    out_dir = os.path.join(directory, "report")
    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(out_dir):  # the previous report's figures
        if name.endswith(".png") or name == "report.md":
            os.remove(os.path.join(out_dir, name))
    lines, figures = report(directory, out_dir, inputs, notes)
    for path, text in notes:
        print(f"ncflab: warning: {path}: {text}", file=sys.stderr)
    path = os.path.join(out_dir, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    count = len(figures.saved)
    print(f"report: {kind} report with {count} figure{'' if count == 1 else 's'}: wrote {path}")
    return 0
