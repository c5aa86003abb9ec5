"""The interactive explorers, ``sg.widgets.<name>_explorer``: each wires sliders to a plain function
``<name>_view(...) -> (figure, info)`` that the tests call without a browser.
2D explorers in ``explorers``; MNIST explorers in ``images``; the live-update machinery in ``live``."""
from .explorers import *  # noqa: F401,F403
from .explorers import __all__ as _all

__all__ = list(_all)
