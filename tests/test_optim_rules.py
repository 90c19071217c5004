"""The update rules written out by hand: the notes' conventions, Lookahead and SWATS.

Each reference below re-computes a rule from its formula with plain tensor arithmetic
(no ``lib`` code), on a small quadratic in float64, and compares with ``lib.optim``.
Tolerances are ``rtol=1e-12, atol=1e-14``: the two sides do the same arithmetic in a
different order, so they agree to a few float64 ulps, not bit for bit.
"""

from __future__ import annotations

import math

import pytest
import torch

import lib.optim as lo

TOL = dict(rtol=1e-12, atol=1e-14)
H = torch.tensor([1.0, 3.0, 10.0], dtype=torch.float64)
X0 = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)


def grad_fn(x: torch.Tensor) -> torch.Tensor:
    """Gradient of the quadratic 0.5 * sum(h * x^2) plus a constant tilt."""
    return H * x + 0.1


def run_lib(opt_factory, steps: int, lr_at=None) -> torch.Tensor:
    """Run a lib optimizer on the quadratic; ``lr_at(t)`` may change the lr at step t."""
    x = X0.clone().requires_grad_()
    opt = opt_factory([x])
    for t in range(steps):
        if lr_at is not None:
            opt.param_groups[0]["lr"] = lr_at(t)
        x.grad = grad_fn(x.detach())
        opt.step()
    return x.detach()


def test_velocity_form_equals_sgd_momentum_at_constant_lr():
    # notes: v <- a v - lr g; theta <- theta + v (v_0 = 0)
    def velocity_form(steps, lr_at):
        x, v = X0.clone(), torch.zeros_like(X0)
        for t in range(steps):
            v = 0.9 * v - lr_at(t) * grad_fn(x)
            x = x + v
        return x

    constant = lambda t: 0.05  # noqa: E731
    ours = run_lib(lambda p: lo.SGD(p, lr=0.05, momentum=0.9), 60, constant)
    torch.testing.assert_close(ours, velocity_form(60, constant), **TOL)
    # once lr changes, the velocity keeps the old lr inside it and the two part ways
    decayed = lambda t: 0.05 if t < 20 else 0.005  # noqa: E731
    ours = run_lib(lambda p: lo.SGD(p, lr=0.05, momentum=0.9), 60, decayed)
    assert (ours - velocity_form(60, decayed)).abs().max() > 1e-3


def test_averaged_momentum_is_sgd_with_scaled_lr_not_dampening():
    # notes: m <- beta m + (1 - beta) g; theta <- theta - eta m (m_0 = 0)
    beta, eta = 0.9, 0.1

    def averaged(steps):
        x, m = X0.clone(), torch.zeros_like(X0)
        for _ in range(steps):
            m = beta * m + (1 - beta) * grad_fn(x)
            x = x - eta * m
        return x

    ours = run_lib(lambda p: lo.SGD(p, lr=eta * (1 - beta), momentum=beta), 60)
    torch.testing.assert_close(ours, averaged(60), **TOL)
    # dampening=beta is not the same: torch's buffer starts undamped at b_1 = g_1
    damped = run_lib(lambda p: lo.SGD(p, lr=eta, momentum=beta, dampening=beta), 1)
    first = X0 - eta * grad_fn(X0)  # one damped step moves by eta * g_1, not eta * (1 - beta) g_1
    torch.testing.assert_close(damped, first, **TOL)
    assert (damped - averaged(1)).abs().max() > 1e-2


def test_adagrad_eps_outside_the_root_as_in_the_notes_code():
    lr, eps = 0.5, 1e-2

    def adagrad(steps, inside):
        x, h = X0.clone(), torch.zeros_like(X0)
        for _ in range(steps):
            g = grad_fn(x)
            h = h + g * g
            # notes' code: lr * g / (sqrt(h) + eps); notes' formula: lr * g / sqrt(h + eps)
            x = x - lr * g / ((h + eps).sqrt() if inside else h.sqrt() + eps)
        return x

    ours = run_lib(lambda p: lo.Adagrad(p, lr=lr, eps=eps), 40)
    torch.testing.assert_close(ours, adagrad(40, inside=False), **TOL)
    # before the iterates settle at the minimum, the two rules take visibly different steps
    early = run_lib(lambda p: lo.Adagrad(p, lr=lr, eps=eps), 3)
    assert (early - adagrad(3, inside=True)).abs().max() > 1e-4


