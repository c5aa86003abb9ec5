"""Explorers that answer a slider at once: the machinery behind every widget of the course (notebooks 01-11).

A *view* is a plain function ``view(**settings) -> (fig, info)``: notebooks call it for static figures and
assert on ``info``. ``interactive_view`` wires controls to a view, as ``ipywidgets.interactive`` does (it
returns a ``LiveView``, which *is* an ``interactive``: ``w.children[:-1]`` are the controls, ``w.result``
the latest ``info``), with four differences that make an update fast (issues 23 and 35, measured by
``benchmarks/widget_latency.py``):

1. **One figure, updated in place.** A view that takes ``fig=`` is handed back the figure it drew last
   time; when the figure's structure is unchanged (``reuse``) it moves its artists (``set_offsets``,
   ``set_data``, ``set_height``, ``set_text``) instead of building a new figure, and its layout is fixed
   when the figure is made (no ``tight_layout`` pass per update). A structural change (another target,
   another number of panels) draws a fresh figure. ``tests/test_widgets.py`` checks that a figure updated
   in place renders exactly the pixels of a fresh one.
2. **An image, not a new output.** The figure is rendered once per update to a PNG
   (``render_png``) and sent to one ``ipywidgets.Image``: no output area cleared and rebuilt, no
   ``bbox_inches='tight'`` double draw.
3. **An immediate answer.** A status line under the figure says "computing..." the moment a control
   moves, before any work, then what the update cost: the view (compute and artists) and the PNG render,
   in milliseconds. Controls whose update takes long use ``continuous_update=False``, so a drag sends one
   value and not a queue of stale ones.
4. **A coarse answer first, the full one after, the stale one dropped.** A view with a ``detail=`` parameter
   (the fraction of its chains, points or steps it computes; its figure then says "preview: 500 of 2,000
   chains" and ``info["detail"]`` is that fraction; at ``detail=1.0`` figure and info are the full answer) is
   called twice per move: at ``LiveView.preview`` (default ``PREVIEW``, a quarter) and shown at once with
   the status ``data-state="preview"``, then at ``detail=1.0``, shown with ``data-state="done"``. The two
   passes draw into the same figure; the full one moves every artist the preview moved, so its pixels are
   those of a fresh full figure (``tests/test_live.py``).

   When the move comes from the browser (the kernel is handling a ``comm_msg``) the full pass runs in a
   worker thread and the kernel is free at once for the next move (PyTorch releases the GIL in its
   operations; ipykernel 6+ sends comm messages from any thread through its IOPub thread; a worker shows
   a traceback by setting the ``Output`` widget's ``outputs``, never with ``with out:``; renders take
   turns, as matplotlib is not thread-safe). Every move starts a new *generation*. A newer move stops a
   full pass still computing: it raises ``Cancelled`` (a ``BaseException``, which no view's ``except
   Exception`` swallows) in the worker at its next Python instruction (CPython's
   ``PyThreadState_SetAsyncExc``), waits for it to end (``JOIN_S`` at most), and draws its own preview on
   a *fresh* figure, since the stopped pass may have moved only some artists. A full pass that finished
   computing after a newer move began is discarded: it publishes its figure only under the lock and only
   if its generation is still the newest, so a stale figure never replaces a newer one. ``stale`` counts
   the passes stopped or discarded. A move made in a cell (``w.children[0].value = ...``), in tests and
   outside a kernel runs both passes before returning (``background=None``, the default, chooses so;
   ``True`` or ``False`` forces it), so ``w.result`` is then the full answer; ``wait()`` waits for a full
   pass running in the background. Views without ``detail`` (the MNIST explorers) are called once per
   move, on the kernel's thread, as before.

   Alternative considered: checking for pending kernel messages between the two passes on the kernel's
   thread; it cannot stop a full pass once begun, so a newer move would wait for it (up to a second).

Introduced in notebooks/01_scores_and_langevin.ipynb (the Langevin explorer).
"""
from __future__ import annotations

