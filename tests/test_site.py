"""The built site in a real browser, as readers see it on a desktop and on a phone.

Builds the book the way the README and CI do (`jupyter-book build . -W -n --keep-going`,
into a temporary folder), serves it on 127.0.0.1 and opens every page in headless Chromium
(Debian's package), driven through the DevTools protocol over a pipe (no driver, no extra
package). Every other host is unreachable for the browser, and every request a page
attempts is recorded. Each page is opened at 1400 px (a desktop) and at 390 px (a phone).
Skipped with a reason when Chromium is not installed; CI installs it.
"""

import functools
import gzip
import importlib
import re
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

import lib
from scripts.book import ROOT, repository
from scripts.browser import CHROMIUM, Browser

DESKTOP, PHONE = 1400, 390
LONG_CELL_LINES = 35  # a code cell longer than this is folded (_ext/book_cells.py)
# A figure's smallest lettering (9-point legends) is 12.5 px at full size; shown at less than
# this scale it would fall under 9 px, and the figure must say that a tap enlarges it.
READABLE_SCALE = 9 / 12.5
# Page weight, without images (they load lazily, as the reader reaches them): what a server
# that compresses (GitHub Pages does) sends, and the uncompressed size apart from MathJax's
# own files, which pages with math need (1.2 MB, 0.3 MB compressed).
BUDGET_GZIP_KB = 620  # the cheat sheet, with every rule written out and checked, loads 604
BUDGET_RAW_KB_WITHOUT_MATHJAX = 1200
BROWSER_PROBES = {"/favicon.ico"}  # asked for by the browser itself, not by any page
LOCAL_SCHEMES = {"data", "blob", "about"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"),
]


# Search fields and buttons the reader can see (the search dialog's own field opens from them).
SEARCH_BOXES = """() => [...document.querySelectorAll(".search-button__button, form.bd-search input")]
  .filter(e => e.checkVisibility()).length"""

# What a reader at 1400 px sees; returned as plain data.
DESKTOP_PROBE = r"""
(() => {
  const searchBoxes = SEARCH_BOXES;
  // raw TeX in text: a $...$ pair, $$, \( or \[, outside code (cell outputs count: they are read)
  const raw = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || el.closest("script, style, textarea, code, kbd, mjx-container, svg, .cell_input")) continue;
    if (el.closest(".highlight") && !el.closest(".cell_output")) continue;  // a code listing
    const text = node.textContent;
    if (/\$[^$\n]+\$|\$\$|\\\(|\\\[/.test(text)) raw.push(text.trim().slice(0, 100));
  }
  // raster figures: at least 1.5 stored pixels per displayed pixel (SVG is sharp at any size)
  const article = document.querySelector("article") || document.body;
  const blurry = [];
  for (const img of article.querySelectorAll("img")) {
    if (!img.checkVisibility() || img.clientWidth === 0) continue;
    if (img.classList.contains("toggler")) continue;  // Sphinx's index expander icon, not a figure
    const src = img.currentSrc || img.src;
    if (/\.svg(\?|$)|^data:image\/svg/.test(src)) continue;
    if (img.naturalWidth < 1.5 * img.clientWidth)
      blurry.push({src: src.slice(-60), natural: img.naturalWidth, shown: img.clientWidth});
  }
  const h1 = document.querySelector("article h1");
  return {raw, blurry, title: document.title, searchBoxes: searchBoxes(),
          font: getComputedStyle(document.body).fontFamily,
          h1: h1 ? h1.textContent.replace(/[#¶]\s*$/, "").trim() : "",
          dom: document.documentElement.outerHTML};
})()
""".replace("SEARCH_BOXES", SEARCH_BOXES)

# At 390 px: does the page pan sideways? (Blocks that scroll inside themselves are fine.)
PHONE_PROBE = r"""
(() => {
  const searchBoxes = SEARCH_BOXES;
  const width = document.documentElement.clientWidth;
  const clipped = el => {
    for (let e = el.parentElement; e; e = e.parentElement) {
      if (["auto", "scroll", "hidden"].includes(getComputedStyle(e).overflowX)) return true;
    }
    return false;
  };
  const wide = [];
  for (const el of document.querySelectorAll("body *")) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > width + 1 && !clipped(el) && el.checkVisibility())
      wide.push(`${el.tagName.toLowerCase()}.${String(el.className).split(" ")[0]} right=${box.right}`);
    if (wide.length >= 5) break;
  }
  const scrollWidth = document.documentElement.scrollWidth;
  return {scrollWidth, width, wide, searchBoxes: searchBoxes()};
})()
""".replace("SEARCH_BOXES", SEARCH_BOXES)


