"""Tests for lib.data: real and synthetic data, the loader and the augmentation."""

import random

import numpy as np
import pytest
import torch

from lib import data
from lib.data import BatchLoader, RandomShiftRotate

# ------------------------------------------------------------------------- real data


def test_digits_shapes_dtypes_and_split():
    splits = data.load_digits()
    assert [len(s.x) for s in (splits.train, splits.val, splits.test)] == [1197, 300, 300]
    assert splits.train.x.shape[1:] == (1, 8, 8)
    assert splits.train.x.dtype == torch.float32 and splits.train.y.dtype == torch.int64
    assert splits.num_classes == 10
    assert 0.0 <= float(splits.train.x.min()) and float(splits.train.x.max()) <= 1.0
    # the three splits together are exactly scikit-learn's data set (a permutation of it)
    from sklearn.datasets import load_digits

    labels = torch.cat([splits.train.y, splits.val.y, splits.test.y])
    expected = torch.bincount(torch.tensor(load_digits().target), minlength=10)
    assert torch.equal(torch.bincount(labels, minlength=10), expected)
    total = torch.cat([splits.train.x, splits.val.x, splits.test.x]).sum()
    torch.testing.assert_close(total, torch.tensor(load_digits().data.sum() / 16, dtype=torch.float32))


def test_digits_split_is_stable_and_seeded():
    a, b = data.load_digits(), data.load_digits()
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.test.y, b.test.y)
    other = data.load_digits(seed=1)
    assert not torch.equal(a.val.y, other.val.y)
    flat = data.load_digits(flatten=True)
    assert flat.train.x.shape == (1197, 64)
    assert torch.equal(flat.train.x, a.train.x.reshape(-1, 64))


def test_mnist1d_generated_locally_with_a_fixed_split():
    numpy_state, python_state = np.random.get_state()[1].copy(), random.getstate()
    splits = data.load_mnist1d()
    assert [tuple(s.x.shape) for s in (splits.train, splits.val, splits.test)] == [
        (3200, 40),
        (800, 40),
        (1000, 40),
    ]
    assert splits.train.x.dtype == torch.float32 and splits.test.y.dtype == torch.int64
    # generating must not move the global generators of NumPy and Python
    assert np.array_equal(np.random.get_state()[1], numpy_state) and random.getstate() == python_state
    # the generator's default seed reproduces the published data set: first test labels
    x_train, y_train, x_test, y_test = data._mnist1d_arrays()
    assert torch.equal(splits.test.y, torch.tensor(y_test))
    assert y_train[:10].tolist() == [2, 6, 4, 5, 6, 6, 6, 0, 3, 1]
    # train and validation together are mnist1d's training set
    assert torch.equal(
        torch.cat([splits.train.y, splits.val.y]).sort().values, torch.tensor(y_train).sort().values
    )
    again = data.load_mnist1d()
    assert torch.equal(again.val.x, splits.val.x)


def test_splits_to_moves_every_split():
    splits = data.load_digits().to("meta")
    assert {splits.train.x.device.type, splits.val.y.device.type, splits.test.x.device.type} == {"meta"}


# ---------------------------------------------------------------------- synthetic data


def test_scaled_regression_scales_and_determinism():
    a = data.make_scaled_regression(4000, scales=(1.0, 100.0, 0.01), seed=3)
    assert a.x.shape == (4000, 3) and a.y.shape == (4000, 1)
    std = a.x.std(dim=0)
    torch.testing.assert_close(std / torch.tensor([1.0, 100.0, 0.01]), torch.ones(3), atol=0.05, rtol=0)
    b = data.make_scaled_regression(4000, scales=(1.0, 100.0, 0.01), seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, data.make_scaled_regression(4000, scales=(1.0, 100.0, 0.01), seed=4).x)
    # the target is linear in the features: least squares leaves only the noise
    design = torch.cat([a.x, torch.ones(4000, 1)], dim=1).double()
    solution = torch.linalg.lstsq(design, a.y.double()).solution
    residual = a.y.double() - design @ solution
    assert 0.08 < float(residual.std()) < 0.12


