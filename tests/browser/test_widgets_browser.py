"""Real-browser tests: JupyterLab on 127.0.0.1 with a token, driven by Debian's Chromium through
Playwright (system executable, no browser download). Notebooks 01 (an explorer) and 04 (animations) run top to
bottom in quick mode with no error output, and a test notebook shows the course's seven other explorers, built
as notebooks 03, 05, 06, 08 and 09 build them (small 2D networks, the shipped MNIST checkpoints); every enabled
slider of every one of the eight explorers is moved and the figure (the bytes of its PNG) must change. Notebook
11's flow explorer has a notebook of its own (``-k flow`` runs it alone), where its ODE buttons are clicked too.
The views draw no timings in their figures (the time is a text line under them), so a changed image is changed
content (tests/test_widgets.py checks the plotted values slider by slider).

Each move is watched in the page (``WATCH``): the status line's states and the bytes of every figure shown. The
final figure (the one sent before the status said done) must differ from the figure before the move; an explorer
whose view takes ``detail=`` (issue 35, ``sg.widgets.live``) must also show the preview state, and its preview
(the first figure after the move, labelled "preview: ...") must differ from both the figure before and the final
one. Which explorers show a preview is read from their views' signatures, so the check follows the views.
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

#: a toy explorer whose view takes ``detail=`` and whose full pass takes 1.5 s: the preview path of
#: ``sg.widgets.live`` in a real browser, whatever the course's views do (the full pass computes in a worker thread)
PREVIEW_NOTEBOOK = "preview_explorer.ipynb"
PREVIEW_CELLS = [WIDGET_CELLS[0], """import time
import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np


def toy_view(n=3, detail=1.0, fig=None):
    if detail == 1.0:                                   # the full pass: 1.5 s, in small Python steps
        end = time.perf_counter() + 1.5
        while time.perf_counter() < end:
            time.sleep(0.005)
    k = max(1, int(400 * detail))
    fig = fig or plt.figure(figsize=(3, 3), dpi=60)
    fig.clear()
    ax = fig.add_subplot()
    ax.scatter(*(np.random.default_rng(n).normal(size=(k, 2)) * (0.3 + 0.1 * n)).T, s=4)
    ax.set(xlim=(-3, 3), ylim=(-3, 3), title=f"n = {n}" + ("" if detail == 1.0 else f" (preview: {k} of 400)"))
    return fig, {"n": n, "detail": detail}


