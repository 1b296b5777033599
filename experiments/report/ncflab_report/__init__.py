"""ncflab_report: the figures and report.md of `ncflab report`, one module per directory kind.
report.py (beside this folder) is the entry point; kind_of and main live in cli.py.

Importing the package loads nothing heavy: common.py reads ncflab's files without matplotlib
(experiments/paper/reproduce.py uses it), plotting.py and the report modules need matplotlib.
"""