# Whether a reader sees an element: laid out, and not made invisible or transparent (a closed
# solution's content is visibility: hidden and opacity 0, still laid out).
SHOWN_JS = "(el => el.checkVisibility({visibilityProperty: true, opacityProperty: true}))"

# What a reader sees of the figures, outputs, equations and code, at either width.
LAYOUT_PROBE = r"""
(() => {
  const shown = SHOWN;
  const article = document.querySelector("article") || document.body;
  const figures = [];
  for (const img of article.querySelectorAll(".cell_output img")) {
    const figure = img.closest("figure");
    const caption = figure ? figure.querySelector("figcaption") : null;
    const cue = caption ? caption.querySelector(".book-enlarge-cue") : null;
    const link = img.closest("a");
    const visible = shown(img) && img.clientWidth > 0;
    figures.push({
      src: (img.currentSrc || img.src).split("/").pop().slice(0, 12), shown: visible, alt: img.alt,
      caption: caption ? caption.textContent.replace(/#\s*$/, "").trim() : "",
      // the rendered width/height over the image's own: 1 when the shape is kept
      ratio: visible ? (img.clientWidth / img.clientHeight) / (img.naturalWidth / img.naturalHeight) : 1,
      // CSS px per px of the figure as drawn (stored at 2x): its lettering scales by this
      scale: visible ? img.clientWidth / (img.naturalWidth / 2) : 1,
      cue: !!cue && shown(cue),
      linked: !!link && link.href.split("/").pop() === (img.currentSrc || img.src).split("/").pop(),
    });
  }
  const uncued = [];
  for (const block of article.querySelectorAll(".cell_output pre, table")) {
    if (shown(block) && block.scrollWidth > block.clientWidth + 1
        && !block.parentElement.classList.contains("book-scrolls"))
      uncued.push(`${block.scrollWidth} px in ${block.clientWidth}: ${block.textContent.slice(0, 60)}`);
  }
  const cutMath = [];
  for (const box of article.querySelectorAll('mjx-container[display="true"]')) {
    if (shown(box) && box.scrollWidth > box.clientWidth + 1)
      cutMath.push(`${box.scrollWidth} px in ${box.clientWidth}: ${box.textContent.slice(0, 60)}`);
  }
  const longCode = [];
  for (const input of article.querySelectorAll(".cell_input pre")) {
    const lines = input.textContent.replace(/\n$/, "").split("\n").length;
    if (shown(input) && lines > LONG_CELL_LINES)
      longCode.push(`${lines} lines: ${input.textContent.slice(0, 60)}`);
  }
  return {figures, uncued, cutMath, longCode};
})()
""".replace("LONG_CELL_LINES", str(LONG_CELL_LINES)).replace("SHOWN", SHOWN_JS)

# The book's own Chinese font, asked for the page's Chinese characters: the faces that load.
BUNDLED_FONT_PROBE = r"""
(async () => {
  const text = [...document.body.innerText].filter(c => /[\u3400-\u9fff]/.test(c)).join("");
  const faces = await document.fonts.load('16px "Book CJK SC"', text);
  return faces.map(face => face.status);
})()
"""

# Each solution: hidden at first; one click on its toggle shows its text, code and output.
SOLUTIONS_PROBE = r"""
(async () => {
  const shown = SHOWN;
  const found = [];
  for (const box of document.querySelectorAll(".admonition.dropdown")) {
    const title = box.querySelector(".admonition-title");
    if (!title || !/^\s*Solution/i.test(title.textContent)) continue;
    const parts = [...box.querySelectorAll(".cell_input, .cell_output")];
    const before = parts.filter(shown).length;
    const button = box.querySelector("button.toggle-button") || title;
    button.click();
    await new Promise(r => setTimeout(r, 400));
    const after = parts.filter(shown).length;
    const toggles = box.querySelectorAll("details").length;
    button.click();
    found.push({name: title.textContent.trim(), cells: parts.length, before, after, toggles});
  }
  return found;
})()
""".replace("SHOWN", SHOWN_JS)


