"""What the GPU tests share: whether a real device is here, and running a test file again
under numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM`` must be set before numba is
imported, so the simulated tests get a pytest process of their own).

    >>> isinstance(gpu_present(), bool)
    True
"""

import importlib.util
import os
import subprocess
import sys
import time

import pytest

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
HAVE_NUMBA_CUDA = importlib.util.find_spec("numba.cuda") is not None and \
    importlib.util.find_spec("cuda") is not None  # numba-cuda needs cuda-bindings


def gpu_present():
    """CuPy with at least one CUDA device (never under the simulator)."""
    if SIM or importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver, no device: CuPy raises its CUDA runtime errors
        return False


needs_gpu = pytest.mark.skipif(not gpu_present(), reason="needs CuPy and a CUDA device")
needs_cuda_pkg = pytest.mark.skipif(not HAVE_NUMBA_CUDA,
                                    reason="numba-cuda not installed (pip install numba-cuda)")
sim = pytest.mark.skipif(not SIM, reason="runs in the simulator process "
                         "(test_under_the_cuda_simulator)")


def run_under_simulator(path, timeout=900):
    """pytest on ``path`` in a new process with the simulator on; asserts it passed."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                          "-m", "not cuda", path], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(path))),
                         timeout=timeout)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    assert " passed" in out and "failed" not in out, out[-3000:]
    print(f"simulator process: {time.perf_counter() - t0:.1f} s; {out.strip().splitlines()[-1]}")
