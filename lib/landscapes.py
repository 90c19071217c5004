r"""Two-dimensional test functions and a runner that records an optimizer's path on them.

A :class:`Landscape` knows its formula (as LaTeX), its value and gradient (through
autograd), its minima (and saddles where it has them), a good plotting box and a
recommended start. :func:`trajectory` runs any ``torch.optim`` or ``lib.optim`` optimizer
on it and returns the path::

    bowl = lib.landscapes.quadratic(condition_number=20)
    run = lib.landscapes.trajectory(bowl, torch.optim.SGD, {"lr": 0.09}, steps=50)
    run.path.shape    # (51, 2)
    run.losses[-1]    # the loss after 50 steps

A point is a tensor whose last dimension holds :math:`(x, y)`; a landscape evaluates a
whole grid of points at once, which is what the contour plots of :mod:`lib.plot` use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lib import checks
from lib.schedules import set_lr

__all__ = [
    "Landscape",
    "Trajectory",
    "himmelblau",
    "local_and_global",
    "monkey_saddle",
    "quadratic",
    "ravine",
    "saddle",
    "trajectory",
]


@dataclass(frozen=True)
class Landscape:
    r"""A function :math:`f : \mathbb{R}^2 \to \mathbb{R}` with what a chapter needs to show it.

    Attributes:
        name: a short human-readable name, used in titles.
        formula: the definition as a LaTeX string (without dollar signs).
        function: ``f(x, y)`` on tensors of any (broadcastable) shape, elementwise.
        minima: the known minima :math:`(x, y)`; the first one is the global minimum.
        saddles: the known saddle points.
        box: the plotting box ``(x_min, x_max, y_min, y_max)``.
        start: a recommended start point for optimizers.
    """

    name: str
    formula: str
    function: Callable[[Tensor, Tensor], Tensor]
    minima: tuple[tuple[float, float], ...]
    saddles: tuple[tuple[float, float], ...]
    box: tuple[float, float, float, float]
    start: tuple[float, float]

    def __call__(self, xy: Tensor) -> Tensor:
        """The value at points ``xy`` of shape ``(..., 2)``; returns shape ``(...)``.

        Raises:
            ValueError: if the last dimension of ``xy`` is not 2.
        """
        if xy.shape[-1:] != (2,):
            raise ValueError(f"xy must have shape (..., 2), got {tuple(xy.shape)}")
        return self.function(xy[..., 0], xy[..., 1])

    def grad(self, xy: Tensor) -> Tensor:
        r"""The gradient :math:`\nabla f` at points ``xy`` of shape ``(..., 2)``, through autograd.

        Returns:
            A tensor of the shape of ``xy``, detached.
        """
        point = xy.detach().clone().requires_grad_(True)
        # the points are independent, so the gradient of the sum is each point's gradient
        (gradient,) = torch.autograd.grad(self(point).sum(), point)
        return gradient

    def grid(
        self, n: int = 200, *, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The values on an ``n`` by ``n`` grid covering ``box``, for contour and surface plots.

        Args:
            n: points per axis, at least 2.
            dtype: dtype of the grid.
            device: device of the grid.

        Returns:
            ``(X, Y, Z)``, each of shape ``(n, n)`` (``X`` varies along columns).

        Raises:
            ValueError: if ``n`` is not an integer >= 2.
        """
        checks.integer("n", n, 2)
        x_min, x_max, y_min, y_max = self.box
        xs = torch.linspace(x_min, x_max, n, dtype=dtype, device=device)
        ys = torch.linspace(y_min, y_max, n, dtype=dtype, device=device)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        return grid_x, grid_y, self.function(grid_x, grid_y)

    @property
    def global_minimum(self) -> float | None:
        """The value at the global minimum (the first of ``minima``), or None if it has none."""
        if not self.minima:
            return None
        return float(self(torch.tensor(self.minima[0], dtype=torch.float64)))


def _condition_number(value: float) -> float:
    """Check a condition number (finite, at least 1) and return it as a float."""
    return checks.number("condition_number", value, 1)


