r"""Optimizers written from scratch, one readable in-place loop per parameter.

Every class here is a subclass of ``torch.optim.Optimizer`` with the same class name,
argument names, defaults and state names as its ``torch.optim`` counterpart, so that
``lib.optim.Adam(params, lr=1e-3)`` and ``torch.optim.Adam(params, lr=1e-3)`` can be swapped
and their ``state_dict()`` read the same. The tests check each one against
``torch.optim.X(foreach=False)`` step by step.

Notation used in every docstring: :math:`\theta_t` are the parameters after step
:math:`t`, :math:`g_t = \nabla_\theta f(\theta_{t-1})` the gradient at step :math:`t`,
:math:`\gamma` the learning rate ``lr`` and :math:`\lambda` the weight decay.

Two wrappers add behaviour around an inner rule instead of copying it: ``Lookahead`` wraps
any optimizer, and ``SWATS`` is ``Adam`` that switches itself to SGD.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

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


def _new_step() -> Tensor:
    """A fresh step counter, stored as a scalar tensor like torch stores it."""
    return torch.tensor(0.0, dtype=_scalar_dtype())


# ----------------------------------------------------------------------------- SGD


class SGD(Optimizer):
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
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        """Perform one update; return the loss from ``closure`` if one is given."""
        loss = _evaluate(closure)
        for group in self.param_groups:
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            for param in group["params"]:
                if param.grad is None:
                    continue
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
        return loss


# ----------------------------------------------------------------------------- AdaGrad


class Adagrad(Optimizer):
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

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        """Perform one update; return the loss from ``closure`` if one is given."""
        loss = _evaluate(closure)
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                state["step"] += 1
                step = state["step"].item()
                # g <- grad + lambda * theta
                grad = _gradient(param, group["maximize"], group["weight_decay"])
                # lr_t <- lr / (1 + (t - 1) * lr_decay)
                clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
                # G <- G + g * g
                state["sum"].addcmul_(grad, grad, value=1)
                # theta <- theta - lr_t * g / (sqrt(G) + eps)
                std = state["sum"].sqrt().add_(group["eps"])
                param.addcdiv_(grad, std, value=-clr)
        return loss


# ----------------------------------------------------------------------------- RMSprop


class RMSprop(Optimizer):
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
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        """Perform one update; return the loss from ``closure`` if one is given."""
        loss = _evaluate(closure)
        for group in self.param_groups:
            lr, alpha, eps, momentum = group["lr"], group["alpha"], group["eps"], group["momentum"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if len(state) == 0:
                    state["step"] = _new_step()
                    state["square_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    if momentum > 0:
                        state["momentum_buffer"] = torch.zeros_like(
                            param, memory_format=torch.preserve_format
                        )
                    if group["centered"]:
                        state["grad_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["step"] += 1
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
        return loss


# ----------------------------------------------------------------------------- Adadelta


class Adadelta(Optimizer):
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
    ) -> None:
        checks.number("lr", lr, 0)
        checks.number("rho", rho, 0, 1)
        checks.number("eps", eps, 0)
        checks.number("weight_decay", weight_decay, 0)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        """Perform one update; return the loss from ``closure`` if one is given."""
        loss = _evaluate(closure)
        for group in self.param_groups:
            rho, eps = group["rho"], group["eps"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if len(state) == 0:
                    state["step"] = _new_step()
                    state["square_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["acc_delta"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["step"] += 1
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
        return loss


# ----------------------------------------------------------------------------- Adam, AdamW


class Adam(Optimizer):
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
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        """Perform one update; return the loss from ``closure`` if one is given."""
        loss = _evaluate(closure)
        for group in self.param_groups:
            self._adam_update(group)
        return loss

    def _adam_update(self, group: dict[str, Any]) -> None:
        """Apply one Adam step to every parameter of ``group`` that has a gradient."""
        lr, eps, amsgrad = group["lr"], group["eps"], group["amsgrad"]
        beta1, beta2 = group["betas"]
        for param in group["params"]:
            if param.grad is None:
                continue
            state = self.state[param]
            if len(state) == 0:
                state["step"] = _new_step()
                state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                if amsgrad:
                    state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["step"] += 1
            step = state["step"].item()
            # g <- grad + lambda * theta, or theta <- (1 - lr * lambda) * theta (AdamW)
            grad = _adam_family_gradient(
                param, group["maximize"], group["weight_decay"], group["decoupled_weight_decay"], lr
            )
            # m <- beta1 * m + (1 - beta1) * g
            exp_avg = state["exp_avg"].lerp_(grad, 1 - beta1)
            # v <- beta2 * v + (1 - beta2) * g^2
            exp_avg_sq = state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            if amsgrad:
                # vmax <- max(vmax, v)
                exp_avg_sq = torch.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            # theta <- theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
            step_size = lr / (1 - beta1**step)
            denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(eps)
            param.addcdiv_(exp_avg, denom, value=-step_size)


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
        )


# ----------------------------------------------------------------------------- RAdam, NAdam


class RAdam(Optimizer):
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
    ) -> None:
        _check_adam_family(lr, eps, betas, weight_decay)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        """Perform one update; return the loss from ``closure`` if one is given."""
        loss = _evaluate(closure)
        for group in self.param_groups:
            lr, eps = group["lr"], group["eps"]
            beta1, beta2 = group["betas"]
            # rho_inf <- 2 / (1 - beta2) - 1
            rho_inf = 2 / (1 - beta2) - 1
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if len(state) == 0:
                    state["step"] = _new_step()
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["step"] += 1
                step = state["step"].item()
                grad = _adam_family_gradient(
                    param, group["maximize"], group["weight_decay"], group["decoupled_weight_decay"], lr
                )
                # m <- beta1 * m + (1 - beta1) * g;  v <- beta2 * v + (1 - beta2) * g^2
                exp_avg = state["exp_avg"].lerp_(grad, 1 - beta1)
                exp_avg_sq = state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                bias_correction2 = 1 - beta2**step
                # mhat <- m / (1 - beta1^t)
                bias_corrected_exp_avg = exp_avg / (1 - beta1**step)
                # rho_t <- rho_inf - 2 t beta2^t / (1 - beta2^t)
                rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2
                if rho_t > 5.0:
                    # r_t <- sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                    rect = (
                        (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
                    ) ** 0.5
                    # theta <- theta - lr * mhat * r_t * sqrt(1 - beta2^t) / (sqrt(v) + eps)
                    adaptive_lr = bias_correction2**0.5 / exp_avg_sq.sqrt().add_(eps)
                    param.add_(bias_corrected_exp_avg * lr * adaptive_lr * rect, alpha=-1.0)
                else:
                    # theta <- theta - lr * mhat   (variance not yet tractable)
                    param.add_(bias_corrected_exp_avg * lr, alpha=-1.0)
        return loss


class NAdam(Optimizer):
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
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        """Perform one update; return the loss from ``closure`` if one is given."""
        loss = _evaluate(closure)
        for group in self.param_groups:
            lr, eps, psi = group["lr"], group["eps"], group["momentum_decay"]
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if len(state) == 0:
                    state["step"] = _new_step()
                    state["mu_product"] = torch.tensor(1.0, dtype=_scalar_dtype())
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["step"] += 1
                step = state["step"].item()
                grad = _adam_family_gradient(
                    param, group["maximize"], group["weight_decay"], group["decoupled_weight_decay"], lr
                )
                # mu_t <- beta1 * (1 - 0.5 * 0.96^(t * psi)), and mu_{t+1}
                mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * psi)))
                mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * psi)))
                # Pi_t <- Pi_{t-1} * mu_t
                state["mu_product"] *= mu
                mu_product = state["mu_product"].item()
                # m <- beta1 * m + (1 - beta1) * g;  v <- beta2 * v + (1 - beta2) * g^2
                exp_avg = state["exp_avg"].lerp_(grad, 1 - beta1)
                exp_avg_sq = state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                # denom <- sqrt(v / (1 - beta2^t)) + eps
                denom = exp_avg_sq.div(1 - beta2**step).sqrt().add_(eps)
                # theta <- theta - lr (1 - mu_t) / (1 - Pi_t) * g / denom
                param.addcdiv_(grad, denom, value=-lr * (1.0 - mu) / (1.0 - mu_product))
                # theta <- theta - lr mu_{t+1} / (1 - Pi_t mu_{t+1}) * m / denom
                param.addcdiv_(exp_avg, denom, value=-lr * mu_next / (1.0 - mu_product * mu_next))
        return loss


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
    ) -> None:
        checks.number("switch_tol", switch_tol, 0)
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
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
        self._adam_update(group)
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
