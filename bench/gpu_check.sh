#!/usr/bin/env bash
# For a session lent a GPU, once, in about 8 minutes: the cuda-marked tests (≤ 200 s), then
# the GPU bench `python -m bench --device cuda` (≤ 270 s: it stops sampling at --budget 200 s
# and writes bench/results/gpu-bench-<stamp>.{md,json}); its per-kernel table is a section.
# Run from the repository root: bash bench/gpu_check.sh [python]
# The whole log goes to bench/results/gpu-<stamp>.md, and every file this run wrote into
# bench/results/ is also copied to $OUT when that is set (the device machine's way back).
# The device image has numba, numba-cuda and cupy-cuda13x already; nothing is downloaded.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python}
mkdir -p bench/results
STAMP=$(date +%Y%m%d-%H%M%S)
LOG=bench/results/gpu-$STAMP.md
touch "bench/results/.gpu-check-$STAMP"
{
  echo "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  echo '```'
  "$PY" -c "import cupy, numba_cuda; print('cupy', cupy.__version__, 'numba-cuda', numba_cuda.__version__)" 2>&1
  # every test file with a cuda mark (test_cuda_kernels, test_devices, test_strict_array, ...)
  mapfile -t CUDA_TESTS < <(grep -l "mark.cuda" tests/*.py)
  timeout 200 "$PY" -m pytest -p no:cacheprovider -m cuda -rs "${CUDA_TESTS[@]}" 2>&1 | tail -30
  echo '```'
  timeout 270 "$PY" -m bench --device cuda --budget 200 2>&1
  echo "python -m bench --device cuda: exit status $?"
} | tee "$LOG"
echo "written: $LOG"
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
  find bench/results -maxdepth 1 -type f -newer "bench/results/.gpu-check-$STAMP" \
    -exec cp {} "$OUT"/ \;
  cp "$LOG" "$OUT"/
  echo "copied to $OUT: $(ls "$OUT" | tr '\n' ' ')"
fi
rm -f "bench/results/.gpu-check-$STAMP"
