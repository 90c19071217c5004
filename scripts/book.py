"""The book's conventions in one place: where notebooks live, the setup cell, how they run.

Used by ``scripts/execute.py``, ``scripts/set_repository.py`` and the tests, so that the
command that regenerates a notebook and the test that re-executes it agree exactly.
"""

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from lib import numerics

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_config.yml"
TOC = ROOT / "_toc.yml"
CHAPTERS = ROOT / "chapters"
REFERENCE = ROOT / "reference"
DISTRIBUTION = "why-training-fails"

# The environment every notebook executes in, under `pytest` and `scripts/execute.py` alike:
# the portable numeric mode of `lib.numerics` (CPU kernels capped at AVX2, two threads;
# floating-point sums depend on both), a fixed hash seed, the inline matplotlib backend, and
# the CPU unless the caller has chosen a device with LIB_DEVICE.
EXECUTION_ENV = {
    **numerics.portable_env(),
    "PYTHONHASHSEED": "0",
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    "TQDM_DISABLE": "1",
}
# A value this machine already gives OPENBLAS_CORETYPE is kept: some machines set it to work
# around OpenBLAS builds that pick a wrong kernel for their CPU.
KEPT_FROM_MACHINE = ("OPENBLAS_CORETYPE",)

# Where `scripts/execute.py` stores, in a notebook's metadata, the platform of its outputs.
PLATFORM_KEY = "book_platform"
# ... and when the run that stored them finished (UTC, ISO 8601) and how many seconds it took.
EXECUTION_KEY = "book_execution"

SETUP_CELL_TEMPLATE = """\
# Setup: on Colab, install the book's library `lib`; everywhere, seed, pick the device
# and draw figures in the book's style.
import sys

if "google.colab" in sys.modules:
    %pip install -q "{distribution} @ git+{url}@{ref}"

import lib

lib.seed(0)
device = lib.get_device()  # CUDA, then Apple MPS, then CPU; set LIB_DEVICE to override
lib.plot.use_style()  # sharp figures (2x PNG) in one style"""

SETUP_MARKER = "# Setup: on Colab"
# The setup cell is shown collapsed on the site; the reader opens it on demand.
SETUP_TAG = "hide-input"


def read_config() -> dict:
    """Return `_config.yml` as a dictionary."""
    return yaml.safe_load(CONFIG.read_text())


def repository() -> tuple[str, str]:
    """Return the repository URL and branch named in `_config.yml`."""
    repo = read_config()["repository"]
    return repo["url"].rstrip("/"), repo["branch"]


def setup_cell_source(url: str | None = None, ref: str | None = None) -> str:
    """The setup cell every chapter starts with, for the repository in `_config.yml`."""
    default_url, default_ref = repository()
    return SETUP_CELL_TEMPLATE.format(
        distribution=DISTRIBUTION, url=url or default_url, ref=ref or default_ref
    )


def toc_files() -> list[str]:
    """Every file named in `_toc.yml`, without suffix, in reading order."""

    def walk(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["file"]] if "file" in node else []
            return found + [f for key in ("parts", "chapters", "sections") for f in walk(node.get(key, []))]
        if isinstance(node, list):
            return [f for item in node for f in walk(item)]
        return []

    toc = yaml.safe_load(TOC.read_text())
    return [toc["root"], *walk(toc)]


def chapter_notebooks() -> list[Path]:
    """Every numbered chapter notebook under `chapters/`, sorted."""
    return sorted(p for p in CHAPTERS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def book_notebooks() -> list[Path]:
    """Every notebook of the book: the chapters, then the reference pages under `reference/`."""
    reference = sorted(p for p in REFERENCE.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    return chapter_notebooks() + reference


def execution_env() -> dict[str, str]:
    """The process environment a notebook kernel gets: the caller's plus `EXECUTION_ENV`."""
    kept = {
        name: os.environ[name]
        for name in KEPT_FROM_MACHINE
        if name in os.environ and name not in numerics.pinned_by_lib()
    }
    return {**os.environ, **EXECUTION_ENV, **kept}


def varied_env(threads: int | None = None, native_kernels: bool = False) -> dict[str, str]:
    """`execution_env()` with another thread count, or each library's own kernels for this CPU.

    For checking that the claims hold beyond the portable mode; outputs are stored only from
    `execution_env()` itself.
    """
    env = execution_env()
    if threads is not None:
        env.update(dict.fromkeys(numerics.THREAD_VARS, str(threads)))
    if native_kernels:
        for name in numerics.AVX2_KERNELS:
            if name not in KEPT_FROM_MACHINE or name in numerics.pinned_by_lib():
                env.pop(name, None)
        env[numerics.KERNELS_ENV_VAR] = "native"
    return env


def platform_of(env: dict[str, str]) -> dict[str, str]:
    """`lib.numerics.platform_record()` as a notebook kernel started with ``env`` sees it."""
    code = "import json, lib; print(json.dumps(lib.numerics.platform_record()))"
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"could not read this machine's platform record:\n{result.stderr}")
    return json.loads(result.stdout)


@functools.cache
def execution_platform() -> dict[str, str]:
    """The platform record of a notebook executed here as the tests execute it."""
    return platform_of(execution_env())


def stored_platform(nb: dict) -> dict[str, str]:
    """The platform record stored in a notebook when it was executed (empty if none)."""
    return dict(nb.get("metadata", {}).get(PLATFORM_KEY, {}))


def pip_install_target(setup_source: str) -> str:
    """The requirement that the setup cell's `%pip install` line installs."""
    match = re.search(r'%pip install -q "([^"]+)"', setup_source)
    if match is None:
        raise ValueError('the setup cell has no `%pip install -q "..."` line')
    return match.group(1)
