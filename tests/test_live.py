"""The live-update machinery (sg.widgets.live, issue 35): a view with ``detail=`` answers each move with a preview
and then the full figure, a newer move stops or discards a stale full pass, views without ``detail`` are called
once per move as before, and errors say so. Driven with small views of this file (their own figures, delays and
planted partial updates); the course's 2D views are checked too once they take ``detail=``. One test drives a
real ipykernel with comm messages, as the browser does, to check the worker thread there."""
import io
import json
import threading
import time

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import pytest

import scoregen_lite as sg

live = sg.widgets.live


def dots_view(n: int = 3, n_chains: int = 400, detail: float = 1.0, fig=None, calls=None, slow_s: float = 0.0,
              started=None, fail_at=None):
    """A small 2D view with a preview: ``n_chains * detail`` seeded points whose spread grows with ``n``, a line,
    a title, and the label "preview: k of N chains" below 1. ``calls`` records (n, detail, fig given). Its line is
    removed and drawn anew at every update, as ``dsm_view`` does with its quiver: ``slow_s`` makes the full pass
    (detail 1) compute that long, in small Python steps, between the two (``started``, an Event, is set then), so
    a pass stopped there leaves a half-updated figure whose next in-place update fails (the line was already
    removed); ``fail_at``: the detail at which it raises."""
    if calls is not None:
        calls.append((n, detail, fig is not None))
    if detail == fail_at:
        raise ValueError(f"planted failure at detail={detail}")
    k = max(1, round(n_chains * detail))
    pts = np.random.default_rng(n).normal(size=(n_chains, 2))[:k] * (0.3 + 0.1 * n)
    store = live.reuse(fig, ("dots",))
    if store is None:
        # 4.1 in x 100 dpi is 409.99999999999994 pixels: a background blitted from another canvas missed a row
        fig, ax = plt.subplots(figsize=(3, 4.1), dpi=100)
        ax.set(xlim=(-3, 3), ylim=(-3, 3))
        store = live.keep(fig, ("dots",), scat=ax.scatter([], [], s=4), line=ax.plot([], [], "r-")[0],
                          title=ax.set_title(" "), label=ax.text(0, -2.7, "", ha="center"), ax=ax)
    store["line"].remove()
    if detail == 1.0 and slow_s:
        if started is not None:
            started.set()
        end = time.perf_counter() + slow_s
        while time.perf_counter() < end:                # the full pass's compute, in small Python steps
            time.sleep(0.002)
    store["line"] = store["ax"].plot([-n / 3, n / 3], [0, 0], "r-")[0]
    store["scat"].set_offsets(pts)
    store["title"].set_text(f"n = {n}")
    store["label"].set_text("" if detail == 1.0 else f"preview: {k:,} of {n_chains:,} chains")
    store["moving"] = [store["scat"], store["line"], store["title"], store["label"]]
    return fig, {"n": n, "detail": detail, "k": k}


def plain_view(n: int = 3, fig=None, calls=None):
    """A view without ``detail`` (as the MNIST explorers): one call per move."""
    if calls is not None:
        calls.append(n)
    return dots_view(n, fig=fig)[0], {"n": n}


def _pixels(png: bytes):
    return plt.imread(io.BytesIO(png))


def _fresh_png(view, **kwargs) -> bytes:
    fig, _ = view(**kwargs)
    png = live.render_png(fig)
    plt.close(fig)
    return png


def _explorer(view=dots_view, **kw):
    states = []
    w = live.interactive_view(view, n=W.IntSlider(value=3, min=1, max=9), **kw)
    w.status.observe(lambda change: states.append(change["new"]), names="value")
    return w, states


def _state(html: str) -> str:
    return html.split('data-state="')[1].split('"')[0]


