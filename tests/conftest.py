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
