"""Where tensors live and how runs are made repeatable.

``get_device()`` picks the fastest device present, in this order: CUDA, Apple MPS, CPU.
The environment variable ``LIB_DEVICE`` overrides the choice, for example
``LIB_DEVICE=cpu jupyter lab`` to run a notebook on the CPU of a machine with a GPU.

``seed(n)`` seeds every generator a chapter uses (Python's ``random``, NumPy's global
generator and torch's CPU and CUDA generators) in one explicit call.
"""

import os
import random
import re

import numpy as np
import torch

from lib import checks

__all__ = ["get_device", "seed"]

DEVICE_ENV_VAR = "LIB_DEVICE"


def _available(kind: str) -> bool:
    if kind == "cpu":
        return True
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return torch.backends.mps.is_available()
    return False


def get_device() -> torch.device:
    """Return the device the book computes on.

    Order of preference: CUDA, then Apple MPS, then CPU. Setting the environment
    variable ``LIB_DEVICE`` to ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` forces a choice.

    Returns:
        The chosen ``torch.device``.

    Raises:
        ValueError: if ``LIB_DEVICE`` names no device the book knows.
        RuntimeError: if ``LIB_DEVICE`` names a device this machine does not have (no such
            kind, or ``cuda:N`` with N at least the number of GPUs).
    """
    requested = os.environ.get(DEVICE_ENV_VAR, "").strip()
    if requested:
        match = re.fullmatch(r"(cpu|mps|cuda)(?::(\d+))?", requested)
        if match is None or (match[2] is not None and match[1] != "cuda"):
            raise ValueError(
                f"{DEVICE_ENV_VAR}={requested!r} is not a device: use 'cpu', 'cuda', 'cuda:N' or 'mps'"
            )
        kind, index = match[1], match[2]
        if not _available(kind):
            raise RuntimeError(f"{DEVICE_ENV_VAR}={requested!r} but this machine has no {kind} device")
        if index is not None and int(index) >= torch.cuda.device_count():
            raise RuntimeError(
                f"{DEVICE_ENV_VAR}={requested!r} but this machine has {torch.cuda.device_count()} "
                f"CUDA device(s), numbered from 0"
            )
        return torch.device(requested)
    for kind in ("cuda", "mps"):
        if _available(kind):
            return torch.device(kind)
    return torch.device("cpu")


def seed(n: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and all GPUs).

    Args:
        n: the seed, an integer in [0, 2**32 - 1].

    Raises:
        ValueError: if ``n`` is not an integer in that range.
    """
    checks.integer("seed", n, 0, 2**32 - 1)
    random.seed(n)
    np.random.seed(n)
    torch.manual_seed(n)  # also seeds every CUDA device
