"""The book's figures, in one consistent style.

Every function takes the data to draw and returns a matplotlib ``Figure``, or the ``Axes``
it drew on when it was given one through ``ax``. Nothing changes global state: the book's
style is applied with :func:`style` (a context manager around ``matplotlib.rc_context``)
only while a figure is being built, and figures made here are not registered with pyplot,
so they do not pile up in memory and are shown exactly once, by leaving the figure as the
last expression of a notebook cell (or with ``IPython.display.display(fig)``)::

    runs = [lib.landscapes.trajectory(bowl, torch.optim.SGD, {"lr": 0.1}, label="SGD")]
    lib.plot.contour(bowl, runs)

To draw several panels, pass axes made by the caller::

    fig, (left, right) = plt.subplots(1, 2)
    lib.plot.contour(bowl, runs, ax=left)
    lib.plot.loss_curves({"SGD": runs[0].losses}, ax=right)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np
import torch
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from torch import Tensor

from lib import checks

if TYPE_CHECKING:
    from lib.hessian import SpectralDensity
    from lib.landscapes import Landscape, Trajectory

__all__ = [
    "BOOK_STYLE",
    "AnimationHTML",
    "contour",
    "describe",
    "loss_curves",
    "race",
    "schedules",
    "spectrum",
    "style",
    "use_style",
]

#: Okabe and Ito's palette, distinguishable with the common forms of colour blindness.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")

#: The rcParams of every figure in the book (read-only; pass overrides to :func:`style`).
#: A figure is 8 inches wide at 100 dpi: 800 CSS pixels, the width of the site's text column,
#: stored at twice that (the inline backend's "retina" PNG, see :func:`use_style`) so that it
#: stays sharp on high-density screens. At that scale one point of text is 1.39 pixels: the
#: 11-point labels and 10-point ticks and legends read at 14-15 px, the size of the site's
#: small print. Chapters choose only the height: ``plt.subplots(figsize=(8, h))``.
BOOK_STYLE: Mapping[str, Any] = MappingProxyType(
    {
        "figure.figsize": (8.0, 4.5),
        "figure.dpi": 100,
        "figure.titlesize": 13.0,
        "savefig.dpi": 200,
        "savefig.bbox": "tight",
        "font.size": 11.0,
        "axes.titlesize": 12.0,
        "axes.labelsize": 11.0,
        "xtick.labelsize": 10.0,
        "ytick.labelsize": 10.0,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.prop_cycle": cycler(color=PALETTE),
        "lines.linewidth": 1.8,
        "lines.markersize": 5.0,
        "legend.frameon": True,
        "legend.framealpha": 0.9,
        "legend.edgecolor": "0.8",
        "legend.fontsize": 10.0,
        "legend.title_fontsize": 10.0,
        "image.cmap": "viridis",
    }
)

# Contour maps: a light fill (white at the floor, light grey up the walls) and thin grey lines, so the
# coloured optimizer paths stand out.
_FILL_CMAP = "Greys"
_FILL_ALPHA = 0.3
_LINE_COLOR = "0.45"


@contextlib.contextmanager
def style(overrides: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Apply the book's style (plus ``overrides``) inside a ``with`` block, and nothing outside it.

    Example::

        with lib.plot.style():
            fig, ax = plt.subplots()  # drawn in the book's style

    Args:
        overrides: rcParams that replace the book's, for instance ``{"figure.figsize": (8, 3)}``.

    Yields:
        Nothing; the previous rcParams are restored on exit, also after an error.
    """
    with mpl.rc_context({**BOOK_STYLE, **dict(overrides or {})}):
        yield


def use_style() -> None:
    """Make the book's style the notebook's default, for every figure that follows.

    The one call that changes global state, made once in each chapter's setup cell: it
    sets the rcParams of :data:`BOOK_STYLE` and, inside IPython, has the inline backend
    store each figure as a PNG at twice its pixel size (shown at its normal size), so
    figures stay sharp on high-density screens, with the figure's :func:`describe` in the
    PNG's output metadata: the site's caption and alt text. Outside IPython only the
    rcParams change.
    """
    mpl.rcParams.update(BOOK_STYLE)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # no IPython here: nothing draws inline
        return
    set_matplotlib_formats("retina")
    shell = get_ipython()
    if shell is None:
        return
    png = shell.display_formatter.formatters["image/png"]
    retina = png.lookup_by_type(Figure)
    if getattr(retina, "describes", False):  # use_style() called twice
        return

    def described(fig: Figure) -> tuple[bytes, dict[str, Any]] | None:
        result = retina(fig)
        if result is None:
            return None
        data, metadata = result if isinstance(result, tuple) else (result, {})
        return data, {**metadata, **describe(fig)}

    described.describes = True  # type: ignore[attr-defined]
    png.for_type(Figure, described)


