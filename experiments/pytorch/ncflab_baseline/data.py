"""Data: a CSV file's features and label column (normalised as ncflab does), or a run's data.pt;
separate because synthetic data cannot be redrawn in PyTorch (LibTorch's generator differs).
"""
import csv
import os

import torch

from .config import InputError


def read_csv_data(path, label):
    try:
        with open(path, newline="") as f:
            rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except OSError as e:
        raise InputError(f"data.path: cannot read '{path}' ({e.strerror})")
    if len(rows) < 2:
        raise InputError(f"{path}: expected a header row and at least one data row")
    header = [cell.strip() for cell in rows[0]]
    for j, name in enumerate(header):
        if name in header[:j]:  # data.label would pick one and the other would train as a feature
            raise InputError(f"{path}: header column {j + 1}: '{name}' again (column {header.index(name) + 1} too)")
    column = len(header) - 1 if not label else header.index(label) if label in header else None
    if column is None:
        raise InputError(f"{path}: data.label '{label}' is not a column (columns: {', '.join(header)})")
    try:
        table = torch.tensor([[float(cell) for cell in row] for row in rows[1:]], dtype=torch.float64)
    except ValueError as e:
        raise InputError(f"{path}: a cell is not a number ({e})")
    features = [j for j in range(len(header)) if j != column]
    return table[:, features].contiguous(), table[:, column].contiguous()


def normalize(inputs, how):
    if how == "standardize":
        centred = inputs - inputs.mean(0, keepdim=True)
        spread = centred.std(0, unbiased=False, keepdim=True)
        return centred / torch.where(spread > 0, spread, torch.ones_like(spread))
    if how == "sphere":
        return inputs / inputs.norm(dim=1, keepdim=True)
    return inputs


def load_data(config, data_file, init_file):
    data = config["data"]
    if data["source"] == "csv":
        inputs, labels = read_csv_data(data["path"], data["label"])
        inputs = normalize(inputs, data["normalize"])
    else:
        if data_file is None and init_file is not None:
            beside = os.path.join(os.path.dirname(os.path.abspath(init_file)), "data.pt")
            data_file = beside if os.path.exists(beside) else None
        if data_file is None:
            raise InputError("data.source is synthetic: pass --data RUN_DIR/data.pt (or --init from a run "
                             "directory that has data.pt); LibTorch's generator is not PyTorch's")
        saved = torch.load(data_file, map_location="cpu")
        inputs, labels = saved["inputs"].to(torch.float64), saved["labels"].to(torch.float64)
    if config["loss"] == "logistic" and not bool(((labels == 1) | (labels == -1)).all()):
        raise InputError("loss: logistic needs labels in {-1, +1}")
    return inputs, labels
