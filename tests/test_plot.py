"""Tests for lib.plot: what each figure holds, and that nothing global changes."""

import json
import math
import re

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from lib import hessian as H
from lib import landscapes as L
from lib import plot as P
from lib.train import History


def history(n, scale=1.0, seconds_per_step=0.01):
    """A lib.train.History as fit fills it, with only the step lists the plots read."""
    return History(
        step_loss=[scale / (t + 1) for t in range(n)],
        step_time=[seconds_per_step * (t + 1) for t in range(n)],
    )


@pytest.fixture
def rc_unchanged():
    """Fail if a test leaves matplotlib's global rcParams different from before."""
    before = {key: str(value) for key, value in mpl.rcParams.items()}
    figures_before = plt.get_fignums()
    yield
    after = {key: str(value) for key, value in mpl.rcParams.items()}
    assert {k for k in before if before[k] != after[k]} == set()
    assert plt.get_fignums() == figures_before  # nothing registered with pyplot


@pytest.fixture
def runs():
    surface = L.local_and_global()
    return surface, [
        L.trajectory(surface, torch.optim.SGD, {"lr": 0.01}, steps=200, label="GD"),
        L.trajectory(surface, torch.optim.SGD, {"lr": 0.01, "momentum": 0.9}, steps=200, label="momentum"),
    ]


def legend_labels(ax):
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def test_style_context_applies_and_restores(rc_unchanged):
    before = mpl.rcParams["axes.spines.top"]
    with P.style({"figure.figsize": (3.0, 2.0)}):
        assert mpl.rcParams["axes.spines.top"] is False
        assert tuple(mpl.rcParams["figure.figsize"]) == (3.0, 2.0)
    assert mpl.rcParams["axes.spines.top"] == before
    with pytest.raises(TypeError):
        P.BOOK_STYLE["font.size"] = 20  # the book's style is read-only


def test_contour_draws_each_trajectory_with_its_label(rc_unchanged, runs):
    surface, trajectories = runs
    fig = P.contour(surface, trajectories)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    labels = legend_labels(ax)
    assert "GD" in labels and "momentum" in labels
    drawn = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(drawn["momentum"].get_xydata(), trajectories[1].path.numpy())
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title().startswith(surface.name)
    assert ax.get_xlim() == surface.box[:2]
    fig.canvas.draw()  # the title's LaTeX must parse in mathtext


def test_contour_accepts_mapping_and_given_axes(rc_unchanged, runs):
    surface, trajectories = runs
    fig, (left, right) = plt.subplots(1, 2)
    try:
        returned = P.contour(surface, {"first": trajectories[0]}, ax=right)
        assert returned is right
        assert "first" in legend_labels(right)
        assert not left.get_lines()
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    "landscape",
    [L.quadratic(), L.himmelblau(), L.saddle(), L.monkey_saddle(), L.ravine()],
    ids=lambda f: f.name,
)
def test_every_landscape_renders(rc_unchanged, landscape):
    fig = P.contour(landscape, n=40, levels=10)
    fig.canvas.draw()
    assert fig.axes[0].collections  # contour sets were drawn


def test_loss_curves_against_step_and_time(rc_unchanged):
    histories = {"fast": history(50, seconds_per_step=0.01), "slow": history(50, seconds_per_step=0.05)}
    fig = P.loss_curves(histories, against="both")
    by_step, by_time = fig.axes
    assert by_step.get_xlabel() == "step" and "time" in by_time.get_xlabel()
    assert by_step.get_ylabel() and by_step.get_yscale() == "log"
    assert legend_labels(by_step) == ["fast", "slow"]
    slow = next(line for line in by_time.get_lines() if line.get_label() == "slow")
    assert slow.get_xdata()[-1] == pytest.approx(2.5)  # 50 steps at 0.05 s
    np.testing.assert_allclose(slow.get_ydata(), histories["slow"].step_loss)


