"""``lib``: the from-scratch toolkit that every chapter of the book imports.

Importing ``lib`` does one thing before it loads PyTorch: it pins the CPU kernels and
thread counts to the book's portable choice (``lib.numerics``; variables already set in the
environment are kept), so that x86-64 CPUs of different generations print the same numbers.
It runs nothing else: no seeding, no device probing, no plotting style. Submodules load on
first use (``lib.optim``, ``lib.hessian``, ...), so ``import lib`` stays cheap and a notebook
can write ``lib.optim.SGD`` directly; ``dir(lib)`` (tab completion) lists them all, and type
checkers see them through ``TYPE_CHECKING`` imports.

The two calls every notebook makes in its setup cell::

    import lib
    lib.seed(0)               # python, numpy and torch generators
    device = lib.get_device()  # CUDA, then Apple MPS, then CPU; LIB_DEVICE overrides

and the three that carry a measurement into the prose: ``lib.glue`` (a number the text
quotes), ``lib.spread`` (a range over seeds) and ``lib.table`` (a printed comparison).
"""

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from lib.numerics import pin_portable_kernels

pin_portable_kernels()  # before lib.device imports torch and numpy

from lib.device import get_device, seed  # noqa: E402
from lib.notebook import glue, spread, table  # noqa: E402

if TYPE_CHECKING:  # type checkers and IDEs see the submodules; at run time they load on first use
    from lib import (  # noqa: F401
        activations,
        checks,
        data,
        device,
        distributed,
        explore,
        hessian,
        landscapes,
        losses,
        models,
        normalization,
        notebook,
        numerics,
        optim,
        plot,
        schedules,
        theory,
        train,
    )

__version__ = "0.1.0"

SUBMODULES = (
    "activations",
    "data",
    "device",
    "distributed",
    "explore",
    "hessian",
    "landscapes",
    "losses",
    "models",
    "normalization",
    "optim",
    "notebook",
    "numerics",
    "plot",
    "schedules",
    "theory",
    "train",
)

__all__ = ["__version__", "get_device", "glue", "seed", "spread", "table", *SUBMODULES]


def __getattr__(name: str) -> ModuleType:
    """Import a submodule the first time it is used as ``lib.<name>``."""
    if name in SUBMODULES:
        return importlib.import_module(f"lib.{name}")
    raise AttributeError(f"module 'lib' has no attribute {name!r}")


def __dir__() -> list[str]:
    """Everything ``lib.<TAB>`` should offer, the submodules included (loaded or not)."""
    return sorted(set(globals()) | set(__all__))
