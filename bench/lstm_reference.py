"""CS231n's LSTM as students write it (assignment 3, ``rnn_layers.py``): the forward pass,
and the backward pass by hand from the LSTM equations.

    a = x @ Wx + prev_h @ Wh + b          (N, 4H), split into i, f, o, g
    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);   g = tanh(a_g)
    next_c = f * prev_c + i * g;           next_h = o * tanh(next_c)

``lstm_forward`` is plain numpy: dualgrad differentiates it as it is (``h = np.zeros(...)``
inside a transform is a traced array that ``h[:, t, :] = next_h`` writes into).  The
benchmark's F (bench/workloads.py ``lstm``) is ``lstm_forward`` + ``lstm_backward``: what
the student computes by hand.
"""

import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One timestep: ``x`` (N, D), ``prev_h``/``prev_c`` (N, H), ``Wx`` (D, 4H), ``Wh``
    (H, 4H), ``b`` (4H,); returns next_h, next_c and the cache the backward pass reads."""
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H:2 * H])
    o = sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    cache = (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    """The gradients of one timestep: dx, dprev_h, dprev_c, dWx, dWh, db."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    do = dnext_h * tanh_c
    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)
    df = dc * prev_c
    di = dc * g
    dg = dc * i
    dprev_c = dc * f
    da = np.hstack((di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2)))
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = np.sum(da, axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b):
    """The whole sequence: ``x`` (N, T, D), ``h0`` (N, H); returns h (N, T, H) and the
    per-step caches."""
    N, T, D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    prev_h, prev_c = h0, np.zeros((N, H))
    cache = []
    for t in range(T):
        prev_h, prev_c, step = lstm_step_forward(x[:, t, :], prev_h, prev_c, Wx, Wh, b)
        h[:, t, :] = prev_h
        cache.append(step)
    return h, cache


def lstm_backward(dh, cache):
    """The gradients of the whole sequence given dh (N, T, H): dx, dh0, dWx, dWh, db."""
    N, T, H = dh.shape
    D = cache[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dprev_h, dprev_c = np.zeros((N, H)), np.zeros((N, H))
    dWx, dWh, db = np.zeros((D, 4 * H)), np.zeros((H, 4 * H)), np.zeros(4 * H)
    for t in reversed(range(T)):
        dx[:, t, :], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(
            dh[:, t, :] + dprev_h, dprev_c, cache[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


def lstm_loss(x, h0, Wx, Wh, b, R):
    """The benchmark's loss: sum(h * R), R a fixed array of h's shape."""
    h, _ = lstm_forward(x, h0, Wx, Wh, b)
    return np.sum(h * R)


def lstm_by_hand(x, h0, Wx, Wh, b, R):
    """The student's gradient of ``lstm_loss`` w.r.t. x, h0, Wx, Wh, b: the forward pass,
    then ``lstm_backward`` with dh = R."""
    _, cache = lstm_forward(x, h0, Wx, Wh, b)
    return lstm_backward(R, cache)
