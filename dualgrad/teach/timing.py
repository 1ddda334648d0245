"""Median timing: how the tutorials and the benchmarks time a call.

One timed call is a noisy measurement: the first call of a function pays for numba's
compilation, caches and page faults, and any later one can be slowed by the operating
system or another process.  So ``median_time`` makes one untimed warm-up call, then
times ``repeats`` calls and returns their median, which a few slow outliers do not move
(a mean would).  The numbers still depend on the machine; compare them with each other,
on one machine, not with other machines' numbers.

>>> from dualgrad.teach.timing import median_time
>>> t = median_time(lambda: sum(range(1000)), repeats=3)
>>> 0 < t < 1
True
"""

import statistics
import time


def median_time(fn, repeats=5):
    """Seconds per call of ``fn()``: the median of ``repeats`` timed calls, after one
    untimed warm-up call."""
    fn()  # warm up: compilation, caches, first-touch page faults
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
