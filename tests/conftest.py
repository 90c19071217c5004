"""Shared test set-up: notebooks run under nbval with the book's execution environment."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.book import EXECUTION_ENV  # noqa: E402


def pytest_configure(config):
    # nbval starts each notebook's kernel with this process's environment, so setting it here
    # gives the kernels the same thread count, hash seed and backend as scripts/execute.py.
    os.environ.update(EXECUTION_ENV)