sg.widgets.interactive_view(toy_view, n=W.IntSlider(value=3, min=1, max=9, continuous_update=False))"""]

#: test notebook -> its cells
TEST_NOTEBOOKS = {WIDGETS_NOTEBOOK: WIDGET_CELLS, FLOW_NOTEBOOK: FLOW_CELLS, PREVIEW_NOTEBOOK: PREVIEW_CELLS}

#: notebook -> how many widgets it shows: two course notebooks run whole in JupyterLab (01 with its explorer, 04
#: with its animations), and the test notebook with the other seven explorers (the course notebooks' own runs
#: are nbval's; running all seven here too took 6 of CI's 30 minutes), and notebook 11's explorer
NOTEBOOKS = {"01_scores_and_langevin.ipynb": 1, "04_ncsn.ipynb": 0, WIDGETS_NOTEBOOK: 7, FLOW_NOTEBOOK: 1}

#: notebooks whose widgets' toggle buttons are clicked too (each button not selected must change the figure)
CLICK_TOGGLES = {FLOW_NOTEBOOK}

#: notebook -> the view behind each of its widgets, in order (a view with ``detail=`` shows a preview first)
VIEWS = {"01_scores_and_langevin.ipynb": ["langevin_view"], "04_ncsn.ipynb": [],
         WIDGETS_NOTEBOOK: ["dsm_view", "schedule_view", "annealed_view", "sde_view", "fast_sampling_view",
                            "guidance_view", "inpainting_view"],
         FLOW_NOTEBOOK: ["flow_view"]}


def _previews(view_name: str) -> bool:
    """Whether the explorer of ``view_name`` shows a preview first: its view takes ``detail=``."""
    import inspect

    import scoregen_lite as sg

    return "detail" in inspect.signature(getattr(sg.widgets, view_name)).parameters


# Installed before each move: the status line's states in order, a digest of every figure shown (fetched from its
# blob URL as soon as it is set: the widget revokes the URL of the figure it replaces), and how many figures had been
# shown when the status said done (the last of them is the final figure).
WATCH = """(root) => {
  const img = root.querySelector('img');
  const status = root.querySelector('.sg-status');
  const rec = {states: [], hashes: [], pending: 0, doneAt: null, error: null};
  let lastSrc = img.src;
  window.__sgWatch = rec;
  const digest = async (src, k) => {
    try { const b = await (await fetch(src)).arrayBuffer(); const d = await crypto.subtle.digest('SHA-1', b);
          rec.hashes[k] = Array.from(new Uint8Array(d)).join(','); }
    catch (e) { rec.hashes[k] = 'unreadable'; }
    finally { rec.pending -= 1; }
  };
  const checkSrc = () => {
    if (img.src === lastSrc) return;
    lastSrc = img.src; rec.pending += 1; rec.hashes.push(null); digest(img.src, rec.hashes.length - 1);
  };
  const readStatus = () => {
    checkSrc();                                 // a figure sent before this status line is counted before it
    const s = status.querySelector('[data-state]');
    if (!s) return;
    const state = s.dataset.state;
    if (rec.states[rec.states.length - 1] !== state) rec.states.push(state);
    if (state === 'done' && rec.doneAt === null) rec.doneAt = rec.hashes.length;
    if (state === 'error') rec.error = s.textContent;
  };
  const so = new MutationObserver(readStatus);
  so.observe(status, {childList: true, subtree: true, characterData: true, attributes: true});
  const io = new MutationObserver(checkSrc);
  io.observe(img, {attributes: true, attributeFilter: ['src']});
  rec.stop = () => { so.disconnect(); io.disconnect(); };
}"""


def _write_widgets_notebook(path, cells=WIDGET_CELLS):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    for name in [*NOTEBOOKS, PREVIEW_NOTEBOOK]:
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


def _watched(page, interact, act, before, previews: bool, what: str):
    """Install ``WATCH``, ``act()`` (a key press, a click), wait for the status to say done and every figure's
    digest; the final figure must differ from ``before`` (a hash), and with ``previews`` the preview state must have
    shown a figure other than both. Returns the final figure's hash."""
    interact.evaluate(WATCH)
    act()
    page.wait_for_function("() => { const r = window.__sgWatch; return r.error || (r.doneAt !== null && r.pending === 0); }",
                           timeout=120_000, polling=50)
    rec = page.evaluate("""() => { const r = window.__sgWatch; r.stop();
        return {states: r.states, hashes: r.hashes, doneAt: r.doneAt, error: r.error}; }""")
    assert not rec["error"], f"the widget reported an error after {what}: {rec['error']}"
    shown = [hashlib.sha1(h.encode()).hexdigest() if h != "unreadable" else h for h in rec["hashes"][:rec["doneAt"]]]
    assert shown and "unreadable" not in shown, f"no readable new figure after {what} (states {rec['states']})"
    final = shown[-1]
    assert final != before, f"the widget's figure did not change after {what}"
    if previews:
        assert "preview" in rec["states"], f"no preview state after {what}: {rec['states']}"
        assert len(shown) >= 2 and shown[0] not in (before, final), \
            f"the preview after {what} is not a figure of its own (figures {len(shown)}, states {rec['states']})"
    return final


def _move_slider_and_wait(page, interact, index, before, previews=False):
    """Move slider ``index`` of the widget one step (right, or left at its maximum) and wait for the final figure."""
    handle = interact.locator(".noUi-handle").nth(index)
    handle.scroll_into_view_if_needed()
    handle.focus()
    at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
    return _watched(page, interact, lambda: handle.press("ArrowLeft" if at_max else "ArrowRight"), before, previews,
                    f"moving slider {index}")


