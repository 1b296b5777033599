"""Which kind of directory DIR is, and main(argv): write DIR/report/ (figures and report.md).
report.py calls main once it has made sure matplotlib imports; exit codes as ncflab's.
"""
import os
import sys

from .common import EXIT_BAD_INPUT, BadInput
from .flow import report_flow
from .kkt import report_kkt
from .run import report_run
from .sweep import report_sweep


def kind_of(directory):
    """(kind, its report function) by the files DIR holds; (None, None) for none of the four."""
    if os.path.exists(os.path.join(directory, "sweep.csv")):
        return "sweep", report_sweep
    if any(os.path.exists(os.path.join(directory, name)) for name in ("metrics.csv", "summary.json")):
        return "run", report_run
    if os.path.exists(os.path.join(directory, "kkt.json")):
        return "kkt", report_kkt
    if os.path.exists(os.path.join(directory, "flow.json")):
        return "flow", report_flow
    return None, None


def main(argv):
    if len(argv) != 2 or argv[1].startswith("-"):
        print("usage: report.py DIR  (a run, sweep, kkt or flow directory of ncflab)", file=sys.stderr)
        return EXIT_BAD_INPUT
    directory = argv[1]
    if not os.path.isdir(directory):
        print(f"ncflab: error: {directory}: expected a directory ncflab wrote, found "
              f"{'a file' if os.path.exists(directory) else 'nothing'}", file=sys.stderr)
        return EXIT_BAD_INPUT
    kind, report = kind_of(directory)
    if kind is None:
        print(f"ncflab: error: {directory}: expected a run directory (metrics.csv, summary.json), "
              "a sweep (sweep.csv), kkt.json or flow.json, found none of them", file=sys.stderr)
        return EXIT_BAD_INPUT
    out_dir = os.path.join(directory, "report")
    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(out_dir):  # the previous report's figures
        if name.endswith(".png") or name == "report.md":
            os.remove(os.path.join(out_dir, name))
    try:
        lines, figures = report(directory, out_dir)
    except BadInput as error:
        print(f"ncflab: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    path = os.path.join(out_dir, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    count = len(figures.saved)
    print(f"report: {kind} report with {count} figure{'' if count == 1 else 's'}: wrote {path}")
    return 0
