#!/usr/bin/python3
"""Entry point of `ncflab report` (the C++ binary runs this path): figures and a Markdown
summary of what an ncflab command wrote, drawn by the ncflab_report package beside this file.

    /usr/bin/python3 experiments/report/report.py DIR      (or: ncflab report DIR)

DIR is a run directory (metrics.csv, summary.json), a sweep (sweep.csv and one run
directory per grid point), a `ncflab kkt` directory (kkt.json) or a `ncflab flow`
directory (flow.json). PNG figures and report.md go to DIR/report/. Exit codes as
ncflab's: 0 done, 2 DIR is not one of those (or its files cannot be read), 1 failure.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ncflab_report.common import EXIT_FAILURE  # noqa: E402  (after the path)

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401  (what the package draws with)
except ImportError as error:
    print(f"ncflab: error: {sys.executable} cannot import matplotlib ({error}); "
          "install it with `apt-get install python3-matplotlib`", file=sys.stderr)
    sys.exit(EXIT_FAILURE)

from ncflab_report.cli import main  # noqa: E402  (needs matplotlib)

if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Exception as error:  # one line, not a traceback, and exit code 1
        print(f"ncflab: failed: report.py: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
