"""The book as a release: citation, version, the notebooks' zip, the status page and the PDF.

The quick tests read the files and run the front page's and status page's directives in a
small Sphinx project of their own (seconds). The PDF test (slow) builds the whole book as
one page and prints it with headless Chromium, as `scripts/pdf.py` does for the site, then
opens the PDF with pypdf.
"""

import datetime
import json
import re
import subprocess
import sys
import unicodedata
import zipfile
from pathlib import Path

import nbformat
import pypdf
import pytest
import yaml

from scripts.book import EXECUTION_KEY, ROOT, toc_files
from scripts.browser import CHROMIUM
from scripts.levels import record_run

sys.path.insert(0, str(ROOT / "_ext"))
import book_release  # noqa: E402

# The keys CFF 1.2.0 allows at the top level, and those it requires
# (https://github.com/citation-file-format/citation-file-format/blob/main/schema-guide.md).
CFF_KEYS = {
    "abstract", "authors", "cff-version", "commit", "contact", "date-released", "doi", "identifiers",
    "keywords", "license", "license-url", "message", "preferred-citation", "references",
    "repository", "repository-artifact", "repository-code", "title", "type", "url", "version",
}  # fmt: skip
CFF_REQUIRED = {"authors", "cff-version", "message", "title"}


def test_citation_is_valid_cff_and_carries_the_version_of_pyproject():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert set(cff) <= CFF_KEYS, f"keys CFF 1.2.0 does not know: {set(cff) - CFF_KEYS}"
    assert CFF_REQUIRED <= set(cff), f"missing: {CFF_REQUIRED - set(cff)}"
    assert cff["cff-version"] == "1.2.0"
    assert cff["type"] in ("software", "dataset")
    assert cff["authors"] and all(set(a) & {"name", "family-names"} for a in cff["authors"])
    # an entity named as _config.yml names the authors
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert [a.get("name") for a in cff["authors"]] == [config["author"]]
    datetime.date.fromisoformat(str(cff["date-released"]))
    for key in ("url", "repository-code"):
        assert re.fullmatch(r"https://\S+", cff[key]), cff[key]
    assert isinstance(cff["version"], str) and cff["version"] == book_release.book_version()


def test_version_is_read_from_what_pyproject_names():
    """pyproject.toml's version is dynamic: lib.__version__, read without importing lib."""
    import lib

    assert book_release.book_version() == lib.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", lib.__version__)


def test_cite_line_comes_from_the_citation_file():
    text = book_release.cite_text()
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    author = cff["authors"][0]["name"]  # names the repository: scripts/set_repository.py rewrites it
    assert text.startswith(author[:1].upper() + author[1:] + " (")
    assert cff["title"] in text and f"version {cff['version']}" in text and cff["url"] in text


def test_the_zip_holds_every_notebook_of_the_toc(tmp_path):
    target = book_release.write_notebook_zip(tmp_path / "notebooks.zip")
    names = zipfile.ZipFile(target).namelist()
    folder = f"why-training-fails-notebooks-{book_release.book_version()}/"
    assert all(name.startswith(folder) for name in names)
    notebooks = sorted(name.removeprefix(folder) for name in names if name.endswith(".ipynb"))
    in_toc = sorted(f"{name}.ipynb" for name in toc_files() if (ROOT / f"{name}.ipynb").exists())
    assert notebooks == in_toc and len(in_toc) >= 13
    for name in notebooks:
        assert zipfile.ZipFile(target).read(folder + name) == (ROOT / name).read_bytes()
    readme = zipfile.ZipFile(target).read(folder + "README.txt").decode()
    assert "pip install" in readme and "git+https://github.com/" in readme
    again = book_release.write_notebook_zip(tmp_path / "again.zip")
    assert again.read_bytes() == target.read_bytes(), "the zip differs from build to build"


def test_asserts_are_counted_in_code_cells_only():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("assert 1 == 1  # prose, not code"),
        nbformat.v4.new_code_cell("%pip install -q x\nassert 1 == 1\nfor i in range(3):\n    assert i < 3"),
        nbformat.v4.new_code_cell("def check(x):\n    assert x, 'no'\n\ntext = 'assert 2'"),
    ]
    assert book_release.count_asserts(nb) == 3


def test_every_notebook_asserts_something():
    for path in book_release.toc_notebooks():
        nb = nbformat.read(path, as_version=4)
        counted = book_release.count_asserts(nb)
        # the same count, by a cruder route: lines that start with `assert`
        lines = sum(
            bool(re.match(r"\s*assert\b", line))
            for cell in nb.cells
            if cell.cell_type == "code"
            for line in cell.source.splitlines()
        )
        assert counted == lines and counted > 0, (path.name, counted, lines)


