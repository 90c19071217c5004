"""Serve MathJax from the built site itself, so pages typeset math without a network.

The MathJax 3 files ship in the ``django-static-mathjax`` wheel (a plain data package; it
does not need Django). At build time they are copied into ``_static/mathjax`` and Sphinx's
``mathjax_path`` points there, so the site works offline and on any static host.
"""

import importlib.util
import shutil
from pathlib import Path

from sphinx.application import Sphinx

SUBDIR = "mathjax"
ENTRY = "tex-chtml.js"
# What tex-chtml.js loads by itself: TeX extensions, CHTML fonts, the menu and accessibility.
LOADED_ON_DEMAND = ("input", "output", "ui", "a11y")


def _mathjax_root() -> Path:
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("MathJax files not found: pip install django-static-mathjax")
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5"


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source, target = _mathjax_root(), Path(app.outdir) / "_static" / SUBDIR
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / ENTRY, target / ENTRY)
    for folder in LOADED_ON_DEMAND:
        shutil.copytree(source / folder, target / folder, dirs_exist_ok=True)


def setup(app: Sphinx) -> dict:
    app.config.mathjax_path = f"{SUBDIR}/{ENTRY}"
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
