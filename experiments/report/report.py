#!/usr/bin/python3
"""Entry point of `ncflab report` (the C++ binary runs this path): figures and a Markdown
summary of what an ncflab command wrote, drawn by the ncflab_report package beside this file.

    /usr/bin/python3 experiments/report/report.py DIR      (or: ncflab report DIR)

DIR is a run directory (metrics.csv, summary.json), a sweep (sweep.csv and one run
directory per grid point), a `ncflab kkt` directory (kkt.json) or a `ncflab flow`
directory (flow.json). PNG figures and report.md go to DIR/report/. Exit codes as ncflab's:
0 done, 1 failure, 2 bad input: DIR is none of those, or a file in it is not what ncflab writes
(one line names the file; nothing is written). A CSV file cut short (a run killed mid-row) is
reported from its complete rows, with a warning on stderr and in report.md.
"""
import importlib.util
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ncflab_report.common import EXIT_FAILURE  # noqa: E402  (after the path)

if __name__ == "__main__":
    try:
        from ncflab_report.cli import main, missing_matplotlib  # (imports no matplotlib)

        # Said first, whatever DIR holds; matplotlib itself is imported once DIR's files are
        # read and checked, so bad input is refused without that wait.
        if importlib.util.find_spec("matplotlib") is None:
            print(missing_matplotlib("No module named 'matplotlib'"), file=sys.stderr)
            sys.exit(EXIT_FAILURE)
        sys.exit(main(sys.argv))
    except KeyboardInterrupt:  # Ctrl-C: as a shell reports SIGINT, without a traceback
        sys.exit(130)
    except Exception as error:  # one line, not a traceback, and exit code 1
        print(f"ncflab: failed: report.py: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
