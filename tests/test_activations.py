"""Tests for lib.activations: the from-scratch activations against torch, and the spatial transformer."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lib import activations as A

# float32: a few ulps of relative error from the different (overflow-free) formulas
TOL = {torch.float32: {"rtol": 1e-6, "atol": 1e-6}, torch.float64: {"rtol": 1e-12, "atol": 1e-12}}
DTYPES = [torch.float32, torch.float64]

CASES = [
    ("sigmoid", A.sigmoid, torch.sigmoid, A.Sigmoid, nn.Sigmoid, {}),
    ("tanh", A.tanh, torch.tanh, A.Tanh, nn.Tanh, {}),
    ("relu", A.relu, F.relu, A.ReLU, nn.ReLU, {}),
    ("leaky_relu", A.leaky_relu, F.leaky_relu, A.LeakyReLU, nn.LeakyReLU, {}),
    ("leaky_relu_0.2", A.leaky_relu, F.leaky_relu, A.LeakyReLU, nn.LeakyReLU, {"negative_slope": 0.2}),
    ("elu", A.elu, F.elu, A.ELU, nn.ELU, {}),
    ("elu_0.5", A.elu, F.elu, A.ELU, nn.ELU, {"alpha": 0.5}),
]
GRADS = {
    "sigmoid": A.sigmoid_grad,
    "tanh": A.tanh_grad,
    "relu": A.relu_grad,
    "leaky_relu": A.leaky_relu_grad,
    "elu": A.elu_grad,
}


def inputs(dtype: torch.dtype) -> torch.Tensor:
    """Ordinary values, exact zero, tiny values and values where naive exponentials overflow."""
    ordinary = torch.linspace(-8, 8, 161, dtype=dtype)
    special = torch.tensor(
        [0.0, 1e-8, -1e-8, 1e-3, -1e-3, 50.0, -50.0, 100.0, -100.0, 1e4, -1e4], dtype=dtype
    )
    return torch.cat([ordinary, special])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "ours", "ref", "module", "ref_module", "kwargs"), CASES)
def test_values_and_gradients_match_torch(dtype, name, ours, ref, module, ref_module, kwargs):
    x = inputs(dtype).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = ours(x, **kwargs), ref(x_ref, **kwargs)
    torch.testing.assert_close(y, y_ref, **TOL[dtype])
    (g,) = torch.autograd.grad(y.sum(), x)
    (g_ref,) = torch.autograd.grad(y_ref.sum(), x_ref)
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g, g_ref, **TOL[dtype])
    # the module versions agree with torch.nn's
    torch.testing.assert_close(module(**kwargs)(x.detach()), ref_module(**kwargs)(x.detach()), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "ours", "ref", "module", "ref_module", "kwargs"), CASES)
def test_derivative_functions_match_autograd(dtype, name, ours, ref, module, ref_module, kwargs):
    x = inputs(dtype).requires_grad_()
    (g_ref,) = torch.autograd.grad(ref(x, **kwargs).sum(), x)
    torch.testing.assert_close(GRADS[name.split("_0")[0]](x.detach(), **kwargs), g_ref, **TOL[dtype])


def test_sigmoid_is_finite_where_the_naive_formula_overflows():
    x = torch.tensor([-1e4, -100.0, 100.0, 1e4], requires_grad=True)
    naive = x.detach().exp() / (1 + x.detach().exp())  # inf / inf for large x
    assert torch.isnan(naive).any()
    y = A.sigmoid(x)
    torch.testing.assert_close(y.detach(), torch.tensor([0.0, 3.7200760e-44, 1.0, 1.0]), rtol=1e-6, atol=0.0)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(g).all()


def test_tanh_keeps_relative_precision_near_zero():
    x = torch.tensor([1e-10, -1e-20], dtype=torch.float32)
    torch.testing.assert_close(A.tanh(x), x, rtol=1e-6, atol=0.0)


def test_derivative_bounds():
    x = torch.linspace(-10, 10, 2001, dtype=torch.float64)
    assert A.sigmoid_grad(x).max().item() == pytest.approx(0.25)
    assert A.tanh_grad(x).max().item() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: A.elu(torch.zeros(2), alpha=-1.0), "alpha"),
        (lambda: A.ELU(alpha=-0.1), "alpha"),
        (lambda: A.elu_grad(torch.zeros(2), alpha=float("nan")), "alpha"),
        (lambda: A.leaky_relu(torch.zeros(2), negative_slope=-0.01), "negative_slope"),
        (lambda: A.LeakyReLU(negative_slope=float("inf")), "negative_slope"),
        (lambda: A.leaky_relu_grad(torch.zeros(2), negative_slope=-1), "negative_slope"),
    ],
)
def test_bad_arguments_raise(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_modules_work_inside_mlp():
    from lib.models import mlp

    torch.manual_seed(0)
    model = mlp(64, 16, 3, 10, activation=A.ELU(alpha=0.5))
    assert model(torch.randn(5, 64)).shape == (5, 10)
    assert "alpha=0.5" in repr(model)