def test_loss_curves_plain_sequences_and_smoothing(rc_unchanged):
    noisy = [1.0, 3.0, 1.0, 3.0, 1.0, 3.0]
    fig = P.loss_curves({"noisy": noisy, "tensor": torch.tensor(noisy)}, smooth=2, log=False)
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert len(lines) == 2
    # running mean of the last two: first value alone, then pairs average to 2
    np.testing.assert_allclose(lines[0].get_ydata(), [1.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    np.testing.assert_allclose(lines[1].get_ydata(), lines[0].get_ydata())


def test_loss_curves_bad_input(rc_unchanged):
    with pytest.raises(ValueError, match="have no step_time"):
        P.loss_curves({"plain": [1.0, 0.5]}, against="time")
    with pytest.raises(ValueError, match="against must be 'step', 'time' or 'both'"):
        P.loss_curves({"a": [1.0]}, against="epoch")
    with pytest.raises(ValueError, match="smooth must be an integer >= 1, got "):
        P.loss_curves({"a": [1.0]}, smooth=0)
    with pytest.raises(ValueError, match="step_loss values but"):
        P.loss_curves({"a": History(step_loss=[1.0, 0.5], step_time=[0.1])})
    with pytest.raises(ValueError, match="at least one"):
        P.loss_curves({})


def test_schedules_plot_each_schedule_over_the_steps(rc_unchanged):
    def cosine(t):
        return 0.05 * (1 + math.cos(math.pi * t / 100))

    fig = P.schedules({"constant": lambda t: 0.1, "cosine": cosine}, steps=100)
    (ax,) = fig.axes
    assert legend_labels(ax) == ["constant", "cosine"]
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "learning rate"
    line = ax.get_lines()[1]
    assert len(line.get_xdata()) == 100
    assert line.get_ydata()[0] == pytest.approx(0.1) and line.get_ydata()[50] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got "):
        P.schedules({"constant": lambda t: 0.1}, steps=0)


def test_spectrum_histogram_and_density(rc_unchanged):
    eigenvalues = torch.tensor([-1.0, 0.0, 0.1, 0.2, 3.0, 3.1])
    fig = P.spectrum(eigenvalues, bins=5)
    (ax,) = fig.axes
    assert sum(patch.get_height() for patch in ax.patches) == 6  # every eigenvalue counted
    assert ax.get_xlabel() and ax.get_ylabel() == "count"

    a = torch.diag(torch.linspace(-1.0, 4.0, 30, dtype=torch.float64))
    x = torch.ones(30, dtype=torch.float64, requires_grad=True)
    density = H.spectral_density(lambda: 0.5 * x @ a @ x, [x], num_probes=4, num_steps=10)
    fig = P.spectrum(density, sigma=0.2)
    (ax,) = fig.axes
    (curve, *_) = ax.get_lines()
    grid, values = curve.get_xdata(), curve.get_ydata()
    assert ax.get_ylabel() == "density"
    assert np.trapezoid(values, grid) == pytest.approx(1.0, abs=1e-2)
    assert grid.min() < -1.0 and grid.max() > 4.0


def test_book_style_fills_the_text_column_and_is_sharp():
    width, height = P.BOOK_STYLE["figure.figsize"]
    assert width == 8.0 and 0 < height < width  # the site's text column is 8 in at 100 dpi
    assert P.BOOK_STYLE["figure.dpi"] == 100
    assert P.BOOK_STYLE["savefig.dpi"] >= 2 * P.BOOK_STYLE["figure.dpi"]  # sharp when saved
    # at 1.39 px per point, no text smaller than 10 pt (14 px, the site's small print)
    assert min(P.BOOK_STYLE[k] for k in ("font.size", "legend.fontsize", "xtick.labelsize")) >= 10.0


def test_use_style_sets_the_book_style_globally():
    before = dict(mpl.rcParams)
    try:
        P.use_style()
        assert tuple(mpl.rcParams["figure.figsize"]) == P.BOOK_STYLE["figure.figsize"]
        assert mpl.rcParams["font.size"] == P.BOOK_STYLE["font.size"]
    finally:
        mpl.rcParams.update(before)


def test_describe_reads_caption_and_alt_text_from_the_figure(rc_unchanged):
    fig = Figure()
    left, right = fig.subplots(1, 2)
    left.plot([1, 2], [3, 4], label=r"$\eta = 0.1$")
    left.plot([1, 2], [4, 3], label="momentum")
    left.set(xlabel="step", ylabel="loss", yscale="log", title="plain")
    left.legend()
    right.plot([0, 1], [0, 1])
    right.set(title=r"$\kappa$ into $\sqrt{\kappa}$, $\frac12 x^2$")
    fig.suptitle("two optimizers")
    about = P.describe(fig)
    assert about["caption"] == "Two optimizers"
    alt = about["alt"]
    assert alt.startswith("Two optimizers. Panel 1 of 2")
    assert "loss against step, the vertical axis on a log scale; 2 series: η = 0.1; momentum" in alt
    assert 'Panel 2 of 2 "κ into √κ, 1/2 x²" shows an unlabelled plot' in alt
    assert "$" not in alt and "\\" not in alt


def test_describe_of_one_panel_takes_its_title_as_the_caption(rc_unchanged):
    fig = Figure()
    ax = fig.subplots()
    ax.plot([1, 2], [1, 2])
    ax.set(title="loss against $\\lambda_{\\max}$", xlabel="x", ylabel="y")
    assert P.describe(fig) == {
        "caption": "Loss against λ_max",
        "alt": "Loss against λ_max. The figure shows y against x.",
    }


def test_describe_names_images_bars_and_untitled_figures(rc_unchanged):
    fig = Figure()
    left, right = fig.subplots(1, 2)
    left.imshow(np.zeros((4, 4)))
    left.set_title("digit 3")
    right.bar(["SGD", "Adam"], [0.9, 0.95])
    right.set(title="final accuracy", ylabel="accuracy")
    about = P.describe(fig)
    assert about["caption"] == "Left: Digit 3. Right: Final accuracy"  # no suptitle: the panels' titles
    assert 'Panel 1 of 2 "digit 3" shows an image.' in about["alt"]
    assert "a plot with accuracy along its vertical axis; bars for SGD, Adam" in about["alt"]
    subscripts = Figure().subplots()
    subscripts.set(
        xlabel="$w_1$", ylabel=r"$\mu^{t-k}$", title=r"$\frac{1}{2}\left(x^2 + \eta_{\max}\right)$"
    )
    assert P.describe(subscripts.figure)["alt"] == "1/2(x² + η_max). The figure shows μ^(t-k) against w₁."
    subscripts.plot([0, 1], label="plain SGD")
    subscripts.figure.legend(loc="lower center")
    assert P.describe(subscripts.figure)["alt"].endswith("Legend: plain SGD.")


def test_use_style_stores_the_description_with_each_png():
    """In IPython the figure's PNG output carries describe()'s caption and alt text."""
    from IPython.core.interactiveshell import InteractiveShell

    before = dict(mpl.rcParams)
    shell = InteractiveShell.instance()
    try:
        P.use_style()
        P.use_style()  # a second call wraps the formatter once, not twice
        fig = Figure()
        ax = fig.subplots()
        ax.plot([1, 2], [1, 2])
        ax.set_title("a line")
        data, metadata = shell.display_formatter.format(fig)
        assert "image/png" in data
        stored = metadata["image/png"]
        assert stored["caption"] == "A line" and stored["alt"].startswith("A line. The figure shows")
        assert {"width", "height"} <= set(stored)  # the retina PNG's display size is kept
    finally:
        mpl.rcParams.update(before)
        InteractiveShell.clear_instance()


def test_contour_legend_sits_beside_the_map(rc_unchanged, runs):
    surface, trajectories = runs
    fig = P.contour(surface, trajectories)
    fig.draw_without_rendering()  # runs the constrained layout
    (ax,) = fig.axes
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # never over a path
    assert max(legend.x1, ax.get_window_extent().x1) <= fig.bbox.x1 + 1  # inside the figure


def race_html(animation):
    html = animation._repr_html_()
    assert html == animation.html
    return html


def test_race_is_vector_graphics_with_local_controls(rc_unchanged, runs):
    surface, trajectories = runs
    animation = P.race(surface, trajectories, frames=6)
    html = race_html(animation)
    assert html.count("<svg") >= 2 and "<script>" in html
    assert "data:image" not in html  # no raster frames
    # nothing fetched: no stylesheet, script or image from anywhere (XML namespaces are names)
    assert re.findall(r'(?:src|href)="(?!#)[^"]*"', html) == []
    assert "<link" not in html and "font-awesome" not in html.lower()
    for action in ("first", "back", "play", "forward", "last"):
        assert f'data-action="{action}"' in html
    assert html.count('class="book-race-line-') == len(trajectories)
    assert 'style="max-width:800px"' in html  # as wide as the figures: the text column
    assert len(html) < 0.5 * 2**20
    assert repr(animation) == f"<animation: 6 frames, {len(html) / 1024:.0f} kB of HTML>"


def test_race_paths_land_on_the_map(rc_unchanged, runs):
    """The script's points are the runs' points in the SVG's coordinates, inside the axes."""
    surface, trajectories = runs
    html = P.race(surface, trajectories, frames=4).html
    data = json.loads(re.search(r"var data = (\{.*?\});", html).group(1))
    assert data["shown"][0] == 0 and data["shown"][-1] == trajectories[0].path.shape[0] - 1
    view = [float(v) for v in re.search(r'viewBox="([^"]+)"', html).group(1).split()]
    for run, points in zip(trajectories, data["runs"], strict=True):
        xy = np.asarray(points).reshape(-1, 2)
        assert xy.shape == tuple(run.path.shape)
        assert (xy[:, 0] > view[0]).all() and (xy[:, 0] < view[2]).all()
        assert (xy[:, 1] > view[1]).all() and (xy[:, 1] < view[3]).all()
        # moving right in x moves right in the drawing, moving up in y moves up (smaller SVG y)
        dx, dy = np.diff(run.path.numpy(), axis=0).T, np.diff(xy, axis=0).T
        assert (np.sign(dx[0]) * np.sign(dy[0]) >= 0).all()
        assert (np.sign(dx[1]) * np.sign(dy[1]) <= 0).all()


def test_race_animation_is_the_same_on_every_run(rc_unchanged, runs):
    surface, trajectories = runs
    first, second = (P.race(surface, trajectories, frames=3).html for _ in range(2))
    assert first == second
    assert re.search(r'id="book-race-[0-9a-f]{16}"', first), "the element id was not found"


def test_race_handles_runs_of_different_lengths(rc_unchanged):
    bowl = L.quadratic(10.0)
    stable = L.trajectory(bowl, torch.optim.SGD, {"lr": 0.1}, steps=40, label="stable")
    diverging = L.trajectory(bowl, torch.optim.SGD, {"lr": 0.3}, steps=40, label="too large", max_value=10.0)
    assert diverging.diverged and diverging.steps < stable.steps
    animation = P.race(bowl, [stable, diverging], frames=4)
    assert animation.frames == 4
    with pytest.raises(ValueError, match="frames must be an integer >= 2"):
        P.race(bowl, [stable], frames=1)
    with pytest.raises(ValueError, match="at least one run"):
        P.race(bowl, [])
    with pytest.raises(TypeError, match="colour"):
        P.race(bowl, [stable], colour="red")
