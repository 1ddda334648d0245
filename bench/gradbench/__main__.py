"""``python -m bench.gradbench``: the dualgrad GradBench tool on stdin/stdout."""

from .protocol import main

if __name__ == "__main__":
    main()
