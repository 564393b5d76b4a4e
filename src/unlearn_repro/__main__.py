# The CPU code path is pinned before anything imports torch (MKL and ATen read it once; numerics.py).
from unlearn_repro import numerics

numerics.pin()

from unlearn_repro.cli import main  # noqa: E402  (after the pin, on purpose)

if __name__ == "__main__":
    main()
