"""Write the site's Chinese font: Noto Sans CJK SC cut down to the characters the book uses.

The glossary and the chapters give the course notes' Chinese terms. A reader whose system
has no Chinese font would see empty boxes, so the site bundles one, holding only the
characters the book's pages use (a few hundred glyphs, tens of kB instead of 16 MB):
``_static/fonts/book-cjk-sc.woff2``, declared in ``_static/book.css`` after the system's
Chinese fonts (a reader who has one never downloads it). Noto Sans CJK is under the SIL
Open Font License, which allows a subset to be bundled; the license travels with it.

Run it again when a page gains a Chinese character (``tests/test_book.py`` says when)::

    apt-get install fonts-noto-cjk   # Debian/Ubuntu: the full font to cut from
    python scripts/cjk_font.py
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection

ROOT = Path(__file__).resolve().parent.parent
FONT = ROOT / "_static" / "fonts" / "book-cjk-sc.woff2"
SOURCE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
FAMILY = "Noto Sans CJK SC"
# CJK symbols and punctuation, ideographs (and extension A), full-width forms
CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")
PAGES = ("*.md", "chapters/*.ipynb", "reference/*.ipynb", "api/*.md", "lib/*.py")


def characters_used(root: Path = ROOT) -> set[str]:
    """Every CJK character in the book's pages (Markdown, notebooks, docstrings of the API)."""
    found: set[str] = set()
    for pattern in PAGES:
        for path in root.glob(pattern):
            found |= set(CJK.findall(path.read_text(encoding="utf-8")))
    return found


def _font_index(collection: Path, family: str) -> int:
    for index, font in enumerate(TTCollection(str(collection)).fonts):
        if font["name"].getDebugName(1) == family:
            return index
    raise SystemExit(f"{collection} holds no font named {family!r}")


def write_subset(source: Path = SOURCE, target: Path = FONT) -> int:
    """Cut ``source`` down to the characters in use; return the number of characters kept."""
    if not source.exists():
        raise SystemExit(f"{source} not found: apt-get install fonts-noto-cjk")
    used = characters_used()
    options = subset.Options()
    options.flavor = "woff2"
    options.font_number = _font_index(source, FAMILY)
    options.layout_features = ["*"]
    options.name_IDs = ["*"]  # keep the copyright and license records
    font = subset.load_font(str(source), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(used)))
    subsetter.subset(font)
    target.parent.mkdir(parents=True, exist_ok=True)
    subset.save_font(font, str(target), options)
    return len(used)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="the Noto Sans CJK collection (.ttc)")
    args = parser.parse_args(argv)
    kept = write_subset(args.source)
    print(f"{FONT.relative_to(ROOT)}: {kept} characters, {FONT.stat().st_size / 1024:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