def test_scaled_regression_rejects_bad_scales():
    with pytest.raises(ValueError, match="scales must be"):
        data.make_scaled_regression(10, scales=(1.0, 0.0))
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        data.make_scaled_regression(0)


def test_noisy_function_follows_the_function():
    d = data.make_noisy_function(2000, noise=0.1, seed=0)
    assert d.x.shape == (2000, 1) and d.y.shape == (2000, 1)
    assert bool((d.x[1:] >= d.x[:-1]).all())
    residual = d.y - torch.sin(2 * torch.pi * d.x)
    assert abs(float(residual.mean())) < 0.01 and 0.09 < float(residual.std()) < 0.11
    custom = data.make_noisy_function(50, function=lambda x: 3 * x, noise=0.0)
    torch.testing.assert_close(custom.y, 3 * custom.x)
    with pytest.raises(ValueError, match="function must be one of"):
        data.make_noisy_function(10, function="cosine")
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        data.make_noisy_function(10, noise=-1.0)


def test_moons():
    moons = data.make_moons(201, noise=0.0, seed=1)
    assert moons.x.shape == (201, 2) and moons.y.dtype == torch.int64
    assert torch.bincount(moons.y).tolist() == [100, 101]
    upper = moons.x[moons.y == 0]  # noise-free: on the unit circle
    torch.testing.assert_close(upper.norm(dim=1), torch.ones(len(upper)))
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        data.make_moons(1)


def test_shifted_moons_share_the_rule_but_not_the_inputs():
    sets = data.make_shifted_moons(500, 500, shift=(2.0, 0.0), rotation=0.0, noise=0.0, seed=0)
    assert sets.train.x.shape == (500, 2) and sets.shifted.x.shape == (500, 2)
    mean_gap = sets.shifted.x.mean(dim=0) - sets.test.x.mean(dim=0)
    assert abs(float(mean_gap[0]) - 2.0) < 0.15 and abs(float(mean_gap[1])) < 0.15
    back = sets.shifted.x - torch.tensor([2.0, 0.0])
    upper = back[sets.shifted.y == 0]  # undoing the shift puts class 0 back on the unit circle
    torch.testing.assert_close(upper.norm(dim=1), torch.ones(len(upper)))


# ------------------------------------------------------------------------------ loader


def test_loader_visits_every_sample_once_per_epoch_and_reshuffles():
    x = torch.arange(103).float().unsqueeze(1)
    y = torch.arange(103)
    loader = BatchLoader(x, y, batch_size=10, seed=0)
    assert len(loader) == 11
    orders = []
    for _ in range(3):
        batches = list(loader)
        assert [len(b[1]) for b in batches] == [10] * 10 + [3]
        seen = torch.cat([yb for _, yb in batches])
        assert torch.equal(seen.sort().values, y)
        assert all(torch.equal(xb.squeeze(1).long(), yb) for xb, yb in batches)  # pairs stay together
        orders.append(seen)
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])
    again = BatchLoader(x, y, batch_size=10, seed=0)
    assert torch.equal(torch.cat([yb for _, yb in again]), orders[0])


def test_loader_last_batch_and_no_shuffle():
    x, y = torch.zeros(25, 2), torch.arange(25)
    dropped = BatchLoader(x, y, batch_size=10, drop_last=True)
    assert len(dropped) == 2 and [len(yb) for _, yb in dropped] == [10, 10]
    ordered = BatchLoader(x, y, batch_size=10, shuffle=False)
    assert torch.equal(torch.cat([yb for _, yb in ordered]), y)


