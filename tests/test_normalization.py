"""lib.normalization against torch.nn.BatchNorm1d/2d and torch.nn.LayerNorm."""

import pytest
import torch
from torch import nn

from lib.normalization import BatchNorm, LayerNorm, standardize

# tolerances of the comparisons with torch, per dtype (rtol, atol)
TOL = {torch.float32: (1e-5, 1e-5), torch.float64: (1e-10, 1e-10)}
DTYPES = [torch.float32, torch.float64]


def close(actual, expected, dtype):
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


def pair_batchnorm(shape, dtype, momentum=0.1, seed=0):
    """Our BatchNorm and torch's, with the same random gamma and beta."""
    torch.manual_seed(seed)
    c = shape[1]
    ref = (nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d)(c, momentum=momentum, dtype=dtype)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-0.5, 0.5)
    ours = BatchNorm(c, momentum=momentum, dtype=dtype)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(16, 5), (6, 3, 4, 4)])
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batchnorm_matches_torch_over_steps(dtype, shape, momentum):
    ours, ref = pair_batchnorm(shape, dtype, momentum)
    gen = torch.Generator().manual_seed(1)
    for step in range(4):  # several training steps: outputs, gradients, running statistics
        x = (3.0 * torch.randn(shape, generator=gen, dtype=dtype) + step).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        upstream = torch.randn(shape, generator=gen, dtype=dtype)
        y, y_ref = ours(x), ref(x_ref)
        close(y, y_ref, dtype)
        (y * upstream).sum().backward()
        (y_ref * upstream).sum().backward()
        close(x.grad, x_ref.grad, dtype)
        close(ours.weight.grad, ref.weight.grad, dtype)
        close(ours.bias.grad, ref.bias.grad, dtype)
        close(ours.running_mean, ref.running_mean, dtype)
        close(ours.running_var, ref.running_var, dtype)
        assert ours.num_batches_tracked.item() == ref.num_batches_tracked.item() == step + 1
    ours.eval(), ref.eval()
    x = torch.randn(shape, generator=gen, dtype=dtype, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = ours(x), ref(x_ref)
    close(y, y_ref, dtype)
    y.sum().backward()
    y_ref.sum().backward()
    close(x.grad, x_ref.grad, dtype)
    assert ours.num_batches_tracked.item() == 4  # eval mode leaves the statistics alone


def test_batchnorm_running_var_is_unbiased():
    bn = BatchNorm(1, momentum=1.0)  # running stats become those of the last batch
    x = torch.tensor([[1.0], [2.0], [3.0], [6.0]])
    bn(x)
    assert bn.running_mean.item() == pytest.approx(3.0)
    assert bn.running_var.item() == pytest.approx(x.var(unbiased=True).item())


def test_batchnorm_train_output_is_standardized():
    bn = BatchNorm(4)
    x = 5.0 + 10.0 * torch.randn(256, 4, generator=torch.Generator().manual_seed(0))
    y = bn(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(0, unbiased=False), torch.ones(4), atol=1e-3, rtol=0)


@pytest.mark.parametrize("dim", [2, 4])
def test_batchnorm_state_dict_loads_both_ways(dim):
    shape = (8, 3) if dim == 2 else (4, 3, 5, 5)
    ref = nn.BatchNorm1d(3) if dim == 2 else nn.BatchNorm2d(3)
    ref(torch.randn(shape))  # non-trivial running statistics
    ours = BatchNorm(3)
    ours.load_state_dict(ref.state_dict())  # strict: same names, same shapes
    back = nn.BatchNorm1d(3) if dim == 2 else nn.BatchNorm2d(3)
    back.load_state_dict(ours.state_dict())
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(back.state_dict()[key], value, rtol=0, atol=0)
    ours.eval(), ref.eval()
    x = torch.randn(shape)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-6)


def test_batchnorm_without_affine_or_running_stats():
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    ref = nn.BatchNorm1d(4, affine=False, track_running_stats=False).eval()
    ours = BatchNorm(4, affine=False, track_running_stats=False).eval()
    assert ours.weight is None and ours.running_mean is None
    assert set(ours.state_dict()) == set(ref.state_dict()) == set()
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-6)  # batch stats in eval


def test_batchnorm_bad_input():
    bn = BatchNorm(3)
    with pytest.raises(ValueError, match="num_features=3"):
        bn(torch.randn(4, 5))
    with pytest.raises(ValueError, match="x must have shape"):
        bn(torch.randn(4, 3, 2))
    with pytest.raises(ValueError, match="more than 1 value"):
        bn(torch.randn(1, 3))
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm(0)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        BatchNorm(3, eps=0.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,normalized", [((8, 6), 6), ((3, 5, 4, 6), (4, 6))])
def test_layernorm_matches_torch(dtype, shape, normalized):
    torch.manual_seed(0)
    ref = nn.LayerNorm(normalized, dtype=dtype)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-0.5, 0.5)
    ours = LayerNorm(normalized, dtype=dtype)
    ours.load_state_dict(ref.state_dict())
    gen = torch.Generator().manual_seed(1)
    for mode in ("train", "eval"):  # no running statistics: both modes compute the same
        ours.train(mode == "train"), ref.train(mode == "train")
        x = (2.0 * torch.randn(shape, generator=gen, dtype=dtype) - 1.0).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        upstream = torch.randn(shape, generator=gen, dtype=dtype)
        y, y_ref = ours(x), ref(x_ref)
        close(y, y_ref, dtype)
        (y * upstream).sum().backward()
        (y_ref * upstream).sum().backward()
        close(x.grad, x_ref.grad, dtype)
        close(ours.weight.grad, ref.weight.grad, dtype)
        close(ours.bias.grad, ref.bias.grad, dtype)
        ours.zero_grad(), ref.zero_grad()


def test_layernorm_without_affine_and_state_dict():
    x = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    ours, ref = LayerNorm(7, elementwise_affine=False), nn.LayerNorm(7, elementwise_affine=False)
    assert set(ours.state_dict()) == set(ref.state_dict()) == set()
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-6)
    back = nn.LayerNorm(7)
    back.load_state_dict(LayerNorm(7).state_dict())


def test_layernorm_is_per_sample():
    ln = LayerNorm(6)
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ln(x)[:1], ln(x[:1]), rtol=0, atol=0)


def test_layernorm_bad_input():
    ln = LayerNorm((4, 6))
    with pytest.raises(ValueError, match="normalized_shape"):
        ln(torch.randn(3, 6, 4))
    with pytest.raises(ValueError, match="normalized_shape"):
        ln(torch.randn(6))
    with pytest.raises(ValueError, match="normalized_shape"):
        LayerNorm(0)
    with pytest.raises(ValueError, match="eps"):
        LayerNorm(4, eps=-1.0)


def test_standardize():
    x = torch.randn(100, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 100.0, 0.01])
    z = standardize(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0, unbiased=False), torch.ones(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(standardize(x.T, dim=1), z.T)
    with pytest.raises(ValueError, match="eps"):
        standardize(x, eps=-1.0)