# The search page's result snippets, once they have been built (Sphinx fetches each result).
SNIPPETS = r"""
(async () => {
  const snippets = () => [...document.querySelectorAll("#search-results li p.context")];
  for (let i = 0; i < 300 && snippets().length < 3; i++) { await new Promise(r => setTimeout(r, 100)); }
  await new Promise(r => setTimeout(r, 500));
  const results = [...document.querySelectorAll("#search-results li > a")].map(a => a.getAttribute("href"));
  return {snippets: snippets().map(p => p.textContent), results};
})()
"""
SEARCHED = ("Hessian", "seed")  # words on pages with math, and in every hidden setup cell


@dataclass
class Page:
    dom: str = ""
    results: dict = field(default_factory=dict)  # search word -> result links, best first
    requested: list = field(default_factory=list)
    desktop: dict = field(default_factory=dict)
    phone: dict = field(default_factory=dict)
    layout: dict = field(default_factory=dict)  # LAYOUT_PROBE at each width
    bundled_font: list = field(default_factory=list)  # BUNDLED_FONT_PROBE, on the glossary
    solutions: list = field(default_factory=list)
    snippets: list = field(default_factory=list)
    explorables: dict = field(default_factory=dict)  # EXPLORE_PROBE at each width
    errors: list = field(default_factory=list)  # uncaught script errors


