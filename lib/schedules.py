r"""Learning-rate schedules as pure functions of the step.

Every schedule checks its arguments once and returns a plain function ``lr(t)`` of the
step :math:`t = 0, 1, 2, \dots` (the number of optimizer steps already taken), so a
notebook plots one with ``[lr(t) for t in range(T)]`` and a training loop applies it with
``set_lr(optimizer, lr, t)`` before step :math:`t`. ``as_lambda_lr`` hands the same values
to torch's ``LambdaLR`` instead. Where torch has the same schedule the tests check that the
values agree over a whole run: ``step_decay`` (``StepLR``), ``exponential_decay``
(``ExponentialLR``), ``cosine_annealing`` (``CosineAnnealingLR``),
``cosine_annealing_warm_restarts`` (``CosineAnnealingWarmRestarts``), ``linear_warmup``
(``LinearLR``) and ``one_cycle`` (``OneCycleLR``).

A returned schedule raises ``ValueError`` for a step that is not an integer >= 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from lib import checks

__all__ = [
    "Schedule",
    "constant",
    "step_decay",
    "exponential_decay",
    "cosine_annealing",
    "cosine_annealing_warm_restarts",
    "linear_warmup",
    "warmup_cosine",
    "inverse_sqrt",
    "one_cycle",
    "set_lr",
    "as_lambda_lr",
]

Schedule = Callable[[int], float]
"""A learning-rate schedule: the step ``t >= 0`` in, the learning rate out."""


def _cosine(start: float, end: float, progress: float) -> float:
    r"""Half a cosine from ``start`` (progress 0) to ``end`` (progress 1).

    .. math::

        \eta = \eta_{\text{end}} + \tfrac12 (\eta_{\text{start}} - \eta_{\text{end}})
               (1 + \cos(\pi p))
    """
    return end + (start - end) * (1 + math.cos(math.pi * progress)) / 2


# ----------------------------------------------------------------------------- schedules


def constant(lr: float) -> Schedule:
    r"""The same learning rate at every step, :math:`\eta_t = \eta`.

    Args:
        lr: the learning rate :math:`\eta \ge 0`.

    Returns:
        The schedule ``t -> lr``.

    Raises:
        ValueError: if ``lr`` is negative.
    """
    checks.number("lr", lr, 0.0)

    def schedule(step: int) -> float:
        checks.integer("step", step, 0)
        return lr

    return schedule


def step_decay(lr: float, step_size: int, gamma: float = 0.1) -> Schedule:
    r"""Multiply the learning rate by :math:`\gamma` every ``step_size`` steps (``StepLR``).

    .. math::

        \eta_t = \eta\, \gamma^{\lfloor t / s \rfloor}

    Args:
        lr: initial learning rate :math:`\eta \ge 0`.
        step_size: period :math:`s \ge 1` in steps.
        gamma: decay factor :math:`\gamma \in (0, 1]` (default 0.1).

    Returns:
        The schedule ``t -> lr * gamma ** (t // step_size)``.

    Raises:
        ValueError: if ``lr`` is negative, ``step_size`` is not an integer >= 1, or
            ``gamma`` lies outside (0, 1].
    """
    checks.number("lr", lr, 0.0)
    checks.integer("step_size", step_size, 1)
    checks.number("gamma", gamma, 0.0, 1.0, low_open=True)

    def schedule(step: int) -> float:
        checks.integer("step", step, 0)
        return lr * gamma ** (step // step_size)

    return schedule


def exponential_decay(lr: float, gamma: float) -> Schedule:
    r"""Multiply the learning rate by :math:`\gamma` every step (``ExponentialLR``).

    .. math::

        \eta_t = \eta\, \gamma^t

    Args:
        lr: initial learning rate :math:`\eta \ge 0`.
        gamma: decay factor :math:`\gamma \in (0, 1]`.

    Returns:
        The schedule ``t -> lr * gamma ** t``.

    Raises:
        ValueError: if ``lr`` is negative or ``gamma`` lies outside (0, 1].
    """
    checks.number("lr", lr, 0.0)
    checks.number("gamma", gamma, 0.0, 1.0, low_open=True)

    def schedule(step: int) -> float:
        checks.integer("step", step, 0)
        return lr * gamma**step

    return schedule


def cosine_annealing(lr: float, T_max: int, eta_min: float = 0.0) -> Schedule:  # noqa: N803
    r"""Half a cosine from ``lr`` down to ``eta_min`` over ``T_max`` steps (SGDR without restarts).

    .. math::

        \eta_t = \eta_{\min} + \tfrac12 (\eta - \eta_{\min})
                 \left(1 + \cos\frac{\pi t}{T_{\max}}\right)

    Past ``T_max`` the cosine continues (it climbs back up), as torch's
    ``CosineAnnealingLR`` does; use ``cosine_annealing_warm_restarts`` to restart instead.

    Args:
        lr: initial (largest) learning rate :math:`\eta \ge 0`.
        T_max: half-period :math:`T_{\max} \ge 1` in steps.
        eta_min: final (smallest) learning rate, :math:`0 \le \eta_{\min} \le \eta`.

    Returns:
        The schedule ``t -> eta_t``.

    Raises:
        ValueError: if ``lr`` is negative, ``T_max`` is not an integer >= 1, or
            ``eta_min`` lies outside [0, lr].

    References:
        Loshchilov, Hutter, "SGDR: stochastic gradient descent with warm restarts",
        ICLR 2017.
    """
    checks.number("lr", lr, 0.0)
    checks.integer("T_max", T_max, 1)
    checks.number("eta_min", eta_min, 0.0, lr)

    def schedule(step: int) -> float:
        checks.integer("step", step, 0)
        return _cosine(lr, eta_min, step / T_max)

    return schedule


def cosine_annealing_warm_restarts(
    lr: float,
    T_0: int,  # noqa: N803
    T_mult: int = 1,  # noqa: N803
    eta_min: float = 0.0,
) -> Schedule:
    r"""Cosine annealing that restarts at ``lr``, each period ``T_mult`` times longer (SGDR).

    With :math:`T_i = T_0 T_{\text{mult}}^i` the length of period :math:`i` and
    :math:`T_{\text{cur}}` the steps since the last restart:

    .. math::

        \eta_t = \eta_{\min} + \tfrac12 (\eta - \eta_{\min})
                 \left(1 + \cos\frac{\pi T_{\text{cur}}}{T_i}\right)

    Args:
        lr: learning rate at each restart :math:`\eta \ge 0`.
        T_0: length of the first period, an integer >= 1.
        T_mult: growth factor of the period length, an integer >= 1 (default 1).
        eta_min: smallest learning rate, :math:`0 \le \eta_{\min} \le \eta`.

    Returns:
        The schedule ``t -> eta_t``.

    Raises:
        ValueError: if ``lr`` is negative, ``T_0`` or ``T_mult`` is not an integer >= 1,
            or ``eta_min`` lies outside [0, lr].

    References:
        Loshchilov, Hutter, "SGDR: stochastic gradient descent with warm restarts",
        ICLR 2017.
    """
    checks.number("lr", lr, 0.0)
    checks.integer("T_0", T_0, 1)
    checks.integer("T_mult", T_mult, 1)
    checks.number("eta_min", eta_min, 0.0, lr)

    def start(i: int) -> int:
        # the first step of period i: T_0 (1 + T_mult + ... + T_mult^(i-1))
        return T_0 * i if T_mult == 1 else T_0 * (T_mult**i - 1) // (T_mult - 1)

    def schedule(step: int) -> float:
        checks.integer("step", step, 0)
        # the period i holding the step, in closed form (start(i) <= step < start(i + 1)); the
        # logarithm is a float, so the integer comparisons put it right at the boundaries
        if T_mult == 1:
            i = step // T_0
        else:
            i = int(math.log(step * (T_mult - 1) / T_0 + 1, T_mult))
            while start(i + 1) <= step:
                i += 1
            while start(i) > step:
                i -= 1
        # T_cur steps into a period of length T_i
        t_cur, t_i = step - start(i), T_0 * T_mult**i
        return _cosine(lr, eta_min, t_cur / t_i)

    return schedule


def linear_warmup(lr: float, warmup_steps: int, start_factor: float = 0.0) -> Schedule:
    r"""Ramp linearly from ``start_factor * lr`` up to ``lr`` over ``warmup_steps``, then hold.

    .. math::

        \eta_t = \eta \left(s + (1 - s) \frac{\min(t, W)}{W}\right)

    This is torch's ``LinearLR(start_factor=s, end_factor=1, total_iters=W)``
    (which needs :math:`s > 0`).

    Args:
        lr: learning rate after the warm-up :math:`\eta \ge 0`.
        warmup_steps: length :math:`W \ge 1` of the ramp in steps.
        start_factor: :math:`s \in [0, 1]`, the fraction of ``lr`` at step 0 (default 0).

    Returns:
        The schedule ``t -> eta_t``.

    Raises:
        ValueError: if ``lr`` is negative, ``warmup_steps`` is not an integer >= 1, or
            ``start_factor`` lies outside [0, 1].

    References:
        Goyal et al., "Accurate, large minibatch SGD: training ImageNet in 1 hour", 2017.
    """
    checks.number("lr", lr, 0.0)
    checks.integer("warmup_steps", warmup_steps, 1)
    checks.number("start_factor", start_factor, 0.0, 1.0)

    def schedule(step: int) -> float:
        checks.integer("step", step, 0)
        return lr * (start_factor + (1 - start_factor) * min(step, warmup_steps) / warmup_steps)

    return schedule


def warmup_cosine(
    lr: float,
    warmup_steps: int,
    total_steps: int,
    eta_min: float = 0.0,
    start_factor: float = 0.0,
) -> Schedule:
    r"""Linear warm-up to ``lr``, then half a cosine down to ``eta_min`` at ``total_steps``.

    .. math::

        \eta_t = \begin{cases}
            \eta \left(s + (1 - s)\, t / W\right) & t < W \\
            \eta_{\min} + \tfrac12 (\eta - \eta_{\min})
                \left(1 + \cos\left(\pi \min\left(1, \frac{t - W}{T - W}\right)\right)\right)
                & t \ge W
        \end{cases}

    and :math:`\eta_t = \eta_{\min}` from :math:`t = T` on.

    Args:
        lr: peak learning rate :math:`\eta \ge 0`, reached at step :math:`W`.
        warmup_steps: warm-up length :math:`W \ge 0` (0: no warm-up).
        total_steps: step :math:`T > W` at which the cosine reaches ``eta_min``.
        eta_min: final learning rate, :math:`0 \le \eta_{\min} \le \eta`.
        start_factor: :math:`s \in [0, 1]`, the fraction of ``lr`` at step 0 (default 0).

    Returns:
        The schedule ``t -> eta_t``.

    Raises:
        ValueError: on a negative ``lr``, a ``warmup_steps`` that is not an integer >= 0,
            a ``total_steps`` that is not an integer > ``warmup_steps``, or ``eta_min``
            or ``start_factor`` out of range.
    """
    checks.number("lr", lr, 0.0)
    checks.integer("warmup_steps", warmup_steps, 0)
    checks.integer("total_steps", total_steps, warmup_steps + 1)
    checks.number("eta_min", eta_min, 0.0, lr)
    checks.number("start_factor", start_factor, 0.0, 1.0)

    def schedule(step: int) -> float:
        checks.integer("step", step, 0)
        if step < warmup_steps:
            # 1. warm-up: linear from s * lr to lr
            return lr * (start_factor + (1 - start_factor) * step / warmup_steps)
        # 2. cosine from lr to eta_min, then flat
        progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        return _cosine(lr, eta_min, progress)

    return schedule


def inverse_sqrt(lr: float, warmup_steps: int) -> Schedule:
    r"""Linear warm-up to ``lr`` at step :math:`W`, then decay as :math:`1/\sqrt{t}` (Transformer).

    With :math:`n = t + 1` the number of the step being taken:

    .. math::

        \eta_t = \eta \min\left(\frac{n}{W}, \sqrt{\frac{W}{n}}\right)

    The Transformer paper's :math:`d_{\text{model}}^{-1/2}
    \min(n^{-1/2}, n W^{-3/2})` is this schedule with
    :math:`\eta = (d_{\text{model}} W)^{-1/2}` (about ``7e-4`` for
    :math:`d_{\text{model}} = 512, W = 4000`).

    Args:
        lr: peak learning rate :math:`\eta \ge 0`, reached at :math:`n = W`.
        warmup_steps: warm-up length :math:`W \ge 1`.

    Returns:
        The schedule ``t -> eta_t``.

    Raises:
        ValueError: if ``lr`` is negative or ``warmup_steps`` is not an integer >= 1.

    References:
        Vaswani et al., "Attention is all you need", NeurIPS 2017.
    """
    checks.number("lr", lr, 0.0)
    checks.integer("warmup_steps", warmup_steps, 1)

    def schedule(step: int) -> float:
        checks.integer("step", step, 0)
        n = step + 1
        return lr * min(n / warmup_steps, math.sqrt(warmup_steps / n))

    return schedule


def one_cycle(
    max_lr: float,
    total_steps: int,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Schedule:
    r"""The one-cycle policy: up from ``max_lr / div_factor`` to ``max_lr``, then far down.

    With :math:`\eta_0 = \eta_{\max} / d` and :math:`\eta_{\text{end}} = \eta_0 / d_f`, the
    phases end at steps :math:`e_1 = p T - 1` and :math:`T - 1` (two phases:
    :math:`\eta_0 \to \eta_{\max} \to \eta_{\text{end}}`) or at :math:`p T - 1`,
    :math:`2 p T - 2`, :math:`T - 1` (three phases: :math:`\eta_0 \to \eta_{\max} \to
    \eta_0 \to \eta_{\text{end}}`). Within a phase from step :math:`a` to :math:`b`, the
    rate moves from :math:`\eta_a` to :math:`\eta_b` by half a cosine (or a line) in
    :math:`(t - a)/(b - a)`:

    .. math::

        \eta_t = \eta_b + \tfrac12 (\eta_a - \eta_b)\left(1 + \cos\left(\pi
                 \frac{t - a}{b - a}\right)\right)

    These are the learning rates of torch's ``OneCycleLR`` (whose momentum cycling is not
    part of a learning-rate schedule).

    Args:
        max_lr: peak learning rate :math:`\eta_{\max} \ge 0`.
        total_steps: number of steps :math:`T` in the cycle, an integer >= 2.
        pct_start: fraction :math:`p` of the steps spent increasing (default 0.3).
        anneal_strategy: ``"cos"`` or ``"linear"``.
        div_factor: :math:`d > 0`, with :math:`\eta_0 = \eta_{\max}/d` (default 25).
        final_div_factor: :math:`d_f > 0`, with :math:`\eta_{\text{end}} = \eta_0/d_f`
            (default ``1e4``).
        three_phase: come back down to :math:`\eta_0` before the final annealing.

    Returns:
        The schedule ``t -> eta_t``, defined for ``0 <= t <= total_steps``.

    Raises:
        ValueError: if an argument is out of range, if ``pct_start`` leaves a phase
            without steps, or (from the schedule) if ``t > total_steps``.

    References:
        Smith, Topin, "Super-convergence: very fast training of neural networks using
        large learning rates", 2019.
    """
    checks.number("max_lr", max_lr, 0.0)
    checks.integer("total_steps", total_steps, 2)
    checks.number("pct_start", pct_start, 0.0, 1.0, low_open=True)
    checks.one_of("anneal_strategy", anneal_strategy, ("cos", "linear"))
    checks.number("div_factor", div_factor, 0.0, low_open=True)
    checks.number("final_div_factor", final_div_factor, 0.0, low_open=True)

    initial_lr = max_lr / div_factor
    min_lr = initial_lr / final_div_factor
    # (last step of the phase, lr at its start, lr at its end)
    if three_phase:
        phases = [
            (float(pct_start * total_steps) - 1, initial_lr, max_lr),
            (float(2 * pct_start * total_steps) - 2, max_lr, initial_lr),
            (total_steps - 1, initial_lr, min_lr),
        ]
    else:
        phases = [
            (float(pct_start * total_steps) - 1, initial_lr, max_lr),
            (total_steps - 1, max_lr, min_lr),
        ]
    ends = [0.0] + [end for end, _, _ in phases]
    if any(later <= earlier for earlier, later in zip(ends, ends[1:], strict=False)):
        raise ValueError(
            f"pct_start must make every phase last at least one step with total_steps={total_steps}, "
            f"got {pct_start} (phase ends {ends[1:]})"
        )

    def anneal(start: float, end: float, pct: float) -> float:
        if anneal_strategy == "cos":
            return _cosine(start, end, pct)
        return (end - start) * pct + start

    def schedule(step: int) -> float:
        checks.integer("step", step, 0)
        if step > total_steps:
            raise ValueError(f"step must be an integer in [0, {total_steps}] (total_steps), got {step}")
        start_step = 0.0
        for i, (end_step, start_lr, end_lr) in enumerate(phases):
            if step <= end_step or i == len(phases) - 1:
                return anneal(start_lr, end_lr, (step - start_step) / (end_step - start_step))
            start_step = end_step
        raise AssertionError("unreachable: the last phase always returns")

    return schedule


# ----------------------------------------------------------------------------- applying


def set_lr(optimizer: Optimizer, schedule: Schedule | Sequence[Schedule], step: int) -> list[float]:
    r"""Set the learning rate of every parameter group to its schedule's value at ``step``.

    Call it before ``optimizer.step()``: the update of step :math:`t` then uses
    :math:`\eta_t`. One schedule drives every group; a sequence gives one per group.

    Args:
        optimizer: any ``torch.optim.Optimizer`` (``lib.optim`` ones included).
        schedule: a schedule, or one schedule per parameter group.
        step: the step :math:`t \ge 0` about to be taken.

    Returns:
        The learning rates set, one per group.

    Raises:
        ValueError: if a sequence of schedules does not have one entry per group, or
            ``step`` is not an integer >= 0.
    """
    schedules = _per_group(optimizer, schedule)
    lrs = [float(s(step)) for s in schedules]
    for group, lr in zip(optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr
    return lrs


def as_lambda_lr(optimizer: Optimizer, schedule: Schedule | Sequence[Schedule]) -> LambdaLR:
    r"""Drive ``optimizer`` with torch's ``LambdaLR`` so that its lr follows ``schedule``.

    ``LambdaLR`` multiplies each group's initial lr :math:`\eta^{(0)}` by a factor; the
    factor used here is :math:`\eta_t / \eta^{(0)}`, so after ``t`` calls of
    ``scheduler.step()`` the group's lr is :math:`\eta_t` (to rounding). The group's
    current ``lr`` is taken as :math:`\eta^{(0)}`.

    Args:
        optimizer: any ``torch.optim.Optimizer``; every group needs a non-zero ``lr``.
        schedule: a schedule, or one schedule per parameter group.

    Returns:
        The ``LambdaLR`` scheduler (its construction already set the step-0 values).

    Raises:
        ValueError: if a group's lr is 0 (no factor can scale it) or a sequence of
            schedules does not have one entry per group.
    """
    schedules = _per_group(optimizer, schedule)
    factors = []
    for i, (group, s) in enumerate(zip(optimizer.param_groups, schedules, strict=True)):
        base = group.get("initial_lr", group["lr"])
        if base == 0:
            raise ValueError(f"the lr of param group {i} must be > 0 (LambdaLR scales it by a factor), got 0")
        factors.append(lambda t, s=s, base=base: s(t) / base)
    return LambdaLR(optimizer, factors)


def _per_group(optimizer: Optimizer, schedule: Schedule | Sequence[Schedule]) -> list[Schedule]:
    """One schedule per parameter group: repeat a single one, or check the sequence's length."""
    if callable(schedule):
        return [schedule] * len(optimizer.param_groups)
    schedules = list(schedule)
    if len(schedules) != len(optimizer.param_groups):
        raise ValueError(
            f"schedule must be one schedule or one per param group ({len(optimizer.param_groups)}), "
            f"got {len(schedules)} schedules"
        )
    return schedules
