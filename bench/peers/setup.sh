#!/usr/bin/env bash
# Creates bench/peers/.venv with CPU-only PyTorch and JAX for the peer processor benchmarks.
# Needs network access to PyPI (and download.pytorch.org for the CPU torch wheel). Not run in CI.
#
#   bench/peers/setup.sh            # creates or updates the venv
#   PYTHON=python3.12 bench/peers/setup.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
venv="$here/.venv"

"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --upgrade pip
"$venv/bin/python" -m pip install numpy
# The CPU-only wheel (~200 MB) where PyTorch's own index is reachable; otherwise PyPI's default build, which
# pulls in its NVIDIA libraries (~3 GB) but runs on the CPU just the same.
"$venv/bin/python" -m pip install --retries 1 --timeout 20 torch --index-url https://download.pytorch.org/whl/cpu \
  || "$venv/bin/python" -m pip install torch
"$venv/bin/python" -m pip install "jax[cpu]" optax
"$venv/bin/python" - <<'PY'
import jax, numpy, optax, torch
print(f"numpy {numpy.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
      f"jax {jax.__version__} ({jax.devices()}), optax {optax.__version__}")
PY