import ctypes
import inspect
import io
import threading
import time
import traceback

import ipywidgets as W
import matplotlib.pyplot as plt

__all__ = ["LiveView", "interactive_view", "render_png", "reuse", "keep", "Cancelled", "STATUS_CLASS", "PREVIEW",
           "JOIN_S"]

#: CSS class of the status line (the browser tests and the latency benchmark read it).
STATUS_CLASS = "sg-status"
#: the detail of the preview pass of a view that takes ``detail=`` (the fraction of its chains, points or steps)
PREVIEW = 0.25
#: how long a newer move waits for a stopped full pass to end (seconds); past it, it draws on a fresh figure anyway
JOIN_S = 2.0
#: one render at a time, whatever the thread: matplotlib shares its fonts between figures and is not thread-safe
_RENDER_LOCK = threading.Lock()


class Cancelled(BaseException):
    """Raised in a full pass that a newer move made stale (``LiveView``): a ``BaseException``, so a view's
    ``except Exception`` does not swallow it."""


def render_png(fig) -> bytes:
    """The figure as PNG bytes at its own dpi: one Agg draw, fast zlib level, no tight bounding box (the
    layout was fixed when the figure was made).

    A figure whose view declared its moving artists (``keep(..., moving=[...])``) is blitted, as
    matplotlib's animations are: everything else (axes, ticks, labels, whatever the view did not say
    moves) is drawn once and kept as a background, and each later render restores it and draws only the
    moving artists. The background is redrawn whenever the view's ``static`` value changes (e.g. axis
    limits that follow the data). A fresh figure renders through the same path, so a figure updated in
    place gives the pixels of a fresh one (``tests/test_widgets.py``)."""
    with _RENDER_LOCK:
        return _render_png(fig)


def _render_png(fig) -> bytes:
    """``render_png``'s work, done under its lock."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    store = getattr(fig, "_sg_live", None)
    if not isinstance(fig.canvas, FigureCanvasAgg):    # a figure closed in pyplot keeps no drawing canvas
        FigureCanvasAgg(fig)
        if store:                                      # a new, empty buffer: the background is drawn anew on it
            store["_background"] = None
    moving = store.get("moving") if store else None
    if not moving:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=fig.dpi, pil_kwargs={"compress_level": 1})
        return buf.getvalue()
    from PIL import Image

    canvas = fig.canvas
    if store.get("_background_of") != store.get("static") or store.get("_background") is None:
        for a in moving:
            a.set_animated(True)
        canvas.draw()                                  # animated artists are skipped: the background alone
        store["_background"] = canvas.copy_from_bbox(fig.bbox)
        store["_background_of"] = store.get("static")
    else:
        canvas.restore_region(store["_background"])
    for a in moving:
        fig.draw_artist(a)
    buf = io.BytesIO()
    Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1).save(
        buf, format="png", compress_level=1)
    return buf.getvalue()


def reuse(fig, key):
    """The artists a view stored on ``fig`` (``keep``) when it drew it with the same structural ``key``
    (the settings that decide which panels and artists exist), else None: then the view draws a new figure."""
    store = getattr(fig, "_sg_live", None) if fig is not None else None
    return store if store is not None and store["key"] == key else None


def keep(fig, key, moving=(), **artists) -> dict:
    """Store the artists a view will update in place on ``fig``, under its structural ``key``; returns them.
    ``moving``: the artists an update changes (``render_png`` blits them over a kept background); a view
    that also changes something else (axis limits, a legend) sets ``store["static"]`` to a value that
    says so, and the background is redrawn when it changes."""
    fig._sg_live = {"key": key, "moving": list(moving), "static": None, **artists}
    return fig._sg_live


def _accepts(view, name: str) -> bool:
    """Whether ``view`` has a parameter ``name`` (``fig`` for in-place updates, ``detail`` for a preview)."""
    try:
        return name in inspect.signature(view).parameters
    except (TypeError, ValueError):
        return False


def _kernel():
    """The running ipykernel, or None (tests, a plain Python)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return getattr(get_ipython(), "kernel", None)


