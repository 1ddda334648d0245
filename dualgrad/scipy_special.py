"""``dualgrad.scipy_special``: the old name of ``dualgrad.scipy.special`` (deprecated:
importing it warns; import ``dualgrad.scipy.special`` instead).

    >>> import dualgrad.scipy.special as special
    >>> special.logsumexp is __import__("dualgrad").scipy.special.logsumexp
    True
"""

import warnings

from .scipy.special import *  # noqa: F403  (the same functions)
from .scipy.special import __all__  # noqa: F401

warnings.warn("dualgrad.scipy_special is deprecated: import dualgrad.scipy.special "
              "(the same functions)", DeprecationWarning, stacklevel=2)