# TeX in matplotlib labels, as a screen reader or a caption should read it.
_TEX_SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "Delta": "Δ", "epsilon": "ε",
    "varepsilon": "ε", "eta": "η", "theta": "θ", "kappa": "κ", "lambda": "λ", "mu": "μ",
    "nu": "ν", "pi": "π", "rho": "ρ", "sigma": "σ", "Sigma": "Σ", "tau": "τ", "phi": "φ",
    "omega": "ω", "nabla": "∇", "sqrt": "√", "infty": "∞", "cdot": "·", "times": "×",
    "approx": "≈", "leq": "≤", "geq": "≥", "le": "≤", "ge": "≥", "to": "→", "ell": "ℓ",
    "partial": "∂", "|": "‖", "log": "log", "max": "max", "min": "min", "mathrm": "",
    "mathbf": "", "mathcal": "", "operatorname": "", "text": "", "top": "ᵀ", "quad": " ",
    "left": "", "right": "", "big": "", "Big": "",
}  # fmt: skip


_SUPERSCRIPTS = str.maketrans("0123456789-+", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺")
_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _script(text: str, marks: str, table: dict) -> str:
    """'x^2' -> 'x²', 'w_1' -> 'w₁' where every character has a small form; else 'λ_max', 'μ^(t-k)'."""

    def replace(match: re.Match) -> str:
        body = match.group(1) or match.group(2)
        small = body.translate(table)
        if all(c not in small for c in body if not c.isspace()):
            return small
        return f"{marks}{body}" if body.isalpha() else f"{marks}({body})"

    pattern = re.escape(marks) + r"(?:\{([^{}]*)\}|([0-9A-Za-z]))"
    return re.sub(pattern, lambda m: replace(m) if (m.group(1) or "").strip() or m.group(2) else "", text)


def _plain(label: str) -> str:
    """A matplotlib label without mathtext markup: '$\\eta\\lambda_{\\max}$' -> 'ηλ_max'."""
    text = re.sub(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}", r"\1/\2", label)  # \frac{a}{b} -> a/b
    text = re.sub(r"\\[dt]?frac\s*(\w)(\w)", r"\1/\2", text)  # \frac12 -> 1/2
    text = re.sub(r"\\([A-Za-z]+|\|)", lambda m: _TEX_SYMBOLS.get(m.group(1), m.group(1)), text)
    text = _script(_script(text, "^", _SUPERSCRIPTS), "_", _SUBSCRIPTS)
    text = text.replace("$", "").replace("{", "").replace("}", "").replace("\\,", " ")
    return re.sub(r"\s+", " ", text).strip()


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _panel(ax: Axes) -> str:
    """One panel in words: what it plots against what, its scales, and the names of its series."""
    x, y = _plain(ax.get_xlabel()), _plain(ax.get_ylabel())
    if ax.images and not ax.lines:
        words = "an image" + (f" of {y} against {x}" if x and y else "")
    elif x and y:
        words = f"{y} against {x}"
    elif x or y:
        words = f"a plot with {x or y} along its {'horizontal' if x else 'vertical'} axis"
    else:
        words = "an unlabelled plot"
    logs = [
        axis
        for axis, scale in (("horizontal", ax.get_xscale()), ("vertical", ax.get_yscale()))
        if scale == "log"
    ]
    if logs:
        words += f", the {' and '.join(logs)} {'axes' if len(logs) > 1 else 'axis'} on a log scale"
    bars = [c for c in ax.containers if isinstance(c, mpl.container.BarContainer)]
    ticks = [_plain(t.get_text()) for t in ax.get_xticklabels() if t.get_text()]
    if bars and ticks:
        words += f"; bars for {', '.join(ticks)}"
    legend = ax.get_legend()
    names = [_plain(t.get_text()) for t in legend.get_texts()] if legend is not None else []
    if names:
        words += f"; {len(names)} series: {'; '.join(names)}"
    return words


def describe(fig: Figure) -> dict[str, str]:
    """What a figure shows, in words: its caption and its alt text, read from the figure itself.

    The caption is the figure's title (its ``suptitle``, or the title of its one panel, or
    its panels' titles); the alt text adds, for each panel, what it plots against what, its
    log scales, its bars and the names in its legend. :func:`use_style` stores both with every
    PNG a notebook shows, and the site prints them under the figure and gives them to screen
    readers.

    Args:
        fig: a drawn figure.

    Returns:
        ``{"caption": ..., "alt": ...}``; the caption is "" when the figure has no title.
    """
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    titles = [_plain(ax.get_title()) for ax in panels]
    suptitle = _plain(fig._suptitle.get_text()) if fig._suptitle is not None else ""
    named = [t for t in titles if t]
    if suptitle or len(named) <= 1:
        caption = suptitle or "".join(named)
    elif len(panels) == 2 and len(named) == 2:
        caption = f"Left: {_sentence(named[0])}. Right: {_sentence(named[1])}"
    else:
        caption = "Panels, in order: " + "; ".join(named)
    caption = _sentence(caption)
    parts = []
    for i, (ax, title) in enumerate(zip(panels, titles)):
        where = f"Panel {i + 1} of {len(panels)}" if len(panels) > 1 else "The figure"
        quoted = f' "{title}"' if title and title.lower() != caption.lower() else ""
        parts.append(f"{where}{quoted} shows {_panel(ax)}.")
    for legend in fig.legends:  # a legend for the whole figure
        parts.append(f"Legend: {'; '.join(_plain(t.get_text()) for t in legend.get_texts())}.")
    alt = " ".join([f"{caption}." if caption else "", *parts]).strip()
    return {"caption": caption, "alt": alt}


def _new_axes(ax: Axes | None, **subplot_kw: Any) -> tuple[Figure, Axes]:
    """A fresh figure (not registered with pyplot) with one axes, or the given axes' figure."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(layout="constrained")
    return fig, fig.add_subplot(**subplot_kw)


def _numpy(values: Tensor | Sequence[float] | np.ndarray) -> np.ndarray:
    if isinstance(values, Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=float)


def _as_runs(trajectories: Sequence[Trajectory] | Mapping[str, Trajectory]) -> list[tuple[str, Trajectory]]:
    if isinstance(trajectories, Mapping):
        return [(str(label), run) for label, run in trajectories.items()]
    return [(run.label, run) for run in trajectories]


def _contour_levels(z: np.ndarray, levels: int, log: bool) -> np.ndarray:
    """Levels spread evenly in value, or geometrically above the minimum for steep surfaces."""
    z_min, z_max = float(np.nanmin(z)), float(np.nanmax(z))
    if not log or z_max <= z_min:
        return np.linspace(z_min, z_max, levels)
    # shift so the lowest point sits just above zero, then space levels geometrically
    offset = z_min - 1e-3 * (z_max - z_min)
    shifted = np.geomspace(z_min - offset, z_max - offset, levels)
    return shifted + offset


def contour(
    landscape: Landscape,
    trajectories: Sequence[Trajectory] | Mapping[str, Trajectory] = (),
    *,
    ax: Axes | None = None,
    levels: int = 30,
    log_levels: bool = True,
    n: int = 200,
    filled: bool = True,
    show_points: bool = True,
    title: str | None = None,
    rc: Mapping[str, Any] | None = None,
) -> Figure | Axes:
    """A contour plot of a landscape with optimizer paths drawn on it.

    Each trajectory is a labelled line with small markers at the visited points, a circle
    at its start and its end marked; a diverged run ends with a cross. Known minima are
    marked with stars and saddles with plus signs.

    Args:
        landscape: the surface (a :class:`lib.landscapes.Landscape`).
        trajectories: runs from :func:`lib.landscapes.trajectory`, labelled by their
            ``label``, or a mapping ``label -> run``.
        ax: axes to draw on; a new figure is made when None.
        levels: the number of contour levels, at least 2.
        log_levels: space levels geometrically above the minimum (shows the floor of
            steep valleys such as Rosenbrock's); evenly otherwise.
        n: grid points per axis.
        filled: fill between the contour lines.
        show_points: mark the landscape's minima and saddles.
        title: the title; defaults to the landscape's name and (when short) formula.
        rc: rcParams overriding the book's style.

    Returns:
        The new ``Figure``, or ``ax`` when one was given.

    Raises:
        ValueError: if ``levels < 2``.
    """
    if levels < 2:
        raise ValueError(f"levels must be at least 2, got {levels}")
    with style(rc):
        fig, axes = _new_axes(ax)
        x, y, z = (_numpy(t) for t in landscape.grid(n))
        values = _contour_levels(z, levels, log_levels)
        if filled:
            axes.contourf(x, y, z, levels=values, cmap=_FILL_CMAP, alpha=_FILL_ALPHA)
        # level lines without anti-aliasing: at the 2x resolution of the book's PNGs they look
        # the same, and the image is a quarter of the size (a notebook holds several maps)
        axes.contour(x, y, z, levels=values, colors=_LINE_COLOR, linewidths=0.5, antialiased=False)
        if show_points:
            for i, point in enumerate(landscape.minima):
                axes.plot(*point, "*", color="gold", markeredgecolor="black", markersize=12, zorder=5,
                          label="minimum" if i == 0 else None)  # fmt: skip
            for i, point in enumerate(landscape.saddles):
                axes.plot(*point, "P", color="white", markeredgecolor="black", markersize=9, zorder=5,
                          label="saddle" if i == 0 else None)  # fmt: skip
        for label, run in _as_runs(trajectories):
            path = _numpy(run.path)
            (line,) = axes.plot(path[:, 0], path[:, 1], "-", marker=".", markersize=3, label=label, zorder=6)
            axes.plot(*path[0], "o", color=line.get_color(), markersize=6, zorder=7)
            end_marker = "X" if run.diverged else "s"
            axes.plot(*path[-1], end_marker, color=line.get_color(), markeredgecolor="black", zorder=7)
        x_min, x_max, y_min, y_max = landscape.box
        axes.set_xlim(x_min, x_max)
        axes.set_ylim(y_min, y_max)
        axes.set_xlabel("$x$")
        axes.set_ylabel("$y$")
        if title is None:  # the formula when it fits on one line
            title = (
                f"{landscape.name}: ${landscape.formula}$" if len(landscape.formula) <= 50 else landscape.name
            )
        axes.set_title(title)
        axes.grid(False)
        if axes.get_legend_handles_labels()[1]:  # beside the map, never over a path
            axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return axes if ax is not None else fig


def _history_arrays(label: str, history: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(losses, elapsed seconds or None) from a history object or a plain sequence of losses."""
    if hasattr(history, "step_loss"):
        losses = _numpy(
            list(history.step_loss) if not isinstance(history.step_loss, Tensor) else history.step_loss
        )
        times = getattr(history, "step_time", None)
        times = None if times is None or len(times) == 0 else _numpy(times)
        if times is not None and times.shape != losses.shape:
            raise ValueError(
                f"history {label!r} has {losses.size} step_loss values but {times.size} step_time values"
            )
        return losses, times
    if isinstance(history, str) or not isinstance(history, Sequence | Tensor | np.ndarray):
        raise ValueError(
            f"history {label!r} must have attributes step_loss and step_time, or be a sequence of losses; "
            f"got {type(history).__name__}"
        )
    return _numpy(history).reshape(-1), None


def loss_curves(
    histories: Mapping[str, Any],
    *,
    against: str = "step",
    ax: Axes | None = None,
    log: bool = True,
    smooth: int = 1,
    title: str | None = None,
    rc: Mapping[str, Any] | None = None,
) -> Figure | Axes:
    r"""Training loss against step, against wall-clock time, or both side by side.

    A history is any object with attributes ``step_loss`` (the loss at each step) and
    ``step_time`` (seconds since the start of training at each step), as
    ``lib.train.fit`` returns, or a plain sequence of losses (which can only be drawn
    against the step). With ``smooth = w > 1`` each curve is the running mean of the last
    :math:`w` losses,

    .. math::

        \bar L_t = \frac{1}{\min(w, t + 1)} \sum_{s = \max(0, t - w + 1)}^{t} L_s,

    which tames the noise of mini-batch losses.

    Args:
        histories: a mapping ``label -> history``, one curve each.
        against: ``"step"``, ``"time"`` (wall-clock seconds) or ``"both"`` (two panels).
        ax: axes to draw on (not with ``"both"``); a new figure is made when None.
        log: logarithmic loss axis (only used when every loss is positive).
        smooth: window of the running mean, 1 for none.
        title: the figure title.
        rc: rcParams overriding the book's style.

    Returns:
        The new ``Figure``, or ``ax`` when one was given.

    Raises:
        ValueError: for an unknown ``against``, ``"both"`` with an ``ax``, ``smooth < 1``,
            an empty ``histories``, or a history without times drawn against time.
    """
    if against not in ("step", "time", "both"):
        raise ValueError(f"against must be 'step', 'time' or 'both', got {against!r}")
    if against == "both" and ax is not None:
        raise ValueError("against='both' draws two panels: pass ax=None")
    checks.integer("smooth", smooth, 1)  # 1: no smoothing
    if len(histories) == 0:
        raise ValueError("histories must hold at least one label -> history")
    curves = {label: _history_arrays(label, history) for label, history in histories.items()}
    kinds = ["step", "time"] if against == "both" else [against]
    if "time" in kinds:
        untimed = [label for label, (_, times) in curves.items() if times is None]
        if untimed:
            raise ValueError(f"histories {untimed} have no step_time: draw them with against='step'")
    with style(rc):
        if ax is not None:
            fig, panels = ax.figure, [ax]
        else:
            size = mpl.rcParams["figure.figsize"]
            fig = Figure(figsize=(size[0] * len(kinds), size[1]), layout="constrained")
            panels = list(np.atleast_1d(fig.subplots(1, len(kinds))))
        for axes, kind in zip(panels, kinds, strict=True):
            for label, (losses, times) in curves.items():
                y = _running_mean(losses, smooth)
                x = np.arange(losses.size) if kind == "step" else times
                axes.plot(x, y, label=label)
            all_losses = np.concatenate([losses for losses, _ in curves.values()])
            if log and all_losses.size and np.all(all_losses[np.isfinite(all_losses)] > 0):
                axes.set_yscale("log")
            axes.set_xlabel("step" if kind == "step" else "wall-clock time (s)")
            axes.set_ylabel("training loss" + (f" (running mean of {smooth})" if smooth > 1 else ""))
            if len(curves) > 1:
                axes.legend()
        if title is not None and ax is None:
            fig.suptitle(title)
        elif title is not None:
            ax.set_title(title)
    return ax if ax is not None else fig


def _running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """The mean of the last ``window`` values at each index (fewer at the start)."""
    if window == 1:
        return values
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    index = np.arange(values.size)
    first = np.maximum(index - window + 1, 0)
    return (cumulative[index + 1] - cumulative[first]) / (index + 1 - first)


def schedules(
    schedules: Mapping[str, Callable[[int], float]],
    steps: int,
    *,
    ax: Axes | None = None,
    log: bool = False,
    title: str | None = None,
    rc: Mapping[str, Any] | None = None,
) -> Figure | Axes:
    """Learning-rate schedules against the step: one curve ``t -> lr(t)`` per schedule.

    Args:
        schedules: a mapping ``label -> schedule``, each a function of the step
            :math:`t = 0, \\dots, \\text{steps} - 1` returning the learning rate.
        steps: how many steps to draw, positive.
        ax: axes to draw on; a new figure is made when None.
        log: logarithmic learning-rate axis.
        title: the title.
        rc: rcParams overriding the book's style.

    Returns:
        The new ``Figure``, or ``ax`` when one was given.

    Raises:
        ValueError: if ``steps`` is not a positive integer or ``schedules`` is empty.
    """
    checks.integer("steps", steps, 1)
    if len(schedules) == 0:
        raise ValueError("schedules must hold at least one label -> schedule")
    with style(rc):
        fig, axes = _new_axes(ax)
        t = np.arange(steps)
        for label, schedule in schedules.items():
            axes.plot(t, [float(schedule(int(s))) for s in t], label=label)
        if log:
            axes.set_yscale("log")
        axes.set_xlabel("step")
        axes.set_ylabel("learning rate")
        if title is not None:
            axes.set_title(title)
        if len(schedules) > 1:
            axes.legend()
    return axes if ax is not None else fig


def spectrum(
    eigenvalues: Tensor | Sequence[float] | SpectralDensity,
    *,
    ax: Axes | None = None,
    bins: int = 50,
    grid_points: int = 400,
    sigma: float | None = None,
    log_density: bool = False,
    title: str | None = None,
    rc: Mapping[str, Any] | None = None,
) -> Figure | Axes:
    """A Hessian spectrum: a histogram of eigenvalues, or a smoothed density curve.

    Given eigenvalues (for instance from ``torch.linalg.eigvalsh`` of a dense Hessian),
    draws their histogram; given a :class:`lib.hessian.SpectralDensity` (from stochastic
    Lanczos quadrature), draws its Gaussian-smoothed density. A dashed line marks zero:
    mass to its left is negative curvature.

    Args:
        eigenvalues: the eigenvalues, or a spectral density.
        ax: axes to draw on; a new figure is made when None.
        bins: histogram bins.
        grid_points: points of the density curve.
        sigma: width of the smoothing kernel of a density; see
            :meth:`lib.hessian.SpectralDensity.smooth`.
        log_density: logarithmic density axis (the bulk near zero dwarfs the outliers).
        title: the title.
        rc: rcParams overriding the book's style.

    Returns:
        The new ``Figure``, or ``ax`` when one was given.

    Raises:
        ValueError: if there are no eigenvalues or ``bins < 1``.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    with style(rc):
        fig, axes = _new_axes(ax)
        if hasattr(eigenvalues, "nodes") and hasattr(eigenvalues, "smooth"):
            nodes = eigenvalues.nodes
            low, high = nodes.min().item(), nodes.max().item()
            pad = 0.05 * (high - low) if high > low else 1.0
            grid = torch.linspace(low - pad, high + pad, grid_points, dtype=nodes.dtype, device=nodes.device)
            density = eigenvalues.smooth(grid, sigma)
            axes.plot(_numpy(grid), _numpy(density), label="spectral density")
            axes.fill_between(_numpy(grid), _numpy(density), alpha=0.25)
            axes.set_ylabel("density")
        else:
            values = _numpy(eigenvalues).reshape(-1)
            if values.size == 0:
                raise ValueError("eigenvalues must not be empty")
            axes.hist(values, bins=bins, alpha=0.8, label="eigenvalues")
            axes.set_ylabel("count")
        if log_density:
            axes.set_yscale("log")
        axes.axvline(0.0, color="black", linestyle="--", linewidth=0.8)
        axes.set_xlabel(r"eigenvalue $\lambda$ of the Hessian")
        if title is not None:
            axes.set_title(title)
    return axes if ax is not None else fig


class AnimationHTML:
    """An animation as self-contained HTML that renders itself in Jupyter and on the site.

    Jupyter shows ``html`` (through ``_repr_html_``); the plain-text form is one short
    line, so a notebook stores the animation once. The HTML is the same on every run for the
    same frames (its element ids are a hash of its content), loads nothing from the network
    and scales to the width of the page.

    Attributes:
        html: the HTML document fragment with the drawing, the play controls and the script.
        frames: the number of frames it holds.
    """

    __slots__ = ("frames", "html")

    def __init__(self, html: str, frames: int) -> None:
        self.html = html
        self.frames = frames

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"<animation: {self.frames} frames, {len(self.html) / 1024:.0f} kB of HTML>"


# The controls' icons: small inline SVG shapes (no icon font, nothing fetched).
_ICONS = {
    "first": '<path d="M3 2h2v12H3zM14 2v12L6 8z"/>',
    "back": '<path d="M12 2v12L4 8z"/>',
    "play": '<path d="M4 2v12l10-6z"/>',
    "pause": '<path d="M3 2h4v12H3zM9 2h4v12H9z"/>',
    "forward": '<path d="M4 2v12l8-6z"/>',
    "last": '<path d="M11 2h2v12h-2zM2 2v12l8-6z"/>',
}

_RACE_CSS = """\
.book-race{max-width:100%;margin:0 auto;font-family:inherit}
.book-race svg.book-race-plot{display:block;width:100%;height:auto}
.book-race-controls{display:flex;flex-wrap:wrap;align-items:center;gap:.4em;margin-top:.3em}
.book-race-controls button{display:inline-flex;align-items:center;justify-content:center;
width:2.4em;height:2.2em;padding:0;border:1px solid #888;border-radius:.3em;
background:#f4f4f4;color:#222;cursor:pointer}
.book-race-controls button:focus-visible{outline:2px solid #0072B2;outline-offset:1px}
.book-race-controls button svg{width:1em;height:1em;fill:currentColor}
.book-race-controls input[type=range]{flex:1 1 8em;min-width:6em}
.book-race-step{font-variant-numeric:tabular-nums;min-width:6.5em;text-align:right;font-size:.9em}
"""

_RACE_JS = """\
(function () {
  var root = document.getElementById("%(uid)s");
  if (!root || root.dataset.ready) { return; }
  root.dataset.ready = "1";
  var data = %(data)s;
  var lines = data.runs.map(function (_, i) { return root.querySelector(".book-race-line-" + i); });
  var heads = data.runs.map(function (_, i) { return root.querySelector(".book-race-head-" + i); });
  var slider = root.querySelector("input[type=range]");
  var label = root.querySelector(".book-race-step");
  var play = root.querySelector("[data-action=play]");
  var frame = 0, timer = null;
  function show(f) {
    frame = Math.max(0, Math.min(data.shown.length - 1, f));
    var step = data.shown[frame];
    data.runs.forEach(function (run, i) {
      var upto = Math.min(step, run.length / 2 - 1), points = [];
      for (var k = 0; k <= upto; k++) { points.push(run[2 * k] + "," + run[2 * k + 1]); }
      lines[i].setAttribute("points", points.join(" "));
      heads[i].setAttribute("cx", run[2 * upto]);
      heads[i].setAttribute("cy", run[2 * upto + 1]);
    });
    slider.value = frame;
    label.textContent = "step " + step + " of " + data.last;
  }
  function setPlaying(on) {
    if (timer) { clearInterval(timer); timer = null; }
    if (on) {
      if (frame >= data.shown.length - 1) { show(0); }
      timer = setInterval(function () {
        if (frame >= data.shown.length - 1) { setPlaying(false); } else { show(frame + 1); }
      }, data.interval);
    }
    play.innerHTML = on ? data.icons.pause : data.icons.play;
    play.setAttribute("aria-label", on ? "Pause" : "Play");
    play.title = on ? "Pause" : "Play";
  }
  function jump(action, target) {
    root.querySelector("[data-action=" + action + "]").onclick = function () {
      setPlaying(false);
      show(target());
    };
  }
  jump("first", function () { return 0; });
  jump("back", function () { return frame - 1; });
  jump("forward", function () { return frame + 1; });
  jump("last", function () { return data.shown.length - 1; });
  play.onclick = function () { setPlaying(!timer); };
  slider.oninput = function () { setPlaying(false); show(parseInt(slider.value, 10)); };
  show(0);
})();
"""


def _svg_for_html(svg: str, css_class: str) -> str:
    """matplotlib's SVG document as an element inside HTML: no XML prolog and no metadata,
    no fixed size, so it scales to its box (CSS gives ``css_class`` its width), and its
    path coordinates cut to one decimal (in points)."""
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*"', rf'<svg class="{css_class}" \1', svg, count=1)
    svg = re.sub(r"(?s)\s*<metadata>.*?</metadata>", "", svg)
    # path coordinates to a tenth of a point, far below what a screen shows: a third of the bytes
    return re.sub(r'(?<= d=")[^"]*', lambda path: re.sub(r"(?<=\d\.\d)\d+", "", path.group()), svg)


def _icon(name: str) -> str:
    return f'<svg viewBox="0 0 16 16" aria-hidden="true" focusable="false">{_ICONS[name]}</svg>'


def race(
    landscape: Landscape,
    trajectories: Sequence[Trajectory] | Mapping[str, Trajectory],
    *,
    frames: int = 30,
    fps: int = 10,
    figsize: tuple[float, float] = (8.0, 5.5),
    title: str | None = None,
    rc: Mapping[str, Any] | None = None,
) -> AnimationHTML:
    """An animation of optimizers racing on a landscape, as self-contained HTML.

    The contour map is drawn once, as vector graphics (SVG) in the book's style; each
    frame extends every path by the same number of steps, with the current point as a dot.
    A few lines of JavaScript in the HTML move the paths and drive the controls (first,
    back, play/pause, forward, last and a slider), so the animation plays on a static site
    without a kernel and without a network: no image frames, no icon font, nothing fetched.
    The drawing scales to the width of the page and stays sharp on any screen; the legend
    sits below the map, off the paths.

    Args:
        landscape: the surface.
        trajectories: the runs to animate, as in :func:`contour`; they may have different
            lengths (a diverged run stops where it blew up).
        frames: the number of frames, at least 2.
        fps: frames per second of playback, positive.
        figsize: size of the drawing in inches (its aspect ratio and the size of its text
            relative to the page; it is shown at the width of the text column).
        title: the title; defaults to the landscape's name.
        rc: rcParams overriding the book's style.

    Returns:
        An :class:`AnimationHTML`: it renders as the animation when it is the last
        expression of a notebook cell, and its ``html`` can be written to a file as it is.

    Raises:
        ValueError: if ``frames < 2``, ``fps`` is not positive or there are no trajectories.
    """
    runs = _as_runs(trajectories)
    if not runs:
        raise ValueError("trajectories must hold at least one run")
    checks.integer("frames", frames, 2)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    longest = max(run.path.shape[0] for _, run in runs)
    # the step shown in each frame, from the start to the end of the longest run
    shown = np.unique(np.linspace(0, longest - 1, frames).round().astype(int))
    overrides = {"svg.fonttype": "path", "svg.hashsalt": "lib.plot.race", "savefig.bbox": None}
    with style({**dict(rc or {}), **overrides}):
        # 72 dpi: one display unit is one SVG unit (a point), so paths map onto the drawing
        fig = Figure(figsize=figsize, dpi=72, layout="constrained")
        axes = fig.add_subplot()
        x, y, z = (_numpy(t) for t in landscape.grid(100))
        values = _contour_levels(z, 15, True)
        axes.contourf(x, y, z, levels=values, cmap=_FILL_CMAP, alpha=_FILL_ALPHA)
        axes.contour(x, y, z, levels=values, colors=_LINE_COLOR, linewidths=0.5)
        for point in landscape.minima:
            axes.plot(*point, "*", color="gold", markeredgecolor="black", markersize=12, zorder=5)
        x_min, x_max, y_min, y_max = landscape.box
        axes.set_xlim(x_min, x_max)
        axes.set_ylim(y_min, y_max)
        axes.set_xlabel("$x$")
        axes.set_ylabel("$y$")
        axes.grid(False)
        axes.set_title(title if title is not None else landscape.name)
        colors = [PALETTE[i % len(PALETTE)] for i in range(len(runs))]
        handles = [
            Line2D([], [], color=color, marker="o", markersize=6, label=label)
            for (label, _), color in zip(runs, colors, strict=True)
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(runs), 3))
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", dpi=72, metadata={"Date": None})
        svg = buffer.getvalue()
        height = fig.bbox.height
        # the paths in SVG coordinates (y grows downwards), rounded to a tenth of a point
        paths = []
        for _, run in runs:
            points = axes.transData.transform(np.nan_to_num(_numpy(run.path), posinf=1e6, neginf=-1e6))
            points[:, 1] = height - points[:, 1]
            paths.append(np.clip(points, -1e4, 1e4).round(1))
        box = axes.get_window_extent()
    svg = _svg_for_html(svg, "book-race-plot")
    data = {
        "runs": [[float(v) for v in path.reshape(-1)] for path in paths],
        "shown": [int(s) for s in shown],
        "last": longest - 1,
        "interval": round(1000 / fps),
        "icons": {"play": _icon("play"), "pause": _icon("pause")},
    }
    uid = "book-race-" + hashlib.sha1((svg + json.dumps(data)).encode()).hexdigest()[:16]
    clip = f"{uid}-clip"
    overlay = [
        f'<clipPath id="{clip}"><rect x="{box.x0:.1f}" y="{height - box.y1:.1f}" '
        f'width="{box.width:.1f}" height="{box.height:.1f}"/></clipPath>',
        f'<g clip-path="url(#{clip})">',
    ]
    for i, color in enumerate(colors):
        overlay.append(
            f'<polyline class="book-race-line-{i}" points="" fill="none" stroke="{color}" '
            f'stroke-width="{mpl.rcParams["lines.linewidth"] * 1.2:.1f}" stroke-linejoin="round"/>'
        )
    for i, color in enumerate(colors):
        overlay.append(
            f'<circle class="book-race-head-{i}" r="5" fill="{color}" stroke="black" stroke-width="0.8"/>'
        )
    overlay.append("</g>")
    svg = svg.replace("</svg>", "\n".join(overlay) + "\n</svg>")
    buttons = "".join(
        f'<button type="button" data-action="{action}" title="{text}" aria-label="{text}">'
        f"{_icon(icon)}</button>"
        for action, icon, text in [
            ("first", "first", "First frame"),
            ("back", "back", "Previous frame"),
            ("play", "play", "Play"),
            ("forward", "forward", "Next frame"),
            ("last", "last", "Last frame"),
        ]
    )
    column = BOOK_STYLE["figure.figsize"][0] * BOOK_STYLE["figure.dpi"]  # a figure's width in pixels
    html = (
        f'<div class="book-race" id="{uid}" style="max-width:{column:.0f}px">\n'
        f"<style>{_RACE_CSS}</style>\n{svg}\n"
        f'<div class="book-race-controls">{buttons}'
        f'<input type="range" min="0" max="{len(shown) - 1}" step="1" value="0" aria-label="Frame">'
        f'<span class="book-race-step" aria-live="off"></span></div>\n'
        f"<script>\n{_RACE_JS % {'uid': uid, 'data': json.dumps(data, separators=(',', ':'))}}</script>\n"
        "</div>"
    )
    return AnimationHTML(html, frames=len(shown))
