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


#: The torch._foreach_* functions lib may call. They are underscore names, but they are the
#: API torch's own optimizers are written in, and their signatures (lists of tensors, then a
#: scalar, a list of scalars or another list) have not changed since torch 2.0: each one here
#: is called, with the same kinds of arguments, by torch 2.1's multi-tensor optimizers
#: (torch/optim/{sgd,adam,adamw,radam,nadam,rmsprop,adagrad,adadelta}.py, _multi_tensor_*) or
#: by its clip_grad_norm_(foreach=True) (_foreach_norm), and 2.1 is the floor pyproject.toml
#: declares. Others (_foreach_pow with a tensor exponent, _foreach_copy_, ...) came later.
#: Checked against the torch 2.1.0 wheel's torch/_C/_VariableFunctions.pyi: each name is there,
#: with an overload for every kind of argument lib passes it (a scalar, a list of scalars,
#: tensor lists, alpha= and value=).
FOREACH_ALLOWED = {
    "_foreach_add",
    "_foreach_add_",
    "_foreach_addcdiv_",
    "_foreach_addcmul",
    "_foreach_addcmul_",
    "_foreach_div_",
    "_foreach_lerp_",
    "_foreach_maximum_",
    "_foreach_mul",
    "_foreach_mul_",
    "_foreach_neg",
    "_foreach_norm",
    "_foreach_reciprocal_",
    "_foreach_sqrt",
    "_foreach_sqrt_",
}


def test_lib_uses_only_public_torch_apis_present_at_the_declared_floor():
    # pyproject.toml declares torch>=2.1: private helpers (torch._C internals, torch.optim's
    # _group_tensors_by_device_and_dtype, ...) and later additions (torch.nn.utils.get_total_norm,
    # torch 2.6) are kept out of lib; the multi-tensor kernels of FOREACH_ALLOWED are let in
    import re
    from pathlib import Path

    later = ("get_total_norm", "torch.optim.optimizer import ParamsT", "fork_rng(")
    used = set()
    for path in sorted((Path(lib.__file__).parent).glob("*.py")):
        source = path.read_text()
        private = set(re.findall(r"\btorch\.(_(?!C\b)[a-z]\w*)(?![\w*])", source))  # not "_foreach_*"
        assert private <= FOREACH_ALLOWED, (path.name, private - FOREACH_ALLOWED)
        used |= private
        assert not any(name in source for name in later), path.name
    assert used == FOREACH_ALLOWED  # the list holds nothing lib does not call
    assert all(callable(getattr(torch, name, None)) for name in FOREACH_ALLOWED)
