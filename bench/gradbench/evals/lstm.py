"""lstm: ADBench's LSTM loss (diagonal weights) over a character sequence, and its gradient.

Layer i has weights main[2i] and biases main[2i+1] (each forget, input, output
and change gates, b wide); extra holds the input weight, output weight and
output bias; state rows 2i, 2i+1 are layer i's hidden and cell state.  The
loss is −Σ_t Σ_j ygold_tj · (ypred_tj − log(2 + Σ_j exp ypred_tj)) / ((c−1)·b).

Evaluation order (the arithmetic is the reference's): layer i at time t needs
layer i−1 at time t and layer i at time t−1, so all layers advance together
along the anti-diagonal i + t = s ("wavefront"): each step is a few
operations on (layers, 4b) arrays rather than a few per layer.  The output
layer's hidden states are collected and the loss is evaluated once over the
whole sequence.  The sigmoid gates are computed as 0.5 + 0.5·tanh(z/2), so one
tanh serves all four gates.  The gradient is reverse mode over the whole loop.
"""

import numpy as np

import dualgrad as dg

from ..protocol import Function
from ._util import array, spread


def _gate_constants(b):
    """scale of the pre-activations, then slope and offset after the tanh."""
    half = np.full(3 * b, 0.5)
    scale = np.concatenate((half, np.ones(b)))
    slope = scale
    offset = np.concatenate((half, np.zeros(b)))
    return scale, slope, offset


def _concatenate_many(arrays, chunk=64):
    """np.concatenate in two levels: dualgrad's concatenate VJP costs O(N²) in N arrays."""
    if len(arrays) <= chunk:
        return np.concatenate(arrays)
    return np.concatenate([np.concatenate(arrays[i:i + chunk])
                           for i in range(0, len(arrays), chunk)])


def objective(main_params, extra_params, state, sequence):
    layers = state.shape[0] // 2
    c, b = sequence.shape
    steps = c - 1
    scale, slope, offset = _gate_constants(b)
    W = main_params[0::2] * scale                    # (layers, 4b)
    B = main_params[1::2] * scale
    X = sequence[:-1] * extra_params[0]              # layer 0's input at each time
    H = state[0::2]                                  # (layers, b) hidden
    C = state[1::2]                                  # (layers, b) cell
    zeros = np.zeros((1, b))
    outputs = []
    for s in range(steps + layers - 1):
        first = X[s][None, :] if s < steps else zeros
        inp = np.concatenate((first, H[:-1]), axis=0) if layers > 1 else first
        z = np.concatenate((inp, H, inp, H), axis=1) * W + B
        act = np.tanh(z) * slope + offset
        Cn = C * act[:, :b] + act[:, b:2 * b] * act[:, 3 * b:]
        Hn = act[:, 2 * b:3 * b] * np.tanh(Cn)
        lo, hi = max(0, s - steps + 1), min(layers - 1, s)
        if lo == 0 and hi == layers - 1:
            H, C = Hn, Cn
        else:  # filling or draining the pipeline: only layers lo..hi are at a real time
            live = np.zeros((layers, 1), dtype=bool)
            live[lo:hi + 1] = True
            H, C = np.where(live, Hn, H), np.where(live, Cn, C)
        if s >= layers - 1:
            outputs.append(H[layers - 1])
    Y = _concatenate_many(outputs).reshape(steps, b)
    ypred = Y * extra_params[1] + extra_params[2]
    lse = np.log(np.sum(np.exp(ypred), axis=1, keepdims=True) + 2.0)
    total = np.sum(sequence[1:] * (ypred - lse))
    return -total / (steps * b)


def objective_by_layer(main_params, extra_params, state, sequence):
    """The reference's order: time outer, layers inner, the loss step by step (for tests)."""
    layers = state.shape[0] // 2
    c, b = sequence.shape
    H = [state[2 * i] for i in range(layers)]
    C = [state[2 * i + 1] for i in range(layers)]
    total = 0.0
    for t in range(c - 1):
        x = sequence[t] * extra_params[0]
        for i in range(layers):
            w, bias = main_params[2 * i], main_params[2 * i + 1]
            sig = lambda z: 1.0 / (1.0 + np.exp(-z))
            f = sig(x * w[:b] + bias[:b])
            ig = sig(H[i] * w[b:2 * b] + bias[b:2 * b])
            o = sig(x * w[2 * b:3 * b] + bias[2 * b:3 * b])
            ch = np.tanh(H[i] * w[3 * b:] + bias[3 * b:])
            C[i] = C[i] * f + ig * ch
            H[i] = o * np.tanh(C[i])
            x = H[i]
        ypred = x * extra_params[1] + extra_params[2]
        ynorm = ypred - np.log(np.sum(np.exp(ypred)) + 2.0)
        total = total + np.sum(sequence[t + 1] * ynorm)
    return -total / ((c - 1) * b)


jacobian = dg.grad(objective, argnums=(0, 1))


def prepare(input):
    return (array(input["main_params"]), array(input["extra_params"]), array(input["state"]),
            array(input["sequence"]))


def _jacobian(arg):
    g_main, g_extra = jacobian(*arg)
    return np.concatenate((np.ravel(g_main), np.ravel(g_extra)))


FUNCTIONS = {
    "objective": Function(run=spread(objective), prepare=prepare, output=float),
    "jacobian": Function(run=_jacobian, prepare=prepare,
                         output=lambda g: np.asarray(g, dtype=np.float64).tolist()),
}


def example(layers=2, c=6, b=3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "main_params": rng.random((2 * layers, 4 * b)).tolist(),
        "extra_params": rng.random((3, b)).tolist(),
        "state": rng.random((2 * layers, b)).tolist(),
        "sequence": rng.integers(0, 2, size=(c, b)).astype(float).tolist(),
        "min_runs": 1, "min_seconds": 0,
    }