def quadratic(condition_number: float = 10.0) -> Landscape:
    r"""An ill-conditioned bowl whose Hessian has eigenvalues 1 and :math:`\kappa`.

    .. math::

        f(x, y) = \tfrac12 \left(x^2 + \kappa y^2\right), \qquad
        \nabla^2 f = \operatorname{diag}(1, \kappa).

    Gradient descent is stable for :math:`\eta < 2/\kappa` and then needs about
    :math:`\kappa` steps: the larger :math:`\kappa`, the more it zig-zags across the
    narrow axis while crawling along the long one.

    Args:
        condition_number: :math:`\kappa \ge 1`, the ratio of the largest to the smallest
            curvature.

    Returns:
        The landscape, minimum at the origin.

    Raises:
        ValueError: if ``condition_number < 1``.
    """
    kappa = _condition_number(condition_number)

    def function(x: Tensor, y: Tensor) -> Tensor:
        # f = (x^2 + kappa y^2) / 2
        return 0.5 * (x**2 + kappa * y**2)

    return Landscape(
        name=f"quadratic (condition number {kappa:g})",
        formula=rf"\frac{{1}}{{2}}\left(x^2 + {kappa:g}\, y^2\right)",
        function=function,
        minima=((0.0, 0.0),),
        saddles=(),
        box=(-2.0, 2.0, -1.5, 1.5),
        start=(-1.8, 1.0),
    )


def himmelblau() -> Landscape:
    r"""Himmelblau's function: four equal minima (value 0), four saddles and one maximum.

    .. math::

        f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2.

    Which minimum an optimizer reaches depends on where it starts.

    Returns:
        The landscape.

    References:
        D. M. Himmelblau, *Applied Nonlinear Programming*, McGraw-Hill, 1972.
    """

    def function(x: Tensor, y: Tensor) -> Tensor:
        return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2

    return Landscape(
        name="Himmelblau",
        formula=r"(x^2 + y - 11)^2 + (x + y^2 - 7)^2",
        function=function,
        minima=((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)),
        saddles=((0.086677, 2.884254), (-3.073025, -0.081353), (3.385154, 0.073852), (-0.127961, -1.953715)),
        box=(-5.0, 5.0, -5.0, 5.0),
        start=(-0.5, 0.5),
    )


def saddle() -> Landscape:
    r"""The simple saddle: curving up along :math:`x`, down along :math:`y`.

    .. math::

        f(x, y) = x^2 - y^2, \qquad \nabla^2 f(0, 0) = \operatorname{diag}(2, -2).

    It has no minimum (it is unbounded below along :math:`y`). Starting just off the
    :math:`x` axis, gradient descent slides into the saddle and lingers there before the
    small :math:`y` component grows and carries it away.

    Returns:
        The landscape, saddle at the origin.
    """

    def function(x: Tensor, y: Tensor) -> Tensor:
        return x**2 - y**2

    return Landscape(
        name="saddle",
        formula=r"x^2 - y^2",
        function=function,
        minima=(),
        saddles=((0.0, 0.0),),
        box=(-2.0, 2.0, -2.0, 2.0),
        start=(-1.8, 1e-3),
    )


def monkey_saddle() -> Landscape:
    r"""The monkey saddle: three valleys, and a Hessian that is zero at the saddle.

    .. math::

        f(x, y) = x^3 - 3xy^2, \qquad \nabla^2 f(0, 0) = 0.

    The second-order test cannot classify the origin (every eigenvalue is zero: a
    degenerate critical point), yet it is not a minimum.

    Returns:
        The landscape, saddle at the origin.
    """

    def function(x: Tensor, y: Tensor) -> Tensor:
        return x**3 - 3 * x * y**2

    return Landscape(
        name="monkey saddle",
        formula=r"x^3 - 3xy^2",
        function=function,
        minima=(),
        saddles=((0.0, 0.0),),
        box=(-1.5, 1.5, -1.5, 1.5),
        start=(1.2, 0.05),
    )


