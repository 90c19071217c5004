"""What a chapter page shows of its notebook: numbered, captioned figures, long cells folded
with a label, and each solution in one toggle.

- **Figures.** ``lib.plot.use_style`` stores with every PNG a notebook shows a caption and
  an alt text read from the figure itself (``lib.plot.describe``). Here each such image
  becomes a figure numbered by its chapter (Figure 4.2), with that caption under it and the
  alt text for screen readers. Its inline height is dropped (the width stays as a maximum),
  so the browser keeps the image's own aspect ratio at every width; a phone-width cue says
  that tapping the figure opens it at full size.
- **Long cells.** A code cell longer than :data:`LONG_CELL_LINES` lines is folded (or, when its
  notebook already hides its source, relabelled) under a label that says what it holds (the
  functions it defines, whether it draws a figure, how many checks it runs). Its output
  stays in view. A cell inside a solution is never folded: the solution's toggle is its only one.
- **Printed output.** Output that is prose wraps at the column; a table (lines whose
  columns are aligned by runs of spaces) keeps its lines and scrolls when it must
  (``_static/book-fit.js`` then says so).
- **Solutions.** The code cells that follow a "Solution" dropdown move inside it, without
  toggles of their own: one click opens the solution's text, code and output together.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import re
from pathlib import Path

from docutils import nodes
from IPython.core.inputtransformer2 import TransformerManager
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform

LONG_CELL_LINES = 35


def figure_descriptions(notebook: Path) -> dict[str, dict]:
    """The caption and alt text stored with each PNG output of ``notebook``, by the PNG's sha256
    (the name myst-nb gives the image file)."""
    found = {}
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            meta = output.get("metadata", {}).get("image/png", {})
            if png and "alt" in meta:
                digest = hashlib.sha256(base64.b64decode("".join(png))).hexdigest()
                found[digest] = {"caption": meta.get("caption", ""), "alt": meta["alt"]}
    return found


def chapter_number(docname: str) -> str:
    """'chapters/04_momentum' -> '4', 'chapters/03b_data_parallel' -> '3b', else ''."""
    match = re.match(r"chapters/0*(\d+[a-z]?)_", docname)
    return match.group(1) if match else ""


def cell_label(source: str) -> str:
    """What a folded code cell holds: '42 lines: defines f, g, draws the figure, 3 checks'."""
    lines = source.count("\n") + 1
    try:
        source = TransformerManager().transform_cell(source)  # IPython magics, as IPython reads them
        tree = ast.parse(source)
    except SyntaxError:
        return f"{lines} line{'s' * (lines != 1)} of code"
    defined = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    checks = sum(isinstance(n, ast.Assert) for n in ast.walk(tree))
    parts = []
    if defined:
        shown = ", ".join(defined[:3]) + (f" and {len(defined) - 3} more" if len(defined) > 3 else "")
        parts.append(f"defines {shown}")
    top_level = "\n".join(
        ast.get_source_segment(source, node) or ""
        for node in tree.body
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef))
    )
    if re.search(r"\b(plt\.|ax\.|axes\[|fig\.|lib\.plot\.)", top_level):
        parts.append("draws the figure")
    if checks:
        parts.append(f"{checks} check{'s' * (checks != 1)}")
    return f"{lines} lines: " + (", ".join(parts) if parts else "the experiment's code")


def sentence(text: str) -> str:
    """A caption as a sentence: ended by a full stop unless it ends in punctuation already."""
    return text if text.rstrip()[-1:] in ".?!" else text.rstrip() + "."


def is_table(text: str) -> bool:
    """Printed columns: two or more lines with a run of two spaces between words."""
    return sum(bool(re.search(r"\S {2,}\S", line)) for line in text.splitlines()) >= 2


def is_solution(node: nodes.Element) -> bool:
    if not isinstance(node, nodes.Admonition) or "dropdown" not in node["classes"]:
        return False
    title = next(iter(node.findall(nodes.title)), None)
    return title is not None and title.astext().strip().startswith("Solution")


def is_code_cell(node: nodes.Node) -> bool:
    return isinstance(node, nodes.container) and node.get("nb_element") == "cell_code"


class BookCells(SphinxPostTransform):
    """Figures, long cells and solutions; runs before myst-nb wraps hidden cells (199)."""

    default_priority = 150
    formats = ("html",)

    def run(self, **kwargs) -> None:
        docname = self.env.docname
        if not str(self.env.doc2path(docname)).endswith(".ipynb"):
            return
        self.move_solution_cells()
        self.fold_long_cells()
        self.caption_figures(docname)
        self.wrap_prose_outputs()

    def move_solution_cells(self) -> None:
        for box in list(self.document.findall(is_solution)):
            parent = box.parent
            index = parent.index(box)
            while index + 1 < len(parent) and is_code_cell(parent[index + 1]):
                cell = parent[index + 1]
                parent.remove(cell)
                for key in ("hide_mode", "prompt_show", "prompt_hide"):
                    cell.attributes.pop(key, None)
                cell["classes"].append("book-solution-cell")  # one toggle: the solution's
                box.append(cell)

    def fold_long_cells(self) -> None:
        for cell in self.document.findall(is_code_cell):
            if cell.get("hide_mode") not in (None, "input") or "book-solution-cell" in cell["classes"]:
                continue
            if not cell.children:
                continue
            source = cell.children[0]
            if source.get("nb_element") != "cell_code_source":
                continue
            code = source.astext()
            if code.count("\n") + 1 <= LONG_CELL_LINES:
                continue
            cell["hide_mode"] = "input"
            cell["prompt_show"] = f"Show the code ({cell_label(code)})"
            cell["prompt_hide"] = "Hide the code"
            cell["classes"].append("book-folded")

    def caption_figures(self, docname: str) -> None:
        described = figure_descriptions(Path(self.env.doc2path(docname)))
        chapter = chapter_number(docname)
        count = 0
        for image in list(self.document.findall(nodes.image)):
            about = described.get(Path(image["uri"]).stem)
            if about is None:
                continue
            count += 1
            number = f"Figure {chapter}.{count}" if chapter else f"Figure {count}"
            image["alt"] = about["alt"]
            image.attributes.pop("height", None)  # the browser keeps the image's own ratio
            caption = nodes.caption(
                "",
                "",
                nodes.inline("", number + ".", classes=["book-figure-number"]),
                nodes.Text(" " + sentence(about["caption"]) if about["caption"] else ""),
                nodes.inline("", " Tap the figure to enlarge it.", classes=["book-enlarge-cue"]),
            )
            target = image.parent if isinstance(image.parent, nodes.reference) else image
            figure = nodes.figure("", classes=["book-figure"], ids=[nodes.make_id(number)])
            target.replace_self(figure)
            figure += [target, caption]

    def wrap_prose_outputs(self) -> None:
        for cell in self.document.findall(is_code_cell):
            for block in cell.findall(nodes.literal_block):
                if "output" in block["classes"] and not is_table(block.astext()):
                    block["classes"].append("book-wrap")


def setup(app: Sphinx) -> dict:
    app.add_post_transform(BookCells)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
