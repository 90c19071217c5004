"""Argument checks shared by every module of ``lib``, with one message style.

Each check raises ``ValueError`` naming the argument, the accepted range and what was
given, for example ``lr must be >= 0, got -1``, and returns the value when it passes::

    batch_size = checks.integer("batch_size", batch_size, low=1)
    lr = checks.number("lr", lr, low=0)
    gen = checks.generator(seed)  # a seeded CPU generator
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["generator", "integer", "number", "one_of"]

#: Seeds are what ``torch.Generator.manual_seed`` accepts without wrapping around.
MAX_SEED = 2**63 - 1


def _range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """The accepted range in words: ``>= 0``, ``> 0``, ``<= 1`` or ``in [0, 1)``."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return ""


def integer(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """Check that ``value`` is an integer (not a bool) in ``[low, high]``; return it.

    Raises:
        ValueError: ``"<name> must be an integer >= <low>, got <value>"`` (or ``in [low, high]``).
    """
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and (low is not None and value < low or high is not None and value > high):
        ok = False
    if not ok:
        accepted = _range(low, high, False, False)
        raise ValueError(f"{name} must be an integer{' ' + accepted if accepted else ''}, got {value!r}")
    return int(value)


def number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> float:
    """Check that ``value`` is a real number (not a bool) in the given range; return it as a float.

    ``low_open``/``high_open`` exclude the end points; ``finite=False`` lets infinities
    through (NaN never passes). A one-element tensor counts as a number.

    Raises:
        ValueError: ``"<name> must be >= <low>, got <value>"``, ``"... in [low, high), ..."``,
            or ``"... a finite number >= <low>, ..."`` when an infinity is refused.
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        given = value.item()
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        given = float(value)
    else:
        given = math.nan
    ok = not math.isnan(given) and (math.isfinite(given) or not finite)
    if ok and low is not None:
        ok = given > low if low_open else given >= low
    if ok and high is not None:
        ok = given < high if high_open else given <= high
    if not ok:
        accepted = _range(low, high, low_open, high_open)
        what = "a finite number" if finite else "a number"
        raise ValueError(f"{name} must be {what}{' ' + accepted if accepted else ''}, got {value!r}")
    return given


def one_of(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """Check that ``value`` is one of ``choices``; return it.

    Raises:
        ValueError: ``"<name> must be one of ('a', 'b'), got 'c'"``.
    """
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def generator(seed: Any) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (an integer in ``[0, 2**63 - 1]``).

    Random draws in ``lib`` come from a CPU generator and are moved to the device
    afterwards, so a seed gives the same numbers on the CPU, CUDA and Apple MPS.

    Raises:
        ValueError: ``"seed must be an integer in [0, 9223372036854775807], got <seed>"``.
    """
    return torch.Generator().manual_seed(integer("seed", seed, 0, MAX_SEED))
