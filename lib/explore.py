"""Explorables: figures the reader moves, drawn from results the notebook computed.

A static site has no kernel, so an explorable cannot compute: the notebook runs the whole
grid of settings with ``lib`` when it executes, checks its claims on that grid, and hands
the results to :func:`explorable`. What reaches the page is the figure in the book's style
(matplotlib, as SVG, drawn at the first setting) and, for every setting, the drawn path
of each line and one sentence that states the setting and its result. Moving a control
swaps the paths and the sentence; the browser computes nothing the notebook did not.

The HTML loads nothing from the network and works in JupyterLab, on Colab and on the site.
Each control is a labelled ``<input type="range">`` over the grid's values, so it takes the
keyboard's arrow keys and a finger on a phone; the sentence sits in an ``aria-live`` region
for screen readers; without JavaScript the figure shows the first setting and says so. The
script is the same in every explorable and runs once per page however many there are.

Example (chapter 0's step size on a quadratic)::

    grid = {(lr,): {"distance": (steps, distance(lr))} for lr in rates}
    text = {(lr,): f"eta = {lr:g}: the distance {'shrinks' if lr < 2 else 'grows'}" for lr in rates}
    lib.explore.explorable(
        [lib.explore.Control("learning rate eta", rates)],
        [lib.explore.Line("distance", "distance to the minimum")],
        grid,
        text,
        axes=dict(xlabel="step", ylabel="distance", yscale="log", ylim=(1e-3, 1e3)),
        title="Gradient descent on a quadratic",
    )
"""

from __future__ import annotations

import hashlib
import html
import io
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lib import plot

__all__ = ["Control", "Explorable", "Line", "explorable"]

SVG_CLIP = 1e4  # paths are clipped to +-this many points: far outside any figure


@dataclass(frozen=True)
class Control:
    """One control: a slider over the grid's values of one setting.

    Attributes:
        label: what the reader reads beside the slider, e.g. ``"learning rate η"``.
        values: the settings on the grid, in the order the slider walks them (two for a
            switch such as ``("plain", "residual")``).
        fmt: the format of a numeric value shown beside the slider (``format(value, fmt)``);
            other values are shown with ``str``.
    """

    label: str
    values: Sequence[Any]
    fmt: str = "g"

    def text(self, value: Any) -> str:
        return format(value, self.fmt) if isinstance(value, int | float) else str(value)


@dataclass(frozen=True)
class Line:
    """One line of the figure: its key in each setting's results, its legend label, its panel.

    Attributes:
        key: the name under which each setting's results hold this line's ``(x, y)``.
        label: the legend's name for it (``None``: no legend entry).
        panel: the index of the panel it is drawn in (0 for a figure of one panel).
        style: matplotlib line properties, such as ``{"color": "black", "linestyle": "--"}``
            (no markers: only the line's path moves).
    """

    key: str
    label: str | None = None
    panel: int = 0
    style: Mapping[str, Any] | None = None


class Explorable:
    """An explorable as self-contained HTML that renders itself in Jupyter and on the site.

    Attributes:
        html: the HTML fragment: the figure, the controls, the data and the script.
        settings: the number of settings on the grid.
        texts: the sentence of each setting, keyed like the grid (what the page shows).
    """

    __slots__ = ("html", "settings", "texts")

    def __init__(self, html_text: str, texts: Mapping[tuple, str]) -> None:
        self.html = html_text
        self.texts = dict(texts)
        self.settings = len(self.texts)

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"<explorable: {self.settings} settings, {len(self.html) / 1024:.0f} kB of HTML>"