def test_a_move_shows_the_preview_then_the_full_figure():
    """computing, then the preview (detail 0.25 into the same figure, shown, the status says so), then the full
    view at detail 1 in place, whose pixels are those of a fresh full figure; ``result`` is the full info."""
    calls = []
    w, states = _explorer(calls=W.fixed(calls))
    assert calls == [(3, 1.0, False), (3, 0.25, False)]      # the first figure: full, then an unseen preview that warms
    assert w.timings[0]["preview"] is None and len(w.timings) == 1    # what the view keeps for its preview's size
    shown = []
    w.image.observe(lambda change: shown.append(change["new"]), names="value")
    w.children[0].value = 5
    assert [_state(s) for s in states] == ["computing", "preview", "done"]
    assert calls[2:] == [(5, 0.25, True), (5, 1.0, True)]
    assert 'data-detail="0.25"' in states[1] and "preview at 25%" in states[1]
    assert w.preview_info == {"n": 5, "detail": 0.25, "k": 100} and w.result == {"n": 5, "detail": 1.0, "k": 400}
    assert len(shown) == 2 and shown[0] != shown[1]                          # the preview, then the full figure
    assert np.array_equal(_pixels(shown[0]), _pixels(_fresh_png(dots_view, n=5, detail=0.25)))
    assert np.array_equal(_pixels(w.image.value), _pixels(_fresh_png(dots_view, n=5)))
    t = w.timings[-1]
    assert t["in_place"] and t["detail"] == 1.0 and t["preview"]["detail"] == 0.25 and t["preview"]["in_place"]
    assert f'data-view-ms="{t["view_ms"]:.1f}"' in states[-1] and "after a preview in" in states[-1]


def test_preview_detail_is_a_setting():
    calls = []
    w, states = _explorer(calls=W.fixed(calls), preview=0.5)
    w.children[0].value = 4
    assert calls[1:] == [(3, 0.5, False), (4, 0.5, True), (4, 1.0, True)]
    w, states = _explorer(calls=W.fixed(calls := []), preview=None)        # no preview: the full view only
    w.children[0].value = 4
    assert calls[1:] == [(4, 1.0, True)] and [_state(s) for s in states] == ["computing", "done"]
    with pytest.raises(ValueError, match="preview=0 is invalid"):
        _explorer(preview=0)


def test_views_without_detail_are_called_once_per_move():
    """The MNIST explorers' views take no ``detail``: one call on the kernel's thread (even where a view with
    ``detail`` would compute in the background), no preview state, as before issue 35."""
    calls = []
    w, states = _explorer(plain_view, calls=W.fixed(calls), background=True)
    w.children[0].value = 6
    w.children[0].value = 2
    assert calls == [3, 6, 2] and w.result == {"n": 2} and w._worker is None     # on the caller's thread
    assert [_state(s) for s in states] == ["computing", "done"] * 2
    assert not w.has_detail and w.timings[-1]["detail"] is None and w.timings[-1]["preview"] is None


def test_errors_say_so_and_stop_the_move():
    """A preview that raises: status error, no full pass, the error raised outside a kernel (as before). A full
    pass that raises in the background: status error, kept in ``error``; ``result`` stays the last full answer."""
    calls = []
    with pytest.raises(ValueError, match="planted failure at detail=0.25"):   # the unseen preview at construction
        _explorer(calls=W.fixed(calls), fail_at=W.fixed(0.25))
    fails = {"detail": None}

    def failing(n=3, detail=1.0, fig=None):
        return dots_view(n, detail=detail, fig=fig, calls=calls, fail_at=fails["detail"])

    w, states = _explorer(failing)
    fails["detail"] = 0.25
    with pytest.raises(ValueError, match="planted failure at detail=0.25"):
        w.children[0].value = 5
    assert calls[-1] == (5, 0.25, True) and _state(states[-1]) == "error" and w.result["n"] == 3
    fail_at = {"detail": None}                               # the full pass fails from the first move on

    def view(n=3, detail=1.0, fig=None):
        return dots_view(n, detail=detail, fig=fig, fail_at=fail_at["detail"])

    w, states = _explorer(view, background=True)
    fail_at["detail"] = 1.0
    w.children[0].value = 7
    assert w.wait(10)
    assert [_state(s) for s in states] == ["computing", "preview", "error"]
    assert isinstance(w.error, ValueError) and w.result["n"] == 3 and w.preview_info["n"] == 7