def _click_toggles_and_wait(page, interact, before, previews=False):
    """Click each toggle button that is not selected (ipywidgets' ToggleButtons), one after the other, and wait for
    the final figure after each; returns the hashes seen."""
    seen = []
    buttons = interact.locator(".widget-toggle-buttons button")
    for i in range(buttons.count()):
        button = buttons.nth(i)
        if "mod-active" in (button.get_attribute("class") or ""):
            continue
        button.scroll_into_view_if_needed()
        before = _watched(page, interact, button.click, before, previews, f"clicking {button.inner_text().strip()!r}")
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
        assert interacts.count() == n_widgets == len(VIEWS[name])
        for i in range(n_widgets):
            w = interacts.nth(i)
            w.scroll_into_view_if_needed()
            h = _figure_hash(w)
            assert h is not None, f"{name}: widget {i} shows no figure"
            sliders = DRIVER.enabled_sliders(w)
            assert sliders, f"{name}: widget {i} has no enabled slider"
            previews = _previews(VIEWS[name][i])
            seen = {h}
            for k in sliders:   # every enabled slider changes the figure (after its preview, where there is one)
                h = _move_slider_and_wait(page, w, k, h, previews)
                seen.add(h)
            assert len(seen) == len(sliders) + 1
            if name in CLICK_TOGGLES:   # and every toggle button changes it too
                clicked = _click_toggles_and_wait(page, w, h, previews)
                assert clicked, f"{name}: widget {i} has no toggle button to click"
                seen.update(clicked)
                assert len(seen) == len(sliders) + 1 + len(clicked)
            w.screenshot(path=str(ARTIFACTS / f"{stem}_widget{i}.png"))
        assert DRIVER.error_outputs(page) == [], f"{name}: error output after moving the sliders"
    finally:
        page.close()


def test_preview_first_and_a_stale_full_pass_never_shown(lab, browser):
    """The toy explorer (``PREVIEW_CELLS``): a move shows the preview, then the final figure; two moves in quick
    succession (the second while the first's full pass computes) show one final figure, the second's: the status
    says done once, and no figure arrives after it (a stale full pass is stopped, never shown)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        DRIVER.run_all(page, lab, PREVIEW_NOTEBOOK, token=TOKEN, timeout_s=300)
        assert DRIVER.error_outputs(page) == [], "error output in the browser"
        w = page.locator(f"{PANEL} .widget-interact").first
        page.wait_for_function(f"() => document.querySelector('{PANEL} .widget-interact img')", timeout=120_000)
        h3 = _figure_hash(w)
        h4 = _move_slider_and_wait(page, w, 0, h3, previews=True)          # n = 4
        handle = w.locator(".noUi-handle").first
        handle.focus()
        h3 = _watched(page, w, lambda: handle.press("ArrowLeft"), h4, True, "moving back")  # n = 3
        w.evaluate(WATCH)
        handle.press("ArrowRight")                                          # n = 4: its full pass starts
        page.wait_for_function("() => window.__sgWatch.states.includes('preview')", timeout=30_000, polling=20)
        handle.press("ArrowRight")                                          # n = 5, while n = 4's full pass computes
        page.wait_for_function("() => { const r = window.__sgWatch; return r.error || (r.doneAt !== null && "
                               "r.pending === 0); }", timeout=60_000, polling=50)
        page.wait_for_timeout(2500)                                         # longer than a full pass
        rec = page.evaluate("""() => { const r = window.__sgWatch; r.stop();
            return {states: r.states, hashes: r.hashes, doneAt: r.doneAt, error: r.error}; }""")
        assert not rec["error"] and rec["states"] == ["computing", "preview", "computing", "preview", "done"], rec
        assert rec["doneAt"] == len(rec["hashes"]) == 3, "a figure arrived after the final one (a stale full pass)"
        final = hashlib.sha1(rec["hashes"][-1].encode()).hexdigest()
        assert final not in (h3, h4) and _figure_hash(w) == final
        assert DRIVER.error_outputs(page) == [], "error output after the moves"
    finally:
        page.close()
