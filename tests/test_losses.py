"""Tests for lib.losses: every function against its torch.nn.functional reference."""

import math

import pytest
import torch
import torch.nn.functional as F

from lib import activations as A
from lib import losses as L

DTYPES = [torch.float32, torch.float64]
# agreement with torch: a few ulps of the dtype, scaled by the size of the values
TOL = {torch.float32: {"rtol": 1e-5, "atol": 1e-6}, torch.float64: {"rtol": 1e-12, "atol": 1e-13}}


def logits_batch(dtype, n=16, k=5, scale=3.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(n, k, generator=gen, dtype=torch.float64)).to(dtype)


def labels_batch(n=16, k=5, seed=1):
    return torch.randint(0, k, (n,), generator=torch.Generator().manual_seed(seed))


# logits where exp() overflows (1000 > 88.7 in float32, > 709.8 in float64) or underflows
EXTREME = [[1000.0, 999.0, 998.0], [-1000.0, -1000.0, -1001.0], [800.0, -800.0, 0.0], [0.0, 0.0, 0.0]]


# ------------------------------------------------------------------ softmax and friends


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_and_log_softmax_match_torch(dtype, dim):
    z = logits_batch(dtype)
    torch.testing.assert_close(L.softmax(z, dim=dim), F.softmax(z, dim=dim), **TOL[dtype])
    torch.testing.assert_close(L.log_softmax(z, dim=dim), F.log_softmax(z, dim=dim), **TOL[dtype])
    torch.testing.assert_close(L.softmax_naive(z, dim=dim), F.softmax(z, dim=dim), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_stable_softmax_survives_extreme_logits_where_naive_fails(dtype):
    z = torch.tensor(EXTREME, dtype=dtype)
    naive = L.softmax_naive(z)
    assert torch.isnan(naive[0]).all() and torch.isnan(naive[1]).all()  # inf/inf and 0/0
    stable = L.softmax(z)
    assert torch.isfinite(stable).all()
    torch.testing.assert_close(stable, F.softmax(z, dim=-1), **TOL[dtype])
    torch.testing.assert_close(stable.sum(dim=-1), torch.ones(len(EXTREME), dtype=dtype), **TOL[dtype])
    torch.testing.assert_close(L.log_softmax(z), F.log_softmax(z, dim=-1), **TOL[dtype])
    # log(softmax) hits log(0) = -inf at a gap of 1600; log_softmax stays finite
    assert torch.isinf(torch.log(stable[2, 1]))
    assert torch.isfinite(L.log_softmax(z)).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_naive_softmax_overflows_exactly_where_exp_does(dtype):
    limit = math.log(torch.finfo(dtype).max)  # 88.72 in float32, 709.78 in float64
    below = torch.tensor([limit - 1.0, 0.0], dtype=dtype)
    above = torch.tensor([limit + 1.0, 0.0], dtype=dtype)
    assert torch.isfinite(L.softmax_naive(below)).all()
    assert torch.isnan(L.softmax_naive(above)).any()
    torch.testing.assert_close(L.softmax(above), F.softmax(above, dim=-1), **TOL[dtype])


def test_softmax_is_shift_invariant_and_keeps_order():
    z = logits_batch(torch.float64)
    torch.testing.assert_close(L.softmax(z + 123.4), L.softmax(z), **TOL[torch.float64])
    assert torch.equal(L.softmax(z).argsort(dim=-1), z.argsort(dim=-1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_matches_torch_and_equals_two_class_softmax(dtype):
    x = torch.cat([torch.linspace(-30, 30, 601, dtype=dtype), torch.tensor([-1000.0, 1000.0], dtype=dtype)])
    torch.testing.assert_close(A.sigmoid(x), torch.sigmoid(x), **TOL[dtype])
    gen = torch.Generator().manual_seed(2)
    z = (10 * torch.randn(200, 2, generator=gen, dtype=torch.float64)).to(dtype)
    torch.testing.assert_close(A.sigmoid(z[:, 0] - z[:, 1]), L.softmax(z)[:, 0], **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_match_torch_and_stay_finite_at_extremes(dtype):
    z = torch.cat([logits_batch(dtype, n=4, k=3), torch.tensor(EXTREME, dtype=dtype)])
    weights = torch.randn(z.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64).to(dtype)
    for ours, theirs in [(L.softmax, F.softmax), (L.log_softmax, F.log_softmax)]:
        mine = z.clone().requires_grad_(True)
        ref = z.clone().requires_grad_(True)
        (grad_mine,) = torch.autograd.grad((ours(mine, dim=-1) * weights).sum(), mine)
        (grad_ref,) = torch.autograd.grad((theirs(ref, dim=-1) * weights).sum(), ref)
        assert torch.isfinite(grad_mine).all()
        torch.testing.assert_close(grad_mine, grad_ref, **TOL[dtype])
    x = torch.tensor([-1000.0, -5.0, 0.0, 5.0, 1000.0], dtype=dtype, requires_grad=True)
    (grad_sig,) = torch.autograd.grad(A.sigmoid(x).sum(), x)
    torch.testing.assert_close(grad_sig, torch.sigmoid(x) * (1 - torch.sigmoid(x)), **TOL[dtype])


# ------------------------------------------------------------------------------ losses


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_cross_entropy_and_nll_match_torch(dtype, scale):
    z = logits_batch(dtype, scale=scale)
    y = labels_batch()
    reference = F.cross_entropy(z, y)
    torch.testing.assert_close(L.cross_entropy(z, y), reference, **TOL[dtype])
    # log-softmax followed by NLL is the cross-entropy, in both libraries
    torch.testing.assert_close(L.nll_loss(L.log_softmax(z), y), reference, **TOL[dtype])
    torch.testing.assert_close(F.nll_loss(F.log_softmax(z, dim=1), y), reference, **TOL[dtype])
    # one-hot targets give the same loss as labels, and torch's probability form agrees
    targets = L.one_hot(y, 5, dtype=dtype)
    torch.testing.assert_close(L.cross_entropy(z, targets), reference, **TOL[dtype])
    torch.testing.assert_close(F.cross_entropy(z, targets), reference, **TOL[dtype])
    assert torch.isfinite(L.cross_entropy(z, y))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_with_soft_targets_and_its_gradient(dtype):
    z = logits_batch(dtype)
    probs = F.softmax(logits_batch(torch.float64, seed=5), dim=1).to(dtype)
    torch.testing.assert_close(L.cross_entropy(z, probs), F.cross_entropy(z, probs), **TOL[dtype])
    y = labels_batch()
    mine = z.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(L.cross_entropy(mine, y), mine)
    # dL/dz = (softmax(z) - onehot(y)) / N
    expected = (F.softmax(z, dim=1) - F.one_hot(y, 5).to(dtype)) / len(y)
    torch.testing.assert_close(grad, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_one_hot_matches_torch(dtype):
    z = logits_batch(dtype)
    y = labels_batch()
    targets = F.one_hot(y, 5).to(dtype)
    n, k = z.shape
    # summed over classes, averaged over samples: K times torch's mean over all entries
    expected = k * F.mse_loss(F.softmax(z, dim=1), targets)
    torch.testing.assert_close(L.mse_one_hot(z, y), expected, **TOL[dtype])
    raw = F.mse_loss(z, targets, reduction="sum") / n
    torch.testing.assert_close(L.mse_one_hot(z, y, from_logits=False), raw, **TOL[dtype])
    mine = z.clone().requires_grad_(True)
    ref = z.clone().requires_grad_(True)
    (grad_mine,) = torch.autograd.grad(L.mse_one_hot(mine, y), mine)
    (grad_ref,) = torch.autograd.grad(k * F.mse_loss(F.softmax(ref, dim=1), targets), ref)
    torch.testing.assert_close(grad_mine, grad_ref, **TOL[dtype])


def test_mse_is_flat_where_cross_entropy_is_steep():
    # a confidently wrong two-class prediction: class 0 is right, the logits favour class 1
    z = torch.tensor([[-8.0, 8.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0])
    (grad_ce,) = torch.autograd.grad(L.cross_entropy(z, y), z)
    (grad_mse,) = torch.autograd.grad(L.mse_one_hot(z, y), z)
    assert L.mse_one_hot(z, y).item() > 1.99  # near its maximum of 2
    assert grad_ce.norm().item() > 1.4  # sqrt(2) (1 - p_0) ~ 1.414
    assert grad_mse.norm().item() < 1e-5


def test_one_hot_matches_torch():
    y = labels_batch()
    torch.testing.assert_close(L.one_hot(y, 5), F.one_hot(y, 5).float())
    assert L.one_hot(y, 7, dtype=torch.float64).shape == (16, 7)


# ------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: L.softmax(torch.tensor([1, 2, 3])), "logits must be a floating-point"),
        (lambda: L.softmax(torch.tensor(1.0)), "logits must have at least one dimension"),
        (lambda: L.softmax(torch.zeros(2, 3), dim=2), "dim must be an integer"),
        (lambda: L.log_softmax(torch.zeros(2, 3), dim=-3), "dim must be an integer"),
        (
            lambda: L.cross_entropy(torch.zeros(4), torch.zeros(4, dtype=torch.long)),
            r"logits must have shape \(N, K\)",
        ),
        (
            lambda: L.cross_entropy(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long)),
            r"target must have shape \(4,\)",
        ),
        (
            lambda: L.cross_entropy(torch.zeros(4, 3), torch.tensor([0, 1, 2, 3])),
            r"target must hold labels in \[0, 2\], got 3",
        ),
        (
            lambda: L.cross_entropy(torch.zeros(4, 3), torch.tensor([0, -1, 2, 1])),
            r"target must hold labels .* got -1",
        ),
        (
            lambda: L.cross_entropy(torch.zeros(4, 3), torch.zeros(4, 2)),
            "target probabilities must have the shape",
        ),
        (lambda: L.cross_entropy(torch.zeros(4, 3), [0, 1, 2, 0]), "target must be a tensor"),
        (
            lambda: L.nll_loss(torch.zeros(4, 3), torch.zeros(4, 1, dtype=torch.long)),
            r"target must have shape \(4,\)",
        ),
        (
            lambda: L.nll_loss(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long)),
            "log_probs must be",
        ),
        (lambda: L.mse_one_hot(torch.zeros(4, 3), torch.zeros(4)), "target must hold integer class labels"),
        (
            lambda: L.mse_one_hot(torch.zeros(4, 3), torch.tensor([0, 1, 5, 0])),
            r"target must hold labels .* got 5",
        ),
        (
            lambda: L.mse_one_hot(torch.zeros(3, 4, 5), torch.zeros(3, dtype=torch.long)),
            "outputs must have shape",
        ),
        (lambda: L.one_hot(torch.tensor([0, 3]), 3), r"labels must hold labels in \[0, 2\], got 3"),
        (lambda: L.one_hot(torch.tensor([[0, 1]]), 3), "labels must be a 1-D tensor"),
        (lambda: L.one_hot(torch.tensor([0, 1]), 0), "num_classes must be an integer >= 1, got 0"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
