"""One module per GradBench eval; each exposes ``FUNCTIONS`` and ``example()``."""
