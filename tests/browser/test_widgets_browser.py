"""Real-browser tests: JupyterLab on 127.0.0.1 with a token, driven by Debian's Chromium through
Playwright (system executable, no browser download). Notebooks 01 (an explorer) and 04 (animations) run top to
bottom in quick mode with no error output, and a test notebook shows the course's seven other explorers, built
as notebooks 03, 05, 06, 08 and 09 build them (small 2D networks, the shipped MNIST checkpoints); every enabled
slider of every one of the eight explorers is moved and the figure (the bytes of its PNG) must change. Notebook
11's flow explorer has a notebook of its own (``-k flow`` runs it alone), where its ODE buttons are clicked too.
The views draw no timings in their figures (the time is a text line under them), so a changed image is changed
content (tests/test_widgets.py checks the plotted values slider by slider).
Screenshots go to test-artifacts/browser/ (not committed).

Runs when Chromium is installed; with SCOREGEN_BROWSER_TESTS=1 (set by .ci/run) a missing browser
is a failure, not a skip."""
import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow    # a real browser: minutes; `pytest --slow` or CI (.ci/run)

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("SCOREGEN_BROWSER_TESTS") == "1"

if not CHROMIUM or not shutil.which("jupyter", path=os.path.dirname(sys.executable)):
    if REQUIRED:
        raise RuntimeError("SCOREGEN_BROWSER_TESTS=1 but chromium or jupyter is missing (apt-get install chromium).")
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api") if not REQUIRED else __import__("playwright.sync_api").sync_api

TOKEN = "scoregen-test-token"


