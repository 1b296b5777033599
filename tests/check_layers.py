#!/usr/bin/env python3
"""Checks that ncflab's folders are layers: a file in framework/{include/ncflab,src}/LAYER/
includes only ncflab headers of its own layer or of layers below it.

    python3 tests/check_layers.py [REPOSITORY_ROOT]

Exit 0 when every include runs downwards, 1 with one line per include that runs up.
"""
import os
import re
import sys

LAYERS = ["core", "model", "ncf", "train", "experiment", "cli"]  # bottom to top
INCLUDE = re.compile(r'^\s*#\s*include\s+"ncflab/([a-z_]+)/')


def layer_of(path, roots):
    for root in roots:
        relative = os.path.relpath(path, root)
        if not relative.startswith(".."):
            return relative.split(os.sep)[0]
    return None


def main(argv):
    repository = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    roots = [os.path.join(repository, "framework", "include", "ncflab"),
             os.path.join(repository, "framework", "src")]
    problems, files = [], 0
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in sorted(names):
                if not name.endswith((".h", ".cpp", ".h.in")):
                    continue
                path = os.path.join(folder, name)
                layer = layer_of(path, roots)
                if layer not in LAYERS:
                    problems.append(f"{path}: outside the layers {LAYERS}")
                    continue
                files += 1
                with open(path, encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        match = INCLUDE.match(line)
                        if not match:
                            continue
                        used = match.group(1)
                        if used not in LAYERS:
                            problems.append(f"{path}:{number}: includes unknown layer '{used}'")
                        elif LAYERS.index(used) > LAYERS.index(layer):
                            problems.append(f"{path}:{number}: {layer} includes {used} (a layer above it)")
    for problem in problems:
        print(problem)
    print(f"check_layers: {files} files, {len(problems)} includes running up")
    return 1 if problems or files == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
