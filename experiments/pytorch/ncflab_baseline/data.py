"""Data: a CSV file's features and label column (normalised as ncflab does), or a run's data.pt;
separate because synthetic data cannot be redrawn in PyTorch (LibTorch's generator differs).
"""
import math
import os
import re

import torch

from .config import InputError

# A cell's number as ncflab's reader (strtod) takes it, decimal only; NaN and infinity are refused.
DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def split_cells(line):
    """ncflab's cells of a line: split at every comma, blanks trimmed, one pair of double quotes dropped."""
    cells = [cell.strip(" \t\r\n") for cell in line.split(",")]
    return [cell[1:-1] if len(cell) >= 2 and cell[0] == cell[-1] == '"' else cell for cell in cells]


def read_csv_lines(path):
    """(line number, line) of each line that is not blank; UTF-8 (an Excel byte-order mark dropped)."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8-sig")
    except OSError as e:
        raise InputError(f"{path}: data.path: expected a readable CSV file, found {e.strerror}")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: expected a UTF-8 text CSV file, found byte {e.object[e.start]:#04x} "
                         f"at offset {e.start} (binary, compressed or UTF-16?)")
    return [(number, line) for number, line in enumerate(text.split("\n"), 1) if line.strip(" \t\r")]


def read_number(cell, where, column):
    number = float(cell) if DECIMAL.fullmatch(cell) else None
    if number is not None and math.isfinite(number):
        return number
    try:
        expected = "a finite number" if number is not None or not math.isfinite(float(cell)) else "a number"
    except ValueError:
        expected = "a number"
    raise InputError(f"{where}: column '{column}': expected {expected}, found {repr(cell) if cell else 'an empty cell'}")


def read_csv_data(path, label):
    """(inputs [n, d], labels [n]) of a CSV file, with ncflab's rules: the first non-blank line names
    the columns (at least two, none empty, each once), blank lines are skipped, every other row has one
    finite decimal number per column."""
    lines = read_csv_lines(path)
    if not lines:
        raise InputError(f"{path}: expected a header row of column names, found an empty file")
    header_line, header = lines[0][0], split_cells(lines[0][1])
    where = f"{path}:{header_line}"
    for j, name in enumerate(header):
        if not name:
            raise InputError(f"{where}: header column {j + 1}: expected a column name, found an empty cell")
    if len(header) < 2:
        raise InputError(f"{where}: header: expected at least two columns (features and a label), found 1 column")
    for j, name in enumerate(header):
        if name in header[:j]:  # data.label would pick one and the other would train as a feature
            raise InputError(f"{where}: header column {j + 1}: expected distinct column names, "
                             f"found '{name}' again (column {header.index(name) + 1} too)")
    if label and label not in header:
        raise InputError(f"{where}: data.label: expected a column named '{label}' (columns: {', '.join(header)})")
    column = header.index(label) if label else len(header) - 1
    table = []
    for number, line in lines[1:]:
        cells = split_cells(line)
        if len(cells) != len(header):
            raise InputError(f"{path}:{number}: row: expected {len(header)} cells like the header, "
                             f"found {len(cells)} cells")
        table.append([read_number(cell, f"{path}:{number}", name) for cell, name in zip(cells, header)])
    if not table:
        raise InputError(f"{path}: expected at least one data row, found only a header")
    table = torch.tensor(table, dtype=torch.float64)
    features = [j for j in range(len(header)) if j != column]
    return table[:, features].contiguous(), table[:, column].contiguous()


def normalize(inputs, how):
    if how == "standardize":
        centred = inputs - inputs.mean(0, keepdim=True)
        spread = centred.std(0, unbiased=False, keepdim=True)
        return centred / torch.where(spread > 0, spread, torch.ones_like(spread))
    if how == "sphere":
        norms = inputs.norm(dim=1, keepdim=True)
        if bool((norms == 0).any()):
            row = int((norms.squeeze(1) == 0).nonzero()[0]) + 1
            raise InputError(f"data.normalize: expected inputs without all-zero rows, found row {row} all zero")
        return inputs / norms
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
