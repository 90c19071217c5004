"""Tests for lib.models: the MLP builder, the digits CNN, the one-neuron network."""

import pytest
import torch
from torch import nn

from lib import models
from lib.models import DigitsCNN, HiddenBlock, OneNeuron, count_parameters, mlp


def test_mlp_shapes_and_parameter_count():
    net = mlp(40, 32, 3, 10)
    assert net(torch.randn(7, 40)).shape == (7, 10)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(40, 32), (32, 32), (32, 32), (32, 10)]
    expected = (40 * 32 + 32) + 2 * (32 * 32 + 32) + (32 * 10 + 10)
    assert int(count_parameters(net)) == expected
    assert net(torch.randn(2, 1, 5, 8)).shape == (2, 10)  # images are flattened


def test_mlp_norm_layers():
    batch = mlp(4, 8, 2, 1, norm="batch")
    layer = mlp(4, 8, 2, 1, norm="layer")
    assert sum(isinstance(m, nn.BatchNorm1d) for m in batch.modules()) == 2
    assert sum(isinstance(m, nn.LayerNorm) for m in layer.modules()) == 2
    assert not any(isinstance(m, nn.BatchNorm1d | nn.LayerNorm) for m in mlp(4, 8, 2, 1).modules())


def test_residual_block_adds_its_input():
    h = torch.randn(5, 6)
    for residual, expected in ((True, h), (False, torch.zeros_like(h))):
        block = HiddenBlock(6, nn.ReLU(), None, residual)
        nn.init.zeros_(block.linear.weight)
        nn.init.zeros_(block.linear.bias)
        torch.testing.assert_close(block(h), expected)
    block = HiddenBlock(6, nn.Tanh(), "layer", True)
    reference = h + torch.tanh(nn.functional.layer_norm(block.linear(h), (6,)))
    torch.testing.assert_close(block(h), reference)


def test_residual_mlp_has_skips_only_in_hidden_blocks():
    net = mlp(3, 16, 4, 2, residual=True)
    blocks = [m for m in net.modules() if isinstance(m, HiddenBlock)]
    assert len(blocks) == 3 and all(b.residual for b in blocks)
    assert net(torch.randn(4, 3)).shape == (4, 2)


def test_mlp_activation_by_name_class_or_instance():
    for activation, kind in (("tanh", nn.Tanh), (nn.ELU, nn.ELU), (nn.LeakyReLU(0.2), nn.LeakyReLU)):
        net = mlp(2, 4, 2, 1, activation=activation)
        assert sum(isinstance(m, kind) for m in net.modules()) >= 2