def _driver():
    """The JupyterLab driver of benchmarks/widget_latency.py (start, run all, stop), shared with the benchmark."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("widget_latency", REPO / "benchmarks" / "widget_latency.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


DRIVER = _driver()
PANEL, CHROME_ARGS = DRIVER.PANEL, DRIVER.CHROME_ARGS


#: the test notebook with every other explorer of the course, built as the notebooks build them but small
WIDGETS_NOTEBOOK = "every_explorer.ipynb"
WIDGET_CELLS = [
    "%matplotlib inline\nimport torch\nimport scoregen_lite as sg\ngen = sg.setup_notebook(seed=0)",
    # notebook 03: two DSM networks on the ring
    "ring = sg.densities.ring()\ndata = ring.sample(2000, generator=torch.Generator().manual_seed(0))\nnets = {}\n"
    "for s in (0.1, 1.0):\n    torch.manual_seed(0)\n    net = sg.nets.MLPScore(2, hidden=32, n_layers=2)\n"
    "    sg.train.fit(net, lambda n, x, s=s: sg.losses.denoising_score_matching(n, x, s), data, n_steps=150,\n"
    "                 batch_size=128, lr=3e-3, progress=False, device='cpu')\n    nets[s] = net.requires_grad_(False)",
    "sg.widgets.dsm_explorer(nets, ring)",
    "sg.widgets.schedule_explorer()",                         # notebook 05
    "sg.widgets.annealed_explorer(n_chains=500)",
    "sg.widgets.sde_explorer(n_samples=500)",                  # notebook 06
    # notebooks 08 and 09, with the shipped checkpoints and held-out digits
    "model = sg.mnist.pretrained('mnist_ve', device='cpu')\n"
    "cond = sg.mnist.pretrained('mnist_cond', device='cpu')\n"
    "split = sg.data.mnist_split()",
    "sg.widgets.fast_sampling_explorer(model)",
    "sg.widgets.guidance_explorer(cond)",
    "sg.widgets.inpainting_explorer(model, split.x_held, split.y_held)",
]

#: notebook 11's explorer, alone in a test notebook (exact 2D velocities and scores: nothing to train or load)
FLOW_NOTEBOOK = "flow_explorer.ipynb"
FLOW_CELLS = [WIDGET_CELLS[0], "sg.widgets.flow_explorer()"]

#: test notebook -> its cells
TEST_NOTEBOOKS = {WIDGETS_NOTEBOOK: WIDGET_CELLS, FLOW_NOTEBOOK: FLOW_CELLS}

#: notebook -> how many widgets it shows: two course notebooks run whole in JupyterLab (01 with its explorer, 04
#: with its animations), and the test notebook with the other seven explorers (the course notebooks' own runs
#: are nbval's; running all seven here too took 6 of CI's 30 minutes), and notebook 11's explorer
NOTEBOOKS = {"01_scores_and_langevin.ipynb": 1, "04_ncsn.ipynb": 0, WIDGETS_NOTEBOOK: 7, FLOW_NOTEBOOK: 1}

#: notebooks whose widgets' toggle buttons are clicked too (each button not selected must change the figure)
CLICK_TOGGLES = {FLOW_NOTEBOOK}


def _write_widgets_notebook(path, cells=WIDGET_CELLS):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    for name in NOTEBOOKS:
        if name in TEST_NOTEBOOKS:
            _write_widgets_notebook(root / name, TEST_NOTEBOOKS[name])
        else:
            shutil.copy(REPO / "notebooks" / name, root / name)
    proc, url, log = DRIVER.start_lab(root, dict(os.environ, SCOREGEN_QUICK="1"), token=TOKEN, wait_s=60)
    try:
        yield url
    finally:  # stop the server (and its kernels) in every case
        DRIVER.stop_lab(proc, log)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_ARGS)
        yield b
        b.close()


def _figure_hash(interact):
    """A hash of the figure's PNG bytes (the widget's image is a blob URL, new at every update, so the URL
    says nothing about the content); None while there is no image or the blob was just replaced."""
    imgs = interact.locator("img")
    if imgs.count() == 0:
        return None
    data = imgs.first.evaluate("""async img => { try { const b = await (await fetch(img.src)).arrayBuffer();
        const d = await crypto.subtle.digest('SHA-1', b); return Array.from(new Uint8Array(d)).join(','); }
        catch (e) { return null; } }""")
    return hashlib.sha1(data.encode()).hexdigest() if data else None


def _move_slider_and_wait(page, interact, index, before):
    """Move slider ``index`` of the widget one step (right, or left at its maximum) and wait for a new figure."""
    handle = interact.locator(".noUi-handle").nth(index)
    handle.scroll_into_view_if_needed()
    handle.focus()
    at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
    handle.press("ArrowLeft" if at_max else "ArrowRight")
    return _new_figure(page, interact, before, f"moving slider {index}")


def _new_figure(page, interact, before, what):
    """Wait until the widget shows a figure other than ``before`` (its hash), and return the new hash."""
    for _ in range(240):  # up to 60 s for the callback to redraw
        page.wait_for_timeout(250)
        state = interact.locator(".sg-status [data-state]")
        if state.count() and state.first.get_attribute("data-state") != "done":
            continue                                   # still computing: the status line says so
        now = _figure_hash(interact)
        if now is not None and now != before:
            return now
    raise AssertionError(f"the widget's figure did not change after {what}")


def _click_toggles_and_wait(page, interact, before):
    """Click each toggle button that is not selected (ipywidgets' ToggleButtons), one after the other, and wait for
    a new figure after each; returns the hashes seen."""
    seen = []
    buttons = interact.locator(".widget-toggle-buttons button")
    for i in range(buttons.count()):
        button = buttons.nth(i)
        if "mod-active" in (button.get_attribute("class") or ""):
            continue
        button.scroll_into_view_if_needed()
        button.click()
        before = _new_figure(page, interact, before, f"clicking {button.inner_text().strip()!r}")
        seen.append(before)
    return seen


@pytest.mark.parametrize("name, n_widgets", list(NOTEBOOKS.items()))
def test_notebook_runs_and_widgets_respond(lab, browser, name, n_widgets):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        DRIVER.run_all(page, lab, name, token=TOKEN, timeout_s=600)
        stem = name.split(".")[0]
        page.screenshot(path=str(ARTIFACTS / f"{stem}_after_run.png"))
        assert DRIVER.error_outputs(page) == [], f"{name}: error output in the browser"
        interacts = page.locator(f"{PANEL} .widget-interact")
        page.wait_for_function(f"() => document.querySelectorAll('{PANEL} .widget-interact img').length >= {n_widgets}",
                               timeout=120_000)
        assert interacts.count() == n_widgets
        for i in range(n_widgets):
            w = interacts.nth(i)
            w.scroll_into_view_if_needed()
            h = _figure_hash(w)
            assert h is not None, f"{name}: widget {i} shows no figure"
            sliders = DRIVER.enabled_sliders(w)
            assert sliders, f"{name}: widget {i} has no enabled slider"
            seen = {h}
            for k in sliders:   # every enabled slider changes the figure
                h = _move_slider_and_wait(page, w, k, h)
                seen.add(h)
            assert len(seen) == len(sliders) + 1
            if name in CLICK_TOGGLES:   # and every toggle button changes it too
                clicked = _click_toggles_and_wait(page, w, h)
                assert clicked, f"{name}: widget {i} has no toggle button to click"
                seen.update(clicked)
                assert len(seen) == len(sliders) + 1 + len(clicked)
            w.screenshot(path=str(ARTIFACTS / f"{stem}_widget{i}.png"))
        assert DRIVER.error_outputs(page) == [], f"{name}: error output after moving the sliders"
    finally:
        page.close()