def test_loader_rejects_bad_input():
    with pytest.raises(ValueError, match="same number of samples"):
        BatchLoader(torch.zeros(5, 2), torch.zeros(4), batch_size=2)
    with pytest.raises(ValueError, match="same device"):
        BatchLoader(torch.zeros(5, 2), torch.zeros(5, device="meta"), batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        BatchLoader(torch.zeros(5, 2), torch.zeros(5), batch_size=0)


def test_loader_applies_the_transform():
    x, y = torch.ones(6, 1, 8, 8), torch.arange(6)
    loader = BatchLoader(x, y, batch_size=4, transform=lambda b: 2 * b)
    assert all(bool((xb == 2).all()) for xb, _ in loader)


@pytest.mark.cuda
def test_loader_batches_on_cuda():
    x, y = torch.arange(50, device="cuda").float(), torch.arange(50, device="cuda")
    batches = list(BatchLoader(x, y, batch_size=8, transform=None))
    assert all(xb.is_cuda and yb.is_cuda for xb, yb in batches)
    cpu = list(BatchLoader(x.cpu(), y.cpu(), batch_size=8))
    assert all(torch.equal(a[1].cpu(), b[1]) for a, b in zip(batches, cpu, strict=True))


# ------------------------------------------------------------------------ augmentation


def test_augmentation_without_shift_or_rotation_is_the_identity():
    images = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(RandomShiftRotate(0.0, 0.0)(images), images)


def test_augmentation_shifts_by_at_most_max_shift_pixels():
    images = torch.zeros(200, 1, 16, 16)
    images[:, :, 6:10, 6:10] = 1.0  # a centred square
    out = RandomShiftRotate(max_shift=2.0, max_degrees=0.0, seed=0)(images)
    coords = torch.arange(16.0)
    mass = out.sum(dim=(1, 2, 3))
    cx = (out.sum(dim=2).squeeze(1) * coords).sum(dim=1) / mass
    moved = cx - 7.5
    assert float(moved.abs().max()) <= 2.0 + 1e-4
    assert float(moved.abs().max()) > 1.5 and float(moved.std()) > 0.5  # really random
    torch.testing.assert_close(mass, torch.full((200,), 16.0), atol=1e-3, rtol=0)  # square stays inside


def test_augmentation_rotates_and_is_seeded():
    images = torch.zeros(1, 1, 9, 9)
    images[0, 0, 4, :] = 1.0  # a horizontal line through the centre
    rotated = RandomShiftRotate(0.0, 90.0, seed=0)(images.expand(50, 1, 9, 9).contiguous())
    assert float(rotated[:, 0, :, 4].sum(dim=1).max()) > 2.0  # some turned far towards vertical
    first, second = RandomShiftRotate(1.0, 10.0, seed=7), RandomShiftRotate(1.0, 10.0, seed=7)
    batch = torch.rand(4, 1, 8, 8)
    assert torch.equal(first(batch), second(batch))
    assert not torch.equal(first(batch), first(batch))  # a new draw on every call
    with pytest.raises(ValueError, match=r"images must have shape \(B, C, H, W\)"):
        first(torch.rand(8, 8))
    with pytest.raises(ValueError, match="max_degrees must be a finite number >= 0"):
        RandomShiftRotate(1.0, -5.0)


def test_augmentation_draws_on_the_cpu_and_restarts_for_each_loader():
    # the random numbers come from a CPU generator: the same on every device
    transform = RandomShiftRotate(1.0, 10.0, seed=3)
    assert transform.generator.device.type == "cpu"
    batch = torch.rand(4, 1, 8, 8)
    first = transform(batch)
    assert not torch.equal(transform(batch), first)
    # a new loader (a new fit) resets it: reusing one transform object repeats the run
    x, y = batch, torch.arange(4)
    runs = [
        [xb for xb, _ in BatchLoader(x, y, batch_size=4, shuffle=False, transform=transform)]
        for _ in range(2)
    ]
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][0], first)


@pytest.mark.cuda
def test_augmentation_on_cuda_equals_the_cpu_one():
    batch = torch.rand(4, 1, 8, 8)
    on_cpu = RandomShiftRotate(1.0, 10.0, seed=3)(batch)
    on_cuda = RandomShiftRotate(1.0, 10.0, seed=3)(batch.cuda())
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, atol=1e-5, rtol=0)