def local_and_global() -> Landscape:
    r"""A tilted double well: a shallow local minimum and a deeper global one, for momentum.

    .. math::

        f(x, y) = (x^2 - 1)^2 + 0.3\,x + \tfrac12 y^2.

    The global minimum is near :math:`(-1.04, 0)` (value :math:`-0.305`), the local one
    near :math:`(0.96, 0)` (value :math:`0.294`), with a saddle near :math:`(0.075, 0)`
    between them (value :math:`1.02`). From the recommended start :math:`(2, 1)`, plain
    gradient descent (``lr=0.01``) stops in the local minimum, while heavy-ball momentum
    (``lr=0.01, momentum=0.9``) gathers enough speed on the way down to cross the saddle
    and settles in the global minimum.

    Returns:
        The landscape; ``minima[0]`` is the global minimum, ``minima[1]`` the local one.
    """

    def function(x: Tensor, y: Tensor) -> Tensor:
        # f = (x^2 - 1)^2 + 0.3 x + y^2 / 2
        return (x**2 - 1) ** 2 + 0.3 * x + 0.5 * y**2

    # critical points on y = 0 solve f'(x) = 4x^3 - 4x + 0.3 = 0
    roots = sorted(_cubic_real_roots(4.0, 0.0, -4.0, 0.3))
    return Landscape(
        name="local and global minimum",
        formula=r"(x^2 - 1)^2 + 0.3\,x + \frac{1}{2} y^2",
        function=function,
        minima=((roots[0], 0.0), (roots[2], 0.0)),
        saddles=((roots[1], 0.0),),
        box=(-2.0, 2.5, -1.5, 1.5),
        start=(2.0, 1.0),
    )


def ravine(condition_number: float = 50.0, angle: float = math.pi / 4) -> Landscape:
    r"""A narrow valley along a diagonal: an ill-conditioned bowl rotated by ``angle``.

    With :math:`u = x\cos\varphi + y\sin\varphi` along the floor and
    :math:`v = -x\sin\varphi + y\cos\varphi` across it,

    .. math::

        f(x, y) = \tfrac12 \left(u^2 + \kappa v^2\right).

    Unlike :func:`quadratic`, the ravine's axes are not the coordinate axes, so a
    per-coordinate step size (as in Adagrad, RMSProp or Adam) cannot undo the
    ill-conditioning.

    Args:
        condition_number: :math:`\kappa \ge 1`, steepness across the valley.
        angle: :math:`\varphi`, the direction of the valley floor in radians.

    Returns:
        The landscape, minimum at the origin.

    Raises:
        ValueError: if ``condition_number < 1``.
    """
    kappa = _condition_number(condition_number)
    cos, sin = math.cos(angle), math.sin(angle)

    def function(x: Tensor, y: Tensor) -> Tensor:
        # u along the floor, v across it
        u = cos * x + sin * y
        v = -sin * x + cos * y
        return 0.5 * (u**2 + kappa * v**2)

    return Landscape(
        name=f"ravine (condition number {kappa:g})",
        formula=(
            rf"\frac{{1}}{{2}}\left(u^2 + {kappa:g}\, v^2\right),\ "
            rf"u = x\cos\varphi + y\sin\varphi,\ v = -x\sin\varphi + y\cos\varphi,\ \varphi = {angle:.3g}"
        ),
        function=function,
        minima=((0.0, 0.0),),
        saddles=(),
        box=(-2.0, 2.0, -2.0, 2.0),
        start=(-1.5 * cos + 0.3 * sin, -1.5 * sin - 0.3 * cos),
    )


