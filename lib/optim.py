r"""Optimizers written from scratch: a readable in-place loop per parameter, and the same
step over all parameters at once.

Every class here is a subclass of ``torch.optim.Optimizer`` with the same class name,
argument names, defaults and state names as its ``torch.optim`` counterpart, so that
``lib.optim.Adam(params, lr=1e-3)`` and ``torch.optim.Adam(params, lr=1e-3)`` can be swapped
and their ``state_dict()`` read the same. Each step exists twice: ``foreach=False`` loops
over the parameters, one op per formula line and parameter; ``foreach=True`` issues one
``torch._foreach_*`` call per formula line for all parameters together, which is why
torch's default is faster on models with many small tensors. The tests check each path
against ``torch.optim.X(foreach=False)`` and ``torch.optim.X(foreach=True)`` step by step.

Notation used in every docstring: :math:`\theta_t` are the parameters after step
:math:`t`, :math:`g_t = \nabla_\theta f(\theta_{t-1})` the gradient at step :math:`t`,
:math:`\gamma` the learning rate ``lr`` and :math:`\lambda` the weight decay.

Two wrappers add behaviour around an inner rule instead of copying it: ``Lookahead`` wraps
any optimizer, and ``SWATS`` is ``Adam`` that switches itself to SGD.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.optim import Optimizer

from lib import checks

#: What an optimizer takes as ``params`` (torch's own alias moved between releases).
ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]

__all__ = [
    "SGD",
    "Adagrad",
    "RMSprop",
    "Adadelta",
    "Adam",
    "AdamW",
    "RAdam",
    "NAdam",
    "Lookahead",
    "SWATS",
    "state_numel",
]


# ----------------------------------------------------------------------------- helpers
#
# Two ways to run one step. Every optimizer here has both, chosen by its ``foreach``
# argument, and each issues the ops of torch's path of the same name in the same order:
#
# * Per parameter (``foreach=False``, torch's ``_single_tensor_*``): a Python loop over the
#   parameters, one tensor op per formula line. A model with P parameter tensors costs
#   about P x (lines) separate ops, each paying Python and dispatch overhead (microseconds
#   on a CPU, a kernel launch on a GPU): with many small tensors that overhead, not the
#   arithmetic, is the step's time.
# * Multi-tensor (``foreach=True``, torch's ``_multi_tensor_*``, its default on GPUs): one
#   ``torch._foreach_*`` call per formula line, over the lists of all parameters, gradients
#   and states at once. The overhead is paid once per line instead of once per parameter,
#   and on a GPU one kernel covers many tensors. The arithmetic is the same, but grouped
#   differently in places (a step size folded into a list of scalars), so the two paths
#   agree to rounding, not bit for bit; each is bit-identical on the CPU to torch's.
#
# The torch._foreach_* functions are underscore names, yet they are the API that torch's
# own optimizers call, and their signatures have stayed put: lib calls only those that
# torch 2.1 (the floor in pyproject.toml) already calls in its multi-tensor optimizers or
# in clip_grad_norm_(foreach=True), with the same arguments (tests/test_checks.py holds
# the list).


def _check_betas(betas: tuple[float, float]) -> None:
    """Raise ``ValueError`` unless both betas lie in ``[0, 1)``."""
    for index, beta in enumerate(betas):
        checks.number(f"betas[{index}]", beta, 0, 1, high_open=True)


def _check_adam_family(lr: float, eps: float, betas: tuple[float, float], weight_decay: float) -> None:
    """The argument checks that Adam, RAdam and NAdam share."""
    checks.number("lr", lr, 0)
    checks.number("eps", eps, 0)
    _check_betas(betas)
    checks.number("weight_decay", weight_decay, 0)


def _scalar_dtype() -> torch.dtype:
    """The dtype torch uses for scalar state (``step``, ``mu_product``)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _evaluate(closure: Callable[[], float] | None) -> Any:
    """Re-evaluate the loss with gradients enabled, or return ``None`` without a closure."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def _use_foreach(group: dict[str, Any], params: list[Tensor]) -> bool:
    """The group's ``foreach``; ``None`` chooses as torch does: multi-tensor when every
    parameter is on a GPU, the per-parameter loop otherwise (so CPU runs stay unchanged)."""
    if group["foreach"] is not None:
        return group["foreach"]
    return all(p.device.type in ("cuda", "xpu") for p in params)


def _gradient(param: Tensor, maximize: bool, weight_decay: float) -> Tensor:
    r"""The gradient a rule follows, with L2 (coupled) weight decay folded in.

    .. math::

        g \leftarrow \pm \nabla_\theta f + \lambda \theta

    Returns ``param.grad`` itself when nothing changes it (never modified in place).
    """
    grad = param.grad if not maximize else -param.grad
    if weight_decay != 0:
        # g <- g + lambda * theta   (L2 penalty lambda/2 |theta|^2 in the loss)
        grad = grad.add(param, alpha=weight_decay)
    return grad


def _adam_family_gradient(
    param: Tensor, maximize: bool, weight_decay: float, decoupled: bool, lr: float
) -> Tensor:
    r"""Gradient for Adam-like rules: weight decay coupled (L2) or decoupled (AdamW).

    .. math::

        \text{coupled: } g \leftarrow g + \lambda\theta, \qquad
        \text{decoupled: } \theta \leftarrow (1 - \gamma\lambda)\theta

    The decoupled decay shrinks ``param`` in place before the adaptive step.
    """
    if decoupled and weight_decay != 0:
        # theta <- (1 - lr * lambda) * theta   (decay kept out of the moments)
        param.mul_(1 - lr * weight_decay)
        weight_decay = 0.0
    return _gradient(param, maximize, weight_decay)


def _gradients_foreach(
    params: list[Tensor], maximize: bool, weight_decay: float, decoupled: bool = False, lr: float = 0.0
) -> list[Tensor]:
    r"""``_adam_family_gradient`` for all ``params`` at once: one ``_foreach`` call per line.

    Returns the ``.grad`` tensors themselves when nothing changes them (never modified).
    """
    grads = [p.grad for p in params]
    if maximize:
        # g <- -g
        grads = torch._foreach_neg(grads)
    if weight_decay != 0 and decoupled:
        # theta <- (1 - lr * lambda) * theta
        torch._foreach_mul_(params, 1 - lr * weight_decay)
    elif weight_decay != 0:
        # g <- g + lambda * theta
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    return grads


def _new_step() -> Tensor:
    """A fresh step counter, stored as a scalar tensor like torch stores it."""
    return torch.tensor(0.0, dtype=_scalar_dtype())


def _zeros(param: Tensor) -> Tensor:
    """A state tensor of zeros shaped and strided like ``param``."""
    return torch.zeros_like(param, memory_format=torch.preserve_format)


def _count_steps(states: list[dict[str, Any]], foreach: bool) -> list[float]:
    """t <- t + 1 in each state's ``step`` (one call for all with ``foreach``); return the t's."""
    if foreach:
        torch._foreach_add_([s["step"] for s in states], 1)
    else:
        for state in states:
            state["step"] += 1
    return [s["step"].item() for s in states]  # CPU scalars: no device sync


class _TwoPaths(Optimizer):
    """An optimizer whose step exists twice: ``_step_loop`` (per parameter) and
    ``_step_foreach`` (multi-tensor), each given a group and its parameters with gradients."""

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        """Perform one update; return the loss from ``closure`` if one is given."""
        loss = _evaluate(closure)
        for group in self.param_groups:
            self._group_step(group)
        return loss

    def _group_step(self, group: dict[str, Any]) -> None:
        """One step of every parameter of ``group`` that has a gradient, in the group's path."""
        params = [p for p in group["params"] if p.grad is not None]
        if params:
            (self._step_foreach if _use_foreach(group, params) else self._step_loop)(group, params)

    def _step_loop(self, group: dict[str, Any], params: list[Tensor]) -> None:
        raise NotImplementedError

    def _step_foreach(self, group: dict[str, Any], params: list[Tensor]) -> None:
        raise NotImplementedError