# Each explorable: ready, its first setting as shown, then every slider moved to its end
# with an input event (what a drag or an arrow key fires), and what the page shows then,
# beside the setting's data; its controls' labels and focus, its width against its column.
EXPLORE_PROBE = r"""
[...document.querySelectorAll('.book-explore')].map(root => {
  const data = JSON.parse(root.querySelector('.book-explore-data').textContent);
  const sliders = [...root.querySelectorAll('.book-explore-control input')];
  const line = i => document.getElementById(root.id + '-line-' + i).querySelector('path');
  const lines = data.paths[0].map((_, i) => line(i));
  const read = () => ({setting: Number(root.dataset.setting),
    text: root.querySelector('p.book-explore-text').textContent, paths: lines.map(l => l.getAttribute('d'))});
  const first = read();
  sliders.forEach(s => { s.value = s.max; s.dispatchEvent(new Event('input')); });
  const last = read();
  sliders.forEach(s => { s.value = 0; s.dispatchEvent(new Event('input')); });
  return {ready: root.dataset.ready === '1', first, last, texts: data.texts, paths: data.paths,
    labelled: sliders.every(s => s.labels.length === 1 && s.getAttribute('aria-label')),
    focusable: sliders.every(s => s.tabIndex >= 0 && !s.disabled),
    width: root.getBoundingClientRect().width, column: root.parentElement.getBoundingClientRect().width};
})
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        ["jupyter-book", "build", str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return out / "_build" / "html"


class RecordingHandler(SimpleHTTPRequestHandler):
    requests: list

    def log_request(self, code="-", size="-"):
        self.requests.append((self.path.split("?")[0], int(code)))


@pytest.fixture(scope="module")
def browsed(site, tmp_path_factory):
    """Every page opened at 1400 px and at 390 px: what it showed and every request it made."""
    served = []
    handler = functools.partial(
        type("Handler", (RecordingHandler,), {"requests": served}), directory=str(site)
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    names = sorted(
        p.relative_to(site).as_posix()
        for p in site.rglob("*.html")
        if not {"_static", "_sources"} & set(p.relative_to(site).parts)
        and 'http-equiv="Refresh"' not in p.read_text()  # index.html: a redirect to the first page
    )
    pages = {}
    browser = Browser(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"))
    try:
        session = browser.new_page()
        for name in names:
            url = f"http://127.0.0.1:{server.server_port}/{name}"
            page = Page()
            since = len(browser.events)
            page.requested = browser.open(session, url, DESKTOP)
            page.desktop = browser.evaluate(session, DESKTOP_PROBE)
            page.explorables[DESKTOP] = browser.evaluate(session, EXPLORE_PROBE)
            page.dom = page.desktop.pop("dom")
            page.layout[DESKTOP] = browser.evaluate(session, LAYOUT_PROBE)
            page.solutions = browser.evaluate(session, SOLUTIONS_PROBE)
            if name == "glossary.html":
                page.bundled_font = browser.evaluate(session, BUNDLED_FONT_PROBE)
            page.requested += browser.open(session, url, PHONE)
            page.phone = browser.evaluate(session, PHONE_PROBE)
            page.layout[PHONE] = browser.evaluate(session, LAYOUT_PROBE)
            page.explorables[PHONE] = browser.evaluate(session, EXPLORE_PROBE)
            page.errors = [
                e["params"]["exceptionDetails"].get("text", "")
                + " "
                + str(e["params"]["exceptionDetails"].get("exception", {}).get("description", ""))
                for e in browser.events[since:]
                if e["method"] == "Runtime.exceptionThrown" and e.get("sessionId") == session
            ]
            pages[name] = page
        for word in SEARCHED:
            browser.open(session, f"http://127.0.0.1:{server.server_port}/search.html?q={word}", DESKTOP)
            found = browser.evaluate(session, SNIPPETS)
            pages["search.html"].snippets += found["snippets"]
            pages["search.html"].results[word] = found["results"]
    finally:
        browser.close()
        server.shutdown()
    return pages, served


def notebook_pages(pages):
    return [name for name in pages if (ROOT / name).with_suffix(".ipynb").exists()]


def visible_text(dom: str) -> str:
    """The DOM without scripts, styles and code blocks, where `$` and `\\[` are legitimate."""
    return re.sub(r"(?s)<(script|style|pre|code|textarea)\b.*?</\1>", "", dom)


def test_every_page_was_opened(site, browsed):
    pages, _ = browsed
    assert "intro.html" in pages and any(name.startswith("chapters/") for name in pages)
    assert all("</html>" in page.dom for page in pages.values())


def test_no_request_leaves_the_machine(browsed):
    """Every asset (math renderer, fonts, icons, animations) comes from the site itself."""
    pages, _ = browsed
    for name, page in pages.items():
        remote = sorted(
            {
                url
                for url in page.requested
                if urlsplit(url).scheme not in LOCAL_SCHEMES and urlsplit(url).hostname != "127.0.0.1"
            }
        )
        assert remote == [], f"{name} asks other hosts for: {remote[:5]}"
    assert any(page.requested for page in pages.values()), "no request recorded: the check proves nothing"


def test_mathjax_typeset_every_formula(site, browsed):
    pages, _ = browsed
    with_math = [name for name in pages if 'class="math notranslate' in (site / name).read_text()]
    assert with_math, "no page has math: the check below would prove nothing"
    for name in with_math:
        assert "<mjx-container" in pages[name].dom, f"{name}: MathJax did not typeset"


def test_no_raw_tex_in_the_text_of_any_page(browsed):
    """No `$...$`, `$$`, `\\(` or `\\[` left in a text node outside code, cell outputs included."""
    pages, _ = browsed
    raw = {name: page.desktop["raw"][:3] for name, page in pages.items() if page.desktop["raw"]}
    assert raw == {}, f"raw TeX on the page: {raw}"


def test_no_page_pans_sideways_on_a_phone(browsed):
    pages, _ = browsed
    wide = {
        name: (page.phone["scrollWidth"], page.phone["wide"])
        for name, page in pages.items()
        if page.phone["scrollWidth"] > page.phone["width"] + 1
    }
    assert wide == {}, f"pages wider than a {PHONE} px phone (scroll width, widest elements): {wide}"


def test_figures_are_sharp_on_high_density_screens(browsed):
    """Each raster figure stores at least 1.5 pixels per pixel it is shown at (1400 px window)."""
    pages, _ = browsed
    blurry = {name: page.desktop["blurry"][:3] for name, page in pages.items() if page.desktop["blurry"]}
    assert blurry == {}, f"figures stored at too low a resolution: {blurry}"
    assert any("<img" in page.dom for name, page in pages.items() if name.startswith("chapters/"))


def test_a_solution_opens_with_one_click(browsed):
    """Each solution's cells sit inside its toggle: hidden at first, all shown by one click."""
    pages, _ = browsed
    solutions = [(name, s) for name, page in pages.items() for s in page.solutions]
    assert len(solutions) > 10 and any(s["cells"] for _, s in solutions), "too few solutions to check"
    wrong = [
        (name, s)
        for name, s in solutions
        if s["before"] != 0 or s["after"] != s["cells"] or s["toggles"] != 0
    ]
    assert wrong == [], f"solutions not hidden, not opened by one click, or with a toggle inside: {wrong[:3]}"


