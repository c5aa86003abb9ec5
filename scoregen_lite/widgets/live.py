"""Explorers that answer a slider at once: the machinery behind every widget of the course (notebooks 01-09).

A *view* is a plain function ``view(**settings) -> (fig, info)``: notebooks call it for static figures and
assert on ``info``. ``interactive_view`` wires controls to a view, as ``ipywidgets.interactive`` does (it
returns a ``LiveView``, which *is* an ``interactive``: ``w.children[:-1]`` are the controls, ``w.result``
the latest ``info``), with three differences that make an update fast (issue 23, measured by
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

Introduced in notebooks/01_scores_and_langevin.ipynb (the Langevin explorer).
"""
from __future__ import annotations

import inspect
import io
import time

import ipywidgets as W
import matplotlib.pyplot as plt

__all__ = ["LiveView", "interactive_view", "render_png", "reuse", "keep", "STATUS_CLASS"]

#: CSS class of the status line (the browser tests and the latency benchmark read it).
STATUS_CLASS = "sg-status"


def render_png(fig) -> bytes:
    """The figure as PNG bytes at its own dpi: one Agg draw, fast zlib level, no tight bounding box (the
    layout was fixed when the figure was made).

    A figure whose view declared its moving artists (``keep(..., moving=[...])``) is blitted, as
    matplotlib's animations are: everything else (axes, ticks, labels, whatever the view did not say
    moves) is drawn once and kept as a background, and each later render restores it and draws only the
    moving artists. The background is redrawn whenever the view's ``static`` value changes (e.g. axis
    limits that follow the data). A fresh figure renders through the same path, so a figure updated in
    place gives the pixels of a fresh one (``tests/test_widgets.py``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):    # a figure closed in pyplot keeps no drawing canvas
        FigureCanvasAgg(fig)
    store = getattr(fig, "_sg_live", None)
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


def _accepts_fig(view) -> bool:
    try:
        return "fig" in inspect.signature(view).parameters
    except (TypeError, ValueError):
        return False


class LiveView(W.interactive):
    """``ipywidgets.interactive`` for a ``(fig, info)`` view, updated in place (see the module's docstring).

    Attributes: ``result`` (the latest info), ``image`` (the ``ipywidgets.Image`` showing the figure),
    ``status`` (the ``ipywidgets.HTML`` line under it), ``timings`` (one dict per update: ``view_ms``,
    ``render_ms``, ``in_place``), ``figure`` (the matplotlib figure on screen).
    """

    def __init__(self, view, **controls):
        self.view = view
        self.in_place = _accepts_fig(view)
        self.figure = None
        self.timings: list[dict] = []
        self.image = W.Image(format="png", layout=W.Layout(max_width="100%", height="auto"))
        self.status = W.HTML(value="")
        self.status.add_class(STATUS_CLASS)
        self._shown = False

        def call(**kwargs):       # the signature interactive reads: exactly the controls given
            return view(**kwargs)

        call.__name__, call.__doc__ = view.__name__, view.__doc__
        super().__init__(call, **controls)
        self.layout = W.Layout(border="1px solid #ddd", padding="4px")

    def update(self, *args):
        """Called by every control change: status first, then the view, the render and the new image."""
        from IPython.display import display

        self.kwargs = {w._kwarg: w.get_interact_value() for w in self.kwargs_widgets}
        self.status.value = '<span data-state="computing">computing...</span>'   # sent to the browser now
        try:
            start = time.perf_counter()
            if self.in_place:
                fig, info = self.view(**self.kwargs, fig=self.figure)
            else:
                fig, info = self.view(**self.kwargs)
            viewed = time.perf_counter()
            png = render_png(fig)
            rendered = time.perf_counter()
        except Exception:
            self.status.value = '<span data-state="error">error: see the traceback below</span>'
            with self.out:
                self.out.clear_output(wait=True)
                from IPython import get_ipython

                ip = get_ipython()
                if ip is None:
                    raise
                ip.showtraceback()
                self._shown = False
            return
        in_place = fig is self.figure
        if not in_place:
            # detach the new figure from pyplot (it stays drawable): Jupyter's inline backend would otherwise
            # show it again, as a static copy, after the next cell runs, and then close it
            plt.close(fig)
        self.figure = fig if self.in_place else None
        self.image.value = png
        if not self._shown:
            from IPython import get_ipython

            if get_ipython() is not None:                  # in a kernel: show the image once, then update it
                with self.out:
                    self.out.clear_output(wait=True)
                    display(W.VBox([self.image, self.status]))
            self._shown = True
        timing = {"view_ms": 1000 * (viewed - start), "render_ms": 1000 * (rendered - viewed), "in_place": in_place}
        self.timings.append(timing)
        self.result = info
        self.status.value = self._status_html(info, timing)

    @staticmethod
    def _status_html(info, timing) -> str:
        what = ""
        if isinstance(info, dict) and "seconds" in info:
            what = (f"{info['nfe']} score evaluations in {info['seconds']:.2f} s" if "nfe" in info
                    else f"{info['seconds']:.2f} s") + " &middot; "
        return (f'<span data-state="done" data-view-ms="{timing["view_ms"]:.1f}" '
                f'data-render-ms="{timing["render_ms"]:.1f}">{what}'
                f'updated in {timing["view_ms"] + timing["render_ms"]:.0f} ms '
                f'(view {timing["view_ms"]:.0f} ms, drawing {timing["render_ms"]:.0f} ms)</span>')


def interactive_view(view, **controls) -> LiveView:
    """Wire ``controls`` (widgets or ``ipywidgets.fixed`` values) to ``view(**kwargs) -> (fig, info)``.

    Returns a ``LiveView`` (an ``ipywidgets.interactive``): ``w.result`` holds ``info``. A view with a
    ``fig=`` parameter is updated in place. The time a view took (``info["seconds"]``, with ``info["nfe"]``)
    and the update's cost are a line of text under the figure, not drawn in it: the figure shows only what
    the settings change, so a control that changes nothing leaves it identical (the browser tests rely on it).
    """
    return LiveView(view, **controls)
