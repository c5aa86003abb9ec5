"""``python -m scoregen_lite ...``: the MNIST command line (``scoregen_lite.images.cli``)."""
import sys

from .images.cli import main

sys.exit(main())