# ----------------------------------------------------------------------------- SGD


class SGD(_TwoPaths):
    r"""Stochastic gradient descent, with momentum (SGDM) and Nesterov momentum (NAG).

    .. math::

        g_t &\leftarrow \nabla f(\theta_{t-1}) + \lambda \theta_{t-1} \\
        b_t &\leftarrow \mu b_{t-1} + (1 - \tau) g_t \quad (b_1 = g_1) \\
        d_t &\leftarrow g_t + \mu b_t \text{ (Nesterov) or } b_t \text{ (heavy ball)} \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma d_t

    with momentum :math:`\mu` and dampening :math:`\tau`; :math:`\mu = 0` is plain
    gradient descent. ``maximize=True`` ascends (uses :math:`-g_t`).

    Other conventions, mapped to this one:

    * Velocity form (Sutskever et al. 2013, and the notes' ``v = a*v - lr*g``):
      :math:`v_t = a v_{t-1} - \gamma g_t,\ \theta_t = \theta_{t-1} + v_t`. With a constant
      :math:`\gamma` it is this class with ``momentum=a``, ``dampening=0``, since
      :math:`v_t = -\gamma b_t`; it differs once :math:`\gamma` changes mid-run (the velocity
      remembers the old learning rate, the buffer does not).
    * Averaged momentum :math:`m_t = \beta m_{t-1} + (1-\beta) g_t,\ m_0 = 0,\
      \theta_t = \theta_{t-1} - \eta m_t` equals ``SGD(momentum=beta, lr=eta * (1 - beta))``,
      since :math:`m_t = (1-\beta) b_t`. It is *not* ``dampening=beta``: torch's buffer
      starts at :math:`b_1 = g_1` undamped, so the first step would be :math:`1/(1-\beta)`
      times too long.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate :math:`\gamma` (default ``1e-3``, as torch).
        momentum: momentum factor :math:`\mu \ge 0` (default 0).
        dampening: dampening :math:`\tau \in [0, 1]` of the gradient in the buffer
            (default 0).
        weight_decay: L2 penalty :math:`\lambda \ge 0` (default 0).
        nesterov: use Nesterov momentum (needs ``momentum > 0`` and ``dampening = 0``).
        maximize: maximize the objective instead of minimizing it.
        foreach: one ``torch._foreach_*`` call per formula line over all parameters
            (True), or a loop over the parameters (False); ``None``: True on GPUs only.

    Raises:
        ValueError: on a negative ``lr``, ``momentum`` or ``weight_decay``, a ``dampening``
            outside [0, 1], or ``nesterov`` without momentum or with dampening.

    Note:
        The buffer starts at :math:`b_1 = g_1`, not at 0 (as in torch); Sutskever et al.
        start the velocity at 0.

    References:
        Polyak, "Some methods of speeding up the convergence of iteration methods", 1964.
        Sutskever, Martens, Dahl, Hinton, "On the importance of initialization and momentum
        in deep learning", ICML 2013.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        checks.number("lr", lr, 0)
        checks.number("momentum", momentum, 0)
        checks.number("dampening", dampening, 0, 1)
        checks.number("weight_decay", weight_decay, 0)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"nesterov=True must have momentum > 0 and dampening = 0, "
                f"got momentum={momentum}, dampening={dampening}"
            )
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def _step_loop(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """One step, parameter by parameter."""
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        for param in params:
            # g <- grad + lambda * theta
            grad = _gradient(param, group["maximize"], group["weight_decay"])
            if momentum != 0:
                state = self.state[param]
                buf = state.get("momentum_buffer")
                if buf is None:
                    # b_1 <- g_1
                    buf = state["momentum_buffer"] = grad.detach().clone()
                else:
                    # b <- mu * b + (1 - dampening) * g
                    buf.mul_(momentum).add_(grad, alpha=1 - dampening)
                # d <- g + mu * b (Nesterov) or d <- b
                grad = grad.add(buf, alpha=momentum) if group["nesterov"] else buf
            # theta <- theta - lr * d
            param.add_(grad, alpha=-lr)

    def _step_foreach(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """The same step with one ``_foreach`` call per line over all parameters."""
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        # g <- grad + lambda * theta
        grads = _gradients_foreach(params, group["maximize"], group["weight_decay"])
        if momentum != 0:
            states = [self.state[p] for p in params]
            bufs = [s.get("momentum_buffer") for s in states]
            if all(buf is not None for buf in bufs):
                # b <- mu * b + (1 - dampening) * g
                torch._foreach_mul_(bufs, momentum)
                torch._foreach_add_(bufs, grads, alpha=1 - dampening)
            else:  # the first step (b_1 <- g_1), or a parameter that got its first gradient
                for i, (state, grad) in enumerate(zip(states, grads)):
                    if bufs[i] is None:
                        bufs[i] = state["momentum_buffer"] = grad.detach().clone()
                    else:
                        bufs[i].mul_(momentum).add_(grad, alpha=1 - dampening)
            # d <- g + mu * b (Nesterov) or d <- b
            grads = torch._foreach_add(grads, bufs, alpha=momentum) if group["nesterov"] else bufs
        # theta <- theta - lr * d
        torch._foreach_add_(params, grads, alpha=-lr)


# ----------------------------------------------------------------------------- AdaGrad


class Adagrad(_TwoPaths):
    r"""AdaGrad: a per-coordinate step shrunk by the root of all past squared gradients.

    .. math::

        \gamma_t &\leftarrow \gamma / (1 + (t-1)\,\eta) \\
        g_t &\leftarrow \nabla f(\theta_{t-1}) + \lambda \theta_{t-1} \\
        G_t &\leftarrow G_{t-1} + g_t \odot g_t \quad (G_0 = \text{initial value}) \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma_t \, \frac{g_t}{\sqrt{G_t} + \epsilon}

    with learning-rate decay :math:`\eta` (``lr_decay``). The :math:`\epsilon` sits outside
    the root, as in torch and in the notes' NumPy code (``lr * g / (sqrt(h) + 1e-7)``).
    Notes that write :math:`g / \sqrt{G_t + \epsilon}` take a different rule: the two
    agree to within :math:`\epsilon/(2\sqrt{G})` relative where :math:`G \gg \epsilon`,
    and differ most where the gradients are tiny (a test shows both).

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate :math:`\gamma` (default ``1e-2``).
        lr_decay: learning-rate decay :math:`\eta \ge 0` (default 0).
        weight_decay: L2 penalty :math:`\lambda \ge 0` (default 0).
        initial_accumulator_value: starting value of :math:`G` (default 0).
        eps: :math:`\epsilon \ge 0` added to the root (default ``1e-10``).
        maximize: maximize the objective instead of minimizing it.
        foreach: one ``torch._foreach_*`` call per formula line over all parameters
            (True), or a loop over the parameters (False); ``None``: True on GPUs only.

    Raises:
        ValueError: if any of ``lr``, ``lr_decay``, ``weight_decay``,
            ``initial_accumulator_value`` or ``eps`` is negative.

    Note:
        As in torch, the state (``step``, ``sum``) is created at construction for every
        parameter, so ``sum`` starts at ``initial_accumulator_value``.

    References:
        Duchi, Hazan, Singer, "Adaptive subgradient methods for online learning and
        stochastic optimization", JMLR 2011.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        checks.number("lr", lr, 0)
        checks.number("lr_decay", lr_decay, 0)
        checks.number("weight_decay", weight_decay, 0)
        checks.number("initial_accumulator_value", initial_accumulator_value, 0)
        checks.number("eps", eps, 0)
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            maximize=maximize,
            foreach=foreach,
        )
        super().__init__(params, defaults)  # calls add_param_group, which creates the state

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> None:
        """Create ``step`` and ``sum`` for ``param`` (G_0 = initial_accumulator_value)."""
        state = self.state[param]
        state["step"] = _new_step()
        state["sum"] = torch.full_like(
            param, group["initial_accumulator_value"], memory_format=torch.preserve_format
        )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group and create its state at once (AdaGrad's state is not lazy)."""
        super().add_param_group(param_group)
        for param in self.param_groups[-1]["params"]:
            self._init_state(param, self.param_groups[-1])

    def _step_loop(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """One step, parameter by parameter."""
        for param in params:
            state = self.state[param]
            (step,) = _count_steps([state], foreach=False)
            # g <- grad + lambda * theta
            grad = _gradient(param, group["maximize"], group["weight_decay"])
            # lr_t <- lr / (1 + (t - 1) * lr_decay)
            clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
            # G <- G + g * g
            state["sum"].addcmul_(grad, grad, value=1)
            # theta <- theta - lr_t * g / (sqrt(G) + eps)
            std = state["sum"].sqrt().add_(group["eps"])
            param.addcdiv_(grad, std, value=-clr)

    def _step_foreach(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """The same step with one ``_foreach`` call per line over all parameters."""
        states = [self.state[p] for p in params]
        sums = [s["sum"] for s in states]
        steps = _count_steps(states, foreach=True)
        # g <- grad + lambda * theta
        grads = _gradients_foreach(params, group["maximize"], group["weight_decay"])
        # -lr_t <- -lr / (1 + (t - 1) * lr_decay), one number per parameter
        minus_clr = [-group["lr"] / (1 + (t - 1) * group["lr_decay"]) for t in steps]
        # G <- G + g * g
        torch._foreach_addcmul_(sums, grads, grads, value=1)
        # theta <- theta - lr_t * g / (sqrt(G) + eps)
        std = torch._foreach_sqrt(sums)
        torch._foreach_add_(std, group["eps"])
        torch._foreach_addcdiv_(params, torch._foreach_mul(grads, minus_clr), std)


# ----------------------------------------------------------------------------- RMSprop


class RMSprop(_TwoPaths):
    r"""RMSprop: AdaGrad with an exponential moving average instead of a sum.

    .. math::

        g_t &\leftarrow \nabla f(\theta_{t-1}) + \lambda \theta_{t-1} \\
        v_t &\leftarrow \alpha v_{t-1} + (1 - \alpha) g_t \odot g_t \\
        \bar g_t &\leftarrow \alpha \bar g_{t-1} + (1 - \alpha) g_t
            \quad \text{(centered only)} \\
        s_t &\leftarrow \sqrt{v_t - \bar g_t \odot \bar g_t} + \epsilon
            \quad \text{(centered) or } \sqrt{v_t} + \epsilon \\
        b_t &\leftarrow \mu b_{t-1} + g_t / s_t, \quad
            \theta_t \leftarrow \theta_{t-1} - \gamma b_t \quad (\mu > 0) \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma\, g_t / s_t \quad (\mu = 0)

    All states start at zero. The notes' :math:`\sigma_t = \sqrt{\alpha\sigma_{t-1}^2 +
    (1-\alpha) g_t^2}` is :math:`\sqrt{v_t}`; the notes start at :math:`\sigma_0 = |g_0|`,
    torch at :math:`v_0 = 0`, so the notes' first steps are shorter by up to
    :math:`\sqrt{1-\alpha}`. The :math:`\epsilon` is outside the root, as in torch.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate :math:`\gamma` (default ``1e-2``).
        alpha: smoothing constant :math:`\alpha \in [0, 1]` (default 0.99).
        eps: :math:`\epsilon \ge 0` added to the root (default ``1e-8``).
        weight_decay: L2 penalty :math:`\lambda \ge 0` (default 0).
        momentum: momentum factor :math:`\mu \ge 0` (default 0).
        centered: divide by the estimated standard deviation instead of the RMS.
        maximize: maximize the objective instead of minimizing it.
        foreach: one ``torch._foreach_*`` call per formula line over all parameters
            (True), or a loop over the parameters (False); ``None``: True on GPUs only.

    Raises:
        ValueError: if ``lr``, ``eps``, ``weight_decay`` or ``momentum`` is negative, or
            ``alpha`` lies outside [0, 1].

    References:
        Tieleman, Hinton, "Lecture 6.5 - RMSProp", COURSERA: Neural Networks for Machine
        Learning, 2012. Graves, "Generating sequences with recurrent neural networks",
        2013 (the centered form).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        checks.number("lr", lr, 0)
        checks.number("alpha", alpha, 0, 1)
        checks.number("eps", eps, 0)
        checks.number("weight_decay", weight_decay, 0)
        checks.number("momentum", momentum, 0)
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def _states(self, group: dict[str, Any], params: list[Tensor], foreach: bool) -> list[dict[str, Any]]:
        """Each parameter's state, created at its first step (all zeros), after t <- t + 1."""
        states = [self.state[p] for p in params]
        for param, state in zip(params, states):
            if len(state) == 0:
                state["step"] = _new_step()
                state["square_avg"] = _zeros(param)
                if group["momentum"] > 0:
                    state["momentum_buffer"] = _zeros(param)
                if group["centered"]:
                    state["grad_avg"] = _zeros(param)
        _count_steps(states, foreach)
        return states

    def _step_loop(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """One step, parameter by parameter."""
        lr, alpha, eps, momentum = group["lr"], group["alpha"], group["eps"], group["momentum"]
        for param, state in zip(params, self._states(group, params, foreach=False)):
            # g <- grad + lambda * theta
            grad = _gradient(param, group["maximize"], group["weight_decay"])
            # v <- alpha * v + (1 - alpha) * g^2
            square_avg = state["square_avg"].mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
            if group["centered"]:
                # gbar <- alpha * gbar + (1 - alpha) * g
                grad_avg = state["grad_avg"].lerp_(grad, 1 - alpha)
                # s <- sqrt(v - gbar^2) + eps
                avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_().add_(eps)
            else:
                # s <- sqrt(v) + eps
                avg = square_avg.sqrt().add_(eps)
            if momentum > 0:
                # b <- mu * b + g / s;  theta <- theta - lr * b
                buf = state["momentum_buffer"].mul_(momentum).addcdiv_(grad, avg)
                param.add_(buf, alpha=-lr)
            else:
                # theta <- theta - lr * g / s
                param.addcdiv_(grad, avg, value=-lr)

    def _step_foreach(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """The same step with one ``_foreach`` call per line over all parameters."""
        lr, alpha, eps, momentum = group["lr"], group["alpha"], group["eps"], group["momentum"]
        states = self._states(group, params, foreach=True)
        square_avgs = [s["square_avg"] for s in states]
        # g <- grad + lambda * theta
        grads = _gradients_foreach(params, group["maximize"], group["weight_decay"])
        # v <- alpha * v + (1 - alpha) * g^2
        torch._foreach_mul_(square_avgs, alpha)
        torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - alpha)
        if group["centered"]:
            grad_avgs = [s["grad_avg"] for s in states]
            # gbar <- alpha * gbar + (1 - alpha) * g
            torch._foreach_lerp_(grad_avgs, grads, 1 - alpha)
            # s <- sqrt(v - gbar^2) + eps
            avg = torch._foreach_addcmul(square_avgs, grad_avgs, grad_avgs, value=-1)
            torch._foreach_sqrt_(avg)
        else:
            # s <- sqrt(v) + eps
            avg = torch._foreach_sqrt(square_avgs)
        torch._foreach_add_(avg, eps)
        if momentum > 0:
            bufs = [s["momentum_buffer"] for s in states]
            # b <- mu * b + g / s;  theta <- theta - lr * b
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_addcdiv_(bufs, grads, avg)
            torch._foreach_add_(params, bufs, alpha=-lr)
        else:
            # theta <- theta - lr * g / s
            torch._foreach_addcdiv_(params, grads, avg, value=-lr)


# ----------------------------------------------------------------------------- Adadelta


class Adadelta(_TwoPaths):
    r"""Adadelta: RMSprop whose step size is the RMS of the past updates.

    .. math::

        g_t &\leftarrow \nabla f(\theta_{t-1}) + \lambda \theta_{t-1} \\
        v_t &\leftarrow \rho v_{t-1} + (1 - \rho) g_t \odot g_t \\
        \Delta_t &\leftarrow \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}} \odot g_t \\
        u_t &\leftarrow \rho u_{t-1} + (1 - \rho) \Delta_t \odot \Delta_t \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma \Delta_t

    with :math:`v` stored as ``square_avg`` and :math:`u` as ``acc_delta``, both from zero.
    Here :math:`\epsilon` is *inside* both roots (as in the paper, torch and the notes); the
    notes' :math:`d_t = -\Delta_t` with :math:`\gamma = 1`.

    Args:
        params: parameters or parameter groups to optimize.
        lr: coefficient :math:`\gamma` that scales the update (default 1.0).
        rho: decay :math:`\rho \in [0, 1]` of both running averages (default 0.9).
        eps: :math:`\epsilon \ge 0` inside the roots (default ``1e-6``).
        weight_decay: L2 penalty :math:`\lambda \ge 0` (default 0).
        maximize: maximize the objective instead of minimizing it.
        foreach: one ``torch._foreach_*`` call per formula line over all parameters
            (True), or a loop over the parameters (False); ``None``: True on GPUs only.

    Raises:
        ValueError: if ``lr``, ``eps`` or ``weight_decay`` is negative, or ``rho`` lies
            outside [0, 1].

    References:
        Zeiler, "ADADELTA: an adaptive learning rate method", arXiv:1212.5701, 2012.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        checks.number("lr", lr, 0)
        checks.number("rho", rho, 0, 1)
        checks.number("eps", eps, 0)
        checks.number("weight_decay", weight_decay, 0)
        defaults = dict(
            lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize, foreach=foreach
        )
        super().__init__(params, defaults)

    def _states(self, params: list[Tensor], foreach: bool) -> list[dict[str, Any]]:
        """Each parameter's state, created at its first step (all zeros), after t <- t + 1."""
        states = [self.state[p] for p in params]
        for param, state in zip(params, states):
            if len(state) == 0:
                state["step"] = _new_step()
                state["square_avg"] = _zeros(param)
                state["acc_delta"] = _zeros(param)
        _count_steps(states, foreach)
        return states

    def _step_loop(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """One step, parameter by parameter."""
        rho, eps = group["rho"], group["eps"]
        for param, state in zip(params, self._states(params, foreach=False)):
            # g <- grad + lambda * theta
            grad = _gradient(param, group["maximize"], group["weight_decay"])
            # v <- rho * v + (1 - rho) * g^2
            state["square_avg"].mul_(rho).addcmul_(grad, grad, value=1 - rho)
            # delta <- sqrt(u + eps) / sqrt(v + eps) * g
            std = state["square_avg"].add(eps).sqrt_()
            delta = state["acc_delta"].add(eps).sqrt_().div_(std).mul_(grad)
            # u <- rho * u + (1 - rho) * delta^2
            state["acc_delta"].mul_(rho).addcmul_(delta, delta, value=1 - rho)
            # theta <- theta - lr * delta
            param.add_(delta, alpha=-group["lr"])

    def _step_foreach(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """The same step with one ``_foreach`` call per line over all parameters."""
        rho, eps = group["rho"], group["eps"]
        states = self._states(params, foreach=True)
        square_avgs, acc_deltas = [s["square_avg"] for s in states], [s["acc_delta"] for s in states]
        # g <- grad + lambda * theta
        grads = _gradients_foreach(params, group["maximize"], group["weight_decay"])
        # v <- rho * v + (1 - rho) * g^2
        torch._foreach_mul_(square_avgs, rho)
        torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - rho)
        # delta <- sqrt(u + eps) / sqrt(v + eps) * g
        std = torch._foreach_add(square_avgs, eps)
        torch._foreach_sqrt_(std)
        deltas = torch._foreach_add(acc_deltas, eps)
        torch._foreach_sqrt_(deltas)
        torch._foreach_div_(deltas, std)
        torch._foreach_mul_(deltas, grads)
        # u <- rho * u + (1 - rho) * delta^2
        torch._foreach_mul_(acc_deltas, rho)
        torch._foreach_addcmul_(acc_deltas, deltas, deltas, value=1 - rho)
        # theta <- theta - lr * delta
        torch._foreach_add_(params, deltas, alpha=-group["lr"])


# ----------------------------------------------------------------------------- the Adam family


class _Moments(NamedTuple):
    """One parameter group after the part of a step that Adam, AdamW, RAdam and NAdam share."""

    params: list[Tensor]  # the parameters that have a gradient
    grads: list[Tensor]  # g_t, with coupled weight decay folded in
    exp_avgs: list[Tensor]  # m_t
    exp_avg_sqs: list[Tensor]  # v_t
    steps: list[float]  # t, per parameter
    states: list[dict[str, Any]]

    def bias_corrections(self, beta: float) -> list[float]:
        """1 - beta^t for each parameter."""
        return [1 - beta**t for t in self.steps]


class _AdamFamily(_TwoPaths):
    r"""What Adam, AdamW, RAdam and NAdam share, in one place: the state, the step counter,
    the weight decay and the two moment estimates,

    .. math::

        m_t \leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t \odot g_t,

    per parameter or with one ``_foreach`` call per line. A subclass turns them into a step
    in ``_update`` (per parameter) and ``_update_foreach`` (multi-tensor); the bias
    corrections :math:`1 - \beta^t` come from :meth:`_Moments.bias_corrections`.
    """

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """The state at the first step: t = 0, m_0 = v_0 = 0 (a subclass may add to it)."""
        state = self.state[param]
        state["step"] = _new_step()
        state["exp_avg"] = _zeros(param)
        state["exp_avg_sq"] = _zeros(param)
        return state

    def _step_loop(self, group: dict[str, Any], params: list[Tensor]) -> None:
        self._update(group, self._moments(group, params, foreach=False))

    def _step_foreach(self, group: dict[str, Any], params: list[Tensor]) -> None:
        self._update_foreach(group, self._moments(group, params, foreach=True))

    def _moments(self, group: dict[str, Any], params: list[Tensor], foreach: bool) -> _Moments:
        """t <- t + 1, weight decay, m_t and v_t for ``params``."""
        beta1, beta2 = group["betas"]
        states = [self.state[p] if self.state[p] else self._init_state(p, group) for p in params]
        exp_avgs, exp_avg_sqs = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
        steps = _count_steps(states, foreach)
        decay = (group["maximize"], group["weight_decay"], group["decoupled_weight_decay"], group["lr"])
        if foreach:
            # g <- grad + lambda * theta, or theta <- (1 - lr * lambda) * theta (AdamW)
            grads = _gradients_foreach(params, *decay)
            # m <- beta1 * m + (1 - beta1) * g
            torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
            # v <- beta2 * v + (1 - beta2) * g^2
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
        else:
            grads = [_adam_family_gradient(p, *decay) for p in params]
            for grad, exp_avg, exp_avg_sq in zip(grads, exp_avgs, exp_avg_sqs):
                # m <- beta1 * m + (1 - beta1) * g
                exp_avg.lerp_(grad, 1 - beta1)
                # v <- beta2 * v + (1 - beta2) * g^2
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        return _Moments(params, grads, exp_avgs, exp_avg_sqs, steps, states)

    def _update(self, group: dict[str, Any], moments: _Moments) -> None:
        raise NotImplementedError

    def _update_foreach(self, group: dict[str, Any], moments: _Moments) -> None:
        raise NotImplementedError


class Adam(_AdamFamily):
    r"""Adam: momentum on the gradient, RMSprop on its scale, both bias-corrected.

    .. math::

        g_t &\leftarrow \nabla f(\theta_{t-1}) + \lambda \theta_{t-1}
            \quad \text{(or } \theta_{t-1} \leftarrow (1-\gamma\lambda)\theta_{t-1}
            \text{ if decoupled)} \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t \odot g_t \\
        \hat v^{\max}_t &\leftarrow \max(\hat v^{\max}_{t-1}, v_t)
            \quad \text{(AMSGrad: used instead of } v_t) \\
        \theta_t &\leftarrow \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t}\,
            \frac{m_t}{\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    i.e. :math:`\theta_t = \theta_{t-1} - \gamma \hat m_t / (\sqrt{\hat v_t} + \epsilon)`
    with :math:`\hat m_t = m_t / (1-\beta_1^t)` and :math:`\hat v_t = v_t / (1-\beta_2^t)`.
    The notes' :math:`\hat m / \sqrt{\hat v + \epsilon}` puts :math:`\epsilon` inside the
    root; torch and the paper put it outside, as here.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate :math:`\gamma` (default ``1e-3``).
        betas: :math:`(\beta_1, \beta_2)`, each in [0, 1) (default ``(0.9, 0.999)``).
        eps: :math:`\epsilon \ge 0` added to the root (default ``1e-8``).
        weight_decay: weight decay :math:`\lambda \ge 0` (default 0).
        amsgrad: use the running maximum of :math:`v_t` (AMSGrad).
        maximize: maximize the objective instead of minimizing it.
        decoupled_weight_decay: decay the weights directly (AdamW) instead of adding
            :math:`\lambda\theta` to the gradient.
        foreach: one ``torch._foreach_*`` call per formula line over all parameters
            (True), or a loop over the parameters (False); ``None``: True on GPUs only.

    Raises:
        ValueError: if ``lr``, ``eps`` or ``weight_decay`` is negative, or a beta lies
            outside [0, 1).

    References:
        Kingma, Ba, "Adam: a method for stochastic optimization", ICLR 2015.
        Reddi, Kale, Kumar, "On the convergence of Adam and beyond", ICLR 2018 (AMSGrad).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
        foreach: bool | None = None,
    ) -> None:
        _check_adam_family(lr, eps, betas, weight_decay)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """Adam's state, with the running maximum of v for AMSGrad."""
        state = super()._init_state(param, group)
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = _zeros(param)
        return state

    def _update(self, group: dict[str, Any], moments: _Moments) -> None:
        lr, eps, (beta1, beta2) = group["lr"], group["eps"], group["betas"]
        for param, exp_avg, exp_avg_sq, step, state in zip(
            moments.params, moments.exp_avgs, moments.exp_avg_sqs, moments.steps, moments.states
        ):
            if group["amsgrad"]:
                # vmax <- max(vmax, v)
                exp_avg_sq = torch.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            # theta <- theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
            denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(eps)
            param.addcdiv_(exp_avg, denom, value=-(lr / (1 - beta1**step)))

    def _update_foreach(self, group: dict[str, Any], moments: _Moments) -> None:
        lr, eps, (beta1, beta2) = group["lr"], group["eps"], group["betas"]
        exp_avg_sqs = moments.exp_avg_sqs
        if group["amsgrad"]:
            # vmax <- max(vmax, v)
            exp_avg_sqs = [s["max_exp_avg_sq"] for s in moments.states]
            torch._foreach_maximum_(exp_avg_sqs, moments.exp_avg_sqs)
        # denom <- sqrt(v) / sqrt(1 - beta2^t) + eps
        denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denom, [bc**0.5 for bc in moments.bias_corrections(beta2)])
        torch._foreach_add_(denom, eps)
        # theta <- theta - lr / (1 - beta1^t) * m / denom
        step_sizes = [(lr / bc) * -1 for bc in moments.bias_corrections(beta1)]
        torch._foreach_addcdiv_(moments.params, moments.exp_avgs, denom, step_sizes)


class AdamW(Adam):
    r"""AdamW: ``Adam`` with the weight decay taken out of the gradient.

    The only change from ``Adam`` is where :math:`\lambda` acts:

    .. math::

        \theta_{t-1} &\leftarrow (1 - \gamma\lambda)\,\theta_{t-1} \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    with :math:`\hat m_t, \hat v_t` computed from the raw gradient, so a coordinate with a
    large :math:`\hat v` is decayed as much as any other (with L2 in ``Adam`` its decay is
    divided by :math:`\sqrt{\hat v}` too). This class is ``Adam(...,
    decoupled_weight_decay=True)`` with torch's AdamW default ``weight_decay=1e-2``.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate :math:`\gamma` (default ``1e-3``).
        betas: :math:`(\beta_1, \beta_2)`, each in [0, 1) (default ``(0.9, 0.999)``).
        eps: :math:`\epsilon \ge 0` added to the root (default ``1e-8``).
        weight_decay: decoupled weight decay :math:`\lambda \ge 0` (default ``1e-2``).
        amsgrad: use the running maximum of :math:`v_t` (AMSGrad).
        maximize: maximize the objective instead of minimizing it.
        foreach: one ``torch._foreach_*`` call per formula line over all parameters
            (True), or a loop over the parameters (False); ``None``: True on GPUs only.

    Raises:
        ValueError: as ``Adam``.

    References:
        Loshchilov, Hutter, "Decoupled weight decay regularization", ICLR 2019.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
            foreach=foreach,
        )


def _rectification(rho_t: float, rho_inf: float) -> float:
    r"""RAdam's :math:`r_t`, or 0 while :math:`\rho_t \le 5` (the variance of :math:`\hat v` intractable)."""
    if rho_t <= 5:
        return 0
    # r_t <- sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
    return ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5


class RAdam(_AdamFamily):
    r"""RAdam: Adam whose adaptive step is switched on only once the variance of
    :math:`\hat v` is tractable, and then rectified.

    .. math::

        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
        v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t \odot g_t \\
        \rho_\infty &= \frac{2}{1 - \beta_2} - 1, \quad
        \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1 - \beta_2^t} \\
        r_t &= \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}
                          {(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}} \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma\, \hat m_t\, r_t\,
            \frac{\sqrt{1 - \beta_2^t}}{\sqrt{v_t} + \epsilon}
            \quad \text{if } \rho_t > 5, \text{ else }
            \theta_{t-1} - \gamma \hat m_t

    with :math:`\hat m_t = m_t / (1-\beta_1^t)`; weight decay as in ``Adam`` (coupled, or
    decoupled with ``decoupled_weight_decay=True``). With :math:`\beta_2 = 0.999` the first
    5 steps are SGD with momentum (no adaptive scaling).

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate :math:`\gamma` (default ``1e-3``).
        betas: :math:`(\beta_1, \beta_2)`, each in [0, 1) (default ``(0.9, 0.999)``).
        eps: :math:`\epsilon \ge 0` added to the root (default ``1e-8``).
        weight_decay: weight decay :math:`\lambda \ge 0` (default 0).
        decoupled_weight_decay: decay the weights directly (as AdamW).
        maximize: maximize the objective instead of minimizing it.
        foreach: one ``torch._foreach_*`` call per formula line over all parameters
            (True), or a loop over the parameters (False); ``None``: True on GPUs only.

    Raises:
        ValueError: if ``lr``, ``eps`` or ``weight_decay`` is negative, or a beta lies
            outside [0, 1).

    References:
        Liu et al., "On the variance of the adaptive learning rate and beyond", ICLR 2020.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        _check_adam_family(lr, eps, betas, weight_decay)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    @staticmethod
    def _rectifications(group: dict[str, Any], moments: _Moments) -> list[float]:
        """r_t of each parameter (0 where the variance is not yet tractable)."""
        beta2 = group["betas"][1]
        # rho_inf <- 2 / (1 - beta2) - 1
        rho_inf = 2 / (1 - beta2) - 1
        # rho_t <- rho_inf - 2 t beta2^t / (1 - beta2^t)
        rho = [rho_inf - 2 * t * (beta2**t) / (1 - beta2**t) for t in moments.steps]
        return [_rectification(rho_t, rho_inf) for rho_t in rho]

    def _update(self, group: dict[str, Any], moments: _Moments) -> None:
        lr, eps, (beta1, beta2) = group["lr"], group["eps"], group["betas"]
        for param, exp_avg, exp_avg_sq, step, rect in zip(
            moments.params,
            moments.exp_avgs,
            moments.exp_avg_sqs,
            moments.steps,
            self._rectifications(group, moments),
        ):
            # mhat <- m / (1 - beta1^t)
            bias_corrected_exp_avg = exp_avg / (1 - beta1**step)
            if rect > 0:
                # theta <- theta - lr * mhat * r_t * sqrt(1 - beta2^t) / (sqrt(v) + eps)
                adaptive_lr = (1 - beta2**step) ** 0.5 / exp_avg_sq.sqrt().add_(eps)
                param.add_(bias_corrected_exp_avg * lr * adaptive_lr * rect, alpha=-1.0)
            else:
                # theta <- theta - lr * mhat   (variance not yet tractable)
                param.add_(bias_corrected_exp_avg * lr, alpha=-1.0)

    def _update_foreach(self, group: dict[str, Any], moments: _Moments) -> None:
        lr, eps, (beta1, beta2) = group["lr"], group["eps"], group["betas"]
        rects = self._rectifications(group, moments)
        bias_corrections1 = moments.bias_corrections(beta1)
        # -lr / (1 - beta1^t) where r_t = 0 (the plain momentum step), else 0
        plain = [(lr * (0 if r > 0 else 1.0) / bc) * -1 for r, bc in zip(rects, bias_corrections1)]
        # -lr r_t sqrt(1 - beta2^t) / (1 - beta1^t)   (-0 where r_t = 0)
        adaptive = [
            (bc2**0.5) * (lr * r / bc1) * -1
            for bc2, r, bc1 in zip(moments.bias_corrections(beta2), rects, bias_corrections1)
        ]
        # factor <- adaptive / (sqrt(v) + eps) + plain   (1 / (x / -0) = -0 where r_t = 0)
        factor = torch._foreach_sqrt(moments.exp_avg_sqs)
        torch._foreach_add_(factor, eps)
        torch._foreach_div_(factor, adaptive)
        torch._foreach_reciprocal_(factor)
        torch._foreach_add_(factor, plain)
        # theta <- theta + m * factor
        torch._foreach_addcmul_(moments.params, moments.exp_avgs, factor)


def _nadam_mu(beta1: float, psi: float, t: float) -> float:
    """NAdam's momentum schedule mu_t = beta1 (1 - 0.5 * 0.96^(t psi))."""
    return beta1 * (1.0 - 0.5 * (0.96 ** (t * psi)))


class NAdam(_AdamFamily):
    r"""NAdam: Adam with Nesterov momentum and a warming-up momentum schedule.

    .. math::

        \mu_t &= \beta_1 \left(1 - \tfrac12\, 0.96^{t\psi}\right), \quad
        \textstyle\Pi_t = \prod_{i \le t} \mu_i \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
        v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t \odot g_t \\
        \theta_t &\leftarrow \theta_{t-1}
            - \gamma \frac{1 - \mu_t}{1 - \Pi_t} \frac{g_t}{\sqrt{\hat v_t} + \epsilon}
            - \gamma \frac{\mu_{t+1}}{1 - \Pi_t \mu_{t+1}} \frac{m_t}{\sqrt{\hat v_t} + \epsilon}

    with momentum decay :math:`\psi` (``momentum_decay``), :math:`\hat v_t = v_t /
    (1 - \beta_2^t)`, and :math:`\Pi_t` stored as ``mu_product`` (a scalar tensor of the
    default scalar dtype, as in torch). Weight decay as in ``Adam``.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate :math:`\gamma` (default ``2e-3``).
        betas: :math:`(\beta_1, \beta_2)`, each in [0, 1) (default ``(0.9, 0.999)``).
        eps: :math:`\epsilon \ge 0` added to the root (default ``1e-8``).
        weight_decay: weight decay :math:`\lambda \ge 0` (default 0).
        momentum_decay: :math:`\psi \ge 0` (default ``4e-3``).
        decoupled_weight_decay: decay the weights directly (as AdamW).
        maximize: maximize the objective instead of minimizing it.
        foreach: one ``torch._foreach_*`` call per formula line over all parameters
            (True), or a loop over the parameters (False); ``None``: True on GPUs only.

    Raises:
        ValueError: if ``lr``, ``eps``, ``weight_decay`` or ``momentum_decay`` is negative,
            or a beta lies outside [0, 1).

    References:
        Dozat, "Incorporating Nesterov momentum into Adam", ICLR workshop 2016.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        _check_adam_family(lr, eps, betas, weight_decay)
        checks.number("momentum_decay", momentum_decay, 0)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """NAdam's state, with the product of the momentum schedule Pi_0 = 1."""
        state = super()._init_state(param, group)
        state["mu_product"] = torch.tensor(1.0, dtype=_scalar_dtype())
        return state

    def _update(self, group: dict[str, Any], moments: _Moments) -> None:
        lr, eps, psi, (beta1, beta2) = group["lr"], group["eps"], group["momentum_decay"], group["betas"]
        for param, grad, exp_avg, exp_avg_sq, step, state in zip(*moments):
            # mu_t and mu_{t+1}
            mu, mu_next = _nadam_mu(beta1, psi, step), _nadam_mu(beta1, psi, step + 1)
            # Pi_t <- Pi_{t-1} * mu_t
            state["mu_product"] *= mu
            mu_product = state["mu_product"].item()
            # denom <- sqrt(v / (1 - beta2^t)) + eps
            denom = exp_avg_sq.div(1 - beta2**step).sqrt().add_(eps)
            # theta <- theta - lr (1 - mu_t) / (1 - Pi_t) * g / denom
            param.addcdiv_(grad, denom, value=-lr * (1.0 - mu) / (1.0 - mu_product))
            # theta <- theta - lr mu_{t+1} / (1 - Pi_t mu_{t+1}) * m / denom
            param.addcdiv_(exp_avg, denom, value=-lr * mu_next / (1.0 - mu_product * mu_next))

    def _update_foreach(self, group: dict[str, Any], moments: _Moments) -> None:
        lr, eps, psi, (beta1, beta2) = group["lr"], group["eps"], group["momentum_decay"], group["betas"]
        mus = [_nadam_mu(beta1, psi, t) for t in moments.steps]
        mu_nexts = [_nadam_mu(beta1, psi, t + 1) for t in moments.steps]
        mu_products = [s["mu_product"] for s in moments.states]
        # denom <- sqrt(v) / sqrt(1 - beta2^t) + eps
        denom = torch._foreach_sqrt(moments.exp_avg_sqs)
        # Pi_t <- Pi_{t-1} * mu_t
        torch._foreach_mul_(mu_products, mus)
        torch._foreach_div_(denom, [bc**0.5 for bc in moments.bias_corrections(beta2)])
        torch._foreach_add_(denom, eps)
        products = [p.item() for p in mu_products]
        # theta <- theta - lr (1 - mu_t) / (1 - Pi_t) * g / denom
        sizes = [(lr * (1.0 - mu) / (1.0 - pi)) * -1 for mu, pi in zip(mus, products)]
        torch._foreach_addcdiv_(moments.params, moments.grads, denom, sizes)
        # theta <- theta - lr mu_{t+1} / (1 - Pi_t mu_{t+1}) * m / denom
        sizes = [(lr * mu / (1.0 - pi * mu)) * -1 for mu, pi in zip(mu_nexts, products)]
        torch._foreach_addcdiv_(moments.params, moments.exp_avgs, denom, sizes)


# ----------------------------------------------------------------------------- wrappers


class Lookahead(Optimizer):
    r"""Lookahead: let any optimizer take ``k`` fast steps, then pull back towards them.

    The inner optimizer moves the fast weights :math:`\theta`; every ``k`` steps the slow
    weights :math:`\phi` (which start at :math:`\theta_0`) move a fraction :math:`\alpha`
    of the way to them, and the fast weights restart from there:

    .. math::

        \theta_t &\leftarrow \text{inner step}(\theta_{t-1}) \\
        \text{if } t \bmod k = 0:\quad
        \phi &\leftarrow \phi + \alpha (\theta_t - \phi), \qquad
        \theta_t \leftarrow \phi

    The wrapper is itself an optimizer: it shares its ``param_groups`` (the same dicts)
    with the inner one, so an LR scheduler or ``zero_grad`` acts on both; ``k`` and
    ``alpha`` are stored in each group; the slow weights are its ``state`` (key
    ``slow_param``); ``state_dict()`` carries the inner state under ``"inner"`` and the
    step counter, so a restored wrapper continues exactly. The inner optimizer's state
    (momentum, moments) is kept across synchronisations.

    Args:
        optimizer: the inner ("fast") optimizer, already built on the parameters.
        k: number of fast steps between synchronisations, an integer >= 1 (default 5).
        alpha: slow-weight step size :math:`\alpha \in [0, 1]` (default 0.5).

    Raises:
        ValueError: if ``k`` is not an integer >= 1 or ``alpha`` lies outside [0, 1].

    References:
        Zhang, Lucas, Hinton, Ba, "Lookahead optimizer: k steps forward, 1 step back",
        NeurIPS 2019.
    """

    def __init__(self, optimizer: Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        checks.integer("k", k, 1)
        checks.number("alpha", alpha, 0, 1)
        self.optimizer = optimizer
        super().__init__(optimizer.param_groups, dict(k=k, alpha=alpha))
        # one list of groups for both: schedulers and zero_grad reach the inner optimizer
        self.param_groups = optimizer.param_groups
        self.lookahead_step = 0
        for group in self.param_groups:
            self._init_slow(group)

    @torch.no_grad()
    def _init_slow(self, group: dict[str, Any]) -> None:
        """Start the slow weights of ``group`` at the current parameters (phi_0 = theta_0)."""
        for param in group["params"]:
            self.state[param]["slow_param"] = param.detach().clone()

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the inner optimizer (which fills its defaults) and start its slow weights."""
        if any(param_group is group for group in self.optimizer.param_groups):
            # called by Optimizer.__init__ on the inner optimizer's own groups
            super().add_param_group(param_group)
            return
        self.optimizer.add_param_group(param_group)
        group = self.optimizer.param_groups[-1]
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._init_slow(group)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        """One inner step, then a synchronisation every ``k`` steps; return the loss."""
        loss = self.optimizer.step(closure)
        self.lookahead_step += 1
        for group in self.param_groups:
            if self.lookahead_step % group["k"] != 0:
                continue
            for param in group["params"]:
                slow = self.state[param]["slow_param"]
                # phi <- phi + alpha * (theta - phi)
                slow.lerp_(param, group["alpha"])
                # theta <- phi
                param.copy_(slow)
        return loss

    def state_dict(self) -> dict[str, Any]:
        """Slow weights and groups as ``Optimizer.state_dict``, plus ``inner`` and the counter."""
        state_dict = super().state_dict()
        state_dict["inner"] = self.optimizer.state_dict()
        state_dict["lookahead_step"] = self.lookahead_step
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the inner optimizer, the slow weights and the step counter."""
        state_dict = dict(state_dict)
        self.optimizer.load_state_dict(state_dict.pop("inner"))
        self.lookahead_step = state_dict.pop("lookahead_step")
        super().load_state_dict(state_dict)
        self.param_groups = self.optimizer.param_groups

    def __repr__(self) -> str:
        k, alpha = self.defaults["k"], self.defaults["alpha"]
        return f"Lookahead(k={k}, alpha={alpha},\n{self.optimizer!r})"


class SWATS(Adam):
    r"""SWATS: start with Adam, switch to SGD with momentum once Adam's step settles.

    While in the Adam phase, each step :math:`p_k = \theta_k - \theta_{k-1}` of ``Adam``
    is projected on the gradient to estimate the SGD learning rate that would take the
    same step along :math:`g_k`, and the estimate is averaged:

    .. math::

        \gamma_k &= \frac{p_k^\top p_k}{-p_k^\top g_k}
            \quad (\text{skipped when } p_k^\top g_k = 0) \\
        \lambda_k &\leftarrow \beta_2 \lambda_{k-1} + (1 - \beta_2)\gamma_k \\
        \text{switch if } k > 1 &\text{ and }
            \left|\frac{\lambda_k}{1 - \beta_2^k} - \gamma_k\right| < \varepsilon,
            \text{ with } \Lambda = \frac{\lambda_k}{1 - \beta_2^k}

    From then on the group follows SGD with momentum :math:`\beta_1` and learning rate
    :math:`\Lambda`, its buffer starting at zero:

    .. math::

        v_k \leftarrow \beta_1 v_{k-1} + g_k, \qquad
        \theta_k \leftarrow \theta_{k-1} - (1 - \beta_1)\Lambda v_k

    The projection runs over all parameters of a parameter group at once, and each group
    switches on its own. The switch is observable in the group: ``phase`` (``"adam"`` or
    ``"sgd"``), ``switch_step`` (the last Adam step, ``None`` before the switch),
    ``sgd_lr`` (:math:`\Lambda`), ``lambda_avg`` (:math:`\lambda_k`) and ``step`` (steps
    taken by the group; a step in which no parameter of the group has a gradient does
    not count, as in ``Adam``'s per-parameter counters). The gradient :math:`g_k` is the
    one Adam used (with L2 weight decay folded in); the Adam phase is exactly ``Adam``.

    Args:
        params: parameters or parameter groups to optimize.
        lr: Adam's learning rate (default ``1e-3``).
        betas: :math:`(\beta_1, \beta_2)`, each in [0, 1) (default ``(0.9, 0.999)``).
        eps: Adam's :math:`\epsilon \ge 0` (default ``1e-8``).
        weight_decay: L2 penalty :math:`\lambda \ge 0` in both phases (default 0).
        amsgrad: use AMSGrad in the Adam phase.
        maximize: maximize the objective instead of minimizing it.
        switch_tol: switching threshold :math:`\varepsilon \ge 0` (default ``1e-9`` as in
            the paper).
        foreach: for the Adam phase, as in ``Adam``.

    Raises:
        ValueError: as ``Adam``, or on a negative ``switch_tol``.

    References:
        Keskar, Socher, "Improving generalization performance by switching from Adam to
        SGD", arXiv:1712.07628, 2017.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        switch_tol: float = 1e-9,
        foreach: bool | None = None,
    ) -> None:
        checks.number("switch_tol", switch_tol, 0)
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, foreach=foreach)
        for group in self.param_groups:
            self._init_switch(group, switch_tol)

    @staticmethod
    def _init_switch(group: dict[str, Any], switch_tol: float) -> None:
        """Start a group in the Adam phase."""
        group.setdefault("switch_tol", switch_tol)
        group.setdefault("phase", "adam")
        group.setdefault("step", 0)
        group.setdefault("lambda_avg", 0.0)
        group.setdefault("sgd_lr", None)
        group.setdefault("switch_step", None)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group that starts in the Adam phase."""
        super().add_param_group(param_group)
        if "switch_tol" in self.param_groups[0]:
            self._init_switch(self.param_groups[-1], self.param_groups[0]["switch_tol"])

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        """Perform one update; return the loss from ``closure`` if one is given."""
        loss = _evaluate(closure)
        for group in self.param_groups:
            if group["phase"] == "sgd":
                self._sgd_update(group)
            else:
                self._adam_update_and_project(group)
        return loss

    def _adam_update_and_project(self, group: dict[str, Any]) -> None:
        """One Adam step, then the projected SGD learning rate and the switch test."""
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        # k counts the group's Adam steps, as Adam's own step counters do (none without gradients)
        group["step"] += 1
        # g_k: the gradient Adam follows; theta_{k-1}: the parameters before the step
        grads = [_gradient(p, group["maximize"], group["weight_decay"]) for p in params]
        before = [p.detach().clone() for p in params]
        self._group_step(group)
        # p_k <- theta_k - theta_{k-1}   (computed in the buffer that held theta_{k-1})
        steps = [b.neg_().add_(p).reshape(-1) for p, b in zip(params, before, strict=True)]
        p_dot_g = torch.stack([torch.dot(s, g.reshape(-1)) for s, g in zip(steps, grads, strict=True)])
        p_dot_p = torch.stack([torch.dot(s, s) for s in steps])
        p_dot_g, p_dot_p = p_dot_g.sum().item(), p_dot_p.sum().item()
        if p_dot_g == 0:
            return
        beta2 = group["betas"][1]
        k = group["step"]
        # gamma_k <- p^T p / (-p^T g)
        gamma = p_dot_p / -p_dot_g
        # lambda_k <- beta2 * lambda_{k-1} + (1 - beta2) * gamma_k
        group["lambda_avg"] = beta2 * group["lambda_avg"] + (1 - beta2) * gamma
        corrected = group["lambda_avg"] / (1 - beta2**k)
        # switch if k > 1 and |lambda_k / (1 - beta2^k) - gamma_k| < eps
        if k > 1 and abs(corrected - gamma) < group["switch_tol"]:
            group["phase"], group["sgd_lr"], group["switch_step"] = "sgd", corrected, k

    def _sgd_update(self, group: dict[str, Any]) -> None:
        """One step of SGD with momentum beta1 and the learning rate found at the switch."""
        beta1 = group["betas"][0]
        if any(p.grad is not None for p in group["params"]):
            group["step"] += 1
        for param in group["params"]:
            if param.grad is None:
                continue
            grad = _gradient(param, group["maximize"], group["weight_decay"])
            state = self.state[param]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            # v <- beta1 * v + g
            buf = state["momentum_buffer"].mul_(beta1).add_(grad)
            # theta <- theta - (1 - beta1) * Lambda * v
            param.add_(buf, alpha=-(1 - beta1) * group["sgd_lr"])


# ----------------------------------------------------------------------------- memory


def state_numel(optimizer: Optimizer) -> int:
    """The number of values an optimizer keeps for its parameters: its memory beyond the model.

    Counts the elements of every per-parameter state tensor (``momentum_buffer``,
    ``exp_avg``, ``exp_avg_sq``, ...), leaving out scalars such as ``step`` whose size does
    not grow with the model. A wrapper such as :class:`Lookahead` is counted together with
    the optimizer it wraps. Divided by the number of parameter elements, this is the
    "state per parameter" of the book's optimizer table: 0 for SGD, 1 with momentum, 2 for
    Adam.

    Args:
        optimizer: any ``torch.optim.Optimizer``, after at least one step (state is created
            lazily).

    Returns:
        The number of state elements.
    """
    count = sum(
        value.numel()
        for state in optimizer.state.values()
        for value in state.values()
        if torch.is_tensor(value) and value.dim() > 0
    )
    inner = getattr(optimizer, "optimizer", None)
    return count + (state_numel(inner) if isinstance(inner, Optimizer) else 0)
