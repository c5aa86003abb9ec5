"""``python -m scoregen_lite ...``: the MNIST command line (``scoregen_lite.images.cli``)."""
import sys

from .images.cli import main

if __name__ == "__main__":
    sys.exit(main())
