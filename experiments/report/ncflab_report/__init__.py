"""ncflab_report: the figures and report.md of `ncflab report`, one module per directory kind.
report.py (beside this folder) is the entry point; main lives in cli.py, kind_of in inputs.py.

Importing the package loads nothing heavy: common.py, shapes.py and inputs.py read and check
ncflab's files without matplotlib (experiments/paper/reproduce.py uses common.py), so bad input
is refused before matplotlib loads; plotting.py and the report modules need matplotlib.
"""
