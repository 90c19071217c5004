"""What a page of the site loads: only what it uses.

The theme ships every page with more than it needs. Here:

- **Icons.** The theme's Font Awesome script (1.5 MB) draws icons the theme's own CSS
  already draws from its icon fonts; it is left out, and after the build the icon fonts and
  the CSS's icon rules are cut down to the icons the pages use (fonts of a few kB, not 300).
- **Math.** MathJax loads only on pages that have math (Sphinx counts a page that lists
  others in its table of contents as having their math; the front page has none).
- **Search.** The search index and tools load on the search page only; the search box of
  every page sends its query there.
- **Services the site does not use.** No Thebe (live code on Binder): its script and config
  are dropped; sphinx-design's styles and script (cards, tabs) load only on a page that uses
  them.
- **Images** load lazily, as the reader scrolls to them.
- **A description** for search engines and link previews (``description``, OpenGraph),
  from the page's first paragraph; one viewport tag, not two.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

SEARCH_PAGE_ONLY = ("book-search.js",)  # the search snippets' filter (book_site.py)
DESIGN_FILES = ("sphinx-design.min.css", "design-tabs.js")  # sphinx-design: cards, tabs, grids
ICON_FONTS = "_static/vendor/fontawesome/webfonts"
THEME_CSS = "_static/styles/pydata-sphinx-theme.css"
DESCRIPTION_CHARS = 200


def drop_scripts(html: str, names) -> str:
    """``html`` without the ``<script src=...>`` tags whose source names one of ``names``."""
    pattern = "|".join(re.escape(name) for name in names)
    return re.sub(rf'\s*<script\b[^>]*\bsrc="[^"]*(?:{pattern})[^"]*"[^>]*>\s*</script>', "", html)


def _add_template_filter(app: Sphinx) -> None:
    if hasattr(app.builder, "templates"):
        app.builder.templates.environment.filters["drop_scripts"] = drop_scripts


def _has_math(app: Sphinx, pagename: str) -> bool:
    """Math on the page itself, not on the pages its table of contents lists; the one page of a
    ``singlehtml`` build (the PDF's) holds every page, so it has math if any page does."""
    equations = app.env.get_domain("math").data["has_equations"]
    if app.builder.name == "singlehtml":
        return any(equations.values())
    return bool(equations.get(pagename))


def _first_paragraph(doctree) -> str:
    if doctree is None:
        return ""
    for paragraph in doctree.findall(nodes.paragraph):
        text = re.sub(r"\s+", " ", paragraph.astext()).strip()
        if len(text) > 40:
            return (
                text
                if len(text) <= DESCRIPTION_CHARS
                else text[: DESCRIPTION_CHARS - 1].rsplit(" ", 1)[0] + "…"
            )
    return ""


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _trim_page(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    design = 'class="sd-' in context.get("body", "")
    scripts = context.get("script_files")
    if scripts is not None:
        math = _has_math(app, pagename)

        def keep(js) -> bool:
            name, body = js.filename or "", js.attributes.get("body", "")
            if "thebe" in name or "thebe" in body:
                return False
            if name.endswith(SEARCH_PAGE_ONLY) and pagename != "search":
                return False
            if name.endswith(DESIGN_FILES) and not design:
                return False
            return math or not (name.endswith(app.config.mathjax_path) or "window.MathJax" in body)

        scripts[:] = [js for js in scripts if keep(js)]
    css = context.get("css_files")
    if css is not None:
        css[:] = [
            sheet
            for sheet in css
            if "thebe" not in (sheet.filename or "")
            and (design or not (sheet.filename or "").endswith(DESIGN_FILES))
        ]
    if "body" in context:
        body = re.sub(r'<script type="text/x-thebe-config">.*?</script>', "", context["body"], flags=re.S)
        context["body"] = re.sub(r"<img (?![^>]*\bloading=)", '<img loading="lazy" decoding="async" ', body)
    # Sphinx's page template has a viewport tag; docutils adds another
    context["metatags"] = re.sub(r'<meta name="viewport"[^>]*>', "", context.get("metatags", ""))
    description = _first_paragraph(doctree)
    if description:
        title = re.sub(r"<[^>]+>", "", context.get("title", ""))
        context["metatags"] = context.get("metatags", "") + (
            f'\n<meta name="description" content="{_escape(description)}" />'
            f'\n<meta property="og:title" content="{_escape(title)}" />'
            f'\n<meta property="og:description" content="{_escape(description)}" />'
            '\n<meta property="og:type" content="book" />'
        )


ICON_RULE = re.compile(r"([^{}]+)\{content:\"\\([0-9a-f]+)\"\}")  # .fa-x:before,.fa-y:before{content:"\f123"}


def _icon_names(selectors: str) -> list[str] | None:
    """The icon classes of a rule's selectors, or None when a selector is not an icon's."""
    names = [re.fullmatch(r"\.(fa-[a-z0-9-]+):+before", s.strip()) for s in selectors.split(",")]
    return None if not all(names) else [m.group(1) for m in names]


def keep_used_icons(css: str, used: set[str]) -> tuple[str, set[int]]:
    """The theme's CSS without the rules of icons no page uses, and the codepoints of those it does."""
    points: set[int] = set()

    def rule(match: re.Match) -> str:
        names = _icon_names(match.group(1))
        if names is None:
            return match.group(0)
        if used.isdisjoint(names):
            return ""
        points.add(int(match.group(2), 16))
        return match.group(0)

    return ICON_RULE.sub(rule, css), points


def _keep_used_icons(app: Sphinx, exception: Exception | None) -> None:
    """Cut the icon CSS and fonts down to the icons the built pages use."""
    if exception is not None or app.builder.format != "html":
        return
    from fontTools import subset

    out = Path(app.outdir)
    used = set()
    for page in out.rglob("*.html"):
        used |= set(re.findall(r"\bfa-[a-z0-9-]+", page.read_text(encoding="utf-8")))
    css, points = keep_used_icons((out / THEME_CSS).read_text(encoding="utf-8"), used)
    if not points:
        logger.warning("no icon glyphs found to keep; icons left whole", type="book", subtype="icons")
        return
    (out / THEME_CSS).write_text(css, encoding="utf-8")
    for font in sorted((out / ICON_FONTS).glob("*")):
        if font.suffix not in (".woff2", ".ttf"):
            continue
        options = subset.Options()
        options.flavor = "woff2" if font.suffix == ".woff2" else None
        options.layout_features = ["*"]
        loaded = subset.load_font(str(font), options)
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=points)
        subsetter.subset(loaded)
        subset.save_font(loaded, str(font), options)


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _add_template_filter)
    # after Sphinx's MathJax (500) and the theme (501) have added their files
    app.connect("html-page-context", _trim_page, priority=950)
    app.connect("build-finished", _keep_used_icons)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
