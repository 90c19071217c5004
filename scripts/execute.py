"""Re-execute the book's notebooks exactly as the tests do: store their outputs, or try other seeds.

Usage:
    python scripts/execute.py chapters/03_batch_size.ipynb [more notebooks ...]
    python scripts/execute.py --all --jobs 2             # two notebooks at a time
    python scripts/execute.py --seed-offset 3 --all      # run under other seeds, store nothing
    python scripts/execute.py --compare --all            # stored glued numbers against this machine's
    python scripts/execute.py --claims --threads 1 --native-kernels --all   # the checks elsewhere

Each notebook runs top to bottom in a fresh kernel of the current Python, in the portable
numeric mode, with the hash seed and plotting backend of `scripts/book.py` (the same
settings `pytest` uses), and is saved with clean metadata (no per-cell timestamps, a
generic kernel spec) plus the record of the platform its outputs come from
(`lib.numerics.platform_record()`), which tells `pytest` where they can be reproduced, and
when the run finished and how long it took (the book's status page shows both).
Prints the wall-clock time of each notebook. `--jobs N` runs N notebooks at a time, each in
its own kernel with the same thread count, so the outputs do not depend on N, except the
wall-clock measurements of chapters 2, 3 and 3b: store those alone, on a quiet machine.

With `--seed-offset K` nothing is stored. Every seed written in a code cell is shifted by
K before the run (see `shift_seeds` for the forms it recognizes: `lib.seed(0)`, `seed=0`,
`manual_seed(0)`, `default_rng(0)`, `for seed in range(3)`, `seeds = (0, 1, 2)`), every
cell runs even after one fails, and each failing cell is reported with its error. The
checks of a chapter claim what holds for any seed, so the goal is no failing cell for any K.
The exit status is 1 when a cell failed.

With `--claims` nothing is stored: every cell runs as written and each failing cell is
reported, as with `--seed-offset`. Together with `--threads N` (every library's thread count)
and `--native-kernels` (each library's own CPU kernels instead of the portable AVX2 ones),
both accepted by the three modes that store nothing, it checks that the claims hold beyond
the platform the outputs are stored from.

With `--compare` nothing is stored either. Each notebook runs as it is, and every number the
prose quotes (each `lib.glue` record) is printed as stored and as computed here, with the
relative difference between the two; the largest one closes each notebook's table. It is
how a reader sees what a different machine changes in the book's numbers.
"""

import argparse
import ast
import copy
import datetime
import functools
import math
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lib.notebook import GLUE_MIME_PREFIX  # noqa: E402
from lib.numerics import differences  # noqa: E402
from scripts.book import (  # noqa: E402
    EXECUTION_KEY,
    PLATFORM_KEY,
    ROOT,
    book_notebooks,
    execution_env,
    execution_platform,
    platform_of,
    stored_platform,
    varied_env,
)

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


def clean_metadata(nb: nbformat.NotebookNode, seconds: float) -> None:
    """Drop what changes from run to run and says nothing about the book; record the platform,
    and when the run finished and how many ``seconds`` it took."""
    finished = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    nb.metadata = {
        "kernelspec": KERNELSPEC,
        "language_info": {"name": "python"},
        PLATFORM_KEY: execution_platform(),
        EXECUTION_KEY: {"finished": finished.isoformat(), "seconds": round(seconds, 1)},
    }
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("collapsed", None)
        cell.metadata.pop("scrolled", None)


def run(
    nb: nbformat.NotebookNode, path: Path, allow_errors: bool = False, env: dict[str, str] | None = None
) -> float:
    """Execute ``nb`` (read from ``path``) in a fresh kernel; return the wall-clock seconds.

    The kernel's environment is ``env``, by default `execution_env()`.
    """
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute(env=env or execution_env())
    return time.perf_counter() - start


def execute(path: Path) -> tuple[float, list[str], list[str]]:
    """Execute one notebook in place; return its wall-clock time in seconds (no report, no failure)."""
    nb = nbformat.read(path, as_version=4)
    elapsed = run(nb, path)
    clean_metadata(nb, elapsed)
    nbformat.write(nb, path)
    return elapsed, [], []


def failing_cells(nb: nbformat.NotebookNode) -> list[str]:
    """One line per code cell that raised: its index in the notebook and the error."""
    failures = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                message = f"{output.ename}: {output.evalue}".strip().splitlines()[0][:300]
                failures.append(f"cell {index}: {message}")
    return failures


def check_claims(
    path: Path, offset: int = 0, env: dict[str, str] | None = None
) -> tuple[float, list[str], list[str]]:
    """Execute one notebook, with its seeds shifted by ``offset``, storing nothing; report failing cells."""
    nb = nbformat.read(path, as_version=4)
    shifted = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source, count = shift_seeds(cell.source, offset)
            shifted += count
    if offset and shifted == 0:
        return 0.0, [], ["no seed found to shift"]
    elapsed = run(nb, path, allow_errors=True, env=env)
    return elapsed, [], failing_cells(nb)


def glued_values(nb: nbformat.NotebookNode) -> dict[str, str]:
    """Every value a notebook glues for the prose, by name, as the text the site shows."""
    values = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            key = f"{GLUE_MIME_PREFIX}text/plain"
            if name and key in output.get("data", {}):
                values[name] = ast.literal_eval(output.data[key])
    return values


