"""Benchmarks of dualgrad against numpy, PyTorch, JAX and HIPS autograd: `python -m bench`."""
