"""lib.checks: one message style for every argument check; lib's submodules are discoverable."""

import pytest
import torch

import lib
from lib import checks


def test_integer_accepts_and_returns_integers_in_range():
    assert checks.integer("k", 3, 1, 5) == 3
    assert checks.integer("steps", 0, 0) == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, r"k must be an integer in \[1, 5\], got 0"),
        (6, r"k must be an integer in \[1, 5\], got 6"),
        (2.0, r"k must be an integer in \[1, 5\], got 2.0"),
        (True, r"k must be an integer in \[1, 5\], got True"),
    ],
)
def test_integer_message_names_argument_range_and_value(value, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        checks.integer("k", value, 1, 5)


def test_number_ranges_and_messages():
    assert checks.number("lr", 0.1, 0) == 0.1
    assert checks.number("lr", torch.tensor(0.5), 0) == 0.5
    assert checks.number("max_param_norm", float("inf"), 0, low_open=True, finite=False) == float("inf")
    with pytest.raises(ValueError, match="^lr must be a finite number >= 0, got -1$"):
        checks.number("lr", -1, 0)
    with pytest.raises(ValueError, match=r"^beta must be a finite number in \[0, 1\), got 1.0$"):
        checks.number("beta", 1.0, 0, 1, high_open=True)
    with pytest.raises(ValueError, match="^sigma must be a finite number > 0, got 0$"):
        checks.number("sigma", 0, 0, low_open=True)
    for bad in (float("nan"), float("inf"), "1", None, False):
        with pytest.raises(ValueError, match="^x must be a finite number >= 0, got "):
            checks.number("x", bad, 0)


def test_one_of_and_generator():
    assert checks.one_of("which", "LA", ("LA", "SA")) == "LA"
    with pytest.raises(ValueError, match=r"^which must be one of \('LA', 'SA'\), got 'XX'$"):
        checks.one_of("which", "XX", ("LA", "SA"))
    gen = checks.generator(7)
    assert gen.device.type == "cpu"
    assert torch.equal(
        torch.rand(3, generator=gen), torch.rand(3, generator=torch.Generator().manual_seed(7))
    )
    with pytest.raises(ValueError, match="^seed must be an integer in"):
        checks.generator(-1)


def test_lib_lists_its_submodules():
    listed = dir(lib)
    assert all(name in listed for name in lib.SUBMODULES)
    assert lib.plot.__name__ == "lib.plot"


def test_lib_uses_only_public_torch_apis_present_at_the_declared_floor():
    # pyproject.toml declares torch>=2.1: private helpers (torch._foreach_norm, ...) and
    # later additions (torch.nn.utils.get_total_norm, torch 2.6) are kept out of lib
    import re
    from pathlib import Path

    later = ("get_total_norm", "torch.optim.optimizer import ParamsT", "fork_rng(")
    for path in sorted((Path(lib.__file__).parent).glob("*.py")):
        source = path.read_text()
        assert not re.search(r"\btorch\._(?!C\b)[a-z]", source), path.name
        assert not any(name in source for name in later), path.name
