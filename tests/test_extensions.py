"""The site's own Sphinx extensions, piece by piece (the built site is tested in test_site.py)."""

import sys

import pytest

from scripts.book import ROOT

sys.path.insert(0, str(ROOT / "_ext"))
import book_cells  # noqa: E402
import book_weight  # noqa: E402


@pytest.mark.parametrize(
    ("docname", "number"),
    [("chapters/04_momentum", "4"), ("chapters/03b_data_parallel", "3b"),
     ("chapters/10_putting_it_together", "10"), ("reference/optimizers", ""), ("glossary", "")],
)  # fmt: skip
def test_figures_are_numbered_by_chapter(docname, number):
    assert book_cells.chapter_number(docname) == number


def test_a_folded_cell_is_labelled_with_what_it_holds():
    source = "\n".join(
        [
            "def helper(ax):",
            "    ax.plot([1, 2])  # drawing inside a function is not drawing here",
            "class Probe:",
            "    pass",
            "x = helper",
            "assert x is helper",
            "assert True",
        ]
    )
    assert book_cells.cell_label(source) == "7 lines: defines helper, Probe, 2 checks"
    assert "draws the figure" in book_cells.cell_label(
        "%matplotlib inline\nfig, ax = plt.subplots()\nax.plot([1])"
    )
    assert book_cells.cell_label("x = (") == "1 line of code"  # not Python: said plainly


def test_printed_tables_are_told_from_printed_prose():
    assert book_cells.is_table("seed  loss   accuracy\n0     0.25   0.91\n1     0.27   0.90")
    assert not book_cells.is_table(
        "after 300 steps: training loss 0.153\naccuracy: training 0.973, test 0.945"
    )


def test_a_caption_ends_as_a_sentence():
    assert book_cells.sentence("Three learning rates") == "Three learning rates."
    assert book_cells.sentence("Does it converge?") == "Does it converge?"


def test_scripts_are_dropped_by_name_only():
    html = (
        '<script src="_static/scripts/fontawesome.js?digest=1"></script>\n'
        '<script src="_static/searchtools.js"></script>\n<script>var a = 1;</script>'
    )
    kept = book_weight.drop_scripts(html, ["scripts/fontawesome.js"])
    assert "fontawesome" not in kept and "searchtools.js" in kept and "var a = 1" in kept


def test_icon_rules_and_glyphs_are_kept_only_for_icons_in_use():
    css = (
        '.fa-github:before{content:"\\f09b"}.fa-magnifying-glass:before,.fa-search:before{content:"\\f002"}'
        '.fa-rocket:before{content:"\\f135"}.fa-lg{font-size:1.25em}'
    )
    kept, points = book_weight.keep_used_icons(css, {"fa-search", "fa-github"})
    assert points == {0xF09B, 0xF002}
    assert "fa-rocket" not in kept and ".fa-lg{font-size:1.25em}" in kept  # not an icon rule: kept
    assert '.fa-magnifying-glass:before,.fa-search:before{content:"\\f002"}' in kept
