"""Which kind of directory DIR is, and its files read and checked before anything is drawn:
bad input is refused (BadInput, exit 2) before matplotlib is even imported.
"""
import os

from .common import BadInput, read_csv, read_json, read_metrics, read_overrides, read_run_files
from .shapes import FLOW, KKT

TRAJECTORY_COLUMNS = ("member", "time", "norm", "ncf", "residual")


def kind_of(directory):
    """"run", "sweep", "kkt" or "flow" by the files DIR holds; None for none of the four."""
    if os.path.exists(os.path.join(directory, "sweep.csv")):
        return "sweep"
    if any(os.path.exists(os.path.join(directory, name)) for name in ("metrics.csv", "summary.json")):
        return "run"
    if os.path.exists(os.path.join(directory, "kkt.json")):
        return "kkt"
    if os.path.exists(os.path.join(directory, "flow.json")):
        return "flow"
    return None


def read_run(run_dir, notes):
    """(summary.json, metrics.csv) of a run directory (common.read_run_files)."""
    return read_run_files(run_dir, notes)


def read_sweep(sweep_dir, notes):
    """sweep.csv and its runs → (swept keys, [{"run", "directory", "name", "values": {key: text},
    "summary", "metrics"}, ...]); a point that has not finished may lack both files."""
    path = os.path.join(sweep_dir, "sweep.csv")
    header, rows = read_csv(path, "a sweep's runs", ("run", "directory", "status"), numeric=False,
                            notes=notes)
    if header[:2] != ["run", "directory"]:
        raise BadInput(f"{path}:1: expected a header 'run,directory,<swept keys>,status,...', "
                       f"found '{','.join(header)[:120]}'")
    keys = header[2:header.index("status")]
    runs = []
    for line, row in enumerate(rows, start=2):
        run_dir = os.path.join(sweep_dir, row[1])
        if not os.path.isdir(run_dir):
            raise BadInput(f"{path}:{line}: expected the run directory '{row[1]}', found none")
        # A swept value can hold commas ([4,4]); the run's overrides.txt holds it whole.
        overrides = read_overrides(run_dir)
        values = {key: overrides.get(key, row[2 + k]) for k, key in enumerate(keys)}
        summary, metrics = read_run_files(run_dir, notes, in_sweep=True)
        runs.append({"run": row[0], "directory": run_dir, "name": row[1], "values": values,
                     "summary": summary, "metrics": metrics})
    return keys, runs


def read_kkt(kkt_dir, notes):
    """kkt.json of `ncflab kkt`."""
    return read_json(os.path.join(kkt_dir, "kkt.json"), KKT)


def read_flow(flow_dir, notes):
    """(flow.json, flow_trajectory.csv as {member: {column: [values]}}, {} where missing)."""
    data = read_json(os.path.join(flow_dir, "flow.json"), FLOW)
    path = os.path.join(flow_dir, "flow_trajectory.csv")
    trajectory = (read_metrics(path, notes, TRAJECTORY_COLUMNS, "the flow's trajectory")
                  if os.path.exists(path) else {})
    return data, trajectory


READERS = {"run": read_run, "sweep": read_sweep, "kkt": read_kkt, "flow": read_flow}


def read_inputs(kind, directory, notes):
    """What the report of `kind` draws from, every file checked; notes on files read in part."""
    return READERS[kind](directory, notes)
