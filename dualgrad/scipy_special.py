"""``dualgrad.scipy_special``: the public name of ``dualgrad.scipy.special``, kept.

    >>> from dualgrad import scipy_special
    >>> scipy_special.logsumexp is __import__("dualgrad").scipy.special.logsumexp
    True
"""

from .scipy.special import *  # noqa: F403  (the same functions)
from .scipy.special import __all__  # noqa: F401
