#!/usr/bin/env bash
# Checks that every C++ source of ncflab is formatted as .clang-format says, with
# Debian 12's clang-format (14). `cmake/check-format.sh --fix` formats them in place.
# Exit 0 formatted, 1 not (the offending lines are printed), 77 no clang-format.
set -euo pipefail
cd "$(dirname "$0")/.."
format=$(command -v clang-format-14 || command -v clang-format || true)
if [ -z "$format" ]; then
  echo "check-format: skipped: no clang-format (apt-get install clang-format)"
  exit 77
fi
mapfile -t files < <(git ls-files --cached --others --exclude-standard 'framework/*.h' 'framework/*.cpp' 'tests/*.h' 'tests/*.cpp' 'experiments/*.cpp' 2>/dev/null ||
                     find framework tests experiments -name '*.h' -o -name '*.cpp')
if [ "${1:-}" = "--fix" ]; then
  "$format" -i "${files[@]}"
  exit 0
fi
if "$format" --dry-run --Werror "${files[@]}"; then
  echo "check-format: ${#files[@]} files formatted as .clang-format says ($("$format" --version))"
else
  echo "check-format: run cmake/check-format.sh --fix" >&2
  exit 1
fi
