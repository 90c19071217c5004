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

A claim measured over several seeds is quoted as its range, ``spread(values, ".3f")``,
and a comparison over seeds is printed as a small table, ``table(header, rows)``, rather
than strung through a sentence.
"""

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["glue", "spread", "table"]

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


def spread(values: Iterable[float], fmt: str = "g") -> str:
    """The range of per-seed values as the prose quotes it.

    Args:
        values: one measurement per seed (or split).
        fmt: the format specification of each end, such as ``".3f"``.

    Returns:
        ``"low–high"`` (an en dash), ``"low to high"`` when an end is negative (a dash
        beside a minus sign misreads), or one number when both ends format alike.

    Raises:
        ValueError: if ``values`` is empty.

    >>> spread([0.1234, 0.1456, 0.1301], ".2f")
    '0.12–0.15'
    >>> spread([-0.98, -0.91], ".2f")
    '-0.98 to -0.91'
    >>> spread([3, 3, 3], "d")
    '3'
    """
    values = list(values)
    if not values:
        raise ValueError("values must hold at least one measurement, got none")
    low, high = min(values), max(values)
    low_text, high_text = format(low, fmt), format(high, fmt)
    if low_text == high_text:
        return low_text
    return f"{low_text} to {high_text}" if low < 0 else f"{low_text}–{high_text}"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Rows of cells as a plain-text table for a cell to print.

    The first column (the row's name) is aligned left, the others right, each as wide as
    its widest cell; a rule separates the header. Cells are printed with ``str``, so
    format numbers first (``spread`` for a range over seeds).

    Args:
        header: the column titles.
        rows: the rows, each with as many cells as ``header``.

    Raises:
        ValueError: if a row has another number of cells than ``header``.

    >>> print(table(["batch", "final loss"], [["16", "0.12–0.15"], ["512", "0.30"]]))
    batch  final loss
    -----  ----------
    16      0.12–0.15
    512          0.30
    """
    lines = [[str(cell) for cell in header]]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"each row must have {len(header)} cells like the header, got {list(row)}")
        lines.append([str(cell) for cell in row])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    lines.insert(1, ["-" * width for width in widths])

    def render(line: list[str]) -> str:
        cells = [line[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(line[1:], widths[1:])]
        return "  ".join(cells).rstrip()

    return "\n".join(render(line) for line in lines)
