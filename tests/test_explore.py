"""lib.explore: the drawn paths sit where matplotlib draws the lines, every setting's data
reaches the page, bad grids are refused, and in Chromium the controls move the figure."""

import json
import re

import numpy as np
import pytest

from lib import explore
from scripts.browser import CHROMIUM, Browser

RATES = (0.5, 1.0, 1.5, 2.5)
STEPS = np.arange(20)


def decay(rate: float) -> tuple[np.ndarray, np.ndarray]:
    """The distance to the minimum of a quadratic after each gradient step, |1 - eta h|^t."""
    return STEPS, np.abs(1 - rate) ** STEPS


def quadratic_explorable(**overrides) -> explore.Explorable:
    arguments = dict(
        controls=[explore.Control("step size ηh", RATES, ".1f"), explore.Control("start", ("near", "far"))],
        lines=[
            explore.Line("distance", "distance to the minimum"),
            explore.Line("edge", None, style={"color": "k"}),
        ],
        results={
            (rate, start): {
                "distance": (STEPS, decay(rate)[1] * (1 if start == "near" else 100)),
                "edge": ([0, 19], [1, 1]),
            }
            for rate in RATES
            for start in ("near", "far")
        },
        texts={(rate, start): f"ηh = {rate}, start {start}" for rate in RATES for start in ("near", "far")},
        axes=dict(xlabel="step", ylabel="distance", yscale="log", ylim=(1e-6, 1e6)),
        title="Gradient descent on a quadratic",
    )
    return explore.explorable(**{**arguments, **overrides})


def page_data(html: str) -> dict:
    return json.loads(re.search(r'class="book-explore-data">(.*?)</script>', html, re.S).group(1))


def drawn_path(html: str, line: int) -> np.ndarray:
    """The vertices matplotlib wrote for one line, from the SVG."""
    d = re.search(rf'-line-{line}">\s*<path d="([^"]*)"', html).group(1)
    return np.array([float(v) for v in re.findall(r"-?[\d.]+", d)]).reshape(-1, 2)


def page_path(d: str) -> np.ndarray:
    return np.array([float(v) for v in re.findall(r"-?[\d.]+", d)]).reshape(-1, 2)


def test_the_first_settings_paths_are_where_matplotlib_draws_the_lines():
    built = quadratic_explorable()
    data = page_data(built.html)
    for line in (0, 1):
        # both are cut to a tenth of a point (rounded on the page, truncated in the SVG)
        np.testing.assert_allclose(page_path(data["paths"][0][line]), drawn_path(built.html, line), atol=0.11)


def test_every_setting_reaches_the_page_in_slider_order():
    built = quadratic_explorable()
    data = page_data(built.html)
    assert data["sizes"] == [4, 2]
    assert data["labels"] == [["0.5", "1.0", "1.5", "2.5"], ["near", "far"]]
    # the last control moves fastest: setting index = rate index * 2 + start index
    assert data["texts"][2 * 3 + 1] == "ηh = 2.5, start far"
    assert built.settings == 8 and built.texts[2.5, "far"] == "ηh = 2.5, start far"
    # a growing distance (eta h = 2.5) climbs the page: its y in points falls along the path
    rising = page_path(data["paths"][2 * 3][0])
    assert np.all(np.diff(rising[:, 1]) < 0)
    # the far start is the near one shifted by log10(100) decades on the log axis
    near, far = page_path(data["paths"][2][0]), page_path(data["paths"][3][0])
    np.testing.assert_allclose(near[:, 0], far[:, 0])
    assert np.ptp(near[:, 1] - far[:, 1]) < 0.2 and (near[:, 1] - far[:, 1]).mean() > 10


