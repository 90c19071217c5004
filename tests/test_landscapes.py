"""Tests for lib.landscapes: formulas, critical points, and optimizer runs on them."""

import math

import pytest
import torch

from lib import hessian as H
from lib import landscapes as L

ALL = [
    L.quadratic(),
    L.himmelblau(),
    L.saddle(),
    L.monkey_saddle(),
    L.local_and_global(),
    L.ravine(),
]


def dense_hessian_at(landscape, point):
    """The 2x2 Hessian at a point, by torch.func.hessian."""
    return torch.func.hessian(landscape)(torch.tensor(point, dtype=torch.float64))


def kind_at(landscape, point, tol=1e-6):
    """Classify a point with lib.hessian, from the Lanczos spectrum of the landscape."""
    p = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    values, _ = H.eigsh(lambda: landscape(p), [p], k=2)
    return H.classify(values, tol=tol).kind


@pytest.mark.parametrize("landscape", ALL, ids=lambda f: f.name)
def test_grad_matches_torch_func_and_plots_box_contains_points(landscape):
    gen = torch.Generator().manual_seed(0)
    x_min, x_max, y_min, y_max = landscape.box
    points = torch.rand(16, 2, generator=gen, dtype=torch.float64)
    points = points * torch.tensor([x_max - x_min, y_max - y_min], dtype=torch.float64)
    points = points + torch.tensor([x_min, y_min], dtype=torch.float64)
    reference = torch.vmap(torch.func.grad(landscape))(points)
    torch.testing.assert_close(landscape.grad(points), reference)
    for point in (*landscape.minima, *landscape.saddles, landscape.start):
        assert x_min <= point[0] <= x_max and y_min <= point[1] <= y_max, point
    assert landscape.formula and "$" not in landscape.formula


@pytest.mark.parametrize("landscape", ALL, ids=lambda f: f.name)
def test_critical_points_are_what_they_claim(landscape):
    for point in (*landscape.minima, *landscape.saddles):
        gradient = landscape.grad(torch.tensor(point, dtype=torch.float64))
        assert gradient.norm() < 1e-3, (point, gradient)
    for point in landscape.minima:
        assert kind_at(landscape, point) == "local minimum", point
    for point in landscape.saddles:
        # the monkey saddle's Hessian vanishes: the second-order test cannot decide
        expected = "degenerate" if landscape.name == "monkey saddle" else "saddle point"
        assert kind_at(landscape, point) == expected, point


def test_minimum_values():
    for f in (L.himmelblau(), L.quadratic(), L.ravine()):
        assert abs(f.global_minimum) < 1e-9, f.name
    for point in L.himmelblau().minima:
        assert L.himmelblau()(torch.tensor(point, dtype=torch.float64)) < 1e-9
    double_well = L.local_and_global()
    values = [double_well(torch.tensor(p, dtype=torch.float64)).item() for p in double_well.minima]
    assert values[0] < values[1]  # the first minimum is the global one
    assert L.saddle().global_minimum is None


@pytest.mark.parametrize("kappa", [1.0, 10.0, 1000.0])
def test_quadratic_and_ravine_have_the_requested_condition_number(kappa):
    for landscape in (L.quadratic(kappa), L.ravine(kappa, angle=0.3)):
        eigenvalues = torch.linalg.eigvalsh(dense_hessian_at(landscape, (0.4, -0.2)))
        torch.testing.assert_close(eigenvalues, torch.tensor([1.0, kappa], dtype=torch.float64))
    # the ravine's floor (the eigenvalue-1 direction) lies along its angle
    _, vectors = torch.linalg.eigh(dense_hessian_at(L.ravine(50.0, angle=0.3), (0.0, 0.0)))
    floor = torch.tensor([math.cos(0.3), math.sin(0.3)], dtype=torch.float64)
    assert abs(torch.dot(vectors[:, 0], floor).abs().item() - 1.0) < 1e-10


def test_grid_shapes_and_values():
    f = L.himmelblau()
    x, y, z = f.grid(n=30)
    assert x.shape == y.shape == z.shape == (30, 30)
    assert x[0, 0] == f.box[0] and x[0, -1] == f.box[1] and y[0, 0] == f.box[2] and y[-1, 0] == f.box[3]
    torch.testing.assert_close(z[7, 11], f(torch.stack([x[7, 11], y[7, 11]])))