def explorable(
    controls: Sequence[Control],
    lines: Sequence[Line],
    results: Mapping[tuple, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
    texts: Mapping[tuple, str],
    *,
    axes: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    title: str,
    decorate: Callable[[list[Axes]], None] | None = None,
    figsize: tuple[float, float] | None = None,
) -> Explorable:
    """Build an explorable from the results of every setting on a grid.

    Args:
        controls: one :class:`Control` per setting dimension; the grid is every
            combination of their values.
        lines: the lines to draw; each setting's results hold one ``(x, y)`` pair per
            line's key (NaN or infinite values break the line).
        results: for every setting (a tuple with one value per control, in the controls'
            order), the ``(x, y)`` of each line.
        texts: for every setting, the sentence that states it and its result.
        axes: the properties of each panel's axes, applied with ``Axes.set`` (``xlabel``,
            ``ylabel``, ``xscale``, ``yscale``, ``xlim``, ``ylim``, ``title``); one mapping
            for one panel. Fix the limits: they do not move with the controls.
        title: the figure's title.
        decorate: draws what every setting shares (a threshold, a reference curve) on the
            list of panels.
        figsize: the figure's size in inches (default: the book's figure width, one panel
            row).

    Returns:
        An :class:`Explorable`.

    Raises:
        ValueError: if there are no controls or lines, a control has no values, a setting
            of the grid is missing from ``results`` or ``texts`` (or one is not on the
            grid), a line's panel does not exist, or a setting lacks a line's key.
    """
    panels = [axes] if isinstance(axes, Mapping) else list(axes)
    grid = _check(controls, lines, results, texts, len(panels))
    first = grid[0]
    width, height = plot.BOOK_STYLE["figure.figsize"]
    figsize = figsize or (width, height)
    with plot.style({"svg.fonttype": "path", "svg.hashsalt": "lib.explore", "savefig.bbox": None}):
        # 72 dpi: one display unit is one SVG unit (a point), so paths map onto the drawing
        fig = Figure(figsize=figsize, dpi=72, layout="constrained")
        drawn = fig.subplots(1, len(panels), squeeze=False)[0].tolist()
        for ax, properties in zip(drawn, panels, strict=True):
            ax.set(**properties)
        if decorate is not None:
            decorate(drawn)
        artists = []
        for i, line in enumerate(lines):
            x, y = results[first][line.key]
            (artist,) = drawn[line.panel].plot(x, y, label=line.label, **dict(line.style or {}))
            artist.set_gid(f"book-explore-line-{i}")
            artists.append(artist)
        labelled = [line for line in lines if line.label]
        if labelled:  # below the panels: no setting's lines run under it
            fig.legend(loc="outside lower center", ncols=min(len(labelled), 3))
        fig.suptitle(title)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", dpi=72, metadata={"Date": None})
        # after the drawing: its layout and limits fix the transforms from data to points
        paths = {
            setting: [_svg_path(drawn[line.panel], fig, *results[setting][line.key]) for line in lines]
            for setting in grid
        }
    svg = plot._svg_for_html(buffer.getvalue(), "book-explore-plot")
    data = {
        "paths": [paths[setting] for setting in grid],
        "texts": [texts[setting] for setting in grid],
        "sizes": [len(control.values) for control in controls],
        "labels": [[control.text(value) for value in control.values] for control in controls],
    }
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    uid = "book-explore-" + hashlib.sha1((svg + payload).encode()).hexdigest()[:16]
    svg = svg.replace('id="book-explore-line-', f'id="{uid}-line-')
    sliders = "".join(
        f'<label class="book-explore-control"><span>{html.escape(control.label)}</span>'
        f'<input type="range" min="0" max="{len(control.values) - 1}" step="1" value="0" '
        f'aria-label="{html.escape(control.label)}" aria-valuetext="{html.escape(data["labels"][k][0])}">'
        f"<output>{html.escape(data['labels'][k][0])}</output></label>"
        for k, control in enumerate(controls)
    )
    column = plot.BOOK_STYLE["figure.figsize"][0] * plot.BOOK_STYLE["figure.dpi"]  # pixels
    page = (
        f'<div class="book-explore" id="{uid}" style="max-width:{column:.0f}px">\n'
        f"<style>{_CSS}</style>\n{svg}\n"
        f'<div class="book-explore-controls">{sliders}</div>\n'
        f'<p class="book-explore-text" aria-live="polite">{html.escape(texts[first])}</p>\n'
        f'<noscript><p class="book-explore-text">The figure shows the first setting; with JavaScript '
        f"the controls move it through all {len(grid)}.</p></noscript>\n"
        f'<script type="application/json" class="book-explore-data">{_script_safe(payload)}</script>\n'
        f"<script>{_JS}</script>\n"
        "</div>"
    )
    return Explorable(page, {setting: texts[setting] for setting in grid})


def _check(
    controls: Sequence[Control],
    lines: Sequence[Line],
    results: Mapping[tuple, Mapping[str, Any]],
    texts: Mapping[tuple, str],
    panels: int,
) -> list[tuple]:
    """The grid's settings in slider order (the last control fastest), after checking the inputs."""
    if not controls:
        raise ValueError("controls must hold at least one Control")
    if not lines:
        raise ValueError("lines must hold at least one Line")
    for control in controls:
        if len(control.values) == 0:
            raise ValueError(f"control {control.label!r} has no values")
    grid = list(itertools.product(*(control.values for control in controls)))
    for name, given in (("results", results), ("texts", texts)):
        missing = [setting for setting in grid if setting not in given]
        if missing:
            raise ValueError(f"{name} lacks {len(missing)} settings of the grid, such as {missing[0]!r}")
        extra = set(given) - set(grid)
        if extra:
            raise ValueError(f"{name} holds settings off the grid, such as {next(iter(extra))!r}")
    for line in lines:
        if not 0 <= line.panel < panels:
            raise ValueError(
                f"line {line.key!r} is drawn in panel {line.panel}, but there are {panels} panels"
            )
        for setting in grid:
            if line.key not in results[setting]:
                raise ValueError(f"results[{setting!r}] lacks the line {line.key!r}")
    return grid


def _svg_path(ax: Axes, fig: Figure, x: Sequence[float], y: Sequence[float]) -> str:
    """The line through (x, y) as an SVG path in the drawing's points (y down); a value that
    is not finite, or a point off a log axis, breaks the line."""
    xy = np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])
    finite = np.isfinite(xy).all(axis=1)
    if ax.get_xscale() == "log":
        finite &= xy[:, 0] > 0
    if ax.get_yscale() == "log":
        finite &= xy[:, 1] > 0
    points = np.zeros_like(xy)
    points[finite] = ax.transData.transform(xy[finite])
    points[:, 1] = fig.bbox.height - points[:, 1]
    points = np.clip(points, -SVG_CLIP, SVG_CLIP).round(1)
    parts, pen_down = [], False
    for (px, py), ok in zip(points, finite, strict=True):
        if ok:
            parts.append(f"{'L' if pen_down else 'M'}{px:g} {py:g}")
        pen_down = bool(ok)
    return " ".join(parts)