def test_figures_keep_their_shape_at_every_width(browsed):
    """Each figure's rendered width/height equals its image's, to 2%, at 1400 px and at 390 px."""
    pages, _ = browsed
    checked, bent = 0, []
    for name, page in pages.items():
        for width, layout in page.layout.items():
            for figure in layout["figures"]:
                if figure["shown"]:
                    checked += 1
                    if abs(figure["ratio"] - 1) > 0.02:
                        bent.append((name, width, figure["src"], round(figure["ratio"], 3)))
    assert checked > 100, "too few figures seen to check"
    assert bent == [], f"figures squeezed or stretched (page, width, image, ratio): {bent[:5]}"


def test_every_figure_has_a_number_a_caption_and_alt_text(browsed):
    """'Figure 4.2. <title>' under each chapter figure, numbered in order, and alt text in words."""
    pages, _ = browsed
    for name in notebook_pages(pages):
        figures = pages[name].layout[DESKTOP]["figures"]
        match = re.match(r"chapters/0*(\d+[a-z]?)_", name)
        prefix = f"{match.group(1)}." if match else ""
        for count, figure in enumerate(figures, start=1):
            assert figure["caption"].startswith(f"Figure {prefix}{count}."), f"{name}: {figure}"
            assert len(figure["caption"]) > len(f"Figure {prefix}{count}.") + 10, (
                f"{name}: no caption {figure}"
            )
            alt = figure["alt"]
            assert len(alt) > 30 and not re.search(r"\.png|[0-9a-f]{16}", alt), f"{name}: alt text {alt!r}"
    assert sum(len(pages[n].layout[DESKTOP]["figures"]) for n in notebook_pages(pages)) > 60


def test_figures_are_readable_on_a_phone(browsed):
    """At 390 px a figure whose lettering falls under 9 px says, visibly, that a tap enlarges it,
    and the tap opens the full image; at 1400 px no figure needs the cue."""
    pages, _ = browsed
    small, cued_on_desktop = [], []
    for name, page in pages.items():
        for figure in page.layout[PHONE]["figures"]:
            if (
                figure["shown"]
                and figure["scale"] < READABLE_SCALE
                and not (figure["cue"] and figure["linked"])
            ):
                small.append((name, figure["src"], round(figure["scale"], 2)))
        cued_on_desktop += [
            (name, f["src"]) for f in page.layout[DESKTOP]["figures"] if f["shown"] and f["cue"]
        ]
    assert small == [], f"figures with lettering under 9 px and no working tap-to-enlarge cue: {small[:5]}"
    assert cued_on_desktop == [], f"the phone's cue shown at {DESKTOP} px: {cued_on_desktop[:3]}"


def test_outputs_and_equations_fit_their_column(browsed):
    """No equation is wider than its column at either width; a printed output or a table wider
    than its column says that it scrolls."""
    pages, _ = browsed
    for width in (DESKTOP, PHONE):
        cut = {
            name: page.layout[width]["cutMath"][:2]
            for name, page in pages.items()
            if page.layout[width]["cutMath"]
        }
        assert cut == {}, f"equations cut at {width} px: {cut}"
        uncued = {
            name: page.layout[width]["uncued"][:2]
            for name, page in pages.items()
            if page.layout[width]["uncued"]
        }
        assert uncued == {}, f"outputs that scroll with no cue at {width} px: {uncued}"


def test_long_code_cells_are_folded(browsed):
    pages, _ = browsed
    long_code = {
        name: page.layout[DESKTOP]["longCode"][:2]
        for name, page in pages.items()
        if page.layout[DESKTOP]["longCode"]
    }
    assert long_code == {}, f"code cells over {LONG_CELL_LINES} lines shown in full: {long_code}"
    folded = sum(page.dom.count("book-folded") for page in pages.values())
    assert folded > 0, "no long cell was folded: the check above proves nothing"


