"""The two levels at which `pytest` checks a notebook of the book (a pytest plugin; see conftest.py).

- **reproduce**: every cell runs and its text outputs equal the stored ones byte for byte
  (nbval, strict).
- **claims**: every cell runs and every assert holds; the outputs are not compared.

Exact outputs come back only on the platform that stored them: the same machine, Python and
library versions, CPU kernels, BLAS, thread count and device (`lib.numerics.platform_record()`, kept in each
notebook's metadata by `scripts/execute.py`). With `--book-level auto`, the default, a
notebook is checked at the reproduce level where this machine's record, read as a notebook
kernel reads it, equals the stored one, and at the claims level elsewhere. The level of
every notebook, and why, is printed at the top of the run and in its summary.
`--book-level reproduce` or `--book-level claims` forces one level for every notebook:
`.ci/run` and the GitHub workflow force reproduce on x86-64, and the workflow's ARM job claims.
Text masked by `nbval_sanitize.cfg` and cells tagged `nbval-ignore-output` (timings) are not
compared at either level.

Each run that checks notebooks of the book writes, for each of them, the level, the result,
the time the cells took and when, into `_build/book-levels.json` (`RUN_RECORD`; not in git);
the book's status page reads it. A run of some notebooks keeps the others' earlier records.
"""

import datetime
import functools
import json
from pathlib import Path

import nbformat

from lib.numerics import differences
from scripts.book import ROOT, book_notebooks, execution_platform, stored_platform

#: Where a test run records each notebook's level and result (read by the status page).
RUN_RECORD = ROOT / "_build" / "book-levels.json"

LEVELS = ("auto", "reproduce", "claims")


def pytest_addoption(parser):
    parser.addoption(
        "--book-level",
        choices=LEVELS,
        default="auto",
        help="how notebooks are checked: 'reproduce' (outputs equal the stored ones), 'claims' "
        "(every cell runs, every assert holds), or 'auto' (reproduce where this machine's "
        "platform equals the one stored in the notebook, claims elsewhere; the default)",
    )


@functools.cache
def _stored_platform(path: Path) -> tuple[tuple[str, str], ...]:
    return tuple(stored_platform(nbformat.read(path, as_version=4)).items())


def notebook_level(config, path: Path) -> tuple[str, str]:
    """The level at which ``path`` is checked in this run, and the reason."""
    stored = dict(_stored_platform(Path(path).resolve()))
    changed = differences(stored, execution_platform())
    if not stored:
        level, reason = "claims", "no platform recorded in the notebook (store it with scripts/execute.py)"
    elif changed:
        level, reason = "claims", "platform differs from the stored one: " + "; ".join(changed)
    else:
        level, reason = "reproduce", "platform equals the stored one"
    forced = config.getoption("book_level")
    if forced != "auto":
        return forced, f"forced by --book-level {forced} ({reason})"
    return level, reason


def _grouped(config, paths) -> list[str]:
    """One line per (level, reason): the level, the notebooks it holds for, and why."""
    root = Path(config.rootpath)
    groups: dict[tuple[str, str], list[str]] = {}
    for path in paths:
        name = path.relative_to(root) if path.is_relative_to(root) else path
        groups.setdefault(notebook_level(config, path), []).append(str(name))
    lines = []
    for (level, reason), names in sorted(groups.items()):
        which = f"all {len(names)} notebooks" if len(names) > 1 else names[0]
        if 1 < len(names) < len(paths):
            which = f"{len(names)} notebooks ({', '.join(Path(n).stem for n in names)})"
        lines.append(f"  {level.upper()} for {which}: {reason}")
    return lines


def pytest_configure(config):
    config.pluginmanager.register(RunRecorder(config), "book-run-record")


class RunRecorder:
    """Collects each book notebook's cell reports (from every xdist worker) and records the run."""

    def __init__(self, config) -> None:
        self.config = config
        self.notebooks: dict[str, dict] = {}
        self.book = {path.resolve() for path in book_notebooks()}

    def pytest_runtest_logreport(self, report) -> None:
        path = (Path(self.config.rootpath) / report.nodeid.split("::")[0]).resolve()
        if path not in self.book:
            return
        name = path.relative_to(ROOT).as_posix()
        counts = self.notebooks.setdefault(name, {"passed": 0, "failed": 0, "skipped": 0, "seconds": 0.0})
        counts["seconds"] += report.duration
        if report.failed:
            counts["failed"] += 1
        elif report.skipped:
            counts["skipped"] += 1
        elif report.when == "call":
            counts["passed"] += 1

    def pytest_sessionfinish(self, session) -> None:
        if hasattr(self.config, "workerinput") or not self.notebooks:
            return  # an xdist worker: the controller records the run
        finished = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
        results = {}
        for name, counts in self.notebooks.items():
            level, reason = notebook_level(self.config, ROOT / name)
            result = "failed" if counts["failed"] else "passed" if counts["passed"] else "skipped"
            results[name] = {
                "finished": finished,
                "level": level,
                "reason": reason,
                "result": result,
                "cells passed": counts["passed"],
                "cells failed": counts["failed"],
                "seconds": round(counts["seconds"], 1),
            }
        record_run(RUN_RECORD, results, execution_platform())


def record_run(path: Path, results: dict[str, dict], platform: dict[str, str]) -> dict:
    """Merge one run's ``results`` (by notebook) into the record at ``path``; return the record.

    Notebooks this run did not check keep their earlier entries; each entry carries the
    platform it ran on.
    """
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        record = {}
    notebooks = record.get("notebooks", {})
    notebooks.update({name: {**result, "platform": platform} for name, result in results.items()})
    record = {"notebooks": dict(sorted(notebooks.items()))}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def pytest_report_header(config):
    platform = execution_platform()
    return [
        "book platform here: " + ", ".join(f"{key} {value}" for key, value in platform.items()),
        f"book notebooks checked at (--book-level {config.getoption('book_level')}):",
        *_grouped(config, book_notebooks()),
    ]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).suffix == ".ipynb" and hasattr(item, "options"):
            level, _ = notebook_level(config, Path(str(item.fspath)))
            if level == "claims":
                item.options["check"] = False  # nbval still fails the cell on any error


def pytest_terminal_summary(terminalreporter, config):
    ran = {
        report.nodeid.split("::")[0]
        for outcome, reports in terminalreporter.stats.items()
        if outcome != "deselected"
        for report in reports
        if getattr(report, "nodeid", "").split("::")[0].endswith(".ipynb")
    }
    if not ran:
        return
    paths = sorted((Path(config.rootpath) / name).resolve() for name in ran)
    terminalreporter.write_sep("=", "notebook check levels")
    for line in _grouped(config, paths):
        terminalreporter.write_line(line)
