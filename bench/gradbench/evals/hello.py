"""hello: ``square`` is x², ``double`` is its derivative 2x (by reverse mode)."""

import dualgrad as dg

from ..protocol import Function


def square(x):
    return x * x


double = dg.grad(square)

FUNCTIONS = {
    "square": Function(run=square, prepare=float, output=float, repeated=False),
    "double": Function(run=double, prepare=float, output=float, repeated=False),
}


def example():
    return 3.0
