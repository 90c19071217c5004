"""Re-execute the book's notebooks exactly as the tests do: store their outputs, or try other seeds.

Usage:
    python scripts/execute.py chapters/03_batch_size.ipynb [more notebooks ...]
    python scripts/execute.py --all
    python scripts/execute.py --seed-offset 3 --all      # run under other seeds, store nothing

Each notebook runs top to bottom in a fresh kernel of the current Python, with the thread
count, hash seed and plotting backend of `scripts/book.py` (the same settings `pytest`
uses), and is saved with clean metadata: no execution timestamps, a generic kernel spec.
Prints the wall-clock time of each notebook.

With `--seed-offset K` nothing is stored. Every seed written in a code cell is shifted by
K before the run (see `shift_seeds` for the forms it recognizes: `lib.seed(0)`, `seed=0`,
`manual_seed(0)`, `default_rng(0)`, `for seed in range(3)`, `seeds = (0, 1, 2)`), every
cell runs even after one fails, and each failing cell is reported with its error. The
checks of a chapter claim what holds for any seed, so the goal is no failing cell for any K.
The exit status is 1 when a cell failed.
"""

import argparse
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.book import ROOT, book_notebooks, execution_env  # noqa: E402

CELL_TIMEOUT_S = 600
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

# A seed given as an integer literal: `seed=3`, `lib.seed(3)`, `torch.manual_seed(3)`,
# `np.random.default_rng(3)`, `np.random.RandomState(3)`.
SEED_LITERAL = re.compile(
    r"(\bseed\s*=\s*|\b(?:seed|manual_seed|default_rng|RandomState)\(\s*)(\d+)(?![.\w])"
)
# A range of seeds: `for seed in range(3)`, `seeds = range(1, 4)`.
SEED_RANGE = re.compile(r"(\bseeds?\s*(?:=|\bin)\s*range\()([^()]*)\)", re.IGNORECASE)
# A literal collection of seeds: `seeds = (0, 1, 2)`, `for seed in [0, 1]`.
SEED_COLLECTION = re.compile(r"(\bseeds?\s*(?:=|\bin)\s*)([\[(])([\d,\s]+)([\])])", re.IGNORECASE)


def shift_seeds(source: str, offset: int) -> tuple[str, int]:
    """Return ``source`` with every literal seed shifted by ``offset``, and how many were shifted."""
    count = 0

    def literal(match: re.Match) -> str:
        nonlocal count
        count += 1
        return f"{match[1]}{int(match[2]) + offset}"

    def seed_range(match: re.Match) -> str:
        nonlocal count
        bounds = [b.strip() for b in match[2].split(",")]
        if not all(b.isdigit() for b in bounds) or len(bounds) > 2:
            return match[0]  # a computed range: its seeds come from a shifted literal elsewhere
        count += 1
        start, stop = (0, int(bounds[0])) if len(bounds) == 1 else map(int, bounds)
        return f"{match[1]}{start + offset}, {stop + offset})"

    def collection(match: re.Match) -> str:
        nonlocal count
        count += 1
        seeds = ", ".join(str(int(s) + offset) for s in match[3].split(",") if s.strip())
        return f"{match[1]}{match[2]}{seeds}{match[4]}"

    source = SEED_LITERAL.sub(literal, source)
    source = SEED_RANGE.sub(seed_range, source)
    source = SEED_COLLECTION.sub(collection, source)
    return source, count


def clean_metadata(nb: nbformat.NotebookNode) -> None:
    """Drop what changes from run to run and says nothing about the book."""
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("collapsed", None)
        cell.metadata.pop("scrolled", None)


def run(nb: nbformat.NotebookNode, path: Path, allow_errors: bool = False) -> float:
    """Execute ``nb`` (read from ``path``) in a fresh kernel; return the wall-clock seconds."""
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute(env=execution_env())
    return time.perf_counter() - start


def execute(path: Path) -> float:
    """Execute one notebook in place; return its wall-clock time in seconds."""
    nb = nbformat.read(path, as_version=4)
    elapsed = run(nb, path)
    clean_metadata(nb)
    nbformat.write(nb, path)
    return elapsed


def failing_cells(nb: nbformat.NotebookNode) -> list[str]:
    """One line per code cell that raised: its index in the notebook and the error."""
    failures = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                message = f"{output.ename}: {output.evalue}".strip().splitlines()[0][:300]
                failures.append(f"cell {index}: {message}")
    return failures


def try_seeds(path: Path, offset: int) -> tuple[float, list[str]]:
    """Execute one notebook with its seeds shifted by ``offset``, storing nothing."""
    nb = nbformat.read(path, as_version=4)
    shifted = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source, count = shift_seeds(cell.source, offset)
            shifted += count
    if shifted == 0:
        return 0.0, ["no seed found to shift"]
    elapsed = run(nb, path, allow_errors=True)
    return elapsed, failing_cells(nb)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to execute")
    parser.add_argument("--all", action="store_true", help="execute every notebook of the book")
    parser.add_argument(
        "--seed-offset",
        type=int,
        metavar="K",
        help="shift every seed by K (K >= 1), report failing cells, store nothing",
    )
    args = parser.parse_args()
    notebooks = book_notebooks() if args.all else args.notebooks
    if not notebooks:
        parser.error("name one or more notebooks, or pass --all")
    if args.seed_offset is not None and args.seed_offset < 1:
        parser.error(f"--seed-offset must be >= 1, got {args.seed_offset}")
    total, failed = 0.0, 0
    for path in notebooks:
        name = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
        if args.seed_offset is None:
            seconds = execute(path)
            print(f"{name}: {seconds:.1f} s", flush=True)
        else:
            seconds, failures = try_seeds(path, args.seed_offset)
            failed += len(failures)
            status = "ok" if not failures else f"{len(failures)} failing cell(s)"
            print(f"{name}: {seconds:.1f} s, seed offset {args.seed_offset}: {status}", flush=True)
            for line in failures:
                print(f"    {line}", flush=True)
        total += seconds
    print(f"total: {total:.1f} s")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