def test_adadelta_matches_the_notes_formula_with_unit_lr():
    rho, eps = 0.9, 1e-6

    def adadelta(steps):
        # G <- rho G + (1-rho) g^2; d <- -sqrt(D + eps) / sqrt(G + eps) g; D <- rho D + (1-rho) d^2
        x, big_g, big_d = X0.clone(), torch.zeros_like(X0), torch.zeros_like(X0)
        for _ in range(steps):
            g = grad_fn(x)
            big_g = rho * big_g + (1 - rho) * g * g
            d = -(big_d + eps).sqrt() / (big_g + eps).sqrt() * g
            big_d = rho * big_d + (1 - rho) * d * d
            x = x + d
        return x

    ours = run_lib(lambda p: lo.Adadelta(p, lr=1.0, rho=rho, eps=eps), 50)
    torch.testing.assert_close(ours, adadelta(50), **TOL)


def test_adam_with_eps_inside_the_root_is_a_different_rule():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-3

    def adam(steps, inside):
        x, m, v = X0.clone(), torch.zeros_like(X0), torch.zeros_like(X0)
        for t in range(1, steps + 1):
            g = grad_fn(x)
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
            x = x - lr * m_hat / ((v_hat + eps).sqrt() if inside else v_hat.sqrt() + eps)
        return x

    ours = run_lib(lambda p: lo.Adam(p, lr=lr, eps=eps), 50)
    torch.testing.assert_close(ours, adam(50, inside=False), **TOL)
    assert (ours - adam(50, inside=True)).abs().max() > 1e-4


# ----------------------------------------------------------------------------- Lookahead


@pytest.mark.parametrize(("k", "alpha"), [(5, 0.5), (3, 0.8), (1, 1.0)])
def test_lookahead_against_hand_written_rule(k, alpha):
    lr, steps = 0.05, 40
    # reference: plain gradient descent as the fast rule, slow weights by hand
    fast, slow = X0.clone(), X0.clone()
    for t in range(1, steps + 1):
        fast = fast - lr * grad_fn(fast)
        if t % k == 0:
            slow = slow + alpha * (fast - slow)
            fast = slow.clone()
    ours = run_lib(lambda p: lo.Lookahead(lo.SGD(p, lr=lr), k=k, alpha=alpha), steps)
    torch.testing.assert_close(ours, fast, **TOL)


def test_lookahead_wraps_a_torch_optimizer_and_keeps_its_state():
    k, alpha, steps = 4, 0.5, 30
    # reference: torch's Adam moves y; every k steps the slow weights are synced by hand
    y = X0.clone().requires_grad_()
    inner_ref = torch.optim.Adam([y], lr=0.05, foreach=False)
    slow = X0.clone()
    x = X0.clone().requires_grad_()
    opt = lo.Lookahead(torch.optim.Adam([x], lr=0.05, foreach=False), k=k, alpha=alpha)
    for t in range(1, steps + 1):
        y.grad = grad_fn(y.detach())
        inner_ref.step()
        if t % k == 0:
            with torch.no_grad():
                slow = slow + alpha * (y - slow)
                y.copy_(slow)
        x.grad = grad_fn(x.detach())
        opt.step()
    torch.testing.assert_close(x.detach(), y.detach(), **TOL)
    torch.testing.assert_close(opt.optimizer.state[x]["exp_avg"], inner_ref.state[y]["exp_avg"], **TOL)
    # the groups are shared: an lr change through the wrapper reaches the inner optimizer
    opt.param_groups[0]["lr"] = 0.01
    assert opt.optimizer.param_groups[0]["lr"] == 0.01


