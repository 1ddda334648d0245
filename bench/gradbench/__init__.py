"""dualgrad as a GradBench tool.

GradBench (https://github.com/gradbench/gradbench) runs an *eval* process and a
*tool* process that exchange one JSON object per line.  ``python -m
bench.gradbench`` is the tool side for dualgrad: ``protocol.py`` speaks the
protocol, and ``evals/<name>.py`` holds one module per eval, each written with
plain numpy on dualgrad-traced values.  ``run_all.py`` drives a local GradBench
checkout against dualgrad (and PyTorch/JAX when installed).  See README.md.
"""