def test_images_load_lazily(site, browsed):
    pages, _ = browsed
    for name in notebook_pages(pages):
        tags = re.findall(r'<img\b[^>]*src="[^"]*_images/[^>]*>', (site / name).read_text())
        eager = [tag[:80] for tag in tags if 'loading="lazy"' not in tag]
        assert eager == [], f"{name}: images that load before the reader reaches them: {eager[:2]}"


def page_weight(site: Path, requested: list[str]) -> dict[str, int]:
    """Bytes a page loads apart from images: raw, gzipped, and MathJax's raw share."""
    weight = {"raw": 0, "gzip": 0, "mathjax": 0}
    for path in {unquote(urlsplit(url).path) for url in requested if urlsplit(url).hostname == "127.0.0.1"}:
        file = site / path.lstrip("/")
        if not file.is_file() or file.suffix in (".png", ".jpg", ".jpeg", ".gif", ".webp"):
            continue
        data = file.read_bytes()
        weight["raw"] += len(data)
        weight["gzip"] += len(gzip.compress(data))
        if "/mathjax/" in path:
            weight["mathjax"] += len(data)
    return weight


def test_no_page_throws_a_script_error(browsed):
    pages, _ = browsed
    errors = {name: page.errors for name, page in pages.items() if page.errors}
    assert errors == {}, errors


def test_explorables_load_and_their_controls_move_them(browsed):
    """At both widths every explorable runs, its sliders are labelled and focusable, it fits
    its column, and moving every slider to its end shows that setting's paths and sentence."""
    pages, _ = browsed
    found = 0
    for name, page in pages.items():
        for width, explorables in page.explorables.items():
            for k, shown in enumerate(explorables):
                where = f"{name} at {width} px, explorable {k}"
                assert shown["ready"] and shown["labelled"] and shown["focusable"], where
                assert shown["width"] <= shown["column"] + 1, (where, shown["width"], shown["column"])
                assert shown["first"] == {
                    "setting": 0,
                    "text": shown["texts"][0],
                    "paths": shown["paths"][0],
                }, where
                last = len(shown["texts"]) - 1
                assert shown["last"] == {
                    "setting": last,
                    "text": shown["texts"][-1],
                    "paths": shown["paths"][-1],
                }, where
                assert shown["last"]["paths"] != shown["first"]["paths"], where  # the figure moved
                found += 1
    assert found >= 4  # chapter 0's bowl and chapter 7's starts, at both widths


def test_an_explorable_shows_what_lib_computes(browsed):
    """Chapter 0's bowl: the losses the page states at the first and last rates are those of
    lib.optim.SGD on lib.landscapes.quadratic, run here."""
    import lib

    pages, _ = browsed
    (bowl,) = pages["chapters/00_three_steps.html"].explorables[DESKTOP]
    landscape = lib.landscapes.quadratic(condition_number=4.0)
    for state, lr in ((bowl["first"], 0.05), (bowl["last"], 0.6)):
        run = lib.landscapes.trajectory(landscape, lib.optim.SGD, {"lr": lr}, steps=40, max_value=1e15)
        stated = re.search(r"([-\d.e+]+) after 40 steps", state["text"]).group(1)
        assert stated == f"{run.losses[-1].item():.3g}" and f"η = {lr:g} " in state["text"], state["text"]


