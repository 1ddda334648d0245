#!/usr/bin/env bash
# For a session lent a GPU: the cuda-marked tests, then the GPU kernel timings.
# Run from the repository root: bash bench/gpu_check.sh [python]  (output: bench/results/)
# The device image has numba, numba-cuda and cupy-cuda13x already; nothing is downloaded.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python}
OUT=bench/results/gpu-$(date +%Y%m%d-%H%M%S).md
{
  echo "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  echo '```'
  "$PY" -c "import cupy, numba_cuda; print('cupy', cupy.__version__, 'numba-cuda', numba_cuda.__version__)" 2>&1
  timeout 300 "$PY" -m pytest -p no:cacheprovider -m cuda -rs tests/test_cuda_kernels.py tests/test_devices.py 2>&1 | tail -30
  echo '```'
  if "$PY" -m bench --help 2>/dev/null | grep -q -- "--device"; then
    timeout 240 "$PY" -m bench --device cuda 2>&1
  else
    for dt in float32 float64; do timeout 120 "$PY" -m bench.gpu --dtype "$dt" 2>&1; echo; done
  fi
} | tee "$OUT"
echo "written: $OUT"
