"""What a chapter notebook hands to the book's site: measured numbers for the prose.

A sentence that quotes a measurement must not fall behind when the notebook is executed
again. The notebook computes the number and *glues* it under a name; the prose cites the
name, and the site, built from the stored outputs, prints the number of the latest run::

    lib.glue("final_loss", losses[-1], ".3f")   # in a code cell

    The loss ends at {glue:text}`final_loss`.   # in a Markdown cell

The stored output is MyST-NB's glue record (the one ``myst_nb.glue(name, value,
display=False)`` writes), so the site's ``{glue:text}`` and ``{glue:}`` roles read it,
also from another page: ``{glue:text}`../chapters/05_adaptive.ipynb::name:s``` (the
trailing ``:s`` is needed there, or the role reads ``name`` as a format). It is
written here so that the notebooks need no MyST-NB on Colab. The value is formatted
first: the record is then the rounded text the reader sees, and the test that compares
stored outputs with a fresh run compares exactly that text.
"""

from typing import Any

__all__ = ["glue"]

GLUE_MIME_PREFIX = "application/papermill.record/"


def glue(name: str, value: Any, fmt: str = "") -> str:
    """Store ``format(value, fmt)`` under ``name`` for the site's ``{glue:text}`` role.

    Args:
        name: the key the prose cites, letters, digits and ``_`` only.
        value: the measured value (a number, or any object ``format`` accepts).
        fmt: a format specification such as ``".3f"``, ``".1%"`` or ``",d"``.

    Returns:
        The formatted text, so a cell can print or assert on what the prose will show.

    Raises:
        ValueError: if ``name`` is empty or holds other characters.
    """
    if not name or not name.replace("_", "").isalnum() or not name.isascii():
        raise ValueError(f"name must be letters, digits and '_', got {name!r}")
    text = format(value, fmt)
    try:
        from IPython.core.interactiveshell import InteractiveShell
        from IPython.display import display
    except ImportError:  # no IPython installed: nothing to record
        return text
    if not InteractiveShell.initialized():  # a plain Python session: nothing to record
        return text
    display(
        {f"{GLUE_MIME_PREFIX}text/plain": repr(text)},
        raw=True,
        metadata={"scrapbook": {"name": name, "mime_prefix": GLUE_MIME_PREFIX}},
    )
    return text