def test_a_test_run_record_keeps_the_notebooks_it_did_not_run(tmp_path):
    record = tmp_path / "book-levels.json"
    one = {"level": "reproduce", "result": "passed", "seconds": 3.0, "finished": "2026-12-06T10:00:00+00:00"}
    record_run(record, {"chapters/a.ipynb": one, "chapters/b.ipynb": one}, {"machine": "x86_64"})
    later = {**one, "level": "claims", "result": "failed"}
    merged = record_run(record, {"chapters/b.ipynb": later}, {"machine": "aarch64"})
    assert json.loads(record.read_text()) == merged
    assert merged["notebooks"]["chapters/a.ipynb"] == {**one, "platform": {"machine": "x86_64"}}
    assert merged["notebooks"]["chapters/b.ipynb"] == {**later, "platform": {"machine": "aarch64"}}


# A small Sphinx project that uses the extension as the book does, on the book's notebooks.
CONF = f"""
import sys
sys.path.insert(0, {str(ROOT / "_ext")!r})
extensions = ["book_release"]
html_theme = "sphinx_book_theme"
book_run_record = {{record!r}}
"""
INDEX = """
Front
=====

.. book-downloads::

.. book-cite::

.. toctree::

   status
"""
STATUS = """
Status
======

.. book-status::
"""


def build_small(tmp_path: Path, record: Path, builder: str = "html", pdf: bool = False) -> Path:
    source, out = tmp_path / "source", tmp_path / "out"
    source.mkdir(parents=True, exist_ok=True)
    (source / "conf.py").write_text(CONF.format(record=str(record)))
    (source / "status.rst").write_text(STATUS)
    for name in {Path(p).with_suffix("").as_posix() for p in toc_files()} - {"intro"}:
        if (ROOT / f"{name}.ipynb").exists():  # the status table links every notebook's page
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / f"{name}.rst").write_text(f"{name}\n{'=' * len(name)}\n\n.. toctree::\n")
    (source / "index.rst").write_text(INDEX + "".join(f"   {n}\n" for n in _notebook_names()))
    if pdf:
        (out / "pdf").mkdir(parents=True, exist_ok=True)
        (out / "pdf" / book_release.PDF_NAME).write_bytes(b"%PDF-1.4 stand-in\n")
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-b",
        builder,
        "-W",
        "-n",
        "-q",
        str(source),
        str(out / builder),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out / builder


def _notebook_names() -> list[str]:
    return [name for name in toc_files() if (ROOT / f"{name}.ipynb").exists()]


def _cells(row: str) -> list[str]:
    return [re.sub(r"<[^>]+>|\s+", " ", c).strip() for c in re.findall(r"(?s)<td[^>]*>(.*?)</td>", row)]


def test_front_and_status_pages_without_a_pdf_or_a_test_run(tmp_path):
    site = build_small(tmp_path, tmp_path / "none.json")
    front = (site / "index.html").read_text()
    zipped, version = book_release.zip_name(), book_release.book_version()
    assert f'href="{zipped}"' in front and (site / zipped).exists()
    assert book_release.PDF_NAME not in front, "a link to a PDF the site does not have"
    assert f"Version {version}." in front and "Cite this book" in front
    assert re.search(rf'class="book-version">Version {re.escape(version)} ', front), (
        "no version in the footer"
    )

    page = (site / "status.html").read_text()
    assert "No test run recorded on this machine." in page
    rows = re.findall(r"(?s)<tr[^>]*>(.*?)</tr>", page.split("<tbody>", 1)[1])
    assert len(rows) == len(_notebook_names())
    for name, row in zip(_notebook_names(), rows):
        cells = _cells(row)
        nb = nbformat.read(ROOT / f"{name}.ipynb", as_version=4)
        assert f'href="{name}.html"' in row, row[:200]
        assert cells[2] == str(book_release.count_asserts(nb))
        assert cells[3] == "no test run recorded"
        assert cells[1].startswith("time not recorded") == (EXECUTION_KEY not in nb.metadata), cells
        assert cells[1].endswith("platform A"), cells
    assert "Platform A: x86_64, Python 3." in page


def test_front_and_status_pages_with_a_pdf_and_a_test_run(tmp_path):
    first, second, third = _notebook_names()[:3]
    when, earlier = "2026-12-06T10:00:00+00:00", "2026-12-05T09:00:00+00:00"
    run = {
        f"{first}.ipynb": {"level": "reproduce", "result": "passed", "seconds": 41.2, "finished": when},
        f"{second}.ipynb": {"level": "claims", "result": "failed", "seconds": 7.0, "finished": when},
        f"{third}.ipynb": {"level": "claims", "result": "passed", "seconds": 130.0, "finished": earlier},
    }
    record_run(tmp_path / "run.json", run, {"machine": "x86_64"})
    site = build_small(tmp_path, tmp_path / "run.json", pdf=True)
    front = (site / "index.html").read_text()
    assert f'href="{book_release.PDF_NAME}"' in front and (site / book_release.PDF_NAME).exists()
    page = re.sub(r"<[^>]+>", "", (site / "status.html").read_text())
    assert "Last test run recorded on this machine: 2026-12-06 10:00 UTC." in page
    assert "reproduced in 41 s" in page
    assert "failed at the claims level in 7 s" in page
    assert "claims checked in 2.2 min, 2026-12-05 09:00 UTC" in page
    assert page.count("not run here") == len(_notebook_names()) - 3


