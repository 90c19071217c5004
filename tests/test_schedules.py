"""Schedules against torch's schedulers over a whole run, their shapes, and their checks.

torch's schedulers update the lr recursively (multiplying the previous value), ``lib``
evaluates the closed form, so the two agree to rounding: ``rtol=1e-12, atol=1e-15``.
"""

from __future__ import annotations

import math
import time

import pytest
import torch
from torch.optim import lr_scheduler

import lib.optim as lo
from lib import schedules as S

TOL = dict(rtol=1e-12, atol=1e-15)
LR = 0.1


def torch_values(make_scheduler, steps: int, lr: float = LR) -> list[float]:
    """The lr torch uses at each of ``steps`` optimizer steps."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make_scheduler(opt)
    values = []
    for _ in range(steps):
        values.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return values


def assert_same(ours: list[float], theirs: list[float]) -> None:
    torch.testing.assert_close(
        torch.tensor(ours, dtype=torch.float64), torch.tensor(theirs, dtype=torch.float64), **TOL
    )


TORCH_PAIRS = [
    ("StepLR", S.step_decay(LR, 30, 0.5), lambda o: lr_scheduler.StepLR(o, 30, 0.5), 200),
    ("ExponentialLR", S.exponential_decay(LR, 0.97), lambda o: lr_scheduler.ExponentialLR(o, 0.97), 200),
    (
        "CosineAnnealingLR",
        S.cosine_annealing(LR, 100, 1e-3),
        lambda o: lr_scheduler.CosineAnnealingLR(o, 100, 1e-3),
        101,
    ),
    (
        "CosineAnnealingLR-past-T_max",
        S.cosine_annealing(LR, 50),
        lambda o: lr_scheduler.CosineAnnealingLR(o, 50),
        150,
    ),
    (
        "CosineAnnealingWarmRestarts",
        S.cosine_annealing_warm_restarts(LR, 10, 1, 1e-3),
        lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, 10, 1, 1e-3),
        100,
    ),
    (
        "CosineAnnealingWarmRestarts-T_mult",
        S.cosine_annealing_warm_restarts(LR, 5, 2),
        lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, 5, 2),
        200,
    ),
    ("LinearLR", S.linear_warmup(LR, 20, 0.1), lambda o: lr_scheduler.LinearLR(o, 0.1, 1.0, 20), 100),
    ("OneCycleLR", S.one_cycle(LR, 200), lambda o: lr_scheduler.OneCycleLR(o, LR, total_steps=200), 200),
    (
        "OneCycleLR-linear-three-phase",
        S.one_cycle(LR, 150, 0.25, "linear", 10.0, 100.0, three_phase=True),
        lambda o: lr_scheduler.OneCycleLR(
            o, LR, total_steps=150, pct_start=0.25, anneal_strategy="linear", div_factor=10.0,
            final_div_factor=100.0, three_phase=True, cycle_momentum=False,
        ),
        150,
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "schedule", "make", "steps"), TORCH_PAIRS, ids=[p[0] for p in TORCH_PAIRS])
def test_agrees_with_torch_over_a_whole_run(name, schedule, make, steps):
    assert_same([schedule(t) for t in range(steps)], torch_values(make, steps))


def test_constant():
    lr = S.constant(0.3)
    assert [lr(t) for t in (0, 1, 10_000)] == [0.3, 0.3, 0.3]


def test_warmup_cosine_shape():
    lr = S.warmup_cosine(1.0, warmup_steps=10, total_steps=110, eta_min=0.01)
    values = [lr(t) for t in range(130)]
    assert values[0] == 0.0 and values[5] == pytest.approx(0.5)
    assert max(values) == values[10] == 1.0
    assert all(a < b for a, b in zip(values[:10], values[1:11], strict=True))  # rises
    assert all(a > b for a, b in zip(values[10:110], values[11:111], strict=True))  # falls
    assert values[60] == pytest.approx((1.0 + 0.01) / 2)  # halfway down the cosine
    assert values[110:] == [0.01] * 20  # flat after the end


def test_warmup_cosine_without_warmup_is_cosine_annealing():
    ours = S.warmup_cosine(LR, 0, 80, eta_min=1e-3)
    theirs = S.cosine_annealing(LR, 80, eta_min=1e-3)
    assert_same([ours(t) for t in range(81)], [theirs(t) for t in range(81)])


def test_inverse_sqrt_is_the_transformer_schedule():
    d_model, warmup = 512, 4000
    lr = S.inverse_sqrt((d_model * warmup) ** -0.5, warmup)
    steps = [0, 1, 999, 3998, 3999, 4000, 10_000, 99_999]
    # Vaswani et al.: d^-0.5 * min(n^-0.5, n * W^-1.5) at step number n = t + 1
    paper = [d_model**-0.5 * min((t + 1) ** -0.5, (t + 1) * warmup**-1.5) for t in steps]
    assert_same([lr(t) for t in steps], paper)
    assert max(lr(t) for t in range(0, 20_000, 7)) <= lr(warmup - 1)  # peak at n = W


def test_set_lr_drives_a_lib_optimizer_like_torch_scheduler():
    steps = 60
    lr = S.cosine_annealing(LR, steps)
    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = lo.SGD([x], lr=LR, momentum=0.9)
    y = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt_ref = torch.optim.SGD([y], lr=LR, momentum=0.9, foreach=False)
    scheduler = lr_scheduler.CosineAnnealingLR(opt_ref, steps)
    for t in range(steps):
        assert S.set_lr(opt, lr, t) == [pytest.approx(opt_ref.param_groups[0]["lr"], rel=1e-12)]
        x.grad, y.grad = 2 * x.detach(), 2 * y.detach()
        opt.step()
        opt_ref.step()
        scheduler.step()
    torch.testing.assert_close(x, y, **TOL)


def test_set_lr_with_one_schedule_per_group():
    a, b = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = lo.SGD([{"params": [a]}, {"params": [b]}], lr=1.0)
    S.set_lr(opt, [S.constant(0.5), S.exponential_decay(1.0, 0.5)], 3)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.125]
    with pytest.raises(ValueError, match=r"one per param group \(2\), got 1 schedules"):
        S.set_lr(opt, [S.constant(0.5)], 0)


@pytest.mark.parametrize(
    "schedule",
    [S.one_cycle(LR, 100), S.warmup_cosine(LR, 5, 50), S.cosine_annealing_warm_restarts(LR, 7, 2)],
    ids=["one_cycle", "warmup_cosine", "warm_restarts"],
)
def test_as_lambda_lr_gives_the_schedule_values(schedule):
    opt = lo.Adam([torch.zeros(1, requires_grad=True)], lr=LR)
    scheduler = S.as_lambda_lr(opt, schedule)
    values = []
    for _ in range(100):
        values.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    assert_same(values, [schedule(t) for t in range(100)])


def test_as_lambda_lr_rejects_zero_lr():
    opt = lo.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)
    with pytest.raises(ValueError, match="the lr of param group 0 must be > 0"):
        S.as_lambda_lr(opt, S.constant(0.1))


BAD = [
    (S.constant, dict(lr=-1.0), "lr"),
    (S.step_decay, dict(lr=0.1, step_size=0), "step_size"),
    (S.step_decay, dict(lr=0.1, step_size=2.5), "step_size"),
    (S.step_decay, dict(lr=0.1, step_size=10, gamma=0.0), "gamma"),
    (S.exponential_decay, dict(lr=0.1, gamma=1.5), "gamma"),
    (S.exponential_decay, dict(lr=-0.1, gamma=0.5), "lr"),
    (S.cosine_annealing, dict(lr=0.1, T_max=0), "T_max"),
    (S.cosine_annealing, dict(lr=0.1, T_max=10, eta_min=0.2), "eta_min"),
    (S.cosine_annealing_warm_restarts, dict(lr=0.1, T_0=0), "T_0"),
    (S.cosine_annealing_warm_restarts, dict(lr=0.1, T_0=10, T_mult=0), "T_mult"),
    (S.cosine_annealing_warm_restarts, dict(lr=0.1, T_0=10, eta_min=-1.0), "eta_min"),
    (S.linear_warmup, dict(lr=0.1, warmup_steps=0), "warmup_steps"),
    (S.linear_warmup, dict(lr=0.1, warmup_steps=5, start_factor=1.5), "start_factor"),
    (S.warmup_cosine, dict(lr=0.1, warmup_steps=-1, total_steps=10), "warmup_steps"),
    (S.warmup_cosine, dict(lr=0.1, warmup_steps=10, total_steps=10), "total_steps"),
    (S.warmup_cosine, dict(lr=0.1, warmup_steps=1, total_steps=10, eta_min=1.0), "eta_min"),
    (S.inverse_sqrt, dict(lr=0.1, warmup_steps=0), "warmup_steps"),
    (S.one_cycle, dict(max_lr=-0.1, total_steps=100), "max_lr"),
    (S.one_cycle, dict(max_lr=0.1, total_steps=1), "total_steps"),
    (S.one_cycle, dict(max_lr=0.1, total_steps=100, pct_start=1.5), "pct_start"),
    (S.one_cycle, dict(max_lr=0.1, total_steps=100, pct_start=0.01), "pct_start"),
    (S.one_cycle, dict(max_lr=0.1, total_steps=100, pct_start=0.6, three_phase=True), "pct_start"),
    (S.one_cycle, dict(max_lr=0.1, total_steps=100, anneal_strategy="exp"), "anneal_strategy"),
    (S.one_cycle, dict(max_lr=0.1, total_steps=100, div_factor=0.0), "div_factor"),
    (S.one_cycle, dict(max_lr=0.1, total_steps=100, final_div_factor=-1.0), "final_div_factor"),
]


@pytest.mark.parametrize(("factory", "kwargs", "argument"), BAD, ids=[f"{f.__name__}-{a}" for f, _, a in BAD])
def test_invalid_argument_raises(factory, kwargs, argument):
    with pytest.raises(ValueError, match=rf"^{argument} must .*, got "):
        factory(**kwargs)


@pytest.mark.parametrize("step", [-1, 2.5])
def test_schedule_rejects_a_bad_step(step):
    with pytest.raises(ValueError, match="step must be an integer >= 0, got "):
        S.cosine_annealing(LR, 10)(step)


def test_one_cycle_rejects_steps_past_the_cycle():
    lr = S.one_cycle(LR, 100)
    assert lr(100) >= 0  # torch allows exactly total_steps
    with pytest.raises(ValueError, match=r"step must be an integer in \[0, 100\] \(total_steps\), got 101"):
        lr(101)


def test_one_cycle_endpoints():
    lr = S.one_cycle(1.0, 100, pct_start=0.3, div_factor=10.0, final_div_factor=100.0)
    assert lr(0) == pytest.approx(0.1)
    assert lr(29) == pytest.approx(1.0)  # the peak ends phase 1 at pct_start * T - 1
    assert lr(99) == pytest.approx(1e-3)
    assert math.isclose(max(lr(t) for t in range(100)), 1.0)


def _walked_warm_restarts(lr, T_0, T_mult, eta_min, step):  # noqa: N803
    """The reference by definition: walk through the finished periods."""
    t_cur, t_i = step, T_0
    while t_cur >= t_i:
        t_cur, t_i = t_cur - t_i, t_i * T_mult
    return eta_min + 0.5 * (lr - eta_min) * (1 + math.cos(math.pi * t_cur / t_i))


@pytest.mark.parametrize(("T_0", "T_mult"), [(1, 1), (1, 2), (3, 2), (5, 3), (7, 1)])
def test_warm_restarts_at_large_steps_in_constant_time(T_0, T_mult):  # noqa: N803
    schedule = S.cosine_annealing_warm_restarts(0.1, T_0, T_mult, eta_min=0.001)
    # around every restart up to large steps, where the float logarithm is least certain
    boundaries = [T_0 * i if T_mult == 1 else T_0 * (T_mult**i - 1) // (T_mult - 1) for i in range(1, 40)]
    for b in [s for s in boundaries if s < 10**15][-12:] + [10**6]:
        for step in (b - 1, b, b + 1):
            expected = _walked_warm_restarts(0.1, T_0, T_mult, 0.001, step)
            assert schedule(step) == pytest.approx(expected, rel=1e-13, abs=0), step
    start = time.perf_counter()
    for step in range(10**9, 10**9 + 1000):
        schedule(step)
    assert time.perf_counter() - start < 0.1  # the walk took 36 ms a call at 10**6 with T_0=1
