"""dg.device_put / dg.device_get: pytrees moved between host and device.

Without a GPU the device side is played by a stand-in ``cupy`` module whose arrays are
``StrictArray`` (tests/strict_array.py); the ``cuda``-marked test uses CuPy itself.
"""

import sys
import types

import numpy as np
import pytest
from cuda_helpers import needs_gpu
from strict_array import StrictArray

import dualgrad as dg
from dualgrad.backend import cuda as C


def _fake_cupy(devices=1):
    cp = types.ModuleType("cupy")
    cp.ndarray = StrictArray
    cp.asarray = lambda a: a if isinstance(a, StrictArray) else StrictArray(np.asarray(a))
    cp.asnumpy = lambda a: a.get()
    cp.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDeviceCount=lambda: devices))
    return cp


@pytest.fixture
def cupy_stand_in(monkeypatch):
    cp = _fake_cupy()
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setitem(C._state, "xp", None)
    return cp


def test_device_put_and_get_round_trip(cupy_stand_in):
    tree = {"w": np.arange(6.0).reshape(2, 3), "b": (np.float32(0.5), 2.0), "name": "layer"}
    dev = dg.device_put(tree, "cuda")
    assert isinstance(dev["w"], StrictArray) and isinstance(dev["b"][0], StrictArray)
    assert dev["b"][1].shape == () and dev["name"] == "layer"
    back = dg.device_get(dev)
    np.testing.assert_array_equal(back["w"], tree["w"])
    assert back["b"][0].dtype == np.float32 and back["b"][0] == 0.5
    assert dg.device_put(dev, "cpu")["w"].__class__ is np.ndarray


def test_host_trees_pass_through_device_get():
    tree = [np.ones(2), 3.0, None]
    back = dg.device_get(tree)
    assert back[0] is tree[0] and back[1] == 3.0 and back[2] is None


def test_unknown_device():
    with pytest.raises(ValueError, match=r"device must be one of \('cpu', 'cuda'\), got 'tpu'"):
        dg.device_put(np.ones(2), "tpu")


def test_missing_cupy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setitem(C._state, "xp", None)
    with pytest.raises(ImportError, match=r'pip install "dualgrad\[cuda\]"'):
        dg.device_put(np.ones(2), "cuda")


def test_no_device(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(devices=0))
    monkeypatch.setitem(C._state, "xp", None)
    with pytest.raises(RuntimeError, match="finds no CUDA device"):
        dg.device_put(np.ones(2), "cuda")


@pytest.mark.cuda
@needs_gpu
def test_round_trip_on_a_real_gpu():
    import cupy
    x = {"a": np.linspace(0, 1, 5)}
    dev = dg.device_put(x, "cuda")
    assert isinstance(dev["a"], cupy.ndarray)
    np.testing.assert_array_equal(dg.device_get(dev)["a"], x["a"])
