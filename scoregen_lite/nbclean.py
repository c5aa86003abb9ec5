"""``python -m scoregen_lite.nbclean notebooks/``: the short name of ``scoregen_lite.courseware.nbclean``, the
command contributors run before every commit (see CONTRIBUTING.md)."""
import sys

from .courseware.nbclean import main

if __name__ == "__main__":
    sys.exit(main())