def _from_browser() -> bool:
    """True while the kernel handles a message from the browser (``comm_msg``: a control moved by hand);
    False in a cell that sets a control, in tests and outside a kernel."""
    kernel = _kernel()
    try:
        parent = kernel.get_parent("shell") if kernel is not None else None
    except Exception:                                   # an older or unusual kernel: run in the foreground
        return False
    return bool(parent) and parent.get("header", {}).get("msg_type") == "comm_msg"


def _raise_in(thread: threading.Thread, exc) -> None:
    """Raise ``exc`` in ``thread`` at its next Python instruction (CPython's ``PyThreadState_SetAsyncExc``);
    ``exc=None`` withdraws one not yet raised."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                               ctypes.py_object(exc) if exc is not None else None)


class LiveView(W.interactive):
    """``ipywidgets.interactive`` for a ``(fig, info)`` view, updated in place, preview first (the module's
    docstring).

    Attributes: ``result`` (the latest full info), ``preview_info`` (the latest preview's info), ``image``
    (the ``ipywidgets.Image`` showing the figure), ``status`` (the ``ipywidgets.HTML`` line under it: a
    ``span`` whose ``data-state`` is ``computing``, ``preview``, ``done`` or ``error``), ``timings`` (one dict
    per full answer shown: ``view_ms``, ``render_ms``, ``in_place``, ``detail``, and ``preview``, the preview
    pass's dict or None), ``figure`` (the matplotlib figure on screen), ``preview`` (the preview's detail, None
    for none; used when the view takes ``detail=``), ``background`` (run the full pass of a view with ``detail=`` in
    a worker thread: None = when the move comes from the browser), ``stale`` (full passes stopped or discarded), ``error`` (the
    exception of the last full pass that failed in a worker thread, else None).
    """

    def __init__(self, view, preview: float | None = PREVIEW, background: bool | None = None, **controls):
        if preview is not None and not 0 < preview <= 1:
            raise ValueError(f"preview={preview!r} is invalid: give the preview's detail in (0, 1], or None for no "
                             f"preview.")
        self.view = view
        self.in_place = _accepts(view, "fig")
        self.has_detail = _accepts(view, "detail")
        self.preview = preview
        self.background = background
        self.figure = None
        self.timings: list[dict] = []
        self.preview_info = None
        self.stale = 0
        self.error = None
        self.image = W.Image(format="png", layout=W.Layout(max_width="100%", height="auto"))
        self.status = W.HTML(value="")
        self.status.add_class(STATUS_CLASS)
        self._box = W.VBox([self.image, self.status])
        self._shown = False            # the box is the out widget's only output
        self._started = False          # the first update (at construction) ran
        self._lock = threading.Lock()  # guards the generation, the worker's state and what is published
        self._generation = 0
        self._worker: threading.Thread | None = None
        self._stoppable: threading.Thread | None = None   # the worker while it computes (Cancelled may stop it)

        def call(**kwargs):       # the signature interactive reads: exactly the controls given
            return view(**kwargs)

        call.__name__, call.__doc__ = view.__name__, view.__doc__
        super().__init__(call, **controls)
        self.layout = W.Layout(border="1px solid #ddd", padding="4px")

    def update(self, *args):
        """Called by every control change: status first; then a preview (a view with ``detail=``) and the full
        view, each rendered and shown (the full pass in a worker thread when the move comes from the browser)."""
        self.kwargs = {w._kwarg: w.get_interact_value() for w in self.kwargs_widgets}
        gen, worker, stopped = self._new_generation()
        self.status.value = '<span data-state="computing">computing...</span>'   # sent to the browser now
        self._wait_for(worker, stopped)
        kwargs, first, self._started = dict(self.kwargs), not self._started, True
        preview = None
        previews = self.has_detail and self.preview is not None and self.preview < 1
        if previews and not first:
            try:
                fig, info, png, preview = self._compute(kwargs, self.preview)
            except Exception as err:
                self._fail(err, raise_it=True)
                return
            self._show(fig, png)
            self.preview_info = info
            self.status.value = self._status_html(info, preview, "preview")
        if not first and self.has_detail and (self.background if self.background is not None else _from_browser()):
            worker = threading.Thread(target=self._full_pass, args=(gen, kwargs, preview, True), daemon=True,
                                      name=f"sg-full-pass-{gen}")
            with self._lock:
                self._worker = worker
            worker.start()
        else:
            self._full_pass(gen, kwargs, preview, False)
        if previews and first:
            self._warm(kwargs)

    def _warm(self, kwargs) -> None:
        """Draw the preview once, unseen, when the explorer is built, so that what the view keeps for its preview's
        size (an energy floor for a quarter of the samples, a quarter of the trajectories) is ready at the first
        move: without it that move's preview took ~600 ms (``widget_latency_run2.json``, SDE and flow explorers)."""
        try:
            fig, _ = self.view(**kwargs, detail=self.preview)
        except Exception as err:
            self._fail(err, raise_it=True)
            return
        plt.close(fig)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a full pass running in the background; True once none runs."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
        return worker is None or not worker.is_alive()

    def _new_generation(self):
        """Begin a new generation (this move's): a full pass still computing for an older move is stopped
        (``Cancelled``), one past its compute will be discarded. Returns the generation, the older move's worker
        thread and whether it was stopped."""
        with self._lock:
            self._generation += 1
            worker, stopped = self._worker, self._stoppable
            if stopped is not None:
                self._stoppable = None
                _raise_in(stopped, Cancelled)
        return self._generation, worker, stopped is not None

    def _wait_for(self, worker, stopped: bool) -> None:
        """Wait (``JOIN_S`` at most) for the older move's worker to end; if it was stopped while computing, or
        still runs, it may have moved only some artists of the figure: the next pass draws a fresh one."""
        if worker is not None and worker is not threading.current_thread():
            worker.join(JOIN_S)
            if stopped or worker.is_alive():
                self.figure = None

    def _compute(self, kwargs: dict, detail):
        """The view (given its figure back and the detail) and the PNG: ``(fig, info, png, timing)``."""
        extra = {"fig": self.figure} if self.in_place else {}
        if detail is not None:
            extra["detail"] = detail
        start = time.perf_counter()
        fig, info = self.view(**kwargs, **extra)
        viewed = time.perf_counter()
        png = render_png(fig)
        rendered = time.perf_counter()
        return fig, info, png, {"view_ms": 1000 * (viewed - start), "render_ms": 1000 * (rendered - viewed),
                                "in_place": fig is self.figure, "detail": detail}

    def _full_pass(self, gen: int, kwargs: dict, preview, in_worker: bool) -> None:
        """The view at full detail, shown if no newer move began meanwhile. In a worker thread it may be stopped
        by ``Cancelled`` while it computes; the lock makes stopping and publishing exclusive."""
        me, err = threading.current_thread(), None
        try:
            try:
                if in_worker:
                    with self._lock:
                        if gen != self._generation:
                            return
                        self._stoppable = me
                fig, info, png, timing = self._compute(kwargs, 1.0 if self.has_detail else None)
            except Exception as e:
                err = e
            finally:
                if in_worker:
                    with self._lock:
                        if self._stoppable is me:
                            self._stoppable = None
                        else:                       # stopped just as it finished: withdraw the pending Cancelled
                            _raise_in(me, None)
        except Cancelled:
            with self._lock:
                self.stale += 1
            return
        with self._lock:
            if gen != self._generation:             # a newer move began: its figure must not be replaced
                self.stale += 1
                return
            if err is not None:
                self._fail(err, raise_it=not in_worker)
                return
            self._show(fig, png)
            timing["preview"] = preview
            self.timings.append(timing)
            self.result = info
            self.status.value = self._status_html(info, timing, "done")

    def _show(self, fig, png: bytes) -> None:
        """Put ``fig`` (its ``png``) on screen, keep it for the next update, show the box once in a kernel."""
        if fig is not self.figure:
            # detach the new figure from pyplot (it stays drawable): Jupyter's inline backend would otherwise
            # show it again, as a static copy, after the next cell runs, and then close it
            plt.close(fig)
        self.figure = fig if self.in_place else None
        self.image.value = png
        if not self._shown and _kernel() is not None:   # in a kernel: show the image once, then update it
            self.out.outputs = (self._box_output(),)    # not `with out:`, which needs the kernel's own thread
        self._shown = True

    def _fail(self, err: Exception, raise_it: bool) -> None:
        """The status says error; in a kernel the traceback is shown under the last figure, outside one a
        foreground error is raised and a background one kept in ``error``."""
        self.status.value = '<span data-state="error">error: see the traceback below</span>'
        self.error = err
        if _kernel() is None:
            if raise_it:
                raise err
            return
        lines = [line.rstrip("\n") for line in traceback.format_exception(err)]
        self.out.outputs = (*((self._box_output(),) if self._shown else ()),
                            {"output_type": "error", "ename": type(err).__name__, "evalue": str(err),
                             "traceback": lines})
        self._shown = False                             # the next answer shows the box alone again

    def _box_output(self) -> dict:
        """The image and status line as one output of the ``Output`` widget (a widget-view display)."""
        return {"output_type": "display_data", "data": self._box._repr_mimebundle_(), "metadata": {}}

    @staticmethod
    def _status_html(info, timing, state: str) -> str:
        what = ""
        if isinstance(info, dict) and "seconds" in info:
            what = (f"{info['nfe']} score evaluations in {info['seconds']:.2f} s" if "nfe" in info
                    else f"{info['seconds']:.2f} s") + " &middot; "
        cost = timing["view_ms"] + timing["render_ms"]
        attrs = (f'data-state="{state}" data-view-ms="{timing["view_ms"]:.1f}" '
                 f'data-render-ms="{timing["render_ms"]:.1f}"')
        if state == "preview":
            return (f'<span {attrs} data-detail="{timing["detail"]:g}">preview at {timing["detail"]:.0%} of the '
                    f'full detail in {cost:.0f} ms &middot; computing the full figure...</span>')
        before = timing.get("preview")
        first = f", after a preview in {before['view_ms'] + before['render_ms']:.0f} ms" if before else ""
        return (f'<span {attrs}>{what}updated in {cost:.0f} ms (view {timing["view_ms"]:.0f} ms, drawing '
                f'{timing["render_ms"]:.0f} ms){first}</span>')


def interactive_view(view, preview: float | None = PREVIEW, background: bool | None = None, **controls) -> LiveView:
    """Wire ``controls`` (widgets or ``ipywidgets.fixed`` values) to ``view(**kwargs) -> (fig, info)``.

    Returns a ``LiveView`` (an ``ipywidgets.interactive``): ``w.result`` holds ``info``. A view with a
    ``fig=`` parameter is updated in place; one with ``detail=`` shows a preview at ``preview`` (the fraction of
    its chains, points or steps; None: no preview) before the full answer (``background``: see ``LiveView``).
    The time a view took (``info["seconds"]``, with ``info["nfe"]``) and the update's cost are a line of text
    under the figure, not drawn in it: the figure shows only what the settings change, so a control that
    changes nothing leaves it identical (the browser tests rely on it).
    """
    return LiveView(view, preview=preview, background=background, **controls)