def test_pages_stay_within_their_weight_budget(site, browsed):
    """Every page, without its images: at most BUDGET_GZIP_KB compressed, and
    BUDGET_RAW_KB_WITHOUT_MATHJAX uncompressed apart from MathJax; no math, no MathJax."""
    pages, _ = browsed
    heavy = {}
    for name, page in pages.items():
        weight = page_weight(site, page.requested)
        if (
            weight["gzip"] > BUDGET_GZIP_KB * 1024
            or weight["raw"] - weight["mathjax"] > BUDGET_RAW_KB_WITHOUT_MATHJAX * 1024
        ):
            heavy[name] = {key: value // 1024 for key, value in weight.items()}
        if weight["mathjax"] and 'class="math notranslate' not in (site / name).read_text():
            heavy[name] = "loads MathJax without math"
    assert heavy == {}, f"pages over budget (kB): {heavy}"
    assert page_weight(site, pages["intro.html"].requested)["mathjax"] == 0


def test_every_local_asset_loads(site, browsed):
    pages, served = browsed
    failed = sorted({(path, code) for path, code in served if code >= 400 and path not in BROWSER_PROBES})
    assert failed == [], f"requests that failed: {failed}"
    loaded = {path for path, code in served if code == 200}
    for name in pages:
        page_dir = Path("/" + name).parent
        for src in re.findall(r'<img[^>]+src="([^":]+)"', (site / name).read_text()):
            path = (page_dir / src).resolve().as_posix()
            assert path in loaded, f"{name}: image {src} was never loaded"


def test_front_matter(site, browsed):
    """Tab title starts with the page, one search box, logo and favicon, a real author line."""
    pages, _ = browsed
    for name, page in pages.items():
        if not page.desktop["h1"] or name in ("search.html", "genindex.html", "py-modindex.html"):
            continue
        title = page.desktop["title"]
        assert title.startswith(page.desktop["h1"][:30]), f"{name}: tab title {title!r}"
        assert title.count("How deep networks are trained") <= 1, f"{name}: tab title {title!r}"
        boxes = (page.desktop["searchBoxes"], page.phone["searchBoxes"])
        assert boxes == (1, 1), f"{name}: search boxes in view at {DESKTOP} px and {PHONE} px: {boxes}"
    for name, page in pages.items():
        assert "thebe" not in page.dom.lower(), f"{name}: configures Thebe, a service the site does not use"
        viewports = page.dom.count('name="viewport"')
        assert viewports == 1, f"{name}: {viewports} viewport tags"
        if any((ROOT / name).with_suffix(suffix).exists() for suffix in (".md", ".ipynb")):
            assert re.search(r'<meta name="description" content="[^"]{40,}"', page.dom), (
                f"{name}: no description"
            )
    intro = pages["intro.html"].dom
    assert re.search(r'<link[^>]+rel="icon"[^>]+href="[^"]*favicon', intro), "no favicon"
    logos = [tag for tag in re.findall(r"<img[^>]+>", intro) if "logo__image" in tag and "logo" in tag]
    assert logos, "no logo"
    author = re.search(r'class="component-author">\s*By ([^<]+)', intro)
    assert author and "authors of the book" not in author.group(1), "the author line is a placeholder"


def test_chinese_terms_have_a_font(browsed):
    """The glossary's Chinese terms: the body's font list names fonts with CJK glyphs before the generic."""
    pages, _ = browsed
    fonts = [f.strip().strip('"') for f in pages["glossary.html"].desktop["font"].split(",")]
    cjk = [i for i, f in enumerate(fonts) if "CJK" in f or f in ("PingFang SC", "Microsoft YaHei")]
    assert cjk and cjk[0] < fonts.index("sans-serif"), f"no CJK font before the generic family: {fonts}"
    assert "Book CJK SC" in fonts[: fonts.index("sans-serif")], "the bundled font is not in the list"
    # a reader with no Chinese font of their own gets the bundled one (its coverage: test_book.py)
    assert pages["glossary.html"].bundled_font == ["loaded"], pages["glossary.html"].bundled_font


def test_issue_button_carries_a_template(browsed):
    pages, _ = browsed
    dom = pages["chapters/" + next(n.split("/")[1] for n in pages if n.startswith("chapters/"))].dom
    urls = [u.replace("&amp;", "&") for u in re.findall(r'href="([^"]*/issues/new\?[^"]*)"', dom)]
    assert urls, "no issue button"
    query = parse_qs(urlsplit(urls[0]).query)
    body = query["body"][0]
    assert "chapters/" in query["title"][0]
    for asked in ("Page", "Where on the page", "What I expected", "What happened instead"):
        assert asked in body, f"the issue template does not ask for {asked!r}"


# Cited works with neither a DOI nor a stable URL of their own.
OFFLINE_WORKS = {"Nesterov, 1983"}


def test_bibliography_labels_are_author_year_with_links(browsed):
    """Labels read as the text cites ('Kingma and Ba, 2015'); each work links to its DOI or URL."""
    pages, _ = browsed
    dom = pages["bibliography.html"].dom
    entries = re.findall(r'(?s)<div class="citation" id="[^"]+" role="doc-biblioentry">(.*?)</div>', dom)
    assert len(entries) > 10, "the bibliography lists too few works"
    for entry in entries:
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", entry)).strip()
        label = re.match(r"\[([^\]]+)\]", text)
        assert label and re.fullmatch(r"\D+, (\d{4}[a-z]?|n\.d\.)", label.group(1)), f"label of: {text[:80]}"
        assert "and others" not in text, f"an author list cut short: {text[:80]}"
        if label.group(1) not in OFFLINE_WORKS:
            assert "href=" in entry.split("<p>", 1)[1], f"no DOI or URL: {text[:80]}"


def test_every_notebook_page_links_to_colab(site, browsed):
    pages, _ = browsed
    url, branch = repository()
    org_repo = url.removeprefix("https://github.com/")
    pattern = re.compile(
        rf'href="https://colab\.research\.google\.com/github/{re.escape(org_repo)}/blob/{branch}/([^"]+\.ipynb)"'
    )
    notebooks = notebook_pages(pages)
    assert any(name.startswith("chapters/") for name in notebooks)
    for name in notebooks:
        links = set(pattern.findall(pages[name].dom))
        assert links == {name.replace(".html", ".ipynb")}, f"{name}: Colab links {links}"
        assert all((ROOT / link).exists() for link in links)
    for name in set(pages) - set(notebooks):
        assert "colab.research.google.com" not in pages[name].dom, (
            f"{name}: a Colab button on a page with no notebook"
        )


def public_api() -> dict[str, list[str]]:
    """Public names of each lib module, by module."""
    names = {}
    for module_name in lib.SUBMODULES:
        if not any((ROOT / "lib" / f).exists() for f in (f"{module_name}.py", f"{module_name}/__init__.py")):
            continue
        module = importlib.import_module(f"lib.{module_name}")
        defined_here = [
            name
            for name, obj in vars(module).items()
            if callable(obj) and getattr(obj, "__module__", None) == module.__name__
        ]
        public = getattr(module, "__all__", None) or [
            name for name in defined_here if not name.startswith("_")
        ]
        names[module_name] = [f"lib.{module_name}.{name}" for name in public]
    return names


def test_api_reference_has_a_page_per_module_listing_every_public_function(site, browsed):
    pages, _ = browsed
    names = public_api()
    assert "lib.device.get_device" in names["device"]
    for module_name, public in names.items():
        page = f"api/{module_name}.html"
        assert page in pages, f"no API page for lib.{module_name}"
        missing = [name for name in public if f'id="{name}"' not in pages[page].dom]
        assert missing == [], f"{page} lacks: {missing}"
    assert len(pages["api.html"].dom) < 0.2 * max(len(pages[f"api/{m}.html"].dom) for m in names) + 200_000


def test_search_snippets_leave_out_math_and_hidden_code(browsed):
    """Result snippets show the prose: no TeX source, no code of the hidden setup cell."""
    pages, _ = browsed
    snippets = pages["search.html"].snippets
    assert len(snippets) >= 3, f"the search found too little to check: {snippets}"
    for snippet in snippets:
        assert not re.search(r"\\\(|\\\[|\$", snippet), f"raw TeX in a search snippet: {snippet[:120]}"
        assert "google.colab" not in snippet and "lib.seed(0)" not in snippet, f"hidden code: {snippet[:120]}"


def test_search_puts_the_chapters_first(browsed):
    """A word the chapters explain finds a chapter first, before the glossary and the API."""
    pages, _ = browsed
    for word, results in pages["search.html"].results.items():
        assert len(results) >= 3, f"{word!r}: too few results to rank: {results}"
        assert results[0].startswith("chapters/"), f"{word!r}: first results {results[:3]}"


def test_pages_open_quickly(browsed):
    """A sanity bound: no page's HTML is so large that a phone stalls on it (animations included)."""
    pages, _ = browsed
    large = {name: len(page.dom) // 1024 for name, page in pages.items() if len(page.dom) > 8 * 2**20}
    assert large == {}, f"pages over 8 MB of HTML (kB): {large}"