def test_values_a_log_axis_cannot_show_break_the_line():
    built = quadratic_explorable()
    # eta h = 1 reaches the minimum in one step: distance 0 after step 0, off a log axis
    d = page_data(built.html)["paths"][2][0]
    assert d.count("M") == 1 and len(page_path(d)) == 1
    nan_line = {"distance": ([0, 1, 2, 3], [1.0, np.nan, 1.0, 1.0]), "edge": ([0, 1], [1, 1])}
    results = {(rate, start): nan_line for rate in RATES for start in ("near", "far")}
    d = page_data(quadratic_explorable(results=results).html)["paths"][0][0]
    assert d.count("M") == 2 and len(page_path(d)) == 3


def test_the_html_loads_nothing_and_shares_one_script():
    first, second = quadratic_explorable(), quadratic_explorable(title="Another title")
    for html in (first.html, second.html):
        assert not re.search(r'(src|href)="(https?:)?//', html)
        assert "<noscript>" in html and 'aria-live="polite"' in html
    script = re.compile(r"<script>(.*?)</script>", re.S)
    assert script.findall(first.html) == script.findall(second.html)  # the same text: run once per page
    assert first.html != second.html and 'id="book-explore-' in first.html


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(controls=[]), "controls must hold at least one Control"),
        (dict(lines=[]), "lines must hold at least one Line"),
        (dict(controls=[explore.Control("rate", ())]), "control 'rate' has no values"),
        (dict(texts={}), "texts lacks 8 settings of the grid, such as \\(0.5, 'near'\\)"),
        (
            dict(lines=[explore.Line("distance", panel=1)]),
            "line 'distance' is drawn in panel 1, but there are 1",
        ),
        (dict(lines=[explore.Line("speed")]), "results\\[\\(0.5, 'near'\\)\\] lacks the line 'speed'"),
    ],
)
def test_bad_grids_are_refused_with_what_is_wrong(overrides, message):
    with pytest.raises(ValueError, match=message):
        quadratic_explorable(**overrides)


def test_a_setting_off_the_grid_is_refused():
    texts = {(rate, start): "" for rate in (*RATES, 3.0) for start in ("near", "far")}
    with pytest.raises(
        ValueError, match="texts holds settings off the grid, such as \\(3.0, '(near|far)'\\)"
    ):
        quadratic_explorable(texts=texts)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("width", [1400, 390])
def test_in_chromium_the_keyboard_moves_the_figure_and_the_sentence(tmp_path, width):
    one, two = quadratic_explorable(), quadratic_explorable(title="A second figure")
    page = tmp_path / "page.html"
    page.write_text(f"<!doctype html><meta charset=utf-8><body>{one.html}{two.html}</body>", encoding="utf-8")
    browser = Browser(CHROMIUM, tmp_path / "profile")
    try:
        session = browser.new_page()
        requested = browser.open(session, page.as_uri(), width)
        assert [url for url in requested if not url.startswith("file:")] == []
        roots = "document.querySelectorAll('.book-explore')"
        assert browser.evaluate(session, f"[...{roots}].map(r => r.dataset.setting)") == ["0", "0"]
        # the second explorable's rate slider: three presses of the right arrow key
        browser.evaluate(session, f"{roots}[1].querySelector('input').focus()")
        for _ in range(3):
            for kind in ("keyDown", "keyUp"):
                browser.send(
                    "Input.dispatchKeyEvent",
                    session=session,
                    type=kind,
                    key="ArrowRight",
                    code="ArrowRight",
                    windowsVirtualKeyCode=39,
                )
        shown = browser.evaluate(
            session,
            f"""(() => {{ const r = {roots}[1];
            return [r.dataset.setting, r.querySelector('p.book-explore-text').textContent,
                    r.querySelector('output').textContent,
                    r.querySelector('input').getAttribute('aria-valuetext'),
                    document.getElementById(r.id + '-line-0').querySelector('path').getAttribute('d'),
                    {roots}[0].dataset.setting]; }})()""",
        )
        data = page_data(two.html)
        assert shown == ["6", two.texts[2.5, "near"], "2.5", "2.5", data["paths"][6][0], "0"]
    finally:
        browser.close()
