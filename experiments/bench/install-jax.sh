#!/usr/bin/env bash
# Installs JAX (CPU) into a venv, for bench.py's JAX anchor (jax_gd.py):
#
#   experiments/bench/install-jax.sh [DIR]     (default .deps/jax; a quick no-op when done)
#
# DIR/bin/python then has jax, jaxlib and numpy at the pinned versions below
# (NCFLAB_JAX_VERSION overrides jax's and jaxlib's; NCFLAB_JAX_PYTHON the Python to use).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-.deps/jax}
version=${NCFLAB_JAX_VERSION:-0.10.2}
numpy_version=${NCFLAB_JAX_NUMPY_VERSION:-2.4.6}

if [ -x "$dir/bin/python" ] &&
   "$dir/bin/python" -c "import sys; from importlib.metadata import version as v; import numpy
sys.exit(v('jax') != '$version' or v('jaxlib') != '$version')" 2>/dev/null; then
  exit 0
fi

python=${NCFLAB_JAX_PYTHON:-python3}
if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c 'import ensurepip' 2>/dev/null; then
  # Debian's python3 keeps venv and ensurepip in a package of their own.
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "ncflab: installing python3-venv" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
started=$(date +%s)
rm -rf "$dir"
"$python" -m venv "$dir"
echo "ncflab: installing jax[cpu] $version into $dir" >&2
"$dir/bin/python" -m pip install -q --disable-pip-version-check "jax[cpu]==$version" "numpy==$numpy_version"
if ! "$dir/bin/python" -c 'import jax, jax.numpy as jnp; jnp.zeros(1).block_until_ready()' >/dev/null; then
  echo "ncflab: jax $version does not load from $dir" >&2
  exit 1
fi
echo "ncflab: jax $version in $dir ($(du -sh "$dir" | cut -f1), $(($(date +%s) - started)) s)" >&2