def test_gradient_descent_converges_on_quadratic():
    kappa = 10.0
    run = L.trajectory(L.quadratic(kappa), torch.optim.SGD, {"lr": 1.0 / kappa}, steps=300)
    assert run.path.shape == (301, 2) and run.losses.shape == (301,)
    assert not run.diverged and run.diverged_at is None
    assert run.final_loss < 1e-12
    # the loss of a stable gradient descent step on a convex quadratic never increases
    assert (run.losses[1:] <= run.losses[:-1]).all()
    torch.testing.assert_close(run.losses, L.quadratic(kappa)(run.path))


def test_adam_reaches_a_himmelblau_minimum():
    surface = L.himmelblau()
    run = L.trajectory(surface, torch.optim.Adam, {"lr": 0.05}, steps=2000)
    distances = [(run.path[-1] - torch.tensor(m, dtype=torch.float64)).norm() for m in surface.minima]
    assert min(distances) < 1e-3, run.path[-1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_momentum_reaches_global_minimum_where_gd_stops_in_local(dtype):
    surface = L.local_and_global()
    global_min, local_min = (torch.tensor(p, dtype=dtype) for p in surface.minima)
    gd = L.trajectory(surface, torch.optim.SGD, {"lr": 0.01}, steps=500, dtype=dtype)
    heavy_ball = L.trajectory(surface, torch.optim.SGD, {"lr": 0.01, "momentum": 0.9}, steps=500, dtype=dtype)
    assert (gd.path[-1] - local_min).norm() < 1e-2, gd.path[-1]
    assert (heavy_ball.path[-1] - global_min).norm() < 1e-2, heavy_ball.path[-1]
    assert heavy_ball.final_loss < gd.final_loss - 0.5


def test_divergence_is_detected_and_only_the_finite_part_kept():
    # gradient descent on curvature kappa diverges when lr > 2 / kappa
    run = L.trajectory(L.quadratic(10.0), torch.optim.SGD, {"lr": 0.3}, steps=1000)
    assert run.diverged and run.diverged_at is not None
    assert run.path.shape[0] == run.diverged_at == run.losses.shape[0]
    assert torch.isfinite(run.path).all() and torch.isfinite(run.losses).all()
    assert run.losses.max() <= 1e10


def test_schedule_sets_the_learning_rate_before_each_step():
    # lr 0.1 for five steps, then 0: the point must stop moving exactly after step 5
    run = L.trajectory(
        L.quadratic(4.0), torch.optim.SGD, {"lr": 1.0}, steps=10, schedule=lambda t: 0.1 if t < 5 else 0.0
    )
    reference = L.trajectory(L.quadratic(4.0), torch.optim.SGD, {"lr": 0.1}, steps=5)
    torch.testing.assert_close(run.path[:6], reference.path)
    assert (run.path[6:] == run.path[5]).all()


def test_label_and_start():
    run = L.trajectory(L.saddle(), torch.optim.SGD, {"lr": 0.1}, steps=3, start=(0.5, 0.5))
    assert run.label == "SGD"
    torch.testing.assert_close(run.path[0], torch.tensor([0.5, 0.5], dtype=torch.float64))


def test_bad_input():
    with pytest.raises(ValueError, match="condition_number must be a finite number >= 1, got 0.5"):
        L.quadratic(0.5)
    with pytest.raises(ValueError, match="condition_number must be a finite number >= 1, got nan"):
        L.ravine(float("nan"))
    with pytest.raises(ValueError, match="steps must be an integer >= 0, got -1"):
        L.trajectory(L.saddle(), torch.optim.SGD, {"lr": 0.1}, steps=-1)
    with pytest.raises(ValueError, match=r"start must be two finite numbers"):
        L.trajectory(L.saddle(), torch.optim.SGD, {"lr": 0.1}, start=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match=r"xy must have shape \(\.\.\., 2\)"):
        L.saddle()(torch.zeros(3))


@pytest.mark.parametrize("n", [1, 2.5, True])
def test_grid_refuses_a_size_that_is_not_an_integer_of_at_least_two(n):
    with pytest.raises(ValueError, match=rf"^n must be an integer >= 2, got {n!r}$"):
        L.quadratic().grid(n)