def test_a_newer_move_stops_a_stale_full_pass():
    """Move 1's full pass computes for 30 s in a worker thread, after removing its line; move 2 stops it at once
    (``Cancelled``), draws on a fresh figure (the stopped one is half updated: its line is gone), and its own
    full answer is the only one shown: the status never says done for move 1, and the final pixels are those of
    a fresh full figure for move 2."""
    started, slow = threading.Event(), {"s": 0.0}

    def view(n=3, detail=1.0, fig=None):
        return dots_view(n, detail=detail, fig=fig, slow_s=slow["s"], started=started)

    w, states = _explorer(view, background=True)
    slow["s"] = 30.0                                          # from move 1 on
    w.children[0].value = 5
    assert started.wait(10)                                   # move 1's full pass is computing, its line removed
    stopped_fig = w.figure
    slow["s"] = 0.0
    t0 = time.perf_counter()
    w.children[0].value = 8                                   # move 2
    assert time.perf_counter() - t0 < 5, "the stale full pass was not stopped"
    assert w.wait(10)
    assert w.stale == 1 and w.result == {"n": 8, "detail": 1.0, "k": 400}
    assert [_state(s) for s in states] == ["computing", "preview", "computing", "preview", "done"]
    assert w.figure is not stopped_fig                         # drawn afresh, not on the half-updated figure
    assert np.array_equal(_pixels(w.image.value), _pixels(_fresh_png(dots_view, n=8)))
    assert len(w.timings) == 2 and w.timings[-1]["preview"]["detail"] == 0.25


def test_a_stale_full_pass_that_ends_late_is_discarded(monkeypatch):
    """Even when a stale full pass cannot be stopped (here stopping is disabled) and ends after the newer move's
    answer, its figure never replaces the newer one: it is discarded."""
    monkeypatch.setattr(live, "_raise_in", lambda thread, exc: None)
    monkeypatch.setattr(live, "JOIN_S", 0.05)
    started, release = threading.Event(), threading.Event()

    def view(n=3, detail=1.0, fig=None):
        if n == 5 and detail == 1.0:
            started.set()
            release.wait(30)
        return dots_view(n, detail=detail, fig=fig)

    w = live.interactive_view(view, n=W.IntSlider(value=3, min=1, max=9), background=True)
    w.children[0].value = 5
    assert started.wait(10)
    first = w._worker
    w.children[0].value = 8
    assert w.wait(10) and w.result["n"] == 8
    final = w.image.value
    release.set()
    first.join(10)
    assert not first.is_alive() and w.stale == 1
    assert w.result["n"] == 8 and w.image.value == final and 'data-state="done"' in w.status.value


def test_a_move_in_a_cell_runs_in_the_foreground():
    """Outside a kernel (and in a cell) ``background=None`` runs both passes before the setter returns."""
    w, _ = _explorer()
    assert w.background is None and not live._from_browser()
    w.children[0].value = 9
    assert w._worker is None and w.result["n"] == 9


# the course's 2D views at small sizes (their explorers' defaults are larger); checked once they take detail=
COURSE_VIEWS = {
    "langevin_view": ({"n_chains": 200}, {"step_size": 0.2}),
    "schedule_view": ({}, {"sigma_max": 20.0}),
    "annealed_view": ({"n_chains": 300, "n_steps_each": 20}, {"sigma_min": 0.3}),
    "sde_view": ({"n_samples": 300}, {"n_steps": 30}),
    "flow_view": ({"n_points": 100}, {"n_steps": 6}),
}


def _dsm_setting():
    """dsm_view's fixed arguments (two untrained, seeded score networks on the ring: enough to draw its figure),
    its change of sigma and the sigma it starts from."""
    import torch

    torch.manual_seed(0)
    nets = {s: sg.nets.MLPScore(2, hidden=16, n_layers=2).requires_grad_(False) for s in (0.1, 1.0)}
    return {"nets": nets, "density": sg.densities.ring(), "n_grid": 30}, {"sigma": 1.0}, 0.1