def test_mlp_device_and_dtype():
    net = mlp(3, 4, 2, 1, norm="layer", dtype=torch.float64, device="meta")
    assert {p.dtype for p in net.parameters()} == {torch.float64}
    assert {p.device.type for p in net.parameters()} == {"meta"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 0}, "width must be an integer >= 1"),
        ({"depth": 0}, "depth must be an integer >= 1"),
        ({"in_features": 2.5}, "in_features must be an integer >= 1"),
        ({"activation": "swish2"}, "activation must be one of"),
        ({"norm": "group"}, "norm must be None, 'batch' or 'layer'"),
    ],
)
def test_mlp_rejects_bad_arguments(kwargs, message):
    arguments = {"in_features": 2, "width": 4, "depth": 2, "out_features": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        mlp(**arguments)


def test_digits_cnn():
    cnn = DigitsCNN(channels=4, batch_norm=True)
    assert cnn(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in cnn.modules()) == 2
    expected = (1 * 4 * 9 + 4) + (4 * 8 * 9 + 8) + 2 * (4 + 8) + (8 * 16 * 10 + 10)
    assert int(count_parameters(cnn)) == expected
    with pytest.raises(ValueError, match=r"expects images of shape \(B, 1, 8, 8\)"):
        cnn(torch.randn(3, 64))
    with pytest.raises(ValueError, match="channels must be an integer >= 1"):
        DigitsCNN(channels=0)
    assert next(DigitsCNN(dtype=torch.float64).parameters()).dtype == torch.float64


def test_one_neuron_matches_the_analytic_gradient():
    net = OneNeuron(0.5, -1.5, dtype=torch.float64)
    assert int(count_parameters(net)) == 2
    x = torch.tensor([1.0, 2.0, -0.5], dtype=torch.float64)
    y = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    loss = ((net(x) - y) ** 2).mean()
    loss.backward()
    w1, w2 = 0.5, -1.5
    residual = w1 * w2 * x - y
    torch.testing.assert_close(net.w1.grad, (2 * residual * w2 * x).mean())
    torch.testing.assert_close(net.w2.grad, (2 * residual * w1 * x).mean())


def test_one_neuron_origin_is_a_saddle_point():
    def loss(w1, w2):
        return (1 - w1 * w2) ** 2

    hessian = torch.autograd.functional.hessian(loss, (torch.tensor(0.0), torch.tensor(0.0)))
    matrix = torch.tensor([[float(hessian[i][j]) for j in range(2)] for i in range(2)])
    torch.testing.assert_close(torch.linalg.eigvalsh(matrix), torch.tensor([-2.0, 2.0]))
    net = OneNeuron()
    (net(torch.ones(1)) - 1).pow(2).sum().backward()
    assert float(net.w1.grad) == 0.0 and float(net.w2.grad) == 0.0


def test_parameter_count_is_printable():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    net[0].weight.requires_grad_(False)
    count = count_parameters(net)
    assert (count.total, count.trainable) == (21, 9)
    text = str(count)
    assert "0.weight" in text and "(4, 3)" in text and "total" in text and "trainable" in text
    assert text.splitlines()[-2].split()[-1] == "21"


def test_spatial_transformer_starts_at_identity_and_learns():
    torch.manual_seed(0)
    stn = models.SpatialTransformer((1, 8, 8), hidden=16)
    x = torch.rand(4, 1, 8, 8)
    theta = stn.theta(x)
    torch.testing.assert_close(theta, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(4, 2, 3))
    torch.testing.assert_close(stn(x), x, rtol=1e-5, atol=1e-5)
    # the localisation net receives a gradient through grid_sample
    stn(x).square().sum().backward()
    assert stn.localization[-1].weight.grad.abs().sum() > 0


def test_spatial_transformer_keeps_shape_and_dtype():
    stn = models.SpatialTransformer((3, 6, 10), hidden=4, dtype=torch.float64)
    x = torch.rand(2, 3, 6, 10, dtype=torch.float64)
    assert stn(x).shape == x.shape and stn(x).dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"hidden": 0}, "hidden"), ({"in_shape": (1, 0, 8)}, r"in_shape\[1\]")]
)
def test_spatial_transformer_checks_its_sizes(kwargs, name):
    with pytest.raises(ValueError, match=name):
        models.SpatialTransformer(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "layer", "count"),
    [
        ({}, nn.BatchNorm2d, 0),
        ({"batch_norm": True}, nn.BatchNorm2d, 2),
        ({"norm": "batch"}, nn.BatchNorm2d, 2),
        ({"batch_norm": True, "norm": "batch"}, nn.BatchNorm2d, 2),
        ({"norm": "group"}, nn.GroupNorm, 2),
        ({"norm": None}, nn.GroupNorm, 0),
    ],
)
def test_digits_cnn_norm_option(kwargs, layer, count):
    cnn = DigitsCNN(channels=4, **kwargs)
    assert sum(isinstance(m, layer) for m in cnn.modules()) == count
    assert cnn(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_digits_cnn_default_is_unchanged_by_the_norm_option():
    torch.manual_seed(0)
    old = DigitsCNN(channels=4)
    torch.manual_seed(0)
    new = DigitsCNN(channels=4, norm=None)
    assert [type(m) for m in old.features] == [type(m) for m in new.features]
    assert all(isinstance(m, (nn.Conv2d, nn.Identity, nn.ReLU, nn.MaxPool2d)) for m in old.features)
    for a, b in zip(old.parameters(), new.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_digits_cnn_group_norm_matches_torch_and_ignores_the_batch():
    cnn = DigitsCNN(channels=8, norm="group", groups=4, dtype=torch.float64)
    gn = cnn.features[1]
    assert (gn.num_groups, gn.num_channels) == (4, 8)
    assert (cnn.features[4].num_groups, cnn.features[4].num_channels) == (4, 16)
    # the normalization of each example over its groups, written out, against nn.GroupNorm
    z = torch.randn(5, 8, 8, 8, dtype=torch.float64)  # (B, C, H, W)
    grouped = z.reshape(5, 4, -1)  # (B, groups, C / groups * H * W)
    mean = grouped.mean(-1, keepdim=True)
    var = grouped.var(-1, unbiased=False, keepdim=True)
    by_hand = ((grouped - mean) / torch.sqrt(var + gn.eps)).reshape_as(z)
    torch.testing.assert_close(gn(z), by_hand, rtol=1e-12, atol=1e-12)
    # an example's output does not depend on its batch-mates, in training mode
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    cnn.train()
    torch.testing.assert_close(cnn(x)[:1], cnn(x[:1]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"norm": "layer"}, r"norm must be one of \(None, 'batch', 'group'\), got 'layer'"),
        ({"norm": "group", "groups": 0}, r"groups must be an integer in \[1, 4\], got 0"),
        ({"norm": "group", "groups": 3}, "groups must divide channels=4, got 3"),
        ({"batch_norm": True, "norm": "group"}, "batch_norm=True asks for norm='batch', got norm='group'"),
    ],
)
def test_digits_cnn_rejects_bad_norm_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DigitsCNN(channels=4, **kwargs)
