import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture
def gen():
    """A seeded CPU generator: every test is reproducible."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SHARED_DATA = Path(os.environ.get("SCOREGEN_DATA", Path(REPO).parent / "shared" / "data"))


@pytest.fixture
def shared_mnist():
    """The folder of the offline MNIST subset. Absent, the test is skipped on a student's machine, but
    fails where SCOREGEN_REQUIRE_DATA=1 (set by .ci/run): CI can never skip the data tests silently."""
    folder = SHARED_DATA / "mnist"
    if not (folder / "train-images-idx3-ubyte.gz").exists():
        msg = f"the offline MNIST subset is not in {folder} (set SCOREGEN_DATA to the folder holding mnist/)"
        if os.environ.get("SCOREGEN_REQUIRE_DATA") == "1":
            pytest.fail(msg + "; SCOREGEN_REQUIRE_DATA=1 makes this an error")
        pytest.skip(msg)
    return folder


@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory):
    """One cache folder for the whole test session: the MNIST metrics classifier (keyed by a hash of its
    training data) is trained once and reused by every test that needs it, without touching ~/.cache."""
    return tmp_path_factory.mktemp("scoregen-cache")


# --- slow tests: `python -m pytest` runs the quick ones; `--slow` (or SCOREGEN_SLOW=1) runs everything, as CI does


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="also run the tests marked slow (mutation check, notebook executions, browser tests, "
                          "long training) and the notebooks under nbval; SCOREGEN_SLOW=1 does the same; CI does (.ci/run)")


def _run_slow(config) -> bool:
    value = os.environ.get("SCOREGEN_SLOW", "").strip()
    if value not in ("", "0", "1"):
        raise pytest.UsageError(f"SCOREGEN_SLOW={value!r} is not understood: set it to 1 (run the slow tests) or 0")
    return config.getoption("--slow") or value == "1"


def _is_slow(item) -> bool:
    """Marked slow, or a notebook cell collected by nbval (each notebook is executed top to bottom)."""
    return item.get_closest_marker("slow") is not None or item.path.suffix == ".ipynb"


def pytest_collection_modifyitems(config, items):
    if _run_slow(config):
        return
    slow = [item for item in items if _is_slow(item)]
    if slow:
        items[:] = [item for item in items if not _is_slow(item)]
        config.hook.pytest_deselected(items=slow)
        config._scoregen_slow_deselected = len(slow)


def pytest_terminal_summary(terminalreporter, config):
    count = getattr(config, "_scoregen_slow_deselected", 0)
    if count:
        terminalreporter.write_line(f"{count} slow tests or notebook cells deselected; run them with "
                                    f"`python -m pytest --slow` (CI runs everything: .ci/run)")