# A number as the prose prints it: 0.0912, 1,197, 3e-05, 12.5 (in 12.5%); a '-' counts as a
# sign only at the start or after a space or bracket, so a range '0.09-0.14' is two numbers.
NUMBER = re.compile(r"(?:(?<![\w.])-)?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")


def relative_difference(stored: str, here: str) -> float:
    """The largest relative difference between the numbers of two texts (inf if they differ otherwise)."""
    if stored == here:
        return 0.0
    a, b = NUMBER.findall(stored), NUMBER.findall(here)
    if len(a) != len(b) or NUMBER.sub("#", stored) != NUMBER.sub("#", here):
        return math.inf
    largest = 0.0
    for x, y in zip(a, b):
        x, y = float(x.replace(",", "")), float(y.replace(",", ""))
        scale = max(abs(x), abs(y))
        largest = max(largest, abs(x - y) / scale if scale else 0.0)
    return largest


def compare(path: Path, env: dict[str, str] | None = None) -> tuple[float, list[str], list[str]]:
    """Execute one notebook as stored, storing nothing; report its glued values, stored against here."""
    stored = nbformat.read(path, as_version=4)
    nb = copy.deepcopy(stored)
    elapsed = run(nb, path, allow_errors=True, env=env)
    before, after = glued_values(stored), glued_values(nb)
    here = execution_platform() if env is None else platform_of(env)
    platform = differences(stored_platform(stored), here)
    lines = [f"platform, stored -> here: {'; '.join(platform) if platform else 'the same'}"]
    rows = [(name, before.get(name, "(none)"), after.get(name, "(none)")) for name in before | after]
    diffs = [relative_difference(old, new) for _, old, new in rows]
    if rows:
        width = [max(len(row[i]) for row in rows) for i in range(3)]
        lines.append(f"{'value':<{width[0]}}  {'stored':<{width[1]}}  {'here':<{width[2]}}  rel. diff")
        for (name, old, new), diff in zip(rows, diffs):
            lines.append(f"{name:<{width[0]}}  {old:<{width[1]}}  {new:<{width[2]}}  {diff:.2g}")
        worst = max(range(len(rows)), key=lambda i: diffs[i])
        changed = sum(d > 0 for d in diffs)
        lines.append(
            f"{changed} of {len(rows)} glued values differ; largest relative difference "
            f"{diffs[worst]:.2g} ({rows[worst][0]})"
        )
    else:
        lines.append("no glued values")
    return elapsed, lines, failing_cells(nb)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to execute")
    parser.add_argument("--all", action="store_true", help="execute every notebook of the book")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--seed-offset",
        type=int,
        metavar="K",
        help="shift every seed by K (K >= 1), report failing cells, store nothing",
    )
    mode.add_argument(
        "--claims", action="store_true", help="run every cell as written, report failing cells, store nothing"
    )
    mode.add_argument(
        "--compare",
        action="store_true",
        help="print the glued values stored against this machine's, store nothing",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, metavar="N", help="notebooks run at a time (N >= 1, default 1)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="with --claims, --seed-offset or --compare: N threads in every library (N >= 1)",
    )
    parser.add_argument(
        "--native-kernels",
        action="store_true",
        help="with --claims, --seed-offset or --compare: each library's own CPU kernels, not AVX2",
    )
    args = parser.parse_args()
    notebooks = book_notebooks() if args.all else args.notebooks
    if not notebooks:
        parser.error("name one or more notebooks, or pass --all")
    if args.seed_offset is not None and args.seed_offset < 1:
        parser.error(f"--seed-offset must be >= 1, got {args.seed_offset}")
    stores = not (args.claims or args.compare or args.seed_offset is not None)
    if stores and (args.threads is not None or args.native_kernels):
        parser.error("--threads and --native-kernels need --claims, --seed-offset or --compare")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    missing = [str(p) for p in notebooks if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")

    env = None
    if args.threads is not None or args.native_kernels:
        env = varied_env(args.threads, args.native_kernels)
        here = platform_of(env)
        kernels = f"torch {here['torch CPU kernels']}, numpy {here['numpy BLAS']}"
        print(f"running with kernels {kernels} and {here['threads']} threads")
    if args.compare:
        task, label = functools.partial(compare, env=env), "compared"
    elif args.claims or args.seed_offset is not None:
        task = functools.partial(check_claims, offset=args.seed_offset or 0, env=env)
        label = "claims" if args.claims else f"seed offset {args.seed_offset}"
    else:
        task, label = execute, "stored"
    execution_platform()  # read once, before the notebooks run side by side
    start, total, failed = time.perf_counter(), 0.0, 0
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for path, (seconds, report, failures) in zip(notebooks, pool.map(task, notebooks)):
            name = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
            failed += len(failures)
            status = "ok" if not failures else f"{len(failures)} failing cell(s)"
            print(f"{name}: {seconds:.1f} s, {label}: {status}", flush=True)
            for line in report + failures:
                print(f"    {line}", flush=True)
            total += seconds
    print(f"total: {total:.1f} s of notebook time, {time.perf_counter() - start:.1f} s wall-clock")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