def _script_safe(payload: str) -> str:
    """JSON that cannot close its ``<script>`` element early."""
    return payload.replace("</", "<\\/")


_CSS = """\
.book-explore{max-width:100%;margin:0 auto}
.book-explore svg.book-explore-plot{display:block;width:100%;height:auto}
.book-explore-controls{display:flex;flex-wrap:wrap;gap:.3em 1.2em;margin-top:.3em}
.book-explore-control{display:flex;align-items:center;gap:.5em;flex:1 1 16em}
.book-explore-control input[type=range]{flex:1 1 8em;min-width:6em;min-height:1.8em}
.book-explore-control input[type=range]:focus-visible{outline:2px solid #0072B2;outline-offset:2px}
.book-explore-control output{font-variant-numeric:tabular-nums;min-width:3.5em;text-align:right}
.book-explore-text{margin:.3em 0 0;font-size:.95em}
"""

# The same text in every explorable: on a page with several, the first defines
# window.bookExplore and every explorable calls it on its own root.
_JS = """\
(function () {
  if (!window.bookExplore) {
    window.bookExplore = function (root) {
      if (root.dataset.ready) { return; }
      root.dataset.ready = "1";
      var data = JSON.parse(root.querySelector(".book-explore-data").textContent);
      var paths = [], k = 0, line;
      while ((line = document.getElementById(root.id + "-line-" + k))) {
        paths.push(line.querySelector("path"));
        k += 1;
      }
      var sliders = root.querySelectorAll(".book-explore-control input");
      var outputs = root.querySelectorAll(".book-explore-control output");
      var text = root.querySelector("p.book-explore-text");
      function show() {
        var index = 0;
        for (var c = 0; c < sliders.length; c++) {
          var value = parseInt(sliders[c].value, 10);
          index = index * data.sizes[c] + value;
          outputs[c].textContent = data.labels[c][value];
          sliders[c].setAttribute("aria-valuetext", data.labels[c][value]);
        }
        paths.forEach(function (path, i) { path.setAttribute("d", data.paths[index][i]); });
        text.textContent = data.texts[index];
        root.dataset.setting = index;
      }
      for (var c = 0; c < sliders.length; c++) { sliders[c].addEventListener("input", show); }
      show();
    };
  }
  document.querySelectorAll(".book-explore:not([data-ready])").forEach(window.bookExplore);
})();
"""
