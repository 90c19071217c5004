"""Re-execute chapter notebooks in place, exactly as the tests do, and store their outputs.

Usage:
    python scripts/execute.py chapters/03_batch_size.ipynb [more notebooks ...]
    python scripts/execute.py --all

Each notebook runs top to bottom in a fresh kernel of the current Python, with the thread
count, hash seed and plotting backend of `scripts/book.py` (the same settings `pytest`
uses), and is saved with clean metadata: no execution timestamps, a generic kernel spec.
Prints the wall-clock time of each notebook.
"""

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.book import book_notebooks, execution_env  # noqa: E402

CELL_TIMEOUT_S = 600
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def clean_metadata(nb: nbformat.NotebookNode) -> None:
    """Drop what changes from run to run and says nothing about the book."""
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("collapsed", None)
        cell.metadata.pop("scrolled", None)


def execute(path: Path) -> float:
    """Execute one notebook in place; return its wall-clock time in seconds."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute(env=execution_env())
    elapsed = time.perf_counter() - start
    clean_metadata(nb)
    nbformat.write(nb, path)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to execute")
    parser.add_argument("--all", action="store_true", help="execute every notebook of the book")
    args = parser.parse_args()
    notebooks = book_notebooks() if args.all else args.notebooks
    if not notebooks:
        parser.error("name one or more notebooks, or pass --all")
    total = 0.0
    for path in notebooks:
        seconds = execute(path)
        total += seconds
        print(f"{path}: {seconds:.1f} s")
    print(f"total: {total:.1f} s")


if __name__ == "__main__":
    main()
