"""The book as a release: its version, how to cite it, what to download, and the notebooks' status.

Everything here is read at build time from the files that hold it, never typed twice:

- **Version.** ``pyproject.toml`` (here ``lib.__version__``, which it names) sets Sphinx's
  ``version`` and ``release`` and the line under every page's footer.
- **Cite this book** (``{book-cite}``): a sentence built from ``CITATION.cff`` and the version.
- **Downloads** (``{book-downloads}``): a zip of every notebook named in ``_toc.yml`` is
  written into the site at each build; the whole-book PDF that ``scripts/pdf.py`` leaves in
  ``_build/pdf/`` is copied next to it. Without that PDF the line names only the zip, so the
  front page never links a file the site lacks.
- **Status** (``{book-status}``): for each notebook, when and on what platform its stored
  outputs were computed and how long that took (the metadata ``scripts/execute.py`` stores),
  how many ``assert`` statements its code cells hold, and what the last ``pytest`` run on this
  machine made of it (``_build/book-levels.json``, written by ``scripts/levels.py``).

The links and the status are decided when a page is written, so one set of doctrees serves
the site (``html``) and the PDF's single page (``singlehtml``, where the line says where to
find the site's downloads instead).
"""

from __future__ import annotations

import ast
import datetime
import json
import sys
import zipfile
from pathlib import Path

import nbformat
import yaml
from docutils import nodes
from docutils.parsers.rst import Directive
from IPython.core.inputtransformer2 import TransformerManager
from sphinx import addnodes
from sphinx.application import Sphinx

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: Sphinx depends on tomli there
    import tomli as tomllib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.book import EXECUTION_KEY, PLATFORM_KEY, ROOT, pip_install_target, setup_cell_source, toc_files
from scripts.levels import RUN_RECORD
from scripts.pdf import PDF_NAME

DOWNLOAD_BUILDERS = ("html", "dirhtml")  # the site: the files sit next to its pages


