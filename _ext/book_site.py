"""The book's site: an issue button that asks the right questions, author-year bibliography
labels, and search results without raw LaTeX or hidden code.

- **Issue button.** The theme's "open issue" link carries a placeholder body. Here its URL
  gets a title naming the page and a body template asking for the page, the cell, what the
  reader expected and what happened.
- **Bibliography.** pybtex's default labels ([GDollarG+17]) do not match the author-year
  citations of the text (Goyal et al. (2017)); the ``book`` style labels each entry the
  way the text cites it, [Goyal et al., 2017], and sorts the list by author and year.
- **Search.** Sphinx builds result snippets from the page's HTML: math in its TeX source
  and the code of cells the page hides. ``book-search.js`` leaves both out.
"""

from __future__ import annotations

import re
from collections import Counter
from urllib.parse import quote

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting.author_year_title import SortingStyle
from sphinx.application import Sphinx

ISSUE_BODY = """\
**Page:** {page_url}
**Source file:** {source}

**Where on the page** (section heading, the first words of the paragraph or cell, \
or the figure):

**What I expected:**

**What happened instead** (paste the output, or describe the figure):

**How I read it:** site / JupyterLab / Colab (and the browser or Python version):
"""


def _latex_to_text(latex: str) -> str:
    return Text.from_latex(latex).render_as("text")


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels as the text cites: 'Kingma and Ba, 2015', 'Goyal et al., 2017' (a, b when equal)."""

    def format_labels(self, sorted_entries):
        labels = [self.format_label(entry) for entry in sorted_entries]
        repeated = {label for label, count in Counter(labels).items() if count > 1}
        seen: Counter = Counter()
        for label in labels:
            if label in repeated:
                seen[label] += 1
                yield f"{label}{chr(ord('a') + seen[label] - 1)}"
            else:
                yield label

    @staticmethod
    def format_label(entry) -> str:
        persons = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [_latex_to_text(" ".join([*person.prelast_names, *person.last_names])) for person in persons]
        if not names:
            who = _latex_to_text(entry.fields.get("title", entry.key))
        elif len(names) == 1:
            who = names[0]
        elif len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        else:
            who = f"{names[0]} et al."
        return f"{who}, {entry.fields.get('year', 'n.d.')}"


class BookStyle(UnsrtStyle):
    """pybtex's ``unsrt`` entries (with DOI and URL links), author-year labels and order."""

    default_label_style = AuthorYearLabelStyle
    default_sorting_style = SortingStyle


def _issue_url(repo_url: str, pagename: str, source: str, page_url: str) -> str:
    title = f"Page {pagename}: "
    body = ISSUE_BODY.format(page_url=page_url or pagename + ".html", source=source)
    return f"{repo_url}/issues/new?title={quote(title)}&body={quote(body)}"


def _rewrite_issue_button(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Give the theme's 'open issue' button a title and a body template."""

    def visit(buttons: list) -> None:
        for button in buttons:
            if button.get("label") == "source-issues-button":
                repo_url = re.sub(r"/issues/new.*$", "", button["url"])
                base = (app.config.html_baseurl or "").rstrip("/")
                page_url = f"{base}/{pagename}.html" if base else ""
                source = pagename + context.get("page_source_suffix", "")
                button["url"] = _issue_url(repo_url, pagename, source, page_url)
            visit(button.get("buttons", []))

    visit(context.get("header_buttons", []))


def setup(app: Sphinx) -> dict:
    register_plugin("pybtex.style.formatting", "book", BookStyle, force=True)
    # after the theme has added its buttons (priority 501)
    app.connect("html-page-context", _rewrite_issue_button, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