def _cubic_real_roots(a: float, b: float, c: float, d: float) -> list[float]:
    """The real roots of a x^3 + b x^2 + c x + d (three of them for the double well)."""
    roots = torch.linalg.eigvals(
        torch.tensor([[-b / a, -c / a, -d / a], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    )
    return [r.real.item() for r in roots if abs(r.imag.item()) < 1e-9]


# --------------------------------------------------------------------------------------
# Running an optimizer on a landscape
# --------------------------------------------------------------------------------------


@dataclass
class Trajectory:
    """The path of one optimizer run on a landscape.

    Attributes:
        path: the points visited, shape ``(m + 1, 2)``: the start, then one per step
            (only the finite part when the run diverged).
        losses: the loss at each point of ``path``, shape ``(m + 1,)``.
        diverged: whether the run was stopped because it blew up.
        diverged_at: the step at which it blew up (the first non-finite or huge point,
            not included in ``path``), or None.
        label: a name for legends (for instance the optimizer's).
    """

    path: Tensor
    losses: Tensor
    diverged: bool = False
    diverged_at: int | None = None
    label: str = ""

    @property
    def steps(self) -> int:
        """The number of steps recorded (``len(path) - 1``)."""
        return self.path.shape[0] - 1

    @property
    def final_loss(self) -> float:
        """The loss at the last recorded point."""
        return self.losses[-1].item()


def trajectory(
    landscape: Landscape,
    optimizer_class: type[torch.optim.Optimizer],
    optimizer_kwargs: Mapping[str, Any] | None = None,
    *,
    start: tuple[float, float] | Tensor | None = None,
    steps: int = 100,
    schedule: Callable[[int], float] | None = None,
    label: str | None = None,
    max_value: float = 1e10,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> Trajectory:
    r"""Run an optimizer on a landscape and record its path.

    Each step :math:`t = 0, \dots, \text{steps} - 1` sets the learning rate from the
    schedule (``group["lr"] = schedule(t)``, :func:`lib.schedules.set_lr`) if one is given, computes
    :math:`f(p_t)` and its gradient, and calls ``optimizer.step()``:

    .. math::

        p_{t+1} = \text{optimizer}(p_t, \nabla f(p_t)).

    A run diverges when a point or its loss is not finite or exceeds ``max_value`` in
    magnitude; the run then stops, and only the finite part is returned.

    Args:
        landscape: the function to minimize.
        optimizer_class: any optimizer class, ``torch.optim.X`` or ``lib.optim.X``.
        optimizer_kwargs: keyword arguments for it, for instance ``{"lr": 0.01}``.
        start: the start point; defaults to ``landscape.start``.
        steps: the number of optimizer steps, non-negative.
        schedule: a learning-rate schedule ``t -> lr`` applied before each step.
        label: a name for legends; defaults to the optimizer class's name.
        max_value: the magnitude beyond which coordinates or loss count as divergence.
        dtype: dtype of the point.
        device: device of the point (a two-parameter run is fastest on the CPU).

    Returns:
        A :class:`Trajectory`.

    Raises:
        ValueError: if ``steps`` is negative, ``max_value`` not positive, or ``start`` is
            not two finite numbers.
    """
    checks.integer("steps", steps, 0)
    checks.number("max_value", max_value, 0, low_open=True)
    start = landscape.start if start is None else start
    point = torch.as_tensor(start, dtype=dtype, device=device).detach().clone()
    if point.shape != (2,) or not torch.isfinite(point).all():
        raise ValueError(f"start must be two finite numbers (x, y), got {start!r}")
    point.requires_grad_(True)
    optimizer = optimizer_class([point], **dict(optimizer_kwargs or {}))

    def blown_up(p: Tensor, value: Tensor) -> bool:
        return not (torch.isfinite(p).all() and torch.isfinite(value) and p.abs().max() <= max_value) or bool(
            value.abs() > max_value
        )

    with torch.no_grad():
        first = landscape(point)
    if blown_up(point.detach(), first):
        raise ValueError(f"the loss at start {start!r} is not finite or exceeds max_value={max_value:g}")
    path, losses = [point.detach().clone()], [first]
    diverged_at = None
    for t in range(steps):
        if schedule is not None:
            set_lr(optimizer, schedule, t)
        optimizer.zero_grad()
        loss = landscape(point)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            value = landscape(point)
        if blown_up(point.detach(), value):
            diverged_at = t + 1
            break
        path.append(point.detach().clone())
        losses.append(value)
    return Trajectory(
        path=torch.stack(path),
        losses=torch.stack(losses),
        diverged=diverged_at is not None,
        diverged_at=diverged_at,
        label=optimizer_class.__name__ if label is None else label,
    )
