"""Shared test set-up: markers, and notebooks run under nbval with the book's execution environment.

It sits at the repository root so that it holds for every path given to pytest:
``pytest chapters/07_loss.ipynb`` runs the notebook exactly as the full suite does.

Each notebook is checked at one of two levels, reproduce or claims (see ``scripts/levels.py``).

Markers (registered in ``pyproject.toml``):

- ``slow``: the notebooks (every nbval item), the site in Chromium and the Colab install.
  ``pytest -m "not slow"`` is the quick path: the unit tests of ``lib`` and the book's
  structure tests. Plain ``pytest`` runs everything.
- ``cuda``: variants that need a CUDA device. Without one they are deselected (they do not
  appear among the skips); with one they run like any other test.
"""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from scripts.book import execution_env  # noqa: E402

# The notebooks' check levels, reproduce and claims: the option, the report and the switch.
pytest_plugins = ["scripts.levels"]

#: Test modules that are slow as a whole (besides the nbval items, marked below).
SLOW_MODULES = ("test_site.py", "test_colab.py")


def pytest_configure(config):
    # nbval starts each notebook's kernel with this process's environment, so setting it here
    # gives the kernels the same thread count, hash seed and backend as scripts/execute.py.
    os.environ.update(execution_env())


def _is_notebook_item(item: pytest.Item) -> bool:
    return Path(str(item.fspath)).suffix == ".ipynb"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _is_notebook_item(item) or Path(str(item.fspath)).name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
    if not any(item.get_closest_marker("cuda") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    kept = [item for item in items if item.get_closest_marker("cuda") is None]
    deselected = [item for item in items if item.get_closest_marker("cuda") is not None]
    config.hook.pytest_deselected(items=deselected)
    items[:] = kept