def book_version(root: Path = ROOT) -> str:
    """The version ``pyproject.toml`` gives the book: its own, or the attribute it names."""
    project = tomllib.loads((root / "pyproject.toml").read_text())
    if "version" in project["project"]:
        return project["project"]["version"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]  # e.g. "lib.__version__"
    module, name = attr.rsplit(".", 1)
    path = root.joinpath(*module.split("."))
    source = (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise ValueError(f"pyproject.toml names {attr} as the version, and it is not set")


def citation(root: Path = ROOT) -> dict:
    """``CITATION.cff``, as a dictionary."""
    return yaml.safe_load((root / "CITATION.cff").read_text())


def cite_parts(root: Path = ROOT) -> dict[str, str]:
    """What a citation of the book names: authors (as a sentence starts), year, title, version, URL."""
    cff = citation(root)
    who = ", ".join(a.get("name") or f"{a['given-names']} {a['family-names']}" for a in cff["authors"])
    return {
        "authors": who[:1].upper() + who[1:],
        "year": str(cff["date-released"])[:4],
        "title": cff["title"],
        "version": book_version(root),
        "url": cff["url"],
    }


def cite_text(root: Path = ROOT) -> str:
    """One sentence to cite the book by: authors (year). Title, version. URL."""
    c = cite_parts(root)
    return f"{c['authors']} ({c['year']}). {c['title']}, version {c['version']}. {c['url']}"


def toc_notebooks(root: Path = ROOT) -> list[Path]:
    """Every notebook named in ``_toc.yml``, in reading order."""
    return [root / f"{name}.ipynb" for name in toc_files() if (root / f"{name}.ipynb").exists()]


def zip_name(root: Path = ROOT) -> str:
    return f"why-training-fails-notebooks-{book_version(root)}.zip"


def write_notebook_zip(target: Path, root: Path = ROOT) -> Path:
    """Every notebook of the book in one zip (and a README on running them); the same bytes each build."""
    version = book_version(root)
    folder = f"why-training-fails-notebooks-{version}"
    notebooks = toc_notebooks(root)
    readme = (
        f"{citation(root)['title']}, version {version}: the book's {len(notebooks)} notebooks, "
        "with their stored outputs.\n\n"
        "Each notebook imports the book's library, lib. To run them on your machine:\n\n"
        f'    pip install "{pip_install_target(setup_cell_source())}"\n'
        "    jupyter lab\n\n"
        "On Google Colab, a notebook's first cell installs lib by itself.\n"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in [("README.txt", readme.encode())] + [
            (path.relative_to(root).as_posix(), path.read_bytes()) for path in notebooks
        ]:
            info = zipfile.ZipInfo(f"{folder}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return target


def count_asserts(nb: nbformat.NotebookNode) -> int:
    """The ``assert`` statements in a notebook's code cells (IPython magics read as IPython does)."""
    transform = TransformerManager().transform_cell
    return sum(
        isinstance(node, ast.Assert)
        for cell in nb.cells
        if cell.cell_type == "code"
        for node in ast.walk(ast.parse(transform(cell.source)))
    )


def _when(iso: str) -> str:
    moment = datetime.datetime.fromisoformat(iso).astimezone(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def platform_label(record: dict) -> str:
    """A platform record in one line: machine, Python, torch and kernels, NumPy and BLAS, threads, device."""
    if not record:
        return "not recorded"
    rest = dict(record)
    take = rest.pop
    parts = [take("machine", "?"), f"Python {take('python', '?')}"]
    parts.append(
        f"torch {take('torch', '?')} ({take('torch CPU kernels', '?')} kernels, {take('torch BLAS', '?')})"
    )
    parts.append(f"NumPy {take('numpy', '?')} ({take('numpy BLAS', '?')})")
    parts.append(f"{take('threads', '?')} threads, device {take('device', '?')}")
    return ", ".join(parts + [f"{key} {value}" for key, value in sorted(rest.items())])


def _test_run(entry: dict | None, latest: str) -> str:
    """What the last test run here made of one notebook: the verdict, the time, the date if older."""
    if entry is None:
        return "not run here"
    verdict = {
        ("reproduce", "passed"): "reproduced",
        ("claims", "passed"): "claims checked",
    }.get((entry["level"], entry["result"]), f"{entry['result']} at the {entry['level']} level")
    when = "" if entry["finished"] == latest else f", {_when(entry['finished'])}"
    return f"{verdict} in {_seconds(entry['seconds'])}{when}"


class placeholder(nodes.General, nodes.Element):
    """Stands where a release directive was; replaced when the page is written (see ``_resolve``)."""


class ReleaseDirective(Directive):
    kind = ""

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        for path in self.dependencies(env.app):
            env.note_dependency(str(path))  # a missing file keeps the page re-read at every build
        return [placeholder(kind=self.kind)]

    def dependencies(self, app: Sphinx) -> list[Path]:
        return [ROOT / "pyproject.toml", ROOT / "lib" / "__init__.py", ROOT / "CITATION.cff"]


class CiteDirective(ReleaseDirective):
    kind = "cite"


class DownloadsDirective(ReleaseDirective):
    kind = "downloads"

    def dependencies(self, app: Sphinx) -> list[Path]:
        return [*super().dependencies(app), _built_pdf(app), *toc_notebooks()]


class StatusDirective(ReleaseDirective):
    kind = "status"

    def dependencies(self, app: Sphinx) -> list[Path]:
        return [*super().dependencies(app), Path(app.config.book_run_record), *toc_notebooks()]


def _built_pdf(app: Sphinx) -> Path:
    """Where ``scripts/pdf.py`` leaves the PDF for this build: ``<path-output>/_build/pdf``."""
    return Path(app.outdir).parent / "pdf" / PDF_NAME


def _link(text: str, uri: str) -> nodes.reference:
    return nodes.reference("", text, refuri=uri, internal=False)


def _cite(app: Sphinx, docname: str) -> list[nodes.Node]:
    cff, c = citation(), cite_parts()
    para = nodes.paragraph(ids=["cite-this-book"])
    para += [
        nodes.strong(text="Cite this book: "),
        nodes.Text(f"{c['authors']} ({c['year']}). "),
        nodes.emphasis(text=c["title"]),
    ]
    para += [
        nodes.Text(f", version {c['version']}. "),
        _link(c["url"], c["url"]),
        nodes.Text(". The same in "),
    ]
    para += [_link("CITATION.cff", f"{cff['repository-code']}/blob/main/CITATION.cff"), nodes.Text(".")]
    return [para]


def _downloads(app: Sphinx, docname: str) -> list[nodes.Node]:
    version, count = book_version(), len(toc_notebooks())
    para = nodes.paragraph(ids=["downloads"])
    para += nodes.strong(text=f"Version {version}. ")
    if app.builder.name not in DOWNLOAD_BUILDERS:  # the PDF's own single page
        para += nodes.Text("The site, the notebooks and this PDF: ")
        para += _link(citation()["url"], citation()["url"])
        return [para]
    up = "../" * docname.count("/")
    para += nodes.Text("Download ")
    pdf = _built_pdf(app)
    if pdf.exists():
        made = datetime.datetime.fromtimestamp(pdf.stat().st_mtime, datetime.timezone.utc)
        size = f"{pdf.stat().st_size / 1e6:.0f} MB, printed {made:%Y-%m-%d}"
        para += [_link("the whole book as a PDF", up + PDF_NAME), nodes.Text(f" ({size}) or ")]
    zipped = Path(app.outdir) / zip_name()
    size = f"{zipped.stat().st_size / 1e6:.1f} MB" if zipped.exists() else "zip"
    para += [
        _link(f"all {count} notebooks as a zip", up + zip_name()),
        nodes.Text(f" ({size}, with outputs)."),
    ]
    return [para]


def _status(app: Sphinx, docname: str) -> list[nodes.Node]:
    try:
        run = json.loads(Path(app.config.book_run_record).read_text())["notebooks"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        run = None
    latest = max((entry["finished"] for entry in (run or {}).values()), default="")
    rows, platforms = [], {}
    for path in toc_notebooks():
        nb = nbformat.read(path, as_version=4)
        name = path.relative_to(ROOT).as_posix()
        stored = dict(nb.metadata.get(PLATFORM_KEY, {}))
        execution = nb.metadata.get(EXECUTION_KEY, {})
        when = [_when(execution["finished"])] if "finished" in execution else ["time not recorded"]
        took = [_seconds(execution["seconds"])] if "seconds" in execution else []
        label = platform_label(stored)
        where = [f"platform {platforms.setdefault(label, chr(ord('A') + len(platforms)))}"] if stored else []
        rows.append(
            [
                _doc_link(docname, path.relative_to(ROOT).with_suffix("").as_posix()),
                ", ".join(when + took + where),
                str(count_asserts(nb)),
                "no test run recorded" if run is None else _test_run(run.get(name), latest),
            ]
        )
    header = ["Notebook", "Stored run", "Asserts", "Tested here"]  # short: the table fits a phone
    result: list[nodes.Node] = []
    if run is None:
        result.append(nodes.paragraph(text="No test run recorded on this machine."))
    else:
        result.append(nodes.paragraph(text=f"Last test run recorded on this machine: {_when(latest)}."))
    result.append(_table(header, rows))
    legend = nodes.bullet_list()
    for label, letter in platforms.items():
        legend += nodes.list_item("", nodes.paragraph(text=f"Platform {letter}: {label}."))
    result.append(legend)
    return result


def _doc_link(fromdoc: str, target: str) -> nodes.Node:
    xref = addnodes.pending_xref(
        "", refdomain="std", reftype="doc", reftarget="/" + target, refexplicit=False, refdoc=fromdoc
    )
    xref += nodes.inline(text=target)
    return xref


def _table(header: list[str], rows: list[list]) -> nodes.table:
    table = nodes.table(classes=["book-status"])
    group = nodes.tgroup(cols=len(header))
    table += group
    group += [nodes.colspec(colwidth=1) for _ in header]
    head, body = nodes.thead(), nodes.tbody()
    group += [head, body]
    for cells, part in [(header, head)] + [(row, body) for row in rows]:
        row = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            paragraph = nodes.paragraph()
            paragraph += cell if isinstance(cell, nodes.Node) else nodes.Text(cell)
            entry += paragraph
            row += entry
        part += row
    return table


RENDER = {"cite": _cite, "downloads": _downloads, "status": _status}


def _resolve(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """The downloads line, when the page is written: it depends on the builder and the PDF."""
    for node in list(doctree.findall(placeholder)):
        node.replace_self(RENDER[node["kind"]](app, docname))


def _resolve_when_read(app: Sphinx, doctree: nodes.document) -> None:
    """What does not depend on the builder: the citation, and the status table (whose notebook
    links are ``pending_xref`` nodes, resolved after this)."""
    for node in list(doctree.findall(placeholder)):
        if node["kind"] != "downloads":
            node.replace_self(RENDER[node["kind"]](app, app.env.docname))


def _write_downloads(app: Sphinx) -> None:
    if app.builder.name in DOWNLOAD_BUILDERS:
        write_notebook_zip(Path(app.outdir) / zip_name())


def _copy_pdf(app: Sphinx, exception: Exception | None) -> None:
    pdf = _built_pdf(app)
    if exception is None and app.builder.name in DOWNLOAD_BUILDERS and pdf.exists():
        (Path(app.outdir) / PDF_NAME).write_bytes(pdf.read_bytes())


def _version_in_footer(app: Sphinx, config) -> None:
    version = book_version()
    config.version = config.release = version
    if config.html_theme != "sphinx_book_theme":
        return  # the line goes in that theme's extra footer
    cff = f"{citation()['repository-code']}/blob/main/CITATION.cff"
    line = f'<p class="book-version">Version {version} · <a href="{cff}">Cite this book</a></p>'
    options = dict(config.html_theme_options or {})
    options["extra_footer"] = (options.get("extra_footer") or "") + line
    config.html_theme_options = options


def setup(app: Sphinx) -> dict:
    app.add_config_value("book_run_record", str(RUN_RECORD), "env")
    app.add_node(placeholder)
    app.add_directive("book-cite", CiteDirective)
    app.add_directive("book-downloads", DownloadsDirective)
    app.add_directive("book-status", StatusDirective)
    app.connect("config-inited", _version_in_footer)
    app.connect("builder-inited", _write_downloads)
    app.connect("doctree-read", _resolve_when_read)
    app.connect("doctree-resolved", _resolve)
    app.connect("build-finished", _copy_pdf)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