def test_lookahead_works_with_a_torch_lr_scheduler():
    x = X0.clone().requires_grad_()
    opt = lo.Lookahead(lo.SGD([x], lr=0.1))
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(4):
        x.grad = grad_fn(x.detach())
        opt.step()
        scheduler.step()
    assert opt.optimizer.param_groups[0]["lr"] == pytest.approx(0.025)


# ----------------------------------------------------------------------------- SWATS


def swats_reference(steps, lr, betas, eps, tol):
    """Keskar & Socher's Algorithm 1 on the quadratic, with torch's placement of eps."""
    beta1, beta2 = betas
    x, m, v, buf = X0.clone(), torch.zeros_like(X0), torch.zeros_like(X0), torch.zeros_like(X0)
    lam, sgd_lr, switch = 0.0, None, None
    for k in range(1, steps + 1):
        g = grad_fn(x)
        if switch is None:
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            p = -lr / (1 - beta1**k) * m / (v.sqrt() / math.sqrt(1 - beta2**k) + eps)
            x = x + p
            if float(p @ g) != 0:
                gamma = float(p @ p) / -float(p @ g)
                lam = beta2 * lam + (1 - beta2) * gamma
                if k > 1 and abs(lam / (1 - beta2**k) - gamma) < tol:
                    sgd_lr, switch = lam / (1 - beta2**k), k
        else:
            buf = beta1 * buf + g
            x = x - (1 - beta1) * sgd_lr * buf
    return x, switch, sgd_lr


def test_swats_against_hand_written_algorithm():
    lr, betas, eps, tol, steps = 0.01, (0.9, 0.999), 1e-8, 1e-4, 150
    expected, switch, sgd_lr = swats_reference(steps, lr, betas, eps, tol)
    assert switch is not None and 1 < switch < steps - 20  # the run covers both phases
    x = X0.clone().requires_grad_()
    opt = lo.SWATS([x], lr=lr, betas=betas, eps=eps, switch_tol=tol)
    phases = []
    for _ in range(steps):
        x.grad = grad_fn(x.detach())
        opt.step()
        phases.append(opt.param_groups[0]["phase"])
    group = opt.param_groups[0]
    assert group["switch_step"] == switch
    assert group["sgd_lr"] == pytest.approx(sgd_lr, rel=1e-10)
    assert phases.index("sgd") == switch - 1  # the switch shows right after step `switch`
    torch.testing.assert_close(x.detach(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
def test_swats_adam_phase_is_adam(foreach):
    # with a zero threshold SWATS never switches and stays exactly Adam, in either path
    ours = run_lib(lambda p: lo.SWATS(p, lr=0.01, switch_tol=0.0, foreach=foreach), 50)
    adam = run_lib(lambda p: lo.Adam(p, lr=0.01, foreach=foreach), 50)
    torch.testing.assert_close(ours, adam, rtol=0, atol=0)


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
def test_lookahead_around_either_path_of_adam(foreach):
    # the wrapper does not care how the inner optimizer steps: lib's Adam in either path
    # against torch's Adam in the same path
    ours = run_lib(lambda p: lo.Lookahead(lo.Adam(p, lr=0.05, foreach=foreach), k=3), 30)
    theirs = run_lib(lambda p: lo.Lookahead(torch.optim.Adam(p, lr=0.05, foreach=foreach), k=3), 30)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("make", "copies"),
    [
        (lambda p: torch.optim.SGD(p, lr=0.1), 0),
        (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), 1),
        (lambda p: torch.optim.Adam(p), 2),
        (lambda p: torch.optim.Adam(p, amsgrad=True), 3),
        (lambda p: lo.Adam(p), 2),
        (lambda p: lo.Lookahead(lo.Adam(p)), 3),
    ],
)
def test_state_numel_counts_per_parameter_state(make, copies):
    model = torch.nn.Linear(7, 3)
    optimizer = make(model.parameters())
    model(torch.randn(4, 7)).square().sum().backward()
    optimizer.step()
    assert lo.state_numel(optimizer) == copies * sum(p.numel() for p in model.parameters())
