"""Point the book at another repository (for a fork) in one command.

Usage:
    python scripts/set_repository.py https://github.com/<owner>/<repo> [--branch main]

Rewrites the `repository` block of `_config.yml` (the one place the URL is kept) and the
author line that names the repository, the setup cell of every chapter notebook (the Colab
install line), and every other mention of the old URL in the book's Markdown and YAML
files. The launch buttons and the repository button of the site follow `_config.yml` by
themselves.
"""

import argparse
import re
import subprocess
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.book import CONFIG, ROOT, SETUP_MARKER, book_notebooks, repository, setup_cell_source  # noqa: E402

URL_PATTERN = re.compile(r"^https://github\.com/[\w.-]+/[\w.-]+$")
TEXT_SUFFIXES = {".md", ".yml", ".yaml", ".cff"}


def short_name(url: str) -> str:
    """`owner/repo` of a GitHub URL, as the footer's author line names the repository."""
    return url.removeprefix("https://github.com/")


def rewrite_config(old_url: str, url: str, branch: str) -> None:
    text = CONFIG.read_text().replace(short_name(old_url), short_name(url))
    text = re.sub(r"(?m)^(  url:\s*).*$", rf"\g<1>{url}", text, count=1)
    text = re.sub(r"(?m)^(  branch:\s*).*$", rf"\g<1>{branch}", text, count=1)
    CONFIG.write_text(text)


def rewrite_setup_cells(url: str, branch: str) -> int:
    changed = 0
    for path in book_notebooks():
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.source.startswith(SETUP_MARKER):
                cell.source = setup_cell_source(url, branch)
                changed += 1
        nbformat.write(nb, path)
    return changed


def rewrite_mentions(old_url: str, new_url: str) -> int:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    changed = 0
    for name in tracked.split():
        path = ROOT / name
        if path.suffix in TEXT_SUFFIXES and path != CONFIG and path.exists():
            text = path.read_text()
            old_name, new_name = short_name(old_url), short_name(new_url)  # as in "the contributors to ..."
            if old_name in text:
                path.write_text(text.replace(old_url, new_url).replace(old_name, new_name))
                changed += 1
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url", help="https://github.com/<owner>/<repo>")
    parser.add_argument(
        "--branch", default=None, help="branch the site and Colab links use (default: unchanged)"
    )
    args = parser.parse_args()
    url = args.url.rstrip("/").removesuffix(".git")
    if not URL_PATTERN.match(url):
        parser.error(f"url must look like https://github.com/<owner>/<repo>, got {args.url!r}")
    old_url, old_branch = repository()
    branch = args.branch or old_branch
    mentions = rewrite_mentions(old_url, url)
    rewrite_config(old_url, url, branch)
    cells = rewrite_setup_cells(url, branch)
    print(f"repository: {url} (branch {branch}); {cells} setup cells and {mentions} other files updated")


if __name__ == "__main__":
    main()