def test_execute_records_when_and_how_long(tmp_path):
    """scripts/execute.py stores the end of the run and its length beside the platform."""
    from scripts.execute import clean_metadata

    nb = nbformat.v4.new_notebook()
    clean_metadata(nb, 12.34)
    record = nb.metadata[EXECUTION_KEY]
    assert record["seconds"] == 12.3
    finished = datetime.datetime.fromisoformat(record["finished"])
    assert abs(datetime.datetime.now(datetime.timezone.utc) - finished) < datetime.timedelta(minutes=5)


# ---- the whole-book PDF (slow: a single-page build and Chromium printing 600 pages) ----

# Text that only typeset math gives: TeX source would read `\nabla L`, `w_1`.
FORMULAS = ("∇L", "L(w1,w2) = (1 −w1w2)2")


@pytest.fixture(scope="module")
def book_pdf(tmp_path_factory):
    out = tmp_path_factory.mktemp("pdf")
    command = [sys.executable, str(ROOT / "scripts" / "pdf.py"), "--path-output", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return pypdf.PdfReader(out / "_build" / "pdf" / book_release.PDF_NAME)


def figure_count() -> int:
    """Figures in the book: image outputs of the notebooks' code cells."""
    return sum(
        any(key.startswith("image/") for key in output.get("data", {}))
        for path in book_release.toc_notebooks()
        for cell in nbformat.read(path, as_version=4).cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


def _fonts(reader: pypdf.PdfReader) -> dict:
    fonts = {}
    for page in reader.pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            font = font.get_object()
            fonts[id(font)] = font
    return fonts


def _embedded(font) -> bool:
    if font["/Subtype"] == "/Type3":
        return "/CharProcs" in font  # its glyphs are drawn by the PDF itself
    descriptors = [d.get_object()["/FontDescriptor"] for d in font.get("/DescendantFonts", [])]
    descriptors += [font["/FontDescriptor"]] if "/FontDescriptor" in font else []
    return bool(descriptors) and all(
        any(key in d.get_object() for key in ("/FontFile", "/FontFile2", "/FontFile3")) for d in descriptors
    )


def _images(reader: pypdf.PdfReader) -> set:
    found = set()
    for page in reader.pages:
        for xobject in (page["/Resources"].get("/XObject") or {}).values():
            if xobject.get_object()["/Subtype"] == "/Image":
                found.add(xobject.idnum)
    return found


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_pdf_holds_the_whole_book_with_math_figures_and_embedded_fonts(book_pdf):
    pages = len(book_pdf.pages)
    assert 300 < pages < 1500, f"{pages} pages: not the whole book, or each line on a page"
    # one line, without ligatures (the PDF's "ﬁ" is "fi")
    text = unicodedata.normalize("NFKC", " ".join(page.extract_text() for page in book_pdf.pages))
    text = re.sub(r"\s+", " ", text)
    packed = text.replace(" ", "").replace("’", "'")  # spacing and quotes differ from the source
    for name in toc_files():  # every page of the book, by its first heading
        heading = _first_heading(name)
        assert heading.replace(" ", "")[:25] in packed, f"{name}: {heading!r} not in the PDF"
    for formula in FORMULAS:
        assert formula in text, f"typeset formula {formula!r} not in the PDF"
    assert "\\frac" not in text and "$$" not in text, "raw TeX in the PDF: MathJax did not run"
    fonts = _fonts(book_pdf)
    names = [
        str(f["/FontDescriptor"].get_object().get("/FontName", ""))
        for f in fonts.values()
        if "/FontDescriptor" in f
    ]
    assert any("MJX" in name for name in names) or any(f["/Subtype"] == "/Type3" for f in fonts.values())
    not_embedded = [str(f.get("/BaseFont")) for f in fonts.values() if not _embedded(f)]
    assert not_embedded == [], f"fonts not embedded: {not_embedded}"
    figures, images = figure_count(), len(_images(book_pdf))
    assert figures > 50 and 0.9 * figures <= images <= figures + 10, (figures, images)
    assert book_pdf.outline, "no bookmarks"


def _first_heading(name: str) -> str:
    path = ROOT / f"{name}.ipynb"
    if path.exists():
        source = "\n".join(
            c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"
        )
    else:
        source = (ROOT / f"{name}.md").read_text()
    heading = re.search(r"^# (.+)$", source, re.MULTILINE).group(1)
    return re.sub(r"[`*]|\{[a-z]+\}", "", heading).strip()