@pytest.mark.parametrize("name", [*COURSE_VIEWS, "dsm_view"])
def test_course_views_preview_then_full_equals_a_fresh_full_figure(name):
    """Through a LiveView: the preview says it is one (its label, ``info["detail"]``), and the full figure drawn
    in place over it renders exactly the pixels of a fresh full figure, whose info is the full answer."""
    view = getattr(sg.widgets, name)
    if "detail" not in live.inspect.signature(view).parameters:
        pytest.skip(f"{name} takes no detail= yet")
    fixed, change, start = _dsm_setting() if name == "dsm_view" else (*COURSE_VIEWS[name], None)
    (key, value), = change.items()
    start = live.inspect.signature(view).parameters[key].default if start is None else start
    w = live.interactive_view(view, **{k: W.fixed(v) for k, v in fixed.items()}, **{key: W.fixed(start)},
                              preview=0.25)
    shown = []
    w.image.observe(lambda change: shown.append(change["new"]), names="value")
    next(c for c in w.kwargs_widgets if c._kwarg == key).value = value
    assert w.preview_info["detail"] == 0.25 and w.result.get("detail", 1.0) == 1.0
    fresh, info = view(**fixed, **change)
    assert np.array_equal(_pixels(w.image.value), _pixels(live.render_png(fresh)))
    assert np.array_equal(_pixels(shown[0]), _pixels(_fresh_png(view, **fixed, **change, detail=0.25)))
    assert shown[0] != shown[1]
    plt.close(fresh)


# --- a real kernel: moves sent as the browser sends them (comm messages), the full pass in a worker thread

KERNEL_CELL = r'''
import time, ipywidgets as W, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import scoregen_lite as sg

def view(n=1, detail=1.0, fig=None):
    fig = fig or plt.figure(figsize=(2, 2), dpi=40)
    if detail == 1.0 and n == 2:
        end = time.perf_counter() + 20                      # move 1's full pass: 20 s unless stopped
        while time.perf_counter() < end:
            time.sleep(0.002)
    fig.clear(); fig.text(0.5, 0.5, f"{n} {detail}")
    return fig, {"n": n, "detail": detail}

w = sg.widgets.live.interactive_view(view, n=W.IntSlider(value=1, min=1, max=5))
print(w.children[0].model_id, w.status.model_id, w.image.model_id)
'''


def _kernel_outputs(kc, msg_id, timeout=60):
    text = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            text.append(msg["content"]["text"])
        if msg["msg_type"] == "error":
            raise AssertionError("\n".join(msg["content"]["traceback"]))
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(text)


def test_in_a_kernel_a_browser_move_computes_in_the_background_and_is_stopped_by_the_next():
    """In a real ipykernel, moves sent as comm messages (as JupyterLab sends them): move 1's preview arrives and
    the kernel is free for move 2 while move 1's 20 s full pass computes in a worker thread; move 2 stops it and
    its own full answer (sent from a worker thread) arrives within seconds; the status never says done for move 1."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        msg_id = kc.execute(KERNEL_CELL)
        slider, status, image = _kernel_outputs(kc, msg_id).split()
        states, images = [], 0

        def move(value):
            kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": slider, "data": {
                "method": "update", "state": {"value": value}, "buffer_paths": []}}))

        def until(state, timeout_s):
            nonlocal images
            end = time.perf_counter() + timeout_s
            while time.perf_counter() < end:
                try:
                    msg = kc.get_iopub_msg(timeout=max(0.01, end - time.perf_counter()))
                except Exception:
                    break
                if msg["msg_type"] != "comm_msg" or msg["content"]["data"].get("method") != "update":
                    continue
                data = msg["content"]["data"]
                if msg["content"]["comm_id"] == image and ["value"] in data.get("buffer_paths", []):
                    images += 1
                if msg["content"]["comm_id"] == status and "value" in data["state"]:
                    states.append(_state(data["state"]["value"]))
                    if states[-1] in (state, "error"):
                        return True
            return False

        move(2)
        assert until("preview", 30), states
        t0 = time.perf_counter()
        move(3)
        assert until("done", 15), states
        assert time.perf_counter() - t0 < 10
        assert states == ["computing", "preview", "computing", "preview", "done"] and images == 3
        msg_id = kc.execute("import json; print(json.dumps([w.stale, w.result, w.preview_info]))")
        stale, result, preview = json.loads(_kernel_outputs(kc, msg_id))
        assert stale == 1 and result == {"n": 3, "detail": 1.0} and preview == {"n": 3, "detail": 0.25}
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
