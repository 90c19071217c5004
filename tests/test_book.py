"""The book's structure: every chapter is in the table of contents, titled, and set up alike."""

import re

import nbformat
import pytest

from scripts.book import (
    ROOT,
    SETUP_MARKER,
    SETUP_TAG,
    book_notebooks,
    chapter_notebooks,
    pip_install_target,
    repository,
    setup_cell_source,
    toc_files,
)

CHAPTERS = chapter_notebooks()
NOTEBOOKS = book_notebooks()
MAX_NOTEBOOK_BYTES = 2_000_000


def read(path):
    return nbformat.read(path, as_version=4)


def test_every_chapter_notebook_is_in_the_toc_and_back():
    present = {str(p.relative_to(ROOT).with_suffix("")) for p in NOTEBOOKS}
    listed = {f for f in toc_files() if f.startswith(("chapters/", "reference/"))}
    assert present - listed == set(), f"notebooks missing from _toc.yml: {sorted(present - listed)}"
    assert listed - present == set(), f"_toc.yml lists chapters that do not exist: {sorted(listed - present)}"


def test_every_toc_entry_exists():
    missing = [
        f for f in toc_files() if not any((ROOT / f).with_suffix(s).exists() for s in (".md", ".ipynb"))
    ]
    assert missing == [], f"_toc.yml names files that do not exist: {missing}"


def test_there_is_at_least_one_chapter():
    assert CHAPTERS, "chapters/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_with_a_title(path):
    first = read(path).cells[0]
    assert first.cell_type == "markdown", f"{path.name}: the first cell must be the title"
    numbered = r"# \d+[a-z]?\. \S" if path in CHAPTERS else r"# \S"
    assert re.match(numbered, first.source), f"{path.name}: the first line must read '{numbered}'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_the_shared_setup_cell(path):
    code = [c for c in read(path).cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cell"
    assert code[0].source == setup_cell_source(), (
        f"{path.name}: the first code cell is not the setup cell; run scripts/set_repository.py "
        "or copy it from scripts/book.py"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_is_collapsed_on_the_site(path):
    setup = next(c for c in read(path).cells if c.cell_type == "code")
    assert SETUP_TAG in setup.metadata.get("tags", []), f"{path.name}: tag the setup cell {SETUP_TAG!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_installs_from_the_configured_repository(path):
    url, branch = repository()
    setup = next(c for c in read(path).cells if c.cell_type == "code")
    target = pip_install_target(setup.source)
    assert target.endswith(f"git+{url}@{branch}"), (
        f"{path.name} installs {target}, _config.yml says {url}@{branch}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_only_the_setup_cell_installs_anything(path):
    code = [c for c in read(path).cells if c.cell_type == "code"]
    installers = [
        i for i, c in enumerate(code) if re.search(r"\bpip\b.*\binstall\b|\bapt(-get)?\b", c.source)
    ]
    assert installers == [0], (
        f"{path.name}: code cells {installers} install packages; only the setup cell may"
    )
    assert sum(c.source.startswith(SETUP_MARKER) for c in code) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_executed_and_small(path):
    nb = read(path)
    unrun = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and c.source.strip() and c.execution_count is None
    ]
    assert unrun == [], f"{path.name}: cells {unrun} have no stored output; run scripts/execute.py"
    errors = [
        o.ename for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert errors == [], f"{path.name} stores errors: {errors}"
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_metadata_is_clean(path):
    nb = read(path)
    stamped = [i for i, c in enumerate(nb.cells) if "execution" in c.metadata]
    assert stamped == [], f"{path.name}: cells {stamped} carry execution timestamps; use scripts/execute.py"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_cell_shows_a_stray_value(path):
    # a cell that ends in an expression shows its value on the site: after lib.glue(...),
    # the quoted text '0.123' under the cell's real output
    stray = [
        (i, o.data["text/plain"])
        for i, c in enumerate(read(path).cells)
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "execute_result" and set(o.data) == {"text/plain"}
    ]
    assert stray == [], f"{path.name}: cells show the value of their last expression: {stray}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_cell_hides_its_value_with_a_semicolon(path):
    # IPython hides a value after a trailing ';' but nbval's kernel does not (it keeps no input
    # history), so the tests would see a value the stored notebook lacks: assign it instead
    ending = [
        i
        for i, c in enumerate(read(path).cells)
        if c.cell_type == "code" and re.search(r";[ \t]*(#.*)?\Z", c.source.rstrip())
    ]
    assert ending == [], f"{path.name}: cells {ending} end in ';'; write '_ = ...' instead"


# The closing chapter puts the others' results to work instead of reproducing a paper.
REPRODUCING = [p for p in CHAPTERS if p.stem != "10_putting_it_together"]


def reproduced_section(path):
    """The markdown of the chapter's `## Reproduced: ...` section (a `###` one inside "Going
    further"), up to the next heading of its level or above."""
    text = "\n\n".join(c.source for c in read(path).cells if c.cell_type == "markdown")
    found = re.search(r"^(#{2,3}) Reproduced: ", text, flags=re.M)
    assert found, f"{path.name}: no '## Reproduced: <finding>' section"
    level = len(found.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", flags=re.M).search(text, found.end())
    return text[found.start() : end.start() if end else len(text)]


@pytest.mark.parametrize("path", REPRODUCING, ids=lambda p: p.name)
def test_chapter_reproduces_a_published_result_beside_the_paper(path):
    section = reproduced_section(path)
    assert "{cite}" in section, f"{path.name}: the reproduced result does not cite its paper"
    header = re.search(r"^\|.*\|\s*the paper\s*\|\s*this book\s*\|\s*$", section, flags=re.M | re.I)
    assert header, f"{path.name}: the reproduced result needs a '| | the paper | this book |' table"
    assert "{glue:text}" in section, f"{path.name}: the book's side of the comparison is not glued"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_is_stored_with_its_caption_and_alt_text(path):
    """lib.plot.use_style stores lib.plot.describe's words with each PNG; the site shows them."""
    undescribed = [
        i
        for i, c in enumerate(read(path).cells)
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {}) and "alt" not in o.get("metadata", {}).get("image/png", {})
    ]
    assert undescribed == [], f"{path.name}: cells {undescribed} show a figure without a description"


def test_the_bundled_chinese_font_has_every_character_the_book_uses():
    """The site's subset of Noto Sans CJK SC: a page's new Chinese character needs scripts/cjk_font.py."""
    from fontTools.ttLib import TTFont

    from scripts.cjk_font import FONT, characters_used

    used = characters_used()
    assert len(used) > 50, "too few Chinese characters found: the check proves nothing"
    covered = set(TTFont(FONT).getBestCmap())
    missing = sorted(c for c in used if ord(c) not in covered)
    assert missing == [], f"characters missing from {FONT.name}: {''.join(missing)}; run scripts/cjk_font.py"
    assert (FONT.parent / "LICENSE-NotoSansCJK.txt").exists()
