"""How long each chapter reads: words on its main path, and visible code against prose.

Usage:
    python scripts/book_stats.py                  # the chapters as they are now
    python scripts/book_stats.py --at REV         # as committed at a git revision

The main path runs from the title to the summary: every Markdown cell before the first
"## Going further" or "## Exercises" heading (the book's aim is about 3,000 words).
Visible code lines are the non-blank lines of code cells a reader sees without a click
(no `hide-input`, `hide-cell` or `remove-*` tag); prose lines are the non-blank lines of
Markdown cells; the ratio is code over prose (the book's aim: at most 1.2 over the book).
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.book import book_notebooks  # noqa: E402

HIDDEN = {"hide-input", "hide-cell", "remove-cell", "remove-input"}
MAIN_PATH_ENDS = ("## Going further", "## Exercises")


def stats(nb: dict) -> dict:
    """Words on the main path and in all, visible code lines, prose lines, asserts."""
    main = total = code = prose = asserts = 0
    on_main_path = True
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        lines = [line for line in text.splitlines() if line.strip()]
        if cell["cell_type"] == "markdown":
            on_main_path &= not any(line.startswith(MAIN_PATH_ENDS) for line in lines)
            words = len(text.split())
            total += words
            main += words if on_main_path else 0
            prose += len(lines)
        elif cell["cell_type"] == "code":
            asserts += sum(line.lstrip().startswith("assert ") for line in lines)
            if not HIDDEN & set(cell["metadata"].get("tags", [])):
                code += len(lines)
    return {"main": main, "words": total, "code": code, "prose": prose, "asserts": asserts}


def load(path: Path, rev: str | None) -> dict:
    if rev is None:
        return json.loads(path.read_text())
    relative = path.relative_to(ROOT).as_posix()
    return json.loads(subprocess.check_output(["git", "show", f"{rev}:{relative}"], cwd=ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--at", metavar="REV", help="count the notebooks as committed at this git revision")
    args = parser.parse_args()
    print(
        f"{'notebook':<30} {'main path':>9} {'words':>6} {'code':>5} {'prose':>5} {'ratio':>5} {'asserts':>7}"
    )
    sums = dict.fromkeys(("main", "words", "code", "prose", "asserts"), 0)
    for path in book_notebooks():
        row = stats(load(path, args.at))
        sums = {key: sums[key] + row[key] for key in sums}
        print(line(path.name, row))
    print(line("book", sums))


def line(name: str, row: dict) -> str:
    ratio = row["code"] / max(row["prose"], 1)
    counts = f"{row['main']:>9,} {row['words']:>6,} {row['code']:>5} {row['prose']:>5} {ratio:>5.2f}"
    return f"{name:<30} {counts} {row['asserts']:>7}"


if __name__ == "__main__":
    main()
